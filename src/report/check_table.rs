//! The terminal table of `perfgate check`: every gated function, failures first, fitted to the terminal
//! (names lose their middle, numbers are never cut), verdicts coloured when the command layer says the
//! terminal wants colour; and the one-line result of `--brief` (the pre-push hook's).
use comfy_table::presets::UTF8_BORDERS_ONLY;
use comfy_table::{Cell, CellAlignment, Color, Table};

use super::cells::{
    self, change_with_ci, figure, normalisation, p_value, total_line, undecided_note,
};
use super::escape::terminal;
use super::json::BenchmarkReport;
use super::units::{self, count, plural};
use crate::gate::model::{Comparison, FunctionComparison, Verdict};
use crate::profile::names::ShortNames;

/// How the table is drawn; the command layer knows the terminal and fills this in.
#[derive(Debug, Clone, Copy, Default)]
pub struct TableStyle {
    /// Also the functions below the share floor and the ignored ones.
    pub all: bool,
    /// Columns available (`$COLUMNS` or the terminal's); `None` = no limit.
    pub width: Option<usize>,
    /// Colour the verdicts (a terminal, and `NO_COLOR` unset).
    pub color: bool,
    /// Full demangled names instead of short ones.
    pub full_names: bool,
    /// The verdict is a quick one (`--quick`).
    pub quick: bool,
}

/// The colour of a verdict.
fn verdict_color(v: Verdict) -> Option<Color> {
    match v {
        Verdict::Regressed | Verdict::CallsChanged => Some(Color::Red),
        Verdict::Improved => Some(Color::Green),
        Verdict::Inconclusive => Some(Color::Yellow),
        _ => None,
    }
}

/// Layouts for narrow terminals, each dropping one more column (never cutting a number).
const DROPPED: [&[&str]; 5] = [
    &[],
    &["SHARE"],
    &["SHARE", "P (adj)"],
    &["SHARE", "P (adj)", "CALLS"],
    &["SHARE", "P (adj)", "CALLS", "CI"],
];

/// The table itself in one layout, names cut to `name_width`. One piece: the header and the cells of a
/// row are filtered by the same layout, side by side, so they cannot disagree.
fn draw(
    c: &Comparison,
    shown: &[&FunctionComparison],
    names: &ShortNames,
    layout: usize,
    name_width: Option<usize>,
    color: bool,
) -> String {
    let dropped = DROPPED[layout.min(DROPPED.len() - 1)];
    let keep = |h: &str| !dropped.contains(&h);
    let mut t = Table::new();
    t.load_style(UTF8_BORDERS_ONLY);
    if color {
        t.enforce_styling();
    } else {
        t.force_no_tty();
    }
    let conf = if keep("CI") {
        format!("CHANGE ({:.0}% CI)", c.settings.confidence * 100.0)
    } else {
        "CHANGE".to_string()
    };
    let metric = cells::several_metrics(c);
    let header: Vec<&str> = [
        "VERDICT",
        "METRIC",
        "FUNCTION (module)",
        "BASE",
        "HEAD",
        conf.as_str(),
        "P (adj)",
        "SHARE",
        "CALLS",
    ]
    .into_iter()
    .filter(|h| keep(h) && (metric || *h != "METRIC"))
    .collect();
    let columns = header.len();
    t.set_header(header);
    for f in shown {
        let calls = match (f.base_calls, f.head_calls) {
            (Some(b), Some(h)) if b != h => format!("{} → {}", count(b), count(h)),
            (_, Some(h)) => count(h),
            (Some(b), None) => count(b),
            _ => "-".into(),
        };
        let mut verdict = Cell::new(f.verdict.label().to_uppercase());
        if let Some(col) = verdict_color(f.verdict).filter(|_| color) {
            verdict = verdict.fg(col);
        }
        let change = if keep("CI") {
            change_with_ci(f)
        } else {
            f.figures.ratio.map_or_else(|| "-".into(), units::change)
        };
        let mut row = vec![verdict];
        if metric {
            row.push(Cell::new(cells::metric(c, f)));
        }
        row.extend([
            Cell::new(cells::name_and_module(
                &terminal(names.get(&f.name)),
                &terminal(&f.module),
                name_width,
            )),
            Cell::new(figure(f.figures.base)),
            Cell::new(figure(f.figures.head)),
            Cell::new(change),
        ]);
        if keep("P (adj)") {
            row.push(Cell::new(p_value(f.figures.q_value)));
        }
        if keep("SHARE") {
            row.push(Cell::new(cells::percent(f.share)));
        }
        if keep("CALLS") {
            row.push(Cell::new(calls));
        }
        t.add_row(row);
    }
    for i in (2 + usize::from(metric))..columns {
        if let Some(col) = t.column_mut(i) {
            col.set_cell_alignment(CellAlignment::Right);
        }
    }
    t.to_string()
}

