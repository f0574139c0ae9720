//! Spawning the benchmark held before `exec` until the probes are attached, dropping privileges under sudo,
//! waiting with a timeout, and reporting how it ended.
//!
//! The hold works without blocking inside `pre_exec` (which deadlocks `spawn()`, see DESIGN.md): the child
//! first execs perfgate itself in a hidden mode (`__held-exec`), which waits on a pipe and then execs the
//! benchmark. The PID stays the same, so probes attached with it as filter see the benchmark's first call.
use std::ffi::{OsStr, OsString};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
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
        // SAFETY: geteuid has no preconditions.
        let euid = unsafe { libc::geteuid() };
        if run_as_root || euid != 0 {
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
    // SAFETY: the handler only stores to an atomic, which is async-signal-safe; a handler (unlike SIG_IGN)
    // is reset to the default by exec, so the benchmark still reacts to Ctrl-C.
    unsafe {
        libc::signal(libc::SIGINT, on_sigint as *const () as libc::sighandler_t);
    }
}

impl HeldChild {
    /// Spawns `program` (already resolved) with `argv`, held before exec.
    pub fn spawn(
        program: &Path,
        argv: &[OsString],
        run_as: RunAs,
        stdout: &Stdout,
    ) -> Result<HeldChild> {
        let mut fds = [0i32; 2];
        // SAFETY: fds is a valid array of two ints.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
            return Err(std::io::Error::last_os_error()).context("creating the hold pipe");
        }
        // SAFETY: pipe2 just returned these two fresh descriptors; each is owned once.
        let (rd, wr) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
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
        let rd_raw = rd.as_raw_fd();
        // SAFETY: only async-signal-safe calls (dup2, fcntl) and no allocation happen in the child.
        unsafe {
            cmd.pre_exec(move || {
                if rd_raw == HOLD_FD {
                    if libc::fcntl(HOLD_FD, libc::F_SETFD, 0) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                } else if libc::dup2(rd_raw, HOLD_FD) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
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
            let byte = [b'g'];
            // SAFETY: writing one byte from a valid buffer to a descriptor we own.
            let n = unsafe { libc::write(fd.as_raw_fd(), byte.as_ptr().cast(), 1) };
            if n != 1 {
                return Err(std::io::Error::last_os_error()).context("releasing the benchmark");
            }
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
    let mut byte = [0u8; 1];
    // SAFETY: reading one byte into a valid buffer from the inherited pipe.
    let n = unsafe { libc::read(HOLD_FD, byte.as_mut_ptr().cast(), 1) };
    // SAFETY: closing our own inherited descriptor.
    unsafe { libc::close(HOLD_FD) };
    if n != 1 || byte[0] != b'g' {
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
        let user = passwd_entry(uid);
        // The user's supplementary groups, as a login would give them; none if the user is unknown.
        let groups_ok = match &user {
            // SAFETY: `name` is a valid NUL-terminated string; initgroups only reads it.
            Some(u) => unsafe { libc::initgroups(u.name.as_ptr(), gid) == 0 },
            // SAFETY: clearing the group list with a null pointer and a zero count is valid.
            None => unsafe { libc::setgroups(0, std::ptr::null()) == 0 },
        };
        // SAFETY: plain syscalls; order matters: groups and gid while still root, uid last.
        let ok = groups_ok && unsafe { libc::setgid(gid) == 0 && libc::setuid(uid) == 0 };
        // SAFETY: getuid has no preconditions.
        if !ok || unsafe { libc::getuid() } != uid {
            return fail(format!(
                "cannot drop privileges to uid {uid}: {}",
                std::io::Error::last_os_error()
            ));
        }
    }
    let mut cmd = Command::new(program);
    if who != "-" {
        // The environment sudo left is root's: give the benchmark its own user's home and name.
        // SAFETY: getuid has no preconditions.
        if let Some(u) = passwd_entry(unsafe { libc::getuid() }) {
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

/// A fresh directory only perfgate's user can enter (mode 0700), removed on drop: files in it cannot be
/// redirected by another user's symlink, unlike fixed names in /tmp.
pub struct PrivateDir(PathBuf);

impl PrivateDir {
    /// Creates one under the temporary directory.
    pub fn new() -> Result<PrivateDir> {
        use std::os::unix::fs::DirBuilderExt;
        let base = std::env::temp_dir();
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        for attempt in 0..100u32 {
            let p = base.join(format!(
                "perfgate.{}.{stamp:x}.{attempt}",
                std::process::id()
            ));
            match std::fs::DirBuilder::new().mode(0o700).create(&p) {
                Ok(()) => return Ok(PrivateDir(p)),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => {
                    return Err(e).with_context(|| {
                        format!("cannot create a directory in {}", base.display())
                    })
                }
            }
        }
        bail!("cannot create a private directory in {}", base.display())
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for PrivateDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A user's name and home directory from the password database.
struct PasswdEntry {
    name: std::ffi::CString,
    home: PathBuf,
}

fn passwd_entry(uid: u32) -> Option<PasswdEntry> {
    use std::os::unix::ffi::OsStringExt;
    let mut buf = vec![0u8; 16 * 1024];
    // SAFETY: an all-zero passwd is a valid value to be overwritten by getpwuid_r.
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut result: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: every pointer is valid for the call and `buf` outlives the reads of `pwd` below.
    let rc = unsafe {
        libc::getpwuid_r(
            uid,
            &mut pwd,
            buf.as_mut_ptr().cast(),
            buf.len(),
            &mut result,
        )
    };
    if rc != 0 || result.is_null() || pwd.pw_name.is_null() || pwd.pw_dir.is_null() {
        return None;
    }
    // SAFETY: getpwuid_r succeeded, so both fields point to NUL-terminated strings inside `buf`.
    let (name, home) = unsafe {
        (
            std::ffi::CStr::from_ptr(pwd.pw_name),
            std::ffi::CStr::from_ptr(pwd.pw_dir),
        )
    };
    Some(PasswdEntry {
        name: name.to_owned(),
        home: PathBuf::from(OsString::from_vec(home.to_bytes().to_vec())),
    })
}
