#!/usr/bin/env bash
# The Action's check step: run `perfgate check` for one baseline or the benchmarks of perfgate.toml (maybe
# one shard), with every report named after what was checked, so several calls in one job never collide.
# Unless DEFER_PUBLISH=1 (action.yml sets it, to upload the reports first) it then publishes them
# (scripts/action-publish.sh) and exits with perfgate's code; otherwise it always exits 0 and leaves the
# code in the step outputs. Inputs arrive in environment variables, never interpolated into code.
#
# Environment: PERFGATE (binary), BASELINE or CONFIG (+ BENCHMARKS, SHARD), COMMAND, THRESHOLD, MAX_RUNS,
# FAIL_ON, EXTRA, ARTIFACTS, HEAD_SHA; GitHub's RUNNER_TEMP, GITHUB_OUTPUT, GITHUB_SERVER_URL, GITHUB_REPOSITORY,
# GITHUB_RUN_ID.
set -uo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root_dir="${RUNNER_TEMP:-$(mktemp -d)}/perfgate"
mkdir -p "$root_dir"

# The report name: the baseline's stem, or the config's benchmarks / shard; made unique in this job.
if [ -n "${BASELINE:-}" ]; then
  name=$(basename "$BASELINE")
  name=${name%.toml}
else
  name=perfgate
  [ -n "${BENCHMARKS:-}" ] && name=$(echo "$BENCHMARKS" | tr -s ' ' '+')
  [ -n "${SHARD:-}" ] && name="$name-shard-${SHARD/\//-of-}"
fi
name=$(printf '%s' "$name" | tr -c 'A-Za-z0-9._+-' '_' | cut -c1-80)
[ -n "$name" ] || name=perfgate
base_name=$name
n=1
while [ -e "$root_dir/$name" ]; do
  n=$((n + 1))
  name="$base_name-$n"
done
dir="$root_dir/$name"
mkdir -p "$dir"
md="$dir/$name.md"
xml="$dir/$name.xml"
json="$dir/$name.json"

args=(check --junit "$xml" --markdown "$md" --json "$json")
if [ -n "${BASELINE:-}" ]; then
  args+=(--baseline "$BASELINE")
else
  args+=(--config "${CONFIG:-perfgate.toml}" --all)
  [ -n "${SHARD:-}" ] && args+=(--shard "$SHARD")
  set -f
  # shellcheck disable=SC2086 # benchmark names are split on white space (names have no spaces)
  for b in ${BENCHMARKS:-}; do args+=(--benchmark "$b"); done
  set +f
fi
[ -n "${THRESHOLD:-}" ] && args+=(--threshold "$THRESHOLD")
[ -n "${MAX_RUNS:-}" ] && args+=(--max-runs "$MAX_RUNS")
[ -n "${FAIL_ON:-}" ] && args+=(--fail-on "$FAIL_ON")
[ -n "${HEAD_SHA:-}" ] && args+=(--head-commit "${HEAD_SHA:0:7}")
if [ -n "${GITHUB_RUN_ID:-}" ] && [ -n "${GITHUB_REPOSITORY:-}" ]; then
  args+=(--run-url "${GITHUB_SERVER_URL:-https://github.com}/$GITHUB_REPOSITORY/actions/runs/$GITHUB_RUN_ID")
fi
set -f
# shellcheck disable=SC2206 # extra-args and command are split on white space (no quotes, no globbing)
[ -n "${EXTRA:-}" ] && args+=($EXTRA)
# shellcheck disable=SC2206
[ -n "${COMMAND:-}" ] && [ -n "${BASELINE:-}" ] && args+=(-- $COMMAND)
set +f

# Privileges: root as is; a binary with CAP_BPF+CAP_PERFMON (setcap) as the runner user; else sudo, under
# which perfgate writes its files as the invoking user (SUDO_UID) and runs the benchmark as that user.
prefix=()
if [ "$(id -u)" -ne 0 ] && ! getcap "$PERFGATE" 2>/dev/null | grep -q cap_perfmon; then
  prefix=(sudo -E)
fi
# stderr is shown live and kept, for the error line.
{
  "${prefix[@]}" "$PERFGATE" "${args[@]}" 2>&1 1>&3 3>&- | tee "$dir/stderr.log" >&2 3>&-
  code=${PIPESTATUS[0]}
} 3>&1

# perfgate writes the reports even when it cannot check (exit 2); if it could not even start, say why in
# reports of our own, so every output points at a real file.
error=$(grep -hE '^(perfgate: )?error:' "$dir/stderr.log" 2>/dev/null | tail -n 1 | sed -E 's/^(perfgate: )?error: //')
if [ "$code" -ge 2 ] && [ -z "$error" ]; then
  error="perfgate exited with code $code (see the step log)"
fi
if [ ! -s "$json" ] || [ ! -s "$md" ] || [ ! -s "$xml" ]; then
  python3 - "$name" "${error:-perfgate wrote no report}" "$md" "$xml" "$json" <<'PY'
import json, sys, html
name, error, md, xml, js = sys.argv[1:6]
def esc_md(s):
    out = []
    for c in s:
        if c in "|`*_[]\\#~!": out.append("\\" + c)
        elif c == "<": out.append("&lt;")
        elif c == ">": out.append("&gt;")
        elif c == "&": out.append("&amp;")
        elif c < " ": out.append(" ")
        else: out.append(c)
    return "".join(out)
open(md, "w").write(f"⚠️ **{esc_md(name)}**: perfgate could not check it: {esc_md(error)}\n")
e = html.escape(error, quote=True)
n = html.escape(name, quote=True)
open(xml, "w").write(
    '<?xml version="1.0" encoding="UTF-8"?>\n'
    f'<testsuites name="perfgate" tests="1" failures="0" errors="1" skipped="0">\n'
    f'  <testsuite name="perfgate: {n}" tests="1" failures="0" errors="1" skipped="0">\n'
    f'    <testcase classname="perfgate" name="{n}" time="0">\n'
    f'      <error message="{e}" type="perfgate-error">{e}</error>\n'
    '    </testcase>\n  </testsuite>\n</testsuites>\n')
json.dump({"perfgate_suite": 1, "context": {"quick": False}, "benchmarks": [
    {"name": name, "baseline": "", "reproduce": "", "update": "", "error": error}]}, open(js, "w"), indent=2)
PY
fi

# Files the workflow made (a flame-graph diff) travel in the same artifact, which the markdown links.
set -f
# shellcheck disable=SC2086 # a space-separated list of paths
for f in ${ARTIFACTS:-}; do
  if [ -f "$f" ]; then cp -- "$f" "$dir/"; else echo "perfgate: warning: artifact $f not found" >&2; fi
done
set +f

{
  echo "name=$name"
  echo "dir=$dir"
  echo "code=$code"
  echo "junit=$xml"
  echo "markdown=$md"
  echo "json=$json"
  [ -n "$error" ] && echo "error=${error//$'\n'/ }"
} >>"${GITHUB_OUTPUT:-/dev/null}"

if [ "${DEFER_PUBLISH:-}" = 1 ]; then
  exit 0
fi
NAME="$name" DIR="$dir" CODE="$code" ERROR="$error" exec bash "$here/action-publish.sh"
