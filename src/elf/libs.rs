//! Shared library resolution, following glibc's `ld.so` (`elf/dl-load.c`).
//!
//! For each `DT_NEEDED` name, breadth first from the executable:
//!
//! 1. a name containing `/` is used as a path directly (relative paths are
//!    relative to perfgate's working directory);
//! 2. if the object that needs the library has no `DT_RUNPATH`: the
//!    `DT_RPATH` of that object, then of the object that loaded it, and so on
//!    up to the executable (objects that have a `DT_RUNPATH` contribute no
//!    `DT_RPATH`);
//! 3. `LD_LIBRARY_PATH`;
//! 4. the `DT_RUNPATH` of the object that needs the library (only that one:
//!    `DT_RUNPATH` is not inherited);
//! 5. `/etc/ld.so.cache` (x86-64 entries), unless the object has
//!    `DF_1_NODEFLIB`;
//! 6. the default directories, unless `DF_1_NODEFLIB`.
//!
//! A candidate must be a regular file with a 64-bit little-endian x86-64 ELF
//! header; others (wrong architecture, not ELF) are skipped and the search
//! continues, as `ld.so` does for wrong-architecture files.
//!
//! `$ORIGIN` / `${ORIGIN}` expands to the directory of the object whose
//! `DT_RPATH`/`DT_RUNPATH` is being used (for the executable, of its real
//! path after following symlinks, as the kernel reports it to `ld.so`; for
//! libraries, of the path they were found at), `$LIB` to
//! `lib/x86_64-linux-gnu` (Debian/Ubuntu multiarch; Fedora-style systems use
//! `lib64`: an approximation) and `$PLATFORM` to `x86_64`.
//!
//! In every search directory, the `glibc-hwcaps` subdirectories of the
//! x86-64 levels this CPU supports are tried first, best first
//! (`glibc-hwcaps/x86-64-v4`, `-v3`, `-v2`), as glibc >= 2.33 does; in
//! `ld.so.cache`, entries under such subdirectories are preferred the same
//! way ([`LoaderEnv::hwcaps`], [`supported_hwcaps`]).
//!
//! Not modelled: the legacy hwcaps and platform subdirectories of glibc <
//! 2.37 (`tls/`, `x86_64/`, `haswell/`), `LD_PRELOAD` and
//! `/etc/ld.so.preload`, `dlopen()`ed libraries, secure-execution (setuid)
//! restrictions.

use std::collections::{HashSet, VecDeque};
use std::path::{Path, PathBuf};

use super::{check_x86_64, read_dynamic, ElfFile};

/// The default library directories searched last, as on Debian/Ubuntu
/// x86-64 (multiarch first) plus the Fedora/RHEL `lib64` ones.
pub const DEFAULT_DIRS: [&str; 6] = [
    "/lib/x86_64-linux-gnu",
    "/usr/lib/x86_64-linux-gnu",
    "/lib64",
    "/usr/lib64",
    "/lib",
    "/usr/lib",
];

/// Where the system library cache lives.
pub const LD_SO_CACHE: &str = "/etc/ld.so.cache";

/// `ld.so.cache` files larger than this are refused.
const MAX_CACHE_SIZE: u64 = 64 << 20;
/// `FLAG_ELF_LIBC6 | FLAG_X8664_LIB64`: the flags of x86-64 libraries.
const CACHE_FLAGS_X86_64: i32 = 0x0303;
const OLD_MAGIC: &[u8] = b"ld.so-1.7.0";
const NEW_MAGIC: &[u8] = b"glibc-ld.so.cache";
const NEW_VERSION: &[u8] = b"1.1";
/// Size of the new-format header (`struct cache_file_new`).
const NEW_HEADER: usize = 48;
/// Size of a new-format entry (`struct file_entry_new`).
const NEW_ENTRY: usize = 24;
/// Size of an old-format entry (`struct file_entry`).
const OLD_ENTRY: usize = 12;
/// Size of the old-format header (`struct cache_file`).
const OLD_HEADER: usize = 16;

/// Reads a little-endian `u32` of the cache at `off`, `None` if out of bounds.
fn le_u32(b: &[u8], off: usize) -> Option<u32> {
    let end = off.checked_add(4)?;
    b.get(off..end)?.try_into().ok().map(u32::from_le_bytes)
}

/// Reads a little-endian `u64` of the cache at `off`, `None` if out of bounds.
fn le_u64(b: &[u8], off: usize) -> Option<u64> {
    let end = off.checked_add(8)?;
    b.get(off..end)?.try_into().ok().map(u64::from_le_bytes)
}

/// The NUL-terminated string of the cache at `off`, `None` if the offset is
/// out of bounds or the string is not terminated.
fn cstr_at(table: &[u8], off: u64) -> Option<&[u8]> {
    let start = usize::try_from(off).ok()?;
    let rest = table.get(start..)?;
    let len = rest.iter().position(|&b| b == 0)?;
    rest.get(..len)
}

/// One entry of `/etc/ld.so.cache`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LdCacheEntry {
    /// The library name looked up (usually a soname, `libc.so.6`).
    pub key: String,
    /// The path of the library.
    pub path: PathBuf,
    /// `FLAG_*` bits: type (`0x03` = glibc ELF) and architecture
    /// (`0x0300` = x86-64).
    pub flags: i32,
    /// Hardware capabilities; non-zero for `glibc-hwcaps` subdirectories
    /// (`x86-64-v3`...), which `ld.so` only uses on CPUs that support them.
    pub hwcap: u64,
}

/// A parsed `/etc/ld.so.cache` (glibc new format `glibc-ld.so.cache1.1`,
/// possibly preceded by the old `ld.so-1.7.0` format, which is skipped).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LdCache {
    /// Entries in file order.
    pub entries: Vec<LdCacheEntry>,
}

