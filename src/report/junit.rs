//! The comparison as JUnit XML for Jenkins', GitLab's and GitHub's test reporters, written with the
//! junit-report crate.
//!
//! Shape: one `<testsuites>`; one `<testsuite>` per comparison (a benchmark); one `<testcase>` per
//! function. A regression or a gated call-count change is a `<failure>` whose text holds the numbers
//! (GitLab shows the text, not the `message` attribute); inconclusive, new, removed, below-floor and
//! ignored functions are `<skipped>` with the reason and the numbers as text; improved and unchanged
//! ones pass, with their numbers in `<system-out>`.
//!
//! Invariants:
//! - Every name and text goes through [`escape::xml`] before junit-report sees it; junit-report (quick-xml)
//!   entity-escapes attributes itself, so nothing is escaped twice.
//! - The output is valid against both Jenkins schemas: `jenkins-junit.xsd` (junit-4) and xunit-plugin's
//!   `junit-10.xsd` (copies in `tests/data/`, checked in `tests/junit.rs`). So: no `skipped` on
//!   `<testsuites>`, no attribute on `<skipped>`, no `file` on `<testcase>` (neither schema has one;
//!   perfgate knows no source file of a function anyway), a suite `time` with at most three decimals.
//! - `classname` is `perfgate.<benchmark>.module:<module>` with every piece reduced to letters, digits,
//!   `-`, `_`, `+`: stable, grouped per benchmark in Jenkins, and its last dot-separated piece is never a
//!   plausible file stem or a glob (mikepenz/action-junit-report globs `**/<last piece>.*` to find the
//!   file to annotate when there is no `file`; `gatebench` would find `fixtures/gatebench.c`).
//! - `<failure type>` values are plain words: GitLab reads the report through ActiveSupport's
//!   `Hash.from_xml`, which typecasts by a `type` attribute (`integer`, `yaml`, …) and rejects some.
//!
//! What junit-report cannot write is added afterwards by [`amend`], which rewrites its output event by
//! event: the suite's `time` (junit-report sums the testcase times, which for nested functions counts the
//! same time many times over, and writes many decimals), the suite's `skipped` count, `<properties>`, the
//! totals on `<testsuites>`, `<skipped>` without the `type`/`message` attributes junit-4 forbids, and
//! indentation.
use std::io::Read as _;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use junit_report::{Duration, OffsetDateTime, Report, TestCase, TestResult, TestSuite};
use quick_xml::events::{BytesEnd, BytesStart, Event};
use quick_xml::{Reader, Writer};

use super::cells::{calls as calls_cell, calls_change, p_value, percent};
use super::escape::{self, XmlPlace};
use super::units;
use super::Exporter;
use crate::gate::model::{Comparison, FunctionComparison, Verdict};

/// JUnit XML of one comparison, stamped with this machine's name and the current time.
#[derive(Debug, Clone, Copy, Default)]
pub struct Junit;

impl Exporter for Junit {
    fn render(&self, c: &Comparison) -> anyhow::Result<Vec<u8>> {
        report(std::slice::from_ref(c), &Provenance::current())
    }
}

/// Where and when the check ran: the suites' `hostname` and `timestamp`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Provenance {
    /// The machine's name.
    pub hostname: String,
    /// When the report was made (written ISO 8601, UTC, whole seconds).
    pub timestamp: SystemTime,
}

impl Provenance {
    /// This machine, now.
    pub fn current() -> Provenance {
        Provenance {
            hostname: hostname().unwrap_or_else(|| "unknown".into()),
            timestamp: SystemTime::now(),
        }
    }
}

/// The kernel's host name (at most 64 bytes; the read is bounded anyway).
fn hostname() -> Option<String> {
    let mut name = String::new();
    std::fs::File::open("/proc/sys/kernel/hostname")
        .ok()?
        .take(256)
        .read_to_string(&mut name)
        .ok()?;
    let name = name.trim();
    (!name.is_empty()).then(|| name.to_string())
}

/// A benchmark that could not be checked, and why: a suite with one `<error>` testcase, so a reporter
/// step counts it instead of missing it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unchecked {
    /// The benchmark's name.
    pub name: String,
    /// The one-line error.
    pub error: String,
}

/// JUnit XML of several comparisons (several benchmarks, as one check of all of them gives): one
/// `<testsuite>` each, in order.
pub fn report(comparisons: &[Comparison], at: &Provenance) -> anyhow::Result<Vec<u8>> {
    report_all(comparisons, &[], at)
}

/// [`report`], then one suite per benchmark that could not be checked.
pub fn report_all(
    comparisons: &[Comparison],
    unchecked: &[Unchecked],
    at: &Provenance,
) -> anyhow::Result<Vec<u8>> {
    let mut report = Report::new();
    report.add_testsuites(comparisons.iter().map(|c| suite(c, at)));
    report.add_testsuites(unchecked.iter().map(|u| error_suite(u, at)));
    let extras: Vec<SuiteExtras> = comparisons
        .iter()
        .map(|c| (c.wall_ns.and_then(seconds), properties(c)))
        .chain(unchecked.iter().map(|_| (None, Vec::new())))
        .zip(report.testsuites())
        .map(|((time, properties), s)| SuiteExtras {
            time,
            skipped: s.skipped(),
            properties,
        })
        .collect();
    let mut raw = Vec::new();
    report
        .write_xml(&mut raw)
        .map_err(|e| anyhow::anyhow!("could not write the JUnit report: {e}"))?;
    amend(&raw, &extras, report.testsuites())
        .context("could not complete the JUnit report written by junit-report")
}

