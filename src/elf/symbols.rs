//! Functions from `.symtab` and `.dynsym`: filtering, alias merging, file
//! offsets and entry bytes.

use std::collections::{BTreeMap, HashMap};

use super::reader::{
    cstr_at, le_u16, le_u32, le_u64, string_at, Parsed, Section, Source, SHT_DYNSYM,
    SHT_GNU_VERDEF, SHT_GNU_VERSYM, SHT_SYMTAB, SHT_SYMTAB_SHNDX,
};
use super::{
    classify_entry_at, demangle, Binding, ElfError, FileOffset, Function, SkipCounts, SymbolSource,
};

const SYM_SIZE: usize = 24;
const STT_FUNC: u8 = 2;
const STT_GNU_IFUNC: u8 = 10;
const STB_LOCAL: u8 = 0;
const STB_GLOBAL: u8 = 1;
const STB_WEAK: u8 = 2;
const SHN_UNDEF: u32 = 0;
const SHN_LORESERVE: u16 = 0xff00;
const SHN_XINDEX: u16 = 0xffff;
/// Bytes of each function kept in [`Function::entry_bytes`].
pub(crate) const ENTRY_BYTES: u64 = 16;
/// Size of the reads that fetch entry bytes (functions are sorted by address,
/// so consecutive functions usually share a window).
const WINDOW: u64 = 64 * 1024;
/// Constant part of [`name_budget`].
const NAME_BUDGET_SLACK: usize = 16 << 20;
/// Version names longer than this are ignored (real ones are `GLIBC_2.2.5`).
const MAX_VERSION_NAME: usize = 1024;
/// Total bytes of demangled names per file; past it, raw names are used.
/// (Each demangled name is at most 64 KiB, but a hostile file can have
/// millions of short names that expand a lot.)
const DEMANGLE_BUDGET: usize = 256 << 20;
/// Sections whose symbols are PLT stubs.
const PLT_SECTIONS: [&[u8]; 4] = [b".plt", b".plt.sec", b".plt.got", b".iplt"];

/// Result of [`collect`].
pub(crate) struct Symbols {
    pub(crate) functions: Vec<Function>,
    pub(crate) skipped: SkipCounts,
    pub(crate) has_symtab: bool,
    pub(crate) has_dynsym: bool,
}

/// A `STT_FUNC` or `STT_GNU_IFUNC` symbol as read from a table.
struct RawSym {
    /// `None` if the name could not be read.
    name: Option<String>,
    value: u64,
    size: u64,
    sym_type: u8,
    bind: u8,
    /// Section index, extended indices resolved; `u32::MAX` if unknown.
    shndx: u32,
    source: SymbolSource,
}

/// A unique symbol after merging the two tables.
struct Unique {
    raw: String,
    value: u64,
    size: u64,
    sym_type: u8,
    bind: u8,
    shndx: u32,
    in_symtab: bool,
}

/// A symbol name without its version (`foo@@GLIBC_2.2.5` → `foo`).
fn base_name(raw: &str) -> &str {
    raw.split('@').next().unwrap_or(raw)
}

/// The name used to recognise one symbol seen in both tables: a default
/// version (`foo@@V2` in `.symtab`) is the plain name (`foo` in `.dynsym`);
/// a hidden version (`foo@V1`, in both tables) is kept, so that `foo@V1` and
/// `foo@@V2` at one address stay two names (the second an alias).
fn same_symbol_name(raw: &str) -> &str {
    raw.split_once("@@").map_or(raw, |(base, _)| base)
}

/// Bytes of function names a symbol table may produce. Names may share
/// bytes of the string table (identical names, suffix merging), but a
/// hostile table could make millions of symbols point at one huge string:
/// past this, the file is refused rather than exhausting memory.
fn name_budget(strtab_len: usize) -> usize {
    strtab_len
        .saturating_mul(16)
        .saturating_add(NAME_BUDGET_SLACK)
}

