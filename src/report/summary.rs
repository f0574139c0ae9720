//! The summary table of a profile, and the accounting lines under it: everything the plan skipped and the
//! kernel lost is said there, so no view hides missing data.
use comfy_table::presets::UTF8_BORDERS_ONLY;
use comfy_table::{CellAlignment, Table};

use super::cells;
use super::escape::{cut_long, terminal};
use super::units::{count, duration, plural};
use crate::profile::names::ShortNames;
use crate::profile::{Accounting, FuncStats, LossCounters, ProbeKind, Profile, Unwinding};

/// Options of the table.
#[derive(Debug, Clone, Copy, Default)]
pub struct SummaryOptions {
    /// One row per thread and function.
    pub per_thread: bool,
    /// Rows at most (0 = all).
    pub limit: usize,
    /// Name skipped and slow-probe functions.
    pub verbose: bool,
    /// Inclusive TOTAL TIME and AVG minus the calibrated probe cost of traced callees.
    pub compensated: bool,
    /// Full demangled names instead of short ones.
    pub full_names: bool,
    /// Columns to fit the table in (names lose their middle); `None` = no limit.
    pub width: Option<usize>,
}

const HEADER: [&str; 8] = [
    "TOTAL TIME",
    "SELF TIME",
    "CALLS",
    "AVG",
    "P50",
    "P99",
    "MAX",
    "FUNCTION (module)",
];

/// The table: TOTAL TIME | SELF TIME | CALLS | AVG | P50 | P99 | MAX | FUNCTION (module), then the
/// footnotes and the accounting.
pub fn table(profile: &Profile, opts: SummaryOptions) -> String {
    let rows: Vec<FuncStats> = if opts.per_thread {
        profile.per_thread()
    } else {
        profile.per_function()
    };
    let total = rows.len();
    let shown = if opts.limit == 0 {
        total
    } else {
        total.min(opts.limit)
    };
    let names = ShortNames::new(
        profile.functions.iter().map(|f| f.name.as_str()),
        opts.full_names,
    );
    let rows = &rows[..shown];
    let render =
        |layout: usize, width: Option<usize>| draw(profile, rows, opts, &names, layout, width);
    let longest = rows
        .iter()
        .map(|s| cells::width(&name_cell(profile, &names, s, None)))
        .max()
        .unwrap_or(0);
    let (layout, width) = cells::fit(render, DROPPED.len(), opts.width, longest);
    let mut out = render(layout, width);
    if layout > 0 {
        out.push_str(&format!(
            "\nnarrow terminal: {} not shown (a wider terminal or COLUMNS=160 shows them)",
            DROPPED[layout].join(", ")
        ));
    }
    out.push('\n');
    if shown < total {
        out.push_str(&format!(
            "… {} more rows (--limit 0 shows all)\n",
            total - shown
        ));
    }
    out.push_str(&footnotes(profile, opts));
    out.push_str(&accounting(profile, opts.verbose));
    out
}

/// Layouts for narrow terminals, each dropping one more column (never cutting a number).
const DROPPED: [&[&str]; 4] = [&[], &["MAX"], &["MAX", "P50"], &["MAX", "P50", "P99"]];

/// The table of `rows` in one layout (the columns of `DROPPED[layout]` left out), names cut to `width`.
fn draw(
    profile: &Profile,
    rows: &[FuncStats],
    opts: SummaryOptions,
    names: &ShortNames,
    layout: usize,
    width: Option<usize>,
) -> String {
    let dropped = DROPPED[layout.min(DROPPED.len() - 1)];
    let mut header = HEADER.to_vec();
    if opts.per_thread {
        header.insert(0, "TID");
    }
    let keep: Vec<bool> = header.iter().map(|h| !dropped.contains(h)).collect();
    let pick = |cells: Vec<String>| -> Vec<String> {
        cells
            .into_iter()
            .zip(&keep)
            .filter(|(_, k)| **k)
            .map(|(c, _)| c)
            .collect()
    };
    let mut t = Table::new();
    t.load_style(UTF8_BORDERS_ONLY);
    t.force_no_tty();
    let columns = keep.iter().filter(|k| **k).count();
    t.set_header(pick(header.iter().map(|h| h.to_string()).collect()));
    for s in rows {
        t.add_row(pick(row(
            profile,
            s,
            opts,
            name_cell(profile, names, s, width),
        )));
    }
    // Every column but the function name (the last) holds a number.
    for i in 0..columns - 1 {
        if let Some(c) = t.column_mut(i) {
            c.set_cell_alignment(CellAlignment::Right);
        }
    }
    t.to_string()
}

