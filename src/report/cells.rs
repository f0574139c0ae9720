//! The cells every report shares: a figure, a change with its interval, a p-value, a percentage, call
//! counts. One implementation each, so the terminal, markdown, JUnit and JSON say the same thing the same
//! way. Text only; escaping for a format is the renderer's job (`escape.rs`).
use super::units;
use crate::gate::model::FunctionComparison;

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
