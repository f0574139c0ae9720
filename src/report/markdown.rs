//! The comparison as markdown, for a pull-request comment or `$GITHUB_STEP_SUMMARY`.
//!
//! A reviewer reads the first line and acts: `❌ **bench**: <code>hash_block</code> +24.3% (1 of 41
//! functions regressed) — base `abc1234` → head `def5678``. Then the regressions and changed call
//! counts, everything else folded, then the commands that reproduce or accept the result and the links
//! the CI gave, and the settings last. A suite (`check --all`, `merge`) has one headline for all and a
//! section per benchmark.
//!
//! Invariants: every name and message from a file goes through [`escape::markdown`] (names inside
//! `<code>`, since backslash escapes do not work in backtick spans); a number and its unit never wrap
//! apart (non-breaking space); function names are short and unique ([`ShortNames`]) unless
//! `full_names`.
use std::fmt::{self, Write as _};

use super::cells::{self, calls_change, change_with_ci, p_value, percent};
use super::escape;
use super::json::{BenchmarkReport, Context, FailOn, Outcome, Suite};
use super::units;
use super::Exporter;
use crate::gate::model::{Comparison, FunctionComparison, GateSettings, Verdict};
use crate::profile::names::ShortNames;

/// Markdown of a bare comparison (no commits, links or commands).
#[derive(Debug, Clone, Copy, Default)]
pub struct Markdown {
    /// Full demangled names instead of short ones.
    pub full_names: bool,
}

impl Exporter for Markdown {
    fn render(&self, c: &Comparison) -> anyhow::Result<Vec<u8>> {
        let r = BenchmarkReport {
            name: c.benchmark.clone(),
            baseline: String::new(),
            base_commit: None,
            reproduce: String::new(),
            update: String::new(),
            error: None,
            context: None,
            fail_on: FailOn::Regression,
            comparison: Some(c.clone()),
        };
        Ok(benchmark(&r, &Context::default(), self.full_names).into_bytes())
    }
}

/// One benchmark's report, standing alone.
pub fn benchmark(r: &BenchmarkReport, ctx: &Context, full_names: bool) -> String {
    let mut out = String::new();
    // Writing to a String cannot fail.
    let _ = write_benchmark(&mut out, r, ctx, full_names, Level::Alone);
    out
}

/// A suite: one headline for all benchmarks, then a section per benchmark.
pub fn suite(s: &Suite, full_names: bool) -> String {
    let mut out = String::new();
    let _ = write_suite(&mut out, s, full_names);
    out
}

/// Where a benchmark's report sits: alone (its headline is the document's) or as a suite's section.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Level {
    Alone,
    Section,
}

impl Level {
    /// The heading of the tables inside.
    fn sub(self) -> &'static str {
        match self {
            Level::Alone => "###",
            Level::Section => "####",
        }
    }
}

fn write_suite(out: &mut String, s: &Suite, full_names: bool) -> fmt::Result {
    let n = s.benchmarks.len();
    let count = |o: Outcome| s.benchmarks.iter().filter(|b| b.outcome() == o).count();
    let (failed, errors) = (count(Outcome::Failed), count(Outcome::Error));
    let mut head = match s.outcome() {
        _ if n == 0 => "✅ perfgate: no benchmark in this shard".to_string(),
        Outcome::Passed => {
            let functions: usize = s
                .benchmarks
                .iter()
                .filter_map(|b| b.comparison.as_ref())
                .map(Comparison::gated)
                .sum();
            format!(
                "✅ perfgate: no regression in {} ({})",
                units::plural(n, "benchmark"),
                units::plural(functions, "function")
            )
        }
        _ => {
            let mut parts = Vec::new();
            if failed > 0 {
                parts.push(format!(
                    "{failed} of {n} {} failed",
                    units::noun_for(n as u64, "benchmark")
                ));
            }
            if errors > 0 {
                parts.push(format!("{errors} could not be checked"));
            }
            let icon = if failed > 0 { "❌" } else { "⚠️" };
            format!("{icon} perfgate: {}", parts.join(", "))
        }
    };
    if !s.shards.is_empty() {
        head.push_str(&format!(
            " · shards {}",
            escape::markdown(&s.shards.join(", "))
        ));
    }
    if let Some(h) = &s.context.head_commit {
        head.push_str(&format!(" — head {}", commit(h)));
    }
    writeln!(out, "{head}")?;
    write_quick(
        out,
        &s.context,
        s.benchmarks
            .iter()
            .filter_map(|b| b.comparison.as_ref())
            .map(|c| c.head_runs)
            .max(),
    )?;
    write_links(out, &s.context)?;
    // Failing benchmarks first, then errors, then the passing ones; within each the order they ran.
    let mut order: Vec<&BenchmarkReport> = s.benchmarks.iter().collect();
    order.sort_by_key(|b| match b.outcome() {
        Outcome::Failed => 0,
        Outcome::Error => 1,
        Outcome::Passed => 2,
    });
    for b in order {
        writeln!(out)?;
        write_benchmark(out, b, &s.context, full_names, Level::Section)?;
    }
    Ok(())
}

