//! The GitHub Action's scripts against a fake GitHub: GITHUB_STEP_SUMMARY, GITHUB_OUTPUT and
//! GITHUB_EVENT_PATH files, a fake REST API on 127.0.0.1 (comments, pull requests), a local bare repository
//! as the git remote and a local server for the release download. Also: action.yml, the workflow and the
//! README's GitLab snippet parse and name what perfgate writes.
mod common;
use common::*;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};

/// One request the fake API received.
#[derive(Debug, Clone)]
struct Request {
    method: String,
    path: String,
    auth: String,
    body: serde_json::Value,
}

/// A fake GitHub REST API (issue comments and pull requests of one repository), or a file server when
/// `files` is set. It serves until dropped; every connection is one request (`Connection: close`).
struct FakeGitHub {
    url: String,
    requests: Arc<Mutex<Vec<Request>>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

#[derive(Default)]
struct State {
    comments: Vec<(u64, String)>,
    pulls: Vec<(u64, String)>,
    next_id: u64,
}

impl FakeGitHub {
    fn start(files: Option<BTreeMap<String, Vec<u8>>>) -> FakeGitHub {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let requests = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (reqs, stopping) = (requests.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let mut state = State {
                next_id: 100,
                ..State::default()
            };
            // Bounded: a test makes a handful of requests.
            for stream in listener.incoming().take(200) {
                if stopping.load(std::sync::atomic::Ordering::SeqCst) {
                    return;
                }
                let Ok(stream) = stream else { continue };
                serve(stream, &mut state, &reqs, files.as_ref());
            }
        });
        FakeGitHub {
            url,
            requests,
            stop,
            thread: Some(thread),
        }
    }

    fn requests(&self) -> Vec<Request> {
        self.requests.lock().unwrap().clone()
    }
}

impl Drop for FakeGitHub {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        let _ = TcpStream::connect(self.url.trim_start_matches("http://"));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve(
    stream: TcpStream,
    state: &mut State,
    log: &Mutex<Vec<Request>>,
    files: Option<&BTreeMap<String, Vec<u8>>>,
) {
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut line = String::new();
    if reader.read_line(&mut line).is_err() || line.is_empty() {
        return;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or_default().to_string();
    let path = parts.next().unwrap_or_default().to_string();
    let (mut length, mut auth) = (0usize, String::new());
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).is_err() || h == "\r\n" || h.is_empty() {
            break;
        }
        let (k, v) = h.split_once(':').unwrap_or(("", ""));
        match k.to_ascii_lowercase().as_str() {
            "content-length" => length = v.trim().parse().unwrap_or(0),
            "authorization" => auth = v.trim().to_string(),
            _ => {}
        }
    }
    let mut body = vec![0; length.min(1 << 20)];
    let _ = reader.read_exact(&mut body);
    let body: serde_json::Value = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
    log.lock().unwrap().push(Request {
        method: method.clone(),
        path: path.clone(),
        auth,
        body: body.clone(),
    });
    let (status, reply): (&str, Vec<u8>) = if let Some(files) = files {
        match files.get(&path) {
            Some(b) => ("200 OK", b.clone()),
            None => ("404 Not Found", b"no".to_vec()),
        }
    } else {
        let route = path.split('?').next().unwrap_or_default();
        let json = match (method.as_str(), route) {
            ("GET", r) if r.ends_with("/comments") => serde_json::json!(state
                .comments
                .iter()
                .map(|(id, b)| serde_json::json!({"id": id, "body": b}))
                .collect::<Vec<_>>()),
            ("POST", r) if r.ends_with("/comments") => {
                state.next_id += 1;
                let b = body["body"].as_str().unwrap_or_default().to_string();
                state.comments.push((state.next_id, b));
                serde_json::json!({"id": state.next_id})
            }
            ("PATCH", r) if r.contains("/issues/comments/") => {
                let id: u64 = r.rsplit('/').next().unwrap().parse().unwrap();
                for c in &mut state.comments {
                    if c.0 == id {
                        c.1 = body["body"].as_str().unwrap_or_default().to_string();
                    }
                }
                serde_json::json!({"id": id})
            }
            ("GET", r) if r.ends_with("/pulls") => serde_json::json!(state
                .pulls
                .iter()
                .map(|(n, _)| serde_json::json!({"number": n}))
                .collect::<Vec<_>>()),
            ("POST", r) if r.ends_with("/pulls") => {
                state.next_id += 1;
                state.pulls.push((state.next_id, body["title"].to_string()));
                serde_json::json!({"number": state.next_id})
            }
            ("PATCH", r) if r.contains("/pulls/") => serde_json::json!({"number": 1}),
            _ => serde_json::json!({"message": "Not Found"}),
        };
        ("200 OK", serde_json::to_vec(&json).unwrap())
    };
    let mut s = stream;
    let _ = write!(
        s,
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        reply.len()
    );
    let _ = s.write_all(&reply);
}

