//! Nothing survives perfgate: SIGKILL, SIGTERM and SIGINT of perfgate at several moments of `record`,
//! `baseline` and `check`, and `--timeout`, end the benchmark and all its descendants within 2 s, perfgate
//! itself exits, and no uprobe link of the benchmark remains.
mod common;
use common::*;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A private copy of the spin fixture: processes running it are this test's and no one else's.
fn spin_copy(dir: &Path) -> PathBuf {
    copy_to(&fixture("spin"), dir, "spin")
}

/// Live (not zombie) processes whose executable is `exe`.
fn running(exe: &Path) -> Vec<u32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(target) = std::fs::read_link(format!("/proc/{pid}/exe")) else {
            continue;
        };
        if target != exe {
            continue;
        }
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let state = stat
            .rfind(')')
            .and_then(|i| stat[i + 1..].split_whitespace().next().map(str::to_string));
        if !matches!(state.as_deref(), Some("Z") | Some("X") | None) {
            out.push(pid);
        }
    }
    out
}

fn wait_for(what: &str, limit: Duration, mut ok: impl FnMut() -> bool) {
    let t = Instant::now();
    while !ok() {
        assert!(t.elapsed() < limit, "{what} after {limit:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The BPF links and programs process `pid` holds now, by id (from its fds' fdinfo).
fn bpf_objects_of(pid: u32) -> Vec<(String, u64)> {
    let mut out = Vec::new();
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return out;
    };
    for fd in fds.flatten() {
        let target = std::fs::read_link(fd.path()).unwrap_or_default();
        let target = target.to_string_lossy();
        let kind = if target.contains("bpf_link") {
            "link"
        } else if target.contains("bpf-prog") {
            "prog"
        } else {
            continue;
        };
        let info = std::fs::read_to_string(format!(
            "/proc/{pid}/fdinfo/{}",
            fd.file_name().to_string_lossy()
        ))
        .unwrap_or_default();
        let key = if kind == "link" {
            "link_id:"
        } else {
            "prog_id:"
        };
        if let Some(id) = info
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.trim().parse().ok())
        {
            out.push((kind.to_string(), id));
        }
    }
    out
}

/// Those of `objects` the kernel still has (`bpftool link|prog show id N` succeeds).
fn still_there(objects: &[(String, u64)]) -> Vec<(String, u64)> {
    objects
        .iter()
        .filter(|(kind, id)| {
            Command::new("bpftool")
                .args([kind.as_str(), "show", "id", &id.to_string()])
                .output()
                .expect("bpftool (scripts/setup.sh installs it)")
                .status
                .success()
        })
        .cloned()
        .collect()
}

fn start(args: &[&str], dir: &Path) -> Child {
    Command::new(assert_cmd::cargo::cargo_bin("perfgate"))
        .env_remove("SUDO_UID")
        .env_remove("SUDO_GID")
        .current_dir(dir)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Kills perfgate with `signal` `after` its start and checks the aftermath; returns perfgate's exit and
/// how many BPF links and programs it held at the kill (all of them gone afterwards).
fn stop_and_check(args: &[&str], exe: &Path, signal: i32, after: Duration) -> std::process::Output {
    let dir = exe.parent().unwrap();
    let child = start(args, dir);
    let pid = child.id();
    std::thread::sleep(after);
    if after >= Duration::from_millis(1000) {
        // From a second on, the kill is meant to land while the benchmark runs traced (after
        // calibration and planning, however slow the machine is today).
        let t = Instant::now();
        let traced =
            || bpf_objects_of(pid).iter().any(|(k, _)| k == "link") && !running(exe).is_empty();
        while !traced() {
            assert!(
                t.elapsed() < Duration::from_secs(30),
                "never saw the benchmark traced"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    let objects = bpf_objects_of(pid);
    assert!(
        perfgate::sys::kill(pid, signal),
        "perfgate {pid} gone early"
    );
    wait_for("the benchmark still runs", Duration::from_secs(2), || {
        running(exe).is_empty()
    });
    let out = wait_output(child, Duration::from_secs(60));
    // The kernel frees a program after an RCU grace period, not at the close.
    wait_for(
        "BPF objects of perfgate remain",
        Duration::from_secs(10),
        || still_there(&objects).is_empty(),
    );
    if after >= Duration::from_millis(1000) {
        // By then the benchmark runs traced: the check above had something to check.
        assert!(
            objects.iter().any(|(k, _)| k == "link"),
            "no link seen at {after:?}: {objects:?}"
        );
    }
    out
}

/// The child's output, waiting at most `limit` for it to exit.
fn wait_output(mut child: Child, limit: Duration) -> std::process::Output {
    let t = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        assert!(
            t.elapsed() < limit,
            "perfgate did not exit within {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn kill_9_of_record_at_any_moment_leaves_nothing_running() {
    let dir = scratch();
    let exe = spin_copy(dir.path());
    let e = exe.to_str().unwrap();
    for ms in [0u64, 30, 150, 600, 1500] {
        let out = stop_and_check(
            &["record", "--no-calibrate", "-o", "k.data", "--", e, "120"],
            &exe,
            libc::SIGKILL,
            Duration::from_millis(ms),
        );
        assert_eq!(out.status.code(), None, "killed by a signal");
    }
}

#[test]
fn kill_9_of_record_ends_children_and_daemons_too() {
    let dir = scratch();
    let exe = spin_copy(dir.path());
    let e = exe.to_str().unwrap();
    stop_and_check(
        &[
            "record",
            "--no-calibrate",
            "-o",
            "k.data",
            "--",
            e,
            "120",
            "fork",
            "daemon",
        ],
        &exe,
        libc::SIGKILL,
        Duration::from_millis(1500),
    );
}

#[test]
fn kill_9_of_baseline_and_check_leaves_nothing_running() {
    let dir = scratch();
    let exe = spin_copy(dir.path());
    let e = exe.to_str().unwrap();
    stop_and_check(
        &[
            "baseline",
            "--overhead-budget",
            "off",
            "-o",
            "b.toml",
            "--runs",
            "3",
            "--",
            e,
            "120",
        ],
        &exe,
        libc::SIGKILL,
        Duration::from_millis(1200),
    );
    // A baseline of a short run to check against, then a check of the endless one.
    let out = perfgate()
        .current_dir(dir.path())
        .args([
            "baseline",
            "--overhead-budget",
            "off",
            "-o",
            "b.toml",
            "--runs",
            "3",
            "--",
            e,
            "0",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    stop_and_check(
        &["check", "--baseline", "b.toml", "--", e, "120"],
        &exe,
        libc::SIGKILL,
        Duration::from_millis(1200),
    );
}

#[test]
fn sigterm_and_sigint_end_the_benchmark_keep_the_profile_and_exit_2() {
    let dir = scratch();
    let exe = spin_copy(dir.path());
    let e = exe.to_str().unwrap();
    for (signal, name) in [(libc::SIGTERM, "SIGTERM"), (libc::SIGINT, "SIGINT")] {
        let data = dir.path().join("t.data");
        let _ = std::fs::remove_file(&data);
        let out = stop_and_check(
            &[
                "record",
                "--no-calibrate",
                "-o",
                "t.data",
                "--",
                e,
                "120",
                "ignore-term",
            ],
            &exe,
            signal,
            Duration::from_millis(1500),
        );
        assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
        let err = text(&out.stderr);
        assert!(err.contains(&format!("stopped by {name}")), "{err}");
        let rec = perfgate::profile::file::Recording::open(&data).unwrap();
        let tick = rec
            .profile
            .functions
            .iter()
            .position(|f| f.name == "tick")
            .unwrap();
        let calls: u64 = rec
            .profile
            .stats
            .iter()
            .filter(|s| s.func as usize == tick)
            .map(|s| s.calls)
            .sum();
        assert!(
            calls > 1000,
            "the profile up to the signal is kept: {calls} calls"
        );
    }
    // check and baseline stop with exit 2 and an error naming the signal.
    let out = stop_and_check(
        &[
            "baseline",
            "--overhead-budget",
            "off",
            "-o",
            "b.toml",
            "--runs",
            "3",
            "--",
            e,
            "120",
        ],
        &exe,
        libc::SIGTERM,
        Duration::from_millis(1500),
    );
    assert_clean_error(&out, "stopped by SIGTERM");
    assert!(!dir.path().join("b.toml").exists());
}

#[test]
fn timeout_kills_the_whole_tree_even_when_sigterm_is_ignored() {
    let dir = scratch();
    let exe = spin_copy(dir.path());
    let t = Instant::now();
    let out = perfgate()
        .current_dir(dir.path())
        .args([
            "record",
            "--no-calibrate",
            "--allow-failure",
            "--timeout",
            "1",
            "-o",
            "t.data",
        ])
        .arg("--")
        .arg(&exe)
        .args(["120", "ignore-term", "fork", "daemon"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(t.elapsed() < Duration::from_secs(30));
    assert!(
        text(&out.stdout).contains("killed by the timeout"),
        "{}",
        text(&out.stdout)
    );
    wait_for(
        "a process of the tree still runs",
        Duration::from_secs(2),
        || running(&exe).is_empty(),
    );
}
