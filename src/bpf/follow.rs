//! The BPF side of following processes: probes attached with another process's PID, the set of followed
//! processes the program counts calls of, the dlopen holds, the exec tracepoint, and closing the links
//! of processes that ended without waiting for it.
//!
//! Invariants: a followed process is in the program's `procs` map before it runs an instruction the
//! session wants counted (the session adds it while the tracer holds it); its links belong to the session
//! ([`Links`]), which closes them through a [`LinkCloser`] once the process has ended, never before (a
//! pending return probe would make the close wait, see DESIGN.md).
use std::os::fd::BorrowedFd;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use libbpf_rs::{Link, MapCore, MapFlags};

use super::kernel::{self, types};
use super::{Probe, ProbeMode, Program};
use crate::elf::FileOffset;

/// The links of one file (or of the loader hook) in one followed process.
#[must_use = "links detach when dropped: hand them to a LinkCloser"]
pub struct Links(Vec<Link>);

impl Links {
    /// No links.
    pub fn none() -> Links {
        Links(Vec::new())
    }

    /// How many kernel links (one or two per file, two per function in classic mode).
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// A name the loader's link map held in some followed process image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkMapName {
    /// The path as the loader wrote it.
    pub path: PathBuf,
    /// The process.
    pub pid: u32,
    /// Added after start-up (dlopen), not at start-up or inherited through fork.
    pub later: bool,
}