/// `name (module)` of a row, cut to `width`; `#id` for a function the profile does not list.
fn name_cell(profile: &Profile, names: &ShortNames, s: &FuncStats, width: Option<usize>) -> String {
    profile.function(s.func).map_or_else(
        || format!("#{}", s.func),
        |f| {
            let name = cut_long(&terminal(names.get(&f.name))).into_owned();
            let module = cut_long(&terminal(&f.module)).into_owned();
            cells::name_and_module(&name, &module, width)
        },
    )
}

/// One row of the table.
fn row(profile: &Profile, s: &FuncStats, opts: SummaryOptions, name: String) -> Vec<String> {
    let compensate = opts.compensated && profile.accounting.probe_cost.is_some();
    let (total, avg) = if compensate {
        let t = s.compensated_inclusive() as f64;
        // Per outermost call: a recursive function's inclusive time is counted once, at its outermost call.
        let outer = s.outer_calls();
        let per_call = if outer > 0 { t / outer as f64 } else { 0.0 };
        (
            format!("{}*", duration(t)),
            format!("{}*", duration(per_call)),
        )
    } else {
        (
            duration(s.inclusive.sum_ns as f64),
            duration(s.inclusive_mean()),
        )
    };
    let mut row = vec![
        total,
        duration(s.self_time.sum_ns as f64),
        count(s.calls),
        avg,
        duration(s.inclusive.quantile(0.5)),
        duration(s.inclusive.quantile(0.99)),
        duration(s.inclusive.max_ns as f64),
        name,
    ];
    if opts.per_thread {
        row.insert(0, s.tid.to_string());
    }
    row
}

/// What the marks in the table mean, and the functions that completed no call.
fn footnotes(profile: &Profile, opts: SummaryOptions) -> String {
    let mut out = String::new();
    if opts.compensated {
        match profile.accounting.probe_cost {
            Some(_) => out.push_str("* minus the calibrated probe cost of traced callees (SELF TIME, P50, P99 and MAX are raw)\n"),
            None => out.push_str("no calibration in this recording: times are raw (record without --no-calibrate)\n"),
        }
    }
    let called = profile.per_function().len();
    let never = profile.functions.len().saturating_sub(called);
    if never > 0 && !opts.per_thread {
        let lost = &profile.accounting.lost;
        let open = if lost.unfinished_at_exit + lost.frames_abandoned > 0 {
            " (or entered but never returned, see below)"
        } else {
            ""
        };
        out.push_str(&format!(
            "{} completed no call{open}\n",
            plural(never, "traced function")
        ));
    }
    out
}

/// `traced 412 functions in 3 files; skipped 17 (no size: 9, excluded by filter: 8); 0 lost`, then one line
/// per kind of loss, libraries, slow probes and warnings; with `verbose`, the probe kinds, attach and
/// detach times, the calibration and every skipped function.
pub fn accounting(profile: &Profile, verbose: bool) -> String {
    let a = &profile.accounting;
    let mut out = coverage_line(profile);
    out.push_str(&loss_lines(&a.lost));
    out.push_str(&process_lines(a, verbose));
    out.push_str(&unwinding_lines(&a.unwinding));
    out.push_str(&library_lines(a));
    for w in &a.warnings {
        out.push_str(&format!("  warning: {}\n", terminal(w)));
    }
    out.push_str(&slow_probe_lines(profile, verbose));
    out.push_str(&probe_kinds_line(profile));
    if verbose {
        out.push_str(&verbose_lines(profile));
    }
    out
}

fn coverage_line(profile: &Profile) -> String {
    let a = &profile.accounting;
    let skipped: u64 = a.skipped.values().sum();
    let reasons: Vec<String> = a
        .skipped
        .iter()
        .filter(|(_, &n)| n > 0)
        .map(|(r, n)| format!("{r}: {n}"))
        .collect();
    let skipped = if reasons.is_empty() {
        "skipped 0".to_string()
    } else {
        format!("skipped {skipped} ({})", reasons.join(", "))
    };
    let l = &a.lost;
    let across = match &a.processes {
        Some(p) if p.followed > 1 => format!(" across {}", plural(p.followed, "process")),
        _ => String::new(),
    };
    let mut line = format!(
        "traced {} in {}{across}; {skipped}; {} lost\n",
        plural(profile.functions.len(), "function"),
        plural(a.files.len(), "file"),
        count(l.lost_calls() + l.events_dropped),
    );
    if let Some(n) = a.skipped.get(&crate::profile::SkipReason::TooHot) {
        line.push_str(&format!(
            "  {} left to their callers as too hot for their probe: their time is measured in their callers' self time\n",
            plural(*n, "function")
        ));
    }
    line
}

