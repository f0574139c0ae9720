//! The per-run profile: what one traced run of a benchmark measured, per function and per thread, plus the
//! accounting of everything that was skipped or lost. Saved to and read from a recording file (`file.rs`).
use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

pub mod calls;
pub mod file;
pub mod hist;
pub mod names;
pub mod units;

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
    /// Part of the unwinder, a catch, a stack switcher or `setjmp`: a return probe there would change what
    /// the program does (see `bpf/unwind.h`).
    #[serde(rename = "unwinder, context switch or setjmp")]
    Unwinder,
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
            SkipReason::Unwinder => "unwinder, context switch or setjmp",
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
    /// Completed calls (those an exception ended included, measured up to the catch).
    pub calls: u64,
    /// Of `calls`, those made while an outer call of the same function was active (recursion, also
    /// mutual). Their inclusive time lies inside the outermost call's and is counted there once:
    /// [`FuncStats::inclusive`] covers the [`FuncStats::outer_calls`] only, self time every call.
    #[serde(default)]
    pub nested_calls: u64,
    /// Inclusive time, entry to return, of the outermost calls (see `nested_calls`).
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
    /// function's own part inside its interval (`own_inside` ns per call; inclusive counts outermost calls
    /// only, see [`FuncStats::outer_calls`]). ns, never below 0.
    pub fn compensated(&self, own_inside: f64) -> (f64, f64) {
        let incl = self.inclusive.sum_ns as f64
            - self.overhead_ns as f64
            - own_inside * self.outer_calls() as f64;
        let self_time =
            self.self_time.sum_ns as f64 - self.out_ns as f64 - own_inside * self.calls as f64;
        (incl.max(0.0), self_time.max(0.0))
    }

    /// Calls with no outer call of the same function active: those [`FuncStats::inclusive`] measures.
    pub fn outer_calls(&self) -> u64 {
        self.calls.saturating_sub(self.nested_calls)
    }

    /// Mean inclusive time per outermost call, ns: a recursive function's inclusive time counted once
    /// per outermost call, as uftrace and other profilers do.
    pub fn inclusive_mean(&self) -> f64 {
        self.inclusive.mean(self.outer_calls())
    }

    /// Adds another thread's calls of the same function.
    pub fn merge(&mut self, other: &FuncStats) {
        self.overhead_ns = self.overhead_ns.saturating_add(other.overhead_ns);
        self.out_ns = self.out_ns.saturating_add(other.out_ns);
        if other.outer_calls() > 0 {
            self.inclusive.merge(&other.inclusive, self.outer_calls());
        }
        self.self_time.merge(&other.self_time, self.calls);
        self.calls += other.calls;
        self.nested_calls += other.nested_calls;
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
    /// Calls still open when their thread exec'd another program (their image is gone).
    #[serde(default)]
    pub open_at_exec: u64,
    /// Libraries added while their thread could not be held: attached late or not at all.
    #[serde(default)]
    pub holds_failed: u64,
    /// Calls still running when perfgate detached from a live process (`record --pid`): not measured,
    /// not lost.
    #[serde(default)]
    pub open_at_detach: u64,
    /// Returns of calls that began before their process was attached (a fork child returning from
    /// its parent's calls, a live process's calls in progress at attach): not measured, not lost.
    #[serde(default)]
    pub returned_before_attach: u64,
    /// Calls a live process's threads were in when perfgate attached (found on their stacks; a lower
    /// bound: frames without a frame pointer may hide some): not measured, not lost.
    #[serde(default)]
    pub in_progress_at_attach: u64,
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
    /// Hits (entries plus returns) of the minimal counting program `perfgate bench cost` attaches
    /// instead of perfgate's; absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count_hits: Option<u64>,
    /// The processes the run followed (absent when it followed none: `--no-follow`, older recordings).
    #[serde(default)]
    pub processes: Option<Processes>,
    /// Libraries a `--lib` glob selected that a process loaded with dlopen: attached while the thread
    /// that loaded them was held, before dlopen returned.
    #[serde(default)]
    pub libraries_attached_late: Vec<LateLibrary>,
    /// The calls of [`LossCounters::in_progress_at_attach`]: `name (module)`, innermost first per thread.
    #[serde(default)]
    pub running_at_attach: Vec<String>,
    /// Exceptions, panics and stack switches, and what perfgate did about them.
    #[serde(default)]
    pub unwinding: Unwinding,
}

/// The processes of a run that follows the ones the command starts: each is held at its exec (or, for
/// a fork child, at its birth) while perfgate plans and attaches its probes with its own PID.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Processes {
    /// Processes seen, the command's own included.
    pub followed: u64,
    /// execs held (the new image planned and attached).
    pub execs: u64,
    /// fork children held at birth (their parent's probes attached for them).
    pub forks: u64,
    /// vfork children (posix_spawn): they run in their parent's memory until they exec, untraced.
    pub vforks: u64,
    /// Threads traced.
    pub threads: u64,
    /// Per executable run: processes and traced functions.
    pub binaries: Vec<BinaryRun>,
    /// Holds for libraries: at a process's start-up (with `--lib`) and after a dlopen.
    pub library_holds: u64,
    /// Holds of any kind (exec, fork, library).
    pub holds: u64,
    /// Time processes spent held for perfgate, summed, ns.
    pub held_ns: Nanos,
    /// The longest hold, ns.
    pub held_max_ns: Nanos,
    /// Of the held time, planning (reading ELF files; once per file and command), ns.
    pub plan_ns: Nanos,
    /// Of the held time, attaching probes, ns.
    pub attach_ns: Nanos,
    /// Followed processes (not the command's own) that exited non-zero or by a signal.
    pub failed: u64,
    /// Processes still running at the timeout or a stop signal, ended by perfgate.
    #[serde(default)]
    pub killed: u64,
    /// Signals the tracer passed on to the benchmark's processes.
    pub signals: u64,
    /// What was not followed or not traced, and why.
    pub not_traced: Vec<NotTraced>,
}

