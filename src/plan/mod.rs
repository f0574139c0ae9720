//! The probe plan: which functions of which files get a probe, their ids (= BPF cookies), at which file
//! offset and with which kind of instruction there, and everything skipped, with a typed reason.
//!
//! Invariants: function ids are dense indices into [`Plan::functions`]; every planned file records the
//! identity it had when its offsets were read, so a file rebuilt in between is refused before attach.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::elf::placement::Placement;
use crate::elf::{self, ElfFile, FileOffset, LoaderEnv};
use crate::profile::names::BadPattern;
use crate::profile::{FuncId, FunctionInfo, ProbeKind, SkipReason, SkippedFunction};

mod loader;
mod select;
mod unwind;
pub use loader::LoaderHook;
pub use select::Selection;
pub use unwind::{never_traced, HookedFile, StackHook, StackHookKind, Unwinds};

/// Why the plan cannot be made; each is one line for the user.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// The executable or a library could not be read.
    #[error(transparent)]
    Elf(#[from] elf::ElfError),
    /// A glob did not parse.
    #[error(transparent)]
    BadPattern(#[from] BadPattern),
    /// `--lib` matched a library that is needed but could not be found on disk.
    #[error("--lib {glob:?}: library {soname} is needed but was not found on this system")]
    LibMissing {
        /// The `--lib` glob.
        glob: String,
        /// The library's soname.
        soname: String,
    },
    /// Filters left nothing.
    #[error("no function matched the filters in {} ({candidates} candidates in {files} file(s); see --function/--no-function)", program.display())]
    NothingMatched {
        /// The executable planned.
        program: PathBuf,
        /// Functions considered.
        candidates: usize,
        /// Files they were in.
        files: usize,
    },
}

/// One file to attach to.
#[derive(Debug, Clone)]
pub struct PlannedFile {
    /// Path given to the kernel.
    pub path: PathBuf,
    /// Short name shown to users.
    pub module: String,
    /// GNU build-id.
    pub build_id: Option<String>,
    /// Where its functions are probed.
    pub probes: Vec<ProbePoint>,
    /// The file as it was when its offsets were read.
    pub identity: Option<FileIdentity>,
}

/// One function's probe in a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProbePoint {
    /// File offset of the probed instruction.
    pub offset: FileOffset,
    /// The function.
    pub func: FuncId,
}

/// What identifies a file's content cheaply: a rebuilt file gets another inode, size or time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FileIdentity {
    dev: u64,
    ino: u64,
    size: u64,
    mtime_ns: i128,
}

impl FileIdentity {
    /// Of the file at `path` now.
    pub fn of(path: &Path) -> Option<FileIdentity> {
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::metadata(path).ok()?;
        Some(FileIdentity {
            dev: m.dev(),
            ino: m.ino(),
            size: m.size(),
            mtime_ns: m.mtime() as i128 * 1_000_000_000 + m.mtime_nsec() as i128,
        })
    }
}

impl PlannedFile {
    /// Fails when the file changed since its offsets were read: probes at stale offsets would land inside
    /// instructions of the new code and crash the benchmark.
    pub fn check_unchanged(&self) -> anyhow::Result<()> {
        if self.identity.is_some() && FileIdentity::of(&self.path) != self.identity {
            anyhow::bail!(
                "{} changed since perfgate read its symbols (rebuilt while perfgate ran?): start again",
                self.path.display()
            );
        }
        Ok(())
    }
}

