//! Following the processes the benchmark starts, and holding a thread while perfgate attaches probes:
//! a tracer process (perfgate re-executed as `__follow`) traces the benchmark with ptrace and tells
//! perfgate, over a socket, about every moment where probes must be attached before the benchmark goes
//! on. perfgate answers with a resume.
//!
//! What the tracer holds, and when:
//! - **exec**: a traced process that execs stops after the new image is loaded and before its first
//!   instruction (`PTRACE_EVENT_EXEC`); it is reported as [`Stop::Exec`] and stays stopped until
//!   [`Tracer::resume`].
//! - **fork**: a new process starts traced and stopped before its first instruction; reported as
//!   [`Stop::Fork`] and held. A **vfork** child shares its parent's memory until it execs: it is reported
//!   as [`Stop::Vfork`] and resumed at once (its exec is held).
//! - **threads** are traced from birth (so that an exec or a fork from any thread is seen) and resumed at
//!   once, without a round trip to perfgate.
//! - **a thread the BPF program stopped**: the loader hook sends SIGSTOP to the thread that changed the
//!   link map (`bpf/perfgate.bpf.c`, `pg_dl_follow`). Under ptrace that is a signal-delivery-stop the
//!   tracer sees before the program does; a SIGSTOP the kernel sent (`SI_KERNEL`) is reported as
//!   [`Stop::HoldSignal`], and perfgate resumes with no signal when it was its own (the program never
//!   sees it) or with SIGSTOP when it was not.
//!
//! What perfgate relies on (ptrace(2)): ptrace-stops are reported to the tracer only — the benchmark's
//! own parent sees no stop, no SIGCHLD, no change in `waitpid`; a signal the benchmark receives is
//! delivered by the tracer unchanged and in order (a detour of microseconds); a group-stop
//! (SIGSTOP/SIGTSTP sent by the benchmark itself) is kept with `PTRACE_LISTEN`, as it would be untraced.
//! What the benchmark can notice: `TracerPid` in `/proc/self/status`; that nothing else can ptrace it
//! (gdb or strace inside the benchmark fail); that fork, exec and thread creation take longer; that a
//! SIGCONT pending at the very moment of a hold is dropped (SIGSTOP flushes pending SIGCONTs).
//!
//! Invariants: the tracer never outlives perfgate (`PR_SET_PDEATHSIG`, and the watcher kills perfgate's
//! descendants); in a benchmark run its tracees die with it (`PTRACE_O_EXITKILL`); a live process
//! (`record --pid`) is detached, never killed; every tracee the tracer stops for perfgate stays stopped
//! until perfgate answers, and nothing else waits for perfgate.
use std::collections::{HashMap, HashSet, VecDeque};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::profile::ExitInfo;
use crate::sys::ptrace::{self as pt, Options, Wait};

/// The hidden first argument of the tracer mode.
pub const FOLLOW_ARG: &str = "__follow";
/// The descriptor of the tracer's end of the socket.
const SOCK_FD: i32 = 3;
/// Bytes of one message: four little-endian u32 (kind, then three arguments), then two u64.
const MSG_BYTES: usize = 32;
/// How long perfgate waits for the tracer to answer a request.
const REPLY_TIMEOUT: Duration = Duration::from_secs(10);

/// Message kinds; perfgate's requests below 16, the tracer's reports from 16.
mod kind {
    pub const SEIZE: u32 = 1;
    pub const SEIZE_LIVE: u32 = 2;
    pub const RESUME: u32 = 3;
    pub const DETACH_ALL: u32 = 4;
    pub const STATS: u32 = 5;
    pub const SAMPLE_ALL: u32 = 6;
    pub const SEIZED: u32 = 16;
    pub const EXEC: u32 = 17;
    pub const FORK: u32 = 18;
    pub const VFORK: u32 = 19;
    pub const HOLD_SIGNAL: u32 = 20;
    pub const EXITED: u32 = 21;
    pub const DETACHED: u32 = 22;
    pub const STATS_REPLY: u32 = 23;
    pub const SAMPLE: u32 = 24;
    pub const SAMPLED: u32 = 25;
}

/// Flags of a `SEIZE` request.
const FOLLOW_PROCESSES: u32 = 1;

type Msg = [u32; 4];
/// A message with its two wide arguments (zero for most kinds).
type Wide = (Msg, [u64; 2]);

