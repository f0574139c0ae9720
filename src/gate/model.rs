//! The result of comparing a baseline with new runs: what every report format renders.
//!
//! Invariant: the JSON of a function and of one of its metrics keeps the figures' keys (`base`, `ratio`,
//! `q_value`, …) at the object's top level ([`Figures`] is flattened into both), so reports and merge
//! inputs written before [`Figures`] existed read unchanged; key order within an object carries no
//! meaning.
use serde::{Deserialize, Serialize};

/// Which time of a call a metric reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TimeKind {
    /// Time in the function minus its traced callees: pins a change on the function that changed, not
    /// on all its callers.
    #[serde(rename = "self")]
    SelfTime,
    /// Entry to return: the call's latency as its caller sees it.
    Inclusive,
}

/// Which statistic of one run's calls a metric takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Statistic {
    /// The mean per call: a call's cost, moved by any change that adds or removes time in a call.
    Mean,
    /// The median call: the typical call, blind to a few slow ones.
    P50,
    /// The 90th percentile.
    P90,
    /// The 99th percentile: the slow path taken by more than 1% of the calls.
    P99,
    /// The run's total (calls × mean): moved by a change in how often the function is called as well as
    /// by what a call costs. A function called thousands of times more (a cache that now misses, a loop
    /// that runs longer) keeps its time per call and shows here only.
    Total,
}

impl Statistic {
    /// A quantile's threshold is the quantile threshold times this: 1 for p50, 1.5 for p90, 4 for p99
    /// (10%, 15%, 40% by default). A run's p99 rests on its slowest 1% of calls, which interrupts,
    /// preemption and a busy neighbour lengthen: `perfgate bench tail` on a 2-core VM saw 9 of 20 A/A
    /// checks alarm with p99 at 10% (a 20 µs function's p99 drifting +10–20% with the machine against a
    /// baseline recorded minutes earlier), and 4 of 20 at 25% (drift up to +26.8%), while its median never
    /// did; the bench's tail-only changes (1.5% of the calls 5× or 10× slower) move p99 by +100% and
    /// +260%. 40% sits between the two: half again the largest drift seen, and the smaller tail change
    /// still more than twice the threshold.
    pub fn threshold_scale(self) -> f64 {
        match self {
            Statistic::Mean | Statistic::P50 | Statistic::Total => 1.0,
            Statistic::P90 => 1.5,
            Statistic::P99 => 4.0,
        }
    }

    /// The quantile (0.5, 0.9, 0.99); `None` for the mean.
    pub fn quantile(self) -> Option<f64> {
        match self {
            Statistic::Mean | Statistic::Total => None,
            Statistic::P50 => Some(0.5),
            Statistic::P90 => Some(0.9),
            Statistic::P99 => Some(0.99),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Statistic::Mean => "mean",
            Statistic::P50 => "p50",
            Statistic::P90 => "p90",
            Statistic::P99 => "p99",
            Statistic::Total => "total",
        }
    }
}

/// Calls per run above a quantile that a quantile metric needs before it is gated: with fewer, the
/// "99th percentile" of a run is one of its few slowest calls, not a percentile.
pub const CALLS_ABOVE_QUANTILE: f64 = 5.0;

/// What is compared per run: one statistic of one kind of time per call (`mean-self`, `p99-inclusive`).
/// Written as its [`Metric::name`]; read from that or a shorthand (see [`Metric::parse`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Metric {
    /// Mean or a quantile.
    pub statistic: Statistic,
    /// Self or inclusive time.
    pub time: TimeKind,
}

impl Default for Metric {
    fn default() -> Self {
        Metric::MEAN_SELF
    }
}

impl Metric {
    /// One statistic of one kind of time.
    pub const fn new(statistic: Statistic, time: TimeKind) -> Metric {
        Metric { statistic, time }
    }

