//! The operating-system calls perfgate makes through `libc`, each behind a safe function.
//!
//! With `bpf/` (kernel memory read through the skeleton), this folder holds all of perfgate's `unsafe`
//! (see docs/ARCHITECTURE.md): every block has its `SAFETY:` comment here, and the rest of the code calls
//! safe functions whose errors are `std::io::Error`s.
use std::ffi::{CStr, CString, OsString};
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::path::PathBuf;
use std::process::Command;

#[cfg(test)]
pub mod counting_alloc;
pub mod probe_targets;
pub mod ptrace;
mod stops;
pub use stops::{monotonic_ns, wait_stopped, write_u64, ChildState};

/// The effective user id.
pub fn euid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// The real user id.
pub fn uid() -> u32 {
    // SAFETY: getuid has no preconditions and cannot fail.
    unsafe { libc::getuid() }
}

/// Whether perfgate runs as root.
pub fn is_root() -> bool {
    euid() == 0
}

/// A pipe whose both ends close on exec: (read end, write end).
pub fn pipe_cloexec() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0i32; 2];
    // SAFETY: fds is a valid array of two ints for pipe2 to fill.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: pipe2 just returned these two fresh descriptors; each is owned exactly once.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Writes one byte to `fd`.
pub fn write_byte(fd: BorrowedFd<'_>, byte: u8) -> io::Result<()> {
    let buf = [byte];
    // SAFETY: writing one byte from a valid buffer to a descriptor the caller keeps open.
    let n = unsafe { libc::write(fd.as_raw_fd(), buf.as_ptr().cast(), 1) };
    if n == 1 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Reads one byte from `fd` (blocking); `None` at end of file or on error.
pub fn read_byte(fd: BorrowedFd<'_>) -> Option<u8> {
    let mut buf = [0u8; 1];
    loop {
        // SAFETY: reading one byte into a valid buffer from a descriptor the caller keeps open.
        let n = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), 1) };
        if n == 1 {
            return Some(buf[0]);
        }
        if n < 0 && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
            continue;
        }
        return None;
    }
}

/// Makes the child of `cmd` find `fd` (which may be close-on-exec in the parent) at descriptor `target`,
/// inherited across its exec.
pub fn inherit_fd_as(cmd: &mut Command, fd: RawFd, target: RawFd) {
    inherit_fds_as(cmd, &[(fd, target)]);
}

