//! Spawning the benchmark held before `exec` until the probes are attached, dropping privileges under sudo,
//! waiting with a timeout, and reporting how it ended.
//!
//! The hold works without blocking inside `pre_exec` (which deadlocks `spawn()`, see DESIGN.md): the child
//! first execs perfgate itself in a hidden mode (`__held-exec`), which waits on a pipe and then execs the
//! benchmark. The PID stays the same, so probes attached with it as filter see the benchmark's first call.
use std::ffi::{OsStr, OsString};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::profile::ExitInfo;

/// The hidden first argument of the hold mode.
pub const HELD_EXEC_ARG: &str = "__held-exec";
/// The descriptor the held child reads its go signal from.
const HOLD_FD: i32 = 3;
/// The byte that lets the held child exec.
const GO: u8 = b'g';

/// Whom the benchmark runs as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunAs {
    /// As perfgate itself.
    Same,
    /// As this user and group (from `SUDO_UID`/`SUDO_GID`).
    User {
        /// uid
        uid: u32,
        /// gid
        gid: u32,
    },
}

impl RunAs {
    /// Under sudo, the invoking user unless `run_as_root`; otherwise perfgate's own user.
    pub fn from_env(run_as_root: bool) -> RunAs {
        if run_as_root || !crate::sys::is_root() {
            return RunAs::Same;
        }
        let parse = |k: &str| std::env::var(k).ok().and_then(|v| v.parse::<u32>().ok());
        match (parse("SUDO_UID"), parse("SUDO_GID")) {
            (Some(uid), Some(gid)) if uid != 0 => RunAs::User { uid, gid },
            _ => RunAs::Same,
        }
    }
}

/// Finds the executable a command names, the way `execvp` would.
pub fn resolve_program(program: &OsStr) -> Result<PathBuf> {
    let shown = Path::new(program).display().to_string();
    let path = if program.as_bytes().contains(&b'/') {
        PathBuf::from(program)
    } else {
        let search =
            std::env::var_os("PATH").unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into());
        std::env::split_paths(&search)
            .map(|d| d.join(program))
            .find(|p| is_executable(p))
            .with_context(|| format!("{shown}: command not found in PATH"))?
    };
    let meta = std::fs::metadata(&path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => anyhow::anyhow!("{shown}: no such file"),
        _ => anyhow::anyhow!("{shown}: {e}"),
    })?;
    if meta.is_dir() {
        bail!("{shown}: is a directory, not an executable");
    }
    if !is_executable(&path) {
        bail!("{shown}: not executable (chmod +x?)");
    }
    Ok(path)
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Where the benchmark's standard output goes.
#[derive(Debug, Clone, Default)]
pub enum Stdout {
    /// Passed through untouched.
    #[default]
    Inherit,
    /// To perfgate's stderr, so perfgate's stdout carries only its report (`check`, `baseline`).
    Stderr,
    /// Into a file (perfgate's own benchmarks).
    File(PathBuf),
}

/// The binary that implements the hold mode: perfgate itself, whose `main` dispatches [`HELD_EXEC_ARG`]
/// to [`held_exec_main`]. A program using this library from another binary (its tests, say) points
/// `PERFGATE_HOLDER` at a perfgate binary, or dispatches the argument in its own `main`.
fn holder_binary() -> PathBuf {
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
}

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_sigint(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

/// True once Ctrl-C reached perfgate while a benchmark ran.
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

/// Ctrl-C goes to the benchmark (same process group); perfgate notes it and keeps what was measured.
fn catch_sigint() {
    crate::sys::set_signal_handler(libc::SIGINT, on_sigint);
}

impl HeldChild {
    /// Spawns `program` (already resolved) with `argv`, held before exec.
    pub fn spawn(
        program: &Path,
        argv: &[OsString],
        run_as: RunAs,
        stdout: &Stdout,
    ) -> Result<HeldChild> {
        let (rd, wr) = crate::sys::pipe_cloexec().context("creating the hold pipe")?;
        let mut cmd = Command::new(holder_binary());
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
        crate::sys::inherit_fd_as(&mut cmd, rd.as_raw_fd(), HOLD_FD);
        catch_sigint();
        let child = cmd.spawn().context("cannot start the benchmark")?;
        drop(rd);
        Ok(HeldChild {
            child,
            go: Some(wr),
            released_at: None,
        })
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

    /// Polls for exit; kills the benchmark when `deadline` has passed.
    pub fn try_wait(&mut self, deadline: Option<Instant>) -> Result<Option<Finished>> {
        let (status, timed_out) =
            match self.child.try_wait().context("waiting for the benchmark")? {
                Some(status) => (status, false),
                None if deadline.is_some_and(|d| Instant::now() >= d) => {
                    let _ = self.child.kill();
                    (
                        self.child.wait().context("waiting for the benchmark")?,
                        true,
                    )
                }
                None => return Ok(None),
            };
        Ok(Some(Finished {
            exit: ExitInfo {
                code: status.code(),
                signal: status.signal(),
            },
            wall: self.released_at.map_or(Duration::ZERO, |t| t.elapsed()),
            timed_out,
        }))
    }
}

impl Drop for HeldChild {
    /// Never leaves a held or running benchmark behind: closing the pipe unheld makes the holder exit.
    fn drop(&mut self) {
        self.go.take();
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
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
}

/// The hidden hold mode: `perfgate __held-exec <uid:gid|-> PROGRAM ARGV0 ARGS…`. Waits for the go byte on
/// fd 3, drops privileges if asked, and execs. Returns only on failure (exit code for the process).
pub fn held_exec_main(args: &[OsString]) -> i32 {
    let fail = |msg: String| {
        eprintln!("perfgate: {msg}");
        127
    };
    let [who, program, argv @ ..] = args else {
        return fail("internal: bad hold arguments".into());
    };
    if crate::sys::read_byte_and_close(HOLD_FD) != Some(GO) {
        // perfgate gave up before releasing us (attach failed, or it was killed).
        return 126;
    }
    if who != "-" {
        let Some((uid, gid)) = who
            .to_str()
            .and_then(|s| s.split_once(':'))
            .and_then(|(u, g)| Some((u.parse::<u32>().ok()?, g.parse::<u32>().ok()?)))
        else {
            return fail("internal: bad user".into());
        };
        let user = crate::sys::passwd_entry(uid);
        if let Err(e) =
            crate::sys::drop_privileges(uid, gid, user.as_ref().map(|u| u.name.as_c_str()))
        {
            return fail(format!("cannot drop privileges to uid {uid}: {e}"));
        }
    }
    let mut cmd = Command::new(program);
    if who != "-" {
        // The environment sudo left is root's: give the benchmark its own user's home and name.
        if let Some(u) = crate::sys::passwd_entry(crate::sys::uid()) {
            let name = u.name.to_string_lossy().into_owned();
            cmd.env("HOME", &u.home)
                .env("USER", &name)
                .env("LOGNAME", &name);
        }
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
