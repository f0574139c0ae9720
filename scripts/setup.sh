#!/usr/bin/env bash
# Installs what perfgate needs on Debian/Ubuntu, idempotently: only missing packages are installed.
set -euo pipefail
pkgs=(clang llvm libelf-dev zlib1g-dev pkg-config make gcc g++ binutils libc6-dev linux-libc-dev)
# The tests: bpftool (no BPF object of perfgate survives it), xmllint (JUnit against the XSD).
pkgs+=(bpftool libxml2-utils)
# Real-library benchmark fixtures (fixtures/sqlite_bench.c, zstd_bench.c, leveldb_bench.cpp) and the
# sqlite3 shell for fixtures/sqlite_bench.sql.
pkgs+=(libsqlite3-dev libzstd-dev libleveldb-dev sqlite3)
# Debug files for the tests of separate debug symbols (glibc's internal functions), and xz for MiniDebugInfo.
pkgs+=(libc6-dbg xz-utils)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
if ! command -v cargo >/dev/null 2>&1; then
  echo "setup: cargo not found; install Rust (https://rustup.rs) first" >&2
  exit 1
fi
# tracefs is not mounted by default on some machines; perfgate itself does not need it.
echo "setup: system packages present"