impl Program<'_> {
    /// [`Program::attach_functions`] (for the target, with the same refusals that make the session fall
    /// back to an older probe interface), the links handed to the caller.
    pub fn attach_functions_owned(&mut self, path: &Path, probes: &[Probe]) -> Result<Links> {
        // attach_functions keeps a file's links per path (for replace_functions): take the new ones out.
        let before = self.file_links.len();
        let kept: Vec<usize> = self.file_links.iter().map(|f| f.links.len()).collect();
        self.attach_functions(path, probes)?;
        let mut new = Vec::new();
        for (i, f) in self.file_links.iter_mut().enumerate() {
            let from = kept.get(i).copied().unwrap_or(0);
            if i >= before || f.path == path {
                new.extend(f.links.drain(from..));
            }
        }
        self.file_links.retain(|f| !f.links.is_empty());
        Ok(Links(new))
    }

    /// Attaches the probes of one file for process `pid` (any process, not only the target).
    pub fn attach_for(&self, pid: u32, path: &Path, probes: &[Probe]) -> Result<Links> {
        let result = match self.config.mode {
            ProbeMode::Classic => self.attach_classic(pid, path, probes),
            mode => self.attach_multi(pid, path, probes, mode),
        };
        result.map(Links).with_context(|| {
            format!(
                "attaching {} probes to {} in process {pid}",
                probes.len(),
                path.display()
            )
        })
    }

    /// Watches the loader's link map in process `pid` (`_dl_debug_state` at `offset` in `loader`, whose
    /// `_r_debug` lies `r_debug_delta` bytes from it); `None` when the kernel refused.
    pub fn attach_loader_hook_for(
        &self,
        pid: u32,
        loader: &Path,
        offset: FileOffset,
        r_debug_delta: i64,
    ) -> Option<Links> {
        self.loader_hook_link(pid, loader, offset, r_debug_delta)
            .ok()
            .map(|l| Links(vec![l]))
    }

    /// Attaches the exec tracepoint (frames an exec leaves open, a new link map per image).
    pub fn attach_exec(&mut self) -> Result<()> {
        let link = self
            .skel
            .progs
            .pg_exec
            .attach()
            .context("attaching the exec tracepoint")?;
        self.links.push(link);
        Ok(())
    }

    fn write_proc(&self, pid: u32, p: &types::pg_proc) {
        let _ =
            self.skel
                .maps
                .procs
                .update(&pid.to_ne_bytes(), kernel::pod_bytes(p), MapFlags::ANY);
    }

    fn read_proc(&self, pid: u32) -> Option<types::pg_proc> {
        let v = self
            .skel
            .maps
            .procs
            .lookup(&pid.to_ne_bytes(), MapFlags::ANY)
            .ok()??;
        kernel::read_pod(&v)
    }

    fn hold_flag(holds: bool) -> u32 {
        if holds {
            types::pg_proc_flag::PG_PROC_HOLDS.0
        } else {
            0
        }
    }

    /// Counts the calls of process `pid` from now on (its image's link-map state is kept if it is known
    /// already: the exec tracepoint resets it). With `holds`, a thread that adds a library is stopped for
    /// perfgate (the process must be traced by perfgate's tracer).
    pub fn follow_process(&self, pid: u32, holds: bool) {
        let mut p = self.read_proc(pid).unwrap_or_default();
        // At an exec or before the first instruction: nothing of the image was running before.
        p.flags = Self::hold_flag(holds);
        self.write_proc(pid, &p);
    }

    /// Counts the calls of `child`, forked by `parent`: the libraries it inherited are not new to it.
    pub fn follow_fork(&self, parent: u32, child: u32, holds: bool) {
        let from = self.read_proc(parent).unwrap_or_default();
        let p = types::pg_proc {
            flags: Self::hold_flag(holds) | types::pg_proc_flag::PG_PROC_MIDFLIGHT.0,
            r#gen: 0,
            // Start-up is long past: whatever the child adds is a dlopen.
            changes: from.changes.max(1),
            parent_tgid: parent,
            parent_gen: from.r#gen,
            _pad: 0,
        };
        self.write_proc(child, &p);
    }

    /// Counts the calls of the running process `pid`, whose start-up is long past.
    pub fn follow_live(&self, pid: u32, holds: bool) {
        let p = types::pg_proc {
            flags: Self::hold_flag(holds) | types::pg_proc_flag::PG_PROC_MIDFLIGHT.0,
            changes: 1,
            ..Default::default()
        };
        self.write_proc(pid, &p);
    }

    /// Stops stopping `pid`'s threads (before its tracer detaches).
    pub fn stop_holds(&self, pid: u32) {
        if let Some(mut p) = self.read_proc(pid) {
            p.flags &= !types::pg_proc_flag::PG_PROC_HOLDS.0;
            self.write_proc(pid, &p);
        }
    }

    /// Forgets an ended process (its id may be reused by a process perfgate does not follow).
    pub fn unfollow_process(&self, pid: u32) {
        let _ = self.skel.maps.procs.delete(&pid.to_ne_bytes());
    }

    /// Whether the SIGSTOP thread `tid` is stopped by was the program's hold (and forgets it).
    pub fn take_hold(&self, tid: u32) -> bool {
        let key = tid.to_ne_bytes();
        let ours = matches!(
            self.skel.maps.dl_holds.lookup(&key, MapFlags::ANY),
            Ok(Some(_))
        );
        if ours {
            let _ = self.skel.maps.dl_holds.delete(&key);
        }
        ours
    }

    /// The ring buffer's descriptor (trace mode), to wait on with others.
    pub fn ring_fd(&self) -> Option<BorrowedFd<'_>> {
        let fd = self.ring.as_ref()?.epoll_fd();
        // SAFETY: the ring buffer owns this epoll descriptor and keeps it open while `self` lives; the
        // borrow cannot outlive `self`.
        (fd >= 0).then(|| unsafe { BorrowedFd::borrow_raw(fd) })
    }

    /// Every link-map name seen in a followed process image, with when it was added.
    pub fn link_map_names(&self) -> Vec<LinkMapName> {
        let later = types::pg_dl_when::PG_DL_LATER.0 as u8;
        let mut out = Vec::new();
        for key in self.skel.maps.dl_seen.keys() {
            let Some(k) = kernel::read_pod::<types::pg_dl_key>(&key) else {
                continue;
            };
            let Ok(Some(v)) = self.skel.maps.dl_seen.lookup(&key, MapFlags::ANY) else {
                continue;
            };
            let name_at = std::mem::offset_of!(types::pg_dl_key, name);
            out.push(LinkMapName {
                path: kernel::decode_lib_name(&key[name_at.min(key.len())..]),
                pid: k.tgid,
                later: v.first() == Some(&later),
            });
        }
        out
    }

    /// Frames on thread `tid`'s shadow stack now: calls it entered since its probes were attached.
    pub fn stack_depth(&self, tid: u32) -> u32 {
        match self
            .skel
            .maps
            .stacks
            .lookup(&tid.to_ne_bytes(), MapFlags::ANY)
        {
            Ok(Some(v)) => kernel::read_pod::<types::pg_stack>(&v)
                .map_or(0, |st| st.depth.min(kernel::MAX_DEPTH as u32)),
            _ => 0,
        }
    }

    /// Frames still open on the shadow stacks: calls in progress (after [`Program::detach`] of a live
    /// process, the calls it was running then).
    pub fn open_frames(&self) -> u64 {
        let mut open = 0u64;
        for key in self.skel.maps.stacks.keys() {
            if let Ok(Some(v)) = self.skel.maps.stacks.lookup(&key, MapFlags::ANY) {
                if let Some(st) = kernel::read_pod::<types::pg_stack>(&v) {
                    open += u64::from(st.depth.min(kernel::MAX_DEPTH as u32));
                }
            }
        }
        open
    }
}