fn write_benchmark(
    out: &mut String,
    r: &BenchmarkReport,
    ctx: &Context,
    full_names: bool,
    level: Level,
) -> fmt::Result {
    let own = r.context.as_ref().unwrap_or(ctx);
    let prefix = if level == Level::Section { "### " } else { "" };
    let Some(c) = &r.comparison else {
        writeln!(
            out,
            "{prefix}⚠️ **{}**: perfgate could not check it: {}",
            escape::markdown(&r.name),
            escape::markdown(r.error.as_deref().unwrap_or("no comparison"))
        )?;
        if level == Level::Alone {
            write_links(out, own)?;
        }
        return write_commands(out, r, false);
    };
    let names = ShortNames::new(c.functions.iter().map(|f| f.name.as_str()), full_names);
    let head_commit = match level {
        Level::Alone => own.head_commit.as_deref(),
        Level::Section => None,
    };
    writeln!(out, "{prefix}{}", headline(r, c, &names, head_commit))?;
    if level == Level::Alone {
        write_quick(out, own, Some(c.head_runs))?;
        write_links(out, own)?;
    }
    write_warnings(out, c)?;
    let regressed: Vec<_> = c.with(Verdict::Regressed).collect();
    if !regressed.is_empty() {
        writeln!(out, "\n{} Regressions\n", level.sub())?;
        timing_table(out, c, &regressed, &names)?;
        write_distributions(out, &regressed, &names)?;
    }
    write_calls_changed(out, c, &names, level)?;
    write_inconclusive(out, c, &names, level)?;
    if let Some(total) = cells::total_line(c) {
        writeln!(out, "\n{}", escape::markdown(&total))?;
    }
    write_others(out, c, &names)?;
    write_commands(out, r, r.failed())?;
    writeln!(out, "\n<sub>{}</sub>", settings_line(c, r.fail_on))
}

/// The functions the runs could not decide, with their noise and what the check could have seen.
fn write_inconclusive(
    out: &mut String,
    c: &Comparison,
    names: &ShortNames,
    level: Level,
) -> fmt::Result {
    let undecided: Vec<_> = c.with(Verdict::Inconclusive).collect();
    if undecided.is_empty() {
        return Ok(());
    }
    writeln!(out, "\n{} Inconclusive\n", level.sub())?;
    writeln!(
        out,
        "Neither a change beyond the threshold nor equivalence could be shown with these runs.\n"
    )?;
    for f in undecided {
        let note = cells::undecided_note(f).unwrap_or_else(|| "no figures".into());
        writeln!(
            out,
            "- {}: {}",
            function_cell(f, names),
            units::glued(&escape::markdown(&note))
        )?;
    }
    Ok(())
}

/// `❌ **bench**: <code>hash_block</code> +24.3% (1 of 41 functions regressed) — base `abc1234` → head
/// `def5678`` or `✅ **bench**: no regression in 41 functions (1 inconclusive) — …`.
fn headline(r: &BenchmarkReport, c: &Comparison, names: &ShortNames, head: Option<&str>) -> String {
    let gated = c.gated();
    let failures: Vec<&FunctionComparison> = c.failures().collect();
    let inconclusive = c.with(Verdict::Inconclusive).count();
    let mut line = format!("**{}**: ", escape::markdown(&r.name));
    if failures.is_empty() && !r.failed() && inconclusive > 0 {
        line.insert_str(0, "⚠️ ");
        line.push_str(&format!(
            "inconclusive: no regression found in {}, {inconclusive} undecided",
            units::plural(gated, "function")
        ));
    } else if failures.is_empty() && !r.failed() {
        line.insert_str(0, "✅ ");
        line.push_str(&format!(
            "no regression in {}",
            units::plural(gated, "function")
        ));
    } else if failures.is_empty() {
        // Only inconclusive functions, with --fail-on inconclusive.
        line.insert_str(0, "❌ ");
        line.push_str(&format!(
            "{inconclusive} of {} inconclusive (fail-on inconclusive)",
            units::plural(gated, "function")
        ));
    } else {
        line.insert_str(0, "❌ ");
        const NAMED: usize = 3;
        let named: Vec<String> = failures
            .iter()
            .take(NAMED)
            .map(|f| {
                format!(
                    "<code>{}</code> {}",
                    escape::markdown(names.get(&f.name)),
                    units::glued(&cells::failure(c, f))
                )
            })
            .collect();
        line.push_str(&named.join(", "));
        if failures.len() > NAMED {
            line.push_str(&format!(" and {} more", failures.len() - NAMED));
        }
        let regressed = c.with(Verdict::Regressed).count();
        let calls = c.with(Verdict::CallsChanged).count();
        let mut what = Vec::new();
        if regressed > 0 {
            what.push(format!(
                "{regressed} of {} regressed",
                units::plural(gated, "function")
            ));
        }
        if calls > 0 {
            what.push(format!("call counts changed in {calls}"));
        }
        if inconclusive > 0 {
            what.push(format!("{inconclusive} inconclusive"));
        }
        line.push_str(&format!(" ({})", what.join(", ")));
    }
    match (r.base_commit.as_deref(), head) {
        (Some(b), Some(h)) => line.push_str(&format!(" — base {} → head {}", commit(b), commit(h))),
        (Some(b), None) => line.push_str(&format!(" — base {}", commit(b))),
        (None, Some(h)) => line.push_str(&format!(" — head {}", commit(h))),
        (None, None) => {}
    }
    line
}

/// A commit hash in backticks when it is one (hex), escaped text otherwise.
fn commit(c: &str) -> String {
    if !c.is_empty() && c.len() <= 40 && c.bytes().all(|b| b.is_ascii_hexdigit()) {
        format!("`{c}`")
    } else {
        escape::markdown(c)
    }
}

