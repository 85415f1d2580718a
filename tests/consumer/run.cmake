# Installs resnet into a scratch prefix, then configures, builds and runs a
# tiny project that only does find_package(resnet): the core target, and
# resnet::image on JPEGs and PNGs, which stb_image's decoders must decode
# alike; the core once more with the run-time kernel choice compiled out
# (RESNET_NO_DISPATCH: what MSVC and ARM builds get), and once at -O0.
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
step(install_consumer ${WORK_DIR}/app-build/consumer_O0)
# The same files through libjpeg / libpng and through stb_image's decoders
# (what a program without those libraries gets): same size, and each
# channel's mean within one level for JPEGs (their IDCTs and upsampling round
# differently), equal for PNGs.
function(decode decoder file)
  execute_process(COMMAND ${WORK_DIR}/app-build/consumer_${decoder} ${file} RESULT_VARIABLE rc OUTPUT_VARIABLE out)
  message(STATUS "${out}")
  if(NOT rc EQUAL 0 OR NOT out MATCHES " ([0-9]+)x([0-9]+) -> .* channel sums ([0-9]+) ([0-9]+) ([0-9]+)")
    message(FATAL_ERROR "install_consumer: consumer_${decoder} failed (${rc}): ${out}")
  endif()
  set(${decoder} ${CMAKE_MATCH_1} ${CMAKE_MATCH_2} ${CMAKE_MATCH_3} ${CMAKE_MATCH_4} ${CMAKE_MATCH_5} PARENT_SCOPE)
endfunction()
foreach(name baseline_jpg progressive_jpg gray_jpg rgb_png rgba_png gray_png gray16_png palette_png)
  set(file ${SOURCE_DIR}/tests/fuzz/corpus/image/${name})
  decode(image ${file})
  decode(image_stb ${file})
  list(GET image 0 w)
  list(GET image 1 h)
  math(EXPR tolerance "${w} * ${h}")
  if(name MATCHES "_png$")
    set(tolerance 0)
  endif()
  foreach(i 0 1 2 3 4)
    list(GET image ${i} a)
    list(GET image_stb ${i} b)
    math(EXPR diff "${a} - ${b}")
    string(REPLACE "-" "" diff ${diff})
    if((i LESS 2 AND NOT diff EQUAL 0) OR diff GREATER tolerance)
      message(FATAL_ERROR "install_consumer: the libraries and stb_image disagree on ${file}: ${image} vs "
                          "${image_stb} (width, height, sums of R, G, B)")
    endif()
  endforeach()
endforeach()
# A PNG whose data inflates to 64 MiB past its 16×16 pixels: libpng stops at
# the last row; stb_image, which inflates it all, is stopped and refuses it.
decode(image --zlib-bomb)
execute_process(COMMAND ${WORK_DIR}/app-build/consumer_image_stb --zlib-bomb RESULT_VARIABLE rc OUTPUT_VARIABLE out)
message(STATUS "${out}")
if(rc EQUAL 0 OR NOT out MATCHES "PNG data inflates past .* bytes, more than its 16x16 header allows")
  message(FATAL_ERROR "install_consumer: stb_image's path did not refuse the zlib bomb (${rc}): ${out}")
endif()
