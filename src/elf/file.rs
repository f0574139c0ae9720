//! Opening an ELF file and reading its structures through the `object` crate (`object::read::elf`): the
//! header with typed errors, program headers, sections, `PT_DYNAMIC`, `PT_INTERP`, the build-id note,
//! `.gnu_debuglink`.
//!
//! Invariants:
//! * A file is read whole into memory, once, after checking that it is a regular file (a FIFO would
//!   block, a device never ends) of at most [`MAX_FILE_SIZE`] bytes. Everything after that borrows from
//!   those bytes: `object`'s `ReadRef` for `&[u8]` returns sub-slices and never copies, so parsing a
//!   hostile file allocates the file's size, plus what perfgate derives from it (names, strings), which
//!   is capped at a small multiple of it where it is built.
//! * Why not `object::read::ReadCache<File>`, which reads only the parts needed: its source
//!   (`read_cache.rs`) keeps every read in a map keyed by `(offset, size)` and never evicts, overlapping
//!   reads are separate entries, and every string is cached under its start offset with up to 4 KiB read
//!   ahead. So K section headers that all name the whole file cost K copies of it, and a symbol table of
//!   N entries naming N different offsets costs up to N × 4 KiB: hundreds of times the file size (its
//!   documentation says as much: "malformed files can cause the cache to grow much larger than the file
//!   size"). A whole-file read costs exactly the file size, whatever the file says.
//! * Every error is an [`ElfError`] naming the file, on one line; nothing here panics.

use std::io::Read;
use std::path::{Path, PathBuf};

use object::elf;
use object::read::elf::{Dyn, FileHeader, ProgramHeader, SectionHeader, SectionTable};
use object::read::{SectionIndex, StringTable};
use object::Endianness;

use super::{ElfError, ElfKind};

/// The ELF flavour perfgate reads: 64-bit, endianness checked at run time (always little here).
pub(crate) type Elf64 = elf::FileHeader64<Endianness>;
/// A program header of [`Elf64`].
type Phdr = elf::ProgramHeader64<Endianness>;
/// A section header of [`Elf64`].
pub(crate) type Shdr = elf::SectionHeader64<Endianness>;

/// Files larger than this are refused rather than read into memory: larger than any real executable,
/// library or debug file with its DWARF.
pub(crate) const MAX_FILE_SIZE: u64 = 4 << 30;
/// Longest `PT_INTERP` accepted (`PATH_MAX`).
const MAX_INTERP: usize = 4096;
/// Size of the ELF header of a 64-bit file, what [`check_header`] needs.
pub(crate) const EHDR_SIZE: u64 = 64;

/// The bytes of one file, read whole.
pub(crate) struct FileBytes {
    pub(crate) path: PathBuf,
    pub(crate) data: Vec<u8>,
}

/// Reads `path` whole if it is a regular file of at most `max` bytes; with `prefix_only`, only its first
/// `max` bytes (for header checks). FIFOs, devices and directories are refused before opening (opening a
/// FIFO would block) and again after (the path may have changed in between).
pub(crate) fn read_file(path: &Path, max: u64, prefix_only: bool) -> Result<FileBytes, ElfError> {
    let io = |source| ElfError::Io {
        path: path.to_path_buf(),
        source,
    };
    let not_regular = || ElfError::NotRegularFile {
        path: path.to_path_buf(),
    };
    if !std::fs::metadata(path).map_err(io)?.is_file() {
        return Err(not_regular());
    }
    let file = std::fs::File::open(path).map_err(io)?;
    let meta = file.metadata().map_err(io)?;
    if !meta.is_file() {
        return Err(not_regular());
    }
    if meta.len() > max && !prefix_only {
        return Err(ElfError::Malformed {
            path: path.to_path_buf(),
            reason: format!("{} bytes, more than the {} perfgate reads", meta.len(), max),
        });
    }
    let mut data = Vec::new();
    // `take` bounds the read even if the file grows after the size check.
    let wanted = meta.len().min(max);
    let mut reader = file.take(max);
    data.try_reserve_exact(usize::try_from(wanted).unwrap_or(0))
        .map_err(|e| io(std::io::Error::new(std::io::ErrorKind::OutOfMemory, e)))?;
    reader.read_to_end(&mut data).map_err(io)?;
    Ok(FileBytes {
        path: path.to_path_buf(),
        data,
    })
}

