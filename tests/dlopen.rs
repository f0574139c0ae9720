//! Libraries loaded with dlopen: a `--lib` glob may name a library no process links; when a process
//! loads it, the thread in dlopen is held until its functions are attached, so its constructor and
//! every call are counted, also when it is opened and closed again and again, in every probe interface,
//! with or without following processes.
mod common;
use common::*;

use perfgate::profile::Profile;

fn host() -> String {
    fixture("libplugin.so");
    fixture("plugin_host").to_str().unwrap().to_string()
}

fn untraced(cmd: &[&str]) -> String {
    let out = std::process::Command::new(cmd[0])
        .args(&cmd[1..])
        .output()
        .unwrap();
    assert!(out.status.success());
    text(&out.stdout)
}

fn traced(args: &[&str], cmd: &[&str]) -> (Profile, String) {
    let args: Vec<&str> = [&["--no-calibrate"][..], args].concat();
    let (p, out) = record(&args, cmd);
    let stdout = text(&out.stdout);
    assert!(
        stdout.starts_with(&untraced(cmd)),
        "{args:?}: output differs from the untraced run:\n{stdout}"
    );
    (p, stdout)
}

#[test]
fn a_plugin_opened_and_closed_repeatedly_is_traced_exactly() {
    let exe = host();
    for probes in ["session", "multi", "classic"] {
        for follow in [&[][..], &["--no-follow"][..]] {
            let args = [&["--lib", "libplugin*", "--probes", probes][..], follow].concat();
            let (p, stdout) = traced(&args, &[&exe, "4", "6"]);
            let what = format!("{probes} {follow:?}");
            assert_eq!(calls(&p, "main"), 1, "{what}");
            assert_eq!(calls(&p, "host_round"), 4, "{what}");
            assert_eq!(calls(&p, "plugin_work"), 24, "{what}");
            assert_eq!(calls(&p, "plugin_step"), 24, "{what}");
            // The constructor runs at every load, the first one included: attached before it ran.
            assert_eq!(calls(&p, "plugin_setup"), 4, "{what}");
            assert_eq!(calls(&p, "plugin_load"), 4, "{what}");
            let a = &p.accounting;
            assert_eq!(a.lost.lost_calls(), 0, "{what}");
            assert_eq!(a.lost.holds_failed, 0, "{what}");
            assert_eq!(a.libraries_attached_late.len(), 1, "{what}: {a:?}");
            let late = &a.libraries_attached_late[0];
            assert!(late.path.ends_with("libplugin.so"), "{what}");
            assert_eq!((late.processes, late.functions), (1, 4), "{what}");
            assert!(
                !a.libraries_loaded_later
                    .iter()
                    .any(|l| l.ends_with("libplugin.so")),
                "{what}: traced, so not in the untraced list: {:?}",
                a.libraries_loaded_later
            );
            assert!(
                stdout.contains("attached late, at dlopen:")
                    && stdout.contains("libplugin.so (4 functions, in 1 process)"),
                "{what}: {stdout}"
            );
            // One hold at start-up, one at the first dlopen; a reopen maps the same file, which the
            // kernel probes by itself.
            let procs = a.processes.as_ref().expect("holds are accounted");
            assert_eq!(procs.library_holds, 2, "{what}: {procs:?}");
            assert!(
                !a.warnings.iter().any(|w| w.contains("matched no library")),
                "{what}: {:?}",
                a.warnings
            );
        }
    }
}

#[test]
fn each_process_that_loads_the_plugin_gets_it_attached() {
    let exe = host();
    let line = format!("{exe} 2 3 && {exe} 1 5 && {exe} 3 1");
    let (p, _) = traced(&["--lib", "libplugin*"], &["sh", "-c", &line]);
    assert_eq!(calls(&p, "plugin_work"), 6 + 5 + 3);
    assert_eq!(calls(&p, "plugin_setup"), 2 + 1 + 3);
    assert_eq!(calls(&p, "host_round"), 6);
    assert_eq!(calls(&p, "main"), 3);
    let a = &p.accounting;
    assert_eq!(a.lost.lost_calls(), 0);
    assert_eq!(a.libraries_attached_late.len(), 1);
    assert_eq!(a.libraries_attached_late[0].processes, 3);
}

#[test]
fn without_a_lib_glob_the_plugin_is_reported_not_traced_and_nothing_is_held() {
    let exe = host();
    let (p, stdout) = traced(&[], &[&exe, "2", "2"]);
    assert_eq!(calls(&p, "host_round"), 2);
    assert!(!p.functions.iter().any(|f| f.module == "libplugin.so"));
    let a = &p.accounting;
    assert!(
        a.libraries_loaded_later
            .iter()
            .any(|l| l.ends_with("libplugin.so")),
        "{:?}",
        a.libraries_loaded_later
    );
    assert!(
        stdout.contains("not traced: loaded at run time (dlopen)"),
        "{stdout}"
    );
    assert!(a.libraries_attached_late.is_empty());
    assert_eq!(a.processes.as_ref().map(|p| p.library_holds), Some(0));
}
