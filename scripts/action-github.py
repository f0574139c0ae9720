#!/usr/bin/env python3
"""The Action's GitHub API calls, with the job's token.

    action-github.py comment REPORT.md NAME      one PR comment per NAME, updated in place: found by the
                                                 hidden marker <!-- perfgate:NAME --> on its first line
    action-github.py pr BRANCH BASE TITLE BODY.md   open the pull request BRANCH → BASE, or update the
                                                 open one

Environment: GITHUB_TOKEN, GITHUB_REPOSITORY, GITHUB_API_URL (tests point it at a local server),
GITHUB_EVENT_PATH (the pull request's number). Every request has a timeout; pages are bounded.
"""
import json
import os
import re
import sys
import urllib.error
import urllib.request

API = os.environ.get("GITHUB_API_URL", "https://api.github.com").rstrip("/")
REPO = os.environ.get("GITHUB_REPOSITORY", "")
TOKEN = os.environ.get("GITHUB_TOKEN", "")
MAX_BODY = 65000  # GitHub refuses comments over 65536 characters
MAX_PAGES = 30


def call(method, path, body=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(API + path, data=data, method=method, headers={
        "Authorization": f"Bearer {TOKEN}",
        "Accept": "application/vnd.github+json",
        "X-GitHub-Api-Version": "2022-11-28",
        "User-Agent": "perfgate-action",
        "Content-Type": "application/json",
    })
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            raw = r.read()
    except urllib.error.HTTPError as e:
        sys.exit(f"perfgate: GitHub API {method} {path}: {e.code} {e.reason}")
    except urllib.error.URLError as e:
        sys.exit(f"perfgate: GitHub API {method} {path}: {e.reason}")
    return json.loads(raw) if raw else None


def body_of(path, marker):
    text = open(path, encoding="utf-8").read()
    if len(text) > MAX_BODY:
        text = text[:MAX_BODY] + "\n\n… (cut: the whole report is in the job summary and the artifact)\n"
    return f"{marker}\n{text}"


def comment(report, name):
    if not re.fullmatch(r"[A-Za-z0-9._+-]{1,100}", name):
        sys.exit(f"perfgate: bad report name {name!r}")
    event = json.load(open(os.environ["GITHUB_EVENT_PATH"], encoding="utf-8"))
    pr = (event.get("pull_request") or {}).get("number") or (event.get("issue") or {}).get("number")
    if not isinstance(pr, int):
        print("perfgate: not a pull request: no comment", file=sys.stderr)
        return
    marker = f"<!-- perfgate:{name} -->"
    body = body_of(report, marker)
    for page in range(1, MAX_PAGES + 1):
        comments = call("GET", f"/repos/{REPO}/issues/{pr}/comments?per_page=100&page={page}") or []
        for c in comments:
            if (c.get("body") or "").split("\n", 1)[0] == marker:
                call("PATCH", f"/repos/{REPO}/issues/comments/{c['id']}", {"body": body})
                print(f"perfgate: updated the comment on #{pr}", file=sys.stderr)
                return
        if len(comments) < 100:
            break
    call("POST", f"/repos/{REPO}/issues/{pr}/comments", {"body": body})
    print(f"perfgate: commented on #{pr}", file=sys.stderr)


def pull_request(branch, base, title, body_path):
    owner = REPO.split("/")[0]
    body = body_of(body_path, "<!-- perfgate:baseline-update -->")
    open_prs = call("GET", f"/repos/{REPO}/pulls?state=open&head={owner}:{branch}&base={base}") or []
    if open_prs:
        number = open_prs[0]["number"]
        call("PATCH", f"/repos/{REPO}/pulls/{number}", {"title": title, "body": body})
        print(f"perfgate: updated pull request #{number}", file=sys.stderr)
    else:
        pr = call("POST", f"/repos/{REPO}/pulls", {"title": title, "head": branch, "base": base, "body": body})
        print(f"perfgate: opened pull request #{(pr or {}).get('number')}", file=sys.stderr)


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "comment":
        comment(sys.argv[2], sys.argv[3])
    elif len(sys.argv) == 6 and sys.argv[1] == "pr":
        pull_request(*sys.argv[2:6])
    else:
        sys.exit(__doc__)