    /// Mean self time per call: the first rule's metric and the default's first.
    pub const MEAN_SELF: Metric = Metric::new(Statistic::Mean, TimeKind::SelfTime);
    /// Mean inclusive time per call.
    pub const MEAN_INCLUSIVE: Metric = Metric::new(Statistic::Mean, TimeKind::Inclusive);
    /// 99th percentile of inclusive time per call: the default's tail metric.
    pub const P99_INCLUSIVE: Metric = Metric::new(Statistic::P99, TimeKind::Inclusive);
    /// Total self time per run.
    pub const TOTAL_SELF: Metric = Metric::new(Statistic::Total, TimeKind::SelfTime);

    /// The default metrics: mean self time (pins a change in a call's cost on the function), the 99th
    /// percentile of inclusive time (a slow path in 1% of the calls, which the mean barely sees) and
    /// total self time per run (the same cost per call, paid more often: `bench cost`'s sqlite knob
    /// turns `sqlite3OsRead`'s 2 calls per run into 8,825 at an unchanged time per call). A function
    /// called as often in every run, base and head, has its total gated by its mean: its total is not
    /// gated then (a note says so), so it neither repeats the mean's verdict nor dilutes the correction.
    pub fn defaults() -> Vec<Metric> {
        vec![Metric::MEAN_SELF, Metric::P99_INCLUSIVE, Metric::TOTAL_SELF]
    }

    /// `mean-self`, `p99-inclusive`.
    pub fn name(&self) -> String {
        let time = match self.time {
            TimeKind::SelfTime => "self",
            TimeKind::Inclusive => "inclusive",
        };
        format!("{}-{time}", self.statistic.name())
    }

    /// `mean self`, `p99 incl`: for table cells.
    pub fn short(&self) -> String {
        let time = match self.time {
            TimeKind::SelfTime => "self",
            TimeKind::Inclusive => "incl",
        };
        format!("{} {time}", self.statistic.name())
    }

    /// Words for reports: `mean self time per call`, `p99 of inclusive time per call`, `total self time
    /// per run`.
    pub fn label(&self) -> String {
        let time = match self.time {
            TimeKind::SelfTime => "self time per call",
            TimeKind::Inclusive => "inclusive time per call",
        };
        match self.statistic {
            Statistic::Mean => format!("mean {time}"),
            Statistic::Total => match self.time {
                TimeKind::SelfTime => "total self time per run".into(),
                TimeKind::Inclusive => "total inclusive time per run".into(),
            },
            q => format!("{} of {time}", q.name()),
        }
    }

    /// Whether this is a quantile (its threshold is [`GateSettings::quantile_threshold`]).
    pub fn is_quantile(&self) -> bool {
        self.statistic.quantile().is_some()
    }

    /// Calls per run this metric needs before it is gated: 0 for the mean, `5 / (1 - q)` for a quantile
    /// (10 for p50, 50 for p90, 500 for p99).
    pub fn min_calls(&self) -> u64 {
        self.statistic
            .quantile()
            .map_or(0, |q| (CALLS_ABOVE_QUANTILE / (1.0 - q)).round() as u64)
    }

    /// Reads a metric: `<statistic>-<time>` (`mean-self`, `p99-inclusive`, `p90-incl`) or a shorthand:
    /// `mean` and `self` are `mean-self`, `inclusive` is `mean-inclusive` (the older names), `p50`, `p90`
    /// and `p99` alone are of inclusive time (a call's latency as its caller sees it), `total` alone is
    /// `total-self` (where the run's time went).
    pub fn parse(s: &str) -> Result<Metric, String> {
        let s = s.trim().to_ascii_lowercase();
        let statistic = |n: &str| match n {
            "mean" => Some(Statistic::Mean),
            "p50" | "median" => Some(Statistic::P50),
            "p90" => Some(Statistic::P90),
            "p99" => Some(Statistic::P99),
            "total" => Some(Statistic::Total),
            _ => None,
        };
        let time = |n: &str| match n {
            "self" | "self-time" => Some(TimeKind::SelfTime),
            "inclusive" | "incl" => Some(TimeKind::Inclusive),
            _ => None,
        };
        let metric = match s.as_str() {
            "self" | "self-time" | "mean" => Some(Metric::MEAN_SELF),
            "inclusive" => Some(Metric::MEAN_INCLUSIVE),
            "total" => Some(Metric::TOTAL_SELF),
            _ => match s.split_once('-') {
                Some((st, t)) => statistic(st)
                    .zip(time(t))
                    .map(|(statistic, time)| Metric { statistic, time }),
                None => statistic(&s).map(|statistic| Metric {
                    statistic,
                    time: TimeKind::Inclusive,
                }),
            },
        };
        metric.ok_or_else(|| {
            format!(
                "metric {s:?}: write mean, p50, p90, p99 or total, optionally with -self or -inclusive \
                 (e.g. mean-self, p99-inclusive, total-self)"
            )
        })
    }
}

