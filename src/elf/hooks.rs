//! What the exception and stack-switch hooks need from a file beyond its functions: the functions it
//! imports (does it use `makecontext`?), and where a function returns (every `ret` of
//! `_Unwind_Backtrace`, where a backtrace walk ends).
//!
//! Both read only what they need, bounded: the dynamic symbol table through `object` on a file of at most
//! [`MAX_IMPORTS_FILE`] bytes, and one function's bytes with a positioned read of at most
//! [`MAX_FUNCTION`] bytes.
use std::path::Path;

use iced_x86::Mnemonic;

use super::file::{malformed, read_file};
use super::{ElfError, FileOffset, Function};

/// Files larger than this are not searched for imports (the answer is then "none found").
pub const MAX_IMPORTS_FILE: u64 = 512 << 20;
/// Functions longer than this are not decoded.
pub const MAX_FUNCTION: u64 = 1 << 20;

/// The undefined function symbols of the file's dynamic symbol table (what it imports), without
/// versions, sorted and deduplicated.
pub fn imported_functions(path: &Path) -> Result<Vec<String>, ElfError> {
    use object::{Object, ObjectSymbol, SymbolKind};
    let too_big = std::fs::metadata(path).is_ok_and(|m| m.len() > MAX_IMPORTS_FILE);
    if too_big {
        return Ok(Vec::new());
    }
    let bytes = read_file(path, MAX_IMPORTS_FILE, false)?;
    let file = object::File::parse(&*bytes.data).map_err(|e| malformed(path, e.to_string()))?;
    let mut names: Vec<String> = file
        .dynamic_symbols()
        .filter(|s| s.is_undefined() && matches!(s.kind(), SymbolKind::Text | SymbolKind::Unknown))
        .filter_map(|s| s.name().ok())
        .map(|n| n.split('@').next().unwrap_or(n).to_string())
        .filter(|n| !n.is_empty())
        .collect();
    names.sort();
    names.dedup();
    Ok(names)
}

/// File offsets of every `ret` instruction of `function` in the file at `path`, decoded from its first
/// byte (bytes that do not decode are stepped over one at a time).
pub fn return_offsets(path: &Path, function: &Function) -> Result<Vec<FileOffset>, ElfError> {
    if function.size > MAX_FUNCTION {
        return Ok(Vec::new());
    }
    let code = read_at(path, function.offset.0, function.size)?;
    let mut out = Vec::new();
    super::placement::sweep(&code, function.addr, |position, instr| {
        if instr.mnemonic() == Mnemonic::Ret {
            out.push(FileOffset(function.offset.0 + position as u64));
        }
    });
    Ok(out)
}

/// `len` bytes at `offset` of the regular file at `path` (a positioned read; the file may be large).
fn read_at(path: &Path, offset: u64, len: u64) -> Result<Vec<u8>, ElfError> {
    use std::os::unix::fs::FileExt;
    let io = |source| ElfError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::open(path).map_err(io)?;
    let meta = file.metadata().map_err(io)?;
    if !meta.is_file() {
        return Err(ElfError::NotRegularFile {
            path: path.to_path_buf(),
        });
    }
    if offset.checked_add(len).is_none_or(|end| end > meta.len()) {
        return Err(malformed(
            path,
            "the function's code lies past the end of the file",
        ));
    }
    let mut buf = vec![0u8; len as usize];
    file.read_exact_at(&mut buf, offset).map_err(io)?;
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_unwinder_backtrace_returns_and_imports_are_found() {
        let gcc = Path::new("/lib/x86_64-linux-gnu/libgcc_s.so.1");
        let elf = super::super::read_elf(gcc).expect("libgcc_s");
        let bt = elf
            .functions
            .iter()
            .find(|f| f.raw_name.split('@').next() == Some("_Unwind_Backtrace"))
            .expect("_Unwind_Backtrace");
        let rets = return_offsets(gcc, bt).unwrap();
        assert!(!rets.is_empty());
        let data = std::fs::read(gcc).unwrap();
        for r in &rets {
            assert!(r.0 >= bt.offset.0 && r.0 < bt.offset.0 + bt.size);
            // c3 (ret), possibly after a prefix (f3 c3), or c2 imm16.
            let b = &data[r.0 as usize..];
            assert!(matches!(b[0], 0xc3 | 0xc2 | 0xf3 | 0xf2), "{:x?}", &b[..3]);
        }
        let stdcpp = Path::new("/lib/x86_64-linux-gnu/libstdc++.so.6");
        let imports = imported_functions(stdcpp).unwrap();
        assert!(imports.iter().any(|n| n == "_Unwind_RaiseException"));
        assert!(!imports.iter().any(|n| n == "__cxa_begin_catch"));
    }
}
