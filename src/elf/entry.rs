//! How the x86-64 kernel handles a uprobe on a function's first instruction.
//!
//! This follows `arch/x86/kernel/uprobes.c` of Linux 6.18:
//!
//! * `can_optimize()`: a 5-byte NOP (`0f 1f /0` with 5 bytes in total, the
//!   canonical `0f 1f 44 00 00`, or prefixes + `90`) in a 64-bit process is
//!   rewritten into a call to the uprobe trampoline after the first hit: no
//!   trap at all afterwards, the cheapest probe. The 5 bytes must not cross a
//!   page boundary.
//! * `branch_setup_xol_ops()`: the canonical NOPs of the kernel's `x86_nops`
//!   table and anything with opcode `90`, `jmp rel8/rel32`, `call rel32`,
//!   `jcc rel8/rel32` are emulated in the trap handler (no single-step).
//!   Branches with a `66` prefix are refused.
//! * `push_setup_xol_ops()`: `push %reg` (`50`-`57`, or `41 50`-`41 57` for
//!   `%r8`-`%r15`) is emulated.
//! * Everything else (e.g. `endbr64` `f3 0f 1e fa`, `mov`, `sub`) is executed
//!   out of line with a trap and a single-step: two exceptions per hit,
//!   roughly 17 µs each.
//! * `uprobe_init_insn()` refuses instructions with an ES/CS/SS/DS segment
//!   prefix or a LOCK prefix, and some opcodes (`int3`, `hlt`, `in`/`out`,
//!   EVEX, invalid 64-bit opcodes...), and VEX instructions whose opcode byte
//!   (after the prefix) is one of those: see [`kernel_rejects`].

/// How the kernel handles a uprobe on a function's first instruction (the probe kind of a function, in
/// profiles and baselines: serialised as `nop5`, `emulated`, `single-step`, `unknown`).
/// Ordered by cost: `Nop5 < Emulated < SingleStep < Unknown`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum EntryKind {
    /// A 5-byte NOP (`0f 1f 44 00 00`): the kernel optimises it into a
    /// call to the uprobe trampoline, no trap after the first hit. Cheapest.
    Nop5,
    /// The kernel emulates the instruction in the trap handler: `push %reg`,
    /// NOPs, `jmp rel8/rel32`, `call rel32`, `jcc`. One trap per hit.
    Emulated,
    /// Everything else, e.g. `endbr64` (`f3 0f 1e fa`), `mov`, `sub`: trap
    /// plus single-step, about 17 µs per hit. Also instructions the kernel
    /// refuses to probe (see [`kernel_rejects`]).
    SingleStep,
    /// No bytes to look at.
    Unknown,
}

impl EntryKind {
    /// Every kind, cheapest first.
    pub const ALL: [EntryKind; 4] = [
        EntryKind::Nop5,
        EntryKind::Emulated,
        EntryKind::SingleStep,
        EntryKind::Unknown,
    ];

    /// A short human description for reports.
    pub fn describe(&self) -> &'static str {
        match self {
            EntryKind::Nop5 => "5-byte nop (optimised)",
            EntryKind::Emulated => "emulated",
            EntryKind::SingleStep => "single-stepped (slow)",
            EntryKind::Unknown => "unknown",
        }
    }
}

impl std::fmt::Display for EntryKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.describe())
    }
}

/// Legacy prefixes the decoder skips.
fn is_legacy_prefix(b: u8) -> bool {
    matches!(
        b,
        0x26 | 0x2e | 0x36 | 0x3e | 0x64 | 0x65 | 0x66 | 0x67 | 0xf0 | 0xf2 | 0xf3
    )
}

/// Prefixes that make `uprobe_init_insn()` refuse the instruction.
fn is_bad_prefix(b: u8) -> bool {
    matches!(b, 0x26 | 0x2e | 0x36 | 0x3e | 0xf0)
}