impl Serialize for Metric {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.name())
    }
}

impl<'de> Deserialize<'de> for Metric {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Metric, D::Error> {
        let s = String::deserialize(d)?;
        Metric::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// One metric or a list of them: `metric = "self"` (older files) or `metrics = ["mean-self", "p99"]`.
#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(Metric),
    Many(Vec<Metric>),
}

/// Reads one metric or a list, refusing an empty list and repeats.
pub fn metrics_of<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<Metric>, D::Error> {
    let v = match OneOrMany::deserialize(d)? {
        OneOrMany::One(m) => vec![m],
        OneOrMany::Many(v) => v,
    };
    check_metrics(&v).map_err(serde::de::Error::custom)?;
    Ok(v)
}

/// [`metrics_of`] for an optional field (with `#[serde(default)]`).
pub fn some_metrics_of<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<Vec<Metric>>, D::Error> {
    metrics_of(d).map(Some)
}

/// A list of metrics must name at least one, each once, and at most [`MAX_METRICS`].
pub fn check_metrics(v: &[Metric]) -> Result<(), String> {
    if v.is_empty() {
        return Err("metrics: name at least one (e.g. mean-self)".into());
    }
    if v.len() > MAX_METRICS {
        return Err(format!("metrics: at most {MAX_METRICS}"));
    }
    for (i, m) in v.iter().enumerate() {
        if v[..i].contains(m) {
            return Err(format!("metrics: {} is named twice", m.name()));
        }
    }
    Ok(())
}

/// Every statistic of both kinds of time.
pub const MAX_METRICS: usize = 10;

fn default_metrics() -> Vec<Metric> {
    Metric::defaults()
}

fn default_quantile_threshold() -> f64 {
    DEFAULT_QUANTILE_THRESHOLD
}

/// The default threshold of the quantile metrics, the median's: a quantile is noisier than a mean, and
/// the higher the quantile the more (see [`Statistic::threshold_scale`]).
pub const DEFAULT_QUANTILE_THRESHOLD: f64 = 0.10;

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
    /// Smallest slowdown of the mean that counts, as a fraction (0.05 = 5% slower). The whole confidence
    /// interval of the ratio must lie above 1 + threshold.
    pub threshold: f64,
    /// Confidence level of the ratio's interval.
    pub confidence: f64,
    /// Functions whose share of the total self time is below this fraction are reported, not gated.
    pub min_share: f64,
    /// Head runs of the first look (the sequential rule looks again at 10, 15, 20, 30 by default).
    pub runs: usize,
    /// Head runs of the last look: the most a check takes.
    pub max_runs: usize,
    /// What is compared, each on its own (a function regresses when any of them does). Older files'
    /// single `metric = "self"` reads as that one metric.
    #[serde(
        alias = "metric",
        deserialize_with = "metrics_of",
        default = "default_metrics"
    )]
    pub metrics: Vec<Metric>,
    /// Smallest change that counts for the quantile metrics (p50, p90, p99), as a fraction; `threshold`
    /// is the mean's.
    #[serde(default = "default_quantile_threshold")]
    pub quantile_threshold: f64,
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

