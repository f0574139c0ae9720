//! The only `unsafe` of perfgate that touches the kernel: the libbpf-rs skeleton, attach and detach,
//! reading the maps and the ring buffer. One call to [`trace`] is one traced run.
use std::cell::RefCell;
use std::mem::MaybeUninit;
use std::os::unix::ffi::OsStrExt;
use std::rc::Rc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use libbpf_rs::skel::{OpenSkel, SkelBuilder};
use libbpf_rs::{Link, MapCore, MapFlags, UprobeMultiOpts};

use crate::plan::Plan;
use crate::profile::file::{Event, EventKind};
use crate::profile::hist::BUCKETS;
use crate::profile::{FuncStats, Histogram, LossCounters, ProbeCosts, ProbeKind, TimeStats};
use crate::run::{Finished, HeldChild};

#[allow(
    missing_docs,
    clippy::all,
    unsafe_op_in_unsafe_fn,
    non_camel_case_types,
    dead_code
)]
mod skel {
    include!(concat!(env!("OUT_DIR"), "/perfgate.skel.rs"));
}
use skel::{types, PerfgateSkelBuilder};

const _: () = assert!(
    BUCKETS == 328,
    "histogram size must match PG_HIST_BUCKETS in bpf/perfgate.h"
);

/// Settings of one traced run.
#[derive(Debug, Clone)]
pub struct TraceOptions {
    /// Stream entry/exit events (trace mode) besides the in-kernel aggregation.
    pub events: bool,
    /// Ring buffer size in bytes (power of two, at least a page); trace mode only.
    pub ringbuf_bytes: u32,
    /// Use the uprobe.multi + uretprobe.multi pair even where `uprobe.session` exists.
    pub no_session: bool,
    /// Kill the benchmark after this long.
    pub timeout: Option<Duration>,
    /// Calibrated cost of one traced call per probe kind (see [`ProbeCosts`]); zero = not compensated.
    pub probe_cost: Option<ProbeCosts>,
}

impl Default for TraceOptions {
    fn default() -> Self {
        TraceOptions {
            events: false,
            ringbuf_bytes: 64 << 20,
            no_session: false,
            timeout: None,
            probe_cost: None,
        }
    }
}