fn loss_lines(l: &LossCounters) -> String {
    let mut out = counted_lines(&[
        (
            "lost",
            l.depth_exceeded,
            "calls deeper than 64 frames not measured (their time stays in the caller)",
        ),
        (
            "lost",
            l.return_without_entry,
            "returns without a matching entry",
        ),
        (
            "lost",
            l.stats_map_full,
            "calls not stored: statistics map full",
        ),
        (
            "lost",
            l.stack_map_full,
            "calls not measured: too many threads",
        ),
        (
            "lost",
            l.events_dropped,
            "trace events dropped: ring buffer full (raise --buffer-size)",
        ),
    ]);
    if l.events_dropped > 0 {
        let per_cpu: Vec<String> = l
            .events_dropped_per_cpu
            .iter()
            .enumerate()
            .filter(|(_, &n)| n > 0)
            .map(|(cpu, n)| format!("cpu{cpu}: {}", count(*n)))
            .collect();
        out.push_str(&format!(
            "  events dropped per CPU: {}\n",
            per_cpu.join(", ")
        ));
    }
    out.push_str(&counted_lines(&[
        (
            "note",
            l.frames_abandoned,
            "calls were left by longjmp without returning; their time is in their caller",
        ),
        (
            "note",
            l.open_at_exec,
            "calls were still running when their process exec'd another program (never returned)",
        ),
        (
            "note",
            l.in_progress_at_attach,
            "calls were already running when perfgate attached (not measured: they began before the probes)",
        ),
        (
            "note",
            l.open_at_detach,
            "calls were still running when perfgate detached (not measured)",
        ),
        (
            "note",
            l.returned_before_attach,
            "calls already running when their process was attached returned (not measured: they began before the probes)",
        ),
        (
            "lost",
            l.holds_failed,
            "library loads could not hold their thread: the library's first calls may be missing",
        ),
        (
            "note",
            l.unfinished_at_exit,
            "calls were still running when their thread exited (e.g. exit() or pthread_exit())",
        ),
    ]));
    out
}

/// `  lost: 3 returns without a matching entry`: one line per counter that is not zero, in order.
fn counted_lines(counters: &[(&str, u64, &str)]) -> String {
    let mut out = String::new();
    for &(label, n, what) in counters {
        if n > 0 {
            out.push_str(&format!("  {label}: {} {what}\n", count(n)));
        }
    }
    out
}

/// `followed 4 processes (2 execs, 2 forks): procs ×3 (11 functions), sh ×1 (no function selected);
/// held 0.3 ms each on average, longest 1.1 ms` and what was not traced.
fn process_lines(a: &Accounting, verbose: bool) -> String {
    let Some(p) = &a.processes else {
        return String::new();
    };
    let mut out = String::new();
    let mut how = Vec::new();
    for (n, what) in [(p.execs, "exec"), (p.forks, "fork"), (p.vforks, "vfork")] {
        if n > 0 {
            how.push(plural(n, what));
        }
    }
    let binaries: Vec<String> = p
        .binaries
        .iter()
        .map(|b| {
            let name = b.path.file_name().map_or_else(
                || b.path.display().to_string(),
                |n| n.to_string_lossy().into_owned(),
            );
            let what = if b.functions == 0 {
                "no function selected".to_string()
            } else {
                plural(b.functions, "function")
            };
            format!("{} ×{} ({what})", terminal(&name), b.processes)
        })
        .collect();
    if p.followed > 1 || verbose {
        out.push_str(&format!(
            "  followed {}{}{}\n",
            plural(p.followed, "process"),
            if how.is_empty() {
                String::new()
            } else {
                format!(" ({})", how.join(", "))
            },
            if binaries.is_empty() {
                String::new()
            } else {
                format!(": {}", binaries.join(", "))
            },
        ));
    }
    if p.holds > 0 && (p.followed > 1 || p.library_holds > 0 || verbose) {
        out.push_str(&format!(
            "  each held for perfgate {} on average (planning {}, attaching {} in all), longest {}\n",
            duration(p.held_ns as f64 / p.holds as f64),
            duration(p.plan_ns as f64),
            duration(p.attach_ns as f64),
            duration(p.held_max_ns as f64),
        ));
    }
    for n in &p.not_traced {
        out.push_str(&format!(
            "  not traced: {} ×{}\n",
            terminal(&n.reason),
            n.count
        ));
    }
    if p.failed > 0 {
        out.push_str(&format!(
            "  note: {} of the processes it started exited non-zero or by a signal\n",
            plural(p.failed, "process")
        ));
    }
    if p.killed > 0 {
        out.push_str(&format!(
            "  note: {} were still running at the end and were killed\n",
            plural(p.killed, "process")
        ));
    }
    if verbose {
        out.push_str(&format!(
            "  threads traced: {}; signals passed on by the tracer: {}\n",
            count(p.threads),
            count(p.signals)
        ));
    }
    out
}

