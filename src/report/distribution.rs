//! A function's latency distribution, base against head, as text every report shares: the quantiles side by
//! side and a two-line sparkline of both merged histograms on one logarithmic time axis.
//!
//! Invariants: text only (escaping is the renderer's); both lines of a sparkline have the same width and the
//! same axis, each scaled to its own peak (so a side with fewer runs is not drawn smaller), and any column
//! with calls is drawn at least `▁` (so a tail of 1% of the calls shows); the axis spans the 0.1% to 99.9%
//! quantiles of both sides, calls beyond folded into the end columns, so one preempted call does not
//! squeeze the rest into a few columns. Never panics on empty or odd histograms.
use super::{escape, units};
use crate::gate::compare::{buckets, quantiles_of};
use crate::gate::figures::{FuncKey, FuncRun, RunFigures};
use crate::gate::model::{Bucket, Distribution, Quantiles, TimeKind};
use crate::profile::names::ShortNames;
use crate::profile::Profile;

/// Columns of a sparkline.
pub const SPARK_WIDTH: usize = 48;

const LEVELS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];

/// Two sparklines on one axis and the axis' ends, ns.
#[derive(Debug, Clone, PartialEq)]
pub struct Sparklines {
    /// The base side.
    pub base: String,
    /// The head side.
    pub head: String,
    /// Left end of the axis.
    pub low_ns: f64,
    /// Right end of the axis.
    pub high_ns: f64,
}

/// The value below which a fraction `q` of a histogram's calls fall (bucket bounds, no interpolation).
fn bound_at(h: &[Bucket], q: f64, upper: bool) -> Option<f64> {
    let total: u64 = h.iter().map(|b| b.count).sum();
    if total == 0 {
        return None;
    }
    let rank = q * total as f64;
    let mut seen = 0u64;
    for b in h {
        seen += b.count;
        if seen as f64 >= rank {
            return Some(if upper { b.high_ns } else { b.low_ns } as f64);
        }
    }
    h.last().map(|b| b.high_ns as f64)
}

/// Both histograms drawn on a common log axis of `width` columns; `None` when both are empty.
pub fn sparklines(base: &[Bucket], head: &[Bucket], width: usize) -> Option<Sparklines> {
    let width = width.max(2);
    let lows = [bound_at(base, 0.001, false), bound_at(head, 0.001, false)];
    let highs = [bound_at(base, 0.999, true), bound_at(head, 0.999, true)];
    let low = lows
        .iter()
        .flatten()
        .copied()
        .fold(f64::INFINITY, f64::min)
        .max(1.0);
    let high = highs.iter().flatten().copied().fold(0.0, f64::max);
    if !low.is_finite() || high <= 0.0 {
        return None;
    }
    let high = high.max(low * 1.01);
    let (ll, lh) = (low.ln(), high.ln());
    let column = |b: &Bucket| -> usize {
        // The bucket's geometric middle decides its column.
        let mid = ((b.low_ns.max(1) as f64).ln() + (b.high_ns.max(1) as f64).ln()) / 2.0;
        let x = (mid - ll) / (lh - ll) * width as f64;
        if x.is_finite() {
            (x.max(0.0) as usize).min(width - 1)
        } else {
            0
        }
    };
    let line = |h: &[Bucket]| -> String {
        let mut cols = vec![0u64; width];
        for b in h {
            cols[column(b)] += b.count;
        }
        let peak = cols.iter().copied().max().unwrap_or(0);
        cols.iter()
            .map(|&c| {
                if c == 0 || peak == 0 {
                    ' '
                } else {
                    let level = (c as f64 / peak as f64 * LEVELS.len() as f64).ceil() as usize;
                    LEVELS[level.clamp(1, LEVELS.len()) - 1]
                }
            })
            .collect()
    };
    Some(Sparklines {
        base: line(base),
        head: line(head),
        low_ns: low,
        high_ns: high,
    })
}

