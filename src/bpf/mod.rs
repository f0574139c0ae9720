//! The BPF side of one traced run: load the program with its settings, attach probes, read events from the
//! ring buffer, detach, and read the maps. With `sys/`, the only place of perfgate's `unsafe`.
//!
//! This layer never drives a process: it knows a PID only as the filter of its probes. The session layer
//! (`session/`) starts the benchmark, calls [`Program`] in order — [`Program::load`],
//! [`Program::attach_functions`] per file, [`Program::attach_loader_hook`],
//! [`Program::attach_stack_hooks`] per file, [`Program::attach_thread_exit`], then
//! [`Program::poll_events`] while the benchmark runs (and, with the stop writer, applies the
//! [`Program::slot_queue`] at each of its stops),
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

mod follow;
pub mod kernel;
pub use follow::{LinkCloser, LinkMapName, Links};
mod writer;
use kernel::skel::{PerfgateSkel, PerfgateSkelBuilder};
pub use kernel::{HookKind, MAX_DEPTH};
pub use writer::{bpf_writes_allowed, QueuedStore, SlotQueue, SlotWriter};

/// Threads that close links at once.
pub const DETACH_THREADS: usize = 32;

/// Threads closing the links of finished runs ([`Program::detach_in_background`]).
static CLOSING: std::sync::Mutex<Vec<std::thread::JoinHandle<()>>> =
    std::sync::Mutex::new(Vec::new());

/// Waits until every link handed to [`Program::detach_in_background`] is closed: before perfgate exits,
/// so that no probe of a finished run is still registered when it says it is done.
pub fn finish_closing() {
    let handles = std::mem::take(&mut *CLOSING.lock().unwrap_or_else(|e| e.into_inner()));
    for h in handles {
        let _ = h.join();
    }
}

/// Settings of the program, fixed before it is loaded.
#[derive(Debug, Clone)]
pub struct ProgramConfig {
    /// The process whose calls are counted (the probes' PID filter).
    pub target_pid: u32,
    /// Stream entry/exit events (trace mode) besides the in-kernel aggregation.
    pub events: bool,
    /// Ring buffer size in bytes (rounded up to a power of two, at least a page); trace mode only.
    pub ringbuf_bytes: u32,
    /// How the probes are attached.
    pub mode: ProbeMode,
    /// Calibrated cost of one traced call per probe kind, accumulated over descendants; `None` = zero.
    pub probe_cost: Option<ProbeCosts>,
    /// `_r_debug` minus `_dl_debug_state` in the loader, when its link map is watched.
    pub r_debug_delta: i64,
    /// Functions in the plan: sizes the statistics map.
    pub functions: usize,
    /// Keep per-function totals user space reads while the benchmark runs ([`Program::survey_totals`]).
    pub survey: bool,
    /// `perfgate bench cost` only: attach the minimal counting program (`pg_count`: one atomic add per
    /// hit) instead of perfgate's, the same way (session mode only); nothing is measured but its hits.
    pub count_only: bool,
    /// Processes other than `target_pid` are followed (their PIDs are added with
    /// [`Program::follow_process`]).
    pub follow: bool,
    /// A thread of a held process that adds a library to the loader's link map is stopped for perfgate
    /// (see `run/follow.rs`).
    pub hold_dlopen: bool,
    /// Let the program store return addresses itself when the kernel allows `bpf_probe_write_user`
    /// (false: always the stop writer).
    pub bpf_writes: bool,
}

/// How probes are attached, from the newest kernel interface to the oldest.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ProbeMode {
    /// One `uprobe.session` program through `uprobe_multi`, one link per file (Linux 6.12+).
    #[default]
    Session,
    /// An entry and a return program through `uprobe_multi`, two links per file (Linux 6.6+).
    Multi,
    /// Classic perf-event uprobes, two links per function (any kernel with BPF cookies, 5.15+): slow to
    /// attach and detach with many functions.
    Classic,
}

impl ProbeMode {
    /// Every interface, newest first.
    pub const ALL: [ProbeMode; 3] = [ProbeMode::Session, ProbeMode::Multi, ProbeMode::Classic];

