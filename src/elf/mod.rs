//! Reading x86-64 ELF executables and shared libraries: the functions to probe.
//!
//! perfgate attaches one uprobe (through `uprobe_multi`) to the first byte of
//! every function of the benchmark binary and of its shared libraries. This
//! module turns a file on disk into that list:
//!
//! * [`read_elf`] parses an ELF file (x86-64, 64-bit, little endian only) and
//!   returns an [`ElfFile`]: its functions (from `.symtab` and `.dynsym`) with
//!   the **file offset** of their first byte, what `uprobe_multi` wants, plus
//!   the dynamic-linking facts (`DT_NEEDED`, `DT_RPATH`, `DT_RUNPATH`, ...).
//! * [`resolve_libraries`] finds the shared libraries the executable loads,
//!   in the order and with the rules of glibc's `ld.so`.
//! * [`demangle`] turns Rust and C++ symbols into readable names.
//! * [`classify_entry`] tells how expensive a uprobe on a function's first
//!   instruction is on Linux 6.18 (optimised nop, emulated or single-stepped)
//!   and [`kernel_rejects`] whether the kernel refuses it altogether (e.g. a
//!   `lock`-prefixed first instruction, as in glibc's `pthread_spin_lock`):
//!   such offsets make a `uprobe_multi` attach fail and must be left out.
//!
//! Every file is untrusted input: a truncated, corrupt or hostile file gives
//! an [`ElfError`], never a panic. Each read is checked against the file
//! size before anything is allocated, and what is derived from the file
//! (names, demangled names, strings of the dynamic section, `ld.so.cache`
//! entries) is capped at a small multiple of it. No `unsafe`, no memory
//! mapping: the file is read with positioned reads of the parts needed.
//!
//! Not handled: files without section headers (`sstrip`ped: no functions
//! are found), separate debug files (`.gnu_debuglink`, build-id directories:
//! a stripped file only shows its exported functions, see
//! [`ElfFile::has_symtab`]), 32-bit and non-x86-64 files.

mod demangle;
mod entry;
mod hooks;
mod libs;
pub mod placement;
mod reader;
mod symbols;
#[cfg(test)]
mod testutil;

use std::path::{Path, PathBuf};

pub use demangle::demangle;
pub use entry::{classify_entry, classify_entry_at, kernel_rejects, EntryKind};
pub use hooks::{imported_functions, return_offsets};
pub use libs::{
    parse_ld_library_path, resolve_libraries, LdCache, LdCacheEntry, Library, LoaderEnv,
    Resolution, DEFAULT_DIRS, LD_SO_CACHE,
};

/// A virtual address as written in the ELF file (before any load bias).
pub type Addr = u64;

/// File offset of a function's first byte, what `uprobe_multi` wants.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub struct FileOffset(pub u64);

impl std::fmt::Display for FileOffset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:#x}", self.0)
    }
}

/// Why an ELF file could not be read. Every message is one line and starts
/// with the path of the file.
#[derive(Debug, thiserror::Error)]
pub enum ElfError {
    /// The file could not be opened or read.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The path names a directory, a device, a FIFO...: not a regular file.
    #[error("{}: not a regular file", path.display())]
    NotRegularFile {
        /// The path.
        path: PathBuf,
    },
    /// The file does not start with the ELF magic bytes.
    #[error("{}: not an ELF file", path.display())]
    NotElf {
        /// The file.
        path: PathBuf,
    },
    /// An ELF file for another architecture (or 32-bit, or big endian).
    #[error("{}: ELF for {machine}, perfgate traces x86-64 binaries", path.display())]
    WrongArch {
        /// The file.
        path: PathBuf,
        /// Human-readable architecture of the file, e.g. `AArch64`.
        machine: String,
    },
    /// An x86-64 ELF file that is neither an executable nor a shared library
    /// (an object file `.o`, a core dump...).
    #[error("{}: ELF {kind}, perfgate needs an executable or a shared library", path.display())]
    UnsupportedType {
        /// The file.
        path: PathBuf,
        /// What the file is, e.g. `relocatable object (ET_REL)`.
        kind: String,
    },
    /// The file is an x86-64 ELF file but its structure is broken (truncated,
    /// offsets out of bounds, inconsistent sizes...).
    #[error("{}: malformed ELF: {reason}", path.display())]
    Malformed {
        /// The file.
        path: PathBuf,
        /// What is wrong, in a few words.
        reason: String,
    },
}

