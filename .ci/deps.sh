# Sourced by .ci/run and the README commands: installs the Debian packages the
# build, tests and examples need, skipping the step when all are present.
RESNET_APT_PACKAGES="cmake ninja-build g++ clang libclang-rt-14-dev libeigen3-dev catch2 libstb-dev libjpeg62-turbo-dev libdeflate-dev libpng-dev
  nlohmann-json3-dev python3-torch python3-torchvision python3-numpy python3-pil libjpeg-turbo-progs python3-h5py
  python3-keras-applications python3-keras-preprocessing"
resnet_install_deps() {
  local missing=()
  for p in $RESNET_APT_PACKAGES; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  # node and npm for the TensorFlow.js cross-check: any install will do (NodeSource's
  # nodejs bundles npm and conflicts with Debian's npm package).
  command -v node >/dev/null && command -v npm >/dev/null || missing+=(nodejs npm)
  [ ${#missing[@]} -eq 0 ] && return 0
  echo "installing: ${missing[*]}"
  local sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y --no-install-recommends "${missing[@]}"
}