/// A quick verdict says so, and how to get the full one.
fn write_quick(out: &mut String, ctx: &Context, runs: Option<usize>) -> fmt::Result {
    if ctx.quick {
        writeln!(
            out,
            "\n> Quick verdict{}: fewer runs than the full gate, so small regressions can pass; run without --quick for the full gate.",
            runs.map_or_else(String::new, |n| format!(" ({})", units::plural(n, "run")))
        )?;
    }
    Ok(())
}

/// `[CI run](…) · [reports and flame-graph diff](…)`, when the CI gave them.
fn write_links(out: &mut String, ctx: &Context) -> fmt::Result {
    let mut links = Vec::new();
    if let Some(u) = ctx.run_url.as_deref().filter(|u| safe_url(u)) {
        links.push(format!("[CI run]({u})"));
    }
    if let Some(u) = ctx.artifact_url.as_deref().filter(|u| safe_url(u)) {
        links.push(format!("[reports and flame-graph diff]({u})"));
    }
    if !links.is_empty() {
        writeln!(out, "\n{}", links.join(" · "))?;
    }
    Ok(())
}

/// A link target that cannot break out of `(…)` or run script: http(s), no spaces, brackets or quotes.
fn safe_url(u: &str) -> bool {
    (u.starts_with("https://") || u.starts_with("http://"))
        && u.len() <= 2048
        && !u
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || "()<>\"'`\\".contains(c))
}

/// How to reproduce the check, and to accept the numbers when it failed.
fn write_commands(out: &mut String, r: &BenchmarkReport, failed: bool) -> fmt::Result {
    let code = |cmd: &str| format!("<code>{}</code>", escape::markdown(cmd));
    if !r.reproduce.is_empty() {
        writeln!(out, "\nReproduce locally: {}", code(&r.reproduce))?;
    }
    if failed && !r.update.is_empty() {
        writeln!(
            out,
            "\nIf the slowdown is intended, accept it: {} on the machine that records the baselines, then commit {}",
            code(&r.update),
            code(&r.baseline)
        )?;
    }
    Ok(())
}

/// The machine mismatch and the warnings, as quoted lines.
fn write_warnings(out: &mut String, c: &Comparison) -> fmt::Result {
    if c.machine_mismatch.is_some() || !c.warnings.is_empty() {
        writeln!(out)?;
        let mut lines = Vec::new();
        if let Some(m) = &c.machine_mismatch {
            lines.push(format!(
                "> ⚠️ **Baseline from another machine**: {}",
                escape::markdown(m)
            ));
        }
        lines.extend(
            c.warnings
                .iter()
                .map(|w| format!("> ⚠️ {}", escape::markdown(w))),
        );
        // `>` lines without a blank quoted line between them would run into one paragraph.
        writeln!(out, "{}", lines.join("\n>\n"))?;
    }
    Ok(())
}

/// The functions whose call count changed (with `--gate-calls`).
fn write_calls_changed(
    out: &mut String,
    c: &Comparison,
    names: &ShortNames,
    level: Level,
) -> fmt::Result {
    let calls: Vec<_> = c.with(Verdict::CallsChanged).collect();
    if !calls.is_empty() {
        writeln!(out, "\n{} Call counts changed\n", level.sub())?;
        writeln!(
            out,
            "Certain: call counts are exact, so a changed count is never noise.\n"
        )?;
        writeln!(out, "| Function | Calls per run | Change |")?;
        writeln!(out, "|:---|---:|---:|")?;
        for f in calls {
            writeln!(
                out,
                "| {} | {} | {} |",
                function_cell(f, names),
                units::glued(&cells::calls(f)),
                calls_change(f)
            )?;
        }
    }
    Ok(())
}

/// Every other function, folded, with the verdicts counted in the summary line.
fn write_others(out: &mut String, c: &Comparison, names: &ShortNames) -> fmt::Result {
    let mut others: Vec<_> = c
        .functions
        .iter()
        .filter(|f| !matches!(f.verdict, Verdict::Regressed | Verdict::CallsChanged))
        .collect();
    if others.is_empty() {
        return Ok(());
    }
    others.sort_by_key(|f| f.verdict);
    let mut counts: Vec<(Verdict, usize)> = Vec::new();
    for f in &others {
        match counts.last_mut() {
            Some((v, n)) if *v == f.verdict => *n += 1,
            _ => counts.push((f.verdict, 1)),
        }
    }
    let counted: Vec<String> = counts
        .iter()
        .map(|(v, n)| format!("{n} {}", v.label()))
        .collect();
    let s = &c.settings;
    let several = cells::several_metrics(c);
    writeln!(
        out,
        "\n<details><summary>{} other {}: {}</summary>\n",
        others.len(),
        units::noun_for(others.len() as u64, "function"),
        counted.join(", ")
    )?;
    writeln!(
        out,
        "| Function | Verdict |{} Base | {} | Change ({} CI) | p (adjusted) | Share | Calls per run |",
        if several { " Metric |" } else { "" },
        head_header(s),
        percent(s.confidence)
    )?;
    writeln!(
        out,
        "|:---|:---|{}---:|---:|---:|---:|---:|---:|",
        if several { ":---|" } else { "" }
    )?;
    for f in &others {
        let metric = if several {
            format!(" {} |", escape::markdown(&cells::metric(c, f)))
        } else {
            String::new()
        };
        writeln!(
            out,
            "| {} | {} |{metric} {} | {} | {} | {} | {} | {} |",
            function_cell(f, names),
            f.verdict.label(),
            units::glued(&cells::figure(f.figures.base)),
            units::glued(&cells::figure(f.figures.head)),
            change_with_ci(f),
            p_value(f.figures.q_value),
            percent(f.share),
            units::glued(&cells::calls(f))
        )?;
    }
    let improved: Vec<&FunctionComparison> = others
        .iter()
        .copied()
        .filter(|f| f.verdict == Verdict::Improved)
        .collect();
    write_distributions(out, &improved, names)?;
    writeln!(out, "\n</details>")
}

