//! The stop writer of `bpf/unwind.h`, the user-space half: when the kernel refuses `bpf_probe_write_user`
//! (lockdown), the BPF program queues its return-address stores and stops the benchmark (SIGSTOP, a group
//! stop); this thread waits for that stop, applies every queued store with `process_vm_writev`, and lets
//! the benchmark go on (SIGCONT). Every pause is counted and timed, and reported in the accounting.
//!
//! Why it is safe: the store is queued before the SIGSTOP is sent, and the thread that queued it cannot
//! return to user space past a pending SIGSTOP; the group stop that `waitid` reports completes only when
//! every thread has stopped, so every store queued by any thread is in the queue when it is drained, and
//! SIGCONT (which discards pending stop signals of the group) comes only after all were written.
//!
//! A stop with nothing queued is not perfgate's (the benchmark or a user stopped it): it is left alone.
//!
//! Invariant: this thread never reaps the benchmark ([`crate::sys::wait_stopped`] leaves its exit to
//! `HeldChild`) and ends when the benchmark does.
use std::thread::JoinHandle;

use crate::bpf::{Hook, HookKind, SlotQueue};
use crate::plan::{HookedFile, StackHookKind};
use crate::sys::{self, ChildState};

/// A planned file's hooks as the BPF layer takes them.
pub(super) fn bpf_hooks(file: &HookedFile) -> Vec<Hook> {
    file.hooks
        .iter()
        .map(|h| Hook {
            offset: h.offset,
            kind: match h.kind {
                StackHookKind::Unwind => HookKind::Unwind,
                StackHookKind::Walk => HookKind::Walk,
                StackHookKind::Land => HookKind::Land,
                StackHookKind::LandDeep => HookKind::LandDeep,
                StackHookKind::Switch => HookKind::Switch,
            },
        })
        .collect()
}

/// What the stop writer did in one run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Pauses {
    /// Stops handled (stores applied, then SIGCONT).
    pub(super) pauses: u64,
    /// From the first store's queueing in the kernel to SIGCONT, summed, ns.
    pub(super) paused_ns: u64,
    /// Stores applied.
    pub(super) written: u64,
    /// Stores `process_vm_writev` refused.
    pub(super) failed: u64,
}

/// The running stop writer of one benchmark.
pub(super) struct StopWriter {
    thread: Option<JoinHandle<Pauses>>,
}

impl StopWriter {
    /// Starts waiting for the stops of `pid` (a child of this process, released already or about to be).
    pub(super) fn start(pid: u32, queue: SlotQueue) -> std::io::Result<StopWriter> {
        let thread = std::thread::Builder::new()
            .name("perfgate-slots".into())
            .spawn(move || serve(pid, &queue))?;
        Ok(StopWriter {
            thread: Some(thread),
        })
    }

    /// What it did; call once the benchmark has ended (the thread ends with it).
    pub(super) fn finish(mut self) -> Pauses {
        self.thread
            .take()
            .and_then(|t| t.join().ok())
            .unwrap_or_default()
    }
}

fn serve(pid: u32, queue: &SlotQueue) -> Pauses {
    let mut p = Pauses::default();
    while sys::wait_stopped(pid) == ChildState::Stopped {
        let Ok(stores) = queue.take() else {
            // The queue cannot be read: continuing without the stores would let the unwinder meet a
            // trampoline. Leaving the benchmark stopped would hang the run; continuing is what the
            // counters then explain (the stores stay counted as queued, not written).
            p.failed += 1;
            sys::kill(pid, libc::SIGCONT);
            continue;
        };
        if stores.is_empty() {
            continue;
        }
        for s in &stores {
            match sys::write_u64(pid, s.slot, s.value) {
                Ok(()) => p.written += 1,
                Err(_) => p.failed += 1,
            }
        }
        let first = stores.iter().map(|s| s.queued_ns).min().unwrap_or(0);
        sys::kill(pid, libc::SIGCONT);
        p.pauses += 1;
        p.paused_ns += sys::monotonic_ns().saturating_sub(first);
    }
    p
}
