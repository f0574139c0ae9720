//! Reading x86-64 ELF executables and shared libraries: the functions to probe.
//!
//! perfgate attaches one uprobe (through `uprobe_multi`) to the first byte of
//! every function of the benchmark binary and of its shared libraries. This
//! module turns a file on disk into that list:
//!
//! * [`read_elf`] parses an ELF file (x86-64, 64-bit, little endian only) and
//!   returns an [`ElfFile`]: its functions (from `.symtab` and `.dynsym`, and
//!   from a separate debug file when the file is stripped, see [`DebugDirs`])
//!   with the **file offset** of their first byte, what `uprobe_multi` wants,
//!   plus the dynamic-linking facts (`DT_NEEDED`, `DT_RPATH`, `DT_RUNPATH`, ...).
//!   [`read_elf_image`] also keeps the file's code ([`ElfImage::code_of`]) for
//!   decoding whole functions.
//! * [`resolve_libraries`] finds the shared libraries the executable loads,
//!   in the order and with the rules of glibc's `ld.so`.
//! * [`demangle`] turns Rust and C++ symbols into readable names.
//! * [`classify_entry`] tells how expensive a uprobe on a function's first
//!   instruction is on Linux 6.18 (optimised nop, emulated or single-stepped)
//!   and [`kernel_rejects`] whether the kernel refuses it altogether (e.g. a
//!   `lock`-prefixed first instruction, as in glibc's `pthread_spin_lock`):
//!   such offsets make a `uprobe_multi` attach fail and must be left out.
//!
//! ELF structures are read with the `object` crate (`object::read::elf`) over
//! the whole file read into memory (see `file.rs` for why not `ReadCache`).
//!
//! Every file is untrusted input: a truncated, corrupt or hostile file gives
//! an [`ElfError`], never a panic. A file is read only if it is a regular file
//! of at most 4 GiB, once; parsing borrows from those bytes, and what is
//! derived from them (names, demangled names, strings of the dynamic section,
//! decompressed MiniDebugInfo, `ld.so.cache` entries) is capped at a small
//! multiple of the file size. No `unsafe`, no memory mapping (a file truncated
//! while mapped would kill perfgate with `SIGBUS`).
//!
//! Not handled: files without section headers (`sstrip`ped: no functions
//! are found), DWARF (only symbol tables are read, also from debug files),
//! 32-bit and non-x86-64 files.

mod debug;
mod demangle;
mod entry;
mod file;
mod hooks;
mod libs;
pub mod placement;
mod symbols;
#[cfg(test)]
mod testutil;

use std::path::{Path, PathBuf};

