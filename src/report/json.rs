//! The comparison as JSON: the data model itself, pretty-printed, for scripts and dashboards.
use super::Exporter;
use crate::gate::model::Comparison;

/// Pretty-printed JSON of the whole [`Comparison`], with a trailing newline.
#[derive(Debug, Clone, Copy, Default)]
pub struct Json;

impl Exporter for Json {
    fn render(&self, c: &Comparison) -> anyhow::Result<Vec<u8>> {
        let mut out = serde_json::to_vec_pretty(c)?;
        out.push(b'\n');
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::markdown::tests::fixture;

    #[test]
    fn round_trips_into_a_comparison() -> anyhow::Result<()> {
        let c = fixture();
        let out = Json.render(&c)?;
        assert!(out.ends_with(b"}\n"));
        let back: Comparison = serde_json::from_slice(&out)?;
        assert_eq!(back, c);
        let text = String::from_utf8(out)?;
        assert!(text.contains(r#""verdict": "calls-changed""#));
        assert!(text.contains(r#""metric": "self""#));
        Ok(())
    }
}
