//! The survey that chooses the probe set by cost: which functions are too hot for their probe.
//!
//! A function whose probe costs more than the function itself cannot be measured by probing it: its
//! measured time would be mostly probe, and its calls multiply the run's time. Its time is measured anyway,
//! inside its caller's self time. The survey finds such functions from data:
//!
//! 1. One untraced run gives the benchmark's own wall time, the base of the overhead budget.
//! 2. One traced run with every planned function probed, in survey mode: the BPF program keeps
//!    per-function totals (calls, inclusive time, probe cost of descendants) that perfgate reads every
//!    2 ms while the benchmark runs. A function with at least [`SurveySettings::min_calls`] calls (or
//!    whose probes have cost 0.3 ms already, after 20 calls at least) whose
//!    mean inclusive time, probe costs taken out, is under [`SurveySettings::size_factor`] times its own
//!    probe's cost, over the run so far or (close to the line) since the last relink, is *too hot for its
//!    size*: the probes of its group (4 functions, see `bpf`) are re-attached without it, so the survey
//!    stops paying for it (that keeps the survey itself cheap on code made of tiny hot functions). A
//!    relink stalls the benchmark, so it waits until the functions found cost enough to be worth one
//!    (`worth_relinking`). When the probes still probed have already cost more than
//!    the budget (a fraction of the untraced time) the whole run may spend, the budget pass below runs at
//!    once too, down to `MIDRUN_TARGET` (a quarter) of the budget, and relinks at once.
//! 3. After the run, while the remaining probes would still cost more than the budget, the functions whose
//!    probe is largest against their own time are left to their callers too (the long calls a reader
//!    looks at, an API entry point or a main loop, keep their probes).
//!
//! A function never called in the survey stays probed: it costs nothing, and a call appearing later is a
//! certain signal. The result goes into the baseline, so `check` probes exactly the same set.
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};

use super::{RunOptions, Target};
use crate::bpf::{self, Program};
use crate::profile::{FuncId, HotFunction, ProbeCosts};

/// How the survey decides.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SurveySettings {
    /// The probes may add at most this fraction of the untraced run time (1.0: the traced run at most
    /// doubles).
    pub budget: f64,
    /// Calls before a function can be judged.
    pub min_calls: u64,
    /// A function is too hot when its mean time is under this many times its probe's cost. 1: the probe
    /// costs more than the function (compensation makes a function of one or two probe costs measurable;
    /// the budget pass, most distorted first, decides among those).
    pub size_factor: f64,
}

impl Default for SurveySettings {
    fn default() -> Self {
        SurveySettings {
            budget: 1.0,
            min_calls: 200,
            size_factor: 1.0,
        }
    }
}

/// What the survey found.
#[derive(Debug, Clone)]
pub struct SurveyResult {
    /// The functions left to their callers, with their figures.
    pub too_hot: Vec<HotFunction>,
    /// The untraced run's wall time.
    pub untraced: Duration,
    /// The surveyed run's wall time (perfgate's fixed costs apart).
    pub surveyed: Duration,
    /// The whole survey, both runs and perfgate's own work.
    pub total: Duration,
    /// Times probes were re-attached without newly found hot functions.
    pub relinks: usize,
    /// Time spent re-attaching (the benchmark runs meanwhile, slowed by the breakpoints being written).
    pub relinking: Duration,
    /// Estimated probe cost of the kept set over a run, ns.
    pub kept_cost_ns: f64,
}

