# Installs resnet into a scratch prefix, then configures, builds and runs a
# tiny project that only does find_package(resnet): the core target, and
# resnet::image on a JPEG; the core once more with the run-time kernel choice
# compiled out (RESNET_NO_DISPATCH: what MSVC and ARM builds get).
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
step(install_consumer ${WORK_DIR}/app-build/consumer_image ${SOURCE_DIR}/tests/fuzz/corpus/image/baseline_jpg)
