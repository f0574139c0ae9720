//! The committed baseline: a human-readable, diff-friendly TOML file with the per-run figures of every
//! function, the command, the machine and the gate settings. Parsed as untrusted input; written atomically.
use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use super::figures::{FuncKey, FuncRun, RunFigures};
use super::model::{check_metrics, some_metrics_of, GateSettings, Metric};
use crate::plan::Selection;
use crate::profile::Histogram;
use crate::profile::Machine;

/// Version of the baseline format this perfgate reads and writes.
pub const BASELINE_SCHEMA: u32 = 1;
/// The largest file read as a baseline (a 30-run baseline of 10,000 functions is about 20 MiB).
pub const MAX_BASELINE_BYTES: u64 = 64 << 20;

/// Most memory the runs of a baseline may take as figures per byte of its file, plus
/// [`FIGURES_SLACK`] (see `Baseline::check_figures_fit`).
const FIGURES_PER_BYTE: usize = 32;
const FIGURES_SLACK: usize = 16 << 20;
/// Memory of one function's figures in one run besides its names: the map entry, nine numbers.
const FIGURE_BYTES: usize = 256;
/// What the TOML parser takes per value (measured: 190 bytes for the values of a baseline's arrays).
const TOML_BYTES_PER_VALUE: usize = 200;

/// Gate settings stored in a baseline's `[gate]` table; every one optional.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GateOverrides {
    /// See [`GateSettings::alpha`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alpha: Option<f64>,
    /// See [`GateSettings::threshold`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub threshold: Option<f64>,
    /// See [`GateSettings::confidence`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub confidence: Option<f64>,
    /// See [`GateSettings::min_share`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_share: Option<f64>,
    /// See [`GateSettings::runs`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub runs: Option<usize>,
    /// See [`GateSettings::max_runs`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_runs: Option<usize>,
    /// See [`GateSettings::metrics`] (`metric = "self"` of older files reads as one metric).
    #[serde(
        default,
        alias = "metric",
        deserialize_with = "some_metrics_of",
        skip_serializing_if = "Option::is_none"
    )]
    pub metrics: Option<Vec<Metric>>,
    /// See [`GateSettings::quantile_threshold`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quantile_threshold: Option<f64>,
    /// See [`GateSettings::gate_calls`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gate_calls: Option<bool>,
    /// See [`GateSettings::relative`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub relative: Option<bool>,
    /// See [`GateSettings::normalise`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub normalise: Option<bool>,
    /// See [`GateSettings::fail_on_inconclusive`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fail_on_inconclusive: Option<bool>,
    /// See [`GateSettings::rule`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<super::model::Rule>,
}

impl GateOverrides {
    /// Applies these over `s` (the ones that are set win).
    pub fn apply(&self, s: &mut GateSettings) {
        if let Some(v) = self.alpha {
            s.alpha = v;
        }
        if let Some(v) = self.threshold {
            s.threshold = v;
        }
        if let Some(v) = self.confidence {
            s.confidence = v;
        }
        if let Some(v) = self.min_share {
            s.min_share = v;
        }
        if let Some(v) = self.runs {
            s.runs = v;
        }
        if let Some(v) = self.max_runs {
            s.max_runs = v;
        }
        if let Some(v) = &self.metrics {
            s.metrics = v.clone();
        }
        if let Some(v) = self.quantile_threshold {
            s.quantile_threshold = v;
        }
        if let Some(v) = self.gate_calls {
            s.gate_calls = v;
        }
        if let Some(v) = self.relative {
            s.relative = v;
        }
        if let Some(v) = self.normalise {
            s.normalise = v;
        }
        if let Some(v) = self.fail_on_inconclusive {
            s.fail_on_inconclusive = v;
        }
        if let Some(v) = self.rule {
            s.rule = v;
        }
    }
}

