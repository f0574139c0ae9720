//! Function-name globs, the one implementation behind `--function`, `--no-function`, `replay --function`
//! and every other filter on names.
//!
//! A glob matches a function when it matches any of the function's names: the demangled name, the raw
//! symbol, and the demangled name without its parameter list (`oops()` is matched by `oops`,
//! `ns::C::m(int) const` by `ns::C::m`), so users can write the name they see.
use super::FunctionInfo;

/// A glob that did not parse.
#[derive(Debug, Clone, thiserror::Error)]
#[error("bad pattern {pattern:?}: {reason}")]
pub struct BadPattern {
    /// The pattern as given.
    pub pattern: String,
    /// Why it is not a glob.
    pub reason: String,
}

/// A list of compiled globs; empty matches nothing.
#[derive(Debug, Clone, Default)]
pub struct NameGlobs(Vec<glob::Pattern>);

impl NameGlobs {
    /// Compiles every glob; the first bad one is the error.
    pub fn new(globs: &[String]) -> Result<NameGlobs, BadPattern> {
        globs
            .iter()
            .map(|g| {
                glob::Pattern::new(g).map_err(|e| BadPattern {
                    pattern: g.clone(),
                    reason: e.msg.to_string(),
                })
            })
            .collect::<Result<Vec<_>, _>>()
            .map(NameGlobs)
    }

    /// No globs at all.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether any glob matches any of `names`.
    pub fn matches_any<'a>(&self, names: impl IntoIterator<Item = &'a str> + Clone) -> bool {
        self.0
            .iter()
            .any(|p| names.clone().into_iter().any(|n| p.matches(n)))
    }

    /// Whether any glob matches the function by one of its names (see the module documentation).
    pub fn matches_function(&self, name: &str, raw_name: &str) -> bool {
        let short = without_parameters(name);
        self.matches_any([name, raw_name, short])
    }

    /// Whether any glob matches `f`.
    pub fn matches(&self, f: &FunctionInfo) -> bool {
        self.matches_function(&f.name, &f.raw_name)
    }

    /// Whether any glob matches a string as it is (a library name, say).
    pub fn matches_str(&self, s: &str) -> bool {
        self.0.iter().any(|p| p.matches(s))
    }

    /// Whether any glob matches a path, as a whole or by its file name.
    pub fn matches_path(&self, p: &std::path::Path) -> bool {
        let name = p
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        self.0.iter().any(|g| g.matches(&name) || g.matches_path(p))
    }
}

/// A demangled name without its trailing parameter list and qualifiers (`f(int) const` → `f`); names
/// without one come back unchanged. Parentheses inside template arguments are left alone.
pub fn without_parameters(name: &str) -> &str {
    // The parameter list is the last top-level `(`…`)` group: scan from the end, balancing brackets.
    let bytes = name.as_bytes();
    let Some(close) = name.rfind(')') else {
        return name;
    };
    let mut depth = 0i32;
    for i in (0..=close).rev() {
        match bytes[i] {
            b')' => depth += 1,
            b'(' => {
                depth -= 1;
                if depth == 0 {
                    let head = name[..i].trim_end();
                    return if head.is_empty() { name } else { head };
                }
            }
            _ => {}
        }
    }
    name
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameter_lists_are_optional_in_globs() {
        assert_eq!(without_parameters("oops()"), "oops");
        assert_eq!(without_parameters("ns::C::m(int) const"), "ns::C::m");
        assert_eq!(without_parameters("plain"), "plain");
        assert_eq!(without_parameters("f(void (*)(int))"), "f");
        assert_eq!(without_parameters("()"), "()");
        let g = NameGlobs::new(&["oops".into(), "ns::*::m".into()]).unwrap();
        assert!(g.matches_function("oops()", "oops"));
        assert!(g.matches_function("ns::C::m(int) const", "_ZNK2ns1C1mEi"));
        assert!(!g.matches_function("oops2()", "oops2"));
    }

    #[test]
    fn a_bad_glob_is_named() {
        let e = NameGlobs::new(&["a[".into()]).unwrap_err();
        assert!(e.to_string().starts_with("bad pattern \"a[\""), "{e}");
    }
}
