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

/// One kind of instruction at the probe, as the `entry` fixture exercises it.
struct Mode {
    /// The fixture's mode argument (its function is `f_<mode>`).
    name: &'static str,
    /// The function's first instruction.
    insn: &'static str,
    /// Calls per run.
    calls: u64,
    /// DESIGN.md's entry + return figure, ns.
    design_ns: f64,
}

const MODES: [Mode; 3] = [
    Mode {
        name: "emulated",
        insn: "push %rbp",
        calls: 1_000_000,
        design_ns: 800.0,
    },
    Mode {
        name: "nop5",
        insn: "nopl 0x0(%rax,%rax,1)",
        calls: 1_000_000,
        design_ns: 540.0,
    },
    Mode {
        name: "sstep",
        insn: "mov %edi,%eax",
        calls: 50_000,
        design_ns: 18_000.0,
    },
];

/// What one mode measured: ns per call untraced and traced (medians), and whether every call was counted.
struct Measured {
    kind: crate::profile::ProbeKind,
    untraced: f64,
    traced: f64,
    counted_ok: bool,
}

fn measure(program: &std::path::Path, stdout: &std::path::Path, m: &Mode) -> Result<Measured> {
    let calls_s = m.calls.to_string();
    let args = [m.name, calls_s.as_str()];
    let mut plain = Vec::new();
    for i in 1..=REPEATS {
        status(&format!(
            "bench overhead: entry {} {} untraced, run {i}/{REPEATS}",
            m.name, m.calls
        ));
        plain.push(ns_per_call(&untraced(program, &args)?.0)?);
    }
    let func = format!("f_{}", m.name);
    let target = Target::new(&argv(program, &args), &only(&[&func]))?;
    let Some(info) = target.plan.functions.iter().find(|f| f.name == func) else {
        bail!("{func} is not in the probe plan of {}", program.display());
    };
    let kind = info.probe;
    let mut with = Vec::new();
    let mut counted_ok = true;
    for i in 1..=REPEATS {
        status(&format!(
            "bench overhead: entry {} {} traced, run {i}/{REPEATS}",
            m.name, m.calls
        ));
        let p = traced(&target, false, stdout, None)?;
        let text = std::fs::read_to_string(stdout)
            .with_context(|| format!("cannot read {}", stdout.display()))?;
        with.push(ns_per_call(&text)?);
        let seen: u64 = p.per_function().iter().map(|s| s.calls).sum();
        counted_ok &= seen == m.calls;
    }
    Ok(Measured {
        kind,
        untraced: median(&plain),
        traced: median(&with),
        counted_ok,
    })
}

pub(super) fn run(a: &BenchArgs, scratch: &PrivateDir) -> Result<String> {
    let program = fixture(a, "entry")?;
    let stdout = scratch.file("entry.out");
    let mut rows = Vec::new();
    let mut notes = Vec::new();
    for m in &MODES {
        let r = measure(&program, &stdout, m)?;
        let added = r.traced - r.untraced;
        rows.push(vec![
            format!("f_{} ({})", m.name, m.insn),
            r.kind.describe().to_string(),
            count(m.calls),
            fine(r.untraced),
            fine(r.traced),
            fine(added),
            ratio(r.traced / r.untraced),
            if r.counted_ok {
                "all".into()
            } else {
                "MISMATCH".into()
            },
        ]);
        notes.push(format!(
            "{} {} vs ~{} ({})",
            m.name,
            duration(added),
            duration(m.design_ns),
            ratio(added / m.design_ns)
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
