//! Tiny assembly functions perfgate traces in its own calibration child, one per kind of instruction at
//! the probe, and an untraced twin for the bare loop cost. Their bytes are fixed here (not left to the
//! compiler) because the calibration measures exactly what the kernel does with each kind.
//!
//! Each function starts on its own 16-byte boundary, so the 5-byte nop never crosses a page and is
//! optimised by the kernel.

/// A kind of instruction at the probe, as the calibration measures it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// Starts with the 5-byte nop `0f 1f 44 00 00`: the kernel's optimised path.
    Nop5,
    /// Starts with `push %rbp`: emulated in the trap.
    Emulated,
    /// Starts with `mov %edi,%eax`: trap plus single-step.
    SingleStep,
    /// The same body as `SingleStep`, never traced: the loop's own cost.
    Plain,
}

impl Target {
    /// The symbol name perfgate's plan selects it by.
    pub fn symbol(self) -> &'static str {
        match self {
            Target::Nop5 => "perfgate_cal_nop5",
            Target::Emulated => "perfgate_cal_emulated",
            Target::SingleStep => "perfgate_cal_sstep",
            Target::Plain => "perfgate_cal_plain",
        }
    }

    /// Calls the function once.
    pub fn call(self, x: u32) -> u32 {
        let f: unsafe extern "C" fn(u32) -> u32 = match self {
            Target::Nop5 => perfgate_cal_nop5,
            Target::Emulated => perfgate_cal_emulated,
            Target::SingleStep => perfgate_cal_sstep,
            Target::Plain => perfgate_cal_plain,
        };
        // SAFETY: the assembly functions below only move a register and return, per the SysV ABI; the
        // black_box keeps the compiler from inlining or hoisting the call out of the caller's loop.
        unsafe { std::hint::black_box(f)(x) }
    }
}

std::arch::global_asm!(
    ".text",
    ".p2align 4",
    ".globl perfgate_cal_nop5",
    ".type perfgate_cal_nop5,@function",
    "perfgate_cal_nop5:",
    ".byte 0x0f, 0x1f, 0x44, 0x00, 0x00",
    "mov eax, edi",
    "ret",
    ".size perfgate_cal_nop5, .-perfgate_cal_nop5",
    ".p2align 4",
    ".globl perfgate_cal_emulated",
    ".type perfgate_cal_emulated,@function",
    "perfgate_cal_emulated:",
    "push rbp",
    "mov eax, edi",
    "pop rbp",
    "ret",
    ".size perfgate_cal_emulated, .-perfgate_cal_emulated",
    ".p2align 4",
    ".globl perfgate_cal_sstep",
    ".type perfgate_cal_sstep,@function",
    "perfgate_cal_sstep:",
    "mov eax, edi",
    "ret",
    ".size perfgate_cal_sstep, .-perfgate_cal_sstep",
    ".p2align 4",
    ".globl perfgate_cal_plain",
    ".type perfgate_cal_plain,@function",
    "perfgate_cal_plain:",
    "mov eax, edi",
    "ret",
    ".size perfgate_cal_plain, .-perfgate_cal_plain",
);

extern "C" {
    fn perfgate_cal_nop5(x: u32) -> u32;
    fn perfgate_cal_emulated(x: u32) -> u32;
    fn perfgate_cal_sstep(x: u32) -> u32;
    fn perfgate_cal_plain(x: u32) -> u32;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_target_returns_its_argument() {
        for t in [
            Target::Nop5,
            Target::Emulated,
            Target::SingleStep,
            Target::Plain,
        ] {
            assert_eq!(t.call(41), 41, "{}", t.symbol());
        }
    }
}
