#!/usr/bin/env bash
# The README's test command: installs what is missing, builds (Release) and
# runs every test. Ends with ctest's summary line.
set -euo pipefail
cd "$(dirname "$0")/.."
. .ci/deps.sh
resnet_install_deps
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release
cmake --build build
ctest --test-dir build --output-on-failure
