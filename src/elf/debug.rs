//! Separate debug files: the `.symtab` of a stripped file, found the way gdb and perf find it.
//!
//! A file without a `.symtab` (distributions strip it with `strip --strip-unneeded`) shows only its
//! exported functions. Its static functions are often still on the machine, in order:
//!
//! 1. by build-id: `<global>/.build-id/NN/REST.debug` (Debian's `*-dbg`/`*-dbgsym`, Fedora's
//!    `*-debuginfo` packages), `<global>` being `/usr/lib/debug` by default;
//! 2. by `.gnu_debuglink` (a file name and the CRC32 of the debug file): next to the file, in its
//!    `.debug/` folder, and under `<global>/<directory of the file>/`;
//! 3. in a local debuginfod client cache: `<cache>/<BUILDID>/debuginfo` (`$DEBUGINFOD_CACHE_PATH`,
//!    else `~/.debuginfod_client_cache` if it exists, else `$XDG_CACHE_HOME/debuginfod_client` or
//!    `~/.cache/debuginfod_client`). Nothing is ever fetched over the network;
//! 4. MiniDebugInfo (Fedora, RHEL): `.gnu_debugdata` in the file itself, an xz-compressed ELF file holding
//!    a `.symtab` of the functions `.dynsym` lacks.
//!
//! Invariants:
//! * A candidate is used only if its build-id equals the file's (when the file has one; a debuglink
//!   candidate must also match its CRC32; one found by build-id must carry the build-id). Any other
//!   candidate that exists is rejected with a one-line reason naming it, so the caller can warn; a
//!   missing candidate is no news.
//! * The debug file's sections are `SHT_NOBITS`: only its `.symtab`, `.strtab` and section names are read.
//!   Its symbols carry the addresses of the original file, whose `PT_LOAD` segments give the offsets.
//! * Reads are bounded like every other ELF read ([`MAX_FILE_SIZE`]); the xz data is decompressed with
//!   liblzma's memory limit and its output capped at [`MAX_MINI_DEBUGINFO`] and 100 times its size.

use std::io::Read;
use std::path::{Path, PathBuf};

use object::elf;
use object::read::elf::SectionHeader;

use super::file::{hex, read_file, Elf, MAX_FILE_SIZE};
use super::symbols::{read_table, Table};

/// `/usr/lib/debug`, where distributions install debug files.
pub const DEFAULT_DEBUG_DIR: &str = "/usr/lib/debug";
/// Decompressed MiniDebugInfo larger than this is refused. Fedora's largest (a browser engine) holds a
/// few MiB of symbols.
const MAX_MINI_DEBUGINFO: u64 = 128 << 20;
/// Largest expansion of MiniDebugInfo accepted: symbol tables compress about 5 to 10 times.
const MAX_MINI_RATIO: u64 = 100;
/// Memory liblzma may use to decode (`xz -9` needs 65 MiB).
const XZ_MEMLIMIT: u64 = 96 << 20;
/// `.gnu_debuglink` names longer than this are ignored (`NAME_MAX`).
const MAX_LINK_NAME: usize = 255;

/// Where separate debug files are looked for. [`DebugDirs::from_system`] is what gdb and perf use on a
/// default installation; tests and unusual layouts give their own.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DebugDirs {
    /// Global debug directories (gdb's `debug-file-directory`), searched by build-id
    /// (`.build-id/NN/REST.debug`) and for `.gnu_debuglink` names (`<dir>/<directory of the file>/`).
    pub global: Vec<PathBuf>,
    /// Local debuginfod client caches, searched for `<BUILDID>/debuginfo`.
    pub debuginfod_caches: Vec<PathBuf>,
    /// Look next to the file and in its `.debug/` folder for its `.gnu_debuglink` name.
    pub next_to_file: bool,
    /// Read MiniDebugInfo (`.gnu_debugdata`) when no separate debug file is found.
    pub mini_debuginfo: bool,
}

impl DebugDirs {
    /// No debug files at all: only the file's own tables.
    pub fn none() -> DebugDirs {
        DebugDirs {
            global: Vec::new(),
            debuginfod_caches: Vec::new(),
            next_to_file: false,
            mini_debuginfo: false,
        }
    }