fn encode(m: Msg) -> [u8; MSG_BYTES] {
    encode_wide((m, [0, 0]))
}

fn encode_wide((m, w): Wide) -> [u8; MSG_BYTES] {
    let mut b = [0u8; MSG_BYTES];
    for (i, v) in m.iter().enumerate() {
        b[i * 4..i * 4 + 4].copy_from_slice(&v.to_le_bytes());
    }
    for (i, v) in w.iter().enumerate() {
        b[16 + i * 8..24 + i * 8].copy_from_slice(&v.to_le_bytes());
    }
    b
}

fn decode(b: &[u8]) -> Option<Msg> {
    decode_wide(b).map(|(m, _)| m)
}

fn decode_wide(b: &[u8]) -> Option<Wide> {
    if b.len() != MSG_BYTES {
        return None;
    }
    let at = |i: usize| u32::from_le_bytes([b[i * 4], b[i * 4 + 1], b[i * 4 + 2], b[i * 4 + 3]]);
    let wide = |i: usize| {
        let mut w = [0u8; 8];
        w.copy_from_slice(&b[16 + i * 8..24 + i * 8]);
        u64::from_le_bytes(w)
    };
    Some(([at(0), at(1), at(2), at(3)], [wide(0), wide(1)]))
}

/// A moment where the tracer holds a tracee (or tells of an end) for perfgate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// Process `pid` exec'd and is stopped before the first instruction of its new image (a thread that
    /// exec'd had tid `former_tid`; it now has the process id). Held until resumed.
    Exec {
        /// The process.
        pid: u32,
        /// The tid of the thread that called exec.
        former_tid: u32,
    },
    /// `parent` forked `child`, which is stopped before its first instruction. Held until resumed.
    Fork {
        /// The process that forked.
        parent: u32,
        /// The new process.
        child: u32,
    },
    /// `parent` vforked `child` (posix_spawn does): it runs in its parent's memory until it execs, and
    /// is not held.
    Vfork {
        /// The process that vforked.
        parent: u32,
        /// The new process.
        child: u32,
    },
    /// Thread `tid` is stopped by a SIGSTOP the kernel sent (the BPF program's hold, or another kernel
    /// source). Held until resumed: with no signal if the hold was perfgate's, with SIGSTOP otherwise.
    HoldSignal {
        /// The thread.
        tid: u32,
    },
    /// Process `pid` (all its threads) ended.
    Exited {
        /// The process.
        pid: u32,
        /// How.
        exit: ExitInfo,
    },
    /// After [`Tracer::sample_all`]: thread `tid` is stopped (held until resumed) with these registers, so
    /// that perfgate can read its stack.
    Sample {
        /// The thread.
        tid: u32,
        /// Its registers.
        regs: pt::StackRegisters,
    },
    /// After [`Tracer::sample_all`]: every thread has been sampled.
    Sampled,
    /// After [`Tracer::detach_all`]: every tracee is detached.
    Detached {
        /// Threads detached.
        threads: u32,
    },
}

/// What the tracer counted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TracerStats {
    /// Threads traced, the processes' first threads included.
    pub threads: u32,
    /// Signals passed on to a tracee.
    pub signals: u32,
    /// Group-stops kept (the benchmark stopped itself).
    pub group_stops: u32,
}

/// perfgate's handle on its tracer process.
pub struct Tracer {
    sock: OwnedFd,
    child: Option<Child>,
    /// Reports that arrived while perfgate waited for a reply.
    queued: VecDeque<Stop>,
    closed: bool,
}

