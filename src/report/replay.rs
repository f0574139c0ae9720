//! The uftrace-style replay of reconstructed calls (see `profile::calls`): one line per entry and exit,
//! threads interleaved in time order, streamed.
//!
//! # Memory
//!
//! The replay never holds the recording's calls. Per thread it keeps the frames still open (at most
//! the kernel's 64 levels); lines wait in a reorder buffer only until no thread can still print an
//! earlier one: a line is printed once its timestamp lies below the *watermark*, the earliest start of
//! any frame whose entry line is not printed yet, and below the last event's timestamp minus the
//! clock skew the ring buffer can carry ([`SKEW_NS`]). A frame's entry line waits until the frame is
//! known to be a leaf (its exit) or to have a shown callee (the callee's exit), because the two print
//! differently. When the buffer holds [`MAX_BUFFERED_LINES`] lines (a call that runs long with nothing
//! shown under it yet), the oldest waiting frame is printed as open, so memory stays bounded whatever
//! the recording's length: about 64 bytes per buffered line, 16 MiB at most, plus the open frames.
//!
//! # Exactness
//!
//! Within a thread the order is the program's; across threads it is by timestamp. Two things can
//! differ from a replay that held every call: a frame forced open by the buffer limit prints as
//! `f() {` … `}` where it might have been a leaf `f();`, and, with `--time-filter`, a frame forced open
//! (or one containing a gap, which is always shown inside the frames it happened in) is shown even if
//! it turns out shorter than the filter.
use std::collections::{BTreeSet, BinaryHeap, HashMap};
use std::io::{BufWriter, Write};

use anyhow::Result;

use super::escape;
use super::units;
use crate::profile::calls::{Call, CallSink, EndedBy, Entry, Gap, Reconstructor};
use crate::profile::file::Event;
use crate::profile::names::{NameGlobs, ShortNames};
use crate::profile::{FuncId, Nanos, Profile};

/// What the replay shows. Gaps of the selected threads are always shown: no filter hides lost data.
#[derive(Debug, Clone, Default)]
pub struct ReplayOptions {
    /// Only this thread.
    pub tid: Option<u32>,
    /// Only calls less than this many shown levels deep (1 = top-level calls only).
    pub max_depth: Option<usize>,
    /// Hide calls shorter than this, ns; their time stays in their caller's.
    pub time_filter_ns: Option<Nanos>,
    /// Show only calls of matching functions (see `profile::names`) and everything they call.
    pub functions: NameGlobs,
    /// Hide calls of matching functions; what they call rises one level.
    pub no_functions: NameGlobs,
    /// The reorder buffer's size in lines; `None` = [`MAX_BUFFERED_LINES`] (tests set a small one).
    pub max_buffered_lines: Option<usize>,
    /// Full demangled names instead of short ones (`profile::names::ShortNames`).
    pub full_names: bool,
}

/// What the replay printed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplayStats {
    /// Calls reconstructed (of the selected thread, if any).
    pub calls: u64,
    /// Calls shown.
    pub shown: u64,
    /// Calls hidden by the options.
    pub hidden: u64,
    /// Gaps found (all are shown).
    pub gaps: u64,
    /// Events known to be missing at the gaps.
    pub missing: u64,
    /// Calls closed without an exit event.
    pub unfinished: u64,
    /// Calls an exception ended (shown closed at the catch).
    pub unwound: u64,
    /// Calls left without returning: by longjmp, or on a stack a switch left (shown closed where that
    /// was found).
    pub jumped: u64,
}

/// Width of the duration column.
const DURATION_WIDTH: usize = 11;
/// Lines the reorder buffer holds before the oldest waiting frame is printed as open.
pub const MAX_BUFFERED_LINES: usize = 1 << 18;
/// How far back in time an event may arrive after a later one (ring-buffer reservation order against
/// the timestamp taken just before): lines newer than the last event minus this wait.
pub const SKEW_NS: Nanos = 1_000_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum LineKind {
    Open,
    Leaf,
    Close,
    Gap,
}

/// One printable line. Ordered by (timestamp, thread, sequence): within a thread timestamps never
/// decrease along the sequence, so this keeps each thread's order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Line {
    ts: Nanos,
    tid: u32,
    seq: u64,
    kind: LineKind,
    /// Shown nesting level (indent).
    depth: u32,
    func: FuncId,
    /// Inclusive time, for leaf and close lines; events missing, for gap lines.
    value: u64,
    unfinished: bool,
    ended_by: Option<EndedBy>,
}

