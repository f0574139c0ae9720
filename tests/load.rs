//! Load: many threads, recursion deeper than the kernel's 64-frame stack, a benchmark and a reader
//! that close stdout, and several perfgate runs at once. Each with exact counts, or with the calls
//! that could not be measured counted as such, and nothing hanging (every run is bounded by
//! `--timeout`, so a hang fails the test instead of blocking the suite).
//!
//! tests/record.rs already checks recursion past 64 frames in the default probe interface, and
//! tests/stack.rs exceptions through more frames than the kernel keeps; this file adds the other
//! probe interfaces, the recorded events and the gate's per-run figures of such a run.
mod common;
use std::path::Path;
use std::process::Stdio;

use common::*;
use perfgate::profile::calls::reconstruct;
use perfgate::profile::file::Recording;
use perfgate::profile::Profile;

const MODES: [&str; 3] = ["session", "multi", "classic"];

/// Generous for this machine (2 shared cores): a run that needs it has hung.
const TIMEOUT: &str = "120";

/// The perfgate binary as a `std::process::Command` (for its stdout or to spawn it), set up as
/// [`perfgate`] sets it up.
fn perfgate_std() -> std::process::Command {
    let mut c = std::process::Command::new(perfgate().get_program());
    c.current_dir(root())
        .env_remove("SUDO_UID")
        .env_remove("SUDO_GID")
        .env_remove("GATEBENCH_SLOW");
    c
}

/// `perfgate record --no-calibrate --timeout … ARGS -o OUT -- CMD…`, expected to succeed.
fn record_ok(out: &Path, args: &[&str], cmd: &[&str]) -> (Profile, std::process::Output) {
    let o = record_to(out)
        .args(["--no-calibrate", "--timeout", TIMEOUT])
        .args(args)
        .arg("--")
        .args(cmd)
        .output()
        .unwrap();
    assert!(o.status.success(), "{cmd:?}: {}", text(&o.stderr));
    (Recording::open(out).unwrap().profile, o)
}

#[test]
fn two_hundred_threads_are_counted_exactly_in_every_probe_interface() {
    let dir = scratch();
    let bin = fixture("threads");
    let bin = bin.to_str().unwrap();
    for mode in MODES {
        let data = dir.path().join(format!("{mode}.data"));
        let (p, _) = record_ok(&data, &["--probes", mode], &[bin, "200"]);
        assert_eq!(calls(&p, "main"), 1, "{mode}");
        assert_eq!(calls(&p, "thread_main"), 200, "{mode}");
        for f in ["a", "b", "c"] {
            assert_eq!(calls(&p, f), 200_000, "{mode} {f}");
        }
        assert_eq!(p.accounting.lost.lost_calls(), 0, "{mode}");
    }
    // Every call also as an event, each thread's calls nested on its own stack.
    let data = dir.path().join("trace.data");
    let (p, _) = record_ok(&data, &["--trace"], &[bin, "200"]);
    let r = reconstruct(Recording::open(&data).unwrap().events().unwrap(), None).unwrap();
    assert_eq!(r.stats.total_gaps(), 0);
    let id = |name: &str| p.functions.iter().position(|f| f.name == name).unwrap() as u32;
    let (thread_main, a, c) = (id("thread_main"), id("a"), id("c"));
    let workers: std::collections::BTreeSet<u32> = r
        .calls
        .iter()
        .filter(|k| k.func == thread_main)
        .map(|k| k.tid)
        .collect();
    assert_eq!(workers.len(), 200, "one thread_main per thread");
    assert_eq!(r.calls.iter().filter(|k| k.func == a).count(), 200_000);
    // a, b, c below thread_main (depth 0) on every thread: c is always the third level.
    assert!(r.calls.iter().filter(|k| k.func == c).all(|k| k.depth == 3));
    assert!(r.calls.iter().all(|k| !k.unfinished));
}

