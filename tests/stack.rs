//! Call-stack fidelity on real traced runs (issue 11): C++ exceptions and Rust panics through traced
//! functions, longjmp and siglongjmp, stack switches with makecontext/swapcontext, recursion.
//!
//! Every program runs untraced and traced with every function of its binary probed, in each probe
//! interface; its output (written through `FIXTURE_OUT`, so perfgate's own lines stay apart) and its exit
//! status must be identical, and the call counts exact. The fixtures' comments give the expected counts.
mod common;

use std::path::{Path, PathBuf};

use common::{fixture, record_to, scratch, text};
use perfgate::profile::calls::{reconstruct, EndedBy};
use perfgate::profile::file::Recording;
use perfgate::profile::{ExitInfo, Profile};

const MODES: [&str; 3] = ["session", "multi", "classic"];

/// Classic mode makes two perf-event links per function, and closing each waits for the kernel (about
/// 0.1 s, one after the other): there the tests trace only the functions they count.
fn classic_selection(names: &[&str]) -> Vec<String> {
    let mut args = vec!["--function".to_string(), "main".to_string()];
    for n in names {
        args.push("--function".into());
        args.push(n.split('(').next().unwrap_or(n).to_string());
    }
    args
}

/// What one run of a fixture did: its own output and how it ended.
#[derive(Debug, PartialEq, Eq)]
struct Behaviour {
    output: String,
    exit: ExitInfo,
}

/// Rust's panic message carries the thread id, which differs from run to run.
fn mask_thread_ids(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find("' (") {
        let (head, tail) = rest.split_at(i + 3);
        out.push_str(head);
        let digits = tail.chars().take_while(char::is_ascii_digit).count();
        if digits > 0 && tail[digits..].starts_with(") panicked") {
            out.push_str("TID");
            rest = &tail[digits..];
        } else {
            rest = tail;
        }
    }
    out.push_str(rest);
    out
}

fn read_output(path: &Path) -> String {
    mask_thread_ids(&String::from_utf8_lossy(
        &std::fs::read(path).unwrap_or_default(),
    ))
}

fn untraced(bin: &Path, args: &[&str]) -> Behaviour {
    use std::os::unix::process::ExitStatusExt;
    let dir = scratch();
    let out = dir.path().join("out.txt");
    let st = std::process::Command::new(bin)
        .args(args)
        .env("FIXTURE_OUT", &out)
        .status()
        .expect("running the fixture");
    Behaviour {
        output: read_output(&out),
        exit: ExitInfo {
            code: st.code(),
            signal: st.signal(),
        },
    }
}

/// A traced run: the behaviour, the profile, the recording's path (kept while `dir` lives) and
/// perfgate's stdout (the table and its accounting).
struct Traced {
    behaviour: Behaviour,
    profile: Profile,
    data: PathBuf,
    table: String,
    _dir: tempfile::TempDir,
}

fn traced(mode: &str, extra: &[&str], bin: &Path, args: &[&str]) -> Traced {
    let dir = scratch();
    let out = dir.path().join("out.txt");
    let data = dir.path().join("run.data");
    let o = record_to(&data)
        .args(["--no-calibrate", "--allow-failure", "--probes", mode])
        .args(extra)
        .arg("--")
        .arg(bin)
        .args(args)
        .env("FIXTURE_OUT", &out)
        .output()
        .expect("running perfgate");
    assert!(
        o.status.success(),
        "perfgate record failed ({mode} {args:?}): {}\n{}",
        text(&o.stderr),
        text(&o.stdout)
    );
    let profile = Recording::open(&data).expect("recording").profile;
    Traced {
        behaviour: Behaviour {
            output: read_output(&out),
            exit: profile.exit,
        },
        profile,
        data,
        table: text(&o.stdout),
        _dir: dir,
    }
}

/// (completed calls, of them nested in an outer call of the same function) of the function whose
/// demangled name is `name`, over all threads; (0, 0) if it completed none (it must be traced).
fn calls(p: &Profile, name: &str) -> (u64, u64) {
    assert!(
        p.functions.iter().any(|f| f.name == name),
        "{name} not traced"
    );
    p.per_function()
        .iter()
        .find(|s| p.function(s.func).is_some_and(|f| f.name == name))
        .map_or((0, 0), |s| (s.calls, s.nested_calls))
}

