//! ptrace(2), `waitpid(2)` on tracees, a `signalfd(2)` for SIGCHLD, a `SOCK_SEQPACKET` pair and
//! `poll(2)` on several descriptors: the calls of perfgate's tracer process (`run/follow.rs`), each behind
//! a safe function.
//!
//! Invariant: ptrace requests go to a tid and must come from the thread that traces it (the kernel's
//! rule); nothing here keeps state, every error is the `errno` as an `io::Error`.
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::time::Duration;

/// `PTRACE_EVENT_STOP` of `<linux/ptrace.h>` (glibc's headers have it since 2.26, the `libc` crate not for
/// glibc targets): the event of a group-stop, an interrupt or a new tracee's first stop under
/// `PTRACE_SEIZE`.
pub const PTRACE_EVENT_STOP: i32 = 128;

/// Options of [`seize`]: which events stop the tracee.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    /// New processes (fork, vfork) are traced from their birth and reported.
    pub processes: bool,
    /// exec stops the tracee after the new image is loaded.
    pub exec: bool,
    /// New threads are traced from their birth.
    pub threads: bool,
    /// The tracees get SIGKILL when the tracer dies.
    pub kill_on_tracer_exit: bool,
}

impl Options {
    fn bits(self) -> libc::c_int {
        let mut o = 0;
        if self.processes {
            o |= libc::PTRACE_O_TRACEFORK | libc::PTRACE_O_TRACEVFORK;
        }
        if self.exec {
            o |= libc::PTRACE_O_TRACEEXEC;
        }
        if self.threads {
            o |= libc::PTRACE_O_TRACECLONE;
        }
        if self.kill_on_tracer_exit {
            o |= libc::PTRACE_O_EXITKILL;
        }
        o
    }
}

fn check(r: libc::c_long) -> io::Result<()> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Traces `tid` without stopping it (`PTRACE_SEIZE`).
pub fn seize(tid: u32, options: Options) -> io::Result<()> {
    // SAFETY: PTRACE_SEIZE takes no memory argument (addr 0, data = the option bits).
    check(unsafe {
        libc::ptrace(
            libc::PTRACE_SEIZE,
            tid as libc::pid_t,
            0usize,
            options.bits() as usize,
        )
    })
}

/// Resumes a stopped tracee, delivering `signal` (0 = none).
pub fn cont(tid: u32, signal: i32) -> io::Result<()> {
    // SAFETY: PTRACE_CONT takes no memory argument (data = the signal number).
    check(unsafe {
        libc::ptrace(
            libc::PTRACE_CONT,
            tid as libc::pid_t,
            0usize,
            signal as usize,
        )
    })
}

/// Lets a tracee in group-stop stay stopped until SIGCONT, as it would untraced (`PTRACE_LISTEN`).
pub fn listen(tid: u32) -> io::Result<()> {
    // SAFETY: PTRACE_LISTEN takes no memory argument.
    check(unsafe { libc::ptrace(libc::PTRACE_LISTEN, tid as libc::pid_t, 0usize, 0usize) })
}

/// Asks a running tracee to stop (`PTRACE_INTERRUPT`); it reports a `PTRACE_EVENT_STOP`.
pub fn interrupt(tid: u32) -> io::Result<()> {
    // SAFETY: PTRACE_INTERRUPT takes no memory argument.
    check(unsafe { libc::ptrace(libc::PTRACE_INTERRUPT, tid as libc::pid_t, 0usize, 0usize) })
}

/// Stops tracing a stopped tracee, which resumes with `signal` (0 = none).
pub fn detach(tid: u32, signal: i32) -> io::Result<()> {
    // SAFETY: PTRACE_DETACH takes no memory argument (data = the signal number).
    check(unsafe {
        libc::ptrace(
            libc::PTRACE_DETACH,
            tid as libc::pid_t,
            0usize,
            signal as usize,
        )
    })
}