/// Name of an `e_machine` value, for error messages.
fn machine_name(machine: u16) -> String {
    let name = match machine {
        0 => "no machine",
        2 => "SPARC",
        3 => "x86 (i386)",
        8 => "MIPS",
        20 => "PowerPC",
        21 => "PowerPC64",
        22 => "s390",
        40 => "ARM",
        42 => "SuperH",
        43 => "SPARC64",
        50 => "IA-64",
        62 => "x86-64",
        183 => "AArch64",
        243 => "RISC-V",
        247 => "BPF",
        258 => "LoongArch",
        _ => return format!("machine {machine}"),
    };
    name.to_string()
}

/// A [`ElfError::Malformed`] about `path`.
pub(crate) fn malformed(path: &Path, reason: impl Into<String>) -> ElfError {
    ElfError::Malformed {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// `e_machine` of a header of either class, through `object`.
fn machine_of<H: FileHeader>(path: &Path, data: &[u8]) -> Result<u16, ElfError> {
    let header = H::parse(data).map_err(|e| {
        if (data.len() as u64) < std::mem::size_of::<H>() as u64 {
            malformed(path, "truncated ELF header")
        } else {
            malformed(path, format!("ELF header: {e}"))
        }
    })?;
    let endian = header
        .endian()
        .map_err(|e| malformed(path, format!("ELF header: {e}")))?;
    Ok(header.e_machine(endian).0)
}

/// Checks the ELF header of `data` (the file, or at least its first [`EHDR_SIZE`] bytes): magic, 64-bit,
/// little endian, x86-64, executable or shared object. What `ld.so` checks before using a candidate.
pub(crate) fn check_header<'data>(
    path: &Path,
    data: &'data [u8],
) -> Result<(&'data Elf64, Endianness), ElfError> {
    if !data.starts_with(&elf::ELFMAG) {
        return Err(ElfError::NotElf {
            path: path.to_path_buf(),
        });
    }
    // `e_ident[EI_CLASS]` and `e_ident[EI_DATA]`, before a header of either class can be parsed.
    let (Some(&class), Some(&encoding)) = (data.get(4), data.get(5)) else {
        return Err(malformed(path, "truncated ELF header"));
    };
    let (class, encoding) = (elf::FileClass(class), elf::DataEncoding(encoding));
    if class != elf::ELFCLASS32 && class != elf::ELFCLASS64 {
        return Err(malformed(path, format!("invalid ELF class {}", class.0)));
    }
    if encoding != elf::ELFDATA2LSB && encoding != elf::ELFDATA2MSB {
        return Err(malformed(
            path,
            format!("invalid ELF data encoding {}", encoding.0),
        ));
    }
    let machine = if class == elf::ELFCLASS64 {
        machine_of::<Elf64>(path, data)?
    } else {
        machine_of::<elf::FileHeader32<Endianness>>(path, data)?
    };
    let wrong = |machine: String| ElfError::WrongArch {
        path: path.to_path_buf(),
        machine,
    };
    if machine != elf::EM_X86_64.0 {
        let mut name = machine_name(machine);
        if class == elf::ELFCLASS32 && !matches!(machine, 3 | 40) {
            name.push_str(" (32-bit)");
        }
        if encoding == elf::ELFDATA2MSB {
            name.push_str(" (big endian)");
        }
        return Err(wrong(name));
    }
    if class == elf::ELFCLASS32 {
        return Err(wrong("x86-64 x32 (32-bit ELF)".to_string()));
    }
    if encoding == elf::ELFDATA2MSB {
        return Err(malformed(path, "x86-64 ELF marked big endian"));
    }
    // machine_of parsed this very header already.
    let header = Elf64::parse(data).map_err(|e| malformed(path, format!("ELF header: {e}")))?;
    let endian = header
        .endian()
        .map_err(|e| malformed(path, format!("ELF header: {e}")))?;
    let e_type = header.e_type(endian);
    if e_type != elf::ET_EXEC && e_type != elf::ET_DYN {
        let kind = match e_type {
            elf::ET_REL => "relocatable object (ET_REL)".to_string(),
            elf::ET_CORE => "core dump (ET_CORE)".to_string(),
            t => format!("file of type {:#x}", t.0),
        };
        return Err(ElfError::UnsupportedType {
            path: path.to_path_buf(),
            kind,
        });
    }
    Ok((header, endian))
}

/// The file-backed part of a `PT_LOAD` segment, with the fields that place an address in the file.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LoadSegment {
    pub(crate) vaddr: u64,
    pub(crate) offset: u64,
    pub(crate) filesz: u64,
}

