//! Folded stacks, flame graphs and differential flame graphs of a recording.
//!
//! A folded line is `main;work1;leaf 1234`: the stack of a call, outermost first, and the SELF time in ns
//! spent with exactly that stack, summed over calls and threads. The values of all lines therefore sum
//! to the inclusive time of the root calls. Folding streams: memory is one node per distinct stack
//! (a trie), not per call or event.
//!
//! Frame names are the demangled names, with `;` (the folded separator) replaced by `:`, and control
//! characters and U+FFFE/U+FFFF by U+FFFD (neither fits a line-based format nor XML). XML escaping of
//! names and titles in the SVG is inferno's: it writes every text through quick-xml's escaping. Names
//! longer than `escape::MAX_SHOWN_NAME` lose their middle: a line holds at most 64 frames (the kernel's
//! depth), and there are at most as many stacks as entry events (20 bytes each), so the folded text is
//! at most about 64 × 1 KiB per 20 bytes of recording, whatever its names.
use std::collections::{BTreeMap, HashMap};
use std::io::Write;

use anyhow::{bail, Result};

use crate::profile::calls::{Call, CallSink, Reconstructor};
use crate::profile::file::Event;
use crate::profile::{FuncId, Profile};

/// Folded stacks with threads merged, sorted by stack.
pub fn folded(
    profile: &Profile,
    events: impl Iterator<Item = Result<Event>>,
) -> Result<Vec<(String, u64)>> {
    fold(profile, events, false)
}

/// Folded stacks with each thread's stacks under a root frame `TID <tid>`, sorted by stack.
pub fn folded_per_thread(
    profile: &Profile,
    events: impl Iterator<Item = Result<Event>>,
) -> Result<Vec<(String, u64)>> {
    fold(profile, events, true)
}

/// Writes folded stacks, one `stack value` per line.
pub fn write_folded(folded: &[(String, u64)], out: &mut dyn Write) -> Result<()> {
    let mut w = std::io::BufWriter::new(out);
    for (stack, v) in folded {
        writeln!(w, "{stack} {v}")?;
    }
    w.flush()?;
    Ok(())
}

/// `stack base head` lines for every stack of either side (0 where a side lacks it), sorted by stack.
pub fn write_folded_diff(
    base: &[(String, u64)],
    head: &[(String, u64)],
    out: &mut dyn Write,
) -> Result<()> {
    use std::collections::BTreeMap;
    let mut both: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
    for (s, v) in base {
        both.entry(s).or_default().0 += v;
    }
    for (s, v) in head {
        both.entry(s).or_default().1 += v;
    }
    let mut w = std::io::BufWriter::new(out);
    for (stack, (b, h)) in both {
        writeln!(w, "{stack} {b} {h}")?;
    }
    w.flush()?;
    Ok(())
}

/// A flame graph of folded stacks (widths are self time summed up the stacks, in ns).
pub fn flame_graph_svg(folded: &[(String, u64)], title: &str, out: &mut dyn Write) -> Result<()> {
    let lines: Vec<String> = folded
        .iter()
        .filter(|(_, v)| *v > 0)
        .map(|(s, v)| format!("{s} {v}"))
        .collect();
    if lines.is_empty() {
        bail!("nothing to draw: the recording has no call with a measured time");
    }
    render(lines.iter().map(String::as_str), title, out)
}

/// A differential flame graph: frames as wide as in `head`, red where `head` spends more time than
/// `base`, blue where less. Stacks only in `base` do not show (they have no width in `head`).
pub fn diff_flame_graph_svg(
    base: &[(String, u64)],
    head: &[(String, u64)],
    title: &str,
    out: &mut dyn Write,
) -> Result<()> {
    // inferno colours a frame by `150 * delta` in an isize: each side's total stays below 2^55 ns
    // (a year of traced time; only damaged timestamps reach it), the excess dropped.
    let bytes = |f: &[(String, u64)]| -> Vec<u8> {
        let mut room = 1u64 << 55;
        f.iter()
            .map(|(s, v)| {
                let v = (*v).min(room);
                room -= v;
                (s, v)
            })
            .filter(|(_, v)| *v > 0)
            .flat_map(|(s, v)| format!("{s} {v}\n").into_bytes())
            .collect()
    };
    let (b, h) = (bytes(base), bytes(head));
    if h.is_empty() {
        bail!("nothing to draw: the new recording has no call with a measured time");
    }
    let mut diff = Vec::new();
    inferno::differential::from_readers(
        inferno::differential::Options::default(),
        &b[..],
        &h[..],
        &mut diff,
    )?;
    let diff = String::from_utf8_lossy(&diff);
    render(diff.lines(), title, out)
}

fn render<'a>(
    lines: impl Iterator<Item = &'a str>,
    title: &str,
    out: &mut dyn Write,
) -> Result<()> {
    let mut opts = inferno::flamegraph::Options::default();
    opts.title = super::escape::svg_text(title);
    opts.count_name = "ns".into();
    opts.name_type = "Function:".into();
    opts.hash = true;
    let mut w = std::io::BufWriter::new(out);
    inferno::flamegraph::from_lines(&mut opts, lines, &mut w)?;
    w.flush()?;
    Ok(())
}

