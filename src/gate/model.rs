//! The result of comparing a baseline with new runs: what every report format renders.
use serde::{Deserialize, Serialize};

/// What is compared per run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Metric {
    /// Mean self time per call (time in the function minus its traced callees): pins a regression on the
    /// function that got slower, not on all its callers.
    #[default]
    #[serde(rename = "self", alias = "self-time")]
    SelfTime,
    /// Mean inclusive time per call (entry to return).
    Inclusive,
}

impl Metric {
    /// Short name for reports.
    pub fn label(&self) -> &'static str {
        match self {
            Metric::SelfTime => "mean self time per call",
            Metric::Inclusive => "mean inclusive time per call",
        }
    }
}

/// The verdict on one function.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// Slower beyond the threshold, significantly.
    Regressed,
    /// The number of calls changed and `--gate-calls` is on.
    CallsChanged,
    /// Faster beyond the threshold, significantly.
    Improved,
    /// Not decided even after the maximum number of runs.
    #[default]
    Inconclusive,
    /// In the head runs only.
    New,
    /// In the baseline only.
    Removed,
    /// The change is within the threshold.
    Unchanged,
    /// Too small a share of the total time to gate (reported, not gated).
    BelowFloor,
    /// `ignore = true` in the baseline.
    Ignored,
}

impl Verdict {
    /// Whether this verdict fails the gate.
    pub fn fails(&self) -> bool {
        matches!(self, Verdict::Regressed | Verdict::CallsChanged)
    }

    /// Word for reports.
    pub fn label(&self) -> &'static str {
        match self {
            Verdict::Regressed => "regressed",
            Verdict::CallsChanged => "calls changed",
            Verdict::Improved => "improved",
            Verdict::Inconclusive => "inconclusive",
            Verdict::New => "new",
            Verdict::Removed => "removed",
            Verdict::Unchanged => "unchanged",
            Verdict::BelowFloor => "below share floor",
            Verdict::Ignored => "ignored",
        }
    }
}

/// The gate's settings, as applied.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GateSettings {
    /// False-discovery rate across functions (Benjamini–Hochberg).
    pub alpha: f64,
    /// Smallest slowdown that counts, as a fraction (0.05 = 5% slower). The whole confidence interval of the
    /// ratio must lie above 1 + threshold.
    pub threshold: f64,
    /// Confidence level of the ratio's interval.
    pub confidence: f64,
    /// Functions whose share of the total self time is below this fraction are reported, not gated.
    pub min_share: f64,
    /// Head runs of the first look (the sequential rule looks again at 10, 15, 20, 30 by default).
    pub runs: usize,
    /// Head runs of the last look: the most a check takes.
    pub max_runs: usize,
    /// What is compared.
    pub metric: Metric,
    /// Fail when a function's call count changes.
    pub gate_calls: bool,
    /// First rule only (`--rule legacy`): divide head figures by the machine's speed factor (the median
    /// change over all gated functions).
    pub relative: bool,
    /// Divide each run's figures by that run's speed factor, base and head alike (the default; falls back
    /// to absolute figures below 5 gated functions, and says so).
    #[serde(default = "yes")]
    pub normalise: bool,
    /// An inconclusive function fails the gate too (`--fail-on inconclusive`).
    #[serde(default)]
    pub fail_on_inconclusive: bool,
    /// Which rule decides.
    #[serde(default)]
    pub rule: Rule,
}

fn yes() -> bool {
    true
}

/// The rule that decides a check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Rule {
    /// Per-run normalisation and group-sequential looks with equivalence (`gate::compare`).
    #[default]
    Sequential,
    /// The first rule, kept for comparison (`gate::legacy`).
    Legacy,
}

impl Default for GateSettings {
    fn default() -> Self {
        GateSettings {
            alpha: 0.05,
            threshold: 0.05,
            confidence: 0.95,
            min_share: 0.01,
            runs: 5,
            max_runs: 30,
            metric: Metric::SelfTime,
            gate_calls: false,
            relative: false,
            normalise: true,
            fail_on_inconclusive: false,
            rule: Rule::Sequential,
        }
    }
}

