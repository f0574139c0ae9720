//! Every figure a user sees carries its unit; durations use adaptive units.

pub use crate::profile::units::duration;

/// A count with thousands separators: `1,234,567`.
pub fn count(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A percentage change from a ratio: 1.25 → `+25.0%`; from 10× up, the factor to three significant
/// digits, which a reader takes in at a glance (and which fits a table cell): 14,241.0 → `×14,200`,
/// 31.3 → `×31.3`.
pub fn change(ratio: f64) -> String {
    if !ratio.is_finite() {
        return "-".into();
    }
    if ratio >= 10.0 {
        return factor(ratio);
    }
    format!("{:+.1}%", (ratio - 1.0) * 100.0)
}

/// `×31.3`, `×142`, `×14,200`: a factor of at least 10 to three significant digits.
fn factor(ratio: f64) -> String {
    if ratio < 100.0 {
        return format!("×{ratio:.1}");
    }
    let digits = ratio.log10().floor() as i32;
    let unit = 10f64.powi(digits - 2);
    let rounded = (ratio / unit).round() * unit;
    if rounded >= u64::MAX as f64 {
        return format!("×{ratio:.2e}");
    }
    format!("×{}", count(rounded as u64))
}

/// A count and its noun: `1 file`, `3 files`, `1,024 calls`, `2 base runs` (regular plurals: the last
/// word plus `s`).
pub fn plural(n: impl TryInto<u64>, noun: &str) -> String {
    let n = n.try_into().unwrap_or(u64::MAX);
    format!("{} {}", count(n), noun_for(n, noun))
}

/// The noun alone, pluralised for `n`: `function` / `functions`.
pub fn noun_for(n: u64, noun: &str) -> String {
    if n == 1 {
        return noun.to_string();
    }
    // `process` → `processes`.
    if noun.ends_with('s') || noun.ends_with('x') {
        return format!("{noun}es");
    }
    format!("{noun}s")
}

/// A figure whose number and unit must not wrap apart (markdown, HTML): spaces become non-breaking.
pub fn glued(s: &str) -> String {
    s.replace(' ', "\u{a0}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_changes() {
        assert_eq!(count(0), "0");
        assert_eq!(count(1234567), "1,234,567");
        assert_eq!(change(1.25), "+25.0%");
        assert_eq!(change(0.9), "-10.0%");
        assert_eq!(change(9.994), "+899.4%");
        assert_eq!(change(10.0), "×10.0");
        assert_eq!(change(31.33), "×31.3");
        assert_eq!(change(142.4), "×142");
        assert_eq!(change(14_241.036), "×14,200");
        assert_eq!(change(23_739_488.0), "×23,700,000");
        assert_eq!(change(1e300), "×1.00e300");
        assert_eq!(change(f64::INFINITY), "-");
    }

    #[test]
    fn plurals() {
        assert_eq!(plural(1u64, "file"), "1 file");
        assert_eq!(plural(3u64, "file"), "3 files");
        assert_eq!(plural(1234u64, "call"), "1,234 calls");
        assert_eq!(plural(2u64, "base run"), "2 base runs");
        assert_eq!(plural(0u64, "gap"), "0 gaps");
    }
}
