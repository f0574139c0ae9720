//! Files and identities: under sudo every file perfgate writes belongs to the invoking user; a full or
//! read-only output directory gives a clear error and leaves an existing baseline byte for byte.
mod common;
use common::*;

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

const USER: &str = "65534";

fn owner(p: &Path) -> (u32, u32) {
    let m = std::fs::metadata(p).unwrap();
    (m.uid(), m.gid())
}

fn as_sudo(c: &mut assert_cmd::Command) -> &mut assert_cmd::Command {
    c.env("SUDO_UID", USER).env("SUDO_GID", USER)
}

#[test]
fn under_sudo_every_file_perfgate_writes_belongs_to_the_invoking_user() {
    let dir = scratch();
    // The user must be able to enter the directory for the benchmark (it runs as the user).
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o777),
    )
    .unwrap();
    let work = fixture("work");
    let data = dir.path().join("run.data");
    let out = as_sudo(&mut record_to(&data))
        .args(["--no-calibrate", "--"])
        .arg(&work)
        .arg("1")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(owner(&data), (65534, 65534));

    let base = dir.path().join("b.toml");
    let out = as_sudo(&mut perfgate())
        .args(["baseline", "--runs", "3", "-o"])
        .arg(&base)
        .arg("--")
        .arg(&work)
        .arg("1")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(owner(&base), (65534, 65534));

    let reports: Vec<PathBuf> = ["perf.xml", "perf.md", "perf.json"]
        .iter()
        .map(|n| dir.path().join(n))
        .collect();
    let out = as_sudo(&mut perfgate())
        .args(["check", "--update", "--runs", "3", "--baseline"])
        .arg(&base)
        .arg("--junit")
        .arg(&reports[0])
        .arg("--markdown")
        .arg(&reports[1])
        .arg("--json")
        .arg(&reports[2])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        owner(&base),
        (65534, 65534),
        "check --update keeps it the user's"
    );
    for r in &reports {
        assert_eq!(owner(r), (65534, 65534), "{}", r.display());
    }
    // Without sudo, files are perfgate's own (root's here), as for any program.
    let mine = dir.path().join("mine.data");
    let out = record_to(&mine)
        .args(["--no-calibrate", "--"])
        .arg(&work)
        .arg("1")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(owner(&mine).0, perfgate::sys::euid());
}

/// A small tmpfs mounted for one test, unmounted when dropped.
struct Tmpfs(tempfile::TempDir);

impl Tmpfs {
    fn new(size: &str) -> Tmpfs {
        let dir = scratch();
        let st = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .unwrap();
        assert!(st.success(), "mounting a tmpfs (tests run as root)");
        Tmpfs(dir)
    }

    fn path(&self) -> &Path {
        self.0.path()
    }

    fn remount(&self, opts: &str) {
        let st = Command::new("mount")
            .args(["-o", &format!("remount,{opts}")])
            .arg(self.path())
            .status()
            .unwrap();
        assert!(st.success());
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.0.path()).status();
    }
}

#[test]
fn a_full_or_read_only_directory_is_a_clear_error_and_the_baseline_stays_intact() {
    let fs = Tmpfs::new("256k");
    let work = fixture("work");
    let base = fs.path().join("b.toml");
    let out = perfgate()
        .args(["baseline", "--runs", "3", "-o"])
        .arg(&base)
        .arg("--")
        .arg(&work)
        .arg("1")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let before = std::fs::read(&base).unwrap();

    // Fill the rest of the file system.
    let filler = fs.path().join("filler");
    let _ = Command::new("dd")
        .args(["if=/dev/zero", "bs=4096"])
        .arg(format!("of={}", filler.display()))
        .stderr(std::process::Stdio::null())
        .status();
    let out = perfgate()
        .args(["check", "--update", "--runs", "3", "--baseline"])
        .arg(&base)
        .output()
        .unwrap();
    assert_clean_error(&out, "cannot write");
    assert_eq!(std::fs::read(&base).unwrap(), before, "byte for byte");
    let leftovers: Vec<_> = std::fs::read_dir(fs.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .filter(|n| n.to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
    std::fs::remove_file(&filler).unwrap();

    fs.remount("ro");
    let out = perfgate()
        .args(["check", "--update", "--runs", "3", "--baseline"])
        .arg(&base)
        .output()
        .unwrap();
    assert_clean_error(&out, "cannot write");
    assert_eq!(std::fs::read(&base).unwrap(), before);
    // A recording into a read-only directory fails before the benchmark runs.
    let out = record_to(&fs.path().join("x.data"))
        .args(["--no-calibrate", "--"])
        .arg(&work)
        .arg("1")
        .output()
        .unwrap();
    assert_clean_error(&out, "cannot write");
    assert!(!text(&out.stdout).contains("TOTAL TIME"));
    fs.remount("rw");
}

#[test]
fn an_incomplete_sudo_identity_is_refused_unless_run_as_root() {
    let work = fixture("work");
    let dir = scratch();
    for (uid, gid, needle) in [
        (Some("1000"), None, "SUDO_GID is not set"),
        (Some("1000"), Some("x"), "SUDO_GID is \"x\""),
        (
            Some("abc"),
            Some("1000"),
            "SUDO_UID=\"abc\" is not a user id",
        ),
        (Some("1000"), Some("0"), "SUDO_GID=0 for user 1000"),
    ] {
        let mut c = record_to(&dir.path().join("x.data"));
        c.env_remove("SUDO_GID");
        if let Some(u) = uid {
            c.env("SUDO_UID", u);
        }
        if let Some(g) = gid {
            c.env("SUDO_GID", g);
        }
        let out = c
            .args(["--no-calibrate", "--"])
            .arg(&work)
            .arg("1")
            .output()
            .unwrap();
        assert_clean_error(&out, needle);
        let mut c = record_to(&dir.path().join("x.data"));
        c.env_remove("SUDO_GID");
        if let Some(u) = uid {
            c.env("SUDO_UID", u);
        }
        if let Some(g) = gid {
            c.env("SUDO_GID", g);
        }
        let out = c
            .args(["--no-calibrate", "--run-as-root", "--"])
            .arg(&work)
            .arg("1")
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
    }
}