/// `recursive 300 2`: main calls recurse(300) twice, each a chain of 301 nested calls. main takes
/// one of the kernel's 64 frames, so 63 calls of each chain are measured and the 238 below are
/// counted as too deep (their time stays in their caller).
#[test]
fn recursion_past_64_frames_is_accounted_in_every_probe_interface_and_in_the_events() {
    let dir = scratch();
    let bin = fixture("recursive");
    let bin = bin.to_str().unwrap();
    for mode in MODES {
        let data = dir.path().join(format!("{mode}.data"));
        let (p, o) = record_ok(&data, &["--probes", mode, "--trace"], &[bin, "300", "2"]);
        assert_eq!(calls(&p, "recurse"), 2 * 63, "{mode}");
        assert_eq!(calls(&p, "main"), 1, "{mode}");
        assert_eq!(p.accounting.lost.depth_exceeded, 2 * (301 - 63), "{mode}");
        assert_eq!(p.accounting.lost.return_without_entry, 0, "{mode}");
        assert!(text(&o.stdout).contains("476 lost"), "{mode}");
        // The recorded events agree with the in-kernel totals: the same 126 calls, nested at most
        // 64 deep, every one closed, no gap.
        let r = reconstruct(Recording::open(&data).unwrap().events().unwrap(), None).unwrap();
        assert_eq!(r.stats.total_gaps(), 0, "{mode}");
        let recurse = p
            .functions
            .iter()
            .position(|f| f.name == "recurse")
            .unwrap() as u32;
        let measured: Vec<_> = r.calls.iter().filter(|k| k.func == recurse).collect();
        assert_eq!(measured.len(), 126, "{mode}");
        assert_eq!(r.calls.iter().map(|k| k.depth).max(), Some(63), "{mode}");
        assert!(r.calls.iter().all(|k| !k.unfinished), "{mode}");
        // The replay shows them, and stays valid past the limit.
        let out = perfgate()
            .args(["replay", "-i"])
            .arg(&data)
            .output()
            .unwrap();
        assert!(out.status.success(), "{mode}: {}", text(&out.stderr));
        assert_eq!(
            text(&out.stdout).matches("recurse() {").count(),
            2 * 62,
            "{mode}"
        );
    }
    // The gate's per-run figures count the same calls in every run.
    let base = dir.path().join("deep.toml");
    let o = perfgate()
        .args([
            "baseline",
            "--runs",
            "3",
            "--overhead-budget",
            "off",
            "--timeout",
            TIMEOUT,
        ])
        .arg("-o")
        .arg(&base)
        .args(["--", bin, "300", "2"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(
        text(&o.stderr).contains("476 calls could not be measured"),
        "{}",
        text(&o.stderr)
    );
    let b = perfgate::gate::baseline::Baseline::read(&base).unwrap();
    let f = b.functions.iter().find(|f| f.name == "recurse").unwrap();
    assert_eq!(f.calls, [126, 126, 126]);
}

/// A benchmark that closes its own stdout (through a shell, which perfgate follows into the
/// benchmark's exec): counted exactly, and perfgate's own table still reaches perfgate's stdout.
#[test]
fn a_benchmark_that_closes_stdout_is_counted_and_reported() {
    let dir = scratch();
    let data = dir.path().join("closed.data");
    let script = format!("exec >&-; exec {} 100", fixture("work").display());
    let (p, o) = record_ok(&data, &[], &["sh", "-c", &script]);
    assert_eq!(calls(&p, "work1"), 1);
    assert_eq!(calls(&p, "work2"), 1);
    assert_eq!(calls(&p, "main"), 1);
    assert!(p.exit.success());
    assert!(
        text(&o.stdout).contains("work1 (work)"),
        "{}",
        text(&o.stdout)
    );
}

/// perfgate's own stdout closed: a reader gone before the table is printed (`… | head -1`) and a
/// descriptor not open at all. Neither changes what perfgate saves or its exit code, neither panics,
/// and the recording is not written into (a file opened on a free descriptor 1 would receive the
/// table).
#[test]
fn a_closed_stdout_changes_neither_the_files_nor_the_exit_code() {
    let dir = scratch();
    let d = dir.path();
    let work = fixture("work");
    let work = work.to_str().unwrap();

    // A pipe whose reader is gone: every write to it fails with EPIPE.
    let no_reader = || {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        Stdio::from(writer)
    };
    let data = d.join("pipe.data");
    let o = perfgate_std()
        .args(["record", "-o"])
        .arg(&data)
        .args(["--no-calibrate", "--timeout", TIMEOUT, "--", work, "100"])
        .stdout(no_reader())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert!(!text(&o.stderr).contains("panicked"), "{}", text(&o.stderr));
    assert!(text(&o.stderr).contains("saved"), "{}", text(&o.stderr));
    assert_eq!(calls(&Recording::open(&data).unwrap().profile, "work1"), 1);

    // Descriptor 1 closed (the shell's `>&-`) around perfgate itself.
    let closed = d.join("closed.data");
    let o = std::process::Command::new("sh")
        .arg("-c")
        .arg(r#"exec "$@" >&-"#)
        .arg("sh")
        .arg(perfgate().get_program())
        .args(["record", "--no-calibrate", "--timeout", TIMEOUT, "-o"])
        .arg(&closed)
        .args(["--", work, "100"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let p = Recording::open(&closed).unwrap().profile;
    assert_eq!(calls(&p, "work2"), 1);

    // A check that finds a regression exits 1 with its reports written, whatever its stdout.
    let base = d.join("work.toml");
    let o = perfgate()
        .args(["baseline", "--runs", "5", "--overhead-budget", "off", "-o"])
        .arg(&base)
        .args(["--", work, "100"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o.stderr));
    let json = d.join("check.json");
    // work 25 spins 4 times as long as work 100 in both functions.
    let o = perfgate_std()
        .args([
            "check",
            "--runs",
            "5",
            "--absolute",
            "--timeout",
            TIMEOUT,
            "--baseline",
        ])
        .arg(&base)
        .arg("--json")
        .arg(&json)
        .args(["--", work, "25"])
        .stdout(no_reader())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", text(&o.stderr));
    assert!(!text(&o.stderr).contains("panicked"), "{}", text(&o.stderr));
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let regressed = report["functions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["verdict"] == "regressed")
        .count();
    assert!(regressed >= 1, "{report:#}");
    // The report itself to that stdout (`--json -`): the verdict is still the exit code, not the
    // success a closed pipe gives a view.
    let md = d.join("check.md");
    let o = perfgate_std()
        .args([
            "check",
            "--runs",
            "5",
            "--absolute",
            "--timeout",
            TIMEOUT,
            "--baseline",
        ])
        .arg(&base)
        .args(["--json", "-", "--markdown"])
        .arg(&md)
        .args(["--", work, "25"])
        .stdout(no_reader())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", text(&o.stderr));
    assert!(std::fs::read_to_string(&md)
        .unwrap()
        .contains("Regressions"));
}

/// Three perfgate runs at once: two on the same binary with different thread counts (the same
/// uprobes' inode, told apart by each run's PID filter) and one on another benchmark. Each shell
/// announces itself and waits until the other two have too, so all three are traced at the same
/// time; each run counts exactly its own calls.
#[test]
fn runs_at_the_same_time_count_only_their_own_benchmark() {
    let dir = scratch();
    let d = dir.path();
    let threads = fixture("threads");
    let recursive = fixture("recursive");
    let runs: [(&str, String); 3] = [
        ("many", format!("{} 50", threads.display())),
        ("few", format!("{} 2", threads.display())),
        ("deep", format!("{} 49 10", recursive.display())),
    ];
    let children: Vec<_> = runs
        .iter()
        .map(|(name, cmd)| {
            let others: Vec<String> = runs
                .iter()
                .filter(|(n, _)| n != name)
                .map(|(n, _)| format!("[ -e {} ]", d.join(n).display()))
                .collect();
            // Shell built-ins only while waiting: each `:` and `[` is no new process to follow.
            let script = format!(
                ": > {me}; until {others}; do :; done; exec {cmd}",
                me = d.join(name).display(),
                others = others.join(" && "),
            );
            perfgate_std()
                .args(["record", "-o"])
                .arg(d.join(format!("{name}.data")))
                .args([
                    "--no-calibrate",
                    "--timeout",
                    TIMEOUT,
                    "--",
                    "sh",
                    "-c",
                    &script,
                ])
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for (child, (name, _)) in children.into_iter().zip(&runs) {
        let o = child.wait_with_output().unwrap();
        assert!(o.status.success(), "{name}: {}", text(&o.stderr));
    }
    let profile = |name: &str| {
        Recording::open(&d.join(format!("{name}.data")))
            .unwrap()
            .profile
    };
    let many = profile("many");
    assert_eq!(calls(&many, "thread_main"), 50);
    assert_eq!(calls(&many, "a"), 50_000);
    assert_eq!(calls(&many, "c"), 50_000);
    let few = profile("few");
    assert_eq!(calls(&few, "thread_main"), 2);
    assert_eq!(calls(&few, "a"), 2000);
    assert_eq!(calls(&few, "c"), 2000);
    let deep = profile("deep");
    assert_eq!(calls(&deep, "recurse"), 500);
    for (name, p) in [("many", &many), ("few", &few), ("deep", &deep)] {
        assert_eq!(calls(p, "main"), 1, "{name}");
        assert_eq!(p.accounting.lost.lost_calls(), 0, "{name}");
    }
}
