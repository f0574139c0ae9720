//! The per-run profile: what one traced run of a benchmark measured, per function and per thread, plus the
//! accounting of everything that was skipped or lost. Saved to and read from a recording file (`file.rs`).
use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

pub mod calls;
pub mod file;
pub mod hist;
pub mod names;

pub use hist::Histogram;

/// Nanoseconds.
pub type Nanos = u64;
/// A function's id in one recording: its index in [`Profile::functions`], and the BPF cookie of its probe.
pub type FuncId = u32;

/// Version of the profile format; bumped on incompatible change.
pub const PROFILE_SCHEMA: u32 = 1;

/// The machine a profile was measured on.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Machine {
    /// CPU model name from /proc/cpuinfo.
    pub cpu_model: String,
    /// Online CPUs.
    pub cores: u32,
    /// Kernel release (uname -r).
    pub kernel: String,
}

impl Machine {
    /// Reads the machine this process runs on.
    pub fn current() -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name").and_then(|r| r.split_once(':')))
            .map(|(_, v)| v.trim().to_string())
            .unwrap_or_else(|| "unknown".into());
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get() as u32);
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|_| "unknown".into());
        Machine {
            cpu_model,
            cores,
            kernel,
        }
    }

    /// The 1-minute load average now: other work on the machine is the first suspect of noisy timings.
    pub fn load_average() -> Option<f64> {
        std::fs::read_to_string("/proc/loadavg")
            .ok()?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    }
}

/// How the instruction at a function's probe is handled by the kernel (see DESIGN.md for the costs).
pub use crate::elf::EntryKind as ProbeKind;

/// Why a function of a traced file has no probe. Serialised as the words users read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum SkipReason {
    /// Matched a `--no-function` glob.
    #[serde(rename = "excluded by --no-function")]
    Excluded,
    /// An `STT_GNU_IFUNC` resolver (run by the loader, not the implementation called).
    #[serde(rename = "ifunc resolver")]
    IfuncResolver,
    /// The kernel refuses a uprobe on its first instruction (e.g. a `lock` prefix).
    #[serde(rename = "kernel cannot probe its first instruction")]
    KernelRejects,
    /// A symbol of size 0.
    #[serde(rename = "no size")]
    NoSize,
    /// Not matched by any `--function` glob.
    #[serde(rename = "not selected by --function")]
    NotSelected,
    /// Its address has no file offset in an executable segment.
    #[serde(rename = "outside executable segments")]
    NotExecutable,
    /// C runtime start-up code (`_start`, `_init`, …), skipped unless `--startup`.
    #[serde(rename = "start-up code")]
    Startup,
    /// Its name could not be read.
    #[serde(rename = "unreadable name")]
    BadName,
    /// Entered without a call (a lazy-binding or context trampoline): a return probe would crash it.
    #[serde(rename = "entered without a call")]
    NotCalled,
    /// The survey found its probe costing more than the function itself: its time is measured in its
    /// callers' self time.
    #[serde(rename = "too hot for its size")]
    TooHot,
}

impl SkipReason {
    /// The words users read (as serialised).
    pub fn describe(self) -> &'static str {
        match self {
            SkipReason::Excluded => "excluded by --no-function",
            SkipReason::IfuncResolver => "ifunc resolver",
            SkipReason::KernelRejects => "kernel cannot probe its first instruction",
            SkipReason::NoSize => "no size",
            SkipReason::NotSelected => "not selected by --function",
            SkipReason::NotExecutable => "outside executable segments",
            SkipReason::Startup => "start-up code",
            SkipReason::BadName => "unreadable name",
            SkipReason::TooHot => "too hot for its size",
            SkipReason::NotCalled => "entered without a call",
        }
    }
}

impl std::fmt::Display for SkipReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.describe())
    }
}

/// A function the survey left to its callers, with the figures that decided it (stored in the baseline,
/// so `check` probes exactly the same set).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HotFunction {
    /// The file's short name.
    pub module: String,
    /// The raw symbol.
    pub symbol: String,
    /// Demangled name, for people.
    pub name: String,
    /// Calls seen in the survey before it stopped probing the function.
    pub calls: u64,
    /// Mean inclusive time per call, ns, minus the calibrated probe costs.
    pub mean_ns: f64,
    /// What one traced call of it costs, ns (calibrated, by the kind of instruction under its probe).
    pub probe_cost_ns: f64,
}

/// A function left without a probe that `--verbose` names (serialised as `[reason, name]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "(SkipReason, String)", into = "(SkipReason, String)")]
pub struct SkippedFunction {
    /// Why.
    pub reason: SkipReason,
    /// `name (module)`.
    pub name: String,
}