impl Tracer {
    /// Starts the tracer process (with the watcher, which ends it if perfgate dies).
    pub fn start() -> Result<Tracer> {
        let holder = super::held::holder_binary();
        super::watch::ensure(&holder)?;
        let (mine, theirs) = pt::seqpacket_pair().context("creating the tracer's socket")?;
        let mut cmd = Command::new(&holder);
        {
            use std::os::unix::process::CommandExt;
            cmd.arg0("perfgate-follow");
        }
        cmd.arg(FOLLOW_ARG)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null());
        crate::sys::inherit_fd_as(&mut cmd, theirs.as_raw_fd(), SOCK_FD);
        let child = cmd.spawn().context("starting perfgate's tracer")?;
        drop(theirs);
        Ok(Tracer {
            sock: mine,
            child: Some(child),
            queued: VecDeque::new(),
            closed: false,
        })
    }

    /// The tracer's process id.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Traces `pid` (a process perfgate holds before its exec, with one thread) from now on: with
    /// `follow_processes`, its execs and the processes it starts are held and reported; its threads
    /// always are traced. Its tracees die with the tracer.
    pub fn seize(&mut self, pid: u32, follow_processes: bool) -> Result<()> {
        let flags = if follow_processes {
            FOLLOW_PROCESSES
        } else {
            0
        };
        self.send([kind::SEIZE, pid, flags, 0])?;
        let [_, _, errno, _] = self.reply(kind::SEIZED)?;
        if errno != 0 {
            bail!(
                "ptrace refused to trace the benchmark: {}",
                std::io::Error::from_raw_os_error(errno as i32)
            );
        }
        Ok(())
    }

    /// Traces every thread of the running process `pid` (and the threads it starts); its execs and
    /// children are not followed, and it is never killed. Returns the threads seized.
    pub fn seize_live(&mut self, pid: u32) -> Result<u32> {
        self.send([kind::SEIZE_LIVE, pid, 0, 0])?;
        let [_, _, errno, threads] = self.reply(kind::SEIZED)?;
        if errno != 0 {
            bail!(
                "ptrace refused to trace process {pid}: {}",
                std::io::Error::from_raw_os_error(errno as i32)
            );
        }
        Ok(threads)
    }

    /// The socket, to wait on with other descriptors.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.sock.as_fd()
    }

    /// The next report, without waiting; `Err` once the tracer is gone.
    pub fn next_stop(&mut self) -> Result<Option<Stop>> {
        if let Some(s) = self.queued.pop_front() {
            return Ok(Some(s));
        }
        loop {
            let Some(m) = self.recv()? else {
                return Ok(None);
            };
            if let Some(s) = stop_of_wide(m) {
                return Ok(Some(s));
            }
        }
    }

    /// Resumes a held tracee, delivering `signal` (0 = none).
    pub fn resume(&mut self, tid: u32, signal: i32) -> Result<()> {
        self.send([kind::RESUME, tid, signal as u32, 0])
    }

    /// Stops every traced thread once, briefly, reporting its registers as [`Stop::Sample`].
    pub fn sample_all(&mut self) -> Result<()> {
        self.send([kind::SAMPLE_ALL, 0, 0, 0])
    }

    /// Starts detaching every tracee of a live process (they run on untraced): threads held for perfgate
    /// are detached when perfgate resumes them; [`Stop::Detached`] says when all are.
    pub fn detach_all(&mut self) -> Result<()> {
        self.send([kind::DETACH_ALL, 0, 0, 0])
    }

    /// What the tracer counted so far.
    pub fn stats(&mut self) -> Result<TracerStats> {
        self.send([kind::STATS, 0, 0, 0])?;
        let [_, threads, signals, group_stops] = self.reply(kind::STATS_REPLY)?;
        Ok(TracerStats {
            threads,
            signals,
            group_stops,
        })
    }

    fn send(&mut self, m: Msg) -> Result<()> {
        pt::send(self.sock.as_fd(), &encode(m)).context("perfgate's tracer is gone")
    }

    fn recv(&mut self) -> Result<Option<Wide>> {
        if self.closed {
            bail!("perfgate's tracer is gone");
        }
        let mut buf = [0u8; MSG_BYTES + 1];
        match pt::recv(self.sock.as_fd(), &mut buf).context("reading from perfgate's tracer")? {
            pt::Received::Message(n) => Ok(decode_wide(&buf[..n])),
            pt::Received::Nothing => Ok(None),
            pt::Received::Closed => {
                self.closed = true;
                bail!("perfgate's tracer is gone")
            }
        }
    }

    /// Waits for the reply of kind `want`, queueing the reports that come first.
    fn reply(&mut self, want: u32) -> Result<Msg> {
        let deadline = Instant::now() + REPLY_TIMEOUT;
        loop {
            while let Some(m) = self.recv()? {
                if m.0[0] == want {
                    return Ok(m.0);
                }
                if let Some(s) = stop_of_wide(m) {
                    self.queued.push_back(s);
                }
            }
            if Instant::now() >= deadline {
                bail!("perfgate's tracer did not answer within {REPLY_TIMEOUT:?}");
            }
            pt::poll_readable(&[self.sock.as_fd()], Some(Duration::from_millis(50)));
        }
    }
}

