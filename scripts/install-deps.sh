#!/usr/bin/env bash
# Install everything Hermes needs to build, run and test, from Debian 12 packages only.
# Idempotent: packages already present are not touched; apt-get update runs only when
# something is missing. Run as root (or with sudo available).
#
#   scripts/install-deps.sh          build and run
#   scripts/install-deps.sh --test   also what the test suite needs
set -euo pipefail

build_pkgs=(
  build-essential cmake ninja-build pkg-config
  libcurl4-openssl-dev libolm-dev libwebsockets-dev libsqlite3-dev libcjson-dev
  libyaml-dev liburcu-dev libssl-dev libcmark-gfm-dev libcmark-gfm-extensions-dev libedit-dev
  ca-certificates git
)
test_pkgs=(
  clang libclang-rt-14-dev clang-format-14
  python3 python3-pytest python3-aiohttp openssl ripgrep procps nginx-light wrk
  python3-matrix-nio python3-olm python3-cryptography
  nodejs npm
  openssh-server openssh-client
)

want=("${build_pkgs[@]}")
if [[ "${1:-}" == "--test" ]]; then
  want+=("${test_pkgs[@]}")
fi

# A tool installed another way (e.g. NodeSource's nodejs, which bundles npm and conflicts
# with Debian's npm package) counts as present.
provided_by_command() {
  case $1 in
  nodejs) command -v node >/dev/null 2>&1 ;;
  npm) command -v npm >/dev/null 2>&1 ;;
  *) return 1 ;;
  esac
}

missing=()
for p in "${want[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" &&
    ! provided_by_command "$p"; then
    missing+=("$p")
  fi
done
if ((${#missing[@]} == 0)); then
  echo "install-deps: all ${#want[@]} packages present"
  exit 0
fi

SUDO=""
if [[ $(id -u) -ne 0 ]]; then
  SUDO="sudo"
fi
echo "install-deps: installing ${missing[*]}"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