/// The whole plan.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    /// Files with at least one probe.
    pub files: Vec<PlannedFile>,
    /// All planned functions, indexed by id.
    pub functions: Vec<FunctionInfo>,
    /// Skipped functions by reason.
    pub skipped: BTreeMap<SkipReason, u64>,
    /// Skipped functions worth naming in `--verbose`.
    pub skipped_names: Vec<SkippedFunction>,
    /// Libraries the loader would map that were not found.
    pub libraries_not_found: Vec<String>,
    /// Warnings (stripped binaries, …).
    pub warnings: Vec<String>,
    /// The executable's build-id.
    pub build_id: Option<String>,
    /// The executable.
    pub program: PathBuf,
    /// Every library the loader maps at start-up (found ones), traced or not: anything else mapped later
    /// came from dlopen.
    pub known_libraries: Vec<PathBuf>,
    /// The executable names an unwinding runtime or holds an unwinder (see [`Plan::can_unwind`]).
    pub unwinds: unwind::Unwinds,
    /// Where to watch the dynamic loader's link map, if the loader has the debugger interface.
    pub loader_hook: Option<LoaderHook>,
    /// Separate debug files whose symbols were used (stripped files' static functions).
    pub debug_files: Vec<PathBuf>,
    /// `--lib` globs that matched no library the loader maps at start-up: they may name a library the
    /// program loads with dlopen (traced then, when perfgate can hold the thread that loads it).
    pub libs_unmatched: Vec<String>,
    /// Entry-only hooks of the unwinder, catches and stack switchers, per file (see `unwind.rs`).
    pub stack_hooks: Vec<HookedFile>,
    /// Stack-switching functions the executable imports or defines (`makecontext`, `swapcontext`, …).
    pub switchers_used: Vec<String>,
}