/// The start of an instruction: prefixes, REX, then the opcode bytes.
struct Decoded<'a> {
    /// Legacy prefixes.
    prefixes: &'a [u8],
    /// The REX byte immediately before the opcode, if any.
    rex: Option<u8>,
    /// Bytes from the opcode on.
    rest: &'a [u8],
    /// Number of prefix bytes (legacy + REX).
    prefix_len: usize,
}

/// Splits prefixes and opcode. `None` if there is no opcode byte (only
/// prefixes, or more than the 15 bytes an instruction can have).
fn decode(bytes: &[u8]) -> Option<Decoded<'_>> {
    let mut i = 0;
    let mut legacy_end = 0;
    let mut rex = None;
    while let Some(&b) = bytes.get(i) {
        if is_legacy_prefix(b) {
            // A REX byte followed by a legacy prefix is ignored by the CPU.
            rex = None;
            legacy_end = i + 1;
        } else if (0x40..=0x4f).contains(&b) {
            rex = Some(b);
        } else {
            break;
        }
        i += 1;
        if i >= 15 {
            return None;
        }
    }
    let rest = bytes.get(i..).filter(|r| !r.is_empty())?;
    Some(Decoded {
        prefixes: bytes.get(..legacy_end).unwrap_or_default(),
        rex,
        rest,
        prefix_len: i,
    })
}

/// Length of a ModRM operand (ModRM byte, SIB, displacement) starting at
/// `m`, 64-bit addressing. `None` if truncated.
fn modrm_len(m: &[u8]) -> Option<usize> {
    let modrm = *m.first()?;
    let md = modrm >> 6;
    let rm = modrm & 7;
    if md == 3 {
        return Some(1);
    }
    let has_sib = rm == 4;
    let sib_base_is_5 = has_sib && (*m.get(1)? & 7) == 5;
    let disp = match md {
        0 if rm == 5 || sib_base_is_5 => 4,
        0 => 0,
        1 => 1,
        _ => 4,
    };
    Some(1 + usize::from(has_sib) + disp)
}

/// Total length of the instruction if it is a NOP in the sense of Linux
/// 6.18's `can_optimize()`: opcode `90` alone, or `0f 1f /0` (NOPL).
fn nop_len(d: &Decoded<'_>) -> Option<usize> {
    match d.rest {
        [0x90, ..] => Some(d.prefix_len + 1),
        [0x0f, 0x1f, modrm @ ..] => {
            if (*modrm.first()? >> 3) & 7 != 0 {
                return None;
            }
            let len = d.prefix_len + 2 + modrm_len(modrm)?;
            // The whole instruction must be there.
            (len <= d.prefix_len + d.rest.len()).then_some(len)
        }
        _ => None,
    }
}

/// The kernel's `x86_nops` table for 64-bit (`arch/x86/include/asm/nops.h`):
/// the NOPs `branch_setup_xol_ops()` emulates by exact comparison.
const CANONICAL_NOPS: [&[u8]; 11] = [
    &[0x90],
    &[0x66, 0x90],
    &[0x0f, 0x1f, 0x00],
    &[0x0f, 0x1f, 0x40, 0x00],
    &[0x0f, 0x1f, 0x44, 0x00, 0x00],
    &[0x66, 0x0f, 0x1f, 0x44, 0x00, 0x00],
    &[0x0f, 0x1f, 0x80, 0x00, 0x00, 0x00, 0x00],
    &[0x0f, 0x1f, 0x84, 0x00, 0x00, 0x00, 0x00, 0x00],
    &[0x66, 0x0f, 0x1f, 0x84, 0x00, 0x00, 0x00, 0x00, 0x00],
    &[0x66, 0x66, 0x0f, 0x1f, 0x84, 0x00, 0x00, 0x00, 0x00, 0x00],
    &[
        0x66, 0x66, 0x66, 0x0f, 0x1f, 0x84, 0x00, 0x00, 0x00, 0x00, 0x00,
    ],
];

/// `true` for `jmp rel8/rel32`, `call rel32`, `jcc rel8/rel32`.
fn is_relative_branch(rest: &[u8]) -> bool {
    match rest {
        [0xe8 | 0xe9 | 0xeb, ..] => true,
        [op, ..] if (0x70..=0x7f).contains(op) => true,
        [0x0f, op, ..] => (0x80..=0x8f).contains(op),
        _ => false,
    }
}

