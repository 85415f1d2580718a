# Installs resnet into a scratch prefix, then configures, builds and runs a
# tiny project that only does find_package(resnet): the core target, and
# resnet::image on a JPEG, which stb_image's decoder must decode alike; the
# core once more with the run-time kernel choice compiled out
# (RESNET_NO_DISPATCH: what MSVC and ARM builds get).
file(REMOVE_RECURSE ${WORK_DIR})
include(${CMAKE_CURRENT_LIST_DIR}/../step.cmake)
step(install_consumer ${CMAKE_COMMAND} -S ${SOURCE_DIR} -B ${WORK_DIR}/lib-build -G ${GENERATOR}
     -DRESNET_BUILD_TESTS=OFF -DRESNET_BUILD_EXAMPLES=OFF -DRESNET_BUILD_BENCH=OFF)
step(install_consumer ${CMAKE_COMMAND} --install ${WORK_DIR}/lib-build --prefix ${WORK_DIR}/prefix)
step(install_consumer ${CMAKE_COMMAND} -S ${SOURCE_DIR}/tests/consumer -B ${WORK_DIR}/app-build -G ${GENERATOR}
     -DCMAKE_PREFIX_PATH=${WORK_DIR}/prefix -DCMAKE_BUILD_TYPE=Release)
step(install_consumer ${CMAKE_COMMAND} --build ${WORK_DIR}/app-build)
step(install_consumer ${WORK_DIR}/app-build/consumer)
step(install_consumer ${WORK_DIR}/app-build/consumer_portable)
# The same JPEGs through libjpeg and through stb_image's decoder (what a
# program without libjpeg gets): same size, and each channel's mean within
# one level (their IDCTs and upsampling round differently).
foreach(name baseline_jpg progressive_jpg gray_jpg)
  set(jpeg ${SOURCE_DIR}/tests/fuzz/corpus/image/${name})
  foreach(decoder image image_stb)
    execute_process(COMMAND ${WORK_DIR}/app-build/consumer_${decoder} ${jpeg} RESULT_VARIABLE rc OUTPUT_VARIABLE out)
    message(STATUS "${out}")
    if(NOT rc EQUAL 0 OR NOT out MATCHES " ([0-9]+)x([0-9]+) -> .* channel sums ([0-9]+) ([0-9]+) ([0-9]+)")
      message(FATAL_ERROR "install_consumer: consumer_${decoder} failed (${rc}): ${out}")
    endif()
    set(${decoder} ${CMAKE_MATCH_1} ${CMAKE_MATCH_2} ${CMAKE_MATCH_3} ${CMAKE_MATCH_4} ${CMAKE_MATCH_5})
  endforeach()
  list(GET image 0 w)
  list(GET image 1 h)
  math(EXPR pixels "${w} * ${h}")
  foreach(i 0 1 2 3 4)
    list(GET image ${i} a)
    list(GET image_stb ${i} b)
    math(EXPR diff "${a} - ${b}")
    string(REPLACE "-" "" diff ${diff})
    if((i LESS 2 AND NOT diff EQUAL 0) OR diff GREATER pixels)
      message(FATAL_ERROR "install_consumer: libjpeg and stb_image disagree on ${jpeg}: ${image} vs ${image_stb} "
                          "(width, height, sums of R, G, B)")
    endif()
  endforeach()
endforeach()