impl LdCache {
    /// Parses the bytes of a cache file. The input is untrusted: every count
    /// and offset is checked, errors say what is wrong.
    ///
    /// # Errors
    ///
    /// A one-line description if the data is not a valid new-format cache.
    pub fn parse(bytes: &[u8]) -> Result<LdCache, String> {
        let mut start = 0usize;
        if bytes.starts_with(OLD_MAGIC) {
            let nlibs = le_u32(bytes, 12).ok_or("truncated old-format header")?;
            let old_len = usize::try_from(nlibs)
                .ok()
                .and_then(|n| n.checked_mul(OLD_ENTRY))
                .and_then(|n| n.checked_add(OLD_HEADER))
                .ok_or("absurd old-format entry count")?;
            // The new format follows, aligned like `struct cache_file_new` (8).
            start = old_len
                .checked_add(7)
                .ok_or("absurd old-format entry count")?
                & !7;
            if start >= bytes.len() {
                return Err("old-format cache only (no glibc-ld.so.cache1.1 part)".to_string());
            }
        }
        let h = bytes.get(start..).ok_or("truncated cache")?;
        if !h.starts_with(NEW_MAGIC) {
            return Err("not a glibc ld.so.cache (bad magic)".to_string());
        }
        if h.get(NEW_MAGIC.len()..NEW_MAGIC.len() + NEW_VERSION.len()) != Some(NEW_VERSION) {
            return Err("unsupported ld.so.cache version (expected 1.1)".to_string());
        }
        let nlibs = le_u32(h, 20).ok_or("truncated header")?;
        let flags = *h.get(28).ok_or("truncated header")?;
        match flags & 3 {
            0 | 2 => {}
            3 => return Err("big-endian ld.so.cache".to_string()),
            _ => return Err("ld.so.cache with invalid endianness flag".to_string()),
        }
        let entries_end = usize::try_from(nlibs)
            .ok()
            .and_then(|n| n.checked_mul(NEW_ENTRY))
            .and_then(|n| n.checked_add(NEW_HEADER))
            .filter(|&end| end <= h.len())
            .ok_or_else(|| format!("{nlibs} entries do not fit in the file"))?;
        let table = h
            .get(NEW_HEADER..entries_end)
            .ok_or("truncated entry table")?;
        let mut entries = Vec::with_capacity(table.len() / NEW_ENTRY);
        // Entries may share strings, but millions of entries pointing at one
        // long string would multiply memory use.
        let mut budget = bytes.len().saturating_mul(4).saturating_add(1 << 20);
        for (i, e) in table.chunks_exact(NEW_ENTRY).enumerate() {
            let (Some(flags), Some(key), Some(value), Some(hwcap)) =
                (le_u32(e, 0), le_u32(e, 4), le_u32(e, 8), le_u64(e, 16))
            else {
                return Err(format!("truncated entry {i}"));
            };
            // String offsets are relative to the start of the new-format header.
            let string = |off: u32| {
                cstr_at(h, u64::from(off))
                    .map(|b| String::from_utf8_lossy(b).into_owned())
                    .ok_or_else(|| format!("entry {i}: string offset {off:#x} out of bounds"))
            };
            let (key, value) = (string(key)?, string(value)?);
            budget = budget
                .checked_sub(key.len().saturating_add(value.len()))
                .ok_or("strings add up to more than 4 times the file size")?;
            entries.push(LdCacheEntry {
                key,
                path: PathBuf::from(value),
                flags: i32::from_ne_bytes(flags.to_ne_bytes()),
                hwcap,
            });
        }
        Ok(LdCache { entries })
    }

    /// Reads and parses a cache file.
    ///
    /// # Errors
    ///
    /// A one-line description naming the file if it can't be read or parsed.
    pub fn load(path: &Path) -> Result<LdCache, String> {
        // Through `files::read_regular`: the file read is the one whose type and size were checked
        // (a FIFO swapped in after a `stat` would block the read forever).
        let bytes = crate::files::read_regular(path, MAX_CACHE_SIZE, "ld.so cache")
            .map_err(|e| format!("{e:#}"))?;
        LdCache::parse(&bytes).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// The x86-64 library cached under `name` as `ld.so` picks it on a CPU
    /// that supports the `glibc-hwcaps` subdirectories `hwcaps` (best first):
    /// an entry in the first of them that has one, else an entry without
    /// hwcaps, else the first entry that is not in an unsupported
    /// `glibc-hwcaps` subdirectory.
    pub fn lookup_hwcaps(&self, name: &str, hwcaps: &[String]) -> Option<&Path> {
        let matching = || {
            self.entries
                .iter()
                .filter(move |e| e.key == name && e.flags == CACHE_FLAGS_X86_64)
        };
        for level in hwcaps {
            if let Some(e) = matching().find(|e| hwcaps_subdir(&e.path) == Some(level.as_str())) {
                return Some(&e.path);
            }
        }
        matching()
            .find(|e| e.hwcap == 0)
            .or_else(|| matching().find(|e| hwcaps_subdir(&e.path).is_none()))
            .map(|e| e.path.as_path())
    }

    /// The x86-64 library cached under `name`: an entry without hwcaps if
    /// there is one, else the first hwcaps entry.
    pub fn lookup(&self, name: &str) -> Option<&Path> {
        let mut matching = self
            .entries
            .iter()
            .filter(|e| e.key == name && e.flags == CACHE_FLAGS_X86_64);
        let first = matching.next()?;
        if first.hwcap == 0 {
            return Some(&first.path);
        }
        let plain = matching.find(|e| e.hwcap == 0).unwrap_or(first);
        Some(&plain.path)
    }
}

/// The `glibc-hwcaps` subdirectory a library path is in (`x86-64-v3` for
/// `/usr/lib/glibc-hwcaps/x86-64-v3/libz.so.1`), if any.
fn hwcaps_subdir(path: &Path) -> Option<&str> {
    let dir = path.parent()?;
    if dir.parent()?.file_name()? != "glibc-hwcaps" {
        return None;
    }
    dir.file_name()?.to_str()
}

/// The `glibc-hwcaps` subdirectories this CPU supports, best first, as
/// glibc's `ld.so` computes them (`sysdeps/x86/get-isa-level.h`):
/// `x86-64-v2` needs CMPXCHG16B, LAHF/SAHF, POPCNT, SSE3, SSE4.1, SSE4.2 and
/// SSSE3; `x86-64-v3` adds AVX, AVX2, BMI1, BMI2, F16C, FMA, LZCNT, MOVBE and
/// XSAVE; `x86-64-v4` adds AVX512F, AVX512BW, AVX512CD, AVX512DQ and
/// AVX512VL. (AVX and AVX-512 count only when the kernel enables their
/// registers, which `is_x86_feature_detected!` checks, as glibc does.)
pub fn supported_hwcaps() -> Vec<String> {
    let mut levels = Vec::new();
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::is_x86_feature_detected as has;
        let v2 = has!("cmpxchg16b")
            && has!("popcnt")
            && has!("sse3")
            && has!("sse4.1")
            && has!("sse4.2")
            && has!("ssse3")
            && lahf_sahf();
        let v3 = v2
            && has!("avx")
            && has!("avx2")
            && has!("bmi1")
            && has!("bmi2")
            && has!("f16c")
            && has!("fma")
            && has!("lzcnt")
            && has!("movbe")
            && has!("xsave");
        let v4 = v3
            && has!("avx512f")
            && has!("avx512bw")
            && has!("avx512cd")
            && has!("avx512dq")
            && has!("avx512vl");
        for (supported, name) in [(v4, "x86-64-v4"), (v3, "x86-64-v3"), (v2, "x86-64-v2")] {
            if supported {
                levels.push(name.to_string());
            }
        }
    }
    levels
}

/// LAHF/SAHF in 64-bit mode (see `sys::cpu_has_lahf_sahf`).
#[cfg(target_arch = "x86_64")]
fn lahf_sahf() -> bool {
    crate::sys::cpu_has_lahf_sahf()
}