impl GateSettings {
    /// The threshold of a metric: [`GateSettings::quantile_threshold`] for a quantile, else
    /// [`GateSettings::threshold`].
    pub fn threshold_of(&self, m: Metric) -> f64 {
        if m.is_quantile() {
            self.quantile_threshold * m.statistic.threshold_scale()
        } else {
            self.threshold
        }
    }

    /// `mean self time per call and p99 of inclusive time per call`.
    pub fn metrics_label(&self) -> String {
        let labels: Vec<String> = self.metrics.iter().map(Metric::label).collect();
        match labels.len() {
            0 => "nothing".into(),
            1 => labels[0].clone(),
            n => format!("{} and {}", labels[..n - 1].join(", "), labels[n - 1]),
        }
    }

    /// `threshold 5%` or `threshold 5% (mean, total), 40% (p99)`: each gated metric's threshold.
    pub fn thresholds_label(&self) -> String {
        let pct = |x: f64| {
            let s = format!("{:.2}", x * 100.0);
            let s = s.trim_end_matches('0').trim_end_matches('.').to_string();
            format!("{s}%")
        };
        // One entry per threshold, naming the statistics gated at it, in the order the metrics are given:
        // `5% (mean, total), 40% (p99)`.
        let mut parts: Vec<(String, Vec<&str>)> = Vec::new();
        for m in &self.metrics {
            let (name, t) = (m.statistic.name(), pct(self.threshold_of(*m)));
            match parts.iter_mut().find(|(pt, _)| *pt == t) {
                Some((_, names)) if names.contains(&name) => {}
                Some((_, names)) => names.push(name),
                None => parts.push((t, vec![name])),
            }
        }
        match parts.as_slice() {
            [] => format!("threshold {}", pct(self.threshold)),
            [(t, _)] => format!("threshold {t}"),
            _ => format!(
                "threshold {}",
                parts
                    .iter()
                    .map(|(t, n)| format!("{t} ({})", n.join(", ")))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    }
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
            metrics: Metric::defaults(),
            quantile_threshold: DEFAULT_QUANTILE_THRESHOLD,
            gate_calls: false,
            relative: false,
            normalise: true,
            fail_on_inconclusive: false,
            rule: Rule::Sequential,
        }
    }
}

/// The figures of one gated (function, metric) pair: what the gate measured and decided on. A
/// [`MetricComparison`] carries its metric's; a [`FunctionComparison`] carries those of its deciding
/// metric (or, for a function not gated, of its first). Both flatten them, so the JSON keys are the
/// fields' names at the top level of each object, as before this struct existed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Figures {
    /// Median over base runs of the metric, ns (normalised per run when the comparison is).
    pub base: Option<f64>,
    /// Median over head runs of the metric, ns (likewise; divided by the speed factor when relative).
    pub head: Option<f64>,
    /// Hodges–Lehmann estimate of head/base.
    pub ratio: Option<f64>,
    /// Lower end of the ratio's confidence interval (at `confidence`).
    pub ratio_low: Option<f64>,
    /// Upper end of the ratio's confidence interval.
    pub ratio_high: Option<f64>,
    /// Two-sided Mann–Whitney p-value.
    pub p_value: Option<f64>,
    /// The p-value adjusted for testing many at once (Benjamini–Hochberg): across every (function,
    /// metric) pair of the look (across the functions under the legacy rule, which gates one metric).
    pub q_value: Option<f64>,
    /// The threshold applied: a per-function override or the global one, the mean's or the quantiles'.
    pub threshold: f64,
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

