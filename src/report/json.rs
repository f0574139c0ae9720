//! The comparison as JSON, for scripts, dashboards and `perfgate merge`.
//!
//! `check --baseline` writes one [`BenchmarkReport`]: the [`Comparison`]'s fields at the top level (so
//! `.functions[]` is every function) plus what makes it actionable (baseline, commands, commits, links).
//! `check --all` writes a [`Suite`] of them. Both carry everything the markdown and JUnit renderers need, so
//! `merge` renders exactly what the shards would have. Function names are always the full demangled names.
//!
//! Invariants: a [`BenchmarkReport`] has a comparison or an error, never neither; [`Suite::exit_code`] is the
//! one rule for the exit code of several benchmarks.
use serde::{Deserialize, Serialize};

use super::Exporter;
use crate::gate::model::{Comparison, Verdict};

/// Version of the suite document; a newer one is refused by an older perfgate.
pub const SUITE_SCHEMA: u32 = 1;

/// Pretty-printed JSON of the whole [`Comparison`], with a trailing newline.
#[derive(Debug, Clone, Copy, Default)]
pub struct Json;

impl Exporter for Json {
    fn render(&self, c: &Comparison) -> anyhow::Result<Vec<u8>> {
        to_json(c)
    }
}

/// Any report as pretty-printed JSON with a trailing newline.
pub fn to_json<T: Serialize>(v: &T) -> anyhow::Result<Vec<u8>> {
    let mut out = serde_json::to_vec_pretty(v)?;
    out.push(b'\n');
    Ok(out)
}

/// Where a check ran: the commit measured and the links a reader follows.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Context {
    /// The commit measured (short hash), if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub head_commit: Option<String>,
    /// The CI run that produced the report.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_url: Option<String>,
    /// The artifact with the reports and the flame-graph diff.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_url: Option<String>,
    /// A quick verdict (`--quick`: fewer runs), not the full gate.
    #[serde(default)]
    pub quick: bool,
}

/// What to fail on, besides a regression (`--fail-on`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FailOn {
    /// A regression (or a changed call count with `--gate-calls`) fails.
    #[default]
    Regression,
    /// An inconclusive function fails too.
    Inconclusive,
}

/// One benchmark's result: its comparison or why there is none.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BenchmarkReport {
    /// The benchmark's name (perfgate.toml's, or the baseline file's stem).
    pub name: String,
    /// The baseline file, as given.
    pub baseline: String,
    /// The commit that last changed the baseline file (short hash), if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_commit: Option<String>,
    /// The command that reproduces this check locally.
    pub reproduce: String,
    /// The command that accepts the new numbers.
    pub update: String,
    /// Why the benchmark could not be checked (then there is no comparison).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The run's context, when this report stands alone (`check --baseline`); in a [`Suite`] the suite's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<Context>,
    /// What fails besides regressions.
    #[serde(default)]
    pub fail_on: FailOn,
    /// The comparison, its fields inline.
    #[serde(flatten, default, skip_serializing_if = "Option::is_none")]
    pub comparison: Option<Comparison>,
}

impl BenchmarkReport {
    /// Whether this benchmark fails the gate: a failing verdict, or an inconclusive one with
    /// `--fail-on inconclusive`. An error is not a failure but an [`Outcome::Error`].
    pub fn failed(&self) -> bool {
        self.comparison.as_ref().is_some_and(|c| {
            !c.passed()
                || (self.fail_on == FailOn::Inconclusive
                    && c.with(Verdict::Inconclusive).next().is_some())
        })
    }

    /// The outcome, for the exit code.
    pub fn outcome(&self) -> Outcome {
        if self.error.is_some() || self.comparison.is_none() {
            Outcome::Error
        } else if self.failed() {
            Outcome::Failed
        } else {
            Outcome::Passed
        }
    }
}

/// A benchmark's outcome, ordered from best to worst.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Outcome {
    /// Passed.
    Passed,
    /// Failed the gate.
    Failed,
    /// Could not be checked.
    Error,
}

/// Several benchmarks' results: `check --all`, a shard, or `merge`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Suite {
    /// [`SUITE_SCHEMA`].
    pub perfgate_suite: u32,
    /// Where it ran.
    #[serde(default)]
    pub context: Context,
    /// The shards this covers (`2/4`), when not all benchmarks.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shards: Vec<String>,
    /// Every benchmark, in the order they ran.
    pub benchmarks: Vec<BenchmarkReport>,
}

