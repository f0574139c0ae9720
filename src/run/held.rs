//! Spawning the benchmark held before `exec` until the probes are attached, and ending it.
//!
//! The hold works without blocking inside `pre_exec` (which deadlocks `spawn()`, see DESIGN.md): the child
//! first execs perfgate itself in a hidden mode (`__held-exec`), which drops privileges if asked, says it
//! is ready on one pipe, waits for the go byte on another and then execs the benchmark. The PID stays the
//! same, so probes attached with it as filter see the benchmark's first call, and nothing the holder does
//! (the user database, NSS libraries `initgroups` loads) happens after the probes are attached.
//!
//! Invariants: a benchmark never outlives a [`HeldChild`] (drop kills it and its descendants), a stop
//! signal or the timeout ends the whole process tree, and the watcher (`watch.rs`) is running before the
//! first benchmark starts.
use std::ffi::OsString;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use super::signals::{self, Stop};
use super::{tree, watch, RunAs, Stdout};
use crate::profile::ExitInfo;

/// Files mapped executable by process `pid` now (from `/proc/PID/maps`), sorted, each once; empty when
/// the maps cannot be read (the process is gone).
pub fn mapped_executables(pid: u32) -> Vec<PathBuf> {
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).unwrap_or_default();
    let mut files: Vec<PathBuf> = maps
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let perms = f.nth(1)?;
            let path = f.nth(3)?;
            (perms.contains('x') && path.starts_with('/')).then(|| PathBuf::from(path))
        })
        .collect();
    files.sort();
    files.dedup();
    files
}

/// The hidden first argument of the hold mode.
pub const HELD_EXEC_ARG: &str = "__held-exec";
/// The descriptor the held child reads its go byte from.
const GO_FD: i32 = 3;
/// The descriptor the held child writes its ready byte to.
const READY_FD: i32 = 4;
/// The byte that lets the held child exec.
const GO: u8 = b'g';
/// The byte the held child sends once it runs as the benchmark's user.
const READY: u8 = b'r';
/// How long the benchmark may take to end after a stop signal before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(1);
/// How long the holder may take to become ready.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// The binary that implements the hold mode: perfgate itself, whose `main` dispatches [`HELD_EXEC_ARG`]
/// to [`held_exec_main`]. A program using this library from another binary (its tests, say) points
/// `PERFGATE_HOLDER` at a perfgate binary, or dispatches the argument in its own `main`.
pub(super) fn holder_binary() -> PathBuf {
    let self_exe = PathBuf::from("/proc/self/exe");
    // perfgate itself never takes the holder from its environment (nothing to redirect under sudo -E).
    let is_perfgate = std::env::current_exe()
        .ok()
        .and_then(|p| p.file_name().map(|n| n == "perfgate"))
        .unwrap_or(false);
    match std::env::var_os("PERFGATE_HOLDER") {
        Some(p) if !is_perfgate => PathBuf::from(p),
        _ => self_exe,
    }
}

/// A benchmark process stopped just before its `exec`.
pub struct HeldChild {
    child: Child,
    go: Option<OwnedFd>,
    released_at: Option<Instant>,
    /// When a stop signal was first seen, and the signal.
    stopping: Option<(Instant, Stop)>,
    /// perfgate's children before this one started (the watcher, other runs' leftovers): not this run's.
    children_before: Vec<u32>,
    reaped: bool,
    /// The processes the benchmark leaves behind are followed (`session/follow.rs`): its exit does not
    /// end them; [`HeldChild::end_orphans`] does, once the session is done with them.
    keep_orphans: bool,
}

/// How a run ended.
#[derive(Debug, Clone, Copy)]
pub struct Finished {
    /// Exit status.
    pub exit: ExitInfo,
    /// From release to exit.
    pub wall: Duration,
    /// Killed by perfgate's timeout.
    pub timed_out: bool,
    /// Ended because perfgate was asked to stop.
    pub stopped: Option<Stop>,
}

