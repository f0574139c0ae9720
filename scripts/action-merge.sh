#!/usr/bin/env bash
# The Action's merge mode: the JSON reports of a matrix of shards (`mode: check` with `shard: K/N`,
# downloaded with actions/download-artifact) joined by `perfgate merge` into one markdown, one JUnit, one
# JSON and one exit code, left for the publish step. Environment: PERFGATE, INPUTS (a glob), HEAD_SHA,
# RUNNER_TEMP, GITHUB_OUTPUT, GITHUB_SERVER_URL, GITHUB_REPOSITORY, GITHUB_RUN_ID.
set -uo pipefail
name=merged
dir="${RUNNER_TEMP:-$(mktemp -d)}/perfgate/$name"
n=1
while [ -e "$dir" ]; do n=$((n + 1)); name="merged-$n"; dir="${RUNNER_TEMP:-/tmp}/perfgate/$name"; done
mkdir -p "$dir"
shopt -s nullglob globstar
# shellcheck disable=SC2206 # the input is a glob, expanded here on purpose
inputs=(${INPUTS:-})
args=(merge "${inputs[@]}" --markdown "$dir/$name.md" --junit "$dir/$name.xml" --json "$dir/$name.json")
[ -n "${HEAD_SHA:-}" ] && args+=(--head-commit "${HEAD_SHA:0:7}")
if [ -n "${GITHUB_RUN_ID:-}" ] && [ -n "${GITHUB_REPOSITORY:-}" ]; then
  args+=(--run-url "${GITHUB_SERVER_URL:-https://github.com}/$GITHUB_REPOSITORY/actions/runs/$GITHUB_RUN_ID")
fi
error=""
if [ "${#inputs[@]}" -eq 0 ]; then
  error="merge: no report matches ${INPUTS:-(empty)}"
  code=2
else
  "$PERFGATE" "${args[@]}" 2>"$dir/stderr.log"
  code=$?
  cat "$dir/stderr.log" >&2
  error=$(grep -h '^perfgate: error:' "$dir/stderr.log" | tail -n 1 | sed 's/^perfgate: error: //')
fi
if [ ! -s "$dir/$name.md" ]; then
  printf '⚠️ **perfgate merge** failed: %s\n' "${error:-no report}" | sed 's/[<>&]/ /g' >"$dir/$name.md"
  printf '<?xml version="1.0" encoding="UTF-8"?>\n<testsuites name="perfgate" tests="0" failures="0" errors="0" skipped="0"/>\n' >"$dir/$name.xml"
  printf '{"perfgate_suite": 1, "benchmarks": []}\n' >"$dir/$name.json"
fi
{
  echo "name=$name"
  echo "dir=$dir"
  echo "code=$code"
  [ -n "$error" ] && echo "error=$error"
} >>"${GITHUB_OUTPUT:-/dev/null}"
exit 0
