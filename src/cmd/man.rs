//! `perfgate man`: the man page generated from the clap definitions in `cli/` (one page, or one per
//! subcommand with `--dir`), so it never disagrees with `--help`.
use std::path::Path;

use anyhow::{Context as _, Result};
use clap::CommandFactory;

use super::{shown, status, Exit};
use crate::cli::{Cli, ManArgs};

pub(super) fn run(a: ManArgs) -> Result<Exit> {
    let cmd = Cli::command();
    let Some(dir) = a.dir else {
        let mut out = Vec::new();
        clap_mangen::Man::new(cmd).render(&mut out)?;
        super::write_report(Path::new("-"), &out)?;
        return Ok(Exit::Ok);
    };
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", shown(&dir)))?;
    let mut pages = vec![("perfgate".to_string(), cmd.clone())];
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        // The page of a subcommand shows its usage as `perfgate check …`.
        let name = format!("perfgate-{}", sub.get_name());
        let page = sub
            .clone()
            .name(name.clone())
            .bin_name(format!("perfgate {}", sub.get_name()));
        pages.push((name, page));
    }
    for (name, page) in pages {
        let mut out = Vec::new();
        clap_mangen::Man::new(page).render(&mut out)?;
        crate::files::write_atomic(&dir.join(format!("{name}.1")), &out)?;
    }
    status(&format!("wrote the man pages into {}", shown(&dir)));
    Ok(Exit::Ok)
}
