//! When a check takes more runs: the one place of the rule, used by `check`, `compare` and `bench` alike
//! (through `session::runs`).
//!
//! Under the sequential rule (the default) the comparison of each look says whether it is complete and
//! which looks there are; the next look's run count is the answer. The first rule (`Rule::Legacy`) adds
//! [`STEP`] runs while anything is inconclusive, up to `max_runs`.
use super::model::{Comparison, GateSettings, Rule, Verdict};

/// Head runs added at a time by the first rule while functions are undecided.
pub const STEP: usize = 5;

/// How many more head runs the check should take, or `None` to stop.
pub fn more_runs(c: &Comparison, head_runs: usize, settings: &GateSettings) -> Option<usize> {
    match settings.rule {
        Rule::Legacy => (undecided(c) && head_runs < settings.max_runs)
            .then(|| STEP.min(settings.max_runs - head_runs)),
        Rule::Sequential if c.complete => None,
        Rule::Sequential => c
            .looks
            .iter()
            .find(|&&n| n > head_runs)
            .map(|n| n - head_runs),
    }
}

/// Head runs of the first look.
pub fn first_runs(settings: &GateSettings) -> usize {
    settings.runs
}

/// Whether the check ended with functions still undecided.
pub fn undecided(c: &Comparison) -> bool {
    c.functions
        .iter()
        .any(|f| f.verdict == Verdict::Inconclusive)
}
