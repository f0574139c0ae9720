//! Shared helpers of the integration tests: they drive the real binary and trace for real (root is
//! available on every test machine; see README).
#![allow(dead_code)]
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::{Once, OnceLock};

use assert_cmd::Command;
use perfgate::profile::file::Recording;
use perfgate::profile::{FuncStats, Profile};

static FIXTURES: Once = Once::new();

/// The repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A fixture binary, built on first use.
pub fn fixture(name: &str) -> PathBuf {
    FIXTURES.call_once(|| {
        let st = std::process::Command::new("bash")
            .arg(root().join("fixtures/build.sh"))
            .status()
            .expect("running fixtures/build.sh");
        assert!(st.success(), "fixtures/build.sh failed");
    });
    root().join("fixtures/bin").join(name)
}

/// The perfgate binary, run from the repository root.
pub fn perfgate() -> Command {
    let mut c = Command::cargo_bin("perfgate").expect("perfgate binary");
    c.current_dir(root());
    c.env_remove("SUDO_UID")
        .env_remove("SUDO_GID")
        .env_remove("GATEBENCH_SLOW");
    c
}

/// Output as text.
pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A fresh baseline of fixture `bench` (30 runs, as the sequential rule expects), recorded on first use
/// into a temporary directory that lives as long as the test binary, and shared by its tests. Every test
/// binary has its own copy of this module, hence one benchmark per binary (asked for another, it panics).
pub fn shared_baseline(bench: &str) -> &'static Path {
    static BASELINE: OnceLock<(tempfile::TempDir, PathBuf, String)> = OnceLock::new();
    let (_, path, of) = BASELINE.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(format!("{bench}.toml"));
        let out = perfgate()
            .arg("baseline")
            .arg("-o")
            .arg(&path)
            .args(["--runs", "30", "--"])
            .arg(fixture(bench))
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
        (dir, path, bench.to_string())
    });
    assert_eq!(of, bench, "one shared baseline per test binary");
    path
}

/// Runs `c` (a [`perfgate`] command with its environment set) as `check --baseline BASELINE --json
/// <tmp> EXTRA…`; its output and the JSON report (`Null` when none was written).
pub fn check_json(mut c: Command, baseline: &Path, extra: &[&str]) -> (Output, serde_json::Value) {
    let dir = scratch();
    let json = dir.path().join("c.json");
    c.arg("check")
        .arg("--baseline")
        .arg(baseline)
        .arg("--json")
        .arg(&json)
        .args(extra);
    let out = c.output().unwrap();
    let v = std::fs::read(&json)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or(serde_json::Value::Null);
    (out, v)
}

/// `perfgate record -o OUT`, to which a test adds its options and `-- CMD…`.
pub fn record_to(out: &Path) -> Command {
    let mut c = perfgate();
    c.arg("record").arg("-o").arg(out);
    c
}

/// A fresh temporary directory (removed when dropped): tests never write fixed paths in /tmp.
pub fn scratch() -> tempfile::TempDir {
    tempfile::tempdir().expect("tempdir")
}

/// Runs `perfgate record -o <tmp> ARGS -- CMD…` and returns the saved profile with the output.
pub fn record(args: &[&str], cmd: &[&str]) -> (Profile, Output) {
    let dir = scratch();
    let out_path = dir.path().join("run.data");
    let out = record_to(&out_path)
        .args(args)
        .arg("--")
        .args(cmd)
        .output()
        .expect("running perfgate");
    assert!(
        out.status.success(),
        "perfgate record failed: {}\n{}",
        text(&out.stderr),
        text(&out.stdout)
    );
    let rec = Recording::open(&out_path).expect("reading the recording");
    (rec.profile, out)
}

/// Merged statistics of the function called `name` (demangled), if it was called.
pub fn func<'a>(p: &Profile, merged: &'a [FuncStats], name: &str) -> Option<&'a FuncStats> {
    merged
        .iter()
        .find(|s| p.function(s.func).is_some_and(|f| f.name == name))
}

/// Calls of `name`, 0 if never called; panics if the function was not even traced.
pub fn calls(p: &Profile, name: &str) -> u64 {
    assert!(
        p.functions.iter().any(|f| f.name == name),
        "{name} was not traced; traced: {:?}",
        names(p)
    );
    let merged = p.per_function();
    func(p, &merged, name).map_or(0, |s| s.calls)
}

/// Names of the traced functions.
pub fn names(p: &Profile) -> Vec<String> {
    p.functions.iter().map(|f| f.name.clone()).collect()
}

/// Asserts a perfgate failure: exit 2, one line on stderr starting with `perfgate: error:` and containing
/// `needle`, no panic.
pub fn assert_clean_error(out: &Output, needle: &str) {
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "exit code; stderr: {err}");
    let lines: Vec<&str> = err
        .lines()
        .filter(|l| l.starts_with("perfgate: error:"))
        .collect();
    assert_eq!(lines.len(), 1, "one error line expected: {err}");
    assert!(lines[0].contains(needle), "{needle:?} not in {err:?}");
    assert!(
        !err.contains("panicked") && !err.contains("RUST_BACKTRACE"),
        "{err}"
    );
}

/// A copy of a file into `dir` under `name`.
pub fn copy_to(src: &Path, dir: &Path, name: &str) -> PathBuf {
    let dst = dir.join(name);
    std::fs::copy(src, &dst).expect("copy");
    dst
}

/// The Jenkins JUnit schemas the JUnit report must satisfy (see the comments at the top of each file).
pub const JUNIT_SCHEMAS: [&str; 2] = ["tests/data/jenkins-junit.xsd", "tests/data/junit-10.xsd"];

/// Validates a document with `xmllint --schema` (Debian's libxml2-utils, installed by
/// scripts/setup.sh): Ok, or xmllint's complaint. A missing xmllint fails the test rather than
/// skipping the validation.
pub fn xsd_check(xml: &[u8], schema: &str) -> Result<(), String> {
    let dir = tempfile::tempdir().expect("tempdir");
    let doc = dir.path().join("report.xml");
    std::fs::write(&doc, xml).expect("writing the report");
    let out = std::process::Command::new("xmllint")
        .arg("--noout")
        .arg("--nonet")
        .arg("--schema")
        .arg(root().join(schema))
        .arg(&doc)
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run xmllint ({e}): scripts/setup.sh installs it (libxml2-utils)")
        });
    if out.status.success() {
        Ok(())
    } else {
        Err(text(&out.stderr))
    }
}

/// Panics unless the document is valid against every schema in [`JUNIT_SCHEMAS`].
pub fn assert_valid_junit(xml: &[u8]) {
    for schema in JUNIT_SCHEMAS {
        if let Err(e) = xsd_check(xml, schema) {
            panic!("not valid against {schema}:\n{e}\n{}", text(xml));
        }
    }
}
