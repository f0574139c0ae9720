//! The ELF layer on the fixture binaries: symbols, file offsets, stripped files, library resolution,
//! demangling. No kernel involved.
mod common;
use common::*;

use perfgate::elf::{self, EntryKind, LoaderEnv, Resolution};

fn bytes_at(path: &std::path::Path, offset: u64, n: usize) -> Vec<u8> {
    let data = std::fs::read(path).unwrap();
    data[offset as usize..offset as usize + n].to_vec()
}

#[test]
fn work_functions_with_sizes_and_file_offsets() {
    let path = fixture("work");
    let f = elf::read_elf(&path).unwrap();
    assert!(f.has_symtab);
    assert!(f.build_id.as_deref().is_some_and(|b| b.len() == 40));
    for name in ["main", "work1", "work2"] {
        let func = f
            .functions
            .iter()
            .find(|x| x.name == name)
            .unwrap_or_else(|| panic!("{name}"));
        assert!(func.size > 0);
        // The entry bytes read through the offset are the function's code: -O0 starts with push %rbp.
        assert_eq!(bytes_at(&path, func.offset.0, 1), vec![0x55], "{name}");
        assert_eq!(func.entry_bytes[0], 0x55);
        assert_eq!(elf::classify_entry(&func.entry_bytes), EntryKind::Emulated);
    }
    // PLT stubs are never functions.
    assert!(f.functions.iter().all(|x| !x.raw_name.contains("@plt")));
}

#[test]
fn stripped_work_still_has_its_exported_functions() {
    let f = elf::read_elf(&fixture("work_stripped")).unwrap();
    assert!(!f.has_symtab);
    let names: Vec<&str> = f.functions.iter().map(|x| x.name.as_str()).collect();
    for n in ["main", "work1", "work2"] {
        assert!(names.contains(&n), "{n} in {names:?}");
    }
}

#[test]
fn entry_kinds_of_the_entry_fixture() {
    let f = elf::read_elf(&fixture("entry")).unwrap();
    let kind = |n: &str| {
        let func = f.functions.iter().find(|x| x.name == n).unwrap();
        elf::classify_entry_at(&func.entry_bytes, func.addr)
    };
    assert_eq!(kind("f_nop5"), EntryKind::Nop5);
    assert_eq!(kind("f_emulated"), EntryKind::Emulated);
    assert_eq!(kind("f_sstep"), EntryKind::SingleStep);
}

#[test]
fn uselib_finds_libfixture_through_runpath_origin() {
    let f = elf::read_elf(&fixture("uselib")).unwrap();
    assert_eq!(f.runpath, vec!["$ORIGIN".to_string()]);
    let libs = elf::resolve_libraries(&f, &LoaderEnv::from_system());
    let lib = libs
        .iter()
        .find(|l| l.soname == "libfixture.so")
        .expect("libfixture.so needed");
    assert_eq!(
        lib.path.as_deref(),
        Some(fixture("libfixture.so").as_path())
    );
    assert_eq!(lib.how, Resolution::Runpath);
    let libc = libs.iter().find(|l| l.soname == "libc.so.6").unwrap();
    assert!(libc.path.as_ref().is_some_and(|p| p.exists()));
}

#[test]
fn cpp_symbols_are_demangled_and_constructor_aliases_merged() {
    let f = elf::read_elf(&fixture("cpp")).unwrap();
    let find = |n: &str| f.functions.iter().filter(|x| x.name == n).count();
    assert_eq!(find("shapes::Circle::area() const"), 1);
    // C1 and C2 constructors share an address: one function, the other name an alias.
    let ctor = f
        .functions
        .iter()
        .find(|x| x.name == "shapes::Circle::Circle(double)")
        .unwrap();
    assert!(!ctor.aliases.is_empty(), "{ctor:?}");
    assert_eq!(
        elf::demangle("_ZN6shapes6CircleC2Ed"),
        "shapes::Circle::Circle(double)"
    );
    assert_eq!(
        elf::demangle("_ZN6shapesplERKNS_4Vec2ES2_"),
        "shapes::operator+(shapes::Vec2 const&, shapes::Vec2 const&)"
    );
    assert_eq!(
        elf::demangle("_ZN4core3fmt5write17h0123456789abcdefE"),
        "core::fmt::write"
    );
    assert_eq!(elf::demangle("plain_c"), "plain_c");
}

#[test]
fn errors_name_the_file() {
    let e = elf::read_elf(&fixture("not_elf")).unwrap_err().to_string();
    assert!(
        e.contains("not_elf") && e.contains("not an ELF file"),
        "{e}"
    );
    let e = elf::read_elf(&fixture("work_aarch64"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("AArch64"), "{e}");
}