/// Version names by index from `.gnu.version_d`.
fn read_verdefs(
    src: &Source,
    parsed: &Parsed,
    sec: &Section,
) -> Result<HashMap<u16, String>, ElfError> {
    let mut names = HashMap::new();
    let data = sec.data(src, ".gnu.version_d")?;
    let Some(strtab) = usize::try_from(sec.link)
        .ok()
        .and_then(|i| parsed.sections.get(i))
    else {
        return Ok(names);
    };
    let strtab = strtab.data(src, "version string table")?;
    let mut pos = 0usize;
    // At most sh_info entries, and never more than fit in the section.
    let max = usize::try_from(sec.info)
        .unwrap_or(usize::MAX)
        .min(data.len() / 20);
    for _ in 0..max {
        let field = |off: usize| pos.checked_add(off);
        let (Some(ndx), Some(aux), Some(next)) = (
            field(4).and_then(|o| le_u16(&data, o)),
            field(12).and_then(|o| le_u32(&data, o)),
            field(16).and_then(|o| le_u32(&data, o)),
        ) else {
            break;
        };
        let name = usize::try_from(aux)
            .ok()
            .and_then(|a| pos.checked_add(a))
            .and_then(|a| le_u32(&data, a))
            .and_then(|off| string_at(&strtab, u64::from(off)));
        if let Some(name) = name.filter(|n| n.len() <= MAX_VERSION_NAME) {
            names.insert(ndx & 0x7fff, name);
        }
        if next == 0 {
            break;
        }
        match usize::try_from(next).ok().and_then(|n| pos.checked_add(n)) {
            Some(p) => pos = p,
            None => break,
        }
    }
    Ok(names)
}

/// Reads the function symbols of table `index` (`.symtab` or `.dynsym`).
fn read_table(
    src: &Source,
    parsed: &Parsed,
    index: usize,
    source: SymbolSource,
) -> Result<Vec<RawSym>, ElfError> {
    let Some(sec) = parsed.sections.get(index) else {
        return Ok(Vec::new());
    };
    let what = match source {
        SymbolSource::Symtab => ".symtab",
        SymbolSource::Dynsym => ".dynsym",
    };
    if sec.entsize != SYM_SIZE as u64 && sec.entsize != 0 {
        return Err(src.malformed(format!(
            "{what} entry size {} (expected {SYM_SIZE})",
            sec.entsize
        )));
    }
    let data = sec.data(src, what)?;
    let strtab = match usize::try_from(sec.link)
        .ok()
        .and_then(|i| parsed.sections.get(i))
    {
        Some(s) => s.data(src, "symbol string table")?,
        None => {
            return Err(src.malformed(format!(
                "{what} links to string table {} which does not exist",
                sec.link
            )))
        }
    };
    // Extended section indices (files with more than 0xfeff sections).
    let shndx_table = match parsed
        .sections
        .iter()
        .find(|s| s.sh_type == SHT_SYMTAB_SHNDX && usize::try_from(s.link).ok() == Some(index))
    {
        Some(s) => s.data(src, "extended section index table")?,
        None => Vec::new(),
    };
    // Versions of dynamic symbols: a hidden (non-default) version is kept in
    // the name, so that `foo@OLD` and `foo` stay distinguishable.
    let (versym, verdefs) = if source == SymbolSource::Dynsym {
        let versym =
            match parsed.sections.iter().find(|s| {
                s.sh_type == SHT_GNU_VERSYM && usize::try_from(s.link).ok() == Some(index)
            }) {
                Some(s) => s.data(src, ".gnu.version")?,
                None => Vec::new(),
            };
        let verdefs = match parsed.sections.iter().find(|s| s.sh_type == SHT_GNU_VERDEF) {
            Some(s) if !versym.is_empty() => read_verdefs(src, parsed, s)?,
            _ => HashMap::new(),
        };
        (versym, verdefs)
    } else {
        (Vec::new(), HashMap::new())
    };

    let mut out = Vec::new();
    let mut budget = name_budget(strtab.len());
    for (i, entry) in data.chunks_exact(SYM_SIZE).enumerate().skip(1) {
        let (Some(st_name), Some(&info), Some(st_shndx), Some(value), Some(size)) = (
            le_u32(entry, 0),
            entry.get(4),
            le_u16(entry, 6),
            le_u64(entry, 8),
            le_u64(entry, 16),
        ) else {
            continue;
        };
        let sym_type = info & 0xf;
        if sym_type != STT_FUNC && sym_type != STT_GNU_IFUNC {
            continue;
        }
        let shndx = if st_shndx == SHN_XINDEX {
            i.checked_mul(4)
                .and_then(|o| le_u32(&shndx_table, o))
                .unwrap_or(u32::MAX)
        } else {
            u32::from(st_shndx)
        };
        let mut name =
            cstr_at(&strtab, u64::from(st_name)).map(|b| String::from_utf8_lossy(b).into_owned());
        if let Some(n) = name.as_mut() {
            let ver = i.checked_mul(2).and_then(|o| le_u16(&versym, o));
            if let Some(v) = ver {
                if v & 0x8000 != 0 && shndx != SHN_UNDEF && !n.contains('@') {
                    if let Some(vname) = verdefs.get(&(v & 0x7fff)) {
                        n.push('@');
                        n.push_str(vname);
                    }
                }
            }
        }
        let name_len = name.as_ref().map_or(0, String::len);
        budget = budget.checked_sub(name_len).ok_or_else(|| {
            src.malformed(format!(
                "{what} names add up to more than {} bytes (string table of {} bytes)",
                name_budget(strtab.len()),
                strtab.len()
            ))
        })?;
        out.push(RawSym {
            name,
            value,
            size,
            sym_type,
            bind: info >> 4,
            shndx,
            source,
        });
    }
    Ok(out)
}

