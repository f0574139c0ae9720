//! Command-line definitions. Help text teaches: every option says what it does and with what unit.
use std::ffi::OsString;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

mod bench;
mod project;
pub use bench::{BenchArgs, BenchWhat};
pub use project::{
    CompletionsArgs, FailOnArg, HookArgs, HookCommand, LinkArgs, ManArgs, MergeArgs, ProjectArgs,
};

const AFTER_HELP: &str = "\
Exit codes: 0 pass, 1 a function regressed (check, merge), 2 perfgate could not do the job (bad input,
no permission, the benchmark failed).

Examples:
  perfgate record -- ./fixtures/bin/work
  perfgate check --all                     # every benchmark of perfgate.toml
  perfgate hook install                    # gate every push
  perfgate record --lib 'libleveldb*' --function 'leveldb::*' --no-function 'leveldb::Slice::*' -o run.data -- ./kv
  perfgate report -i run.data";

/// Trace every function of a benchmark with eBPF uprobes, measure per-function latency, and stop
/// performance regressions at the pull request.
#[derive(Debug, Parser)]
#[command(name = "perfgate", version, after_help = AFTER_HELP, max_term_width = 110)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a command under function tracing and print per-function latency (saved for `report`).
    #[command(
        after_help = "The benchmark's stdout and stderr pass through untouched. Under sudo it runs as the \
invoking user (SUDO_UID) unless --run-as-root. The processes it starts are traced too (--no-follow: only its \
own), and libraries a --lib glob names are traced when a process loads them with dlopen.\n\nExamples:\n  \
perfgate record --per-thread -- ./fixtures/bin/threads\n  perfgate record --function 'mybench::*' -- cargo bench --bench parse\n  \
perfgate record --pid 4242 --duration 10s"
    )]
    Record(RecordArgs),
    /// Show a saved recording again: summary table, Chrome trace, flame graph, folded stacks.
    #[command(
        after_help = "Examples:\n  perfgate report -i run.data --format=summary\n  \
perfgate report -i run.data --format=chrome -o trace.json\n  \
perfgate report -i run.data --format=flame-graph -o flame.svg\n  \
perfgate report --diff base.data -i head.data --format=flame-graph -o diff.svg"
    )]
    Report(ReportArgs),
    /// Print every recorded call as a call graph with durations, uftrace-style (needs `record --trace`).
    Replay(ReplayArgs),
    /// Record a baseline: run the benchmark N times and write every function's per-run figures to a TOML
    /// file to commit.
    #[command(
        after_help = "Example:\n  perfgate baseline -o baselines/work.toml -- ./fixtures/bin/work"
    )]
    Baseline(BaselineArgs),
    /// Gate: run the baseline's command (or the one after --) and compare every function with the baseline.
    /// Exits 0 (pass), 1 (a function regressed) or 2 (perfgate could not do the job).
    #[command(
        after_help = "Each run's figures are divided by that run's speed factor (base and head alike), so a \
uniformly busier machine is no change. The check looks at 5, 10, 15, 20 and 30 head runs with the confidence \
of an O'Brien–Fleming spending rule at each look, and stops as soon as every function is decided. A function \
regresses when its slowdown is significant after correcting for the number of functions (Benjamini–Hochberg) \
and the whole confidence interval of head/base lies above 1 + threshold; it is unchanged when a 90% interval \
lies inside ±threshold; otherwise it is inconclusive (reported with its noise and the smallest change the \
check could have seen; --fail-on inconclusive makes that fail). Functions under --min-share of the traced \
time are reported, not gated. The whole run's wall time is compared as measured, on its own line.\n\nExamples:\n  perfgate check --baseline baselines/work.toml\n  \
perfgate check --baseline baselines/work.toml --junit perf.xml --markdown perf.md --json perf.json\n  \
perfgate check --baseline baselines/work.toml --update\n  \
perfgate check --all --shard 2/4 --json shard2.json\n  \
perfgate check --all --quick"
    )]
    Check(CheckArgs),
    /// Interleaved A/B: run a base and a head command alternately on this machine and gate head against
    /// base, function by function. Exits 0 (pass), 1 (a function regressed) or 2.
    #[command(
        after_help = "Runs alternate in ABBA order (A B, B A, A B…) so that slow drift hits both sides alike, and \
pairs are added look by look as in `check`. No baseline file is involved, so a machine difference cannot pass \
for a regression.\n\nExample:\n  perfgate compare --base-cmd './bench-main --quick' --head-cmd './bench-pr --quick' --markdown ab.md"
    )]
    Compare(CompareArgs),
    /// Join the JSON reports of CI shards (`check --all --shard K/N --json`) into one markdown, one JUnit,
    /// one JSON and one exit code.
    #[command(
        after_help = "Exit code: 2 if a benchmark could not be checked, else 1 if one failed, else 0.\n\n\
Example:\n  perfgate merge shard-*/perfgate.json --markdown perf.md --junit perf.xml --json perf.json"
    )]
    Merge(MergeArgs),
    /// Install or remove the git pre-push hook that runs `perfgate check --all --quick`.
    Hook(HookArgs),
    /// Print shell completions (bash, zsh, fish, elvish, powershell).
    #[command(
        after_help = "Example:\n  perfgate completions bash > ~/.local/share/bash-completion/completions/perfgate"
    )]
    Completions(CompletionsArgs),
    /// Print the man page (or write one per subcommand with --dir).
    #[command(
        after_help = "Example:\n  perfgate man | man -l -\n  perfgate man --dir /usr/local/share/man/man1"
    )]
    Man(ManArgs),
    /// Measure perfgate itself: attach/detach time, per-call probe cost, trace throughput, the gate's false-alarm rate and power.
    Bench(BenchArgs),
}