/// The table and the lines under it (hidden functions, inconclusive ones, distributions, settings,
/// verdict), which read the same filtered rows and style as the table they describe.
pub fn table(c: &Comparison, style: &TableStyle) -> String {
    let mut out = String::new();
    if let Some(m) = &c.machine_mismatch {
        out.push_str(&format!("WARNING: {}\n", terminal(m)));
    }
    for w in &c.warnings {
        out.push_str(&format!("warning: {}\n", terminal(w)));
    }
    let names = ShortNames::new(
        c.functions.iter().map(|f| f.name.as_str()),
        style.full_names,
    );
    let shown: Vec<_> = c
        .functions
        .iter()
        .filter(|f| style.all || !matches!(f.verdict, Verdict::BelowFloor | Verdict::Ignored))
        .collect();
    let hidden = c.functions.len() - shown.len();
    let longest = shown
        .iter()
        .map(|f| {
            cells::width(&cells::name_and_module(
                &terminal(names.get(&f.name)),
                &terminal(&f.module),
                None,
            ))
        })
        .max()
        .unwrap_or(0);
    let render = |layout: usize, name_width: Option<usize>, color: bool| {
        draw(c, &shown, &names, layout, name_width, color)
    };
    // Measured without colour codes, drawn with them.
    let (layout, name_width) = cells::fit(
        |l, w| render(l, w, false),
        DROPPED.len(),
        style.width,
        longest,
    );
    out.push_str(&render(layout, name_width, style.color));
    if layout > 0 {
        let dropped: Vec<&str> = DROPPED[layout]
            .iter()
            .map(|d| if *d == "CI" { "the intervals" } else { d })
            .collect();
        out.push_str(&format!(
            "\nnarrow terminal: {} not shown (a wider terminal, COLUMNS=160 or --json shows them)",
            dropped.join(", ")
        ));
    }
    out.push('\n');
    if hidden > 0 {
        out.push_str(&format!(
            "{} below {} of the traced time or ignored {} not shown (--json has them)\n",
            plural(hidden, "function"),
            cells::percent(c.settings.min_share),
            if hidden == 1 { "is" } else { "are" }
        ));
    }
    out.push_str(&inconclusive_lines(c, &names));
    out.push_str(&distributions(c, &names));
    if let Some(total) = total_line(c) {
        out.push_str(&total);
        out.push('\n');
    }
    out.push_str(&settings_line(c));
    out.push_str(&styled_verdict(c, &names, style));
    out.push('\n');
    out
}

/// `inconclusive: f (why)` for each inconclusive function that has a note on what it still needs.
fn inconclusive_lines(c: &Comparison, names: &ShortNames) -> String {
    let mut out = String::new();
    for f in c.with(Verdict::Inconclusive) {
        if let Some(note) = undecided_note(f) {
            let metric = if cells::several_metrics(c) {
                format!("{}: ", cells::metric(c, f))
            } else {
                String::new()
            };
            out.push_str(&format!(
                "inconclusive: {} ({metric}{note})\n",
                terminal(names.get(&f.name))
            ));
        }
    }
    out
}

/// `compared mean self time (normalised …) over 30 base runs and 10 head runs; thresholds …`.
fn settings_line(c: &Comparison) -> String {
    let intervals = if c.look.is_some() {
        "intervals at each look's confidence".to_string()
    } else {
        format!("{:.0}% intervals", c.settings.confidence * 100.0)
    };
    let mode = if c.mode.as_deref() == Some("interleaved") {
        "base run (interleaved A/B)"
    } else {
        "base run"
    };
    format!(
        "compared {} ({}) over {} and {}; {}, alpha {}, {intervals}\n",
        cells::metrics_compared(c),
        normalisation(c),
        plural(c.base_runs, mode),
        plural(c.head_runs, "head run"),
        c.settings.thresholds_label(),
        c.settings.alpha,
    )
}

/// The verdict line, marked quick when it is, in colour when the style has colour.
fn styled_verdict(c: &Comparison, names: &ShortNames, style: &TableStyle) -> String {
    let verdict = verdict_line(c, names);
    let verdict = if style.quick {
        format!("{verdict} [quick verdict: {}]", plural(c.head_runs, "run"))
    } else {
        verdict
    };
    if style.color {
        let code = if c.passed() { "32" } else { "1;31" };
        format!("\x1b[{code}m{verdict}\x1b[0m")
    } else {
        verdict
    }
}