/// The dynamic loader's configuration used for library resolution.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LoaderEnv {
    /// `LD_LIBRARY_PATH` entries (empty entries are `.`).
    pub ld_library_path: Vec<PathBuf>,
    /// The parsed `/etc/ld.so.cache`, `None` if absent or unreadable.
    pub ld_so_cache: Option<LdCache>,
    /// Why `ld_so_cache` is `None` when loading it failed.
    pub ld_so_cache_error: Option<String>,
    /// Directories searched last.
    pub default_dirs: Vec<PathBuf>,
    /// `glibc-hwcaps` subdirectories tried first in every search directory
    /// and preferred in the cache, best first (see [`supported_hwcaps`]);
    /// empty: none.
    pub hwcaps: Vec<String>,
}

impl Default for LoaderEnv {
    fn default() -> Self {
        LoaderEnv::new()
    }
}

impl LoaderEnv {
    /// No `LD_LIBRARY_PATH`, no cache, the [`DEFAULT_DIRS`], no
    /// `glibc-hwcaps` subdirectories.
    pub fn new() -> LoaderEnv {
        LoaderEnv {
            ld_library_path: Vec::new(),
            ld_so_cache: None,
            ld_so_cache_error: None,
            default_dirs: DEFAULT_DIRS.iter().map(PathBuf::from).collect(),
            hwcaps: Vec::new(),
        }
    }

    /// This process's `LD_LIBRARY_PATH`, the parsed `/etc/ld.so.cache` (or
    /// why it could not be read, in `ld_so_cache_error`), the
    /// [`DEFAULT_DIRS`] and the `glibc-hwcaps` levels of this CPU.
    pub fn from_system() -> LoaderEnv {
        let mut env = LoaderEnv::new();
        env.hwcaps = supported_hwcaps();
        if let Some(v) = std::env::var_os("LD_LIBRARY_PATH") {
            env.ld_library_path = parse_ld_library_path(&v.to_string_lossy());
        }
        env.load_cache(Path::new(LD_SO_CACHE));
        env
    }

    /// Loads the cache from `path`, recording the error if it fails.
    pub fn load_cache(&mut self, path: &Path) {
        match LdCache::load(path) {
            Ok(c) => {
                self.ld_so_cache = Some(c);
                self.ld_so_cache_error = None;
            }
            Err(e) => {
                self.ld_so_cache = None;
                self.ld_so_cache_error = Some(e);
            }
        }
    }
}

/// Splits an `LD_LIBRARY_PATH` value like `ld.so`: on `:` and `;`, an empty
/// element meaning the current directory; an empty value means no entries.
pub fn parse_ld_library_path(value: &str) -> Vec<PathBuf> {
    if value.is_empty() {
        return Vec::new();
    }
    value
        .split([':', ';'])
        .map(|s| {
            if s.is_empty() {
                PathBuf::from(".")
            } else {
                PathBuf::from(s)
            }
        })
        .collect()
}

/// How a library was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Resolution {
    /// The `DT_NEEDED` name contains a `/` and is used as a path.
    Direct,
    /// A `DT_RPATH` directory (of the needing object or one of its loaders).
    Rpath,
    /// An `LD_LIBRARY_PATH` directory.
    LdLibraryPath,
    /// A `DT_RUNPATH` directory of the needing object.
    Runpath,
    /// `/etc/ld.so.cache`.
    Cache,
    /// One of the default directories.
    DefaultDir,
    /// Not found anywhere (`path` is `None`).
    NotFound,
}

/// One shared library the executable loads (directly or indirectly).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Library {
    /// The `DT_NEEDED` name, e.g. `libc.so.6`.
    pub soname: String,
    /// Where it was found; `None` if not found.
    pub path: Option<PathBuf>,
    /// The `DT_NEEDED` name of the object that needs it first, or the
    /// executable's path for the executable's own needs.
    pub needed_by: String,
    /// How it was found.
    pub how: Resolution,
    /// Candidates that existed but were skipped: wrong architecture or not
    /// ELF.
    pub rejected: Vec<PathBuf>,
    /// 1 for the executable's own `DT_NEEDED`, 2 for theirs, ...
    pub depth: usize,
    /// Set if the library was found but its own dependencies could not be
    /// read (malformed dynamic section...): they are then missing here.
    pub error: Option<String>,
}

/// A loaded object during the walk.
struct Obj {
    /// Display name for `needed_by`.
    name: String,
    /// Directory for `$ORIGIN`.
    origin: Option<PathBuf>,
    rpath: Vec<String>,
    runpath: Vec<String>,
    has_runpath: bool,
    nodeflib: bool,
    needed: Vec<String>,
    /// Index of the object that loaded this one (`None` for the executable).
    loader: Option<usize>,
    depth: usize,
}

/// Expands `$ORIGIN`, `$LIB`, `$PLATFORM` (also `${...}`) in one search path
/// element. `None` if the element uses `$ORIGIN` and the origin is unknown
/// (`ld.so` drops such elements). Unknown `$NAME`s are kept literally.
pub(crate) fn expand_dst(s: &str, origin: Option<&Path>) -> Option<String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(pos) = rest.find('$') {
        out.push_str(rest.get(..pos).unwrap_or_default());
        let after = rest.get(pos + 1..).unwrap_or_default();
        let mut matched = None;
        for name in ["ORIGIN", "PLATFORM", "LIB"] {
            if let Some(tail) = after
                .strip_prefix('{')
                .and_then(|a| a.strip_prefix(name))
                .and_then(|a| a.strip_prefix('}'))
            {
                matched = Some((name, tail));
                break;
            }
            if let Some(tail) = after.strip_prefix(name) {
                let ends = tail
                    .chars()
                    .next()
                    .is_none_or(|c| !(c.is_ascii_alphanumeric() || c == '_'));
                if ends {
                    matched = Some((name, tail));
                    break;
                }
            }
        }
        match matched {
            Some((name, tail)) => {
                match name {
                    "ORIGIN" => out.push_str(&origin?.to_string_lossy()),
                    "PLATFORM" => out.push_str("x86_64"),
                    _ => out.push_str("lib/x86_64-linux-gnu"),
                }
                rest = tail;
            }
            None => {
                out.push('$');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    Some(out)
}

/// The directory of `path` made absolute (without resolving symlinks).
fn dir_of(path: &Path) -> Option<PathBuf> {
    let abs = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir().ok()?.join(path)
    };
    abs.parent().map(Path::to_path_buf)
}

/// Search state for one `DT_NEEDED` name.
struct Search<'a> {
    name: &'a str,
    /// `glibc-hwcaps` subdirectories tried first in each directory.
    hwcaps: &'a [String],
    rejected: Vec<PathBuf>,
}