    /// The next older interface to try when this one is refused.
    pub fn fallback(self) -> Option<ProbeMode> {
        match self {
            ProbeMode::Session => Some(ProbeMode::Multi),
            ProbeMode::Multi => Some(ProbeMode::Classic),
            ProbeMode::Classic => None,
        }
    }

    /// The name users read and pass to `--probes`.
    pub fn name(self) -> &'static str {
        match self {
            ProbeMode::Session => "session",
            ProbeMode::Multi => "multi",
            ProbeMode::Classic => "classic",
        }
    }
}

/// What the running kernel offers, by its release (backported features are found by trying: every mode
/// falls back to the next on refusal).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Features {
    /// `/sys/kernel/btf/vmlinux` exists.
    pub btf: bool,
    /// Kernel release, major and minor.
    pub release: (u32, u32),
}

impl Features {
    /// This machine's.
    pub fn detect() -> Features {
        let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
        Features {
            btf: std::path::Path::new("/sys/kernel/btf/vmlinux").exists(),
            release: parse_release(&release),
        }
    }

    /// The newest probe interface this kernel should have: session programs from 6.12, `uprobe_multi`
    /// from 6.6 (its PID filter is fixed in 6.10; the program checks the process itself anyway).
    pub fn best_mode(&self) -> ProbeMode {
        if self.release >= (6, 12) {
            ProbeMode::Session
        } else if self.release >= (6, 6) {
            ProbeMode::Multi
        } else {
            ProbeMode::Classic
        }
    }
}

/// `6.18.44-fc` → (6, 18); unreadable parts read as 0.
pub fn parse_release(s: &str) -> (u32, u32) {
    let mut parts = s
        .trim()
        .split(|c: char| !c.is_ascii_digit())
        .map(|p| p.parse::<u32>().unwrap_or(0));
    (parts.next().unwrap_or(0), parts.next().unwrap_or(0))
}

/// The kernel refused this probe interface: the caller retries with [`ProbeMode::fallback`].
#[derive(Debug, thiserror::Error)]
#[error("probe interface `{}` is not supported by this kernel", .0.name())]
pub struct ModeUnsupported(pub ProbeMode);

/// Functions the survey counts: ids at or above are traced, not surveyed.
pub const SURVEY_MAX: usize = kernel::SURVEY_MAX;

/// A function's survey totals so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SurveyTotal {
    /// Completed calls.
    pub calls: u64,
    /// Inclusive time summed, ns.
    pub inclusive_ns: u64,
    /// Calibrated probe cost of traced descendants summed, ns.
    pub overhead_ns: u64,
}

impl SurveyTotal {
    /// What was added since `earlier`, a view of the same totals taken before.
    pub fn since(&self, earlier: &SurveyTotal) -> SurveyTotal {
        SurveyTotal {
            calls: self.calls.saturating_sub(earlier.calls),
            inclusive_ns: self.inclusive_ns.saturating_sub(earlier.inclusive_ns),
            overhead_ns: self.overhead_ns.saturating_sub(earlier.overhead_ns),
        }
    }
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

/// An entry-only hook of the unwinder, a catch or a stack switcher (see `bpf/unwind.h`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hook {
    /// Where in the file (a function's entry, or a `ret` inside `_Unwind_Backtrace`).
    pub offset: FileOffset,
    /// What it marks.
    pub kind: HookKind,
}

/// What the kernel measured in one run.
#[derive(Debug, Clone, Default)]
pub struct Measured {
    /// Per (thread, function).
    pub stats: Vec<FuncStats>,
    /// Everything that went wrong.
    pub lost: LossCounters,
    /// How the probes were attached.
    pub mode: ProbeMode,
    /// Attach time of all links.
    pub attach: Duration,
    /// Detach time of all links.
    pub detach: Duration,
    /// Paths the loader's link map held at some point of the run (libraries loaded at start-up and
    /// with dlopen).
    pub loader_paths: Vec<PathBuf>,
    /// Hits of the minimal counting program (entries plus returns), with [`ProgramConfig::count_only`].
    pub count_hits: Option<u64>,
    /// Exceptions and stack switches, as the kernel side counted them (with the writer and the hooks).
    pub unwinding: crate::profile::Unwinding,
}

