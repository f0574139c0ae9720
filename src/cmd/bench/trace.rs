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

const DEPTH: u64 = 49;
const REPS: u64 = 2_000;
/// `recurse` DEPTH + 1 times per repetition, plus `main`.
const EXPECTED_CALLS: u64 = REPS * (DEPTH + 1) + 1;

/// The fixture, its arguments, where its stdout goes.
struct Setup {
    target: Target,
    stdout: std::path::PathBuf,
}

/// Medians over the runs of one mode (or the last value, for counts).
#[derive(Default)]
struct Figures {
    wall: Vec<f64>,
    calls: u64,
    events: Vec<f64>,
    rates: Vec<f64>,
    bytes_per_call: Vec<f64>,
    dropped: u64,
}

pub(super) fn run(a: &BenchArgs, scratch: &PrivateDir) -> Result<String> {
    let program = fixture(a, "recursive")?;
    let (depth_s, reps_s) = (DEPTH.to_string(), REPS.to_string());
    let args = [depth_s.as_str(), reps_s.as_str()];
    let setup = Setup {
        target: Target::new(&argv(&program, &args), &Selection::default())?,
        stdout: scratch.file("recursive.out"),
    };
    let mut plain = Vec::new();
    for i in 1..=REPEATS {
        status(&format!(
            "bench trace: recursive {DEPTH} {REPS} untraced, run {i}/{REPEATS}"
        ));
        plain.push(untraced(&program, &args)?.1);
    }
    let gate = gate_mode(&setup)?;
    let trace = trace_mode(&setup, scratch)?;
    Ok(render(median(&plain), &gate, &trace))
}

fn gate_mode(setup: &Setup) -> Result<Figures> {
    let mut f = Figures::default();
    for i in 1..=REPEATS {
        status(&format!(
            "bench trace: recursive {DEPTH} {REPS} in gate mode, run {i}/{REPEATS}"
        ));
        let p = traced(&setup.target, false, &setup.stdout, None)?;
        f.wall.push(p.wall_ns as f64);
        f.calls = p.per_function().iter().map(|s| s.calls).sum::<u64>();
    }
    Ok(f)
}

fn trace_mode(setup: &Setup, scratch: &PrivateDir) -> Result<Figures> {
    let mut f = Figures::default();
    for i in 1..=REPEATS {
        status(&format!(
            "bench trace: recursive {DEPTH} {REPS} in trace mode, run {i}/{REPEATS}"
        ));
        let file = scratch.file("trace.data");
        let mut writer = Writer::create(&file, &crate::session::header(&setup.target))?;
        let p = traced(&setup.target, true, &setup.stdout, Some(&mut writer))?;
        let n = writer.events();
        writer.finish(&p)?;
        let size = std::fs::metadata(&file)
            .with_context(|| format!("cannot read {}", file.display()))?
            .len();
        std::fs::remove_file(&file).ok();
        f.calls = p.per_function().iter().map(|s| s.calls).sum::<u64>();
        f.wall.push(p.wall_ns as f64);
        f.rates.push(n as f64 / (p.wall_ns as f64 / 1e9));
        f.bytes_per_call.push(size as f64 / f.calls.max(1) as f64);
        f.events.push(n as f64);
        f.dropped = f.dropped.max(p.accounting.lost.events_dropped);
    }
    Ok(f)
}

fn render(untraced: f64, gate: &Figures, trace: &Figures) -> String {
    let (g, t) = (median(&gate.wall), median(&trace.wall));
    let per_call = |w: f64| duration((w - untraced) / EXPECTED_CALLS as f64);
    let dash = || "-".to_string();
    let rows = vec![
        vec![
            "untraced".into(),
            duration(untraced),
            "1.00×".into(),
            dash(),
            dash(),
            dash(),
            dash(),
            dash(),
        ],
        vec![
            "gate mode (in-kernel aggregation)".into(),
            duration(g),
            ratio(g / untraced),
            per_call(g),
            "none leave the kernel".into(),
            dash(),
            "0".into(),
            dash(),
        ],
        vec![
            "trace mode (events to a file)".into(),
            duration(t),
            ratio(t / untraced),
            per_call(t),
            count(median(&trace.events) as u64),
            format!("{}/s", count(median(&trace.rates) as u64)),
            count(trace.dropped),
            format!("{:.1} B", median(&trace.bytes_per_call)),
        ],
    ];
    let mut s = format!(
        "TRACE THROUGHPUT: `recursive {DEPTH} {REPS}` = {} calls of a tiny function (recurse, emulated probe), \
         median of {REPEATS} runs\n",
        count(EXPECTED_CALLS)
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
        if c == EXPECTED_CALLS {
            "exact".to_string()
        } else {
            format!("{} (MISMATCH)", count(c))
        }
    };
    s.push_str(&format!(
        "calls counted: gate mode {}, trace mode {}; wall = process start to exit (untraced: spawn to exit; \
         traced: release to exit, polled every 2 ms in gate mode); trace bytes include the file's header and trailer\n",
        counted(gate.calls),
        counted(trace.calls)
    ));
    s
}