/// Closes the links of processes that ended, late and in the background. Closing a uprobe link (and
/// attaching one) takes the kernel's `dup_mmap_sem` for writing, which waits for an RCU grace period
/// and holds back every fork on the machine meanwhile: closed one by one while the benchmark runs, they
/// cost a fork-heavy benchmark ~10 ms per process (measured: 20 forks took 294 ms instead of 32 ms). So
/// links wait until [`LinkCloser::finish`] (the benchmark is over), unless more than
/// [`DEFERRED_LINKS`] wait: then a batch is closed at once, in parallel, to bound the descriptors.
pub struct LinkCloser {
    tx: Option<mpsc::Sender<Links>>,
    threads: Vec<std::thread::JoinHandle<()>>,
    busy: Arc<Mutex<Duration>>,
    deferred: Vec<Links>,
    deferred_links: usize,
}

/// Threads that close links at once (each close waits for its own grace period: they overlap).
const CLOSERS: usize = 16;
/// Links kept open past their process's end at most.
pub const DEFERRED_LINKS: usize = 4096;

impl LinkCloser {
    /// Starts the closing threads.
    pub fn new() -> LinkCloser {
        let (tx, rx) = mpsc::channel::<Links>();
        let rx = Arc::new(Mutex::new(rx));
        let busy = Arc::new(Mutex::new(Duration::ZERO));
        let threads = (0..CLOSERS)
            .map(|_| {
                let rx = Arc::clone(&rx);
                let busy = Arc::clone(&busy);
                std::thread::spawn(move || loop {
                    let next = match rx.lock() {
                        Ok(r) => r.recv(),
                        Err(_) => return,
                    };
                    let Ok(links) = next else {
                        return;
                    };
                    let t0 = Instant::now();
                    drop(links);
                    if let Ok(mut b) = busy.lock() {
                        *b += t0.elapsed();
                    }
                })
            })
            .collect();
        LinkCloser {
            tx: Some(tx),
            threads,
            busy,
            deferred: Vec::new(),
            deferred_links: 0,
        }
    }

    /// Closes `links` when the run is over (or with the next batch).
    pub fn close(&mut self, links: Links) {
        if links.is_empty() {
            return;
        }
        self.deferred_links += links.len();
        self.deferred.push(links);
        if self.deferred_links > DEFERRED_LINKS {
            self.flush();
        }
    }

    /// Hands every deferred link to the closing threads.
    fn flush(&mut self) {
        self.deferred_links = 0;
        for links in std::mem::take(&mut self.deferred) {
            self.send(links);
        }
    }

    fn send(&self, links: Links) {
        match &self.tx {
            Some(tx) => {
                // A closer thread that died leaves the links to be closed here.
                if let Err(mpsc::SendError(l)) = tx.send(links) {
                    drop(l);
                }
            }
            None => drop(links),
        }
    }

    /// Closes every link handed over and waits until they are; returns the time the closes took in total.
    pub fn finish(&mut self) -> Duration {
        self.flush();
        self.tx.take();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        self.busy.lock().map_or(Duration::ZERO, |b| *b)
    }
}

impl Default for LinkCloser {
    fn default() -> Self {
        LinkCloser::new()
    }
}

impl Drop for LinkCloser {
    fn drop(&mut self) {
        self.finish();
    }
}