/// A fresh baseline of gatebench (6 runs) in `dir`.
fn baseline_in(dir: &Path) -> PathBuf {
    let path = dir.join("gatebench.toml");
    let out = perfgate()
        .arg("baseline")
        .arg("-o")
        .arg(&path)
        .args(["--runs", "10", "--relative", "--"])
        .arg(fixture("gatebench"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    path
}

/// The environment of a GitHub job, as files in `dir`.
fn github_env(c: &mut Command, dir: &Path, api: &str, pr: Option<u64>) {
    let event = dir.join("event.json");
    let body = match pr {
        Some(n) => serde_json::json!({"pull_request": {"number": n, "head": {"sha": "def5678aa"}}}),
        None => serde_json::json!({}),
    };
    std::fs::write(&event, body.to_string()).unwrap();
    c.env("RUNNER_TEMP", dir.join("runner"))
        .env("GITHUB_STEP_SUMMARY", dir.join("summary.md"))
        .env("GITHUB_OUTPUT", dir.join("outputs.txt"))
        .env("GITHUB_EVENT_PATH", &event)
        .env("GITHUB_API_URL", api)
        .env("GITHUB_REPOSITORY", "octo/bench")
        .env("GITHUB_SERVER_URL", "https://github.example")
        .env("GITHUB_RUN_ID", "4242")
        .env("GITHUB_TOKEN", "secret-token")
        .env("PERFGATE", assert_cmd::cargo::cargo_bin("perfgate"))
        .env_remove("SUDO_UID")
        .env_remove("GATEBENCH_SLOW");
    std::fs::create_dir_all(dir.join("runner")).unwrap();
}

fn outputs(dir: &Path) -> BTreeMap<String, String> {
    std::fs::read_to_string(dir.join("outputs.txt"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn script(name: &str) -> Command {
    let mut c = Command::new("bash");
    c.arg(root().join("scripts").join(name)).current_dir(root());
    c
}

#[test]
fn two_checks_in_one_job_keep_their_reports_apart_and_one_pr_comment_is_updated_in_place() {
    let dir = scratch();
    let d = dir.path();
    let base = baseline_in(d);
    std::fs::write(d.join("diff.svg"), "<svg/>").unwrap();
    let api = FakeGitHub::start(None);
    let run = |slow: Option<&str>| {
        let mut c = script("action-check.sh");
        github_env(&mut c, d, &api.url, Some(7));
        c.env("BASELINE", &base)
            .env("ARTIFACTS", d.join("diff.svg"))
            .env("MAX_RUNS", "10")
            .env("EXTRA", "--runs 6")
            .env("COMMENT", "true")
            .env("HEAD_SHA", "def5678aa");
        if let Some(s) = slow {
            c.env("GATEBENCH_SLOW", s);
        }
        c.output().unwrap()
    };
    let first = run(Some("hash_block:200"));
    assert_eq!(first.status.code(), Some(1), "{}", text(&first.stderr));
    let out1 = outputs(d);
    std::fs::remove_file(d.join("outputs.txt")).unwrap();
    let second = run(None);
    assert_eq!(second.status.code(), Some(0), "{}", text(&second.stderr));
    let out2 = outputs(d);
    // Named after the benchmark, unique in the job: the first report is still there, still failing.
    assert_eq!(out1["name"], "gatebench");
    assert_eq!(out2["name"], "gatebench-2");
    assert_ne!(out1["junit"], out2["junit"]);
    let xml1 = std::fs::read_to_string(&out1["junit"]).unwrap();
    assert!(xml1.contains(r#"failures="1""#), "{xml1}");
    assert!(std::fs::read_to_string(&out2["junit"])
        .unwrap()
        .contains(r#"failures="0""#));
    assert_eq!(out1["verdict"].as_str(), "fail");
    // The unchanged benchmark: decided unchanged, or (on a busy machine, within 10 runs) undecided,
    // which does not fail either.
    assert!(
        matches!(out2["verdict"].as_str(), "pass" | "inconclusive"),
        "{}",
        out2["verdict"]
    );
    let summary = std::fs::read_to_string(d.join("summary.md")).unwrap();
    assert!(
        summary.starts_with("❌ **gatebench**: <code>hash\\_block</code> +"),
        "{summary}"
    );
    assert!(summary.contains("— head `def5678`"), "{summary}");
    assert!(
        summary.contains("[CI run](https://github.example/octo/bench/actions/runs/4242)"),
        "{summary}"
    );
    assert!(
        summary.contains("\n✅ **gatebench**: no regression")
            || summary.contains("\n⚠\u{fe0f} **gatebench**: inconclusive: no regression found"),
        "{summary}"
    );
    assert_eq!(
        text(&first.stderr)
            .matches("::error title=perfgate%3A hash_block regressed::")
            .count(),
        1
    );
    // One comment per report name, each found again by its hidden marker.
    let reqs = api.requests();
    let posts: Vec<_> = reqs.iter().filter(|r| r.method == "POST").collect();
    let patches: Vec<_> = reqs.iter().filter(|r| r.method == "PATCH").collect();
    assert_eq!(posts.len(), 2, "{reqs:?}");
    assert_eq!(patches.len(), 0, "two report names, two comments: {reqs:?}");
    // The second check's comment passes, or (a busy machine) says it was inconclusive: both exit 0.
    let second = posts[1].body["body"].as_str().unwrap();
    assert!(
        second.starts_with("<!-- perfgate:gatebench-2 -->\n✅ **gatebench**")
            || second.starts_with("<!-- perfgate:gatebench-2 -->\n⚠\u{fe0f} **gatebench**"),
        "{second}"
    );
    assert!(posts[0]
        .path
        .starts_with("/repos/octo/bench/issues/7/comments"));
    assert_eq!(posts[0].auth, "Bearer secret-token");
    assert!(posts[0].body["body"]
        .as_str()
        .unwrap()
        .starts_with("<!-- perfgate:gatebench -->\n❌ **gatebench**"));
    // A third run under the first run's name updates the same comment.
    let mut c = script("action-publish.sh");
    github_env(&mut c, d, &api.url, Some(7));
    let dir1 = Path::new(&out1["junit"]).parent().unwrap().to_path_buf();
    c.env("NAME", "gatebench")
        .env("DIR", &dir1)
        .env("CODE", "1")
        .env("COMMENT", "true");
    c.env(
        "ARTIFACT_URL",
        "https://github.example/octo/bench/actions/runs/4242/artifacts/9",
    );
    let third = c.output().unwrap();
    assert_eq!(third.status.code(), Some(1), "{}", text(&third.stderr));
    let reqs = api.requests();
    let patch: Vec<_> = reqs.iter().filter(|r| r.method == "PATCH").collect();
    assert_eq!(patch.len(), 1, "{reqs:?}");
    assert!(patch[0]
        .path
        .starts_with("/repos/octo/bench/issues/comments/"));
    let body = patch[0].body["body"].as_str().unwrap();
    assert!(
        body.contains("[reports and flame-graph diff](https://github.example/octo/bench/actions/runs/4242/artifacts/9)"),
        "{body}"
    );
}

#[test]
fn an_error_gives_a_summary_that_says_so_and_outputs_that_point_at_real_files() {
    let dir = scratch();
    let d = dir.path();
    let api = FakeGitHub::start(None);
    for (baseline, extra) in [
        (d.join("missing.toml"), ""),
        // perfgate cannot even parse its arguments: the script writes the reports itself.
        (d.join("missing.toml"), "--no-such-option"),
    ] {
        let _ = std::fs::remove_file(d.join("outputs.txt"));
        let _ = std::fs::remove_file(d.join("summary.md"));
        let mut c = script("action-check.sh");
        github_env(&mut c, d, &api.url, None);
        c.env("BASELINE", &baseline).env("EXTRA", extra);
        let out = c.output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
        let o = outputs(d);
        assert_eq!(o["verdict"], "error");
        for k in ["junit", "markdown", "json"] {
            assert!(Path::new(&o[k]).is_file(), "{k}: {}", o[k]);
        }
        let summary = std::fs::read_to_string(d.join("summary.md")).unwrap();
        // Named after the baseline; the second call of the job gets `missing-2`.
        assert!(summary.starts_with("⚠️ **missing"), "{summary}");
        assert!(
            summary.contains("perfgate could not check it: "),
            "{summary}"
        );
        assert!(summary.len() > 60, "{summary}");
        let xml = std::fs::read_to_string(&o["junit"]).unwrap();
        assert!(xml.contains(r#"errors="1""#), "{xml}");
        let v: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&o["json"]).unwrap()).unwrap();
        assert!(v.to_string().contains("error"));
    }
}

#[test]
fn merge_mode_joins_shard_reports() {
    let dir = scratch();
    let d = dir.path();
    std::fs::copy(fixture("gatebench"), d.join("gatebench")).unwrap();
    let mut toml = String::new();
    for n in ["a", "b"] {
        toml.push_str(&format!(
            "[[benchmark]]\nname = \"{n}\"\ncommand = [\"./gatebench\"]\nbaseline = \"{n}.toml\"\nruns = 10\n[benchmark.gate]\nrelative = true\n"
        ));
    }
    std::fs::write(d.join("perfgate.toml"), toml).unwrap();
    let out = perfgate()
        .current_dir(d)
        .args(["baseline", "--all"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let api = FakeGitHub::start(None);
    let mut jsons = Vec::new();
    for shard in ["1/2", "2/2"] {
        let _ = std::fs::remove_file(d.join("outputs.txt"));
        let mut c = script("action-check.sh");
        github_env(&mut c, d, &api.url, None);
        c.current_dir(d)
            .env("CONFIG", d.join("perfgate.toml"))
            .env("SHARD", shard)
            .env("EXTRA", "--runs 6 --max-runs 10");
        let out = c.output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        let o = outputs(d);
        assert_eq!(
            o["name"],
            format!("perfgate-shard-{}", shard.replace('/', "-of-"))
        );
        jsons.push(o["json"].clone());
    }
    let _ = std::fs::remove_file(d.join("outputs.txt"));
    let mut c = script("action-merge.sh");
    github_env(&mut c, d, &api.url, None);
    c.env("INPUTS", d.join("runner/perfgate/*/perfgate-shard-*.json"));
    let out = c.output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let o = outputs(d);
    assert_eq!(o["code"], "0", "{o:?}");
    let md = std::fs::read_to_string(Path::new(&o["dir"]).join("merged.md")).unwrap();
    assert!(
        md.starts_with("✅ perfgate: no regression in 2 benchmarks"),
        "{md}"
    );
    assert!(md.contains("shards 1/2, 2/2"), "{md}");
}

/// A repository on a "main" branch with a bare remote, and a perfgate.toml of one benchmark.
fn repo_with_remote(d: &Path) -> (PathBuf, PathBuf) {
    let (repo, remote) = (d.join("repo"), d.join("remote.git"));
    let git = |dir: &Path, args: &[&str]| {
        let out = Command::new("git")
            .current_dir(dir)
            .args(args)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("HOME", d)
            .output()
            .unwrap();
        assert!(out.status.success(), "git {args:?}: {}", text(&out.stderr));
    };
    std::fs::create_dir_all(&repo).unwrap();
    std::fs::create_dir_all(&remote).unwrap();
    git(&remote, &["init", "-q", "--bare", "-b", "main"]);
    git(&repo, &["init", "-q", "-b", "main"]);
    git(&repo, &["config", "user.name", "dev"]);
    git(&repo, &["config", "user.email", "dev@example.com"]);
    git(
        &repo,
        &["remote", "add", "origin", remote.to_str().unwrap()],
    );
    std::fs::copy(fixture("gatebench"), repo.join("gatebench")).unwrap();
    std::fs::write(
        repo.join("perfgate.toml"),
        "[[benchmark]]\nname = \"gatebench\"\ncommand = [\"./gatebench\"]\nbaseline = \"baselines/gatebench.toml\"\nruns = 5\n",
    )
    .unwrap();
    git(&repo, &["add", "."]);
    git(&repo, &["commit", "-q", "-m", "benchmark"]);
    git(&repo, &["push", "-q", "origin", "main"]);
    (repo, remote)
}

fn remote_file(remote: &Path, rev: &str) -> Option<String> {
    let out = Command::new("git")
        .current_dir(remote)
        .args(["show", &format!("{rev}:baselines/gatebench.toml")])
        .output()
        .unwrap();
    out.status.success().then(|| text(&out.stdout))
}

#[test]
fn update_baseline_mode_records_and_opens_then_updates_one_pull_request() {
    let dir = scratch();
    let d = dir.path();
    let (repo, remote) = repo_with_remote(d);
    let api = FakeGitHub::start(None);
    let run = || {
        let mut c = script("action-update-baseline.sh");
        github_env(&mut c, d, &api.url, None);
        c.current_dir(&repo)
            .env("HOME", d)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GITHUB_REF_NAME", "main")
            .env("GITHUB_SHA", "0123456789abcdef");
        c.output().unwrap()
    };
    let first = run();
    assert!(first.status.success(), "{}", text(&first.stderr));
    let recorded = remote_file(&remote, "perfgate/baselines").expect("the branch has the baseline");
    assert!(recorded.contains("schema = 1"));
    assert!(
        remote_file(&remote, "main").is_none(),
        "main is not pushed to directly"
    );
    let second = run();
    assert!(second.status.success(), "{}", text(&second.stderr));
    let reqs = api.requests();
    let creates: Vec<_> = reqs.iter().filter(|r| r.method == "POST").collect();
    assert_eq!(creates.len(), 1, "{reqs:?}");
    assert_eq!(creates[0].path, "/repos/octo/bench/pulls");
    assert_eq!(creates[0].body["head"], "perfgate/baselines");
    assert_eq!(creates[0].body["base"], "main");
    assert!(creates[0].body["body"]
        .as_str()
        .unwrap()
        .contains("`0123456`"));
    let lookups = reqs
        .iter()
        .filter(|r| {
            r.method == "GET"
                && r.path
                    .contains("/pulls?state=open&head=octo:perfgate/baselines&base=main")
        })
        .count();
    assert_eq!(lookups, 2);
    assert_eq!(
        reqs.iter().filter(|r| r.method == "PATCH").count(),
        1,
        "the second run updates the PR"
    );
    assert_ne!(
        remote_file(&remote, "perfgate/baselines"),
        Some(recorded),
        "re-recorded"
    );
    // Via a commit: pushed to main itself.
    let mut c = script("action-update-baseline.sh");
    github_env(&mut c, d, &api.url, None);
    let out = c
        .current_dir(&repo)
        .env("HOME", d)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GITHUB_REF_NAME", "main")
        .env("UPDATE_VIA", "commit")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(remote_file(&remote, "main").is_some());
}

#[test]
fn the_release_binary_is_installed_only_with_its_pinned_checksum() {
    let dir = scratch();
    let d = dir.path();
    let version = env!("CARGO_PKG_VERSION");
    let arch = std::env::consts::ARCH;
    let asset = format!("perfgate-{version}-{arch}-linux");
    let binary = std::fs::read(assert_cmd::cargo::cargo_bin("perfgate")).unwrap();
    let files = BTreeMap::from([(format!("/v{version}/{asset}"), binary.clone())]);
    let server = FakeGitHub::start(Some(files));
    let sha = {
        let out = Command::new("sha256sum")
            .arg(assert_cmd::cargo::cargo_bin("perfgate"))
            .output()
            .unwrap();
        text(&out.stdout)
            .split_whitespace()
            .next()
            .unwrap()
            .to_string()
    };
    let install = |sums: &str, cache: &Path| {
        std::fs::write(d.join("sums"), sums).unwrap();
        let _ = std::fs::remove_file(d.join("outputs.txt"));
        script("action-install.sh")
            .arg("install")
            .env("INSTALL", "release")
            .env("PERFGATE_DIR", cache)
            .env("PERFGATE_RELEASE_BASE_URL", &server.url)
            .env("PERFGATE_RELEASE_SHA256", d.join("sums"))
            .env("GITHUB_OUTPUT", d.join("outputs.txt"))
            .output()
            .unwrap()
    };
    let bad = install(&format!("{}  {asset}\n", "0".repeat(64)), &d.join("c1"));
    assert_eq!(bad.status.code(), Some(2), "{}", text(&bad.stderr));
    assert!(text(&bad.stderr).contains("refused"));
    assert!(!d.join("c1/perfgate").exists());
    let none = install("", &d.join("c2"));
    assert_eq!(none.status.code(), Some(2));
    assert!(text(&none.stderr).contains("no checksum pinned"));
    let good = install(&format!("{sha}  {asset}\n"), &d.join("c3"));
    assert!(good.status.success(), "{}", text(&good.stderr));
    assert_eq!(std::fs::read(d.join("c3/perfgate")).unwrap(), binary);
    assert_eq!(
        outputs(d)["perfgate"],
        d.join("c3/perfgate").display().to_string()
    );
    // A second install finds it in place (the cache path): no download.
    let before = server.requests().len();
    assert!(install("", &d.join("c3")).status.success());
    assert_eq!(server.requests().len(), before);
    // The key depends on the sources and names the version.
    let out = script("action-install.sh")
        .arg("key")
        .env("GITHUB_OUTPUT", d.join("outputs.txt"))
        .env("RUNNER_TOOL_CACHE", d)
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(outputs(d)["key"].starts_with(&format!("perfgate-{version}-{arch}-")));
}

fn yaml(path: &Path) -> yaml_rust2::Yaml {
    let text = std::fs::read_to_string(path).unwrap();
    let mut docs = yaml_rust2::YamlLoader::load_from_str(&text)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    docs.remove(0)
}

#[test]
fn action_yml_passes_every_input_it_declares_and_uses_only_declared_ones() {
    let action = yaml(&root().join("action.yml"));
    let inputs: Vec<String> = action["inputs"]
        .as_hash()
        .unwrap()
        .keys()
        .map(|k| k.as_str().unwrap().to_string())
        .collect();
    let text = std::fs::read_to_string(root().join("action.yml")).unwrap();
    for i in &inputs {
        assert!(
            text.contains(&format!("inputs.{i}")),
            "input {i} is never used"
        );
    }
    for used in text.split("inputs.").skip(1) {
        let name: String = used
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
            .collect();
        assert!(inputs.contains(&name), "inputs.{name} is not declared");
    }
    for step in action["runs"]["steps"].as_vec().unwrap() {
        if let Some(run) = step["run"].as_str() {
            let script = run
                .split('/')
                .next_back()
                .unwrap()
                .split_whitespace()
                .next()
                .unwrap()
                .trim_end_matches('"');
            assert!(root().join("scripts").join(script).is_file(), "{run}");
        }
    }
}

#[test]
fn the_workflow_shards_and_merges() {
    let wf = yaml(&root().join(".github/workflows/perf.yml"));
    let jobs = &wf["jobs"];
    let shards = jobs["check"]["strategy"]["matrix"]["shard"]
        .as_vec()
        .unwrap();
    assert!(shards.len() >= 2);
    let merge = &jobs["merge"];
    assert_eq!(merge["needs"].as_str(), Some("check"));
    let steps = merge["steps"].as_vec().unwrap();
    assert!(steps
        .iter()
        .any(|s| s["with"]["mode"].as_str() == Some("merge")));
    assert!(jobs["baseline"]["steps"]
        .as_vec()
        .unwrap()
        .iter()
        .any(|s| s["with"]["mode"].as_str() == Some("update-baseline")));
}

#[test]
fn the_readme_gitlab_snippet_is_valid_yaml_and_names_the_junit_perfgate_writes() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let start = readme
        .find("```yaml\n# .gitlab-ci.yml")
        .expect("the GitLab snippet")
        + "```yaml\n".len();
    let snippet = &readme[start..start + readme[start..].find("```").unwrap()];
    let docs = yaml_rust2::YamlLoader::load_from_str(snippet).expect("valid YAML");
    let job = &docs[0]["perfgate"];
    let junit = job["artifacts"]["reports"]["junit"]
        .as_str()
        .expect("artifacts:reports:junit");
    let script: Vec<&str> = job["script"]
        .as_vec()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    let check = script
        .iter()
        .find(|l| l.contains("perfgate check"))
        .expect("a perfgate check line");
    assert!(
        check.contains(&format!("--junit {junit}")),
        "{check} does not write {junit}"
    );
    // And perfgate writes that file with those arguments: the options exist.
    let out = perfgate().args(["check", "--help"]).output().unwrap();
    let help = text(&out.stdout);
    for word in check.split_whitespace().filter(|w| w.starts_with("--")) {
        assert!(
            help.contains(word),
            "{word} is not an option of perfgate check"
        );
    }
}

/// The Action's way on a hosted runner: the install step gives the binary CAP_BPF+CAP_PERFMON, the check
/// step runs it as the runner user without sudo, and every report is the runner's. Run here as a plain
/// user id with a copy of perfgate that has those capabilities (CAP_SYS_RESOURCE is not in this machine's
/// bounding set; kernels since 5.11 do not need it).
#[test]
fn as_the_runner_user_with_capabilities_every_report_is_the_runners() {
    const RUNNER: u32 = 64_124;
    let dir = scratch();
    let d = dir.path();
    std::fs::set_permissions(d, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let pg = d.join("perfgate");
    std::fs::copy(assert_cmd::cargo::cargo_bin("perfgate"), &pg).unwrap();
    let st = Command::new("setcap")
        .arg("cap_bpf,cap_perfmon+ep")
        .arg(&pg)
        .status()
        .unwrap();
    assert!(st.success());
    let home = d.join("home");
    std::fs::create_dir(&home).unwrap();
    std::fs::copy(fixture("gatebench"), home.join("gatebench")).unwrap();
    let base = baseline_in(&home);
    let st = Command::new("chown")
        .args(["-R", &format!("{RUNNER}:{RUNNER}")])
        .arg(&home)
        .status()
        .unwrap();
    assert!(st.success());
    let api = FakeGitHub::start(None);
    let mut c = Command::new("setpriv");
    c.arg(format!("--reuid={RUNNER}"))
        .arg(format!("--regid={RUNNER}"))
        .arg("--clear-groups")
        .arg("--")
        .arg("bash")
        .arg(root().join("scripts/action-check.sh"))
        .current_dir(&home);
    github_env(&mut c, &home, &api.url, None);
    let st = Command::new("chown")
        .args(["-R", &format!("{RUNNER}:{RUNNER}")])
        .arg(&home)
        .status()
        .unwrap();
    assert!(st.success());
    c.env("PERFGATE", &pg)
        .env("HOME", &home)
        .env("BASELINE", &base)
        .env("COMMAND", home.join("gatebench"))
        .env("EXTRA", "--runs 3 --max-runs 3");
    let out = c.output().unwrap();
    assert!(
        matches!(out.status.code(), Some(0 | 1)),
        "{}",
        text(&out.stderr)
    );
    assert!(!text(&out.stderr).contains("sudo"), "{}", text(&out.stderr));
    let o = outputs(&home);
    let reports = Path::new(&o["dir"]);
    let mut n = 0;
    for e in std::fs::read_dir(reports).unwrap() {
        use std::os::unix::fs::MetadataExt;
        let e = e.unwrap();
        assert_eq!(
            e.metadata().unwrap().uid(),
            RUNNER,
            "{}",
            e.path().display()
        );
        n += 1;
    }
    assert!(n >= 3, "{n} files in {}", reports.display());
}
