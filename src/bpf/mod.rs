//! The BPF side of one traced run: load the program with its settings, attach probes, read events from the
//! ring buffer, detach, and read the maps. With `sys/`, the only place of perfgate's `unsafe`.
//!
//! This layer never drives a process: it knows a PID only as the filter of its probes. The session layer
//! (`session/`) starts the benchmark, calls [`Program`] in order — [`Program::load`],
//! [`Program::attach_functions`] per file, [`Program::attach_loader_hook`],
//! [`Program::attach_thread_exit`], then [`Program::poll_events`] while the benchmark runs,
//! [`Program::detach`], [`Program::measured`] — and joins the two. Every kernel type is read through
//! [`kernel`], the one decoder of the generated skeleton.
use std::cell::RefCell;
use std::mem::MaybeUninit;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use libbpf_rs::skel::{OpenSkel, SkelBuilder};
use libbpf_rs::{Link, MapCore, MapFlags, OpenObject, UprobeMultiOpts};

use crate::elf::FileOffset;
use crate::profile::file::Event;
use crate::profile::{FuncId, FuncStats, LossCounters, ProbeCosts, ProbeKind};

pub mod kernel;
use kernel::skel::{PerfgateSkel, PerfgateSkelBuilder};
pub use kernel::MAX_DEPTH;

/// Settings of the program, fixed before it is loaded.
#[derive(Debug, Clone)]
pub struct ProgramConfig {
    /// The process whose calls are counted (the probes' PID filter).
    pub target_pid: u32,
    /// Stream entry/exit events (trace mode) besides the in-kernel aggregation.
    pub events: bool,
    /// Ring buffer size in bytes (rounded up to a power of two, at least a page); trace mode only.
    pub ringbuf_bytes: u32,
    /// One `uprobe.session` program for entry and return; otherwise an entry and a return program.
    pub session: bool,
    /// Calibrated cost of one traced call per probe kind, accumulated over descendants; `None` = zero.
    pub probe_cost: Option<ProbeCosts>,
    /// `_r_debug` minus `_dl_debug_state` in the loader, when its link map is watched.
    pub r_debug_delta: i64,
    /// Functions in the plan: sizes the statistics map.
    pub functions: usize,
}

/// One probe: a function at a file offset, and the kind of instruction there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Probe {
    /// Where in the file.
    pub offset: FileOffset,
    /// The function's id (reported back in every statistic and event).
    pub func: FuncId,
    /// How the kernel handles the instruction at `offset`: selects the calibrated cost.
    pub kind: ProbeKind,
}

/// The kernel refused `uprobe.session` (before 6.12): the caller retries without it.
#[derive(Debug, thiserror::Error)]
#[error("uprobe.session is not supported by this kernel")]
pub struct SessionUnsupported;

/// What the kernel measured in one run.
#[derive(Debug, Clone, Default)]
pub struct Measured {
    /// Per (thread, function).
    pub stats: Vec<FuncStats>,
    /// Everything that went wrong.
    pub lost: LossCounters,
    /// Whether `uprobe.session` was used.
    pub session: bool,
    /// Attach time of all links.
    pub attach: Duration,
    /// Detach time of all links.
    pub detach: Duration,
    /// Paths the loader's link map held at some point of the run (libraries loaded at start-up and
    /// with dlopen).
    pub loader_paths: Vec<PathBuf>,
}

/// The loaded program and its links.
pub struct Program<'obj> {
    skel: PerfgateSkel<'obj>,
    links: Vec<Link>,
    ring: Option<libbpf_rs::RingBuffer<'static>>,
    pending: Rc<RefCell<Vec<Event>>>,
    config: ProgramConfig,
    attach: Duration,
    detach: Duration,
}