/// Surveys the target; `opts.trace.probe_cost` must hold a calibration (the costs decide).
pub fn survey(target: &Target, opts: &RunOptions, s: &SurveySettings) -> Result<SurveyResult> {
    let Some(costs) = opts.trace.probe_cost else {
        bail!("the survey needs the probe cost calibrated (calibration failed or was turned off)");
    };
    // The survey relinks the command's own process only: a function of a process it starts is never
    // called in the survey, so it stays probed (the safe side: probed, never wrongly dropped).
    let opts = &RunOptions {
        follow: false,
        ..opts.clone()
    };
    let started = Instant::now();
    let untraced = super::untraced_once(target, opts)?;
    let plan = &target.plan;
    let cost = |f: FuncId| plan_cost(target, &costs, f);
    // The part of a function's own probe cost inside its measured interval.
    let inside = |f: FuncId| costs.inside(plan.probe_kind(f));
    let mut hot: BTreeSet<FuncId> = BTreeSet::new();
    let mut relinks = 0usize;
    let mut relinking = Duration::ZERO;
    let mut last_totals: Vec<bpf::SurveyTotal> = Vec::new();
    let budget_ns = s.budget * untraced.as_nanos() as f64;
    let mut at_last_relink: Vec<bpf::SurveyTotal> = Vec::new();
    // The hot functions whose probes are gone (the others found since wait for a relink worth it).
    let mut unlinked: BTreeSet<FuncId> = BTreeSet::new();
    let mut last_look: Option<Instant> = None;
    // About when the benchmark was released: a tick before the first look.
    let mut released: Option<Instant> = None;
    let mut tick = |program: &mut Program<'_>| -> Result<()> {
        let totals = program.survey_totals(plan.functions.len());
        let mut found = Vec::new();
        for (id, t) in totals.iter().enumerate() {
            let since = at_last_relink.get(id).map(|e| t.since(e)).unwrap_or(*t);
            let id = id as FuncId;
            if !hot.contains(&id) && hot_so_far(t, &since, cost(id), inside(id), s) {
                found.push(id);
            }
        }
        // The probes have already cost more than the budget allows for the whole run: the final pass
        // would drop at least these, so drop them now and stop paying for them (on code made of
        // thousands of small, hot functions this keeps the survey itself a few times the untraced run).
        let so_far: Vec<(u64, f64)> = totals
            .iter()
            .map(|t| (t.calls, t.inclusive_ns as f64 - t.overhead_ns as f64))
            .collect();
        let mut hot_now = hot.clone();
        hot_now.extend(found.iter().copied());
        let (over, _) = over_budget(
            &so_far,
            &hot_now,
            &cost,
            &inside,
            s,
            (budget_ns, MIDRUN_TARGET * budget_ns),
        );
        let now = Instant::now();
        let forced = !over.is_empty();
        hot.extend(found);
        hot.extend(over);
        // What the functions found but still probed cost now, per ns of the run: worth a relink (which
        // stalls the benchmark while its breakpoints are rewritten) only when it saves more than it
        // costs over the rest of the run.
        let dt = last_look.map_or(super::trace::TICK, |t| now - t).as_nanos() as f64;
        let rate = hot
            .difference(&unlinked)
            .map(|&id| {
                let i = id as usize;
                let before = last_totals.get(i).map_or(0, |t| t.calls);
                totals[i].calls.saturating_sub(before) as f64 * cost(id)
            })
            .sum::<f64>()
            / dt;
        let elapsed = now - *released.get_or_insert(now - super::trace::TICK);
        if forced || (hot.len() > unlinked.len() && worth_relinking(rate, untraced, elapsed)) {
            let t = Instant::now();
            relink(program, target, &hot)?;
            relinking += t.elapsed();
            relinks += 1;
            unlinked = hot.clone();
            at_last_relink = program.survey_totals(plan.functions.len());
        }
        last_look = Some(now);
        last_totals = totals;
        Ok(())
    };
    let traced = super::trace::run_hooked(target, opts, &mut |_| Ok(()), Some(&mut tick))?;
    if !traced.finished.exit.success() {
        bail!(
            "the benchmark failed in the survey run ({}): a survey needs a run that succeeds",
            traced.finished.exit
        );
    }
    // The totals at the end: the tick's last view plus what completed since, from the statistics.
    let (calls, incl) = run_totals(&traced.measured.stats, &last_totals, plan.functions.len());
    let figures: Vec<(u64, f64)> = calls.iter().copied().zip(incl.iter().copied()).collect();
    let (over, kept_cost) = over_budget(&figures, &hot, &cost, &inside, s, (budget_ns, budget_ns));
    hot.extend(over);
    let too_hot = hot
        .iter()
        .filter_map(|&id| {
            let f = plan.functions.get(id as usize)?;
            let t = last_totals.get(id as usize).copied().unwrap_or_default();
            Some(hot_function(
                f,
                &t,
                (calls[id as usize], incl[id as usize]),
                costs,
                cost(id),
            ))
        })
        .collect();
    Ok(SurveyResult {
        too_hot,
        untraced,
        surveyed: traced.finished.wall,
        total: started.elapsed(),
        relinks,
        relinking,
        kept_cost_ns: kept_cost,
    })
}