/// The message of the event the tracee is stopped at: the new tid for fork/vfork/clone, the former tid
/// for exec.
pub fn event_message(tid: u32) -> io::Result<u64> {
    let mut msg: libc::c_ulong = 0;
    // SAFETY: PTRACE_GETEVENTMSG writes one unsigned long to `data`, which points to `msg`.
    check(unsafe {
        libc::ptrace(
            libc::PTRACE_GETEVENTMSG,
            tid as libc::pid_t,
            0usize,
            &mut msg as *mut libc::c_ulong,
        )
    })?;
    Ok(msg as u64)
}

/// `si_code` of the signal a tracee is stopped for (`SI_KERNEL`, `SI_USER`, `SI_TKILL`…).
pub fn signal_code(tid: u32) -> io::Result<i32> {
    // SAFETY: an all-zero siginfo_t is a valid value for the kernel to overwrite.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    // SAFETY: PTRACE_GETSIGINFO writes one siginfo_t to `data`, which points to `info`.
    check(unsafe {
        libc::ptrace(
            libc::PTRACE_GETSIGINFO,
            tid as libc::pid_t,
            0usize,
            &mut info as *mut libc::siginfo_t,
        )
    })?;
    Ok(info.si_code)
}

/// What `waitpid` said about one tracee.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    /// It exited with this code.
    Exited {
        /// The thread.
        tid: u32,
        /// Exit code.
        code: i32,
    },
    /// A signal killed it.
    Killed {
        /// The thread.
        tid: u32,
        /// The signal.
        signal: i32,
    },
    /// It stopped: `event` is 0 for a signal-delivery-stop of `signal`, else the `PTRACE_EVENT_*`.
    Stopped {
        /// The thread.
        tid: u32,
        /// The signal (SIGTRAP for most event stops, the stop signal for a group-stop).
        signal: i32,
        /// `status >> 16`.
        event: i32,
    },
}

/// The next state change of any tracee, without blocking: `None` when there is none now (or no tracee
/// at all).
pub fn wait_any() -> io::Result<Option<Wait>> {
    let mut status: libc::c_int = 0;
    loop {
        // SAFETY: status is a valid int for waitpid to fill; WNOHANG never blocks.
        let r = unsafe { libc::waitpid(-1, &mut status, libc::__WALL | libc::WNOHANG) };
        if r == 0 {
            return Ok(None);
        }
        if r < 0 {
            let e = io::Error::last_os_error();
            match e.raw_os_error() {
                Some(libc::EINTR) => continue,
                Some(libc::ECHILD) => return Ok(None),
                _ => return Err(e),
            }
        }
        let tid = r as u32;
        return Ok(Some(if libc::WIFEXITED(status) {
            Wait::Exited {
                tid,
                code: libc::WEXITSTATUS(status),
            }
        } else if libc::WIFSIGNALED(status) {
            Wait::Killed {
                tid,
                signal: libc::WTERMSIG(status),
            }
        } else {
            Wait::Stopped {
                tid,
                signal: libc::WSTOPSIG(status),
                event: (status >> 16) & 0xff,
            }
        }));
    }
}

/// Blocks SIGCHLD and returns a non-blocking descriptor that becomes readable when one arrives.
pub fn sigchld_fd() -> io::Result<OwnedFd> {
    // SAFETY: an all-zero sigset_t is a valid value for sigemptyset to initialise.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a valid sigset_t; sigprocmask and signalfd only read it.
    let fd = unsafe {
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGCHLD);
        if libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) != 0 {
            return Err(io::Error::last_os_error());
        }
        libc::signalfd(-1, &set, libc::SFD_CLOEXEC | libc::SFD_NONBLOCK)
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: signalfd just returned this fresh descriptor; it is owned exactly once.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Reads whatever the signalfd holds (the signals are only a wake-up).
pub fn drain(fd: BorrowedFd<'_>) {
    let mut buf = [0u8; 512];
    loop {
        // SAFETY: reading into a valid buffer of its own length from a descriptor the caller keeps open.
        let n = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        if n <= 0 {
            return;
        }
    }
}

