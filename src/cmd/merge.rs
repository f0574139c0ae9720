//! `perfgate merge`: the JSON reports of CI shards joined into one suite: one markdown, one JUnit, one
//! JSON, one exit code (2 if a benchmark could not be checked, else 1 if one failed, else 0).
//!
//! Every input is untrusted: read with a size bound, a benchmark named in two inputs is refused (two
//! shards ran it: the matrix is wrong), a newer schema is refused, errors name the file.
use std::path::Path;

use anyhow::{bail, Context as _, Result};

use super::suite::{suite_of, Outputs};
use super::{shown, Exit};
use crate::cli::MergeArgs;
use crate::report::check_table;
use crate::report::json::{BenchmarkReport, Context, Outcome, Suite, SUITE_SCHEMA};

/// A shard's report is about 1 KB per function of its benchmarks; anything this large is not one. Read
/// as a JSON tree first (32 bytes a value, and a value can be 2 bytes), so this bounds the memory too.
const MAX_REPORT_BYTES: u64 = 32 << 20;

pub(super) fn run(a: MergeArgs) -> Result<Exit> {
    let outputs = Outputs {
        junit: a.junit.clone(),
        markdown: a.markdown.clone(),
        json: a.json.clone(),
    };
    outputs.check()?;
    let mut context: Option<Context> = None;
    let mut shards = Vec::new();
    let mut benchmarks: Vec<BenchmarkReport> = Vec::new();
    let mut from: Vec<String> = Vec::new();
    // One report of one benchmark stays one (the Action re-renders it with its links).
    let mut single = a.inputs.len() == 1;
    for input in &a.inputs {
        let Input {
            context: ctx,
            shards: parts,
            benchmarks: mut reports,
            suite,
        } = read(input)?;
        single &= !suite;
        if context.is_none() {
            context = ctx;
        }
        shards.extend(parts);
        for r in reports.drain(..) {
            if let Some(i) = benchmarks.iter().position(|b| b.name == r.name) {
                bail!(
                    "benchmark {:?} is in both {} and {}: did two shards run it?",
                    r.name,
                    from[i],
                    shown(input)
                );
            }
            from.push(shown(input));
            benchmarks.push(r);
        }
    }
    let mut ctx = context.unwrap_or_default();
    let l = &a.links;
    ctx.head_commit = l.head_commit.clone().or(ctx.head_commit);
    ctx.run_url = l.run_url.clone().or(ctx.run_url);
    ctx.artifact_url = l.artifact_url.clone().or(ctx.artifact_url);
    if let Some(c) = &l.base_commit {
        for b in &mut benchmarks {
            b.base_commit = Some(c.clone());
        }
    }
    // A suite of every shard is the whole project again: the shard list says which parts it joined.
    shards.sort();
    shards.dedup();
    let mut s = suite_of(ctx, None, benchmarks);
    s.shards = shards;
    match (single, s.benchmarks.first()) {
        (true, Some(b)) => outputs.write_single(b, &s.context, a.full_names)?,
        _ => outputs.write_suite(&s, a.full_names)?,
    }
    if a.brief || outputs.markdown.is_none() {
        let text: String = s
            .benchmarks
            .iter()
            .map(|b| format!("{}\n", check_table::brief(b, s.context.quick, a.full_names)))
            .collect();
        if outputs.to_stdout() {
            eprint!("{text}");
        } else {
            super::print_stdout(&text);
        }
    }
    outputs.announce();
    Ok(match s.outcome() {
        Outcome::Passed => Exit::Ok,
        Outcome::Failed => Exit::Regression,
        Outcome::Error => Exit::Error,
    })
}

/// What one input holds.
struct Input {
    context: Option<Context>,
    shards: Vec<String>,
    benchmarks: Vec<BenchmarkReport>,
    /// A suite document, rather than one benchmark's report.
    suite: bool,
}

/// One input: a suite (`check --all --json`) or one benchmark (`check --baseline --json`).
fn read(path: &Path) -> Result<Input> {
    let bytes = crate::files::read_regular(path, MAX_REPORT_BYTES, "report")?;
    let value: serde_json::Value =
        serde_json::from_slice(&bytes).with_context(|| format!("{}: not JSON", shown(path)))?;
    if let Some(schema) = value.get("perfgate_suite") {
        let schema = schema.as_u64().unwrap_or(u64::MAX);
        if schema > u64::from(SUITE_SCHEMA) {
            bail!(
                "{}: written by a newer perfgate (suite schema {schema}); this one reads {SUITE_SCHEMA}",
                shown(path)
            );
        }
        let s: Suite = serde_json::from_value(value)
            .with_context(|| format!("{}: not a perfgate report", shown(path)))?;
        return Ok(Input {
            context: Some(s.context),
            shards: s.shards,
            benchmarks: s.benchmarks,
            suite: true,
        });
    }
    let mut r: BenchmarkReport = serde_json::from_value(value).with_context(|| {
        format!(
            "{}: not a perfgate report (write it with `perfgate check --json`)",
            shown(path)
        )
    })?;
    if r.comparison.is_none() && r.error.is_none() {
        bail!(
            "{}: a report with neither a comparison nor an error",
            shown(path)
        );
    }
    Ok(Input {
        context: r.context.take(),
        shards: Vec::new(),
        benchmarks: vec![r],
        suite: false,
    })
}
