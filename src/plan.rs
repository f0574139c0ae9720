//! The probe plan: which functions of which files get a probe, their ids (= BPF cookies), how their entry
//! is probed, and everything skipped, with the reason.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::elf::{self, ElfFile, EntryKind, LoaderEnv};
use crate::profile::{FuncId, FunctionInfo, ProbeKind};

/// What the user selected.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    /// `--lib` globs: libraries whose functions are all traced, matched on soname, file name or path.
    pub libs: Vec<String>,
    /// `--function` globs on demangled (or raw) names; empty = every function.
    pub functions: Vec<String>,
    /// `--no-function` globs.
    pub no_functions: Vec<String>,
    /// Also trace C runtime start-up code (`_start`, `_init`, …).
    pub startup: bool,
}

/// Why the plan cannot be made; each is one line for the user.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// The executable or a library could not be read.
    #[error(transparent)]
    Elf(#[from] elf::ElfError),
    /// A glob did not parse.
    #[error("bad pattern {pattern:?}: {reason}")]
    BadPattern {
        /// the pattern
        pattern: String,
        /// why
        reason: String,
    },
    /// `--lib` named a library the loader would not map.
    #[error("--lib {0:?}: no library of the program matches (its libraries: {1})")]
    LibNotFound(String, String),
    /// `--lib` matched a library that is needed but could not be found on disk.
    #[error("--lib {0:?}: library {1} is needed but was not found on this system")]
    LibMissing(String, String),
    /// Filters left nothing.
    #[error("no function matched the filters ({0} candidates in {1} file(s); see --function/--no-function)")]
    NothingMatched(usize, usize),
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
    /// File offsets of the planned functions.
    pub offsets: Vec<u64>,
    /// Their ids, same order.
    pub ids: Vec<FuncId>,
    /// The file as it was when its offsets were read.
    pub identity: Option<FileIdentity>,
}

/// What identifies a file's content cheaply: a rebuilt file gets another inode, size or time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
    pub skipped: BTreeMap<String, u64>,
    /// Skipped functions worth naming in `--verbose` (reason, name).
    pub skipped_names: Vec<(String, String)>,
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
    /// Where to watch the dynamic loader's link map, if the loader has the debugger interface.
    pub loader_hook: Option<LoaderHook>,
}

/// The dynamic loader's debugger interface: `_dl_debug_state` is called after every change of the link map,
/// whose head is in `_r_debug`.
#[derive(Debug, Clone)]
pub struct LoaderHook {
    /// The loader (PT_INTERP).
    pub path: PathBuf,
    /// File offset of `_dl_debug_state`.
    pub offset: u64,
    /// Address of `_r_debug` minus address of `_dl_debug_state`.
    pub r_debug_delta: i64,
}

/// Finds the debugger interface in a loader; `None` when it is not there (then only sampling is left).
fn loader_hook(interp: &Path) -> Option<LoaderHook> {
    let loader = elf::read_elf(interp).ok()?;
    let debug_state = loader
        .functions
        .iter()
        .find(|f| f.raw_name == "_dl_debug_state" || f.name == "_dl_debug_state")?;
    let r_debug = elf::symbol_address(interp, "_r_debug").ok()??;
    Some(LoaderHook {
        path: loader.path.clone(),
        offset: debug_state.offset.0,
        r_debug_delta: r_debug as i64 - debug_state.addr as i64,
    })
}

const STARTUP: &[&str] = &[
    "_start",
    "_init",
    "_fini",
    "__libc_csu_init",
    "__libc_csu_fini",
    "frame_dummy",
    "register_tm_clones",
    "deregister_tm_clones",
    "__do_global_dtors_aux",
    "_dl_relocate_static_pie",
];

fn patterns(globs: &[String]) -> Result<Vec<glob::Pattern>, PlanError> {
    globs
        .iter()
        .map(|g| {
            glob::Pattern::new(g).map_err(|e| PlanError::BadPattern {
                pattern: g.clone(),
                reason: e.msg.to_string(),
            })
        })
        .collect()
}