/// Ranking of names at one address: the smallest is the primary name.
/// Prefers non-local, from `.symtab`, not starting with `_`, shortest, then
/// alphabetical (so C++ `C1` constructors win over `C2`).
fn rank(u: &Unique) -> (bool, bool, bool, usize, &str) {
    let base = base_name(&u.raw);
    (
        u.bind == STB_LOCAL,
        !u.in_symtab,
        base.starts_with('_'),
        base.len(),
        &u.raw,
    )
}

fn binding(bind: u8) -> Binding {
    match bind {
        STB_LOCAL => Binding::Local,
        STB_GLOBAL => Binding::Global,
        STB_WEAK => Binding::Weak,
        _ => Binding::Other,
    }
}

/// Reads entry bytes through a sliding window of the file.
struct EntryReader<'a> {
    src: &'a Source,
    start: u64,
    buf: Vec<u8>,
}

impl EntryReader<'_> {
    fn bytes(&mut self, offset: u64, n: u64) -> Result<Vec<u8>, ElfError> {
        let end = offset.saturating_add(n);
        let buf_end = self.start.saturating_add(self.buf.len() as u64);
        if offset < self.start || end > buf_end {
            self.buf = self
                .src
                .read_clamped(offset, WINDOW.max(n), "function entry bytes")?;
            self.start = offset;
        }
        let from = usize::try_from(offset - self.start).unwrap_or(usize::MAX);
        let to = usize::try_from(end - self.start).unwrap_or(usize::MAX);
        let to = to.min(self.buf.len());
        Ok(self.buf.get(from..to).unwrap_or_default().to_vec())
    }
}

