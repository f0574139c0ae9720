//! Calibration of the probe's own cost, which is part of every measured inclusive time.
//!
//! perfgate traces a hidden mode of its own binary (`__calibrate`) that calls four tiny assembly functions
//! in loops: one whose entry is a 5-byte nop, one starting with `push %rbp` (emulated by the kernel), one
//! starting with `mov` (single-stepped), and an untraced twin for the bare loop cost. The child times its
//! loops itself, so the difference per call is exactly what one traced call adds to its caller's inclusive
//! time: entry and return probe, with the uretprobe trampoline. The BPF program then accumulates that cost
//! over each frame's traced descendants, so a compensated inclusive time can be shown beside the raw one.
use std::ffi::OsString;
use std::time::Instant;

use anyhow::{bail, Context, Result};

use super::{RunOptions, Target, TraceOptions};
use crate::plan::{self, Selection};
use crate::profile::ProbeCosts;
use crate::run::{RunAs, Stdout};
use crate::sys::probe_targets::Target as Probed;

/// The hidden first argument of the calibration child.
pub const CALIBRATE_ARG: &str = "__calibrate";

const FAST_CALLS: u32 = 40_000;
const SLOW_CALLS: u32 = 2_000;

/// ns per call of `f`, the fastest of three timed loops.
fn time_loop(f: Probed, calls: u32) -> f64 {
    let mut best = f64::INFINITY;
    for _ in 0..3 {
        let t = Instant::now();
        let mut acc = 0u32;
        for i in 0..calls {
            acc = acc.wrapping_add(f.call(i));
        }
        std::hint::black_box(acc);
        best = best.min(t.elapsed().as_nanos() as f64 / calls as f64);
    }
    best
}

/// The calibration child: prints `plain nop5 emulated sstep` loop costs in ns per call.
pub fn calibrate_main() -> i32 {
    let plain = time_loop(Probed::Plain, FAST_CALLS);
    let nop5 = time_loop(Probed::Nop5, FAST_CALLS);
    let emulated = time_loop(Probed::Emulated, FAST_CALLS);
    let sstep = time_loop(Probed::SingleStep, SLOW_CALLS);
    println!("{plain} {nop5} {emulated} {sstep}");
    0
}

/// Measures what one traced call costs its caller, per probe kind.
pub fn calibrate(trace: &TraceOptions) -> Result<ProbeCosts> {
    let exe = std::env::current_exe().context("locating perfgate's own binary for calibration")?;
    let sel = Selection {
        functions: [Probed::Nop5, Probed::Emulated, Probed::SingleStep]
            .map(|t| t.symbol().to_string())
            .to_vec(),
        ..Selection::default()
    };
    let plan = plan::build(&exe, &sel)
        .context("calibration needs perfgate's symbols (was the binary stripped?)")?;
    let target = Target {
        argv: vec![exe.clone().into_os_string(), OsString::from(CALIBRATE_ARG)],
        program: exe,
        plan,
        selection: sel,
        plan_cache: Default::default(),
    };
    let dir = crate::files::PrivateDir::new("calibration")?;
    let out = dir.file("calibration.txt");
    let opts = RunOptions {
        trace: TraceOptions {
            events: false,
            probe_cost: None,
            timeout: None,
            count_only: false,
            ..trace.clone()
        },
        run_as: RunAs::Same,
        stdout: Stdout::File(out.clone()),
        follow: false,
    };
    let result = super::trace_once(&target, &opts);
    let text = std::fs::read_to_string(&out).unwrap_or_default();
    let profile = result?;
    if !profile.exit.success() {
        bail!("calibration run failed ({})", profile.exit);
    }
    let v: Vec<f64> = text
        .split_whitespace()
        .filter_map(|t| t.parse().ok())
        .collect();
    let [plain, nop5, emulated, sstep] = v[..] else {
        bail!("calibration run printed {text:?}");
    };
    // The part inside a call's own interval: the traced mean inclusive time of each target minus its
    // body (the untraced loop's cost per call is an upper bound of the body: a few ns).
    let merged = profile.per_function();
    let inside = |t: Probed| -> f64 {
        let mean = profile
            .functions
            .iter()
            .position(|f| f.raw_name == t.symbol())
            .and_then(|id| merged.iter().find(|s| s.func as usize == id))
            .map_or(0.0, |s| s.inclusive.mean(s.calls));
        (mean - plain).max(0.0)
    };
    Ok(ProbeCosts {
        nop5_ns: (nop5 - plain).max(0.0),
        emulated_ns: (emulated - plain).max(0.0),
        single_step_ns: (sstep - plain).max(0.0),
        inside_ns: [
            inside(Probed::Nop5),
            inside(Probed::Emulated),
            inside(Probed::SingleStep),
        ],
    })
}