/// Checks settings for values that make no sense; one line naming the setting.
pub fn validate_settings(s: &GateSettings) -> Result<()> {
    let unit = |v: f64| v.is_finite() && v > 0.0 && v < 1.0;
    if !unit(s.alpha) {
        bail!("alpha = {}: must be between 0 and 1 (e.g. 0.05)", s.alpha);
    }
    if !(s.threshold.is_finite() && s.threshold >= 0.0 && s.threshold <= 10.0) {
        bail!(
            "threshold = {}: must be a fraction between 0 and 10 (0.05 = 5% slower)",
            s.threshold
        );
    }
    if !(s.quantile_threshold.is_finite() && (0.0..=10.0).contains(&s.quantile_threshold)) {
        bail!(
            "quantile_threshold = {}: must be a fraction between 0 and 10 (0.10 = 10% slower)",
            s.quantile_threshold
        );
    }
    check_metrics(&s.metrics).map_err(|e| anyhow::anyhow!("{e}"))?;
    if !unit(s.confidence) {
        bail!(
            "confidence = {}: must be between 0 and 1 (e.g. 0.95)",
            s.confidence
        );
    }
    if !(s.min_share.is_finite() && (0.0..1.0).contains(&s.min_share)) {
        bail!(
            "min_share = {}: must be a fraction between 0 and 1 (0.01 = 1% of the time)",
            s.min_share
        );
    }
    if s.runs == 0 {
        bail!("runs = 0: at least 1 run is needed (5 or more to detect anything)");
    }
    if s.runs > 10_000 || s.max_runs > 10_000 {
        bail!("runs: at most 10000");
    }
    Ok(())
}

/// Which functions were traced (so `check` traces the same ones).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SelectionToml {
    /// `--lib` globs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub libs: Vec<String>,
    /// `--function` globs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub functions: Vec<String>,
    /// `--no-function` globs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub no_functions: Vec<String>,
    /// Every probe on the function's first byte (`--no-placement`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub no_placement: bool,
    /// Functions the survey left to their callers, with the figures that decided it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub too_hot: Vec<crate::profile::HotFunction>,
}

/// One function's figures over the baseline runs; every array has one entry per run (0 where not called).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BaselineFunction {
    /// Demangled name.
    pub name: String,
    /// File short name.
    pub module: String,
    /// Raw symbol.
    pub symbol: String,
    /// Per-function threshold override (fraction).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold: Option<f64>,
    /// Per-function quantile threshold override (fraction).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quantile_threshold: Option<f64>,
    /// Per-function metrics override, e.g. `metrics = ["mean-self", "p99-self"]`.
    #[serde(
        default,
        deserialize_with = "some_metrics_of",
        skip_serializing_if = "Option::is_none"
    )]
    pub metrics: Option<Vec<Metric>>,
    /// Never gate this function.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub ignore: bool,
    /// Calls per run.
    pub calls: Vec<u64>,
    /// Mean inclusive time per call, ns.
    pub mean_ns: Vec<f64>,
    /// Median inclusive time per call, ns.
    pub p50_ns: Vec<f64>,
    /// 90th percentile inclusive, ns.
    pub p90_ns: Vec<f64>,
    /// 99th percentile inclusive, ns.
    pub p99_ns: Vec<f64>,
    /// Mean self time per call, ns.
    pub self_mean_ns: Vec<f64>,
    /// Median self time per call, ns.
    pub self_p50_ns: Vec<f64>,
    /// 90th percentile self time, ns (empty in baselines written before it was kept).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub self_p90_ns: Vec<f64>,
    /// 99th percentile self time, ns (likewise).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub self_p99_ns: Vec<f64>,
    /// Longest call, inclusive, ns (likewise).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub max_ns: Vec<f64>,
    /// Longest self time of a call, ns (likewise).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub self_max_ns: Vec<f64>,
    /// Total inclusive time per run, ns.
    pub total_ns: Vec<f64>,
    /// Total self time per run, ns.
    pub self_total_ns: Vec<f64>,
    /// The calibrated probe cost taken out of `total_ns`, per run, ns (empty in baselines written before
    /// it was kept).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub probe_ns: Vec<f64>,
    /// Likewise taken out of `self_total_ns`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub self_probe_ns: Vec<f64>,
    /// Every run's calls by inclusive time, merged (for the reports' distribution; not gated on).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incl_hist: Option<Histogram>,
    /// Every run's calls by self time, merged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub self_hist: Option<Histogram>,
}

