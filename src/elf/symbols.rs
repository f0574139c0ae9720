//! Functions from `.symtab` and `.dynsym` (read through `object`'s `SymbolTable` and `VersionTable`):
//! filtering, alias merging, file offsets and entry bytes.
//!
//! Invariants: the `.symtab` may come from the file itself or from a separate debug file (its symbols
//! carry the same addresses); `.dynsym`, file offsets and entry bytes always come from the file itself,
//! whose executable `PT_LOAD` segments place an address in the file. Names are capped per table at a
//! multiple of its string table ([`name_budget`]) and demangled names per file at [`DEMANGLE_BUDGET`].

use std::collections::{BTreeMap, HashMap};

use object::elf;
use object::read::elf::{SectionHeader, Sym, SymbolTable, VersionTable};
use object::read::SectionIndex;

use super::file::{Elf, Elf64};
use super::{
    classify_entry_at, demangle, Binding, ElfError, FileOffset, Function, SkipCounts, SymbolSource,
};

/// Size of an `Elf64_Sym`.
const SYM_SIZE: u64 = 24;
/// Bytes of each function kept in [`Function::entry_bytes`].
pub(crate) const ENTRY_BYTES: u64 = 16;
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
}

/// What a table says of a function symbol besides its name: kept as read through the merge of the two
/// tables.
#[derive(Clone, Copy)]
struct SymFacts {
    value: u64,
    size: u64,
    ifunc: bool,
    bind: elf::SymbolBind,
    undefined: bool,
    /// Defined in a PLT section of the file whose table it comes from.
    in_plt_section: bool,
}

/// A `STT_FUNC` or `STT_GNU_IFUNC` symbol as read from a table.
pub(crate) struct RawSym {
    /// `None` if the name could not be read.
    name: Option<String>,
    facts: SymFacts,
    source: SymbolSource,
}

/// The function symbols of one table, and whether the table has any symbol at all.
pub(crate) struct Table {
    pub(crate) symbols: Vec<RawSym>,
    /// The table exists, has data in the file and at least one symbol besides the null one.
    pub(crate) non_empty: bool,
}

/// A unique symbol after merging the two tables.
struct Unique {
    raw: String,
    facts: SymFacts,
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

/// Reads the function symbols of the first table of type `sh_type` (`SHT_SYMTAB` or `SHT_DYNSYM`) of
/// `file`. Symbols of `.dynsym` with a hidden (non-default) version get `@VERSION` appended, so that
/// `foo@OLD` and `foo` stay distinguishable.
///
/// One piece because every field of a symbol is read and checked in the same loop, against the same
/// tables (names, extended indices, versions, section names).
pub(crate) fn read_table(file: &Elf, sh_type: elf::SectionType) -> Result<Table, ElfError> {
    let endian = file.endian;
    let (source, what) = if sh_type == elf::SHT_SYMTAB {
        (SymbolSource::Symtab, ".symtab")
    } else {
        (SymbolSource::Dynsym, ".dynsym")
    };
    let empty = Table {
        symbols: Vec::new(),
        non_empty: false,
    };
    let Some((index, table)) = open_table(file, sh_type)? else {
        return Ok(empty);
    };
    let strtab_len = file
        .sections
        .section(table.string_section())
        .map_or(0, |s| {
            usize::try_from(s.sh_size(endian)).unwrap_or(usize::MAX)
        });
    let versions = if source == SymbolSource::Dynsym {
        versions_of(file, index)?
    } else {
        None
    };

    let mut out = Vec::new();
    let mut budget = name_budget(strtab_len);
    for (i, sym) in table.enumerate().skip(1) {
        let sym_type = sym.st_type();
        if sym_type != elf::STT_FUNC && sym_type != elf::STT_GNU_IFUNC {
            continue;
        }
        let shndx = sym.st_shndx(endian);
        let undefined = shndx == elf::SHN_UNDEF
            || (shndx == elf::SHN_XINDEX && table.shndx(endian, i) == Some(0));
        // An extended index without its table is a defined symbol in an unknown section.
        let section_index = table.symbol_section(endian, sym, i).ok().flatten();
        let in_plt_section = section_index
            .and_then(|s: SectionIndex| file.section_name(s))
            .is_some_and(|n| PLT_SECTIONS.contains(&n));
        let mut name = table
            .symbol_name(endian, sym)
            .ok()
            .map(|b| String::from_utf8_lossy(b).into_owned());
        if let (Some(n), Some(versions)) = (name.as_mut(), versions.as_ref()) {
            let v = versions.version_index(endian, i);
            if v.is_hidden() && !undefined && !n.contains('@') {
                if let Ok(Some(version)) = versions.version(v.index()) {
                    let vname = version.name();
                    if vname.len() <= MAX_VERSION_NAME {
                        n.push('@');
                        n.push_str(&String::from_utf8_lossy(vname));
                    }
                }
            }
        }
        let name_len = name.as_ref().map_or(0, String::len);
        budget = budget.checked_sub(name_len).ok_or_else(|| {
            file.malformed(format!(
                "{what} names add up to more than {} bytes (string table of {strtab_len} bytes)",
                name_budget(strtab_len),
            ))
        })?;
        out.push(RawSym {
            name,
            facts: SymFacts {
                value: sym.st_value(endian),
                size: sym.st_size(endian),
                ifunc: sym_type == elf::STT_GNU_IFUNC,
                bind: sym.st_bind(),
                undefined,
                in_plt_section,
            },
            source,
        });
    }
    Ok(Table {
        symbols: out,
        non_empty: table.len() >= 2,
    })
}

/// The version table of the symbol table at `index`, if the file has one that belongs to it.
fn versions_of<'data>(
    file: &Elf<'data>,
    index: SectionIndex,
) -> Result<Option<VersionTable<'data, Elf64>>, ElfError> {
    match file.sections.versions(file.endian, file.data) {
        // Only a version table that belongs to this symbol table.
        Ok(Some(v)) if linked_versym(file) == Some(index) => Ok(Some(v)),
        Ok(_) => Ok(None),
        Err(e) => Err(file.malformed(format!("symbol versions: {e}"))),
    }
}