/// A surveyed file's probes are attached in groups of this many functions (by function id), each group
/// its own links: dropping a hot function then re-attaches its group only. Attaching to a running process
/// writes every breakpoint into its mapped pages, ~0.1 ms per probe while it runs (against ~5 µs per probe
/// for a held process, whose libraries are mapped after the attach): re-attaching the whole of libsqlite3
/// (1,300 probes) took 60–165 ms per relink, 2.7 s of a 3.3 s survey. On the sqlite fixture, four surveys
/// each (2026-12-02, relinks deferred until worth it): groups of 16, 207–287 ms of re-attaching over ~30
/// relinks, surveys of 0.62–0.90 s; 8, 160–179 ms, 0.51–0.76 s; 4, 111–170 ms, 0.47–0.61 s; 2, 145–213 ms,
/// 0.53–0.74 s; 1, 180–227 ms, 0.54–0.62 s (a close per function, and more links to attach and detach).
/// The groups cost nothing while probing (one link each, ~350 for sqlite).
const SURVEY_GROUP: u32 = 4;

/// `probes` split into groups of [`SURVEY_GROUP`] function ids when `grouped` (else one group, 0), in
/// order of first appearance, each in the order given.
fn probe_groups(probes: &[Probe], grouped: bool) -> Vec<(u32, Vec<Probe>)> {
    let mut groups: Vec<(u32, Vec<Probe>)> = Vec::new();
    for p in probes {
        let g = if grouped { p.func / SURVEY_GROUP } else { 0 };
        match groups.iter_mut().find(|(k, _)| *k == g) {
            Some((_, v)) => v.push(*p),
            None => groups.push((g, vec![*p])),
        }
    }
    groups
}

/// The links of one file's function probes, or of one group of them.
struct FileLinks {
    path: PathBuf,
    /// `func / SURVEY_GROUP` in a survey, 0 otherwise (one group per file).
    group: u32,
    /// The functions probed by `links`, in the order given.
    funcs: Vec<FuncId>,
    links: Vec<Link>,
}

/// The loaded program and its links.
pub struct Program<'obj> {
    skel: PerfgateSkel<'obj>,
    links: Vec<Link>,
    /// The function probes' links, per file (and, in a survey, per group of its functions), so part of
    /// a file's probe set can be replaced while it runs.
    file_links: Vec<FileLinks>,
    /// Links being closed in the background (a close waits for pending return probes).
    closing: Vec<std::thread::JoinHandle<()>>,
    ring: Option<libbpf_rs::RingBuffer<'static>>,
    pending: Rc<RefCell<Vec<Event>>>,
    config: ProgramConfig,
    attach: Duration,
    detach: Duration,
    writer: SlotWriter,
    hooks: u64,
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

