//! The JUnit report as its consumers read it: valid against both Jenkins schemas (by `xmllint --schema`)
//! with hostile function names, and read by a model of GitLab's parser with the counts, names and texts
//! GitLab would show.
//!
//! The GitLab model follows `Gitlab::Ci::Parsers::Test::Junit` (lib/gitlab/ci/parsers/test/junit.rb),
//! which reads the document through ActiveSupport's `Hash.from_xml`: an element with non-blank text
//! becomes that text and loses its attributes (so a failure's message is never shown, only its text);
//! `type="yaml"`/`"symbol"` make the whole report fail, other known `type`s (`integer`, …) typecast the
//! text; a case is failed if it has a `failure` child, skipped if `skipped`, and only a failed case shows
//! its `system-out`.
mod common;
use common::*;

use std::time::{Duration, UNIX_EPOCH};

use perfgate::gate::model::{Comparison, Figures, FunctionComparison, GateSettings, Verdict};
use perfgate::report::junit::{report, Provenance};
use quick_xml::events::Event;

/// Every character the brief names as hostile, in one name.
const HOSTILE: &str = "a|b`c<d>e&f%g]]>h\\i\nj\u{1b}[31mk\u{202e}l\u{0}m";
/// That name as it must read back from an attribute: one line, the invisible made visible.
const HOSTILE_SHOWN: &str = "a|b`c<d>e&f%g]]>h\\i\\nj\\u{1b}[31mk\\u{202e}l\\0m";

fn function(name: &str, module: &str, verdict: Verdict) -> FunctionComparison {
    let compared = !matches!(verdict, Verdict::New | Verdict::Removed | Verdict::Ignored);
    FunctionComparison {
        name: name.into(),
        module: module.into(),
        verdict,
        figures: Figures {
            base: (verdict != Verdict::New).then_some(1_200.0),
            head: (verdict != Verdict::Removed).then_some(1_500.0),
            ratio: compared.then_some(1.25),
            ratio_low: compared.then_some(1.2),
            ratio_high: compared.then_some(1.3),
            p_value: compared.then_some(0.0002),
            q_value: compared.then_some(0.001),
            threshold: 0.05,
            ..Figures::default()
        },
        share: if verdict == Verdict::BelowFloor {
            0.001
        } else {
            0.2
        },
        base_calls: (verdict != Verdict::New).then_some(200),
        head_calls: (verdict != Verdict::Removed).then_some(if verdict == Verdict::CallsChanged {
            250
        } else {
            200
        }),
        head_total_ns: Some(300_000.0),
        ..FunctionComparison::default()
    }
}

const ALL: [Verdict; 9] = [
    Verdict::Regressed,
    Verdict::CallsChanged,
    Verdict::Improved,
    Verdict::Inconclusive,
    Verdict::New,
    Verdict::Removed,
    Verdict::Unchanged,
    Verdict::BelowFloor,
    Verdict::Ignored,
];

/// One function of every verdict, each name hostile, in a hostile module, with hostile warnings.
fn hostile(benchmark: &str) -> Comparison {
    Comparison {
        benchmark: benchmark.into(),
        command: vec!["./bench".into(), HOSTILE.into()],
        base_runs: 10,
        head_runs: 12,
        settings: GateSettings {
            gate_calls: true,
            ..GateSettings::default()
        },
        machine_mismatch: Some(HOSTILE.into()),
        speed_factor: None,
        wall_ns: Some(12_345_678_901.0),
        functions: ALL
            .iter()
            .map(|v| function(&format!("{}:{HOSTILE}", v.label()), HOSTILE, *v))
            .collect(),
        warnings: vec![HOSTILE.into(), "[[ATTACHMENT|/etc/passwd]]".into()],
        ..Comparison::default()
    }
}

fn render(comparisons: &[Comparison]) -> Vec<u8> {
    let at = Provenance {
        hostname: format!("runner{HOSTILE}"),
        timestamp: UNIX_EPOCH + Duration::from_secs(1_714_564_800),
    };
    report(comparisons, &at).expect("JUnit report")
}