/// A name made safe for a folded line (`;` separates frames) and for the SVG.
fn frame_name(s: &str) -> String {
    super::escape::cut_long(&super::escape::svg_text(s)).replace(';', ":")
}

/// A trie of stacks: node 0 is the root; a node's label is a function or a thread.
struct Fold {
    per_thread: bool,
    /// (parent, label) → node.
    index: HashMap<(u32, u64), u32>,
    /// Per node: parent, label, self ns.
    nodes: Vec<(u32, u64, u64)>,
    /// Per thread, the path (label, node) of its last call: consecutive calls share most of it, so
    /// only the part that differs is looked up.
    last: HashMap<u32, Vec<(u64, u32)>>,
}

const THREAD_LABEL: u64 = 1 << 32;

impl Fold {
    fn child(&mut self, parent: u32, label: u64) -> u32 {
        let next = self.nodes.len() as u32;
        let id = *self.index.entry((parent, label)).or_insert(next);
        if id == next {
            self.nodes.push((parent, label, 0));
        }
        id
    }
}

impl CallSink for Fold {
    fn call(&mut self, call: &Call, ancestors: &[FuncId]) -> Result<()> {
        let thread = self
            .per_thread
            .then_some(THREAD_LABEL | u64::from(call.tid));
        let labels = thread
            .into_iter()
            .chain(ancestors.iter().map(|&f| u64::from(f)))
            .chain([u64::from(call.func)]);
        let mut path = self.last.remove(&call.tid).unwrap_or_default();
        let mut node = 0;
        for (i, label) in labels.enumerate() {
            match path.get(i) {
                Some(&(l, n)) if l == label => node = n,
                _ => {
                    path.truncate(i);
                    node = self.child(node, label);
                    path.push((label, node));
                }
            }
        }
        // Everything above the last label belongs to an earlier, deeper call.
        let len = ancestors.len() + 1 + usize::from(self.per_thread);
        path.truncate(len);
        let n = &mut self.nodes[node as usize].2;
        *n = n.saturating_add(call.self_ns);
        self.last.insert(call.tid, path);
        Ok(())
    }
}

