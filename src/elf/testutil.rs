//! Test helpers: scratch directories, C compilation, and an allocator that
//! measures what one read allocates (the lib's test binary only).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

static COUNTER: AtomicUsize = AtomicUsize::new(0);

pub(crate) use crate::sys::counting_alloc::peak_allocation;

/// A directory under the system temp dir, removed on drop.
pub(crate) struct Scratch {
    pub(crate) dir: PathBuf,
}

impl Scratch {
    pub(crate) fn new(tag: &str) -> Scratch {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let dir = std::env::temp_dir().join(format!(
            "perfgate-elf-test-{}-{tag}-{n}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch { dir }
    }

    pub(crate) fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    pub(crate) fn write(&self, name: &str, contents: &str) -> PathBuf {
        let p = self.path(name);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(&p, contents).unwrap();
        p
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Runs a command in `dir`, panicking with its output if it fails.
pub(crate) fn run(dir: &Path, program: &str, args: &[&str]) {
    let out = Command::new(program)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("running {program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Compiles with `cc` in `dir`.
pub(crate) fn cc(dir: &Path, args: &[&str]) {
    run(dir, "cc", args);
}

/// A C program exercising the symbol rules: known-size assembly functions
/// with known first bytes, aliases, an ifunc, a zero-size symbol, a function
/// symbol in `.data`, a fake symbol in `.plt.sec`, imports through the PLT.
pub(crate) const PROG_C: &str = r#"
#include <stdio.h>

__asm__(
    ".text\n"
    ".globl known_size\n.type known_size,@function\n"
    "known_size:\n nop\n nop\n nop\n ret\n.size known_size, .-known_size\n"
    ".globl known_nop5\n.type known_nop5,@function\n"
    "known_nop5:\n .byte 0x0f,0x1f,0x44,0x00,0x00\n ret\n.size known_nop5, .-known_nop5\n"
    ".globl known_endbr\n.type known_endbr,@function\n"
    "known_endbr:\n .byte 0xf3,0x0f,0x1e,0xfa\n ret\n.size known_endbr, .-known_endbr\n"
    ".globl known_push\n.type known_push,@function\n"
    "known_push:\n push %rbp\n pop %rbp\n ret\n.size known_push, .-known_push\n"
    ".globl zero_sized\n.type zero_sized,@function\n"
    "zero_sized:\n ret\n"
    ".data\n"
    ".globl data_func\n.type data_func,@function\n"
    "data_func:\n .byte 0xc3\n.size data_func, 1\n"
    ".section .plt.sec,\"ax\",@progbits\n"
    ".globl fake_plt\n.type fake_plt,@function\n"
    "fake_plt:\n ret\n.size fake_plt, 1\n"
    ".text\n"
);

int known_size(void);
int known_nop5(void);
int known_endbr(void);
int known_push(void);
int zero_sized(void);
int data_func(void);

int compute(int x) {
    int s = 0;
    for (int i = 0; i < x; i++) s += i * i;
    return s;
}

static __attribute__((noinline)) int helper(int x) { return x * 3 + 1; }

int real_impl(int x) { return x + 42; }
int alias_name(int x) __attribute__((alias("real_impl")));
int another_alias(int x) __attribute__((alias("real_impl")));
int __underscored_alias(int x) __attribute__((alias("real_impl")));

__attribute__((weak)) int weak_fn(void) { return 7; }

static int (*resolve_fast(void))(int) { return real_impl; }
int fast(int) __attribute__((ifunc("resolve_fast")));

int main(int argc, char **argv) {
    (void)argv;
    printf("%d\n", compute(argc) + helper(argc) + alias_name(argc) + weak_fn() + fast(argc));
    puts("done");
    if (argc > 100) return known_size() + known_nop5() + known_endbr() + known_push() + zero_sized();
    return 0;
}
"#;

/// Builds `prog` (with symbols, `-rdynamic`) and `prog-stripped` in `s`.
pub(crate) fn build_prog(s: &Scratch) -> (PathBuf, PathBuf) {
    s.write("prog.c", PROG_C);
    cc(
        &s.dir,
        &[
            "-O1",
            "-fno-inline",
            "-rdynamic",
            "-Wl,--build-id=sha1",
            "-o",
            "prog",
            "prog.c",
        ],
    );
    std::fs::copy(s.path("prog"), s.path("prog-stripped")).unwrap();
    run(&s.dir, "strip", &["--strip-all", "prog-stripped"]);
    (s.path("prog"), s.path("prog-stripped"))
}

/// The path of libc found through the system's ld.so.cache.
pub(crate) fn system_libc() -> PathBuf {
    let cache = super::LdCache::load(Path::new(super::LD_SO_CACHE)).unwrap();
    cache.lookup("libc.so.6").unwrap().to_path_buf()
}

/// Copies `src` to `dst` with `e_machine` patched to AArch64 (183).
pub(crate) fn patch_to_aarch64(src: &Path, dst: &Path) {
    let mut b = std::fs::read(src).unwrap();
    b[18] = 183;
    b[19] = 0;
    std::fs::write(dst, b).unwrap();
}

/// A symbol for [`tiny_elf`]: name offset in the string table, value, size,
/// `st_info`, `st_shndx`.
pub(crate) struct TinySym {
    pub(crate) name: u32,
    pub(crate) value: u64,
    pub(crate) size: u64,
    pub(crate) info: u8,
    pub(crate) shndx: u16,
}

/// Where [`tiny_elf`] puts its code.
pub(crate) const TINY_TEXT_OFFSET: u64 = 0x100;
/// Virtual address of [`TINY_TEXT_OFFSET`].
pub(crate) const TINY_TEXT_ADDR: u64 = 0x40_0100;

/// A minimal x86-64 `ET_EXEC` file written by hand: one `R+X` `PT_LOAD`
/// mapping the file from offset 0 at 0x400000 (plus `bss` bytes of memory
/// beyond the file), sections `.text` (index 1, `text` at offset 0x100),
/// `.symtab` (2), `.strtab` (3), `.shstrtab` (4).
pub(crate) fn tiny_elf(text: &[u8], strtab: &[u8], syms: &[TinySym], bss: u64) -> Vec<u8> {
    fn p16(v: &mut Vec<u8>, x: u16) {
        v.extend_from_slice(&x.to_le_bytes());
    }
    fn p32(v: &mut Vec<u8>, x: u32) {
        v.extend_from_slice(&x.to_le_bytes());
    }
    fn p64(v: &mut Vec<u8>, x: u64) {
        v.extend_from_slice(&x.to_le_bytes());
    }
    let mut f = vec![0u8; TINY_TEXT_OFFSET as usize];
    f.extend_from_slice(text);
    let text_end = f.len() as u64;
    let text_len = text.len() as u64;
    let strtab_off = f.len() as u64;
    f.extend_from_slice(strtab);
    while f.len() % 8 != 0 {
        f.push(0);
    }
    let symtab_off = f.len() as u64;
    f.extend_from_slice(&[0u8; 24]);
    for s in syms {
        p32(&mut f, s.name);
        f.push(s.info);
        f.push(0);
        p16(&mut f, s.shndx);
        p64(&mut f, s.value);
        p64(&mut f, s.size);
    }
    let symtab_size = f.len() as u64 - symtab_off;
    let shstrtab = b"\0.text\0.symtab\0.strtab\0.shstrtab\0";
    let shstrtab_off = f.len() as u64;
    f.extend_from_slice(shstrtab);
    while f.len() % 8 != 0 {
        f.push(0);
    }
    let shoff = f.len() as u64;
    // name, type, flags, addr, offset, size, link, info, entsize
    type Shdr = (u32, u32, u64, u64, u64, u64, u32, u32, u64);
    let sections: [Shdr; 5] = [
        (0, 0, 0, 0, 0, 0, 0, 0, 0),
        (1, 1, 6, TINY_TEXT_ADDR, TINY_TEXT_OFFSET, text_len, 0, 0, 0),
        (7, 2, 0, 0, symtab_off, symtab_size, 3, 1, 24),
        (15, 3, 0, 0, strtab_off, strtab.len() as u64, 0, 0, 0),
        (23, 3, 0, 0, shstrtab_off, shstrtab.len() as u64, 0, 0, 0),
    ];
    for (name, ty, flags, addr, off, size, link, info, entsize) in sections {
        p32(&mut f, name);
        p32(&mut f, ty);
        p64(&mut f, flags);
        p64(&mut f, addr);
        p64(&mut f, off);
        p64(&mut f, size);
        p32(&mut f, link);
        p32(&mut f, info);
        p64(&mut f, 8);
        p64(&mut f, entsize);
    }
    // ELF header.
    let mut h = Vec::new();
    h.extend_from_slice(b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0");
    p16(&mut h, 2); // ET_EXEC
    p16(&mut h, 62); // EM_X86_64
    p32(&mut h, 1);
    p64(&mut h, TINY_TEXT_ADDR); // entry
    p64(&mut h, 64); // phoff
    p64(&mut h, shoff);
    p32(&mut h, 0); // flags
    p16(&mut h, 64);
    p16(&mut h, 56);
    p16(&mut h, 1); // phnum
    p16(&mut h, 64);
    p16(&mut h, 5); // shnum
    p16(&mut h, 4); // shstrndx

    // PT_LOAD R+X covering [0, text_end) plus bss.
    p32(&mut h, 1);
    p32(&mut h, 5);
    p64(&mut h, 0);
    p64(&mut h, 0x40_0000);
    p64(&mut h, 0x40_0000);
    p64(&mut h, text_end);
    p64(&mut h, text_end + bss);
    p64(&mut h, 0x1000);
    f[..h.len()].copy_from_slice(&h);
    f
}
