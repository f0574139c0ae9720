#!/usr/bin/env bash
# The Action's publish step, after the reports were uploaded: the markdown re-rendered with the links
# (run, artifact), appended to $GITHUB_STEP_SUMMARY, one ::error annotation per failing function, the
# step outputs, the PR comment (COMMENT=true), and perfgate's exit code.
#
# Environment: PERFGATE, NAME, DIR, CODE, ERROR (from the check step), ARTIFACT_URL, COMMENT, GITHUB_TOKEN;
# GitHub's GITHUB_STEP_SUMMARY, GITHUB_OUTPUT, GITHUB_EVENT_PATH, GITHUB_API_URL, GITHUB_REPOSITORY.
set -uo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
: "${NAME:?} ${DIR:?}"
code=${CODE:-2}
md="$DIR/$NAME.md"
xml="$DIR/$NAME.xml"
json="$DIR/$NAME.json"

# The artifact link exists only now: render the markdown again from the JSON, which has everything.
if [ -n "${ARTIFACT_URL:-}" ] && [ -s "$json" ] && [ -x "${PERFGATE:-}" ]; then
  # merge exits 1 on a regression too: the new file is what counts.
  "$PERFGATE" merge "$json" --markdown "$md.new" --artifact-url "$ARTIFACT_URL" >/dev/null 2>&1
  [ -s "$md.new" ] && mv "$md.new" "$md"
  rm -f "$md.new"
fi

if [ -n "${GITHUB_STEP_SUMMARY:-}" ]; then
  { cat "$md"; echo; } >>"$GITHUB_STEP_SUMMARY"
fi

# One annotation per failing function; names escaped for the workflow-command syntax (%, CR, LF, and
# : , in properties), and every other control character (a terminal escape in a function's name would
# colour or rewrite the CI log) and bidirectional control shown as \u{..}, as perfgate's terminal does.
counts=$(python3 - "$json" <<'PY'
import json, sys, unicodedata
try:
    doc = json.load(open(sys.argv[1]))
except Exception as e:
    print(0, 0); sys.exit(0)
benchmarks = doc["benchmarks"] if "benchmarks" in doc else [doc]
def visible(c):
    bidi = '\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069'
    hidden = (unicodedata.category(c) == 'Cc' and c not in '\r\n') or c in bidi
    return '\\u{%x}' % ord(c) if hidden else c
def esc(s): return ''.join(map(visible, s)).replace('%', '%25').replace('\r', '%0D').replace('\n', '%0A')
def esc_prop(s): return esc(s).replace(':', '%3A').replace(',', '%2C')
n = 0
undecided = 0
for b in benchmarks:
    if b.get("error"):
        print(f"::error title={esc_prop('perfgate: ' + b['name'] + ' not checked')}::{esc(b['error'])}", file=sys.stderr)
        continue
    for f in b.get("functions", []):
        if f["verdict"] == "inconclusive":
            undecided += 1
        if f["verdict"] in ("regressed", "calls-changed"):
            n += 1
            r = f.get("ratio")
            change = f"{(r - 1) * 100:+.1f}%" if r and f["verdict"] == "regressed" else "calls changed"
            print(f"::error title={esc_prop('perfgate: ' + f['name'] + ' regressed')}::{esc(f['name'])} ({esc(f['module'])}) {change}", file=sys.stderr)
print(n, undecided)
PY
)
failing=${counts%% *}
undecided=${counts##* }

case "$code" in 0) verdict=pass ;; 1) verdict=fail ;; *) verdict=error ;; esac
# Nothing failed but some function could not be decided: a visible outcome of its own.
if [ "$verdict" = pass ] && [ "${undecided:-0}" -gt 0 ]; then verdict=inconclusive; fi
{
  echo "verdict=$verdict"
  echo "regressions=${failing:-0}"
  echo "junit=$xml"
  echo "markdown=$md"
  echo "json=$json"
  echo "name=$NAME"
} >>"${GITHUB_OUTPUT:-/dev/null}"

if [ "${COMMENT:-false}" = true ]; then
  python3 "$here/action-github.py" comment "$md" "$NAME" || echo "perfgate: warning: the PR comment could not be posted" >&2
fi
exit "$code"