/// The run behaves as untraced, and these functions completed exactly these calls.
fn check_exact(t: &Traced, u: &Behaviour, what: &str, expected: &[(&str, u64)]) {
    assert_eq!(&t.behaviour, u, "{what}: traced and untraced differ");
    for (name, n) in expected {
        assert_eq!(calls(&t.profile, name).0, *n, "{what}: calls of {name}");
    }
    let w = &t.profile.accounting.unwinding;
    assert_eq!(w.slot_writes_failed, 0, "{what}");
    assert!(w.hooks > 0, "{what}: no unwinder hook attached");
}

/// Completed calls expected per function (demangled name).
type Counts = Vec<(&'static str, u64)>;

/// Every case of `exceptions`: its arguments, exact counts, and the calls an exception ended.
fn exception_cases() -> Vec<(Vec<&'static str>, Counts, u64)> {
    let chain_threads: u64 = (0..300).map(|i| 1 + i % 5).sum();
    vec![
        (
            vec!["across"],
            vec![
                ("catch_across(int)", 3),
                ("chain(int, int)", 14),
                ("thrower(int)", 3),
                ("main", 1),
            ],
            17,
        ),
        (
            vec!["rethrow"],
            vec![
                ("rethrow_outer(int)", 1),
                ("rethrow_inner(int)", 1),
                ("chain(int, int)", 3),
                ("thrower(int)", 1),
            ],
            5,
        ),
        (
            vec!["nested"],
            vec![
                ("nested_outer(int)", 1),
                ("nested_inner(int)", 1),
                ("chain(int, int)", 3),
                ("thrower(int)", 1),
            ],
            5,
        ),
        (
            vec!["dtor"],
            vec![
                ("dtor_catch(int)", 1),
                ("dtor_frame(int, int*)", 1),
                ("Guard::~Guard()", 1),
                ("in_dtor_throw(int)", 1),
                ("chain(int, int)", 7),
                ("thrower(int)", 2),
            ],
            10,
        ),
        (
            vec!["far"],
            vec![
                ("far_catch(int)", 1),
                ("far_level1(int)", 1),
                ("far_level2(int)", 1),
                ("far_level3(int)", 1),
                ("thrower(int)", 1),
                ("Counter::~Counter()", 3),
            ],
            4,
        ),
        (
            vec!["static"],
            vec![
                ("make_static()", 1),
                ("Throws::Throws()", 1),
                ("thrower(int)", 1),
            ],
            3,
        ),
        (
            vec!["threads", "300"],
            vec![
                ("thread_throwing(int)", 1),
                ("thread_plain(int)", 2),
                ("catch_across(int)", 300),
                ("thrower(int)", 300),
                ("chain(int, int)", chain_threads),
                ("plain_work(long)", 600),
            ],
            300 + chain_threads,
        ),
        (
            vec!["loop", "50"],
            vec![
                ("catch_across(int)", 50),
                ("chain(int, int)", 500),
                ("thrower(int)", 50),
            ],
            550,
        ),
        (
            vec!["after"],
            vec![
                ("catch_across(int)", 1),
                ("chain(int, int)", 5),
                ("thrower(int)", 1),
                ("plain_work(long)", 10),
            ],
            6,
        ),
        (
            vec!["backtrace"],
            vec![
                ("bt_level1()", 1),
                ("bt_level2()", 1),
                ("bt_level3()", 1),
                ("bt_leaf()", 1),
            ],
            0,
        ),
        (
            vec!["pthread_exit"],
            vec![
                // A forced unwind ends in the thread's exit: the frames it left closed at a traced
                // event (a destructor's call, the catch(...)) are ended by it; the rest are open at exit.
                ("exit_thread(void*)", 0),
                ("exit_thread_catch(void*)", 0),
                ("cancel_level()", 0),
                ("exit_level1()", 1),
                ("exit_level2()", 2),
                ("Noisy::~Noisy()", 4),
            ],
            3,
        ),
    ]
}

#[test]
fn cpp_exceptions_through_traced_functions_behave_as_untraced_with_exact_counts() {
    let bin = fixture("exceptions");
    for (args, expected, unwound) in exception_cases() {
        let u = untraced(&bin, &args);
        assert_eq!(u.exit.code, Some(3), "{args:?}: the fixture itself");
        let names: Vec<&str> = expected.iter().map(|(n, _)| *n).collect();
        let classic = classic_selection(&names);
        let classic: Vec<&str> = classic.iter().map(String::as_str).collect();
        for mode in MODES {
            let what = format!("{mode} {args:?}");
            let extra: &[&str] = if mode == "classic" { &classic } else { &[] };
            let t = traced(mode, extra, &bin, &args);
            check_exact(&t, &u, &what, &expected);
            let w = &t.profile.accounting.unwinding;
            if mode != "classic" {
                // Classic traces only the counted functions: fewer frames for the exception to end.
                assert_eq!(w.frames_unwound, unwound, "{what}");
            }
            let lost = &t.profile.accounting.lost;
            assert_eq!(lost.lost_calls(), 0, "{what}");
            assert_eq!(lost.frames_abandoned, 0, "{what}");
            // pthread_exit: exit_thread + exit_level1, exit_thread_catch + cancel_level were open.
            let open = if args[0] == "pthread_exit" { 4 } else { 0 };
            if mode != "classic" {
                assert_eq!(lost.unfinished_at_exit, open, "{what}");
            }
            if unwound > 0 && mode != "classic" {
                assert!(w.unwinds > 0 && w.landings > 0, "{what}: {w:?}");
                assert!(
                    t.table.contains(&format!(
                        "{} calls were ended by an exception or panic",
                        perfgate::report::units::count(unwound)
                    )),
                    "{what}: {}",
                    t.table
                );
            }
            // Each pause is said, with its time.
            if w.writer == "stop" && w.pauses > 0 {
                assert!(t.table.contains("the benchmark was paused"), "{what}");
            }
        }
    }
}

#[test]
fn more_traced_frames_than_the_kernel_keeps_still_unwind_as_untraced() {
    let bin = fixture("exceptions");
    let u = untraced(&bin, &["deep"]);
    let classic = classic_selection(&["catch_across", "chain", "thrower"]);
    let classic: Vec<&str> = classic.iter().map(String::as_str).collect();
    for mode in MODES {
        let extra: &[&str] = if mode == "classic" { &classic } else { &[] };
        let t = traced(mode, extra, &bin, &["deep"]);
        assert_eq!(t.behaviour, u, "{mode}");
        // main + catch_across + 70 chain + thrower = 73 frames; 64 are measured.
        assert_eq!(t.profile.accounting.lost.depth_exceeded, 73 - 64, "{mode}");
        assert_eq!(calls(&t.profile, "catch_across(int)").0, 2, "{mode}");
    }
}

#[test]
fn an_exception_that_escapes_to_terminate_aborts_exactly_as_untraced() {
    let bin = fixture("exceptions");
    for case in ["uncaught", "noexcept"] {
        let u = untraced(&bin, &[case]);
        assert_eq!(u.exit.signal, Some(libc::SIGABRT), "{case}");
        assert!(
            u.output.contains("terminate called"),
            "{case}: {}",
            u.output
        );
        let classic = classic_selection(&["noexcept_leaf", "chain", "thrower"]);
        let classic: Vec<&str> = classic.iter().map(String::as_str).collect();
        for mode in MODES {
            let extra: &[&str] = if mode == "classic" { &classic } else { &[] };
            let t = traced(mode, extra, &bin, &[case]);
            assert_eq!(t.behaviour, u, "{mode} {case}");
            // main, chain ×3 (or noexcept_leaf + chain ×2) and thrower were running when it aborted.
            assert_eq!(t.profile.accounting.lost.unfinished_at_exit, 5, "{mode}");
            assert_eq!(t.profile.accounting.unwinding.frames_unwound, 0, "{mode}");
        }
    }
}

/// Nesting: in trace mode the replay shows each frame an exception ended closed at the catch, marked,
/// inside its caller, and the reconstruction finds no gap.
#[test]
fn the_replay_closes_frames_at_the_catch_and_marks_them() {
    let bin = fixture("exceptions");
    let mut args = vec!["--trace".to_string()];
    args.extend(classic_selection(&[
        "rethrow_outer",
        "rethrow_inner",
        "chain",
        "thrower",
    ]));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    for mode in MODES {
        let t = traced(mode, &args, &bin, &["rethrow"]);
        let rec = Recording::open(&t.data).unwrap();
        let r = reconstruct(rec.events().unwrap(), None).unwrap();
        assert_eq!(r.stats.total_gaps(), 0, "{mode}");
        assert_eq!(r.stats.unfinished, 0, "{mode}");
        assert_eq!(r.stats.unwound, 5, "{mode}");
        let name =
            |c: &perfgate::profile::calls::Call| t.profile.functions[c.func as usize].name.clone();
        let ended: Vec<(String, usize)> = r
            .calls
            .iter()
            .filter(|c| c.ended_by == Some(EndedBy::Exception))
            .map(|c| (name(c), c.depth))
            .collect();
        // main(0) → rethrow_outer(1) → rethrow_inner(2) → chain(3..5) → thrower(6): the first exception
        // ends thrower and the chain; the rethrow ends rethrow_inner.
        assert_eq!(
            ended,
            [
                ("thrower(int)".to_string(), 6),
                ("chain(int, int)".to_string(), 5),
                ("chain(int, int)".to_string(), 4),
                ("chain(int, int)".to_string(), 3),
                ("rethrow_inner(int)".to_string(), 2),
            ],
            "{mode}"
        );
        let outer = r
            .calls
            .iter()
            .find(|c| name(c) == "rethrow_outer(int)")
            .unwrap();
        assert!(outer.ended_by.is_none() && !outer.unfinished, "{mode}");
        let replay = common::perfgate()
            .args(["replay", "-i"])
            .arg(&t.data)
            .output()
            .unwrap();
        let replay = text(&replay.stdout);
        assert!(
            replay.contains("thrower(); /* ended by an exception */"),
            "{replay}"
        );
        assert!(
            replay.contains("} /* rethrow_inner, ended by an exception */"),
            "{replay}"
        );
        assert!(replay.contains("} /* rethrow_outer */"), "{replay}");
        assert!(replay.contains("5 ended by an exception"), "{replay}");
    }
}

#[test]
fn a_thread_throwing_in_a_loop_leaves_the_other_threads_exact() {
    let bin = fixture("exceptions");
    let t = traced("session", &[], &bin, &["threads", "300"]);
    let per_thread = t.profile.per_thread();
    let of = |name: &str| -> Vec<u64> {
        let mut v: Vec<u64> = per_thread
            .iter()
            .filter(|s| t.profile.functions[s.func as usize].name == name)
            .map(|s| s.calls)
            .collect();
        v.sort_unstable();
        v
    };
    assert_eq!(of("plain_work(long)"), [300, 300]);
    assert_eq!(of("catch_across(int)"), [300]);
    assert_eq!(of("thrower(int)"), [300]);
}

#[test]
fn rust_panics_through_catch_unwind_behave_as_untraced_with_exact_counts() {
    let bin = fixture("panics");
    assert!(
        bin.exists(),
        "fixtures/bin/panics was not built (no rustc?): see fixtures/build.sh"
    );
    let cases: Vec<(Vec<&str>, Counts)> = vec![
        (
            vec!["catch"],
            vec![
                ("panics::catcher", 3),
                ("panics::chain", 18),
                ("panics::leaf", 4),
                ("panics::with_drop", 1),
            ],
        ),
        (
            vec!["loop", "100"],
            vec![
                ("panics::catcher", 100),
                ("panics::chain", 300),
                ("panics::leaf", 100),
            ],
        ),
        (
            vec!["thread"],
            vec![("panics::chain", 3), ("panics::leaf", 1)],
        ),
        (vec!["backtrace"], vec![("panics::main", 1)]),
        (
            vec!["uncaught"],
            vec![("panics::chain", 3), ("panics::leaf", 1)],
        ),
    ];
    for (args, expected) in cases {
        let u = untraced(&bin, &args);
        for mode in MODES {
            // Classic mode makes two perf events per function: the Rust runtime's thousand functions
            // would take long to attach, so there it traces the program's own functions.
            let extra: &[&str] = if mode == "classic" {
                &["--function", "panics::*"]
            } else {
                &[]
            };
            let what = format!("{mode} {args:?}");
            let t = traced(mode, extra, &bin, &args);
            if mode == "classic" && args[0] == "thread" {
                // Rust's catch is signalled inside std, frames below the catching one (a deep
                // landing): the outermost chain frame lies above that signal and is closed at the next
                // traced event on its thread. With only the program's own functions traced none comes
                // before the thread exits, so it is counted open at exit, not as a completed call.
                let mut fewer = expected.clone();
                fewer[0].1 -= 1;
                check_exact(&t, &u, &what, &fewer);
                assert_eq!(t.profile.accounting.lost.unfinished_at_exit, 1, "{what}");
            } else {
                check_exact(&t, &u, &what, &expected);
            }
            if args[0] != "backtrace" {
                assert!(t.profile.accounting.unwinding.frames_unwound > 0, "{what}");
            }
            assert_eq!(t.profile.accounting.lost.lost_calls(), 0, "{what}");
        }
        if args[0] == "uncaught" {
            assert_eq!(u.exit.code, Some(101));
        } else {
            assert_eq!(u.exit.code, Some(0), "{args:?}");
        }
    }
}

#[test]
fn longjmp_and_siglongjmp_close_the_frames_they_skip() {
    let bin = fixture("jumps");
    // (case, completed calls, frames left, replay lines that must appear in order)
    type Case = (
        &'static str,
        &'static [(&'static str, u64)],
        u64,
        &'static [&'static str],
    );
    let cases: [Case; 5] = [
        (
            "same_slot",
            &[("main", 1), ("plain", 1), ("foo", 0)],
            1,
            &[
                "main() {",
                "  foo(); /* left by longjmp */",
                "  plain();",
                "} /* main */",
            ],
        ),
        (
            "two_levels",
            &[("main", 1), ("foo", 0), ("bar", 0), ("baz", 0)],
            3,
            &[
                "  foo(); /* left by longjmp */",
                "  bar() {",
                "    baz(); /* left by longjmp */",
                "  } /* bar, left by longjmp */",
            ],
        ),
        (
            "two_bufs",
            &[("main", 1), ("foo", 0), ("bar", 0), ("baz", 0)],
            6,
            &[
                "  foo(); /* left by longjmp */",
                "    baz(); /* left by longjmp */",
                "  foo(); /* left by longjmp */",
                "    baz(); /* left by longjmp */",
            ],
        ),
        (
            "signal",
            &[("main", 1), ("after", 1), ("spin", 0), ("handler", 0)],
            2,
            &[
                "  spin() {",
                "    handler(); /* left by longjmp */",
                "  } /* spin, left by longjmp */",
                "  after();",
            ],
        ),
        (
            "altstack",
            &[("main", 1), ("after", 1), ("spin", 0), ("handler", 0)],
            2,
            &[
                "  spin() {",
                "    handler(); /* left by longjmp */",
                "  } /* spin, left by longjmp */",
                "  after();",
            ],
        ),
    ];
    for (case, expected, left, lines) in cases {
        let u = untraced(&bin, &[case]);
        assert_eq!(u.exit.code, Some(0), "{case}");
        for mode in MODES {
            let what = format!("{mode} {case}");
            let t = traced(mode, &["--trace"], &bin, &[case]);
            check_exact(&t, &u, &what, expected);
            // Trace mode counts them as gate mode does: left, not measured.
            assert_eq!(t.profile.accounting.lost.frames_abandoned, left, "{what}");
            assert_eq!(t.profile.accounting.lost.lost_calls(), 0, "{what}");
            let replay = common::perfgate()
                .args(["replay", "-i"])
                .arg(&t.data)
                .output()
                .unwrap();
            let replay = text(&replay.stdout);
            let shape: Vec<&str> = replay
                .lines()
                .filter_map(|l| l.split_once("] | ").map(|(_, f)| f))
                .collect();
            let mut at = 0;
            for want in lines {
                let found = shape[at..].iter().position(|l| l == want);
                assert!(
                    found.is_some(),
                    "{what}: {want:?} not after line {at} in\n{replay}"
                );
                at += found.unwrap_or(0) + 1;
            }
            assert!(!replay.contains("<gap"), "{what}: {replay}");
            let r = reconstruct(Recording::open(&t.data).unwrap().events().unwrap(), None).unwrap();
            assert_eq!(r.stats.jumped, left, "{what}");
            // A handler on sigaltstack runs on another stack that no hooked switch announced: said.
            let foreign = t.profile.accounting.unwinding.foreign_stack_entries;
            assert_eq!(foreign, u64::from(case == "altstack"), "{what}");
            assert_eq!(
                t.table
                    .contains("ran on another stack with no switch perfgate knows"),
                case == "altstack",
                "{what}: {}",
                t.table
            );
        }
    }
}

