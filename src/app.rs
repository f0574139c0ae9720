//! What each subcommand does, from parsed arguments to output and exit code.
use std::io::{IsTerminal, Write};
use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::bpf::TraceOptions;
use crate::cli::{
    BaselineArgs, CheckArgs, Cli, Command, GateArgs, RecordArgs, ReplayArgs, ReportArgs,
    ReportFormat, RunArgs, SelectArgs,
};
use crate::gate::baseline::{validate_settings, Baseline, GateOverrides};
use crate::gate::compare::{compare, needs_more_runs};
use crate::gate::figures::RunFigures;
use crate::gate::model::GateSettings;
use crate::plan::Selection;
use crate::profile::file::{Recording, Writer};
use crate::profile::Machine;
use crate::record::{self, RunOptions, Target};
use crate::report::check_table;
use crate::report::escape::terminal;
use crate::report::summary::{self, SummaryOptions};
use crate::run::RunAs;

/// Exit code: everything passed.
pub const EXIT_OK: u8 = 0;
/// Exit code: a regression was found.
pub const EXIT_REGRESSION: u8 = 1;

/// Runs a parsed command line; the returned code is the process exit code.
pub fn run(cli: Cli) -> Result<u8> {
    match cli.command {
        Command::Record(a) => record(a),
        Command::Report(a) => report(a),
        Command::Replay(a) => replay(a),
        Command::Baseline(a) => baseline(a),
        Command::Check(a) => check(a),
        Command::Bench(a) => crate::bench::run(&a),
    }
}

/// Whether the error is a closed stdout.
pub fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// An error as one line: the context chain joined, control characters escaped.
pub fn one_line(e: &anyhow::Error) -> String {
    terminal(&format!("{e:#}").replace('\n', " "))
}

impl From<&SelectArgs> for Selection {
    fn from(s: &SelectArgs) -> Selection {
        Selection {
            libs: s.libs.clone(),
            functions: s.functions.clone(),
            no_functions: s.no_functions.clone(),
            startup: s.startup,
        }
    }
}

/// Run settings from the command line.
pub fn run_options(r: &RunArgs, events: bool, buffer_bytes: u32) -> Result<RunOptions> {
    let timeout = match r.timeout {
        None => None,
        Some(s) if s.is_finite() && s > 0.0 && s <= 31_536_000.0 => {
            Some(Duration::from_secs_f64(s))
        }
        Some(s) => bail!("--timeout {s:e}: must be a positive number of seconds, at most a year"),
    };
    Ok(RunOptions {
        trace: TraceOptions {
            events,
            ringbuf_bytes: buffer_bytes,
            no_session: r.no_session,
            timeout,
            probe_cost: None,
        },
        run_as: RunAs::from_env(r.run_as_root),
        stdout: crate::run::Stdout::Inherit,
    })
}

/// Status lines go to stderr, so stdout carries the benchmark's output and the table only.
pub fn status(msg: &str) {
    if std::io::stderr().is_terminal() {
        eprintln!("\x1b[2mperfgate: {msg}\x1b[0m");
    } else {
        eprintln!("perfgate: {msg}");
    }
}