/// Calls and compensated inclusive time per function over the whole surveyed run: the statistics of the
/// calls completed while the function was probed, or the tick's last view if it saw more (a function
/// dropped mid-run is in both).
fn run_totals(
    stats: &[crate::profile::FuncStats],
    last_totals: &[bpf::SurveyTotal],
    functions: usize,
) -> (Vec<u64>, Vec<f64>) {
    let mut calls = vec![0u64; functions];
    let mut incl = vec![0f64; functions];
    for st in stats {
        if let Some(c) = calls.get_mut(st.func as usize) {
            *c += st.calls;
            incl[st.func as usize] += st.inclusive.sum_ns as f64 - st.overhead_ns as f64;
        }
    }
    for (i, t) in last_totals.iter().enumerate().take(functions) {
        calls[i] = calls[i].max(t.calls);
    }
    (calls, incl)
}

/// A function left to its callers, with the figures that decided it: its mean from the survey's totals
/// when they saw it, else from the run's statistics (`run`: its calls and compensated inclusive time).
fn hot_function(
    f: &crate::profile::FunctionInfo,
    t: &bpf::SurveyTotal,
    run: (u64, f64),
    costs: ProbeCosts,
    probe_cost_ns: f64,
) -> HotFunction {
    let mean = if t.calls > 0 {
        (t.inclusive_ns as f64 - t.overhead_ns as f64) / t.calls as f64
    } else {
        run.1 / run.0.max(1) as f64
    };
    HotFunction {
        module: f.module.clone(),
        symbol: f.raw_name.clone(),
        name: f.name.clone(),
        calls: run.0,
        mean_ns: (mean - costs.inside(f.probe)).max(0.0),
        probe_cost_ns,
    }
}

/// A function still probed after the survey run, as the budget pass weighs it.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Kept {
    id: FuncId,
    /// Its calls over the run.
    calls: u64,
    /// Its probes' cost over the run, ns.
    cost: f64,
    /// Its probe's cost over its own mean time (compensated inclusive).
    distortion: f64,
}

impl Kept {
    /// The most distorted first; among equals, the costliest.
    fn first_to_go(a: &Kept, b: &Kept) -> std::cmp::Ordering {
        b.distortion
            .total_cmp(&a.distortion)
            .then(b.cost.total_cmp(&a.cost))
    }
}

/// While the survey runs, an overrun of the budget is cut down to this fraction of it: each cut costs a
/// relink (about 0.1 s on a library of a thousand probes), and cutting to the budget exactly would overrun
/// again at the next tick.
const MIDRUN_TARGET: f64 = 0.25;