impl ElfError {
    /// The file the error is about.
    pub fn path(&self) -> &Path {
        match self {
            ElfError::Io { path, .. }
            | ElfError::NotRegularFile { path }
            | ElfError::NotElf { path }
            | ElfError::WrongArch { path, .. }
            | ElfError::UnsupportedType { path, .. }
            | ElfError::Malformed { path, .. } => path,
        }
    }
}

/// Which symbol table a function's primary name comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum SymbolSource {
    /// The full symbol table `.symtab` (absent from stripped files).
    Symtab,
    /// The dynamic symbol table `.dynsym` (exported symbols, survives `strip`).
    Dynsym,
}

/// ELF symbol binding of a function's primary name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Binding {
    /// `STB_LOCAL`: a `static` function, not visible outside its file.
    Local,
    /// `STB_GLOBAL`.
    Global,
    /// `STB_WEAK`.
    Weak,
    /// Anything else (`STB_GNU_UNIQUE`, OS or processor specific).
    Other,
}

/// One function to probe.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Function {
    /// Demangled name of the primary symbol, without symbol version (falls
    /// back to the raw name). Compiler clone suffixes are kept, e.g.
    /// `foo() [clone .cold]` for C++ or `foo.cold` for C (see [`demangle`]).
    pub name: String,
    /// The primary symbol as in the file (kept for matching). From `.symtab`
    /// it may carry a version (`foo@GLIBC_2.2.5`); from `.dynsym` a hidden
    /// (non-default) version is appended as `@VERSION`.
    pub raw_name: String,
    /// Other raw names at the same address (probed once, under `name`),
    /// sorted by the same preference as the primary name.
    pub aliases: Vec<String>,
    /// Virtual address of the first byte, as in the file.
    pub addr: Addr,
    /// Size in bytes (`st_size` of the primary symbol).
    pub size: u64,
    /// File offset of the first byte: `addr - p_vaddr + p_offset` of the
    /// executable `PT_LOAD` segment containing `addr`.
    pub offset: FileOffset,
    /// The table the primary name was found in.
    pub source: SymbolSource,
    /// Binding of the primary name.
    pub binding: Binding,
    /// Up to the first 16 bytes of the function read from the file (fewer if
    /// the function or its segment is shorter). See [`classify_entry`] and
    /// [`kernel_rejects`].
    pub entry_bytes: Vec<u8>,
    /// How the kernel handles a uprobe on the first instruction
    /// ([`classify_entry_at`] of `entry_bytes` and `addr`).
    pub entry_kind: EntryKind,
}

impl Function {
    /// `true` if `addr` is inside `[self.addr, self.addr + self.size)`.
    pub fn contains(&self, addr: Addr) -> bool {
        addr >= self.addr && addr - self.addr < self.size
    }
}

/// Counts of function symbols not turned into [`Function`]s, by reason.
/// A symbol present in both `.symtab` and `.dynsym` is counted once.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize,
)]
pub struct SkipCounts {
    /// Undefined `STT_FUNC` symbols: functions imported from other objects.
    pub undefined: u64,
    /// `STT_GNU_IFUNC` symbols: resolvers run by the loader, not the
    /// implementation that ends up being called.
    pub ifunc: u64,
    /// Symbols of size 0 (hand-written assembly labels, linker stubs...).
    pub zero_size: u64,
    /// Symbols whose address is not inside the file-backed part of an
    /// executable `PT_LOAD` segment, so they have no file offset to probe.
    pub not_executable: u64,
    /// PLT stubs (`*@plt`, symbols in `.plt`, `.plt.sec`, `.plt.got`, `.iplt`).
    pub plt: u64,
    /// Other names at an address that already has a function (aliases):
    /// they are in [`Function::aliases`], not lost.
    pub duplicate_address: u64,
    /// Symbols with a name that cannot be read (offset out of the string
    /// table, unterminated string).
    pub bad_name: u64,
}

impl SkipCounts {
    /// Total of all counts.
    pub fn total(&self) -> u64 {
        self.undefined
            + self.ifunc
            + self.zero_size
            + self.not_executable
            + self.plt
            + self.duplicate_address
            + self.bad_name
    }
}

/// What kind of ELF file this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum ElfKind {
    /// `ET_EXEC`: a position-dependent executable, loaded at its addresses.
    Exec,
    /// `ET_DYN` with `DF_1_PIE` (or with an interpreter and no `DT_SONAME`):
    /// a position-independent executable.
    Pie,
    /// `ET_DYN` otherwise: a shared library.
    SharedLib,
}

