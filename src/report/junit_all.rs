//! JUnit for several benchmarks: one `<testsuite>` per benchmark inside one `<testsuites>`, and one per
//! benchmark that could not be checked (an `<error>` testcase), so a reporter step counts it.
//!
//! TODO(lead): replaced by the junit-report rewrite of `junit.rs` (one `junit::render_all`). Until then this
//! is a thin stub over today's [`Junit`] renderer: it takes each benchmark's `<testsuite>` element out of
//! that renderer's document and sums the counts of the outer element. Invariant kept: the result is one
//! well-formed document whose `<testsuites>` counts are the sums of its suites'.
use anyhow::{Context as _, Result};

use super::escape;
use super::junit::Junit;
use super::Exporter;
use crate::gate::model::Comparison;

/// A benchmark that has no comparison, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unchecked {
    /// The benchmark's name.
    pub name: String,
    /// The one-line error.
    pub error: String,
}

/// One `<testsuite>` per comparison.
pub fn render_all(comparisons: &[Comparison]) -> Result<Vec<u8>> {
    render_with_errors(comparisons, &[])
}

/// One `<testsuite>` per comparison, then one per benchmark that could not be checked.
pub fn render_with_errors(comparisons: &[Comparison], unchecked: &[Unchecked]) -> Result<Vec<u8>> {
    let mut suites = String::new();
    let mut totals = [0u64; 4];
    for c in comparisons {
        let doc = String::from_utf8(Junit.render(c)?).context("JUnit renderer wrote non-UTF-8")?;
        let start = doc
            .find("<testsuite ")
            .context("JUnit renderer wrote no <testsuite>")?;
        let end = doc
            .rfind("</testsuite>")
            .context("JUnit renderer wrote no </testsuite>")?
            + "</testsuite>".len();
        let outer = &doc[..start];
        for (i, key) in ["tests", "failures", "errors", "skipped"]
            .iter()
            .enumerate()
        {
            totals[i] += count_attr(outer, key).unwrap_or(0);
        }
        suites.push_str("  ");
        suites.push_str(doc[start..end].trim_start());
        suites.push('\n');
    }
    for u in unchecked {
        totals[0] += 1;
        totals[2] += 1;
        let name = escape::xml(&u.name);
        let error = escape::xml(&u.error);
        suites.push_str(&format!(
            "  <testsuite name=\"perfgate: {name}\" tests=\"1\" failures=\"0\" errors=\"1\" skipped=\"0\">\n    \
             <testcase classname=\"perfgate\" name=\"{name}\" time=\"0\">\n      \
             <error message=\"{error}\" type=\"perfgate-error\">{error}</error>\n    </testcase>\n  </testsuite>\n"
        ));
    }
    let [tests, failures, errors, skipped] = totals;
    Ok(format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"perfgate\" tests=\"{tests}\" failures=\"{failures}\" errors=\"{errors}\" skipped=\"{skipped}\">\n{suites}</testsuites>\n"
    )
    .into_bytes())
}

/// The value of `key="N"` in `text`.
fn count_attr(text: &str, key: &str) -> Option<u64> {
    let pat = format!(" {key}=\"");
    let at = text.find(&pat)? + pat.len();
    text[at..].split('"').next()?.parse().ok()
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
        // The fixture has 10 functions, 2 regressions and a changed call count; the second 7 and none.
        assert!(
            out.contains(r#"<testsuites name="perfgate" tests="18" failures="3" errors="1""#),
            "{out}"
        );
        assert!(out.contains(r#"name="perfgate: second""#));
        assert!(out.contains("no &lt;baseline&gt;"));
        assert!(render_all(&[])?.starts_with(b"<?xml"));
        Ok(())
    }
}