/// The budget pass: when the still-probed functions' probes (`figures`: calls and compensated inclusive
/// time summed, per function) cost more than `budget_ns`, until they cost at most `target_ns`, the
/// functions whose probe is largest against
/// their own time go first (their figures are the least faithful, and their time is measured in their
/// callers anyway), so the long calls a reader looks at (an API entry point, a main loop) keep their
/// probes. Never one called fewer than `min_calls` times: it costs little. Returns the functions to drop
/// and the cost of the rest, ns.
fn over_budget(
    figures: &[(u64, f64)],
    hot: &BTreeSet<FuncId>,
    cost: &dyn Fn(FuncId) -> f64,
    inside: &dyn Fn(FuncId) -> f64,
    s: &SurveySettings,
    (budget_ns, target_ns): (f64, f64),
) -> (Vec<FuncId>, f64) {
    let mut kept: Vec<Kept> = (0..figures.len() as FuncId)
        .filter(|id| !hot.contains(id))
        .map(|id| {
            let (calls, incl) = figures[id as usize];
            let n = calls as f64;
            Kept {
                id,
                calls,
                cost: n * cost(id),
                distortion: if n > 0.0 {
                    cost(id) / (incl / n - inside(id)).max(1.0)
                } else {
                    0.0
                },
            }
        })
        .collect();
    kept.sort_by(Kept::first_to_go);
    let mut kept_cost: f64 = kept.iter().map(|k| k.cost).sum();
    let mut drop = Vec::new();
    if kept_cost <= budget_ns {
        return (drop, kept_cost);
    }
    for k in &kept {
        if kept_cost <= target_ns {
            break;
        }
        if k.calls < s.min_calls {
            continue;
        }
        drop.push(k.id);
        kept_cost -= k.cost;
    }
    (drop, kept_cost.max(0.0))
}

/// What a relink costs the benchmark: the kernel rewrites the breakpoints of every group it touches
/// under the benchmark's memory-map lock, which its probe hits and page faults wait for (on the sqlite
/// fixture the surveyed run took 3–8 ms longer per relink than its probes' cost explains).
const RELINK_COST: Duration = Duration::from_millis(5);

/// Whether dropping probes that cost `rate` (ns of probe per ns of run, as of the last look) saves more
/// than a relink costs over the rest of the run, assumed to last half as long as the longer of the
/// untraced run and the surveyed run so far (`elapsed`: a run slowed tenfold by its probes has ten times
/// its untraced length to go).
fn worth_relinking(rate: f64, untraced: Duration, elapsed: Duration) -> bool {
    let to_come = untraced.max(elapsed).as_nanos() as f64 / 2.0;
    rate * to_come >= RELINK_COST.as_nanos() as f64
}

/// What one traced call of function `f` costs, ns.
fn plan_cost(target: &Target, costs: &ProbeCosts, f: FuncId) -> f64 {
    costs.of(target.plan.probe_kind(f))
}

/// A function whose probes have cost this much is judged even before `min_calls` calls: a single-stepped
/// probe (~15 µs) would otherwise cost 3 ms per function before its first judgement, seconds on a library
/// of hundreds of them.
const JUDGE_AFTER_NS: f64 = 3e5;
/// Calls before any judgement: a mean of fewer says little.
const MIN_JUDGED_CALLS: u64 = 20;

/// Whether a function with `calls` calls so far, `probe_cost` ns each, can be judged while the survey runs.
fn judged(calls: u64, probe_cost: f64, s: &SurveySettings) -> bool {
    calls >= s.min_calls
        || (calls >= MIN_JUDGED_CALLS && calls as f64 * probe_cost >= JUDGE_AFTER_NS)
}

/// A cumulative mean this many times the probe cost or less may still be inflated by probes dropped
/// since (a descendant's probe cost known to a few per cent of a 10 µs single step is a µs per call), so
/// the calls since the last relink decide for it too; a longer one keeps its probe (a function quick in
/// one phase of the run and long in others is not dropped for one quick phase).
const WINDOW_UNDER: f64 = 4.0;

/// Whether a function is found too hot while the survey runs: by its totals `so_far`, or, close to the
/// line, by those added `since` the last relink, once either has enough calls to be judged. Dropping a
/// function's descendants takes their probe costs out of its time: its mean over the whole run so far
/// still carries them (libsqlite3's sqlite3_step, sqlite3VdbeExec: 32,000 calls of 1.5 µs of probe
/// each, 100 ms of a 500 ms survey, before their means over the run fell under their probe's cost).
fn hot_so_far(
    so_far: &bpf::SurveyTotal,
    since: &bpf::SurveyTotal,
    probe_cost: f64,
    inside: f64,
    s: &SurveySettings,
) -> bool {
    if !judged(so_far.calls, probe_cost, s) {
        return false;
    }
    if too_hot(so_far, probe_cost, inside, s) {
        return true;
    }
    let near = SurveySettings {
        size_factor: WINDOW_UNDER * s.size_factor,
        ..*s
    };
    too_hot(so_far, probe_cost, inside, &near)
        && judged(since.calls, probe_cost, s)
        && too_hot(since, probe_cost, inside, s)
}

