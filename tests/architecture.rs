//! The layering rules of docs/ARCHITECTURE.md, checked on the source: every `crate::…` path a file names
//! must belong to a layer its own layer may use; `unsafe` only where the document allows it; only the
//! command layer prints.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let p = entry.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
}

/// The layer of a file: its first folder under `src/`, or its stem (`files`, `main`, `lib`).
fn layer_of(path: &Path) -> String {
    let rel = path.strip_prefix(root()).unwrap();
    let first = rel
        .components()
        .next()
        .unwrap()
        .as_os_str()
        .to_string_lossy();
    first.trim_end_matches(".rs").to_string()
}

/// Code lines: comments (`//`, `//!`, `///`) and the text of string literals do not count.
fn code_lines(text: &str) -> Vec<(usize, String)> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim_start().starts_with("//"))
        .map(|(i, l)| (i + 1, strip_strings(l)))
        .collect()
}

fn strip_strings(line: &str) -> String {
    let mut out = String::new();
    let mut in_str = false;
    let mut escaped = false;
    for c in line.chars() {
        if in_str {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_str = false;
            }
            continue;
        }
        if c == '"' {
            in_str = true;
            continue;
        }
        out.push(c);
    }
    out
}

/// The layers a file names through `crate::X` (in `use` lines and in paths).
fn used_layers(text: &str) -> BTreeMap<String, usize> {
    let mut used = BTreeMap::new();
    for (n, line) in code_lines(text) {
        let mut rest = line.as_str();
        while let Some(i) = rest.find("crate::") {
            rest = &rest[i + "crate::".len()..];
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if name.is_empty() {
                // `crate::{a, b}`: every name in the braces.
                if let Some(list) = rest.strip_prefix('{') {
                    for item in list.split(['}', ',']) {
                        let item: String = item
                            .trim()
                            .chars()
                            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                            .collect();
                        if !item.is_empty() {
                            used.entry(item).or_insert(n);
                        }
                    }
                }
                continue;
            }
            used.entry(name).or_insert(n);
        }
    }
    used
}

fn allowed(layer: &str) -> &'static [&'static str] {
    match layer {
        "main" => &["cli", "cmd", "run", "session"],
        "lib" => &[
            "bpf", "cli", "cmd", "config", "elf", "files", "gate", "plan", "profile", "report",
            "run", "session", "sys",
        ],
        "cli" => &[],
        "cmd" => &[
            "bpf", "cli", "cmd", "config", "elf", "files", "gate", "plan", "profile", "report",
            "run", "session", "sys",
        ],
        "config" => &["config", "files", "gate"],
        "session" => &[
            "bpf", "elf", "files", "gate", "plan", "profile", "run", "session", "sys",
        ],
        "bpf" => &["bpf", "elf", "profile", "sys"],
        "run" => &["profile", "run", "sys"],
        "plan" => &["elf", "files", "plan", "profile"],
        "gate" => &["files", "gate", "plan", "profile"],
        "report" => &["gate", "profile", "report"],
        "profile" => &["elf", "files", "profile"],
        "elf" => &["elf", "files", "sys"],
        "files" => &["sys"],
        "sys" => &["sys"],
        other => panic!("src/{other}: a layer docs/ARCHITECTURE.md does not name"),
    }
}

#[test]
fn every_layer_uses_only_the_layers_below_it() {
    let mut files = Vec::new();
    rust_files(&root(), &mut files);
    assert!(files.len() > 30, "read {} files", files.len());
    let mut broken = Vec::new();
    for f in &files {
        let layer = layer_of(f);
        let text = std::fs::read_to_string(f).unwrap();
        for (used, line) in used_layers(&text) {
            if !allowed(&layer).contains(&used.as_str()) {
                broken.push(format!(
                    "{}:{line}: {layer} uses {used}",
                    f.strip_prefix(root()).unwrap().display()
                ));
            }
        }
    }
    assert!(broken.is_empty(), "layering broken:\n{}", broken.join("\n"));
}

#[test]
fn the_checker_sees_paths_braces_and_ignores_comments_and_strings() {
    let text = "use crate::{gate::x, report};\n// crate::cli in a comment\nlet s = \"crate::run\";\nlet y = crate::bpf::f();\n";
    let used: Vec<String> = used_layers(text).into_keys().collect();
    assert_eq!(used, ["bpf", "gate", "report"]);
}

#[test]
fn unsafe_lives_in_sys_and_bpf_only() {
    let mut files = Vec::new();
    rust_files(&root(), &mut files);
    let mut found = Vec::new();
    for f in &files {
        let layer = layer_of(f);
        if layer == "sys" || layer == "bpf" {
            continue;
        }
        let text = std::fs::read_to_string(f).unwrap();
        for (n, line) in code_lines(&text) {
            let words = line.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'));
            if words.into_iter().any(|w| w == "unsafe") && !line.contains("unsafe_op_in_unsafe_fn")
            {
                found.push(format!("{}:{n}", f.display()));
            }
        }
    }
    assert!(found.is_empty(), "unsafe outside sys/ and bpf/: {found:?}");
}

#[test]
fn only_the_command_layer_prints() {
    // The hidden child modes run in other processes: their output is not perfgate's terminal.
    let exceptions = ["run/held.rs", "session/calibrate.rs", "main.rs"];
    let mut files = Vec::new();
    rust_files(&root(), &mut files);
    let mut found = Vec::new();
    for f in &files {
        let rel = f
            .strip_prefix(root())
            .unwrap()
            .to_string_lossy()
            .into_owned();
        if layer_of(f) == "cmd" || exceptions.contains(&rel.as_str()) {
            continue;
        }
        let text = std::fs::read_to_string(f).unwrap();
        let test_start = text.find("#[cfg(test)]").unwrap_or(text.len());
        let code = &text[..test_start];
        for (n, line) in code_lines(code) {
            if ["println!", "eprintln!", "print!(", "eprint!("]
                .iter()
                .any(|m| line.contains(m))
            {
                found.push(format!("{rel}:{n}"));
            }
        }
    }
    assert!(found.is_empty(), "printing outside cmd/: {found:?}");
}
