//! Following the benchmark's processes and the libraries they load: the session side of the tracer
//! (`run/follow.rs`). Every process the command starts is held at its exec (or, forked, at its birth)
//! while its image is planned with the run's selection and attached with its own PID; a thread whose
//! dlopen adds a library the selection covers is held until that library is attached.
//!
//! Function ids are global to the run: a file has one set of ids whatever process runs it, so results
//! are per (binary, function) across processes. Plans are cached per file identity across the runs of a
//! command ([`PlanCache`] in the [`Target`]), so a binary exec'd a thousand times is read once.
//!
//! Invariants: a held process is resumed only after its probes are attached (or after perfgate has
//! decided it cannot be traced, which is counted with the reason); a process's links are closed only
//! after it has exited; every process seen is counted in [`Processes`]; nothing here prints.
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::os::fd::BorrowedFd;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Result;

use super::{walk, Target};
use crate::bpf::{self, LinkCloser, Links, Program};
use crate::plan::{self, FileIdentity, LoaderHook, Plan, Selection};
use crate::profile::file::Event;
use crate::profile::{
    BinaryRun, ExitInfo, FunctionInfo, LateLibrary, NotTraced, Processes, SkipReason,
    SkippedFunction, TracedFile,
};
use crate::run::follow::{Stop, Tracer};
use crate::run::{mapped_executables, tree, Finished, HeldChild};

/// How long processes killed at the timeout may take to be reported gone.
const KILL_GRACE: Duration = Duration::from_secs(2);

/// What a run follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Mode {
    /// Every process the command starts, and the libraries each loads (the default).
    Processes,
    /// Only the command's own process, for the libraries it loads (`--no-follow` with `--lib`).
    Libraries,
    /// A process already running (`record --pid`): its threads and the libraries it loads.
    Live,
}

/// Plans of the files followed processes ran or loaded, by identity, kept across the runs of one
/// command: planning (reading symbols, placing probes) is the largest part of holding a process.
#[derive(Debug, Default)]
pub struct PlanCache {
    executables: HashMap<FileIdentity, Arc<Result<Plan, String>>>,
    libraries: HashMap<FileIdentity, Arc<Result<Option<Plan>, String>>>,
}

/// A shared cache, as the [`Target`] holds it.
pub type SharedPlanCache = Arc<Mutex<PlanCache>>;

/// One file ready to attach, its function ids global to the run.
struct Attachable {
    path: PathBuf,
    build_id: Option<String>,
    probes: Vec<bpf::Probe>,
    /// File offsets of the functions' bodies (start, end), with their ids.
    ranges: Vec<(u64, u64, u32)>,
}

/// The file range of each probed function (its probe may sit past its first byte).
fn ranges(probes: &[bpf::Probe], functions: &[FunctionInfo]) -> Vec<(u64, u64, u32)> {
    probes
        .iter()
        .filter_map(|p| {
            let f = functions.get(p.func as usize)?;
            let start = p.offset.0.checked_sub(f.probe_offset)?;
            Some((start, start + f.size.max(1), p.func))
        })
        .collect()
}

/// The probes of one file of `plan`, as the BPF program attaches them (function ids the plan's).
pub(super) fn probes_of(plan: &Plan, file: &plan::PlannedFile) -> Vec<bpf::Probe> {
    file.probes
        .iter()
        .map(|p| bpf::Probe {
            offset: p.offset,
            func: p.func,
            kind: plan.probe_kind(p.func),
        })
        .collect()
}

/// A followed process.
#[derive(Default)]
struct Proc {
    exe: Option<PathBuf>,
    /// Files attached for it; `None`: the command's own links, held by the program until it detaches.
    files: HashMap<FileIdentity, Option<Links>>,
    /// The loader hook attached for it (the path of the loader), with its links (`None` as above).
    hook: Option<(LoaderHook, Option<Links>)>,
    /// Libraries already considered in this image (attached or not selected).
    seen: HashSet<FileIdentity>,
    /// Library holds since its exec: the first is its start-up.
    library_holds: u32,
    /// A vfork child before its exec.
    vfork: bool,
}

/// What the run learnt, to put into the profile.
pub(super) struct Outcome {
    pub(super) functions: Vec<FunctionInfo>,
    pub(super) files: Vec<TracedFile>,
    pub(super) skipped: BTreeMap<SkipReason, u64>,
    pub(super) skipped_names: Vec<SkippedFunction>,
    pub(super) warnings: Vec<String>,
    pub(super) processes: Option<Processes>,
    pub(super) attached_late: Vec<LateLibrary>,
    /// Calls a live process was in when perfgate attached (function names, outermost last).
    pub(super) running_at_attach: Vec<String>,
    /// Library paths (as the loaders wrote them) added after start-up in some process.
    pub(super) loaded_later: Vec<PathBuf>,
}

/// Where a run that follows starts: the tracer is started before the benchmark's holder (so that the
/// holder's orphan reaping spares it), and seizes the holder before the probes are attached.
pub(super) struct Start {
    tracer: Option<Tracer>,
    mode: Option<Mode>,
    note: Option<String>,
}

