//! The gate: statistics (pure functions), baselines, per-run normalisation, the sequential rule, and
//! verdicts.
pub mod baseline;
pub mod compare;
pub mod figures;
pub mod legacy;
pub mod model;
pub mod normalize;
pub mod rule;
pub mod sequential;
pub mod sim;
pub mod stats;