/// [`inherit_fd_as`] for several descriptors (at most 8).
pub fn inherit_fds_as(cmd: &mut Command, pairs: &[(RawFd, RawFd)]) {
    use std::os::unix::process::CommandExt;
    let mut fixed = [(0, 0); 8];
    let n = pairs.len().min(fixed.len());
    fixed[..n].copy_from_slice(&pairs[..n]);
    // SAFETY: between fork and exec only async-signal-safe calls happen (fcntl, dup2) on a copied array;
    // nothing allocates in the child. Every source is first moved above the targets, so a target that
    // is another pair's source is never overwritten before it is copied.
    unsafe {
        cmd.pre_exec(move || {
            let mut high = [0; 8];
            for (i, &(fd, _)) in fixed[..n].iter().enumerate() {
                high[i] = libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 100);
                if high[i] < 0 {
                    return Err(io::Error::last_os_error());
                }
            }
            for (i, &(_, target)) in fixed[..n].iter().enumerate() {
                // dup2 clears close-on-exec on the new descriptor.
                if libc::dup2(high[i], target) < 0 {
                    return Err(io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
}

/// A user's name and home directory from the password database.
#[derive(Debug, Clone)]
pub struct PasswdEntry {
    /// Login name.
    pub name: CString,
    /// Home directory.
    pub home: PathBuf,
}

/// The password-database entry of `uid`, if there is one.
pub fn passwd_entry(uid: u32) -> Option<PasswdEntry> {
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
    let (name, home) = unsafe { (CStr::from_ptr(pwd.pw_name), CStr::from_ptr(pwd.pw_dir)) };
    Some(PasswdEntry {
        name: name.to_owned(),
        home: PathBuf::from(OsString::from_vec(home.to_bytes().to_vec())),
    })
}

/// Becomes `uid`:`gid` for good, with the user's supplementary groups (as a login would give them) or
/// none when `user` is unknown. Groups and gid are set while still root, the uid last; the result is
/// checked, so a partial drop is an error, never a process that kept root.
pub fn drop_privileges(uid: u32, gid: u32, user: Option<&CStr>) -> io::Result<()> {
    let groups_ok = match user {
        // SAFETY: `name` is a valid NUL-terminated string; initgroups only reads it.
        Some(name) => unsafe { libc::initgroups(name.as_ptr(), gid) == 0 },
        // SAFETY: clearing the group list with a null pointer and a zero count is valid.
        None => unsafe { libc::setgroups(0, std::ptr::null()) == 0 },
    };
    // SAFETY: plain syscalls without memory arguments.
    let ok = groups_ok && unsafe { libc::setgid(gid) == 0 && libc::setuid(uid) == 0 };
    if !ok {
        return Err(io::Error::last_os_error());
    }
    if self::uid() != uid || euid() != uid {
        return Err(io::Error::other("the user id did not change"));
    }
    Ok(())
}

/// This process's id.
pub fn pid() -> u32 {
    std::process::id()
}

/// The parent's process id.
pub fn parent_pid() -> u32 {
    // SAFETY: getppid has no preconditions and cannot fail.
    unsafe { libc::getppid() as u32 }
}

/// Sends `signal` to process `pid`; `false` if it does not exist (or is not ours to signal).
pub fn kill(pid: u32, signal: i32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    if pid <= 0 {
        // 0 and negative ids name process groups: never meant here.
        return false;
    }
    // SAFETY: kill has no memory arguments; a positive pid names one process.
    unsafe { libc::kill(pid, signal) == 0 }
}

/// Makes this process the reaper of its orphaned descendants: a daemon the benchmark starts is
/// re-parented to perfgate (not to init), so perfgate still sees it and can end it.
pub fn become_subreaper() -> io::Result<()> {
    // SAFETY: PR_SET_CHILD_SUBREAPER takes an integer argument; nothing is read from memory.
    if unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Reaps child `pid` if it has exited; `true` when it was reaped (or is not a child at all).
pub fn reap(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return true;
    };
    let mut status = 0;
    // SAFETY: status is a valid int for waitpid to fill; WNOHANG never blocks.
    let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
    r == pid || r < 0
}

/// This process's peak resident set size in bytes (`VmHWM` of /proc/self/status).
pub fn peak_rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Waits until `fd` is readable (data or end of file) or `timeout` passes; `true` if readable.
pub fn wait_readable(fd: BorrowedFd<'_>, timeout: std::time::Duration) -> bool {
    let mut p = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    let ms = libc::c_int::try_from(timeout.as_millis()).unwrap_or(libc::c_int::MAX);
    // SAFETY: one valid pollfd; poll only writes its revents.
    let n = unsafe { libc::poll(&mut p, 1, ms) };
    n > 0
}

/// A signal handler that learns who sent the signal: `from_kernel` is true for a signal the kernel
/// generated (Ctrl-C at the terminal reaches the whole foreground group that way), false for `kill`.
pub type SignalHandler = extern "C" fn(signal: libc::c_int, from_kernel: bool);

static HANDLER: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

extern "C" fn dispatch(signal: libc::c_int, info: *mut libc::siginfo_t, _: *mut libc::c_void) {
    let h = HANDLER.load(std::sync::atomic::Ordering::SeqCst);
    if h == 0 || info.is_null() {
        return;
    }
    // SAFETY: the kernel passes a valid siginfo for SA_SIGINFO handlers; si_code is always set.
    let code = unsafe { (*info).si_code };
    // SAFETY: HANDLER only ever holds a SignalHandler stored by `set_signal_handlers`.
    let f: SignalHandler = unsafe { std::mem::transmute::<usize, SignalHandler>(h) };
    f(signal, code == libc::SI_KERNEL);
}

/// Installs `handler` for each of `signals` (with `SA_SIGINFO`, so it learns the sender). The handler
/// must only do async-signal-safe work (store to atomics). Handlers are reset by exec.
pub fn set_signal_handlers(signals: &[i32], handler: SignalHandler) {
    HANDLER.store(handler as usize, std::sync::atomic::Ordering::SeqCst);
    for &s in signals {
        // SAFETY: a zeroed sigaction is valid; we set a handler of the SA_SIGINFO shape, an empty mask
        // and SA_RESTART so interrupted system calls resume.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = dispatch as *const () as libc::sighandler_t;
            sa.sa_flags = libc::SA_SIGINFO | libc::SA_RESTART;
            libc::sigemptyset(&mut sa.sa_mask);
            libc::sigaction(s, &sa, std::ptr::null_mut());
        }
    }
}

/// Changes the owner of an open file (perfgate's files under sudo belong to the invoking user).
pub fn fchown(fd: BorrowedFd<'_>, uid: u32, gid: u32) -> io::Result<()> {
    // SAFETY: fchown has no memory arguments; the descriptor is open for the call's duration.
    if unsafe { libc::fchown(fd.as_raw_fd(), uid, gid) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Ignores `signal` from now on (inherited across exec: only for perfgate's own helper processes).
pub fn ignore_signal(signal: i32) {
    // SAFETY: SIG_IGN needs no handler; `signal` with it has no memory arguments.
    unsafe {
        libc::signal(signal, libc::SIG_IGN);
    }
}

/// Takes ownership of descriptor `fd` inherited from the parent, if it is open.
pub fn take_inherited_fd(fd: RawFd) -> Option<OwnedFd> {
    // SAFETY: F_GETFD only queries the descriptor.
    if unsafe { libc::fcntl(fd, libc::F_GETFD) } < 0 {
        return None;
    }
    // SAFETY: the descriptor is open (checked above), was inherited by this process, and nothing else in
    // it owns it: it is owned exactly once from here on.
    Some(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Whether the CPU runs LAHF/SAHF in 64-bit mode (CPUID 0x80000001, ECX bit 0), which
/// `is_x86_feature_detected!` does not name (an x86-64-v2 requirement).
#[cfg(target_arch = "x86_64")]
#[allow(unused_unsafe)] // `__cpuid` is safe from Rust 1.87 on, unsafe before.
pub fn cpu_has_lahf_sahf() -> bool {
    use std::arch::x86_64::__cpuid;
    // SAFETY: CPUID exists on every x86-64 CPU; leaf 0x80000000 gives the highest extended leaf, checked
    // before leaf 0x80000001 is asked for.
    let max_extended = unsafe { __cpuid(0x8000_0000) }.eax;
    // SAFETY: as above, the leaf is supported.
    max_extended >= 0x8000_0001 && unsafe { __cpuid(0x8000_0001) }.ecx & 1 != 0
}