fn file_name(p: &Path) -> String {
    p.file_name().map_or_else(
        || p.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

impl Plan {
    /// How the probe of function `id` is handled by the kernel (`Unknown` for an id not in the plan).
    pub fn probe_kind(&self, id: FuncId) -> ProbeKind {
        self.functions
            .get(id as usize)
            .map_or(ProbeKind::Unknown, |f| f.probe)
    }

    fn skip(&mut self, reason: SkipReason, n: u64) {
        if n > 0 {
            *self.skipped.entry(reason).or_insert(0) += n;
        }
    }
}

/// The files to plan: the executable first, then the libraries `--lib` selects.
struct Files {
    elf: Vec<ElfFile>,
    identities: std::collections::HashMap<PathBuf, Option<FileIdentity>>,
}

/// Builds the plan for an executable (already resolved to a path) and the libraries `--lib` selects
/// among those the loader maps at start-up; fails when no function is selected.
pub fn build(exe: &Path, sel: &Selection) -> Result<Plan, PlanError> {
    build_with(exe, sel, true)
}

/// [`build`], but a plan without any function is not an error: the processes the command starts (a
/// shell wrapper's) or the libraries it loads later may have them.
pub fn build_lenient(exe: &Path, sel: &Selection) -> Result<Plan, PlanError> {
    build_with(exe, sel, false)
}

fn build_with(exe: &Path, sel: &Selection, require_functions: bool) -> Result<Plan, PlanError> {
    let filters = select::Filters::new(sel)?;
    // Identities are taken before reading: a change during or after the read is caught before each attach.
    let main_id = FileIdentity::of(exe);
    let main = elf::read_elf(exe)?;
    let mut plan = Plan {
        build_id: main.build_id.clone(),
        program: exe.to_path_buf(),
        ..Plan::default()
    };
    let mut files = Files {
        elf: Vec::new(),
        identities: std::collections::HashMap::from([(main.path.clone(), main_id)]),
    };
    add_libraries(&main, sel, &filters, &mut plan, &mut files)?;
    files.elf.insert(0, main);

    let mut candidates = 0usize;
    for file in &files.elf {
        candidates += file.functions.len();
        let identity = files.identities.get(&file.path).copied().flatten();
        plan_one(file, identity, sel, &filters, &mut plan);
    }
    plan.unwinds = files
        .elf
        .first()
        .map(unwind::elf_unwinds)
        .unwrap_or_default();
    unwind::plan_hooks(&files.elf, &mut plan);
    if require_functions && plan.functions.is_empty() {
        return Err(PlanError::NothingMatched {
            program: exe.to_path_buf(),
            candidates,
            files: files.elf.len(),
        });
    }
    Ok(plan)
}

/// Resolves the executable's libraries like ld.so, records which were found, and reads those `--lib`
/// selects.
fn add_libraries(
    main: &ElfFile,
    sel: &Selection,
    filters: &select::Filters,
    plan: &mut Plan,
    files: &mut Files,
) -> Result<(), PlanError> {
    let libs = elf::resolve_libraries(main, &LoaderEnv::from_system());
    for l in &libs {
        match &l.path {
            Some(p) => plan.known_libraries.push(p.clone()),
            None => plan.libraries_not_found.push(l.soname.clone()),
        }
    }
    // The dynamic loader itself is mapped too, whether or not a library names it.
    if let Some(interp) = &main.interp {
        plan.known_libraries.push(PathBuf::from(interp));
        plan.loader_hook = LoaderHook::find(Path::new(interp));
    }
    for (glob, g) in sel.libs.iter().zip(&filters.libs) {
        let matches: Vec<_> = libs
            .iter()
            .filter(|l| {
                g.matches_str(&l.soname) || l.path.as_deref().is_some_and(|p| g.matches_path(p))
            })
            .collect();
        if matches.is_empty() {
            plan.libs_unmatched.push(glob.clone());
            continue;
        }
        for l in matches {
            let Some(path) = &l.path else {
                return Err(PlanError::LibMissing {
                    glob: glob.clone(),
                    soname: l.soname.clone(),
                });
            };
            if files.elf.iter().any(|f| f.path == *path) {
                continue;
            }
            let id = FileIdentity::of(path);
            let lib = elf::read_elf(path)?;
            files.identities.insert(lib.path.clone(), id);
            files.elf.push(lib);
        }
    }
    Ok(())
}

/// Plans an executable alone, as a followed process runs it: its own functions (no library: those the
/// selection covers are planned from what the process maps, see [`library`]) and its loader's hook. A
/// plan without any function is not an error.
pub fn executable(exe: &Path, sel: &Selection) -> Result<Plan, PlanError> {
    let filters = select::Filters::new(sel)?;
    let identity = FileIdentity::of(exe);
    let main = elf::read_elf(exe)?;
    let mut plan = Plan {
        build_id: main.build_id.clone(),
        program: exe.to_path_buf(),
        libs_unmatched: sel.libs.clone(),
        ..Plan::default()
    };
    if let Some(interp) = &main.interp {
        plan.loader_hook = LoaderHook::find(Path::new(interp));
    }
    plan.unwinds = unwind::elf_unwinds(&main);
    plan_one(&main, identity, sel, &filters, &mut plan);
    Ok(plan)
}

/// Plans a library a process mapped (at start-up or with dlopen) when a `--lib` glob selects it, by
/// file name, path or soname; `None` when none does. The plan's `libs_unmatched` lists the globs that do
/// not match it.
pub fn library(path: &Path, sel: &Selection) -> Result<Option<Plan>, PlanError> {
    if sel.libs.is_empty() {
        return Ok(None);
    }
    let filters = select::Filters::new(sel)?;
    let identity = FileIdentity::of(path);
    let by_path: Vec<bool> = filters.libs.iter().map(|g| g.matches_path(path)).collect();
    if !by_path.iter().any(|&m| m) && !starts_like_elf(path) {
        return Ok(None);
    }
    let lib = elf::read_elf(path)?;
    let matched: Vec<bool> = filters
        .libs
        .iter()
        .zip(&by_path)
        .map(|(g, &p)| p || lib.soname.as_deref().is_some_and(|s| g.matches_str(s)))
        .collect();
    if !matched.iter().any(|&m| m) {
        return Ok(None);
    }
    let mut plan = Plan {
        build_id: lib.build_id.clone(),
        program: path.to_path_buf(),
        libs_unmatched: sel
            .libs
            .iter()
            .zip(&matched)
            .filter(|(_, &m)| !m)
            .map(|(g, _)| g.clone())
            .collect(),
        ..Plan::default()
    };
    plan_one(&lib, identity, sel, &filters, &mut plan);
    Ok(Some(plan))
}

/// Whether the file begins with the ELF magic (a mapped file may be anything: a font, a locale archive).
fn starts_like_elf(path: &Path) -> bool {
    use std::io::Read;
    let mut magic = [0u8; 4];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut magic))
        .is_ok()
        && magic == *b"\x7fELF"
}