#[test]
fn stack_switches_run_as_untraced_and_say_what_they_cost_the_trace() {
    let bin = fixture("ucontext");
    let u = untraced(&bin, &[]);
    assert_eq!(u.exit.code, Some(42));
    assert_eq!(u.output.lines().count(), 8, "{}", u.output);
    for mode in MODES {
        let t = traced(mode, &["--trace"], &bin, &[]);
        check_exact(
            &t,
            &u,
            mode,
            &[
                ("main", 1),
                ("bar", 1),
                ("baz", 4),
                ("heap_coroutine", 1),
                ("foo", 0),
                ("co_body", 0),
                ("co_leaf", 0),
            ],
        );
        let w = &t.profile.accounting.unwinding;
        // foo, co_body and the two co_leaf calls were on stacks a switch left: their returns are not seen.
        assert_eq!(w.frames_switched, 4, "{mode}: {w:?}");
        assert_eq!(w.stack_switches, 8, "{mode}: {w:?}");
        assert_eq!(w.switchers_used, ["makecontext", "swapcontext"], "{mode}");
        assert_eq!(w.foreign_stack_entries, 0, "{mode}");
        assert!(
            t.table.contains("8 stack switches") && t.table.contains("4 calls left on a stack"),
            "{mode}: {}",
            t.table
        );
        let r = reconstruct(Recording::open(&t.data).unwrap().events().unwrap(), None).unwrap();
        assert_eq!(r.stats.total_gaps(), 0, "{mode}");
        let switched = r
            .calls
            .iter()
            .filter(|c| c.ended_by == Some(EndedBy::Switch))
            .count();
        assert_eq!(switched, 4, "{mode}");
    }
}

