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

/// Rounds of the four loops, one after the other in each round: a slow spell of the machine (a
/// neighbour, a host's housekeeping) lasting a few loops falls on one or two rounds of every kind rather
/// than on all of one kind's loops, which back to back it could cover (a single-step cost once measured
/// 21 µs against 17.5–19 µs in the 17 other calibrations of that hour).
const ROUNDS: usize = 5;
const FAST_CALLS: u32 = 24_000;
const SLOW_CALLS: u32 = 1_200;

/// The loops the child times, in the order it prints them.
const LOOPS: [(Probed, u32); 4] = [
    (Probed::Plain, FAST_CALLS),
    (Probed::Nop5, FAST_CALLS),
    (Probed::Emulated, FAST_CALLS),
    (Probed::SingleStep, SLOW_CALLS),
];

/// ns per call of `f` over one timed loop.
fn time_loop(f: Probed, calls: u32) -> f64 {
    let t = Instant::now();
    let mut acc = 0u32;
    for i in 0..calls {
        acc = acc.wrapping_add(f.call(i));
    }
    std::hint::black_box(acc);
    t.elapsed().as_nanos() as f64 / calls as f64
}

/// The calibration child: prints, in ns per call for `plain nop5 emulated sstep`, the fastest loop of
/// each over [`ROUNDS`] rounds, then the mean over the rounds.
pub fn calibrate_main() -> i32 {
    let mut best = [f64::INFINITY; LOOPS.len()];
    let mut sum = [0.0; LOOPS.len()];
    for _ in 0..ROUNDS {
        for (i, &(f, calls)) in LOOPS.iter().enumerate() {
            let t = time_loop(f, calls);
            best[i] = best[i].min(t);
            sum[i] += t;
        }
    }
    let mean = sum.map(|s| s / ROUNDS as f64);
    let all: Vec<String> = best.iter().chain(&mean).map(f64::to_string).collect();
    println!("{}", all.join(" "));
    0
}

/// What one kind's calibration says: the cost per call (the fastest round's) and the part of it inside
/// the call's own interval. That part comes from the traced mean inclusive time over every round, so it
/// is taken as a fraction of the mean round's cost (the same calls, the same slow spells) and applied to
/// the fastest round's: never more than the cost, however slow a round was.
fn cost_and_inside(
    best: f64,
    mean: f64,
    traced_mean: f64,
    plain: f64,
    plain_mean: f64,
) -> (f64, f64) {
    let cost = (best - plain).max(0.0);
    let mean_cost = mean - plain_mean;
    let fraction = if mean_cost > 0.0 {
        ((traced_mean - plain_mean) / mean_cost).clamp(0.0, 1.0)
    } else {
        0.0
    };
    (cost, cost * fraction)
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
    let [plain, nop5, emulated, sstep, plain_mean, nop5_mean, emulated_mean, sstep_mean] = v[..]
    else {
        bail!("calibration run printed {text:?}");
    };
    // The traced mean inclusive time of each target: its body (at most the untraced loop's cost per
    // call, a few ns) plus the probe's part inside the call's interval.
    let merged = profile.per_function();
    let traced_mean = |t: Probed| -> f64 {
        profile
            .functions
            .iter()
            .position(|f| f.raw_name == t.symbol())
            .and_then(|id| merged.iter().find(|s| s.func as usize == id))
            .map_or(0.0, |s| s.inclusive.mean(s.calls))
    };
    let kind = |t: Probed, best: f64, mean: f64| {
        cost_and_inside(best, mean, traced_mean(t), plain, plain_mean)
    };
    let (nop5_ns, nop5_inside) = kind(Probed::Nop5, nop5, nop5_mean);
    let (emulated_ns, emulated_inside) = kind(Probed::Emulated, emulated, emulated_mean);
    let (single_step_ns, sstep_inside) = kind(Probed::SingleStep, sstep, sstep_mean);
    Ok(ProbeCosts {
        nop5_ns,
        emulated_ns,
        single_step_ns,
        inside_ns: [nop5_inside, emulated_inside, sstep_inside],
    })
}

#[cfg(test)]
mod tests {
    use super::cost_and_inside;

    #[test]
    fn a_slow_round_moves_neither_the_cost_nor_its_inside_part() {
        // Single-step: fastest round 18 µs over a 5 ns loop; one round of five 20% slower lifts the mean
        // round to 18.72 µs and the traced mean inclusive (97.5% inside) with it.
        let (plain, best) = (5.0, 18_005.0);
        let mean = plain + 18_000.0 * 1.04;
        let traced = plain + 18_000.0 * 1.04 * 0.975;
        let (cost, inside) = cost_and_inside(best, mean, traced, plain, plain);
        assert!((cost - 18_000.0).abs() < 1e-9, "{cost}");
        assert!((inside - 17_550.0).abs() < 1e-6, "{inside}");
        // Without the fraction, the inside part would be 18,252 ns: more than the cost itself.
        assert!(traced - plain > cost);
    }

    #[test]
    fn nonsense_loop_times_give_zero_not_negative_or_nan() {
        assert_eq!(cost_and_inside(3.0, 3.0, 10.0, 5.0, 5.0), (0.0, 0.0));
        let (cost, inside) = cost_and_inside(505.0, 505.0, 2.0, 5.0, 5.0);
        assert_eq!((cost, inside), (500.0, 0.0));
        let (cost, inside) = cost_and_inside(505.0, 505.0, 900.0, 5.0, 5.0);
        assert_eq!((cost, inside), (500.0, 500.0));
    }
}
