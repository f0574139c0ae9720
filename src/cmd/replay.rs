//! `perfgate replay`: the uftrace-style call graph of a trace recording.
use anyhow::Result;

use super::{Exit, Output};
use crate::cli::ReplayArgs;
use crate::profile::file::Recording;
use crate::profile::names::NameGlobs;
use crate::report::replay::{replay, ReplayOptions};

pub(super) fn run(a: ReplayArgs) -> Result<Exit> {
    let rec = Recording::open(&a.input)?;
    let opts = ReplayOptions {
        tid: a.tid,
        max_depth: a.depth,
        time_filter_ns: a.time_filter,
        functions: NameGlobs::new(&a.functions)?,
        no_functions: NameGlobs::new(&a.no_functions)?,
        max_buffered_lines: None,
        full_names: a.full_names,
    };
    let mut out = Output::open(None)?;
    replay(
        &rec.profile,
        super::report::events_of(&rec)?,
        &opts,
        out.writer(),
    )?;
    out.finish()?;
    Ok(Exit::Ok)
}