#[test]
fn the_report_is_valid_against_both_jenkins_schemas_with_hostile_names() {
    assert_valid_junit(&render(&[hostile(HOSTILE)]));
    // Several benchmarks in one report, and none at all.
    assert_valid_junit(&render(&[hostile("parse"), hostile("render")]));
    assert_valid_junit(&render(&[]));
    let mut unknown_time = hostile("old");
    unknown_time.wall_ns = None;
    unknown_time.functions.clear();
    unknown_time.warnings.clear();
    unknown_time.machine_mismatch = None;
    assert_valid_junit(&render(&[unknown_time]));
}

/// The schemas and the validator bite: what the report must avoid is rejected.
#[test]
fn the_validator_rejects_what_the_schemas_forbid() {
    let suite = |attrs: &str, body: &str| {
        format!(
            "<?xml version=\"1.0\"?><testsuites{attrs}><testsuite name=\"s\" tests=\"1\" failures=\"0\" \
             errors=\"0\" time=\"1.5\">{body}</testsuite></testsuites>"
        )
    };
    let fine = suite("", "<testcase name=\"t\"><skipped>why</skipped></testcase>");
    for schema in JUNIT_SCHEMAS {
        assert_eq!(xsd_check(fine.as_bytes(), schema), Ok(()), "{schema}");
    }
    let jenkins = JUNIT_SCHEMAS[0];
    for bad in [
        suite(
            "",
            "<testcase name=\"t\"><skipped message=\"why\"/></testcase>",
        ),
        suite(" skipped=\"1\"", "<testcase name=\"t\"/>"),
        suite("", "<testcase name=\"t\" file=\"src/x.rs\"/>"),
        suite(
            "",
            "<testcase name=\"t\"><system-out>o</system-out><failure/></testcase>",
        ),
        suite("", "<testcase name=\"t\"/><properties/>"),
    ] {
        assert!(xsd_check(bad.as_bytes(), jenkins).is_err(), "{bad}");
    }
    let junit10 = JUNIT_SCHEMAS[1];
    let six_decimals = fine.replace("time=\"1.5\"", "time=\"1.500000\"");
    assert!(xsd_check(six_decimals.as_bytes(), junit10).is_err());
    assert!(xsd_check(
        b"<?xml version=\"1.0\"?><testsuites><oops/></testsuites>",
        junit10
    )
    .is_err());
}

/// An element as ActiveSupport's `Hash.from_xml` sees it: attributes, children, and the text and CDATA
/// inside it joined (whitespace-only text dropped).
#[derive(Debug, Default)]
struct Element {
    name: String,
    attrs: Vec<(String, String)>,
    children: Vec<Element>,
    content: String,
}

impl Element {
    fn attr(&self, key: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    fn child(&self, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.name == name)
    }

    fn all<'a>(&'a self, name: &str, out: &mut Vec<&'a Element>) {
        for c in &self.children {
            if c.name == name {
                out.push(c);
            }
            c.all(name, out);
        }
    }
}

