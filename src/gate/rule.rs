//! When a check takes more runs: the one place of the rule, used by `check` and `bench` alike (through
//! `session::runs::check`).
use super::model::{Comparison, GateSettings, Verdict};

/// Head runs added at a time while functions are undecided.
pub const STEP: usize = 5;

/// How many more head runs the check should take, or `None` to stop: while some function is
/// inconclusive, [`STEP`] more, up to `settings.max_runs`.
pub fn more_runs(c: &Comparison, head_runs: usize, settings: &GateSettings) -> Option<usize> {
    let undecided = c
        .functions
        .iter()
        .any(|f| f.verdict == Verdict::Inconclusive);
    (undecided && head_runs < settings.max_runs).then(|| STEP.min(settings.max_runs - head_runs))
}

/// Whether the check ended with functions still undecided.
pub fn undecided(c: &Comparison) -> bool {
    c.functions
        .iter()
        .any(|f| f.verdict == Verdict::Inconclusive)
}