/// A fraction given as `5%` or `0.05`.
pub fn parse_fraction(s: &str) -> Result<f64, String> {
    let (num, scale) = match s.trim().strip_suffix('%') {
        Some(p) => (p, 100.0),
        None => (s.trim(), 1.0),
    };
    let v: f64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a number (write 5% or 0.05)"))?;
    if !v.is_finite() || v < 0.0 {
        return Err(format!("{s:?}: must be a non-negative number"));
    }
    if scale == 1.0 && v >= 1.0 {
        return Err(format!("{s:?} is ambiguous: write {v}% or {}", v / 100.0));
    }
    Ok(v / scale)
}

/// Gate settings on the command line; each overrides the baseline's `[gate]` table.
#[derive(Debug, Clone, Default, Args)]
pub struct GateArgs {
    /// Smallest slowdown that fails, e.g. 5% or 0.05: the whole confidence interval must lie above it. [default: 5%]
    #[arg(long, value_name = "FRACTION", value_parser = parse_fraction)]
    pub threshold: Option<f64>,
    /// False-discovery rate across all gated functions (Benjamini–Hochberg). [default: 0.05]
    #[arg(long, value_name = "RATE", value_parser = parse_fraction)]
    pub alpha: Option<f64>,
    /// Confidence level of the head/base interval. [default: 95%]
    #[arg(long, value_name = "LEVEL", value_parser = parse_fraction)]
    pub confidence: Option<f64>,
    /// Functions below this share of the traced self time are reported, not gated. [default: 1%]
    #[arg(long, value_name = "FRACTION", value_parser = parse_fraction)]
    pub min_share: Option<f64>,
    /// What is compared per run, comma-separated; each gets its own verdict and a function regresses
    /// when any does. mean = mean self time per call (a call's cost, pinned on the function that
    /// changed); p50, p90, p99 = quantiles of inclusive time (the typical call, the slow tail); total =
    /// self time per run (the same call made more often); add -self or -inclusive to choose the time.
    /// [default: mean-self,p99-inclusive,total-self]
    #[arg(long, value_enum, value_delimiter = ',', value_name = "METRIC,...")]
    pub metric: Option<Vec<MetricArg>>,
    /// Smallest change of a quantile metric (p50, p90, p99) that fails, e.g. 10% or 0.10. [default: 10%; p90's is 1.5×, p99's 4× it]
    #[arg(long, value_name = "FRACTION", value_parser = parse_fraction)]
    pub quantile_threshold: Option<f64>,
    /// Fail when a function's call count changes (call counts are exact, no statistics needed).
    #[arg(long)]
    pub gate_calls: bool,
    /// With --rule legacy: divide head figures by one speed factor of the machine. (The default rule
    /// already normalises every run; see --absolute.)
    #[arg(long, hide = true)]
    pub relative: bool,
    /// Compare figures as measured. By default each run's figures are divided by that run's speed factor
    /// (its median ratio to the baseline over the gated functions, base and head alike), which cancels a
    /// machine that is busier or slower as a whole; the whole run's time is still compared as measured.
    #[arg(long)]
    pub absolute: bool,
    /// The decision rule: sequential (per-run normalisation, looks at 5, 10, 15, 20, 30 runs with
    /// O'Brien–Fleming confidence, equivalence for "unchanged") or legacy (the first rule, for comparison).
    #[arg(long, value_enum, value_name = "RULE", hide = true)]
    pub rule: Option<RuleArg>,
}

