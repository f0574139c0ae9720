//! The cells every report shares: a figure, a change with its interval, a p-value, a percentage, call
//! counts. One implementation each, so the terminal, markdown, JUnit and JSON say the same thing the same
//! way. Text only; escaping for a format is the renderer's job (`escape.rs`).
use super::units;
use crate::gate::model::{Comparison, FunctionComparison, Metric, Verdict};

/// A median of the metric as a duration; `-` if absent.
pub fn figure(v: Option<f64>) -> String {
    v.map_or_else(|| "-".into(), units::duration)
}

/// `+25.3% (+21.0% … +29.8%)`: the change with its confidence interval; `-` when there is no ratio.
pub fn change_with_ci(f: &FunctionComparison) -> String {
    match (f.figures.ratio, f.figures.ratio_low, f.figures.ratio_high) {
        (Some(r), Some(lo), Some(hi)) => format!(
            "{} ({} … {})",
            units::change(r),
            units::change(lo),
            units::change(hi)
        ),
        (Some(r), _, _) => units::change(r),
        (None, _, _) => "-".into(),
    }
}

/// A p-value: `0.0012`, `<0.0001`, `-` when absent.
pub fn p_value(p: Option<f64>) -> String {
    match p {
        Some(p) if !p.is_finite() => "-".into(),
        Some(p) if p < 0.0001 => "<0.0001".into(),
        Some(p) => format!("{p:.4}"),
        None => "-".into(),
    }
}

/// A fraction as a percentage with at most 2 decimals: 0.05 → `5%`, 0.025 → `2.5%`.
pub fn percent(x: f64) -> String {
    let s = format!("{:.2}", x * 100.0);
    let s = if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.')
    } else {
        &s
    };
    format!("{s}%")
}

/// Median calls per run: `200`, or `200 → 250` when they differ, `-` for a side that has none.
pub fn calls(f: &FunctionComparison) -> String {
    let side = |n: Option<u64>| n.map_or_else(|| "-".to_string(), units::count);
    match (f.base_calls, f.head_calls) {
        (Some(b), Some(h)) if b == h => units::count(b),
        (None, None) => "-".into(),
        (b, h) => format!("{} → {}", side(b), side(h)),
    }
}

/// The change in calls per run: `+25.0%`; `-` when a side is absent or zero.
pub fn calls_change(f: &FunctionComparison) -> String {
    match (f.base_calls, f.head_calls) {
        (Some(b), Some(h)) if b > 0 => units::change(h as f64 / b as f64),
        _ => "-".into(),
    }
}

/// What failed a failing function, for the one-line summaries: `calls 200 → 250`, `+25.3%`, and with
/// several metrics gated, the one that decided first: `p99 incl +25.3%`.
pub fn failure(c: &Comparison, f: &FunctionComparison) -> String {
    let change = match f.verdict {
        Verdict::CallsChanged => return format!("calls {}", calls(f)),
        _ => f
            .figures
            .ratio
            .map_or_else(|| "slower".into(), units::change),
    };
    if f.verdict == Verdict::Regressed && several_metrics(c) {
        format!("{} {change}", metric(c, f))
    } else {
        change
    }
}

/// What an inconclusive verdict leaves open: `noise 3.1% per run, could have seen +6.2% or more`.
pub fn undecided_note(f: &FunctionComparison) -> Option<String> {
    let cv = f.figures.cv?;
    let seen = f.figures.smallest_detectable.map_or_else(String::new, |r| {
        format!(", could have seen {} or more", units::change(r))
    });
    Some(format!("noise {} per run{seen}", percent(cv)))
}

/// The whole run, base against head: `whole run 1.23 s → 1.38 s, +12.3% (+10.1% … +14.5%): regressed`;
/// with no function regressed and the run slower, says the shares did not change.
pub fn total_line(c: &Comparison) -> Option<String> {
    let t = c.total.as_ref()?;
    let change = match (t.ratio, t.low, t.high) {
        (Some(r), Some(l), Some(h)) => format!(
            "{} ({} … {})",
            units::change(r),
            units::change(l),
            units::change(h)
        ),
        (Some(r), _, _) => units::change(r),
        _ => "-".into(),
    };
    let mut line = format!(
        "whole run {} → {}, {change}: {}",
        units::duration(t.base_ns),
        units::duration(t.head_ns),
        t.verdict.label()
    );
    let functions_regressed = c.with(Verdict::Regressed).next().is_some();
    if matches!(t.verdict, Verdict::Regressed | Verdict::Improved) && !functions_regressed {
        line.push_str(
            " (per-function figures unchanged once each run is normalised: the whole machine or \
             untraced code moved)",
        );
    }
    Some(line)
}

/// How the figures were compared: `normalised per run, over 5 gated functions`, `absolute (…)`.
pub fn normalisation(c: &Comparison) -> String {
    match (&c.normalisation, c.speed_factor) {
        (Some(n), _) if n.starts_with("per run") => format!("normalised {n}"),
        (Some(n), _) => n.clone(),
        // The first rule.
        (None, Some(k)) if c.settings.relative => {
            format!("head divided by the machine's speed factor {k:.3}")
        }
        (None, _) if c.settings.relative => {
            "relative, but no function to estimate the machine's speed from".into()
        }
        (None, _) => "absolute".into(),
    }
}