/// A connected pair of `SOCK_SEQPACKET` sockets (message boundaries kept), close-on-exec.
pub fn seqpacket_pair() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0i32; 2];
    // SAFETY: fds is a valid array of two ints for socketpair to fill.
    if unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
            0,
            fds.as_mut_ptr(),
        )
    } != 0
    {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: socketpair just returned these two fresh descriptors; each is owned exactly once.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Sends one message (blocking; SIGPIPE is not raised when the peer is gone).
pub fn send(fd: BorrowedFd<'_>, msg: &[u8]) -> io::Result<()> {
    loop {
        // SAFETY: sending from a valid buffer of its own length on a descriptor the caller keeps open.
        let n = unsafe {
            libc::send(
                fd.as_raw_fd(),
                msg.as_ptr().cast(),
                msg.len(),
                libc::MSG_NOSIGNAL,
            )
        };
        if n >= 0 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// What [`recv`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Received {
    /// A message of this many bytes.
    Message(usize),
    /// Nothing now.
    Nothing,
    /// The peer closed its end.
    Closed,
}

/// Receives one message into `buf` without blocking.
pub fn recv(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<Received> {
    loop {
        // SAFETY: receiving into a valid buffer of its own length from a descriptor the caller keeps open.
        let n = unsafe {
            libc::recv(
                fd.as_raw_fd(),
                buf.as_mut_ptr().cast(),
                buf.len(),
                libc::MSG_DONTWAIT,
            )
        };
        if n > 0 {
            return Ok(Received::Message(n as usize));
        }
        if n == 0 {
            return Ok(Received::Closed);
        }
        let e = io::Error::last_os_error();
        match e.kind() {
            io::ErrorKind::Interrupted => continue,
            io::ErrorKind::WouldBlock => return Ok(Received::Nothing),
            _ => return Err(e),
        }
    }
}

/// Waits until one of `fds` is readable (or hung up) or `timeout` passes (`None` = forever); returns
/// which were.
pub fn poll_readable(fds: &[BorrowedFd<'_>], timeout: Option<Duration>) -> Vec<bool> {
    let mut p: Vec<libc::pollfd> = fds
        .iter()
        .map(|f| libc::pollfd {
            fd: f.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    let ms = timeout.map_or(-1, |t| {
        libc::c_int::try_from(t.as_millis()).unwrap_or(libc::c_int::MAX)
    });
    // SAFETY: `p` is a valid array of p.len() pollfds; poll only writes their revents.
    let n = unsafe { libc::poll(p.as_mut_ptr(), p.len() as libc::nfds_t, ms) };
    if n <= 0 {
        return vec![false; fds.len()];
    }
    p.iter().map(|x| x.revents != 0).collect()
}

/// Kills this process when its parent dies (`PR_SET_PDEATHSIG`): the tracer never outlives perfgate.
pub fn die_with_parent() -> io::Result<()> {
    // SAFETY: PR_SET_PDEATHSIG takes a signal number; nothing is read from memory.
    if unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// The registers a stack walk starts from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StackRegisters {
    /// Instruction pointer.
    pub rip: u64,
    /// Stack pointer.
    pub rsp: u64,
    /// Frame pointer.
    pub rbp: u64,
}

/// The registers of a stopped tracee (`PTRACE_GETREGSET`, `NT_PRSTATUS`).
pub fn registers(tid: u32) -> io::Result<StackRegisters> {
    // SAFETY: an all-zero user_regs_struct (integers only) is a valid value for the kernel to overwrite.
    let mut regs: libc::user_regs_struct = unsafe { std::mem::zeroed() };
    let mut iov = libc::iovec {
        iov_base: (&mut regs as *mut libc::user_regs_struct).cast(),
        iov_len: std::mem::size_of::<libc::user_regs_struct>(),
    };
    // SAFETY: PTRACE_GETREGSET writes at most iov_len bytes to iov_base, which points to `regs`.
    check(unsafe {
        libc::ptrace(
            libc::PTRACE_GETREGSET,
            tid as libc::pid_t,
            libc::NT_PRSTATUS as usize,
            &mut iov as *mut libc::iovec,
        )
    })?;
    Ok(StackRegisters {
        rip: regs.rip,
        rsp: regs.rsp,
        rbp: regs.rbp,
    })
}