impl HeldChild {
    /// Spawns `program` (already resolved) with `argv`, held before exec; returns once the holder runs
    /// as the benchmark's user and waits for [`HeldChild::release`].
    pub fn spawn(
        program: &Path,
        argv: &[OsString],
        run_as: RunAs,
        stdout: &Stdout,
    ) -> Result<HeldChild> {
        let holder = holder_binary();
        watch::ensure(&holder)?;
        signals::install();
        let (go_rd, go_wr) = crate::sys::pipe_cloexec().context("creating the hold pipe")?;
        let (ready_rd, ready_wr) = crate::sys::pipe_cloexec().context("creating the hold pipe")?;
        let mut cmd = Command::new(&holder);
        cmd.arg0("perfgate-held").arg(HELD_EXEC_ARG);
        match run_as {
            RunAs::Same => cmd.arg("-"),
            RunAs::User { uid, gid } => cmd.arg(format!("{uid}:{gid}")),
        };
        cmd.arg(program).args(argv);
        match stdout {
            Stdout::Inherit => {}
            Stdout::Stderr => {
                let fd = std::io::stderr()
                    .as_fd()
                    .try_clone_to_owned()
                    .context("duplicating stderr")?;
                cmd.stdout(fd);
            }
            Stdout::File(path) => {
                let f = std::fs::File::create(path)
                    .with_context(|| format!("cannot write {}", path.display()))?;
                cmd.stdout(f);
            }
        }
        crate::sys::inherit_fds_as(
            &mut cmd,
            &[(go_rd.as_raw_fd(), GO_FD), (ready_wr.as_raw_fd(), READY_FD)],
        );
        let children_before = tree::children(crate::sys::pid());
        let child = cmd.spawn().context("cannot start the benchmark")?;
        drop(go_rd);
        drop(ready_wr);
        let mut held = HeldChild {
            child,
            go: Some(go_wr),
            released_at: None,
            stopping: None,
            children_before,
            reaped: false,
            keep_orphans: false,
        };
        held.wait_ready(ready_rd)?;
        Ok(held)
    }

    /// Waits for the holder's ready byte; its end of file means the holder failed (it said why on
    /// stderr).
    fn wait_ready(&mut self, ready: OwnedFd) -> Result<()> {
        let deadline = Instant::now() + READY_TIMEOUT;
        while !crate::sys::wait_readable(ready.as_fd(), Duration::from_millis(100)) {
            if Instant::now() >= deadline {
                bail!("the benchmark's holder did not start within {READY_TIMEOUT:?}");
            }
        }
        if crate::sys::read_byte(ready.as_fd()) == Some(READY) {
            return Ok(());
        }
        let status = self.child.wait().context("waiting for the benchmark")?;
        self.reaped = true;
        bail!(
            "the benchmark could not be started ({})",
            ExitInfo {
                code: status.code(),
                signal: status.signal(),
            }
        )
    }

    /// Process id (the benchmark keeps it across exec).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Lets the benchmark exec.
    pub fn release(&mut self) -> Result<()> {
        if let Some(fd) = self.go.take() {
            crate::sys::write_byte(fd.as_fd(), GO).context("releasing the benchmark")?;
            self.released_at = Some(Instant::now());
        }
        Ok(())
    }

    /// Executable files mapped by the benchmark now, from /proc/PID/maps; empty until it has exec'd
    /// `program` (before that the process is perfgate's own holder).
    pub fn mapped_files(&self, program: &Path) -> Vec<PathBuf> {
        let pid = self.pid();
        let exe = std::fs::read_link(format!("/proc/{pid}/exe")).ok();
        let program = std::fs::canonicalize(program).ok();
        if exe.is_none() || exe != program {
            return Vec::new();
        }
        mapped_executables(pid)
    }

    /// Kills the benchmark and every process below it, and the orphans it left with perfgate.
    pub fn kill_tree(&mut self) {
        let pid = self.pid();
        if !self.reaped {
            tree::kill_descendants(pid, &[], 20);
            crate::sys::kill(pid, libc::SIGKILL);
        }
        self.end_orphans();
    }

    /// Lets the processes the benchmark leaves behind live on after it exits (they are followed and
    /// waited for); [`HeldChild::kill_tree`], the drop and [`HeldChild::end_orphans`] still end them.
    pub fn keep_orphans(&mut self) {
        self.keep_orphans = true;
    }

    /// Processes this run left behind (re-parented to perfgate, the subreaper): killed and reaped.
    pub fn end_orphans(&mut self) {
        let me = crate::sys::pid();
        let mut spare = self.children_before.clone();
        spare.extend(watch::watcher_pid());
        spare.push(self.pid());
        for _ in 0..20 {
            let orphans: Vec<u32> = tree::children(me)
                .into_iter()
                .filter(|p| !spare.contains(p))
                .collect();
            if orphans.is_empty() {
                return;
            }
            for &o in &orphans {
                tree::kill_descendants(o, &[], 5);
                crate::sys::kill(o, libc::SIGKILL);
            }
            std::thread::sleep(Duration::from_millis(5));
            for &o in &orphans {
                crate::sys::reap(o);
            }
        }
    }