/// Whether the reports need to say which metric a row is of: more than one is gated somewhere.
/// Counted over the metrics the rows were decided on; reports without per-row metrics (older ones) count
/// the settings'.
pub fn several_metrics(c: &Comparison) -> bool {
    let used: std::collections::BTreeSet<Metric> = c
        .functions
        .iter()
        .flat_map(|f| f.metrics.iter().map(|m| m.metric))
        .collect();
    if used.is_empty() {
        c.settings.metrics.len() > 1
    } else {
        used.len() > 1
    }
}

/// The metric of a row: `p99 incl`; the settings' first for a row without one (older reports).
pub fn metric(c: &Comparison, f: &FunctionComparison) -> String {
    f.metric
        .or_else(|| c.settings.metrics.first().copied())
        .map_or_else(|| "-".into(), |m| m.short())
}

/// Every gated metric of a function with its change and verdict, the deciding one first:
/// `p99 incl +136.0% regressed, mean self -0.9% unchanged`; empty without metrics.
pub fn metric_verdicts(f: &FunctionComparison) -> String {
    let mut ms: Vec<_> = f.metrics.iter().collect();
    ms.sort_by_key(|m| (Some(m.metric) != f.metric, m.verdict));
    ms.iter()
        .map(|m| {
            let change = m.figures.ratio.map_or_else(|| "-".into(), units::change);
            format!("{} {change} {}", m.metric.short(), m.verdict.label())
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// What was compared, with how many gated functions each metric covered when not all: `mean self time
/// per call and p99 of inclusive time per call (for 0 of 6 functions: too few calls per run)`.
pub fn metrics_compared(c: &Comparison) -> String {
    let gated: Vec<&FunctionComparison> = c
        .functions
        .iter()
        .filter(|f| !f.metrics.is_empty() || f.verdict == Verdict::Inconclusive)
        .collect();
    let covered = |m: &Metric| {
        gated
            .iter()
            .filter(|f| f.metrics.iter().any(|x| x.metric == *m))
            .count()
    };
    let any_metrics = gated.iter().any(|f| !f.metrics.is_empty());
    let parts: Vec<String> = c
        .settings
        .metrics
        .iter()
        .map(|m| {
            let n = covered(m);
            if !any_metrics || n == gated.len() {
                m.label()
            } else {
                let short = m.short();
                let uncovered_for_calls = gated
                    .iter()
                    .filter(|f| !f.metrics.iter().any(|x| x.metric == *m))
                    .all(|f| {
                        f.notes
                            .iter()
                            .any(|n| n.starts_with(&short) && n.contains("calls per run"))
                    });
                let why = if m.is_quantile() && uncovered_for_calls {
                    format!(
                        ": the others have fewer than {} calls per run",
                        m.min_calls()
                    )
                } else {
                    ": the others' notes say why".into()
                };
                format!(
                    "{} (for {n} of {}{why})",
                    m.label(),
                    units::plural(gated.len(), "function")
                )
            }
        })
        .collect();
    match parts.len() {
        0 => "nothing".into(),
        1 => parts[0].clone(),
        n => format!("{} and {}", parts[..n - 1].join(", "), parts[n - 1]),
    }
}

/// Columns a string takes on a terminal.
pub fn width(s: &str) -> usize {
    unicode_width::UnicodeWidthStr::width(s)
}

/// `s` cut to at most `max` columns by replacing its middle with `…`, so that both the namespace and the
/// method stay visible: `leveldb::DBImpl::…::Write`. Unchanged when it fits.
pub fn truncate_middle(s: &str, max: usize) -> String {
    if width(s) <= max {
        return s.to_string();
    }
    if max == 0 {
        return String::new();
    }
    let cw = |c: char| unicode_width::UnicodeWidthChar::width(c).unwrap_or(0);
    let budget = max - 1;
    // The front gets the extra column: it holds the namespace.
    let (head_max, tail_max) = (budget.div_ceil(2), budget / 2);
    let (mut head, mut used) = (String::new(), 0);
    for c in s.chars() {
        if used + cw(c) > head_max {
            break;
        }
        head.push(c);
        used += cw(c);
    }
    let (mut tail, mut used) = (Vec::new(), 0);
    for c in s.chars().rev() {
        if used + cw(c) > tail_max || tail.len() + head.chars().count() >= s.chars().count() {
            break;
        }
        tail.push(c);
        used += cw(c);
    }
    tail.reverse();
    format!("{head}…{}", tail.into_iter().collect::<String>())
}

/// How to draw a table in `max_width` columns: which layout (0 = every column; each next one drops a
/// column the reader can best spare) and the width to cut names to (`None` = whole). `render(layout,
/// name_width)` draws it. The first layout whose names keep at least [`PREFERRED_NAME_WIDTH`] columns (or
/// their whole width) wins; else the first whose names keep [`MIN_NAME_WIDTH`]; else the last layout with
/// names at that minimum: a terminal too narrow gets a wider table, never a cut number.
pub fn fit(
    render: impl Fn(usize, Option<usize>) -> String,
    layouts: usize,
    max_width: Option<usize>,
    longest: usize,
) -> (usize, Option<usize>) {
    let Some(max) = max_width else {
        return (0, None);
    };
    let mut names_at = Vec::new();
    for layout in 0..layouts.max(1) {
        let widest = render(layout, None).lines().map(width).max().unwrap_or(0);
        if widest <= max {
            return (layout, None);
        }
        let names = longest.saturating_sub(widest - max);
        if names >= PREFERRED_NAME_WIDTH.min(longest) {
            return (layout, Some(names));
        }
        names_at.push(names);
    }
    let layout = names_at
        .iter()
        .position(|&n| n >= MIN_NAME_WIDTH)
        .unwrap_or(layouts.max(1) - 1);
    (layout, Some(names_at[layout].max(MIN_NAME_WIDTH)))
}

/// Names keep at least this much before a table drops a column to make room.
pub const PREFERRED_NAME_WIDTH: usize = 24;

/// The narrowest a name column gets when a table is fitted to the terminal.
pub const MIN_NAME_WIDTH: usize = 16;

/// `name (module)` cut to `max` columns: the name loses its middle first, the module only when even a
/// short name does not fit beside it.
pub fn name_and_module(name: &str, module: &str, max: Option<usize>) -> String {
    let whole = format!("{name} ({module})");
    let Some(max) = max else {
        return whole;
    };
    if width(&whole) <= max {
        return whole;
    }
    let module_cell = width(module) + 3;
    if max >= module_cell + 8 {
        format!("{} ({module})", truncate_middle(name, max - module_cell))
    } else {
        truncate_middle(&whole, max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_lose_their_middle() {
        assert_eq!(truncate_middle("short", 10), "short");
        assert_eq!(
            truncate_middle("leveldb::DBImpl::BackgroundCompaction", 20),
            "leveldb::D…ompaction"
        );
        assert_eq!(
            width(&truncate_middle(
                "leveldb::DBImpl::BackgroundCompaction",
                20
            )),
            20
        );
        assert_eq!(truncate_middle("abcdef", 1), "…");
        assert_eq!(truncate_middle("abcdef", 0), "");
        assert_eq!(truncate_middle("ünïcödé_ñame", 5), "ün…me");
        assert_eq!(
            name_and_module(
                "leveldb::DBImpl::BackgroundCompaction",
                "libleveldb.so.1",
                Some(40)
            ),
            "leveldb::DB…Compaction (libleveldb.so.1)"
        );
        assert_eq!(name_and_module("f", "m", Some(40)), "f (m)");
        assert_eq!(
            width(&name_and_module(
                "a_long_function_name",
                "a_long_module_name.so",
                Some(12)
            )),
            12
        );
    }

    #[test]
    fn fit_cuts_names_then_drops_columns_never_numbers() {
        let name = "a_rather_long_function_name_here_and_more"; // 41 columns
                                                                // Layout 0 has two number columns, layout 1 one.
        let render = |layout: usize, w: Option<usize>| {
            let n = w.map_or_else(|| name.to_string(), |w| truncate_middle(name, w));
            if layout == 0 {
                format!("| 12.34 ms | 56.78 ms | {n} |\n")
            } else {
                format!("| 12.34 ms | {n} |\n")
            }
        };
        assert_eq!(fit(render, 2, None, 41), (0, None));
        assert_eq!(fit(render, 2, Some(200), 41), (0, None));
        // 65 columns whole: cut the name to 35, keep both numbers.
        let (layout, w) = fit(render, 2, Some(59), 41);
        assert_eq!((layout, w), (0, Some(33)));
        assert!(render(layout, w).lines().all(|l| width(l) <= 59));
        // Too narrow for 24 columns of name beside two numbers: one number column goes.
        let (layout, w) = fit(render, 2, Some(45), 41);
        assert_eq!(layout, 1);
        assert!(render(layout, w).lines().all(|l| width(l) <= 45));
        assert!(render(layout, w).contains("12.34 ms"));
        // Never below the minimum: a too-narrow terminal gets a wider table, not unreadable names.
        assert_eq!(fit(render, 2, Some(5), 41), (1, Some(MIN_NAME_WIDTH)));
    }

    #[test]
    fn cells() {
        assert_eq!(percent(0.05), "5%");
        assert_eq!(percent(0.025), "2.5%");
        assert_eq!(p_value(Some(0.00001)), "<0.0001");
        assert_eq!(p_value(Some(0.0123)), "0.0123");
        assert_eq!(p_value(Some(f64::NAN)), "-");
        assert_eq!(figure(None), "-");
        assert_eq!(figure(Some(1500.0)), "1.50 µs");
    }
}