/// One executable the followed processes ran.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BinaryRun {
    /// The file.
    pub path: PathBuf,
    /// Processes (execs) that ran it.
    pub processes: u64,
    /// Functions of it with a probe.
    pub functions: u64,
}

/// Processes or files perfgate did not trace, with the reason.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotTraced {
    /// Why, in the words users read.
    pub reason: String,
    /// How many times.
    pub count: u64,
}

/// A library attached after a dlopen.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LateLibrary {
    /// The file.
    pub path: PathBuf,
    /// Processes that loaded it (each attached on its first dlopen; a reopen is probed by the kernel).
    pub processes: u64,
    /// Functions of it with a probe.
    pub functions: u64,
}

/// How return probes met exceptions, panics, backtraces and stack switches in one run (see
/// `bpf/unwind.h`): what the kernel side counted, and the benchmark's pauses for the slot writer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unwinding {
    /// Who stores return addresses around the unwinder: `bpf` (bpf_probe_write_user, no pause) or
    /// `stop` (the benchmark is stopped and perfgate writes them); empty when no hook was attached.
    pub writer: String,
    /// Entry-only hooks attached (unwinder entries, catches, stack switchers).
    pub hooks: u64,
    /// Unwinder entries: throw, resume after a cleanup, rethrow, forced unwind, backtrace.
    pub unwinds: u64,
    /// Catches seen (and ends of backtrace walks).
    pub landings: u64,
    /// Calls an exception or panic ended: counted as calls, measured up to the catch.
    pub frames_unwound: u64,
    /// Return addresses given back to the program for the unwinder.
    pub slots_restored: u64,
    /// Return probes put back afterwards.
    pub slots_rehijacked: u64,
    /// Slot writes that failed (queue full, or process_vm_writev refused): the unwinder may have met a
    /// trampoline there.
    pub slot_writes_failed: u64,
    /// Times the benchmark was stopped (all its threads) for perfgate to write slots.
    pub pauses: u64,
    /// Time from the stop request in the kernel to perfgate's SIGCONT, summed over pauses, ns.
    pub paused_ns: Nanos,
    /// Stack switches seen (swapcontext, setcontext, jump_fcontext).
    pub stack_switches: u64,
    /// Calls left on a stack that a switch left behind: their returns were not seen, so they are
    /// counted here and not measured.
    pub frames_switched: u64,
    /// Traced calls entered on another stack with no hooked switch (a signal handler on sigaltstack, a
    /// stack switcher perfgate does not know): return probes across such a switch may misbehave.
    pub foreign_stack_entries: u64,
    /// Stack-switching functions the program imports or defines (`makecontext`, `swapcontext`, …).
    pub switchers_used: Vec<String>,
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

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(calls: u64, nested: u64, incl: (u64, u64, u64)) -> FuncStats {
        FuncStats {
            calls,
            nested_calls: nested,
            inclusive: TimeStats {
                sum_ns: incl.0,
                min_ns: incl.1,
                max_ns: incl.2,
                ..TimeStats::default()
            },
            ..FuncStats::default()
        }
    }

    #[test]
    fn inclusive_time_is_per_outermost_call_and_merges_over_threads() {
        // Thread 1: 10 calls of a recursive function, 2 outermost (300 ns and 500 ns).
        let mut a = stats(10, 8, (800, 300, 500));
        assert_eq!(a.outer_calls(), 2);
        assert_eq!(a.inclusive_mean(), 400.0);
        // Thread 2: only nested calls seen completing (its outermost call was still open): no
        // inclusive figures, which must not pull the minimum down to 0.
        a.merge(&stats(4, 4, (0, 0, 0)));
        assert_eq!((a.calls, a.nested_calls, a.outer_calls()), (14, 12, 2));
        assert_eq!((a.inclusive.min_ns, a.inclusive.max_ns), (300, 500));
        // Thread 3: one outermost call of 100 ns.
        a.merge(&stats(1, 0, (100, 100, 100)));
        assert_eq!(a.outer_calls(), 3);
        assert_eq!((a.inclusive.sum_ns, a.inclusive.min_ns), (900, 100));
        assert_eq!(a.inclusive_mean(), 300.0);
        // Merged into an empty entry, as per_function does.
        let mut e = FuncStats::default();
        e.merge(&stats(4, 4, (0, 0, 0)));
        e.merge(&stats(2, 1, (70, 70, 70)));
        assert_eq!((e.inclusive.min_ns, e.outer_calls()), (70, 1));
    }
}
