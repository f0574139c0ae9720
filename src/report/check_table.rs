//! The terminal table of `perfgate check`: every gated function, failures first.
use comfy_table::presets::UTF8_BORDERS_ONLY;
use comfy_table::{CellAlignment, Table};

use super::cells::{change_with_ci, figure, normalisation, p_value, total_line, undecided_note};
use super::escape::terminal;
use super::units::count;
use crate::gate::model::{Comparison, Verdict};

/// The table and the verdict line.
pub fn table(c: &Comparison, all: bool) -> String {
    let mut out = String::new();
    if let Some(m) = &c.machine_mismatch {
        out.push_str(&format!("WARNING: {}\n", terminal(m)));
    }
    for w in &c.warnings {
        out.push_str(&format!("warning: {}\n", terminal(w)));
    }
    let mut t = Table::new();
    t.load_style(UTF8_BORDERS_ONLY);
    let conf = format!("CHANGE ({:.0}% CI)", c.settings.confidence * 100.0);
    t.set_header(vec![
        "VERDICT",
        "FUNCTION (module)",
        "BASE",
        "HEAD",
        conf.as_str(),
        "P (adj)",
        "SHARE",
        "CALLS",
    ]);
    let mut hidden = 0;
    for f in &c.functions {
        if !all && matches!(f.verdict, Verdict::BelowFloor | Verdict::Ignored) {
            hidden += 1;
            continue;
        }
        let calls = match (f.base_calls, f.head_calls) {
            (Some(b), Some(h)) if b != h => format!("{} → {}", count(b), count(h)),
            (_, Some(h)) => count(h),
            (Some(b), None) => count(b),
            _ => "-".into(),
        };
        t.add_row(vec![
            f.verdict.label().to_uppercase(),
            format!("{} ({})", terminal(&f.name), terminal(&f.module)),
            figure(f.base),
            figure(f.head),
            change_with_ci(f),
            p_value(f.q_value),
            format!("{:.1}%", f.share * 100.0),
            calls,
        ]);
    }
    for i in 2..8 {
        if let Some(col) = t.column_mut(i) {
            col.set_cell_alignment(CellAlignment::Right);
        }
    }
    out.push_str(&t.to_string());
    out.push('\n');
    if hidden > 0 {
        out.push_str(&format!(
            "{hidden} functions below {:.1}% of the traced time or ignored are not shown (--json has them)\n",
            c.settings.min_share * 100.0
        ));
    }
    for f in c.with(Verdict::Inconclusive) {
        if let Some(note) = undecided_note(f) {
            out.push_str(&format!("inconclusive: {} ({note})\n", terminal(&f.name)));
        }
    }
    if let Some(total) = total_line(c) {
        out.push_str(&total);
        out.push('\n');
    }
    let intervals = if c.look.is_some() {
        "intervals at each look's confidence".to_string()
    } else {
        format!("{:.0}% intervals", c.settings.confidence * 100.0)
    };
    let mode = if c.mode.as_deref() == Some("interleaved") {
        "interleaved A/B pairs"
    } else {
        "base runs"
    };
    out.push_str(&format!(
        "compared {} ({}) over {} {mode} and {} head runs; threshold {:.1}%, alpha {}, {intervals}\n",
        c.settings.metric.label(),
        normalisation(c),
        c.base_runs,
        c.head_runs,
        c.settings.threshold * 100.0,
        c.settings.alpha,
    ));
    out.push_str(&verdict_line(c));
    out.push('\n');
    out
}

/// `FAIL: 2 functions regressed: a, b` / `PASS: no regression in 41 functions`.
pub fn verdict_line(c: &Comparison) -> String {
    let failures: Vec<String> = c.failures().map(|f| terminal(&f.name)).collect();
    let inconclusive = c.with(Verdict::Inconclusive).count();
    let tail = if inconclusive > 0 {
        format!(" ({inconclusive} inconclusive after {} runs)", c.head_runs)
    } else {
        String::new()
    };
    if failures.is_empty() && c.passed() && inconclusive > 0 {
        format!(
            "INCONCLUSIVE: no regression found in {} functions, {inconclusive} undecided after {} runs (not a failure; --fail-on inconclusive makes it one)",
            c.gated(),
            c.head_runs
        )
    } else if failures.is_empty() && !c.passed() {
        format!(
            "FAIL: {inconclusive} functions inconclusive after {} runs (--fail-on inconclusive)",
            c.head_runs
        )
    } else if failures.is_empty() {
        format!("PASS: no regression in {} functions{tail}", c.gated())
    } else {
        format!(
            "FAIL: {} function{} regressed: {}{tail}",
            failures.len(),
            if failures.len() == 1 { "" } else { "s" },
            failures.join(", ")
        )
    }
}