/// `true` for the opcodes `good_insns_64` of Linux's
/// `arch/x86/kernel/uprobes.c` marks as not probeable.
fn bad_one_byte_opcode(op: u8) -> bool {
    matches!(
        op,
        0x06 | 0x07
            | 0x0e
            | 0x16
            | 0x17
            | 0x1e
            | 0x1f
            | 0x27
            | 0x2f
            | 0x37
            | 0x3f
            | 0x60..=0x62
            | 0x6c..=0x6f
            | 0x82
            | 0x9a
            | 0xcc..=0xcf
            | 0xd4..=0xd6
            | 0xe4..=0xe7
            | 0xea
            | 0xec..=0xef
            | 0xf1
            | 0xf4
            | 0xfa
            | 0xfb
    )
}

/// Why the kernel refuses to place a uprobe on an instruction starting with
/// `bytes`, or `None` if it accepts it (or `bytes` is empty).
///
/// A refused offset makes `uprobe_multi` registration fail when the file is
/// already mapped by a process, so such functions should not be probed.
/// Mirrors `uprobe_init_insn()` (bad prefixes, the `good_insns_64` table) and
/// the `66`-prefixed branch check of `branch_setup_xol_ops()`.
pub fn kernel_rejects(bytes: &[u8]) -> Option<&'static str> {
    if bytes.is_empty() {
        return None;
    }
    let Some(d) = decode(bytes) else {
        return Some("undecodable instruction (prefixes only)");
    };
    if d.prefixes.iter().any(|&p| is_bad_prefix(p)) {
        return Some("segment or lock prefix");
    }
    let op = *d.rest.first()?;
    // The kernel's decoder takes c4/c5 as a VEX prefix (always, in 64-bit
    // mode) and tests the opcode byte after it against the same one-byte
    // table: `vmovd` (c5 f9 6e), `vpxor` (c5 f9 ef) are refused like `outs`,
    // `out`; `vzeroupper` (c5 f8 77) passes like `ja`.
    let (op, vex) = match op {
        0xc5 => match d.rest.get(2) {
            Some(&op) => (op, true),
            None => return Some("truncated VEX instruction"),
        },
        0xc4 => match (d.rest.get(1), d.rest.get(3)) {
            (Some(&rxb_map), Some(&op)) => {
                // The kernel's decoder knows Intel's VEX maps (0f, 0f38, 0f3a)
                // only: AMD's FMA4 (vfmaddsd, glibc's __fma_fma4) is
                // undecodable to it, as is any other map.
                match rxb_map & 0x1f {
                    1 | 2 => {}
                    3 if matches!(op, 0x48 | 0x49 | 0x5c..=0x5f | 0x68..=0x6f | 0x78..=0x7f) => {
                        return Some("AMD FMA4 instruction (undecodable to the kernel)")
                    }
                    3 => {}
                    _ => return Some("VEX instruction of an unknown opcode map"),
                }
                (op, true)
            }
            _ => return Some("truncated VEX instruction"),
        },
        op => (op, false),
    };
    let reason = match op {
        _ if vex && bad_one_byte_opcode(op) => {
            "VEX instruction whose opcode the kernel's table refuses"
        }
        0x06 | 0x07 | 0x0e | 0x16 | 0x17 | 0x1e | 0x1f | 0x27 | 0x2f | 0x37 | 0x3f | 0x60
        | 0x61 | 0x82 | 0x9a | 0xce | 0xd4 | 0xd5 | 0xd6 | 0xea => "opcode invalid in 64-bit mode",
        0x62 => "EVEX (AVX-512) instruction",
        0x6c..=0x6f | 0xe4..=0xe7 | 0xec..=0xef => "in/out instruction",
        0xcc => "int3",
        0xcd => "int N",
        0xcf => "iret",
        0xf1 => "int1",
        0xf4 => "hlt",
        0xfa | 0xfb => "cli/sti",
        _ if vex => return None,
        _ => {
            let is_nop = d.rest.first() == Some(&0x90);
            if !is_nop && is_relative_branch(d.rest) && d.prefixes.contains(&0x66) {
                "16-bit relative branch (66 prefix)"
            } else {
                return None;
            }
        }
    };
    Some(reason)
}

