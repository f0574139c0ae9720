//! Calls reconstructed from a recording's entry/exit events: the model every view of a trace (replay,
//! Chrome trace, flame graphs) consumes.
//!
//! # Reconstruction
//!
//! [`Reconstructor`] is the one place that turns events into calls; the replay, the Chrome trace
//! and the flame graphs (`report/`) are views over it. It is push-based: feed it events
//! with [`Reconstructor::push`], and it reports every completed [`Call`] and every [`Gap`] to a
//! [`CallSink`] as soon as it is known, calls in completion order (children before their parent).
//! It keeps only one shadow stack per thread, so its memory is O(threads × depth) (the kernel stops at
//! 64 levels) however long the recording is. [`reconstruct`] collects everything into a
//! [`Reconstructed`] for views that need the whole picture.
//!
//! The file is not globally time-sorted, but the events of one thread are in program order (a thread
//! reserves its ring-buffer slots one after the other), and that is all the reconstruction relies on.
//! A timestamp that goes backwards on a thread is clamped to the previous one.
//!
//! # Gaps
//!
//! Events can be lost (ring buffer full) and frames can be abandoned (longjmp, exceptions). Each event
//! carries the 1-based level of its frame, which is checked against the reconstructed stack:
//!
//! * Entry at level d: frames at level ≥ d are still open, so their exits are missing: they are closed
//!   at this timestamp and marked unfinished. Levels between the top frame and d had their entries
//!   lost: they become *unknown frames* that are never reported as calls, but whose exits, when they
//!   come, are consumed without a second gap.
//! * Exit at level d: frames above d never returned and are closed as unfinished. If the frame at d is
//!   the same function the call completes normally; if it is another function, that one is closed as
//!   unfinished and the exit discarded; with no frame at d at all, the exit is discarded (its entry
//!   was lost).
//!
//! * An exit by exception ([`EventKind::Unwound`]) or a frame left without returning
//!   ([`EventKind::Abandoned`]: longjmp; [`EventKind::SwitchedAway`]: a stack switch) at level d is
//!   matched like an exit, and the
//!   call is marked with [`Call::ended_by`]: the kernel side found these frames left (see
//!   `bpf/unwind.h`), so they are no gap.
//!
//! So no exit is ever matched with the wrong entry. Each such resynchronisation is reported once as a
//! [`Gap`] with a lower bound of the events missing. Calls still open at the end of the stream (a
//! thread that called `exit()`, a thread killed with its process) are closed at the last timestamp
//! seen in the whole recording and marked unfinished.
//!
use std::collections::{BTreeMap, HashMap};

use anyhow::Result;

use super::file::{Event, EventKind};
use super::{FuncId, Nanos};

/// One call, reconstructed from its entry and exit events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Call {
    /// Thread id.
    pub tid: u32,
    /// Function.
    pub func: FuncId,
    /// 0-based level of the frame on its thread's stack, as the kernel saw it.
    pub depth: usize,
    /// Entry timestamp, ns.
    pub start: Nanos,
    /// Exit timestamp, ns (for an unfinished call, when it was closed: see [`Call::unfinished`]).
    pub end: Nanos,
    /// Inclusive time minus the inclusive time of the reconstructed callees, ns.
    pub self_ns: Nanos,
    /// Reconstructed direct callees.
    pub children: usize,
    /// No exit event was seen: the call was closed at a gap, when a caller returned past it, or at the
    /// end of the recording. Its end is then a bound, not a measurement.
    pub unfinished: bool,
    /// The call did not return: an exception ended it (its end is the catch) or it was left by longjmp
    /// or a stack switch (its end is when that was found). `None` for a return or an unfinished call.
    pub ended_by: Option<EndedBy>,
    /// Position of the entry in the reconstruction's sequence. Entries, exits and gaps of one thread
    /// ordered by their sequence numbers give the exact nesting order, even with equal timestamps.
    pub entry_seq: u64,
    /// Position of the exit (or of the closing of an unfinished call) in the same sequence.
    pub exit_seq: u64,
}

/// How a call that did not return ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum EndedBy {
    /// A C++ exception or a Rust panic passed through it; measured up to the catch.
    Exception,
    /// longjmp left it; its end is when the next traced event found out.
    Jump,
    /// It was on a stack a switch (swapcontext) left behind; its end is when that was found out.
    Switch,
}

impl Call {
    /// Inclusive time, ns.
    pub fn duration(&self) -> Nanos {
        self.end.saturating_sub(self.start)
    }
}