impl Suite {
    /// The worst outcome of any benchmark ([`Outcome::Passed`] when there is none): an error (2) over a
    /// failure (1) over a pass (0), since a benchmark not checked may hide a regression.
    pub fn outcome(&self) -> Outcome {
        self.benchmarks
            .iter()
            .map(BenchmarkReport::outcome)
            .max()
            .unwrap_or(Outcome::Passed)
    }

    /// The comparisons, in order (benchmarks with an error have none).
    pub fn comparisons(&self) -> Vec<Comparison> {
        self.benchmarks
            .iter()
            .filter_map(|b| b.comparison.clone())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::markdown::tests::fixture;

    fn report(c: Option<Comparison>) -> BenchmarkReport {
        BenchmarkReport {
            name: "parse-bench".into(),
            baseline: "baselines/parse-bench.toml".into(),
            base_commit: Some("abc1234".into()),
            reproduce: "perfgate check --baseline baselines/parse-bench.toml".into(),
            update: "perfgate check --baseline baselines/parse-bench.toml --update".into(),
            error: c.is_none().then(|| "no such file".into()),
            context: None,
            fail_on: FailOn::Regression,
            comparison: c,
        }
    }

    #[test]
    fn round_trips_into_a_comparison() -> anyhow::Result<()> {
        let c = fixture();
        let out = Json.render(&c)?;
        assert!(out.ends_with(b"}\n"));
        let back: Comparison = serde_json::from_slice(&out)?;
        assert_eq!(back, c);
        let text = String::from_utf8(out)?;
        assert!(text.contains(r#""verdict": "calls-changed""#));
        assert!(text.contains(r#""mean-self""#), "{text}");
        Ok(())
    }

    #[test]
    fn reports_written_before_several_metrics_read_as_one() -> anyhow::Result<()> {
        let c = fixture();
        let mut v: serde_json::Value = serde_json::from_slice(&Json.render(&c)?)?;
        let settings = v["settings"].as_object_mut().unwrap();
        settings.remove("metrics");
        settings.remove("quantile_threshold");
        settings.insert("metric".into(), "inclusive".into());
        for f in v["functions"].as_array_mut().unwrap() {
            let f = f.as_object_mut().unwrap();
            f.remove("metric");
            f.remove("metrics");
        }
        let back: Comparison = serde_json::from_value(v)?;
        assert_eq!(
            back.settings.metrics,
            [crate::gate::model::Metric::MEAN_INCLUSIVE]
        );
        assert_eq!(back.settings.quantile_threshold, 0.10);
        assert_eq!(back.functions.len(), c.functions.len());
        Ok(())
    }

    #[test]
    fn a_benchmark_report_keeps_the_comparison_at_the_top_level() -> anyhow::Result<()> {
        let r = report(Some(fixture()));
        let text = String::from_utf8(to_json(&r)?)?;
        let v: serde_json::Value = serde_json::from_str(&text)?;
        assert!(v["functions"].as_array().is_some_and(|f| f.len() == 10));
        assert_eq!(v["name"], "parse-bench");
        let back: BenchmarkReport = serde_json::from_str(&text)?;
        assert_eq!(back, r);
        // A bare comparison (older `check --json`) is not a benchmark report: it has no name.
        assert!(serde_json::from_slice::<BenchmarkReport>(&Json.render(&fixture())?).is_err());
        Ok(())
    }

    #[test]
    fn an_error_has_no_comparison_and_round_trips() -> anyhow::Result<()> {
        let r = report(None);
        let back: BenchmarkReport = serde_json::from_slice(&to_json(&r)?)?;
        assert_eq!(back, r);
        assert_eq!(back.comparison, None);
        assert_eq!(back.outcome(), Outcome::Error);
        Ok(())
    }

    #[test]
    fn the_worst_outcome_decides() {
        let mut passing = fixture();
        passing.functions.retain(|f| !f.verdict.fails());
        let suite = |b: Vec<BenchmarkReport>| Suite {
            perfgate_suite: SUITE_SCHEMA,
            context: Context::default(),
            shards: vec![],
            benchmarks: b,
        };
        assert_eq!(suite(vec![]).outcome(), Outcome::Passed);
        assert_eq!(
            suite(vec![report(Some(passing.clone()))]).outcome(),
            Outcome::Passed
        );
        assert_eq!(
            suite(vec![report(Some(passing.clone())), report(Some(fixture()))]).outcome(),
            Outcome::Failed
        );
        assert_eq!(
            suite(vec![report(Some(fixture())), report(None)]).outcome(),
            Outcome::Error
        );
        // The passing fixture has an inconclusive function.
        let mut strict = report(Some(passing));
        strict.fail_on = FailOn::Inconclusive;
        assert_eq!(strict.outcome(), Outcome::Failed);
    }
}