pub use debug::{DebugDirs, DebugFile, DebugLookup, DEFAULT_DEBUG_DIR};
pub use demangle::demangle;
pub use entry::{classify_entry, classify_entry_at, kernel_rejects, EntryKind};
pub use hooks::{imported_functions, return_offsets};
pub use libs::{
    parse_ld_library_path, resolve_libraries, supported_hwcaps, LdCache, LdCacheEntry, Library,
    LoaderEnv, Resolution, DEFAULT_DIRS, LD_SO_CACHE,
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
    /// `true` if the file, or the debug file in [`ElfFile::debug_file`], has
    /// a `.symtab` with at least one symbol; `false` for stripped files
    /// without debug file (only exported functions are then visible): the
    /// caller should warn.
    pub has_symtab: bool,
    /// The separate debug file (or MiniDebugInfo) whose `.symtab` gave the
    /// functions; `None` when they come from the file's own tables. Only a
    /// file without its own `.symtab` is looked up (see [`DebugDirs`]).
    pub debug_file: Option<DebugFile>,
    /// Debug files that exist but were not used (another build-id, a wrong
    /// CRC32, unreadable...): one line each, naming the debug file. The
    /// caller should warn: the debug package does not match the installed one.
    pub debug_rejected: Vec<String>,
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
/// make one [`Function`] (see [`Function::aliases`]). A file without `.symtab`
/// takes it from its separate debug file, looked for where gdb looks
/// ([`DebugDirs::from_system`]; see [`ElfFile::debug_file`]).
///
/// # Errors
///
/// [`ElfError::NotElf`] if the file is not ELF, [`ElfError::WrongArch`] if it
/// is not 64-bit little-endian x86-64, [`ElfError::UnsupportedType`] for
/// object files and core dumps, [`ElfError::Malformed`] if its structure is
/// broken, [`ElfError::Io`] / [`ElfError::NotRegularFile`] if it can't be read.
pub fn read_elf(path: &Path) -> Result<ElfFile, ElfError> {
    read_elf_with(path, &DebugDirs::from_system())
}

/// Like [`read_elf`], looking for debug files in `dirs`.
///
/// # Errors
///
/// As [`read_elf`]; a debug file that can't be used is not an error (see
/// [`ElfFile::debug_rejected`]).
pub fn read_elf_with(path: &Path, dirs: &DebugDirs) -> Result<ElfFile, ElfError> {
    read(path, dirs, false).map(|(elf, _)| elf)
}

/// Like [`read_elf_with`], and keeps the file's code for [`ElfImage::code_of`].
///
/// # Errors
///
/// As [`read_elf`].
pub fn read_elf_image(path: &Path, dirs: &DebugDirs) -> Result<(ElfFile, ElfImage), ElfError> {
    let (elf, image) = read(path, dirs, true)?;
    let image = image.unwrap_or_else(|| ElfImage {
        path: path.to_path_buf(),
        segments: Vec::new(),
    });
    Ok((elf, image))
}

/// [`read_elf_with`], with the image when `keep_code`.
fn read(
    path: &Path,
    dirs: &DebugDirs,
    keep_code: bool,
) -> Result<(ElfFile, Option<ElfImage>), ElfError> {
    let bytes = file::read_file(path, file::MAX_FILE_SIZE, false)?;
    let elf = file::Elf::parse(&bytes)?;
    let mut symtab = symbols::read_table(&elf, object::elf::SHT_SYMTAB)?;
    let dynsym = symbols::read_table(&elf, object::elf::SHT_DYNSYM)?;
    let dynamic = elf.dynamic_info()?;
    let interp = elf.interp()?;
    let mut debug_file = None;
    let mut debug_rejected = Vec::new();
    // A file's own .symtab is complete (`strip --strip-debug` keeps it): debug
    // files are only for files stripped of it.
    if !symtab.non_empty {
        if let Some(found) = debug::find(&elf, dirs, &mut debug_rejected) {
            symtab = found.symtab;
            debug_file = Some(found.file);
        }
    }
    let (has_symtab, has_dynsym) = (symtab.non_empty, dynsym.non_empty);
    let symbols = symbols::collect(&elf, symtab, dynsym);
    let image = keep_code.then(|| ElfImage::copy_code(&elf));
    let file = ElfFile {
        path: path.to_path_buf(),
        build_id: elf.build_id().map(file::hex),
        kind: elf.kind(&dynamic),
        machine: "x86-64".to_string(),
        entry: elf.entry(),
        has_symtab,
        debug_file,
        debug_rejected,
        has_dynsym,
        soname: dynamic.soname,
        needed: dynamic.needed,
        rpath: dynamic.rpath,
        runpath: dynamic.runpath,
        nodeflib: dynamic.nodeflib,
        interp,
        functions: symbols.functions,
        skipped: symbols.skipped,
    };
    Ok((file, image))
}

/// Longest code [`ElfImage::code_of`] returns for one function: longer functions are cut (probe
/// placement only needs their start and their branches into it, which a decoder finds in this much).
pub const MAX_CODE_BYTES: u64 = 64 << 10;

/// The code of a file (its executable `PT_LOAD` segments), kept after reading it so that functions can
/// be decoded whole without reading the file again.
///
/// Invariant: at most the file's size is kept (overlapping segments of a hostile file are not copied
/// twice past that), usually much less (no DWARF, no data).
#[derive(Debug, Clone)]
pub struct ElfImage {
    path: PathBuf,
    /// Executable segments sorted by address, with their file-backed bytes.
    segments: Vec<(file::LoadSegment, Vec<u8>)>,
}

impl ElfImage {
    /// Copies the executable segments of `elf`, up to its size in total.
    fn copy_code(elf: &file::Elf) -> ElfImage {
        let mut budget = elf.data.len();
        let mut segments = Vec::new();
        for seg in elf.exec_loads() {
            let bytes = elf.code_at(seg.vaddr, seg.filesz);
            let Some(left) = budget.checked_sub(bytes.len()) else {
                break;
            };
            budget = left;
            let mut kept = *seg;
            kept.filesz = bytes.len() as u64;
            segments.push((kept, bytes.to_vec()));
        }
        ElfImage {
            path: elf.path.to_path_buf(),
            segments,
        }
    }

    /// The file this is the code of.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Up to `len` bytes of code at virtual address `addr`: fewer at the end of its segment, empty if
    /// `addr` is not in the file-backed part of an executable segment.
    pub fn code_at(&self, addr: Addr, len: u64) -> &[u8] {
        let idx = self.segments.partition_point(|(s, _)| s.vaddr <= addr);
        let Some((seg, bytes)) = idx.checked_sub(1).and_then(|i| self.segments.get(i)) else {
            return &[];
        };
        if !seg.contains_file_backed(addr) {
            return &[];
        }
        let start = usize::try_from(addr - seg.vaddr).unwrap_or(usize::MAX);
        let n = usize::try_from(len.min(seg.remaining(addr))).unwrap_or(usize::MAX);
        bytes
            .get(start..start.saturating_add(n).min(bytes.len()))
            .unwrap_or_default()
    }

    /// The code of `f` (a function of this file): `f.size` bytes from its address, at most
    /// [`MAX_CODE_BYTES`], fewer if its segment ends first.
    pub fn code_of(&self, f: &Function) -> &[u8] {
        self.code_at(f.addr, f.size.min(MAX_CODE_BYTES))
    }
}

/// The address of the defined symbol named exactly `name` (of any type: functions and data, e.g. the
/// loader's `_r_debug`), from `.dynsym`, else `.symtab`; `None` if there is none.
///
/// # Errors
///
/// As [`read_elf`].
pub fn symbol_address(path: &Path, name: &str) -> Result<Option<Addr>, ElfError> {
    let bytes = file::read_file(path, file::MAX_FILE_SIZE, false)?;
    let elf = file::Elf::parse(&bytes)?;
    for table in [object::elf::SHT_DYNSYM, object::elf::SHT_SYMTAB] {
        if let Some(addr) = symbols::symbol_address(&elf, table, name.as_bytes())? {
            return Ok(Some(addr));
        }
    }
    Ok(None)
}

/// The dynamic-linking facts of a file without its symbols: cheaper than
/// [`read_elf`], used to walk library dependencies.
pub(crate) fn read_dynamic(path: &Path) -> Result<file::DynamicInfo, ElfError> {
    let bytes = file::read_file(path, file::MAX_FILE_SIZE, false)?;
    file::Elf::parse(&bytes)?.dynamic_info()
}

/// Checks that `path` is a regular file holding a 64-bit little-endian
/// x86-64 ELF header (what `ld.so` checks before using a candidate). Reads
/// only the header.
pub(crate) fn check_x86_64(path: &Path) -> Result<(), ElfError> {
    let prefix = file::read_file(path, file::EHDR_SIZE, true)?;
    file::check_header(path, &prefix.data).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::testutil::{
        build_prog, cc, patch_to_aarch64, peak_allocation, run, system_libc, Scratch,
    };
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

    /// The bytes of `f` found through its section (not its segment), with
    /// `object`'s generic API rather than the program headers `read_elf` uses.
    fn bytes_via_section(path: &Path, f: &Function) -> Vec<u8> {
        use object::{Object, ObjectSection};
        let data = std::fs::read(path).unwrap();
        let file = object::File::parse(&*data).unwrap();
        let sec = file
            .sections()
            .find(|s| {
                s.file_range().is_some()
                    && s.address() != 0
                    && f.addr >= s.address()
                    && f.addr < s.address() + s.size()
            })
            .expect("section containing the function");
        let (offset, _) = sec.file_range().unwrap();
        let start = (offset + (f.addr - sec.address())) as usize;
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
        use object::{Object, ObjectSection};
        let data = std::fs::read(&prog).unwrap();
        let file = object::File::parse(&*data).unwrap();
        let mut plt_sections = 0;
        for sec in file.sections() {
            if sec.name().unwrap_or_default().starts_with(".plt") {
                plt_sections += 1;
                let (start, end) = (sec.address(), sec.address() + sec.size());
                assert!(!elf
                    .functions
                    .iter()
                    .any(|f| f.addr >= start && f.addr < end));
            }
        }
        assert!(plt_sections >= 2, "{plt_sections}"); // .plt, .plt.sec (+ .plt.got)
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

    /// Truncations and corruptions of a real binary: results or one-line
    /// errors naming the file, never a panic (the test would abort), and never
    /// more memory than a small multiple of the file (measured per read).
    #[test]
    fn hostile_files_never_panic() {
        let s = Scratch::new("hostile");
        let (prog, stripped) = build_prog(&s);
        let victim = s.path("victim");
        let mut worst_ratio = 0.0f64;
        let mut check = |len: usize| {
            let (result, peak) = peak_allocation(|| read_elf_image(&victim, &DebugDirs::none()));
            // The file, its code copy, names within their budgets, object's
            // version table (at most 64 Ki entries).
            let bound = 40 * len + (40 << 20);
            assert!(
                peak <= bound,
                "{peak} bytes allocated for a {len}-byte file"
            );
            if len >= 4096 {
                worst_ratio = worst_ratio.max(peak as f64 / len as f64);
            }
            if let Err(e) = result {
                let msg = e.to_string();
                assert!(msg.starts_with(&victim.display().to_string()), "{msg}");
                assert!(!msg.contains('\n'), "{msg}");
            }
            let _ = check_x86_64(&victim);
        };
        for original in [prog, stripped] {
            let data = std::fs::read(&original).unwrap();
            // Truncations.
            let mut len = 0;
            while len < data.len() {
                std::fs::write(&victim, &data[..len]).unwrap();
                check(len);
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
                    check(bad.len());
                    let _ = read_dynamic(&victim);
                }
            }
        }
        println!(
            "hostile files of 4 KiB or more: at most {worst_ratio:.1} bytes allocated per byte"
        );
        // The measure itself measures.
        let (v, peak) = peak_allocation(|| vec![1u8; 1 << 20]);
        assert!(peak >= 1 << 20 && v.len() == 1 << 20);
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
    fn image_gives_whole_functions_and_symbol_addresses() {
        let s = Scratch::new("image");
        s.write(
            "big.c",
            r#"
__asm__(".text\n.globl big_fn\n.type big_fn,@function\nbig_fn:\n .skip 70000, 0x90\n ret\n.size big_fn, .-big_fn\n");
int big_fn(void);
int small_fn(int x) { return x * 7 + 1; }
int counter = 42;
int main(int argc, char **argv) { (void)argv; return argc > 5 ? big_fn() : small_fn(argc) + counter; }
"#,
        );
        cc(&s.dir, &["-O1", "-o", "big", "big.c"]);
        let path = s.path("big");
        let (elf, image) = read_elf_image(&path, &DebugDirs::none()).unwrap();
        assert_eq!(elf, read_elf(&path).unwrap());
        assert_eq!(image.path(), path);
        let data = std::fs::read(&path).unwrap();
        let small = func(&elf, "small_fn");
        let code = image.code_of(small);
        assert_eq!(code.len() as u64, small.size);
        let at = small.offset.0 as usize;
        assert_eq!(code, &data[at..at + code.len()]);
        assert_eq!(&code[..small.entry_bytes.len()], &small.entry_bytes[..]);
        // Longer functions are cut at MAX_CODE_BYTES.
        let big = func(&elf, "big_fn");
        assert_eq!(big.size, 70001);
        let code = image.code_of(big);
        assert_eq!(code.len() as u64, MAX_CODE_BYTES);
        assert!(code.iter().all(|&b| b == 0x90));
        // code_at ignores function boundaries: the ret, then the next function's bytes.
        let tail = image.code_at(big.addr + 70000, 16);
        assert_eq!((tail.len(), tail[0]), (16, 0xc3));
        // Nothing outside the code.
        assert!(image.code_at(0, 16).is_empty());
        assert!(image.code_at(u64::MAX, 16).is_empty());
        // Data symbols are found by name, functions too; imports are not.
        let counter = symbol_address(&path, "counter").unwrap().unwrap();
        assert!(elf.function_containing(counter).is_none());
        assert_eq!(symbol_address(&path, "small_fn").unwrap(), Some(small.addr));
        assert_eq!(symbol_address(&path, "puts").unwrap(), None);
        assert_eq!(symbol_address(&path, "no_such_symbol").unwrap(), None);
        assert!(symbol_address(&s.path("missing"), "x").is_err());
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
