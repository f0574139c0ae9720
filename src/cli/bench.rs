//! `perfgate bench` arguments: which of perfgate's own measurements to run.
use std::path::PathBuf;

use clap::{Args, ValueEnum};

/// A part of the benchmark.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, ValueEnum)]
pub enum BenchWhat {
    /// Attach and detach time for 100, 1,000 and 10,000 functions, and whether every call was counted.
    Attach,
    /// Added cost of one traced call, per kind of first instruction (emulated, 5-byte nop, single-step).
    Overhead,
    /// Throughput of a call-heavy benchmark: gate mode (in-kernel aggregation) and trace mode (events to a file).
    Trace,
    /// The gate's false-alarm rate (A/A checks) and its power against injected 5%, 10% and 20% slowdowns.
    Gate,
    /// The quantile metrics: histogram resolution against exact quantiles, kernel memory, and A/A false
    /// alarms and detection of tail-only and median-only changes.
    Tail,
    /// All of the above.
    All,
}

/// Arguments of `perfgate bench`.
#[derive(Debug, Clone, Args)]
pub struct BenchArgs {
    /// What to measure (several allowed).
    #[arg(value_enum, default_value = "all")]
    pub what: Vec<BenchWhat>,
    /// Head runs per gate check, and runs of the baseline (the gate adds 5 at a time when undecided, up to 30).
    #[arg(long, value_name = "N", default_value_t = 10)]
    pub runs_per_check: usize,
    /// Gate checks per scenario (A/A, then each injected slowdown).
    #[arg(long, value_name = "N", default_value_t = 20)]
    pub checks: usize,
    /// Directory of the built fixtures (`bash fixtures/build.sh`).
    #[arg(long, value_name = "DIR", default_value = "fixtures/bin")]
    pub fixtures: PathBuf,
}
