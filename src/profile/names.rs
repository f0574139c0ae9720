//! Function-name globs, the one implementation behind `--function`, `--no-function`, `replay --function`
//! and every other filter on names.
//!
//! A glob matches a function when it matches any of the function's names: the demangled name, the raw
//! symbol, the demangled name without its parameter list (`oops()` is matched by `oops`,
//! `ns::C::m(int) const` by `ns::C::m`) and the short name the tables show ([`short_name`]), so users
//! can write the name they see.
//!
//! Short names are uftrace's "simple" demangling: `namespace::class::method`, without the return type,
//! the parameter list, template arguments, ABI tags and clone suffixes. [`ShortNames`] makes them unique
//! within one report: where two different functions would share a short name, both get back just enough
//! of their full name to tell them apart. Everything here is pure, total and linear in the name's length.
use std::collections::{BTreeMap, HashMap};

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
        let unparameterised = without_parameters(name);
        let short = short_name(name);
        self.matches_any([name, raw_name, unparameterised, short.as_str()])
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

/// How much of a demangled name a display keeps; each level keeps everything the one before keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Detail {
    /// `ns::C::m`: no return type, parameters, template arguments, ABI tags or clone suffixes.
    Simple,
    /// `ns::C<int>::m<2>`: template arguments kept.
    Templates,
    /// `ns::C<int>::m<2>(int) const [clone .cold]`: everything but the return type.
    NoReturnType,
    /// The demangled name as it is.
    Full,
}

/// The short name of a demangled function name, uftrace's "simple" style: `ns::Class::method`.
///
/// `double shapes::accumulate<double>(std::vector<double> const&)` → `shapes::accumulate`,
/// `leveldb::DB::Open(leveldb::Options const&, …)` → `leveldb::DB::Open`, `shapes::operator+(…)` →
/// `shapes::operator+`, `<alloc::vec::Vec<u8> as core::ops::drop::Drop>::drop` →
/// `<alloc::vec::Vec as core::ops::drop::Drop>::drop`. C names come back unchanged; a name this does not
/// understand comes back as close to itself as the rules allow, never empty.
pub fn short_name(name: &str) -> String {
    shortened(name, Detail::Simple)
}

fn shortened(name: &str, detail: Detail) -> String {
    if detail == Detail::Full {
        return name.to_string();
    }
    let mut rest = name.trim();
    let mut clones = String::new();
    // ` [clone .cold]` suffixes, possibly several.
    while let Some(i) = rest.rfind(" [clone ") {
        if !rest.ends_with(']') {
            break;
        }
        clones.insert_str(0, &rest[i..]);
        rest = rest[..i].trim_end();
    }
    let without_params = if detail >= Detail::NoReturnType || !ends_in_parameters(rest) {
        rest
    } else {
        without_parameters(rest)
    };
    let qualified = without_return_type(without_params);
    let mut out = if detail >= Detail::NoReturnType {
        qualified.to_string()
    } else {
        simplify_components(qualified, detail == Detail::Templates)
    };
    if detail >= Detail::NoReturnType {
        out.push_str(&clones);
    }
    if out.trim().is_empty() {
        return name.to_string();
    }
    out
}

/// Whether the name ends in a parameter list, maybe with qualifiers after it (`) const &`): a `)`
/// inside a Rust path (`<fn() -> u8 as Fn>::call`) is not one.
fn ends_in_parameters(name: &str) -> bool {
    let Some(close) = name.rfind(')') else {
        return false;
    };
    name[close + 1..].split_whitespace().all(|w| {
        matches!(
            w,
            "const" | "volatile" | "&" | "&&" | "noexcept" | "override" | "final"
        )
    })
}

/// Where `operator` starts a component of `s` (at the start or after `::`), if it does.
fn operator_at(s: &[u8], i: usize) -> bool {
    let word = b"operator";
    s.len() >= i + word.len()
        && &s[i..i + word.len()] == word
        && (i == 0 || (i >= 2 && &s[i - 2..i] == b"::") || s[i - 1] == b' ')
        && s.get(i + word.len())
            .is_none_or(|c| !(c.is_ascii_alphanumeric() || *c == b'_'))
}

/// The bytes of an operator's symbol after `operator` (`<<=`, `()`, `[]`, ` new[]`, ` delete`…): they
/// are not brackets.
fn operator_symbol_len(s: &[u8]) -> usize {
    let mut n = 0;
    // `operator()` and `operator[]` are the only bracket pairs that belong to the name.
    if s.starts_with(b"()") || s.starts_with(b"[]") {
        return 2;
    }
    while n < s.len() && b"<>=!+-*/%^&|~,".contains(&s[n]) {
        n += 1;
    }
    n
}

