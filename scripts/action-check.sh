#!/usr/bin/env bash
# The GitHub Action's check step: run perfgate check, publish the markdown summary, one ::error per
# regression, and step outputs. Inputs arrive in environment variables (never interpolated into code).
set -uo pipefail
if [ -n "${RUNNER_TEMP:-}" ]; then
  out="$RUNNER_TEMP/perfgate"
  mkdir -p "$out"
else
  out=$(mktemp -d)
fi
# Reports of an earlier run in this job must not be published as this run's.
rm -f "$out/perf.xml" "$out/perf.md" "$out/perf.json"
args=(check --baseline "$BASELINE" --junit "$out/perf.xml" --markdown "$out/perf.md" --json "$out/perf.json")
[ -n "${THRESHOLD:-}" ] && args+=(--threshold "$THRESHOLD")
[ -n "${MAX_RUNS:-}" ] && args+=(--max-runs "$MAX_RUNS")
# shellcheck disable=SC2206 # extra-args and command are split on white space (no quotes, no globbing)
set -f
[ -n "${EXTRA:-}" ] && args+=($EXTRA)
# shellcheck disable=SC2206
[ -n "${COMMAND:-}" ] && args+=(-- $COMMAND)
sudo_prefix=()
[ "$(id -u)" -eq 0 ] || sudo_prefix=(sudo -E)
"${sudo_prefix[@]}" "$PERFGATE" "${args[@]}"
code=$?
[ -f "$out/perf.md" ] && [ -n "${GITHUB_STEP_SUMMARY:-}" ] && cat "$out/perf.md" >> "$GITHUB_STEP_SUMMARY"
regressions=0
if [ -f "$out/perf.json" ]; then
  # One annotation per regression; names are escaped for the workflow-command syntax (%, CR, LF).
  regressions=$(python3 - "$out/perf.json" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
def esc(s): return s.replace('%', '%25').replace('\r', '%0D').replace('\n', '%0A')
def esc_prop(s): return esc(s).replace(':', '%3A').replace(',', '%2C')
n = 0
for f in c["functions"]:
    if f["verdict"] in ("regressed", "calls-changed"):
        n += 1
        r = f.get("ratio")
        change = f"{(r - 1) * 100:+.1f}%" if r else "calls changed"
        print(f"::error title={esc_prop('perfgate: ' + f['name'] + ' regressed')}::{esc(f['name'])} ({esc(f['module'])}) {change}", file=sys.stderr)
print(n)
PY
)
fi
{
  case "$code" in 0) echo "verdict=pass" ;; 1) echo "verdict=fail" ;; *) echo "verdict=error" ;; esac
  echo "regressions=${regressions:-0}"
  echo "junit=$out/perf.xml"
  echo "markdown=$out/perf.md"
} >> "${GITHUB_OUTPUT:-/dev/null}"
exit "$code"
