//! What following a benchmark's processes costs: per followed process, the time it is held for perfgate
//! (planning its image, attaching its probes) and the wall time it adds, measured against the same
//! command traced with `--no-follow` and untraced.
use anyhow::Result;

use super::{fixture, median, table, untraced, REPEATS};
use crate::cli::BenchArgs;
use crate::cmd::status;
use crate::files::PrivateDir;
use crate::plan::Selection;
use crate::profile::Profile;
use crate::report::units::{count, duration};
use crate::run::RunAs;
use crate::session::{self, RunOptions, Target, TraceOptions};

/// Processes each scenario starts.
const PROCESSES: usize = 20;

fn options(follow: bool, stdout: &std::path::Path) -> Result<RunOptions> {
    Ok(RunOptions {
        trace: TraceOptions::default(),
        run_as: RunAs::from_env(false)?,
        stdout: crate::run::Stdout::File(stdout.to_path_buf()),
        follow,
    })
}

fn run_once(target: &Target, follow: bool, stdout: &std::path::Path) -> Result<(Profile, f64)> {
    let t = std::time::Instant::now();
    let p = session::trace_once(target, &options(follow, stdout)?)?;
    let wall = t.elapsed().as_nanos() as f64;
    if !p.exit.success() {
        anyhow::bail!(
            "`{}` failed under tracing ({})",
            target.command().join(" "),
            p.exit
        );
    }
    Ok((p, wall))
}

/// The row of one scenario: `argv`, starting `processes` processes, run [`REPEATS`] times untraced,
/// traced with `--no-follow` and traced following its processes.
fn scenario_row(
    name: String,
    argv: &[String],
    processes: usize,
    stdout: &std::path::Path,
) -> Result<Vec<String>> {
    let args: Vec<std::ffi::OsString> = argv.iter().map(Into::into).collect();
    let target = Target::following(&args, &Selection::default())?;
    let (mut plain, mut alone, mut followed, mut whole) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut held, mut longest, mut plan, mut attach, mut seen) =
        (Vec::new(), 0f64, Vec::new(), Vec::new(), 0u64);
    for i in 1..=REPEATS {
        status(&format!("bench follow: {name}, run {i}/{REPEATS}"));
        let rest: Vec<&str> = argv[1..].iter().map(String::as_str).collect();
        plain.push(untraced(std::path::Path::new(&argv[0]), &rest)?.1);
        alone.push(run_once(&target, false, stdout)?.0.wall_ns as f64);
        let (p, wall) = run_once(&target, true, stdout)?;
        followed.push(p.wall_ns as f64);
        whole.push(wall);
        if let Some(f) = &p.accounting.processes {
            seen = f.followed;
            held.push(f.held_ns as f64 / f.holds.max(1) as f64);
            longest = longest.max(f.held_max_ns as f64);
            // The first run plans; later runs of the command find the plans in its cache.
            plan.push(f.plan_ns as f64);
            attach.push(f.attach_ns as f64 / f.followed.max(1) as f64);
        }
    }
    let added = (median(&followed) - median(&alone)) / processes as f64;
    Ok(vec![
        name,
        count(seen),
        duration(median(&held)),
        duration(longest),
        duration(plan.first().copied().unwrap_or(f64::NAN)),
        duration(median(&attach)),
        duration(median(&plain)),
        duration(median(&alone)),
        duration(median(&followed)),
        duration(added),
        duration(median(&whole)),
    ])
}

pub(super) fn run(a: &BenchArgs, scratch: &PrivateDir) -> Result<String> {
    let procs = fixture(a, "procs")?;
    let stdout = scratch.file("follow.out");
    let shown = procs.display().to_string();
    let scenarios: Vec<(String, Vec<String>, usize)> = vec![
        (
            format!("sh: {PROCESSES}× fork + exec of procs"),
            vec![
                "sh".into(),
                "-c".into(),
                format!("for i in $(seq {PROCESSES}); do {shown} leaf 1; done"),
            ],
            PROCESSES + 1,
        ),
        (
            format!("procs: {PROCESSES} fork children, no exec"),
            vec![shown.clone(), "forks".into(), PROCESSES.to_string()],
            PROCESSES + 1,
        ),
    ];
    let mut rows = Vec::new();
    for (name, argv, processes) in scenarios {
        rows.push(scenario_row(name, &argv, processes, &stdout)?);
    }
    let mut s = format!(
        "FOLLOWING PROCESSES: each held at exec or birth while perfgate plans and attaches it ({REPEATS} runs, medians)\n"
    );
    s.push_str(&table(
        &[
            "command",
            "processes followed",
            "held per hold",
            "longest hold",
            "planning (1st run)",
            "attach per process",
            "untraced",
            "traced --no-follow",
            "traced, following",
            "added per process",
            "perfgate's whole run",
        ],
        rows,
        1,
    ));
    s.push_str(
        "planning is done once per file and command (later runs and processes of the same binary reuse it); \
         the three wall times are the benchmark's (start to the last process's exit); \"added per process\" is \
         (following − --no-follow) / processes, the tracer's round trips included; perfgate's whole run adds \
         loading, attaching and closing every process's links once the benchmark is over\n",
    );
    Ok(s)
}
