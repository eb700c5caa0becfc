#!/usr/bin/env bash
# Shared by qward's scripts: install what a fresh Debian machine lacks, and
# point cargo at one target directory that outlives any clone.
# Sourced, not run.

qward_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/qward/target}"
export QWARD_BIN="$CARGO_TARGET_DIR/debug/qward"
mkdir -p "$CARGO_TARGET_DIR"

qward_say() { printf 'qward: %s\n' "$*" >&2; }

# Debian packages the build and the tests need:
#   clang, libclang-dev  bindgen for RocksDB (librocksdb-sys)
#   tmux                 the terminal UI's end-to-end test
#   curl                 the control API conformance test (JSON-RPC over HTTP)
#   fonts-dejavu-core    text in the PNG plots of `qward qkd sweep`
#   prometheus           a real Prometheus server scrapes a node's /metrics
#   python3-venv         the Grafana dashboard check's virtualenv
qward_ensure_system_packages() {
  local missing=()
  command -v clang >/dev/null 2>&1 || missing+=(clang)
  if ! ls /usr/lib/llvm-*/lib/libclang*.so* >/dev/null 2>&1 \
     && ! ls /usr/lib/x86_64-linux-gnu/libclang*.so* >/dev/null 2>&1; then
    missing+=(libclang-dev)
  fi
  command -v tmux >/dev/null 2>&1 || missing+=(tmux)
  command -v curl >/dev/null 2>&1 || missing+=(curl)
  [ -e /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] || missing+=(fonts-dejavu-core)
  command -v prometheus >/dev/null 2>&1 || missing+=(prometheus)
  python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || missing+=(python3-venv)
  [ ${#missing[@]} -eq 0 ] && return 0

  local sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then sudo="sudo"; else
      qward_say "missing packages: ${missing[*]}; install them as root (apt-get install ${missing[*]})"
      return 1
    fi
  fi
  if ! command -v apt-get >/dev/null 2>&1; then
    qward_say "missing packages: ${missing[*]}, and no apt-get here; install them with your package manager"
    return 1
  fi
  qward_say "installing ${missing[*]} (apt-get)"
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# Grafana's dashboard models (grafana-foundation-sdk, from PyPI) in a
# virtualenv beside the target directory: the dashboard test checks
# deploy/grafana/*.json against them.
export QWARD_VENV="${QWARD_VENV:-$HOME/.cache/qward/venv}"
QWARD_GRAFANA_SDK="grafana-foundation-sdk==1769699998!10.1.0"
qward_ensure_dashboard_checker() {
  if "$QWARD_VENV/bin/python" -c 'import grafana_foundation_sdk' >/dev/null 2>&1; then
    return 0
  fi
  qward_say "installing $QWARD_GRAFANA_SDK into $QWARD_VENV"
  python3 -m venv "$QWARD_VENV"
  "$QWARD_VENV/bin/pip" install --quiet --disable-pip-version-check "$QWARD_GRAFANA_SDK"
}

qward_ensure_cargo() {
  if ! command -v cargo >/dev/null 2>&1; then
    [ -f "$HOME/.cargo/env" ] && . "$HOME/.cargo/env"
  fi
  command -v cargo >/dev/null 2>&1 || { qward_say "cargo not found: install Rust (rustup) first"; return 1; }
}

qward_ensure_nextest() {
  cargo nextest --version >/dev/null 2>&1 && return 0
  qward_say "installing cargo-nextest"
  cargo install --locked cargo-nextest >/dev/null
}

# Says before a build whether it is the first one (RocksDB's C++ takes most of
# it), so nobody takes a quiet half hour for a hang.
qward_say_build() {
  if ls "$CARGO_TARGET_DIR"/debug/build/librocksdb-sys-*/out/librocksdb.a >/dev/null 2>&1; then
    qward_say "building (a minute or two)"
  else
    qward_say "first build: compiling RocksDB's C++ takes 30 to 45 minutes on 2 cores, mostly without output; later builds reuse $CARGO_TARGET_DIR"
  fi
}