fn record(a: RecordArgs) -> Result<u8> {
    let mut opts = run_options(&a.run, a.trace, a.buffer_size)?;
    let target = Target::new(&a.command, &Selection::from(&a.select))?;
    let mut writer = Writer::create(&a.output, &record::header(&target))?;
    if !a.no_calibrate {
        crate::bpf::check_privileges()?;
        match crate::calibrate::calibrate(&opts.trace) {
            Ok(c) => opts.trace.probe_cost = Some(c),
            Err(e) => status(&format!(
                "warning: probe cost not calibrated: {}",
                one_line(&e)
            )),
        }
    }
    status(&format!(
        "tracing {} in {} of {}",
        plural(target.plan.functions.len(), "function"),
        plural(target.plan.files.len(), "file"),
        terminal(&target.program.display().to_string())
    ));
    let spinner = if a.trace && std::io::stderr().is_terminal() {
        let bar = indicatif::ProgressBar::new_spinner();
        if let Ok(style) = indicatif::ProgressStyle::with_template(
            "perfgate: {spinner} {pos} events recorded, {elapsed}",
        ) {
            bar.set_style(style);
        }
        bar
    } else {
        indicatif::ProgressBar::hidden()
    };
    let profile = record::trace_with_events(&target, &opts, &mut |e| {
        writer.event(e)?;
        if writer.events() % 65_536 == 0 {
            spinner.set_position(writer.events());
        }
        Ok(())
    })?;
    spinner.finish_and_clear();
    if profile.exit.signal == Some(libc::SIGABRT) {
        status(
            "hint: a C++ exception thrown through a traced function aborts the program: the kernel's return-probe \
             trampoline has no unwind information. Exclude the functions the exception passes through with --no-function",
        );
    }
    // Ctrl-C: what was measured up to then is kept (and says so), but the run did not complete.
    let interrupted = crate::run::interrupted();
    if !profile.exit.success() && !a.allow_failure && !interrupted {
        bail!(
            "the benchmark failed ({}); nothing saved (--allow-failure keeps the profile)",
            profile.exit
        );
    }
    let events = writer.events();
    writer.finish(&profile)?;
    let table = summary::table(
        &profile,
        SummaryOptions {
            per_thread: a.per_thread,
            limit: a.limit,
            verbose: a.verbose,
            compensated: a.compensated,
        },
    );
    print!("{table}");
    if interrupted {
        status(&format!(
            "interrupted: the profile up to Ctrl-C was saved to {}",
            terminal(&a.output.display().to_string())
        ));
        return Ok(2);
    }
    let what = if a.trace {
        format!(" with {} events", crate::report::units::count(events))
    } else {
        String::new()
    };
    status(&format!(
        "benchmark {}; saved {}{what}",
        profile.exit,
        terminal(&a.output.display().to_string())
    ));
    Ok(EXIT_OK)
}

/// The recording's events, with a progress bar on a terminal; a recording without events is an error.
fn events_of(rec: &Recording) -> Result<impl Iterator<Item = Result<crate::profile::file::Event>>> {
    if !rec.profile.has_events {
        bail!(
            "{}: this view needs every call: record with `perfgate record --trace` (this recording has only per-function totals)",
            terminal(&rec.path.display().to_string())
        );
    }
    let dropped = rec.profile.accounting.lost.events_dropped;
    if dropped > 0 {
        status(&format!(
            "warning: {} events were lost while recording; the replay marks the gaps it can detect",
            crate::report::units::count(dropped)
        ));
    }
    let bar = progress(rec.event_count(), 0);
    let mut n = 0u64;
    Ok(rec.events()?.inspect(move |_| {
        n += 1;
        if n % 65_536 == 0 {
            bar.set_position(n);
        }
    }))
}

fn open_output(path: Option<&std::path::Path>) -> Result<Box<dyn std::io::Write>> {
    match path {
        None => Ok(Box::new(std::io::stdout().lock())),
        Some(p) if p.as_os_str() == "-" => Ok(Box::new(std::io::stdout().lock())),
        Some(p) => {
            let f = std::fs::File::create(p)
                .with_context(|| format!("cannot write {}", p.display()))?;
            Ok(Box::new(std::io::BufWriter::new(f)))
        }
    }
}

fn folded_of(rec: &Recording, threads: bool) -> Result<Vec<(String, u64)>> {
    let events = events_of(rec)?;
    if threads {
        crate::report::flame::folded_per_thread(&rec.profile, events)
    } else {
        crate::report::flame::folded(&rec.profile, events)
    }
}

