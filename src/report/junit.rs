//! The comparison as JUnit XML for GitLab's and GitHub's test reporters: one `<testsuite>`, one `<testcase>`
//! per function (`classname` = module, `name` = function), the numbers inside the `<failure>` text because
//! GitLab ignores the message attribute.
//!
//! Written by hand with [`escape::xml`] rather than with the junit-report crate: that one stamps a
//! timestamp into every report, writes no `skipped` count, and puts text into CDATA sections unescaped, so a
//! name containing `]]>` or a control character breaks the XML.
use std::fmt::{self, Write as _};

use super::cells::{calls as calls_cell, calls_change, p_value, percent};
use super::Exporter;
use super::{escape, units};
use crate::gate::model::{Comparison, FunctionComparison, Verdict};

/// JUnit XML.
#[derive(Debug, Clone, Copy, Default)]
pub struct Junit;

impl Exporter for Junit {
    fn render(&self, c: &Comparison) -> anyhow::Result<Vec<u8>> {
        let mut out = String::new();
        write_junit(&mut out, c)
            .map_err(|_| anyhow::anyhow!("could not format the JUnit report"))?;
        Ok(out.into_bytes())
    }
}

/// Why a function is reported as skipped, if it is.
fn skip_reason(c: &Comparison, f: &FunctionComparison) -> Option<String> {
    match f.verdict {
        Verdict::BelowFloor => Some(format!(
            "below the share floor: {:.2}% of the total time, under {}",
            f.share * 100.0,
            percent(c.settings.min_share)
        )),
        Verdict::Ignored => Some("ignored in the baseline".into()),
        Verdict::Removed => Some("removed from the benchmark".into()),
        _ => None,
    }
}

