//! Trace mode and its views on real recordings: replay call trees, Chrome trace, folded stacks, flame
//! graphs, and a forced loss of events.
mod common;
use common::*;

use perfgate::profile::file::Recording;

/// `record --trace` into a temp file; returns the recording.
fn trace(args: &[&str], cmd: &[&str]) -> (tempfile::TempDir, std::path::PathBuf, Recording) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("t.data");
    let out = record_to(&data)
        .arg("--trace")
        .args(args)
        .arg("--")
        .args(cmd)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let rec = Recording::open(&data).unwrap();
    (dir, data, rec)
}

fn perfgate_out(args: &[&str], data: &std::path::Path) -> String {
    let out = perfgate().args(args).arg("-i").arg(data).output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    text(&out.stdout)
}

/// Replay with durations removed and TIDs numbered in order of appearance, for snapshots that do not
/// depend on timing.
fn shape(replay: &str) -> String {
    let mut tids: Vec<String> = Vec::new();
    let mut out = String::new();
    for line in replay.lines() {
        if line.starts_with("# command:") || line.starts_with("# DURATION") {
            continue;
        }
        if line.starts_with('#') {
            out.push_str(line);
            out.push('\n');
            continue;
        }
        let (Some(open), Some(close)) = (line.find('['), line.find(']')) else {
            out.push_str(line);
            out.push('\n');
            continue;
        };
        let tid = line[open + 1..close].trim().to_string();
        let n = tids.iter().position(|t| *t == tid).unwrap_or_else(|| {
            tids.push(tid.clone());
            tids.len() - 1
        });
        out.push_str(&format!("T{n} {}\n", &line[close + 1..]));
    }
    out
}