/// A place where the events of one thread were inconsistent and the reconstruction resynchronised.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gap {
    /// Thread id.
    pub tid: u32,
    /// Timestamp of the event that revealed the gap, ns.
    pub ts: Nanos,
    /// Events known to be missing (entries and exits never seen): a lower bound.
    pub missing: u64,
    /// Position in the reconstruction's sequence (see [`Call::entry_seq`]).
    pub seq: u64,
}

/// A call as it starts: what is known at its entry event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    /// Thread id.
    pub tid: u32,
    /// Function.
    pub func: FuncId,
    /// 0-based level of the frame, as the kernel saw it.
    pub depth: usize,
    /// Entry timestamp, ns.
    pub start: Nanos,
    /// Position in the reconstruction's sequence (the [`Call::entry_seq`] it will complete with).
    pub entry_seq: u64,
}

/// Deepest level a recording may carry: the kernel's shadow stack holds 64 frames (`PG_MAX_DEPTH`,
/// checked against the skeleton in `bpf/kernel.rs`); a deeper event is a damaged file.
pub const MAX_LEVEL: u16 = 64;

/// Receives what the [`Reconstructor`] finds.
pub trait CallSink {
    /// A known frame was entered; its [`CallSink::call`] follows when it completes (calls of a thread
    /// complete in the reverse order of their entries). `ancestors` are the known frames under it.
    fn entered(&mut self, _entry: &Entry, _ancestors: &[FuncId]) -> Result<()> {
        Ok(())
    }

    /// A call completed. `ancestors` are the functions of the known frames still open under it on its
    /// thread, outermost first (frames whose entry was lost are left out).
    fn call(&mut self, call: &Call, ancestors: &[FuncId]) -> Result<()>;

    /// The reconstruction resynchronised a thread.
    fn gap(&mut self, _gap: &Gap) -> Result<()> {
        Ok(())
    }
}

/// Totals of one reconstruction.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReconstructStats {
    /// Events consumed.
    pub events: u64,
    /// Calls reported.
    pub calls: u64,
    /// Of which unfinished.
    pub unfinished: u64,
    /// Gaps per thread.
    pub gaps: BTreeMap<u32, u64>,
    /// Events known to be missing, summed over gaps.
    pub missing: u64,
    /// Calls an exception ended.
    pub unwound: u64,
    /// Calls left without returning: by longjmp or on a stack a switch left.
    pub jumped: u64,
}

impl ReconstructStats {
    /// Gaps over all threads.
    pub fn total_gaps(&self) -> u64 {
        self.gaps.values().sum()
    }
}

/// An open frame. Known frames have `lo == hi` (their 1-based level); an unknown frame stands for the
/// levels `lo..=hi` whose entries were lost.
#[derive(Debug, Clone, Copy)]
struct Frame {
    func: Option<FuncId>,
    lo: u16,
    hi: u16,
    start: Nanos,
    child_ns: Nanos,
    children: usize,
    entry_seq: u64,
}

#[derive(Debug, Default)]
struct Thread {
    stack: Vec<Frame>,
    /// Functions of the known frames of `stack`, outermost first.
    known: Vec<FuncId>,
    last_ts: Nanos,
}

/// Shared counters, split from the thread map so both can be borrowed at once.
#[derive(Debug, Default)]
struct Counters {
    seq: u64,
    stats: ReconstructStats,
}

impl Counters {
    fn next(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    fn gap(&mut self, tid: u32, ts: Nanos, missing: u64, sink: &mut dyn CallSink) -> Result<()> {
        *self.stats.gaps.entry(tid).or_insert(0) += 1;
        self.stats.missing += missing;
        let gap = Gap {
            tid,
            ts,
            missing,
            seq: self.next(),
        };
        sink.gap(&gap)
    }
}

impl Thread {
    /// Closes the top frame at `ts`: a known frame becomes a call, an unknown one just goes.
    fn close_top(
        &mut self,
        tid: u32,
        ts: Nanos,
        unfinished: bool,
        c: &mut Counters,
        sink: &mut dyn CallSink,
    ) -> Result<()> {
        self.close_top_ended(tid, ts, unfinished, None, c, sink)
    }