/// Each function's metrics and, in a code block (monospace, no markup inside: the lines are durations
/// and block characters only), its distribution base against head.
fn write_distributions(
    out: &mut String,
    rows: &[&FunctionComparison],
    names: &ShortNames,
) -> fmt::Result {
    for f in rows {
        let Some(d) = &f.distribution else {
            continue;
        };
        let verdicts = cells::metric_verdicts(f);
        writeln!(
            out,
            "\n{}{}{}\n",
            function_cell(f, names),
            if verdicts.is_empty() { "" } else { ": " },
            units::glued(&escape::markdown(&verdicts))
        )?;
        writeln!(out, "```text")?;
        for line in super::distribution::lines(d, "") {
            writeln!(out, "{line}")?;
        }
        writeln!(out, "```")?;
    }
    Ok(())
}

/// Function | (Metric |) Base | Head | Change (95% CI) | p (adjusted).
fn timing_table(
    out: &mut String,
    c: &Comparison,
    rows: &[&FunctionComparison],
    names: &ShortNames,
) -> fmt::Result {
    let s = &c.settings;
    let several = cells::several_metrics(c);
    writeln!(
        out,
        "| Function |{} Base | {} | Change ({} CI) | p (adjusted) |",
        if several { " Metric |" } else { "" },
        head_header(s),
        percent(s.confidence)
    )?;
    writeln!(
        out,
        "|:---|{}---:|---:|---:|---:|",
        if several { ":---|" } else { "" }
    )?;
    for f in rows {
        let metric = if several {
            format!(" {} |", escape::markdown(&cells::metric(c, f)))
        } else {
            String::new()
        };
        writeln!(
            out,
            "| {} |{metric} {} | {} | {} | {} |",
            function_cell(f, names),
            units::glued(&cells::figure(f.figures.base)),
            units::glued(&cells::figure(f.figures.head)),
            change_with_ci(f),
            p_value(f.figures.q_value)
        )?;
    }
    Ok(())
}

fn head_header(s: &GateSettings) -> &'static str {
    if s.relative {
        "Head (scaled)"
    } else {
        "Head"
    }
}

/// `name (module)`, escaped for a table cell.
fn function_cell(f: &FunctionComparison, names: &ShortNames) -> String {
    let name = escape::markdown(names.get(&f.name));
    if f.module.is_empty() {
        name
    } else {
        format!("{name} ({})", escape::markdown(&f.module))
    }
}