fn report(a: ReportArgs) -> Result<u8> {
    use crate::report::flame;
    let rec = Recording::open(&a.input)?;
    let base = a.diff.as_deref().map(Recording::open).transpose()?;
    if base.is_some() && !matches!(a.format, ReportFormat::FlameGraph | ReportFormat::Folded) {
        bail!("--diff works with --format=flame-graph or --format=folded");
    }
    let mut out = open_output(a.output.as_deref())?;
    let title = format!("perfgate: {}", rec.profile.command.join(" "));
    match a.format {
        ReportFormat::Summary => {
            let opts = SummaryOptions {
                per_thread: a.per_thread,
                limit: a.limit,
                verbose: a.verbose,
                compensated: a.compensated,
            };
            out.write_all(summary::table(&rec.profile, opts).as_bytes())?;
        }
        ReportFormat::Chrome => {
            crate::report::chrome::chrome_trace(&rec.profile, events_of(&rec)?, &mut out)?
        }
        ReportFormat::FlameGraph => {
            let head = folded_of(&rec, a.threads)?;
            match &base {
                Some(b) => flame::diff_flame_graph_svg(
                    &folded_of(b, a.threads)?,
                    &head,
                    &format!("{title} (vs base)"),
                    &mut out,
                )?,
                None => flame::flame_graph_svg(&head, &title, &mut out)?,
            }
        }
        ReportFormat::Folded => {
            let head = folded_of(&rec, a.threads)?;
            match &base {
                Some(b) => {
                    let base: std::collections::BTreeMap<String, u64> =
                        folded_of(b, a.threads)?.into_iter().collect();
                    let head_map: std::collections::BTreeMap<String, u64> =
                        head.into_iter().collect();
                    let stacks: std::collections::BTreeSet<&String> =
                        base.keys().chain(head_map.keys()).collect();
                    for s in stacks {
                        writeln!(
                            out,
                            "{s} {} {}",
                            base.get(s).unwrap_or(&0),
                            head_map.get(s).unwrap_or(&0)
                        )?;
                    }
                }
                None => flame::write_folded(&head, &mut out)?,
            }
        }
    }
    out.flush()?;
    if let Some(p) = a.output.as_deref().filter(|p| p.as_os_str() != "-") {
        status(&format!("wrote {}", terminal(&p.display().to_string())));
    }
    Ok(EXIT_OK)
}

fn replay(a: ReplayArgs) -> Result<u8> {
    use crate::report::replay::{replay, ReplayOptions};
    let rec = Recording::open(&a.input)?;
    let globs = |v: &[String]| -> Result<Vec<glob::Pattern>> {
        v.iter()
            .map(|g| {
                glob::Pattern::new(g).map_err(|e| anyhow::anyhow!("bad pattern {g:?}: {}", e.msg))
            })
            .collect()
    };
    let opts = ReplayOptions {
        tid: a.tid,
        max_depth: a.depth,
        time_filter_ns: a.time_filter,
        functions: globs(&a.functions)?,
        no_functions: globs(&a.no_functions)?,
    };
    let mut out = open_output(None)?;
    replay(&rec.profile, events_of(&rec)?, &opts, &mut out)?;
    out.flush()?;
    Ok(EXIT_OK)
}

impl GateArgs {
    /// The settings given on the command line, as overrides.
    pub fn overrides(&self) -> GateOverrides {
        GateOverrides {
            alpha: self.alpha,
            threshold: self.threshold,
            confidence: self.confidence,
            min_share: self.min_share,
            metric: self.metric,
            gate_calls: self.gate_calls.then_some(true),
            relative: self.relative.then_some(true),
            ..GateOverrides::default()
        }
    }
}

/// Runs the target `n` more times, appending each run's figures; a failing run is an error, not a regression.
fn run_batch(
    target: &Target,
    opts: &RunOptions,
    n: usize,
    runs: &mut Vec<RunFigures>,
    total: usize,
) -> Result<()> {
    let bar = progress(total as u64, runs.len() as u64);
    for _ in 0..n {
        let i = runs.len() + 1;
        let profile = record::trace_once(target, opts)?;
        if crate::run::interrupted() {
            bail!("interrupted by Ctrl-C during run {i}");
        }
        if !profile.exit.success() {
            bail!(
                "the benchmark failed in run {i} ({}): that is an error of the benchmark, not a regression",
                profile.exit
            );
        }
        let lost = profile.accounting.lost.lost_calls();
        if lost > 0 {
            status(&format!(
                "run {i}: {lost} calls could not be measured (see perfgate record --verbose)"
            ));
        }
        runs.push(RunFigures::from_profile(&profile));
        bar.inc(1);
    }
    bar.finish_and_clear();
    Ok(())
}

