//! Bounds-checked reading of the ELF structures perfgate needs: header,
//! program headers, section headers, dynamic section, notes.
//!
//! The file is untrusted: every offset and size is checked against the file
//! length before anything is allocated or read, so a hostile file can make a
//! read fail but can't make it allocate more than the file's size.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::{ElfError, ElfKind};

// ELF constants (the subset used here, values from <elf.h>).
pub(crate) const EM_X86_64: u16 = 62;
const ET_REL: u16 = 1;
pub(crate) const ET_EXEC: u16 = 2;
pub(crate) const ET_DYN: u16 = 3;
const ET_CORE: u16 = 4;
pub(crate) const PT_LOAD: u32 = 1;
const PT_DYNAMIC: u32 = 2;
const PT_INTERP: u32 = 3;
const PT_NOTE: u32 = 4;
pub(crate) const PF_X: u32 = 1;
pub(crate) const SHT_SYMTAB: u32 = 2;
const SHT_DYNAMIC: u32 = 6;
const SHT_NOTE: u32 = 7;
pub(crate) const SHT_NOBITS: u32 = 8;
pub(crate) const SHT_DYNSYM: u32 = 11;
pub(crate) const SHT_SYMTAB_SHNDX: u32 = 18;
pub(crate) const SHT_GNU_VERDEF: u32 = 0x6fff_fffd;
pub(crate) const SHT_GNU_VERSYM: u32 = 0x6fff_ffff;
const DT_NULL: u64 = 0;
const DT_NEEDED: u64 = 1;
const DT_STRTAB: u64 = 5;
const DT_STRSZ: u64 = 10;
const DT_SONAME: u64 = 14;
const DT_RPATH: u64 = 15;
const DT_RUNPATH: u64 = 29;
const DT_FLAGS_1: u64 = 0x6fff_fffb;
const DF_1_NODEFLIB: u64 = 0x800;
const DF_1_PIE: u64 = 0x0800_0000;
const NT_GNU_BUILD_ID: u32 = 3;
const PN_XNUM: u16 = 0xffff;
const SHN_XINDEX: u16 = 0xffff;

const EHDR_SIZE: usize = 64;
const PHDR_SIZE: usize = 56;
const SHDR_SIZE: usize = 64;
const DYN_SIZE: usize = 16;
/// Longest `PT_INTERP` accepted (`PATH_MAX`).
const MAX_INTERP: u64 = 4096;
/// Notes larger than this are ignored when looking for the build id.
const MAX_NOTES: u64 = 1 << 20;

/// Reads a little-endian `u16` at `off`, `None` if out of bounds.
pub(crate) fn le_u16(b: &[u8], off: usize) -> Option<u16> {
    let end = off.checked_add(2)?;
    b.get(off..end)?.try_into().ok().map(u16::from_le_bytes)
}

/// Reads a little-endian `u32` at `off`, `None` if out of bounds.
pub(crate) fn le_u32(b: &[u8], off: usize) -> Option<u32> {
    let end = off.checked_add(4)?;
    b.get(off..end)?.try_into().ok().map(u32::from_le_bytes)
}

/// Reads a little-endian `u64` at `off`, `None` if out of bounds.
pub(crate) fn le_u64(b: &[u8], off: usize) -> Option<u64> {
    let end = off.checked_add(8)?;
    b.get(off..end)?.try_into().ok().map(u64::from_le_bytes)
}

/// The NUL-terminated string at `off` in a string table, `None` if the
/// offset is out of bounds or the string is not terminated.
pub(crate) fn cstr_at(table: &[u8], off: u64) -> Option<&[u8]> {
    let start = usize::try_from(off).ok()?;
    let rest = table.get(start..)?;
    let len = rest.iter().position(|&b| b == 0)?;
    rest.get(..len)
}

/// Like [`cstr_at`], decoded lossily as UTF-8.
pub(crate) fn string_at(table: &[u8], off: u64) -> Option<String> {
    cstr_at(table, off).map(|b| String::from_utf8_lossy(b).into_owned())
}

/// An open file with its length, read with positioned, bounds-checked reads.
pub(crate) struct Source {
    file: File,
    len: u64,
    path: PathBuf,
}