/// A baseline file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Baseline {
    /// [`BASELINE_SCHEMA`].
    pub schema: u32,
    /// Version of perfgate that wrote it.
    pub perfgate_version: String,
    /// The benchmark command (argv), run from the current directory by `check`.
    pub command: Vec<String>,
    /// GNU build-id of the benchmark binary when recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build_id: Option<String>,
    /// When it was recorded, seconds since the Unix epoch.
    pub created_at: u64,
    /// Number of runs.
    pub runs: usize,
    /// Wall time per run, ns.
    pub wall_ns: Vec<f64>,
    /// Total self time over all functions per run, ns.
    pub total_self_ns: Vec<f64>,
    /// The machine it was recorded on.
    pub machine: Machine,
    /// Gate settings.
    #[serde(default)]
    pub gate: GateOverrides,
    /// What was traced.
    #[serde(default)]
    pub select: SelectionToml,
    /// Per function, sorted by module then symbol.
    #[serde(default, rename = "function")]
    pub functions: Vec<BaselineFunction>,
}

/// Rounds a figure for storage so that it keeps at least 7 significant digits: 0.1 ns from 1 ms (1e6 ns)
/// up, which is 8 digits or more there, and 7 significant digits below (a 1.234567 ns call keeps all 7;
/// the 0.1 ns of older perfgates left it 2, which turned runs that differ into ties). Rounding only keeps the
/// file short and its diffs readable; reading takes any number, so files written with 0.1 ns everywhere read
/// as before. Non-finite values and values beyond 1e15 (where 0.1 ns is below the f64 resolution) are kept.
fn round(v: f64) -> f64 {
    if !v.is_finite() || v == 0.0 || v.abs() >= 1e15 {
        return v;
    }
    if v.abs() >= 1e6 {
        return (v * 10.0).round() / 10.0;
    }
    // Decimal rounding to 7 significant digits, exactly as printed: the stored text is that decimal.
    format!("{v:.6e}").parse().unwrap_or(v)
}

/// One function's histograms of every run merged; `None` when no run has one.
fn merged(
    runs: &[RunFigures],
    key: &FuncKey,
    hist: impl Fn(&FuncRun) -> &Histogram,
) -> Option<Histogram> {
    let mut out: Option<Histogram> = None;
    for h in runs
        .iter()
        .filter_map(|r| r.functions.get(key))
        .map(&hist)
        .filter(|h| h.count() > 0)
    {
        match &mut out {
            Some(m) => m.merge(h),
            None => out = Some(h.clone()),
        }
    }
    out
}