/// `p50`, `p90`, `p99`, `max`, `mean` of one side, as durations.
pub fn quantile_cells(q: &Quantiles) -> [String; 5] {
    let d = |v: f64| {
        if v > 0.0 {
            units::duration(v)
        } else {
            "-".into()
        }
    };
    [d(q.p50), d(q.p90), d(q.p99), d(q.max), d(q.mean)]
}

/// The headers of [`quantile_cells`].
pub const QUANTILE_HEADERS: [&str; 5] = ["p50", "p90", "p99", "max", "mean"];

/// What the distribution is of: `inclusive time per call` / `self time per call`.
pub fn time_label(d: &Distribution) -> &'static str {
    match d.time {
        Some(TimeKind::SelfTime) => "self time per call",
        _ => "inclusive time per call",
    }
}

/// The distribution as plain lines, each starting with `indent`: a quantile table of both sides and the
/// two sparklines with their axis. Monospace text: for the terminal, a markdown code block, JUnit.
pub fn lines(d: &Distribution, indent: &str) -> Vec<String> {
    let base = quantile_cells(&d.base);
    let head = quantile_cells(&d.head);
    let widths: Vec<usize> = (0..QUANTILE_HEADERS.len())
        .map(|i| {
            [QUANTILE_HEADERS[i].len(), width(&base[i]), width(&head[i])]
                .into_iter()
                .max()
                .unwrap_or(0)
        })
        .collect();
    let row = |label: &str, cells: &[String]| {
        let mut s = format!("{indent}{label:<5}");
        for (c, w) in cells.iter().zip(&widths) {
            s.push_str(&format!("  {}{c}", " ".repeat(w.saturating_sub(width(c)))));
        }
        s
    };
    let headers: Vec<String> = QUANTILE_HEADERS.iter().map(|h| h.to_string()).collect();
    let mut out = vec![row("", &headers), row("base", &base), row("head", &head)];
    if let Some(s) = sparklines(&d.base_histogram, &d.head_histogram, SPARK_WIDTH) {
        out.push(format!("{indent}base  │{}│", s.base));
        out.push(format!("{indent}head  │{}│", s.head));
        let (lo, hi) = (units::duration(s.low_ns), units::duration(s.high_ns));
        let gap = (SPARK_WIDTH + 2).saturating_sub(width(&lo) + width(&hi));
        out.push(format!("{indent}      {lo}{}{hi}", " ".repeat(gap)));
        out.push(format!(
            "{indent}      {} as measured, probe cost in (log scale; each line scaled to its own peak, \
             the 0.1% beyond each end folded in)",
            time_label(d)
        ));
    }
    out
}

/// `perfgate report --diff`: every function of both recordings, the costliest in the head first (at most
/// `limit`, 0 = all), each with its calls, its changes of mean and p99 and its distribution of inclusive
/// time base against head. Figures with the calibrated probe cost taken out when a recording has one.
pub fn diff(base: &Profile, head: &Profile, limit: usize, full_names: bool) -> String {
    let (b, h) = (
        RunFigures::from_profile(base),
        RunFigures::from_profile(head),
    );
    let mut keys: Vec<(&FuncKey, &FuncRun)> = h
        .functions
        .iter()
        .filter(|(k, _)| b.functions.contains_key(*k))
        .collect();
    keys.sort_by(|x, y| y.1.total.total_cmp(&x.1.total).then(x.0.cmp(y.0)));
    let names = ShortNames::new(keys.iter().map(|(_, f)| f.name.as_str()), full_names);
    let shown = if limit == 0 {
        keys.len()
    } else {
        limit.min(keys.len())
    };
    let mut out = String::new();
    for (key, hf) in keys.iter().take(shown) {
        out.push_str(&function_diff(
            key,
            &b.functions[*key],
            hf,
            names.get(&hf.name),
        ));
    }
    let only_base = b
        .functions
        .keys()
        .filter(|k| !h.functions.contains_key(*k))
        .count();
    let only_head = h
        .functions
        .keys()
        .filter(|k| !b.functions.contains_key(*k))
        .count();
    if keys.len() > shown {
        out.push_str(&format!(
            "{} more in both not shown (--limit 0 shows all)\n",
            keys.len() - shown
        ));
    }
    if only_base + only_head > 0 {
        out.push_str(&format!(
            "{} only in the base, {} only in the head\n",
            units::plural(only_base, "function"),
            only_head
        ));
    }
    if keys.is_empty() {
        out.push_str("no function was called in both recordings\n");
    }
    out
}