impl Start {
    /// The tracer, if the run follows processes or may hold a thread for a library.
    pub(super) fn new(target: &Target, follow: bool) -> Start {
        let mode = if follow {
            Some(Mode::Processes)
        } else if !target.selection.libs.is_empty() {
            Some(Mode::Libraries)
        } else {
            None
        };
        let Some(mode) = mode else {
            return Start {
                tracer: None,
                mode: None,
                note: None,
            };
        };
        match Tracer::start() {
            Ok(t) => Start {
                tracer: Some(t),
                mode: Some(mode),
                note: None,
            },
            Err(e) => Start::without(mode, &e),
        }
    }

    /// No tracer: only the command's own process, its libraries attached before it starts (a surveyed
    /// run: the survey relinks that process's files while it runs, which a followed run's links are not).
    pub(super) fn off() -> Start {
        Start {
            tracer: None,
            mode: None,
            note: None,
        }
    }

    fn without(mode: Mode, e: &anyhow::Error) -> Start {
        let what = match mode {
            Mode::Processes => "the processes the benchmark starts are not traced",
            _ => "libraries loaded with dlopen are not traced",
        };
        Start {
            tracer: None,
            mode: None,
            note: Some(format!("{what}: {e:#}")),
        }
    }

    /// Traces the held benchmark from now on (it has one thread and has not exec'd yet).
    pub(super) fn seize(&mut self, child: &mut HeldChild) {
        let (Some(t), Some(mode)) = (&mut self.tracer, self.mode) else {
            return;
        };
        match t.seize(child.pid(), mode == Mode::Processes) {
            Ok(()) if mode == Mode::Processes => child.keep_orphans(),
            Ok(()) => {}
            Err(e) => *self = Start::without(mode, &e),
        }
    }

    /// Whether processes other than the command's are followed (the program's `procs` map is used).
    pub(super) fn follows(&self) -> bool {
        self.mode.is_some()
    }

    /// Whether threads that add a library are held.
    pub(super) fn holds(&self, target: &Target) -> bool {
        self.mode.is_some() && !target.selection.libs.is_empty()
    }

    /// Why following is off, if it was asked for.
    pub(super) fn note(&self) -> Option<&str> {
        self.note.as_deref()
    }

    /// Attaches the command's own probes (the links belong to the following, which may have to close
    /// them while the command runs: an exec from a thread) and starts following. Errors are those of
    /// [`Program::attach_functions`], so the caller can fall back to an older probe interface.
    pub(super) fn begin(
        &mut self,
        target: &Target,
        program: &mut Program<'_>,
        pid: u32,
    ) -> Result<Follow> {
        let mode = self.mode.unwrap_or(Mode::Processes);
        let plan = &target.plan;
        let mut links = HashMap::new();
        for file in &plan.files {
            file.check_unchanged()?;
            let probes = probes_of(plan, file);
            let l = program.attach_functions_owned(&file.path, &probes)?;
            if let Some(id) = file.identity {
                links.insert(id, l);
            }
        }
        let hook = plan.loader_hook.as_ref().map(|h| {
            let l = program.attach_loader_hook_for(pid, &h.path, h.offset, h.r_debug_delta);
            (h.clone(), l)
        });
        if mode == Mode::Processes {
            program.attach_exec()?;
        }
        let Some(tracer) = self.tracer.take() else {
            anyhow::bail!("internal: following without a tracer");
        };
        let holds = self.holds(target);
        program.follow_process(pid, holds);
        let mut f = Follow::new(
            tracer,
            mode,
            &target.selection,
            target.plan_cache.clone(),
            holds,
        );
        f.seed(target, pid, links, hook);
        Ok(f)
    }
}

/// The following of one run.
pub(super) struct Follow {
    mode: Mode,
    tracer: Tracer,
    tracer_gone: Option<String>,
    sel: Selection,
    cache: SharedPlanCache,
    holds: bool,
    /// The command's executable, the files of its plan and its loader hook.
    root_exe: Option<FileIdentity>,
    root_files: Vec<FileIdentity>,
    root_hook: Option<LoaderHook>,
    /// The command's program can unwind (see [`Plan::can_unwind`]): its forks, and other processes
    /// running it, are not traced.
    root_unwinds: bool,
    functions: Vec<FunctionInfo>,
    files: HashMap<FileIdentity, Arc<Attachable>>,
    /// Files in the order they were registered, for the accounting.
    file_order: Vec<FileIdentity>,
    modules: HashMap<String, FileIdentity>,
    procs: HashMap<u32, Proc>,
    closer: LinkCloser,
    skipped: BTreeMap<SkipReason, u64>,
    skipped_names: Vec<SkippedFunction>,
    warnings: BTreeSet<String>,
    counts: Processes,
    binaries: BTreeMap<PathBuf, BinaryRun>,
    not_traced: BTreeMap<String, u64>,
    late: BTreeMap<PathBuf, LateLibrary>,
    /// `--lib` globs no library has matched yet.
    libs_unmatched: BTreeSet<String>,
    /// Leaving a live process: holds are only resumed.
    leaving: bool,
    /// The command's own process (or the live one).
    root_pid: u32,
    /// How the processes that ended did, while the run lasts.
    exits: HashMap<u32, ExitInfo>,
    /// A live process's libraries mapped before perfgate came (canonical): not loaded later.
    mapped_before: BTreeSet<PathBuf>,
    /// Traced functions a live process's threads were in when perfgate attached, one per call.
    running_at_attach: Vec<u32>,
    /// The tracer said every thread was sampled.
    sampled: bool,
    /// The tracer detached from this many threads.
    detached: Option<u32>,
}

