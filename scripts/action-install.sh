#!/usr/bin/env bash
# The Action's install step: a pinned perfgate without rebuilding it on every run.
#
#   action-install.sh key       cache key and directory (to $GITHUB_OUTPUT): perfgate's version, the
#                               machine's architecture and a hash of Cargo.lock and the sources, so a
#                               cached binary is exactly the one this checkout of the Action builds
#   action-install.sh install   makes $PERFGATE_DIR/perfgate: kept when already there (a cache hit);
#                               INSTALL=release downloads the release binary for this architecture and
#                               refuses it unless its sha256 is the one pinned in scripts/release.sha256;
#                               INSTALL=build (the default) builds once with cargo and keeps the binary
#                               for actions/cache. Then gives the binary CAP_BPF+CAP_PERFMON(+CAP_SYS_RESOURCE)
#                               with setcap when not root, so perfgate runs as the runner user.
#                               Prints perfgate=PATH to $GITHUB_OUTPUT.
#
# Environment: INSTALL (build|release), PERFGATE_DIR (from `key`), ACTION_REPOSITORY (owner/name of the
# Action, for release URLs), PERFGATE_RELEASE_BASE_URL and PERFGATE_RELEASE_SHA256 (tests point them at a
# local server and file).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="${GITHUB_OUTPUT:-/dev/null}"
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' "$root/Cargo.toml" | head -n 1)
arch=$(uname -m)
asset="perfgate-$version-$arch-linux"

case "${1:-}" in
key)
  sources=$(cd "$root" && find Cargo.lock Cargo.toml build.rs src bpf -type f -print0 | sort -z | xargs -0 sha256sum | sha256sum | cut -c1-16)
  dir="${RUNNER_TOOL_CACHE:-${RUNNER_TEMP:-/tmp}}/perfgate/$version-$arch-$sources"
  echo "key=perfgate-$version-$arch-$sources" >>"$out"
  echo "dir=$dir" >>"$out"
  echo "perfgate: cache key perfgate-$version-$arch-$sources" >&2
  ;;
install)
  dir="${PERFGATE_DIR:?PERFGATE_DIR is set by the key step}"
  mkdir -p "$dir"
  if [ -x "$dir/perfgate" ] && "$dir/perfgate" --version >/dev/null 2>&1; then
    echo "perfgate: $("$dir/perfgate" --version) from the cache" >&2
  else
    case "${INSTALL:-build}" in
    release)
      sums="${PERFGATE_RELEASE_SHA256:-$root/scripts/release.sha256}"
      expected=$(awk -v f="$asset" '$2 == f { print $1 }' "$sums" 2>/dev/null || true)
      if [ -z "$expected" ]; then
        echo "perfgate: no checksum pinned for $asset in $sums: use install: build" >&2
        exit 2
      fi
      base="${PERFGATE_RELEASE_BASE_URL:-https://github.com/${ACTION_REPOSITORY:?}/releases/download}"
      tmp="$dir/.perfgate.download"
      curl -fsSL --retry 3 -o "$tmp" "$base/v$version/$asset"
      got=$(sha256sum "$tmp" | cut -d' ' -f1)
      if [ "$got" != "$expected" ]; then
        rm -f "$tmp"
        echo "perfgate: $asset has sha256 $got, not the pinned $expected: refused" >&2
        exit 2
      fi
      chmod 755 "$tmp"
      mv "$tmp" "$dir/perfgate"
      ;;
    build)
      start=$(date +%s)
      bash "$root/scripts/setup.sh"
      cargo build --release --locked --manifest-path "$root/Cargo.toml"
      install -m 755 "$root/target/release/perfgate" "$dir/perfgate"
      echo "perfgate: built in $(($(date +%s) - start)) s (cached for the next runs)" >&2
      ;;
    *)
      echo "perfgate: install: ${INSTALL} is neither build nor release" >&2
      exit 2
      ;;
    esac
  fi
  # Tracing privileges on the binary itself (file capabilities; a cache restore does not keep them): perfgate
  # then runs as the runner user, so every file it writes is the runner's and no step needs sudo.
  if [ "$(id -u)" -ne 0 ] && command -v setcap >/dev/null && sudo -n true 2>/dev/null; then
    sudo -n setcap cap_bpf,cap_perfmon,cap_sys_resource+ep "$dir/perfgate" 2>/dev/null ||
      sudo -n setcap cap_bpf,cap_perfmon+ep "$dir/perfgate" ||
      echo "perfgate: warning: setcap failed; perfgate will run with sudo" >&2
  fi
  echo "perfgate=$dir/perfgate" >>"$out"
  ;;
*)
  echo "usage: action-install.sh key|install" >&2
  exit 2
  ;;
esac