impl Baseline {
    /// Builds a baseline from runs.
    pub fn from_runs(
        command: Vec<String>,
        build_id: Option<String>,
        machine: Machine,
        gate: GateOverrides,
        select: &Selection,
        runs: &[RunFigures],
    ) -> Baseline {
        let keys: std::collections::BTreeSet<&FuncKey> =
            runs.iter().flat_map(|r| r.functions.keys()).collect();
        let mut functions = Vec::new();
        for key in keys {
            let get = |f: &dyn Fn(&FuncRun) -> f64| -> Vec<f64> {
                runs.iter()
                    .map(|r| r.functions.get(key).map_or(0.0, |x| round(f(x))))
                    .collect()
            };
            let name = runs
                .iter()
                .find_map(|r| r.functions.get(key))
                .map(|f| f.name.clone())
                .unwrap_or_default();
            functions.push(BaselineFunction {
                name,
                module: key.module.clone(),
                symbol: key.symbol.clone(),
                threshold: None,
                quantile_threshold: None,
                metrics: None,
                ignore: false,
                calls: runs
                    .iter()
                    .map(|r| r.functions.get(key).map_or(0, |x| x.calls))
                    .collect(),
                mean_ns: get(&|f| f.mean),
                p50_ns: get(&|f| f.p50),
                p90_ns: get(&|f| f.p90),
                p99_ns: get(&|f| f.p99),
                self_mean_ns: get(&|f| f.self_mean),
                self_p50_ns: get(&|f| f.self_p50),
                self_p90_ns: get(&|f| f.self_p90),
                self_p99_ns: get(&|f| f.self_p99),
                max_ns: get(&|f| f.max),
                self_max_ns: get(&|f| f.self_max),
                total_ns: get(&|f| f.total),
                self_total_ns: get(&|f| f.self_total),
                probe_ns: get(&|f| f.probe),
                self_probe_ns: get(&|f| f.self_probe),
                incl_hist: merged(runs, key, |f| &f.incl_hist),
                self_hist: merged(runs, key, |f| &f.self_hist),
            });
        }
        Baseline {
            schema: BASELINE_SCHEMA,
            perfgate_version: env!("CARGO_PKG_VERSION").into(),
            command,
            build_id,
            created_at: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            runs: runs.len(),
            wall_ns: runs.iter().map(|r| round(r.wall_ns)).collect(),
            total_self_ns: runs.iter().map(|r| round(r.total_self)).collect(),
            machine,
            gate,
            select: SelectionToml {
                libs: select.libs.clone(),
                functions: select.functions.clone(),
                no_functions: select.no_functions.clone(),
                no_placement: select.no_placement,
                too_hot: select.too_hot.clone(),
            },
            functions,
        }
    }

    /// Keeps the per-function settings (threshold, ignore) of an older baseline, for `--update`.
    pub fn keep_overrides_of(&mut self, old: &Baseline) {
        let by_key: BTreeMap<(&str, &str), &BaselineFunction> = old
            .functions
            .iter()
            .map(|f| ((f.module.as_str(), f.symbol.as_str()), f))
            .collect();
        for f in &mut self.functions {
            if let Some(o) = by_key.get(&(f.module.as_str(), f.symbol.as_str())) {
                f.threshold = o.threshold;
                f.quantile_threshold = o.quantile_threshold;
                f.metrics = o.metrics.clone();
                f.ignore = o.ignore;
            }
        }
    }

    /// The selection to trace with.
    pub fn selection(&self) -> Selection {
        Selection {
            libs: self.select.libs.clone(),
            functions: self.select.functions.clone(),
            no_functions: self.select.no_functions.clone(),
            startup: false,
            no_placement: self.select.no_placement,
            too_hot: self.select.too_hot.clone(),
        }
    }

    /// The runs back as figures.
    pub fn run_figures(&self) -> Vec<RunFigures> {
        (0..self.runs)
            .map(|i| {
                let mut functions = BTreeMap::new();
                for f in &self.functions {
                    let calls = f.calls.get(i).copied().unwrap_or(0);
                    if calls == 0 {
                        continue;
                    }
                    let at = |v: &Vec<f64>| v.get(i).copied().unwrap_or(0.0);
                    functions.insert(
                        FuncKey {
                            module: f.module.clone(),
                            symbol: f.symbol.clone(),
                        },
                        FuncRun {
                            name: f.name.clone(),
                            calls,
                            mean: at(&f.mean_ns),
                            p50: at(&f.p50_ns),
                            p90: at(&f.p90_ns),
                            p99: at(&f.p99_ns),
                            self_mean: at(&f.self_mean_ns),
                            self_p50: at(&f.self_p50_ns),
                            self_p90: at(&f.self_p90_ns),
                            self_p99: at(&f.self_p99_ns),
                            max: at(&f.max_ns),
                            self_max: at(&f.self_max_ns),
                            total: at(&f.total_ns),
                            self_total: at(&f.self_total_ns),
                            probe: at(&f.probe_ns),
                            self_probe: at(&f.self_probe_ns),
                            incl_hist: Histogram::default(),
                            self_hist: Histogram::default(),
                        },
                    );
                }
                RunFigures {
                    functions,
                    total_self: self.total_self_ns.get(i).copied().unwrap_or(0.0),
                    wall_ns: self.wall_ns.get(i).copied().unwrap_or(0.0),
                }
            })
            .collect()
    }