fn stop_of_wide((m, w): Wide) -> Option<Stop> {
    if m[0] == kind::SAMPLE {
        return Some(Stop::Sample {
            tid: m[1],
            regs: pt::StackRegisters {
                rip: w[0],
                rsp: w[1],
                rbp: (u64::from(m[3]) << 32) | u64::from(m[2]),
            },
        });
    }
    stop_of(m)
}

fn stop_of(m: Msg) -> Option<Stop> {
    let [k, a, b, c] = m;
    Some(match k {
        kind::EXEC => Stop::Exec {
            pid: a,
            former_tid: b,
        },
        kind::FORK => Stop::Fork {
            parent: a,
            child: b,
        },
        kind::VFORK => Stop::Vfork {
            parent: a,
            child: b,
        },
        kind::HOLD_SIGNAL => Stop::HoldSignal { tid: a },
        kind::DETACHED => Stop::Detached { threads: a },
        kind::SAMPLED => Stop::Sampled,
        kind::EXITED => Stop::Exited {
            pid: a,
            exit: if c == 0 {
                ExitInfo {
                    code: Some(b as i32),
                    signal: None,
                }
            } else {
                ExitInfo {
                    code: None,
                    signal: Some(c as i32),
                }
            },
        },
        _ => return None,
    })
}