/// For each regressed or improved function: its metrics' verdicts, then base against head quantiles and
/// histograms of the deciding metric's time.
fn distributions(c: &Comparison, names: &ShortNames) -> String {
    let mut out = String::new();
    for f in c
        .functions
        .iter()
        .filter(|f| matches!(f.verdict, Verdict::Regressed | Verdict::Improved))
    {
        let Some(d) = &f.distribution else {
            continue;
        };
        let verdicts = cells::metric_verdicts(f);
        out.push_str(&format!(
            "\n{} ({}): {}\n",
            terminal(names.get(&f.name)),
            terminal(&f.module),
            if verdicts.is_empty() {
                f.verdict.label().to_string()
            } else {
                verdicts
            }
        ));
        for line in super::distribution::lines(d, "  ") {
            out.push_str(&line);
            out.push('\n');
        }
    }
    if !out.is_empty() {
        out.push('\n');
    }
    out
}

/// `FAIL: 2 functions regressed: a, b` / `PASS: no regression in 41 functions`.
pub fn verdict_line(c: &Comparison, names: &ShortNames) -> String {
    let several = cells::several_metrics(c);
    let failures: Vec<String> = c
        .failures()
        .map(|f| {
            let name = terminal(names.get(&f.name));
            if several && f.verdict == Verdict::Regressed {
                format!("{name} ({})", cells::metric(c, f))
            } else {
                name
            }
        })
        .collect();
    let inconclusive = c.with(Verdict::Inconclusive).count();
    let tail = if inconclusive > 0 {
        format!(
            " ({inconclusive} inconclusive after {})",
            plural(c.head_runs, "run")
        )
    } else {
        String::new()
    };
    if failures.is_empty() && c.passed() && inconclusive > 0 {
        format!(
            "INCONCLUSIVE: no regression found in {}, {inconclusive} undecided after {} (not a failure; --fail-on inconclusive makes it one)",
            plural(c.gated(), "function"),
            plural(c.head_runs, "run")
        )
    } else if failures.is_empty() && !c.passed() {
        format!(
            "FAIL: {inconclusive} inconclusive after {} (--fail-on inconclusive)",
            plural(c.head_runs, "run")
        )
    } else if failures.is_empty() {
        format!(
            "PASS: no regression in {}{tail}",
            plural(c.gated(), "function")
        )
    } else {
        format!(
            "FAIL: {} regressed: {}{tail}",
            plural(failures.len(), "function"),
            failures.join(", ")
        )
    }
}

