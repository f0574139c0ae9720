#!/usr/bin/env bash
# The Action's update-baseline mode, for pushes to the main branch: record the baselines on this runner
# (the kind of machine pull requests are checked on), commit them, and publish the commit as a pull
# request from branch UPDATE_BRANCH (UPDATE_VIA=pr, the default; one PR, updated in place) or push it to
# the branch itself (UPDATE_VIA=commit). Nothing is committed when no baseline changed.
#
# Environment: PERFGATE, BASELINE or CONFIG (+ BENCHMARKS), EXTRA, UPDATE_VIA (pr|commit), UPDATE_BRANCH
# (default perfgate/baselines), BASE_BRANCH (default GITHUB_REF_NAME), GITHUB_SHA; for the PR,
# GITHUB_TOKEN, GITHUB_REPOSITORY, GITHUB_API_URL. The git remote is `origin` (actions/checkout sets it up
# with the job's token).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
via="${UPDATE_VIA:-pr}"
branch="${UPDATE_BRANCH:-perfgate/baselines}"
base="${BASE_BRANCH:-${GITHUB_REF_NAME:-main}}"
case "$via" in pr | commit) ;; *) echo "perfgate: update-via: $via is neither pr nor commit" >&2; exit 2 ;; esac

prefix=()
if [ "$(id -u)" -ne 0 ] && ! getcap "$PERFGATE" 2>/dev/null | grep -q cap_perfmon; then
  prefix=(sudo -E)
fi
set -f
# shellcheck disable=SC2206 # extra-args are split on white space
extra=(${EXTRA:-})
set +f
if [ -n "${BASELINE:-}" ]; then
  "${prefix[@]}" "$PERFGATE" check --baseline "$BASELINE" --update "${extra[@]}"
  paths=("$BASELINE")
else
  config="${CONFIG:-perfgate.toml}"
  args=(baseline --all --config "$config")
  set -f
  # shellcheck disable=SC2086
  for b in ${BENCHMARKS:-}; do args+=(--benchmark "$b"); done
  set +f
  "${prefix[@]}" "$PERFGATE" "${args[@]}" "${extra[@]}"
  mapfile -t paths < <(python3 - "$config" <<'PY'
import os, sys, tomllib
path = sys.argv[1]
doc = tomllib.load(open(path, "rb"))
for b in doc.get("benchmark", []):
    print(os.path.normpath(os.path.join(os.path.dirname(path), b["baseline"])))
PY
)
fi

git add -- "${paths[@]}"
if git diff --cached --quiet -- "${paths[@]}"; then
  echo "perfgate: the baselines did not change: nothing to commit" >&2
  echo "updated=false" >>"${GITHUB_OUTPUT:-/dev/null}"
  exit 0
fi
short="${GITHUB_SHA:-$(git rev-parse HEAD)}"
short="${short:0:7}"
git -c user.name='github-actions[bot]' -c user.email='41898282+github-actions[bot]@users.noreply.github.com' \
  commit -q -m "perfgate: baselines recorded at $short" -- "${paths[@]}"
if [ "$via" = commit ]; then
  git push -q origin "HEAD:refs/heads/$base"
  echo "perfgate: pushed the new baselines to $base" >&2
else
  git push -q --force origin "HEAD:refs/heads/$branch"
  body="${RUNNER_TEMP:-/tmp}/perfgate-baseline-pr.md"
  {
    echo "Baselines recorded by perfgate on the CI runner at \`$short\` ($(nproc) cores, kernel $(uname -r))."
    echo
    echo "Files:"
    for p in "${paths[@]}"; do echo "- \`$p\`"; done
    echo
    echo "Merge to make pull requests compare against these numbers."
  } >"$body"
  python3 "$here/action-github.py" pr "$branch" "$base" "perfgate: update baselines" "$body"
fi
echo "updated=true" >>"${GITHUB_OUTPUT:-/dev/null}"
