//! Durations with their unit, for every layer that shows one: the gate's notes and every report
//! (`report::units` re-exports it beside its other units).

/// A duration in ns, with an adaptive unit: `812 ns`, `3.21 µs`, `45.6 ms`, `1.23 s`.
pub fn duration(ns: f64) -> String {
    if !ns.is_finite() {
        return "-".into();
    }
    let a = ns.abs();
    let (v, unit) = if a < 1e3 {
        (ns, "ns")
    } else if a < 1e6 {
        (ns / 1e3, "µs")
    } else if a < 1e9 {
        (ns / 1e6, "ms")
    } else {
        (ns / 1e9, "s")
    };
    if unit == "ns" {
        format!("{v:.0} {unit}")
    } else if v.abs() >= 100.0 {
        format!("{v:.1} {unit}")
    } else {
        format!("{v:.2} {unit}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_pick_their_unit() {
        assert_eq!(duration(812.0), "812 ns");
        assert_eq!(duration(3_210.0), "3.21 µs");
        assert_eq!(duration(45_600_000.0), "45.60 ms");
        assert_eq!(duration(456_000_000.0), "456.0 ms");
        assert_eq!(duration(1_230_000_000.0), "1.23 s");
        assert_eq!(duration(f64::NAN), "-");
    }
}