impl Search<'_> {
    /// Accepts `path` if it is a regular x86-64 ELF file; records it as
    /// rejected if it exists but isn't.
    fn try_path(&mut self, path: PathBuf) -> Option<PathBuf> {
        if !path.is_file() {
            return None;
        }
        match check_x86_64(&path) {
            Ok(()) => Some(path),
            Err(_) => {
                self.rejected.push(path);
                None
            }
        }
    }

    /// Tries `dir/glibc-hwcaps/LEVEL/name` for each supported level, then
    /// `dir/name`, for each directory.
    fn try_dirs<I, P>(&mut self, dirs: I) -> Option<PathBuf>
    where
        I: IntoIterator<Item = P>,
        P: AsRef<Path>,
    {
        for dir in dirs {
            let dir = dir.as_ref();
            let dir = if dir.as_os_str().is_empty() {
                Path::new(".")
            } else {
                dir
            };
            for level in self.hwcaps {
                let sub = dir.join("glibc-hwcaps").join(level).join(self.name);
                if let Some(p) = self.try_path(sub) {
                    return Some(p);
                }
            }
            if let Some(p) = self.try_path(dir.join(self.name)) {
                return Some(p);
            }
        }
        None
    }
}

/// Expanded search path of an object.
fn expanded(paths: &[String], origin: Option<&Path>) -> Vec<PathBuf> {
    paths
        .iter()
        .filter_map(|p| expand_dst(p, origin))
        .map(PathBuf::from)
        .collect()
}

/// Looks up one `DT_NEEDED` name needed by `objs[who]`.
fn search(
    name: &str,
    who: usize,
    objs: &[Obj],
    env: &LoaderEnv,
) -> (Option<PathBuf>, Resolution, Vec<PathBuf>) {
    let mut s = Search {
        name,
        hwcaps: &env.hwcaps,
        rejected: Vec::new(),
    };
    if name.contains('/') {
        let found = s.try_path(PathBuf::from(name));
        let how = if found.is_some() {
            Resolution::Direct
        } else {
            Resolution::NotFound
        };
        return (found, how, s.rejected);
    }
    let Some(loader) = objs.get(who) else {
        return (None, Resolution::NotFound, s.rejected);
    };
    if !loader.has_runpath {
        // DT_RPATH of the loader, its loader, ... up to the executable.
        let mut cur = Some(who);
        let mut hops = 0;
        while let Some(o) = cur.and_then(|i| objs.get(i)) {
            if !o.has_runpath {
                if let Some(p) = s.try_dirs(expanded(&o.rpath, o.origin.as_deref())) {
                    return (Some(p), Resolution::Rpath, s.rejected);
                }
            }
            cur = o.loader;
            hops += 1;
            if hops > objs.len() {
                break;
            }
        }
    }
    let exe_origin = objs.first().and_then(|o| o.origin.as_deref());
    let llp: Vec<PathBuf> = env
        .ld_library_path
        .iter()
        .filter_map(|p| expand_dst(&p.to_string_lossy(), exe_origin))
        .map(PathBuf::from)
        .collect();
    if let Some(p) = s.try_dirs(llp) {
        return (Some(p), Resolution::LdLibraryPath, s.rejected);
    }
    if loader.has_runpath {
        if let Some(p) = s.try_dirs(expanded(&loader.runpath, loader.origin.as_deref())) {
            return (Some(p), Resolution::Runpath, s.rejected);
        }
    }
    if !loader.nodeflib {
        let cached = env
            .ld_so_cache
            .as_ref()
            .and_then(|c| c.lookup_hwcaps(name, &env.hwcaps));
        if let Some(cached) = cached {
            if let Some(p) = s.try_path(cached.to_path_buf()) {
                return (Some(p), Resolution::Cache, s.rejected);
            }
        }
        if let Some(p) = s.try_dirs(&env.default_dirs) {
            return (Some(p), Resolution::DefaultDir, s.rejected);
        }
    }
    (None, Resolution::NotFound, s.rejected)
}

/// Finds the shared libraries `exe` loads, breadth first over `DT_NEEDED`
/// as `ld.so` does (see the module documentation for the search order).
/// Each name is resolved once; a library found under two names is walked
/// once. Libraries that can't be found have `path: None`.
pub fn resolve_libraries(exe: &ElfFile, env: &LoaderEnv) -> Vec<Library> {
    // ld.so gets the executable's path from the kernel with symlinks resolved.
    let exe_origin = std::fs::canonicalize(&exe.path)
        .ok()
        .and_then(|p| p.parent().map(Path::to_path_buf))
        .or_else(|| dir_of(&exe.path));
    let mut objs = vec![Obj {
        name: exe.path.display().to_string(),
        origin: exe_origin,
        has_runpath: !exe.runpath.is_empty(),
        rpath: exe.rpath.clone(),
        runpath: exe.runpath.clone(),
        nodeflib: exe.nodeflib,
        needed: exe.needed.clone(),
        loader: None,
        depth: 0,
    }];
    let mut seen_names: HashSet<String> = HashSet::new();
    if let Some(s) = &exe.soname {
        seen_names.insert(s.clone());
    }
    let mut seen_files: HashSet<PathBuf> = HashSet::new();
    if let Ok(p) = std::fs::canonicalize(&exe.path) {
        seen_files.insert(p);
    }
    let mut libs = Vec::new();
    let mut queue = VecDeque::from([0usize]);
    while let Some(who) = queue.pop_front() {
        let (needed, by, depth) = match objs.get(who) {
            Some(o) => (o.needed.clone(), o.name.clone(), o.depth + 1),
            None => continue,
        };
        for name in needed {
            if !seen_names.insert(name.clone()) {
                continue;
            }
            let (path, how, rejected) = search(&name, who, &objs, env);
            let mut lib = Library {
                soname: name.clone(),
                path: path.clone(),
                needed_by: by.clone(),
                how,
                rejected,
                depth,
                error: None,
            };
            if let Some(path) = path {
                let canonical = std::fs::canonicalize(&path).unwrap_or_else(|_| path.clone());
                if seen_files.insert(canonical) {
                    match read_dynamic(&path) {
                        Ok(info) => {
                            if let Some(s) = &info.soname {
                                seen_names.insert(s.clone());
                            }
                            queue.push_back(objs.len());
                            objs.push(Obj {
                                name: name.clone(),
                                origin: dir_of(&path),
                                has_runpath: !info.runpath.is_empty(),
                                rpath: info.rpath,
                                runpath: info.runpath,
                                nodeflib: info.nodeflib,
                                needed: info.needed,
                                loader: Some(who),
                                depth,
                            });
                        }
                        Err(e) => lib.error = Some(e.to_string()),
                    }
                }
            }
            libs.push(lib);
        }
    }
    libs
}

#[cfg(test)]
mod tests {
    use super::super::testutil::{cc, patch_to_aarch64, run, Scratch};
    use super::super::{read_elf, ElfFile};
    use super::*;