fn file_name(p: &Path) -> String {
    p.file_name().map_or_else(
        || p.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

fn probe_kind(k: EntryKind) -> ProbeKind {
    match k {
        EntryKind::Nop5 => ProbeKind::Nop5,
        EntryKind::Emulated => ProbeKind::Emulated,
        EntryKind::SingleStep => ProbeKind::SingleStep,
        EntryKind::Unknown => ProbeKind::Unknown,
    }
}

/// Builds the plan for an executable (already resolved to a path).
pub fn build(exe: &Path, sel: &Selection) -> Result<Plan, PlanError> {
    let include = patterns(&sel.functions)?;
    let exclude = patterns(&sel.no_functions)?;
    let lib_globs = patterns(&sel.libs)?;

    // Identities are taken before reading: a change during or after the read is caught before each attach.
    let mut file_ids: std::collections::HashMap<PathBuf, Option<FileIdentity>> = Default::default();
    let main_id = FileIdentity::of(exe);
    let main = elf::read_elf(exe)?;
    file_ids.insert(main.path.clone(), main_id);
    let mut plan = Plan {
        build_id: main.build_id.clone(),
        program: exe.to_path_buf(),
        ..Plan::default()
    };
    let mut files: Vec<ElfFile> = Vec::new();

    {
        let libs = elf::resolve_libraries(&main, &LoaderEnv::from_system());
        for l in &libs {
            match &l.path {
                Some(p) => plan.known_libraries.push(p.clone()),
                None => plan.libraries_not_found.push(l.soname.clone()),
            }
        }
        // The dynamic loader itself is mapped too, whether or not a library names it.
        if let Some(interp) = &main.interp {
            plan.known_libraries.push(PathBuf::from(interp));
            plan.loader_hook = loader_hook(Path::new(interp));
        }
        for (glob_src, g) in sel.libs.iter().zip(&lib_globs) {
            let matches: Vec<_> = libs
                .iter()
                .filter(|l| {
                    g.matches(&l.soname)
                        || l.path
                            .as_deref()
                            .is_some_and(|p| g.matches(&file_name(p)) || g.matches_path(p))
                })
                .collect();
            if matches.is_empty() {
                let names: Vec<&str> = libs.iter().map(|l| l.soname.as_str()).collect();
                let names = if names.is_empty() {
                    "none".to_string()
                } else {
                    names.join(", ")
                };
                return Err(PlanError::LibNotFound(glob_src.clone(), names));
            }
            for l in matches {
                let Some(path) = &l.path else {
                    return Err(PlanError::LibMissing(glob_src.clone(), l.soname.clone()));
                };
                if files.iter().any(|f| f.path == *path) {
                    continue;
                }
                let id = FileIdentity::of(path);
                let lib = elf::read_elf(path)?;
                file_ids.insert(lib.path.clone(), id);
                files.push(lib);
            }
        }
    }
    files.insert(0, main);

    let mut candidates = 0usize;
    for file in &files {
        let module = file_name(&file.path);
        if !file.has_symtab {
            plan.warnings.push(format!(
                "{module}: stripped (no .symtab); only the {} exported functions in .dynsym are traced",
                file.functions.len()
            ));
        }
        let k = &file.skipped;
        // Imports (undefined symbols) are other files' functions, and aliases are probed through their
        // primary name: neither is a skipped function.
        for (reason, n) in [
            ("no size", k.zero_size),
            ("ifunc resolver", k.ifunc),
            ("outside executable segments", k.not_executable),
            ("unreadable name", k.bad_name),
        ] {
            if n > 0 {
                *plan.skipped.entry(reason.to_string()).or_insert(0) += n;
            }
        }
        let mut planned = PlannedFile {
            path: file.path.clone(),
            module: module.clone(),
            build_id: file.build_id.clone(),
            offsets: Vec::new(),
            ids: Vec::new(),
            identity: file_ids.get(&file.path).copied().flatten(),
        };
        for f in &file.functions {
            candidates += 1;
            let names =
                || std::iter::once(f.name.as_str()).chain(std::iter::once(f.raw_name.as_str()));
            let rejected = elf::kernel_rejects(&f.entry_bytes);
            let reason = if rejected.is_some() {
                Some("kernel cannot probe its first instruction")
            } else if !sel.startup && STARTUP.contains(&f.raw_name.as_str()) {
                Some("start-up code")
            } else if !include.is_empty() && !include.iter().any(|p| names().any(|n| p.matches(n)))
            {
                Some("not selected by --function")
            } else if exclude.iter().any(|p| names().any(|n| p.matches(n))) {
                Some("excluded by --no-function")
            } else {
                None
            };
            if let Some(reason) = reason {
                *plan.skipped.entry(reason.to_string()).or_insert(0) += 1;
                plan.skipped_names
                    .push((reason.to_string(), format!("{} ({module})", f.name)));
                continue;
            }
            let id = plan.functions.len() as FuncId;
            plan.functions.push(FunctionInfo {
                name: f.name.clone(),
                raw_name: f.raw_name.clone(),
                module: module.clone(),
                addr: f.addr,
                size: f.size,
                probe: probe_kind(elf::classify_entry_at(&f.entry_bytes, f.addr)),
            });
            planned.offsets.push(f.offset.0);
            planned.ids.push(id);
        }
        if !planned.ids.is_empty() {
            plan.files.push(planned);
        }
    }
    if plan.functions.is_empty() {
        return Err(PlanError::NothingMatched(candidates, files.len()));
    }
    Ok(plan)
}