/// `--rule`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RuleArg {
    /// The default.
    Sequential,
    /// The first rule.
    Legacy,
}

/// What the gate compares per run (`--metric`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum MetricArg {
    /// Mean self time per call (time in the function minus its traced callees): pins a change of the
    /// total cost on the function that changed, not on all its callers.
    #[value(
        name = "mean-self",
        alias = "mean",
        alias = "self",
        alias = "self-time"
    )]
    MeanSelf,
    /// Mean inclusive time per call (entry to return).
    #[value(name = "mean-inclusive", alias = "inclusive")]
    MeanInclusive,
    /// Median inclusive time: the typical call.
    #[value(name = "p50-inclusive", alias = "p50")]
    P50Inclusive,
    /// 90th percentile of inclusive time.
    #[value(name = "p90-inclusive", alias = "p90")]
    P90Inclusive,
    /// 99th percentile of inclusive time: a slow path taken by more than 1% of the calls.
    #[value(name = "p99-inclusive", alias = "p99")]
    P99Inclusive,
    /// Median self time.
    #[value(name = "p50-self")]
    P50Self,
    /// 90th percentile of self time.
    #[value(name = "p90-self")]
    P90Self,
    /// 99th percentile of self time.
    #[value(name = "p99-self")]
    P99Self,
    /// Total self time per run (calls × mean): the same cost per call paid more often, e.g. a read
    /// called thousands of times more once a cache misses.
    #[value(name = "total-self", alias = "total")]
    TotalSelf,
    /// Total inclusive time per run.
    #[value(name = "total-inclusive")]
    TotalInclusive,
}

/// An overhead budget (`None` = off).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Budget(pub Option<f64>);

/// An overhead budget: a fraction like `100%`, `0.5`, or `off`.
pub fn parse_budget(s: &str) -> Result<Budget, String> {
    if s.trim().eq_ignore_ascii_case("off") {
        return Ok(Budget(None));
    }
    let (num, scale) = match s.trim().strip_suffix('%') {
        Some(p) => (p, 100.0),
        None => (s.trim(), 1.0),
    };
    let v: f64 = num
        .parse()
        .map_err(|_| format!("{s:?}: write a percentage like 100% or 50%, or off"))?;
    if !v.is_finite() || v <= 0.0 || v / scale > 1000.0 {
        return Err(format!("{s:?}: must be above 0 and at most 100000%"));
    }
    Ok(Budget(Some(v / scale)))
}

/// An overhead budget that must be a number (`100%`, `0.5`).
pub fn parse_budget_value(s: &str) -> Result<f64, String> {
    parse_budget(s)?.0.ok_or_else(|| {
        format!("{s:?}: give a budget like 100% (leave --budget out to survey nothing)")
    })
}

