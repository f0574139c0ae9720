//! perfgate's own peak memory (resident set) against the number of calls: gate mode, trace mode, and the
//! views that read a trace (replay, Chrome JSON, flame graph), each run as its own `perfgate` process that
//! writes its own `VmHWM` as it exits ([`crate::cmd::PEAK_RSS_FILE_ENV`]; `wait4`'s `ru_maxrss` would
//! count the bench's own memory too, which the child shares until its exec). Gate mode aggregates in the kernel and the views stream,
//! so every figure should stay flat from 1 M to 10 M calls while the recording grows with the calls.
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{bail, Context, Result};

use super::{fixture, table};
use crate::cli::BenchArgs;
use crate::cmd::status;
use crate::files::PrivateDir;
use crate::profile::file::Recording;
use crate::report::units::{count, duration};

/// Frames per repetition of `recursive` (depth 49: 50 calls of `recurse`).
const DEPTH: u64 = 49;
/// Calls per size measured.
const SIZES: [u64; 2] = [1_000_000, 10_000_000];

/// One `perfgate` process: its wall time and peak resident set.
struct Peak {
    wall_ns: f64,
    rss: u64,
}

/// Runs this perfgate binary with `args`, its stdout discarded, and measures it.
fn perfgate(args: &[&std::ffi::OsStr], scratch: &PrivateDir) -> Result<Peak> {
    let exe = std::env::current_exe().context("finding perfgate's own executable")?;
    let peak_file = scratch.file("memory-peak");
    let _ = std::fs::remove_file(&peak_file);
    let mut cmd = Command::new(exe);
    cmd.args(args)
        .env(crate::cmd::PEAK_RSS_FILE_ENV, &peak_file)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let t0 = Instant::now();
    let mut child = cmd.spawn().context("starting perfgate")?;
    // Read stderr on a thread: a child blocked on a full pipe would never exit.
    let mut err = child.stderr.take();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        if let Some(e) = err.as_mut() {
            let _ = std::io::Read::read_to_string(e, &mut s);
        }
        s
    });
    let exit = child.wait()?;
    let wall_ns = t0.elapsed().as_nanos() as f64;
    let err = reader.join().unwrap_or_default();
    if !exit.success() {
        let shown: Vec<String> = args.iter().map(|a| a.to_string_lossy().into()).collect();
        bail!(
            "perfgate {} failed ({exit}): {}",
            shown.join(" "),
            err.lines().last().unwrap_or("")
        );
    }
    let rss = std::fs::read_to_string(&peak_file)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .with_context(|| {
            format!(
                "perfgate did not write its peak memory to {}",
                peak_file.display()
            )
        })?;
    Ok(Peak { wall_ns, rss })
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

/// The rows of one size (`calls` calls of `program`, the `recursive` fixture): each step's wall time
/// and peak RSS; and the peaks in the order gate, trace, replay, Chrome, flame graph.
fn measure(
    program: &Path,
    calls: u64,
    scratch: &PrivateDir,
) -> Result<(Vec<Vec<String>>, [u64; 5])> {
    let reps = (calls / (DEPTH + 1)).to_string();
    let depth = DEPTH.to_string();
    let gate_out = scratch.file("memory-gate.data");
    let trace_out = scratch.file("memory-trace.data");
    let os = |s: &str| std::ffi::OsString::from(s);
    let record = |trace: bool, out: &Path| -> Result<Peak> {
        let mut args = vec![os("record"), os("--no-calibrate"), os("--no-follow")];
        if trace {
            args.push(os("--trace"));
        }
        args.extend([os("-o"), out.as_os_str().to_os_string(), os("--")]);
        args.extend([program.as_os_str().to_os_string(), os(&depth), os(&reps)]);
        let refs: Vec<&std::ffi::OsStr> = args.iter().map(|a| a.as_os_str()).collect();
        perfgate(&refs, scratch)
    };
    status(&format!(
        "bench memory: {} calls in gate mode",
        count(calls)
    ));
    let gate = record(false, &gate_out)?;
    status(&format!(
        "bench memory: {} calls in trace mode",
        count(calls)
    ));
    let trace = record(true, &trace_out)?;
    let rec = Recording::open(&trace_out)?;
    let traced = rec.profile.stats.iter().map(|s| s.calls).sum::<u64>();
    let lost = rec.profile.accounting.lost.events_dropped;
    let size = std::fs::metadata(&trace_out)?.len();
    let input = trace_out.as_os_str();
    let view = |args: &[&str]| -> Result<Peak> {
        let mut v: Vec<&std::ffi::OsStr> = args.iter().map(std::ffi::OsStr::new).collect();
        v.extend([std::ffi::OsStr::new("-i"), input]);
        perfgate(&v, scratch)
    };
    status(&format!("bench memory: replay of {} calls", count(calls)));
    let replay = view(&["replay"])?;
    status(&format!(
        "bench memory: Chrome JSON of {} calls",
        count(calls)
    ));
    let chrome = view(&["report", "--format", "chrome"])?;
    status(&format!(
        "bench memory: flame graph of {} calls",
        count(calls)
    ));
    let flame = view(&["report", "--format", "flame-graph"])?;
    let rows = step_rows(
        calls,
        traced,
        [
            ("record (gate mode)", &gate, String::new()),
            (
                "record --trace",
                &trace,
                format!("{} events lost; recording {}", count(lost), mib(size)),
            ),
            ("replay", &replay, String::new()),
            ("report --format chrome", &chrome, String::new()),
            ("report --format flame-graph", &flame, String::new()),
        ],
    );
    let _ = std::fs::remove_file(&gate_out);
    let _ = std::fs::remove_file(&trace_out);
    Ok((
        rows,
        [gate.rss, trace.rss, replay.rss, chrome.rss, flame.rss],
    ))
}

/// The rows of one size: per step its wall time, peak RSS and note; then a row saying so when fewer
/// than the `calls` made were traced.
fn step_rows(calls: u64, traced: u64, steps: [(&str, &Peak, String); 5]) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    for (what, p, note) in steps {
        rows.push(vec![
            count(calls),
            what.to_string(),
            duration(p.wall_ns),
            mib(p.rss),
            if note.is_empty() { "-".into() } else { note },
        ]);
    }
    if traced < calls {
        rows.push(vec![
            count(calls),
            format!("(only {} calls traced)", count(traced)),
            "-".into(),
            "-".into(),
            "-".into(),
        ]);
    }
    rows
}

pub(super) fn run(a: &BenchArgs, scratch: &PrivateDir) -> Result<String> {
    let program = fixture(a, "recursive")?;
    let mut rows = Vec::new();
    let mut peaks: Vec<(u64, [u64; 5])> = Vec::new();
    for calls in SIZES {
        let (size_rows, peak) = measure(&program, calls, scratch)?;
        rows.extend(size_rows);
        peaks.push((calls, peak));
    }
    let mut s = format!(
        "MEMORY: perfgate's peak resident set (each step its own process, its VmHWM at exit), \
         `recursive {DEPTH} N` (tiny calls, 50 deep)\n"
    );
    s.push_str(&table(
        &["calls", "step", "wall time", "peak RSS", "note"],
        rows,
        2,
    ));
    if let [(c0, small), (c1, large)] = peaks.as_slice() {
        let worst = small
            .iter()
            .zip(large)
            .map(|(a, b)| *b as f64 / (*a).max(1) as f64)
            .fold(0.0f64, f64::max);
        s.push_str(&format!(
            "AIM: memory flat in the number of calls: {}× the calls, at most {worst:.2}× the peak RSS of any step\n",
            c1 / c0.max(&1)
        ));
    }
    Ok(s)
}
