//! Bad input: each a one-line error and exit 2, never a panic.
mod common;
use common::*;

fn record(args: &[&str]) -> std::process::Output {
    let dir = scratch();
    record_to(&dir.path().join("errors.data"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn missing_command() {
    assert_clean_error(&record(&[]), "no command given");
}

#[test]
fn command_not_found() {
    assert_clean_error(&record(&["--", "no-such-command-xyz"]), "command not found");
    assert_clean_error(&record(&["--", "./no/such/file"]), "no such file");
}

#[test]
fn not_executable() {
    let dir = tempfile::tempdir().unwrap();
    let copy = copy_to(&fixture("work"), dir.path(), "work");
    std::fs::set_permissions(&copy, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    assert_clean_error(&record(&["--", copy.to_str().unwrap()]), "not executable");
}

#[test]
fn not_an_elf_file() {
    assert_clean_error(
        &record(&["--", fixture("not_elf").to_str().unwrap()]),
        "not an ELF file",
    );
}

#[test]
fn elf_for_another_architecture() {
    assert_clean_error(
        &record(&["--", fixture("work_aarch64").to_str().unwrap()]),
        "ELF for AArch64",
    );
}

#[test]
fn no_function_matched() {
    let w = fixture("work");
    assert_clean_error(
        &record(&["--function", "nomatch*", "--", w.to_str().unwrap()]),
        "no function matched",
    );
}

#[test]
fn a_lib_glob_no_process_loads_is_said_not_refused() {
    // --lib may name a library the program loads with dlopen: unknown before the run, so a warning.
    let w = fixture("work");
    for follow in [&[][..], &["--no-follow"][..]] {
        let out = record(
            &[
                &["--no-calibrate", "--lib", "libnope*"][..],
                follow,
                &["--", w.to_str().unwrap()],
            ]
            .concat(),
        );
        assert!(out.status.success(), "{}", text(&out.stderr));
        assert!(
            text(&out.stdout).contains(
                "warning: --lib \"libnope*\" matched no library any traced process loaded"
            ),
            "{}",
            text(&out.stdout)
        );
    }
}

#[test]
fn unwritable_output_path() {
    let out = perfgate()
        .args(["record", "-o", "/nonexistent-dir/x.data", "--"])
        .arg(fixture("work"))
        .output()
        .unwrap();
    assert_clean_error(&out, "cannot write /nonexistent-dir/x.data");
}

#[test]
fn bad_glob() {
    let w = fixture("work");
    assert_clean_error(
        &record(&["--function", "[", "--", w.to_str().unwrap()]),
        "bad pattern",
    );
}

#[test]
fn report_of_a_file_that_is_not_a_recording() {
    let out = perfgate()
        .args(["report", "-i", "/etc/passwd"])
        .output()
        .unwrap();
    assert_clean_error(&out, "not a perfgate recording");
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("cut.data");
    std::fs::write(&p, b"PERFGATE\x01\x00\x00\x00\xff\xff\x00\x00{").unwrap();
    let out = perfgate().arg("report").arg("-i").arg(&p).output().unwrap();
    assert_clean_error(&out, "truncated recording");
}

#[test]
fn usage_errors_exit_2() {
    let out = perfgate()
        .args(["record", "--no-such-flag"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = perfgate()
        .args(["record", "--timeout", "1e300", "--", "true"])
        .output()
        .unwrap();
    assert_clean_error(
        &out,
        "--timeout 1e300: must be a positive number of seconds",
    );
    let out = perfgate()
        .args(["record", "--timeout", "-1", "--", "true"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}
