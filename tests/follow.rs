//! Following the processes a benchmark starts: fork without exec, fork+exec, vfork+exec, posix_spawn, a
//! daemon that outlives the command, exec from a thread, a grandchild, a shell wrapper, a script, `make`
//! and `cargo bench`. Every traced run prints exactly what the untraced run prints, and every call
//! count is exact; `--no-follow` traces the command's own process only.
mod common;
use common::*;

use perfgate::profile::Profile;

fn procs() -> String {
    fixture("procs").to_str().unwrap().to_string()
}

/// Records `cmd` with `args`; asserts the benchmark printed exactly what it prints untraced (its output
/// comes first on stdout, perfgate's table after it) and exited 0.
fn traced_like_untraced(args: &[&str], cmd: &[&str]) -> (Profile, String) {
    let untraced = std::process::Command::new(cmd[0])
        .args(&cmd[1..])
        .output()
        .unwrap();
    assert!(untraced.status.success(), "{cmd:?} fails untraced");
    let args: Vec<&str> = [&["--no-calibrate", "--limit", "0"][..], args].concat();
    let (p, out) = record(&args, cmd);
    let stdout = text(&out.stdout);
    assert!(
        stdout.starts_with(&text(&untraced.stdout)),
        "{cmd:?} {args:?}: traced output differs:\n{stdout}\nuntraced:\n{}",
        text(&untraced.stdout)
    );
    assert_eq!(p.exit.code, Some(0), "{cmd:?}");
    (p, stdout)
}

/// Calls of every traced function of the `procs` fixture, in a fixed order.
fn counts(p: &Profile) -> Vec<(String, u64)> {
    [
        "main",
        "spawn_child",
        "wait_all",
        "parent",
        "parent_work",
        "child_work",
        "daemon_work",
        "leaf",
        "leaf_work",
    ]
    .iter()
    .map(|f| (f.to_string(), calls(p, f)))
    .collect()
}

fn expect(pairs: &[(&str, u64)]) -> Vec<(String, u64)> {
    let mut v: Vec<(String, u64)> = [
        "main",
        "spawn_child",
        "wait_all",
        "parent",
        "parent_work",
        "child_work",
        "daemon_work",
        "leaf",
        "leaf_work",
    ]
    .iter()
    .map(|f| (f.to_string(), 0))
    .collect();
    for (name, n) in pairs {
        v.iter_mut().find(|(f, _)| f == name).unwrap().1 = *n;
    }
    v
}