#[test]
fn recursion_counts_inclusive_time_once_per_outermost_call() {
    let bin = fixture("fib");
    for mode in MODES {
        let t = traced(mode, &[], &bin, &[]);
        let p = &t.profile;
        assert_eq!(calls(p, "fib"), (5919, 5919 - 3), "{mode}");
        // Mutual recursion: each function's outermost call is the one with no call of itself below.
        assert_eq!(calls(p, "is_even"), (3 * 8, 3 * 8 - 3), "{mode}");
        assert_eq!(calls(p, "is_odd"), (3 * 8, 3 * 8 - 3), "{mode}");
        let merged = p.per_function();
        let stat = |n: &str| {
            merged
                .iter()
                .find(|s| p.functions[s.func as usize].name == n)
                .unwrap()
                .clone()
        };
        let (main, fib) = (stat("main"), stat("fib"));
        let (even, odd) = (stat("is_even"), stat("is_odd"));
        // Inclusive time: each outermost call once, so a callee never exceeds its caller.
        assert!(fib.inclusive.sum_ns <= main.inclusive.sum_ns, "{mode}");
        assert!(
            even.inclusive.sum_ns + fib.inclusive.sum_ns <= main.inclusive.sum_ns,
            "{mode}"
        );
        assert!(odd.inclusive.sum_ns <= even.inclusive.sum_ns, "{mode}");
        assert_eq!(fib.inclusive.hist.count(), 3, "{mode}");
        assert_eq!(odd.inclusive.hist.count(), 3, "{mode}");
        // Self time of every call, as before.
        assert_eq!(fib.self_time.hist.count(), 5919, "{mode}");
        assert!(fib.self_time.sum_ns <= fib.inclusive.sum_ns, "{mode}");
    }
}

#[test]
fn the_writer_is_the_one_this_kernel_allows() {
    let bin = fixture("exceptions");
    let t = traced("session", &[], &bin, &["across"]);
    let want = if perfgate::bpf::bpf_writes_allowed() {
        "bpf"
    } else {
        "stop"
    };
    let w = &t.profile.accounting.unwinding;
    assert_eq!(w.writer, want);
    if want == "stop" {
        // Three throws: a restore at each unwinder entry and a re-hijack at each catch.
        assert_eq!(w.pauses, 6, "{w:?}");
        assert!(w.paused_ns > 0);
    } else {
        assert_eq!(w.pauses, 0);
    }
}
