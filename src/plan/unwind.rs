//! The unwinder, catches and stack switchers: where `bpf/unwind.h` hooks them (entry-only probes), and
//! the functions that must never get a return probe.
//!
//! Invariants: a hooked function is never traced (a pending return on the unwinder would be a trampoline
//! on the very stack it walks, installed after the hook ran); every hook offset is a function's first
//! byte, or a `ret` inside `_Unwind_Backtrace` found by decoding it from its first byte; one hook per
//! address (aliases are one function); a hooked file records the identity it had when its offsets were
//! read, like a traced one.
//!
//! Where they are searched: the executable (static copies of the unwinder, Rust's panic runtime), every
//! traced file, the runtime libraries the loader maps at start-up (`libgcc_s`, `libstdc++`, `libc`,
//! LLVM's `libunwind` and `libc++abi`, `libboost_context`) and `libgcc_s.so.1` even when nothing needs
//! it, because glibc loads it with dlopen for `backtrace()`, `pthread_exit` and `pthread_cancel`.
//! Not found: an unwinder copied statically into a stripped shared library (its symbols are local).
use std::path::{Path, PathBuf};

use super::{FileIdentity, Plan};
use crate::elf::{self, ElfFile, FileOffset, LoaderEnv};

/// What a hook marks (the four kinds of `enum pg_hook_kind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StackHookKind {
    /// An unwinder entry: throw, resume after a cleanup, rethrow, forced unwind.
    Unwind,
    /// `_Unwind_Backtrace`: a walk of the stack that leaves every frame alive.
    Walk,
    /// A catch called by the catching frame (`__cxa_begin_catch`), or the end of a backtrace walk.
    Land,
    /// A catch signalled a few frames below the catching frame (Rust's `__rust_panic_cleanup`).
    LandDeep,
    /// A stack switch (`swapcontext`, `setcontext`, boost.context's `jump_fcontext`).
    Switch,
}

/// One hook in a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StackHook {
    /// File offset of the hooked instruction.
    pub offset: FileOffset,
    /// What it marks.
    pub kind: StackHookKind,
    /// The symbol (with `.ret` for a return inside it).
    pub symbol: String,
}

/// The hooks of one file.
#[derive(Debug, Clone)]
pub struct HookedFile {
    /// Path given to the kernel.
    pub path: PathBuf,
    /// Its hooks, by offset.
    pub hooks: Vec<StackHook>,
    /// The file as it was when its offsets were read.
    pub identity: Option<FileIdentity>,
}

impl HookedFile {
    /// Fails when the file changed since its offsets were read (a hook inside an instruction of new code
    /// would crash the benchmark).
    pub fn check_unchanged(&self) -> anyhow::Result<()> {
        if self.identity.is_some() && FileIdentity::of(&self.path) != self.identity {
            anyhow::bail!(
                "{} changed since perfgate read its symbols: start again",
                self.path.display()
            );
        }
        Ok(())
    }
}

const UNWIND: [&str; 4] = [
    "_Unwind_RaiseException",
    "_Unwind_Resume",
    "_Unwind_Resume_or_Rethrow",
    "_Unwind_ForcedUnwind",
];
const WALK: &str = "_Unwind_Backtrace";
const SWITCH: [&str; 4] = [
    "swapcontext",
    "setcontext",
    "jump_fcontext",
    "ontop_fcontext",
];
/// Imports that show a program switches stacks (reported in the accounting).
const SWITCH_IMPORTS: [&str; 6] = [
    "makecontext",
    "swapcontext",
    "setcontext",
    "make_fcontext",
    "jump_fcontext",
    "ontop_fcontext",
];
/// Runtime libraries searched for hooks, by file-name prefix.
const RUNTIMES: [&str; 7] = [
    "libgcc_s.so",
    "libstdc++.so",
    "libc.so",
    "libunwind.so",
    "libc++abi.so",
    "libc++.so",
    "libboost_context",
];

/// C++ runtimes: a program that links one throws exceptions as ordinary control flow.
const CPP_RUNTIMES: [&str; 4] = ["libstdc++.so", "libc++.so", "libc++abi.so", "libunwind.so"];

/// Unwinding without C++: Rust panics and forced unwinds go through libgcc_s.
const UNWINDER: &str = "libgcc_s.so";

/// How a program can unwind its stack through its frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Unwinds {
    /// No unwinding runtime linked.
    #[default]
    No,
    /// libgcc_s only (a Rust program): only a panic or a forced unwind (thread cancellation) unwinds.
    Rarely,
    /// A C++ runtime linked or a C++ unwinder built in: exceptions are ordinary control flow.
    Exceptions,
}

