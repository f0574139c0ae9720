//! Repeated runs: a batch of traced runs turned into per-run figures, and the gate's check loop (runs,
//! compare, more runs while the rule asks for them) — the one implementation `check`, `baseline` and
//! `bench` share.
//!
//! Invariant: a failing benchmark run is an error, never a regression; nothing here prints: progress and
//! notes go to the caller's [`Observer`].
use anyhow::{bail, Result};

use super::{trace_once, RunOptions, Target};
use crate::gate::baseline::Baseline;
use crate::gate::compare::{compare_with, Base};
use crate::gate::figures::RunFigures;
use crate::gate::model::{Comparison, GateSettings};
use crate::gate::rule;
use crate::profile::Machine;

/// Hears about the runs as they happen (the command layer shows progress and notes from it).
pub trait Observer {
    /// A run finished: `done` of `total` (total grows when the rule asks for more runs).
    fn run_done(&mut self, _done: usize, _total: usize) {}
    /// Run `run` could not measure `calls` calls (too deep, maps full: see `record --verbose`).
    fn calls_lost(&mut self, _run: usize, _calls: u64) {}
    /// `inconclusive` functions are undecided after `runs` runs: the rule asked for `more`.
    fn more_runs(&mut self, _inconclusive: usize, _runs: usize, _more: usize) {}
}

/// An observer that ignores everything.
pub struct Quiet;
impl Observer for Quiet {}

/// Runs the target `n` more times, appending each run's figures to `runs`.
pub fn run_batch(
    target: &Target,
    opts: &RunOptions,
    n: usize,
    total: usize,
    runs: &mut Vec<RunFigures>,
    observer: &mut dyn Observer,
) -> Result<()> {
    for _ in 0..n {
        let i = runs.len() + 1;
        let profile = trace_once(target, opts)?;
        if let Some(stop) = crate::run::signals::stop_requested() {
            bail!("stopped by {} during run {i}", stop.name());
        }
        if !profile.exit.success() {
            bail!(
                "the benchmark failed in run {i} ({}): that is an error of the benchmark, not a regression",
                profile.exit
            );
        }
        let lost = profile.accounting.lost.lost_calls();
        if lost > 0 {
            observer.calls_lost(i, lost);
        }
        runs.push(RunFigures::from_profile(&profile));
        observer.run_done(runs.len(), total.max(runs.len()));
    }
    Ok(())
}

/// What a check found, with the runs it took.
pub struct CheckResult {
    /// The last comparison.
    pub comparison: Comparison,
    /// Every head run.
    pub head: Vec<RunFigures>,
    /// The base runs made here (interleaved A/B only).
    pub base: Vec<RunFigures>,
}

/// A check as `perfgate check` does it: head runs up to the rule's first look, compared with the
/// baseline, then more runs look by look for as long as [`rule::more_runs`] asks for them.
pub fn check(
    target: &Target,
    opts: &RunOptions,
    base: &Baseline,
    settings: &GateSettings,
    benchmark: &str,
    observer: &mut dyn Observer,
) -> Result<CheckResult> {
    let machine = Machine::current();
    let base = Base::from_baseline(base);
    let mut head = Vec::new();
    let first = rule::first_runs(settings);
    run_batch(
        target,
        opts,
        first,
        settings.max_runs.max(first),
        &mut head,
        observer,
    )?;
    let mut c = compare_with(&base, &head, settings, benchmark, &machine, None);
    if !c
        .functions
        .iter()
        .any(|f| f.figures.base.is_some() && f.figures.head.is_some())
    {
        bail!("no function in common between the baseline and this run: is it the same benchmark?");
    }
    while let Some(more) = rule::more_runs(&c, head.len(), settings) {
        observer.more_runs(
            c.with(crate::gate::model::Verdict::Inconclusive).count(),
            head.len(),
            more,
        );
        run_batch(target, opts, more, settings.max_runs, &mut head, observer)?;
        c = compare_with(&base, &head, settings, benchmark, &machine, Some(&c));
    }
    Ok(CheckResult {
        comparison: c,
        head,
        base: Vec::new(),
    })
}

/// An interleaved A/B check: base and head commands alternate on this machine (ABBA: A B, B A, A B…),
/// pairs are added look by look as the sequential rule asks, and the two sides are compared run for run.
/// No stored baseline is involved, so a difference between machines cannot pass for a regression.
pub fn interleaved(
    base_target: &Target,
    head_target: &Target,
    opts: &RunOptions,
    settings: &GateSettings,
    benchmark: &str,
    observer: &mut dyn Observer,
) -> Result<CheckResult> {
    let machine = Machine::current();
    let (mut base_runs, mut head_runs) = (Vec::new(), Vec::new());
    let mut pairs = rule::first_runs(settings);
    let total = settings.max_runs.max(pairs) * 2;
    let mut c: Option<Comparison> = None;
    loop {
        for _ in 0..pairs {
            // ABBA: the order within a pair flips every pair, so a slow drift hits both sides alike.
            let base_first = base_runs.len() % 2 == 0;
            for side_is_base in [base_first, !base_first] {
                let (t, runs) = if side_is_base {
                    (base_target, &mut base_runs)
                } else {
                    (head_target, &mut head_runs)
                };
                run_batch(t, opts, 1, total, runs, &mut Quiet)?;
                observer.run_done(base_runs.len() + head_runs.len(), total);
            }
        }
        let base = Base::interleaved(base_runs.clone(), base_target.command());
        let next = compare_with(&base, &head_runs, settings, benchmark, &machine, c.as_ref());
        match rule::more_runs(&next, head_runs.len(), settings) {
            Some(more) => {
                observer.more_runs(
                    next.with(crate::gate::model::Verdict::Inconclusive).count(),
                    head_runs.len(),
                    more,
                );
                pairs = more;
                c = Some(next);
            }
            None => {
                return Ok(CheckResult {
                    comparison: next,
                    head: head_runs,
                    base: base_runs,
                })
            }
        }
    }
}