/// One function compared.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FunctionComparison {
    /// Demangled name.
    pub name: String,
    /// File it lives in.
    pub module: String,
    /// The verdict.
    pub verdict: Verdict,
    /// Median over base runs of the metric, ns.
    pub base: Option<f64>,
    /// Median over head runs of the metric, ns (divided by the speed factor when relative).
    pub head: Option<f64>,
    /// Hodges–Lehmann estimate of head/base.
    pub ratio: Option<f64>,
    /// Lower end of the ratio's confidence interval.
    pub ratio_low: Option<f64>,
    /// Upper end of the ratio's confidence interval.
    pub ratio_high: Option<f64>,
    /// Two-sided Mann–Whitney p-value, per function.
    pub p_value: Option<f64>,
    /// The p-value adjusted for testing many functions (Benjamini–Hochberg).
    pub q_value: Option<f64>,
    /// Share of the total self time in the head runs (base runs for removed functions).
    pub share: f64,
    /// Median calls per base run.
    pub base_calls: Option<u64>,
    /// Median calls per head run.
    pub head_calls: Option<u64>,
    /// The threshold applied to this function (a per-function override or the global one).
    pub threshold: f64,
    /// Median head time per run spent in the function (inclusive total), ns; the JUnit `time`.
    pub head_total_ns: Option<f64>,
    /// Confidence of `ratio_low`/`ratio_high` (the look's, under the sequential rule).
    #[serde(default)]
    pub confidence: Option<f64>,
    /// Run-to-run noise of the compared figures, as a coefficient of variation (0.03 = 3%).
    #[serde(default)]
    pub cv: Option<f64>,
    /// The smallest head/base ratio this check could have confirmed as a regression (80% of the time),
    /// given the noise and the runs: what an inconclusive verdict leaves open.
    #[serde(default)]
    pub smallest_detectable: Option<f64>,
    /// Look (0-based) at which the verdict was reached, under the sequential rule.
    #[serde(default)]
    pub decided_at: Option<usize>,
}

impl FunctionComparison {
    /// Whether the call count differs between base and head.
    pub fn calls_changed(&self) -> bool {
        matches!((self.base_calls, self.head_calls), (Some(b), Some(h)) if b != h)
    }
}

/// A whole comparison.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    /// The benchmark's name (the baseline file's stem).
    pub benchmark: String,
    /// The command that was run.
    pub command: Vec<String>,
    /// Runs in the baseline.
    pub base_runs: usize,
    /// Runs made by this check.
    pub head_runs: usize,
    /// Settings as applied.
    pub settings: GateSettings,
    /// Set when the baseline was measured on another machine: what differs.
    pub machine_mismatch: Option<String>,
    /// The head machine's speed factor: median head/base over the gated functions; in relative mode head
    /// figures were divided by it.
    #[serde(default)]
    pub speed_factor: Option<f64>,
    /// Wall time of the check, ns: the JUnit suite's `time`. `compare` sets the head runs' wall times
    /// summed; a caller that timed the whole check may put that instead. None in comparisons saved before
    /// the field existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wall_ns: Option<f64>,
    /// Every function, failing verdicts first.
    pub functions: Vec<FunctionComparison>,
    /// Warnings to show at the top of every report.
    pub warnings: Vec<String>,
    /// How the runs' figures were scaled: `per-run over N functions`, or `absolute` with the reason.
    #[serde(default)]
    pub normalisation: Option<String>,
    /// The whole run's wall time, compared as measured: a separate, absolute signal.
    #[serde(default)]
    pub total: Option<TotalComparison>,
    /// Where the base runs came from: `baseline` (a stored file) or `interleaved` (A/B on this machine).
    #[serde(default)]
    pub mode: Option<String>,
    /// Under the sequential rule: the looks' head run counts and the index of this one.
    #[serde(default)]
    pub looks: Vec<usize>,
    /// Index into `looks` of this comparison.
    #[serde(default)]
    pub look: Option<usize>,
    /// The rule says no more runs are needed (everything decided, a regression confirmed, or the last
    /// look).
    #[serde(default)]
    pub complete: bool,
}

/// The whole run, base against head.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TotalComparison {
    /// Median wall time of a base run, ns.
    pub base_ns: f64,
    /// Median wall time of a head run, ns.
    pub head_ns: f64,
    /// Hodges–Lehmann estimate of head/base.
    pub ratio: Option<f64>,
    /// Its interval at `confidence`.
    pub low: Option<f64>,
    /// Upper end.
    pub high: Option<f64>,
    /// Confidence of the interval.
    pub confidence: f64,
    /// Regressed, improved, unchanged or inconclusive, by the same rule as the functions.
    pub verdict: Verdict,
}

impl Comparison {
    /// Functions with a failing verdict.
    pub fn failures(&self) -> impl Iterator<Item = &FunctionComparison> {
        self.functions.iter().filter(|f| f.verdict.fails())
    }

    /// Whether the gate passes: no function failed, and, with `fail_on_inconclusive`, none is
    /// inconclusive.
    pub fn passed(&self) -> bool {
        self.failures().next().is_none()
            && !(self.settings.fail_on_inconclusive
                && self.with(Verdict::Inconclusive).next().is_some())
    }

    /// `fail` (a function regressed, or an inconclusive one with `fail_on_inconclusive`),
    /// `inconclusive` (nothing failed but something is undecided), or `pass`.
    pub fn outcome(&self) -> &'static str {
        if !self.passed() {
            "fail"
        } else if self.with(Verdict::Inconclusive).next().is_some() {
            "inconclusive"
        } else {
            "pass"
        }
    }

    /// Functions with a given verdict.
    pub fn with(&self, v: Verdict) -> impl Iterator<Item = &FunctionComparison> {
        self.functions.iter().filter(move |f| f.verdict == v)
    }

    /// Number of functions the gate decided on (not below the floor, not ignored).
    pub fn gated(&self) -> usize {
        self.functions
            .iter()
            .filter(|f| !matches!(f.verdict, Verdict::BelowFloor | Verdict::Ignored))
            .count()
    }
}