/// One function of [`diff`], shown as `name`: its calls, its changes of mean and p99, and its
/// distribution of inclusive time, base (`bf`) against head (`hf`).
fn function_diff(key: &FuncKey, bf: &FuncRun, hf: &FuncRun, name: &str) -> String {
    let ratio = |x: f64, y: f64| {
        if x > 0.0 {
            units::change(y / x)
        } else {
            "-".into()
        }
    };
    let calls = if bf.calls == hf.calls {
        units::plural(hf.calls, "call")
    } else {
        format!(
            "{} → {} calls",
            units::count(bf.calls),
            units::count(hf.calls)
        )
    };
    let mut out = format!(
        "{} ({}): {}, mean {}, p99 {}\n",
        escape::terminal(name),
        escape::terminal(&key.module),
        calls,
        ratio(bf.mean, hf.mean),
        ratio(bf.p99, hf.p99),
    );
    let one = |f: &FuncRun| RunFigures {
        functions: [(key.clone(), f.clone())].into_iter().collect(),
        ..RunFigures::default()
    };
    let (br, hr) = ([one(bf)], [one(hf)]);
    let d = Distribution {
        time: Some(TimeKind::Inclusive),
        base: quantiles_of(&br, key, TimeKind::Inclusive),
        head: quantiles_of(&hr, key, TimeKind::Inclusive),
        base_histogram: buckets(&bf.incl_hist),
        head_histogram: buckets(&hf.incl_hist),
    };
    for line in lines(&d, "  ") {
        out.push_str(&line);
        out.push('\n');
    }
    out.push('\n');
    out
}

fn width(s: &str) -> usize {
    super::cells::width(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::Histogram;

    fn hist(values: impl Iterator<Item = u64>) -> Vec<Bucket> {
        let mut h = Histogram::default();
        for v in values {
            h.record(v);
        }
        buckets(&h)
    }

    #[test]
    fn a_one_percent_tail_shows_on_the_head_line_only() {
        let base = hist((0..10_000).map(|i| 20_000 + (i % 100) * 100));
        let head = hist((0..10_000).map(|i| {
            if i % 100 < 2 {
                200_000 + (i % 7) * 1000
            } else {
                18_000 + (i % 100) * 90
            }
        }));
        let s = sparklines(&base, &head, 40).unwrap();
        assert_eq!(s.base.chars().count(), 40);
        assert_eq!(s.head.chars().count(), 40);
        // The right end of the axis reaches the tail; the base has nothing there, the head a low bar.
        assert!(s.high_ns >= 200_000.0, "{s:?}");
        let last_base = s.base.trim_end().chars().count();
        let tail: String = s.head.chars().skip(last_base + 2).collect();
        assert!(tail.contains('▁') || tail.contains('▂'), "{s:?}");
        assert!(s.base.contains('█') && s.head.contains('█'));
    }

    #[test]
    fn empty_and_degenerate_histograms_do_not_panic() {
        assert_eq!(sparklines(&[], &[], 10), None);
        let one = [Bucket {
            low_ns: 0,
            high_ns: 1,
            count: 3,
        }];
        let s = sparklines(&one, &[], 10).unwrap();
        assert_eq!(s.head.trim(), "");
        let d = Distribution {
            base_histogram: one.to_vec(),
            ..Distribution::default()
        };
        let l = lines(&d, "  ");
        assert!(l.len() >= 3, "{l:?}");
        assert!(l[1].contains('-'));
    }
}