/// The qualified name without a leading return type: the part after the last space that is outside
/// every bracket and before an `operator` keyword.
fn without_return_type(name: &str) -> &str {
    let b = name.as_bytes();
    let mut depth = 0i32;
    let mut start = 0;
    let mut i = 0;
    while i < b.len() {
        if operator_at(b, i) {
            // Spaces from here on belong to the operator's name (`operator new`, `operator int`).
            break;
        }
        match b[i] {
            b'<' | b'(' | b'[' | b'{' => depth += 1,
            b'>' if i > 0 && b[i - 1] == b'-' => {}
            b'>' | b')' | b']' | b'}' => depth -= 1,
            b' ' if depth == 0 => start = i + 1,
            _ => {}
        }
        i += 1;
    }
    let q = &name[start..];
    if q.is_empty() {
        name
    } else {
        q
    }
}

/// Drops template arguments (unless `keep_templates`), parameter lists inside components (`f()::x`,
/// `{lambda(int)#1}`) and ABI tags from a qualified name whose own parameter list is already gone.
fn simplify_components(name: &str, keep_templates: bool) -> String {
    simplify_nested(name, keep_templates, 0)
}

/// Nesting of `{…}` and `<… as …>` simplified recursively; deeper ones are copied as they are, so a
/// hostile symbol cannot exhaust the stack.
const MAX_NESTING: usize = 8;

/// One piece: a single left-to-right scan whose cases (operators, brackets, `::`) share the position and
/// the "at a component's start" state.
fn simplify_nested(name: &str, keep_templates: bool, nesting: usize) -> String {
    if nesting > MAX_NESTING {
        return name.to_string();
    }
    let b = name.as_bytes();
    let mut out = String::with_capacity(name.len());
    let mut i = 0;
    let mut component_start = true;
    while i < b.len() {
        if operator_at(b, i) {
            let sym = i + "operator".len();
            let n = operator_symbol_len(&b[sym..]);
            out.push_str(&name[i..sym + n]);
            i = sym + n;
            component_start = false;
            continue;
        }
        let c = b[i];
        match c {
            b'<' if component_start => {
                // A Rust qualified path `<A as B>::f`: kept, with each side simplified.
                let Some(end) = matching(b, i, b'<', b'>') else {
                    out.push_str(&name[i..]);
                    break;
                };
                out.push_str(&qualified_path(&name[i + 1..end], keep_templates, nesting));
                i = end + 1;
                component_start = false;
            }
            b'<' => {
                let end = matching(b, i, b'<', b'>').unwrap_or(b.len());
                if keep_templates {
                    out.push_str(&name[i..(end + 1).min(b.len())]);
                } else {
                    // `operator< <char>`: the space only kept the two `<` apart.
                    out.truncate(out.trim_end().len());
                }
                i = end + 1;
            }
            b'(' if component_start => {
                // `(anonymous namespace)` is a component of its own.
                let end = matching(b, i, b'(', b')').unwrap_or(b.len());
                out.push_str(&name[i..(end + 1).min(b.len())]);
                i = end + 1;
                component_start = false;
            }
            b'(' => i = matching(b, i, b'(', b')').unwrap_or(b.len()) + 1,
            b'[' if name[i..].starts_with("[abi:") => {
                i = matching(b, i, b'[', b']').unwrap_or(b.len()) + 1;
            }
            b'{' => {
                // `{lambda(int)#1}`: the braces stay, what is inside is simplified like a name.
                let Some(end) = matching(b, i, b'{', b'}') else {
                    out.push_str(&name[i..]);
                    break;
                };
                out.push_str(&format!(
                    "{{{}}}",
                    simplify_nested(&name[i + 1..end], keep_templates, nesting + 1)
                ));
                i = end + 1;
                component_start = false;
            }
            b':' if name[i..].starts_with("::") => {
                out.push_str("::");
                i += 2;
                component_start = true;
            }
            _ => {
                // Multi-byte UTF-8 is copied whole: `i` only ever stops on ASCII bytes.
                let ch_len = name[i..].chars().next().map_or(1, char::len_utf8);
                out.push_str(&name[i..i + ch_len]);
                i += ch_len;
                component_start = false;
            }
        }
    }
    out
}