    /// Builds a cache file: optional old-format prefix, then the new format.
    fn build_cache(entries: &[(i32, &str, &str, u64)], old_prefix: bool) -> Vec<u8> {
        let mut new = Vec::new();
        new.extend_from_slice(b"glibc-ld.so.cache1.1");
        new.extend_from_slice(&(entries.len() as u32).to_le_bytes());
        let strings_at = NEW_HEADER + entries.len() * NEW_ENTRY;
        let mut strings = Vec::new();
        let mut table = Vec::new();
        for (flags, key, value, hwcap) in entries {
            let key_off = strings_at + strings.len();
            strings.extend_from_slice(key.as_bytes());
            strings.push(0);
            let value_off = strings_at + strings.len();
            strings.extend_from_slice(value.as_bytes());
            strings.push(0);
            table.extend_from_slice(&flags.to_le_bytes());
            table.extend_from_slice(&(key_off as u32).to_le_bytes());
            table.extend_from_slice(&(value_off as u32).to_le_bytes());
            table.extend_from_slice(&0u32.to_le_bytes());
            table.extend_from_slice(&hwcap.to_le_bytes());
        }
        new.extend_from_slice(&(strings.len() as u32).to_le_bytes());
        new.push(2); // little endian
        new.extend_from_slice(&[0; 3]);
        new.extend_from_slice(&0u32.to_le_bytes());
        new.extend_from_slice(&[0; 12]);
        assert_eq!(new.len(), NEW_HEADER);
        new.extend(table);
        new.extend(strings);
        if !old_prefix {
            return new;
        }
        let mut out = Vec::new();
        out.extend_from_slice(b"ld.so-1.7.0\0");
        out.extend_from_slice(&1u32.to_le_bytes());
        out.extend_from_slice(&[3, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]); // one old entry
        while out.len() % 8 != 0 {
            out.push(0);
        }
        out.extend(new);
        out
    }

    #[test]
    fn cache_parse_and_lookup() {
        let bytes = build_cache(
            &[
                (
                    0x0303,
                    "libfoo.so.1",
                    "/opt/hw/glibc-hwcaps/x86-64-v3/libfoo.so.1",
                    1 << 62,
                ),
                (0x0303, "libfoo.so.1", "/opt/libfoo.so.1", 0),
                (0x0a03, "libbar.so.2", "/opt/aarch64/libbar.so.2", 0),
                (0x0003, "libbar.so.2", "/opt/i386/libbar.so.2", 0),
                (
                    0x0303,
                    "libhw.so",
                    "/opt/hw/glibc-hwcaps/x86-64-v2/libhw.so",
                    1 << 62,
                ),
            ],
            false,
        );
        let cache = LdCache::parse(&bytes).unwrap();
        assert_eq!(cache.entries.len(), 5);
        assert_eq!(cache.entries[1].key, "libfoo.so.1");
        assert_eq!(cache.entries[1].flags, 0x0303);
        assert_eq!(
            cache.lookup("libfoo.so.1"),
            Some(Path::new("/opt/libfoo.so.1"))
        );
        assert_eq!(cache.lookup("libbar.so.2"), None); // not x86-64
        assert_eq!(
            cache.lookup("libhw.so"),
            Some(Path::new("/opt/hw/glibc-hwcaps/x86-64-v2/libhw.so"))
        );
        assert_eq!(cache.lookup("libnope.so"), None);

        let with_old = build_cache(&[(0x0303, "liba.so", "/a/liba.so", 0)], true);
        let cache = LdCache::parse(&with_old).unwrap();
        assert_eq!(cache.lookup("liba.so"), Some(Path::new("/a/liba.so")));
    }

    #[test]
    fn cache_prefers_supported_hwcaps_entries() {
        let bytes = build_cache(
            &[
                (
                    0x0303,
                    "libfoo.so.1",
                    "/opt/glibc-hwcaps/x86-64-v3/libfoo.so.1",
                    1 << 62,
                ),
                (
                    0x0303,
                    "libfoo.so.1",
                    "/opt/glibc-hwcaps/x86-64-v2/libfoo.so.1",
                    1 << 62,
                ),
                (0x0303, "libfoo.so.1", "/opt/libfoo.so.1", 0),
                (
                    0x0303,
                    "libhw.so",
                    "/opt/glibc-hwcaps/x86-64-v4/libhw.so",
                    1 << 62,
                ),
            ],
            false,
        );
        let cache = LdCache::parse(&bytes).unwrap();
        let levels = |l: &[&str]| l.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let all = levels(&["x86-64-v4", "x86-64-v3", "x86-64-v2"]);
        assert_eq!(
            cache.lookup_hwcaps("libfoo.so.1", &all),
            Some(Path::new("/opt/glibc-hwcaps/x86-64-v3/libfoo.so.1"))
        );
        assert_eq!(
            cache.lookup_hwcaps("libfoo.so.1", &levels(&["x86-64-v2"])),
            Some(Path::new("/opt/glibc-hwcaps/x86-64-v2/libfoo.so.1"))
        );
        assert_eq!(
            cache.lookup_hwcaps("libfoo.so.1", &[]),
            Some(Path::new("/opt/libfoo.so.1"))
        );
        assert_eq!(
            cache.lookup_hwcaps("libhw.so", &all),
            Some(Path::new("/opt/glibc-hwcaps/x86-64-v4/libhw.so"))
        );
        // Only in a subdirectory this CPU can't use: ld.so would not load it.
        assert_eq!(
            cache.lookup_hwcaps("libhw.so", &levels(&["x86-64-v3"])),
            None
        );
        assert_eq!(
            hwcaps_subdir(Path::new("/a/glibc-hwcaps/x86-64-v2/l.so")),
            Some("x86-64-v2")
        );
        assert_eq!(hwcaps_subdir(Path::new("/a/x86-64-v2/l.so")), None);
        assert_eq!(hwcaps_subdir(Path::new("l.so")), None);
    }

    /// The levels found through CPUID agree with the kernel's view of the CPU.
    #[test]
    fn hwcaps_levels_match_proc_cpuinfo() {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap();
        let flags: HashSet<&str> = cpuinfo
            .lines()
            .find(|l| l.starts_with("flags"))
            .and_then(|l| l.split_once(':'))
            .map(|(_, f)| f.split_whitespace().collect())
            .unwrap();
        let all = |names: &[&str]| names.iter().all(|n| flags.contains(n));
        let v2 = all(&[
            "cx16", "lahf_lm", "popcnt", "pni", "sse4_1", "sse4_2", "ssse3",
        ]);
        let v3 = v2
            && all(&[
                "avx", "avx2", "bmi1", "bmi2", "f16c", "fma", "abm", "movbe", "xsave",
            ]);
        let v4 = v3 && all(&["avx512f", "avx512bw", "avx512cd", "avx512dq", "avx512vl"]);
        let mut expected = Vec::new();
        for (ok, name) in [(v4, "x86-64-v4"), (v3, "x86-64-v3"), (v2, "x86-64-v2")] {
            if ok {
                expected.push(name.to_string());
            }
        }
        assert_eq!(supported_hwcaps(), expected);
        assert_eq!(LoaderEnv::from_system().hwcaps, expected);
        assert!(LoaderEnv::new().hwcaps.is_empty());
    }