fn tree(xml: &[u8]) -> Element {
    let mut reader = quick_xml::Reader::from_reader(xml);
    let mut stack = vec![Element::default()];
    let open = |e: &quick_xml::events::BytesStart| Element {
        name: String::from_utf8_lossy(e.name().as_ref()).into_owned(),
        attrs: e
            .attributes()
            .map(|a| {
                let a = a.expect("attribute");
                let key = String::from_utf8_lossy(a.key.as_ref()).into_owned();
                // As a parser reads it: references resolved, tab/LF/CR turned into spaces.
                let value = a.normalized_value(quick_xml::XmlVersion::Explicit1_0);
                (key, value.expect("value").into_owned())
            })
            .collect(),
        ..Element::default()
    };
    loop {
        match reader.read_event().expect("well-formed XML") {
            Event::Start(e) => stack.push(open(&e)),
            Event::Empty(e) => {
                let el = open(&e);
                stack.last_mut().unwrap().children.push(el);
            }
            Event::End(_) => {
                let el = stack.pop().unwrap();
                stack.last_mut().unwrap().children.push(el);
            }
            Event::Text(t) => {
                let t = t.decode().unwrap();
                if !t.trim().is_empty() {
                    stack.last_mut().unwrap().content.push_str(&t);
                }
            }
            Event::CData(t) => {
                let t = t.decode().unwrap().into_owned();
                stack.last_mut().unwrap().content.push_str(&t);
            }
            Event::GeneralRef(r) => {
                let c = match r.resolve_char_ref().expect("char ref") {
                    Some(c) => c.to_string(),
                    None => {
                        let name = r.decode().unwrap();
                        quick_xml::escape::resolve_predefined_entity(&name)
                            .expect("known entity")
                            .to_string()
                    }
                };
                stack.last_mut().unwrap().content.push_str(&c);
            }
            Event::Eof => break,
            _ => {}
        }
    }
    assert_eq!(stack.len(), 1, "unbalanced");
    stack.pop().unwrap()
}

/// What ActiveSupport makes of an element: its text if it has any, else None (a hash or nil, which GitLab
/// would show as `{"message"=>…}` or nothing); an error where `type` makes it typecast or refuse.
fn active_support_value(e: &Element) -> Result<Option<String>, String> {
    match e.attr("type") {
        Some(t @ ("yaml" | "symbol")) => {
            return Err(format!("disallowed type {t}: report rejected"))
        }
        Some(
            t @ ("array" | "date" | "datetime" | "dateTime" | "integer" | "float" | "decimal"
            | "boolean" | "string" | "base64Binary" | "binary" | "file"),
        ) => return Err(format!("type {t} would typecast <{}>", e.name)),
        _ => {}
    }
    Ok((!e.content.trim().is_empty()).then(|| e.content.clone()))
}

#[derive(Debug, PartialEq)]
enum Status {
    Failed,
    Error,
    Skipped,
    Success,
}

/// A test case as GitLab stores it.
#[derive(Debug)]
struct GitlabCase {
    suite_name: String,
    classname: String,
    name: String,
    execution_time: f64,
    status: Status,
    system_output: Option<String>,
}

fn gitlab_cases(xml: &[u8]) -> Result<Vec<GitlabCase>, String> {
    let doc = tree(xml);
    let root = doc.child("testsuites").ok_or("no <testsuites>")?;
    let mut cases = Vec::new();
    let mut suites = Vec::new();
    root.all("testsuite", &mut suites);
    for suite in suites {
        for tc in suite.children.iter().filter(|c| c.name == "testcase") {
            let out = |n: &str, label: &str| -> Result<Option<String>, String> {
                Ok(match tc.child(n) {
                    Some(e) => Some(format!(
                        "{label}:\n\n{}",
                        active_support_value(e)?.unwrap_or_default()
                    )),
                    None => None,
                })
            };
            let (status, system_output) = if let Some(f) = tc.child("failure") {
                let parts = [active_support_value(f)?, out("system-out", "System Out")?];
                let joined: Vec<String> = parts.into_iter().flatten().collect();
                (Status::Failed, Some(joined.join("\n\n")))
            } else if let Some(e) = tc.child("error") {
                (Status::Error, active_support_value(e)?)
            } else if let Some(s) = tc.child("skipped") {
                (Status::Skipped, active_support_value(s)?)
            } else {
                (Status::Success, None)
            };
            cases.push(GitlabCase {
                suite_name: suite.attr("name").unwrap_or_default().to_string(),
                classname: tc.attr("classname").unwrap_or_default().to_string(),
                name: tc.attr("name").ok_or("testcase without name")?.to_string(),
                execution_time: tc
                    .attr("time")
                    .map_or(Ok(0.0), str::parse)
                    .map_err(|e| format!("time: {e}"))?,
                status,
                system_output,
            });
        }
    }
    Ok(cases)
}