fn write_junit(out: &mut String, c: &Comparison) -> fmt::Result {
    let tests = c.functions.len();
    let failures = c.failures().count();
    let skipped = c
        .functions
        .iter()
        .filter(|f| skip_reason(c, f).is_some())
        .count();
    let counts = format!(r#"tests="{tests}" failures="{failures}" errors="0" skipped="{skipped}""#);
    writeln!(out, r#"<?xml version="1.0" encoding="UTF-8"?>"#)?;
    writeln!(out, r#"<testsuites name="perfgate" {counts}>"#)?;
    writeln!(
        out,
        r#"  <testsuite name="perfgate: {}" {counts}>"#,
        escape::xml(&c.benchmark)
    )?;

    let s = &c.settings;
    let mut properties = vec![
        ("command", c.command.join(" ")),
        ("metric", s.metric.label().to_string()),
        ("relative", s.relative.to_string()),
        ("threshold", s.threshold.to_string()),
        ("alpha", s.alpha.to_string()),
        ("confidence", s.confidence.to_string()),
        ("min_share", s.min_share.to_string()),
        ("gate_calls", s.gate_calls.to_string()),
        ("base_runs", c.base_runs.to_string()),
        ("head_runs", c.head_runs.to_string()),
    ];
    if let Some(m) = &c.machine_mismatch {
        properties.push(("machine_mismatch", m.clone()));
    }
    writeln!(out, "    <properties>")?;
    for (name, v) in properties {
        writeln!(
            out,
            r#"      <property name="{name}" value="{}"/>"#,
            escape::xml(&v)
        )?;
    }
    writeln!(out, "    </properties>")?;

    for f in &c.functions {
        let time = f
            .head_total_ns
            .filter(|t| t.is_finite() && *t >= 0.0)
            .unwrap_or(0.0)
            / 1e9;
        writeln!(
            out,
            r#"    <testcase classname="{}" name="{}" time="{time:.6}">"#,
            escape::xml(&f.module),
            escape::xml(&f.name)
        )?;
        let text = escape::xml(&details(c, f));
        if f.verdict.fails() {
            let (kind, message) = match f.verdict {
                Verdict::CallsChanged => (
                    "calls-changed",
                    format!("calls per run changed: {}", calls_cell(f)),
                ),
                _ => (
                    "regression",
                    format!(
                        "{} slower, threshold {}",
                        change_with_ci(c, f),
                        percent(f.threshold)
                    ),
                ),
            };
            writeln!(
                out,
                r#"      <failure message="{}" type="{kind}">{text}</failure>"#,
                escape::xml(&message)
            )?;
        } else {
            if let Some(reason) = skip_reason(c, f) {
                writeln!(
                    out,
                    r#"      <skipped message="{}"/>"#,
                    escape::xml(&reason)
                )?;
            }
            writeln!(out, "      <system-out>{text}</system-out>")?;
        }
        writeln!(out, "    </testcase>")?;
    }

    let notes: Vec<String> = c
        .machine_mismatch
        .iter()
        .map(|m| format!("warning: baseline from another machine: {m}"))
        .chain(c.warnings.iter().map(|w| format!("warning: {w}")))
        .collect();
    if !notes.is_empty() {
        writeln!(
            out,
            "    <system-out>{}</system-out>",
            escape::xml(&notes.join("\n"))
        )?;
    }
    writeln!(out, "  </testsuite>")?;
    writeln!(out, "</testsuites>")
}

/// `+25.3% (95% CI +21.0% … +29.8%)`.
fn change_with_ci(c: &Comparison, f: &FunctionComparison) -> String {
    match (f.ratio, f.ratio_low, f.ratio_high) {
        (Some(r), Some(lo), Some(hi)) => format!(
            "{} ({} CI {} … {})",
            units::change(r),
            percent(c.settings.confidence),
            units::change(lo),
            units::change(hi)
        ),
        (Some(r), _, _) => units::change(r),
        (None, _, _) => "-".into(),
    }
}

/// Every number of one function, one per line (unescaped).
fn details(c: &Comparison, f: &FunctionComparison) -> String {
    let s = &c.settings;
    let unit = if s.relative {
        " (head divided by the machine's speed factor)"
    } else {
        ""
    };
    let mut lines = vec![
        format!("verdict: {}", f.verdict.label()),
        format!("metric: {}", s.metric.label()),
    ];
    if f.base.is_some() {
        lines.push(format!(
            "base: {}{unit} (median of {} runs)",
            super::cells::figure(f.base),
            c.base_runs
        ));
    }
    if f.head.is_some() {
        lines.push(format!(
            "head: {}{unit} (median of {} runs)",
            super::cells::figure(f.head),
            c.head_runs
        ));
    }
    if f.ratio.is_some() {
        lines.push(format!("change: {}", change_with_ci(c, f)));
    }
    lines.push(format!("threshold: {}", percent(f.threshold)));
    if f.p_value.is_some() || f.q_value.is_some() {
        lines.push(format!(
            "p: {}, adjusted for all functions (Benjamini–Hochberg): {}, alpha {}",
            p_value(f.p_value),
            p_value(f.q_value),
            s.alpha
        ));
    }
    if f.base_calls.is_some() || f.head_calls.is_some() {
        let mut l = format!("calls per run: {}", calls_cell(f));
        if f.calls_changed() {
            l.push_str(&format!(
                " ({}; call counts are exact, the change is certain)",
                calls_change(f)
            ));
        }
        lines.push(l);
    }
    lines.push(format!("share of the total time: {:.2}%", f.share * 100.0));
    lines.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::markdown::tests::{fixture, passing, HOSTILE};

    /// An element of a parsed document, with entities decoded.
    #[derive(Debug, Default)]
    struct Node {
        name: String,
        attrs: Vec<(String, String)>,
        children: Vec<Node>,
        text: String,
    }

    impl Node {
        fn attr(&self, key: &str) -> Option<&str> {
            self.attrs
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.as_str())
        }

        /// This element and all below it with the given name, in document order.
        fn all<'a>(&'a self, name: &str) -> Vec<&'a Node> {
            let mut out = Vec::new();
            if self.name == name {
                out.push(self);
            }
            for c in &self.children {
                out.extend(c.all(name));
            }
            out
        }
    }

    fn is_xml_char(c: char) -> bool {
        matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
    }

    fn check_name(n: &str) -> Result<(), String> {
        let mut chars = n.chars();
        let ok = chars
            .next()
            .is_some_and(|c| c.is_alphabetic() || c == '_' || c == ':')
            && chars.all(|c| c.is_alphanumeric() || matches!(c, '_' | ':' | '-' | '.'));
        if ok {
            Ok(())
        } else {
            Err(format!("bad name {n:?}"))
        }
    }

    /// Text or an attribute value with its references resolved; a bare `&` or `<` is an error.
    fn decode(s: &str) -> Result<String, String> {
        if s.contains('<') {
            return Err(format!("raw < in {s:?}"));
        }
        let mut out = String::new();
        let mut rest = s;
        while let Some(i) = rest.find('&') {
            out.push_str(&rest[..i]);
            let end = rest[i..]
                .find(';')
                .ok_or_else(|| format!("unterminated reference in {s:?}"))?
                + i;
            let r = &rest[i + 1..end];
            let c = match r {
                "lt" => '<',
                "gt" => '>',
                "amp" => '&',
                "quot" => '"',
                "apos" => '\'',
                _ => {
                    let n = if let Some(h) = r.strip_prefix("#x") {
                        u32::from_str_radix(h, 16).ok()
                    } else {
                        r.strip_prefix('#').and_then(|d| d.parse().ok())
                    };
                    n.and_then(char::from_u32)
                        .filter(|c| is_xml_char(*c))
                        .ok_or_else(|| format!("bad reference &{r};"))?
                }
            };
            out.push(c);
            rest = &rest[end + 1..];
        }
        out.push_str(rest);
        Ok(out)
    }

    fn attach(node: Node, stack: &mut [Node], root: &mut Option<Node>) -> Result<(), String> {
        match stack.last_mut() {
            Some(parent) => parent.children.push(node),
            None if root.is_some() => return Err("a second root element".into()),
            None => *root = Some(node),
        }
        Ok(())
    }

    /// A strict check of well-formedness (XML 1.0 characters, one root, balanced tags, quoted and unique
    /// attributes, only known entities, no `]]>` in text; no DTD) that returns the element tree.
    fn parse(xml: &str) -> Result<Node, String> {
        if let Some(c) = xml.chars().find(|c| !is_xml_char(*c)) {
            return Err(format!("not an XML character: {c:?}"));
        }
        let decl = xml
            .strip_prefix("<?xml ")
            .and_then(|r| r.find("?>").map(|i| &r[i + 2..]));
        let mut rest = decl.ok_or("no XML declaration")?;
        let mut stack: Vec<Node> = Vec::new();
        let mut root = None;
        loop {
            let i = rest.find('<').unwrap_or(rest.len());
            let text = &rest[..i];
            if text.contains("]]>") {
                return Err(format!("]]> in text {text:?}"));
            }
            let text = decode(text)?;
            match stack.last_mut() {
                Some(n) => n.text.push_str(&text),
                None if !text.trim().is_empty() => {
                    return Err(format!("text outside the root: {text:?}"))
                }
                None => {}
            }
            rest = &rest[i..];
            if rest.is_empty() {
                break;
            }
            if let Some(r) = rest.strip_prefix("</") {
                let end = r.find('>').ok_or("unterminated end tag")?;
                let node = stack.pop().ok_or("end tag without start tag")?;
                if node.name != r[..end].trim_end() {
                    return Err(format!("<{}> closed by </{}>", node.name, &r[..end]));
                }
                attach(node, &mut stack, &mut root)?;
                rest = &r[end + 1..];
            } else if let Some(r) = rest.strip_prefix("<!--") {
                let end = r.find("-->").ok_or("unterminated comment")?;
                rest = &r[end + 3..];
            } else if let Some(r) = rest.strip_prefix("<![CDATA[") {
                let end = r.find("]]>").ok_or("unterminated CDATA")?;
                stack
                    .last_mut()
                    .ok_or("CDATA outside the root")?
                    .text
                    .push_str(&r[..end]);
                rest = &r[end + 3..];
            } else {
                let r = &rest[1..];
                let end = r
                    .find(|c: char| c.is_whitespace() || c == '/' || c == '>')
                    .ok_or("unterminated tag")?;
                check_name(&r[..end])?;
                let mut node = Node {
                    name: r[..end].to_string(),
                    ..Node::default()
                };
                let mut r = &r[end..];
                loop {
                    let t = r.trim_start_matches([' ', '\t', '\n', '\r']);
                    let spaced = t.len() < r.len();
                    if let Some(t) = t.strip_prefix("/>") {
                        attach(node, &mut stack, &mut root)?;
                        r = t;
                        break;
                    }
                    if let Some(t) = t.strip_prefix('>') {
                        stack.push(node);
                        r = t;
                        break;
                    }
                    if !spaced {
                        return Err(format!("no space before an attribute in <{}>", node.name));
                    }
                    let eq = t.find('=').ok_or("attribute without =")?;
                    let key = &t[..eq];
                    check_name(key)?;
                    let t = &t[eq + 1..];
                    let quote = t
                        .chars()
                        .next()
                        .filter(|q| *q == '"' || *q == '\'')
                        .ok_or("unquoted value")?;
                    let close = t[1..].find(quote).ok_or("unterminated value")? + 1;
                    if node.attr(key).is_some() {
                        return Err(format!("duplicate attribute {key}"));
                    }
                    node.attrs.push((key.to_string(), decode(&t[1..close])?));
                    r = &t[close + 1..];
                }
                rest = r;
            }
        }
        if let Some(open) = stack.last() {
            return Err(format!("<{}> not closed", open.name));
        }
        root.ok_or_else(|| "no root element".into())
    }

    fn xml(c: &Comparison) -> String {
        match Junit.render(c) {
            Ok(b) => String::from_utf8_lossy(&b).into_owned(),
            Err(e) => panic!("render failed: {e}"),
        }
    }

    fn doc(c: &Comparison) -> Node {
        let x = xml(c);
        parse(&x).unwrap_or_else(|e| panic!("not well-formed: {e}\n{x}"))
    }

    #[test]
    fn the_checker_rejects_broken_xml() {
        for bad in [
            "<?xml version=\"1.0\"?><a><b></a>",
            "<?xml version=\"1.0\"?><a x=\"<\"/>",
            "<?xml version=\"1.0\"?><a>&nope;</a>",
            "<?xml version=\"1.0\"?><a>x & y</a>",
            "<?xml version=\"1.0\"?><a>]]></a>",
            "<?xml version=\"1.0\"?><a>\u{1}</a>",
            "<?xml version=\"1.0\"?><a x=\"1\" x=\"2\"/>",
            "<?xml version=\"1.0\"?><a/><b/>",
            "<?xml version=\"1.0\"?><a>",
            "<?xml version=\"1.0\"?><a x=1/>",
            "<?xml version=\"1.0\"?><a><![CDATA[x]]>]]></a>",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
        assert!(
            parse("<?xml version=\"1.0\"?>\n<a x='&lt;&#x41;'><b/>t<![CDATA[<&]]></a>\n").is_ok()
        );
    }

    #[test]
    fn full_report() {
        insta::assert_snapshot!(xml(&fixture()), @r#"
        <?xml version="1.0" encoding="UTF-8"?>
        <testsuites name="perfgate" tests="10" failures="3" errors="0" skipped="3">
          <testsuite name="perfgate: parse-bench" tests="10" failures="3" errors="0" skipped="3">
            <properties>
              <property name="command" value="./bench --iterations 100"/>
              <property name="metric" value="mean self time per call"/>
              <property name="relative" value="false"/>
              <property name="threshold" value="0.05"/>
              <property name="alpha" value="0.05"/>
              <property name="confidence" value="0.95"/>
              <property name="min_share" value="0.01"/>
              <property name="gate_calls" value="false"/>
              <property name="base_runs" value="10"/>
              <property name="head_runs" value="12"/>
              <property name="machine_mismatch" value="cpu: AMD EPYC 7B13 → Intel Xeon 8375C"/>
            </properties>
            <testcase classname="libfoo.so" name="parse_header" time="0.000412">
              <failure message="+25.3% (95% CI +21.0% … +29.8%) slower, threshold 5%" type="regression">verdict: regressed
        metric: mean self time per call
        base: 1.20 µs (median of 10 runs)
        head: 1.50 µs (median of 12 runs)
        change: +25.3% (95% CI +21.0% … +29.8%)
        threshold: 5%
        p: 0.0002, adjusted for all functions (Benjamini–Hochberg): 0.0012, alpha 0.05
        calls per run: 200
        share of the total time: 23.45%</failure>
            </testcase>
            <testcase classname="evil&amp;co&lt;&gt;.so" name="evil|name&lt;script&gt;alert(1)&lt;/script&gt;`x`\|
        ]]&gt;&amp;&quot;&apos;�" time="0.003200">
              <failure message="+50.0% (95% CI +40.0% … +60.0%) slower, threshold 5%" type="regression">verdict: regressed
        metric: mean self time per call
        base: 45.60 µs (median of 10 runs)
        head: 68.40 µs (median of 12 runs)
        change: +50.0% (95% CI +40.0% … +60.0%)
        threshold: 5%
        p: &lt;0.0001, adjusted for all functions (Benjamini–Hochberg): &lt;0.0001, alpha 0.05
        calls per run: 10
        share of the total time: 12.00%</failure>
            </testcase>
            <testcase classname="libfoo.so" name="alloc_node" time="0.000030">
              <failure message="calls per run changed: 200 → 250" type="calls-changed">verdict: calls changed
        metric: mean self time per call
        base: 95 ns (median of 10 runs)
        head: 96 ns (median of 12 runs)
        change: +1.0% (95% CI -1.0% … +3.0%)
        threshold: 5%
        p: 0.4000, adjusted for all functions (Benjamini–Hochberg): 0.6000, alpha 0.05
        calls per run: 200 → 250 (+25.0%; call counts are exact, the change is certain)
        share of the total time: 8.00%</failure>
            </testcase>
            <testcase classname="libfoo.so" name="hash_lookup" time="0.000640">
              <system-out>verdict: improved
        metric: mean self time per call
        base: 800 ns (median of 10 runs)
        head: 600 ns (median of 12 runs)
        change: -25.0% (95% CI -30.0% … -19.0%)
        threshold: 5%
        p: 0.0004, adjusted for all functions (Benjamini–Hochberg): 0.0030, alpha 0.05
        calls per run: 1,000
        share of the total time: 15.00%</system-out>
            </testcase>
            <testcase classname="bench" name="main_loop" time="0.009000">
              <system-out>verdict: unchanged
        metric: mean self time per call
        base: 2.50 ms (median of 10 runs)
        head: 2.50 ms (median of 12 runs)
        change: +0.2% (95% CI -1.0% … +1.0%)
        threshold: 5%
        p: 0.8000, adjusted for all functions (Benjamini–Hochberg): 0.9000, alpha 0.05
        calls per run: 1
        share of the total time: 30.00%</system-out>
            </testcase>
            <testcase classname="bench" name="flush" time="0.000070">
              <system-out>verdict: inconclusive
        metric: mean self time per call
        base: 5.00 µs (median of 10 runs)
        head: 5.30 µs (median of 12 runs)
        change: +6.0% (95% CI -2.0% … +15.0%)
        threshold: 5%
        p: 0.0400, adjusted for all functions (Benjamini–Hochberg): 0.2000, alpha 0.05
        calls per run: 12
        share of the total time: 3.00%</system-out>
            </testcase>
            <testcase classname="bench" name="new_fast_path" time="0.000014">
              <system-out>verdict: new
        metric: mean self time per call
        head: 350 ns (median of 12 runs)
        threshold: 5%
        calls per run: - → 40
        share of the total time: 2.00%</system-out>
            </testcase>
            <testcase classname="bench" name="old_slow_path" time="0.000000">
              <skipped message="removed from the benchmark"/>
              <system-out>verdict: removed
        metric: mean self time per call
        base: 900 ns (median of 10 runs)
        threshold: 5%
        calls per run: 40 → -
        share of the total time: 5.00%</system-out>
            </testcase>
            <testcase classname="libfoo.so" name="tiny_helper" time="0.000160">
              <skipped message="below the share floor: 0.30% of the total time, under 1%"/>
              <system-out>verdict: below share floor
        metric: mean self time per call
        base: 20 ns (median of 10 runs)
        head: 30 ns (median of 12 runs)
        change: +50.0% (95% CI +30.0% … +70.0%)
        threshold: 5%
        p: 0.0010, adjusted for all functions (Benjamini–Hochberg): 0.0100, alpha 0.05
        calls per run: 5,000
        share of the total time: 0.30%</system-out>
            </testcase>
            <testcase classname="bench" name="log_debug" time="0.000000">
              <skipped message="ignored in the baseline"/>
              <system-out>verdict: ignored
        metric: mean self time per call
        threshold: 5%
        share of the total time: 4.00%</system-out>
            </testcase>
            <system-out>warning: baseline from another machine: cpu: AMD EPYC 7B13 → Intel Xeon 8375C
        warning: 3 events lost &lt;b&gt;here&lt;/b&gt;</system-out>
          </testsuite>
        </testsuites>
        "#);
    }

    #[test]
    fn one_testcase_per_function_with_failures_and_skips_counted() {
        let c = fixture();
        let root = doc(&c);
        assert_eq!(root.name, "testsuites");
        let suites = root.all("testsuite");
        assert_eq!(suites.len(), 1);
        assert_eq!(suites[0].attr("name"), Some("perfgate: parse-bench"));
        let cases = root.all("testcase");
        assert_eq!(cases.len(), c.functions.len());
        assert_eq!(root.all("failure").len(), 3);
        assert_eq!(root.all("skipped").len(), 3);
        for n in [&root, suites[0]] {
            assert_eq!(n.attr("tests"), Some("10"));
            assert_eq!(n.attr("failures"), Some("3"));
            assert_eq!(n.attr("skipped"), Some("3"));
            assert_eq!(n.attr("errors"), Some("0"));
        }
        for (case, f) in cases.iter().zip(&c.functions) {
            assert_eq!(case.attr("name"), Some(survives(&f.name).as_str()));
            assert_eq!(case.attr("classname"), Some(survives(&f.module).as_str()));
        }
        let passing = doc(&passing());
        assert!(passing.all("failure").is_empty());
        assert_eq!(passing.attr("failures"), Some("0"));
    }

    /// What XML can carry of a string: controls other than tab and newline become U+FFFD.
    fn survives(s: &str) -> String {
        s.chars()
            .map(|c| {
                if c.is_control() && c != '\n' && c != '\t' {
                    '\u{FFFD}'
                } else {
                    c
                }
            })
            .collect()
    }

    fn case<'a>(root: &'a Node, name: &str) -> &'a Node {
        let found = root
            .all("testcase")
            .into_iter()
            .find(|n| n.attr("name") == Some(name));
        found.unwrap_or_else(|| panic!("no testcase {name}"))
    }

    #[test]
    fn failure_text_holds_the_numbers() {
        let root = doc(&fixture());
        let parse_header = case(&root, "parse_header");
        assert_eq!(parse_header.attr("time"), Some("0.000412"));
        let failure = &parse_header.children[0];
        assert_eq!(failure.name, "failure");
        assert_eq!(failure.attr("type"), Some("regression"));
        assert_eq!(
            failure.attr("message"),
            Some("+25.3% (95% CI +21.0% … +29.8%) slower, threshold 5%")
        );
        for needle in [
            "verdict: regressed",
            "base: 1.20 µs (median of 10 runs)",
            "head: 1.50 µs (median of 12 runs)",
            "change: +25.3% (95% CI +21.0% … +29.8%)",
            "threshold: 5%",
            "p: 0.0002, adjusted for all functions (Benjamini–Hochberg): 0.0012, alpha 0.05",
            "calls per run: 200",
            "share of the total time: 23.45%",
        ] {
            assert!(
                failure.text.contains(needle),
                "{needle:?} not in {:?}",
                failure.text
            );
        }
        let calls = &case(&root, "alloc_node").children[0];
        assert_eq!(calls.name, "failure");
        assert_eq!(calls.attr("type"), Some("calls-changed"));
        assert_eq!(
            calls.attr("message"),
            Some("calls per run changed: 200 → 250")
        );
        assert!(calls.text.contains(
            "calls per run: 200 → 250 (+25.0%; call counts are exact, the change is certain)"
        ));
        let hostile = &case(&root, &survives(HOSTILE)).children[0];
        assert!(hostile
            .text
            .contains("p: <0.0001, adjusted for all functions (Benjamini–Hochberg): <0.0001"));
    }

    #[test]
    fn skipped_and_passing_cases() {
        let root = doc(&fixture());
        let skipped = |name: &str| {
            let c = case(&root, name);
            assert_eq!(c.children[0].name, "skipped", "{name}");
            c.children[0].attr("message").map(str::to_string)
        };
        assert_eq!(
            skipped("tiny_helper").as_deref(),
            Some("below the share floor: 0.30% of the total time, under 1%")
        );
        assert_eq!(
            skipped("log_debug").as_deref(),
            Some("ignored in the baseline")
        );
        assert_eq!(
            skipped("old_slow_path").as_deref(),
            Some("removed from the benchmark")
        );
        let ignored = case(&root, "log_debug");
        assert_eq!(ignored.attr("time"), Some("0.000000"));
        let new = case(&root, "new_fast_path");
        assert_eq!(new.children.len(), 1);
        assert_eq!(new.children[0].name, "system-out");
        assert!(new.children[0].text.starts_with("verdict: new\n"));
    }

    #[test]
    fn hostile_text_everywhere_stays_well_formed() {
        let nasty =
            "a]]>b<![CDATA[c]]>&amp;\"'<!-- x -->\u{0}\u{1b}[31m\r\n\t\u{7f}\u{85}</testcase>&#0;";
        let mut c = fixture();
        c.benchmark = nasty.into();
        c.command.push(nasty.into());
        c.machine_mismatch = Some(nasty.into());
        c.warnings.push(nasty.into());
        for f in &mut c.functions {
            f.name = format!("{}{nasty}", f.name);
            f.module = nasty.into();
        }
        let root = doc(&c);
        assert_eq!(root.all("testcase").len(), c.functions.len());
        assert_eq!(
            root.all("testsuite")[0].attr("name"),
            Some(format!("perfgate: {}", survives(nasty)).as_str())
        );
        assert_eq!(
            case(&root, &survives(&format!("parse_header{nasty}"))).attr("classname"),
            Some(survives(nasty).as_str())
        );
        let empty = Comparison {
            functions: Vec::new(),
            warnings: Vec::new(),
            machine_mismatch: None,
            ..fixture()
        };
        let root = doc(&empty);
        assert!(root.all("testcase").is_empty());
        assert_eq!(root.attr("tests"), Some("0"));
    }
}
