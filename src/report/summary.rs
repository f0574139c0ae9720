//! The summary table of a profile, and the accounting lines under it: everything the plan skipped and the
//! kernel lost is said there, so no view hides missing data.
use comfy_table::presets::UTF8_BORDERS_ONLY;
use comfy_table::{CellAlignment, Table};

use super::escape::terminal;
use super::units::{count, duration, plural};
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
    let mut t = Table::new();
    t.load_style(UTF8_BORDERS_ONLY);
    let mut header = HEADER.to_vec();
    if opts.per_thread {
        header.insert(0, "TID");
    }
    t.set_header(header);
    let shown = if opts.limit == 0 {
        rows.len()
    } else {
        rows.len().min(opts.limit)
    };
    for s in &rows[..shown] {
        t.add_row(row(profile, s, opts));
    }
    // Every column but the function name holds a number.
    let numbers = if opts.per_thread { 8 } else { 7 };
    for i in 0..numbers {
        if let Some(c) = t.column_mut(i) {
            c.set_cell_alignment(CellAlignment::Right);
        }
    }
    let mut out = t.to_string();
    out.push('\n');
    if shown < rows.len() {
        out.push_str(&format!(
            "… {} more rows (--limit 0 shows all)\n",
            rows.len() - shown
        ));
    }
    out.push_str(&footnotes(profile, opts));
    out.push_str(&accounting(profile, opts.verbose));
    out
}

/// One row of the table.
fn row(profile: &Profile, s: &FuncStats, opts: SummaryOptions) -> Vec<String> {
    let name = profile.function(s.func).map_or_else(
        || format!("#{}", s.func),
        |f| format!("{} ({})", terminal(&f.name), terminal(&f.module)),
    );
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
            "{never} traced functions completed no call{open}\n"
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
    out.push_str(&unwinding_lines(&a.unwinding));
    out.push_str(&library_lines(a));
    for w in &a.warnings {
        out.push_str(&format!("  warning: {}\n", terminal(w)));
    }
    out.push_str(&slow_probe_lines(profile, verbose));
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
    format!(
        "traced {} in {}; {skipped}; {} lost\n",
        plural(profile.functions.len(), "function"),
        plural(a.files.len(), "file"),
        count(l.lost_calls() + l.events_dropped),
    )
}

fn loss_lines(l: &LossCounters) -> String {
    let mut out = String::new();
    let losses = [
        (
            l.depth_exceeded,
            "calls deeper than 64 frames not measured (their time stays in the caller)",
        ),
        (l.return_without_entry, "returns without a matching entry"),
        (l.stats_map_full, "calls not stored: statistics map full"),
        (l.stack_map_full, "calls not measured: too many threads"),
        (
            l.events_dropped,
            "trace events dropped: ring buffer full (raise --buffer-size)",
        ),
    ];
    for (n, what) in losses {
        if n > 0 {
            out.push_str(&format!("  lost: {} {what}\n", count(n)));
        }
    }
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
    if l.frames_abandoned > 0 {
        out.push_str(&format!(
            "  note: {} calls were left by longjmp without returning; their time is in their caller\n",
            count(l.frames_abandoned)
        ));
    }
    if l.unfinished_at_exit > 0 {
        out.push_str(&format!(
            "  note: {} calls were still running when their thread exited (e.g. exit() or pthread_exit())\n",
            count(l.unfinished_at_exit)
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
    if !a.libraries_loaded_later.is_empty() {
        let paths: Vec<String> = a
            .libraries_loaded_later
            .iter()
            .map(|p| terminal(&p.display().to_string()))
            .collect();
        out.push_str(&format!(
            "  not traced: loaded at run time (dlopen): {}\n",
            paths.join(", ")
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
        "  {} functions pay the kernel's single-step probe path ({cost} per call){}\n",
        slow.len(),
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

fn verbose_lines(profile: &Profile) -> String {
    let a = &profile.accounting;
    let parts: Vec<String> = ProbeKind::ALL
        .iter()
        .map(|k| {
            (
                k,
                profile.functions.iter().filter(|f| f.probe == *k).count(),
            )
        })
        .filter(|(_, n)| *n > 0)
        .map(|(k, n)| format!("{n} {}", k.describe()))
        .collect();
    let mut out = format!("  probes: {}\n", parts.join(", "));
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
            "  probe cost per traced call (calibrated): {} on a 5-byte nop, {} emulated, {} single-stepped\n",
            duration(c.nop5_ns),
            duration(c.emulated_ns),
            duration(c.single_step_ns)
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