fn attribute(s: &str) -> String {
    escape::xml(s, XmlPlace::Attribute)
}

fn cdata(s: &str) -> String {
    escape::xml(s, XmlPlace::Cdata)
}

/// A duration in ns as seconds, if it is one.
fn seconds(ns: f64) -> Option<f64> {
    (ns.is_finite() && ns >= 0.0).then_some(ns / 1e9)
}

fn suite(c: &Comparison, at: &Provenance) -> TestSuite {
    let mut suite = TestSuite::new(&attribute(&format!("perfgate: {}", c.benchmark)));
    suite.package = format!("perfgate.{}", piece(&c.benchmark));
    suite.hostname = attribute(&at.hostname);
    suite.set_timestamp(timestamp(at.timestamp));
    suite.add_testcases(c.functions.iter().map(|f| case(c, f)));
    let notes: Vec<String> = c
        .machine_mismatch
        .iter()
        .map(|m| format!("warning: baseline from another machine: {m}"))
        .chain(c.warnings.iter().map(|w| format!("warning: {w}")))
        .collect();
    if !notes.is_empty() {
        suite.set_system_out(&cdata(&notes.join("\n")));
    }
    suite
}

/// The suite of a benchmark that could not be checked.
fn error_suite(u: &Unchecked, at: &Provenance) -> TestSuite {
    let mut suite = TestSuite::new(&attribute(&format!("perfgate: {}", u.name)));
    suite.package = format!("perfgate.{}", piece(&u.name));
    suite.hostname = attribute(&at.hostname);
    suite.set_timestamp(timestamp(at.timestamp));
    suite.add_testcase(TestCase::error(
        &attribute(&u.name),
        Duration::ZERO,
        "perfgate-error",
        &attribute(&u.error),
    ));
    suite
}

/// In UTC and whole seconds (`2024-05-01T12:00:00Z`); a clock outside what the format can carry (years
/// 0 to 9999: junit-report unwraps the RFC 3339 formatting) reads as the epoch rather than panicking.
fn timestamp(t: SystemTime) -> OffsetDateTime {
    let secs = match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => i64::try_from(e.duration().as_secs()).map_or(i64::MIN, |s| -s),
    };
    OffsetDateTime::from_unix_timestamp(secs)
        .ok()
        .filter(|t| (0..=9999).contains(&t.year()))
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// A piece of `classname`: the name with everything but letters, digits, `-`, `_` and `+` as `_` (dots
/// would split it for Jenkins and glob characters would match files for GitHub annotators).
fn piece(s: &str) -> String {
    let out: String = attribute(s)
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || matches!(c, '-' | '_' | '+') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if out.is_empty() {
        "_".into()
    } else {
        out
    }
}

fn classname(c: &Comparison, f: &FunctionComparison) -> String {
    format!(
        "perfgate.{}.module:{}",
        piece(&c.benchmark),
        piece(&f.module)
    )
}

fn case(c: &Comparison, f: &FunctionComparison) -> TestCase {
    let name = attribute(&f.name);
    // The median head time per run spent in the function (its inclusive total).
    let ns = f.head_total_ns.and_then(seconds).unwrap_or(0.0) * 1e9;
    let time = Duration::nanoseconds(ns.round() as i64);
    let text = details(c, f);
    let mut case = TestCase::success(&name, time);
    match f.verdict {
        Verdict::Regressed | Verdict::CallsChanged => {
            let (kind, message) = failure(c, f);
            case.result = TestResult::Failure {
                type_: kind.into(),
                message: attribute(&message),
                cause: Some(cdata(&text)),
            };
        }
        Verdict::Improved | Verdict::Unchanged => case.set_system_out(&cdata(&text)),
        Verdict::Inconclusive
        | Verdict::New
        | Verdict::Removed
        | Verdict::BelowFloor
        | Verdict::Ignored => {
            // GitLab shows only the text of a skipped case, so the numbers go there too; the empty
            // attributes are removed by `amend`.
            case.result = TestResult::SkippedWithCause {
                type_: String::new(),
                message: String::new(),
                cause: Some(cdata(&format!("{}\n{text}", skip_reason(c, f)))),
            };
        }
    }
    case.set_classname(&classname(c, f));
    case
}

/// The failure's `type` and one-line message.
fn failure(c: &Comparison, f: &FunctionComparison) -> (&'static str, String) {
    if f.verdict == Verdict::CallsChanged {
        (
            "calls-changed",
            format!("calls per run changed: {}", calls_cell(f)),
        )
    } else {
        let metric = if super::cells::several_metrics(c) {
            format!("{}: ", row_metric_label(c, f))
        } else {
            String::new()
        };
        (
            "regression",
            format!(
                "{metric}{} slower, threshold {}",
                change_with_ci(c, f),
                percent(f.figures.threshold)
            ),
        )
    }
}

