#!/usr/bin/env bash
# The README's first command: the top ImageNet classes of some photos.
#   examples/classify.sh [OPTION...] [IMAGE|DIR...]   (default: examples/images/chelsea.png)
# Installs missing Debian packages (.ci/deps.sh), builds the `classify` example
# in build/ (Release), then runs it with the weights in $RESNET_WEIGHTS, else
# weights/resnet50.safetensors, which it first converts from torchvision's
# IMAGENET1K_V2 when missing (that downloads them). Without weights (offline)
# it says how to get them and exits with status 1. Arguments go to classify.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
weights="${RESNET_WEIGHTS:-$root/weights/resnet50.safetensors}"

. "$root/.ci/deps.sh"
resnet_install_deps

if [ ! -f "$weights" ] && [ -z "${RESNET_WEIGHTS:-}" ]; then
  # torchvision downloads the ImageNet weights (internet needed); the converter
  # writes the file only once the download has succeeded.
  echo "classify.sh: no $weights yet: converting torchvision's resnet50 IMAGENET1K_V2 weights" >&2
  /usr/bin/python3 "$root/weights/convert_torchvision.py" --arch resnet50 --pretrained IMAGENET1K_V2 -o "$weights" >&2 ||
    echo "classify.sh: the conversion failed (offline?)" >&2
fi
if [ ! -f "$weights" ]; then
  cat >&2 <<MSG
classify.sh: no weights file at $weights
On a machine with internet, convert torchvision's ImageNet weights (it downloads them):
  /usr/bin/python3 $root/weights/convert_torchvision.py --arch resnet50 --pretrained IMAGENET1K_V2 -o $weights
Offline, random-init weights run the same pipeline (the classes it prints are then meaningless):
  /usr/bin/python3 $root/weights/convert_torchvision.py --arch resnet50 --random-init --seed 0 -o $weights
Or set RESNET_WEIGHTS to a .safetensors file you already have.
MSG
  exit 1
fi

cmake -S "$root" -B "$root/build" -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$root/build" --target classify
[ $# -gt 0 ] || set -- "$root/examples/images/chelsea.png"
exec "$root/build/examples/classify" --weights "$weights" "$@"