/// What the replay knows of an open frame of a thread.
#[derive(Debug, Clone, Copy)]
struct Frame {
    func: FuncId,
    start: Nanos,
    entry_seq: u64,
    /// Inside a `--function` match (or no `--function` given).
    in_scope: bool,
    /// Shown if it passes the time filter: in scope, not excluded, within `--depth`.
    candidate: bool,
    /// Shown nesting level of this frame (if a candidate) and of its callees.
    depth: usize,
    /// Its entry line was printed as open (`f() {`).
    opened: bool,
}

/// The replay as a [`CallSink`]: turns entries, calls and gaps into lines.
struct Printer<'a> {
    opts: &'a ReplayOptions,
    included: Vec<bool>,
    excluded: Vec<bool>,
    threads: HashMap<u32, Vec<Frame>>,
    /// Per thread with a candidate frame whose entry line is not printed yet, the earliest one's start;
    /// and the same as an ordered set, so the watermark costs O(log threads), not O(threads), per call
    /// (a recording of 20,000 threads made it quadratic).
    waiting_of: HashMap<u32, Nanos>,
    waiting: BTreeSet<(Nanos, u32)>,
    /// Min-heap of lines waiting for the watermark.
    pending: BinaryHeap<std::cmp::Reverse<Line>>,
    /// Newest event timestamp seen.
    clock: Nanos,
    /// Lines the reorder buffer may hold before it forces a frame open.
    max_buffered: usize,
    stats: ReplayStats,
    out: &'a mut dyn FnMut(&Line) -> Result<()>,
}

impl Printer<'_> {
    fn flag(v: &[bool], f: FuncId) -> bool {
        v.get(f as usize).copied().unwrap_or(false)
    }

    /// Prints the open lines of the candidate frames of `tid` not yet opened, outermost first: all of
    /// them, or only the outermost one.
    fn open_ancestors(&mut self, tid: u32, all: bool) {
        let Some(stack) = self.threads.get_mut(&tid) else {
            return;
        };
        for f in stack.iter_mut().filter(|f| f.candidate && !f.opened) {
            f.opened = true;
            self.pending.push(std::cmp::Reverse(Line {
                ts: f.start,
                tid,
                seq: f.entry_seq,
                kind: LineKind::Open,
                depth: u32::try_from(f.depth).unwrap_or(u32::MAX),
                func: f.func,
                value: 0,
                unfinished: false,
                ended_by: None,
            }));
            if !all {
                return;
            }
        }
    }

    /// The earliest start of a frame whose entry line is still to come, over all threads.
    fn waiting_since(&self) -> Option<(Nanos, u32)> {
        self.waiting.first().copied()
    }

    /// Brings [`Printer::waiting`] up to date after the frames of `tid` changed; forgets a thread
    /// with no open frame.
    fn refresh(&mut self, tid: u32) {
        let first = self.threads.get(&tid).and_then(|st| {
            st.iter()
                .find(|f| f.candidate && !f.opened)
                .map(|f| f.start)
        });
        if self.threads.get(&tid).is_some_and(Vec::is_empty) {
            self.threads.remove(&tid);
        }
        let old = match first {
            Some(start) => self.waiting_of.insert(tid, start),
            None => self.waiting_of.remove(&tid),
        };
        if old != first {
            if let Some(start) = old {
                self.waiting.remove(&(start, tid));
            }
            if let Some(start) = first {
                self.waiting.insert((start, tid));
            }
        }
    }

    /// Prints every line below the watermark; when too many wait, opens the oldest waiting frame.
    fn flush(&mut self, all: bool) -> Result<()> {
        loop {
            let waiting = self.waiting_since();
            let mut mark = self.clock.saturating_sub(SKEW_NS);
            if let Some((start, _)) = waiting {
                mark = mark.min(start);
            }
            while let Some(std::cmp::Reverse(top)) = self.pending.peek() {
                if !all && top.ts >= mark {
                    break;
                }
                let line = *top;
                self.pending.pop();
                (self.out)(&line)?;
            }
            match waiting {
                Some((_, tid)) if !all && self.pending.len() >= self.max_buffered => {
                    // Bounded memory: that frame prints as open instead of waiting for its fate.
                    self.open_ancestors(tid, false);
                    self.refresh(tid);
                }
                _ => return Ok(()),
            }
        }
    }
}