impl Follow {
    pub(super) fn new(
        tracer: Tracer,
        mode: Mode,
        sel: &Selection,
        cache: SharedPlanCache,
        holds: bool,
    ) -> Follow {
        Follow {
            mode,
            tracer,
            tracer_gone: None,
            sel: sel.clone(),
            cache,
            holds,
            root_exe: None,
            root_files: Vec::new(),
            root_unwinds: false,
            root_hook: None,
            functions: Vec::new(),
            files: HashMap::new(),
            file_order: Vec::new(),
            modules: HashMap::new(),
            procs: HashMap::new(),
            closer: LinkCloser::new(),
            skipped: BTreeMap::new(),
            skipped_names: Vec::new(),
            warnings: BTreeSet::new(),
            counts: Processes::default(),
            binaries: BTreeMap::new(),
            not_traced: BTreeMap::new(),
            late: BTreeMap::new(),
            libs_unmatched: sel.libs.iter().cloned().collect(),
            leaving: false,
            root_pid: 0,
            exits: HashMap::new(),
            mapped_before: BTreeSet::new(),
            running_at_attach: Vec::new(),
            sampled: false,
            detached: None,
        }
    }

    /// Starts from the command's plan (its ids stay as they are) and its links.
    fn seed(
        &mut self,
        target: &Target,
        pid: u32,
        mut links: HashMap<FileIdentity, Links>,
        hook: Option<(LoaderHook, Option<Links>)>,
    ) {
        let plan = &target.plan;
        self.root_pid = pid;
        self.functions = plan.functions.clone();
        self.root_exe = FileIdentity::of(&target.program);
        let mut root = Proc::default();
        for f in &plan.files {
            let Some(id) = f.identity else { continue };
            let probes = probes_of(plan, f);
            self.modules.insert(f.module.clone(), id);
            self.add_file(id, f, probes);
            self.root_files.push(id);
            root.files.insert(id, links.remove(&id));
        }
        self.root_hook = plan.loader_hook.clone();
        self.root_unwinds = plan.can_unwind() == plan::Unwinds::Exceptions;
        if !plan.functions.is_empty() {
            root.exe = Some(target.program.clone());
        }
        root.hook = hook;
        for g in &plan.libs_unmatched {
            self.libs_unmatched.insert(g.clone());
        }
        // A glob that matched a library of the command is matched.
        let unmatched: BTreeSet<String> = plan.libs_unmatched.iter().cloned().collect();
        self.libs_unmatched.retain(|g| unmatched.contains(g));
        self.counts.followed = 1;
        if self.mode != Mode::Processes {
            // No exec stop will count the command's own binary.
            self.count_binary(&target.program, plan.functions.len() as u64);
        }
        self.procs.insert(pid, root);
    }

    /// Seeds a live process: every file it maps that the selection covers, attached now.
    pub(super) fn seed_live(
        &mut self,
        program: &Program<'_>,
        pid: u32,
        exe: &Path,
        plan: &Plan,
    ) -> Result<()> {
        self.root_exe = FileIdentity::of(exe);
        self.root_pid = pid;
        self.counts.followed = 1;
        // First: a return of a call in progress is told from a loss from the first probe on.
        program.follow_live(pid, self.holds);
        // The loader hook sees the live process's whole link map as new at its first change.
        self.mapped_before = mapped_executables(pid)
            .iter()
            .map(|p| std::fs::canonicalize(p).unwrap_or_else(|_| p.clone()))
            .collect();
        let t0 = Instant::now();
        let ids = self.register(plan);
        let mut proc = Proc {
            exe: Some(exe.to_path_buf()),
            ..Proc::default()
        };
        for id in ids {
            if let Some(a) = self.files.get(&id).cloned() {
                let links = program.attach_for(pid, &a.path, &a.probes)?;
                proc.files.insert(id, Some(links));
            }
        }
        if let Some(h) = &plan.loader_hook {
            let links = program.attach_loader_hook_for(pid, &h.path, h.offset, h.r_debug_delta);
            proc.hook = Some((h.clone(), links));
        }
        self.counts.attach_ns += t0.elapsed().as_nanos() as u64;
        self.count_binary(exe, plan.functions.len() as u64);
        self.procs.insert(pid, proc);
        // The libraries it mapped already: not late.
        self.attach_libraries(program, pid, true);
        Ok(())
    }

    /// Processes still running.
    pub(super) fn running(&self) -> usize {
        self.procs.len()
    }

    /// How process `pid` ended, once it has.
    pub(super) fn exit_of(&self, pid: u32) -> Option<ExitInfo> {
        self.exits.get(&pid).copied()
    }

    /// Functions planned so far.
    pub(super) fn functions_planned(&self) -> usize {
        self.functions.len()
    }

    /// Files planned so far that have probes.
    pub(super) fn files_attached(&self) -> usize {
        self.files.values().filter(|a| !a.probes.is_empty()).count()
    }