/// Reads both symbol tables and builds the function list.
pub(crate) fn collect(src: &Source, parsed: &Parsed) -> Result<Symbols, ElfError> {
    let find = |t| parsed.sections.iter().position(|s| s.sh_type == t);
    let symtab = find(SHT_SYMTAB);
    let dynsym = find(SHT_DYNSYM);
    let non_empty = |i: Option<usize>| {
        i.and_then(|i| parsed.sections.get(i)).is_some_and(|s| {
            s.size >= 2 * SYM_SIZE as u64 && s.sh_type != super::reader::SHT_NOBITS
        })
    };
    let mut raw = Vec::new();
    if let Some(i) = symtab {
        raw.extend(read_table(src, parsed, i, SymbolSource::Symtab)?);
    }
    if let Some(i) = dynsym {
        raw.extend(read_table(src, parsed, i, SymbolSource::Dynsym)?);
    }

    let mut skipped = SkipCounts::default();
    // Merge the two tables: the same (name, value, defined) seen twice is one
    // symbol (see `same_symbol_name`; undefined symbols are compared without
    // version); `.symtab` comes first and its raw name wins.
    let mut uniques: Vec<Unique> = Vec::new();
    let mut seen: HashMap<(String, u64, bool), usize> = HashMap::new();
    for s in raw {
        let Some(name) = s.name else {
            skipped.bad_name += 1;
            continue;
        };
        let undefined = s.shndx == SHN_UNDEF;
        let key_name = if undefined {
            base_name(&name)
        } else {
            same_symbol_name(&name)
        };
        let key = (key_name.to_string(), s.value, undefined);
        if let Some(&i) = seen.get(&key) {
            if let Some(u) = uniques.get_mut(i) {
                u.in_symtab |= s.source == SymbolSource::Symtab;
            }
            continue;
        }
        seen.insert(key, uniques.len());
        uniques.push(Unique {
            raw: name,
            value: s.value,
            size: s.size,
            sym_type: s.sym_type,
            bind: s.bind,
            shndx: s.shndx,
            in_symtab: s.source == SymbolSource::Symtab,
        });
    }

    // Filter, then group by address.
    let mut by_addr: BTreeMap<u64, Vec<Unique>> = BTreeMap::new();
    for u in uniques {
        if u.shndx == SHN_UNDEF {
            skipped.undefined += 1;
            continue;
        }
        if u.sym_type == STT_GNU_IFUNC {
            skipped.ifunc += 1;
            continue;
        }
        let in_plt_section = u.shndx < u32::from(SHN_LORESERVE)
            && usize::try_from(u.shndx)
                .ok()
                .and_then(|i| parsed.section_name(i))
                .is_some_and(|n| PLT_SECTIONS.contains(&n));
        if in_plt_section || u.raw.ends_with("@plt") {
            skipped.plt += 1;
            continue;
        }
        if u.size == 0 {
            skipped.zero_size += 1;
            continue;
        }
        if parsed.exec_segment_for(u.value).is_none() {
            skipped.not_executable += 1;
            continue;
        }
        by_addr.entry(u.value).or_default().push(u);
    }

    let mut reader = EntryReader {
        src,
        start: 0,
        buf: Vec::new(),
    };
    let mut demangle_budget = DEMANGLE_BUDGET;
    let mut functions = Vec::with_capacity(by_addr.len());
    for (addr, mut group) in by_addr {
        group.sort_by(|a, b| rank(a).cmp(&rank(b)));
        let mut names = group.into_iter();
        let Some(primary) = names.next() else {
            continue;
        };
        let aliases: Vec<String> = names.map(|u| u.raw).collect();
        skipped.duplicate_address += aliases.len() as u64;
        let Some(seg) = parsed.exec_segment_for(addr) else {
            continue;
        };
        let Some(offset) = seg.file_offset(addr) else {
            skipped.not_executable += 1;
            continue;
        };
        let n = ENTRY_BYTES.min(primary.size).min(seg.remaining(addr));
        let entry_bytes = reader.bytes(offset, n)?;
        let name = if demangle_budget > 0 {
            let d = demangle(base_name(&primary.raw));
            demangle_budget = demangle_budget.saturating_sub(d.len());
            d
        } else {
            base_name(&primary.raw).to_string()
        };
        functions.push(Function {
            name,
            entry_kind: classify_entry_at(&entry_bytes, addr),
            raw_name: primary.raw,
            aliases,
            addr,
            size: primary.size,
            offset: FileOffset(offset),
            source: if primary.in_symtab {
                SymbolSource::Symtab
            } else {
                SymbolSource::Dynsym
            },
            binding: binding(primary.bind),
            entry_bytes,
        });
    }

    Ok(Symbols {
        functions,
        skipped,
        has_symtab: non_empty(symtab),
        has_dynsym: non_empty(dynsym),
    })
}