    /// `/usr/lib/debug`, this user's debuginfod client cache (as `libdebuginfod` chooses it), next to
    /// the file, MiniDebugInfo.
    pub fn from_system() -> DebugDirs {
        let env = |name| {
            std::env::var_os(name)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        let cache = env("DEBUGINFOD_CACHE_PATH").or_else(|| {
            let home = env("HOME");
            let legacy = home.as_ref().map(|h| h.join(".debuginfod_client_cache"));
            match legacy {
                Some(l) if l.is_dir() => Some(l),
                _ => env("XDG_CACHE_HOME")
                    .or_else(|| home.map(|h| h.join(".cache")))
                    .map(|c| c.join("debuginfod_client")),
            }
        });
        DebugDirs {
            global: vec![PathBuf::from(DEFAULT_DEBUG_DIR)],
            debuginfod_caches: cache.into_iter().collect(),
            next_to_file: true,
            mini_debuginfo: true,
        }
    }
}

impl Default for DebugDirs {
    fn default() -> Self {
        DebugDirs::from_system()
    }
}

/// How a debug file was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum DebugLookup {
    /// `<global>/.build-id/NN/REST.debug`.
    BuildIdDir,
    /// The `.gnu_debuglink` name, CRC32 checked.
    Debuglink,
    /// A debuginfod client cache (`<cache>/<BUILDID>/debuginfo`).
    Debuginfod,
    /// The file's own `.gnu_debugdata` section (MiniDebugInfo).
    MiniDebugInfo,
}

/// The debug file whose `.symtab` gave a file's functions.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DebugFile {
    /// Its path; for MiniDebugInfo, the path of the file itself.
    pub path: PathBuf,
    /// How it was found.
    pub found_by: DebugLookup,
}

/// The `.symtab` of an accepted debug file.
pub(crate) struct DebugSymbols {
    pub(crate) symtab: Table,
    pub(crate) file: DebugFile,
}

/// One place a debug file may be.
struct Candidate {
    path: PathBuf,
    found_by: DebugLookup,
    /// The CRC32 a `.gnu_debuglink` names.
    crc: Option<u32>,
}

/// The places to look for the debug file of `file`, in gdb's order.
fn candidates(file: &Elf, dirs: &DebugDirs) -> Vec<Candidate> {
    let mut out = Vec::new();
    let build_id = file.build_id().map(hex);
    if let Some(id) = build_id.as_deref().filter(|id| id.len() > 2) {
        let (head, rest) = id.split_at(2);
        for g in &dirs.global {
            out.push(Candidate {
                path: g.join(".build-id").join(head).join(format!("{rest}.debug")),
                found_by: DebugLookup::BuildIdDir,
                crc: None,
            });
        }
    }
    if let Some((name, crc)) = file.debuglink() {
        let name = String::from_utf8_lossy(name);
        // A plain file name: the link names a file in the directories below, nothing else.
        let plain = !name.is_empty() && name.len() <= MAX_LINK_NAME && !name.contains('/');
        let dir = std::fs::canonicalize(file.path)
            .ok()
            .and_then(|p| p.parent().map(Path::to_path_buf))
            .or_else(|| file.path.parent().map(Path::to_path_buf));
        if let (true, Some(dir)) = (plain, dir) {
            let mut places = Vec::new();
            if dirs.next_to_file {
                places.push(dir.join(&*name));
                places.push(dir.join(".debug").join(&*name));
            }
            let relative = dir.strip_prefix("/").unwrap_or(&dir);
            for g in &dirs.global {
                places.push(g.join(relative).join(&*name));
            }
            out.extend(places.into_iter().map(|path| Candidate {
                path,
                found_by: DebugLookup::Debuglink,
                crc: Some(crc),
            }));
        }
    }
    if let Some(id) = &build_id {
        for c in &dirs.debuginfod_caches {
            out.push(Candidate {
                path: c.join(id).join("debuginfo"),
                found_by: DebugLookup::Debuginfod,
                crc: None,
            });
        }
    }
    out
}

