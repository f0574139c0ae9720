//! Hostile names, end to end: the `names` fixture's functions are named with `|`, a backtick, `<`,
//! `>`, `&`, `;`, `%`, `:`, `,`, `]]>`, a backslash, a backslash-n, a terminal escape (ESC `[`), a
//! raw newline, a double quote, `<script>` and a right-to-left override (U+202E, "Trojan Source"). Traced for real, then every view and report must be
//! valid for its format and show each name safely: the terminal table and the replay with control
//! characters made visible, markdown without broken tables or markup, JUnit XML valid against both
//! Jenkins schemas, JSON and the Chrome trace round-tripping the names exactly, folded stacks one
//! line per stack, the SVG well-formed, and the Action's `::error` annotations one line each with
//! their properties escaped.
mod common;
use std::path::Path;

use common::*;
use perfgate::profile::file::Recording;

/// The fixture's hostile names, as the symbol table has them (fixtures/names.S).
const HOSTILE: [&str; 13] = [
    "pipe|name",
    "back`tick",
    "angle<int, long>",
    "amp&ersand;semi",
    "per%cent:colon,comma",
    "cdata]]>end",
    "back\\slash",
    "newline\\nescape",
    "esc\x1b[31mred\x1b[0m",
    "lineNL\nNLbreak",
    "quote\"d",
    "<script>alert(1)</script>",
    "rtl\u{202e}override",
];

