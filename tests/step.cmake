# step(<label> COMMAND...): runs a command in a cmake -P script and stops the
# script with "<label>: step failed" if it fails.
function(step label)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "${label}: step failed (${rc}): ${ARGN}")
  endif()
endfunction()