fn file_name_of(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

impl Plan {
    /// How the planned program can unwind through its frames. An unwind through a traced frame needs the
    /// return-address fix of `bpf/unwind.h`, which perfgate applies in the command's own process only.
    /// libgcc_s among every plan's hooks says nothing: glibc loads it for thread cancellation.
    pub fn can_unwind(&self) -> Unwinds {
        let names: Vec<String> = self
            .known_libraries
            .iter()
            .map(|p| file_name_of(p))
            .collect();
        if self.unwinds == Unwinds::Exceptions
            || names
                .iter()
                .any(|n| CPP_RUNTIMES.iter().any(|r| n.starts_with(r)))
        {
            Unwinds::Exceptions
        } else if self.unwinds == Unwinds::Rarely || names.iter().any(|n| n.starts_with(UNWINDER)) {
            Unwinds::Rarely
        } else {
            Unwinds::No
        }
    }
}

/// How an executable can unwind, from its own `DT_NEEDED` and functions.
pub(super) fn elf_unwinds(main: &ElfFile) -> Unwinds {
    let needs = |list: &[&str]| {
        main.needed
            .iter()
            .any(|n| list.iter().any(|r| n.starts_with(r)))
    };
    let defines = |name: &str| main.functions.iter().any(|f| base(&f.raw_name) == name);
    if needs(&CPP_RUNTIMES) || defines("__cxa_throw") {
        Unwinds::Exceptions
    } else if needs(&[UNWINDER]) || defines("_Unwind_RaiseException") {
        Unwinds::Rarely
    } else {
        Unwinds::No
    }
}

fn base(raw: &str) -> &str {
    raw.split('@').next().unwrap_or(raw)
}

fn hook_kind(raw: &str) -> Option<StackHookKind> {
    let name = base(raw);
    if UNWIND.contains(&name) {
        Some(StackHookKind::Unwind)
    } else if name == WALK {
        Some(StackHookKind::Walk)
    } else if name == "__cxa_begin_catch" {
        Some(StackHookKind::Land)
    } else if name.ends_with("__rust_panic_cleanup") {
        Some(StackHookKind::LandDeep)
    } else if SWITCH.contains(&name) {
        Some(StackHookKind::Switch)
    } else {
        None
    }
}

/// Whether a function must never get a return probe: the unwinder and what it calls from the frames it
/// walks (personality routines, the FDE registry), the hooked catches and switchers, and the functions
/// that save their own return address to resume there later (`getcontext`, the `setjmp` family): a
/// saved trampoline would be resumed after the kernel dropped its return instance, and return to some
/// other frame's caller.
pub fn never_traced(raw: &str) -> bool {
    let name = base(raw);
    const EXACT: [&str; 13] = [
        "__cxa_begin_catch",
        "__gxx_personality_v0",
        "__gcc_personality_v0",
        "execute_stack_op",
        "getcontext",
        "makecontext",
        "__start_context",
        "make_fcontext",
        "setjmp",
        "_setjmp",
        "__setjmp",
        "sigsetjmp",
        "__sigsetjmp",
    ];
    hook_kind(name).is_some()
        || EXACT.contains(&name)
        || name.starts_with("_Unwind_")
        || name.starts_with("uw_")
        || name.starts_with("execute_cfa_program")
        || name.starts_with("__register_frame")
        || name.starts_with("__deregister_frame")
        || name.contains("rust_eh_personality")
        || name.ends_with("__rust_start_panic")
}

/// Hooks of one file's functions: each hooked function's entry, and for `_Unwind_Backtrace` also
/// every `ret` in it. Sorted by offset, one per offset.
fn hooks_of(file: &ElfFile) -> Vec<StackHook> {
    let mut hooks = Vec::new();
    for f in &file.functions {
        let Some(kind) = std::iter::once(&f.raw_name)
            .chain(&f.aliases)
            .find_map(|n| hook_kind(n))
        else {
            continue;
        };
        let symbol = base(&f.raw_name).to_string();
        if kind == StackHookKind::Walk {
            // Without its returns the walk's end is found at the next traced event instead.
            for offset in elf::return_offsets(&file.path, f).unwrap_or_default() {
                hooks.push(StackHook {
                    offset,
                    kind: StackHookKind::Land,
                    symbol: format!("{symbol}.ret"),
                });
            }
        }
        hooks.push(StackHook {
            offset: f.offset,
            kind,
            symbol,
        });
    }
    hooks.sort_by_key(|h| h.offset);
    hooks.dedup_by_key(|h| h.offset);
    hooks
}

fn is_runtime(path: &Path) -> bool {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    RUNTIMES.iter().any(|r| name.starts_with(r))
}

/// Where glibc's dlopen("libgcc_s.so.1") would find it: LD_LIBRARY_PATH, the cache, the default dirs.
fn libgcc_s(env: &LoaderEnv) -> Option<PathBuf> {
    const NAME: &str = "libgcc_s.so.1";
    let found = |p: PathBuf| p.is_file().then_some(p);
    env.ld_library_path
        .iter()
        .find_map(|d| found(d.join(NAME)))
        .or_else(|| {
            env.ld_so_cache
                .as_ref()
                .and_then(|c| c.lookup(NAME))
                .and_then(|p| found(p.to_path_buf()))
        })
        .or_else(|| env.default_dirs.iter().find_map(|d| found(d.join(NAME))))
}

/// Finds every hook for the plan: in `read` (the executable and the traced files, already read) and in
/// the runtime libraries of `plan.known_libraries` plus `libgcc_s.so.1`. A library that cannot be read
/// is skipped with a warning (its exceptions would then abort as without perfgate's help).
pub(super) fn plan_hooks(read: &[ElfFile], plan: &mut Plan) {
    let mut paths_done: Vec<PathBuf> = Vec::new();
    let canon = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    let mut add = |file: &ElfFile, identity: Option<FileIdentity>, plan: &mut Plan| {
        let c = canon(&file.path);
        if paths_done.contains(&c) {
            return;
        }
        paths_done.push(c);
        let hooks = hooks_of(file);
        if !hooks.is_empty() {
            plan.stack_hooks.push(HookedFile {
                path: file.path.clone(),
                hooks,
                identity,
            });
        }
    };
    for file in read {
        add(file, FileIdentity::of(&file.path), plan);
    }
    let mut runtimes: Vec<PathBuf> = plan
        .known_libraries
        .iter()
        .filter(|p| is_runtime(p))
        .cloned()
        .collect();
    runtimes.extend(libgcc_s(&LoaderEnv::from_system()));
    for path in runtimes {
        let identity = FileIdentity::of(&path);
        match elf::read_elf(&path) {
            Ok(file) => add(&file, identity, plan),
            Err(e) => plan.warnings.push(format!(
                "cannot look for the unwinder in {}: {e}; an exception through traced functions may abort",
                path.display()
            )),
        }
    }
    if let Some(main) = read.first() {
        let imports = elf::imported_functions(&main.path).unwrap_or_default();
        let defined = main.functions.iter().map(|f| base(&f.raw_name));
        plan.switchers_used = SWITCH_IMPORTS
            .iter()
            .filter(|s| imports.iter().any(|i| i == *s) || defined.clone().any(|d| d == **s))
            .map(|s| (*s).to_string())
            .collect();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hooked_and_internal_functions_are_never_traced() {
        for n in [
            "_Unwind_RaiseException",
            "_Unwind_Resume@@GCC_3.0",
            "_Unwind_GetIP",
            "__cxa_begin_catch",
            "__gxx_personality_v0",
            "_RNvCsfLfy6EI15iL_7___rustc20___rust_panic_cleanup",
            "_RNvCsfLfy6EI15iL_7___rustc18___rust_start_panic",
            "rust_eh_personality",
            "swapcontext",
            "getcontext",
            "_setjmp",
            "__sigsetjmp",
            "uw_frame_state_for",
            "jump_fcontext",
        ] {
            assert!(never_traced(n), "{n}");
        }
        for n in ["main", "__cxa_throw", "chain", "longjmp", "catch_unwind"] {
            assert!(!never_traced(n), "{n}");
        }
    }

    #[test]
    fn kinds_of_the_hooked_functions() {
        assert_eq!(hook_kind("_Unwind_Resume"), Some(StackHookKind::Unwind));
        assert_eq!(hook_kind("_Unwind_Backtrace"), Some(StackHookKind::Walk));
        assert_eq!(
            hook_kind("_RNvCs1_7___rustc20___rust_panic_cleanup"),
            Some(StackHookKind::LandDeep)
        );
        assert_eq!(
            hook_kind("setcontext@@GLIBC_2.2.5"),
            Some(StackHookKind::Switch)
        );
        assert_eq!(hook_kind("_Unwind_GetIP"), None);
    }

    #[test]
    fn libgcc_s_is_found_and_hooked_with_the_returns_of_its_backtrace() {
        let path = libgcc_s(&LoaderEnv::from_system()).expect("libgcc_s.so.1 on this system");
        let file = elf::read_elf(&path).unwrap();
        let hooks = hooks_of(&file);
        let kinds = |k: StackHookKind| hooks.iter().filter(|h| h.kind == k).count();
        assert_eq!(kinds(StackHookKind::Unwind), 4, "{hooks:?}");
        assert_eq!(kinds(StackHookKind::Walk), 1, "{hooks:?}");
        assert!(kinds(StackHookKind::Land) >= 1, "{hooks:?}");
        assert!(hooks.windows(2).all(|w| w[0].offset < w[1].offset));
    }
}