impl LoadSegment {
    /// `true` if `addr` is inside the file-backed part `[vaddr, vaddr + filesz)`.
    pub(crate) fn contains_file_backed(&self, addr: u64) -> bool {
        addr >= self.vaddr && addr - self.vaddr < self.filesz
    }

    /// File offset of `addr`, which must satisfy [`Self::contains_file_backed`].
    pub(crate) fn file_offset(&self, addr: u64) -> Option<u64> {
        (addr.checked_sub(self.vaddr)?).checked_add(self.offset)
    }

    /// Bytes of file-backed data from `addr` to the end of the segment.
    pub(crate) fn remaining(&self, addr: u64) -> u64 {
        self.filesz.saturating_sub(addr.saturating_sub(self.vaddr))
    }
}

/// Dynamic-linking facts from the `PT_DYNAMIC` segment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct DynamicInfo {
    pub(crate) needed: Vec<String>,
    pub(crate) rpath: Vec<String>,
    pub(crate) runpath: Vec<String>,
    pub(crate) soname: Option<String>,
    pub(crate) nodeflib: bool,
    pub(crate) pie_flag: bool,
    pub(crate) has_interp: bool,
}

/// A parsed x86-64 ELF file: header, program headers and section table, borrowing the file's bytes.
pub(crate) struct Elf<'data> {
    pub(crate) path: &'data Path,
    pub(crate) data: &'data [u8],
    pub(crate) endian: Endianness,
    pub(crate) header: &'data Elf64,
    segments: &'data [Phdr],
    pub(crate) sections: SectionTable<'data, Elf64>,
    /// Executable `PT_LOAD` segments sorted by address.
    exec_loads: Vec<LoadSegment>,
}

impl<'data> Elf<'data> {
    /// Parses the header, program headers and section table of `file`.
    pub(crate) fn parse(file: &'data FileBytes) -> Result<Elf<'data>, ElfError> {
        Elf::parse_bytes(&file.path, &file.data)
    }

    /// Like [`Self::parse`], for bytes that are not a file of their own (`.gnu_debugdata`); `path` names
    /// them in errors.
    pub(crate) fn parse_bytes(
        path: &'data Path,
        data: &'data [u8],
    ) -> Result<Elf<'data>, ElfError> {
        let (header, endian) = check_header(path, data)?;
        let segments = header
            .program_headers(endian, data)
            .map_err(|e| malformed(path, format!("program headers: {e}")))?;
        let sections = match header.sections(endian, data) {
            Ok(s) => s,
            // Sections without a name table are usable, only unnamed.
            Err(_) if header.e_shstrndx(endian) == elf::SHN_UNDEF => {
                let headers = header
                    .section_headers(endian, data)
                    .map_err(|e| malformed(path, format!("section headers: {e}")))?;
                SectionTable::new(headers, StringTable::default())
            }
            Err(e) => return Err(malformed(path, format!("section headers: {e}"))),
        };
        let mut exec_loads: Vec<LoadSegment> = segments
            .iter()
            .filter(|p| p.p_type(endian) == elf::PT_LOAD && p.p_flags(endian).contains(elf::PF_X))
            .map(|p| LoadSegment {
                vaddr: p.p_vaddr(endian),
                offset: p.p_offset(endian),
                filesz: p.p_filesz(endian),
            })
            .collect();
        exec_loads.sort_by_key(|s| s.vaddr);
        Ok(Elf {
            path,
            data,
            endian,
            header,
            segments,
            sections,
            exec_loads,
        })
    }

