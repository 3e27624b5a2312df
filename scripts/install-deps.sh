#!/usr/bin/env bash
# Installs everything Ferry needs to build, test and run its demo on Debian bookworm.
# Idempotent: packages already present are skipped, so a second run costs a dpkg query.
set -euo pipefail

PACKAGES=(
  build-essential cmake ninja-build ccache pkg-config clang clang-format
  libgtest-dev libgmock-dev libbenchmark-dev
  librocksdb-dev libprotobuf-dev protobuf-compiler
  libgrpc++-dev protobuf-compiler-grpc
  libpq-dev libpqxx-dev librdkafka-dev
  libxxhash-dev libabsl-dev libzstd-dev libcurl4-openssl-dev libssl-dev
  libspdlog-dev libfmt-dev libyaml-cpp-dev prometheus-cpp-dev libcivetweb-dev
  postgresql-15 postgresql-client-15 prometheus
  libjemalloc-dev
  openssl procps iproute2 python3
  radosgw ceph-mon ceph-osd rclone
  chromium  # headless, for the status page test (tests/e2e/operator_view_e2e_test.cc)
)

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if ((${#missing[@]})); then
  echo "install-deps: installing ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# The Debian postgresql package starts a default cluster; Ferry's tests start their own
# throwaway clusters and do not need it.