fn fold(
    profile: &Profile,
    events: impl Iterator<Item = Result<Event>>,
    per_thread: bool,
) -> Result<Vec<(String, u64)>> {
    let mut f = Fold {
        per_thread,
        index: HashMap::new(),
        nodes: vec![(0, 0, 0)],
        last: HashMap::new(),
    };
    Reconstructor::new().run(events, &mut f)?;
    drop(f.index);
    drop(f.last);
    let names: Vec<String> = profile
        .functions
        .iter()
        .map(|f| frame_name(&f.name))
        .collect();
    let label = |l: u64| -> String {
        if l & THREAD_LABEL != 0 {
            format!("TID {}", l & u64::from(u32::MAX))
        } else {
            names
                .get(l as usize)
                .cloned()
                .unwrap_or_else(|| format!("#{l}"))
        }
    };
    // Two functions may share a name (one per module): their stacks merge.
    let mut out: BTreeMap<String, u64> = BTreeMap::new();
    let mut path = Vec::new();
    // The values of all lines must add up within u64 (inferno sums them): only damaged timestamps
    // (2^64 ns is 584 years) come near, and their excess is dropped rather than wrapped.
    let mut room = u64::MAX;
    for (i, &(_, _, v)) in f.nodes.iter().enumerate().skip(1) {
        let v = v.min(room);
        room -= v;
        if v == 0 {
            continue;
        }
        path.clear();
        let mut n = i;
        while n != 0 {
            let (parent, l, _) = f.nodes[n];
            path.push(label(l));
            n = parent as usize;
        }
        path.reverse();
        let e = out.entry(path.join(";")).or_insert(0);
        *e = e.saturating_add(v);
    }
    Ok(out.into_iter().collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::calls::reconstruct;
    use crate::profile::calls::testing::*;

    fn svg(folded: &[(String, u64)], title: &str) -> String {
        let mut out = Vec::new();
        flame_graph_svg(folded, title, &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    /// Minimal well-formedness: every element closes in order; comments, CDATA, declarations skipped.
    fn assert_well_formed(xml: &str) {
        let mut stack: Vec<&str> = Vec::new();
        let mut rest = xml;
        while let Some(i) = rest.find('<') {
            rest = &rest[i..];
            let skip = [
                ("<?", "?>"),
                ("<!--", "-->"),
                ("<![CDATA[", "]]>"),
                ("<!", ">"),
            ]
            .iter()
            .find(|(open, _)| rest.starts_with(open))
            .map(|(_, close)| close);
            if let Some(close) = skip {
                let end = rest.find(close).expect("unterminated markup");
                rest = &rest[end + close.len()..];
                continue;
            }
            let end = rest.find('>').expect("unterminated tag");
            let tag = &rest[1..end];
            rest = &rest[end + 1..];
            if let Some(name) = tag.strip_prefix('/') {
                assert_eq!(stack.pop(), Some(name.trim()), "unbalanced </{name}>");
            } else if !tag.ends_with('/') {
                let name = tag.split(|c: char| c.is_whitespace()).next().unwrap_or("");
                assert!(
                    !name.is_empty()
                        && name
                            .chars()
                            .all(|c| c.is_alphanumeric() || c == '_' || c == '-'),
                    "bad tag <{tag}>"
                );
                stack.push(name);
            }
            // Text between tags never holds a raw '<' (the loop would take it for a tag and fail).
        }
        assert!(stack.is_empty(), "unclosed {stack:?}");
    }

    #[test]
    fn folded_stacks_hold_self_time() {
        let f = folded(&names(), stream(&tree().events)).unwrap();
        let expected: Vec<(String, u64)> = [
            ("main", 1_400),
            ("main;a", 4_000),
            ("main;a;b", 3_000),
            ("main;fib", 200),
            ("main;fib;fib", 200),
            ("main;fib;fib;fib", 1_200),
            ("worker", 7_400),
            ("worker;leaf", 100),
        ]
        .iter()
        .map(|(s, v)| (s.to_string(), *v))
        .collect();
        assert_eq!(f, expected);
        let mut out = Vec::new();
        write_folded(&f[..2], &mut out).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "main 1400\nmain;a 4000\n");
    }

    #[test]
    fn folded_values_sum_to_the_root_calls_even_across_gaps() {
        for events in [
            tree().events,
            tree().without(&[3_000, 8_300]),
            tree().without(&[1_000, 9_600]),
        ] {
            let r = reconstruct(stream(&events), None).unwrap();
            // Roots: calls with no known caller open around them.
            let roots: u64 = r
                .calls
                .iter()
                .filter(|c| {
                    !r.calls.iter().any(|p| {
                        p.tid == c.tid && p.entry_seq < c.entry_seq && c.exit_seq < p.exit_seq
                    })
                })
                .map(|c| c.duration())
                .sum();
            let f = folded(&names(), stream(&events)).unwrap();
            assert_eq!(f.iter().map(|(_, v)| v).sum::<u64>(), roots);
        }
    }

    #[test]
    fn per_thread_stacks_and_names_safe_for_the_format() {
        let f = folded_per_thread(&names(), stream(&tree().events)).unwrap();
        assert!(f.contains(&("TID 100;main;a;b".to_string(), 3_000)));
        assert!(f.contains(&("TID 200;worker;leaf".to_string(), 100)));
        let p = profile(&["ns::f<a; b>\nx", "ns::f<a; b>\nx"]);
        let mut s = Script::default();
        s.enter(0, 1, 0).exit(10, 1).enter(20, 1, 1).exit(25, 1);
        // Same name in two modules: one stack.
        assert_eq!(
            folded(&p, stream(&s.events)).unwrap(),
            [("ns::f<a: b>\u{FFFD}x".to_string(), 15)]
        );
    }

    #[test]
    fn flame_graph_names_every_function_and_escapes_hostile_names() {
        let mut p = names();
        p.functions[1].name = "evil<script>alert(1)</script>&\"'\x01\u{FFFF}".into();
        let f = folded(&p, stream(&tree().events)).unwrap();
        let out = svg(&f, "run of <script>x</script>");
        assert!(out.starts_with("<?xml"), "{}", &out[..100]);
        for name in ["main", "fib", "worker", "leaf", ">b<"] {
            assert!(out.contains(name), "{name} missing");
        }
        assert!(out.contains("evil&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(!out.contains("<script>alert"));
        assert!(!out.contains("<script>x"));
        assert!(!out.contains(['\x01', '\u{FFFF}']));
        assert!(out.contains(" ns"));
        assert_well_formed(&out);
    }

    #[test]
    fn differential_flame_graph() {
        let base = folded(&names(), stream(&tree().events)).unwrap();
        let mut head = base.clone();
        for (s, v) in &mut head {
            if s == "main;a;b" {
                *v *= 3;
            }
        }
        head.push(("main;<new>".into(), 500));
        let mut out = Vec::new();
        diff_flame_graph_svg(&base, &head, "diff", &mut out).unwrap();
        let out = String::from_utf8(out).unwrap();
        assert!(out.starts_with("<?xml"));
        for name in ["main", "fib", "worker", "leaf", "&lt;new&gt;"] {
            assert!(out.contains(name), "{name} missing");
        }
        // b grew by 6000 ns of the 24000 ns total: the titles carry the change.
        assert!(
            out.contains("<title>b (9,000 ns, 37.50%; +25.00%)</title>"),
            "no differential in the output"
        );
        assert!(out.contains("<title>fib (1,600 ns, 6.67%; 0.00%)</title>"));
        assert_well_formed(&out);
    }

    #[test]
    fn nothing_to_draw_is_an_error_not_a_broken_file() {
        let mut out = Vec::new();
        assert!(flame_graph_svg(&[], "t", &mut out).is_err());
        assert!(out.is_empty());
        assert!(diff_flame_graph_svg(&[("a".into(), 5)], &[], "t", &mut out).is_err());
    }
}