    /// Reads and validates a baseline file. Every error names the file (and the line, for syntax errors).
    pub fn read(path: &Path) -> Result<Baseline> {
        let shown = path.display();
        let text = crate::files::read_regular(path, MAX_BASELINE_BYTES, "baseline")?;
        let text = String::from_utf8(text).map_err(|e| {
            anyhow::anyhow!(
                "{shown}: not UTF-8 text (byte {})",
                e.utf8_error().valid_up_to()
            )
        })?;
        Self::parse(&text).with_context(|| format!("baseline {shown}"))
    }

    /// Parses baseline text.
    pub fn parse(text: &str) -> Result<Baseline> {
        check_parse_fits(text)?;
        // The tree is dropped before the baseline is parsed: the two never take memory together.
        let schema = {
            let table: toml::Table =
                toml::from_str(text).map_err(|e| anyhow::anyhow!("{}", toml_error(&e, text)))?;
            table.get("schema").and_then(|v| v.as_integer())
        };
        match schema {
            None => bail!("no `schema = {BASELINE_SCHEMA}` line: not a perfgate baseline"),
            Some(s) if s > BASELINE_SCHEMA as i64 => bail!(
                "schema {s} was written by a newer perfgate; this one ({}) reads schema {BASELINE_SCHEMA}: upgrade perfgate",
                env!("CARGO_PKG_VERSION")
            ),
            Some(s) if s < BASELINE_SCHEMA as i64 => bail!(
                "schema {s} is no longer read (this perfgate reads schema {BASELINE_SCHEMA}): record it again with `perfgate baseline`"
            ),
            Some(_) => {}
        }
        let b: Baseline =
            toml::from_str(text).map_err(|e| anyhow::anyhow!("{}", toml_error(&e, text)))?;
        b.validate()?;
        b.check_figures_fit(text.len())?;
        Ok(b)
    }

    /// Refuses a baseline whose runs as figures ([`Baseline::run_figures`], which copies a function's
    /// names into every run that called it) would take more than [`FIGURES_PER_BYTE`] bytes per byte
    /// of the file: a real one needs a few (30 runs of short names), a crafted one (20,000 runs of a
    /// 200 KB name in 10 MB) asked for 7.9 GB.
    fn check_figures_fit(&self, file_bytes: usize) -> Result<()> {
        let need = self
            .functions
            .iter()
            .map(|f| {
                let called = f.calls.iter().filter(|&&c| c > 0).count();
                let names = f.name.len() + f.module.len() + f.symbol.len();
                called.saturating_mul(names.saturating_add(FIGURE_BYTES))
            })
            .fold(0usize, usize::saturating_add);
        let budget = file_bytes
            .saturating_mul(FIGURES_PER_BYTE)
            .saturating_add(FIGURES_SLACK);
        if need > budget {
            bail!(
                "{} runs of its functions' names would take {} MiB of memory, more than a baseline of \
                 {file_bytes} bytes can need ({} MiB)",
                self.runs,
                need >> 20,
                budget >> 20
            );
        }
        Ok(())
    }

    fn validate(&self) -> Result<()> {
        if self.command.is_empty() || self.command[0].is_empty() {
            bail!("`command` is empty");
        }
        if self.runs == 0 {
            bail!("`runs = 0`: a baseline needs at least one run");
        }
        let n = self.runs;
        if self.wall_ns.len() != n || self.total_self_ns.len() != n {
            bail!("`wall_ns`/`total_self_ns` must have {n} entries (runs = {n})");
        }
        for (what, v) in [
            ("wall_ns", &self.wall_ns),
            ("total_self_ns", &self.total_self_ns),
        ] {
            if v.iter().any(|x| !x.is_finite() || *x < 0.0) {
                bail!("`{what}` has a negative or non-finite value");
            }
        }
        let mut s = GateSettings::default();
        self.gate.apply(&mut s);
        validate_settings(&s).context("[gate]")?;
        for f in &self.functions {
            f.validate(n)?;
        }
        Ok(())
    }