    /// A [`ElfError::Malformed`] about this file.
    pub(crate) fn malformed(&self, reason: impl Into<String>) -> ElfError {
        malformed(self.path, reason)
    }

    /// The executable `PT_LOAD` segments, sorted by address.
    pub(crate) fn exec_loads(&self) -> &[LoadSegment] {
        &self.exec_loads
    }

    /// The executable `PT_LOAD` segment whose file-backed part contains `addr` (a binary search:
    /// segments of a valid file don't overlap).
    pub(crate) fn exec_segment_for(&self, addr: u64) -> Option<&LoadSegment> {
        let idx = self.exec_loads.partition_point(|s| s.vaddr <= addr);
        let seg = self.exec_loads.get(idx.checked_sub(1)?)?;
        seg.contains_file_backed(addr).then_some(seg)
    }

    /// Up to `n` bytes of the file at virtual address `addr` of an executable segment, fewer at the end
    /// of the segment or of the file; empty if `addr` is not file-backed code.
    pub(crate) fn code_at(&self, addr: u64, n: u64) -> &'data [u8] {
        let Some(seg) = self.exec_segment_for(addr) else {
            return &[];
        };
        let Some(offset) = seg.file_offset(addr) else {
            return &[];
        };
        let n = n.min(seg.remaining(addr));
        let (Ok(start), Ok(n)) = (usize::try_from(offset), usize::try_from(n)) else {
            return &[];
        };
        let end = start.saturating_add(n).min(self.data.len());
        self.data.get(start..end).unwrap_or_default()
    }

    /// `e_entry`.
    pub(crate) fn entry(&self) -> u64 {
        self.header.e_entry(self.endian)
    }

    /// The section at `index` with its name (`None` if unreadable).
    pub(crate) fn section_name(&self, index: SectionIndex) -> Option<&'data [u8]> {
        let s = self.sections.section(index).ok()?;
        self.sections.section_name(self.endian, s).ok()
    }

    /// The first section named `name`.
    pub(crate) fn section_by_name(&self, name: &[u8]) -> Option<&'data Shdr> {
        self.sections
            .section_by_name(self.endian, name)
            .map(|(_, s)| s)
    }

    /// `.gnu_debuglink`: the debug file's name and the CRC32 of its contents. `None` if absent or broken.
    pub(crate) fn debuglink(&self) -> Option<(&'data [u8], u32)> {
        let section = self.section_by_name(b".gnu_debuglink")?;
        let bytes = section.data(self.endian, self.data).ok()?;
        let name_len = bytes.iter().position(|&b| b == 0)?;
        let name = bytes.get(..name_len)?;
        // The CRC follows the name's NUL, aligned to 4 bytes.
        let crc_at = (name_len + 1).checked_add(3)? & !3;
        let crc: [u8; 4] = bytes.get(crc_at..crc_at.checked_add(4)?)?.try_into().ok()?;
        let crc = match self.endian {
            Endianness::Little => u32::from_le_bytes(crc),
            Endianness::Big => u32::from_be_bytes(crc),
        };
        Some((name, crc))
    }

    /// `PT_INTERP`, if any.
    pub(crate) fn interp(&self) -> Result<Option<String>, ElfError> {
        let Some(seg) = self
            .segments
            .iter()
            .find(|p| p.p_type(self.endian) == elf::PT_INTERP)
        else {
            return Ok(None);
        };
        let size = seg.p_filesz(self.endian);
        if size > MAX_INTERP as u64 {
            return Err(self.malformed(format!("PT_INTERP of {size} bytes")));
        }
        // Not `ProgramHeader::interpreter`, which refuses a string without its NUL: separate debug
        // files keep a `PT_INTERP` of size 0, read as an empty path.
        let bytes = seg.data(self.endian, self.data).map_err(|()| {
            self.malformed(format!("PT_INTERP of {size} bytes is outside the file"))
        })?;
        let path = bytes.split(|&b| b == 0).next().unwrap_or_default();
        Ok(Some(String::from_utf8_lossy(path).into_owned()))
    }

    /// Executable, PIE or shared library.
    pub(crate) fn kind(&self, dynamic: &DynamicInfo) -> ElfKind {
        if self.header.e_type(self.endian) == elf::ET_EXEC {
            ElfKind::Exec
        } else if dynamic.pie_flag || (dynamic.has_interp && dynamic.soname.is_none()) {
            ElfKind::Pie
        } else {
            ElfKind::SharedLib
        }
    }

    /// The bytes of the GNU build-id note, from `SHT_NOTE` sections or else `PT_NOTE` segments (sections
    /// first: in a separate debug file, segments may describe bytes that were not kept). Broken notes are
    /// skipped.
    pub(crate) fn build_id(&self) -> Option<&'data [u8]> {
        let (endian, data) = (self.endian, self.data);
        let from_sections = self
            .sections
            .iter()
            .filter_map(move |s| s.notes(endian, data).ok().flatten());
        let from_segments = self
            .segments
            .iter()
            .filter_map(move |p| p.notes(endian, data).ok().flatten());
        for notes in from_sections.chain(from_segments) {
            for note in notes.flatten() {
                if note.name() == elf::ELF_NOTE_GNU
                    && note.n_type(endian) == elf::NT_GNU_BUILD_ID
                    && !note.desc().is_empty()
                {
                    return Some(note.desc());
                }
            }
        }
        None
    }

    /// Reads `PT_DYNAMIC`: needed libraries, search paths, soname, flags.
    pub(crate) fn dynamic_info(&self) -> Result<DynamicInfo, ElfError> {
        let (endian, data) = (self.endian, self.data);
        let mut info = DynamicInfo {
            has_interp: self
                .segments
                .iter()
                .any(|p| p.p_type(endian) == elf::PT_INTERP),
            ..DynamicInfo::default()
        };
        let Some(entries) = self
            .segments
            .iter()
            .find_map(|p| p.dynamic(endian, data).transpose())
        else {
            return Ok(info);
        };
        let entries = entries.map_err(|e| self.malformed(format!("PT_DYNAMIC: {e}")))?;
        let mut strtab_addr = None;
        let mut strsz = None;
        // (tag, string offset) of the string-valued entries, in order.
        let mut string_entries = Vec::new();
        for entry in entries {
            let tag = entry.d_tag(endian);
            let val: u64 = entry.d_val(endian);
            match tag {
                elf::DT_NULL => break,
                elf::DT_NEEDED | elf::DT_SONAME | elf::DT_RPATH | elf::DT_RUNPATH => {
                    string_entries.push((tag, val))
                }
                elf::DT_STRTAB => strtab_addr = Some(val),
                elf::DT_STRSZ => strsz = Some(val),
                elf::DT_FLAGS_1 => {
                    info.nodeflib = val & elf::DF_1_NODEFLIB.0 != 0;
                    info.pie_flag = val & elf::DF_1_PIE.0 != 0;
                }
                _ => {}
            }
        }
        if string_entries.is_empty() {
            return Ok(info);
        }
        let (strtab, strtab_len) = self.dynamic_strtab(strtab_addr, strsz)?;
        // Many entries pointing at one long string would multiply memory use.
        let mut budget = strtab_len.saturating_mul(2).saturating_add(4096);
        for (tag, off) in string_entries {
            let s = u32::try_from(off)
                .ok()
                .and_then(|o| strtab.get(o).ok())
                .map(|b| String::from_utf8_lossy(b).into_owned())
                .ok_or_else(|| {
                    self.malformed(format!(
                        "dynamic entry {:#x} names string offset {off:#x} outside the dynamic string table",
                        tag.0
                    ))
                })?;
            budget = budget.checked_sub(s.len()).ok_or_else(|| {
                self.malformed("dynamic section strings add up to more than their string table")
            })?;
            match tag {
                elf::DT_NEEDED => info.needed.push(s),
                elf::DT_SONAME => info.soname = Some(s),
                elf::DT_RPATH => info.rpath.extend(s.split(':').map(str::to_string)),
                elf::DT_RUNPATH => info.runpath.extend(s.split(':').map(str::to_string)),
                _ => {}
            }
        }
        Ok(info)
    }

    /// The dynamic string table and its size: `DT_STRTAB`/`DT_STRSZ` mapped through the `PT_LOAD`
    /// segments (what the loader uses, clamped to the segment), or else the string table linked from
    /// the `SHT_DYNAMIC` section.
    fn dynamic_strtab(
        &self,
        addr: Option<u64>,
        size: Option<u64>,
    ) -> Result<(StringTable<'data>, usize), ElfError> {
        let (endian, data) = (self.endian, self.data);
        if let (Some(addr), Some(size)) = (addr, size) {
            let load = self.segments.iter().find(|p| {
                let (vaddr, filesz) = (p.p_vaddr(endian), p.p_filesz(endian));
                p.p_type(endian) == elf::PT_LOAD && addr >= vaddr && addr - vaddr < filesz
            });
            if let Some(p) = load {
                let bytes = p.data(endian, data).map_err(|()| {
                    self.malformed("PT_LOAD holding the dynamic string table is outside the file")
                })?;
                let start = usize::try_from(addr - p.p_vaddr(endian)).unwrap_or(usize::MAX);
                let rest = bytes.get(start..).unwrap_or_default();
                let len = usize::try_from(size).unwrap_or(usize::MAX).min(rest.len());
                let table = rest.get(..len).unwrap_or_default();
                return Ok((StringTable::new(table, 0, len as u64), len));
            }
        }
        let linked = self
            .sections
            .iter()
            .find(|s| s.sh_type(endian) == elf::SHT_DYNAMIC)
            .map(|s| s.link(endian));
        match linked {
            Some(link) => {
                let table = self
                    .sections
                    .strings(endian, data, link)
                    .map_err(|e| self.malformed(format!("dynamic string table: {e}")))?;
                let len = self.sections.section(link).map_or(0, |s| {
                    usize::try_from(s.sh_size(endian)).unwrap_or(usize::MAX)
                });
                Ok((table, len))
            }
            None => Err(self.malformed("no dynamic string table (DT_STRTAB/DT_STRSZ)")),
        }
    }
}