impl CallSink for Printer<'_> {
    fn entered(&mut self, e: &Entry, _ancestors: &[FuncId]) -> Result<()> {
        self.clock = self.clock.max(e.start);
        let opts = self.opts;
        let stack = self.threads.entry(e.tid).or_default();
        let parent = stack.last();
        let depth = parent.map_or(0, |p| p.depth + usize::from(p.candidate));
        let in_scope = opts.functions.is_empty()
            || parent.is_some_and(|p| p.in_scope)
            || Self::flag(&self.included, e.func);
        let candidate = in_scope
            && !Self::flag(&self.excluded, e.func)
            && opts.max_depth.is_none_or(|m| depth < m);
        stack.push(Frame {
            func: e.func,
            start: e.start,
            entry_seq: e.entry_seq,
            in_scope,
            candidate,
            depth,
            opened: false,
        });
        self.refresh(e.tid);
        Ok(())
    }

    fn call(&mut self, c: &Call, _ancestors: &[FuncId]) -> Result<()> {
        self.clock = self.clock.max(c.end);
        self.stats.calls += 1;
        if c.unfinished {
            self.stats.unfinished += 1;
        }
        match c.ended_by {
            Some(EndedBy::Exception) => self.stats.unwound += 1,
            Some(EndedBy::Jump | EndedBy::Switch) => self.stats.jumped += 1,
            None => {}
        }
        let Some(frame) = self.threads.get_mut(&c.tid).and_then(|s| s.pop()) else {
            return Ok(());
        };
        let shown = frame.candidate
            && (frame.opened || self.opts.time_filter_ns.is_none_or(|t| c.duration() >= t));
        if !shown {
            self.stats.hidden += 1;
            self.refresh(c.tid);
            return self.flush(false);
        }
        self.stats.shown += 1;
        // A shown call makes its candidate callers shown too (they last at least as long), as open.
        self.open_ancestors(c.tid, true);
        self.refresh(c.tid);
        let (kind, ts, seq) = if frame.opened {
            (LineKind::Close, c.end, c.exit_seq)
        } else {
            (LineKind::Leaf, c.start, c.entry_seq)
        };
        self.pending.push(std::cmp::Reverse(Line {
            ts,
            tid: c.tid,
            seq,
            kind,
            depth: u32::try_from(frame.depth).unwrap_or(u32::MAX),
            func: c.func,
            value: c.duration(),
            unfinished: c.unfinished,
            ended_by: c.ended_by,
        }));
        self.flush(false)
    }

    fn gap(&mut self, g: &Gap) -> Result<()> {
        self.clock = self.clock.max(g.ts);
        self.stats.gaps += 1;
        self.stats.missing += g.missing;
        // A gap is shown where it happened: inside every candidate frame open around it.
        self.open_ancestors(g.tid, true);
        self.refresh(g.tid);
        let depth = self
            .threads
            .get(&g.tid)
            .and_then(|s| s.last())
            .map_or(0, |p| p.depth + usize::from(p.candidate));
        self.pending.push(std::cmp::Reverse(Line {
            ts: g.ts,
            tid: g.tid,
            seq: g.seq,
            kind: LineKind::Gap,
            depth: u32::try_from(depth).unwrap_or(u32::MAX),
            func: 0,
            value: g.missing,
            unfinished: false,
            ended_by: None,
        }));
        self.flush(false)
    }
}

