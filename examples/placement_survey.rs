//! Static survey of probe placement: for each ELF file, how many functions
//! the kernel would optimise, emulate or single-step with the probe at `+0`
//! and at the point `perfgate::elf::placement` chooses.
//!
//! `cargo run --release --example placement_survey [--list] [FILE...]`
//! (default: Debian's libsqlite3, libzstd, libleveldb, glibc's libc and
//! `/usr/bin/sqlite3`; files that are missing are reported and skipped).
//! `--list` also prints every function's placement. Reads each file whole
//! (a survey of system libraries, not a user path).

use std::collections::BTreeMap;
use std::path::Path;

use perfgate::elf::placement::{self, Placement};
use perfgate::elf::{read_elf, EntryKind};

const DEFAULT_FILES: [&str; 5] = [
    "/usr/lib/x86_64-linux-gnu/libsqlite3.so.0",
    "/usr/lib/x86_64-linux-gnu/libzstd.so.1",
    "/usr/lib/x86_64-linux-gnu/libleveldb.so.1d",
    "/usr/lib/x86_64-linux-gnu/libc.so.6",
    "/usr/bin/sqlite3",
];

/// Counts per kind: Nop5, Emulated, SingleStep, Unknown.
#[derive(Default)]
struct Kinds([usize; 4]);

impl Kinds {
    fn add(&mut self, k: EntryKind) {
        self.0[match k {
            EntryKind::Nop5 => 0,
            EntryKind::Emulated => 1,
            EntryKind::SingleStep => 2,
            EntryKind::Unknown => 3,
        }] += 1;
    }
}

fn pct(n: usize, of: usize) -> String {
    if of == 0 {
        return "-".into();
    }
    format!("{:.1}%", 100.0 * n as f64 / of as f64)
}

fn survey(path: &Path, list: bool) -> Result<(), String> {
    let elf = read_elf(path).map_err(|e| e.to_string())?;
    let file = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let placed = placement::place_all(&file, &elf.functions);
    let n = elf.functions.len();
    let (mut before, mut after) = (Kinds::default(), Kinds::default());
    let (mut ss_to_emul, mut ss_to_nop5, mut emul_to_nop5, mut endbr) = (0, 0, 0, 0);
    let mut blocked_file_wide = Vec::new();
    let mut still_slow: BTreeMap<&'static str, usize> = BTreeMap::new();
    let mut skipped_hist: BTreeMap<u32, usize> = BTreeMap::new();
    for (f, p) in elf.functions.iter().zip(&placed) {
        let code = placement::function_code(&file, f).unwrap_or_default();
        before.add(p.at_entry_kind);
        after.add(p.kind);
        if code.starts_with(&[0xf3, 0x0f, 0x1e, 0xfa]) {
            endbr += 1;
        }
        match (p.at_entry_kind, p.kind) {
            (EntryKind::SingleStep, EntryKind::Emulated) => ss_to_emul += 1,
            (EntryKind::SingleStep, EntryKind::Nop5) => ss_to_nop5 += 1,
            (EntryKind::Emulated, EntryKind::Nop5) => emul_to_nop5 += 1,
            _ => {}
        }
        if p.moved() {
            *skipped_hist.entry(p.skipped_instructions).or_default() += 1;
        }
        if p.kind == EntryKind::SingleStep {
            *still_slow.entry(p.reason.describe()).or_default() += 1;
        }
        // What looking at one function alone would have got wrong.
        let alone: Placement = placement::place_probe(code, f.addr);
        if alone.offset != p.offset {
            blocked_file_wide.push(format!(
                "{} (+{} alone, +{} with the file: {:?})",
                f.name, alone.offset, p.offset, p.reason
            ));
        }
        if list {
            println!(
                "  {:#x} +{:<3} {:<22} (at +0: {:<22}) skipped {} [{:?}] {}",
                f.addr,
                p.offset,
                p.kind.to_string(),
                p.at_entry_kind.to_string(),
                p.skipped_instructions,
                p.reason,
                f.name
            );
        }
    }
    println!(
        "{} — {n} functions, {} start with endbr64",
        path.display(),
        endbr
    );
    println!(
        "  {:<22} {:>8} {:>8} {:>12} {:>8}",
        "", "nop5", "emulated", "single-step", "unknown"
    );
    for (label, k) in [("at +0", &before), ("after placement", &after)] {
        println!(
            "  {:<22} {:>8} {:>8} {:>12} {:>8}",
            label, k.0[0], k.0[1], k.0[2], k.0[3]
        );
        println!(
            "  {:<22} {:>8} {:>8} {:>12} {:>8}",
            "",
            pct(k.0[0], n),
            pct(k.0[1], n),
            pct(k.0[2], n),
            pct(k.0[3], n)
        );
    }
    println!(
        "  single-step -> emulated: {ss_to_emul} ({} of all, {} of the single-stepped); \
         single-step -> nop5: {ss_to_nop5}; emulated -> nop5: {emul_to_nop5}",
        pct(ss_to_emul, n),
        pct(ss_to_emul, before.0[2])
    );
    println!(
        "  no cheap point (still single-stepped): {} ({})",
        after.0[2],
        pct(after.0[2], n)
    );
    for (reason, count) in &still_slow {
        println!("      {count:>6}  {reason}");
    }
    println!(
        "  instructions skipped by the moved probes: {}",
        skipped_hist
            .iter()
            .map(|(k, v)| format!("{k}: {v}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!(
        "  placements that differ when branches from the rest of the file are counted: {}",
        blocked_file_wide.len()
    );
    for line in blocked_file_wide.iter().take(10) {
        println!("      {line}");
    }
    let covered: u64 = elf.functions.iter().map(|f| f.size).sum();
    let span = elf
        .functions
        .iter()
        .map(|f| f.addr + f.size)
        .max()
        .unwrap_or(0)
        .saturating_sub(elf.functions.iter().map(|f| f.addr).min().unwrap_or(0));
    println!(
        "  code in the listed functions: {} KiB of a {} KiB span (the rest: unlisted code, swept for branches only)",
        covered / 1024,
        span / 1024
    );
    println!();
    Ok(())
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let list = args.iter().any(|a| a == "--list");
    let files: Vec<String> = args.iter().filter(|a| *a != "--list").cloned().collect();
    let files = if files.is_empty() {
        DEFAULT_FILES.iter().map(|s| s.to_string()).collect()
    } else {
        files
    };
    for f in files {
        if let Err(e) = survey(Path::new(&f), list) {
            println!("{e}\n");
        }
    }
}