#[test]
fn gitlab_shows_the_right_counts_names_and_figures() {
    let xml = render(&[hostile("parse"), hostile("render")]);
    let cases =
        gitlab_cases(&xml).unwrap_or_else(|e| panic!("{e}\n{}", String::from_utf8_lossy(&xml)));
    assert_eq!(cases.len(), 2 * ALL.len());
    let count = |s: Status| cases.iter().filter(|c| c.status == s).count();
    assert_eq!(
        count(Status::Failed),
        4,
        "regressed and calls changed, twice"
    );
    assert_eq!(count(Status::Skipped), 10);
    assert_eq!(count(Status::Success), 4);
    assert_eq!(count(Status::Error), 0);
    assert_eq!(
        cases
            .iter()
            .filter(|c| c.suite_name == "perfgate: parse")
            .count(),
        ALL.len()
    );
    for c in &cases {
        let (label, _) = c.name.split_once(':').expect("label:name");
        assert_eq!(c.name, format!("{label}:{HOSTILE_SHOWN}"));
        assert!(c.classname.starts_with("perfgate."), "{}", c.classname);
        assert!((c.execution_time - 0.0003).abs() < 1e-9, "{c:?}");
        if let Some(out) = &c.system_output {
            assert!(!out.contains("[[ATTACHMENT|"), "{out}");
        }
    }
    let by = |label: &str| {
        cases
            .iter()
            .find(|c| c.name.starts_with(&format!("{label}:")))
            .unwrap()
    };
    let regressed = by("regressed");
    let text = regressed.system_output.as_deref().unwrap();
    for needle in [
        "change: +25.0% (95% CI +20.0% … +30.0%)",
        "p: 0.0002, adjusted for all functions (Benjamini–Hochberg): 0.0010, alpha 0.05",
        "base: 1.20 µs (median of 10 runs)",
        "head: 1.50 µs (median of 12 runs)",
    ] {
        assert!(text.contains(needle), "{needle:?} not in {text:?}");
    }
    let calls = by("calls changed").system_output.as_deref().unwrap();
    assert!(
        calls.contains("calls per run: 200 → 250 (+25.0%"),
        "{calls}"
    );
    for (label, reason) in [
        ("inconclusive", "inconclusive after 12 head runs: +25.0%"),
        ("new", "new: not in the baseline"),
        (
            "removed",
            "removed: in the baseline, not in this check's runs",
        ),
        (
            "below share floor",
            "below the share floor: 0.10% of the total time",
        ),
        ("ignored", "ignored: `ignore = true` in the baseline"),
    ] {
        let shown = by(label).system_output.as_deref().unwrap_or_default();
        assert!(shown.starts_with(reason), "{label}: {shown:?}");
    }
    assert_eq!(by("improved").system_output, None);
    assert_eq!(by("unchanged").system_output, None);
}

/// The GitLab model is not a rubber stamp: it catches a report GitLab would reject or show wrongly.
#[test]
fn the_gitlab_model_rejects_what_gitlab_cannot_show() {
    let case = |body: &str| {
        format!(
            "<testsuites><testsuite name=\"s\" tests=\"1\"><testcase name=\"t\">{body}</testcase>\
             </testsuite></testsuites>"
        )
    };
    let yaml = case("<failure type=\"yaml\">x</failure>");
    assert!(gitlab_cases(yaml.as_bytes()).is_err());
    let typed = case("<failure type=\"integer\">12</failure>");
    assert!(gitlab_cases(typed.as_bytes()).is_err());
    // A message without text: GitLab shows no figures.
    let bare = gitlab_cases(case("<failure message=\"slower\"/>").as_bytes()).unwrap();
    assert_eq!(bare[0].status, Status::Failed);
    assert_eq!(bare[0].system_output.as_deref(), Some(""));
    let skipped = gitlab_cases(case("<skipped><![CDATA[a]]]]><![CDATA[>b]]></skipped>").as_bytes());
    assert_eq!(skipped.unwrap()[0].system_output.as_deref(), Some("a]]>b"));
}