impl From<(SkipReason, String)> for SkippedFunction {
    fn from((reason, name): (SkipReason, String)) -> Self {
        SkippedFunction { reason, name }
    }
}

impl From<SkippedFunction> for (SkipReason, String) {
    fn from(s: SkippedFunction) -> Self {
        (s.reason, s.name)
    }
}

/// One traced function.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FunctionInfo {
    /// Demangled name.
    pub name: String,
    /// The symbol as in the file.
    pub raw_name: String,
    /// The file's short name (`work`, `libc.so.6`).
    pub module: String,
    /// The symbol's virtual address.
    pub addr: u64,
    /// The symbol's size in bytes.
    pub size: u64,
    /// How the instruction under its probe is handled by the kernel.
    pub probe: ProbeKind,
    /// Bytes from the function's first byte to its probe (0 unless placement moved it past a cheap
    /// prefix, see `elf::placement`).
    #[serde(default)]
    pub probe_offset: u64,
    /// How a probe on the first byte would have been handled (absent in older recordings: same as
    /// `probe`).
    #[serde(default)]
    pub entry_probe: Option<ProbeKind>,
}

/// Latency statistics of one kind (inclusive or self) for one function.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TimeStats {
    /// Sum over calls, ns.
    pub sum_ns: Nanos,
    /// Shortest call, ns.
    pub min_ns: Nanos,
    /// Longest call, ns.
    pub max_ns: Nanos,
    /// Distribution of calls.
    pub hist: Histogram,
}

impl TimeStats {
    /// Mean per call, ns.
    pub fn mean(&self, calls: u64) -> f64 {
        if calls == 0 {
            0.0
        } else {
            self.sum_ns as f64 / calls as f64
        }
    }

    /// The q-quantile per call, ns.
    pub fn quantile(&self, q: f64) -> f64 {
        self.hist
            .quantile(q, self.min_ns, self.max_ns)
            .unwrap_or(0.0)
    }

    /// Adds another set of calls.
    pub fn merge(&mut self, other: &TimeStats, self_calls: u64) {
        if self_calls == 0 {
            self.min_ns = other.min_ns;
        } else {
            self.min_ns = self.min_ns.min(other.min_ns);
        }
        self.max_ns = self.max_ns.max(other.max_ns);
        self.sum_ns = self.sum_ns.saturating_add(other.sum_ns);
        self.hist.merge(&other.hist);
    }
}

/// What one thread spent in one function.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FuncStats {
    /// The function.
    pub func: FuncId,
    /// The thread id (0 when merged over threads).
    pub tid: u32,
    /// Completed calls.
    pub calls: u64,
    /// Inclusive time: entry to return.
    pub inclusive: TimeStats,
    /// Self time: inclusive minus the inclusive time of traced callees.
    pub self_time: TimeStats,
    /// Calibrated probe cost of all traced descendants, summed over calls, ns: subtract it from the
    /// inclusive sum for a compensated inclusive time (0 when not calibrated).
    #[serde(default)]
    pub overhead_ns: Nanos,
    /// The part of that spent outside the direct callees' own measured time, i.e. inside this
    /// function's self time, ns (absent in older recordings).
    #[serde(default)]
    pub out_ns: Nanos,
}

impl FuncStats {
    /// Inclusive time summed over calls minus the probe cost of traced descendants, ns.
    pub fn compensated_inclusive(&self) -> Nanos {
        self.inclusive.sum_ns.saturating_sub(self.overhead_ns)
    }

    /// Inclusive and self time summed over calls with every calibrated probe cost taken out: the
    /// descendants' (all of it from inclusive; the part outside the direct callees from self) and the
    /// function's own part inside its interval (`own_inside` ns per call). ns, never below 0.
    pub fn compensated(&self, own_inside: f64) -> (f64, f64) {
        let own = own_inside * self.calls as f64;
        let incl = self.inclusive.sum_ns as f64 - self.overhead_ns as f64 - own;
        let self_time = self.self_time.sum_ns as f64 - self.out_ns as f64 - own;
        (incl.max(0.0), self_time.max(0.0))
    }

    /// Adds another thread's calls of the same function.
    pub fn merge(&mut self, other: &FuncStats) {
        self.overhead_ns = self.overhead_ns.saturating_add(other.overhead_ns);
        self.out_ns = self.out_ns.saturating_add(other.out_ns);
        self.inclusive.merge(&other.inclusive, self.calls);
        self.self_time.merge(&other.self_time, self.calls);
        self.calls += other.calls;
    }
}