/// Whether a function's totals say it is too hot for its size: its mean inclusive time, every probe's
/// cost taken out (its descendants' and the part of its own probe inside its interval, `inside`), is
/// under `size_factor` times its probe's cost. A single-stepped probe's cost is nearly all inside (the
/// step runs after the entry's timestamp): a leaf of a few ns measures about one probe cost and, judged
/// with that in, was never too hot (libsqlite3's sqlite3BtreeCursorIsValidNN made ~5,000 calls of
/// 15 µs of probe until the budget pass cut it).
fn too_hot(t: &bpf::SurveyTotal, probe_cost: f64, inside: f64, s: &SurveySettings) -> bool {
    if t.calls == 0 || probe_cost <= 0.0 {
        return false;
    }
    let mean = (t.inclusive_ns as f64 - t.overhead_ns as f64) / t.calls as f64 - inside;
    mean < s.size_factor * probe_cost
}

/// Re-attaches every file that has a hot function with the others only.
fn relink(program: &mut Program<'_>, target: &Target, hot: &BTreeSet<FuncId>) -> Result<()> {
    let plan = &target.plan;
    for file in &plan.files {
        if !file.probes.iter().any(|p| hot.contains(&p.func)) {
            continue;
        }
        let probes: Vec<bpf::Probe> = super::follow::probes_of(plan, file)
            .into_iter()
            .filter(|p| !hot.contains(&p.func))
            .collect();
        program.replace_functions(&file.path, &probes)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_drops_the_most_distorted_first() {
        let k = |id, cost, distortion| Kept {
            id,
            calls: 1000,
            cost,
            distortion,
        };
        // A long API call (probe 5% of its time) costing the most, a small helper (probe 50%), a tie.
        let mut v = [k(0, 9e6, 0.05), k(1, 1e6, 0.5), k(2, 2e6, 0.5)];
        v.sort_by(Kept::first_to_go);
        assert_eq!(v.iter().map(|k| k.id).collect::<Vec<_>>(), [2, 1, 0]);
    }

    #[test]
    fn the_budget_pass_cuts_only_an_overrun_and_down_to_its_target() {
        let s = SurveySettings::default();
        // Three functions of 1,000 calls at 1 µs per probe: a helper of 0.5 µs (distortion 2), one of
        // 2 µs (0.5), an API call of 100 µs (0.01); 1 ms of probes each.
        let figures = [
            (1000, 1000.0 * 500.0),
            (1000, 1000.0 * 2000.0),
            (1000, 1000.0 * 1e5),
        ];
        let none = BTreeSet::new();
        let pass = |budget, target| {
            over_budget(&figures, &none, &|_| 1000.0, &|_| 0.0, &s, (budget, target))
        };
        assert_eq!(pass(3e6, 3e6), (vec![], 3e6));
        assert_eq!(pass(2.5e6, 2.5e6), (vec![0], 2e6));
        // While the survey runs: the same overrun cut to half the budget.
        assert_eq!(pass(2.5e6, 1.25e6), (vec![0, 1], 1e6));
        // Functions below min_calls are never cut.
        let few = [(10, 10.0 * 500.0), (1000, 1000.0 * 1e5)];
        let r = over_budget(&few, &none, &|_| 1000.0, &|_| 0.0, &s, (0.0, 0.0));
        assert_eq!(r.0, vec![1]);
    }

    #[test]
    fn a_costly_probe_is_judged_sooner() {
        let s = SurveySettings::default();
        assert!(!judged(100, 700.0, &s));
        assert!(judged(200, 700.0, &s));
        // 20 single-stepped calls have cost 0.3 ms: judged; 19 never, whatever they cost.
        assert!(judged(20, 15_000.0, &s));
        assert!(!judged(20, 14_000.0, &s));
        assert!(!judged(19, 1e6, &s));
    }

    #[test]
    fn a_mean_inflated_by_probes_dropped_since_is_judged_by_the_calls_since_the_last_relink() {
        let s = SurveySettings::default();
        let total = |calls: u64, mean_ns: u64| bpf::SurveyTotal {
            calls,
            inclusive_ns: calls * mean_ns,
            overhead_ns: 0,
        };
        // A 1.5 µs probe. 3,000 calls of 2.5 µs while a descendant's probe was still in (its cost not
        // all taken out), then 300 of 1 µs since it was dropped: 2.4 µs over the run, too hot since.
        let early = total(3000, 2500);
        let since = total(300, 1000);
        let so_far = bpf::SurveyTotal {
            calls: early.calls + since.calls,
            inclusive_ns: early.inclusive_ns + since.inclusive_ns,
            overhead_ns: 0,
        };
        assert!(!too_hot(&so_far, 1500.0, 0.0, &s));
        assert!(hot_so_far(&so_far, &since, 1500.0, 0.0, &s));
        // Too few calls since to say: the run so far decides.
        let few = total(100, 1000);
        assert!(!hot_so_far(&so_far, &few, 1500.0, 0.0, &s));
        // A function long over the run (10 µs, over 4 probes) keeps its probe through a quick phase.
        let long = total(3300, 10_000);
        assert!(!hot_so_far(&long, &since, 1500.0, 0.0, &s));
        // Too hot over the run: found, whatever the calls since.
        assert!(hot_so_far(&total(300, 1000), &total(0, 0), 1500.0, 0.0, &s));
    }

    #[test]
    fn a_relink_waits_until_what_it_drops_costs_more_than_the_relink() {
        let ms = Duration::from_millis;
        // Probes taking 20% of the time: 10 ms saved over the 50 ms assumed to come, against 5 ms.
        assert!(worth_relinking(0.2, ms(100), ms(10)));
        assert!(worth_relinking(0.1, ms(100), ms(10)));
        // 2%: 1 ms saved, less than the stall; once the run has lasted 600 ms, 6 ms.
        assert!(!worth_relinking(0.02, ms(100), ms(10)));
        assert!(worth_relinking(0.02, ms(100), ms(600)));
        // A run of 1 ms untraced made of single-stepped calls (nearly all its time probes): worth it
        // once it has run 10 ms, not at its first look.
        assert!(!worth_relinking(0.95, ms(1), ms(2)));
        assert!(worth_relinking(0.95, ms(1), ms(12)));
        // A function that stopped being called costs nothing to leave probed.
        assert!(!worth_relinking(0.0, ms(100), ms(1000)));
    }

    #[test]
    fn a_function_shorter_than_a_few_probes_is_too_hot() {
        let s = SurveySettings::default();
        let tiny = bpf::SurveyTotal {
            calls: 1000,
            inclusive_ns: 1000 * 12_000,
            overhead_ns: 1000 * 9_000,
        };
        // 3 µs of its own per call against a 10 µs probe: too hot.
        assert!(too_hot(&tiny, 10_000.0, 0.0, &s));
        // The same function with a 0.5 µs probe: 6× the probe, kept.
        assert!(!too_hot(&tiny, 500.0, 0.0, &s));
        let never = bpf::SurveyTotal::default();
        assert!(!too_hot(&never, 10_000.0, 0.0, &s));
        // A leaf of a few ns under a 15 µs single-step probe, 14.7 µs of it inside its interval: it
        // measures more than one probe cost, and is too hot once that part is taken out.
        let leaf = bpf::SurveyTotal {
            calls: 100,
            inclusive_ns: 100 * 15_200,
            overhead_ns: 0,
        };
        assert!(!too_hot(&leaf, 15_000.0, 0.0, &s));
        assert!(too_hot(&leaf, 15_000.0, 14_700.0, &s));
        // A function of 20 µs of its own under the same probe stays.
        let long = bpf::SurveyTotal {
            calls: 100,
            inclusive_ns: 100 * 34_700,
            overhead_ns: 0,
        };
        assert!(!too_hot(&long, 15_000.0, 14_700.0, &s));
    }
}