    /// A library in `glibc-hwcaps/x86-64-vN/` of a search directory is
    /// preferred as the real loader prefers it: each variant returns another
    /// value, the program's exit status says which one ld.so loaded.
    #[test]
    fn glibc_hwcaps_subdirectories_are_tried_first() {
        let s = Scratch::new("hwcaps");
        s.write(
            "main.c",
            "int shape_area(int);\nint main(void) { return shape_area(1) - 1; }\n",
        );
        let variants = [("", 0), ("x86-64-v2", 100), ("x86-64-v3", 200)];
        for (level, extra) in variants {
            let dir = if level.is_empty() {
                s.path("lib")
            } else {
                s.path(&format!("lib/glibc-hwcaps/{level}"))
            };
            std::fs::create_dir_all(&dir).unwrap();
            let src = s.write(
                &format!("shapes{extra}.c"),
                &format!("int shape_area(int x) {{ return x * x + {extra}; }}\n"),
            );
            let out = dir.join("libshapes.so");
            cc(
                &s.dir,
                &[
                    "-shared",
                    "-fPIC",
                    "-Wl,-soname,libshapes.so",
                    "-o",
                    out.to_str().unwrap(),
                    src.to_str().unwrap(),
                ],
            );
        }
        cc(
            &s.dir,
            &[
                "-o",
                "app",
                "main.c",
                "-Llib",
                "-lshapes",
                "-Wl,--enable-new-dtags,-rpath,$ORIGIN/lib",
            ],
        );
        let exe = read_elf(&s.path("app")).unwrap();
        let status = std::process::Command::new(s.path("app"))
            .env_remove("LD_LIBRARY_PATH")
            .status()
            .unwrap()
            .code()
            .unwrap();
        let mut env = LoaderEnv::new();
        env.load_cache(Path::new(LD_SO_CACHE));
        env.hwcaps = supported_hwcaps();
        let libs = resolve_libraries(&exe, &env);
        let shapes = libs.iter().find(|l| l.soname == "libshapes.so").unwrap();
        assert_eq!(shapes.how, Resolution::Runpath);
        let path = shapes.path.clone().unwrap();
        let level = hwcaps_subdir(&path).unwrap_or("");
        let (_, extra) = variants.iter().find(|(l, _)| *l == level).unwrap();
        assert_eq!(
            status,
            *extra,
            "ld.so and perfgate disagree: {}",
            path.display()
        );
        // Where the CPU allows (it does on every x86-64 machine since 2009),
        // this is a subdirectory, the best one.
        let best = env
            .hwcaps
            .iter()
            .find(|l| variants.iter().any(|(v, _)| v == *l));
        assert_eq!(best.map(String::as_str), hwcaps_subdir(&path));
        // Without hwcaps levels, the plain directory.
        env.hwcaps.clear();
        let libs = resolve_libraries(&exe, &env);
        let shapes = libs.iter().find(|l| l.soname == "libshapes.so").unwrap();
        assert_eq!(shapes.path, Some(s.path("lib/libshapes.so")));
    }

    #[test]
    fn cache_errors_are_reported_not_panicked() {
        let good = build_cache(&[(0x0303, "liba.so", "/a/liba.so", 0)], false);
        assert!(LdCache::parse(b"").unwrap_err().contains("magic"));
        assert!(LdCache::parse(b"garbage garbage garbage").is_err());
        let mut v = good.clone();
        v[17..20].copy_from_slice(b"1.0");
        assert!(LdCache::parse(&v).unwrap_err().contains("version"));
        let mut v = good.clone();
        v[20..24].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(LdCache::parse(&v).is_err());
        let mut v = good.clone();
        v[28] = 3;
        assert!(LdCache::parse(&v).unwrap_err().contains("big-endian"));
        let mut v = good.clone();
        v[NEW_HEADER + 4..NEW_HEADER + 8].copy_from_slice(&0xffff_fff0u32.to_le_bytes());
        assert!(LdCache::parse(&v).unwrap_err().contains("out of bounds"));
        let mut v = good.clone();
        v.pop(); // unterminated last string
        assert!(LdCache::parse(&v).is_err());
        let mut old_only = b"ld.so-1.7.0\0".to_vec();
        old_only.extend_from_slice(&0u32.to_le_bytes());
        assert!(LdCache::parse(&old_only).is_err());
        let mut old_huge = b"ld.so-1.7.0\0".to_vec();
        old_huge.extend_from_slice(&u32::MAX.to_le_bytes());
        assert!(LdCache::parse(&old_huge).is_err());
        for n in 0..good.len() {
            let _ = LdCache::parse(&good[..n]);
        }
        // Many entries sharing one long string: refused, not multiplied.
        let long = "x".repeat(1 << 16);
        let many: Vec<(i32, &str, &str, u64)> =
            (0..100).map(|_| (0x0303, "k", long.as_str(), 0)).collect();
        let mut bomb = build_cache(&many, false);
        let first = bomb[NEW_HEADER + 4..NEW_HEADER + 12].to_vec(); // key, value
        for i in 0..100 {
            let at = NEW_HEADER + i * NEW_ENTRY + 4;
            bomb[at..at + 8].copy_from_slice(&first);
        }
        bomb.truncate(bomb.len() - 99 * (long.len() + 3)); // drop the copies
        assert!(LdCache::parse(&bomb).unwrap_err().contains("4 times"));
        assert!(LdCache::load(Path::new("/nonexistent/ld.so.cache"))
            .unwrap_err()
            .contains("/nonexistent/ld.so.cache: "));
        let e = LdCache::load(Path::new("/dev/zero")).unwrap_err();
        assert!(e.contains("/dev/zero: not a regular file"), "{e}");
    }

    #[test]
    fn system_cache_parses() {
        let cache = LdCache::load(Path::new(LD_SO_CACHE)).unwrap();
        assert!(!cache.entries.is_empty());
        let libc = cache.lookup("libc.so.6").unwrap();
        assert!(libc.is_file(), "{}", libc.display());
        let bytes = std::fs::read(LD_SO_CACHE).unwrap();
        for n in (0..bytes.len()).step_by(97) {
            let _ = LdCache::parse(&bytes[..n]);
        }
        let env = LoaderEnv::from_system();
        assert!(env.ld_so_cache.is_some(), "{:?}", env.ld_so_cache_error);
        let mut env = LoaderEnv::new();
        env.load_cache(Path::new("/nonexistent"));
        assert!(env.ld_so_cache.is_none());
        assert!(env.ld_so_cache_error.is_some());
    }