/// One function compared.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FunctionComparison {
    /// Demangled name.
    pub name: String,
    /// File it lives in.
    pub module: String,
    /// The verdict.
    pub verdict: Verdict,
    /// The deciding metric's figures (see `metric`).
    #[serde(flatten)]
    pub figures: Figures,
    /// Share of the total self time in the head runs (base runs for removed functions).
    pub share: f64,
    /// Median calls per base run.
    pub base_calls: Option<u64>,
    /// Median calls per head run.
    pub head_calls: Option<u64>,
    /// Median head time per run spent in the function (inclusive total), ns; the JUnit `time`.
    pub head_total_ns: Option<f64>,
    /// The metric the verdict and figures above are of: the one whose verdict is the function's (its
    /// worst: regressed before improved before inconclusive before unchanged; the first listed on a tie).
    /// `None` in reports written before several metrics were gated (then it is the settings' first).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metric: Option<Metric>,
    /// Every metric gated for this function, each with its own verdict, in the settings' order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub metrics: Vec<MetricComparison>,
    /// What was not gated and why (a quantile of too few calls, a metric the baseline lacks).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// Base against head distribution of the deciding metric's time, for a regressed or improved
    /// function.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub distribution: Option<Distribution>,
}

/// One metric of one function compared: its own verdict under the same rule, its own figures.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MetricComparison {
    /// The metric.
    pub metric: Metric,
    /// Its verdict.
    pub verdict: Verdict,
    /// Its figures.
    #[serde(flatten)]
    pub figures: Figures,
}

/// Quantiles of one side: medians over its runs of each run's figure, ns (probe cost taken out like the
/// gate's figures).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Quantiles {
    /// Median call.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Slowest call.
    pub max: f64,
    /// Mean per call.
    pub mean: f64,
}

/// One bucket of a merged histogram: calls that took `[low_ns, high_ns)`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bucket {
    /// Inclusive lower bound, ns.
    pub low_ns: u64,
    /// Exclusive upper bound, ns.
    pub high_ns: u64,
    /// Calls, summed over the side's runs.
    pub count: u64,
}

