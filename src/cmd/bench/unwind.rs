//! What C++ exceptions through traced functions cost (see `bpf/unwind.h`): `exceptions loop N` throws N
//! times through 10 traced frames. Untraced, traced with the writer this kernel allows, and (where the
//! kernel allows `bpf_probe_write_user`) traced with the stop writer too, so the two can be compared.
//! The stop writer pauses the benchmark twice per throw (restore at the throw, re-hijack at the catch);
//! its pauses are timed from the kernel's stop request to perfgate's SIGCONT.
use std::path::Path;
use std::time::Instant;

use anyhow::{bail, Context, Result};

use super::{argv, fixture, median, ratio, table, REPEATS};
use crate::cli::BenchArgs;
use crate::cmd::status;
use crate::files::PrivateDir;
use crate::plan::Selection;
use crate::profile::Profile;
use crate::report::units::{count, duration};
use crate::run::RunAs;
use crate::session::{self, RunOptions, Target, TraceOptions};

/// Throws per run.
const THROWS: u64 = 500;
/// Traced frames each exception passes: chain × 10 (thrower and chain end, catch_across catches).
const DEPTH: u64 = 10;
/// The fixture's exit code (main returns 3 so that a skipped rest of main shows).
const EXIT: i32 = 3;

#[derive(Default)]
struct Figures {
    wall: Vec<f64>,
    pauses: Vec<f64>,
    paused: Vec<f64>,
    unwound: u64,
}

pub(super) fn run(a: &BenchArgs, scratch: &PrivateDir) -> Result<String> {
    let program = fixture(a, "exceptions")?;
    let n = THROWS.to_string();
    let args = ["loop", n.as_str()];
    let target = Target::new(&argv(&program, &args), &Selection::default())?;
    let stdout = scratch.file("exceptions.out");
    let mut plain = Vec::new();
    for i in 1..=REPEATS {
        status(&format!(
            "bench exceptions: loop {THROWS} untraced, run {i}/{REPEATS}"
        ));
        plain.push(untraced(&program, &args)?);
    }
    let bpf_allowed = crate::bpf::bpf_writes_allowed();
    let default = traced_runs(&target, &stdout, true, "the writer this kernel allows")?;
    let stop = if bpf_allowed {
        Some(traced_runs(&target, &stdout, false, "the stop writer")?)
    } else {
        None
    };
    Ok(render(median(&plain), bpf_allowed, &default, stop.as_ref()))
}

fn untraced(program: &Path, args: &[&str]) -> Result<f64> {
    let t = Instant::now();
    let st = std::process::Command::new(program)
        .args(args)
        .stdout(std::process::Stdio::null())
        .status()
        .with_context(|| format!("cannot run {}", program.display()))?;
    if st.code() != Some(EXIT) {
        bail!("`{} {}` failed ({st})", program.display(), args.join(" "));
    }
    Ok(t.elapsed().as_nanos() as f64)
}

fn traced_runs(target: &Target, stdout: &Path, bpf_writes: bool, what: &str) -> Result<Figures> {
    let mut f = Figures::default();
    for i in 1..=REPEATS {
        status(&format!(
            "bench exceptions: loop {THROWS} traced with {what}, run {i}/{REPEATS}"
        ));
        let opts = RunOptions {
            trace: TraceOptions {
                bpf_writes,
                ..TraceOptions::default()
            },
            run_as: RunAs::from_env(false)?,
            stdout: crate::run::Stdout::File(stdout.to_path_buf()),
            follow: false,
        };
        let p: Profile = session::trace_once(target, &opts)?;
        if p.exit.code != Some(EXIT) {
            bail!(
                "`{}` failed under tracing ({})",
                target.command().join(" "),
                p.exit
            );
        }
        let u = &p.accounting.unwinding;
        f.wall.push(p.wall_ns as f64);
        f.pauses.push(u.pauses as f64);
        f.paused.push(u.paused_ns as f64);
        f.unwound = u.frames_unwound;
    }
    Ok(f)
}

fn render(untraced: f64, bpf_allowed: bool, default: &Figures, stop: Option<&Figures>) -> String {
    let row = |name: &str, f: &Figures| {
        let w = median(&f.wall);
        let pauses = median(&f.pauses);
        let paused = median(&f.paused);
        vec![
            name.to_string(),
            duration(w),
            ratio(w / untraced),
            duration((w - untraced) / THROWS as f64),
            format!("{:.1}", pauses / THROWS as f64),
            if pauses > 0.0 {
                duration(paused / pauses)
            } else {
                "-".into()
            },
            duration(paused / THROWS as f64),
            count(f.unwound),
        ]
    };
    let mut rows = vec![vec![
        "untraced".to_string(),
        duration(untraced),
        "1.00×".into(),
        "-".into(),
        "-".into(),
        "-".into(),
        "-".into(),
        "-".into(),
    ]];
    let first = if bpf_allowed {
        "traced, bpf_probe_write_user"
    } else {
        "traced, stop writer (the kernel refuses bpf_probe_write_user)"
    };
    rows.push(row(first, default));
    if let Some(s) = stop {
        rows.push(row("traced, stop writer", s));
    }
    let mut s = format!(
        "EXCEPTIONS: `exceptions loop {THROWS}` throws {THROWS} times through {DEPTH} traced frames, every \
         function traced, median of {REPEATS} runs\n"
    );
    s.push_str(&table(
        &[
            "writer",
            "wall time",
            "× untraced",
            "added per throw",
            "pauses / throw",
            "per pause",
            "paused / throw",
            "calls ended by the exceptions",
        ],
        rows,
        1,
    ));
    s.push_str(&format!(
        "added per throw includes the probes of the {} traced calls each throw makes; per pause = from the kernel's \
         stop request to perfgate's SIGCONT; expected calls ended: {} per run\n",
        DEPTH + 2,
        count(THROWS * (DEPTH + 1))
    ));
    s
}
