//! The gate on a real benchmark: A/A passes, a 25% slowdown of one function fails naming exactly it,
//! reports are written, and bad input is a clean error.
mod common;
use common::*;

use perfgate::gate::baseline::Baseline;

/// The baseline of gatebench shared by the tests of this file.
fn baseline() -> &'static std::path::Path {
    shared_baseline("gatebench")
}

/// `perfgate check` against the shared baseline, gatebench slowed as `slow` says; its output and JSON.
fn check(extra: &[&str], slow: Option<&str>) -> (std::process::Output, serde_json::Value) {
    let mut c = perfgate();
    if let Some(s) = slow {
        c.env("GATEBENCH_SLOW", s);
    }
    check_json(c, baseline(), extra)
}

fn failing(v: &serde_json::Value) -> Vec<String> {
    v["functions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| matches!(f["verdict"].as_str(), Some("regressed" | "calls-changed")))
        .map(|f| f["name"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn baseline_file_has_what_it_promises() {
    let b = Baseline::read(baseline()).unwrap();
    assert_eq!(b.runs, 30);
    assert!(b.command[0].ends_with("fixtures/bin/gatebench"));
    assert!(b.build_id.is_some());
    assert!(!b.machine.cpu_model.is_empty() && b.machine.cores > 0);
    let names: Vec<&str> = b.functions.iter().map(|f| f.name.as_str()).collect();
    for f in [
        "parse_input",
        "hash_block",
        "sort_items",
        "compress_chunk",
        "checksum",
    ] {
        assert!(names.contains(&f), "{f} in {names:?}");
        let bf = b.functions.iter().find(|x| x.name == f).unwrap();
        assert_eq!(bf.calls, vec![200; 30]);
    }
    // Stable ordering: sorted by module then symbol.
    let mut sorted = b.functions.clone();
    sorted.sort_by(|a, b| (&a.module, &a.symbol).cmp(&(&b.module, &b.symbol)));
    assert_eq!(sorted, b.functions);
}

#[test]
fn a_a_check_passes() {
    // A symlink planted where a report goes is replaced, never written through.
    let dir = tempfile::tempdir().unwrap();
    let victim = dir.path().join("victim");
    std::fs::write(&victim, "precious").unwrap();
    let md = dir.path().join("perf.md");
    std::os::unix::fs::symlink(&victim, &md).unwrap();
    let (out, v) = check(&["--markdown", md.to_str().unwrap()], None);
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
    assert!(!std::fs::symlink_metadata(&md)
        .unwrap()
        .file_type()
        .is_symlink());
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert!(failing(&v).is_empty());
    // Unchanged, or (a busy machine within the run cap) undecided: neither fails.
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("PASS: no regression in")
            || stdout.contains("INCONCLUSIVE: no regression found in"),
        "{stdout}"
    );
}

#[test]
fn a_25_percent_regression_fails_naming_exactly_that_function() {
    let dir = tempfile::tempdir().unwrap();
    let (xml, md) = (dir.path().join("perf.xml"), dir.path().join("perf.md"));
    let (out, v) = check(
        &[
            "--junit",
            xml.to_str().unwrap(),
            "--markdown",
            md.to_str().unwrap(),
        ],
        Some("hash_block:25"),
    );
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert_eq!(failing(&v), ["hash_block"]);
    let hb = v["functions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "hash_block")
        .unwrap();
    let ratio = hb["ratio"].as_f64().unwrap();
    assert!((1.18..1.32).contains(&ratio), "ratio {ratio}");
    assert!(hb["ratio_low"].as_f64().unwrap() > 1.05);
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("FAIL: 1 function regressed: hash_block"),
        "{stdout}"
    );
    let md = std::fs::read_to_string(md).unwrap();
    assert!(
        md.starts_with("❌ **gatebench**: <code>hash\\_block</code> +"),
        "{md}"
    );
    assert!(md.lines().next().unwrap().contains("(1 of "), "{md}");
    let regressions = md.split("<details>").next().unwrap();
    assert!(regressions.contains("hash\\_block"), "{md}");
    let xml = std::fs::read_to_string(xml).unwrap();
    assert_valid_junit(xml.as_bytes());
    assert_eq!(xml.matches("<failure").count(), 1, "{xml}");
    assert!(xml.contains("name=\"hash_block\""));
    assert_eq!(
        xml.matches("<testcase").count(),
        v["functions"].as_array().unwrap().len()
    );
}

#[test]
fn update_rewrites_the_baseline_atomically_keeping_overrides() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("b.toml");
    let text_before = std::fs::read_to_string(baseline()).unwrap();
    // A per-function override that --update must keep.
    let with_override = text_before.replacen(
        "symbol = \"checksum\"\n",
        "symbol = \"checksum\"\nthreshold = 0.2\n",
        1,
    );
    std::fs::write(&path, &with_override).unwrap();
    let out = perfgate()
        .arg("check")
        .arg("--baseline")
        .arg(&path)
        .args(["--runs", "5", "--max-runs", "5", "--update"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let b = Baseline::read(&path).unwrap();
    assert_eq!(b.runs, 5);
    assert_eq!(
        b.functions
            .iter()
            .find(|f| f.name == "checksum")
            .unwrap()
            .threshold,
        Some(0.2)
    );
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .collect();
    assert_eq!(leftovers.len(), 1, "no temporary file left");
}

#[test]
fn a_baseline_from_another_machine_is_flagged() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("b.toml");
    let t = std::fs::read_to_string(baseline()).unwrap();
    let t = t
        .lines()
        .map(|l| {
            if l.starts_with("cpu_model") {
                "cpu_model = \"Some Other CPU\"".to_string()
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(&path, t).unwrap();
    let md = dir.path().join("m.md");
    let out = perfgate()
        .arg("check")
        .arg("--baseline")
        .arg(&path)
        .arg("--markdown")
        .arg(&md)
        .output()
        .unwrap();
    let stdout = text(&out.stdout);
    assert!(
        stdout.starts_with("WARNING: the baseline was measured on another machine"),
        "{stdout}"
    );
    // Normalisation is on by default; the report recommends the comparison that survives any machine.
    assert!(stdout.contains("perfgate check --against"), "{stdout}");
    assert!(std::fs::read_to_string(&md)
        .unwrap()
        .contains("Baseline from another machine"));
    assert_eq!(out.status.code(), Some(0), "{stdout}");
}

#[test]
fn bad_baselines_and_failing_benchmarks_are_clean_errors() {
    let dir = tempfile::tempdir().unwrap();
    let run = |p: &std::path::Path, extra: &[&str]| {
        perfgate()
            .arg("check")
            .arg("--baseline")
            .arg(p)
            .args(extra)
            .output()
            .unwrap()
    };
    // Missing.
    assert_clean_error(
        &run(&dir.path().join("none.toml"), &[]),
        "cannot read baseline",
    );
    // Malformed: names the file and the line.
    let bad = dir.path().join("bad.toml");
    let good = std::fs::read_to_string(baseline()).unwrap();
    std::fs::write(&bad, good.replacen("runs = 30", "runs = [", 1)).unwrap();
    let out = run(&bad, &[]);
    assert_clean_error(&out, "bad.toml");
    assert!(text(&out.stderr).contains("line "), "{}", text(&out.stderr));
    // Truncated.
    std::fs::write(&bad, &good[..good.len() / 3]).unwrap();
    assert_clean_error(&run(&bad, &[]), "bad.toml");
    // The stored command no longer exists.
    std::fs::write(
        &bad,
        good.replacen("fixtures/bin/gatebench", "fixtures/bin/gone", 1),
    )
    .unwrap();
    assert_clean_error(&run(&bad, &[]), "cannot be traced");
    // --runs 0.
    assert_clean_error(&run(baseline(), &["--runs", "0"]), "runs = 0");
    // No function in common.
    let w = fixture("work");
    assert_clean_error(
        &run(baseline(), &["--", w.to_str().unwrap(), "10"]),
        "no function in common",
    );
    // The benchmark fails during the check: an error, not a regression.
    let out = perfgate()
        .env("GATEBENCH_SLOW", "bogus")
        .arg("check")
        .arg("--baseline")
        .arg(baseline())
        .output()
        .unwrap();
    assert_clean_error(&out, "not a regression");
    // A baseline written by a newer perfgate.
    std::fs::write(&bad, good.replacen("schema = 1", "schema = 9", 1)).unwrap();
    assert_clean_error(&run(&bad, &[]), "newer perfgate");
}

#[test]
fn the_github_action_step_publishes_summary_annotations_and_outputs() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new("bash")
        .arg(root().join("scripts/action-check.sh"))
        .current_dir(root())
        .env("RUNNER_TEMP", dir.path())
        .env("GITHUB_STEP_SUMMARY", dir.path().join("summary.md"))
        .env("GITHUB_OUTPUT", dir.path().join("outputs.txt"))
        .env("PERFGATE", assert_cmd::cargo::cargo_bin("perfgate"))
        .env("BASELINE", baseline())
        .env("COMMAND", "")
        .env("THRESHOLD", "")
        .env("MAX_RUNS", "10")
        .env("EXTRA", "")
        .env("GATEBENCH_SLOW", "hash_block:25")
        .env_remove("SUDO_UID")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("::error title=perfgate%3A hash_block regressed::hash_block (gatebench) +"),
        "{stderr}"
    );
    assert_eq!(stderr.matches("::error").count(), 1);
    let outputs = std::fs::read_to_string(dir.path().join("outputs.txt")).unwrap();
    assert!(
        outputs.contains("verdict=fail\n") && outputs.contains("regressions=1\n"),
        "{outputs}"
    );
    let summary = std::fs::read_to_string(dir.path().join("summary.md")).unwrap();
    assert!(
        summary.contains("❌ **gatebench**: <code>hash\\_block</code> +"),
        "{summary}"
    );
}