/// `<A as B>` from the inside of a Rust qualified path, each side simplified one nesting deeper.
fn qualified_path(inner: &str, keep_templates: bool, nesting: usize) -> String {
    let sides: Vec<String> = inner
        .split(" as ")
        .map(|s| simplify_nested(s, keep_templates, nesting + 1))
        .collect();
    format!("<{}>", sides.join(" as "))
}

/// The index of the bracket closing the one at `open_at`, counting nesting of the same pair only
/// (`->` is not a closing angle bracket); `None` when it never closes.
fn matching(b: &[u8], open_at: usize, open: u8, close: u8) -> Option<usize> {
    let mut depth = 0usize;
    for (i, &c) in b.iter().enumerate().skip(open_at) {
        if c == open {
            depth += 1;
        } else if c == close && !(close == b'>' && i > 0 && b[i - 1] == b'-') {
            depth = depth.saturating_sub(1);
            if depth == 0 {
                return Some(i);
            }
        }
    }
    None
}

/// The names a report shows: short by default ([`short_name`]), unique among the functions given: when
/// two different full names share a short name, that whole group shows the least detail that tells its
/// members apart (template arguments, then parameter lists, then the full name). Identical full names stay
/// identical (they differ by module or symbol, which reports show beside them).
#[derive(Debug, Clone, Default)]
pub struct ShortNames {
    shown: HashMap<String, String>,
    full: bool,
}