/// Loads only the programs of the probe interface `config.mode` (and the counting program when asked):
/// the verifier's time is perfgate's fixed cost per run.
fn choose_programs(
    open: &mut kernel::skel::OpenPerfgateSkel<'_>,
    config: &ProgramConfig,
) -> Result<()> {
    let mode = config.mode;
    if config.count_only && mode != ProbeMode::Session {
        bail!("the minimal counting program needs session probes (Linux 6.12+)");
    }
    open.progs
        .pg_session
        .set_autoload(mode == ProbeMode::Session);
    open.progs.pg_count.set_autoload(config.count_only);
    open.progs.pg_entry.set_autoload(mode == ProbeMode::Multi);
    open.progs.pg_return.set_autoload(mode == ProbeMode::Multi);
    open.progs
        .pg_dl_change
        .set_autoload(mode != ProbeMode::Classic);
    open.progs
        .pg_entry_classic
        .set_autoload(mode == ProbeMode::Classic);
    open.progs
        .pg_return_classic
        .set_autoload(mode == ProbeMode::Classic);
    open.progs
        .pg_dl_change_classic
        .set_autoload(mode == ProbeMode::Classic);
    open.progs.pg_hook.set_autoload(mode != ProbeMode::Classic);
    open.progs
        .pg_hook_classic
        .set_autoload(mode == ProbeMode::Classic);
    Ok(())
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
        rodata.survey = config.survey;
        rodata.follow_enabled = config.follow;
        rodata.hold_dlopen = config.hold_dlopen;
        let writer = if config.bpf_writes && bpf_writes_allowed() {
            SlotWriter::Bpf
        } else {
            SlotWriter::Stop
        };
        rodata.write_from_bpf = writer == SlotWriter::Bpf;
        if let Some(c) = config.probe_cost {
            for kind in ProbeKind::ALL {
                let slot = kernel::probe_kind_value(kind).0 as usize;
                if let Some(v) = rodata.probe_cost_ns.get_mut(slot) {
                    *v = c.of(kind).max(0.0).round() as u64;
                }
                if let Some(v) = rodata.probe_in_ns.get_mut(slot) {
                    *v = c.inside(kind).max(0.0).round() as u64;
                }
            }
        }
        open.maps.events.set_max_entries(rb_bytes)?;
        // Up to every function on ~16 threads before the map is reported as full.
        // Followed processes add functions later: room for them from the start (the map is not
        // preallocated, so its size is a cap, not memory).
        let least = if config.follow { 1 << 18 } else { 65_536 };
        let entries = u32::try_from(config.functions)
            .unwrap_or(u32::MAX)
            .saturating_mul(16)
            .clamp(least, 1 << 22);
        open.maps.stats.set_max_entries(entries)?;
        let mode = config.mode;
        choose_programs(&mut open, config)?;
        let skel = match open.load() {
            Ok(s) => s,
            // As root, EACCES at load is the verifier refusing the program, not a missing privilege.
            Err(e) if is_permission_error(&e) && !crate::sys::is_root() => {
                bail!("loading the BPF program was refused: run perfgate as root or with CAP_BPF+CAP_PERFMON")
            }
            Err(_) if mode != ProbeMode::Classic => return Err(ModeUnsupported(mode).into()),
            Err(e) => {
                return Err(e).context(
                    "loading the BPF program (kernel ≥ 6.6 with BTF and uprobe_multi needed; PERFGATE_DEBUG=1 shows the kernel's log)",
                )
            }
        };
        Ok(Program {
            skel,
            links: Vec::new(),
            file_links: Vec::new(),
            closing: Vec::new(),
            ring: None,
            pending: Rc::new(RefCell::new(Vec::new())),
            config: config.clone(),
            attach: Duration::ZERO,
            detach: Duration::ZERO,
            writer,
            hooks: 0,
        })
    }

    /// Who stores return addresses around the unwinder in this run.
    pub fn slot_writer(&self) -> SlotWriter {
        self.writer
    }

    /// The queue the stop writer applies while the benchmark is stopped; `None` when the program stores
    /// itself.
    pub fn slot_queue(&self) -> Result<Option<SlotQueue>> {
        if self.writer == SlotWriter::Bpf {
            return Ok(None);
        }
        let map = libbpf_rs::MapHandle::try_from(&self.skel.maps.patches)
            .context("duplicating the slot queue's descriptor")?;
        Ok(Some(SlotQueue::new(map)))
    }

    /// Attaches the entry-only hooks of one file (unwinder entries, catches, stack switchers), filtered
    /// on the target PID. A file not mapped yet (libgcc_s, which glibc loads with dlopen for
    /// `backtrace()` and `pthread_exit`) gets them when it is mapped: uprobes belong to the file.
    pub fn attach_stack_hooks(&mut self, path: &Path, hooks: &[Hook]) -> Result<()> {
        if hooks.is_empty() {
            return Ok(());
        }
        let t0 = Instant::now();
        let pid = self.config.target_pid as i32;
        let cookies: Vec<u64> = hooks
            .iter()
            .enumerate()
            .map(|(i, h)| kernel::hook_cookie(i as u32, h.kind))
            .collect();
        let result = if self.config.mode == ProbeMode::Classic {
            let mut links = Vec::with_capacity(hooks.len());
            let mut r = Ok(());
            for (h, &cookie) in hooks.iter().zip(&cookies) {
                let opts = libbpf_rs::UprobeOpts {
                    cookie,
                    ..Default::default()
                };
                match self.skel.progs.pg_hook_classic.attach_uprobe_with_opts(
                    pid,
                    path,
                    h.offset.0 as usize,
                    opts,
                ) {
                    Ok(l) => links.push(l),
                    Err(e) => {
                        r = Err(e);
                        break;
                    }
                }
            }
            r.map(|()| links)
        } else {
            let opts = UprobeMultiOpts {
                offsets: hooks.iter().map(|h| h.offset.0 as usize).collect(),
                cookies,
                ..Default::default()
            };
            self.skel
                .progs
                .pg_hook
                .attach_uprobe_multi_with_opts(pid, path, "", opts)
                .map(|l| vec![l])
        };
        self.attach += t0.elapsed();
        let links = result.with_context(|| {
            format!(
                "attaching the {} exception and stack-switch hooks to {}",
                hooks.len(),
                path.display()
            )
        })?;
        self.links.extend(links);
        self.hooks += hooks.len() as u64;
        Ok(())
    }

    /// Attaches the probes of one file, filtered on the target PID: one `uprobe_multi` link (session
    /// mode), two (entry + return), or two per function (classic).
    pub fn attach_functions(&mut self, path: &Path, probes: &[Probe]) -> Result<()> {
        for (group, part) in self.groups(probes) {
            self.attach_group(path, group, &part)?;
        }
        Ok(())
    }

    /// `probes` split into the groups they are attached in.
    fn groups(&self, probes: &[Probe]) -> Vec<(u32, Vec<Probe>)> {
        probe_groups(probes, self.config.survey)
    }

    fn attach_group(&mut self, path: &Path, group: u32, probes: &[Probe]) -> Result<()> {
        let t0 = Instant::now();
        let pid = self.config.target_pid;
        let result = match self.config.mode {
            ProbeMode::Classic => self.attach_classic(pid, path, probes),
            mode => self.attach_multi(pid, path, probes, mode),
        };
        self.attach += t0.elapsed();
        match result {
            Ok(l) => {
                let funcs = probes.iter().map(|p| p.func);
                match self
                    .file_links
                    .iter_mut()
                    .find(|f| f.path == path && f.group == group)
                {
                    Some(f) => {
                        f.links.extend(l);
                        f.funcs.extend(funcs);
                    }
                    None => self.file_links.push(FileLinks {
                        path: path.to_path_buf(),
                        group,
                        funcs: funcs.collect(),
                        links: l,
                    }),
                }
                Ok(())
            }
            Err(e)
                if self.config.mode != ProbeMode::Classic
                    && !is_permission_error(&e)
                    && self.links.is_empty()
                    && self.file_links.is_empty() =>
            {
                Err(ModeUnsupported(self.config.mode).into())
            }
            Err(e) => Err(e).with_context(|| {
                format!("attaching {} probes to {}", probes.len(), path.display())
            }),
        }
    }

    fn attach_multi(
        &self,
        pid: u32,
        path: &Path,
        probes: &[Probe],
        mode: ProbeMode,
    ) -> libbpf_rs::Result<Vec<Link>> {
        let offsets: Vec<usize> = probes.iter().map(|p| p.offset.0 as usize).collect();
        let cookies: Vec<u64> = probes
            .iter()
            .map(|p| kernel::cookie(p.func, p.kind))
            .collect();
        let pid = pid as i32;
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
        if self.config.count_only {
            attach(&self.skel.progs.pg_count, false, true).map(|l| vec![l])
        } else if mode == ProbeMode::Session {
            attach(&self.skel.progs.pg_session, false, true).map(|l| vec![l])
        } else {
            attach(&self.skel.progs.pg_entry, false, false)
                .and_then(|a| attach(&self.skel.progs.pg_return, true, false).map(|b| vec![a, b]))
        }
    }

    fn attach_classic(
        &self,
        pid: u32,
        path: &Path,
        probes: &[Probe],
    ) -> libbpf_rs::Result<Vec<Link>> {
        let pid = pid as i32;
        let mut links = Vec::with_capacity(probes.len() * 2);
        for p in probes {
            for (prog, retprobe) in [
                (&self.skel.progs.pg_entry_classic, false),
                (&self.skel.progs.pg_return_classic, true),
            ] {
                let opts = libbpf_rs::UprobeOpts {
                    cookie: kernel::cookie(p.func, p.kind),
                    retprobe,
                    ..Default::default()
                };
                links.push(prog.attach_uprobe_with_opts(pid, path, p.offset.0 as usize, opts)?);
            }
        }
        Ok(links)
    }

    /// Watches the loader's link map (`_dl_debug_state` at `offset` in `loader`); false when the kernel
    /// refused (then only sampling `/proc/PID/maps` is left).
    pub fn attach_loader_hook(&mut self, loader: &Path, offset: FileOffset) -> bool {
        let t0 = Instant::now();
        let link = self.loader_hook_link(
            self.config.target_pid,
            loader,
            offset,
            self.config.r_debug_delta,
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

    /// The hook's cookie is `r_debug_delta` (`_r_debug` minus `_dl_debug_state` of this loader).
    fn loader_hook_link(
        &self,
        pid: u32,
        loader: &Path,
        offset: FileOffset,
        r_debug_delta: i64,
    ) -> libbpf_rs::Result<Link> {
        // uprobe_multi: a perf-event uprobe takes ~120 ms to detach, a multi link a fraction of that.
        let pid = pid as i32;
        if self.config.mode == ProbeMode::Classic {
            self.skel
                .progs
                .pg_dl_change_classic
                .attach_uprobe_with_opts(
                    pid,
                    loader,
                    offset.0 as usize,
                    libbpf_rs::UprobeOpts {
                        cookie: r_debug_delta as u64,
                        ..Default::default()
                    },
                )
        } else {
            let opts = UprobeMultiOpts {
                offsets: vec![offset.0 as usize],
                cookies: vec![r_debug_delta as u64],
                ..Default::default()
            };
            self.skel
                .progs
                .pg_dl_change
                .attach_uprobe_multi_with_opts(pid, loader, "", opts)
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

    /// Replaces the probes of one file while the benchmark runs: the links of every group whose functions
    /// changed are closed in the background (the kernel removes their breakpoints at once; the close itself
    /// then waits for pending return probes, possibly until the benchmark ends), then each such group is
    /// attached again with its new functions. Calls of a replaced group in between are not seen; the other
    /// groups keep probing throughout.
    pub fn replace_functions(&mut self, path: &Path, probes: &[Probe]) -> Result<()> {
        let wanted = self.groups(probes);
        let unchanged = |f: &FileLinks| {
            wanted.iter().any(|(g, part)| {
                *g == f.group && part.iter().map(|p| p.func).eq(f.funcs.iter().copied())
            })
        };
        let (old, kept): (Vec<FileLinks>, Vec<FileLinks>) = std::mem::take(&mut self.file_links)
            .into_iter()
            .partition(|f| f.path == path && !unchanged(f));
        self.file_links = kept;
        if !old.is_empty() {
            // One thread per link: a close can wait until the benchmark ends (a return probe of a call
            // still running), and the links after it would keep their breakpoints until then.
            for link in old.into_iter().flat_map(|f| f.links) {
                self.closing.push(std::thread::spawn(move || drop(link)));
            }
            // Let the unregistration reach the kernel before the same offsets are registered again.
            std::thread::sleep(Duration::from_millis(2));
        }
        for (group, part) in wanted {
            let present = self
                .file_links
                .iter()
                .any(|f| f.path == path && f.group == group);
            if !present {
                self.attach_group(path, group, &part)?;
            }
        }
        Ok(())
    }

    /// Per-function totals of the survey so far, for function ids below [`SURVEY_MAX`]: calls,
    /// inclusive ns, and calibrated probe cost of descendants ns (zero when not in survey mode).
    pub fn survey_totals(&self, functions: usize) -> Vec<SurveyTotal> {
        let Some(bss) = self.skel.maps.bss_data.as_deref() else {
            return Vec::new();
        };
        let n = functions.min(SURVEY_MAX);
        let read = |a: &[u64], i: usize| -> u64 {
            // SAFETY: `a` is the skeleton's memory map of the program's .bss, valid while the program
            // is loaded; the kernel updates it concurrently with atomic adds, and an aligned u64 read is
            // atomic on x86-64, so a volatile read sees some value that was there (a total of some moment).
            unsafe { std::ptr::read_volatile(&a[i]) }
        };
        (0..n)
            .map(|i| SurveyTotal {
                calls: read(&bss.survey_calls, i),
                inclusive_ns: read(&bss.survey_incl, i),
                overhead_ns: read(&bss.survey_overhead, i),
            })
            .collect()
    }

    /// Closes every link. Each close waits for its own RCU grace period: closing them in parallel
    /// overlaps the waits (at most [`DETACH_THREADS`] threads, however many links classic mode made).
    /// The maps stay readable.
    pub fn detach(&mut self) {
        let t0 = Instant::now();
        for h in self.close_links() {
            let _ = h.join();
        }
        self.detach += t0.elapsed();
    }

    /// [`Program::detach`] without waiting: the links close on threads that outlive this program, joined
    /// by [`finish_closing`] (a close waits for grace periods, 60–90 ms a run, not for the CPU, so the next
    /// run loads, spawns and runs meanwhile). Only once every process the links could fire for has ended:
    /// then no probe writes the maps, and they are as final as after a detach.
    pub fn detach_in_background(&mut self) {
        let t0 = Instant::now();
        let handles = self.close_links();
        let mut closing = CLOSING.lock().unwrap_or_else(|e| e.into_inner());
        closing.extend(handles);
        self.detach += t0.elapsed();
    }

    /// Starts closing every link, in at most [`DETACH_THREADS`] threads (with the threads still closing
    /// links replaced while the benchmark ran); their handles.
    fn close_links(&mut self) -> Vec<std::thread::JoinHandle<()>> {
        let mut links = std::mem::take(&mut self.links);
        for f in self.file_links.drain(..) {
            links.extend(f.links);
        }
        let per_thread = links.len().div_ceil(DETACH_THREADS).max(1);
        let mut handles: Vec<_> = self.closing.drain(..).collect();
        while !links.is_empty() {
            let batch: Vec<Link> = links.drain(..per_thread.min(links.len())).collect();
            handles.push(std::thread::spawn(move || drop(batch)));
        }
        handles
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
        let mut unwinding = kernel::decode_unwinding(&per_cpu);
        unwinding.hooks = self.hooks;
        if self.hooks > 0 {
            unwinding.writer = self.writer.name().to_string();
        }
        Ok(Measured {
            unwinding,
            stats,
            lost: kernel::decode_counters(&per_cpu),
            mode: self.config.mode,
            attach: self.attach,
            detach: self.detach,
            loader_paths,
            count_hits: self.config.count_only.then(|| {
                self.skel.maps.bss_data.as_deref().map_or(0, |b| {
                    // SAFETY: as in `survey_totals`: the skeleton's map of .bss, an aligned u64.
                    unsafe { std::ptr::read_volatile(&b.count_hits) }
                })
            }),
        })
    }
}

impl Drop for Program<'_> {
    fn drop(&mut self) {
        self.detach();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probe(func: FuncId) -> Probe {
        Probe {
            offset: FileOffset(0x1000 + u64::from(func) * 16),
            func,
            kind: ProbeKind::Emulated,
        }
    }

    #[test]
    fn a_survey_attaches_its_probes_in_groups_of_function_ids() {
        let g = SURVEY_GROUP;
        let probes: Vec<Probe> = [0, g - 1, g, 1, 4 * g + 2, g + 1]
            .into_iter()
            .map(probe)
            .collect();
        let funcs = |g: &[(u32, Vec<Probe>)]| -> Vec<(u32, Vec<FuncId>)> {
            g.iter()
                .map(|(k, v)| (*k, v.iter().map(|p| p.func).collect()))
                .collect()
        };
        assert_eq!(
            funcs(&probe_groups(&probes, true)),
            [
                (0, vec![0, g - 1, 1]),
                (1, vec![g, g + 1]),
                (4, vec![4 * g + 2])
            ]
        );
        // Outside a survey, one group per file: one link, as the kernel likes it.
        assert_eq!(
            funcs(&probe_groups(&probes, false)),
            [(0, vec![0, g - 1, g, 1, 4 * g + 2, g + 1])]
        );
    }
}