/// Lower-case hex of a build-id.
pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_of_build_ids() {
        assert_eq!(hex(&[0xde, 0xad, 0x00, 0x0f]), "dead000f");
        assert_eq!(hex(&[]), "");
    }

    #[test]
    fn load_segment_arithmetic_never_overflows() {
        let s = LoadSegment {
            vaddr: 0x1000,
            offset: 0x200,
            filesz: 0x100,
        };
        assert!(s.contains_file_backed(0x1000) && s.contains_file_backed(0x10ff));
        assert!(!s.contains_file_backed(0x1100) && !s.contains_file_backed(0xfff));
        assert_eq!(s.file_offset(0x1010), Some(0x210));
        assert_eq!(s.remaining(0x10f0), 0x10);
        assert_eq!(s.remaining(u64::MAX), 0);
        let huge = LoadSegment {
            vaddr: 0,
            offset: u64::MAX,
            filesz: u64::MAX,
        };
        assert_eq!(huge.file_offset(1), None);
    }

    #[test]
    fn reads_refuse_fifos_and_cap_the_size() {
        let dir = std::env::temp_dir().join(format!("perfgate-elf-file-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let fifo = dir.join("fifo");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        assert!(made.unwrap().success());
        assert!(matches!(
            read_file(&fifo, 1 << 20, false),
            Err(ElfError::NotRegularFile { .. })
        ));
        let big = dir.join("big");
        std::fs::write(&big, vec![7u8; 1000]).unwrap();
        let e = read_file(&big, 999, false).err().unwrap();
        assert!(e.to_string().contains("more than the 999"), "{e}");
        assert_eq!(read_file(&big, 10, true).unwrap().data.len(), 10);
        assert_eq!(read_file(&big, 1000, false).unwrap().data.len(), 1000);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
