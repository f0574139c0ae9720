//! The comparison as markdown, for a pull-request comment or `$GITHUB_STEP_SUMMARY`: a verdict line first,
//! then regressions, improvements and changed call counts, everything else folded, and the settings last.
use std::fmt::{self, Write as _};

use super::cells::{self, calls_change, change_with_ci, p_value, percent};
use super::escape;
use super::units;
use super::Exporter;
use crate::gate::model::{Comparison, FunctionComparison, GateSettings, Verdict};

/// Markdown for a pull-request comment or a GitHub step summary.
#[derive(Debug, Clone, Copy, Default)]
pub struct Markdown;

impl Exporter for Markdown {
    fn render(&self, c: &Comparison) -> anyhow::Result<Vec<u8>> {
        let mut out = String::new();
        write_markdown(&mut out, c)
            .map_err(|_| anyhow::anyhow!("could not format the markdown report"))?;
        Ok(out.into_bytes())
    }
}

fn write_markdown(out: &mut String, c: &Comparison) -> fmt::Result {
    writeln!(out, "{}", verdict_line(c))?;
    write_warnings(out, c)?;
    let regressed: Vec<_> = c.with(Verdict::Regressed).collect();
    if !regressed.is_empty() {
        writeln!(out, "\n### Regressions\n")?;
        timing_table(out, &c.settings, &regressed)?;
    }
    let improved: Vec<_> = c.with(Verdict::Improved).collect();
    if !improved.is_empty() {
        writeln!(out, "\n### Improvements\n")?;
        timing_table(out, &c.settings, &improved)?;
    }
    write_calls_changed(out, c)?;
    let undecided: Vec<_> = c.with(Verdict::Inconclusive).collect();
    if !undecided.is_empty() {
        writeln!(out, "\n### Inconclusive\n")?;
        writeln!(
            out,
            "Neither a change beyond the threshold nor equivalence could be shown with these runs.\n"
        )?;
        for f in undecided {
            let note = cells::undecided_note(f).unwrap_or_else(|| "no figures".into());
            writeln!(out, "- {}: {}", function_cell(f), escape::markdown(&note))?;
        }
    }
    if let Some(total) = cells::total_line(c) {
        writeln!(out, "\n{}", escape::markdown(&total))?;
    }
    write_others(out, c)?;
    let decided_by = if c.mode.as_deref() == Some("interleaved") {
        "decided by interleaved A/B runs on this machine"
    } else {
        "decided against the stored baseline"
    };
    writeln!(
        out,
        "\n<sub>{} · {} · {decided_by}</sub>",
        settings_line(&c.settings, c.speed_factor),
        escape::markdown(&cells::normalisation(c))
    )
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
fn write_calls_changed(out: &mut String, c: &Comparison) -> fmt::Result {
    let calls: Vec<_> = c.with(Verdict::CallsChanged).collect();
    if !calls.is_empty() {
        writeln!(out, "\n### Call counts changed\n")?;
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
                function_cell(f),
                cells::calls(f),
                calls_change(f)
            )?;
        }
    }
    Ok(())
}

/// Every other function, folded.
fn write_others(out: &mut String, c: &Comparison) -> fmt::Result {
    let mut others: Vec<_> = c
        .functions
        .iter()
        .filter(|f| {
            !matches!(
                f.verdict,
                Verdict::Regressed | Verdict::Improved | Verdict::CallsChanged
            )
        })
        .collect();
    if !others.is_empty() {
        others.sort_by_key(|f| f.verdict);
        let s = &c.settings;
        writeln!(
            out,
            "\n<details><summary>{} other {}</summary>\n",
            others.len(),
            units::noun_for(others.len() as u64, "function")
        )?;
        writeln!(
            out,
            "| Function | Verdict | {} | {} | Change ({} CI) | p (adjusted) | Share | Calls per run |",
            base_header(s),
            head_header(s),
            percent(s.confidence)
        )?;
        writeln!(out, "|:---|:---|---:|---:|---:|---:|---:|---:|")?;
        for f in others {
            writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} | {:.2}% | {} |",
                function_cell(f),
                f.verdict.label(),
                cells::figure(f.base),
                cells::figure(f.head),
                change_with_ci(f),
                p_value(f.q_value),
                f.share * 100.0,
                cells::calls(f)
            )?;
        }
        writeln!(out, "\n</details>")?;
    }
    Ok(())
}

