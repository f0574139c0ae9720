//! Outputs: one renderer per format behind [`Exporter`], one place for escaping (`escape.rs`), one for
//! the cells the formats share (`cells.rs`), one for a distribution drawn as text (`distribution.rs`) and
//! one for units (`units.rs`). Renderers read profiles,
//! comparisons and reconstructed calls only; they never trace or run anything.
pub mod cells;
pub mod check_table;
pub mod chrome;
pub mod distribution;
pub mod escape;
pub mod flame;
pub mod json;
pub mod junit;
pub mod junit_all;
pub mod markdown;
pub mod replay;
pub mod summary;
pub mod units;

use crate::gate::model::Comparison;

/// Renders a comparison in one output format.
pub trait Exporter {
    /// The comparison, rendered.
    fn render(&self, c: &Comparison) -> anyhow::Result<Vec<u8>>;
}
