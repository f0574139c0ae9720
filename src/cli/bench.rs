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
    /// What following the processes a benchmark starts costs per process: hold time (plan + attach) and
    /// the wall time added.
    Follow,
    /// Throughput of a call-heavy benchmark: gate mode (in-kernel aggregation) and trace mode (events to a file).
    Trace,
    /// Tracing real libraries (sqlite, zstd, leveldb fixtures): untraced vs every function, placement,
    /// placement + budget; survey time; the knob caught by a 10-run check; per-call cost against a minimal
    /// counting program; compensation error.
    Cost,
    /// The gate's false-alarm rate (A/A checks) and its power against injected 5%, 10% and 20% slowdowns.
    Gate,
    /// What a C++ exception through traced functions costs: the pauses of the slot writer per throw.
    Exceptions,
    /// perfgate's peak memory for 1 M and 10 M calls: record in gate and trace mode, replay, Chrome
    /// JSON, flame graph.
    Memory,
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
    /// `cost` only: measure just this real-library fixture (sqlite_bench, zstd_bench or leveldb_bench).
    #[arg(long, value_name = "FIXTURE")]
    pub workload: Option<String>,
    /// Directory of the built fixtures (`bash fixtures/build.sh`).
    #[arg(long, value_name = "DIR", default_value = "fixtures/bin")]
    pub fixtures: PathBuf,
}