    /// [`Thread::close_top`] with how the call ended when it did not return.
    fn close_top_ended(
        &mut self,
        tid: u32,
        ts: Nanos,
        unfinished: bool,
        ended_by: Option<EndedBy>,
        c: &mut Counters,
        sink: &mut dyn CallSink,
    ) -> Result<()> {
        let Some(f) = self.stack.pop() else {
            return Ok(());
        };
        let Some(func) = f.func else { return Ok(()) };
        self.known.pop();
        let incl = ts.saturating_sub(f.start);
        let call = Call {
            tid,
            func,
            depth: usize::from(f.lo.saturating_sub(1)),
            start: f.start,
            end: ts,
            self_ns: incl.saturating_sub(f.child_ns),
            children: f.children,
            unfinished,
            ended_by,
            entry_seq: f.entry_seq,
            exit_seq: c.next(),
        };
        match ended_by {
            Some(EndedBy::Exception) => c.stats.unwound += 1,
            Some(EndedBy::Jump | EndedBy::Switch) => c.stats.jumped += 1,
            None => {}
        }
        if let Some(p) = self.stack.iter_mut().rev().find(|p| p.func.is_some()) {
            p.child_ns = p.child_ns.saturating_add(incl);
            p.children += 1;
        }
        c.stats.calls += 1;
        if unfinished {
            c.stats.unfinished += 1;
        }
        sink.call(&call, &self.known)
    }

    /// The entry `e` of a call at level `d` (at `ts`): frames at its level or deeper are closed, levels
    /// skipped below it become one unknown frame, and the gaps this reveals are reported.
    fn enter(
        &mut self,
        e: &Event,
        ts: Nanos,
        d: u16,
        c: &mut Counters,
        sink: &mut dyn CallSink,
    ) -> Result<()> {
        let tid = e.tid;
        let mut missing = self.close_above(d - 1, tid, ts, c, sink)?;
        let below = self.stack.last().map_or(0, |f| f.hi);
        if below + 1 < d {
            missing += u64::from(d - 1 - below);
            self.stack.push(Frame {
                func: None,
                lo: below + 1,
                hi: d - 1,
                start: ts,
                child_ns: 0,
                children: 0,
                entry_seq: 0,
            });
        }
        if missing > 0 {
            c.gap(tid, ts, missing, sink)?;
        }
        let entry_seq = c.next();
        self.stack.push(Frame {
            func: Some(e.func),
            lo: d,
            hi: d,
            start: ts,
            child_ns: 0,
            children: 0,
            entry_seq,
        });
        let entry = Entry {
            tid,
            func: e.func,
            depth: usize::from(d - 1),
            start: ts,
            entry_seq,
        };
        sink.entered(&entry, &self.known)?;
        self.known.push(e.func);
        Ok(())
    }

    /// The end `e` of a call at level `d` (at `ts`), returned or `ended_by` something else: the call
    /// closes if its frame is on top at that level; otherwise what was lost is counted as a gap.
    fn leave(
        &mut self,
        e: &Event,
        ts: Nanos,
        d: u16,
        ended_by: Option<EndedBy>,
        c: &mut Counters,
        sink: &mut dyn CallSink,
    ) -> Result<()> {
        let tid = e.tid;
        let mut missing = self.close_above(d, tid, ts, c, sink)?;
        match self.stack.last_mut() {
            Some(top) if top.hi == d && top.func == Some(e.func) => {
                if missing > 0 {
                    c.gap(tid, ts, missing, sink)?;
                }
                return self.close_top_ended(tid, ts, false, ended_by, c, sink);
            }
            // The exit of a frame whose entry was lost: already counted when it was found.
            Some(top) if top.hi == d && top.func.is_none() => {
                if top.lo == d {
                    self.stack.pop();
                } else {
                    top.hi = d - 1;
                }
            }
            // Another function at this level: its exit and this call's entry were lost.
            Some(top) if top.hi == d => {
                missing += 2;
                self.close_top(tid, ts, true, c, sink)?;
            }
            // Nothing at this level: this call's entry was lost.
            _ => missing += 1,
        }
        if missing > 0 {
            c.gap(tid, ts, missing, sink)?;
        }
        Ok(())
    }