/// Exceptions, the writer's pauses and stack switches: what perfgate did to keep return probes from
/// changing the program, and what that cost the measurement.
fn unwinding_lines(u: &Unwinding) -> String {
    let mut out = String::new();
    if u.frames_unwound > 0 {
        out.push_str(&format!(
            "  note: {} calls were ended by an exception or panic ({} throws and resumes, {} catches): counted, and measured up to the catch\n",
            count(u.frames_unwound),
            count(u.unwinds),
            count(u.landings)
        ));
    }
    if u.pauses > 0 {
        out.push_str(&format!(
            "  note: the benchmark was paused {} times ({} in all, {} each on average) for perfgate to write return addresses around the unwinder (this kernel refuses bpf_probe_write_user); the pauses are inside the times of the calls then running, on every thread\n",
            count(u.pauses),
            duration(u.paused_ns as f64),
            duration(u.paused_ns as f64 / u.pauses as f64)
        ));
    }
    if u.slot_writes_failed > 0 {
        out.push_str(&format!(
            "  warning: {} return-address writes failed: the unwinder may have met a return probe there (an exception can then abort the program where it would not untraced)\n",
            count(u.slot_writes_failed)
        ));
    }
    if u.stack_switches > 0 || !u.switchers_used.is_empty() {
        let uses = if u.switchers_used.is_empty() {
            String::new()
        } else {
            format!("the program uses {}; ", u.switchers_used.join(", "))
        };
        out.push_str(&format!(
            "  note: {uses}{} stack switches: return addresses were restored at each, so the program runs as untraced; {} calls left on a stack behind a switch lost their return (counted, not measured), and the call tree of the switching threads is approximate\n",
            count(u.stack_switches),
            count(u.frames_switched)
        ));
    }
    if u.foreign_stack_entries > 0 {
        out.push_str(&format!(
            "  warning: {} traced calls ran on another stack with no switch perfgate knows (a signal handler on sigaltstack, or a coroutine library's own switch): return probes across such a switch can change what the program does; exclude the functions that run there with --no-function\n",
            count(u.foreign_stack_entries)
        ));
    }
    out
}

fn library_lines(a: &Accounting) -> String {
    let mut out = String::new();
    if !a.libraries_not_found.is_empty() {
        let names: Vec<String> = a.libraries_not_found.iter().map(|s| terminal(s)).collect();
        out.push_str(&format!("  libraries not found: {}\n", names.join(", ")));
    }
    if !a.debug_files.is_empty() {
        out.push_str(&format!(
            "  symbols from debug files: {}\n",
            paths(&a.debug_files)
        ));
    }
    if !a.libraries_loaded_later.is_empty() {
        out.push_str(&format!(
            "  not traced: loaded at run time (dlopen): {}\n",
            paths(&a.libraries_loaded_later)
        ));
    }
    if !a.libraries_attached_late.is_empty() {
        let libs: Vec<String> = a
            .libraries_attached_late
            .iter()
            .map(|l| {
                format!(
                    "{} ({}, in {})",
                    terminal(&l.path.display().to_string()),
                    plural(l.functions, "function"),
                    plural(l.processes, "process")
                )
            })
            .collect();
        out.push_str(&format!(
            "  attached late, at dlopen: {}\n",
            libs.join(", ")
        ));
    }
    out
}