    #[test]
    fn dynamic_string_tokens() {
        let o = Some(Path::new("/a/b"));
        assert_eq!(expand_dst("$ORIGIN/lib", o).as_deref(), Some("/a/b/lib"));
        assert_eq!(
            expand_dst("${ORIGIN}/../x", o).as_deref(),
            Some("/a/b/../x")
        );
        assert_eq!(expand_dst("$ORIGIN", o).as_deref(), Some("/a/b"));
        assert_eq!(expand_dst("$ORIGINAL", o).as_deref(), Some("$ORIGINAL"));
        assert_eq!(
            expand_dst("/usr/$LIB", o).as_deref(),
            Some("/usr/lib/x86_64-linux-gnu")
        );
        assert_eq!(
            expand_dst("/p/${PLATFORM}/x", o).as_deref(),
            Some("/p/x86_64/x")
        );
        assert_eq!(expand_dst("/p/$PLATFORM", o).as_deref(), Some("/p/x86_64"));
        assert_eq!(expand_dst("$ORIGIN/lib", None), None);
        assert_eq!(expand_dst("/plain", None).as_deref(), Some("/plain"));
        assert_eq!(expand_dst("a$", o).as_deref(), Some("a$"));
        assert_eq!(expand_dst("$", o).as_deref(), Some("$"));
        assert_eq!(expand_dst("$$ORIGIN", o).as_deref(), Some("$/a/b"));
        assert_eq!(expand_dst("${ORIGIN", o).as_deref(), Some("${ORIGIN"));
        assert_eq!(expand_dst("é$ORIGIN€", o).as_deref(), Some("é/a/b€"));
    }

    #[test]
    fn ld_library_path_parsing() {
        assert!(parse_ld_library_path("").is_empty());
        assert_eq!(
            parse_ld_library_path("/a:/b"),
            vec![PathBuf::from("/a"), PathBuf::from("/b")]
        );
        assert_eq!(
            parse_ld_library_path("/a::/b;/c"),
            vec![
                PathBuf::from("/a"),
                PathBuf::from("."),
                PathBuf::from("/b"),
                PathBuf::from("/c")
            ]
        );
    }

    /// Test fixture: libraries and executables with every kind of search path.
    struct Fixture {
        s: Scratch,
    }

    impl Fixture {
        fn new() -> Fixture {
            let s = Scratch::new("libs");
            s.write("shapes.c", "int shape_area(int x) { return x * x; }\n");
            s.write(
                "main.c",
                "int shape_area(int);\nint main(int c, char **v) { (void)v; return shape_area(c) - 1; }\n",
            );
            s.write("inner.c", "int inner_fn(int x) { return x + 1; }\n");
            s.write(
                "outer.c",
                "int inner_fn(int);\nint outer_fn(int x) { return inner_fn(x) * 2; }\n",
            );
            s.write(
                "main_outer.c",
                "int outer_fn(int);\nint main(int c, char **v) { (void)v; return outer_fn(c) - 4; }\n",
            );
            std::fs::create_dir_all(s.path("lib")).unwrap();
            std::fs::create_dir_all(s.path("lib2")).unwrap();
            let d = &s.dir;
            let shared = ["-shared", "-fPIC"];
            cc(
                d,
                &[
                    &shared[..],
                    &["-Wl,-soname,libshapes.so", "-o", "libshapes.so", "shapes.c"],
                ]
                .concat(),
            );
            cc(
                d,
                &[
                    &shared[..],
                    &[
                        "-Wl,-soname,libshapes.so",
                        "-o",
                        "lib/libshapes.so",
                        "shapes.c",
                    ],
                ]
                .concat(),
            );
            cc(
                d,
                &[
                    &shared[..],
                    &[
                        "-Wl,-soname,libinner.so",
                        "-o",
                        "lib2/libinner.so",
                        "inner.c",
                    ],
                ]
                .concat(),
            );
            cc(
                d,
                &[
                    &shared[..],
                    &[
                        "-Wl,-soname,libouter.so",
                        "-o",
                        "lib2/libouter.so",
                        "outer.c",
                        "-Llib2",
                        "-linner",
                    ],
                ]
                .concat(),
            );
            cc(
                d,
                &[
                    &shared[..],
                    &["-Wl,-soname,libgone.so", "-o", "libgone.so", "shapes.c"],
                ]
                .concat(),
            );
            cc(
                d,
                &[
                    "-o",
                    "app-runpath",
                    "main.c",
                    "-L.",
                    "-lshapes",
                    "-Wl,--enable-new-dtags,-rpath,$ORIGIN",
                ],
            );
            cc(
                d,
                &[
                    "-o",
                    "app-rpath",
                    "main.c",
                    "-Llib",
                    "-lshapes",
                    "-Wl,--disable-new-dtags,-rpath,$ORIGIN/lib",
                ],
            );
            cc(
                d,
                &[
                    "-o",
                    "app-rpath-inherit",
                    "main_outer.c",
                    "-Llib2",
                    "-louter",
                    "-Wl,-rpath-link,lib2",
                    "-Wl,--disable-new-dtags,-rpath,$ORIGIN/lib2",
                ],
            );
            cc(
                d,
                &[
                    "-o",
                    "app-runpath-no-inherit",
                    "main_outer.c",
                    "-Llib2",
                    "-louter",
                    "-Wl,-rpath-link,lib2",
                    "-Wl,--enable-new-dtags,-rpath,$ORIGIN/lib2",
                ],
            );
            cc(
                d,
                &[
                    "-o",
                    "app-missing",
                    "main.c",
                    "-L.",
                    "-lgone",
                    "-Wl,--enable-new-dtags,-rpath,$ORIGIN",
                ],
            );
            std::fs::remove_file(s.path("libgone.so")).unwrap();
            cc(
                d,
                &[&shared[..], &["-o", "libnoso.so", "shapes.c"]].concat(),
            );
            let noso = s.path("libnoso.so").display().to_string();
            cc(d, &["-o", "app-direct", "main.c", &noso]);
            cc(
                d,
                &[
                    "-o",
                    "app-nodeflib",
                    "main.c",
                    "-L.",
                    "-lshapes",
                    "-Wl,-z,nodefaultlib",
                    "-Wl,--enable-new-dtags,-rpath,$ORIGIN",
                ],
            );
            Fixture { s }
        }

        fn exe(&self, name: &str) -> ElfFile {
            read_elf(&self.s.path(name)).unwrap()
        }

        fn real(&self, rel: &str) -> PathBuf {
            std::fs::canonicalize(self.s.path(rel)).unwrap()
        }
    }

    fn system_env() -> LoaderEnv {
        let mut env = LoaderEnv::new();
        env.load_cache(Path::new(LD_SO_CACHE));
        env
    }

