//! The dynamic loader's debugger interface: `_dl_debug_state` is called after every change of the link
//! map, whose head is in `_r_debug`. A probe there sees every library a `dlopen` adds.
use std::path::{Path, PathBuf};

use crate::elf::{self, FileOffset};

/// Where to watch the loader's link map.
#[derive(Debug, Clone)]
pub struct LoaderHook {
    /// The loader (PT_INTERP).
    pub path: PathBuf,
    /// File offset of `_dl_debug_state`.
    pub offset: FileOffset,
    /// Address of `_r_debug` minus address of `_dl_debug_state`.
    pub r_debug_delta: i64,
}

impl LoaderHook {
    /// Finds the debugger interface in a loader; `None` when it is not there (then only sampling
    /// `/proc/PID/maps` is left).
    pub fn find(interp: &Path) -> Option<LoaderHook> {
        let loader = elf::read_elf(interp).ok()?;
        let debug_state = loader
            .functions
            .iter()
            .find(|f| f.raw_name == "_dl_debug_state" || f.name == "_dl_debug_state")?;
        let r_debug = elf::symbol_address(interp, "_r_debug").ok()??;
        Some(LoaderHook {
            path: loader.path.clone(),
            offset: debug_state.offset,
            r_debug_delta: r_debug as i64 - debug_state.addr as i64,
        })
    }
}