/// `❌ 2 functions regressed (benchmark **name**, 10 base runs vs 12 head runs)` or
/// `✅ no regression in 41 functions (…)`.
fn verdict_line(c: &Comparison) -> String {
    let regressed = c.with(Verdict::Regressed).count();
    let calls = c.with(Verdict::CallsChanged).count();
    let inconclusive = c.with(Verdict::Inconclusive).count();
    let mut line = if c.passed() && inconclusive > 0 {
        format!(
            "⚠️ inconclusive: no regression found in {}, but {inconclusive} could not be decided",
            units::plural(c.gated(), "function")
        )
    } else if c.passed() {
        format!(
            "✅ no regression in {}",
            units::plural(c.gated(), "function")
        )
    } else if regressed + calls == 0 {
        format!("❌ {inconclusive} inconclusive (the gate fails on inconclusive)")
    } else {
        let mut parts = Vec::new();
        if regressed > 0 {
            parts.push(format!(
                "{} regressed",
                units::plural(regressed, "function")
            ));
        }
        if calls > 0 {
            parts.push(format!(
                "call counts changed in {}",
                units::plural(calls, "function")
            ));
        }
        format!("❌ {}", parts.join(", "))
    };
    if inconclusive > 0 && !c.passed() && regressed + calls > 0 {
        line.push_str(&format!(", {inconclusive} inconclusive"));
    }
    line.push_str(&format!(
        " (benchmark **{}**, {} vs {})",
        escape::markdown(&c.benchmark),
        units::plural(c.base_runs, "base run"),
        units::plural(c.head_runs, "head run")
    ));
    line
}

/// Function | Base | Head | Change (95% CI) | p (adjusted).
fn timing_table(out: &mut String, s: &GateSettings, rows: &[&FunctionComparison]) -> fmt::Result {
    writeln!(
        out,
        "| Function | {} | {} | Change ({} CI) | p (adjusted) |",
        base_header(s),
        head_header(s),
        percent(s.confidence)
    )?;
    writeln!(out, "|:---|---:|---:|---:|---:|")?;
    for f in rows {
        writeln!(
            out,
            "| {} | {} | {} | {} | {} |",
            function_cell(f),
            cells::figure(f.base),
            cells::figure(f.head),
            change_with_ci(f),
            p_value(f.q_value)
        )?;
    }
    Ok(())
}

fn base_header(_: &GateSettings) -> &'static str {
    "Base"
}

fn head_header(s: &GateSettings) -> &'static str {
    if s.relative {
        "Head (scaled)"
    } else {
        "Head"
    }
}

/// `name (module)`, escaped for a table cell.
fn function_cell(f: &FunctionComparison) -> String {
    if f.module.is_empty() {
        escape::markdown(&f.name)
    } else {
        format!(
            "{} ({})",
            escape::markdown(&f.name),
            escape::markdown(&f.module)
        )
    }
}

/// `metric: mean self time per call · threshold 5% · alpha 0.05 (Benjamini–Hochberg) · …`
fn settings_line(s: &GateSettings, speed_factor: Option<f64>) -> String {
    let relative = match speed_factor {
        Some(k) if s.relative && s.rule == crate::gate::model::Rule::Legacy => {
            format!(", head divided by the machine's speed factor {k:.3}")
        }
        _ => String::new(),
    };
    let mut parts = vec![
        format!("metric: {}{relative}", s.metric.label()),
        format!("threshold {}", percent(s.threshold)),
        format!("alpha {} (Benjamini–Hochberg)", s.alpha),
        format!("confidence {}", percent(s.confidence)),
        format!("min share {}", percent(s.min_share)),
    ];
    if s.gate_calls {
        parts.push("call counts gated".into());
    }
    parts.join(" · ")
}

