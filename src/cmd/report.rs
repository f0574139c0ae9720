//! `perfgate report` and the event stream the trace views share with `replay`.
use anyhow::{bail, Result};

use super::{progress, shown, status, Exit, Output};
use crate::cli::{ReportArgs, ReportFormat};
use crate::profile::file::{Event, Recording};
use crate::report::summary::{self, SummaryOptions};
use crate::report::{chrome, distribution, flame, units};

pub(super) fn run(a: ReportArgs) -> Result<Exit> {
    let rec = Recording::open(&a.input)?;
    let base = a.diff.as_deref().map(Recording::open).transpose()?;
    if base.is_some() && a.format == ReportFormat::Chrome {
        bail!("--diff works with --format=summary (distributions), flame-graph or folded");
    }
    let mut out = Output::open(a.output.as_deref())?;
    let title = format!("perfgate: {}", rec.profile.command.join(" "));
    match a.format {
        ReportFormat::Summary if base.is_some() => {
            if let Some(b) = &base {
                out.writer().write_all(
                    distribution::diff(&b.profile, &rec.profile, a.limit, a.full_names).as_bytes(),
                )?;
            }
        }
        ReportFormat::Summary => {
            let opts = SummaryOptions {
                per_thread: a.per_thread,
                limit: a.limit,
                verbose: a.verbose,
                compensated: a.compensated,
                full_names: a.full_names,
                width: a
                    .output
                    .as_deref()
                    .is_none_or(|p| p.as_os_str() == "-")
                    .then(|| super::terminal_width(false))
                    .flatten(),
            };
            out.writer()
                .write_all(summary::table(&rec.profile, opts).as_bytes())?;
        }
        ReportFormat::Chrome => chrome::chrome_trace(&rec.profile, events_of(&rec)?, out.writer())?,
        ReportFormat::FlameGraph => {
            let head = folded_of(&rec, a.threads)?;
            match &base {
                Some(b) => flame::diff_flame_graph_svg(
                    &folded_of(b, a.threads)?,
                    &head,
                    &format!("{title} (vs base)"),
                    out.writer(),
                )?,
                None => flame::flame_graph_svg(&head, &title, out.writer())?,
            }
        }
        ReportFormat::Folded => {
            let head = folded_of(&rec, a.threads)?;
            match &base {
                Some(b) => {
                    flame::write_folded_diff(&folded_of(b, a.threads)?, &head, out.writer())?
                }
                None => flame::write_folded(&head, out.writer())?,
            }
        }
    }
    if let Some(p) = out.finish()? {
        status(&format!("wrote {}", shown(&p)));
    }
    Ok(Exit::Ok)
}

/// The recording's events, with a progress bar on a terminal; a recording without events is an error.
pub(super) fn events_of(rec: &Recording) -> Result<impl Iterator<Item = Result<Event>>> {
    if !rec.profile.has_events {
        bail!(
            "{}: this view needs every call: record with `perfgate record --trace` (this recording has only per-function totals)",
            shown(&rec.path)
        );
    }
    let dropped = rec.profile.accounting.lost.events_dropped;
    if dropped > 0 {
        status(&format!(
            "warning: {} were lost while recording; the replay marks the gaps it can detect",
            units::plural(dropped, "event")
        ));
    }
    let bar = progress(
        rec.event_count(),
        0,
        "perfgate: {pos}/{len} events {wide_bar} {elapsed}",
    );
    let mut n = 0u64;
    Ok(rec.events()?.inspect(move |_| {
        n += 1;
        if n % 65_536 == 0 {
            bar.set_position(n);
        }
    }))
}

fn folded_of(rec: &Recording, threads: bool) -> Result<Vec<(String, u64)>> {
    let events = events_of(rec)?;
    if threads {
        flame::folded_per_thread(&rec.profile, events)
    } else {
        flame::folded(&rec.profile, events)
    }
}
