# Runs one libFuzzer target for SECONDS on a scratch copy of its seed corpus,
# with libFuzzer's random seed SEED (0: a new one each run). A fixed seed
# makes the run a prefix of one fixed input sequence, so a CI run cannot fail
# on an input no developer run has met; SEED=0 explores further.
# Fails on any crash, leak, UBSan report or timeout; the reproducer is left in WORK.
file(REMOVE_RECURSE ${WORK})
file(MAKE_DIRECTORY ${WORK}/corpus)
file(GLOB seeds ${SEEDS}/*)
file(COPY ${seeds} DESTINATION ${WORK}/corpus)
execute_process(COMMAND ${FUZZER} -seed=${SEED} -max_total_time=${SECONDS} -timeout=20 -rss_limit_mb=2048
                        -artifact_prefix=${WORK}/ -print_final_stats=1 ${WORK}/corpus
                RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "fuzzer ${FUZZER} found a problem (exit ${rc}); reproducer in ${WORK}")
endif()