/// The first symbol table of type `sh_type` with its section index; `None` if there is none or its
/// data is not in the file (`SHT_NOBITS` in a debug file).
fn open_table<'data>(
    file: &Elf<'data>,
    sh_type: elf::SectionType,
) -> Result<Option<(SectionIndex, SymbolTable<'data, Elf64>)>, ElfError> {
    let endian = file.endian;
    let what = if sh_type == elf::SHT_SYMTAB {
        ".symtab"
    } else {
        ".dynsym"
    };
    let Some((index, section)) = file
        .sections
        .enumerate()
        .find(|(_, s)| s.sh_type(endian) == sh_type)
    else {
        return Ok(None);
    };
    let entsize = section.sh_entsize(endian);
    if entsize != SYM_SIZE && entsize != 0 {
        return Err(file.malformed(format!("{what} entry size {entsize} (expected {SYM_SIZE})")));
    }
    let table = SymbolTable::parse(endian, file.data, &file.sections, index, section)
        .map_err(|e| file.malformed(format!("{what}: {e}")))?;
    Ok(Some((index, table)))
}

/// The value of the first defined symbol named exactly `name` in the first table of type `sh_type`.
pub(crate) fn symbol_address(
    file: &Elf,
    sh_type: elf::SectionType,
    name: &[u8],
) -> Result<Option<u64>, ElfError> {
    let endian = file.endian;
    let Some((_, table)) = open_table(file, sh_type)? else {
        return Ok(None);
    };
    Ok(table
        .iter()
        .skip(1)
        .find(|s| !s.is_undefined(endian) && table.symbol_name(endian, s) == Ok(name))
        .map(|s| s.st_value(endian)))
}

/// The symbol table that the first `SHT_GNU_VERSYM` section belongs to (what `object`'s
/// `SectionTable::versions` reads).
fn linked_versym(file: &Elf) -> Option<SectionIndex> {
    file.sections
        .iter()
        .find(|s| s.sh_type(file.endian) == elf::SHT_GNU_VERSYM)
        .map(|s| s.link(file.endian))
}

