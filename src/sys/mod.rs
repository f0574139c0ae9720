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

pub mod probe_targets;

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

/// Reads one byte from the inherited descriptor `fd` and closes it; `None` at end of file or on error.
/// Used by the held child, which inherits the descriptor across exec and owns it.
pub fn read_byte_and_close(fd: RawFd) -> Option<u8> {
    let mut buf = [0u8; 1];
    // SAFETY: reading one byte into a valid buffer; a bad descriptor only makes read fail.
    let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), 1) };
    // SAFETY: the descriptor was inherited by this process and nothing else in it uses it.
    unsafe { libc::close(fd) };
    (n == 1).then_some(buf[0])
}

/// Makes the child of `cmd` find `fd` (which may be close-on-exec in the parent) at descriptor `target`,
/// inherited across its exec.
pub fn inherit_fd_as(cmd: &mut Command, fd: RawFd, target: RawFd) {
    use std::os::unix::process::CommandExt;
    // SAFETY: between fork and exec only async-signal-safe calls happen (fcntl, dup2), nothing allocates.
    unsafe {
        cmd.pre_exec(move || {
            if fd == target {
                if libc::fcntl(target, libc::F_SETFD, 0) != 0 {
                    return Err(io::Error::last_os_error());
                }
            } else if libc::dup2(fd, target) < 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// Installs `handler` for `signal`. A handler (unlike `SIG_IGN`) is reset to the default by exec, so a
/// benchmark started afterwards still reacts to the signal.
pub fn set_signal_handler(signal: i32, handler: extern "C" fn(libc::c_int)) {
    // SAFETY: the handlers perfgate installs only store to atomics (async-signal-safe); `signal` with a
    // valid function pointer has no other precondition.
    unsafe {
        libc::signal(signal, handler as *const () as libc::sighandler_t);
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
