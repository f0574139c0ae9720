//! The uftrace-style replay of reconstructed calls (see `profile::calls`).
//!
//! [`replay`] prints the calls of all threads interleaved in time order, so it must see every call
//! before printing the first line: it holds the reconstructed calls (72 bytes each), their display
//! state (8 bytes) and up to two line records per shown call (32 bytes each), plus the gaps: at most
//! about 150 bytes per call of the recording (up to twice the 72 while the call list grows), against
//! 40 bytes per call in the file itself. The `tid` option is applied during reconstruction, so
//! replaying one thread holds only that thread's calls.
use std::collections::HashMap;
use std::io::{BufWriter, Write};

use anyhow::Result;

use super::escape;
use super::units;
use crate::profile::calls::{reconstruct, Reconstructed};
use crate::profile::file::Event;
use crate::profile::names::NameGlobs;
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
}

/// Width of the duration column.
const DURATION_WIDTH: usize = 11;

#[derive(Debug, Clone, Copy, Default)]
struct Shown {
    depth: u32,
    visible: bool,
    has_children: bool,
}

#[derive(Debug, Clone, Copy)]
struct Open {
    exit_seq: u64,
    in_scope: bool,
    /// Shown levels including this call.
    depth_after: usize,
    /// The nearest shown call at or under this one.
    shown: Option<usize>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LineKind {
    Open,
    Leaf,
    Close,
    Gap,
}

#[derive(Debug, Clone, Copy)]
struct Line {
    ts: Nanos,
    seq: u64,
    tid: u32,
    kind: LineKind,
    /// Index of the call or gap.
    idx: usize,
}

/// Prints the calls like `uftrace replay`: one line per entry and exit, threads interleaved in time
/// order. See the module documentation for the memory it takes.
pub fn replay(
    profile: &Profile,
    events: impl Iterator<Item = Result<Event>>,
    opts: &ReplayOptions,
    out: &mut dyn Write,
) -> Result<ReplayStats> {
    let Reconstructed {
        mut calls,
        gaps,
        stats,
    } = reconstruct(events, opts.tid)?;
    calls.sort_unstable_by_key(|c| c.entry_seq);

    let matches = |globs: &NameGlobs| -> Vec<bool> {
        profile.functions.iter().map(|f| globs.matches(f)).collect()
    };
    let included = matches(&opts.functions);
    let excluded = matches(&opts.no_functions);
    let flag = |v: &[bool], f: FuncId| v.get(f as usize).copied().unwrap_or(false);

    // Which calls are shown, at which level, and whether any callee is shown: callers come before
    // callees in entry order, gaps are merged in by sequence number.
    let mut shown = vec![Shown::default(); calls.len()];
    let mut gap_depth = vec![0usize; gaps.len()];
    let mut stacks: HashMap<u32, Vec<Open>> = HashMap::new();
    let (mut ci, mut gi) = (0, 0);
    while ci < calls.len() || gi < gaps.len() {
        let take_gap = gi < gaps.len() && (ci >= calls.len() || gaps[gi].seq < calls[ci].entry_seq);
        let (tid, seq) = if take_gap {
            (gaps[gi].tid, gaps[gi].seq)
        } else {
            (calls[ci].tid, calls[ci].entry_seq)
        };
        let stack = stacks.entry(tid).or_default();
        while stack.last().is_some_and(|o| o.exit_seq < seq) {
            stack.pop();
        }
        let parent = stack.last().copied();
        let depth = parent.map_or(0, |p| p.depth_after);
        if take_gap {
            gap_depth[gi] = depth;
            gi += 1;
            continue;
        }
        let c = &calls[ci];
        let in_scope = opts.functions.is_empty()
            || parent.is_some_and(|p| p.in_scope)
            || flag(&included, c.func);
        let visible = in_scope
            && !flag(&excluded, c.func)
            && opts.max_depth.is_none_or(|m| depth < m)
            && opts.time_filter_ns.is_none_or(|t| c.duration() >= t);
        let under = parent.and_then(|p| p.shown);
        if visible {
            if let Some(p) = under {
                shown[p].has_children = true;
            }
        }
        shown[ci] = Shown {
            depth: u32::try_from(depth).unwrap_or(u32::MAX),
            visible,
            has_children: false,
        };
        stack.push(Open {
            exit_seq: c.exit_seq,
            in_scope,
            depth_after: depth + usize::from(visible),
            shown: if visible { Some(ci) } else { under },
        });
        ci += 1;
    }
    drop(stacks);

    let nlines = shown
        .iter()
        .map(|s| usize::from(s.visible) + usize::from(s.visible && s.has_children))
        .sum::<usize>();
    let mut lines: Vec<Line> = Vec::with_capacity(nlines + gaps.len());
    for (i, (c, s)) in calls.iter().zip(&shown).enumerate() {
        if !s.visible {
            continue;
        }
        let idx = i;
        if s.has_children {
            lines.push(Line {
                ts: c.start,
                seq: c.entry_seq,
                tid: c.tid,
                kind: LineKind::Open,
                idx,
            });
            lines.push(Line {
                ts: c.end,
                seq: c.exit_seq,
                tid: c.tid,
                kind: LineKind::Close,
                idx,
            });
        } else {
            lines.push(Line {
                ts: c.start,
                seq: c.entry_seq,
                tid: c.tid,
                kind: LineKind::Leaf,
                idx,
            });
        }
    }
    for (i, g) in gaps.iter().enumerate() {
        lines.push(Line {
            ts: g.ts,
            seq: g.seq,
            tid: g.tid,
            kind: LineKind::Gap,
            idx: i,
        });
    }
    // Per thread, timestamps never decrease along the sequence, so this keeps each thread's order.
    lines.sort_unstable_by_key(|l| (l.ts, l.tid, l.seq));

    let names: Vec<String> = profile
        .functions
        .iter()
        .map(|f| escape::terminal(&f.name))
        .collect();

    let dropped = profile.accounting.lost.events_dropped;
    let mut w = BufWriter::new(out);
    writeln!(
        w,
        "# command: {}",
        escape::terminal(&profile.command.join(" "))
    )?;
    writeln!(w, "# DURATION     TID     FUNCTION")?;
    let blank = "";
    for l in &lines {
        let i = l.idx;
        if l.kind == LineKind::Gap {
            let g = &gaps[i];
            let indent = "  ".repeat(gap_depth[i]);
            let what = if dropped > 0 {
                format!("{} lost", units::plural(g.missing, "event"))
            } else {
                format!("{} missing", units::plural(g.missing, "return"))
            };
            writeln!(
                w,
                "{blank:>DURATION_WIDTH$} [{:>6}] | {indent}<gap: {what}>",
                g.tid
            )?;
            continue;
        }
        let c = &calls[i];
        let indent = "  ".repeat(shown[i].depth as usize);
        let unknown;
        let n = match names.get(c.func as usize) {
            Some(n) => n.as_str(),
            None => {
                unknown = format!("#{}", c.func);
                unknown.as_str()
            }
        };
        let dur = units::duration(c.duration() as f64);
        let unfinished = if c.unfinished { ", unfinished" } else { "" };
        // Demangled C++ names carry their parameter list already: no second pair of parentheses.
        let call = if n.contains('(') {
            n.to_string()
        } else {
            format!("{n}()")
        };
        match l.kind {
            LineKind::Open => writeln!(
                w,
                "{blank:>DURATION_WIDTH$} [{:>6}] | {indent}{call} {{",
                c.tid
            )?,
            LineKind::Leaf if c.unfinished => writeln!(
                w,
                "{dur:>DURATION_WIDTH$} [{:>6}] | {indent}{call}; /* unfinished */",
                c.tid
            )?,
            LineKind::Leaf => {
                writeln!(w, "{dur:>DURATION_WIDTH$} [{:>6}] | {indent}{call};", c.tid)?
            }
            LineKind::Close | LineKind::Gap => writeln!(
                w,
                "{dur:>DURATION_WIDTH$} [{:>6}] | {indent}}} /* {n}{unfinished} */",
                c.tid
            )?,
        }
    }
    let shown_n = shown.iter().filter(|s| s.visible).count() as u64;
    let st = ReplayStats {
        calls: calls.len() as u64,
        shown: shown_n,
        hidden: calls.len() as u64 - shown_n,
        gaps: gaps.len() as u64,
        missing: stats.missing,
        unfinished: stats.unfinished,
    };
    write!(
        w,
        "# {} shown, {} hidden, {}, {} unfinished",
        units::plural(st.shown, "call"),
        st.hidden,
        units::plural(st.gaps, "gap"),
        st.unfinished
    )?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::calls::testing::*;
    use crate::profile::calls::{Call, Gap};
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
    fn memory_per_call_is_as_documented() {
        assert_eq!(std::mem::size_of::<Call>(), 72);
        assert_eq!(std::mem::size_of::<Shown>(), 8);
        assert_eq!(std::mem::size_of::<Line>(), 32);
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
                unfinished: 0
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