/// Checks a debug file against the file it is meant for and reads its `.symtab`; `Err` says why not.
fn verify(
    debug: &Elf,
    want_id: Option<&[u8]>,
    found_by: DebugLookup,
    crc: Option<(u32, u32)>,
) -> Result<Table, Why> {
    if let Some((want, got)) = crc {
        if want != got {
            return Err(Why::Words(format!(
                "CRC32 {got:08x}, but .gnu_debuglink names {want:08x}"
            )));
        }
    }
    match (want_id, debug.build_id()) {
        (Some(want), Some(got)) if want != got => {
            return Err(Why::Words(format!(
                "build-id {}, expected {}",
                hex(got),
                hex(want)
            )));
        }
        // Found by build-id, the build-id is the only evidence (a debuglink has its CRC, MiniDebugInfo
        // is inside the file).
        (Some(want), None)
            if matches!(found_by, DebugLookup::BuildIdDir | DebugLookup::Debuginfod) =>
        {
            return Err(Why::Words(format!("no build-id, expected {}", hex(want))));
        }
        _ => {}
    }
    let symtab = read_table(debug, elf::SHT_SYMTAB).map_err(Why::Error)?;
    if !symtab.non_empty {
        return Err(Why::Words("no .symtab".to_string()));
    }
    Ok(symtab)
}

/// `true` if `a` and `b` are the same file.
fn same_file(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(x), Ok(y)) => x.dev() == y.dev() && x.ino() == y.ino(),
        _ => false,
    }
}

/// One line saying why `candidate` is not used: `why` in a few words, or an [`super::ElfError`]'s
/// message (which starts with the candidate's path already).
fn rejection(candidate: &Path, file: &Path, why: Why) -> String {
    let what = format!("not used as the debug file of {}", file.display());
    match why {
        Why::Words(w) => format!("{}: {w} ({what})", candidate.display()),
        Why::Error(e) => format!("{e} ({what})"),
    }
}

/// Why a candidate is not used.
enum Why {
    Words(String),
    Error(super::ElfError),
}

/// Finds and reads the debug symbols of `file`, which has no `.symtab` of its own. Candidates that exist
/// but don't fit are added to `rejected`, one line each naming the candidate.
pub(crate) fn find(
    file: &Elf,
    dirs: &DebugDirs,
    rejected: &mut Vec<String>,
) -> Option<DebugSymbols> {
    let want_id = file.build_id();
    for c in candidates(file, dirs) {
        if !c.path.exists() || same_file(&c.path, file.path) {
            continue;
        }
        let bytes = match read_file(&c.path, MAX_FILE_SIZE, false) {
            Ok(b) => b,
            Err(e) => {
                rejected.push(rejection(&c.path, file.path, Why::Error(e)));
                continue;
            }
        };
        let debug = match Elf::parse(&bytes) {
            Ok(d) => d,
            Err(e) => {
                rejected.push(rejection(&c.path, file.path, Why::Error(e)));
                continue;
            }
        };
        let crc = c.crc.map(|want| (want, crc32fast::hash(&bytes.data)));
        match verify(&debug, want_id, c.found_by, crc) {
            Ok(symtab) => {
                return Some(DebugSymbols {
                    symtab,
                    file: DebugFile {
                        path: c.path,
                        found_by: c.found_by,
                    },
                })
            }
            Err(why) => rejected.push(rejection(&c.path, file.path, why)),
        }
    }
    if !dirs.mini_debuginfo {
        return None;
    }
    let label = PathBuf::from(format!("{} [.gnu_debugdata]", file.path.display()));
    match mini_debuginfo(file, &label) {
        Ok(Some(symtab)) => Some(DebugSymbols {
            symtab,
            file: DebugFile {
                path: file.path.to_path_buf(),
                found_by: DebugLookup::MiniDebugInfo,
            },
        }),
        Ok(None) => None,
        Err(why) => {
            rejected.push(rejection(&label, file.path, why));
            None
        }
    }
}

