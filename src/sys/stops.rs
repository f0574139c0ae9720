//! Waiting for a child's stops and writing into its memory: what the stop writer of `bpf/unwind.h` needs
//! (see `session/unwind.rs`).
//!
//! Invariant: nothing here reaps the child. Its exit is only looked at (`WNOWAIT`), so the one owner of
//! the child (`run::HeldChild`, through `std::process::Child`) still reaps it and sees its status.
use std::io;

/// What [`wait_stopped`] saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChildState {
    /// Every thread of the child is in a group stop (the stop has been consumed).
    Stopped,
    /// The child exited or was killed (not reaped), or it is no child of ours any more.
    Gone,
}

/// Blocks until child `pid` stops or ends. A stop is consumed (the next call waits for the next one); an
/// exit is not (the child stays a zombie for its owner to reap).
pub fn wait_stopped(pid: u32) -> ChildState {
    if pid == 0 || libc::pid_t::try_from(pid).is_err() {
        return ChildState::Gone;
    }
    let pid: libc::id_t = pid;
    loop {
        // SAFETY: siginfo_t is plain data that waitid fills; zeroed is a valid initial value.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: info is a valid siginfo_t to fill; P_PID with a positive id names one child.
        let r = unsafe {
            libc::waitid(
                libc::P_PID,
                pid,
                &mut info,
                libc::WSTOPPED | libc::WEXITED | libc::WNOWAIT,
            )
        };
        if r != 0 {
            if io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return ChildState::Gone;
        }
        if info.si_code != libc::CLD_STOPPED {
            return ChildState::Gone;
        }
        // Consume the stop (WNOWAIT left it reportable); WNOHANG: it is there, this does not block.
        // SAFETY: as above.
        let mut again: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: as above.
        unsafe { libc::waitid(libc::P_PID, pid, &mut again, libc::WSTOPPED | libc::WNOHANG) };
        return ChildState::Stopped;
    }
}

/// Stores `value` at `addr` in process `pid` (its memory as the kernel sees it: a store to a stack of a
/// stopped thread takes effect before the thread runs again).
pub fn write_u64(pid: u32, addr: u64, value: u64) -> io::Result<()> {
    let pid =
        libc::pid_t::try_from(pid).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    let bytes = value.to_ne_bytes();
    let local = libc::iovec {
        iov_base: bytes.as_ptr() as *mut libc::c_void,
        iov_len: bytes.len(),
    };
    let remote = libc::iovec {
        iov_base: addr as *mut libc::c_void,
        iov_len: bytes.len(),
    };
    // SAFETY: local points at 8 readable bytes that outlive the call (the kernel only reads them);
    // remote names memory of the other process, which the kernel checks and never dereferences here.
    let n = unsafe { libc::process_vm_writev(pid, &local, 1, &remote, 1, 0) };
    match n {
        8 => Ok(()),
        n if n < 0 => Err(io::Error::last_os_error()),
        _ => Err(io::Error::from(io::ErrorKind::WriteZero)),
    }
}

/// `CLOCK_MONOTONIC` now, ns: the clock of `bpf_ktime_get_ns`.
pub fn monotonic_ns() -> u64 {
    // SAFETY: timespec is plain data for clock_gettime to fill.
    let mut ts: libc::timespec = unsafe { std::mem::zeroed() };
    // SAFETY: ts is a valid timespec; CLOCK_MONOTONIC always exists.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    (ts.tv_sec as u64).saturating_mul(1_000_000_000) + ts.tv_nsec as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stopped_child_is_seen_written_and_continued_and_its_exit_left_to_its_owner() {
        let mut child = std::process::Command::new("sleep")
            .arg("0.2")
            .spawn()
            .unwrap();
        let pid = child.id();
        assert!(crate::sys::kill(pid, libc::SIGSTOP));
        assert_eq!(wait_stopped(pid), ChildState::Stopped);
        // Our own memory as a target: process_vm_writev to self is allowed.
        let mut target = Box::new(0u64);
        let addr = &mut *target as *mut u64;
        write_u64(crate::sys::pid(), addr as u64, 0xfeed).unwrap();
        // SAFETY: addr points at the live box; volatile because the store came from outside the program.
        assert_eq!(unsafe { std::ptr::read_volatile(addr) }, 0xfeed);
        assert!(crate::sys::kill(pid, libc::SIGCONT));
        assert_eq!(wait_stopped(pid), ChildState::Gone);
        // Still reapable by its owner, with its real status.
        assert!(child.wait().unwrap().success());
        assert!(monotonic_ns() > 0);
    }
}