    /// TOML text.
    pub fn to_toml(&self) -> Result<String> {
        let body = toml::to_string(self).context("serialising the baseline")?;
        Ok(format!(
            "# perfgate baseline: per-run figures of every traced function. Commit this file.\n\
             # Per function you may add `threshold = 0.10` (the mean 10% slower fails), `quantile_threshold = 0.20`,\n\
             # `metrics = [\"mean-self\", \"p99-self\"]` or `ignore = true`.\n{body}"
        ))
    }

    /// Writes atomically: a temporary file beside the target, synced, then renamed over it.
    pub fn write(&self, path: &Path) -> Result<()> {
        crate::files::write_atomic(path, self.to_toml()?.as_bytes())
            .with_context(|| format!("baseline {}", path.display()))
    }
}

impl BaselineFunction {
    /// Checks one function's figures against the baseline's `runs`; every error names the function.
    fn validate(&self, runs: usize) -> Result<()> {
        let name = &self.name;
        // Figures added since the first baselines: absent in older files.
        for (what, v) in [
            ("self_p90_ns", &self.self_p90_ns),
            ("self_p99_ns", &self.self_p99_ns),
            ("max_ns", &self.max_ns),
            ("self_max_ns", &self.self_max_ns),
            ("probe_ns", &self.probe_ns),
            ("self_probe_ns", &self.self_probe_ns),
        ] {
            per_run_figures(name, what, v, runs, true)?;
        }
        for h in [&self.incl_hist, &self.self_hist].into_iter().flatten() {
            h.validate()
                .map_err(|e| anyhow::anyhow!("function {name:?}: {e}"))?;
        }
        fraction_override(name, "quantile_threshold", self.quantile_threshold)?;
        if self.calls.len() != runs {
            bail!(
                "function {name:?}: `calls` has {} entries, runs = {runs}",
                self.calls.len()
            );
        }
        for (what, v) in [
            ("mean_ns", &self.mean_ns),
            ("p50_ns", &self.p50_ns),
            ("p90_ns", &self.p90_ns),
            ("p99_ns", &self.p99_ns),
            ("self_mean_ns", &self.self_mean_ns),
            ("self_p50_ns", &self.self_p50_ns),
            ("total_ns", &self.total_ns),
            ("self_total_ns", &self.self_total_ns),
        ] {
            per_run_figures(name, what, v, runs, false)?;
        }
        fraction_override(name, "threshold", self.threshold)
    }
}

/// Figure `what` of `function` has one entry per run (or none, when `optional`: a baseline older than
/// the figure), each finite and not negative.
fn per_run_figures(
    function: &str,
    what: &str,
    v: &[f64],
    runs: usize,
    optional: bool,
) -> Result<()> {
    if v.len() != runs && !(optional && v.is_empty()) {
        bail!(
            "function {function:?}: `{what}` has {} entries, runs = {runs}",
            v.len()
        );
    }
    if v.iter().any(|x| !x.is_finite() || *x < 0.0) {
        bail!("function {function:?}: `{what}` has a negative or non-finite value");
    }
    Ok(())
}

/// A per-function threshold `key`, when set, is a fraction between 0 and 10.
fn fraction_override(function: &str, key: &str, value: Option<f64>) -> Result<()> {
    if let Some(t) = value {
        if !(t.is_finite() && (0.0..=10.0).contains(&t)) {
            bail!("function {function:?}: {key} = {t}: must be a fraction between 0 and 10");
        }
    }
    Ok(())
}