/// Reads the `.symtab` of the xz-compressed ELF file in `.gnu_debugdata`; `Ok(None)` if there is none.
fn mini_debuginfo(file: &Elf, label: &Path) -> Result<Option<Table>, Why> {
    let Some(section) = file.section_by_name(b".gnu_debugdata") else {
        return Ok(None);
    };
    let compressed = section
        .data(file.endian, file.data)
        .map_err(|e| Why::Words(e.to_string()))?;
    let limit = MAX_MINI_DEBUGINFO.min((compressed.len() as u64).saturating_mul(MAX_MINI_RATIO));
    let bytes = unxz(compressed, limit).map_err(Why::Words)?;
    let mini = Elf::parse_bytes(label, &bytes).map_err(Why::Error)?;
    // Embedded in the file itself: a build-id, if the mini file has one, must still agree.
    verify(&mini, file.build_id(), DebugLookup::MiniDebugInfo, None).map(Some)
}

/// Decompresses one xz stream, at most `limit` bytes of output.
pub(crate) fn unxz(compressed: &[u8], limit: u64) -> Result<Vec<u8>, String> {
    let stream = xz2::stream::Stream::new_stream_decoder(XZ_MEMLIMIT, 0)
        .map_err(|e| format!("xz decoder: {e}"))?;
    let decoder = xz2::read::XzDecoder::new_stream(compressed, stream);
    let mut out = Vec::new();
    decoder
        .take(limit.saturating_add(1))
        .read_to_end(&mut out)
        .map_err(|e| format!("xz data: {e}"))?;
    if out.len() as u64 > limit {
        return Err(format!("decompresses to more than {limit} bytes"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::super::testutil::{build_prog, cc, run, system_libc, Scratch};
    use super::super::{read_elf, read_elf_with, ElfFile, Function};
    use super::*;

    /// Only the places a test names.
    fn dirs(global: &[&Path], caches: &[&Path], next_to_file: bool) -> DebugDirs {
        DebugDirs {
            global: global.iter().map(|p| p.to_path_buf()).collect(),
            debuginfod_caches: caches.iter().map(|p| p.to_path_buf()).collect(),
            next_to_file,
            mini_debuginfo: false,
        }
    }

    fn has(elf: &ElfFile, name: &str) -> bool {
        elf.functions.iter().any(|f| f.name == name)
    }

    /// `prog` split as distributions do: `prog.debug` (only debug sections
    /// and `.symtab`) and `prog-split` (no `.symtab`, a `.gnu_debuglink`).
    fn split(s: &Scratch) -> (ElfFile, PathBuf, PathBuf) {
        let (prog, _) = build_prog(s);
        let full = read_elf(&prog).unwrap();
        run(
            &s.dir,
            "objcopy",
            &["--only-keep-debug", "prog", "prog.debug"],
        );
        std::fs::copy(&prog, s.path("prog-split")).unwrap();
        run(
            &s.dir,
            "strip",
            &["--strip-debug", "--strip-unneeded", "prog-split"],
        );
        run(
            &s.dir,
            "objcopy",
            &["--add-gnu-debuglink=prog.debug", "prog-split"],
        );
        (full, s.path("prog-split"), s.path("prog.debug"))
    }

    /// The functions of `split` are those of the unstripped file: names,
    /// addresses, sizes, offsets and entry bytes (offsets and bytes from the
    /// stripped file itself, addresses from the debug file).
    fn same_functions(full: &ElfFile, split: &ElfFile) {
        let key = |f: &Function| {
            (
                f.name.clone(),
                f.addr,
                f.size,
                f.offset,
                f.entry_bytes.clone(),
            )
        };
        let a: Vec<_> = full.functions.iter().map(key).collect();
        let b: Vec<_> = split.functions.iter().map(key).collect();
        assert_eq!(a, b);
    }

    #[test]
    fn debuglink_finds_static_functions_again() {
        let s = Scratch::new("debuglink");
        let (full, stripped, debug) = split(&s);
        let alone = read_elf_with(&stripped, &DebugDirs::none()).unwrap();
        assert!(!alone.has_symtab && alone.debug_file.is_none());
        assert!(!has(&alone, "helper"));
        assert!(has(&full, "helper"));

        // Next to the file.
        let elf = read_elf_with(&stripped, &dirs(&[], &[], true)).unwrap();
        assert!(elf.has_symtab);
        assert!(elf.debug_rejected.is_empty(), "{:?}", elf.debug_rejected);
        let found = elf.debug_file.as_ref().unwrap();
        assert_eq!(found.found_by, DebugLookup::Debuglink);
        assert_eq!(
            std::fs::canonicalize(&found.path).unwrap(),
            std::fs::canonicalize(&debug).unwrap()
        );
        same_functions(&full, &elf);
        assert_eq!(elf.build_id, full.build_id);
        // What read_elf finds on this machine for it: the same.
        assert_eq!(read_elf(&stripped).unwrap().functions, elf.functions);

        // In its .debug folder.
        std::fs::create_dir_all(s.path(".debug")).unwrap();
        std::fs::rename(&debug, s.path(".debug/prog.debug")).unwrap();
        let elf = read_elf_with(&stripped, &dirs(&[], &[], true)).unwrap();
        assert!(elf
            .debug_file
            .as_ref()
            .unwrap()
            .path
            .ends_with(".debug/prog.debug"));
        assert!(has(&elf, "helper"));

        // Under a global directory, by the file's own directory.
        let root = s.path("root");
        let dir = std::fs::canonicalize(&s.dir).unwrap();
        let under = root.join(dir.strip_prefix("/").unwrap());
        std::fs::create_dir_all(&under).unwrap();
        std::fs::rename(s.path(".debug/prog.debug"), under.join("prog.debug")).unwrap();
        let elf = read_elf_with(&stripped, &dirs(&[&root], &[], false)).unwrap();
        assert_eq!(elf.debug_file.unwrap().path, under.join("prog.debug"));
        same_functions(
            &full,
            &read_elf_with(&stripped, &dirs(&[&root], &[], false)).unwrap(),
        );
    }

    #[test]
    fn build_id_directory_and_debuginfod_cache() {
        let s = Scratch::new("buildid");
        let (full, stripped, debug) = split(&s);
        let id = full.build_id.clone().unwrap();
        let root = s.path("debug-root");
        let at = root.join(".build-id").join(&id[..2]);
        std::fs::create_dir_all(&at).unwrap();
        let target = at.join(format!("{}.debug", &id[2..]));
        std::fs::copy(&debug, &target).unwrap();
        // The debuglink must not be what finds it.
        std::fs::remove_file(&debug).unwrap();
        let elf = read_elf_with(&stripped, &dirs(&[&root], &[], true)).unwrap();
        let found = elf.debug_file.as_ref().unwrap();
        assert_eq!(
            (found.found_by, &found.path),
            (DebugLookup::BuildIdDir, &target)
        );
        same_functions(&full, &elf);

        let cache = s.path("cache");
        std::fs::create_dir_all(cache.join(&id)).unwrap();
        std::fs::rename(&target, cache.join(&id).join("debuginfo")).unwrap();
        let elf = read_elf_with(&stripped, &dirs(&[&root], &[&cache], true)).unwrap();
        assert_eq!(
            elf.debug_file.as_ref().unwrap().found_by,
            DebugLookup::Debuginfod
        );
        same_functions(&full, &elf);
    }

    #[test]
    fn mismatched_debug_files_are_refused_and_reported() {
        let s = Scratch::new("mismatch");
        let (full, stripped, debug) = split(&s);
        let id = full.build_id.clone().unwrap();
        // Another build of the same program: another build-id.
        let other = s.path("other");
        std::fs::create_dir_all(&other).unwrap();
        std::fs::copy(s.path("prog.c"), other.join("prog.c")).unwrap();
        cc(
            &other,
            &[
                "-O1",
                "-fno-inline",
                "-DOTHER_BUILD=1",
                "-Wl,--build-id=0x0123456789abcdef",
                "-o",
                "prog",
                "prog.c",
            ],
        );
        run(
            &other,
            "objcopy",
            &["--only-keep-debug", "prog", "prog.debug"],
        );
        let root = s.path("debug-root");
        let at = root.join(".build-id").join(&id[..2]);
        std::fs::create_dir_all(&at).unwrap();
        let wrong = at.join(format!("{}.debug", &id[2..]));
        std::fs::copy(other.join("prog.debug"), &wrong).unwrap();
        let elf = read_elf_with(&stripped, &dirs(&[&root], &[], false)).unwrap();
        assert!(elf.debug_file.is_none());
        assert!(!has(&elf, "helper"));
        assert_eq!(elf.debug_rejected.len(), 1, "{:?}", elf.debug_rejected);
        let why = &elf.debug_rejected[0];
        assert!(why.starts_with(&wrong.display().to_string()), "{why}");
        assert!(why.contains("build-id 0123456789abcdef, expected"), "{why}");
        assert!(!why.contains('\n'));

        // The right one behind the debuglink is still found, the wrong one
        // reported.
        let elf = read_elf_with(&stripped, &dirs(&[&root], &[], true)).unwrap();
        assert_eq!(
            elf.debug_file.as_ref().unwrap().found_by,
            DebugLookup::Debuglink
        );
        assert_eq!(elf.debug_rejected.len(), 1);
        same_functions(&full, &elf);

        // A debuglink target whose contents changed: wrong CRC32.
        let mut bytes = std::fs::read(&debug).unwrap();
        bytes.push(0);
        std::fs::write(&debug, &bytes).unwrap();
        let elf = read_elf_with(&stripped, &dirs(&[], &[], true)).unwrap();
        assert!(elf.debug_file.is_none() && !has(&elf, "helper"));
        assert!(
            elf.debug_rejected[0].contains("CRC32"),
            "{:?}",
            elf.debug_rejected
        );

        // Not an ELF file, or a truncated one: reported, never an error of
        // the file itself.
        std::fs::write(&wrong, b"not a debug file").unwrap();
        let elf = read_elf_with(&stripped, &dirs(&[&root], &[], false)).unwrap();
        assert!(
            elf.debug_rejected[0].contains("not an ELF file"),
            "{:?}",
            elf.debug_rejected
        );
        let good = std::fs::read(other.join("prog.debug")).unwrap();
        for n in (0..good.len()).step_by(997) {
            std::fs::write(&wrong, &good[..n]).unwrap();
            let elf = read_elf_with(&stripped, &dirs(&[&root], &[], false)).unwrap();
            assert_eq!(elf.debug_rejected.len(), 1);
        }
    }

    /// Fedora's MiniDebugInfo, built as its `find-debuginfo` does: the
    /// functions `.dynsym` lacks, kept in a `.symtab`-only ELF file,
    /// xz-compressed into `.gnu_debugdata` of the stripped file.
    #[test]
    fn mini_debuginfo_gives_the_static_functions() {
        let s = Scratch::new("minidebuginfo");
        let (full, _, _) = split(&s);
        run(
            &s.dir,
            "sh",
            &[
                "-c",
                "set -e
                 cp prog prog-mini
                 strip --strip-all prog-mini
                 nm -D prog --format=posix --defined-only | awk '{ print $1 }' | sort > dynsyms
                 nm prog.debug --format=posix --defined-only | awk '{ if ($2 == \"T\" || $2 == \"t\") print $1 }' | sort > funcsyms
                 comm -13 dynsyms funcsyms > keep_symbols
                 objcopy -S --remove-section .gdb_index --remove-section .comment --keep-symbols=keep_symbols prog.debug mini_debuginfo
                 xz -k mini_debuginfo
                 objcopy --add-section .gnu_debugdata=mini_debuginfo.xz prog-mini",
            ],
        );
        let keep = std::fs::read_to_string(s.path("keep_symbols")).unwrap();
        assert!(keep.lines().any(|l| l == "helper"), "{keep}");
        assert!(!keep.lines().any(|l| l == "compute"), "{keep}");
        let mini = s.path("prog-mini");
        let mut with_mini = dirs(&[], &[], false);
        with_mini.mini_debuginfo = true;
        let elf = read_elf_with(&mini, &with_mini).unwrap();
        assert!(elf.debug_rejected.is_empty(), "{:?}", elf.debug_rejected);
        assert_eq!(
            elf.debug_file,
            Some(DebugFile {
                path: mini.clone(),
                found_by: DebugLookup::MiniDebugInfo
            })
        );
        assert!(elf.has_symtab);
        // Static functions from the mini table, exported ones from .dynsym.
        for name in ["helper", "compute", "real_impl", "known_nop5"] {
            let a = full.functions.iter().find(|f| f.name == name).unwrap();
            let b = elf.functions.iter().find(|f| f.name == name).unwrap();
            assert_eq!(
                (a.addr, a.size, a.offset, &a.entry_bytes),
                (b.addr, b.size, b.offset, &b.entry_bytes),
                "{name}"
            );
        }
        assert!(!has(
            &read_elf_with(&mini, &DebugDirs::none()).unwrap(),
            "helper"
        ));

        // Broken xz data is reported, not fatal.
        let mut bytes = std::fs::read(&mini).unwrap();
        let xz = std::fs::read(s.path("mini_debuginfo.xz")).unwrap();
        let at = bytes.windows(xz.len()).position(|w| w == &xz[..]).unwrap();
        bytes[at + xz.len() / 2] ^= 0x55;
        let broken = s.path("prog-broken");
        std::fs::write(&broken, &bytes).unwrap();
        let elf = read_elf_with(&broken, &with_mini).unwrap();
        assert!(elf.debug_file.is_none());
        assert!(
            elf.debug_rejected[0].contains("[.gnu_debugdata]"),
            "{:?}",
            elf.debug_rejected
        );
    }

    #[test]
    fn xz_output_is_capped() {
        use std::io::Write as _;
        let mut enc = xz2::write::XzEncoder::new(Vec::new(), 6);
        enc.write_all(&vec![0u8; 8 << 20]).unwrap();
        let bomb = enc.finish().unwrap();
        assert!(bomb.len() < 8 << 10, "{}", bomb.len());
        assert_eq!(unxz(&bomb, 8 << 20).unwrap().len(), 8 << 20);
        let e = unxz(&bomb, (bomb.len() as u64) * MAX_MINI_RATIO).unwrap_err();
        assert!(e.contains("more than"), "{e}");
        assert!(unxz(b"not xz at all", 1 << 20).is_err());
        assert!(unxz(&bomb[..bomb.len() / 2], 16 << 20).is_err());
    }

    /// Debian's libc6-dbg (installed by scripts/setup.sh): glibc's internal
    /// allocator functions, absent from the stripped libc.so.6, come from
    /// `/usr/lib/debug/.build-id`.
    #[test]
    fn glibc_internal_functions_from_libc6_dbg() {
        let libc = system_libc();
        let elf = read_elf(&libc).unwrap();
        let found = elf.debug_file.as_ref().unwrap_or_else(|| {
            panic!(
                "no debug file for {} (is libc6-dbg installed? scripts/setup.sh installs it): {:?}",
                libc.display(),
                elf.debug_rejected
            )
        });
        assert_eq!(found.found_by, DebugLookup::BuildIdDir);
        assert!(found.path.starts_with("/usr/lib/debug/.build-id"));
        assert!(elf.has_symtab);
        let alone = read_elf_with(&libc, &DebugDirs::none()).unwrap();
        assert!(!alone.functions.iter().any(|f| f.name == "_int_malloc"));
        let int_malloc = elf
            .functions
            .iter()
            .find(|f| f.name == "_int_malloc")
            .expect("_int_malloc");
        let malloc = elf
            .functions
            .iter()
            .find(|f| f.name == "malloc" || f.aliases.iter().any(|a| a == "malloc"))
            .unwrap();
        // A big function (3.7 KiB in glibc 2.36), in the same code segment as
        // malloc: address and offset differ by the same amount.
        assert!(
            (1000..64 << 10).contains(&int_malloc.size),
            "{int_malloc:?}"
        );
        assert_eq!(
            int_malloc.addr - int_malloc.offset.0,
            malloc.addr - malloc.offset.0
        );
        let data = std::fs::read(&libc).unwrap();
        let at = int_malloc.offset.0 as usize;
        assert_eq!(&data[at..at + 16], &int_malloc.entry_bytes[..]);
        // The exported functions are the same with and without debug file.
        for f in &alone.functions {
            let g = elf.function_containing(f.addr).unwrap();
            assert_eq!((g.addr, g.offset), (f.addr, f.offset), "{}", f.name);
        }
        assert!(elf.functions.len() > alone.functions.len() + 1000);
    }
}
