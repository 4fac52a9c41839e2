#!/usr/bin/env bash
# Installs the Debian 12 packages edgeroute's build and tests need.
# Idempotent: runs `apt-get update` and `apt-get install` only when a package
# is missing. Needs root (or sudo) the first time.
set -euo pipefail

PACKAGES=(
  bazel-bootstrap
  g++
  pkg-config
  libabsl-dev
  libflatbuffers-dev
  flatbuffers-compiler
  librocksdb-dev
  liburing-dev
  libsimdjson-dev
  libbenchmark-dev
  libgtest-dev
  libgmock-dev
  libsqlite3-dev
  python3
  python3-pytest
  mosquitto
  mosquitto-clients
  libmosquitto-dev
  libssl-dev
  nlohmann-json3-dev
  openssl
  python3-paho-mqtt
  # Installing and packaging (scripts/install.sh, scripts/package-deb.sh)
  # and what their tests use: sd_notify, the man page, Debian tooling, a
  # CMake consumer, a Python venv, the Go binding.
  libsystemd-dev
  help2man
  dpkg-dev
  cmake
  python3-venv
  python3-setuptools
  python3-pip
  golang-go
  # The clustered-engine test of the upstream connector.
  nats-server
  python3-matplotlib  # bench/report.sh's charts
)

missing=()
# Node.js (for the Azure IoT SDK tests): the machine's own when it has one
# (its npm may not come from Debian), Debian's otherwise.
if ! command -v npm >/dev/null 2>&1; then
  PACKAGES+=(nodejs npm)
fi
for pkg in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$pkg")
  fi
done

if [ "${#missing[@]}" -eq 0 ]; then
  exit 0
fi

echo "edgeroute setup: installing ${missing[*]}" >&2
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