/// Why a function is not gated, in one line.
fn skip_reason(c: &Comparison, f: &FunctionComparison) -> String {
    match f.verdict {
        Verdict::Inconclusive if f.figures.ratio.is_some() => format!(
            "inconclusive after {} head runs: {}, threshold {}",
            c.head_runs,
            change_with_ci(c, f),
            percent(f.figures.threshold)
        ),
        Verdict::Inconclusive => format!("inconclusive after {} head runs", c.head_runs),
        Verdict::New => "new: not in the baseline, nothing to compare with".into(),
        Verdict::Removed => "removed: in the baseline, not in this check's runs".into(),
        Verdict::BelowFloor => format!(
            "below the share floor: {:.2}% of the total time, under {}",
            f.share * 100.0,
            percent(c.settings.min_share)
        ),
        Verdict::Ignored => "ignored: `ignore = true` in the baseline".into(),
        v => v.label().into(),
    }
}

/// `+25.3% (95% CI +21.0% … +29.8%)`.
fn change_with_ci(c: &Comparison, f: &FunctionComparison) -> String {
    match (f.figures.ratio, f.figures.ratio_low, f.figures.ratio_high) {
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

/// Every number of one function, one per line, with units (not yet sanitised).
fn details(c: &Comparison, f: &FunctionComparison) -> String {
    let s = &c.settings;
    let unit = if s.relative {
        " (head divided by the machine's speed factor)"
    } else {
        ""
    };
    let mut lines = vec![
        format!("verdict: {}", f.verdict.label()),
        format!("metric: {}", row_metric_label(c, f)),
    ];
    if f.figures.base.is_some() {
        lines.push(format!(
            "base: {}{unit} (median of {} runs)",
            super::cells::figure(f.figures.base),
            c.base_runs
        ));
    }
    if f.figures.head.is_some() {
        lines.push(format!(
            "head: {}{unit} (median of {} runs)",
            super::cells::figure(f.figures.head),
            c.head_runs
        ));
    }
    if f.figures.ratio.is_some() {
        lines.push(format!("change: {}", change_with_ci(c, f)));
    }
    lines.push(format!("threshold: {}", percent(f.figures.threshold)));
    if f.figures.p_value.is_some() || f.figures.q_value.is_some() {
        lines.push(format!(
            "p: {}, adjusted for all functions (Benjamini–Hochberg): {}, alpha {}",
            p_value(f.figures.p_value),
            p_value(f.figures.q_value),
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
    if f.metrics.len() > 1 {
        lines.push(format!(
            "every metric: {}",
            super::cells::metric_verdicts(f)
        ));
    }
    lines.extend(f.notes.iter().cloned());
    if let Some(d) = &f.distribution {
        lines.push(format!(
            "distribution of {}, base against head:",
            super::distribution::time_label(d)
        ));
        lines.extend(super::distribution::lines(d, "  "));
    }
    lines.join("\n")
}

/// The label of the metric a row's figures are of (the settings' first for older reports).
fn row_metric_label(c: &Comparison, f: &FunctionComparison) -> String {
    f.metric
        .or_else(|| c.settings.metrics.first().copied())
        .map_or_else(|| "-".into(), |m| m.label())
}

/// The gate's settings as `<property>` name/value pairs (values sanitised).
fn properties(c: &Comparison) -> Vec<(&'static str, String)> {
    let s = &c.settings;
    let mut p = vec![
        ("command", c.command.join(" ")),
        ("metric", s.metrics_label()),
        ("relative", s.relative.to_string()),
        ("threshold", s.threshold.to_string()),
        ("quantile_threshold", s.quantile_threshold.to_string()),
        ("alpha", s.alpha.to_string()),
        ("confidence", s.confidence.to_string()),
        ("min_share", s.min_share.to_string()),
        ("gate_calls", s.gate_calls.to_string()),
        ("base_runs", c.base_runs.to_string()),
        ("head_runs", c.head_runs.to_string()),
    ];
    if let Some(m) = &c.machine_mismatch {
        p.push(("machine_mismatch", m.clone()));
    }
    p.into_iter().map(|(k, v)| (k, attribute(&v))).collect()
}

/// What one `<testsuite>` needs beyond what junit-report writes.
struct SuiteExtras {
    /// The check's wall time, s; the attribute is left out when unknown.
    time: Option<f64>,
    skipped: usize,
    properties: Vec<(&'static str, String)>,
}

/// Seconds with three decimals: the older `junit-10.xsd` (as pytest ships it) allows no more.
fn time_attribute(s: f64) -> String {
    // `+ 0.0` turns the -0.0 of an empty sum into 0.0, which the schema's pattern accepts.
    format!("{:.3}", s + 0.0)
}

/// junit-report's output, completed (see the module doc): events are copied through quick-xml, except
/// the start tags of `<testsuites>`, `<testsuite>` and `<skipped>`, which are rewritten.
fn amend(raw: &[u8], extras: &[SuiteExtras], suites: &[TestSuite]) -> anyhow::Result<Vec<u8>> {
    let mut reader = Reader::from_reader(raw);
    let mut out = Writer::new_with_indent(Vec::with_capacity(raw.len() * 2), b' ', 2);
    let mut next_suite = extras.iter();
    loop {
        let event = reader.read_event()?;
        let (tag, empty) = match &event {
            Event::Start(t) => (t, false),
            Event::Empty(t) => (t, true),
            Event::Eof => break,
            _ => {
                out.write_event(event)?;
                continue;
            }
        };
        match tag.name().as_ref() {
            b"testsuites" => {
                let totals = totals_tag(extras, suites);
                out.write_event(if empty {
                    Event::Empty(totals)
                } else {
                    Event::Start(totals)
                })?;
            }
            b"testsuite" => {
                let extra = next_suite
                    .next()
                    .context("more <testsuite> than comparisons")?;
                out.write_event(Event::Start(suite_tag(tag, extra)?))?;
                if !extra.properties.is_empty() {
                    out.write_event(Event::Start(BytesStart::new("properties")))?;
                    for (name, value) in &extra.properties {
                        let p = BytesStart::new("property")
                            .with_attributes([("name", *name), ("value", value.as_str())]);
                        out.write_event(Event::Empty(p))?;
                    }
                    out.write_event(Event::End(BytesEnd::new("properties")))?;
                }
                if empty {
                    out.write_event(Event::End(BytesEnd::new("testsuite")))?;
                }
            }
            b"skipped" => {
                let bare = BytesStart::new("skipped");
                out.write_event(if empty {
                    Event::Empty(bare)
                } else {
                    Event::Start(bare)
                })?;
            }
            _ => out.write_event(event.clone())?,
        }
    }
    let mut xml = out.into_inner();
    xml.push(b'\n');
    Ok(xml)
}

/// `<testsuite>` with our `time` in place of junit-report's and a `skipped` count after `failures`.
fn suite_tag<'a>(tag: &BytesStart<'_>, extra: &SuiteExtras) -> anyhow::Result<BytesStart<'a>> {
    let mut out = BytesStart::new("testsuite");
    for a in tag.attributes() {
        let a = a?;
        match a.key.as_ref() {
            b"time" => {
                if let Some(t) = extra.time {
                    out.push_attribute(("time", time_attribute(t).as_str()));
                }
            }
            b"failures" => {
                out.push_attribute(a);
                out.push_attribute(("skipped", extra.skipped.to_string().as_str()));
            }
            _ => out.push_attribute(a),
        }
    }
    Ok(out)
}

/// `<testsuites>` with the totals over all suites (junit-report writes none); no `skipped`, which
/// junit-4 does not allow there.
fn totals_tag(extras: &[SuiteExtras], suites: &[TestSuite]) -> BytesStart<'static> {
    let sum = |f: fn(&TestSuite) -> usize| suites.iter().map(f).sum::<usize>().to_string();
    let mut tag = BytesStart::new("testsuites");
    tag.push_attribute(("name", "perfgate"));
    tag.push_attribute(("tests", sum(TestSuite::tests).as_str()));
    tag.push_attribute(("failures", sum(TestSuite::failures).as_str()));
    tag.push_attribute(("errors", sum(TestSuite::errors).as_str()));
    let time: Option<f64> = extras.iter().map(|e| e.time).sum();
    if let Some(t) = time {
        tag.push_attribute(("time", time_attribute(t).as_str()));
    }
    tag
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::markdown::tests::{fixture, passing};

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

    /// A fixed machine and time, so the report is reproducible.
    fn at() -> Provenance {
        Provenance {
            hostname: "ci-runner-7".into(),
            timestamp: UNIX_EPOCH + std::time::Duration::from_secs(1_714_564_800),
        }
    }

    fn xml_of(comparisons: &[Comparison]) -> String {
        match report(comparisons, &at()) {
            Ok(b) => String::from_utf8(b).expect("UTF-8"),
            Err(e) => panic!("render failed: {e:#}"),
        }
    }

    fn xml(c: &Comparison) -> String {
        xml_of(std::slice::from_ref(c))
    }

    fn doc(c: &Comparison) -> Node {
        let x = xml(c);
        parse(&x).unwrap_or_else(|e| panic!("not well-formed: {e}\n{x}"))
    }

    fn case<'a>(root: &'a Node, name: &str) -> &'a Node {
        let found = root
            .all("testcase")
            .into_iter()
            .find(|n| n.attr("name") == Some(name));
        found.unwrap_or_else(|| panic!("no testcase {name}"))
    }

    /// The one child element of a testcase with that name.
    fn child<'a>(case: &'a Node, name: &str) -> &'a Node {
        let found: Vec<&Node> = case.children.iter().filter(|c| c.name == name).collect();
        assert_eq!(found.len(), 1, "one <{name}> in {case:?}");
        found[0]
    }

    #[test]
    fn a_tail_regression_says_its_metric_and_carries_the_distribution() {
        let c = crate::report::markdown::tests::multi_metric_fixture();
        let x = xml(&c);
        // Well-formed: the document parses.
        let _ = doc(&c);
        assert!(
            x.contains("message=\"p99 of inclusive time per call: +25.3% (95% CI +21.0% … +29.8%) slower, threshold 10%\""),
            "{x}"
        );
        assert!(
            x.contains("every metric: p99 incl +25.3% regressed, mean self +0.4% unchanged"),
            "{x}"
        );
        assert!(
            x.contains("distribution of inclusive time per call, base against head:"),
            "{x}"
        );
        assert!(x.contains("  head  │"), "{x}");
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
        <?xml version="1.0" encoding="utf-8"?>
        <testsuites name="perfgate" tests="10" failures="3" errors="0" time="4.250">
          <testsuite id="0" name="perfgate: parse-bench" package="perfgate.parse-bench" tests="10" errors="0" failures="3" skipped="5" hostname="ci-runner-7" timestamp="2024-05-01T12:00:00Z" time="4.250">
            <properties>
              <property name="command" value="./bench --iterations 100"/>
              <property name="metric" value="mean self time per call"/>
              <property name="relative" value="false"/>
              <property name="threshold" value="0.05"/>
              <property name="quantile_threshold" value="0.1"/>
              <property name="alpha" value="0.05"/>
              <property name="confidence" value="0.95"/>
              <property name="min_share" value="0.01"/>
              <property name="gate_calls" value="false"/>
              <property name="base_runs" value="10"/>
              <property name="head_runs" value="12"/>
              <property name="machine_mismatch" value="cpu: AMD EPYC 7B13 → Intel Xeon 8375C"/>
            </properties>
            <testcase name="parse_header" time="0.000412" classname="perfgate.parse-bench.module:libfoo_so">
              <failure type="regression" message="+25.3% (95% CI +21.0% … +29.8%) slower, threshold 5%"><![CDATA[verdict: regressed
        metric: mean self time per call
        base: 1.20 µs (median of 10 runs)
        head: 1.50 µs (median of 12 runs)
        change: +25.3% (95% CI +21.0% … +29.8%)
        threshold: 5%
        p: 0.0002, adjusted for all functions (Benjamini–Hochberg): 0.0012, alpha 0.05
        calls per run: 200
        share of the total time: 23.45%]]></failure>
            </testcase>
            <testcase name="evil|name&lt;script&gt;alert(1)&lt;/script&gt;`x`\|\n]]&gt;&amp;&quot;&apos;\u{1}" time="0.0032" classname="perfgate.parse-bench.module:evil_co___so">
              <failure type="regression" message="+50.0% (95% CI +40.0% … +60.0%) slower, threshold 5%"><![CDATA[verdict: regressed
        metric: mean self time per call
        base: 45.60 µs (median of 10 runs)
        head: 68.40 µs (median of 12 runs)
        change: +50.0% (95% CI +40.0% … +60.0%)
        threshold: 5%
        p: <0.0001, adjusted for all functions (Benjamini–Hochberg): <0.0001, alpha 0.05
        calls per run: 10
        share of the total time: 12.00%]]></failure>
            </testcase>
            <testcase name="alloc_node" time="0.00003" classname="perfgate.parse-bench.module:libfoo_so">
              <failure type="calls-changed" message="calls per run changed: 200 → 250"><![CDATA[verdict: calls changed
        metric: mean self time per call
        base: 95 ns (median of 10 runs)
        head: 96 ns (median of 12 runs)
        change: +1.0% (95% CI -1.0% … +3.0%)
        threshold: 5%
        p: 0.4000, adjusted for all functions (Benjamini–Hochberg): 0.6000, alpha 0.05
        calls per run: 200 → 250 (+25.0%; call counts are exact, the change is certain)
        share of the total time: 8.00%]]></failure>
            </testcase>
            <testcase name="hash_lookup" time="0.00064" classname="perfgate.parse-bench.module:libfoo_so">
              <system-out><![CDATA[verdict: improved
        metric: mean self time per call
        base: 800 ns (median of 10 runs)
        head: 600 ns (median of 12 runs)
        change: -25.0% (95% CI -30.0% … -19.0%)
        threshold: 5%
        p: 0.0004, adjusted for all functions (Benjamini–Hochberg): 0.0030, alpha 0.05
        calls per run: 1,000
        share of the total time: 15.00%]]></system-out>
            </testcase>
            <testcase name="main_loop" time="0.009" classname="perfgate.parse-bench.module:bench">
              <system-out><![CDATA[verdict: unchanged
        metric: mean self time per call
        base: 2.50 ms (median of 10 runs)
        head: 2.50 ms (median of 12 runs)
        change: +0.2% (95% CI -1.0% … +1.0%)
        threshold: 5%
        p: 0.8000, adjusted for all functions (Benjamini–Hochberg): 0.9000, alpha 0.05
        calls per run: 1
        share of the total time: 30.00%]]></system-out>
            </testcase>
            <testcase name="flush" time="0.00007" classname="perfgate.parse-bench.module:bench">
              <skipped><![CDATA[inconclusive after 12 head runs: +6.0% (95% CI -2.0% … +15.0%), threshold 5%
        verdict: inconclusive
        metric: mean self time per call
        base: 5.00 µs (median of 10 runs)
        head: 5.30 µs (median of 12 runs)
        change: +6.0% (95% CI -2.0% … +15.0%)
        threshold: 5%
        p: 0.0400, adjusted for all functions (Benjamini–Hochberg): 0.2000, alpha 0.05
        calls per run: 12
        share of the total time: 3.00%]]></skipped>
            </testcase>
            <testcase name="new_fast_path" time="0.000014" classname="perfgate.parse-bench.module:bench">
              <skipped><![CDATA[new: not in the baseline, nothing to compare with
        verdict: new
        metric: mean self time per call
        head: 350 ns (median of 12 runs)
        threshold: 5%
        calls per run: - → 40
        share of the total time: 2.00%]]></skipped>
            </testcase>
            <testcase name="old_slow_path" time="0" classname="perfgate.parse-bench.module:bench">
              <skipped><![CDATA[removed: in the baseline, not in this check's runs
        verdict: removed
        metric: mean self time per call
        base: 900 ns (median of 10 runs)
        threshold: 5%
        calls per run: 40 → -
        share of the total time: 5.00%]]></skipped>
            </testcase>
            <testcase name="tiny_helper" time="0.00016" classname="perfgate.parse-bench.module:libfoo_so">
              <skipped><![CDATA[below the share floor: 0.30% of the total time, under 1%
        verdict: below share floor
        metric: mean self time per call
        base: 20 ns (median of 10 runs)
        head: 30 ns (median of 12 runs)
        change: +50.0% (95% CI +30.0% … +70.0%)
        threshold: 5%
        p: 0.0010, adjusted for all functions (Benjamini–Hochberg): 0.0100, alpha 0.05
        calls per run: 5,000
        share of the total time: 0.30%]]></skipped>
            </testcase>
            <testcase name="log_debug" time="0" classname="perfgate.parse-bench.module:bench">
              <skipped><![CDATA[ignored: `ignore = true` in the baseline
        verdict: ignored
        metric: mean self time per call
        threshold: 5%
        share of the total time: 4.00%]]></skipped>
            </testcase>
            <system-out><![CDATA[warning: baseline from another machine: cpu: AMD EPYC 7B13 → Intel Xeon 8375C
        warning: 3 events lost <b>here</b>]]></system-out>
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
        let suite = suites[0];
        assert_eq!(suite.attr("name"), Some("perfgate: parse-bench"));
        let cases = root.all("testcase");
        assert_eq!(cases.len(), c.functions.len());
        assert_eq!(root.all("failure").len(), 3);
        assert_eq!(root.all("skipped").len(), 5);
        for n in [&root, suite] {
            assert_eq!(n.attr("tests"), Some("10"));
            assert_eq!(n.attr("failures"), Some("3"));
            assert_eq!(n.attr("errors"), Some("0"));
        }
        assert_eq!(suite.attr("skipped"), Some("5"));
        // junit-4 has no `skipped` on <testsuites>.
        assert_eq!(root.attr("skipped"), None);
        for (case, f) in cases.iter().zip(&c.functions) {
            assert_eq!(case.attr("name"), Some(attribute(&f.name).as_str()));
            assert_eq!(case.attr("file"), None);
        }
        let passing = doc(&passing());
        assert!(passing.all("failure").is_empty());
        assert_eq!(passing.attr("failures"), Some("0"));
    }

    #[test]
    fn suite_time_is_the_checks_wall_time_with_host_and_timestamp() {
        let mut c = fixture();
        c.wall_ns = Some(61_234_567_890.0);
        let root = doc(&c);
        let suite = root.all("testsuite")[0];
        assert_eq!(suite.attr("time"), Some("61.235"));
        assert_eq!(root.attr("time"), Some("61.235"));
        assert_eq!(suite.attr("timestamp"), Some("2024-05-01T12:00:00Z"));
        assert_eq!(suite.attr("hostname"), Some("ci-runner-7"));
        assert_eq!(suite.attr("package"), Some("perfgate.parse-bench"));
        // Unknown (a comparison saved before the field existed): no time rather than a made-up one.
        c.wall_ns = None;
        let root = doc(&c);
        assert_eq!(root.all("testsuite")[0].attr("time"), None);
        assert_eq!(root.attr("time"), None);
        c.wall_ns = Some(f64::NAN);
        assert_eq!(doc(&c).all("testsuite")[0].attr("time"), None);
        // Sub-second instants are cut to the second, and a clock before 1970 still gives a report.
        let at = Provenance {
            timestamp: UNIX_EPOCH + std::time::Duration::from_millis(1_714_564_800_999),
            ..at()
        };
        let x = String::from_utf8(report(&[fixture()], &at).unwrap()).unwrap();
        assert!(x.contains(r#"timestamp="2024-05-01T12:00:00Z""#), "{x}");
        let at = Provenance {
            timestamp: UNIX_EPOCH - std::time::Duration::from_secs(86_400),
            ..at
        };
        let x = String::from_utf8(report(&[fixture()], &at).unwrap()).unwrap();
        assert!(x.contains(r#"timestamp="1969-12-31T00:00:00Z""#), "{x}");
        // Years RFC 3339 cannot write (junit-report would panic on them) read as the epoch.
        let year_minus_200 = UNIX_EPOCH.checked_sub(std::time::Duration::from_secs(68_500_000_000));
        let year_20000 = UNIX_EPOCH.checked_add(std::time::Duration::from_secs(569_000_000_000));
        for t in [year_minus_200, year_20000] {
            let at = Provenance {
                timestamp: t.expect("representable on Linux"),
                ..at.clone()
            };
            let x = String::from_utf8(report(&[fixture()], &at).unwrap()).unwrap();
            assert!(x.contains(r#"timestamp="1970-01-01T00:00:00Z""#), "{x}");
        }
    }

    #[test]
    fn several_comparisons_give_one_suite_each_and_summed_totals() {
        let mut other = passing();
        other.benchmark = "render.bench".into();
        other.wall_ns = Some(1_500_000_000.0);
        let x = xml_of(&[fixture(), other.clone()]);
        let root = parse(&x).unwrap_or_else(|e| panic!("{e}\n{x}"));
        let suites = root.all("testsuite");
        assert_eq!(suites.len(), 2);
        assert_eq!(suites[0].attr("id"), Some("0"));
        assert_eq!(suites[1].attr("id"), Some("1"));
        assert_eq!(suites[1].attr("name"), Some("perfgate: render.bench"));
        assert_eq!(suites[1].attr("package"), Some("perfgate.render_bench"));
        assert_eq!(suites[1].attr("tests"), Some("7"));
        assert_eq!(suites[1].attr("failures"), Some("0"));
        assert_eq!(suites[1].attr("skipped"), Some("5"));
        assert_eq!(suites[1].all("testcase").len(), other.functions.len());
        assert_eq!(root.attr("tests"), Some("17"));
        assert_eq!(root.attr("failures"), Some("3"));
        assert_eq!(root.attr("time"), Some("5.750"));
        // Each suite has its own properties, before its testcases.
        for s in suites {
            assert_eq!(s.children[0].name, "properties");
        }
        let empty = parse(&xml_of(&[])).unwrap();
        assert!(empty.all("testsuite").is_empty());
        assert_eq!(empty.attr("tests"), Some("0"));
        assert_eq!(empty.attr("time"), Some("0.000"));
    }

    #[test]
    fn classname_is_stable_per_benchmark_and_module_and_names_no_file() {
        let root = doc(&fixture());
        assert_eq!(
            case(&root, "parse_header").attr("classname"),
            Some("perfgate.parse-bench.module:libfoo_so")
        );
        assert_eq!(
            case(&root, "main_loop").attr("classname"),
            Some("perfgate.parse-bench.module:bench")
        );
        let mut c = fixture();
        c.benchmark = "a.b/c*?[x]{y}".into();
        for f in &mut c.functions {
            f.module = "/usr/lib/libstdc++.so.6 [vdso]".into();
        }
        let root = doc(&c);
        for case in root.all("testcase") {
            let class = case.attr("classname").unwrap();
            assert_eq!(
                class,
                "perfgate.a_b_c___x__y_.module:_usr_lib_libstdc++_so_6__vdso_"
            );
            // What GitHub annotators take for the file name: the last dot-separated piece.
            let last = class.rsplit('.').next().unwrap();
            assert!(last.starts_with("module:"), "{last}");
            assert!(
                !last.contains(['*', '?', '[', ']', '{', '}', '/', '\\']),
                "{last}"
            );
        }
    }

    #[test]
    fn failure_text_holds_the_numbers() {
        let root = doc(&fixture());
        let parse_header = case(&root, "parse_header");
        assert_eq!(parse_header.attr("time"), Some("0.000412"));
        assert_eq!(parse_header.children.len(), 1);
        let failure = child(parse_header, "failure");
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
        let calls = child(case(&root, "alloc_node"), "failure");
        assert_eq!(calls.attr("type"), Some("calls-changed"));
        assert_eq!(
            calls.attr("message"),
            Some("calls per run changed: 200 → 250")
        );
        assert!(calls.text.contains(
            "calls per run: 200 → 250 (+25.0%; call counts are exact, the change is certain)"
        ));
        let hostile = case(
            &root,
            "evil|name<script>alert(1)</script>`x`\\|\\n]]>&\"'\\u{1}",
        );
        assert!(child(hostile, "failure")
            .text
            .contains("p: <0.0001, adjusted for all functions (Benjamini–Hochberg): <0.0001"));
    }

    #[test]
    fn skipped_and_passing_cases() {
        let root = doc(&fixture());
        let skipped = |name: &str| {
            let c = case(&root, name);
            assert_eq!(c.children.len(), 1, "{name}: only <skipped>");
            let s = child(c, "skipped");
            // junit-4 allows no attribute on <skipped>: the reason is its text.
            assert!(s.attrs.is_empty(), "{name}: {:?}", s.attrs);
            s.text.clone()
        };
        let first_line = |t: String| t.lines().next().unwrap_or_default().to_string();
        assert_eq!(
            first_line(skipped("tiny_helper")),
            "below the share floor: 0.30% of the total time, under 1%"
        );
        assert_eq!(
            first_line(skipped("log_debug")),
            "ignored: `ignore = true` in the baseline"
        );
        assert_eq!(
            first_line(skipped("old_slow_path")),
            "removed: in the baseline, not in this check's runs"
        );
        assert_eq!(
            first_line(skipped("new_fast_path")),
            "new: not in the baseline, nothing to compare with"
        );
        let flush = skipped("flush");
        assert!(flush.starts_with(
            "inconclusive after 12 head runs: +6.0% (95% CI -2.0% … +15.0%), threshold 5%\n"
        ));
        assert!(
            flush.contains("\nbase: 5.00 µs (median of 10 runs)\n"),
            "{flush}"
        );
        assert!(
            flush.contains("\nhead: 5.30 µs (median of 12 runs)\n"),
            "{flush}"
        );
        assert_eq!(case(&root, "log_debug").attr("time"), Some("0"));
        for (name, verdict) in [("hash_lookup", "improved"), ("main_loop", "unchanged")] {
            let c = case(&root, name);
            assert_eq!(c.children.len(), 1);
            let out = child(c, "system-out");
            assert!(
                out.text.starts_with(&format!("verdict: {verdict}\n")),
                "{name}"
            );
            assert!(out.text.contains("change: "), "{name}");
        }
        let suite_out = root.all("testsuite")[0]
            .children
            .iter()
            .rfind(|n| n.name == "system-out")
            .expect("suite system-out");
        assert_eq!(
            suite_out.text,
            "warning: baseline from another machine: cpu: AMD EPYC 7B13 → Intel Xeon 8375C\n\
             warning: 3 events lost <b>here</b>"
        );
    }

    #[test]
    fn hostile_text_everywhere_stays_well_formed() {
        let nasty =
            "a]]>b<![CDATA[c]]>&amp;\"'<!-- x -->\u{0}\u{1b}[31m\r\n\t\u{7f}\u{85}\u{202e}</testcase>&#0;\u{FFFF}";
        // What an attribute reads back as: one line, the invisible made visible.
        let in_attribute = "a]]>b<![CDATA[c]]>&amp;\"'<!-- x -->\\0\\u{1b}[31m\\r\\n\\t\\u{7f}\\u{85}\\u{202e}</testcase>&#0;\\u{ffff}";
        // What text reads back as: line breaks and tabs kept.
        let in_text = "a]]>b<![CDATA[c]]>&amp;\"'<!-- x -->\\0\\u{1b}[31m\r\n\t\\u{7f}\\u{85}\\u{202e}</testcase>&#0;\\u{ffff}";
        let mut c = fixture();
        c.benchmark = nasty.into();
        c.command.push(nasty.into());
        c.machine_mismatch = Some(nasty.into());
        c.warnings = vec![nasty.into()];
        for f in &mut c.functions {
            f.name = format!("{}{nasty}", f.name);
            f.module = nasty.into();
        }
        let x = xml(&c);
        assert!(!x.contains('\u{1b}') && !x.contains('\u{0}') && !x.contains('\u{202e}'));
        let root = parse(&x).unwrap_or_else(|e| panic!("not well-formed: {e}\n{x}"));
        assert_eq!(root.all("testcase").len(), c.functions.len());
        let suite = root.all("testsuite")[0];
        assert_eq!(
            suite.attr("name"),
            Some(format!("perfgate: {in_attribute}").as_str())
        );
        let parse_header = case(&root, &format!("parse_header{in_attribute}"));
        let piece = "a___b___CDATA_c____amp_____--_x_--__0_u_1b__31m_r_n_t_u_7f__u_85__u_202e___testcase___0__u_ffff_";
        assert_eq!(
            parse_header.attr("classname"),
            Some(format!("perfgate.{piece}.module:{piece}").as_str())
        );
        let command = root
            .all("property")
            .into_iter()
            .find(|p| p.attr("name") == Some("command"))
            .and_then(|p| p.attr("value"));
        assert_eq!(
            command,
            Some(format!("./bench --iterations 100 {in_attribute}").as_str())
        );
        // The CDATA split reads back as the original `]]>`.
        let notes = &suite
            .children
            .iter()
            .rfind(|n| n.name == "system-out")
            .unwrap()
            .text;
        // A parser normalises \r\n to \n; this checker does not, so compare before that.
        assert_eq!(
            notes,
            &format!("warning: baseline from another machine: {in_text}\nwarning: {in_text}")
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
        assert_eq!(root.all("testsuite")[0].attr("tests"), Some("0"));
    }
}