/// Places the probes of one file and plans it.
fn plan_one(
    file: &ElfFile,
    identity: Option<FileIdentity>,
    sel: &Selection,
    filters: &select::Filters,
    plan: &mut Plan,
) {
    let placements = if sel.no_placement {
        Vec::new()
    } else {
        match place(file) {
            Ok(p) => p,
            Err(e) => {
                plan.warnings.push(format!(
                    "{}: probes left on first bytes ({e:#})",
                    file_name(&file.path)
                ));
                Vec::new()
            }
        }
    };
    plan_file(file, identity, &placements, sel, filters, plan);
}

/// The cheapest safe probe point of every function of `file` (see `elf::placement`), in the order of
/// `file.functions`. When the file cannot be read again every probe stays on its first byte, which is
/// always safe.
fn place(file: &ElfFile) -> anyhow::Result<Vec<Placement>> {
    // Bounded like every read of an ELF file: the largest libraries are a few hundred MiB.
    let data = crate::files::read_regular(&file.path, 1 << 30, "ELF file")?;
    Ok(elf::placement::place_all(&data, &file.functions))
}

/// Plans one file: every function the filters keep gets an id and a probe point; the rest are counted
/// by reason.
fn plan_file(
    file: &ElfFile,
    identity: Option<FileIdentity>,
    placements: &[Placement],
    sel: &Selection,
    filters: &select::Filters,
    plan: &mut Plan,
) {
    let module = file_name(&file.path);
    for r in &file.debug_rejected {
        plan.warnings
            .push(format!("{module}: debug file not used: {r}"));
    }
    if let Some(d) = &file.debug_file {
        plan.debug_files.push(d.path.clone());
    }
    if !file.has_symtab {
        plan.warnings.push(format!(
            "{module}: stripped (no .symtab); only the {} exported functions in .dynsym are traced",
            file.functions.len()
        ));
    }
    let k = &file.skipped;
    // Imports (undefined symbols) are other files' functions, and aliases are probed through their
    // primary name: neither is a skipped function.
    plan.skip(SkipReason::NoSize, k.zero_size);
    plan.skip(SkipReason::IfuncResolver, k.ifunc);
    plan.skip(SkipReason::NotExecutable, k.not_executable);
    plan.skip(SkipReason::BadName, k.bad_name);
    let mut planned = PlannedFile {
        path: file.path.clone(),
        module: module.clone(),
        build_id: file.build_id.clone(),
        probes: Vec::new(),
        identity,
    };
    for (i, f) in file.functions.iter().enumerate() {
        if let Some(reason) = filters.skip_reason(f, &module, sel.startup) {
            plan.skip(reason, 1);
            plan.skipped_names.push(SkippedFunction {
                reason,
                name: format!("{} ({module})", f.name),
            });
            continue;
        }
        let id = plan.functions.len() as FuncId;
        let at_entry = elf::classify_entry_at(&f.entry_bytes, f.addr);
        let (offset, kind) = match placements.get(i) {
            Some(p) if p.offset > 0 => (p.offset, p.kind),
            _ => (0, at_entry),
        };
        plan.functions.push(FunctionInfo {
            name: f.name.clone(),
            raw_name: f.raw_name.clone(),
            module: module.clone(),
            addr: f.addr,
            size: f.size,
            probe: kind,
            probe_offset: offset,
            entry_probe: Some(at_entry),
        });
        planned.probes.push(ProbePoint {
            offset: FileOffset(f.offset.0 + offset),
            func: id,
        });
    }
    if !planned.probes.is_empty() {
        plan.files.push(planned);
    }
}
