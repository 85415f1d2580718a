# Configures and builds the ASan + UBSan + libFuzzer tree with clang.
find_program(CLANGXX NAMES clang++ clang++-14)
if(NOT CLANGXX)
  message(FATAL_ERROR "sanitize_build: clang++ not found (apt-get install clang libclang-rt-14-dev)")
endif()
include(${CMAKE_CURRENT_LIST_DIR}/step.cmake)
step(sanitize_build ${CMAKE_COMMAND} -S ${SOURCE_DIR} -B ${BUILD_DIR} -G ${GENERATOR} -DCMAKE_CXX_COMPILER=${CLANGXX}
     -DCMAKE_BUILD_TYPE=RelWithDebInfo -DRESNET_SANITIZE=ON -DRESNET_BUILD_FUZZERS=ON
     -DRESNET_BUILD_EXAMPLES=OFF -DRESNET_BUILD_BENCH=OFF -DRESNET_FIXTURE_DIR=${FIXTURE_DIR} -DRESNET_PYTHON=${PYTHON})
step(sanitize_build ${CMAKE_COMMAND} --build ${BUILD_DIR})