/// Whether perfgate can load BPF programs here: one clear line when it cannot.
pub fn check_privileges() -> Result<()> {
    if crate::sys::is_root() {
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

fn is_permission_error(e: &libbpf_rs::Error) -> bool {
    matches!(e.kind(), libbpf_rs::ErrorKind::PermissionDenied)
}

/// libbpf's own messages are noise for users; `PERFGATE_DEBUG=1` shows them.
fn quiet_libbpf() {
    if std::env::var_os("PERFGATE_DEBUG").is_none() {
        libbpf_rs::set_print(None);
    }
}

impl<'obj> Program<'obj> {
    /// Opens, configures and loads the program. `storage` holds libbpf's object for the program's
    /// lifetime (the libbpf-rs idiom: `let mut storage = MaybeUninit::uninit();`).
    pub fn load(
        config: &ProgramConfig,
        storage: &'obj mut MaybeUninit<OpenObject>,
    ) -> Result<Program<'obj>> {
        quiet_libbpf();
        let rb_bytes = if config.events {
            config.ringbuf_bytes.max(4096).next_power_of_two()
        } else {
            4096
        };
        let mut open = PerfgateSkelBuilder::default()
            .open(storage)
            .context("opening the BPF object")?;
        let rodata = open
            .maps
            .rodata_data
            .as_deref_mut()
            .context("BPF object has no read-only data")?;
        rodata.target_tgid = config.target_pid;
        rodata.r_debug_delta = config.r_debug_delta;
        // The reader polls every few ms anyway; a wakeup is only needed before the buffer could fill up.
        rodata.wakeup_bytes = u64::from(rb_bytes / 4);
        rodata.trace_events = config.events;
        if let Some(c) = config.probe_cost {
            for kind in ProbeKind::ALL {
                let slot = kernel::probe_kind_value(kind).0 as usize;
                if let Some(v) = rodata.probe_cost_ns.get_mut(slot) {
                    *v = c.of(kind).max(0.0).round() as u64;
                }
            }
        }
        open.maps.events.set_max_entries(rb_bytes)?;
        // Up to every function on ~16 threads before the map is reported as full.
        let entries = u32::try_from(config.functions)
            .unwrap_or(u32::MAX)
            .saturating_mul(16)
            .clamp(65_536, 1 << 22);
        open.maps.stats.set_max_entries(entries)?;
        open.progs.pg_session.set_autoload(config.session);
        open.progs.pg_entry.set_autoload(!config.session);
        open.progs.pg_return.set_autoload(!config.session);
        let skel = match open.load() {
            Ok(s) => s,
            // As root, EACCES at load is the verifier refusing the program, not a missing privilege.
            Err(e) if is_permission_error(&e) && !crate::sys::is_root() => {
                bail!("loading the BPF program was refused: run perfgate as root or with CAP_BPF+CAP_PERFMON")
            }
            Err(_) if config.session => return Err(SessionUnsupported.into()),
            Err(e) => {
                return Err(e).context(
                    "loading the BPF program (kernel ≥ 6.6 with BTF and uprobe_multi needed; PERFGATE_DEBUG=1 shows the kernel's log)",
                )
            }
        };
        Ok(Program {
            skel,
            links: Vec::new(),
            ring: None,
            pending: Rc::new(RefCell::new(Vec::new())),
            config: config.clone(),
            attach: Duration::ZERO,
            detach: Duration::ZERO,
        })
    }

    /// Attaches the probes of one file, filtered on the target PID: one `uprobe_multi` link (session
    /// mode) or two (entry + return).
    pub fn attach_functions(&mut self, path: &Path, probes: &[Probe]) -> Result<()> {
        let t0 = Instant::now();
        let offsets: Vec<usize> = probes.iter().map(|p| p.offset.0 as usize).collect();
        let cookies: Vec<u64> = probes
            .iter()
            .map(|p| kernel::cookie(p.func, p.kind))
            .collect();
        let pid = self.config.target_pid as i32;
        let attach = |prog: &libbpf_rs::ProgramMut, retprobe: bool, session: bool| {
            let opts = UprobeMultiOpts {
                offsets: offsets.clone(),
                cookies: cookies.clone(),
                retprobe,
                session,
                ..Default::default()
            };
            prog.attach_uprobe_multi_with_opts(pid, path, "", opts)
        };
        let result = if self.config.session {
            attach(&self.skel.progs.pg_session, false, true).map(|l| vec![l])
        } else {
            attach(&self.skel.progs.pg_entry, false, false)
                .and_then(|a| attach(&self.skel.progs.pg_return, true, false).map(|b| vec![a, b]))
        };
        self.attach += t0.elapsed();
        match result {
            Ok(l) => {
                self.links.extend(l);
                Ok(())
            }
            Err(e) if self.config.session && !is_permission_error(&e) && self.links.is_empty() => {
                Err(SessionUnsupported.into())
            }
            Err(e) => Err(e).with_context(|| {
                format!("attaching {} probes to {}", probes.len(), path.display())
            }),
        }
    }

    /// Watches the loader's link map (`_dl_debug_state` at `offset` in `loader`); false when the kernel
    /// refused (then only sampling `/proc/PID/maps` is left).
    pub fn attach_loader_hook(&mut self, loader: &Path, offset: FileOffset) -> bool {
        let t0 = Instant::now();
        // uprobe_multi: a perf-event uprobe takes ~120 ms to detach, a multi link a fraction of that.
        let opts = UprobeMultiOpts {
            offsets: vec![offset.0 as usize],
            ..Default::default()
        };
        let link = self.skel.progs.pg_dl_change.attach_uprobe_multi_with_opts(
            self.config.target_pid as i32,
            loader,
            "",
            opts,
        );
        self.attach += t0.elapsed();
        match link {
            Ok(l) => {
                self.links.push(l);
                true
            }
            Err(_) => false,
        }
    }

    /// Attaches the thread-exit tracepoint that closes the frames of exiting threads, and, in trace
    /// mode, opens the ring buffer.
    pub fn attach_thread_exit(&mut self) -> Result<()> {
        let t0 = Instant::now();
        let link = self
            .skel
            .progs
            .pg_thread_exit
            .attach()
            .context("attaching the thread-exit tracepoint")?;
        self.links.push(link);
        if self.config.events && self.ring.is_none() {
            let sink = Rc::clone(&self.pending);
            let mut builder = libbpf_rs::RingBufferBuilder::new();
            builder.add(&self.skel.maps.events, move |data: &[u8]| {
                if let Some(e) = kernel::decode_event(data) {
                    sink.borrow_mut().push(e);
                }
                0
            })?;
            self.ring = Some(builder.build()?);
        }
        self.attach += t0.elapsed();
        Ok(())
    }

    /// Waits up to `timeout` for events and hands every one to `on_event`; in gate mode it only sleeps.
    pub fn poll_events(
        &mut self,
        timeout: Duration,
        on_event: &mut dyn FnMut(&Event) -> Result<()>,
    ) -> Result<()> {
        match &self.ring {
            Some(rb) => {
                rb.poll(timeout).ok();
            }
            None => std::thread::sleep(timeout),
        }
        self.drain(on_event)
    }

    /// Hands every event still in the ring buffer to `on_event` without waiting.
    pub fn drain_events(&mut self, on_event: &mut dyn FnMut(&Event) -> Result<()>) -> Result<()> {
        if let Some(rb) = &self.ring {
            rb.consume().ok();
        }
        self.drain(on_event)
    }

    fn drain(&mut self, on_event: &mut dyn FnMut(&Event) -> Result<()>) -> Result<()> {
        let batch = std::mem::take(&mut *self.pending.borrow_mut());
        batch.iter().try_for_each(on_event)
    }

    /// Closes every link. Each close waits for its own RCU grace period: closing them in parallel
    /// overlaps the waits. The maps stay readable.
    pub fn detach(&mut self) {
        let t0 = Instant::now();
        let links = std::mem::take(&mut self.links);
        std::thread::scope(|scope| {
            for link in links {
                scope.spawn(move || drop(link));
            }
        });
        self.detach += t0.elapsed();
    }

    /// Reads what the kernel measured: per (thread, function) statistics, loss counters, the loader's
    /// paths. Call after [`Program::detach`], so no probe writes while the maps are read.
    pub fn measured(&self) -> Result<Measured> {
        let mut stats = Vec::new();
        for key in self.skel.maps.stats.keys() {
            let Some(value) = self.skel.maps.stats.lookup(&key, MapFlags::ANY)? else {
                continue;
            };
            stats.extend(kernel::decode_stats(&key, &value));
        }
        stats.sort_by_key(|s| (s.tid, s.func));
        let mut per_cpu = Vec::with_capacity(kernel::COUNTERS);
        for i in 0..kernel::COUNTERS as u32 {
            let values = self
                .skel
                .maps
                .counters
                .lookup_percpu(&i.to_ne_bytes(), MapFlags::ANY)?
                .unwrap_or_default();
            per_cpu.push(
                values
                    .iter()
                    .map(|b| kernel::read_pod::<u64>(b).unwrap_or(0))
                    .collect(),
            );
        }
        let mut loader_paths: Vec<PathBuf> = self
            .skel
            .maps
            .dl_libs
            .keys()
            .map(|k| kernel::decode_lib_name(&k))
            .collect();
        loader_paths.sort();
        loader_paths.dedup();
        Ok(Measured {
            stats,
            lost: kernel::decode_counters(&per_cpu),
            session: self.config.session,
            attach: self.attach,
            detach: self.detach,
            loader_paths,
        })
    }
}

impl Drop for Program<'_> {
    fn drop(&mut self) {
        self.detach();
    }
}