    /// Closes, as unfinished, every frame above level `level`; an unknown frame straddling it is cut.
    /// Returns the events this reveals as missing (one exit per level closed).
    fn close_above(
        &mut self,
        level: u16,
        tid: u32,
        ts: Nanos,
        c: &mut Counters,
        sink: &mut dyn CallSink,
    ) -> Result<u64> {
        let mut missing = 0;
        while let Some(top) = self.stack.last_mut() {
            if top.hi <= level {
                break;
            }
            if top.func.is_none() && top.lo <= level {
                missing += u64::from(top.hi - level);
                top.hi = level;
                break;
            }
            missing += u64::from(top.hi - top.lo) + 1;
            self.close_top(tid, ts, true, c, sink)?;
        }
        Ok(missing)
    }
}

/// Rebuilds calls from events, thread by thread; see the module documentation.
#[derive(Debug, Default)]
pub struct Reconstructor {
    threads: HashMap<u32, Thread>,
    counters: Counters,
    last_ts: Nanos,
    only: Option<u32>,
}

impl Reconstructor {
    /// An empty reconstruction.
    pub fn new() -> Reconstructor {
        Reconstructor::default()
    }

    /// A reconstruction of one thread: the events of others only advance the clock (so the calls left
    /// open at the end close at the same time as in a whole reconstruction).
    pub fn only_thread(tid: u32) -> Reconstructor {
        Reconstructor {
            only: Some(tid),
            ..Reconstructor::default()
        }
    }

    /// Consumes one event. A level of 0 (never written by the kernel) is read as 1; a level above
    /// [`MAX_LEVEL`] is an error (no kernel wrote it).
    pub fn push(&mut self, e: &Event, sink: &mut dyn CallSink) -> Result<()> {
        if e.depth > MAX_LEVEL {
            anyhow::bail!(
                "damaged recording: an event at nesting level {}, deeper than the {MAX_LEVEL} levels perfgate records",
                e.depth
            );
        }
        self.last_ts = self.last_ts.max(e.ts);
        if self.only.is_some_and(|t| t != e.tid) {
            return Ok(());
        }
        let c = &mut self.counters;
        c.stats.events += 1;
        let th = self.threads.entry(e.tid).or_default();
        let ts = e.ts.max(th.last_ts);
        th.last_ts = ts;
        let d = e.depth.max(1);
        let ended_by = match e.kind {
            EventKind::Entry => return th.enter(e, ts, d, c, sink),
            EventKind::Exit => None,
            EventKind::Unwound => Some(EndedBy::Exception),
            EventKind::Abandoned => Some(EndedBy::Jump),
            EventKind::SwitchedAway => Some(EndedBy::Switch),
        };
        th.leave(e, ts, d, ended_by, c, sink)
    }

    /// Closes every call still open, at the last timestamp seen, as unfinished (threads in id order),
    /// and returns the totals.
    pub fn finish(mut self, sink: &mut dyn CallSink) -> Result<ReconstructStats> {
        let mut tids: Vec<u32> = self.threads.keys().copied().collect();
        tids.sort_unstable();
        for tid in tids {
            if let Some(th) = self.threads.get_mut(&tid) {
                while !th.stack.is_empty() {
                    th.close_top(tid, self.last_ts, true, &mut self.counters, sink)?;
                }
            }
        }
        Ok(self.counters.stats)
    }

    /// Feeds a whole stream and finishes. Stops at the first error of the stream.
    pub fn run(
        mut self,
        events: impl Iterator<Item = Result<Event>>,
        sink: &mut dyn CallSink,
    ) -> Result<ReconstructStats> {
        for e in events {
            self.push(&e?, sink)?;
        }
        self.finish(sink)
    }
}

/// Every call and gap of a stream, held in memory.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reconstructed {
    /// Calls in completion order (a callee before its caller).
    pub calls: Vec<Call>,
    /// Gaps in stream order.
    pub gaps: Vec<Gap>,
    /// Totals; `stats.gaps` counts gaps per thread.
    pub stats: ReconstructStats,
}

impl CallSink for Reconstructed {
    fn call(&mut self, call: &Call, _ancestors: &[FuncId]) -> Result<()> {
        self.calls.push(*call);
        Ok(())
    }

    fn gap(&mut self, gap: &Gap) -> Result<()> {
        self.gaps.push(*gap);
        Ok(())
    }
}

/// Reconstructs a whole stream, or one thread of it, into memory (O(calls)).
pub fn reconstruct(
    events: impl Iterator<Item = Result<Event>>,
    tid: Option<u32>,
) -> Result<Reconstructed> {
    let mut r = Reconstructed::default();
    let rec = tid.map_or_else(Reconstructor::new, Reconstructor::only_thread);
    r.stats = rec.run(events, &mut r)?;
    Ok(r)
}