#[cfg(test)]
mod tests {
    use super::super::testutil::{cc, run, Scratch};
    use super::super::{read_elf, SymbolSource};
    use super::{base_name, same_symbol_name};

    #[test]
    fn version_suffixes() {
        assert_eq!(base_name("foo@@GLIBC_2.2.5"), "foo");
        assert_eq!(base_name("foo@GLIBC_2.2.5"), "foo");
        assert_eq!(base_name("foo"), "foo");
        assert_eq!(base_name("@"), "");
        assert_eq!(same_symbol_name("foo@@V2"), "foo");
        assert_eq!(same_symbol_name("foo@V1"), "foo@V1");
        assert_eq!(same_symbol_name("foo"), "foo");
    }

    #[test]
    fn symbol_versions_from_symtab_and_dynsym() {
        let s = Scratch::new("versions");
        s.write(
            "v.c",
            r#"
int foo_old(int x) { return x; }
int foo_new(int x) { return x + 1; }
__asm__(".symver foo_old,foo@VERS_1");
__asm__(".symver foo_new,foo@@VERS_2");
int plain(int x) { return x * 2; }
"#,
        );
        s.write(
            "v.map",
            "VERS_1 { global: foo; plain; local: *; };\nVERS_2 { global: foo; } VERS_1;\n",
        );
        cc(
            &s.dir,
            &[
                "-shared",
                "-fPIC",
                "-Wl,--version-script=v.map",
                "-o",
                "libv.so",
                "v.c",
            ],
        );
        std::fs::copy(s.path("libv.so"), s.path("libv-stripped.so")).unwrap();
        run(&s.dir, "strip", &["--strip-all", "libv-stripped.so"]);

        let full = read_elf(&s.path("libv.so")).unwrap();
        let stripped = read_elf(&s.path("libv-stripped.so")).unwrap();
        for elf in [&full, &stripped] {
            let foos: Vec<_> = elf.functions.iter().filter(|f| f.name == "foo").collect();
            assert_eq!(foos.len(), 2, "{:#?}", elf.functions);
            assert!(foos.iter().any(|f| f.raw_name == "foo@VERS_1"), "{foos:#?}");
            assert!(elf.functions.iter().any(|f| f.name == "plain"));
        }
        // In the stripped file the default version has no suffix.
        assert!(stripped
            .functions
            .iter()
            .any(|f| f.raw_name == "foo" && f.source == SymbolSource::Dynsym));
        // In the full file, the local implementation name is an alias.
        let old = full
            .functions
            .iter()
            .find(|f| f.raw_name == "foo@VERS_1")
            .unwrap();
        assert_eq!(old.aliases, vec!["foo_old".to_string()]);
        assert_eq!(old.source, SymbolSource::Symtab);
    }
}

#[cfg(test)]
mod tiny_tests {
    use super::super::testutil::{tiny_elf, Scratch, TinySym, TINY_TEXT_ADDR, TINY_TEXT_OFFSET};

    fn sym(name: u32, value: u64, size: u64, info: u8, shndx: u16) -> TinySym {
        TinySym {
            name,
            value,
            size,
            info,
            shndx,
        }
    }
    use super::super::{read_elf, ElfError, ElfKind, EntryKind, FileOffset};

    const FUNC_GLOBAL: u8 = 0x12;
    const FUNC_LOCAL: u8 = 0x02;

