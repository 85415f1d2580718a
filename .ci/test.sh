#!/usr/bin/env bash
# The README's test command: installs what is missing, builds (Release) and
# runs every test. Ends with ctest's summary line.
set -euo pipefail
cd "$(dirname "$0")/.."
. .ci/deps.sh
resnet_install_deps
# The generated fixtures (seeded weights of every architecture, in each file
# format) and the builds take ~6.5 GB under build/: stop here, in one line,
# rather than partway through writing them.
need_mb=7000
have_mb=$(( $(df -Pk . | awk 'NR == 2 { print $4 }') / 1024 ))
[ -d build ] && have_mb=$(( have_mb + $(du -sk build | cut -f1) / 1024 ))
if (( have_mb < need_mb )); then
  echo "test.sh: the tests need ${need_mb} MB under $(pwd)/build; ${have_mb} MB available (free space plus what build/ already holds)" >&2
  exit 1
fi
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release
cmake --build build
ctest --test-dir build --output-on-failure