/// Synthetic profiles and event streams for the tests of the views.
#[cfg(test)]
pub(crate) mod testing {
    use std::collections::HashMap;

    use anyhow::Result;

    use crate::profile::file::{Event, EventKind};
    use crate::profile::{
        Accounting, ExitInfo, FuncId, FunctionInfo, Machine, Nanos, ProbeKind, Profile,
    };

    /// A profile with these functions (ids in order), no statistics.
    pub fn profile(names: &[&str]) -> Profile {
        Profile {
            schema: 1,
            perfgate_version: "test".into(),
            command: vec!["./bench".into(), "--fast".into()],
            binary: "./bench".into(),
            build_id: None,
            machine: Machine::default(),
            started_at: 0,
            wall_ns: 0,
            exit: ExitInfo::default(),
            functions: names
                .iter()
                .enumerate()
                .map(|(i, n)| FunctionInfo {
                    name: (*n).to_string(),
                    raw_name: format!("_Z{i}{n}"),
                    module: "bench".into(),
                    addr: 0x1000 + 0x100 * i as u64,
                    size: 0x100,
                    probe: ProbeKind::Nop5,
                    probe_offset: 0,
                    entry_probe: None,
                })
                .collect(),
            stats: Vec::new(),
            accounting: Accounting::default(),
            has_events: true,
        }
    }

    /// Builds a stream the way the kernel writes it: levels follow each thread's stack.
    #[derive(Debug, Default)]
    pub struct Script {
        pub events: Vec<Event>,
        stacks: HashMap<u32, Vec<FuncId>>,
    }

    impl Script {
        pub fn enter(&mut self, ts: Nanos, tid: u32, func: FuncId) -> &mut Script {
            let s = self.stacks.entry(tid).or_default();
            s.push(func);
            self.events.push(Event {
                ts,
                tid,
                func,
                depth: s.len() as u16,
                kind: EventKind::Entry,
            });
            self
        }

        pub fn exit(&mut self, ts: Nanos, tid: u32) -> &mut Script {
            let s = self.stacks.entry(tid).or_default();
            let depth = s.len() as u16;
            let func = s.pop().expect("exit without entry in a test script");
            self.events.push(Event {
                ts,
                tid,
                func,
                depth,
                kind: EventKind::Exit,
            });
            self
        }

        /// The events without those at these timestamps (on any thread).
        pub fn without(&self, ts: &[Nanos]) -> Vec<Event> {
            self.events
                .iter()
                .filter(|e| !ts.contains(&e.ts))
                .copied()
                .collect()
        }
    }

    pub fn stream(events: &[Event]) -> impl Iterator<Item = Result<Event>> + '_ {
        events.iter().map(|e| Ok(*e))
    }

    pub const MAIN: FuncId = 0;
    pub const A: FuncId = 1;
    pub const B: FuncId = 2;
    pub const FIB: FuncId = 3;
    pub const WORKER: FuncId = 4;
    pub const LEAF: FuncId = 5;

    pub fn names() -> Profile {
        profile(&["main", "a", "b", "fib", "worker", "leaf"])
    }

    /// Two threads interleaved. Thread 100: main → a → (b, b), then a recursive fib chain.
    /// Thread 200: worker → leaf. Events in file order as two CPUs would batch them.
    pub fn tree() -> Script {
        let mut s = Script::default();
        s.enter(0, 100, MAIN)
            .enter(1_000, 100, A)
            .enter(2_000, 100, B)
            .exit(3_000, 100)
            .enter(1_500, 200, WORKER)
            .enter(2_500, 200, LEAF)
            .exit(2_600, 200)
            .enter(4_000, 100, B)
            .exit(6_000, 100)
            .exit(8_000, 100)
            .enter(8_200, 100, FIB)
            .enter(8_300, 100, FIB)
            .enter(8_400, 100, FIB)
            .exit(9_600, 100)
            .exit(9_700, 100)
            .exit(9_800, 100)
            .exit(9_000, 200)
            .exit(10_000, 100);
        s
    }

    impl Script {
        /// The top frame of `tid` ends without a return, by `kind` (Unwound or Abandoned).
        pub fn end(&mut self, ts: Nanos, tid: u32, kind: EventKind) -> &mut Script {
            let s = self.stacks.entry(tid).or_default();
            let depth = s.len() as u16;
            let func = s.pop().expect("end without entry in a test script");
            self.events.push(Event {
                ts,
                tid,
                func,
                depth,
                kind,
            });
            self
        }
    }
}