    /// Polls for exit; ends the benchmark's tree when `deadline` has passed or a stop signal came (the
    /// signal is forwarded first unless the terminal already sent it to the benchmark).
    pub fn try_wait(&mut self, deadline: Option<Instant>) -> Result<Option<Finished>> {
        if let Some(status) = self.child.try_wait().context("waiting for the benchmark")? {
            self.reaped = true;
            // What the benchmark started and left running ends with it, unless it is followed.
            if !self.keep_orphans {
                self.end_orphans();
            }
            return Ok(Some(self.finished(status, false)));
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            self.kill_tree();
            let status = self.child.wait().context("waiting for the benchmark")?;
            self.reaped = true;
            return Ok(Some(self.finished(status, true)));
        }
        if let Some(stop) = signals::stop_requested() {
            match self.stopping {
                None => {
                    if !stop.from_kernel {
                        crate::sys::kill(self.pid(), stop.signal);
                    }
                    self.stopping = Some((Instant::now(), stop));
                }
                Some((since, _)) if since.elapsed() >= STOP_GRACE => {
                    self.kill_tree();
                    let status = self.child.wait().context("waiting for the benchmark")?;
                    self.reaped = true;
                    return Ok(Some(self.finished(status, false)));
                }
                Some(_) => {}
            }
        }
        Ok(None)
    }

    fn finished(&self, status: std::process::ExitStatus, timed_out: bool) -> Finished {
        Finished {
            exit: ExitInfo {
                code: status.code(),
                signal: status.signal(),
            },
            wall: self.released_at.map_or(Duration::ZERO, |t| t.elapsed()),
            timed_out,
            stopped: self
                .stopping
                .map(|(_, s)| s)
                .or_else(signals::stop_requested),
        }
    }
}

impl Drop for HeldChild {
    /// Never leaves a held or running benchmark behind: closing the pipe unheld makes the holder exit,
    /// and whatever still runs below it is killed.
    fn drop(&mut self) {
        self.go.take();
        if !self.reaped {
            if let Ok(None) = self.child.try_wait() {
                self.kill_tree();
            }
            let _ = self.child.wait();
        }
        self.end_orphans();
    }
}

/// The hidden hold mode: `perfgate __held-exec <uid:gid|-> PROGRAM ARGV0 ARGS…`. Drops privileges if
/// asked, says it is ready on fd 4, waits for the go byte on fd 3, and execs. Returns only on failure
/// (the exit code for the process).
pub fn held_exec_main(args: &[OsString]) -> i32 {
    let fail = |msg: String| {
        eprintln!("perfgate: {msg}");
        127
    };
    let [who, program, argv @ ..] = args else {
        return fail("internal: bad hold arguments".into());
    };
    let user = if who == "-" {
        None
    } else {
        let Some((uid, gid)) = who
            .to_str()
            .and_then(|s| s.split_once(':'))
            .and_then(|(u, g)| Some((u.parse::<u32>().ok()?, g.parse::<u32>().ok()?)))
        else {
            return fail("internal: bad user".into());
        };
        let entry = crate::sys::passwd_entry(uid);
        if let Err(e) =
            crate::sys::drop_privileges(uid, gid, entry.as_ref().map(|u| u.name.as_c_str()))
        {
            return fail(format!("cannot drop privileges to uid {uid}: {e}"));
        }
        entry
    };
    let Some(ready) = crate::sys::take_inherited_fd(READY_FD) else {
        return fail("internal: no ready pipe".into());
    };
    if crate::sys::write_byte(ready.as_fd(), READY).is_err() {
        return 126;
    }
    drop(ready);
    let Some(go) = crate::sys::take_inherited_fd(GO_FD) else {
        return fail("internal: no hold pipe".into());
    };
    if crate::sys::read_byte(go.as_fd()) != Some(GO) {
        // perfgate gave up before releasing us (attach failed, or it was killed).
        return 126;
    }
    drop(go);
    let mut cmd = Command::new(program);
    if let Some(u) = user {
        // The environment sudo left is root's: give the benchmark its own user's home and name.
        let name = u.name.to_string_lossy().into_owned();
        cmd.env("HOME", &u.home)
            .env("USER", &name)
            .env("LOGNAME", &name);
    }
    if let Some((argv0, rest)) = argv.split_first() {
        cmd.arg0(argv0).args(rest);
    }
    let err = cmd.exec();
    fail(format!(
        "cannot execute {}: {err}",
        Path::new(program).display()
    ))
}