impl Source {
    /// Opens a regular file. FIFOs, devices and directories are refused
    /// before opening (opening a FIFO would block).
    pub(crate) fn open(path: &Path) -> Result<Source, ElfError> {
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
        let file = File::open(path).map_err(io)?;
        let meta = file.metadata().map_err(io)?;
        if !meta.is_file() {
            return Err(ElfError::NotRegularFile {
                path: path.to_path_buf(),
            });
        }
        Ok(Source {
            file,
            len: meta.len(),
            path: path.to_path_buf(),
        })
    }

    /// A [`ElfError::Malformed`] about this file.
    pub(crate) fn malformed(&self, reason: impl Into<String>) -> ElfError {
        ElfError::Malformed {
            path: self.path.clone(),
            reason: reason.into(),
        }
    }

    /// Reads `size` bytes at `offset`; an error if the range is not entirely
    /// inside the file. `what` names the structure for the error message.
    pub(crate) fn read(&self, offset: u64, size: u64, what: &str) -> Result<Vec<u8>, ElfError> {
        let in_file = offset.checked_add(size).is_some_and(|end| end <= self.len);
        if !in_file {
            return Err(self.malformed(format!(
                "{what} (offset {offset:#x}, size {size:#x}) extends past the end of the file ({:#x} bytes)",
                self.len
            )));
        }
        let n = usize::try_from(size)
            .map_err(|_| self.malformed(format!("{what} is too large ({size:#x} bytes)")))?;
        let mut buf = vec![0u8; n];
        self.file.read_exact_at(&mut buf, offset).map_err(|e| {
            if e.kind() == std::io::ErrorKind::UnexpectedEof {
                self.malformed(format!("file shrank while reading {what}"))
            } else {
                ElfError::Io {
                    path: self.path.clone(),
                    source: e,
                }
            }
        })?;
        Ok(buf)
    }

    /// Reads up to `size` bytes at `offset`, stopping at the end of the file.
    pub(crate) fn read_clamped(
        &self,
        offset: u64,
        size: u64,
        what: &str,
    ) -> Result<Vec<u8>, ElfError> {
        let size = size.min(self.len.saturating_sub(offset));
        self.read(offset.min(self.len), size, what)
    }
}

/// The fields of the ELF file header that matter here.
#[derive(Debug, Clone)]
pub(crate) struct Header {
    pub(crate) e_type: u16,
    pub(crate) entry: u64,
    phoff: u64,
    shoff: u64,
    phentsize: u16,
    phnum: u16,
    shentsize: u16,
    shnum: u16,
    shstrndx: u16,
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

impl Header {
    /// Parses and validates the ELF header: magic, 64-bit, little endian,
    /// x86-64, executable or shared object.
    pub(crate) fn parse(src: &Source) -> Result<Header, ElfError> {
        let b = src.read_clamped(0, EHDR_SIZE as u64, "ELF header")?;
        if b.get(..4) != Some(&b"\x7fELF"[..]) {
            return Err(ElfError::NotElf {
                path: src.path.clone(),
            });
        }
        let (class, data) = match (b.get(4), b.get(5)) {
            (Some(&c), Some(&d)) => (c, d),
            _ => return Err(src.malformed("truncated ELF header")),
        };
        if !matches!(class, 1 | 2) {
            return Err(src.malformed(format!("invalid ELF class {class}")));
        }
        if !matches!(data, 1 | 2) {
            return Err(src.malformed(format!("invalid ELF data encoding {data}")));
        }
        let machine_bytes: [u8; 2] = b
            .get(18..20)
            .and_then(|s| s.try_into().ok())
            .ok_or_else(|| src.malformed("truncated ELF header"))?;
        let machine = if data == 1 {
            u16::from_le_bytes(machine_bytes)
        } else {
            u16::from_be_bytes(machine_bytes)
        };
        let wrong = |machine: String| ElfError::WrongArch {
            path: src.path.clone(),
            machine,
        };
        if machine != EM_X86_64 {
            let mut name = machine_name(machine);
            if class == 1 && !matches!(machine, 3 | 40) {
                name.push_str(" (32-bit)");
            }
            if data == 2 {
                name.push_str(" (big endian)");
            }
            return Err(wrong(name));
        }
        if class == 1 {
            return Err(wrong("x86-64 x32 (32-bit ELF)".to_string()));
        }
        if data == 2 {
            return Err(src.malformed("x86-64 ELF marked big endian"));
        }
        if b.len() < EHDR_SIZE {
            return Err(src.malformed("truncated ELF header"));
        }
        let field16 = |off| le_u16(&b, off).ok_or_else(|| src.malformed("truncated ELF header"));
        let field64 = |off| le_u64(&b, off).ok_or_else(|| src.malformed("truncated ELF header"));
        let e_type = field16(16)?;
        match e_type {
            ET_EXEC | ET_DYN => {}
            other => {
                let kind = match other {
                    ET_REL => "relocatable object (ET_REL)".to_string(),
                    ET_CORE => "core dump (ET_CORE)".to_string(),
                    t => format!("file of type {t:#x}"),
                };
                return Err(ElfError::UnsupportedType {
                    path: src.path.clone(),
                    kind,
                });
            }
        }
        Ok(Header {
            e_type,
            entry: field64(24)?,
            phoff: field64(32)?,
            shoff: field64(40)?,
            phentsize: field16(54)?,
            phnum: field16(56)?,
            shentsize: field16(58)?,
            shnum: field16(60)?,
            shstrndx: field16(62)?,
        })
    }
}

/// A program header.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Segment {
    pub(crate) p_type: u32,
    pub(crate) flags: u32,
    pub(crate) offset: u64,
    pub(crate) vaddr: u64,
    pub(crate) filesz: u64,
    pub(crate) align: u64,
}