/// What the kernel measured in one run.
#[derive(Debug, Clone, Default)]
pub struct Measured {
    /// Per (thread, function).
    pub stats: Vec<FuncStats>,
    /// Everything that went wrong.
    pub lost: LossCounters,
    /// Whether `uprobe.session` was used.
    pub session: bool,
    /// Attach time of all links, ns.
    pub attach_ns: u64,
    /// Detach time of all links, ns.
    pub detach_ns: u64,
    /// Executable files the benchmark had mapped while it ran (sampled every 10 ms).
    pub mapped: Vec<std::path::PathBuf>,
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

fn is_permission_error(e: &libbpf_rs::Error) -> bool {
    matches!(e.kind(), libbpf_rs::ErrorKind::PermissionDenied)
}

/// Whether perfgate can load BPF programs here: one clear line when it cannot.
pub fn check_privileges() -> Result<()> {
    if is_root() {
        return Ok(());
    }
    let caps = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let eff = caps
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .unwrap_or(0);
    const CAP_SYS_ADMIN: u64 = 21;
    const CAP_PERFMON: u64 = 38;
    const CAP_BPF: u64 = 39;
    let has = |c: u64| eff & (1 << c) != 0;
    if has(CAP_SYS_ADMIN) || (has(CAP_BPF) && has(CAP_PERFMON)) {
        return Ok(());
    }
    bail!("tracing needs root or CAP_BPF+CAP_PERFMON: run it with sudo (the benchmark still runs as you)")
}

/// Traces one run: loads the program, attaches every planned function with the child's PID as filter,
/// releases the child, streams events to `on_event` (trace mode), waits for exit, detaches, reads the maps.
pub fn trace(
    plan: &Plan,
    child: &mut HeldChild,
    opts: &TraceOptions,
    on_event: &mut dyn FnMut(&Event) -> Result<()>,
) -> Result<(Measured, Finished)> {
    match trace_with(plan, child, opts, !opts.no_session, on_event) {
        Err(e) if !opts.no_session && e.downcast_ref::<SessionUnsupported>().is_some() => {
            trace_with(plan, child, opts, false, on_event)
        }
        r => r,
    }
}

#[derive(Debug, thiserror::Error)]
#[error("uprobe.session is not supported by this kernel")]
struct SessionUnsupported;

/// libbpf's own messages are noise for users; `PERFGATE_DEBUG=1` shows them.
fn quiet_libbpf() {
    if std::env::var_os("PERFGATE_DEBUG").is_none() {
        libbpf_rs::set_print(None);
    }
}

fn trace_with(
    plan: &Plan,
    child: &mut HeldChild,
    opts: &TraceOptions,
    session: bool,
    on_event: &mut dyn FnMut(&Event) -> Result<()>,
) -> Result<(Measured, Finished)> {
    quiet_libbpf();
    let rb_bytes = if opts.events {
        opts.ringbuf_bytes.max(4096).next_power_of_two()
    } else {
        4096
    };
    let mut storage = MaybeUninit::uninit();
    let mut open = PerfgateSkelBuilder::default()
        .open(&mut storage)
        .context("opening the BPF object")?;
    let rodata = open
        .maps
        .rodata_data
        .as_deref_mut()
        .context("BPF object has no read-only data")?;
    rodata.target_tgid = child.pid();
    rodata.r_debug_delta = plan.loader_hook.as_ref().map_or(0, |h| h.r_debug_delta);
    // The reader polls every few ms anyway; a wakeup is only needed before the buffer could fill up.
    rodata.wakeup_bytes = (rb_bytes / 4) as u64;
    rodata.trace_events = opts.events;
    if let Some(c) = opts.probe_cost {
        // Indexed by enum pg_probe_kind.
        let kinds = [
            ProbeKind::Nop5,
            ProbeKind::Emulated,
            ProbeKind::SingleStep,
            ProbeKind::Unknown,
        ];
        for (slot, kind) in rodata.probe_cost_ns.iter_mut().zip(kinds) {
            *slot = c.of(kind).max(0.0).round() as u64;
        }
    }
    open.maps.events.set_max_entries(rb_bytes)?;
    // Up to every function on ~16 threads before we report the map as full.
    let entries = (plan.functions.len() as u32)
        .saturating_mul(16)
        .clamp(65_536, 1 << 22);
    open.maps.stats.set_max_entries(entries)?;
    open.progs.pg_session.set_autoload(session);
    open.progs.pg_entry.set_autoload(!session);
    open.progs.pg_return.set_autoload(!session);
    let skel = match open.load() {
        Ok(s) => s,
        // As root, EACCES at load is the verifier refusing the program, not a missing privilege.
        Err(e) if is_permission_error(&e) && !is_root() => {
            bail!("loading the BPF program was refused: run perfgate as root or with CAP_BPF+CAP_PERFMON")
        }
        Err(_) if session => return Err(SessionUnsupported.into()),
        Err(e) => {
            return Err(e)
                .context("loading the BPF program (kernel ≥ 6.6 with BTF and uprobe_multi needed; PERFGATE_DEBUG=1 shows the kernel's log)")
        }
    };

    for file in &plan.files {
        file.check_unchanged()?;
    }
    let pid = child.pid() as i32;
    let t0 = Instant::now();
    let mut links: Vec<Link> = Vec::with_capacity(plan.files.len() * 2 + 1);
    for file in &plan.files {
        let offsets: Vec<usize> = file.offsets.iter().map(|&o| o as usize).collect();
        let cookies: Vec<u64> = file
            .ids
            .iter()
            .map(|&id| {
                let kind = plan
                    .functions
                    .get(id as usize)
                    .map_or(3, |f| kind_index(f.probe));
                id as u64 | (kind << 32)
            })
            .collect();
        let attach = |prog: &libbpf_rs::ProgramMut, retprobe: bool, session: bool| {
            let opts = UprobeMultiOpts {
                offsets: offsets.clone(),
                cookies: cookies.clone(),
                retprobe,
                session,
                ..Default::default()
            };
            prog.attach_uprobe_multi_with_opts(pid, &file.path, "", opts)
        };
        let result = if session {
            attach(&skel.progs.pg_session, false, true).map(|l| vec![l])
        } else {
            attach(&skel.progs.pg_entry, false, false)
                .and_then(|a| attach(&skel.progs.pg_return, true, false).map(|b| vec![a, b]))
        };
        match result {
            Ok(l) => links.extend(l),
            Err(e) if session && !is_permission_error(&e) && links.is_empty() => {
                drop(links);
                return Err(SessionUnsupported.into());
            }
            Err(e) => {
                return Err(e).with_context(|| {
                    format!(
                        "attaching {} probes to {}",
                        file.offsets.len(),
                        file.path.display()
                    )
                })
            }
        }
    }
    let attach_ns = t0.elapsed().as_nanos() as u64;
    // Best effort: without the loader hook, sampling /proc/PID/maps still notices most dlopen'd libraries.
    if let Some(hook) = &plan.loader_hook {
        // uprobe_multi: a perf-event uprobe takes ~120 ms to detach, a multi link a fraction of that.
        let opts = UprobeMultiOpts {
            offsets: vec![hook.offset as usize],
            ..Default::default()
        };
        if let Ok(l) = skel
            .progs
            .pg_dl_change
            .attach_uprobe_multi_with_opts(pid, &hook.path, "", opts)
        {
            links.push(l);
        }
    }
    links.push(
        skel.progs
            .pg_thread_exit
            .attach()
            .context("attaching the thread-exit tracepoint")?,
    );

    let pending: Rc<RefCell<Vec<Event>>> = Rc::new(RefCell::new(Vec::new()));
    let ring = if opts.events {
        let sink = Rc::clone(&pending);
        let mut builder = libbpf_rs::RingBufferBuilder::new();
        builder.add(&skel.maps.events, move |data: &[u8]| {
            if let Some(e) = decode_event(data) {
                sink.borrow_mut().push(e);
            }
            0
        })?;
        Some(builder.build()?)
    } else {
        None
    };
    let mut drain = |pending: &Rc<RefCell<Vec<Event>>>| -> Result<()> {
        let batch = std::mem::take(&mut *pending.borrow_mut());
        batch.iter().try_for_each(&mut *on_event)
    };

    child.release()?;
    let deadline = opts.timeout.map(|t| Instant::now() + t);
    let mut mapped = std::collections::BTreeSet::new();
    let mut last_maps: Option<Instant> = None;
    let finished = loop {
        if let Some(f) = child.try_wait(deadline)? {
            break f;
        }
        // Libraries loaded with dlopen cannot be probed from the start: notice them to report them.
        if last_maps.is_none_or(|t| t.elapsed() >= Duration::from_millis(10)) {
            mapped.extend(child.mapped_files(&plan.program));
            last_maps = Some(Instant::now());
        }
        match &ring {
            Some(rb) => {
                rb.poll(Duration::from_millis(10)).ok();
                drain(&pending)?;
            }
            None => std::thread::sleep(Duration::from_millis(2)),
        }
    };
    if let Some(rb) = &ring {
        rb.consume().ok();
        drain(&pending)?;
    }

    let t1 = Instant::now();
    // Each link's detach waits for its own RCU grace period: closing them in parallel overlaps the waits.
    std::thread::scope(|scope| {
        for link in links {
            scope.spawn(move || drop(link));
        }
    });
    let detach_ns = t1.elapsed().as_nanos() as u64;

    let mut measured = Measured {
        session,
        attach_ns,
        detach_ns,
        mapped: mapped.into_iter().collect(),
        ..Measured::default()
    };
    for key in skel.maps.stats.keys() {
        let Some(value) = skel.maps.stats.lookup(&key, MapFlags::ANY)? else {
            continue;
        };
        let (Some(k), Some(v)) = (
            read_pod::<types::pg_key>(&key),
            read_pod::<types::pg_stats>(&value),
        ) else {
            continue;
        };
        measured.stats.push(FuncStats {
            func: k.func,
            tid: k.tid,
            calls: v.calls,
            overhead_ns: v.overhead_sum,
            inclusive: TimeStats {
                sum_ns: v.incl_sum,
                min_ns: v.incl_min,
                max_ns: v.incl_max,
                hist: Histogram::from_dense(&v.incl_hist),
            },
            self_time: TimeStats {
                sum_ns: v.self_sum,
                min_ns: v.self_min,
                max_ns: v.self_max,
                hist: Histogram::from_dense(&v.self_hist),
            },
        });
    }
    measured.stats.sort_by_key(|s| (s.tid, s.func));
    for key in skel.maps.dl_libs.keys() {
        let end = key.iter().position(|&b| b == 0).unwrap_or(key.len());
        let name = std::path::PathBuf::from(std::ffi::OsStr::from_bytes(&key[..end]));
        // Entries without a directory (the vDSO, the program itself) are not files.
        if name.is_absolute() || name.to_string_lossy().contains('/') {
            measured.mapped.push(name);
        }
    }
    measured.mapped.sort();
    measured.mapped.dedup();
    let counter = |i: u32| -> Result<Vec<u64>> {
        let per_cpu = skel
            .maps
            .counters
            .lookup_percpu(&i.to_ne_bytes(), MapFlags::ANY)?
            .unwrap_or_default();
        Ok(per_cpu
            .iter()
            .map(|b| read_pod::<u64>(b).unwrap_or(0))
            .collect())
    };
    let total = |i: u32| -> Result<u64> { Ok(counter(i)?.iter().sum()) };
    let l = &mut measured.lost;
    l.depth_exceeded = total(0)?;
    l.return_without_entry = total(1)?;
    l.stats_map_full = total(2)?;
    l.stack_map_full = total(3)?;
    l.frames_abandoned = total(4)?;
    l.unfinished_at_exit = total(5)?;
    l.events_dropped_per_cpu = counter(6)?;
    l.events_dropped = l.events_dropped_per_cpu.iter().sum();
    Ok((measured, finished))
}

/// `enum pg_probe_kind` of a probe kind.
fn kind_index(k: ProbeKind) -> u64 {
    match k {
        ProbeKind::Nop5 => 0,
        ProbeKind::Emulated => 1,
        ProbeKind::SingleStep => 2,
        ProbeKind::Unknown => 3,
    }
}

fn decode_event(data: &[u8]) -> Option<Event> {
    let e = read_pod::<types::pg_event>(data)?;
    Some(Event {
        ts: e.ts,
        tid: e.tid,
        func: e.func,
        depth: e.depth,
        kind: if e.kind == 0 {
            EventKind::Entry
        } else {
            EventKind::Exit
        },
    })
}

/// Plain-old-data types the kernel fills.
trait Pod: Copy {}
impl Pod for u64 {}
impl Pod for types::pg_key {}
impl Pod for types::pg_stats {}
impl Pod for types::pg_event {}

fn read_pod<T: Pod>(bytes: &[u8]) -> Option<T> {
    if bytes.len() < std::mem::size_of::<T>() {
        return None;
    }
    // SAFETY: T is a repr(C) struct of integers (Pod), so every bit pattern is valid, and the slice holds
    // at least size_of::<T>() bytes; read_unaligned copes with the Vec's alignment.
    Some(unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast::<T>()) })
}