    #[test]
    fn hand_written_file_offsets_and_edge_cases() {
        let s = Scratch::new("tiny");
        // 0x00: nop5 + ret (6), 0x06: push rbp; ret (2), 0x08: 4 bytes at the
        // very end of the segment.
        let text = [
            0x0f, 0x1f, 0x44, 0x00, 0x00, 0xc3, 0x55, 0xc3, 0x90, 0x90, 0x90, 0xc3,
        ];
        let strtab = b"\0first\0second\0tail\0huge\0inbss\0xindex\0";
        let syms = [
            sym(1, TINY_TEXT_ADDR, 6, FUNC_GLOBAL, 1),
            sym(7, TINY_TEXT_ADDR + 6, 2, FUNC_LOCAL, 1),
            // Size larger than what is left of the segment: entry bytes clamp.
            sym(14, TINY_TEXT_ADDR + 8, u64::MAX, FUNC_GLOBAL, 1),
            // Address past the file-backed part (in the segment's bss).
            sym(24, TINY_TEXT_ADDR + 12, 4, FUNC_GLOBAL, 1),
            // Name offset out of the string table.
            sym(0xffff, TINY_TEXT_ADDR, 1, FUNC_GLOBAL, 1),
            // Extended section index without a SHT_SYMTAB_SHNDX table.
            sym(30, TINY_TEXT_ADDR + 6, 2, FUNC_GLOBAL, 0xffff),
        ];
        let path = s.path("tiny");
        std::fs::write(&path, tiny_elf(&text, strtab, &syms, 0x100)).unwrap();
        let elf = read_elf(&path).unwrap();
        assert_eq!(elf.kind, ElfKind::Exec);
        assert!(elf.needed.is_empty());
        assert_eq!(elf.interp, None);
        assert_eq!(elf.build_id, None);
        assert!(elf.has_symtab);
        assert!(!elf.has_dynsym);

        let names: Vec<_> = elf.functions.iter().map(|f| f.raw_name.as_str()).collect();
        assert_eq!(names, vec!["first", "xindex", "tail"]);
        let first = &elf.functions[0];
        assert_eq!(first.offset, FileOffset(TINY_TEXT_OFFSET));
        assert_eq!(first.entry_kind, EntryKind::Nop5);
        assert_eq!(first.entry_bytes.len(), 6);
        let second = &elf.functions[1];
        // The global name wins over the local one at the same address.
        assert_eq!(second.aliases, vec!["second".to_string()]);
        assert_eq!(second.entry_bytes, vec![0x55, 0xc3]);
        let tail = &elf.functions[2];
        assert_eq!(tail.entry_bytes, vec![0x90, 0x90, 0x90, 0xc3]);
        assert_eq!(tail.offset, FileOffset(TINY_TEXT_OFFSET + 8));
        assert_eq!(elf.skipped.not_executable, 1);
        assert_eq!(elf.skipped.bad_name, 1);
        assert_eq!(elf.skipped.duplicate_address, 1);
    }

    #[test]
    fn names_sharing_one_huge_string_are_refused() {
        let s = Scratch::new("tiny-bomb");
        let mut strtab = vec![0u8];
        strtab.extend(std::iter::repeat_n(b'a', 1 << 20));
        strtab.push(0);
        // 40 symbols x 1 MiB > 16 x 1 MiB + 16 MiB.
        let syms: Vec<TinySym> = (0..40)
            .map(|i| sym(1, TINY_TEXT_ADDR + i, 1, FUNC_GLOBAL, 1))
            .collect();
        let path = s.path("bomb");
        std::fs::write(&path, tiny_elf(&[0xc3; 64], &strtab, &syms, 0)).unwrap();
        let e = read_elf(&path).unwrap_err();
        assert!(matches!(e, ElfError::Malformed { .. }), "{e}");
        assert!(e.to_string().contains("names add up"), "{e}");
        // A few such symbols are fine.
        let path = s.path("ok");
        std::fs::write(&path, tiny_elf(&[0xc3; 64], &strtab, &syms[..3], 0)).unwrap();
        assert_eq!(read_elf(&path).unwrap().functions.len(), 3);
    }
}