    /// Leaves a live process: no thread is stopped any more, the tracer detaches from every thread
    /// (resuming those held meanwhile). Returns the threads detached.
    pub(super) fn detach_live(&mut self, program: &Program<'_>, pid: u32) -> Result<u32> {
        program.stop_holds(pid);
        self.leaving = true;
        if self.tracer_gone.is_some() {
            return Ok(0);
        }
        self.tracer.detach_all()?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.detached.is_none() {
            if Instant::now() >= deadline {
                anyhow::bail!("perfgate's tracer did not detach from process {pid} within 10 s");
            }
            self.serve(program, Duration::from_millis(5))?;
            if self.tracer_gone.is_some() {
                return Ok(0);
            }
        }
        Ok(self.detached.unwrap_or(0))
    }

    fn count_binary(&mut self, path: &Path, functions: u64) {
        let b = self
            .binaries
            .entry(path.to_path_buf())
            .or_insert_with(|| BinaryRun {
                path: path.to_path_buf(),
                ..BinaryRun::default()
            });
        b.processes += 1;
        b.functions = b.functions.max(functions);
    }

    fn not_traced(&mut self, reason: impl Into<String>) {
        *self.not_traced.entry(reason.into()).or_insert(0) += 1;
    }

    /// Makes file `id` ready to attach, with its probes (their function ids already the run's), in the
    /// order files are attached.
    fn add_file(&mut self, id: FileIdentity, f: &plan::PlannedFile, probes: Vec<bpf::Probe>) {
        let ranges = ranges(&probes, &self.functions);
        self.files.insert(
            id,
            Arc::new(Attachable {
                path: f.path.clone(),
                build_id: f.build_id.clone(),
                probes,
                ranges,
            }),
        );
        self.file_order.push(id);
    }

    /// Gives the plan's functions ids of the run and returns the identities of its files (each file is
    /// registered once per run, its skipped functions counted once).
    fn register(&mut self, plan: &Plan) -> Vec<FileIdentity> {
        let mut out = Vec::new();
        let mut fresh = false;
        for f in &plan.files {
            let Some(id) = f.identity else {
                self.warnings.insert(format!(
                    "{}: cannot be identified (stat failed): not traced",
                    f.path.display()
                ));
                continue;
            };
            out.push(id);
            if self.files.contains_key(&id) {
                continue;
            }
            fresh = true;
            // Two files of one name (two `bench` binaries) stay apart in the results.
            let module = match self.modules.get(&f.module) {
                Some(other) if *other != id => f.path.display().to_string(),
                _ => f.module.clone(),
            };
            self.modules.insert(module.clone(), id);
            let mut probes = Vec::with_capacity(f.probes.len());
            for p in &f.probes {
                let Some(info) = plan.functions.get(p.func as usize) else {
                    continue;
                };
                let global = self.functions.len() as u32;
                let mut info = info.clone();
                info.module = module.clone();
                probes.push(bpf::Probe {
                    offset: p.offset,
                    func: global,
                    kind: info.probe,
                });
                self.functions.push(info);
            }
            self.add_file(id, f, probes);
        }
        if fresh {
            for (r, n) in &plan.skipped {
                *self.skipped.entry(*r).or_insert(0) += n;
            }
            self.skipped_names
                .extend(plan.skipped_names.iter().cloned());
            self.warnings.extend(plan.warnings.iter().cloned());
        }
        out
    }

    fn executable_plan(&self, path: &Path, id: FileIdentity) -> Arc<Result<Plan, String>> {
        let mut cache = match self.cache.lock() {
            Ok(c) => c,
            Err(p) => p.into_inner(),
        };
        cache
            .executables
            .entry(id)
            .or_insert_with(|| {
                Arc::new(plan::executable(path, &self.sel).map_err(|e| e.to_string()))
            })
            .clone()
    }

    fn library_plan(&self, path: &Path, id: FileIdentity) -> Arc<Result<Option<Plan>, String>> {
        let mut cache = match self.cache.lock() {
            Ok(c) => c,
            Err(p) => p.into_inner(),
        };
        cache
            .libraries
            .entry(id)
            .or_insert_with(|| Arc::new(plan::library(path, &self.sel).map_err(|e| e.to_string())))
            .clone()
    }