/// `10 base runs vs 12 head runs · metric: mean self time per call · threshold 5% · …`
fn settings_line(c: &Comparison, fail_on: FailOn) -> String {
    let s = &c.settings;
    let relative = match c.speed_factor {
        Some(k) if s.relative && s.rule == crate::gate::model::Rule::Legacy => {
            format!(", head divided by the machine's speed factor {k:.3}")
        }
        _ => String::new(),
    };
    let mut parts = vec![
        format!(
            "{} vs {}",
            units::plural(c.base_runs, "base run"),
            units::plural(c.head_runs, "head run")
        ),
        format!(
            "{}: {}{relative}",
            if s.metrics.len() == 1 {
                "metric"
            } else {
                "metrics"
            },
            cells::metrics_compared(c)
        ),
        s.thresholds_label(),
        format!("alpha {} (Benjamini–Hochberg)", s.alpha),
        format!("confidence {}", percent(s.confidence)),
        format!("min share {}", percent(s.min_share)),
    ];
    if s.gate_calls {
        parts.push("call counts gated".into());
    }
    if fail_on == FailOn::Inconclusive {
        parts.push("inconclusive fails".into());
    }
    parts.push(escape::markdown(&cells::normalisation(c)));
    parts.push(
        if c.mode.as_deref() == Some("interleaved") {
            "decided by interleaved A/B runs on this machine"
        } else {
            "decided against the stored baseline"
        }
        .into(),
    );
    parts.join(" · ")
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::gate::model::Figures;

    fn func(name: &str, module: &str, verdict: Verdict) -> FunctionComparison {
        FunctionComparison {
            name: name.into(),
            module: module.into(),
            verdict,
            figures: Figures {
                threshold: 0.05,
                ..Figures::default()
            },
            ..FunctionComparison::default()
        }
    }

    /// Times in ns, ratio with its interval, p and q, share, calls, head total ns.
    #[allow(clippy::too_many_arguments)]
    fn timed(
        mut f: FunctionComparison,
        base: f64,
        head: f64,
        ratio: (f64, f64, f64),
        pq: (f64, f64),
        share: f64,
        calls: (u64, u64),
        total: f64,
    ) -> FunctionComparison {
        f.figures.base = Some(base);
        f.figures.head = Some(head);
        f.figures.ratio = Some(ratio.0);
        f.figures.ratio_low = Some(ratio.1);
        f.figures.ratio_high = Some(ratio.2);
        f.figures.p_value = Some(pq.0);
        f.figures.q_value = Some(pq.1);
        f.share = share;
        f.base_calls = Some(calls.0);
        f.head_calls = Some(calls.1);
        f.head_total_ns = Some(total);
        f
    }

    /// A name that tries to break every format.
    pub(crate) const HOSTILE: &str = "evil|name<script>alert(1)</script>`x`\\|\n]]>&\"'\x01";

    /// One function of every verdict (two regressions, one of them with a hostile name), failing first.
    pub(crate) fn fixture() -> Comparison {
        use Verdict::*;
        let mut new = func("new_fast_path", "bench", New);
        new.figures.head = Some(350.0);
        new.share = 0.02;
        new.head_calls = Some(40);
        new.head_total_ns = Some(14_000.0);
        let mut removed = func("old_slow_path", "bench", Removed);
        removed.figures.base = Some(900.0);
        removed.share = 0.05;
        removed.base_calls = Some(40);
        let mut ignored = func("log_debug", "bench", Ignored);
        ignored.share = 0.04;
        let functions = vec![
            timed(
                func("parse_header", "libfoo.so", Regressed),
                1_200.0,
                1_503.6,
                (1.253, 1.21, 1.298),
                (0.00021, 0.0012),
                0.2345,
                (200, 200),
                412_000.0,
            ),
            timed(
                func(HOSTILE, "evil&co<>.so", Regressed),
                45_600.0,
                68_400.0,
                (1.5, 1.4, 1.6),
                (0.000002, 0.00004),
                0.12,
                (10, 10),
                3_200_000.0,
            ),
            timed(
                func("alloc_node", "libfoo.so", CallsChanged),
                95.0,
                96.0,
                (1.01, 0.99, 1.03),
                (0.4, 0.6),
                0.08,
                (200, 250),
                30_000.0,
            ),
            timed(
                func("hash_lookup", "libfoo.so", Improved),
                800.0,
                600.0,
                (0.75, 0.70, 0.81),
                (0.0004, 0.003),
                0.15,
                (1_000, 1_000),
                640_000.0,
            ),
            timed(
                func("main_loop", "bench", Unchanged),
                2_500_000.0,
                2_505_000.0,
                (1.002, 0.99, 1.01),
                (0.8, 0.9),
                0.3,
                (1, 1),
                9_000_000.0,
            ),
            timed(
                func("flush", "bench", Inconclusive),
                5_000.0,
                5_300.0,
                (1.06, 0.98, 1.15),
                (0.04, 0.2),
                0.03,
                (12, 12),
                70_000.0,
            ),
            new,
            removed,
            timed(
                func("tiny_helper", "libfoo.so", BelowFloor),
                20.0,
                30.0,
                (1.5, 1.3, 1.7),
                (0.001, 0.01),
                0.003,
                (5_000, 5_000),
                160_000.0,
            ),
            ignored,
        ];
        Comparison {
            benchmark: "parse-bench".into(),
            command: vec!["./bench".into(), "--iterations".into(), "100".into()],
            base_runs: 10,
            head_runs: 12,
            // One metric, as reports before several metrics were gated read.
            settings: GateSettings {
                metrics: vec![crate::gate::model::Metric::MEAN_SELF],
                ..GateSettings::default()
            },
            machine_mismatch: Some("cpu: AMD EPYC 7B13 → Intel Xeon 8375C".into()),
            speed_factor: None,
            wall_ns: Some(4_250_000_000.0),
            functions,
            warnings: vec!["3 events lost <b>here</b>".into()],
            ..Comparison::default()
        }
    }

    /// The fixture without failures, warnings or machine mismatch.
    pub(crate) fn passing() -> Comparison {
        let mut c = fixture();
        c.functions.retain(|f| !f.verdict.fails());
        c.machine_mismatch = None;
        c.warnings.clear();
        c
    }

    fn md(c: &Comparison) -> String {
        match Markdown::default().render(c) {
            Ok(b) => String::from_utf8_lossy(&b).into_owned(),
            Err(e) => panic!("render failed: {e}"),
        }
    }

    /// Non-breaking spaces made visible (`⍽`), so snapshots show where a line cannot wrap.
    fn visible(s: &str) -> String {
        s.replace('\u{a0}', "⍽")
    }

    pub(crate) fn report_of(c: Comparison) -> BenchmarkReport {
        BenchmarkReport {
            name: c.benchmark.clone(),
            baseline: "baselines/parse-bench.toml".into(),
            base_commit: Some("abc1234".into()),
            reproduce: "perfgate check --benchmark parse-bench".into(),
            update: "perfgate check --benchmark parse-bench --update".into(),
            error: None,
            context: None,
            fail_on: FailOn::Regression,
            comparison: Some(c),
        }
    }

    fn context() -> Context {
        Context {
            head_commit: Some("def5678".into()),
            run_url: Some("https://github.com/o/r/actions/runs/42".into()),
            artifact_url: Some("https://github.com/o/r/actions/runs/42/artifacts/7".into()),
            quick: false,
        }
    }

    /// The fixture gated on mean self time and p99 of inclusive time: `parse_header` regressed by its
    /// p99 (its mean self time unchanged), with its distribution; the others decided by the mean.
    pub(crate) fn multi_metric_fixture() -> Comparison {
        use crate::gate::model::{Distribution, Metric, MetricComparison, Quantiles, TimeKind};
        use crate::profile::Histogram;
        let mut c = fixture();
        c.settings.metrics = vec![Metric::MEAN_SELF, Metric::P99_INCLUSIVE];
        let hist = |tail: u64| {
            let mut h = Histogram::default();
            for i in 0..10_000u64 {
                h.record(if i % 100 < tail {
                    12_000
                } else {
                    1_000 + i % 400
                });
            }
            crate::gate::compare::buckets(&h)
        };
        for f in &mut c.functions {
            let mean = MetricComparison {
                metric: Metric::MEAN_SELF,
                verdict: if f.name == "parse_header" {
                    Verdict::Unchanged
                } else {
                    f.verdict
                },
                figures: Figures {
                    ratio: if f.name == "parse_header" {
                        Some(1.004)
                    } else {
                        f.figures.ratio
                    },
                    ..Figures::default()
                },
            };
            if matches!(
                f.verdict,
                Verdict::New | Verdict::Removed | Verdict::BelowFloor | Verdict::Ignored
            ) {
                continue;
            }
            f.metrics.push(mean);
            f.metric = Some(Metric::MEAN_SELF);
        }
        let ph = &mut c.functions[0];
        assert_eq!(ph.name, "parse_header");
        ph.metric = Some(Metric::P99_INCLUSIVE);
        ph.figures.threshold = 0.10;
        ph.metrics.insert(
            0,
            MetricComparison {
                metric: Metric::P99_INCLUSIVE,
                verdict: Verdict::Regressed,
                figures: Figures {
                    ratio: Some(1.253),
                    ratio_low: Some(1.21),
                    ratio_high: Some(1.298),
                    threshold: 0.10,
                    ..Figures::default()
                },
            },
        );
        ph.distribution = Some(Distribution {
            time: Some(TimeKind::Inclusive),
            base: Quantiles {
                p50: 1_200.0,
                p90: 1_350.0,
                p99: 1_390.0,
                max: 1_400.0,
                mean: 1_210.0,
            },
            head: Quantiles {
                p50: 1_150.0,
                p90: 1_330.0,
                p99: 12_000.0,
                max: 12_010.0,
                mean: 1_215.0,
            },
            base_histogram: hist(0),
            head_histogram: hist(2),
        });
        c
    }

    #[test]
    fn a_tail_regression_names_its_metric_and_shows_the_distribution() {
        let md = String::from_utf8(Markdown::default().render(&multi_metric_fixture()).unwrap())
            .unwrap();
        let first = md.lines().next().unwrap();
        assert!(
            first
                .replace('\u{a0}', " ")
                .contains("<code>parse\\_header</code> p99 incl +25.3%"),
            "{first}"
        );
        assert!(md.contains("| Function | Metric | Base |"), "{md}");
        assert!(md.contains("| p99 incl |"), "{md}");
        let block = md
            .split("```text")
            .nth(1)
            .unwrap()
            .split("```")
            .next()
            .unwrap();
        assert!(block.contains("p99"), "{block}");
        assert!(block.contains("12.00 µs"), "{block}");
        let lines: Vec<&str> = block.lines().filter(|l| l.contains('│')).collect();
        assert_eq!(lines.len(), 2, "{block}");
        assert!(
            lines[0].starts_with("base") && lines[1].starts_with("head"),
            "{block}"
        );
        let plain = md.replace('\u{a0}', " ");
        assert!(
            plain.contains("p99 incl +25.3% regressed, mean self +0.4% unchanged"),
            "{md}"
        );
        assert!(
            md.contains("metrics: mean self time per call and p99 of inclusive time per call"),
            "{md}"
        );
        assert!(md.contains("threshold 5% (mean), 40% (p99)"), "{md}");
    }

    #[test]
    fn full_report() {
        let s = benchmark(&report_of(fixture()), &context(), false);
        insta::assert_snapshot!(visible(&s), @r#"
        ❌ **parse-bench**: <code>parse\_header</code> +25.3%, <code>evil\|namealert\`x\`\\\| \]\]&gt;&amp;"' </code> +50.0%, <code>alloc\_node</code> calls⍽200⍽→⍽250 (2 of 8 functions regressed, call counts changed in 1, 1 inconclusive) — base `abc1234` → head `def5678`

        [CI run](https://github.com/o/r/actions/runs/42) · [reports and flame-graph diff](https://github.com/o/r/actions/runs/42/artifacts/7)

        > ⚠️ **Baseline from another machine**: cpu: AMD EPYC 7B13 → Intel Xeon 8375C
        >
        > ⚠️ 3 events lost &lt;b&gt;here&lt;/b&gt;

        ### Regressions

        | Function | Base | Head | Change (95% CI) | p (adjusted) |
        |:---|---:|---:|---:|---:|
        | parse\_header (libfoo.so) | 1.20⍽µs | 1.50⍽µs | +25.3% (+21.0% … +29.8%) | 0.0012 |
        | evil\|namealert\`x\`\\\| \]\]&gt;&amp;"'  (evil&amp;co&lt;&gt;.so) | 45.60⍽µs | 68.40⍽µs | +50.0% (+40.0% … +60.0%) | <0.0001 |

        ### Call counts changed

        Certain: call counts are exact, so a changed count is never noise.

        | Function | Calls per run | Change |
        |:---|---:|---:|
        | alloc\_node (libfoo.so) | 200⍽→⍽250 | +25.0% |

        ### Inconclusive

        Neither a change beyond the threshold nor equivalence could be shown with these runs.

        - flush (bench): no⍽figures

        <details><summary>7 other functions: 1 improved, 1 inconclusive, 1 new, 1 removed, 1 unchanged, 1 below share floor, 1 ignored</summary>

        | Function | Verdict | Base | Head | Change (95% CI) | p (adjusted) | Share | Calls per run |
        |:---|:---|---:|---:|---:|---:|---:|---:|
        | hash\_lookup (libfoo.so) | improved | 800⍽ns | 600⍽ns | -25.0% (-30.0% … -19.0%) | 0.0030 | 15% | 1,000 |
        | flush (bench) | inconclusive | 5.00⍽µs | 5.30⍽µs | +6.0% (-2.0% … +15.0%) | 0.2000 | 3% | 12 |
        | new\_fast\_path (bench) | new | - | 350⍽ns | - | - | 2% | -⍽→⍽40 |
        | old\_slow\_path (bench) | removed | 900⍽ns | - | - | - | 5% | 40⍽→⍽- |
        | main\_loop (bench) | unchanged | 2.50⍽ms | 2.50⍽ms | +0.2% (-1.0% … +1.0%) | 0.9000 | 30% | 1 |
        | tiny\_helper (libfoo.so) | below share floor | 20⍽ns | 30⍽ns | +50.0% (+30.0% … +70.0%) | 0.0100 | 0.3% | 5,000 |
        | log\_debug (bench) | ignored | - | - | - | - | 4% | - |

        </details>

        Reproduce locally: <code>perfgate check --benchmark parse-bench</code>

        If the slowdown is intended, accept it: <code>perfgate check --benchmark parse-bench --update</code> on the machine that records the baselines, then commit <code>baselines/parse-bench.toml</code>

        <sub>10 base runs vs 12 head runs · metric: mean self time per call · threshold 5% · alpha 0.05 (Benjamini–Hochberg) · confidence 95% · min share 1% · absolute · decided against the stored baseline</sub>
        "#);
    }

    #[test]
    fn passing_report() {
        let mut ctx = context();
        ctx.quick = true;
        let s = benchmark(&report_of(passing()), &ctx, false);
        insta::assert_snapshot!(visible(&s), @r#"
        ⚠️ **parse-bench**: inconclusive: no regression found in 5 functions, 1 undecided — base `abc1234` → head `def5678`

        > Quick verdict (12 runs): fewer runs than the full gate, so small regressions can pass; run without --quick for the full gate.

        [CI run](https://github.com/o/r/actions/runs/42) · [reports and flame-graph diff](https://github.com/o/r/actions/runs/42/artifacts/7)

        ### Inconclusive

        Neither a change beyond the threshold nor equivalence could be shown with these runs.

        - flush (bench): no⍽figures

        <details><summary>7 other functions: 1 improved, 1 inconclusive, 1 new, 1 removed, 1 unchanged, 1 below share floor, 1 ignored</summary>

        | Function | Verdict | Base | Head | Change (95% CI) | p (adjusted) | Share | Calls per run |
        |:---|:---|---:|---:|---:|---:|---:|---:|
        | hash\_lookup (libfoo.so) | improved | 800⍽ns | 600⍽ns | -25.0% (-30.0% … -19.0%) | 0.0030 | 15% | 1,000 |
        | flush (bench) | inconclusive | 5.00⍽µs | 5.30⍽µs | +6.0% (-2.0% … +15.0%) | 0.2000 | 3% | 12 |
        | new\_fast\_path (bench) | new | - | 350⍽ns | - | - | 2% | -⍽→⍽40 |
        | old\_slow\_path (bench) | removed | 900⍽ns | - | - | - | 5% | 40⍽→⍽- |
        | main\_loop (bench) | unchanged | 2.50⍽ms | 2.50⍽ms | +0.2% (-1.0% … +1.0%) | 0.9000 | 30% | 1 |
        | tiny\_helper (libfoo.so) | below share floor | 20⍽ns | 30⍽ns | +50.0% (+30.0% … +70.0%) | 0.0100 | 0.3% | 5,000 |
        | log\_debug (bench) | ignored | - | - | - | - | 4% | - |

        </details>

        Reproduce locally: <code>perfgate check --benchmark parse-bench</code>

        <sub>10 base runs vs 12 head runs · metric: mean self time per call · threshold 5% · alpha 0.05 (Benjamini–Hochberg) · confidence 95% · min share 1% · absolute · decided against the stored baseline</sub>
        "#);
    }

    #[test]
    fn verdict_lines() {
        let first = |c: Comparison| md(&c).lines().next().unwrap_or_default().to_string();
        assert_eq!(
            first(fixture()),
            "❌ **parse-bench**: <code>parse\\_header</code> +25.3%, <code>evil\\|namealert\\`x\\`\\\\\\| \\]\\]&gt;&amp;\"' </code> +50.0%, \
             <code>alloc\\_node</code> calls\u{a0}200\u{a0}→\u{a0}250 (2 of 8 functions regressed, call counts changed in 1, 1 inconclusive)"
        );
        assert_eq!(
            first(passing()),
            "⚠\u{fe0f} **parse-bench**: inconclusive: no regression found in 5 functions, 1 undecided"
        );
        let mut one = fixture();
        one.functions.retain(|f| f.verdict == Verdict::Regressed);
        one.functions.truncate(1);
        assert_eq!(
            first(one.clone()),
            "❌ **parse-bench**: <code>parse\\_header</code> +25.3% (1 of 1 function regressed)"
        );
        // More than three failures are counted, not listed.
        for i in 0..4 {
            let mut f = one.functions[0].clone();
            f.name = format!("f{i}");
            one.functions.push(f);
        }
        assert!(
            first(one).contains("<code>f1</code> +25.3% and 2 more (5 of 5 functions regressed)")
        );
        // --fail-on inconclusive: a passing comparison with an inconclusive function fails.
        let mut strict = report_of(passing());
        strict.fail_on = FailOn::Inconclusive;
        let s = benchmark(&strict, &Context::default(), false);
        assert!(s.starts_with("❌ **parse-bench**: 1 of 5 functions inconclusive (fail-on inconclusive) — base `abc1234`"), "{s}");
        assert!(s.contains("inconclusive fails"));
    }

    #[test]
    fn an_error_is_a_report_too() {
        let mut r = report_of(fixture());
        r.comparison = None;
        r.error = Some("baselines/parse-bench.toml: no such file".into());
        let s = benchmark(&r, &context(), false);
        assert!(s.starts_with("⚠️ **parse-bench**: perfgate could not check it: baselines/parse-bench.toml: no such file\n"), "{s}");
        assert!(
            s.contains("Reproduce locally: <code>perfgate check --benchmark parse-bench</code>")
        );
        assert!(s.contains("[CI run](https://github.com/o/r/actions/runs/42)"));
    }

    #[test]
    fn a_suite_has_one_headline_and_a_section_per_benchmark() {
        let mut decided = passing();
        decided
            .functions
            .retain(|f| f.verdict != Verdict::Inconclusive);
        let mut ok = report_of(decided);
        ok.name = "second".into();
        let mut broken = report_of(fixture());
        broken.name = "third".into();
        broken.comparison = None;
        broken.error = Some("no such file".into());
        let suite = Suite {
            perfgate_suite: crate::report::json::SUITE_SCHEMA,
            context: context(),
            shards: vec!["1/2".into(), "2/2".into()],
            benchmarks: vec![ok, report_of(fixture()), broken],
        };
        let s = super::suite(&suite, false);
        let first = s.lines().next().unwrap_or_default();
        assert_eq!(
            first,
            "❌ perfgate: 1 of 3 benchmarks failed, 1 could not be checked · shards 1/2, 2/2 — head `def5678`"
        );
        let at = |h: &str| s.find(h).unwrap_or_else(|| panic!("{h} missing in {s}"));
        // Failed first, then errors, then passes; section tables one level down.
        assert!(at("### ❌ **parse-bench**") < at("### ⚠️ **third**"));
        assert!(at("### ⚠️ **third**") < at("### ✅ **second**"));
        assert!(s.contains("#### Regressions"));
        assert_eq!(s.matches("[CI run]").count(), 1);
        assert!(!s.contains("head `def5678`\n\n### ") || s.matches("→ head").count() == 0);
        let mut all_ok = suite.clone();
        all_ok.benchmarks.retain(|b| b.name == "second");
        assert!(super::suite(&all_ok, false)
            .starts_with("✅ perfgate: no regression in 1 benchmark (4 functions)"));
    }

    #[test]
    fn links_that_could_inject_markup_are_left_out() {
        let mut ctx = context();
        ctx.run_url = Some("javascript:alert(1)".into());
        ctx.artifact_url = Some("https://x/y) [evil](https://e".into());
        let s = benchmark(&report_of(passing()), &ctx, false);
        assert!(!s.contains("javascript") && !s.contains("evil"), "{s}");
        let mut r = report_of(passing());
        r.base_commit = Some("not a `sha`".into());
        let s = benchmark(&r, &Context::default(), false);
        assert!(
            s.lines()
                .next()
                .unwrap_or_default()
                .ends_with("— base not a \\`sha\\`"),
            "{s}"
        );
    }

    #[test]
    fn hostile_names_are_escaped() {
        let s =
            String::from_utf8(Markdown { full_names: true }.render(&fixture()).unwrap()).unwrap();
        assert!(!md(&fixture()).contains("<script>"));
        assert!(!s.contains("<script>"));
        assert!(!s.contains("<b>"));
        // Every table line has as many cell boundaries (`|` not escaped by an odd run of backslashes) as its
        // table's header: a name cannot add a column.
        let mut columns = 0;
        for line in s.lines() {
            if !line.starts_with('|') {
                columns = 0;
                continue;
            }
            let n = boundaries(line);
            if columns == 0 {
                columns = n;
            }
            assert_eq!(n, columns, "{line}");
        }
        let row = s
            .lines()
            .find(|l| l.starts_with("| evil"))
            .unwrap_or_default();
        assert!(row.starts_with("| evil\\|name&lt;script&gt;"), "{row}");
    }

    fn boundaries(line: &str) -> usize {
        let mut n = 0;
        let mut backslashes = 0;
        for ch in line.chars() {
            if ch == '|' && backslashes % 2 == 0 {
                n += 1;
            }
            backslashes = if ch == '\\' { backslashes + 1 } else { 0 };
        }
        n
    }

    #[test]
    fn relative_mode_says_head_is_scaled() {
        let mut c = fixture();
        c.settings.relative = true;
        c.speed_factor = Some(1.25);
        let s = md(&c);
        assert!(
            s.contains("| Function | Base | Head (scaled) | Change (95% CI) | p (adjusted) |"),
            "{s}"
        );
        assert!(s.contains("speed factor"), "{s}");
    }

    #[test]
    fn number_formats() {
        assert_eq!(p_value(Some(0.00123)), "0.0012");
        assert_eq!(p_value(Some(0.00009)), "<0.0001");
        assert_eq!(p_value(None), "-");
        assert_eq!(percent(0.05), "5%");
        assert_eq!(percent(0.025), "2.5%");
        assert_eq!(percent(0.95), "95%");
        assert_eq!(percent(0.1), "10%");
        assert_eq!(percent(0.005), "0.5%");
        assert_eq!(cells::figure(Some(1_503.6)), "1.50 µs");
        assert_eq!(cells::figure(None), "-");
    }
}