/// `perfgate baseline`.
#[derive(Debug, Args)]
pub struct BaselineArgs {
    /// The baseline file to write (e.g. baselines/work.toml).
    #[arg(
        short,
        long,
        value_name = "FILE",
        required_unless_present_any = ["all", "benchmarks"],
        conflicts_with_all = ["all", "benchmarks", "shard"]
    )]
    pub output: Option<PathBuf>,
    /// How much the probes may add to the benchmark's untraced time: a survey run first leaves to their
    /// callers the functions whose probe costs more than they do (their time stays in their callers' self
    /// time), then the costliest until the rest fits. `off` probes every selected function.
    #[arg(long, value_name = "FRACTION|off", default_value = "100%", value_parser = parse_budget)]
    pub overhead_budget: Budget,
    /// Runs of the benchmark. The gate's sequential rule is designed for 30 (fewer still work, with less
    /// power and a note in every report). [default: perfgate.toml's `runs`, else 30]
    #[arg(long, value_name = "N")]
    pub runs: Option<usize>,
    /// The benchmarks of perfgate.toml to record (instead of -o and a command).
    #[command(flatten)]
    pub project: ProjectArgs,
    /// Gate settings to store in the baseline's [gate] table.
    #[command(flatten)]
    pub gate: GateArgs,
    /// Which functions.
    #[command(flatten)]
    pub select: SelectArgs,
    /// How to run.
    #[command(flatten)]
    pub run: RunArgs,
    /// The benchmark command, after `--`.
    #[arg(
        last = true,
        value_name = "COMMAND",
        required_unless_present_any = ["all", "benchmarks"],
        conflicts_with_all = ["all", "benchmarks"]
    )]
    pub command: Vec<OsString>,
}

/// `perfgate check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The committed baseline.
    #[arg(
        short,
        long,
        value_name = "FILE",
        required_unless_present_any = ["all", "benchmarks"],
        conflicts_with_all = ["all", "benchmarks", "shard"]
    )]
    pub baseline: Option<PathBuf>,
    /// The benchmarks of perfgate.toml to check (instead of --baseline).
    #[command(flatten)]
    pub project: ProjectArgs,
    /// A quick verdict: few runs (the gate's early looks), for a pre-push hook; says so in every report.
    #[arg(long)]
    pub quick: bool,
    /// One line per benchmark instead of the tables (the pre-push hook's output).
    #[arg(long)]
    pub brief: bool,
    /// What fails the check besides a regression.
    #[arg(long, value_enum, default_value_t = FailOnArg::Regression)]
    pub fail_on: FailOnArg,
    /// Full demangled names (with parameter lists and template arguments) in the table and markdown.
    #[arg(long)]
    pub full_names: bool,
    /// Commits and links for the reports.
    #[command(flatten)]
    pub links: LinkArgs,
    /// Head runs of the first look. [default: 5]
    #[arg(long, value_name = "N")]
    pub runs: Option<usize>,
    /// Head runs of the last look: the most the check takes. [default: 30]
    #[arg(long, value_name = "N")]
    pub max_runs: Option<usize>,
    /// Interleaved A/B instead of the stored runs: run this base command (e.g. the main branch's build,
    /// quoted as one argument) alternately with the head command on this machine, and compare the pairs.
    /// The baseline still gives the probe set and the settings. Survives any machine difference.
    #[arg(long, value_name = "COMMAND")]
    pub against: Option<String>,
    /// Gate settings.
    #[command(flatten)]
    pub gate: GateArgs,
    /// The report files.
    #[command(flatten)]
    pub reports: ReportFiles,
    /// Accept the new numbers: rewrite the baseline from this check's runs (exit 0).
    #[arg(long)]
    pub update: bool,
    /// How to run.
    #[command(flatten)]
    pub run: RunArgs,
    /// Run this command instead of the baseline's.
    #[arg(last = true, value_name = "COMMAND", conflicts_with_all = ["all", "benchmarks"])]
    pub command: Vec<OsString>,
}