/// A bidirectional control: shows the rest of its line reversed (perfgate's escape module has the
/// full list; this test needs only the one the fixture uses).
fn is_bidi(c: char) -> bool {
    matches!(c, '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

fn record_names(dir: &Path) -> std::path::PathBuf {
    let data = dir.join("names.data");
    let out = record_to(&data)
        .args(["--trace", "--no-calibrate", "--"])
        .arg(fixture("names"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    data
}

fn report(data: &Path, format: &str) -> String {
    let out = perfgate()
        .args(["report", "--format", format, "-i"])
        .arg(data)
        .output()
        .unwrap();
    assert!(out.status.success(), "{format}: {}", text(&out.stderr));
    String::from_utf8(out.stdout).expect("UTF-8")
}

/// No character a terminal or a line-based reader would act on: ESC, other C0 controls but newline
/// and tab, DEL, C1 controls, bidirectional controls.
fn assert_no_controls(what: &str, s: &str) {
    let bad: Vec<char> = s
        .chars()
        .filter(|&c| (c.is_control() && c != '\n' && c != '\t') || is_bidi(c))
        .collect();
    assert!(bad.is_empty(), "{what}: control characters {bad:?}");
}

#[test]
fn every_view_of_a_recording_shows_hostile_names_safely() {
    let dir = scratch();
    let data = record_names(dir.path());
    // The names reached the recording exactly, with exact counts.
    let rec = Recording::open(&data).unwrap();
    for name in HOSTILE {
        assert_eq!(calls(&rec.profile, name), 3, "{name:?}");
    }

    // The terminal table: one row per function, control characters shown as escapes.
    let table = report(&data, "summary");
    assert_no_controls("summary", &table);
    assert!(
        table.contains("esc\\u{1b}[31mred\\u{1b}[0m (names)"),
        "{table}"
    );
    assert!(table.contains("lineNL\\u{a}NLbreak (names)"), "{table}");
    assert!(table.contains("pipe|name (names)"), "{table}");
    assert!(table.contains("rtl\\u{202e}override (names)"), "{table}");
    let rows = table.lines().filter(|l| l.contains(" (names)")).count();
    assert_eq!(
        rows,
        HOSTILE.len() + 1,
        "one row per function and main:\n{table}"
    );

    // The replay: each function's three calls, one line each.
    let out = perfgate()
        .args(["replay", "-i"])
        .arg(&data)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let replay = String::from_utf8(out.stdout).unwrap();
    assert_no_controls("replay", &replay);
    for shown in [
        "pipe|name();",
        "esc\\u{1b}[31mred\\u{1b}[0m();",
        "lineNL\\u{a}NLbreak();",
        "rtl\\u{202e}override();",
    ] {
        assert_eq!(replay.matches(shown).count(), 3, "{shown}:\n{replay}");
    }

    // The Chrome trace: valid JSON, the names exactly, three complete events each.
    let chrome: serde_json::Value = serde_json::from_str(&report(&data, "chrome")).unwrap();
    let events = chrome["traceEvents"].as_array().unwrap();
    for name in HOSTILE {
        let n = events
            .iter()
            .filter(|e| e["ph"] == "X" && e["name"] == name)
            .count();
        assert_eq!(n, 3, "{name:?}");
    }

    // Folded stacks: one `stack value` line per stack; `;` only between frames.
    let folded = report(&data, "folded");
    assert_no_controls("folded", &folded);
    let lines: Vec<&str> = folded.lines().collect();
    assert_eq!(lines.len(), HOSTILE.len() + 1, "{folded}");
    for l in &lines {
        let (stack, value) = l.rsplit_once(' ').unwrap();
        assert!(value.parse::<u64>().is_ok(), "{l:?}");
        assert!(stack == "main" || stack.matches(';').count() == 1, "{l:?}");
    }
    assert!(folded.contains("main;amp&ersand:semi "), "{folded}");
    assert!(
        folded.contains("main;esc\u{FFFD}[31mred\u{FFFD}[0m "),
        "{folded}"
    );

    // The flame graph: well-formed XML, names escaped by the XML writer, no control characters.
    let svg = report(&data, "flame-graph");
    assert_no_controls("svg", &svg);
    assert!(
        !svg.contains("<script>alert"),
        "markup injected into the SVG"
    );
    assert!(
        svg.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "{svg}"
    );
    assert!(
        svg.contains("cdata]]&gt;end") || svg.contains("cdata]]>end"),
        "{svg}"
    );
    let doc = dir.path().join("flame.svg");
    std::fs::write(&doc, &svg).unwrap();
    let lint = std::process::Command::new("xmllint")
        .args(["--noout", "--nonet"])
        .arg(&doc)
        .output()
        .expect("xmllint (scripts/setup.sh installs libxml2-utils)");
    assert!(lint.status.success(), "{}", text(&lint.stderr));
}

/// The gate's reports of a real regression of every hostile function: JUnit valid against both
/// schemas, markdown tables unbroken and free of markup, JSON exact, and the Action's annotations.
#[test]
fn every_report_of_a_regression_shows_hostile_names_safely() {
    let dir = scratch();
    let d = dir.path();
    let base = d.join("names.toml");
    let out = perfgate()
        .args(["baseline", "--runs", "10", "--overhead-budget", "off", "-o"])
        .arg(&base)
        .arg("--")
        .arg(fixture("names"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    // The baseline keeps the names exactly.
    let b = perfgate::gate::baseline::Baseline::read(&base).unwrap();
    for name in HOSTILE {
        assert!(
            b.functions.iter().any(|f| f.name == name),
            "{name:?} not in the baseline"
        );
    }

    // Every hostile function 4 times slower (absolute: normalising per run would take a uniform
    // slowdown for a slower machine): a regression the gate finds in a few runs. 10 runs a side, so
    // that one run disturbed by a busy machine cannot leave a function inconclusive (with 5, one
    // outlier did: p = 0.095).
    let (xml, md, json) = (
        d.join("names.xml"),
        d.join("names.md"),
        d.join("names.json"),
    );
    let out = perfgate()
        .args(["check", "--runs", "10", "--absolute", "--baseline"])
        .arg(&base)
        .arg("--junit")
        .arg(&xml)
        .arg("--markdown")
        .arg(&md)
        .arg("--json")
        .arg(&json)
        .arg("--")
        .arg(fixture("names"))
        .arg("4")
        .output()
        .unwrap();
    let stdout = text(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}\n{stdout}",
        text(&out.stderr)
    );
    assert_no_controls("check's table", &stdout);

    let xml_bytes = std::fs::read(&xml).unwrap();
    assert_valid_junit(&xml_bytes);
    let xml_text = String::from_utf8(xml_bytes).unwrap();
    assert_no_controls("JUnit", &xml_text);
    assert!(
        xml_text.contains("esc\\u{1b}[31mred\\u{1b}[0m"),
        "{xml_text}"
    );
    assert!(xml_text.contains("rtl\\u{202e}override"), "{xml_text}");

    let md_text = std::fs::read_to_string(&md).unwrap();
    assert_no_controls("markdown", &md_text);
    assert!(!md_text.contains("<script>"), "{md_text}");
    // Every row of a table has as many cell separators as its header (an unescaped `|` or a line
    // break in a name would change that).
    let mut header_cells = None;
    for line in md_text.lines() {
        if !line.starts_with('|') {
            header_cells = None;
            continue;
        }
        let cells = unescaped_pipes(line);
        match header_cells {
            None => header_cells = Some(cells),
            Some(n) => assert_eq!(cells, n, "a broken table row: {line:?}\n{md_text}"),
        }
    }

    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let functions = report["functions"].as_array().unwrap();
    let regressed: Vec<&str> = functions
        .iter()
        .filter(|f| f["verdict"] == "regressed")
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    for name in HOSTILE {
        assert!(
            regressed.contains(&name),
            "{name:?} not regressed: {functions:#?}"
        );
    }

    // The Action's publish step: one annotation per regressed function, each one line, its title
    // property free of `:` and `,`, its message decoding back to the name.
    let out = std::process::Command::new("bash")
        .arg(root().join("scripts/action-publish.sh"))
        .env("NAME", "names")
        .env("DIR", d)
        .env("CODE", "1")
        .env_remove("GITHUB_STEP_SUMMARY")
        .env_remove("GITHUB_OUTPUT")
        .env_remove("ARTIFACT_URL")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert_no_controls("annotations", &err);
    let annotations: Vec<&str> = err.lines().filter(|l| l.starts_with("::error ")).collect();
    assert_eq!(annotations.len(), regressed.len(), "{err}");
    for name in HOSTILE {
        let found = annotations.iter().any(|a| {
            let rest = a.strip_prefix("::error title=").unwrap();
            let (title, message) = rest.split_once("::").unwrap();
            assert!(!title.contains(':') && !title.contains(','), "{a:?}");
            decode_workflow(message).starts_with(&visible(name))
        });
        assert!(found, "no annotation shows {name:?}:\n{err}");
    }
}

/// `|` not preceded by a backslash.
fn unescaped_pipes(line: &str) -> usize {
    let b = line.as_bytes();
    (0..b.len())
        .filter(|&i| b[i] == b'|' && (i == 0 || b[i - 1] != b'\\'))
        .count()
}

/// A workflow command's value decoded (`%25`, `%0D`, `%0A`, `%3A`, `%2C`).
fn decode_workflow(s: &str) -> String {
    s.replace("%0D", "\r")
        .replace("%0A", "\n")
        .replace("%3A", ":")
        .replace("%2C", ",")
        .replace("%25", "%")
}

/// A name as the annotations show it: control characters other than line breaks, and bidirectional
/// controls, as `\u{..}`.
fn visible(name: &str) -> String {
    name.chars()
        .map(|c| {
            if (c.is_control() && c != '\n' && c != '\r') || is_bidi(c) {
                c.escape_unicode().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}