/// `1 function`, `2 functions`.
#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn func(name: &str, module: &str, verdict: Verdict) -> FunctionComparison {
        FunctionComparison {
            name: name.into(),
            module: module.into(),
            verdict,
            base: None,
            head: None,
            ratio: None,
            ratio_low: None,
            ratio_high: None,
            p_value: None,
            q_value: None,
            share: 0.0,
            base_calls: None,
            head_calls: None,
            threshold: 0.05,
            head_total_ns: None,
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
        f.base = Some(base);
        f.head = Some(head);
        f.ratio = Some(ratio.0);
        f.ratio_low = Some(ratio.1);
        f.ratio_high = Some(ratio.2);
        f.p_value = Some(pq.0);
        f.q_value = Some(pq.1);
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
        new.head = Some(350.0);
        new.share = 0.02;
        new.head_calls = Some(40);
        new.head_total_ns = Some(14_000.0);
        let mut removed = func("old_slow_path", "bench", Removed);
        removed.base = Some(900.0);
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
            settings: GateSettings::default(),
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
        match Markdown.render(c) {
            Ok(b) => String::from_utf8_lossy(&b).into_owned(),
            Err(e) => panic!("render failed: {e}"),
        }
    }

    #[test]
    fn full_report() {
        insta::assert_snapshot!(md(&fixture()), @r#"
        ❌ 2 functions regressed, call counts changed in 1 function, 1 inconclusive (benchmark **parse-bench**, 10 base runs vs 12 head runs)

        > ⚠️ **Baseline from another machine**: cpu: AMD EPYC 7B13 → Intel Xeon 8375C
        >
        > ⚠️ 3 events lost &lt;b&gt;here&lt;/b&gt;

        ### Regressions

        | Function | Base | Head | Change (95% CI) | p (adjusted) |
        |:---|---:|---:|---:|---:|
        | parse\_header (libfoo.so) | 1.20 µs | 1.50 µs | +25.3% (+21.0% … +29.8%) | 0.0012 |
        | evil\|name&lt;script&gt;alert(1)&lt;/script&gt;\`x\`\\\| \]\]&gt;&amp;"'  (evil&amp;co&lt;&gt;.so) | 45.60 µs | 68.40 µs | +50.0% (+40.0% … +60.0%) | <0.0001 |

        ### Improvements

        | Function | Base | Head | Change (95% CI) | p (adjusted) |
        |:---|---:|---:|---:|---:|
        | hash\_lookup (libfoo.so) | 800 ns | 600 ns | -25.0% (-30.0% … -19.0%) | 0.0030 |

        ### Call counts changed

        Certain: call counts are exact, so a changed count is never noise.

        | Function | Calls per run | Change |
        |:---|---:|---:|
        | alloc\_node (libfoo.so) | 200 → 250 | +25.0% |

        ### Inconclusive

        Neither a change beyond the threshold nor equivalence could be shown with these runs.

        - flush (bench): no figures

        <details><summary>6 other functions</summary>

        | Function | Verdict | Base | Head | Change (95% CI) | p (adjusted) | Share | Calls per run |
        |:---|:---|---:|---:|---:|---:|---:|---:|
        | flush (bench) | inconclusive | 5.00 µs | 5.30 µs | +6.0% (-2.0% … +15.0%) | 0.2000 | 3.00% | 12 |
        | new\_fast\_path (bench) | new | - | 350 ns | - | - | 2.00% | - → 40 |
        | old\_slow\_path (bench) | removed | 900 ns | - | - | - | 5.00% | 40 → - |
        | main\_loop (bench) | unchanged | 2.50 ms | 2.50 ms | +0.2% (-1.0% … +1.0%) | 0.9000 | 30.00% | 1 |
        | tiny\_helper (libfoo.so) | below share floor | 20 ns | 30 ns | +50.0% (+30.0% … +70.0%) | 0.0100 | 0.30% | 5,000 |
        | log\_debug (bench) | ignored | - | - | - | - | 4.00% | - |

        </details>

        <sub>metric: mean self time per call · threshold 5% · alpha 0.05 (Benjamini–Hochberg) · confidence 95% · min share 1% · absolute · decided against the stored baseline</sub>
        "#);
    }

    #[test]
    fn passing_report() {
        insta::assert_snapshot!(md(&passing()), @r#"
        ⚠️ inconclusive: no regression found in 5 functions, but 1 could not be decided (benchmark **parse-bench**, 10 base runs vs 12 head runs)

        ### Improvements

        | Function | Base | Head | Change (95% CI) | p (adjusted) |
        |:---|---:|---:|---:|---:|
        | hash\_lookup (libfoo.so) | 800 ns | 600 ns | -25.0% (-30.0% … -19.0%) | 0.0030 |

        ### Inconclusive

        Neither a change beyond the threshold nor equivalence could be shown with these runs.

        - flush (bench): no figures

        <details><summary>6 other functions</summary>

        | Function | Verdict | Base | Head | Change (95% CI) | p (adjusted) | Share | Calls per run |
        |:---|:---|---:|---:|---:|---:|---:|---:|
        | flush (bench) | inconclusive | 5.00 µs | 5.30 µs | +6.0% (-2.0% … +15.0%) | 0.2000 | 3.00% | 12 |
        | new\_fast\_path (bench) | new | - | 350 ns | - | - | 2.00% | - → 40 |
        | old\_slow\_path (bench) | removed | 900 ns | - | - | - | 5.00% | 40 → - |
        | main\_loop (bench) | unchanged | 2.50 ms | 2.50 ms | +0.2% (-1.0% … +1.0%) | 0.9000 | 30.00% | 1 |
        | tiny\_helper (libfoo.so) | below share floor | 20 ns | 30 ns | +50.0% (+30.0% … +70.0%) | 0.0100 | 0.30% | 5,000 |
        | log\_debug (bench) | ignored | - | - | - | - | 4.00% | - |

        </details>

        <sub>metric: mean self time per call · threshold 5% · alpha 0.05 (Benjamini–Hochberg) · confidence 95% · min share 1% · absolute · decided against the stored baseline</sub>
        "#);
    }

    #[test]
    fn verdict_lines() {
        assert_eq!(
            md(&fixture()).lines().next(),
            Some(
                "❌ 2 functions regressed, call counts changed in 1 function, 1 inconclusive \
                 (benchmark **parse-bench**, 10 base runs vs 12 head runs)"
            )
        );
        assert_eq!(
            md(&passing()).lines().next(),
            Some("⚠\u{fe0f} inconclusive: no regression found in 5 functions, but 1 could not be decided (benchmark **parse-bench**, 10 base runs vs 12 head runs)")
        );
        let mut one = fixture();
        one.functions.retain(|f| f.verdict == Verdict::CallsChanged);
        one.base_runs = 1;
        one.head_runs = 1;
        assert_eq!(
            md(&one).lines().next(),
            Some("❌ call counts changed in 1 function (benchmark **parse-bench**, 1 base run vs 1 head run)")
        );
    }

    #[test]
    fn sections_in_order_and_empty_ones_omitted() {
        let s = md(&fixture());
        let at = |h: &str| s.find(h).unwrap_or_else(|| panic!("{h} missing"));
        assert!(at("### Regressions") < at("### Improvements"));
        assert!(at("### Improvements") < at("### Call counts changed"));
        assert!(at("### Call counts changed") < at("<details>"));
        assert!(at("parse\\_header") < at("### Improvements"));
        assert!(at("### Call counts changed") < at("### Inconclusive"));
        let p = md(&passing());
        assert!(!p.contains("### Regressions"));
        assert!(!p.contains("### Call counts changed"));
        // The one warning sign left is the inconclusive headline, not a machine or load warning.
        assert_eq!(p.matches("⚠️").count(), 1, "{p}");
        assert!(p.contains("### Improvements"));
    }

    #[test]
    fn hostile_names_are_escaped() {
        let s = md(&fixture());
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
        let row = s.lines().find(|l| l.contains("evil")).unwrap_or_default();
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