/// Counters of everything that went wrong in the kernel, so nothing is lost silently.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LossCounters {
    /// Calls not measured: deeper than the shadow stack (their time stays in the caller).
    pub depth_exceeded: u64,
    /// Returns that matched no entry.
    pub return_without_entry: u64,
    /// Calls measured but not stored: the statistics map was full.
    pub stats_map_full: u64,
    /// Calls not measured: too many threads for the stack map.
    pub stack_map_full: u64,
    /// Frames that never returned: a longjmp left them.
    pub frames_abandoned: u64,
    /// Calls still open when their thread exited (e.g. a function that called exit()).
    pub unfinished_at_exit: u64,
    /// Trace events the ring buffer had no room for, summed over CPUs.
    pub events_dropped: u64,
    /// Trace events dropped, per CPU.
    pub events_dropped_per_cpu: Vec<u64>,
}

impl LossCounters {
    /// Calls whose measurement is missing or incomplete (unfinished calls are not lost, only open).
    pub fn lost_calls(&self) -> u64 {
        self.depth_exceeded + self.return_without_entry + self.stats_map_full + self.stack_map_full
    }
}

/// A traced file and how many of its functions were probed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TracedFile {
    /// Path as probed.
    pub path: PathBuf,
    /// GNU build-id, hex.
    pub build_id: Option<String>,
    /// Functions probed in it.
    pub functions: u64,
}

/// Everything the plan and the kernel did not cover.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Accounting {
    /// Files with probes.
    pub files: Vec<TracedFile>,
    /// Functions skipped, by reason.
    pub skipped: BTreeMap<SkipReason, u64>,
    /// Functions skipped by a filter or another reason a user may care about.
    pub skipped_names: Vec<SkippedFunction>,
    /// Libraries the loader would map that could not be found.
    pub libraries_not_found: Vec<String>,
    /// Separate debug files whose symbols were used.
    #[serde(default)]
    pub debug_files: Vec<PathBuf>,
    /// Libraries the benchmark loaded at run time (dlopen): mapped after start-up, so not traced.
    #[serde(default)]
    pub libraries_loaded_later: Vec<PathBuf>,
    /// Kernel-side loss counters.
    pub lost: LossCounters,
    /// Whether entry and return were handled by one `uprobe.session` program.
    pub session_probes: bool,
    /// The probe interface used: `session`, `multi` or `classic` (absent in older recordings).
    #[serde(default)]
    pub probe_mode: Option<String>,
    /// Warnings worth repeating in every view (e.g. a stripped binary).
    pub warnings: Vec<String>,
    /// Time to attach all probes, ns.
    pub attach_ns: Nanos,
    /// Time to detach all probes, ns.
    pub detach_ns: Nanos,
    /// The calibrated cost of one traced call, if calibrated.
    #[serde(default)]
    pub probe_cost: Option<ProbeCosts>,
}

/// What one traced call costs its caller (entry and return probe), measured at start-up, ns per call.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct ProbeCosts {
    /// On a 5-byte nop (optimised probe).
    pub nop5_ns: f64,
    /// On an emulated first instruction.
    pub emulated_ns: f64,
    /// On a single-stepped first instruction.
    pub single_step_ns: f64,
    /// Of each, the part that falls inside the call's own measured interval (between its entry and
    /// return timestamps), ns: nop5, emulated, single-stepped. The rest lands in the caller's self time.
    #[serde(default)]
    pub inside_ns: [f64; 3],
}

impl ProbeCosts {
    /// Cost for a probe kind, ns (unknown kinds count as single-stepped, the safe side being no
    /// over-compensation... of the cheaper kinds; they are rare).
    pub fn of(&self, kind: ProbeKind) -> f64 {
        match kind {
            ProbeKind::Nop5 => self.nop5_ns,
            ProbeKind::Emulated => self.emulated_ns,
            ProbeKind::SingleStep | ProbeKind::Unknown => self.single_step_ns,
        }
    }

    /// The part of [`ProbeCosts::of`] inside the call's own measured interval, ns (never more than the
    /// whole).
    pub fn inside(&self, kind: ProbeKind) -> f64 {
        let i = match kind {
            ProbeKind::Nop5 => 0,
            ProbeKind::Emulated => 1,
            ProbeKind::SingleStep | ProbeKind::Unknown => 2,
        };
        self.inside_ns[i].clamp(0.0, self.of(kind))
    }
}

/// How the benchmark ended.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExitInfo {
    /// Exit code, if it exited.
    pub code: Option<i32>,
    /// Signal number, if a signal killed it.
    pub signal: Option<i32>,
}

impl ExitInfo {
    /// True when it exited with code 0.
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }
}

impl std::fmt::Display for ExitInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.code, self.signal) {
            (Some(c), _) => write!(f, "exit code {c}"),
            (None, Some(s)) => write!(f, "killed by signal {s} ({})", signal_name(s)),
            (None, None) => write!(f, "unknown exit status"),
        }
    }
}