/// A progress bar on stderr when it is a terminal; hidden otherwise.
fn progress(total: u64, done: u64) -> indicatif::ProgressBar {
    if !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(total);
    bar.set_position(done);
    if let Ok(style) =
        indicatif::ProgressStyle::with_template("perfgate: run {pos}/{len} {wide_bar} {elapsed}")
    {
        bar.set_style(style);
    }
    bar
}

fn baseline(a: BaselineArgs) -> Result<u8> {
    let mut settings = GateSettings::default();
    let gate = a.gate.overrides();
    gate.apply(&mut settings);
    settings.runs = a.runs;
    validate_settings(&settings).context("--runs")?;
    let mut opts = run_options(&a.run, false, 0)?;
    opts.stdout = crate::run::Stdout::Stderr;
    let sel = Selection::from(&a.select);
    let target = Target::new(&a.command, &sel)?;
    // Fail on an unwritable output before spending minutes on runs.
    check_writable(&a.output)?;
    status(&format!(
        "recording a baseline of {} runs, {} functions in {}",
        a.runs,
        target.plan.functions.len(),
        plural(target.plan.files.len(), "file")
    ));
    let mut runs = Vec::new();
    run_batch(&target, &opts, a.runs, &mut runs, a.runs)?;
    let b = Baseline::from_runs(
        target.command(),
        target.plan.build_id.clone(),
        Machine::current(),
        gate,
        &sel,
        &runs,
    );
    b.write(&a.output)?;
    status(&format!(
        "wrote {} ({} functions, {} runs): commit it",
        terminal(&a.output.display().to_string()),
        b.functions.len(),
        b.runs
    ));
    Ok(EXIT_OK)
}

/// Fails early, before minutes of runs, when `path` cannot be written (a probe file beside it).
fn check_writable(path: &std::path::Path) -> Result<()> {
    let (_, tmp) = crate::profile::file::create_beside(path)?;
    std::fs::remove_file(&tmp).with_context(|| format!("cannot write {}", path.display()))
}

fn write_output(path: &std::path::Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    if path.as_os_str() == "-" {
        std::io::stdout().write_all(bytes)?;
        return Ok(());
    }
    // A new file renamed into place: a symlink planted at `path` is replaced, never written through.
    let (mut f, tmp) = crate::profile::file::create_beside(path)?;
    let result = f
        .write_all(bytes)
        .and_then(|()| std::fs::rename(&tmp, path));
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.with_context(|| format!("cannot write {}", path.display()))
}

