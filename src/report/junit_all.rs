//! JUnit for several benchmarks: one `<testsuite>` per benchmark inside one `<testsuites>`, and one per
//! benchmark that could not be checked (an `<error>` testcase), so a reporter step counts it. A thin
//! front of [`super::junit::report_all`] for the command layer.
use anyhow::Result;

pub use super::junit::Unchecked;
use super::junit::{report_all, Provenance};
use crate::gate::model::Comparison;

/// One `<testsuite>` per comparison.
pub fn render_all(comparisons: &[Comparison]) -> Result<Vec<u8>> {
    render_with_errors(comparisons, &[])
}

/// One `<testsuite>` per comparison, then one per benchmark that could not be checked.
pub fn render_with_errors(comparisons: &[Comparison], unchecked: &[Unchecked]) -> Result<Vec<u8>> {
    report_all(comparisons, unchecked, &Provenance::current())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::markdown::tests::fixture;

    #[test]
    fn one_suite_per_benchmark_and_summed_counts() -> Result<()> {
        let a = fixture();
        let mut b = fixture();
        b.benchmark = "second".into();
        b.functions.retain(|f| !f.verdict.fails());
        let out = String::from_utf8(render_with_errors(
            &[a, b],
            &[Unchecked {
                name: "third".into(),
                error: "no <baseline>".into(),
            }],
        )?)?;
        assert_eq!(out.matches("<testsuite ").count(), 3, "{out}");
        assert_eq!(out.matches("<testsuites ").count(), 1);
        assert_eq!(out.matches("<?xml").count(), 1);
        assert!(out.contains("perfgate: second"), "{out}");
        assert!(out.contains("no &lt;baseline&gt;"), "{out}");
        assert!(out.contains("<error"), "{out}");
        assert!(render_all(&[])?.starts_with(b"<?xml"));
        Ok(())
    }
}