#[test]
fn replay_of_work() {
    let (_d, data, _) = trace(&[], &[fixture("work").to_str().unwrap(), "10"]);
    insta::assert_snapshot!(shape(&perfgate_out(&["replay"], &data)), @r"
    T0  | main() {
    T0  |   work1();
    T0  |   work2();
    T0  | } /* main */
    # 3 calls shown, 0 hidden, 0 gaps, 0 unfinished
    ");
}

#[test]
fn replay_of_recursion() {
    let (_d, data, _) = trace(&[], &[fixture("recursive").to_str().unwrap(), "2", "2"]);
    insta::assert_snapshot!(shape(&perfgate_out(&["replay"], &data)), @r"
    T0  | main() {
    T0  |   recurse() {
    T0  |     recurse() {
    T0  |       recurse();
    T0  |     } /* recurse */
    T0  |   } /* recurse */
    T0  |   recurse() {
    T0  |     recurse() {
    T0  |       recurse();
    T0  |     } /* recurse */
    T0  |   } /* recurse */
    T0  | } /* main */
    # 7 calls shown, 0 hidden, 0 gaps, 0 unfinished
    ");
}

#[test]
fn replay_of_a_library_call_tree() {
    let (_d, data, _) = trace(
        &["--lib", "libfixture*"],
        &[fixture("uselib").to_str().unwrap()],
    );
    let out = shape(&perfgate_out(&["replay", "--depth", "2"], &data));
    let first: String = out.lines().take(4).map(|l| format!("{l}\n")).collect();
    insta::assert_snapshot!(first, @r"
    T0  | main() {
    T0  |   fx_compute();
    T0  |   fx_compute();
    T0  |   fx_compute();
    ");
    assert_eq!(out.matches("fx_compute();").count(), 100);
    let full = shape(&perfgate_out(&["replay"], &data));
    assert_eq!(full.matches("|     fx_add();").count(), 100);
    assert_eq!(full.matches("|     fx_mul();").count(), 100);
}

#[test]
fn replay_of_cpp_main_thread() {
    let (_d, data, _) = trace(
        &["--function", "shapes::*", "--function", "main"],
        &[fixture("cpp").to_str().unwrap()],
    );
    insta::assert_snapshot!(shape(&perfgate_out(&["replay"], &data)));
}

#[test]
fn replay_of_threads_is_exact_per_thread_and_interleaved_in_time() {
    let (_d, data, rec) = trace(&[], &[fixture("threads").to_str().unwrap()]);
    let full = perfgate_out(&["replay"], &data);
    let mut worker_tids: Vec<u32> = rec.profile.stats.iter().map(|s| s.tid).collect();
    worker_tids.sort();
    worker_tids.dedup();
    assert_eq!(worker_tids.len(), 5, "main and 4 workers");
    let mut expected_worker = String::from("T0  | thread_main() {\n");
    for _ in 0..1000 {
        expected_worker.push_str("T0  |   a() {\nT0  |     b() {\nT0  |       c();\nT0  |     } /* b */\nT0  |   } /* a */\n");
    }
    expected_worker.push_str("T0  | } /* thread_main */\n");
    let mut workers = 0;
    for tid in &worker_tids {
        let one = shape(&perfgate_out(&["replay", "--tid", &tid.to_string()], &data));
        let body: String = one
            .lines()
            .filter(|l| !l.starts_with('#'))
            .map(|l| format!("{l}\n"))
            .collect();
        if body.contains("main() {") && !body.contains("thread_main") || body == "T0  | main();\n" {
            continue;
        }
        assert_eq!(body, expected_worker, "thread {tid}");
        workers += 1;
    }
    assert_eq!(workers, 4);
    // Interleaved: lines of different threads alternate somewhere in the full replay.
    let tids_in_order: Vec<&str> = full
        .lines()
        .filter_map(|l| l.split('[').nth(1)?.split(']').next())
        .collect();
    let switches = tids_in_order.windows(2).filter(|w| w[0] != w[1]).count();
    assert!(
        switches > 4,
        "threads interleaved in time order ({switches} switches)"
    );
    assert!(
        full.contains("# 12,005 calls shown, 0 hidden, 0 gaps, 0 unfinished"),
        "{}",
        full.lines().last().unwrap()
    );
}

#[test]
fn replay_filters() {
    let (_d, data, _) = trace(&[], &[fixture("recursive").to_str().unwrap(), "2", "1"]);
    insta::assert_snapshot!(shape(&perfgate_out(&["replay", "--depth", "2"], &data)), @r"
    T0  | main() {
    T0  |   recurse();
    T0  | } /* main */
    # 2 calls shown, 2 hidden, 0 gaps, 0 unfinished
    ");
    insta::assert_snapshot!(shape(&perfgate_out(&["replay", "--no-function", "main"], &data)), @r"
    T0  | recurse() {
    T0  |   recurse() {
    T0  |     recurse();
    T0  |   } /* recurse */
    T0  | } /* recurse */
    # 3 calls shown, 1 hidden, 0 gaps, 0 unfinished
    ");
    // A time filter of an hour hides everything.
    let out = shape(&perfgate_out(&["replay", "--time-filter", "3600s"], &data));
    assert!(out.contains("# 0 calls shown, 4 hidden"), "{out}");
}

#[test]
fn chrome_trace_has_one_complete_event_per_call_properly_nested() {
    let (_d, data, rec) = trace(&[], &[fixture("threads").to_str().unwrap()]);
    let json = perfgate()
        .args(["report", "--format", "chrome", "-i"])
        .arg(&data)
        .output()
        .unwrap();
    assert!(json.status.success());
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).expect("valid JSON");
    let events = v["traceEvents"].as_array().unwrap();
    let x: Vec<&serde_json::Value> = events.iter().filter(|e| e["ph"] == "X").collect();
    let total_calls: u64 = rec.profile.stats.iter().map(|s| s.calls).sum();
    assert_eq!(x.len() as u64, total_calls);
    assert!(events
        .iter()
        .any(|e| e["ph"] == "M" && e["name"] == "thread_name"));
    // Every b() lies within an a() of the same thread.
    let spans = |name: &str| -> Vec<(u64, f64, f64)> {
        x.iter()
            .filter(|e| e["name"] == name)
            .map(|e| {
                (
                    e["tid"].as_u64().unwrap(),
                    e["ts"].as_f64().unwrap(),
                    e["ts"].as_f64().unwrap() + e["dur"].as_f64().unwrap(),
                )
            })
            .collect()
    };
    let a = spans("a");
    for (tid, s, e) in spans("b") {
        assert!(
            a.iter()
                .any(|&(t, s2, e2)| t == tid && s2 <= s && e <= e2 + 1e-3),
            "b at {s} not inside an a()"
        );
    }
}

#[test]
fn folded_stacks_sum_to_the_recorded_totals_and_the_svg_is_well_formed() {
    let (dir, data, rec) = trace(&[], &[fixture("work").to_str().unwrap(), "10"]);
    let folded = perfgate_out(&["report", "--format", "folded"], &data);
    let sum: u64 = folded
        .lines()
        .map(|l| l.rsplit(' ').next().unwrap().parse::<u64>().unwrap())
        .sum();
    let merged = rec.profile.per_function();
    let main = func(&rec.profile, &merged, "main").unwrap();
    assert_eq!(
        sum, main.inclusive.sum_ns,
        "folded self times add up to main's inclusive time"
    );
    assert!(folded.contains("main;work2 "), "{folded}");
    let svg = dir.path().join("f.svg");
    let out = perfgate()
        .args(["report", "--format", "flame-graph", "-o"])
        .arg(&svg)
        .arg("-i")
        .arg(&data)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let svg = std::fs::read_to_string(&svg).unwrap();
    assert!(svg.starts_with("<?xml") && svg.trim_end().ends_with("</svg>"));
    assert_eq!(svg.matches("<svg").count(), svg.matches("</svg>").count());
    for f in ["main", "work1", "work2"] {
        assert!(
            svg.contains(&format!(">{f} ")) || svg.contains(&format!("{f} (")),
            "{f} in the SVG"
        );
    }
    // A differential flame graph against itself renders too.
    let diff = dir.path().join("d.svg");
    let out = perfgate()
        .args(["report", "--format", "flame-graph", "--diff"])
        .arg(&data)
        .arg("-o")
        .arg(&diff)
        .arg("-i")
        .arg(&data)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(std::fs::read_to_string(&diff).unwrap().contains("work2"));
}

#[test]
fn views_that_need_events_say_so() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("g.data");
    let out = record_to(&data)
        .arg("--")
        .arg(fixture("work"))
        .arg("10")
        .output()
        .unwrap();
    assert!(out.status.success());
    for args in [
        &["replay"][..],
        &["report", "--format", "chrome"],
        &["report", "--format", "flame-graph"],
    ] {
        let out = perfgate().args(args).arg("-i").arg(&data).output().unwrap();
        assert_clean_error(&out, "record with `perfgate record --trace`");
    }
}

#[test]
fn a_ring_buffer_overflow_is_counted_reported_and_replay_stays_consistent() {
    // 4 KiB of ring buffer for 4 threads × 3,000 calls: most events cannot fit.
    let (_d, data, rec) = trace(
        &["--buffer-size", "4K"],
        &[fixture("threads").to_str().unwrap()],
    );
    let lost = &rec.profile.accounting.lost;
    assert!(lost.events_dropped > 0, "no loss forced");
    assert_eq!(
        lost.events_dropped,
        lost.events_dropped_per_cpu.iter().sum::<u64>()
    );
    // The in-kernel totals are still exact.
    assert_eq!(calls(&rec.profile, "a"), 4000);
    let report = perfgate_out(&["report"], &data);
    assert!(report.contains("trace events dropped"), "{report}");
    assert!(report.contains("events dropped per CPU: cpu"), "{report}");
    let out = perfgate()
        .arg("replay")
        .arg("-i")
        .arg(&data)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("events were lost while recording"));
    let replay = text(&out.stdout);
    // The loss shows in the replay: the summary counts it, and the calls it cut are marked, as a gap where
    // it broke a thread's nesting, or as unfinished where it took a thread's last exits.
    assert!(
        replay.contains("the kernel dropped"),
        "{}",
        replay.lines().last().unwrap_or("")
    );
    assert!(
        replay.contains("<gap:") || replay.contains(", unfinished */"),
        "the cut calls are marked"
    );
    // Consistency: per thread, every closing line names the function opened at that level.
    let mut stacks: std::collections::HashMap<String, Vec<String>> = Default::default();
    for line in replay.lines().filter(|l| !l.starts_with('#')) {
        let Some((head, body)) = line.split_once("] | ") else {
            continue;
        };
        let tid = head.rsplit('[').next().unwrap().trim().to_string();
        let stack = stacks.entry(tid).or_default();
        let trimmed = body.trim_start();
        let depth = (body.len() - trimmed.len()) / 2;
        if let Some(name) = trimmed.strip_suffix("() {") {
            stack.truncate(depth);
            stack.push(name.to_string());
        } else if let Some(name) = trimmed
            .strip_prefix("} /* ")
            .and_then(|r| r.strip_suffix(" */"))
        {
            let name = name.strip_suffix(", unfinished").unwrap_or(name);
            assert_eq!(
                stack.get(depth).map(String::as_str),
                Some(name),
                "closing {name} at depth {depth}: {stack:?}"
            );
            stack.truncate(depth);
        }
    }
}