/// `perfgate compare`.
#[derive(Debug, Args)]
pub struct CompareArgs {
    /// The base command, as one argument (split like a shell would, without expansions).
    #[arg(long, value_name = "COMMAND")]
    pub base_cmd: String,
    /// The head command, as one argument.
    #[arg(long, value_name = "COMMAND")]
    pub head_cmd: String,
    /// Pairs of the first look. [default: 5]
    #[arg(long, value_name = "N")]
    pub runs: Option<usize>,
    /// Pairs of the last look. [default: 30]
    #[arg(long, value_name = "N")]
    pub max_runs: Option<usize>,
    /// What fails besides a regression.
    #[arg(long, value_enum, default_value_t = FailOnArg::Regression)]
    pub fail_on: FailOnArg,
    /// Gate settings.
    #[command(flatten)]
    pub gate: GateArgs,
    /// Which functions (the same selection for both commands).
    #[command(flatten)]
    pub select: SelectArgs,
    /// The report files.
    #[command(flatten)]
    pub reports: ReportFiles,
    /// How to run.
    #[command(flatten)]
    pub run: RunArgs,
}

/// The report files of `check` and `compare`.
#[derive(Debug, Clone, Default, Args)]
pub struct ReportFiles {
    /// Write JUnit XML here (- for stdout).
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
    /// Write the markdown diff here (- for stdout).
    #[arg(long, value_name = "FILE")]
    pub markdown: Option<PathBuf>,
    /// Write the whole comparison as JSON here (- for stdout).
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
}

/// Which functions to trace.
#[derive(Debug, Clone, Default, Args)]
pub struct SelectArgs {
    /// Also trace every function of the shared libraries matching GLOB (soname or file name, e.g. 'libc.so*').
    /// Repeatable.
    #[arg(long = "lib", value_name = "GLOB")]
    pub libs: Vec<String>,
    /// Trace only functions whose name matches GLOB: the short name the tables show (`leveldb::DB::Put`),
    /// the full demangled name or the raw symbol, e.g. 'leveldb::*'. Repeatable.
    #[arg(long = "function", value_name = "GLOB")]
    pub functions: Vec<String>,
    /// Do not trace functions matching GLOB. Repeatable; applied after --function.
    #[arg(long = "no-function", value_name = "GLOB")]
    pub no_functions: Vec<String>,
    /// Also trace C runtime start-up code (_start, _init, frame_dummy, …), skipped by default.
    #[arg(long)]
    pub startup: bool,
    /// Probe every function on its first byte. By default a probe moves past a short prefix that leaves
    /// the stack alone (an endbr64, a test before a jump) to a cheaper instruction: ~1 µs per call
    /// instead of ~10 µs single-stepped.
    #[arg(long)]
    pub no_placement: bool,
}

/// How to run the benchmark.
#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// Under sudo, run the benchmark as root instead of as the invoking user.
    #[arg(long)]
    pub run_as_root: bool,
    /// Kill the benchmark after this many seconds.
    #[arg(long, value_name = "SECONDS")]
    pub timeout: Option<f64>,
    /// The kernel interface for the probes: session (one uprobe.session program, Linux 6.12+), multi
    /// (entry and return programs through uprobe_multi, 6.6+), classic (one perf-event uprobe per function
    /// and kind, any kernel with BTF; slow to attach and detach with thousands of functions). [default:
    /// the newest this kernel has, falling back when refused]
    #[arg(long, value_enum, value_name = "INTERFACE")]
    pub probes: Option<ProbesArg>,
    /// Same as --probes multi (kept for old scripts).
    #[arg(long, hide = true)]
    pub no_session: bool,
    /// Trace only the command's own process. By default every process it starts (a shell wrapper's
    /// commands, `make`'s and `cargo`'s children, forks, daemons) is held at exec or fork, planned with
    /// the same selection and traced, and the run lasts until the last of them exits.
    #[arg(long)]
    pub no_follow: bool,
}

/// `--probes`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ProbesArg {
    /// One `uprobe.session` program through `uprobe_multi` (Linux 6.12+).
    Session,
    /// Entry and return programs through `uprobe_multi` (Linux 6.6+).
    Multi,
    /// Classic perf-event uprobes, two per function (older kernels).
    Classic,
}