    /// Waits for the command and, following processes, for every process it started; handles the
    /// tracer's holds meanwhile, streams events and samples the command's maps. Ends the processes
    /// still running at the timeout or a stop signal.
    ///
    /// Why this function is one piece: it is the run's one loop, and its end condition joins the
    /// command's exit, the followed processes' exits, the timeout and the stop signals.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn wait(
        &mut self,
        target: &Target,
        timeout: Option<Duration>,
        poll: Duration,
        child: &mut HeldChild,
        program: &mut Program<'_>,
        on_event: &mut dyn FnMut(&Event) -> Result<()>,
        maps_every: Duration,
    ) -> Result<(Finished, Vec<PathBuf>)> {
        let released = Instant::now();
        let deadline = timeout.map(|t| released + t);
        let mut root: Option<Finished> = None;
        let mut mapped = BTreeSet::new();
        let mut last_maps: Option<Instant> = None;
        let mut killed_at: Option<Instant> = None;
        loop {
            if root.is_none() {
                root = child.try_wait(deadline)?;
                if root.is_some_and(|f| f.timed_out || f.stopped.is_some()) {
                    // The tree was ended with the command.
                    killed_at = Some(Instant::now());
                }
            }
            if root.is_some() {
                let done = self.mode != Mode::Processes
                    || self.procs.is_empty()
                    || self.tracer_gone.is_some();
                if done || killed_at.is_some_and(|t| t.elapsed() >= KILL_GRACE) {
                    break;
                }
                let stop = crate::run::signals::stop_requested();
                if killed_at.is_none()
                    && (deadline.is_some_and(|d| Instant::now() >= d) || stop.is_some())
                {
                    self.counts.killed += self.procs.len() as u64;
                    child.kill_tree();
                    killed_at = Some(Instant::now());
                    if let Some(f) = &mut root {
                        f.timed_out |= stop.is_none();
                        f.stopped = f.stopped.or(stop);
                    }
                }
            } else if last_maps.is_none_or(|t| t.elapsed() >= maps_every) {
                mapped.extend(child.mapped_files(&target.program));
                last_maps = Some(Instant::now());
            }
            self.serve(program, poll)?;
            program.poll_events(Duration::ZERO, on_event)?;
        }
        let Some(mut finished) = root else {
            anyhow::bail!("internal: the run ended before the command");
        };
        if self.mode == Mode::Processes {
            finished.wall = released.elapsed();
        }
        // What is left (exited and not reaped yet, or not followed) ends now, before the links close.
        child.end_orphans();
        Ok((finished, mapped.into_iter().collect()))
    }

    /// Waits up to `timeout` for the tracer (or the ring buffer), then handles every report.
    pub(super) fn serve(&mut self, program: &Program<'_>, timeout: Duration) -> Result<()> {
        if self.tracer_gone.is_some() {
            std::thread::sleep(timeout);
            return Ok(());
        }
        {
            let ring = program.ring_fd();
            let fds: Vec<BorrowedFd<'_>> = std::iter::once(self.tracer.fd()).chain(ring).collect();
            crate::sys::ptrace::poll_readable(&fds, Some(timeout));
        }
        loop {
            match self.tracer.next_stop() {
                Ok(Some(stop)) => self.on_stop(program, stop)?,
                Ok(None) => return Ok(()),
                Err(e) => {
                    // Its tracees died with it (PTRACE_O_EXITKILL): the run is over, and says why.
                    self.tracer_gone = Some(format!("{e:#}"));
                    self.warnings.insert(format!(
                        "perfgate's tracer ended during the run ({e:#}): the processes it traced were killed"
                    ));
                    self.procs.clear();
                    return Ok(());
                }
            }
        }
    }

    fn on_stop(&mut self, program: &Program<'_>, stop: Stop) -> Result<()> {
        let t0 = Instant::now();
        let held = match stop {
            Stop::Exec { pid, former_tid } => {
                self.on_exec(program, pid, former_tid != pid);
                Some((pid, 0))
            }
            Stop::Fork { parent, child } => {
                self.on_fork(program, parent, child);
                Some((child, 0))
            }
            Stop::Vfork { parent, child } => {
                self.counts.followed += 1;
                self.counts.vforks += 1;
                let seen = self.procs.get(&parent).map(|p| p.seen.clone());
                self.procs.insert(
                    child,
                    Proc {
                        vfork: true,
                        seen: seen.unwrap_or_default(),
                        ..Proc::default()
                    },
                );
                None
            }
            Stop::HoldSignal { tid } => {
                if program.take_hold(tid) {
                    if !self.leaving {
                        self.on_libraries(program, tid);
                    }
                    Some((tid, 0))
                } else {
                    // Not perfgate's: the benchmark gets its SIGSTOP.
                    self.tracer.resume(tid, libc::SIGSTOP)?;
                    None
                }
            }
            Stop::Exited { pid, exit } => {
                self.on_exited(program, pid, exit);
                None
            }
            Stop::Detached { threads } => {
                self.detached = Some(threads);
                None
            }
            Stop::Sampled => {
                self.sampled = true;
                None
            }
            Stop::Sample { tid, regs } => {
                self.on_sample(program, tid, regs);
                // Not a hold for perfgate's work: resumed without being counted as one.
                self.tracer.resume(tid, 0)?;
                None
            }
        };
        if let Some((tid, signal)) = held {
            self.tracer.resume(tid, signal)?;
            let ns = t0.elapsed().as_nanos() as u64;
            self.counts.holds += 1;
            self.counts.held_ns += ns;
            self.counts.held_max_ns = self.counts.held_max_ns.max(ns);
        }
        Ok(())
    }

    /// What a process that exec'd `path` (identity `id`) gets attached: the identities of its files,
    /// its loader hook and its number of functions (planned on first sight, from the cache after); why
    /// it is not traced, when it is not, counted.
    fn plan_image(
        &mut self,
        path: &Path,
        id: FileIdentity,
    ) -> (Vec<FileIdentity>, Option<LoaderHook>, u64) {
        if Some(id) == self.root_exe && self.root_unwinds {
            self.not_traced(unwinding(path));
            (Vec::new(), self.root_hook.clone(), 0)
        } else if Some(id) == self.root_exe {
            // The command's executable: its plan (the command's own process has it attached already).
            let wanted = self.root_files.clone();
            let functions = self.root_functions(&wanted);
            (wanted, self.root_hook.clone(), functions)
        } else {
            let t0 = Instant::now();
            let plan = self.executable_plan(path, id);
            self.counts.plan_ns += t0.elapsed().as_nanos() as u64;
            match plan.as_ref() {
                Ok(plan)
                    if plan.can_unwind() == plan::Unwinds::Exceptions
                        && !plan.functions.is_empty() =>
                {
                    self.not_traced(unwinding(path));
                    (Vec::new(), plan.loader_hook.clone(), 0)
                }
                Ok(plan) => {
                    if plan.can_unwind() == plan::Unwinds::Rarely && !plan.functions.is_empty() {
                        let w = format!(
                            "{} is traced in a followed process, where a panic (or forced unwind) through a \
                             traced call aborts it instead of unwinding: run it as the command itself to have \
                             panics behave as untraced",
                            file_name(path)
                        );
                        self.warnings.insert(w);
                    }
                    let wanted = self.register(plan);
                    if plan.functions.is_empty() {
                        self.not_traced(format!(
                            "processes running {} (no function selected)",
                            file_name(path)
                        ));
                    }
                    (
                        wanted,
                        plan.loader_hook.clone(),
                        plan.functions.len() as u64,
                    )
                }
                Err(e) => {
                    self.not_traced(format!("processes running {}: {e}", file_name(path)));
                    (Vec::new(), None, 0)
                }
            }
        }
    }

    /// `pid` exec'd: plan its new image, keep the links of files it still maps, attach the others.
    /// `from_thread`: a thread other than the first exec'd; the task the links were attached to (the
    /// first thread) is gone, so none of them fires any more and every file is attached again.
    /// The held process's record is taken out of the table for the duration and put back at the end.
    fn on_exec(&mut self, program: &Program<'_>, pid: u32, from_thread: bool) {
        self.counts.execs += 1;
        let mut proc = self.procs.remove(&pid).unwrap_or_default();
        if from_thread {
            // Closed now, before the new links exist: the old ones still fire for the new image once
            // a new link has its breakpoints installed (the kernel checks the thread group, not the
            // task), and would count every call twice. The process is held meanwhile.
            for (_, l) in proc.files.drain() {
                drop(l);
            }
            if let Some((_, l)) = proc.hook.take() {
                drop(l);
            }
        }
        proc.vfork = false;
        proc.seen.clear();
        proc.library_holds = 0;
        let link = PathBuf::from(format!("/proc/{pid}/exe"));
        let id = FileIdentity::of(&link);
        let path = std::fs::read_link(&link)
            .ok()
            .filter(|p| id.is_some() && FileIdentity::of(p) == id);
        let (Some(id), Some(path)) = (id, path) else {
            self.not_traced(
                "processes whose executable was deleted or replaced before perfgate read it",
            );
            self.close_all(&mut proc);
            program.follow_process(pid, self.holds);
            self.procs.insert(pid, proc);
            return;
        };
        let (wanted, hook, functions) = self.plan_image(&path, id);
        self.count_binary(&path, functions);
        // The links of the old image's files stay: a file the new image does not map gets no
        // breakpoint, and one it maps (libc, with --lib) is attached already. Closing and attaching
        // again would leave a moment where both count.
        let t0 = Instant::now();
        for id in wanted {
            if let std::collections::hash_map::Entry::Vacant(slot) = proc.files.entry(id) {
                if let Some(links) = self.attach(program, pid, id) {
                    slot.insert(Some(links));
                }
            }
        }
        let same_hook = match (&proc.hook, &hook) {
            (Some((a, _)), Some(b)) => a.path == b.path && a.offset == b.offset,
            (None, None) => true,
            _ => false,
        };
        if !same_hook {
            if let Some((_, Some(l))) = proc.hook.take() {
                self.closer.close(l);
            }
            proc.hook = hook.map(|h| {
                let l = program.attach_loader_hook_for(pid, &h.path, h.offset, h.r_debug_delta);
                (h, l)
            });
        }
        self.counts.attach_ns += t0.elapsed().as_nanos() as u64;
        proc.exe = Some(path);
        program.follow_process(pid, self.holds);
        self.procs.insert(pid, proc);
    }

    fn root_functions(&self, files: &[FileIdentity]) -> u64 {
        files
            .iter()
            .filter_map(|f| self.files.get(f))
            .map(|a| a.probes.len() as u64)
            .sum()
    }

    fn attach(&mut self, program: &Program<'_>, pid: u32, id: FileIdentity) -> Option<Links> {
        let a = self.files.get(&id)?.clone();
        if a.probes.is_empty() {
            return None;
        }
        match program.attach_for(pid, &a.path, &a.probes) {
            Ok(l) => Some(l),
            Err(e) => {
                self.not_traced(format!("attaching {}: {e:#}", file_name(&a.path)));
                None
            }
        }
    }

    /// `parent` forked `child`: the child maps what its parent maps, and gets the same probes.
    fn on_fork(&mut self, program: &Program<'_>, parent: u32, child: u32) {
        self.counts.followed += 1;
        self.counts.forks += 1;
        let (files, hook, exe, seen) = match self.procs.get(&parent) {
            Some(p) if parent == self.root_pid && self.root_unwinds && !p.files.is_empty() => {
                let why = format!(
                    "forks of the command: {}",
                    p.exe.as_deref().map(unwinding).unwrap_or_default()
                );
                let kept = (
                    Vec::new(),
                    p.hook.as_ref().map(|h| h.0.clone()),
                    p.exe.clone(),
                    p.seen.clone(),
                );
                self.not_traced(why);
                kept
            }
            Some(p) => (
                p.files.keys().copied().collect::<Vec<_>>(),
                p.hook.as_ref().map(|h| h.0.clone()),
                p.exe.clone(),
                p.seen.clone(),
            ),
            None => Default::default(),
        };
        let t0 = Instant::now();
        let mut proc = Proc {
            exe,
            seen,
            library_holds: 1,
            ..Proc::default()
        };
        for id in files {
            if let Some(l) = self.attach(program, child, id) {
                proc.files.insert(id, Some(l));
            }
        }
        proc.hook = hook.map(|h| {
            let l = program.attach_loader_hook_for(child, &h.path, h.offset, h.r_debug_delta);
            (h, l)
        });
        self.counts.attach_ns += t0.elapsed().as_nanos() as u64;
        program.follow_fork(parent, child, self.holds);
        self.procs.insert(child, proc);
    }

    /// Stops every thread once and notes the traced calls it is in (after the attach of a live process:
    /// the calls in progress then began before the probes); returns once all are sampled (or after a
    /// second: a thread in a long group-stop is not waited for).
    pub(super) fn sample_threads(&mut self, program: &Program<'_>) -> Result<()> {
        self.sampled = false;
        self.tracer.sample_all()?;
        let deadline = Instant::now() + Duration::from_secs(1);
        while !self.sampled && self.tracer_gone.is_none() && Instant::now() < deadline {
            self.serve(program, Duration::from_millis(5))?;
        }
        Ok(())
    }

    /// Thread `tid` is stopped: the traced calls on its stack below those the shadow stack has (entered
    /// since the attach) began before the probes.
    fn on_sample(
        &mut self,
        program: &Program<'_>,
        tid: u32,
        regs: crate::sys::ptrace::StackRegisters,
    ) {
        let Some(pid) = tree::tgid(tid) else {
            return;
        };
        let maps = walk::executable_mappings(pid);
        let function_at = |addr: u64| -> Option<u32> {
            let m = walk::mapping_of(&maps, addr)?;
            let id = FileIdentity::of(&m.path)?;
            let a = self.files.get(&id)?;
            let off = m.file_offset(addr);
            a.ranges
                .iter()
                .find(|(s, e, _)| *s <= off && off < *e)
                .map(|r| r.2)
        };
        let chain = walk::call_chain(pid, regs, &|a| function_at(a).is_some());
        let traced: Vec<u32> = chain.iter().filter_map(|&a| function_at(a)).collect();
        let seen = program.stack_depth(tid) as usize;
        for &f in traced.iter().skip(seen) {
            self.running_at_attach.push(f);
        }
    }

    /// Thread `tid` added libraries to its process's link map and is held: attach those the
    /// selection covers.
    fn on_libraries(&mut self, program: &Program<'_>, tid: u32) {
        self.counts.library_holds += 1;
        let Some(pid) = tree::tgid(tid) else {
            return;
        };
        let at_start =
            self.mode != Mode::Live && self.procs.get(&pid).is_none_or(|p| p.library_holds == 0);
        if let Some(p) = self.procs.get_mut(&pid) {
            p.library_holds += 1;
        }
        self.attach_libraries(program, pid, at_start);
    }

    /// Attaches the libraries `pid` maps that the selection covers and it does not have yet; `at_start`:
    /// mapped at its start-up (or before perfgate came), not late.
    fn attach_libraries(&mut self, program: &Program<'_>, pid: u32, at_start: bool) {
        let mut proc = self.procs.remove(&pid).unwrap_or_default();
        let exe = proc.exe.as_deref().and_then(FileIdentity::of);
        for path in mapped_executables(pid) {
            let Some(id) = FileIdentity::of(&path) else {
                continue;
            };
            if Some(id) == exe || proc.files.contains_key(&id) || !proc.seen.insert(id) {
                continue;
            }
            let t0 = Instant::now();
            let plan = self.library_plan(&path, id);
            self.counts.plan_ns += t0.elapsed().as_nanos() as u64;
            let plan = match plan.as_ref() {
                Ok(Some(p)) => p,
                Ok(None) => continue,
                Err(e) => {
                    self.not_traced(format!("libraries {}: {e}", file_name(&path)));
                    continue;
                }
            };
            let unmatched: BTreeSet<&String> = plan.libs_unmatched.iter().collect();
            self.libs_unmatched.retain(|g| unmatched.contains(g));
            let ids = self.register(plan);
            let t0 = Instant::now();
            for id in ids {
                let Some(links) = self.attach(program, pid, id) else {
                    continue;
                };
                proc.files.insert(id, Some(links));
                if !at_start {
                    let functions = self.files.get(&id).map_or(0, |a| a.probes.len() as u64);
                    let late = self
                        .late
                        .entry(path.clone())
                        .or_insert_with(|| LateLibrary {
                            path: path.clone(),
                            ..LateLibrary::default()
                        });
                    late.processes += 1;
                    late.functions = functions;
                }
            }
            self.counts.attach_ns += t0.elapsed().as_nanos() as u64;
        }
        self.procs.insert(pid, proc);
    }

    fn on_exited(&mut self, program: &Program<'_>, pid: u32, exit: ExitInfo) {
        let Some(mut proc) = self.procs.remove(&pid) else {
            return;
        };
        if proc.vfork {
            self.not_traced(
                "vfork children that exited without exec (they run in their parent's memory)",
            );
        }
        if !exit.success() && pid != self.root_pid {
            self.counts.failed += 1;
        }
        self.exits.insert(pid, exit);
        self.close_all(&mut proc);
        program.unfollow_process(pid);
    }

    fn close_all(&mut self, proc: &mut Proc) {
        for (_, l) in proc.files.drain() {
            if let Some(l) = l {
                self.closer.close(l);
            }
        }
        if let Some((_, Some(l))) = proc.hook.take() {
            self.closer.close(l);
        }
    }

    /// Ends the following: the tracer's figures, every link of the session closed (before the program
    /// detaches its own), and what the profile must say.
    pub(super) fn finish(mut self, program: &Program<'_>) -> Outcome {
        if let Ok(s) = self.tracer.stats() {
            self.counts.threads = u64::from(s.threads);
            self.counts.signals = u64::from(s.signals);
        }
        let procs: Vec<u32> = self.procs.keys().copied().collect();
        for pid in procs {
            if let Some(mut p) = self.procs.remove(&pid) {
                self.close_all(&mut p);
            }
        }
        drop(self.tracer);
        self.closer.finish();
        let names = program.link_map_names();
        let mut loaded_later: Vec<PathBuf> = names
            .iter()
            .filter(|n| n.later && n.path.is_absolute())
            .map(|n| n.path.clone())
            .filter(|p| {
                !self
                    .mapped_before
                    .contains(&std::fs::canonicalize(p).unwrap_or_else(|_| p.clone()))
            })
            .collect();
        loaded_later.sort();
        loaded_later.dedup();
        let files = self
            .file_order
            .iter()
            .filter_map(|id| self.files.get(id))
            .filter(|a| !a.probes.is_empty())
            .map(|a| TracedFile {
                path: a.path.clone(),
                build_id: a.build_id.clone(),
                functions: a.probes.len() as u64,
            })
            .collect();
        let mut warnings: Vec<String> = self.warnings.into_iter().collect();
        for g in &self.libs_unmatched {
            warnings.push(format!(
                "--lib {g:?} matched no library any traced process loaded"
            ));
        }
        let mut counts = self.counts;
        counts.binaries = self.binaries.into_values().collect();
        counts.not_traced = self
            .not_traced
            .into_iter()
            .map(|(reason, count)| NotTraced { reason, count })
            .collect();
        let running_at_attach = self
            .running_at_attach
            .iter()
            .filter_map(|&f| self.functions.get(f as usize))
            .map(|f| format!("{} ({})", f.name, f.module))
            .collect();
        Outcome {
            running_at_attach,
            functions: self.functions,
            files,
            skipped: self.skipped,
            skipped_names: self.skipped_names,
            warnings,
            processes: Some(counts),
            attached_late: self.late.into_values().collect(),
            loaded_later,
        }
    }
}