fn check(a: CheckArgs) -> Result<u8> {
    let base = Baseline::read(&a.baseline)?;
    let mut settings = GateSettings {
        runs: base.runs.min(10),
        ..GateSettings::default()
    };
    base.gate.apply(&mut settings);
    a.gate.overrides().apply(&mut settings);
    if let Some(r) = a.runs {
        settings.runs = r;
    }
    if let Some(m) = a.max_runs {
        settings.max_runs = m;
    }
    validate_settings(&settings)?;
    settings.max_runs = settings.max_runs.max(settings.runs);
    for out in [&a.junit, &a.markdown, &a.json].into_iter().flatten() {
        if out.as_os_str() != "-" {
            check_writable(out)?;
        }
    }
    let argv: Vec<std::ffi::OsString> = if a.command.is_empty() {
        base.command.iter().map(std::ffi::OsString::from).collect()
    } else {
        a.command.clone()
    };
    let target = Target::new(&argv, &base.selection()).with_context(|| {
        if a.command.is_empty() {
            format!(
                "the baseline's command `{}` cannot be traced",
                terminal(&base.command.join(" "))
            )
        } else {
            "the command cannot be traced".to_string()
        }
    })?;
    let mut opts = run_options(&a.run, false, 0)?;
    opts.stdout = crate::run::Stdout::Stderr;
    let benchmark = a
        .baseline
        .file_stem()
        .map_or_else(|| "benchmark".into(), |s| s.to_string_lossy().into_owned());
    // Before any run: a command whose functions share nothing with the baseline is another benchmark.
    let planned: std::collections::BTreeSet<(&str, &str)> = target
        .plan
        .functions
        .iter()
        .map(|f| (f.module.as_str(), f.raw_name.as_str()))
        .collect();
    if !base
        .functions
        .iter()
        .any(|f| planned.contains(&(f.module.as_str(), f.symbol.as_str())))
    {
        bail!(
            "no function in common between {} and this command: is it the same benchmark?",
            terminal(&a.baseline.display().to_string())
        );
    }
    let same_binary = base.build_id.is_some() && base.build_id == target.plan.build_id;
    status(&format!(
        "checking {} against {} ({} base runs{}), {} runs first, up to {}",
        terminal(&target.program.display().to_string()),
        terminal(&a.baseline.display().to_string()),
        base.runs,
        if same_binary { ", same build-id" } else { "" },
        settings.runs,
        settings.max_runs
    ));
    let machine = Machine::current();
    let mut head = Vec::new();
    run_batch(&target, &opts, settings.runs, &mut head, settings.runs)?;
    let mut c = compare(&base, &head, &settings, &benchmark, &machine);
    if !c
        .functions
        .iter()
        .any(|f| f.base.is_some() && f.head.is_some())
    {
        bail!(
            "no function in common between {} and this run: is it the same benchmark?",
            terminal(&a.baseline.display().to_string())
        );
    }
    while needs_more_runs(&c) && head.len() < settings.max_runs {
        let more = 5.min(settings.max_runs - head.len());
        status(&format!(
            "{} functions inconclusive after {} runs: {more} more runs",
            c.with(crate::gate::model::Verdict::Inconclusive).count(),
            head.len()
        ));
        run_batch(&target, &opts, more, &mut head, settings.max_runs)?;
        c = compare(&base, &head, &settings, &benchmark, &machine);
    }
    if let Some(w) = busy_machine_warning() {
        c.warnings.push(w);
    }
    // When a report goes to stdout, the table goes to stderr so the two do not mix.
    let to_stdout = [&a.junit, &a.markdown, &a.json]
        .into_iter()
        .flatten()
        .any(|p| p.as_os_str() == "-");
    if to_stdout {
        eprint!("{}", check_table::table(&c, false));
    } else {
        print!("{}", check_table::table(&c, false));
    }
    use crate::report::markdown::Exporter;
    if let Some(p) = &a.junit {
        write_output(p, &crate::report::junit::Junit.render(&c)?)?;
    }
    if let Some(p) = &a.markdown {
        write_output(p, &crate::report::markdown::Markdown.render(&c)?)?;
    }
    if let Some(p) = &a.json {
        write_output(p, &crate::report::json::Json.render(&c)?)?;
    }
    if a.update {
        let mut b = Baseline::from_runs(
            target.command(),
            target.plan.build_id.clone(),
            machine,
            base.gate.clone(),
            &base.selection(),
            &head,
        );
        b.keep_overrides_of(&base);
        b.write(&a.baseline)?;
        status(&format!(
            "updated {} with {} runs",
            terminal(&a.baseline.display().to_string()),
            head.len()
        ));
        return Ok(EXIT_OK);
    }
    Ok(if c.passed() { EXIT_OK } else { EXIT_REGRESSION })
}

/// `1 file`, `3 files`.
pub fn plural(n: usize, word: &str) -> String {
    if n == 1 {
        format!("1 {word}")
    } else {
        format!("{n} {word}s")
    }
}

/// A warning when the machine was busier than its cores during the check (other work skews timings).
fn busy_machine_warning() -> Option<String> {
    let load: f64 = std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    (load > cores).then(|| {
        format!("the machine was busy during the check (load average {load:.1} on {cores} cores): timings are noisier")
    })
}