/// Prints the calls like `uftrace replay`: one line per entry and exit, threads interleaved in time
/// order, streamed with bounded memory (see the module documentation).
pub fn replay(
    profile: &Profile,
    events: impl Iterator<Item = Result<Event>>,
    opts: &ReplayOptions,
    out: &mut dyn Write,
) -> Result<ReplayStats> {
    let short = ShortNames::new(
        profile.functions.iter().map(|f| f.name.as_str()),
        opts.full_names,
    );
    let names: Vec<String> = profile
        .functions
        .iter()
        .map(|f| escape::cut_long(&escape::terminal(short.get(&f.name))).into_owned())
        .collect();
    let dropped = profile.accounting.lost.events_dropped;
    let mut w = BufWriter::new(out);
    writeln!(
        w,
        "# command: {}",
        escape::terminal(&profile.command.join(" "))
    )?;
    writeln!(w, "# DURATION     TID     FUNCTION")?;
    let st = {
        let mut print = |l: &Line| -> Result<()> { write_line(&mut w, l, &names, dropped > 0) };
        let matches = |globs: &NameGlobs| -> Vec<bool> {
            profile.functions.iter().map(|f| globs.matches(f)).collect()
        };
        let mut printer = Printer {
            opts,
            included: matches(&opts.functions),
            excluded: matches(&opts.no_functions),
            threads: HashMap::new(),
            waiting_of: HashMap::new(),
            waiting: BTreeSet::new(),
            pending: BinaryHeap::new(),
            clock: 0,
            max_buffered: opts.max_buffered_lines.unwrap_or(MAX_BUFFERED_LINES).max(1),
            stats: ReplayStats::default(),
            out: &mut print,
        };
        let rec = opts
            .tid
            .map_or_else(Reconstructor::new, Reconstructor::only_thread);
        rec.run(events, &mut printer)?;
        printer.flush(true)?;
        printer.stats
    };
    write!(
        w,
        "# {} shown, {} hidden, {}, {} unfinished",
        units::plural(st.shown, "call"),
        st.hidden,
        units::plural(st.gaps, "gap"),
        st.unfinished
    )?;
    if st.unwound > 0 {
        write!(w, ", {} ended by an exception", st.unwound)?;
    }
    if st.jumped > 0 {
        write!(w, ", {} left without returning", st.jumped)?;
    }
    if dropped > 0 {
        write!(
            w,
            "; the kernel dropped {}",
            units::plural(dropped, "event")
        )?;
    }
    writeln!(w)?;
    w.flush()?;
    Ok(st)
}