/// Everything perfgate needs from one ELF file.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ElfFile {
    /// The path the file was read from, as given.
    pub path: PathBuf,
    /// Hex of the `NT_GNU_BUILD_ID` note, if any.
    pub build_id: Option<String>,
    /// Executable, PIE or shared library.
    pub kind: ElfKind,
    /// Architecture name; always `x86-64` (anything else is an error).
    pub machine: String,
    /// `e_entry`, the entry point address (0 for most libraries).
    pub entry: Addr,
    /// `true` if the file has a `.symtab` with at least one symbol; `false`
    /// for stripped files (only exported functions are then visible): the
    /// caller should warn.
    pub has_symtab: bool,
    /// `true` if the file has a non-empty `.dynsym`.
    pub has_dynsym: bool,
    /// `DT_SONAME`, if any.
    pub soname: Option<String>,
    /// `DT_NEEDED` entries in order.
    pub needed: Vec<String>,
    /// `DT_RPATH`, raw (no `$ORIGIN` expansion), split on `:`.
    pub rpath: Vec<String>,
    /// `DT_RUNPATH`, raw (no `$ORIGIN` expansion), split on `:`.
    pub runpath: Vec<String>,
    /// `DT_FLAGS_1` contains `DF_1_NODEFLIB`: the loader skips
    /// `ld.so.cache` and the default directories for this object's needs.
    pub nodeflib: bool,
    /// `PT_INTERP`, the program interpreter, e.g. `/lib64/ld-linux-x86-64.so.2`.
    pub interp: Option<String>,
    /// The functions, sorted by address, one per address.
    pub functions: Vec<Function>,
    /// Function symbols not turned into functions, by reason.
    pub skipped: SkipCounts,
}

impl ElfFile {
    /// `true` for `ET_DYN` files (PIE executables and shared libraries).
    pub fn is_shared_object(&self) -> bool {
        matches!(self.kind, ElfKind::Pie | ElfKind::SharedLib)
    }

    /// The function whose `[addr, addr + size)` contains `addr`, if any
    /// (the one with the highest start address when functions overlap).
    pub fn function_containing(&self, addr: Addr) -> Option<&Function> {
        let idx = self.functions.partition_point(|f| f.addr <= addr);
        let f = self.functions.get(idx.checked_sub(1)?)?;
        f.contains(addr).then_some(f)
    }

    /// The function at exactly `offset`, if any.
    pub fn function_at_offset(&self, offset: FileOffset) -> Option<&Function> {
        self.functions.iter().find(|f| f.offset == offset)
    }
}

/// Reads an x86-64 ELF executable or shared library.
///
/// Functions are the defined `STT_FUNC` symbols of size > 0 from `.symtab`
/// and `.dynsym` that lie in the file-backed part of an executable `PT_LOAD`
/// segment, minus PLT stubs and ifunc resolvers; several names at one address
/// make one [`Function`] (see [`Function::aliases`]).
///
/// # Errors
///
/// [`ElfError::NotElf`] if the file is not ELF, [`ElfError::WrongArch`] if it
/// is not 64-bit little-endian x86-64, [`ElfError::UnsupportedType`] for
/// object files and core dumps, [`ElfError::Malformed`] if its structure is
/// broken, [`ElfError::Io`] / [`ElfError::NotRegularFile`] if it can't be read.
pub fn read_elf(path: &Path) -> Result<ElfFile, ElfError> {
    let src = reader::Source::open(path)?;
    let parsed = reader::Parsed::parse(&src)?;
    let symbols = symbols::collect(&src, &parsed)?;
    let dynamic = parsed.dynamic_info(&src)?;
    Ok(ElfFile {
        path: path.to_path_buf(),
        build_id: parsed.build_id(&src),
        kind: parsed.kind(&dynamic),
        machine: "x86-64".to_string(),
        entry: parsed.header.entry,
        has_symtab: symbols.has_symtab,
        has_dynsym: symbols.has_dynsym,
        soname: dynamic.soname,
        needed: dynamic.needed,
        rpath: dynamic.rpath,
        runpath: dynamic.runpath,
        nodeflib: dynamic.nodeflib,
        interp: parsed.interp(&src)?,
        functions: symbols.functions,
        skipped: symbols.skipped,
    })
}