impl Segment {
    fn parse(b: &[u8]) -> Option<Segment> {
        Some(Segment {
            p_type: le_u32(b, 0)?,
            flags: le_u32(b, 4)?,
            offset: le_u64(b, 8)?,
            vaddr: le_u64(b, 16)?,
            filesz: le_u64(b, 32)?,
            align: le_u64(b, 48)?,
        })
    }

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

/// A section header.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Section {
    pub(crate) name: u32,
    pub(crate) sh_type: u32,
    /// Only the tests look at section addresses.
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) addr: u64,
    pub(crate) offset: u64,
    pub(crate) size: u64,
    pub(crate) link: u32,
    pub(crate) info: u32,
    pub(crate) entsize: u64,
}

impl Section {
    fn parse(b: &[u8]) -> Option<Section> {
        Some(Section {
            name: le_u32(b, 0)?,
            sh_type: le_u32(b, 4)?,
            addr: le_u64(b, 16)?,
            offset: le_u64(b, 24)?,
            size: le_u64(b, 32)?,
            link: le_u32(b, 40)?,
            info: le_u32(b, 44)?,
            entsize: le_u64(b, 56)?,
        })
    }

    /// The section's bytes (empty for `SHT_NOBITS`).
    pub(crate) fn data(&self, src: &Source, what: &str) -> Result<Vec<u8>, ElfError> {
        if self.sh_type == SHT_NOBITS {
            return Ok(Vec::new());
        }
        src.read(self.offset, self.size, what)
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

/// Header, program headers and section headers of a file.
pub(crate) struct Parsed {
    pub(crate) header: Header,
    pub(crate) segments: Vec<Segment>,
    pub(crate) sections: Vec<Section>,
    shstrtab: Vec<u8>,
    /// Executable `PT_LOAD` segments sorted by address.
    exec_loads: Vec<Segment>,
}

impl Parsed {
    /// Parses the headers and tables of `src`.
    pub(crate) fn parse(src: &Source) -> Result<Parsed, ElfError> {
        let header = Header::parse(src)?;

        // Section headers first: with more than 0xfffe program headers or
        // sections, the real counts live in section header 0.
        let mut sections = Vec::new();
        let mut section0: Option<Section> = None;
        if header.shoff != 0 {
            if usize::from(header.shentsize) != SHDR_SIZE {
                return Err(src.malformed(format!(
                    "section header size {} (expected {SHDR_SIZE})",
                    header.shentsize
                )));
            }
            let b = src.read(header.shoff, SHDR_SIZE as u64, "section header table")?;
            let s0 = Section::parse(&b).ok_or_else(|| src.malformed("truncated section header"))?;
            section0 = Some(s0);
            let count = if header.shnum == 0 {
                s0.size
            } else {
                u64::from(header.shnum)
            };
            let bytes = count
                .checked_mul(SHDR_SIZE as u64)
                .ok_or_else(|| src.malformed(format!("absurd section count {count}")))?;
            let table = src.read(header.shoff, bytes, "section header table")?;
            sections = table
                .chunks_exact(SHDR_SIZE)
                .filter_map(Section::parse)
                .collect();
        }

        let phnum = if header.phnum == PN_XNUM {
            match section0 {
                Some(s0) => u64::from(s0.info),
                None => return Err(src.malformed("PN_XNUM program headers without section 0")),
            }
        } else {
            u64::from(header.phnum)
        };
        let mut segments = Vec::new();
        if phnum > 0 {
            if usize::from(header.phentsize) != PHDR_SIZE {
                return Err(src.malformed(format!(
                    "program header size {} (expected {PHDR_SIZE})",
                    header.phentsize
                )));
            }
            let bytes = phnum
                .checked_mul(PHDR_SIZE as u64)
                .ok_or_else(|| src.malformed(format!("absurd program header count {phnum}")))?;
            let table = src.read(header.phoff, bytes, "program header table")?;
            segments = table
                .chunks_exact(PHDR_SIZE)
                .filter_map(Segment::parse)
                .collect();
        }

        let shstrndx = if header.shstrndx == SHN_XINDEX {
            section0.map_or(0, |s| s.link)
        } else {
            u32::from(header.shstrndx)
        };
        let shstrtab = match usize::try_from(shstrndx).ok().filter(|&i| i != 0) {
            Some(i) => match sections.get(i) {
                Some(s) => s.data(src, "section name table")?,
                None => {
                    return Err(src.malformed(format!(
                        "section name table index {i} out of range ({} sections)",
                        sections.len()
                    )))
                }
            },
            None => Vec::new(),
        };

        let mut exec_loads: Vec<Segment> = segments
            .iter()
            .filter(|s| s.p_type == PT_LOAD && s.flags & PF_X != 0)
            .copied()
            .collect();
        exec_loads.sort_by_key(|s| s.vaddr);

        Ok(Parsed {
            header,
            segments,
            sections,
            shstrtab,
            exec_loads,
        })
    }

    /// The name of section `index`, `None` if unknown.
    pub(crate) fn section_name(&self, index: usize) -> Option<&[u8]> {
        let s = self.sections.get(index)?;
        cstr_at(&self.shstrtab, u64::from(s.name))
    }

    /// The executable `PT_LOAD` segment whose file-backed part contains `addr`
    /// (a binary search: segments of a valid file don't overlap).
    pub(crate) fn exec_segment_for(&self, addr: u64) -> Option<&Segment> {
        let idx = self.exec_loads.partition_point(|s| s.vaddr <= addr);
        let seg = self.exec_loads.get(idx.checked_sub(1)?)?;
        seg.contains_file_backed(addr).then_some(seg)
    }

    /// The file offset of virtual address `addr` through any `PT_LOAD`.
    fn vaddr_to_offset(&self, addr: u64) -> Option<(u64, u64)> {
        let seg = self
            .segments
            .iter()
            .find(|s| s.p_type == PT_LOAD && s.contains_file_backed(addr))?;
        Some((seg.file_offset(addr)?, seg.remaining(addr)))
    }

    /// `PT_INTERP`, if any.
    pub(crate) fn interp(&self, src: &Source) -> Result<Option<String>, ElfError> {
        let Some(seg) = self.segments.iter().find(|s| s.p_type == PT_INTERP) else {
            return Ok(None);
        };
        if seg.filesz > MAX_INTERP {
            return Err(src.malformed(format!("PT_INTERP of {} bytes", seg.filesz)));
        }
        let b = src.read(seg.offset, seg.filesz, "PT_INTERP")?;
        let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
        let s = String::from_utf8_lossy(b.get(..end).unwrap_or_default()).into_owned();
        Ok(Some(s))
    }

    /// Executable, PIE or shared library.
    pub(crate) fn kind(&self, dynamic: &DynamicInfo) -> ElfKind {
        if self.header.e_type == ET_EXEC {
            ElfKind::Exec
        } else if dynamic.pie_flag || (dynamic.has_interp && dynamic.soname.is_none()) {
            ElfKind::Pie
        } else {
            ElfKind::SharedLib
        }
    }

    /// Hex of the GNU build id note, from `PT_NOTE` segments or else
    /// `SHT_NOTE` sections. Broken notes are ignored (`None`).
    pub(crate) fn build_id(&self, src: &Source) -> Option<String> {
        let from_segments = self
            .segments
            .iter()
            .filter(|s| s.p_type == PT_NOTE)
            .map(|s| (s.offset, s.filesz, s.align));
        let from_sections = self
            .sections
            .iter()
            .filter(|s| s.sh_type == SHT_NOTE)
            .map(|s| (s.offset, s.size, 4));
        for (offset, size, align) in from_segments.chain(from_sections) {
            if size > MAX_NOTES {
                continue;
            }
            let Ok(b) = src.read(offset, size, "note") else {
                continue;
            };
            if let Some(id) = find_build_id(&b, align) {
                return Some(id);
            }
        }
        None
    }

    /// Reads `PT_DYNAMIC`: needed libraries, search paths, soname, flags.
    pub(crate) fn dynamic_info(&self, src: &Source) -> Result<DynamicInfo, ElfError> {
        let mut info = DynamicInfo {
            has_interp: self.segments.iter().any(|s| s.p_type == PT_INTERP),
            ..DynamicInfo::default()
        };
        let Some(seg) = self.segments.iter().find(|s| s.p_type == PT_DYNAMIC) else {
            return Ok(info);
        };
        let b = src.read(seg.offset, seg.filesz, "PT_DYNAMIC")?;
        let mut strtab_addr = None;
        let mut strsz = None;
        // (tag, string offset) of the string-valued entries, in order.
        let mut string_entries = Vec::new();
        for entry in b.chunks_exact(DYN_SIZE) {
            let (Some(tag), Some(val)) = (le_u64(entry, 0), le_u64(entry, 8)) else {
                break;
            };
            match tag {
                DT_NULL => break,
                DT_NEEDED | DT_SONAME | DT_RPATH | DT_RUNPATH => string_entries.push((tag, val)),
                DT_STRTAB => strtab_addr = Some(val),
                DT_STRSZ => strsz = Some(val),
                DT_FLAGS_1 => {
                    info.nodeflib = val & DF_1_NODEFLIB != 0;
                    info.pie_flag = val & DF_1_PIE != 0;
                }
                _ => {}
            }
        }
        if string_entries.is_empty() {
            return Ok(info);
        }
        let strtab = self.dynamic_strtab(src, strtab_addr, strsz)?;
        // Many entries pointing at one long string would multiply memory use.
        let mut budget = strtab.len().saturating_mul(2).saturating_add(4096);
        for (tag, off) in string_entries {
            let s = string_at(&strtab, off).ok_or_else(|| {
                src.malformed(format!(
                    "dynamic entry {tag:#x} names string offset {off:#x} outside the dynamic string table"
                ))
            })?;
            budget = budget.checked_sub(s.len()).ok_or_else(|| {
                src.malformed("dynamic section strings add up to more than their string table")
            })?;
            match tag {
                DT_NEEDED => info.needed.push(s),
                DT_SONAME => info.soname = Some(s),
                DT_RPATH => info.rpath.extend(s.split(':').map(str::to_string)),
                DT_RUNPATH => info.runpath.extend(s.split(':').map(str::to_string)),
                _ => {}
            }
        }
        Ok(info)
    }

    /// The dynamic string table: `DT_STRTAB`/`DT_STRSZ` mapped through the
    /// `PT_LOAD` segments (what the loader uses), or else the string table
    /// linked from the `SHT_DYNAMIC` section.
    fn dynamic_strtab(
        &self,
        src: &Source,
        addr: Option<u64>,
        size: Option<u64>,
    ) -> Result<Vec<u8>, ElfError> {
        if let (Some(addr), Some(size)) = (addr, size) {
            if let Some((offset, remaining)) = self.vaddr_to_offset(addr) {
                return src.read(offset, size.min(remaining), "dynamic string table");
            }
        }
        let linked = self
            .sections
            .iter()
            .find(|s| s.sh_type == SHT_DYNAMIC)
            .and_then(|s| usize::try_from(s.link).ok())
            .and_then(|i| self.sections.get(i));
        match linked {
            Some(s) => s.data(src, "dynamic string table"),
            None => Err(src.malformed("no dynamic string table (DT_STRTAB/DT_STRSZ)")),
        }
    }
}

/// Finds the `NT_GNU_BUILD_ID` note in a note segment or section.
fn find_build_id(b: &[u8], align: u64) -> Option<String> {
    let align: usize = if align == 8 { 8 } else { 4 };
    let pad = |n: usize| n.checked_add(align - 1).map(|v| v & !(align - 1));
    let mut pos = 0usize;
    while pos < b.len() {
        let namesz = usize::try_from(le_u32(b, pos)?).ok()?;
        let descsz = usize::try_from(le_u32(b, pos.checked_add(4)?)?).ok()?;
        let n_type = le_u32(b, pos.checked_add(8)?)?;
        let name_start = pos.checked_add(12)?;
        let desc_start = name_start.checked_add(pad(namesz)?)?;
        let name = b.get(name_start..name_start.checked_add(namesz)?)?;
        let desc = b.get(desc_start..desc_start.checked_add(descsz)?)?;
        if n_type == NT_GNU_BUILD_ID && name == b"GNU\0" && !desc.is_empty() {
            return Some(desc.iter().map(|x| format!("{x:02x}")).collect());
        }
        pos = desc_start.checked_add(pad(descsz)?)?;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn little_endian_readers_are_bounds_checked() {
        let b = [1u8, 2, 3, 4, 5, 6, 7, 8, 9];
        assert_eq!(le_u16(&b, 0), Some(0x0201));
        assert_eq!(le_u32(&b, 5), Some(0x0908_0706));
        assert_eq!(le_u32(&b, 6), None);
        assert_eq!(le_u64(&b, 1), Some(0x0908_0706_0504_0302));
        assert_eq!(le_u64(&b, 2), None);
        assert_eq!(le_u64(&b, usize::MAX), None);
    }

    #[test]
    fn cstr_needs_terminator_and_bounds() {
        let t = b"\0abc\0de";
        assert_eq!(cstr_at(t, 1), Some(&b"abc"[..]));
        assert_eq!(cstr_at(t, 0), Some(&b""[..]));
        assert_eq!(cstr_at(t, 5), None); // unterminated
        assert_eq!(cstr_at(t, 100), None);
        assert_eq!(cstr_at(t, u64::MAX), None);
    }

    fn note(name: &[u8], n_type: u32, desc: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&(name.len() as u32).to_le_bytes());
        v.extend_from_slice(&(desc.len() as u32).to_le_bytes());
        v.extend_from_slice(&n_type.to_le_bytes());
        v.extend_from_slice(name);
        while v.len() % 4 != 0 {
            v.push(0);
        }
        v.extend_from_slice(desc);
        while v.len() % 4 != 0 {
            v.push(0);
        }
        v
    }

    #[test]
    fn build_id_note_is_found_after_other_notes() {
        let mut b = note(b"GNU\0", 5, &[1, 2, 3, 4, 5, 6, 7, 8]);
        b.extend(note(b"GNU\0", 3, &[0xde, 0xad, 0xbe, 0xef]));
        assert_eq!(find_build_id(&b, 4).as_deref(), Some("deadbeef"));
    }

    #[test]
    fn broken_notes_give_none() {
        let mut b = note(b"GNU\0", 3, &[0xde, 0xad]);
        b.truncate(b.len() - 3);
        assert_eq!(find_build_id(&b, 4), None);
        // Huge sizes don't overflow.
        let mut h = Vec::new();
        h.extend_from_slice(&u32::MAX.to_le_bytes());
        h.extend_from_slice(&u32::MAX.to_le_bytes());
        h.extend_from_slice(&3u32.to_le_bytes());
        assert_eq!(find_build_id(&h, 8), None);
        assert_eq!(find_build_id(&[], 4), None);
    }
}
