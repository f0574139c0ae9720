//! Outputs: one file per format, and one place for escaping.
pub mod check_table;
pub mod chrome;
pub mod escape;
pub mod flame;
pub mod json;
pub mod junit;
pub mod markdown;
pub mod replay;
pub mod summary;
pub mod units;