/// The expected counts of each way of starting a process, and the processes followed.
/// A mode of the fixture, the calls it makes, the processes it runs.
type Case = (&'static str, Vec<(String, u64)>, u64);

fn cases() -> Vec<Case> {
    let parent = [("wait_all", 1), ("parent", 1), ("parent_work", 3)];
    let with = |extra: &[(&str, u64)]| expect(&[&parent[..], extra].concat());
    vec![
        // spawn_child returns in both processes; the child's return is of a call entered in the
        // parent: counted once, in the parent.
        (
            "fork",
            with(&[("main", 1), ("spawn_child", 1), ("child_work", 4)]),
            2,
        ),
        (
            "forkexec",
            with(&[
                ("main", 2),
                ("spawn_child", 1),
                ("leaf", 1),
                ("leaf_work", 5),
            ]),
            2,
        ),
        (
            "vforkexec",
            with(&[("main", 2), ("leaf", 1), ("leaf_work", 6)]),
            2,
        ),
        (
            "spawn",
            with(&[("main", 2), ("leaf", 1), ("leaf_work", 7)]),
            2,
        ),
        // The daemon works after the command exited: the run lasts until it is done.
        (
            "daemon",
            with(&[("main", 1), ("spawn_child", 1), ("daemon_work", 8)]),
            3,
        ),
        // The intermediate child also waits for its child: wait_all twice.
        (
            "grandchild",
            expect(&[
                ("main", 2),
                ("spawn_child", 1),
                ("wait_all", 2),
                ("parent", 1),
                ("parent_work", 3),
                ("leaf", 1),
                ("leaf_work", 2),
            ]),
            3,
        ),
        // The old image's main never returns; the new image's main is the one call of main.
        (
            "threadexec",
            expect(&[("main", 1), ("leaf", 1), ("leaf_work", 9)]),
            1,
        ),
    ]
}

#[test]
fn every_way_of_starting_a_process_is_followed_with_exact_counts() {
    let exe = procs();
    for (mode, want, followed) in cases() {
        let (p, stdout) = traced_like_untraced(&[], &[&exe, mode]);
        assert_eq!(counts(&p), want, "{mode}");
        assert_eq!(p.accounting.lost.lost_calls(), 0, "{mode}");
        // uprobe.session calls a return handler only for the links that saw the entry.
        assert_eq!(p.accounting.lost.returned_before_attach, 0, "{mode}");
        let procs = p
            .accounting
            .processes
            .as_ref()
            .expect("processes accounting");
        assert_eq!(procs.followed, followed, "{mode}: {procs:?}");
        assert!(
            procs.not_traced.is_empty(),
            "{mode}: {:?}",
            procs.not_traced
        );
        if followed > 1 {
            assert!(
                stdout.contains(&format!("across {followed} processes")),
                "{mode}: {stdout}"
            );
        }
        match mode {
            "vforkexec" | "spawn" => assert_eq!(procs.vforks, 1, "{mode}"),
            "fork" | "forkexec" => assert_eq!(procs.forks, 1, "{mode}"),
            "daemon" | "grandchild" => assert_eq!(procs.forks, 2, "{mode}"),
            _ => {}
        }
        if mode == "threadexec" {
            // thread_exec and exec_leaf were running when their thread exec'd.
            assert_eq!(p.accounting.lost.open_at_exec, 2, "{mode}");
        }
    }
}

#[test]
fn every_probe_interface_follows_forks_execs_and_daemons() {
    let exe = procs();
    for probes in ["multi", "classic"] {
        for (mode, want, _) in cases()
            .into_iter()
            .filter(|(m, _, _)| ["fork", "forkexec", "spawn", "daemon"].contains(m))
        {
            let (p, _) = traced_like_untraced(&["--probes", probes], &[&exe, mode]);
            assert_eq!(counts(&p), want, "{probes} {mode}");
            assert_eq!(p.accounting.lost.lost_calls(), 0, "{probes} {mode}");
            assert_eq!(p.accounting.probe_mode.as_deref(), Some(probes));
            // Return probes of these interfaces fire for every link of the function, also for a
            // child's, whose calls entered in the parent then return in the child: spawn_child.
            let inherited = u64::from(mode != "spawn");
            assert_eq!(
                p.accounting.lost.returned_before_attach, inherited,
                "{probes} {mode}"
            );
        }
    }
}

#[test]
fn no_follow_traces_the_command_alone_as_before() {
    let exe = procs();
    let (p, _) = traced_like_untraced(&["--no-follow"], &[&exe, "forkexec"]);
    assert_eq!(
        counts(&p),
        expect(&[
            ("main", 1),
            ("spawn_child", 1),
            ("wait_all", 1),
            ("parent", 1),
            ("parent_work", 3),
        ])
    );
    assert!(p.accounting.processes.is_none());
}

#[test]
fn a_shell_wrapper_a_script_and_make_run_the_benchmark_traced() {
    let exe = procs();
    let dir = scratch();
    // sh -c './a && ./b'
    let line = format!("{exe} leaf 3 && {exe} leaf 4");
    let (p, _) = traced_like_untraced(&[], &["sh", "-c", &line]);
    assert_eq!(calls(&p, "leaf_work"), 7);
    assert_eq!(calls(&p, "main"), 2);
    let procs = p.accounting.processes.as_ref().unwrap();
    assert!(procs.execs >= 3, "{procs:?}");
    assert!(
        procs
            .binaries
            .iter()
            .any(|b| b.path.ends_with("dash") || b.path.ends_with("sh")),
        "{procs:?}"
    );
    // A script as the command.
    let script = dir.path().join("bench.sh");
    std::fs::write(&script, format!("#!/bin/sh\n{exe} leaf 5\n{exe} fork\n")).unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let (p, _) = traced_like_untraced(&[], &[script.to_str().unwrap()]);
    assert_eq!(calls(&p, "leaf_work"), 5);
    assert_eq!(calls(&p, "child_work"), 4);
    assert_eq!(calls(&p, "parent_work"), 3);
    // ... which --no-follow refuses, saying why.
    let out = record_to(&dir.path().join("x.data"))
        .args(["--no-follow", "--"])
        .arg(&script)
        .output()
        .unwrap();
    assert_clean_error(&out, "a script; with --no-follow");
    // make bench
    std::fs::write(
        dir.path().join("Makefile"),
        format!("bench:\n\t{exe} leaf 4\n\t{exe} spawn\n"),
    )
    .unwrap();
    let (p, _) = traced_like_untraced(
        &["--function", "leaf*"],
        &["make", "-s", "-C", dir.path().to_str().unwrap(), "bench"],
    );
    assert_eq!(calls(&p, "leaf_work"), 4 + 7);
    assert_eq!(calls(&p, "leaf"), 2);
    let procs = p.accounting.processes.as_ref().unwrap();
    assert!(
        procs
            .binaries
            .iter()
            .any(|b| b.path.ends_with("make") && b.functions == 0),
        "make's own functions are not selected by --function leaf*: {procs:?}"
    );
}

#[test]
fn cargo_bench_runs_the_bench_traced() {
    let dir = scratch();
    let root = dir.path();
    std::fs::create_dir_all(root.join("benches")).unwrap();
    std::fs::create_dir_all(root.join("src")).unwrap();
    std::fs::write(
        root.join("Cargo.toml"),
        "[package]\nname = \"followbench\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[[bench]]\nname = \"spin\"\nharness = false\n",
    )
    .unwrap();
    std::fs::write(root.join("src/lib.rs"), "").unwrap();
    std::fs::write(
        root.join("benches/spin.rs"),
        "#[inline(never)]\n#[no_mangle]\npub extern \"C\" fn fb_step(i: u64) -> u64 { std::hint::black_box(i * 3 + 1) }\n\
         fn main() { let mut s = 0u64; for i in 0..100 { s = s.wrapping_add(fb_step(i)); } println!(\"spin s={s}\"); }\n",
    )
    .unwrap();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let build = std::process::Command::new(&cargo)
        .args(["bench", "--offline", "--bench", "spin", "--no-run"])
        .current_dir(root)
        .env("CARGO_TARGET_DIR", root.join("target"))
        .output()
        .unwrap();
    assert!(build.status.success(), "{}", text(&build.stderr));
    let manifest = root.join("Cargo.toml");
    let out = record_to(&root.join("run.data"))
        .args(["--no-calibrate", "--function", "fb_*", "--"])
        .arg(&cargo)
        .args(["bench", "--offline", "--bench", "spin", "--manifest-path"])
        .arg(&manifest)
        .env("CARGO_TARGET_DIR", root.join("target"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).starts_with("spin s=14950\n"),
        "{}",
        text(&out.stdout)
    );
    let p = perfgate::profile::file::Recording::open(&root.join("run.data"))
        .unwrap()
        .profile;
    assert_eq!(calls(&p, "fb_step"), 100);
    assert!(p.accounting.processes.as_ref().unwrap().execs >= 2);
    // The bench is Rust in a followed process: traced, with the one thing that differs said.
    assert!(
        p.accounting
            .warnings
            .iter()
            .any(|w| w.starts_with("spin-") && w.contains("a panic")),
        "{:?}",
        p.accounting.warnings
    );
}

#[test]
fn a_process_left_running_is_waited_for_and_ended_by_the_timeout() {
    let dir = scratch();
    let spin = copy_to(&fixture("spin"), dir.path(), "spin");
    let line = format!("{} 300 &", spin.display());
    let t = std::time::Instant::now();
    let out = record_to(&dir.path().join("t.data"))
        .args(["--no-calibrate", "--timeout", "1", "--", "sh", "-c", &line])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(t.elapsed() >= std::time::Duration::from_millis(900));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("killed by the timeout"), "{stdout}");
    assert!(
        stdout.contains("were still running at the end and were killed"),
        "{stdout}"
    );
    let p = perfgate::profile::file::Recording::open(&dir.path().join("t.data"))
        .unwrap()
        .profile;
    assert!(calls(&p, "tick") > 0);
    // Nothing of it is left.
    for _ in 0..100 {
        let left = std::fs::read_dir("/proc")
            .unwrap()
            .flatten()
            .any(|e| std::fs::read_link(e.path().join("exe")).is_ok_and(|x| x == spin));
        if !left {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    panic!("the spinning process outlived perfgate");
}

#[test]
fn baseline_and_check_gate_what_a_shell_wrapper_runs() {
    let exe = procs();
    let dir = scratch();
    let base = dir.path().join("wrapped.toml");
    let line = format!("{exe} leaf 3 && {exe} fork");
    let out = perfgate()
        .args(["baseline", "--runs", "3", "-o"])
        .arg(&base)
        .args(["--", "sh", "-c", &line])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let toml = std::fs::read_to_string(&base).unwrap();
    assert!(
        toml.contains("leaf_work") && toml.contains("child_work"),
        "{toml}"
    );
    // Same command: the call counts are exact, so --gate-calls passes (timing noise cannot fail it with
    // a threshold this wide).
    let check = |cmd: &[&str]| {
        perfgate()
            .args([
                "check",
                "--runs",
                "3",
                "--max-runs",
                "3",
                "--threshold",
                "900%",
                "--gate-calls",
                "-b",
            ])
            .arg(&base)
            .args(cmd)
            .output()
            .unwrap()
    };
    let out = check(&[]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    // A child that calls leaf_work once more is a change of the calls, caught through the wrapper.
    let changed = format!("{exe} leaf 4 && {exe} fork");
    let out = check(&["--", "sh", "-c", &changed]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert!(
        text(&out.stdout).contains("leaf_work"),
        "{}",
        text(&out.stdout)
    );
}

#[test]
fn a_followed_cpp_program_is_not_traced_so_its_exceptions_behave_as_untraced() {
    // The C++ fixture throws through its own functions; perfgate restores return addresses for the
    // unwinder only in the command's own process, so under a shell it is left untraced (counted and
    // said), and the C program next to it is traced exactly.
    let script = format!(
        "{} across 3; {} 10 1",
        fixture("exceptions").display(),
        fixture("fib").display()
    );
    let (p, stdout) = traced_like_untraced(&[], &["sh", "-c", &script]);
    // fib(10) once: 2 * F(11) - 1 = 177 calls.
    assert_eq!(calls(&p, "fib"), 177);
    assert!(stdout.contains("across 3: 1003"), "{stdout}");
    assert!(!p.functions.iter().any(|f| f.name.contains("thrower")));
    let procs = p.accounting.processes.as_ref().unwrap();
    assert!(
        procs
            .not_traced
            .iter()
            .any(|n| n.reason.contains("processes running exceptions (C++ code")),
        "{:?}",
        procs.not_traced
    );
    assert!(
        stdout.contains("processes running exceptions (C++ code"),
        "the accounting says it: {stdout}"
    );
}