/// Ranking of names at one address: the smallest is the primary name.
/// Prefers non-local, from `.symtab`, not starting with `_`, shortest, then
/// alphabetical (so C++ `C1` constructors win over `C2`).
fn rank(u: &Unique) -> (bool, bool, bool, usize, &str) {
    let base = base_name(&u.raw);
    (
        u.facts.bind == elf::STB_LOCAL,
        !u.in_symtab,
        base.starts_with('_'),
        base.len(),
        &u.raw,
    )
}

fn binding(bind: elf::SymbolBind) -> Binding {
    match bind {
        elf::STB_LOCAL => Binding::Local,
        elf::STB_GLOBAL => Binding::Global,
        elf::STB_WEAK => Binding::Weak,
        _ => Binding::Other,
    }
}

/// The symbols of both tables, each once: the same (name, value, defined) seen twice is one symbol
/// (see `same_symbol_name`; undefined symbols are compared without version); `.symtab` comes first
/// and its raw name wins. Symbols without a readable name are counted in `skipped`.
fn merge_tables(symtab: Table, dynsym: Table, skipped: &mut SkipCounts) -> Vec<Unique> {
    let mut uniques: Vec<Unique> = Vec::new();
    let mut seen: HashMap<(String, u64, bool), usize> = HashMap::new();
    for s in symtab.symbols.into_iter().chain(dynsym.symbols) {
        let Some(name) = s.name else {
            skipped.bad_name += 1;
            continue;
        };
        let key_name = if s.facts.undefined {
            base_name(&name)
        } else {
            same_symbol_name(&name)
        };
        let key = (key_name.to_string(), s.facts.value, s.facts.undefined);
        if let Some(&i) = seen.get(&key) {
            if let Some(u) = uniques.get_mut(i) {
                u.in_symtab |= s.source == SymbolSource::Symtab;
            }
            continue;
        }
        seen.insert(key, uniques.len());
        uniques.push(Unique {
            raw: name,
            facts: s.facts,
            in_symtab: s.source == SymbolSource::Symtab,
        });
    }
    uniques
}

/// The symbols that are functions perfgate can probe, grouped by address; the others counted in
/// `skipped` by why (undefined, ifunc, PLT, no size, not in an executable segment of `file`).
fn by_address(
    file: &Elf,
    uniques: Vec<Unique>,
    skipped: &mut SkipCounts,
) -> BTreeMap<u64, Vec<Unique>> {
    let mut by_addr: BTreeMap<u64, Vec<Unique>> = BTreeMap::new();
    for u in uniques {
        let f = u.facts;
        if f.undefined {
            skipped.undefined += 1;
        } else if f.ifunc {
            skipped.ifunc += 1;
        } else if f.in_plt_section || u.raw.ends_with("@plt") {
            skipped.plt += 1;
        } else if f.size == 0 {
            skipped.zero_size += 1;
        } else if file.exec_segment_for(f.value).is_none() {
            skipped.not_executable += 1;
        } else {
            by_addr.entry(f.value).or_default().push(u);
        }
    }
    by_addr
}

/// Builds the function list from the function symbols of `symtab` and `dynsym`, placed in `file` (the
/// file itself: its executable segments give offsets and entry bytes): the tables merged
/// ([`merge_tables`]), filtered and grouped by address ([`by_address`]), each group's best-ranked name
/// the function's, the others its aliases. Every stage counts what it skips in the same counts.
pub(crate) fn collect(file: &Elf, symtab: Table, dynsym: Table) -> Symbols {
    let mut skipped = SkipCounts::default();
    let uniques = merge_tables(symtab, dynsym, &mut skipped);
    let by_addr = by_address(file, uniques, &mut skipped);
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
        let Some(offset) = file
            .exec_segment_for(addr)
            .and_then(|seg| seg.file_offset(addr))
        else {
            skipped.not_executable += 1;
            continue;
        };
        let entry_bytes = file
            .code_at(addr, ENTRY_BYTES.min(primary.facts.size))
            .to_vec();
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
            size: primary.facts.size,
            offset: FileOffset(offset),
            source: if primary.in_symtab {
                SymbolSource::Symtab
            } else {
                SymbolSource::Dynsym
            },
            binding: binding(primary.facts.bind),
            entry_bytes,
        });
    }
    Symbols { functions, skipped }
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
