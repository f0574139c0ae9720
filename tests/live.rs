//! `record --pid`: attaching to a process that runs already (the looper fixture idles until signalled),
//! counting exactly what it does while attached (a dlopen included), never a loss for the call it was in
//! when perfgate came, and leaving it running normally: untraced, unstopped, answering signals.
mod common;
use common::*;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn kill(pid: u32, signal: i32) {
    // SAFETY: kill has no memory arguments; `pid` is a child of this test.
    assert_eq!(unsafe { libc::kill(pid as i32, signal) }, 0);
}

struct Looper {
    child: Child,
    out: BufReader<std::process::ChildStdout>,
}

impl Looper {
    fn start() -> Looper {
        fixture("libplugin.so");
        let mut child = Command::new(fixture("looper"))
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        assert!(line.starts_with("looper ready"), "{line}");
        Looper { child, out }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn signal(&self, s: i32) {
        kill(self.pid(), s);
    }

    fn status_line(&self, key: &str) -> String {
        std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .unwrap()
            .lines()
            .find(|l| l.starts_with(key))
            .unwrap_or_default()
            .to_string()
    }

    /// SIGTERM, then its last line and exit status.
    fn end(mut self) -> (String, std::process::ExitStatus) {
        self.signal(libc::SIGTERM);
        let mut line = String::new();
        self.out.read_line(&mut line).unwrap();
        (line, self.child.wait().unwrap())
    }
}

impl Drop for Looper {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// The child is handed to the caller, who waits for it (`finish`); clippy does not follow it there.
#[allow(clippy::zombie_processes)]
/// Starts `perfgate record --pid`, waits for its "attached" line on stderr; returns the running
/// perfgate and its remaining stderr.
fn attach(
    looper: &Looper,
    data: &std::path::Path,
    args: &[&str],
) -> (Child, BufReader<std::process::ChildStderr>) {
    let mut pg = Command::new(assert_cmd::cargo::cargo_bin("perfgate"))
        .current_dir(root())
        .env_remove("SUDO_UID")
        .env_remove("SUDO_GID")
        .args(["record", "--no-calibrate", "--lib", "libplugin*", "-o"])
        .arg(data)
        .args(args)
        .arg("--pid")
        .arg(looper.pid().to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = BufReader::new(pg.stderr.take().unwrap());
    let t = Instant::now();
    loop {
        let mut line = String::new();
        let ended = err.read_line(&mut line).unwrap_or(0) == 0;
        if line.contains("attached to process") {
            return (pg, err);
        }
        if ended || t.elapsed() > Duration::from_secs(30) {
            let _ = pg.kill();
            let _ = pg.wait();
            panic!("perfgate did not attach: {line}");
        }
    }
}

/// Waits for perfgate; its exit status and the rest of its stderr.
fn finish(
    pg: Child,
    mut err: BufReader<std::process::ChildStderr>,
) -> (std::process::ExitStatus, String) {
    use std::io::Read;
    let out = pg.wait_with_output().unwrap();
    let mut rest = String::new();
    err.read_to_string(&mut rest).unwrap();
    (out.status, rest)
}

#[test]
fn a_running_process_is_traced_while_attached_and_left_running_normally() {
    for probes in ["session", "multi", "classic"] {
        let looper = Looper::start();
        let dir = scratch();
        let data = dir.path().join("live.data");
        let (pg, err) = attach(&looper, &data, &["--probes", probes, "--duration", "60s"]);
        assert!(
            looper.status_line("TracerPid:") != "TracerPid:\t0",
            "{probes}: traced while recording"
        );
        // Two bursts while attached, then Ctrl-C ends the recording.
        for _ in 0..2 {
            looper.signal(libc::SIGUSR1);
            std::thread::sleep(Duration::from_millis(300));
        }
        kill(pg.id(), libc::SIGINT);
        let (status, stderr) = finish(pg, err);
        assert!(status.success(), "{probes}: {stderr}");
        let p = perfgate::profile::file::Recording::open(&data)
            .unwrap()
            .profile;
        assert_eq!(calls(&p, "burst"), 2, "{probes}");
        assert_eq!(calls(&p, "work"), 14, "{probes}");
        assert_eq!(calls(&p, "on_signal"), 2, "{probes}");
        // The plugin is loaded in each burst: attached at the first dlopen, before its constructor.
        assert_eq!(calls(&p, "plugin_work"), 6, "{probes}");
        assert_eq!(calls(&p, "plugin_setup"), 2, "{probes}");
        assert_eq!(calls(&p, "plugin_load"), 2, "{probes}");
        // idle() was running at the attach (its return is never reported: it began before the probes)
        // and again at the detach (counted as running); the one idle() call in between completed.
        assert_eq!(calls(&p, "idle"), 1, "{probes}");
        assert_eq!(calls(&p, "main"), 0, "{probes}");
        let l = &p.accounting.lost;
        assert_eq!(l.lost_calls(), 0, "{probes}: {l:?}");
        assert_eq!(l.open_at_detach, 1, "{probes}: {l:?}");
        // ... and the calls it was in then are found on its stack, by frame pointers.
        assert_eq!(l.in_progress_at_attach, 2, "{probes}: {l:?}");
        assert_eq!(
            p.accounting.running_at_attach,
            vec!["idle (looper)".to_string(), "main (looper)".to_string()],
            "{probes}"
        );
        assert_eq!(p.accounting.libraries_attached_late.len(), 1, "{probes}");
        assert!(
            p.accounting.libraries_loaded_later.is_empty(),
            "{probes}: libraries mapped before the attach are not later: {:?}",
            p.accounting.libraries_loaded_later
        );
        assert!(stderr.contains("it runs on"), "{stderr}");
        // Left as it was: not traced, not stopped, and it still works and exits normally.
        assert_eq!(looper.status_line("TracerPid:"), "TracerPid:\t0");
        assert!(
            looper.status_line("State:").contains('S'),
            "{}",
            looper.status_line("State:")
        );
        looper.signal(libc::SIGUSR1);
        std::thread::sleep(Duration::from_millis(100));
        let (last, status) = looper.end();
        assert_eq!(last, "looper bursts=3 work=153\n", "{probes}");
        assert_eq!(status.code(), Some(0));
    }
}

#[test]
fn the_recording_ends_with_the_duration_or_the_process() {
    let looper = Looper::start();
    let dir = scratch();
    let data = dir.path().join("d.data");
    let t = Instant::now();
    let (pg, err) = attach(&looper, &data, &["--duration", "500ms"]);
    let (status, stderr) = finish(pg, err);
    assert!(status.success(), "{stderr}");
    assert!(t.elapsed() >= Duration::from_millis(500));
    assert!(stderr.contains("after 500ms; it runs on"), "{stderr}");
    // The process exiting ends it too, with its exit status.
    let (pg, err) = attach(&looper, &data, &[]);
    looper.signal(libc::SIGUSR1);
    std::thread::sleep(Duration::from_millis(200));
    let (last, status) = looper.end();
    assert_eq!(last, "looper bursts=1 work=51\n");
    assert_eq!(status.code(), Some(0));
    let (status, stderr) = finish(pg, err);
    assert!(status.success(), "{stderr}");
    assert!(stderr.contains("ended (exit code 0)"), "{stderr}");
    let p = perfgate::profile::file::Recording::open(&data)
        .unwrap()
        .profile;
    assert_eq!(calls(&p, "work"), 7);
    assert_eq!(p.exit.code, Some(0));
}

#[test]
fn bad_pids_are_one_line_errors() {
    let dir = scratch();
    let out = record_to(&dir.path().join("x.data"))
        .args(["--pid", "999999999"])
        .output()
        .unwrap();
    assert_clean_error(&out, "--pid 999999999: no such process");
    let out = record_to(&dir.path().join("x.data"))
        .args(["--pid", "1", "--", "true"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "--pid and a command");
    let out = record_to(&dir.path().join("x.data"))
        .args(["--duration", "5s", "--", "true"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "--duration without --pid");
}