/// Why a followed process that can unwind is not traced.
fn unwinding(program: &Path) -> String {
    format!(
        "processes running {} (C++ code, which throws through traced calls: perfgate \
         restores return addresses for the unwinder in the command's own process only)",
        file_name(program)
    )
}

fn file_name(p: &Path) -> String {
    p.file_name().map_or_else(
        || p.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

impl Outcome {
    /// Puts what the following learnt into the profile.
    pub(super) fn apply(self, p: &mut crate::profile::Profile) {
        let a = &mut p.accounting;
        p.functions = self.functions;
        a.files = self.files;
        for (r, n) in self.skipped {
            *a.skipped.entry(r).or_insert(0) += n;
        }
        a.skipped_names.extend(self.skipped_names);
        for w in self.warnings {
            if !a.warnings.contains(&w) {
                a.warnings.push(w);
            }
        }
        a.processes = self.processes;
        a.lost.in_progress_at_attach = self.running_at_attach.len() as u64;
        a.running_at_attach = self.running_at_attach;
        let canon = |p: &PathBuf| std::fs::canonicalize(p).unwrap_or_else(|_| p.clone());
        let late: BTreeSet<PathBuf> = self.attached_late.iter().map(|l| canon(&l.path)).collect();
        a.libraries_attached_late = self.attached_late;
        // The loader hook tells start-up from dlopen per process image: what it saw added later, and
        // what sampling the command's maps found, minus what was attached then.
        let mut later: BTreeSet<PathBuf> = a.libraries_loaded_later.iter().cloned().collect();
        later.extend(self.loaded_later);
        a.libraries_loaded_later = later
            .into_iter()
            .filter(|p| !late.contains(&canon(p)))
            .collect();
    }
}