/// The dynamic-linking facts of a file without its symbols: cheaper than
/// [`read_elf`], used to walk library dependencies.
pub(crate) fn read_dynamic(path: &Path) -> Result<reader::DynamicInfo, ElfError> {
    let src = reader::Source::open(path)?;
    let parsed = reader::Parsed::parse(&src)?;
    parsed.dynamic_info(&src)
}

/// Checks that `path` is a regular file holding a 64-bit little-endian
/// x86-64 ELF header (what `ld.so` checks before using a candidate).
pub(crate) fn check_x86_64(path: &Path) -> Result<(), ElfError> {
    let src = reader::Source::open(path)?;
    reader::Header::parse(&src).map(|_| ())
}

/// The address of the dynamic symbol `name` in the file at `path` (`None` when it has no such symbol).
pub fn dynamic_symbol_address(path: &Path, name: &str) -> Result<Option<Addr>, ElfError> {
    use object::{Object, ObjectSymbol};
    // The loader is small; anything larger than this is not one.
    const MAX: u64 = 64 << 20;
    let io = |source| ElfError::Io {
        path: path.to_path_buf(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(io)?;
    if !meta.is_file() {
        return Err(ElfError::NotRegularFile {
            path: path.to_path_buf(),
        });
    }
    if meta.len() > MAX {
        return Ok(None);
    }
    let data = std::fs::read(path).map_err(io)?;
    let file = object::File::parse(&*data).map_err(|e| ElfError::Malformed {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    Ok(file
        .dynamic_symbols()
        .find(|s| s.name() == Ok(name))
        .map(|s| s.address()))
}

#[cfg(test)]
mod tests {
    use super::testutil::{build_prog, cc, patch_to_aarch64, run, system_libc, Scratch};
    use super::*;

    fn func<'a>(elf: &'a ElfFile, name: &str) -> &'a Function {
        elf.functions
            .iter()
            .find(|f| f.name == name)
            .unwrap_or_else(|| panic!("{name} not found"))
    }

    fn has(elf: &ElfFile, name: &str) -> bool {
        elf.functions
            .iter()
            .any(|f| f.name == name || f.raw_name == name || f.aliases.iter().any(|a| a == name))
    }

    /// The bytes of `f` found through its section (not its segment).
    fn bytes_via_section(path: &Path, f: &Function) -> Vec<u8> {
        let src = reader::Source::open(path).unwrap();
        let parsed = reader::Parsed::parse(&src).unwrap();
        let sec = parsed
            .sections
            .iter()
            .find(|s| {
                s.sh_type != reader::SHT_NOBITS
                    && s.addr != 0
                    && f.addr >= s.addr
                    && f.addr < s.addr + s.size
            })
            .expect("section containing the function");
        let data = std::fs::read(path).unwrap();
        let start = (sec.offset + (f.addr - sec.addr)) as usize;
        let n = f.size.min(16) as usize;
        data[start..start + n].to_vec()
    }

    #[test]
    fn finds_functions_with_size_offset_and_entry_bytes() {
        let s = Scratch::new("funcs");
        let (prog, _) = build_prog(&s);
        let elf = read_elf(&prog).unwrap();
        assert!(elf.has_symtab);
        assert!(elf.has_dynsym);
        assert_eq!(elf.kind, ElfKind::Pie);
        assert!(elf.is_shared_object());
        assert_eq!(elf.machine, "x86-64");
        assert_eq!(elf.needed, vec!["libc.so.6".to_string()]);
        assert!(elf
            .interp
            .as_deref()
            .unwrap()
            .contains("ld-linux-x86-64.so.2"));
        assert_eq!(elf.build_id.as_ref().map(String::len), Some(40));

        let k = func(&elf, "known_size");
        assert_eq!(k.size, 4);
        assert_eq!(k.entry_bytes, vec![0x90, 0x90, 0x90, 0xc3]);
        assert_eq!(k.entry_kind, EntryKind::Emulated);
        assert_eq!(k.source, SymbolSource::Symtab);
        assert_eq!(k.binding, Binding::Global);
        assert!(k.aliases.is_empty());

        let n = func(&elf, "known_nop5");
        assert_eq!(n.size, 6);
        assert_eq!(n.entry_bytes, vec![0x0f, 0x1f, 0x44, 0x00, 0x00, 0xc3]);
        assert_eq!(n.entry_kind, EntryKind::Nop5);
        assert_eq!(func(&elf, "known_endbr").entry_kind, EntryKind::SingleStep);
        assert_eq!(func(&elf, "known_endbr").size, 5);
        assert_eq!(func(&elf, "known_push").entry_kind, EntryKind::Emulated);

        let helper = func(&elf, "helper");
        assert_eq!(helper.binding, Binding::Local);
        assert!(func(&elf, "compute").size > 4);
        assert_eq!(func(&elf, "weak_fn").binding, Binding::Weak);
        assert!(has(&elf, "main"));

        // Offsets: the bytes at the file offset are the bytes at the address
        // according to the section headers, for every function.
        let file = std::fs::read(&prog).unwrap();
        for f in &elf.functions {
            let n = f.size.min(16) as usize;
            let at_offset = &file[f.offset.0 as usize..f.offset.0 as usize + n];
            assert_eq!(at_offset, &bytes_via_section(&prog, f)[..], "{}", f.name);
            assert_eq!(at_offset, &f.entry_bytes[..], "{}", f.name);
        }
        // Sorted by address, one function per address.
        assert!(elf.functions.windows(2).all(|w| w[0].addr < w[1].addr));
        assert_eq!(
            elf.function_containing(k.addr + 3).map(|f| &f.name),
            Some(&k.name)
        );
        assert!(elf
            .function_containing(k.addr + 4)
            .is_none_or(|f| f.name != k.name));
        assert_eq!(
            elf.function_at_offset(k.offset).map(|f| &f.name),
            Some(&k.name)
        );
    }

    #[test]
    fn aliases_are_merged_under_one_name() {
        let s = Scratch::new("alias");
        let (prog, _) = build_prog(&s);
        let elf = read_elf(&prog).unwrap();
        let f = func(&elf, "real_impl");
        assert_eq!(
            f.aliases,
            vec!["alias_name", "another_alias", "__underscored_alias"]
        );
        assert!(!elf.functions.iter().any(|g| g.name == "alias_name"));
        assert!(elf.skipped.duplicate_address >= 3);
    }

    #[test]
    fn plt_imports_ifuncs_and_odd_symbols_are_skipped() {
        let s = Scratch::new("skip");
        let (prog, _) = build_prog(&s);
        let elf = read_elf(&prog).unwrap();
        for name in [
            "printf",
            "puts",
            "fast",
            "zero_sized",
            "data_func",
            "fake_plt",
        ] {
            assert!(!has(&elf, name), "{name} should not be a function");
        }
        assert!(elf.functions.iter().all(|f| !f.raw_name.ends_with("@plt")));
        // The ifunc resolver itself is an ordinary (local) function.
        assert!(has(&elf, "resolve_fast"));
        let k = elf.skipped;
        assert!(k.undefined >= 2, "{k:?}"); // printf, puts (+ __libc_start_main...)
        assert!(k.ifunc >= 1, "{k:?}");
        assert!(k.zero_size >= 1, "{k:?}");
        assert!(k.not_executable >= 1, "{k:?}");
        assert!(k.plt >= 1, "{k:?}");
        assert_eq!(k.bad_name, 0);
        assert!(k.total() >= k.undefined + k.plt);
        // No function inside the PLT sections.
        let src = reader::Source::open(&prog).unwrap();
        let parsed = reader::Parsed::parse(&src).unwrap();
        for (i, sec) in parsed.sections.iter().enumerate() {
            let name = parsed.section_name(i).unwrap_or_default();
            if name.starts_with(b".plt") {
                assert!(!elf
                    .functions
                    .iter()
                    .any(|f| f.addr >= sec.addr && f.addr < sec.addr + sec.size));
            }
        }
    }

    #[test]
    fn stripped_binary_keeps_exported_functions() {
        let s = Scratch::new("strip");
        let (prog, stripped) = build_prog(&s);
        let full = read_elf(&prog).unwrap();
        let elf = read_elf(&stripped).unwrap();
        assert!(!elf.has_symtab);
        assert!(elf.has_dynsym);
        let c = func(&elf, "compute");
        assert_eq!(c.source, SymbolSource::Dynsym);
        assert_eq!(c.offset, func(&full, "compute").offset);
        assert_eq!(c.size, func(&full, "compute").size);
        assert!(has(&elf, "known_size"));
        assert!(has(&elf, "main"));
        // Static functions are gone with .symtab.
        assert!(!has(&elf, "helper"));
        assert_eq!(func(&elf, "real_impl").aliases.len(), 3);
        assert_eq!(elf.build_id, full.build_id);
    }

    #[test]
    fn kinds_soname_and_non_pie() {
        let s = Scratch::new("kinds");
        s.write("lib.c", "int lib_fn(int x) { return x * 2; }\n");
        s.write("main.c", "int main(void) { return 0; }\n");
        cc(
            &s.dir,
            &[
                "-shared",
                "-fPIC",
                "-Wl,-soname,libk.so.1",
                "-o",
                "libk.so",
                "lib.c",
            ],
        );
        cc(&s.dir, &["-no-pie", "-o", "nopie", "main.c"]);
        let lib = read_elf(&s.path("libk.so")).unwrap();
        assert_eq!(lib.kind, ElfKind::SharedLib);
        assert_eq!(lib.soname.as_deref(), Some("libk.so.1"));
        assert_eq!(lib.interp, None);
        assert!(has(&lib, "lib_fn"));
        let exe = read_elf(&s.path("nopie")).unwrap();
        assert_eq!(exe.kind, ElfKind::Exec);
        assert!(!exe.is_shared_object());
        assert!(func(&exe, "main").addr >= 0x400000);
    }

    #[test]
    fn cpp_names_are_demangled_and_constructors_merged() {
        let s = Scratch::new("cpp");
        s.write(
            "shapes.cpp",
            r#"
namespace shapes {
struct Circle {
    double r;
    explicit Circle(double radius);
    double area() const;
};
Circle::Circle(double radius) : r(radius) {}
double Circle::area() const { return 3.14159 * r * r; }
template <typename T> __attribute__((noinline)) T twice(T x) { return x + x; }
template int twice<int>(int);
}
int main(int argc, char**) { shapes::Circle c(argc); return (int)c.area() + shapes::twice(argc); }
"#,
        );
        run(&s.dir, "c++", &["-O1", "-o", "shapes", "shapes.cpp"]);
        let elf = read_elf(&s.path("shapes")).unwrap();
        let area = func(&elf, "shapes::Circle::area() const");
        assert_eq!(area.raw_name, "_ZNK6shapes6Circle4areaEv");
        let ctor = func(&elf, "shapes::Circle::Circle(double)");
        // GCC emits the complete (C1) constructor as an alias of the base (C2) one.
        assert_eq!(ctor.raw_name, "_ZN6shapes6CircleC1Ed");
        assert_eq!(ctor.aliases, vec!["_ZN6shapes6CircleC2Ed".to_string()]);
        assert!(has(&elf, "int shapes::twice<int>(int)"));
    }

    #[test]
    fn errors_name_the_file_and_the_problem() {
        let s = Scratch::new("errors");
        let (prog, _) = build_prog(&s);

        let text = s.write("text.txt", "hello, not an ELF file\n");
        let e = read_elf(&text).unwrap_err();
        assert!(matches!(e, ElfError::NotElf { .. }), "{e}");
        assert_eq!(
            e.to_string(),
            format!("{}: not an ELF file", text.display())
        );
        assert_eq!(e.path(), text);

        let empty = s.write("empty", "");
        assert!(matches!(read_elf(&empty), Err(ElfError::NotElf { .. })));

        let arm = s.path("arm");
        patch_to_aarch64(&prog, &arm);
        let e = read_elf(&arm).unwrap_err();
        match &e {
            ElfError::WrongArch { machine, .. } => assert_eq!(machine, "AArch64"),
            other => panic!("{other}"),
        }
        assert_eq!(
            e.to_string(),
            format!(
                "{}: ELF for AArch64, perfgate traces x86-64 binaries",
                arm.display()
            )
        );

        let data = std::fs::read(&prog).unwrap();
        let truncated = s.path("truncated");
        std::fs::write(&truncated, &data[..data.len() / 2]).unwrap();
        let e = read_elf(&truncated).unwrap_err();
        assert!(matches!(e, ElfError::Malformed { .. }), "{e}");
        assert!(e
            .to_string()
            .starts_with(&format!("{}: malformed ELF: ", truncated.display())));
        assert!(!e.to_string().contains('\n'));

        let header_only = s.path("header-only");
        std::fs::write(&header_only, &data[..40]).unwrap();
        assert!(matches!(
            read_elf(&header_only),
            Err(ElfError::Malformed { .. })
        ));

        let mut x32 = data.clone();
        x32[4] = 1; // ELFCLASS32
        let x32_path = s.path("x32");
        std::fs::write(&x32_path, &x32).unwrap();
        assert!(matches!(
            read_elf(&x32_path),
            Err(ElfError::WrongArch { .. })
        ));

        s.write("obj.c", "int f(void) { return 1; }\n");
        cc(&s.dir, &["-c", "-o", "obj.o", "obj.c"]);
        let e = read_elf(&s.path("obj.o")).unwrap_err();
        assert!(matches!(e, ElfError::UnsupportedType { .. }), "{e}");
        assert!(e.to_string().contains("ET_REL"));

        assert!(matches!(
            read_elf(&s.dir),
            Err(ElfError::NotRegularFile { .. })
        ));
        let missing = s.path("does-not-exist");
        let e = read_elf(&missing).unwrap_err();
        assert!(matches!(e, ElfError::Io { .. }));
        assert!(e.to_string().starts_with(&missing.display().to_string()));
    }

    /// Truncations and corruptions of a real binary: errors or results, never
    /// a panic (the test would abort) or a huge allocation.
    #[test]
    fn hostile_files_never_panic() {
        let s = Scratch::new("hostile");
        let (prog, stripped) = build_prog(&s);
        let victim = s.path("victim");
        for original in [prog, stripped] {
            let data = std::fs::read(&original).unwrap();
            // Truncations.
            let mut len = 0;
            while len < data.len() {
                std::fs::write(&victim, &data[..len]).unwrap();
                let _ = read_elf(&victim);
                len += if len < 128 { 1 } else { 997 };
            }
            // Header fields and table entries set to extreme values.
            let shoff = u64::from_le_bytes(data[40..48].try_into().unwrap()) as usize;
            let phoff = u64::from_le_bytes(data[32..40].try_into().unwrap()) as usize;
            let mut positions: Vec<usize> = (16..64).collect();
            positions.extend((phoff..phoff + 56 * 13).step_by(3));
            positions.extend((shoff..data.len()).step_by(5));
            for &pos in &positions {
                for value in [0x00u8, 0x7f, 0xff] {
                    let mut bad = data.clone();
                    if pos >= bad.len() {
                        continue;
                    }
                    bad[pos] = value;
                    // Make some positions 8 bytes of 0xff (huge u64).
                    if value == 0xff && pos + 8 <= bad.len() && pos % 2 == 0 {
                        bad[pos..pos + 8].fill(0xff);
                    }
                    std::fs::write(&victim, &bad).unwrap();
                    let _ = read_elf(&victim);
                    let _ = read_dynamic(&victim);
                }
            }
        }
    }

    #[test]
    fn reads_system_libc_and_ls() {
        let libc = system_libc();
        let elf = read_elf(&libc).unwrap();
        assert_eq!(elf.kind, ElfKind::SharedLib);
        assert_eq!(elf.soname.as_deref(), Some("libc.so.6"));
        assert!(elf.functions.len() > 100, "{}", elf.functions.len());
        let malloc = elf
            .functions
            .iter()
            .find(|f| f.name == "malloc" || f.aliases.iter().any(|a| a == "malloc"))
            .expect("malloc");
        assert!(malloc.size > 0);
        assert!(elf.skipped.ifunc > 0); // memcpy, strlen...
        for f in &elf.functions {
            assert!(!f.entry_bytes.is_empty() && f.entry_bytes.len() <= 16);
            assert!(f.size > 0);
        }
        let ls = read_elf(Path::new("/bin/ls")).unwrap();
        assert!(!ls.needed.is_empty());
        assert!(ls.needed.iter().any(|n| n == "libc.so.6"));
    }

    #[test]
    fn file_offset_display_and_serde() {
        assert_eq!(FileOffset(0x1139).to_string(), "0x1139");
        let f = Function {
            name: "n".into(),
            raw_name: "n".into(),
            aliases: vec![],
            addr: 1,
            size: 2,
            offset: FileOffset(3),
            source: SymbolSource::Dynsym,
            binding: Binding::Global,
            entry_bytes: vec![0x55],
            entry_kind: EntryKind::Emulated,
        };
        assert!(f.contains(1) && f.contains(2) && !f.contains(3) && !f.contains(0));
        fn is_serde<T: serde::Serialize + serde::de::DeserializeOwned>(_: &T) {}
        is_serde(&f);
        is_serde(&SkipCounts::default());
    }
}