    fn lib<'a>(libs: &'a [Library], name: &str) -> &'a Library {
        libs.iter()
            .find(|l| l.soname == name)
            .unwrap_or_else(|| panic!("{name} not in {libs:#?}"))
    }

    /// Runs an executable of the fixture: `true` if the loader started it.
    fn loads(f: &Fixture, name: &str) -> bool {
        std::process::Command::new(f.s.path(name))
            .env_remove("LD_LIBRARY_PATH")
            .output()
            .map(|o| {
                !String::from_utf8_lossy(&o.stderr).contains("error while loading shared libraries")
            })
            .unwrap_or(false)
    }

    #[test]
    fn resolution_follows_ld_so() {
        let f = Fixture::new();
        let env = system_env();

        // DT_RUNPATH=$ORIGIN, libc from the cache, ld.so needed by libc.
        let exe = f.exe("app-runpath");
        assert_eq!(exe.runpath, vec!["$ORIGIN".to_string()]);
        assert!(exe.rpath.is_empty());
        let libs = resolve_libraries(&exe, &env);
        let shapes = lib(&libs, "libshapes.so");
        assert_eq!(shapes.how, Resolution::Runpath);
        assert_eq!(
            shapes.path.as_deref(),
            Some(f.real("libshapes.so").as_path())
        );
        assert_eq!(shapes.depth, 1);
        assert_eq!(shapes.needed_by, exe.path.display().to_string());
        let libc = lib(&libs, "libc.so.6");
        assert_eq!(libc.how, Resolution::Cache);
        assert!(libc.path.as_ref().unwrap().is_file());
        let ld = libs
            .iter()
            .find(|l| l.soname.starts_with("ld-linux"))
            .unwrap();
        assert_eq!(ld.needed_by, "libc.so.6");
        assert_eq!(ld.depth, 2);
        assert!(ld.path.is_some());
        assert!(loads(&f, "app-runpath"));

        // DT_RPATH=$ORIGIN/lib.
        let exe = f.exe("app-rpath");
        assert_eq!(exe.rpath, vec!["$ORIGIN/lib".to_string()]);
        assert!(exe.runpath.is_empty());
        let libs = resolve_libraries(&exe, &env);
        let shapes = lib(&libs, "libshapes.so");
        assert_eq!(shapes.how, Resolution::Rpath);
        assert_eq!(
            shapes.path.as_deref(),
            Some(f.real("lib/libshapes.so").as_path())
        );
        assert!(loads(&f, "app-rpath"));
    }

    #[test]
    fn rpath_is_inherited_and_runpath_is_not() {
        let f = Fixture::new();
        let env = system_env();
        let libs = resolve_libraries(&f.exe("app-rpath-inherit"), &env);
        assert_eq!(lib(&libs, "libouter.so").how, Resolution::Rpath);
        let inner = lib(&libs, "libinner.so");
        assert_eq!(inner.how, Resolution::Rpath);
        assert_eq!(inner.needed_by, "libouter.so");
        assert_eq!(inner.depth, 2);
        assert!(loads(&f, "app-rpath-inherit"));

        let libs = resolve_libraries(&f.exe("app-runpath-no-inherit"), &env);
        assert_eq!(lib(&libs, "libouter.so").how, Resolution::Runpath);
        let inner = lib(&libs, "libinner.so");
        assert_eq!(inner.how, Resolution::NotFound);
        assert_eq!(inner.path, None);
        // The real loader agrees.
        assert!(!loads(&f, "app-runpath-no-inherit"));
    }

    #[test]
    fn missing_direct_and_nodeflib() {
        let f = Fixture::new();
        let env = system_env();
        let libs = resolve_libraries(&f.exe("app-missing"), &env);
        let gone = lib(&libs, "libgone.so");
        assert_eq!(gone.path, None);
        assert_eq!(gone.how, Resolution::NotFound);
        assert!(!loads(&f, "app-missing"));

        let exe = f.exe("app-direct");
        let noso = f.s.path("libnoso.so").display().to_string();
        assert_eq!(exe.needed.first(), Some(&noso));
        let libs = resolve_libraries(&exe, &env);
        assert_eq!(lib(&libs, &noso).how, Resolution::Direct);

        let exe = f.exe("app-nodeflib");
        assert!(exe.nodeflib);
        let libs = resolve_libraries(&exe, &env);
        assert_eq!(lib(&libs, "libshapes.so").how, Resolution::Runpath);
        assert_eq!(lib(&libs, "libc.so.6").how, Resolution::NotFound);
        let mut env2 = env.clone();
        env2.ld_library_path = vec![system_libc_dir()];
        let libs = resolve_libraries(&exe, &env2);
        assert_eq!(lib(&libs, "libc.so.6").how, Resolution::LdLibraryPath);
    }

    fn system_libc_dir() -> PathBuf {
        super::super::testutil::system_libc()
            .parent()
            .unwrap()
            .to_path_buf()
    }

    #[test]
    fn ld_library_path_order_and_wrong_arch_candidates() {
        let f = Fixture::new();
        let env = system_env();
        // A wrong-architecture and a non-ELF candidate earlier in the search
        // are skipped; the search continues.
        std::fs::create_dir_all(f.s.path("arm")).unwrap();
        patch_to_aarch64(&f.s.path("libshapes.so"), &f.s.path("arm/libshapes.so"));
        f.s.write("text/libshapes.so", "/* GNU ld script */\n");
        let mut env2 = env.clone();
        env2.ld_library_path = vec![f.s.path("arm"), f.s.path("text")];
        let libs = resolve_libraries(&f.exe("app-runpath"), &env2);
        let shapes = lib(&libs, "libshapes.so");
        assert_eq!(shapes.how, Resolution::Runpath);
        assert_eq!(
            shapes.rejected,
            vec![f.s.path("arm/libshapes.so"), f.s.path("text/libshapes.so")]
        );

        // LD_LIBRARY_PATH comes before DT_RUNPATH but after DT_RPATH.
        let mut env3 = env.clone();
        env3.ld_library_path = vec![f.s.path("lib")];
        let libs = resolve_libraries(&f.exe("app-runpath"), &env3);
        let shapes = lib(&libs, "libshapes.so");
        assert_eq!(shapes.how, Resolution::LdLibraryPath);
        assert_eq!(shapes.path, Some(f.s.path("lib/libshapes.so")));
        let mut env4 = env.clone();
        env4.ld_library_path = vec![f.s.dir.clone()];
        let libs = resolve_libraries(&f.exe("app-rpath"), &env4);
        assert_eq!(lib(&libs, "libshapes.so").how, Resolution::Rpath);

        // Without cache: libc from the default directories.
        let libs = resolve_libraries(&f.exe("app-runpath"), &LoaderEnv::new());
        assert_eq!(lib(&libs, "libc.so.6").how, Resolution::DefaultDir);
    }

    #[test]
    fn executable_symlink_origin_is_its_real_directory() {
        let f = Fixture::new();
        std::fs::create_dir_all(f.s.path("bin")).unwrap();
        std::os::unix::fs::symlink(f.s.path("app-runpath"), f.s.path("bin/link")).unwrap();
        let libs = resolve_libraries(&f.exe("bin/link"), &system_env());
        assert_eq!(lib(&libs, "libshapes.so").how, Resolution::Runpath);
        let link = f.s.path("bin/link");
        run(&f.s.dir, &link.display().to_string(), &[]);
    }
}
