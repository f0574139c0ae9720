//! `perfgate completions SHELL`: generated from the clap definitions in `cli/`, so they never disagree
//! with `--help`.
use std::path::Path;

use anyhow::Result;
use clap::CommandFactory;

use super::Exit;
use crate::cli::{Cli, CompletionsArgs};

pub(super) fn run(a: CompletionsArgs) -> Result<Exit> {
    let mut cmd = Cli::command();
    let mut out = Vec::new();
    clap_complete::generate(a.shell, &mut cmd, "perfgate", &mut out);
    super::write_report(Path::new("-"), &out)?;
    Ok(Exit::Ok)
}