/// One line for a benchmark: `gatebench: FAIL: hash_block +24.3% (1 of 6 functions regressed) [quick
/// verdict: 5 runs]; details: perfgate check --benchmark gatebench`.
pub fn brief(r: &BenchmarkReport, quick: bool, full_names: bool) -> String {
    let name = terminal(&r.name);
    let Some(c) = &r.comparison else {
        return format!(
            "{name}: ERROR: {}",
            terminal(r.error.as_deref().unwrap_or("not checked"))
        );
    };
    let names = ShortNames::new(c.functions.iter().map(|f| f.name.as_str()), full_names);
    let quick = if quick {
        format!(" [quick verdict: {}]", plural(c.head_runs, "run"))
    } else {
        String::new()
    };
    let inconclusive = c.with(Verdict::Inconclusive).count();
    if !r.failed() {
        let tail = if inconclusive > 0 {
            format!(", {inconclusive} inconclusive")
        } else {
            String::new()
        };
        return format!(
            "{name}: pass: no regression in {}{tail}{quick}",
            plural(c.gated(), "function")
        );
    }
    let failures: Vec<String> = c
        .failures()
        .take(3)
        .map(|f| format!("{} {}", terminal(names.get(&f.name)), cells::failure(c, f)))
        .collect();
    let n = c.failures().count();
    let what = if n == 0 {
        format!(
            "{inconclusive} of {} inconclusive",
            plural(c.gated(), "function")
        )
    } else {
        let more = if n > 3 {
            format!(" and {} more", n - 3)
        } else {
            String::new()
        };
        format!(
            "{}{more} ({n} of {} failed)",
            failures.join(", "),
            plural(c.gated(), "function")
        )
    };
    format!(
        "{name}: FAIL: {what}{quick}; details: {}",
        terminal(&r.reproduce)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::markdown::tests::fixture;

    #[test]
    fn the_table_fits_the_terminal_and_cuts_only_names() {
        let mut c = fixture();
        c.functions[0].name =
            "leveldb::DBImpl::BackgroundCompaction(leveldb::CompactionState*, int, std::vector<int> const&)".into();
        let wide = table(&c, &TableStyle::default());
        let fitted = table(
            &c,
            &TableStyle {
                width: Some(100),
                ..TableStyle::default()
            },
        );
        let narrow = table(
            &c,
            &TableStyle {
                width: Some(80),
                ..TableStyle::default()
            },
        );
        let widest = |s: &str| {
            s.lines()
                .filter(|l| l.starts_with('│'))
                .map(cells::width)
                .max()
                .unwrap_or(0)
        };
        assert!(widest(&wide) > 100, "{wide}");
        assert!(widest(&fitted) <= 100, "{fitted}");
        assert!(widest(&narrow) <= 80, "{narrow}");
        assert!(
            narrow.contains("narrow terminal: SHARE, P (adj), CALLS, the intervals not shown"),
            "{narrow}"
        );
        assert!(
            fitted.contains("narrow terminal: SHARE, P (adj), CALLS not shown"),
            "{fitted}"
        );
        assert!(narrow.contains("+25.3%"), "{narrow}");
        // Short names by default, cut in the middle, the numbers whole.
        assert!(fitted.contains("leveldb::"), "{fitted}");
        assert!(!fitted.contains("CompactionState"), "{fitted}");
        for number in ["1.20 µs", "1.50 µs", "+25.3% (+21.0% … +29.8%)"] {
            assert!(fitted.contains(number), "{number} in {fitted}");
        }
        assert!(!fitted.contains('\x1b'));
        let full = table(
            &c,
            &TableStyle {
                full_names: true,
                ..TableStyle::default()
            },
        );
        assert!(full.contains("CompactionState*"), "{full}");
    }

    #[test]
    fn a_tail_regression_names_its_metric_and_draws_both_distributions() {
        let c = crate::report::markdown::tests::multi_metric_fixture();
        let t = table(
            &c,
            &TableStyle {
                width: Some(160),
                ..TableStyle::default()
            },
        );
        assert!(t.contains("METRIC"), "{t}");
        let row = t.lines().find(|l| l.contains("parse_header")).unwrap();
        assert!(row.contains("p99 incl"), "{t}");
        assert!(
            t.contains(
                "parse_header (libfoo.so): p99 incl +25.3% regressed, mean self +0.4% unchanged"
            ),
            "{t}"
        );
        let spark: Vec<&str> = t
            .lines()
            .filter(|l| {
                l.trim_start().starts_with("base  │") || l.trim_start().starts_with("head  │")
            })
            .collect();
        assert_eq!(spark.len(), 2, "{t}");
        assert_eq!(cells::width(spark[0]), cells::width(spark[1]));
        assert!(
            t.contains("FAIL: 3 functions regressed: parse_header (p99 incl)"),
            "{t}"
        );
        assert!(
            t.contains(
                "compared mean self time per call and p99 of inclusive time per call (for 1 of"
            ),
            "{t}"
        );
        assert!(t.contains("threshold 5% (mean), 40% (p99)"), "{t}");
    }

    #[test]
    fn verdicts_are_coloured_only_when_asked() {
        let c = fixture();
        let coloured = table(
            &c,
            &TableStyle {
                color: true,
                ..TableStyle::default()
            },
        );
        assert!(coloured.contains("\x1b[38;5;9m REGRESSED"), "{coloured:?}");
        assert!(coloured.contains("\x1b[38;5;10m IMPROVED"), "{coloured:?}");
        assert!(coloured.contains("\x1b[1;31mFAIL"), "{coloured:?}");
        let plain = table(&c, &TableStyle::default());
        assert!(!plain.contains('\x1b'));
    }

    #[test]
    fn plurals_are_right() {
        let mut c = fixture();
        c.functions.retain(|f| f.verdict != Verdict::Ignored);
        let t = table(&c, &TableStyle::default());
        assert!(
            t.contains("1 function below 1% of the traced time or ignored is not shown"),
            "{t}"
        );
        c.functions
            .retain(|f| !f.verdict.fails() && f.verdict != Verdict::BelowFloor);
        c.functions.truncate(1);
        let t = table(&c, &TableStyle::default());
        assert!(t.contains("PASS: no regression in 1 function"), "{t}");
    }

    #[test]
    fn a_brief_line_says_what_failed_and_how_to_see_it() {
        let r = BenchmarkReport {
            name: "parse-bench".into(),
            baseline: "b.toml".into(),
            base_commit: None,
            reproduce: "perfgate check --benchmark parse-bench".into(),
            update: String::new(),
            error: None,
            context: None,
            fail_on: Default::default(),
            comparison: Some(fixture()),
        };
        let line = brief(&r, true, false);
        assert!(
            line.starts_with("parse-bench: FAIL: parse_header +25.3%"),
            "{line}"
        );
        assert!(line.contains("(3 of 8 functions failed) [quick verdict: 12 runs]; details: perfgate check --benchmark parse-bench"), "{line}");
        assert!(!line.contains('\n'));
    }
}