/// `perfgate record`.
#[derive(Debug, Args)]
pub struct RecordArgs {
    /// Where to save the recording.
    #[arg(short, long, value_name = "FILE", default_value = "perfgate.data")]
    pub output: PathBuf,
    /// Break the table down by thread id.
    #[arg(long)]
    pub per_thread: bool,
    /// Also record every call as an event (for replay, Chrome trace, flame graphs).
    #[arg(long)]
    pub trace: bool,
    /// Ring buffer size for --trace, in bytes with an optional K, M or G suffix (a power of two, at least 4K).
    /// Events that do not fit are counted as lost, per CPU.
    #[arg(long, value_name = "SIZE", default_value = "64M", value_parser = parse_size)]
    pub buffer_size: u32,
    /// Do not measure the probe's own cost at start-up (saves ~0.2 s; no compensated times then).
    #[arg(long)]
    pub no_calibrate: bool,
    /// Show inclusive TOTAL TIME and AVG with the calibrated probe cost of traced callees subtracted
    /// (marked *); the raw figures stay in the recording.
    #[arg(long)]
    pub compensated: bool,
    /// Keep the profile when the benchmark exits non-zero (perfgate then exits 0).
    #[arg(long)]
    pub allow_failure: bool,
    /// Survey first and leave to their callers the functions too hot for their probe, so the probes add at
    /// most this fraction of the untraced time (as `baseline` does by default), e.g. 100%.
    #[arg(long, value_name = "FRACTION", value_parser = parse_budget_value)]
    pub budget: Option<f64>,
    /// Trace a process that is already running (all its threads, the libraries it has mapped and those
    /// it loads) instead of starting a command; ends after --duration, at Ctrl-C or when it exits, and
    /// leaves it running as it was.
    #[arg(long, value_name = "PID", conflicts_with = "command")]
    pub pid: Option<u32>,
    /// With --pid: how long to record, e.g. 10s, 500ms, 2m (default: until Ctrl-C or the process exits).
    #[arg(long, value_name = "DURATION", requires = "pid", value_parser = parse_wall_duration)]
    pub duration: Option<std::time::Duration>,
    /// Rows in the table (0 = all).
    #[arg(long, value_name = "N", default_value_t = 40)]
    pub limit: usize,
    /// Name skipped functions and those whose probe is slow.
    #[arg(short, long)]
    pub verbose: bool,
    /// Full demangled names (with parameter lists and template arguments) instead of short ones.
    #[arg(long)]
    pub full_names: bool,
    /// Which functions.
    #[command(flatten)]
    pub select: SelectArgs,
    /// How to run.
    #[command(flatten)]
    pub run: RunArgs,
    /// The benchmark command, after `--`.
    #[arg(last = true, value_name = "COMMAND")]
    pub command: Vec<OsString>,
}

/// Output formats of `report`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ReportFormat {
    /// TOTAL TIME | SELF TIME | CALLS | AVG | P50 | P99 | MAX | FUNCTION.
    Summary,
    /// Trace Event Format JSON, one complete event per call (Perfetto, chrome://tracing). Needs --trace.
    Chrome,
    /// An SVG flame graph of self time along real call stacks. Needs --trace.
    FlameGraph,
    /// Folded stacks (`main;work1 1234`, self time in ns) for other tools. Needs --trace.
    Folded,
}

/// A size like `64M`, `4K`, `1G` or `4096` (bytes), rounded up to a power of two.
pub fn parse_size(s: &str) -> Result<u32, String> {
    let t = s.trim();
    let (num, scale) = match t.chars().last().map(|c| c.to_ascii_uppercase()) {
        Some('K') => (&t[..t.len() - 1], 1u64 << 10),
        Some('M') => (&t[..t.len() - 1], 1 << 20),
        Some('G') => (&t[..t.len() - 1], 1 << 30),
        _ => (t, 1),
    };
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{s:?}: expected a size like 64M, 4K or 4096"))?;
    let bytes = n.saturating_mul(scale);
    if !(4096..=(1 << 31)).contains(&bytes) {
        return Err(format!("{s:?}: must be between 4K and 2G"));
    }
    Ok(bytes.next_power_of_two() as u32)
}