/// Classifies the first instruction of a function from its first bytes.
///
/// Does not know where the instruction is; see [`classify_entry_at`], which
/// also checks that a 5-byte NOP does not cross a page boundary.
pub fn classify_entry(bytes: &[u8]) -> EntryKind {
    if bytes.is_empty() {
        return EntryKind::Unknown;
    }
    if kernel_rejects(bytes).is_some() {
        return EntryKind::SingleStep;
    }
    let Some(d) = decode(bytes) else {
        return EntryKind::SingleStep;
    };
    if nop_len(&d) == Some(5) {
        return EntryKind::Nop5;
    }
    if d.rest.first() == Some(&0x90) || CANONICAL_NOPS.iter().any(|n| bytes.starts_with(n)) {
        return EntryKind::Emulated;
    }
    if is_relative_branch(d.rest) {
        return EntryKind::Emulated;
    }
    if let [op, ..] = d.rest {
        if (0x50..=0x57).contains(op) && d.prefixes.is_empty() && matches!(d.rex, None | Some(0x41))
        {
            return EntryKind::Emulated;
        }
    }
    EntryKind::SingleStep
}

/// Like [`classify_entry`] for an instruction at virtual address `addr`: a
/// 5-byte NOP that crosses a 4 KiB page boundary can't be optimised and is
/// only emulated. (The load bias is page aligned, so the page offset in the
/// file is the page offset at run time.)
pub fn classify_entry_at(bytes: &[u8], addr: u64) -> EntryKind {
    match classify_entry(bytes) {
        EntryKind::Nop5 if 4096 - (addr % 4096) < 5 => {
            // Canonical NOP5 is emulated; other 5-byte NOPs are single-stepped.
            if bytes.starts_with(&[0x0f, 0x1f, 0x44, 0x00, 0x00])
                || decode(bytes).is_some_and(|d| d.rest.first() == Some(&0x90))
            {
                EntryKind::Emulated
            } else {
                EntryKind::SingleStep
            }
        }
        k => k,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nop5_is_optimised() {
        assert_eq!(
            classify_entry(&[0x0f, 0x1f, 0x44, 0x00, 0x00]),
            EntryKind::Nop5
        );
        assert_eq!(
            classify_entry(&[0x0f, 0x1f, 0x44, 0x00, 0x00, 0x55, 0x48, 0x89, 0xe5]),
            EntryKind::Nop5
        );
        // Other 5-byte NOP encodings: 66 + nopl 0(%rax), prefixes + 90.
        assert_eq!(
            classify_entry(&[0x66, 0x0f, 0x1f, 0x40, 0x00]),
            EntryKind::Nop5
        );
        assert_eq!(
            classify_entry(&[0x66, 0x66, 0x66, 0x66, 0x90]),
            EntryKind::Nop5
        );
        // Truncated: not a 5-byte nop.
        assert_eq!(
            classify_entry(&[0x0f, 0x1f, 0x44, 0x00]),
            EntryKind::SingleStep
        );
        // 0f 1f with reg != 0 is not a NOP.
        assert_eq!(
            classify_entry(&[0x0f, 0x1f, 0x4c, 0x00, 0x00]),
            EntryKind::SingleStep
        );
    }

    #[test]
    fn nop5_across_a_page_is_not_optimised() {
        let nop5 = [0x0f, 0x1f, 0x44, 0x00, 0x00];
        assert_eq!(classify_entry_at(&nop5, 0x1000), EntryKind::Nop5);
        assert_eq!(classify_entry_at(&nop5, 0x1ffb), EntryKind::Nop5);
        assert_eq!(classify_entry_at(&nop5, 0x1ffc), EntryKind::Emulated);
        assert_eq!(
            classify_entry_at(&[0x66, 0x0f, 0x1f, 0x40, 0x00], 0x1fff),
            EntryKind::SingleStep
        );
        assert_eq!(classify_entry_at(&[0x55], 0x1fff), EntryKind::Emulated);
    }

    #[test]
    fn emulated_instructions() {
        // push %rbp, push %rbx, push %r12, push %r15
        for b in [&[0x55][..], &[0x53], &[0x41, 0x54], &[0x41, 0x57], &[0x50]] {
            assert_eq!(classify_entry(b), EntryKind::Emulated, "{b:02x?}");
        }
        // nop, xchg-style 66 90, other canonical nops
        assert_eq!(classify_entry(&[0x90]), EntryKind::Emulated);
        assert_eq!(classify_entry(&[0x66, 0x90]), EntryKind::Emulated);
        assert_eq!(classify_entry(&[0x0f, 0x1f, 0x00]), EntryKind::Emulated);
        assert_eq!(
            classify_entry(&[0x0f, 0x1f, 0x40, 0x00]),
            EntryKind::Emulated
        );
        assert_eq!(
            classify_entry(&[0x0f, 0x1f, 0x84, 0, 0, 0, 0, 0]),
            EntryKind::Emulated
        );
        // jmp rel8, jmp rel32, call rel32
        assert_eq!(classify_entry(&[0xeb, 0x10]), EntryKind::Emulated);
        assert_eq!(classify_entry(&[0xe9, 1, 2, 3, 4]), EntryKind::Emulated);
        assert_eq!(classify_entry(&[0xe8, 1, 2, 3, 4]), EntryKind::Emulated);
        // jcc rel8 (je, jg), jcc rel32
        assert_eq!(classify_entry(&[0x74, 0x05]), EntryKind::Emulated);
        assert_eq!(classify_entry(&[0x7f, 0x05]), EntryKind::Emulated);
        assert_eq!(
            classify_entry(&[0x0f, 0x84, 1, 0, 0, 0]),
            EntryKind::Emulated
        );
        assert_eq!(
            classify_entry(&[0x0f, 0x8f, 1, 0, 0, 0]),
            EntryKind::Emulated
        );
        // bnd jmp (f2 prefix) is still emulated
        assert_eq!(
            classify_entry(&[0xf2, 0xe9, 1, 0, 0, 0]),
            EntryKind::Emulated
        );
    }

    #[test]
    fn single_stepped_instructions() {
        // endbr64
        assert_eq!(
            classify_entry(&[0xf3, 0x0f, 0x1e, 0xfa, 0x55]),
            EntryKind::SingleStep
        );
        // mov %rsp,%rbp ; sub $0x10,%rsp ; xor %eax,%eax ; ret
        assert_eq!(classify_entry(&[0x48, 0x89, 0xe5]), EntryKind::SingleStep);
        assert_eq!(
            classify_entry(&[0x48, 0x83, 0xec, 0x10]),
            EntryKind::SingleStep
        );
        assert_eq!(classify_entry(&[0x31, 0xc0]), EntryKind::SingleStep);
        assert_eq!(classify_entry(&[0xc3]), EntryKind::SingleStep);
        // push with a REX.W prefix or a 66 prefix is not emulated
        assert_eq!(classify_entry(&[0x48, 0x55]), EntryKind::SingleStep);
        assert_eq!(classify_entry(&[0x66, 0x55]), EntryKind::SingleStep);
        // pause (f3 90) has opcode 90: emulated as a nop
        assert_eq!(classify_entry(&[0xf3, 0x90]), EntryKind::Emulated);
        // prefixes only
        assert_eq!(classify_entry(&[0x66, 0x66]), EntryKind::SingleStep);
        assert_eq!(classify_entry(&[0x48]), EntryKind::SingleStep);
    }

    #[test]
    fn unknown_without_bytes() {
        assert_eq!(classify_entry(&[]), EntryKind::Unknown);
        assert_eq!(kernel_rejects(&[]), None);
    }

    #[test]
    fn rejected_instructions() {
        assert_eq!(kernel_rejects(&[0xcc]), Some("int3"));
        assert_eq!(kernel_rejects(&[0xf4]), Some("hlt"));
        assert!(kernel_rejects(&[0xf0, 0x48, 0x0f, 0xb1, 0x0a]).is_some()); // lock cmpxchg
        assert!(kernel_rejects(&[0x2e, 0x0f, 0x1f, 0x84, 0, 0, 0, 0, 0]).is_some()); // cs nopw
        assert!(kernel_rejects(&[0x3e, 0xff, 0xe0]).is_some()); // notrack jmp *%rax
        assert!(kernel_rejects(&[0x66, 0xe8, 0x00, 0x00]).is_some()); // callw
        assert!(kernel_rejects(&[0x62, 0xf1, 0x7c, 0x48, 0x10, 0x06]).is_some()); // EVEX
        assert_eq!(classify_entry(&[0xcc]), EntryKind::SingleStep);
        // Accepted ones.
        for b in [
            &[0x55][..],
            &[0xf3, 0x0f, 0x1e, 0xfa],
            &[0x0f, 0x1f, 0x44, 0x00, 0x00],
            &[0x66, 0x90],
            &[0x64, 0x48, 0x8b, 0x04, 0x25, 0x28, 0, 0, 0], // mov %fs:0x28,%rax
            &[0xc5, 0xf8, 0x77],                            // vzeroupper
            &[0xc5, 0xfd, 0x74, 0x0f],                      // vpcmpeqb (%rdi),%ymm0,%ymm1
            &[0xc4, 0xe2, 0x7d, 0x78, 0xc0],                // vpbroadcastb %xmm0,%ymm0
            &[0xc5, 0xf9, 0x28, 0xc1],                      // vmovapd %xmm1,%xmm0
            &[0xc4, 0xe1, 0xf9, 0x7e, 0xc0],                // vmovq %xmm0,%rax
        ] {
            assert_eq!(kernel_rejects(b), None, "{b:02x?}");
        }
        // VEX instructions are judged by the opcode after the prefix, as in
        // glibc's __memset_avx2_unaligned_erms (vmovd %esi,%xmm0).
        for b in [
            &[0xc5, 0xf9, 0x6e, 0xc6][..],   // vmovd %esi,%xmm0
            &[0xc5, 0xf9, 0xef, 0xc0],       // vpxor %xmm0,%xmm0,%xmm0
            &[0xc4, 0xc1, 0x7d, 0xef, 0xc0], // vpxor with VEX3
            &[0xc5, 0xfe, 0x6f, 0x0e],       // vmovdqu (%rsi),%ymm1
            &[0xc5, 0xf9],                   // truncated
            &[0xc4, 0xe2, 0x7d],             // truncated
        ] {
            assert!(kernel_rejects(b).is_some(), "{b:02x?}");
            assert_eq!(classify_entry(b), EntryKind::SingleStep);
        }
    }

    #[test]
    fn descriptions() {
        assert_eq!(EntryKind::Nop5.describe(), "5-byte nop (optimised)");
        assert_eq!(EntryKind::Emulated.describe(), "emulated");
        assert_eq!(EntryKind::SingleStep.describe(), "single-stepped (slow)");
        assert_eq!(EntryKind::Unknown.to_string(), "unknown");
    }

    #[test]
    fn hostile_bytes_never_panic() {
        let mut v = vec![0x66u8; 40];
        assert_eq!(classify_entry(&v), EntryKind::SingleStep);
        v.push(0x90);
        let _ = classify_entry(&v);
        for a in 0..=255u8 {
            for b in [0x00u8, 0x0f, 0x1f, 0x44, 0x84, 0xff] {
                let _ = classify_entry(&[a, b]);
                let _ = classify_entry(&[0x0f, a, b]);
                let _ = classify_entry(&[0x0f, 0x1f, a, b]);
                let _ = kernel_rejects(&[a, b, a]);
                let _ = classify_entry_at(&[a], u64::MAX);
            }
        }
    }
}
