//! Probe placement on real, optimised CET code: probes past `endbr64` (or a `test` before a branch) see
//! exactly the calls probes on first bytes see, the program prints the same, and a function whose loop
//! jumps back to its second instruction keeps its probe on the first byte.
mod common;
use common::*;

use std::collections::BTreeMap;

fn counts(p: &perfgate::profile::Profile) -> BTreeMap<String, u64> {
    let merged = p.per_function();
    p.functions
        .iter()
        .map(|f| {
            let n = func(p, &merged, &f.name).map_or(0, |s| s.calls);
            (f.name.clone(), n)
        })
        .collect()
}

#[test]
fn probes_past_cheap_prefixes_count_exactly_what_first_byte_probes_count() {
    for bin in ["cet", "cet_fp"] {
        let exe = fixture(bin);
        let exe = exe.to_str().unwrap();
        let untraced = std::process::Command::new(exe).arg("3").output().unwrap();
        for mode in ["session", "multi", "classic"] {
            let (placed, out) = record(&["--no-calibrate", "--probes", mode], &[exe, "3"]);
            assert_eq!(
                out.stdout[..untraced.stdout.len()],
                untraced.stdout[..],
                "{bin} {mode}"
            );
            let (first, _) = record(
                &["--no-calibrate", "--probes", mode, "--no-placement"],
                &[exe, "3"],
            );
            assert!(first.functions.iter().all(|f| f.probe_offset == 0));
            let moved: Vec<&str> = placed
                .functions
                .iter()
                .filter(|f| f.probe_offset > 0)
                .map(|f| f.name.as_str())
                .collect();
            assert!(moved.len() >= 3, "{bin} {mode}: moved {moved:?}");
            assert!(moved.contains(&"list_sum"), "{moved:?}");
            assert_eq!(counts(&placed), counts(&first), "{bin} {mode}");
            assert_eq!(calls(&placed, "list_sum"), 6);
            assert_eq!(calls(&placed, "twice_mix"), 3);
            assert_eq!(calls(&placed, "mix"), 6);
            assert_eq!(calls(&placed, "pick"), 24);
            assert_eq!(placed.accounting.lost.lost_calls(), 0);
            // Every moved probe is cheaper than the first byte would have been.
            for f in placed.functions.iter().filter(|f| f.probe_offset > 0) {
                assert!(f.probe < f.entry_probe.unwrap(), "{}", f.name);
            }
        }
    }
}

#[test]
fn a_loop_back_to_the_second_instruction_keeps_the_probe_on_the_first_byte() {
    let (p, _) = record(
        &["--no-calibrate"],
        &[fixture("loop_entry").to_str().unwrap()],
    );
    let f = p.functions.iter().find(|f| f.name == "spin_down").unwrap();
    assert_eq!(f.probe_offset, 0, "a probe at +4 would fire once per turn");
    assert_eq!(calls(&p, "spin_down"), 1);
    assert_eq!(p.exit.code, Some(0));
}

#[test]
fn verbose_and_the_recording_say_where_each_probe_is() {
    let (p, out) = record(
        &["--no-calibrate", "--verbose"],
        &[fixture("cet").to_str().unwrap(), "1"],
    );
    let stdout = text(&out.stdout);
    assert!(stdout.contains("placement moved"), "{stdout}");
    let ls = p.functions.iter().find(|f| f.name == "list_sum").unwrap();
    assert!(
        stdout.contains(&format!("probe at +{} (", ls.probe_offset)),
        "{stdout}"
    );
}
