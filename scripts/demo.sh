#!/usr/bin/env bash
# The demo: trace the talk's example, then gate the fixture benchmark against its committed baseline,
# once as it is (passes) and once with one function made 25% slower (fails, naming it).
set -uo pipefail
cd "$(dirname "$0")/.."
P=./target/release/perfgate
out=$(mktemp -d "${TMPDIR:-/tmp}/perfgate-demo.XXXXXX")

echo "== perfgate record: work1 spins 1e8 times, work2 2e8; main calls both =="
$P record -o "$out/work.data" -- ./fixtures/bin/work || exit 2

echo
echo "== perfgate check: the fixture benchmark against baselines/gatebench.toml =="
# --relative: the committed baseline was measured on another machine; shares of the traced time survive that.
$P check --baseline baselines/gatebench.toml --relative \
  --markdown "$out/check.md" --junit "$out/check.xml" --json "$out/check.json"
code=$?
[ "$code" -eq 0 ] || { echo "demo: the unchanged benchmark did not pass (exit $code)"; exit "$code"; }

echo
echo "== the same check with hash_block made 25% slower (GATEBENCH_SLOW=hash_block:25): it must fail =="
GATEBENCH_SLOW=hash_block:25 $P check --baseline baselines/gatebench.toml --relative \
  --markdown "$out/regression.md"
code=$?
if [ "$code" -ne 1 ]; then
  echo "demo: the slowed benchmark was not caught (exit $code)"
  exit 2
fi
echo
echo "== the markdown a pull request would show ($out/regression.md) =="
head -8 "$out/regression.md"
echo
echo "demo: OK (reports in $out)"
