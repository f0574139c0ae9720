//! What the user selected (`--lib`, `--function`, `--no-function`, `--startup`) and the rule that turns it
//! into a reason to skip a function.
use crate::elf::{self, Function};
use crate::profile::names::{BadPattern, NameGlobs};
use std::collections::BTreeSet;

use crate::profile::{HotFunction, SkipReason};

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
    /// Probe every function on its first byte instead of the cheapest safe point after it.
    pub no_placement: bool,
    /// Functions a survey found too hot for their size: not probed (their time stays in their callers).
    pub too_hot: Vec<HotFunction>,
}

/// C runtime start-up code: run before `main` or after it, never what a benchmark measures.
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

/// Code entered without a `call` (jumped to, or returned into): its return address is not a caller's,
/// so a return probe would replace something else and crash the program. Never probed.
const NOT_CALLED: &[&str] = &[
    "_dl_runtime_resolve*",
    "_dl_runtime_profile*",
    "_dl_start_user",
    "__start_context",
    "_dl_tlsdesc_*",
];

/// A selection's globs, compiled.
pub(super) struct Filters {
    pub(super) libs: Vec<NameGlobs>,
    include: NameGlobs,
    exclude: NameGlobs,
    /// (module, raw symbol) of the functions too hot for their size.
    too_hot: BTreeSet<(String, String)>,
}

impl Filters {
    pub(super) fn new(sel: &Selection) -> Result<Filters, BadPattern> {
        Ok(Filters {
            // One list per --lib glob: each must match some library on its own.
            libs: sel
                .libs
                .iter()
                .map(|g| NameGlobs::new(std::slice::from_ref(g)))
                .collect::<Result<_, _>>()?,
            include: NameGlobs::new(&sel.functions)?,
            exclude: NameGlobs::new(&sel.no_functions)?,
            too_hot: sel
                .too_hot
                .iter()
                .map(|h| (h.module.clone(), h.symbol.clone()))
                .collect(),
        })
    }

    /// Why `f` (of the file `module`) gets no probe, if it gets none. The first reason wins, in this
    /// order: the kernel cannot probe it, a return probe there would change the program (entered
    /// without a call; the unwinder, `setjmp`), start-up code, not selected, excluded, too hot.
    pub(super) fn skip_reason(
        &self,
        f: &Function,
        module: &str,
        startup: bool,
    ) -> Option<SkipReason> {
        let matches = |g: &NameGlobs| {
            g.matches_function(&f.name, &f.raw_name) || f.aliases.iter().any(|a| g.matches_str(a))
        };
        let not_called = || {
            NOT_CALLED
                .iter()
                .any(|p| glob::Pattern::new(p).is_ok_and(|g| g.matches(&f.raw_name)))
        };
        if elf::kernel_rejects(&f.entry_bytes).is_some() {
            Some(SkipReason::KernelRejects)
        } else if not_called() {
            Some(SkipReason::NotCalled)
        } else if super::unwind::never_traced(&f.raw_name)
            || f.aliases.iter().any(|a| super::unwind::never_traced(a))
        {
            Some(SkipReason::Unwinder)
        } else if !startup && STARTUP.contains(&f.raw_name.as_str()) {
            Some(SkipReason::Startup)
        } else if !self.include.is_empty() && !matches(&self.include) {
            Some(SkipReason::NotSelected)
        } else if matches(&self.exclude) {
            Some(SkipReason::Excluded)
        } else if self
            .too_hot
            .contains(&(module.to_string(), f.raw_name.clone()))
        {
            Some(SkipReason::TooHot)
        } else {
            None
        }
    }
}