/// toml's message is several lines with a source excerpt; keep its first line, which names line and column.
/// Refuses a text the TOML parser would turn into a tree much larger than the file: it takes about
/// [`TOML_BYTES_PER_VALUE`] bytes per value before anything is checked, and a value can be 2 bytes
/// (`1,`), so 10 MB of them would take 1 GB. A real baseline has a value per 10 bytes or so; values
/// are counted as at most one per `,` or line.
fn check_parse_fits(text: &str) -> Result<()> {
    let values = text.bytes().filter(|&b| b == b',' || b == b'\n').count() + 1;
    let need = values.saturating_mul(TOML_BYTES_PER_VALUE);
    let budget = text
        .len()
        .saturating_mul(FIGURES_PER_BYTE)
        .saturating_add(FIGURES_SLACK);
    if need > budget {
        bail!(
            "{values} values in {} bytes: denser than any baseline perfgate writes, and too many to parse",
            text.len()
        );
    }
    Ok(())
}

fn toml_error(e: &toml::de::Error, text: &str) -> String {
    let line = e
        .span()
        .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1);
    let msg = e.message().replace('\n', " ");
    match line {
        Some(l) => format!("line {l}: {msg}"),
        None => msg,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Baseline {
        let mut runs = Vec::new();
        for i in 0..3 {
            let mut r = RunFigures {
                total_self: 1000.0 + i as f64,
                wall_ns: 2000.0,
                ..Default::default()
            };
            r.functions.insert(
                FuncKey {
                    module: "work".into(),
                    symbol: "work1".into(),
                },
                FuncRun {
                    name: "work1".into(),
                    calls: 1,
                    mean: 10.0 + i as f64,
                    self_mean: 9.0,
                    ..Default::default()
                },
            );
            runs.push(r);
        }
        Baseline::from_runs(
            vec!["./work".into()],
            Some("abcd".into()),
            Machine {
                cpu_model: "cpu".into(),
                cores: 2,
                kernel: "6.18".into(),
            },
            GateOverrides {
                threshold: Some(0.1),
                ..Default::default()
            },
            &Selection::default(),
            &runs,
        )
    }

    #[test]
    fn round_trips_through_toml() {
        let b = sample();
        let text = b.to_toml().unwrap();
        assert!(text.contains("[[function]]"));
        let back = Baseline::parse(&text).unwrap();
        assert_eq!(back.functions, b.functions);
        assert_eq!(back.run_figures().len(), 3);
        assert_eq!(
            back.run_figures()[2]
                .functions
                .values()
                .next()
                .unwrap()
                .mean,
            12.0
        );
    }

    #[test]
    fn stored_values_keep_seven_significant_digits() {
        for (v, stored) in [
            (1.234_567_89, 1.234568),
            (0.000_123_456_789, 0.000_123_456_8),
            (12_345.678_9, 12_345.68),
            (999_999.96, 1_000_000.0),
            (1_234_567.891, 1_234_567.9),
            (123_456_789.123, 123_456_789.1),
            (3.0, 3.0),
            (0.0, 0.0),
            (-2.345_678_91, -2.345679),
            (2e15 + 0.3, 2e15 + 0.3),
        ] {
            assert_eq!(round(v), stored, "{v}");
        }
        // Runs that differ in the 3rd significant digit below 1 ns stay apart (0.1 ns made them ties).
        assert_ne!(round(0.512), round(0.534));
        let mut b = sample();
        b.functions[0].self_mean_ns = vec![round(1.234_567_89); 3];
        let text = b.to_toml().unwrap();
        assert!(
            text.contains("self_mean_ns = [1.234568, 1.234568, 1.234568]"),
            "{text}"
        );
    }

    #[test]
    fn files_with_the_old_rounding_read_as_before() {
        // Written by perfgates that rounded to 0.1 ns.
        let text = sample().to_toml().unwrap().replace(
            "mean_ns = [10.0, 11.0, 12.0]",
            "mean_ns = [10.1, 11.2, 12.3]",
        );
        assert!(text.contains("mean_ns = [10.1, 11.2, 12.3]"), "{text}");
        let b = Baseline::parse(&text).unwrap();
        let means: Vec<f64> = b
            .run_figures()
            .iter()
            .map(|r| r.functions.values().next().unwrap().mean)
            .collect();
        assert_eq!(means, [10.1, 11.2, 12.3]);
    }

    #[test]
    fn newer_and_older_schemas_are_refused_clearly() {
        let text = sample().to_toml().unwrap();
        let newer = text.replace("schema = 1", "schema = 2");
        let e = format!("{:#}", Baseline::parse(&newer).unwrap_err());
        assert!(e.contains("newer perfgate"), "{e}");
        let older = text.replace("schema = 1", "schema = 0");
        let e = format!("{:#}", Baseline::parse(&older).unwrap_err());
        assert!(e.contains("no longer read"), "{e}");
    }

    #[test]
    fn truncated_and_broken_files_name_the_line() {
        let text = sample().to_toml().unwrap();
        let cut = &text[..text.len() / 2];
        let cut = &cut[..cut.rfind('=').unwrap() + 1];
        let e = format!("{:#}", Baseline::parse(cut).unwrap_err());
        assert!(e.contains("line "), "{e}");
        let broken = text.replace("runs = 3", "runs = \"three\"");
        let e = format!("{:#}", Baseline::parse(&broken).unwrap_err());
        assert!(e.contains("line "), "{e}");
        let typo = text.replace("threshold = 0.1", "treshold = 0.1");
        let e = format!("{:#}", Baseline::parse(&typo).unwrap_err());
        assert!(e.contains("treshold"), "{e}");
    }

    #[test]
    fn gate_metrics_read_old_and_new_spellings_and_refuse_nonsense() {
        use crate::gate::model::{Statistic, TimeKind};
        let read = |t: &str| toml::from_str::<GateOverrides>(t);
        assert_eq!(
            read("metric = \"self\"").unwrap().metrics,
            Some(vec![Metric::MEAN_SELF])
        );
        assert_eq!(
            read("metric = \"inclusive\"").unwrap().metrics,
            Some(vec![Metric::MEAN_INCLUSIVE])
        );
        let both =
            read("metrics = [\"mean\", \"p99\", \"p90-self\"]\nquantile_threshold = 0.2").unwrap();
        assert_eq!(
            both.metrics,
            Some(vec![
                Metric::MEAN_SELF,
                Metric::P99_INCLUSIVE,
                Metric {
                    statistic: Statistic::P90,
                    time: TimeKind::SelfTime
                }
            ])
        );
        let mut s = GateSettings::default();
        both.apply(&mut s);
        assert_eq!(s.quantile_threshold, 0.2);
        // p99's is 4× the quantile threshold, p90's 1.5×.
        assert!((s.threshold_of(Metric::P99_INCLUSIVE) - 0.8).abs() < 1e-12);
        assert!((s.threshold_of(both.metrics.as_ref().unwrap()[2]) - 0.3).abs() < 1e-12);
        assert_eq!(s.threshold_of(Metric::MEAN_SELF), 0.05);
        // Written back under the new name.
        let text = toml::to_string(&both).unwrap();
        assert!(
            text.contains("metrics = [\"mean-self\", \"p99-inclusive\", \"p90-self\"]"),
            "{text}"
        );
        for bad in [
            "metrics = []",
            "metrics = [\"p95\"]",
            "metrics = [\"mean\", \"self\"]",
            "metric = \"fast\"",
        ] {
            assert!(read(bad).is_err(), "{bad}");
        }
        let s = GateSettings {
            quantile_threshold: f64::NAN,
            ..GateSettings::default()
        };
        assert!(validate_settings(&s).is_err());
    }

    #[test]
    fn inconsistent_arrays_are_refused() {
        let text = sample()
            .to_toml()
            .unwrap()
            .replace("calls = [1, 1, 1]", "calls = [1, 1]");
        let e = format!("{:#}", Baseline::parse(&text).unwrap_err());
        assert!(e.contains("`calls` has 2 entries"), "{e}");
    }

    #[test]
    fn write_is_atomic_and_leaves_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("b.toml");
        sample().write(&p).unwrap();
        assert!(Baseline::read(&p).is_ok());
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 1);
    }
}