fn slow_probe_lines(profile: &Profile, verbose: bool) -> String {
    let slow: Vec<_> = profile.single_stepped().collect();
    if slow.is_empty() {
        return String::new();
    }
    let cost = profile.accounting.probe_cost.map_or_else(
        || "~10-17 µs".to_string(),
        |c| format!("{}, calibrated", duration(c.single_step_ns)),
    );
    let mut out = format!(
        "  {} {} the kernel's single-step probe path ({cost} per call){}\n",
        plural(slow.len(), "function"),
        if slow.len() == 1 { "pays" } else { "pay" },
        if verbose {
            ":"
        } else {
            "; --verbose names them"
        }
    );
    if verbose {
        for f in &slow {
            out.push_str(&format!(
                "    {} ({})\n",
                terminal(&f.name),
                terminal(&f.module)
            ));
        }
        out.push_str(
            "    hint: build with clang -fpatchable-function-entry=5 (a 5-byte nop at each entry) to make probes ~30× cheaper\n",
        );
    }
    out
}

/// `probes: 3 emulated, 1 single-stepped (slow); placement moved 2 past their first instruction (1
/// single-stepped → emulated)`.
fn probe_kinds_line(profile: &Profile) -> String {
    let count = |f: &dyn Fn(&crate::profile::FunctionInfo) -> bool| {
        profile.functions.iter().filter(|x| f(x)).count()
    };
    let parts: Vec<String> = ProbeKind::ALL
        .iter()
        .map(|k| (k, count(&|f| f.probe == *k)))
        .filter(|(_, n)| *n > 0)
        .map(|(k, n)| format!("{n} {}", k.describe()))
        .collect();
    let moved = count(&|f| f.probe_offset > 0);
    let mut line = format!("  probes: {}", parts.join(", "));
    if moved > 0 {
        let at_entry = |k: ProbeKind| count(&|f| f.entry_probe.unwrap_or(f.probe) == k);
        let before: Vec<String> = ProbeKind::ALL
            .iter()
            .map(|k| (k, at_entry(*k)))
            .filter(|(_, n)| *n > 0)
            .map(|(k, n)| format!("{n} {}", k.describe()))
            .collect();
        line.push_str(&format!(
            "; placement moved {moved} past their first instruction (on first bytes: {})",
            before.join(", ")
        ));
    }
    line.push('\n');
    line
}

fn verbose_lines(profile: &Profile) -> String {
    let a = &profile.accounting;
    let mut out = String::new();
    for f in profile.functions.iter().filter(|f| f.probe_offset > 0) {
        out.push_str(&format!(
            "  probe at +{} ({}, on the first byte {}): {} ({})\n",
            f.probe_offset,
            f.probe.describe(),
            f.entry_probe.unwrap_or(f.probe).describe(),
            terminal(&f.name),
            terminal(&f.module)
        ));
    }
    out.push_str(&format!(
        "  attach {}, detach {} ({} probes{})\n",
        duration(a.attach_ns as f64),
        duration(a.detach_ns as f64),
        profile.functions.len(),
        match (a.probe_mode.as_deref(), a.session_probes) {
            (Some("classic"), _) => ", classic uprobes: two per function",
            (Some("session"), _) | (None, true) => ", uprobe.session",
            _ => ", entry + return probes",
        }
    ));
    if let Some(c) = a.probe_cost {
        out.push_str(&format!(
            "  probe cost per traced call (calibrated): {} on a 5-byte nop, {} emulated, {} single-stepped \
             (of which inside the call's own time, taken from its self time: {}, {}, {})\n",
            duration(c.nop5_ns),
            duration(c.emulated_ns),
            duration(c.single_step_ns),
            duration(c.inside(ProbeKind::Nop5)),
            duration(c.inside(ProbeKind::Emulated)),
            duration(c.inside(ProbeKind::SingleStep)),
        ));
    }
    if !a.running_at_attach.is_empty() {
        let names: Vec<String> = a.running_at_attach.iter().map(|n| terminal(n)).collect();
        out.push_str(&format!(
            "  running when perfgate attached: {}\n",
            names.join(", ")
        ));
    }
    for s in &a.skipped_names {
        out.push_str(&format!(
            "  skipped ({}): {}\n",
            s.reason,
            terminal(&s.name)
        ));
    }
    out
}

/// Paths as the terminal may show them, separated by commas.
fn paths(list: &[std::path::PathBuf]) -> String {
    let shown: Vec<String> = list
        .iter()
        .map(|p| terminal(&p.display().to_string()))
        .collect();
    shown.join(", ")
}
