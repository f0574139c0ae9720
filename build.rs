//! Builds the BPF program into a libbpf-rs skeleton in OUT_DIR.
use std::env;
use std::path::PathBuf;

use libbpf_cargo::SkeletonBuilder;

const SRC: &str = "bpf/perfgate.bpf.c";

fn main() {
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("OUT_DIR is set by cargo"))
        .join("perfgate.skel.rs");
    // linux/bpf.h includes asm/types.h, which Debian keeps under the multiarch directory.
    let mut clang_args: Vec<String> = ["-I", "bpf", "-Wall", "-O2"].map(String::from).to_vec();
    for dir in ["/usr/include/x86_64-linux-gnu"] {
        if std::path::Path::new(dir).exists() {
            clang_args.push("-I".into());
            clang_args.push(dir.into());
        }
    }
    SkeletonBuilder::new()
        .source(SRC)
        .clang_args(
            clang_args
                .iter()
                .map(std::ffi::OsString::from)
                .collect::<Vec<_>>(),
        )
        .build_and_generate(&out)
        .expect("building bpf/perfgate.bpf.c failed: is clang installed? (make setup)");
    println!("cargo:rerun-if-changed={SRC}");
    println!("cargo:rerun-if-changed=bpf/perfgate.h");
    println!("cargo:rerun-if-changed=bpf/unwind.h");
}
