//! The added cost of one traced call, per kind of instruction at the probe, measured by the fixture's
//! own loop timing (so attach and detach are excluded).
use anyhow::{bail, Context, Result};

use super::{argv, fine, fixture, median, only, ratio, table, traced, untraced, REPEATS};
use crate::cli::BenchArgs;
use crate::cmd::status;
use crate::files::PrivateDir;
use crate::report::units::{count, duration};
use crate::session::Target;

fn ns_per_call(stdout: &str) -> Result<f64> {
    stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("ns_per_call="))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|v| v.is_finite())
        .with_context(|| {
            format!(
                "the entry fixture printed no `ns_per_call=<float>` line: {:?}",
                stdout.trim()
            )
        })
}

pub(super) fn run(a: &BenchArgs, scratch: &PrivateDir) -> Result<String> {
    let program = fixture(a, "entry")?;
    let stdout = scratch.file("entry.out");
    // (mode, first instruction, calls, DESIGN.md's entry + return figure in ns)
    let modes: [(&str, &str, u64, f64); 3] = [
        ("emulated", "push %rbp", 1_000_000, 800.0),
        ("nop5", "nopl 0x0(%rax,%rax,1)", 1_000_000, 540.0),
        ("sstep", "mov %edi,%eax", 50_000, 18_000.0),
    ];
    let mut rows = Vec::new();
    let mut notes = Vec::new();
    for (mode, insn, calls, design) in modes {
        let calls_s = calls.to_string();
        let args = [mode, calls_s.as_str()];
        let mut plain = Vec::new();
        for i in 1..=REPEATS {
            status(&format!(
                "bench overhead: entry {mode} {calls} untraced, run {i}/{REPEATS}"
            ));
            plain.push(ns_per_call(&untraced(&program, &args)?.0)?);
        }
        let func = format!("f_{mode}");
        let target = Target::new(&argv(&program, &args), &only(&[&func]))?;
        let Some(info) = target.plan.functions.iter().find(|f| f.name == func) else {
            bail!("{func} is not in the probe plan of {}", program.display());
        };
        let kind = info.probe;
        let mut with = Vec::new();
        let mut counted_ok = true;
        for i in 1..=REPEATS {
            status(&format!(
                "bench overhead: entry {mode} {calls} traced, run {i}/{REPEATS}"
            ));
            let p = traced(&target, false, &stdout, None)?;
            let text = std::fs::read_to_string(&stdout)
                .with_context(|| format!("cannot read {}", stdout.display()))?;
            with.push(ns_per_call(&text)?);
            let seen: u64 = p.per_function().iter().map(|s| s.calls).sum();
            counted_ok &= seen == calls;
        }
        let (u, t) = (median(&plain), median(&with));
        let added = t - u;
        rows.push(vec![
            format!("{func} ({insn})"),
            kind.describe().to_string(),
            count(calls),
            fine(u),
            fine(t),
            fine(added),
            ratio(t / u),
            if counted_ok {
                "all".into()
            } else {
                "MISMATCH".into()
            },
        ]);
        notes.push(format!(
            "{mode} {} vs ~{} ({})",
            duration(added),
            duration(design),
            ratio(added / design)
        ));
    }
    let mut s = format!(
        "PROBE COST PER CALL: the fixture times its own loop, so attach and detach are excluded (median of {REPEATS} runs each)\n"
    );
    s.push_str(&table(
        &[
            "function (first instruction)",
            "probe",
            "calls",
            "untraced",
            "traced",
            "added per call",
            "traced / untraced",
            "calls counted",
        ],
        rows,
        2,
    ));
    s.push_str(&format!(
        "DESIGN.md (entry + return probe, counting only): emulated ~0.8 µs, nop5 ~0.54 µs, single-step ~18 µs; \
         added here (× DESIGN.md): {}\n",
        notes.join(", ")
    ));
    Ok(s)
}