/// One line of the replay.
fn write_line(w: &mut dyn Write, l: &Line, names: &[String], lost: bool) -> Result<()> {
    let blank = "";
    let indent = "  ".repeat(l.depth as usize);
    if l.kind == LineKind::Gap {
        let what = if lost {
            format!("{} lost", units::plural(l.value, "event"))
        } else {
            format!("{} missing", units::plural(l.value, "return"))
        };
        writeln!(
            w,
            "{blank:>DURATION_WIDTH$} [{:>6}] | {indent}<gap: {what}>",
            l.tid
        )?;
        return Ok(());
    }
    let unknown;
    let n = match names.get(l.func as usize) {
        Some(n) => n.as_str(),
        None => {
            unknown = format!("#{}", l.func);
            unknown.as_str()
        }
    };
    let dur = units::duration(l.value as f64);
    // A full name (or one made unique by its parameters) has its list already: no second pair.
    let call = if n.contains('(') {
        n.to_string()
    } else {
        format!("{n}()")
    };
    let tid = l.tid;
    let ended = match l.ended_by {
        Some(EndedBy::Exception) => "ended by an exception",
        Some(EndedBy::Jump) => "left by longjmp",
        Some(EndedBy::Switch) => "left on another stack",
        None => "",
    };
    match l.kind {
        LineKind::Open => writeln!(w, "{blank:>DURATION_WIDTH$} [{tid:>6}] | {indent}{call} {{")?,
        LineKind::Leaf if l.unfinished => writeln!(
            w,
            "{dur:>DURATION_WIDTH$} [{tid:>6}] | {indent}{call}; /* unfinished */"
        )?,
        LineKind::Leaf if l.ended_by.is_some() => writeln!(
            w,
            "{dur:>DURATION_WIDTH$} [{tid:>6}] | {indent}{call}; /* {ended} */"
        )?,
        LineKind::Leaf => writeln!(w, "{dur:>DURATION_WIDTH$} [{tid:>6}] | {indent}{call};")?,
        LineKind::Close | LineKind::Gap => {
            let unfinished = if l.unfinished {
                ", unfinished"
            } else if l.ended_by.is_some() {
                ended
            } else {
                ""
            };
            let sep = if l.ended_by.is_some() && !l.unfinished {
                ", "
            } else {
                ""
            };
            writeln!(
                w,
                "{dur:>DURATION_WIDTH$} [{tid:>6}] | {indent}}} /* {n}{sep}{unfinished} */"
            )?
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::calls::testing::*;
    use crate::profile::calls::{reconstruct, Call, Gap};
    use crate::profile::file::EventKind;

    fn run(profile: &Profile, events: &[Event], opts: &ReplayOptions) -> (String, ReplayStats) {
        let mut out = Vec::new();
        let st = replay(profile, stream(events), opts, &mut out).unwrap();
        (String::from_utf8(out).unwrap(), st)
    }

    fn pats(p: &[&str]) -> NameGlobs {
        NameGlobs::new(&p.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn a_long_waiting_frame_is_forced_open_and_nothing_is_lost_or_reordered_within_a_thread() {
        // Thread 1 enters `main` and calls nothing shown for a long time while thread 2 makes 50 calls.
        let p = names();
        let mut sc = Script::default();
        sc.enter(1, 1, MAIN);
        for i in 0..50u64 {
            sc.enter(10 + 2 * i, 2, A).exit(11 + 2 * i, 2);
        }
        sc.enter(500, 1, B).exit(501, 1).exit(600, 1);
        let events = sc.events.clone();
        let unbounded = run(&p, &events, &ReplayOptions::default()).0;
        let small = ReplayOptions {
            max_buffered_lines: Some(4),
            ..ReplayOptions::default()
        };
        let (bounded, st) = run(&p, &events, &small);
        assert_eq!(st.shown, 52);
        assert_eq!(
            unbounded, bounded,
            "main has a shown callee: both print it open"
        );
        // Per thread, the bounded replay keeps the program's order.
        let of = |out: &str, tid: &str| -> Vec<String> {
            out.lines()
                .filter(|l| l.contains(tid))
                .map(str::to_string)
                .collect()
        };
        assert_eq!(of(&unbounded, "[     1]"), of(&bounded, "[     1]"));
        assert_eq!(of(&unbounded, "[     2]"), of(&bounded, "[     2]"));
        // A leaf that waited past the limit is printed open rather than held.
        let leaf_main = sc.without(&[500, 501]);
        let (out, st) = run(&p, &leaf_main, &small);
        assert_eq!(st.shown, 51);
        assert!(out.contains("main() {"), "{out}");
        assert!(out.contains("} /* main */"), "{out}");
        let (out, _) = run(&p, &leaf_main, &ReplayOptions::default());
        assert!(out.contains("main();"), "{out}");
    }

    #[test]
    fn memory_per_buffered_line_is_as_documented() {
        // 64 bytes a line (the module documentation's bound): 2^18 lines are 16 MiB.
        assert!(
            std::mem::size_of::<Line>() <= 64,
            "{}",
            std::mem::size_of::<Line>()
        );
    }

    #[test]
    fn reconstructs_calls_with_self_time_and_children() {
        let r = reconstruct(stream(&tree().events), None).unwrap();
        assert_eq!(r.calls.len(), 9);
        assert!(r.gaps.is_empty());
        assert_eq!(r.stats.total_gaps(), 0);
        let main = r.calls.iter().find(|c| c.func == MAIN).unwrap();
        assert_eq!(
            (main.start, main.end, main.depth, main.children),
            (0, 10_000, 0, 2)
        );
        // 10000 - a (7000) - fib (1600)
        assert_eq!(main.self_ns, 1_400);
        let a = r.calls.iter().find(|c| c.func == A).unwrap();
        assert_eq!((a.self_ns, a.children, a.depth), (4_000, 2, 1));
        let fibs: Vec<&Call> = r.calls.iter().filter(|c| c.func == FIB).collect();
        assert_eq!(fibs.iter().map(|c| c.depth).collect::<Vec<_>>(), [3, 2, 1]);
        assert!(r.calls.iter().all(|c| !c.unfinished));
        // Completion order: callees first.
        let pos = |f: FuncId| r.calls.iter().position(|c| c.func == f).unwrap();
        assert!(pos(B) < pos(A) && pos(A) < pos(MAIN));
    }

    #[test]
    fn replay_interleaves_threads_in_time_order() {
        let (out, st) = run(&names(), &tree().events, &ReplayOptions::default());
        let expected = "\
# command: ./bench --fast
# DURATION     TID     FUNCTION
            [   100] | main() {
            [   100] |   a() {
            [   200] | worker() {
    1.00 µs [   100] |     b();
     100 ns [   200] |   leaf();
    2.00 µs [   100] |     b();
    7.00 µs [   100] |   } /* a */
            [   100] |   fib() {
            [   100] |     fib() {
    1.20 µs [   100] |       fib();
    7.50 µs [   200] | } /* worker */
    1.40 µs [   100] |     } /* fib */
    1.60 µs [   100] |   } /* fib */
   10.00 µs [   100] | } /* main */
# 9 calls shown, 0 hidden, 0 gaps, 0 unfinished
";
        assert_eq!(out, expected);
        assert_eq!(
            st,
            ReplayStats {
                calls: 9,
                shown: 9,
                hidden: 0,
                gaps: 0,
                missing: 0,
                unfinished: 0,
                unwound: 0,
                jumped: 0,
            }
        );
    }

    #[test]
    fn time_filter_hides_short_calls_and_keeps_their_time_in_the_caller() {
        let opts = ReplayOptions {
            time_filter_ns: Some(1_500),
            tid: Some(100),
            ..Default::default()
        };
        let (out, st) = run(&names(), &tree().events, &opts);
        let expected = "\
# command: ./bench --fast
# DURATION     TID     FUNCTION
            [   100] | main() {
            [   100] |   a() {
    2.00 µs [   100] |     b();
    7.00 µs [   100] |   } /* a */
    1.60 µs [   100] |   fib();
   10.00 µs [   100] | } /* main */
# 4 calls shown, 3 hidden, 0 gaps, 0 unfinished
";
        assert_eq!(out, expected);
        assert_eq!((st.calls, st.shown, st.hidden), (7, 4, 3));
    }

    #[test]
    fn depth_limit_and_tid_filter() {
        let opts = ReplayOptions {
            max_depth: Some(2),
            tid: Some(100),
            ..Default::default()
        };
        let (out, _) = run(&names(), &tree().events, &opts);
        let expected = "\
# command: ./bench --fast
# DURATION     TID     FUNCTION
            [   100] | main() {
    7.00 µs [   100] |   a();
    1.60 µs [   100] |   fib();
   10.00 µs [   100] | } /* main */
# 3 calls shown, 4 hidden, 0 gaps, 0 unfinished
";
        assert_eq!(out, expected);
        let opts = ReplayOptions {
            max_depth: Some(1),
            tid: Some(200),
            ..Default::default()
        };
        let (out, st) = run(&names(), &tree().events, &opts);
        assert!(out.contains("    7.50 µs [   200] | worker();\n"), "{out}");
        assert!(!out.contains("[   100]"));
        assert_eq!((st.calls, st.shown), (2, 1));
    }

    #[test]
    fn function_filter_shows_only_subtrees_of_matches() {
        let opts = ReplayOptions {
            functions: pats(&["a"]),
            ..Default::default()
        };
        let (out, _) = run(&names(), &tree().events, &opts);
        let expected = "\
# command: ./bench --fast
# DURATION     TID     FUNCTION
            [   100] | a() {
    1.00 µs [   100] |   b();
    2.00 µs [   100] |   b();
    7.00 µs [   100] | } /* a */
# 3 calls shown, 6 hidden, 0 gaps, 0 unfinished
";
        assert_eq!(out, expected);
        // Raw names match too.
        let opts = ReplayOptions {
            functions: pats(&["_Z4*"]),
            ..Default::default()
        };
        let (out, _) = run(&names(), &tree().events, &opts);
        assert!(
            out.contains("| worker() {\n") && out.contains("|   leaf();\n"),
            "{out}"
        );
    }

    #[test]
    fn no_function_filter_lifts_callees_one_level() {
        let opts = ReplayOptions {
            no_functions: pats(&["a", "fib"]),
            tid: Some(100),
            ..Default::default()
        };
        let (out, _) = run(&names(), &tree().events, &opts);
        let expected = "\
# command: ./bench --fast
# DURATION     TID     FUNCTION
            [   100] | main() {
    1.00 µs [   100] |   b();
    2.00 µs [   100] |   b();
   10.00 µs [   100] | } /* main */
# 3 calls shown, 4 hidden, 0 gaps, 0 unfinished
";
        assert_eq!(out, expected);
    }

    #[test]
    fn lost_events_are_marked_and_never_mismatched() {
        let mut p = names();
        p.accounting.lost.events_dropped = 2;
        // The exit of the first b (3000) and the entry of the middle fib (8300) are lost.
        let events = tree().without(&[3_000, 8_300]);
        let r = reconstruct(stream(&events), None).unwrap();
        assert_eq!(r.gaps.len(), 2);
        assert_eq!(r.stats.gaps.get(&100), Some(&2));
        assert_eq!(r.stats.missing, 2);
        let bs: Vec<&Call> = r.calls.iter().filter(|c| c.func == B).collect();
        assert_eq!(bs.len(), 2);
        // The first b is closed where the gap shows, the second keeps its own entry and exit.
        assert!(bs
            .iter()
            .any(|c| c.start == 2_000 && c.end == 4_000 && c.unfinished));
        assert!(bs
            .iter()
            .any(|c| c.start == 4_000 && c.end == 6_000 && !c.unfinished));
        let fibs: Vec<(Nanos, Nanos)> = r
            .calls
            .iter()
            .filter(|c| c.func == FIB)
            .map(|c| (c.start, c.end))
            .collect();
        assert_eq!(fibs, [(8_400, 9_600), (8_200, 9_800)]);
        let (out, st) = run(
            &p,
            &events,
            &ReplayOptions {
                tid: Some(100),
                ..Default::default()
            },
        );
        let expected = "\
# command: ./bench --fast
# DURATION     TID     FUNCTION
            [   100] | main() {
            [   100] |   a() {
    2.00 µs [   100] |     b(); /* unfinished */
            [   100] |     <gap: 1 event lost>
    2.00 µs [   100] |     b();
    7.00 µs [   100] |   } /* a */
            [   100] |   fib() {
            [   100] |     <gap: 1 event lost>
    1.20 µs [   100] |     fib();
    1.60 µs [   100] |   } /* fib */
   10.00 µs [   100] | } /* main */
# 6 calls shown, 0 hidden, 2 gaps, 1 unfinished; the kernel dropped 2 events
";
        assert_eq!(out, expected);
        assert_eq!((st.gaps, st.missing, st.unfinished), (2, 2, 1));
    }

    #[test]
    fn an_exit_of_another_function_at_the_same_level_is_discarded() {
        // main → a, a's exit lost, b's entry (level 2) lost: b's exit arrives where a is open.
        let mut s = Script::default();
        s.enter(0, 1, MAIN)
            .enter(100, 1, A)
            .exit(200, 1)
            .enter(300, 1, B)
            .exit(400, 1)
            .exit(500, 1);
        let r = reconstruct(stream(&s.without(&[200, 300])), None).unwrap();
        assert_eq!(r.calls.len(), 2);
        assert!(!r.calls.iter().any(|c| c.func == B));
        let a = r.calls.iter().find(|c| c.func == A).unwrap();
        assert!(a.unfinished && a.end == 400);
        assert_eq!(
            r.gaps,
            [Gap {
                tid: 1,
                ts: 400,
                missing: 2,
                seq: r.gaps[0].seq
            }]
        );
        let main = r.calls.iter().find(|c| c.func == MAIN).unwrap();
        assert!(!main.unfinished && main.end == 500 && main.self_ns == 200);
    }

    #[test]
    fn longjmp_past_frames_closes_them_as_unfinished() {
        // main → a → b, then main returns directly (longjmp out of b and a); nothing dropped.
        let mut s = Script::default();
        s.enter(0, 1, MAIN).enter(100, 1, A).enter(200, 1, B);
        s.events.push(Event {
            ts: 900,
            tid: 1,
            func: MAIN,
            depth: 1,
            kind: EventKind::Exit,
        });
        let (out, st) = run(&names(), &s.events, &ReplayOptions::default());
        let expected = "\
# command: ./bench --fast
# DURATION     TID     FUNCTION
            [     1] | main() {
            [     1] |   a() {
     700 ns [     1] |     b(); /* unfinished */
     800 ns [     1] |   } /* a, unfinished */
            [     1] |   <gap: 2 returns missing>
     900 ns [     1] | } /* main */
# 3 calls shown, 0 hidden, 1 gap, 2 unfinished
";
        assert_eq!(out, expected);
        assert_eq!(st.missing, 2);
    }

    #[test]
    fn frames_an_exception_ended_close_at_the_catch_and_say_so() {
        // main → a → b throws; a catches at 500 (the kernel closes b, then a returns at 600).
        let mut s = Script::default();
        s.enter(0, 1, MAIN)
            .enter(100, 1, A)
            .enter(200, 1, B)
            .end(500, 1, EventKind::Unwound)
            .exit(600, 1)
            .exit(900, 1);
        let (out, st) = run(&names(), &s.events, &ReplayOptions::default());
        let expected = "\
# command: ./bench --fast
# DURATION     TID     FUNCTION
            [     1] | main() {
            [     1] |   a() {
     300 ns [     1] |     b(); /* ended by an exception */
     500 ns [     1] |   } /* a */
     900 ns [     1] | } /* main */
# 3 calls shown, 0 hidden, 0 gaps, 0 unfinished, 1 ended by an exception
";
        assert_eq!(out, expected);
        assert_eq!(
            (st.unwound, st.jumped, st.gaps, st.unfinished),
            (1, 0, 0, 0)
        );
        let r = reconstruct(stream(&s.events), None).unwrap();
        let b = r.calls.iter().find(|c| c.func == B).unwrap();
        assert_eq!(
            (b.end, b.ended_by, b.unfinished),
            (500, Some(EndedBy::Exception), false)
        );
        assert_eq!(r.calls.iter().find(|c| c.func == A).unwrap().self_ns, 200);
    }

    #[test]
    fn frames_left_by_longjmp_close_beside_the_next_call() {
        // uftrace's s-longjmp: main → foo longjmps back to main, which calls bar: bar is beside foo.
        let mut s = Script::default();
        s.enter(0, 1, MAIN)
            .enter(100, 1, A)
            .end(300, 1, EventKind::Abandoned)
            .enter(300, 1, B)
            .exit(400, 1)
            .exit(500, 1);
        let (out, st) = run(&names(), &s.events, &ReplayOptions::default());
        let expected = "\
# command: ./bench --fast
# DURATION     TID     FUNCTION
            [     1] | main() {
     200 ns [     1] |   a(); /* left by longjmp */
     100 ns [     1] |   b();
     500 ns [     1] | } /* main */
# 3 calls shown, 0 hidden, 0 gaps, 0 unfinished, 1 left without returning
";
        assert_eq!(out, expected);
        assert_eq!((st.unwound, st.jumped, st.gaps), (0, 1, 0));
    }

    #[test]
    fn calls_open_at_the_end_close_at_the_last_timestamp() {
        // Thread 7 exits inside worker → leaf; thread 8 runs on until 5000.
        let mut s = Script::default();
        s.enter(0, 7, WORKER)
            .enter(100, 7, LEAF)
            .enter(200, 8, MAIN)
            .exit(5_000, 8);
        let r = reconstruct(stream(&s.events), None).unwrap();
        assert_eq!(r.stats.unfinished, 2);
        assert!(r.gaps.is_empty());
        for c in r.calls.iter().filter(|c| c.tid == 7) {
            assert!(c.unfinished && c.end == 5_000, "{c:?}");
        }
        let (out, _) = run(
            &names(),
            &s.events,
            &ReplayOptions {
                tid: Some(7),
                ..Default::default()
            },
        );
        assert!(
            out.contains("    4.90 µs [     7] |   leaf(); /* unfinished */\n"),
            "{out}"
        );
        assert!(
            out.contains("    5.00 µs [     7] | } /* worker, unfinished */\n"),
            "{out}"
        );
    }

    #[test]
    fn entries_lost_below_a_call_become_unknown_frames() {
        // Entries of levels 2 and 3 lost: the call at level 4 hangs under main; the exits of 3 and 2
        // are consumed without another gap, and main still matches its own exit.
        let mut s = Script::default();
        s.enter(0, 1, MAIN)
            .enter(10, 1, A)
            .enter(20, 1, A)
            .enter(30, 1, B)
            .exit(40, 1)
            .exit(50, 1)
            .exit(60, 1);
        s.exit(100, 1);
        let r = reconstruct(stream(&s.without(&[10, 20])), None).unwrap();
        assert_eq!(r.gaps.len(), 1);
        assert_eq!(r.gaps[0].missing, 2);
        assert_eq!(r.calls.len(), 2);
        let b = r.calls.iter().find(|c| c.func == B).unwrap();
        assert_eq!((b.depth, b.start, b.end), (3, 30, 40));
        let main = r.calls.iter().find(|c| c.func == MAIN).unwrap();
        assert_eq!(
            (main.self_ns, main.children, main.unfinished),
            (90, 1, false)
        );
    }

    #[test]
    fn names_are_escaped_for_the_terminal_and_errors_propagate() {
        let p = profile(&["evil\x1b[2J"]);
        let mut s = Script::default();
        s.enter(0, 1, 0).exit(5, 1);
        let (out, _) = run(&p, &s.events, &ReplayOptions::default());
        assert!(!out.contains('\x1b'));
        assert!(out.contains("evil\\u{1b}[2J();"));
        let bad = vec![Ok(s.events[0]), Err(anyhow::anyhow!("damaged event"))];
        let mut sink = Vec::new();
        assert!(replay(&p, bad.into_iter(), &ReplayOptions::default(), &mut sink).is_err());
    }
}