impl ShortNames {
    /// Display names for these full names; `full` keeps every name as it is (`--full-names`).
    pub fn new<'a>(names: impl IntoIterator<Item = &'a str>, full: bool) -> ShortNames {
        let mut groups: BTreeMap<String, Vec<&str>> = BTreeMap::new();
        for n in names {
            let g = groups.entry(short_name(n)).or_default();
            if !g.contains(&n) {
                g.push(n);
            }
        }
        let mut shown = HashMap::new();
        for (short, members) in groups {
            let detail = [Detail::Simple, Detail::Templates, Detail::NoReturnType]
                .into_iter()
                .find(|&d| {
                    let mut seen: Vec<String> = members.iter().map(|m| shortened(m, d)).collect();
                    seen.sort();
                    seen.dedup();
                    seen.len() == members.len()
                })
                .unwrap_or(Detail::Full);
            for m in members {
                let s = if detail == Detail::Simple {
                    short.clone()
                } else {
                    shortened(m, detail)
                };
                shown.insert(m.to_string(), s);
            }
        }
        ShortNames { shown, full }
    }

    /// What to show for `full_name` (itself when it was not among the names given, or with `full`).
    pub fn get<'a>(&'a self, full_name: &'a str) -> &'a str {
        if self.full {
            return full_name;
        }
        self.shown.get(full_name).map_or(full_name, String::as_str)
    }
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
    fn short_names_are_namespace_class_method() {
        let cases = [
            ("main", "main"),
            ("work1", "work1"),
            ("shapes::Circle::Circle(double)", "shapes::Circle::Circle"),
            ("shapes::Circle::area() const", "shapes::Circle::area"),
            ("shapes::Circle::~Circle()", "shapes::Circle::~Circle"),
            (
                "double shapes::accumulate<double>(std::vector<double, std::allocator<double> > const&)",
                "shapes::accumulate",
            ),
            ("shapes::operator+(shapes::Vec2 const&, shapes::Vec2 const&)", "shapes::operator+"),
            (
                "leveldb::DB::Open(leveldb::Options const&, std::__cxx11::basic_string<char, std::char_traits<char>, std::allocator<char> > const&, leveldb::DB**)",
                "leveldb::DB::Open",
            ),
            (
                "std::vector<int, std::allocator<int> >::push_back(int const&)",
                "std::vector::push_back",
            ),
            ("std::ostream& std::operator<< <std::char_traits<char> >(std::ostream&, char const*)", "std::operator<<"),
            ("bool operator<(Key const&, Key const&)", "operator<"),
            ("Foo::operator()(int) const", "Foo::operator()"),
            ("Foo::operator new(unsigned long)", "Foo::operator new"),
            ("operator delete[](void*)", "operator delete[]"),
            ("Foo::operator->() const", "Foo::operator->"),
            ("Foo::operator unsigned long() const", "Foo::operator unsigned long"),
            ("(anonymous namespace)::helper(int)", "(anonymous namespace)::helper"),
            ("leveldb::Version::DebugString[abi:cxx11]() const", "leveldb::Version::DebugString"),
            ("run()::{lambda(int)#1}::operator()(int) const", "run::{lambda#1}::operator()"),
            ("f(int) [clone .cold]", "f"),
            ("f(int) [clone .constprop.0] [clone .isra.0]", "f"),
            (
                "std::_Function_handler<void (int), main::{lambda(int)#1}>::_M_invoke(std::_Any_data const&, int&&)",
                "std::_Function_handler::_M_invoke",
            ),
            ("core::ptr::drop_in_place<alloc::vec::Vec<u8>>", "core::ptr::drop_in_place"),
            (
                "<alloc::vec::Vec<T> as core::ops::drop::Drop>::drop",
                "<alloc::vec::Vec as core::ops::drop::Drop>::drop",
            ),
            // A function-pointer type loses its parentheses like any component; the arrow stays.
            ("<fn() -> u8 as core::ops::Fn>::call", "<fn -> u8 as core::ops::Fn>::call"),
            ("foo.part.0", "foo.part.0"),
            ("()", "()"),
            ("", ""),
            ("<", "<"),
            ("a<<<((([[{{", "a"),
            ("ünïcode::naïve(int)", "ünïcode::naïve"),
        ];
        for (full, short) in cases {
            assert_eq!(short_name(full), short, "{full}");
        }
    }

    #[test]
    fn short_names_never_panic_on_odd_input() {
        // Unbalanced, truncated and nested brackets of every kind, cut at every byte.
        let odd = "std::map<int, std::pair<a (*)(b), c> >::operator[](int)::{lambda()#2}>>))]]}} [clone .x]";
        for end in (0..=odd.len()).filter(|&e| odd.is_char_boundary(e)) {
            let _ = short_name(&odd[..end]);
            let _ = ShortNames::new([&odd[..end], odd], false);
        }
        // Deep nesting of the brackets that recurse does not exhaust the stack.
        let deep = format!("{}x{}", "{<".repeat(30_000), ">}".repeat(30_000));
        assert!(!short_name(&deep).is_empty());
    }

    #[test]
    fn short_names_are_made_unique_only_where_needed() {
        let names = [
            "int shapes::accumulate<int>(std::vector<int> const&)",
            "double shapes::accumulate<double>(std::vector<double> const&)",
            "over(int)",
            "over(double)",
            "shapes::Circle::area() const",
            "f()",
            "f() [clone .cold]",
            "dup()",
        ];
        let mut with_dups = names.to_vec();
        with_dups.push("dup()");
        let s = ShortNames::new(with_dups.iter().copied(), false);
        assert_eq!(s.get(names[0]), "shapes::accumulate<int>");
        assert_eq!(s.get(names[1]), "shapes::accumulate<double>");
        assert_eq!(s.get("over(int)"), "over(int)");
        assert_eq!(s.get("over(double)"), "over(double)");
        assert_eq!(
            s.get("shapes::Circle::area() const"),
            "shapes::Circle::area"
        );
        assert_eq!(s.get("f()"), "f()");
        assert_eq!(s.get("f() [clone .cold]"), "f() [clone .cold]");
        // The same full name twice (two modules) is not a collision.
        assert_eq!(s.get("dup()"), "dup");
        assert_eq!(s.get("not given()"), "not given()");
        let full = ShortNames::new(names.iter().copied(), true);
        assert_eq!(
            full.get("shapes::Circle::area() const"),
            "shapes::Circle::area() const"
        );
    }

    #[test]
    fn globs_match_short_and_full_names() {
        let g = NameGlobs::new(&["shapes::accumulate".into(), "leveldb::DB::Put".into()]).unwrap();
        assert!(g.matches_function(
            "double shapes::accumulate<double>(std::vector<double> const&)",
            "_ZN6shapes10accumulateIdEET_RKSt6vectorIS1_SaIS1_EE"
        ));
        assert!(g.matches_function(
            "leveldb::DB::Put(leveldb::WriteOptions const&, leveldb::Slice const&, leveldb::Slice const&)",
            "_ZN7leveldb2DB3PutERKNS_12WriteOptionsERKNS_5SliceES6_"
        ));
        let full = NameGlobs::new(&["*accumulate<int>(*".into()]).unwrap();
        assert!(full.matches_function("int shapes::accumulate<int>(std::vector<int> const&)", "x"));
        assert!(!full.matches_function(
            "double shapes::accumulate<double>(std::vector<double> const&)",
            "x"
        ));
    }

    #[test]
    fn a_bad_glob_is_named() {
        let e = NameGlobs::new(&["a[".into()]).unwrap_err();
        assert!(e.to_string().starts_with("bad pattern \"a[\""), "{e}");
    }
}