fn signal_name(s: i32) -> &'static str {
    match s {
        1 => "SIGHUP",
        2 => "SIGINT",
        3 => "SIGQUIT",
        4 => "SIGILL",
        6 => "SIGABRT",
        7 => "SIGBUS",
        8 => "SIGFPE",
        9 => "SIGKILL",
        11 => "SIGSEGV",
        13 => "SIGPIPE",
        14 => "SIGALRM",
        15 => "SIGTERM",
        _ => "signal",
    }
}

/// One traced run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Profile {
    /// [`PROFILE_SCHEMA`] when written.
    pub schema: u32,
    /// perfgate version that wrote it.
    pub perfgate_version: String,
    /// The command as given (argv).
    pub command: Vec<String>,
    /// The executable that was traced.
    pub binary: PathBuf,
    /// Its GNU build-id.
    pub build_id: Option<String>,
    /// Where it ran.
    pub machine: Machine,
    /// Start of the run, seconds since the Unix epoch.
    pub started_at: u64,
    /// Wall time of the benchmark, from release to exit, ns.
    pub wall_ns: Nanos,
    /// How it ended.
    pub exit: ExitInfo,
    /// Traced functions, indexed by [`FuncId`].
    pub functions: Vec<FunctionInfo>,
    /// Per function and thread.
    pub stats: Vec<FuncStats>,
    /// Coverage and losses.
    pub accounting: Accounting,
    /// Whether the file also holds the event stream.
    pub has_events: bool,
}

impl Profile {
    /// Per function, merged over threads, sorted by total inclusive time (largest first).
    pub fn per_function(&self) -> Vec<FuncStats> {
        let mut by_func: BTreeMap<FuncId, FuncStats> = BTreeMap::new();
        for s in &self.stats {
            let e = by_func.entry(s.func).or_insert_with(|| FuncStats {
                func: s.func,
                ..FuncStats::default()
            });
            e.merge(s);
        }
        let mut v: Vec<FuncStats> = by_func.into_values().collect();
        v.sort_by(|a, b| {
            b.inclusive
                .sum_ns
                .cmp(&a.inclusive.sum_ns)
                .then(a.func.cmp(&b.func))
        });
        v
    }

    /// Per (thread, function), sorted by thread then total inclusive time.
    pub fn per_thread(&self) -> Vec<FuncStats> {
        let mut v = self.stats.clone();
        v.sort_by(|a, b| {
            a.tid
                .cmp(&b.tid)
                .then(b.inclusive.sum_ns.cmp(&a.inclusive.sum_ns))
        });
        v
    }

    /// Checks what the views and the gate rely on in a profile read from a file: every statistic names
    /// a function of the table, its shortest call is not longer than its longest, its histogram's
    /// buckets exist and ascend, and no count summed over threads and functions overflows (so every
    /// later sum is exact). The kernel never writes anything else; a file that does is damaged.
    pub fn check_consistent(&self) -> Result<(), String> {
        let mut calls = 0u64;
        let mut counted = 0u64;
        for s in &self.stats {
            if s.func as usize >= self.functions.len() {
                return Err("statistics name a function that is not in its table".into());
            }
            calls = calls
                .checked_add(s.calls)
                .ok_or("call counts add up past 2^64")?;
            for (what, t) in [("inclusive", &s.inclusive), ("self", &s.self_time)] {
                if (s.calls > 0 || !t.hist.buckets.is_empty()) && t.min_ns > t.max_ns {
                    return Err(format!(
                        "{what} time of function #{} has its shortest call ({} ns) longer than its longest ({} ns)",
                        s.func, t.min_ns, t.max_ns
                    ));
                }
                let mut prev = None;
                for &(b, c) in &t.hist.buckets {
                    if usize::from(b) >= hist::BUCKETS || prev.is_some_and(|p| p >= b) {
                        return Err(format!(
                            "{what} histogram of function #{} has bucket {b} out of order or past the last ({})",
                            s.func,
                            hist::BUCKETS - 1
                        ));
                    }
                    prev = Some(b);
                    counted = counted
                        .checked_add(c)
                        .ok_or("histogram counts add up past 2^64")?;
                }
            }
        }
        Ok(())
    }

    /// The function with this id, if the file is consistent.
    pub fn function(&self, id: FuncId) -> Option<&FunctionInfo> {
        self.functions.get(id as usize)
    }

    /// Functions whose probe takes the kernel's slow single-step path.
    pub fn single_stepped(&self) -> impl Iterator<Item = &FunctionInfo> {
        self.functions
            .iter()
            .filter(|f| f.probe == ProbeKind::SingleStep)
    }
}
