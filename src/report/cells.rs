//! The cells every report shares: a figure, a change with its interval, a p-value, a percentage, call
//! counts. One implementation each, so the terminal, markdown, JUnit and JSON say the same thing the same
//! way. Text only; escaping for a format is the renderer's job (`escape.rs`).
use super::units;
use crate::gate::model::{Comparison, FunctionComparison, Verdict};

/// A median of the metric as a duration; `-` if absent.
pub fn figure(v: Option<f64>) -> String {
    v.map_or_else(|| "-".into(), units::duration)
}

/// `+25.3% (+21.0% … +29.8%)`: the change with its confidence interval; `-` when there is no ratio.
pub fn change_with_ci(f: &FunctionComparison) -> String {
    match (f.ratio, f.ratio_low, f.ratio_high) {
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

/// What an inconclusive verdict leaves open: `noise 3.1% per run, could have seen +6.2% or more`.
pub fn undecided_note(f: &FunctionComparison) -> Option<String> {
    let cv = f.cv?;
    let seen = f.smallest_detectable.map_or_else(String::new, |r| {
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

#[cfg(test)]
mod tests {
    use super::*;

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