/// A function's latency distribution, base against head, in one kind of time.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Distribution {
    /// Self or inclusive time.
    pub time: Option<TimeKind>,
    /// Base quantiles.
    pub base: Quantiles,
    /// Head quantiles.
    pub head: Quantiles,
    /// Base calls of every run merged, non-empty buckets ascending (as measured: the probe cost is in).
    pub base_histogram: Vec<Bucket>,
    /// Head calls likewise.
    pub head_histogram: Vec<Bucket>,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_are_read_by_name_and_shorthand_and_written_back_by_name() {
        for (text, want) in [
            ("mean", Metric::MEAN_SELF),
            ("inclusive", Metric::MEAN_INCLUSIVE),
            ("p99", Metric::P99_INCLUSIVE),
            ("total", Metric::TOTAL_SELF),
            ("Total-Self", Metric::TOTAL_SELF),
        ] {
            assert_eq!(Metric::parse(text), Ok(want), "{text}");
        }
        let incl = Metric::parse("total-incl").unwrap();
        assert_eq!(incl.name(), "total-inclusive");
        assert_eq!(incl.label(), "total inclusive time per run");
        assert!(!incl.is_quantile());
        assert_eq!(incl.min_calls(), 0);
        let err = Metric::parse("sum").unwrap_err();
        assert!(err.contains("total"), "{err}");
    }

    #[test]
    fn thresholds_are_listed_once_each_with_the_statistics_gated_at_them() {
        let s = GateSettings::default();
        assert_eq!(
            s.thresholds_label(),
            "threshold 5% (mean, total), 40% (p99)"
        );
        let one = GateSettings {
            metrics: vec![Metric::MEAN_SELF, Metric::TOTAL_SELF],
            ..GateSettings::default()
        };
        assert_eq!(one.thresholds_label(), "threshold 5%");
        let three = GateSettings {
            metrics: vec![
                Metric::P99_INCLUSIVE,
                Metric::parse("p90").unwrap(),
                Metric::parse("p99-self").unwrap(),
            ],
            ..GateSettings::default()
        };
        assert_eq!(three.thresholds_label(), "threshold 40% (p99), 15% (p90)");
    }

    /// Every figure set, each to a value no other field has, so a key read into the wrong field shows.
    fn figures(offset: f64, decided_at: usize) -> Figures {
        Figures {
            base: Some(1_200.0 + offset),
            head: Some(1_500.0 + offset),
            ratio: Some(1.25 + offset),
            ratio_low: Some(1.2 + offset),
            ratio_high: Some(1.3 + offset),
            p_value: Some(0.0002 + offset),
            q_value: Some(0.001 + offset),
            threshold: 0.05 + offset,
            confidence: Some(0.95 + offset),
            cv: Some(0.03 + offset),
            smallest_detectable: Some(1.07 + offset),
            decided_at: Some(decided_at),
        }
    }

    /// A function with every field set: decided by its p99, its mean unchanged.
    fn everything() -> FunctionComparison {
        let quantiles = |scale: f64| Quantiles {
            p50: 1_000.0 * scale,
            p90: 1_100.0 * scale,
            p99: 1_300.0 * scale,
            max: 1_400.0 * scale,
            mean: 1_050.0 * scale,
        };
        FunctionComparison {
            name: "parse_header".into(),
            module: "libfoo.so".into(),
            verdict: Verdict::Regressed,
            figures: figures(0.0, 2),
            share: 0.2345,
            base_calls: Some(200),
            head_calls: Some(250),
            head_total_ns: Some(300_000.0),
            metric: Some(Metric::P99_INCLUSIVE),
            metrics: vec![
                MetricComparison {
                    metric: Metric::MEAN_SELF,
                    verdict: Verdict::Unchanged,
                    figures: figures(0.5, 1),
                },
                MetricComparison {
                    metric: Metric::P99_INCLUSIVE,
                    verdict: Verdict::Regressed,
                    figures: figures(0.0, 2),
                },
            ],
            notes: vec!["p50-self not gated: too few calls".into()],
            distribution: Some(Distribution {
                time: Some(TimeKind::Inclusive),
                base: quantiles(1.0),
                head: quantiles(1.25),
                base_histogram: vec![Bucket {
                    low_ns: 1_024,
                    high_ns: 2_048,
                    count: 2_000,
                }],
                head_histogram: vec![Bucket {
                    low_ns: 2_048,
                    high_ns: 4_096,
                    count: 2_500,
                }],
            }),
        }
    }

    fn keys(v: &serde_json::Value) -> Vec<&str> {
        let mut k: Vec<&str> = v
            .as_object()
            .map(|o| o.keys().map(String::as_str).collect())
            .unwrap_or_default();
        k.sort_unstable();
        k
    }

    /// The keys a function had before [`Figures`] existed, sorted.
    const FUNCTION_KEYS: [&str; 23] = [
        "base",
        "base_calls",
        "confidence",
        "cv",
        "decided_at",
        "distribution",
        "head",
        "head_calls",
        "head_total_ns",
        "metric",
        "metrics",
        "module",
        "name",
        "notes",
        "p_value",
        "q_value",
        "ratio",
        "ratio_high",
        "ratio_low",
        "share",
        "smallest_detectable",
        "threshold",
        "verdict",
    ];

    /// The keys a metric had before [`Figures`] existed, sorted.
    const METRIC_KEYS: [&str; 14] = [
        "base",
        "confidence",
        "cv",
        "decided_at",
        "head",
        "metric",
        "p_value",
        "q_value",
        "ratio",
        "ratio_high",
        "ratio_low",
        "smallest_detectable",
        "threshold",
        "verdict",
    ];

    #[test]
    fn a_function_with_every_field_set_round_trips_with_its_figures_at_the_top_level() {
        let f = everything();
        let text = serde_json::to_string(&f).unwrap();
        let back: FunctionComparison = serde_json::from_str(&text).unwrap();
        assert_eq!(back, f);

        // Flattened: the same keys as before, no `figures` object, each value under its own key.
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(keys(&v), FUNCTION_KEYS, "{text}");
        assert_eq!(v["ratio_low"], 1.2);
        assert_eq!(v["ratio_high"], 1.3);
        assert_eq!(v["q_value"], 0.001);
        assert_eq!(v["decided_at"], 2);
        for m in v["metrics"].as_array().unwrap() {
            assert_eq!(keys(m), METRIC_KEYS, "{m}");
        }
        assert_eq!(v["metrics"][0]["metric"], "mean-self");
        assert_eq!(v["metrics"][0]["ratio"], 1.75);
        assert_eq!(v["metrics"][0]["decided_at"], 1);
    }

    /// A function as perfgate wrote it before [`Figures`]: its fields and its metrics' in the old order.
    const OLD_ORDER: &str = r#"{
        "name": "parse_header", "module": "libfoo.so", "verdict": "regressed",
        "base": 1200.0, "head": 1500.0, "ratio": 1.25, "ratio_low": 1.2, "ratio_high": 1.3,
        "p_value": 0.0002, "q_value": 0.001,
        "share": 0.2345, "base_calls": 200, "head_calls": 250,
        "threshold": 0.05, "head_total_ns": 300000.0,
        "confidence": 0.95, "cv": 0.03, "smallest_detectable": 1.07, "decided_at": 2,
        "metric": "p99-inclusive",
        "metrics": [
            {"metric": "mean-self", "verdict": "unchanged",
             "base": 1200.5, "head": 1500.5, "ratio": 1.75, "ratio_low": 1.7, "ratio_high": 1.8,
             "p_value": 0.5002, "q_value": 0.501, "threshold": 0.55,
             "confidence": 1.45, "cv": 0.53, "smallest_detectable": 1.57, "decided_at": 1},
            {"metric": "p99-inclusive", "verdict": "regressed",
             "base": 1200.0, "head": 1500.0, "ratio": 1.25, "ratio_low": 1.2, "ratio_high": 1.3,
             "p_value": 0.0002, "q_value": 0.001, "threshold": 0.05,
             "confidence": 0.95, "cv": 0.03, "smallest_detectable": 1.07, "decided_at": 2}
        ],
        "notes": ["p50-self not gated: too few calls"],
        "distribution": {
            "time": "inclusive",
            "base": {"p50": 1000.0, "p90": 1100.0, "p99": 1300.0, "max": 1400.0, "mean": 1050.0},
            "head": {"p50": 1250.0, "p90": 1375.0, "p99": 1625.0, "max": 1750.0, "mean": 1312.5},
            "base_histogram": [{"low_ns": 1024, "high_ns": 2048, "count": 2000}],
            "head_histogram": [{"low_ns": 2048, "high_ns": 4096, "count": 2500}]
        }
    }"#;

    #[test]
    fn a_function_written_in_the_old_field_order_reads_the_same() {
        let f: FunctionComparison = serde_json::from_str(OLD_ORDER).unwrap();
        assert_eq!(f, everything());
    }

    #[test]
    fn a_function_written_before_noise_and_looks_were_reported_reads_them_as_none() {
        // The oldest reports: no confidence, cv, smallest_detectable, decided_at, metric or metrics.
        let old = r#"{"name": "flush", "module": "bench", "verdict": "inconclusive",
            "base": 5000.0, "head": 5300.0, "ratio": 1.06, "ratio_low": 0.98, "ratio_high": 1.15,
            "p_value": 0.04, "q_value": 0.2, "share": 0.03, "base_calls": 12, "head_calls": 12,
            "threshold": 0.05, "head_total_ns": 70000.0}"#;
        let f: FunctionComparison = serde_json::from_str(old).unwrap();
        assert_eq!(f.figures.ratio_low, Some(0.98));
        assert_eq!(f.figures.threshold, 0.05);
        assert_eq!(f.figures.confidence, None);
        assert_eq!(f.figures.cv, None);
        assert_eq!(f.figures.smallest_detectable, None);
        assert_eq!(f.figures.decided_at, None);
        assert_eq!(f.share, 0.03);
        assert_eq!(f.metric, None);
        assert!(f.metrics.is_empty());
        // A figure without a default is still required.
        let no_threshold = old.replace(r#""threshold": 0.05, "#, "");
        let e = serde_json::from_str::<FunctionComparison>(&no_threshold).unwrap_err();
        assert!(e.to_string().contains("threshold"), "{e}");
    }
}
