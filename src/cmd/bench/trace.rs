//! Throughput of a call-heavy benchmark: gate mode (in-kernel aggregation) and trace mode (events to a
//! file).
use anyhow::{Context, Result};

use super::{argv, fixture, median, ratio, table, traced, untraced, REPEATS};
use crate::cli::BenchArgs;
use crate::cmd::status;
use crate::files::PrivateDir;
use crate::plan::Selection;
use crate::profile::file::Writer;
use crate::report::units::{count, duration};
use crate::session::Target;

pub(super) fn run(a: &BenchArgs, scratch: &PrivateDir) -> Result<String> {
    const DEPTH: u64 = 49;
    const REPS: u64 = 2_000;
    let expected_calls = REPS * (DEPTH + 1) + 1; // recurse, plus main
    let program = fixture(a, "recursive")?;
    let (depth_s, reps_s) = (DEPTH.to_string(), REPS.to_string());
    let args = [depth_s.as_str(), reps_s.as_str()];
    let stdout = scratch.file("recursive.out");
    let target = Target::new(&argv(&program, &args), &Selection::default())?;

    let mut plain = Vec::new();
    for i in 1..=REPEATS {
        status(&format!(
            "bench trace: recursive {DEPTH} {REPS} untraced, run {i}/{REPEATS}"
        ));
        plain.push(untraced(&program, &args)?.1);
    }
    let mut gate_wall = Vec::new();
    let mut gate_calls = 0;
    for i in 1..=REPEATS {
        status(&format!(
            "bench trace: recursive {DEPTH} {REPS} in gate mode, run {i}/{REPEATS}"
        ));
        let p = traced(&target, false, &stdout, None)?;
        gate_wall.push(p.wall_ns as f64);
        gate_calls = p.per_function().iter().map(|s| s.calls).sum::<u64>();
    }
    let mut trace_wall = Vec::new();
    let (mut rates, mut bytes_per_call, mut dropped, mut events) =
        (Vec::new(), Vec::new(), 0u64, Vec::new());
    let mut trace_calls = 0;
    for i in 1..=REPEATS {
        status(&format!(
            "bench trace: recursive {DEPTH} {REPS} in trace mode, run {i}/{REPEATS}"
        ));
        let file = scratch.file("trace.data");
        let mut writer = Writer::create(&file, &crate::session::header(&target))?;
        let p = traced(&target, true, &stdout, Some(&mut writer))?;
        let n = writer.events();
        writer.finish(&p)?;
        let size = std::fs::metadata(&file)
            .with_context(|| format!("cannot read {}", file.display()))?
            .len();
        std::fs::remove_file(&file).ok();
        let calls = p.per_function().iter().map(|s| s.calls).sum::<u64>();
        trace_calls = calls;
        trace_wall.push(p.wall_ns as f64);
        rates.push(n as f64 / (p.wall_ns as f64 / 1e9));
        bytes_per_call.push(size as f64 / calls.max(1) as f64);
        events.push(n as f64);
        dropped = dropped.max(p.accounting.lost.events_dropped);
    }
    let u = median(&plain);
    let (g, t) = (median(&gate_wall), median(&trace_wall));
    let per_call = |w: f64| duration((w - u) / expected_calls as f64);
    let rows = vec![
        vec![
            "untraced".into(),
            duration(u),
            "1.00×".into(),
            "-".into(),
            "-".into(),
            "-".into(),
            "-".into(),
            "-".into(),
        ],
        vec![
            "gate mode (in-kernel aggregation)".into(),
            duration(g),
            ratio(g / u),
            per_call(g),
            "none leave the kernel".into(),
            "-".into(),
            "0".into(),
            "-".into(),
        ],
        vec![
            "trace mode (events to a file)".into(),
            duration(t),
            ratio(t / u),
            per_call(t),
            count(median(&events) as u64),
            format!("{}/s", count(median(&rates) as u64)),
            count(dropped),
            format!("{:.1} B", median(&bytes_per_call)),
        ],
    ];
    let mut s = format!(
        "TRACE THROUGHPUT: `recursive {DEPTH} {REPS}` = {} calls of a tiny function (recurse, emulated probe), \
         median of {REPEATS} runs\n",
        count(expected_calls)
    );
    s.push_str(&table(
        &[
            "mode",
            "wall time",
            "× untraced",
            "added per call",
            "events recorded",
            "events / s",
            "dropped (max)",
            "trace bytes / call",
        ],
        rows,
        1,
    ));
    let counted = |c: u64| {
        if c == expected_calls {
            "exact".to_string()
        } else {
            format!("{} (MISMATCH)", count(c))
        }
    };
    s.push_str(&format!(
        "calls counted: gate mode {}, trace mode {}; wall = process start to exit (untraced: spawn to exit; \
         traced: release to exit, polled every 2 ms in gate mode); trace bytes include the file's header and trailer\n",
        counted(gate_calls),
        counted(trace_calls)
    ));
    Ok(s)
}