/// A duration like `10us`, `1.5ms`, `250ns`, `2s` (a bare number is ns).
pub fn parse_duration_ns(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let v: f64 = num
        .parse()
        .map_err(|_| format!("{s:?}: expected a duration like 10us, 1.5ms, 250ns"))?;
    let scale = match unit.trim() {
        "" | "ns" => 1.0,
        "us" | "µs" => 1e3,
        "ms" => 1e6,
        "s" => 1e9,
        u => return Err(format!("{s:?}: unknown unit {u:?} (ns, us, ms, s)")),
    };
    let ns = v * scale;
    if !ns.is_finite() || !(0.0..=1e18).contains(&ns) {
        return Err(format!("{s:?}: out of range"));
    }
    Ok(ns as u64)
}

/// A wall-clock duration like `10s`, `500ms`, `2m` or `1.5` (seconds), at most a day.
pub fn parse_wall_duration(s: &str) -> Result<std::time::Duration, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let v: f64 = num
        .parse()
        .map_err(|_| format!("{s:?}: expected a duration like 10s, 500ms, 2m"))?;
    let scale = match unit.trim() {
        "" | "s" => 1.0,
        "ms" => 1e-3,
        "m" | "min" => 60.0,
        "h" => 3600.0,
        u => return Err(format!("{s:?}: unknown unit {u:?} (ms, s, m, h)")),
    };
    let secs = v * scale;
    if !secs.is_finite() || secs <= 0.0 || secs > 86_400.0 {
        return Err(format!("{s:?}: must be more than 0 and at most a day"));
    }
    Ok(std::time::Duration::from_secs_f64(secs))
}

/// `perfgate replay`.
#[derive(Debug, Args)]
#[command(
    after_help = "Example:\n  perfgate record --trace -o run.data -- ./fixtures/bin/threads\n  \
perfgate replay -i run.data --tid 4242 --depth 3 --time-filter 10us --function 'leveldb::*'"
)]
pub struct ReplayArgs {
    /// The recording (made with `record --trace`).
    #[arg(short, long, value_name = "FILE", default_value = "perfgate.data")]
    pub input: PathBuf,
    /// Only this thread.
    #[arg(long, value_name = "TID")]
    pub tid: Option<u32>,
    /// Only calls down to this depth (1 = top-level calls).
    #[arg(long, value_name = "N")]
    pub depth: Option<usize>,
    /// Hide calls shorter than this (e.g. 10us); their time stays in their caller.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration_ns)]
    pub time_filter: Option<u64>,
    /// Only show calls inside functions matching GLOB (and the function itself). Repeatable.
    #[arg(long = "function", value_name = "GLOB")]
    pub functions: Vec<String>,
    /// Hide functions matching GLOB; their callees move up a level. Repeatable.
    #[arg(long = "no-function", value_name = "GLOB")]
    pub no_functions: Vec<String>,
    /// Full demangled names (with parameter lists and template arguments) instead of short ones.
    #[arg(long)]
    pub full_names: bool,
}

/// `perfgate report`.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The recording.
    #[arg(short, long, value_name = "FILE", default_value = "perfgate.data")]
    pub input: PathBuf,
    /// Format.
    #[arg(long, value_enum, default_value_t = ReportFormat::Summary)]
    pub format: ReportFormat,
    /// Break the table down by thread id.
    #[arg(long)]
    pub per_thread: bool,
    /// Rows in the table (0 = all).
    #[arg(long, value_name = "N", default_value_t = 40)]
    pub limit: usize,
    /// Name skipped functions and those whose probe is slow.
    #[arg(short, long)]
    pub verbose: bool,
    /// Write here instead of stdout (- = stdout).
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Summary: inclusive TOTAL TIME and AVG minus the calibrated probe cost of traced callees (marked *).
    #[arg(long)]
    pub compensated: bool,
    /// A base recording: the summary shows each function's distribution base against --input (quantiles
    /// side by side, both histograms), --format=flame-graph draws a differential flame graph (red = slower
    /// in --input), --format=folded writes `stack base head` lines.
    #[arg(long, value_name = "BASE")]
    pub diff: Option<PathBuf>,
    /// Folded stacks and flame graphs: one root per thread.
    #[arg(long)]
    pub threads: bool,
    /// Summary: full demangled names (with parameter lists and template arguments) instead of short ones.
    #[arg(long)]
    pub full_names: bool,
}