impl Drop for Tracer {
    /// Closing the socket ends the tracer (its tracees, if any are left, die with it: EXITKILL).
    fn drop(&mut self) {
        // Replace the socket by a closed one: the tracer sees end of file.
        if let Ok((a, _)) = pt::seqpacket_pair() {
            drop(std::mem::replace(&mut self.sock, a));
        }
        if let Some(mut child) = self.child.take() {
            let deadline = Instant::now() + Duration::from_secs(2);
            loop {
                match child.try_wait() {
                    Ok(Some(_)) | Err(_) => return,
                    Ok(None) if Instant::now() >= deadline => {
                        let _ = child.kill();
                        let _ = child.wait();
                        return;
                    }
                    Ok(None) => std::thread::sleep(Duration::from_millis(2)),
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------------
// The tracer process.

/// A tracee announced by its parent's event whose first stop has not been seen yet.
#[derive(Debug, Clone, Copy)]
enum Newborn {
    Thread { tgid: u32 },
    Process { parent: u32, vfork: bool },
}

#[derive(Default)]
struct Tracing {
    sock: Option<OwnedFd>,
    /// SIGSTOPs the kernel sent are reported as holds.
    holds: bool,
    /// Execs are held and reported.
    follow: bool,
    /// Every traced thread, to its process.
    threads: HashMap<u32, u32>,
    announced: HashMap<u32, Newborn>,
    /// First stops seen before the parent's event.
    early: HashSet<u32>,
    /// Stopped (or, newborn, to be stopped at birth) for perfgate.
    held: HashSet<u32>,
    /// Newborns perfgate resumed before their first stop was seen: resumed at it, with this signal.
    resumed_unborn: HashMap<u32, i32>,
    /// Threads interrupted for a sample, whose stop has not come yet.
    sampling: HashSet<u32>,
    /// A sample of every thread was asked for and is not complete yet.
    sampling_asked: bool,
    detaching: bool,
    detached: u32,
    stats: TracerStats,
}

/// The tracer mode: `perfgate __follow`, its socket on fd 3. Returns the exit code.
pub fn follow_main() -> i32 {
    for s in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        crate::sys::ignore_signal(s);
    }
    if pt::die_with_parent().is_err() {
        return 2;
    }
    let Some(sock) = crate::sys::take_inherited_fd(SOCK_FD) else {
        return 2;
    };
    let Ok(sigchld) = pt::sigchld_fd() else {
        return 2;
    };
    let mut t = Tracing {
        sock: Some(sock),
        ..Tracing::default()
    };
    loop {
        let Some(sock) = t.sock.as_ref() else {
            return 0;
        };
        pt::poll_readable(&[sock.as_fd(), sigchld.as_fd()], None);
        pt::drain(sigchld.as_fd());
        if !t.commands() {
            return 0;
        }
        while let Ok(Some(w)) = pt::wait_any() {
            t.on_wait(w);
        }
        t.maybe_detached();
    }
}

impl Tracing {
    fn send(&self, m: Msg) {
        self.send_wide((m, [0, 0]));
    }

    fn send_wide(&self, m: Wide) {
        if let Some(s) = &self.sock {
            // perfgate gone: nothing to tell; PDEATHSIG ends this process.
            let _ = pt::send(s.as_fd(), &encode_wide(m));
        }
    }

    /// Handles perfgate's requests; false when perfgate closed the socket.
    fn commands(&mut self) -> bool {
        loop {
            let mut buf = [0u8; MSG_BYTES + 1];
            let Some(sock) = &self.sock else {
                return false;
            };
            let m = match pt::recv(sock.as_fd(), &mut buf) {
                Ok(pt::Received::Message(n)) => decode(&buf[..n]),
                Ok(pt::Received::Nothing) => return true,
                Ok(pt::Received::Closed) | Err(_) => return false,
            };
            let Some([k, a, b, _]) = m else {
                continue;
            };
            match k {
                kind::SEIZE => self.seize(a, b & FOLLOW_PROCESSES != 0),
                kind::SEIZE_LIVE => self.seize_live(a),
                kind::RESUME if self.held.remove(&a) => {
                    if self.threads.contains_key(&a) {
                        self.go_on(a, b as i32);
                    } else {
                        self.resumed_unborn.insert(a, b as i32);
                    }
                }
                kind::DETACH_ALL => self.detach_all(),
                kind::SAMPLE_ALL => {
                    let tids: Vec<u32> = self.threads.keys().copied().collect();
                    for tid in tids {
                        if !self.held.contains(&tid) && pt::interrupt(tid).is_ok() {
                            self.sampling.insert(tid);
                        }
                    }
                    self.sampling_asked = true;
                    self.maybe_sampled();
                }
                kind::STATS => self.send([
                    kind::STATS_REPLY,
                    self.stats.threads,
                    self.stats.signals,
                    self.stats.group_stops,
                ]),
                _ => {}
            }
        }
    }

    fn seize(&mut self, pid: u32, follow: bool) {
        self.follow = follow;
        self.holds = true;
        let options = Options {
            processes: follow,
            exec: follow,
            threads: true,
            kill_on_tracer_exit: true,
        };
        let errno = match pt::seize(pid, options) {
            Ok(()) => {
                self.threads.insert(pid, pid);
                self.stats.threads += 1;
                0
            }
            Err(e) => e.raw_os_error().unwrap_or(libc::EPERM) as u32,
        };
        self.send([kind::SEIZED, pid, errno, 0]);
    }

    /// Seizes every thread of a running process, listing its tasks again until no new one appears (a
    /// thread created meanwhile by a seized thread is traced from birth anyway).
    fn seize_live(&mut self, pid: u32) {
        self.follow = false;
        self.holds = true;
        let options = Options {
            processes: false,
            exec: false,
            threads: true,
            kill_on_tracer_exit: false,
        };
        if let Err(e) = pt::seize(pid, options) {
            self.send([
                kind::SEIZED,
                pid,
                e.raw_os_error().unwrap_or(libc::EPERM) as u32,
                0,
            ]);
            return;
        }
        self.threads.insert(pid, pid);
        for _ in 0..100 {
            let mut added = false;
            for tid in crate::run::tree::threads(pid) {
                if self.threads.contains_key(&tid) || self.announced.contains_key(&tid) {
                    continue;
                }
                if pt::seize(tid, options).is_ok() {
                    self.threads.insert(tid, pid);
                    added = true;
                }
            }
            if !added {
                break;
            }
        }
        self.stats.threads += self.threads.len() as u32;
        self.send([kind::SEIZED, pid, 0, self.threads.len() as u32]);
    }

    fn detach_all(&mut self) {
        self.detaching = true;
        self.holds = false;
        let running: Vec<u32> = self
            .threads
            .keys()
            .filter(|t| !self.held.contains(t))
            .copied()
            .collect();
        for tid in running {
            if pt::interrupt(tid).is_err() {
                // Gone already: its exit is reported, or nothing is left to detach.
                self.threads.remove(&tid);
            }
        }
        self.maybe_detached();
    }

    fn maybe_sampled(&mut self) {
        if self.sampling_asked && self.sampling.is_empty() {
            self.sampling_asked = false;
            self.send([kind::SAMPLED, 0, 0, 0]);
        }
    }

    fn maybe_detached(&mut self) {
        if self.detaching && self.threads.is_empty() && self.announced.is_empty() {
            self.detaching = false;
            self.send([kind::DETACHED, self.detached, 0, 0]);
        }
    }

    /// Lets a stopped tracee go on with `signal`, or leaves it for good when detaching.
    fn go_on(&mut self, tid: u32, signal: i32) {
        if self.detaching {
            let _ = pt::detach(tid, signal);
            if self.threads.remove(&tid).is_some() {
                self.detached += 1;
            }
        } else if pt::cont(tid, signal).is_err() {
            // The tracee was killed meanwhile: its exit is reported through waitpid.
        }
    }

    /// Why this function is one piece: it is the tracer's whole state machine over `waitpid`'s reports
    /// (exits, the three kinds of event stops, group-stops and signal-delivery-stops), each arm short.
    fn on_wait(&mut self, w: Wait) {
        match w {
            Wait::Exited { tid, code } => self.on_exit(tid, code, 0),
            Wait::Killed { tid, signal } => self.on_exit(tid, 0, signal),
            Wait::Stopped { tid, signal, event } => match event {
                libc::PTRACE_EVENT_FORK | libc::PTRACE_EVENT_VFORK | libc::PTRACE_EVENT_CLONE => {
                    self.on_new(tid, event);
                    self.go_on(tid, 0);
                }
                libc::PTRACE_EVENT_EXEC => self.on_exec(tid),
                pt::PTRACE_EVENT_STOP => {
                    if !self.threads.contains_key(&tid) {
                        match self.announced.remove(&tid) {
                            Some(n) => self.born(tid, n),
                            None => {
                                self.early.insert(tid);
                            }
                        }
                    } else if is_stop_signal(signal) {
                        // A group-stop: stay stopped until SIGCONT, as untraced.
                        self.stats.group_stops += 1;
                        if self.detaching {
                            self.go_on(tid, 0);
                        } else {
                            let _ = pt::listen(tid);
                        }
                    } else if self.detaching && stop_pending(tid) {
                        // A SIGSTOP of a hold is pending: let it come, then drop it (below).
                        let _ = pt::cont(tid, 0);
                    } else if self.sampling.remove(&tid) && !self.detaching {
                        match pt::registers(tid) {
                            Ok(r) => {
                                let lo = r.rbp as u32;
                                let hi = (r.rbp >> 32) as u32;
                                self.send_wide(([kind::SAMPLE, tid, lo, hi], [r.rip, r.rsp]));
                                self.held.insert(tid);
                            }
                            Err(_) => self.go_on(tid, 0),
                        }
                        self.maybe_sampled();
                    } else {
                        // An interrupt, or the wake-up after a group-stop.
                        self.go_on(tid, 0);
                    }
                }
                0 => self.on_signal(tid, signal),
                _ => self.go_on(tid, 0),
            },
        }
    }

    fn on_exit(&mut self, tid: u32, code: i32, signal: i32) {
        self.held.remove(&tid);
        if self.sampling.remove(&tid) {
            self.maybe_sampled();
        }
        self.resumed_unborn.remove(&tid);
        self.early.remove(&tid);
        self.announced.remove(&tid);
        if let Some(tgid) = self.threads.remove(&tid) {
            if tgid == tid {
                self.send([kind::EXITED, tid, code as u32, signal as u32]);
            }
        }
    }

    /// A fork, vfork or clone event of `tid`: the new tracee's first stop may come before or after it.
    /// A new process is reported now, while its parent is stopped at the event: perfgate hears of the
    /// child before anything the parent does next (its exit, say), and the child runs nothing before
    /// its first stop, where it is held until perfgate resumes it.
    fn on_new(&mut self, tid: u32, event: i32) {
        let Ok(new) = pt::event_message(tid) else {
            return;
        };
        let new = new as u32;
        let tgid = self.threads.get(&tid).copied().unwrap_or(tid);
        let vfork = event == libc::PTRACE_EVENT_VFORK;
        // clone without SIGCHLD as exit signal: almost always a thread; a process when its own tgid.
        let process = event == libc::PTRACE_EVENT_FORK
            || vfork
            || crate::run::tree::tgid(new).is_some_and(|g| g == new);
        let born = if process {
            Newborn::Process {
                parent: tgid,
                vfork,
            }
        } else {
            Newborn::Thread { tgid }
        };
        if let Newborn::Process { parent, vfork } = born {
            if vfork {
                self.send([kind::VFORK, parent, new, 0]);
            } else if !self.detaching {
                self.send([kind::FORK, parent, new, 0]);
                self.held.insert(new);
            }
        }
        if self.early.remove(&new) {
            self.born(new, born);
        } else {
            self.announced.insert(new, born);
        }
    }

    /// A new tracee at its first stop, before its first instruction.
    fn born(&mut self, tid: u32, born: Newborn) {
        self.stats.threads += 1;
        match born {
            Newborn::Thread { tgid } => {
                self.threads.insert(tid, tgid);
                self.go_on(tid, 0);
            }
            Newborn::Process { vfork, .. } => {
                self.threads.insert(tid, tid);
                if let Some(signal) = self.resumed_unborn.remove(&tid) {
                    self.go_on(tid, signal);
                } else if vfork || self.detaching || !self.held.contains(&tid) {
                    self.go_on(tid, 0);
                }
                // Else held: perfgate has not resumed it yet.
            }
        }
    }

    /// `tid` exec'd: it is now its process's only thread, with the process id.
    fn on_exec(&mut self, tid: u32) {
        let former = pt::event_message(tid).map_or(tid, |f| f as u32);
        // The other threads are gone (their exits may still be reported: they are unknown by then).
        self.threads.retain(|t, g| *g != tid || *t == tid);
        self.threads.remove(&former);
        self.threads.insert(tid, tid);
        if self.follow && !self.detaching {
            self.send([kind::EXEC, tid, former, 0]);
            self.held.insert(tid);
        } else {
            self.go_on(tid, 0);
        }
    }

    fn on_signal(&mut self, tid: u32, signal: i32) {
        let kernel_stop =
            signal == libc::SIGSTOP && pt::signal_code(tid).is_ok_and(|c| c == libc::SI_KERNEL);
        if kernel_stop && self.detaching {
            // A hold signal sent before holds were switched off: never the program's.
            self.go_on(tid, 0);
        } else if kernel_stop && self.holds {
            self.send([kind::HOLD_SIGNAL, tid, 0, 0]);
            self.held.insert(tid);
        } else {
            self.stats.signals += 1;
            self.go_on(tid, signal);
        }
    }
}

fn is_stop_signal(s: i32) -> bool {
    matches!(
        s,
        libc::SIGSTOP | libc::SIGTSTP | libc::SIGTTIN | libc::SIGTTOU
    )
}

/// Whether a SIGSTOP is pending for the thread itself (`SigPnd` of `/proc/TID/status`).
fn stop_pending(tid: u32) -> bool {
    let status = std::fs::read_to_string(format!("/proc/{tid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("SigPnd:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .is_some_and(|mask| mask & (1 << (libc::SIGSTOP - 1)) != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip_and_odd_sizes_are_refused() {
        let m = [kind::EXITED, 42, 3, 0];
        assert_eq!(decode(&encode(m)), Some(m));
        assert_eq!(decode(&[0u8; 15]), None);
        let w = (
            [kind::SAMPLE, 7, 0xdead_beef, 0x7ff0],
            [0x40_1000, 0x7ffc_0000],
        );
        assert_eq!(decode_wide(&encode_wide(w)), Some(w));
        assert_eq!(
            stop_of_wide(w),
            Some(Stop::Sample {
                tid: 7,
                regs: pt::StackRegisters {
                    rip: 0x40_1000,
                    rsp: 0x7ffc_0000,
                    rbp: 0x7ff0_dead_beef
                }
            })
        );
        assert_eq!(
            stop_of(m),
            Some(Stop::Exited {
                pid: 42,
                exit: ExitInfo {
                    code: Some(3),
                    signal: None
                }
            })
        );
        assert_eq!(
            stop_of([kind::EXITED, 42, 0, 9]),
            Some(Stop::Exited {
                pid: 42,
                exit: ExitInfo {
                    code: None,
                    signal: Some(9)
                }
            })
        );
        assert_eq!(stop_of([kind::SEIZED, 1, 0, 0]), None);
    }
}
