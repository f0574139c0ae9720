//! The gate: statistics (pure functions), baselines, and verdicts.
pub mod model;
pub mod stats;
pub mod baseline;
pub mod compare;
pub mod figures;
