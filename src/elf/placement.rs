//! Where to put a function's uprobe: the cheapest instruction near its start
//! that sees the same call as its first byte.
//!
//! The kernel's cost per traced call depends on the instruction under the
//! probe ([`EntryKind`]): a 5-byte nop is optimised (~0.9 µs per call with the
//! return probe), `push %reg`, nops and relative branches are emulated in the
//! trap (~1 µs), anything else, `endbr64` included, is single-stepped
//! (~10 µs). The probe pair (entry uprobe + uretprobe) need not sit on the
//! first byte: the uretprobe takes the return address from `[%rsp]` when the
//! entry probe fires, so any later point works as long as, on the way there,
//! `%rsp` and `[%rsp]` are untouched and the point is reached exactly once per
//! call. [`place_probe`] finds the cheapest such point.
//!
//! Invariants of a [`Placement`] (each one a rule of the search, tested):
//!
//! * `offset` is the start of an instruction of a linear sweep of the whole
//!   function, and reached from `+0` by straight-line fall-through: every
//!   instruction in `[0, offset)` (the *skipped prefix*) has no control flow
//!   of its own (no branch, call, return, interrupt, `xbegin`...), does not
//!   change `%rsp` (no push/pop/call/`sub %rsp`/`leave`, no implicit stack
//!   use at all), writes no memory at all, writes no segment register, is not
//!   privileged or a save/restore instruction, and is not refused by the
//!   kernel ([`kernel_rejects`]).
//!
//!   No memory write at all, not only none through `%rsp`: a write through
//!   another register may alias the return address, and a leaf function's
//!   red-zone store below `%rsp` would be overwritten when the kernel turns
//!   a 5-byte nop into a `call` to its trampoline (harmless at `+0`, where
//!   nothing lives below `%rsp` yet).
//! * The instruction *at* `offset` may change `%rsp` or branch (`push`,
//!   `jcc`, `call rel32`...): the probe fires before it executes.
//! * No direct branch of the function (nor any address the caller says is
//!   entered from outside, see [`place_probe_with`]) lands in `(0, offset]`:
//!   a branch there would make the probe fire again in the middle of the
//!   call, with `%rsp` possibly pointing at a saved register instead of the
//!   return address. A branch to `+0` itself is allowed: reaching `+0` again
//!   is a (tail) call, with the entry's stack, and the prefix then runs as on
//!   any call.
//! * If any branch target falls inside an instruction of the sweep, the
//!   sweep may be out of step with the real code (data in `.text`,
//!   overlapping instructions) and could have missed a branch into the
//!   prefix: the probe stays at `+0`. The same if any bytes of the function
//!   do not decode.
//! * Jump tables (`jmp *%rax`, `jmp *(%rdx,%rax,8)`) have targets a sweep
//!   cannot see. In a function with such an indirect jump, only an `endbr64`
//!   at `+0` may be skipped, so the point is `+0` or `+4`. Honestly, that is
//!   an argument about compiled code, not a proof: a jump-table target at
//!   `+4` would be a loop header (the switch's block is reached again), and
//!   `+4` only wins when it holds a `push`, a nop, a `jcc` or a `call`/`jmp`,
//!   none of which a compiler puts at a loop header that is also the entry
//!   (a loop does not re-push a callee-saved register; a `jcc` there would
//!   test flags the caller left; a `call` there would run with the stack
//!   misaligned; an alignment nop sits *before* the header's label). Skipping
//!   further (a `test`, a `mov`) is refused because a loop header that
//!   begins with a load or a compare is exactly what an interpreter's
//!   `for (;;) switch (*pc++)` looks like. `jmp *sym(%rip)` (a tail call
//!   through the GOT) has no table and does not count.
//! * `kind` is never worse than `at_entry_kind` (Nop5 < Emulated <
//!   SingleStep); on a tie the earliest point wins, so an equal-cost move is
//!   never made. A 5-byte nop that crosses a page boundary is not optimised,
//!   as in [`classify_entry_at`].
//!
//! What the search does not know: branches into the function from other
//! functions (GCC's `foo.cold` parts jump back into `foo`, glibc's assembly
//! has entry points inside other functions) are invisible in one function's
//! bytes; a caller that swept the whole file passes them to
//! [`place_probe_with`] (see [`direct_branch_targets`]), and [`place_all`]
//! does exactly that for a file's function list: use it, not
//! [`place_probe`], for real files (in Debian 12's libc it keeps
//! `memcpy@GLIBC_2.2.5` at `+0`: unexported code just before it, another
//! entry point of the same assembly, jumps to `memcpy+3`).
//! Indirect jumps from
//! other functions into the middle of this one are not something compiled
//! code does. A fault in a skipped instruction (a load through a bad
//! pointer) means the probe never fires for that call, while a probe at `+0`
//! would have seen an entry without a return. Argument registers seen by the
//! entry probe are those at `offset`, after the prefix ran.
//!
//! Pure: no I/O. Work and memory are linear in the length of `code`, which
//! the caller bounds.

use iced_x86::{
    Decoder, DecoderError, DecoderOptions, FlowControl, Instruction, InstructionInfoFactory,
    Mnemonic, OpAccess, OpKind, Register,
};

use super::entry::{classify_entry_at, kernel_rejects, EntryKind};
use super::Function;

/// Where to put a function's probe, and why there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Placement {
    /// Bytes from the function's first byte to the probed instruction (add it
    /// to the function's address or file offset).
    pub offset: u64,
    /// How the kernel handles a probe at `offset`.
    pub kind: EntryKind,
    /// How the kernel would handle a probe at `+0`, for comparison.
    pub at_entry_kind: EntryKind,
    /// Instructions skipped between `+0` and `offset`.
    pub skipped_instructions: u32,
    /// Why no later point was considered.
    pub reason: StopReason,
}

impl Placement {
    /// `true` if the probe is not on the function's first byte.
    pub fn moved(&self) -> bool {
        self.offset != 0
    }
}

/// Why the search for a cheaper point stopped where it did. An `offset` is
/// from the function's first byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum StopReason {
    /// The cheapest kind (an optimisable 5-byte nop) was found.
    CheapestFound,
    /// No bytes: nothing to decode.
    NoBytes,
    /// The bytes at `offset` are not an instruction (or the last one is cut
    /// off by the end of the function): the sweep cannot be trusted, the
    /// probe stays at `+0`.
    Undecodable {
        /// Where decoding failed.
        offset: u64,
    },
    /// A branch lands inside an instruction of the sweep at `offset`: the
    /// sweep may be out of step, the probe stays at `+0`.
    MisalignedBranchTarget {
        /// The branch target.
        offset: u64,
    },
    /// The instruction at `offset` changes `%rsp` (or uses the stack).
    MovesStackPointer {
        /// The instruction.
        offset: u64,
    },
    /// The instruction at `offset` writes memory.
    WritesMemory {
        /// The instruction.
        offset: u64,
    },
    /// The instruction at `offset` is a branch, call, return, interrupt...
    ControlFlow {
        /// The instruction.
        offset: u64,
    },
    /// The kernel refuses to probe the instruction at `offset`.
    KernelRejects {
        /// The instruction.
        offset: u64,
    },
    /// The instruction at `offset` is privileged, a save/restore
    /// (`xsave`...), or writes a segment register: not worth reasoning about.
    Unusual {
        /// The instruction.
        offset: u64,
    },
    /// A direct branch (or an entry from outside) lands at `offset`: no
    /// point at or after it may be used.
    BranchTarget {
        /// The branch target.
        offset: u64,
    },
    /// The function has an indirect jump (at `offset`) whose targets are
    /// unknown: only an `endbr64` at `+0` may be skipped.
    IndirectJump {
        /// The indirect jump.
        offset: u64,
    },
    /// Every instruction of the function could be skipped.
    EndOfFunction,
}

impl StopReason {
    /// A short description for reports, without the offset.
    pub fn describe(&self) -> &'static str {
        match self {
            StopReason::CheapestFound => "cheapest point found",
            StopReason::NoBytes => "no bytes",
            StopReason::Undecodable { .. } => "undecodable bytes",
            StopReason::MisalignedBranchTarget { .. } => "branch into the middle of an instruction",
            StopReason::MovesStackPointer { .. } => "instruction moves %rsp",
            StopReason::WritesMemory { .. } => "instruction writes memory",
            StopReason::ControlFlow { .. } => "branch, call or return",
            StopReason::KernelRejects { .. } => "instruction refused by the kernel",
            StopReason::Unusual { .. } => "privileged or unusual instruction",
            StopReason::BranchTarget { .. } => "a branch lands in the prefix",
            StopReason::IndirectJump { .. } => "indirect jump (jump table?)",
            StopReason::EndOfFunction => "end of function",
        }
    }
}

/// Cost order of the kinds: lower is cheaper. `Unknown` is worst, so a known
/// kind always replaces it.
fn cost_rank(kind: EntryKind) -> u8 {
    match kind {
        EntryKind::Nop5 => 0,
        EntryKind::Emulated => 1,
        EntryKind::SingleStep => 2,
        EntryKind::Unknown => 3,
    }
}

/// `endbr64`, the CET landing pad GCC puts at every function with
/// `-fcf-protection`.
const ENDBR64: [u8; 4] = [0xf3, 0x0f, 0x1e, 0xfa];

/// The cheapest probe point of the function whose bytes are `code` (all of
/// them: its symbol size) at virtual address `addr`, considering only the
/// function's own branches. See the module doc for the rules.
pub fn place_probe(code: &[u8], addr: u64) -> Placement {
    place_probe_with(code, addr, &[])
}

/// Like [`place_probe`], with `entered_from_outside`: virtual addresses that
/// code outside the function jumps or calls to (branch targets found in
/// other functions of the file, other symbols' addresses). Those inside the
/// function count as branch targets; the others are ignored, so the caller
/// may pass one sorted list for the whole file.
pub fn place_probe_with(code: &[u8], addr: u64, entered_from_outside: &[u64]) -> Placement {
    let at_entry_kind = classify_entry_at(code, addr);
    let stay = |reason| Placement {
        offset: 0,
        kind: at_entry_kind,
        at_entry_kind,
        skipped_instructions: 0,
        reason,
    };
    if code.is_empty() {
        return stay(StopReason::NoBytes);
    }
    if at_entry_kind == EntryKind::Nop5 {
        return stay(StopReason::CheapestFound);
    }
    let sweep = match Sweep::run(code, addr) {
        Ok(s) => s,
        Err(offset) => return stay(StopReason::Undecodable { offset }),
    };
    let end = addr.saturating_add(code.len() as u64);
    let outside = entered_from_outside
        .iter()
        .filter(|&&t| t > addr && t < end)
        .map(|&t| t - addr);
    // The lowest target after +0 bounds the search; any target that is not
    // an instruction start means the sweep is not to be trusted.
    let mut first_target: Option<u64> = None;
    for t in sweep.inner_targets.iter().copied().chain(outside) {
        if sweep.instruction_starts.binary_search(&t).is_err() {
            return stay(StopReason::MisalignedBranchTarget { offset: t });
        }
        first_target = Some(first_target.map_or(t, |f| f.min(t)));
    }
    // With an unknown jump table, only an endbr64 at +0 may be skipped.
    let farthest = match sweep.indirect_jump {
        Some(_) if code.starts_with(&ENDBR64) => ENDBR64.len() as u64,
        Some(_) => 0,
        None => u64::MAX,
    };

    let mut best = stay(StopReason::EndOfFunction);
    for (skipped, step) in sweep.prefix.iter().enumerate() {
        let offset = step.offset;
        if offset > 0 {
            if let Some(t) = first_target.filter(|&t| t <= offset) {
                best.reason = StopReason::BranchTarget { offset: t };
                return best;
            }
            if offset > farthest {
                best.reason = StopReason::IndirectJump {
                    offset: sweep.indirect_jump.unwrap_or_default(),
                };
                return best;
            }
            // `step.offset` is an instruction start inside `code`.
            let bytes = code.get(offset as usize..).unwrap_or_default();
            let kind = classify_entry_at(bytes, addr.wrapping_add(offset));
            if kernel_rejects(bytes).is_none() && cost_rank(kind) < cost_rank(best.kind) {
                best.offset = offset;
                best.kind = kind;
                best.skipped_instructions = u32::try_from(skipped).unwrap_or(u32::MAX);
            }
            if best.kind == EntryKind::Nop5 {
                best.reason = StopReason::CheapestFound;
                return best;
            }
        }
        if let Some(reason) = step.cannot_skip {
            best.reason = reason;
            return best;
        }
    }
    best
}

/// Every direct branch target (jumps, conditional jumps, calls, `loop`,
/// `xbegin`) in the code at `addr`, as virtual addresses, including those
/// outside it: a caller sweeping a whole file collects them for
/// [`place_probe_with`]. Undecodable bytes are stepped over one at a time,
/// so that code after data is still swept; what data decodes to only adds
/// targets, which only ever keeps probes nearer to `+0`.
pub fn direct_branch_targets(code: &[u8], addr: u64) -> Vec<u64> {
    let mut targets = Vec::new();
    sweep(code, addr, |_, instr| {
        targets.extend(near_branch_target(instr))
    });
    targets
}

/// Calls `each(position, instruction)` for every instruction of `code` (at `addr`) in order,
/// stepping over undecodable bytes one at a time so that code after data is still swept.
pub fn sweep(code: &[u8], addr: u64, mut each: impl FnMut(usize, &Instruction)) {
    let mut decoder = Decoder::with_ip(64, code, addr, DecoderOptions::NONE);
    let mut instr = Instruction::default();
    while decoder.can_decode() {
        let position = decoder.position();
        decoder.decode_out(&mut instr);
        if decoder.last_error() != DecoderError::None {
            // Resynchronise on the next byte (`position + 1 <= len`).
            let next = position + 1;
            if decoder.set_position(next).is_err() {
                break;
            }
            decoder.set_ip(addr.wrapping_add(next as u64));
            continue;
        }
        each(position, &instr);
    }
}

/// The bytes of `function` in `file` (the whole file's contents), or `None`
/// if its range is not inside the file.
pub fn function_code<'a>(file: &'a [u8], function: &Function) -> Option<&'a [u8]> {
    let start = usize::try_from(function.offset.0).ok()?;
    let len = usize::try_from(function.size).ok()?;
    file.get(start..start.checked_add(len)?)
}

/// Placements for `functions` (in their order), all from the file whose
/// contents are `file`, with what one function cannot see taken into
/// account: the direct branches of every other function and of the code
/// between them (`foo.cold` jumping back into `foo`; in a stripped file the
/// static functions are such gaps), and every function start (glibc's
/// assembly has entry points inside other functions). A gap is swept when
/// it is contiguous in the file and in memory (the same segment); code before
/// the first and after the last function is not. A function whose range is
/// not inside the file gets the placement of no bytes (`+0`,
/// [`EntryKind::Unknown`]).
///
/// Work is about two sweeps of the code; memory is linear in its size.
pub fn place_all(file: &[u8], functions: &[Function]) -> Vec<Placement> {
    let mut entered: Vec<u64> = functions.iter().map(|f| f.addr).collect();
    for f in functions {
        if let Some(code) = function_code(file, f) {
            entered.extend(direct_branch_targets(code, f.addr));
        }
    }
    for (addr, code) in gaps(file, functions) {
        entered.extend(direct_branch_targets(code, addr));
    }
    entered.sort_unstable();
    entered.dedup();
    functions
        .iter()
        .map(|f| {
            let code = function_code(file, f).unwrap_or_default();
            place_probe_with(code, f.addr, within(&entered, f.addr, code.len()))
        })
        .collect()
}

/// The code between consecutive functions (by address) that lies at the
/// same distance in the file as in memory: `(address, bytes)`. Overlapping
/// functions leave no gap.
fn gaps<'a>(file: &'a [u8], functions: &[Function]) -> Vec<(u64, &'a [u8])> {
    let mut by_addr: Vec<&Function> = functions.iter().collect();
    by_addr.sort_unstable_by_key(|f| f.addr);
    let mut gaps = Vec::new();
    let mut end = None::<(u64, u64)>; // (address, file offset) just past the code so far
    for f in by_addr {
        if let Some((end_addr, end_offset)) = end {
            let same_distance = f.addr.checked_sub(end_addr) == f.offset.0.checked_sub(end_offset);
            if f.addr > end_addr && same_distance {
                let bytes = usize::try_from(end_offset)
                    .ok()
                    .zip(usize::try_from(f.offset.0).ok())
                    .and_then(|(a, b)| file.get(a..b));
                gaps.extend(bytes.map(|b| (end_addr, b)));
            }
        }
        let f_end = (
            f.addr.saturating_add(f.size),
            f.offset.0.saturating_add(f.size),
        );
        end = Some(match end {
            Some(e) if e.0 >= f_end.0 => e,
            _ => f_end,
        });
    }
    gaps
}

/// The part of the sorted `addrs` inside `(addr, addr + len)`.
fn within(addrs: &[u64], addr: u64, len: usize) -> &[u64] {
    let end = addr.saturating_add(len as u64);
    let lo = addrs.partition_point(|&a| a <= addr);
    let hi = addrs.partition_point(|&a| a < end);
    addrs.get(lo..hi.max(lo)).unwrap_or_default()
}

/// The target of a direct near branch, if `instr` is one.
fn near_branch_target(instr: &Instruction) -> Option<u64> {
    instr
        .op_kinds()
        .any(|k| {
            matches!(
                k,
                OpKind::NearBranch16 | OpKind::NearBranch32 | OpKind::NearBranch64
            )
        })
        .then(|| instr.near_branch_target())
}

/// One instruction of the entry prefix.
struct PrefixStep {
    /// From the function's first byte.
    offset: u64,
    /// Why execution may not be skipped past this instruction, if so.
    cannot_skip: Option<StopReason>,
}

/// What a linear sweep of a function tells the placement.
struct Sweep {
    /// The instructions from `+0` up to and including the first one that
    /// cannot be skipped: the candidate points.
    prefix: Vec<PrefixStep>,
    /// Start offsets of all instructions, ascending.
    instruction_starts: Vec<u64>,
    /// Offsets in `(0, len)` that a direct branch of the function lands on.
    inner_targets: Vec<u64>,
    /// Offset of the first indirect jump with unknown targets.
    indirect_jump: Option<u64>,
}

impl Sweep {
    /// Decodes all of `code`; `Err(offset)` where decoding fails.
    fn run(code: &[u8], addr: u64) -> Result<Sweep, u64> {
        let mut sweep = Sweep {
            prefix: Vec::new(),
            instruction_starts: Vec::new(),
            inner_targets: Vec::new(),
            indirect_jump: None,
        };
        let mut decoder = Decoder::with_ip(64, code, addr, DecoderOptions::NONE);
        let mut info = InstructionInfoFactory::new();
        let mut instr = Instruction::default();
        let mut prefix_open = true;
        while decoder.can_decode() {
            let offset = decoder.position() as u64;
            decoder.decode_out(&mut instr);
            if decoder.last_error() != DecoderError::None {
                return Err(offset);
            }
            sweep.instruction_starts.push(offset);
            if let Some(t) = near_branch_target(&instr) {
                if t > addr && t - addr < code.len() as u64 {
                    sweep.inner_targets.push(t - addr);
                }
            }
            if sweep.indirect_jump.is_none() && has_unknown_jump_targets(&instr) {
                sweep.indirect_jump = Some(offset);
            }
            if prefix_open {
                let bytes = code.get(offset as usize..).unwrap_or_default();
                let cannot_skip = why_not_skippable(&instr, bytes, offset, &mut info);
                prefix_open = cannot_skip.is_none();
                sweep.prefix.push(PrefixStep {
                    offset,
                    cannot_skip,
                });
            }
        }
        Ok(sweep)
    }
}

/// `true` for an indirect jump that may be a jump table: through a register
/// or through memory other than a plain `sym(%rip)` (a GOT tail call).
fn has_unknown_jump_targets(instr: &Instruction) -> bool {
    if instr.flow_control() != FlowControl::IndirectBranch {
        return false;
    }
    let got_slot = instr.op0_kind() == OpKind::Memory
        && instr.memory_base() == Register::RIP
        && instr.memory_index() == Register::None;
    !got_slot
}

/// Why the probe may not be moved past `instr` (at `offset`, whose bytes
/// start `bytes`), or `None` if it may.
fn why_not_skippable(
    instr: &Instruction,
    bytes: &[u8],
    offset: u64,
    info: &mut InstructionInfoFactory,
) -> Option<StopReason> {
    if kernel_rejects(bytes).is_some() {
        return Some(StopReason::KernelRejects { offset });
    }
    if instr.flow_control() != FlowControl::Next || is_system_call(instr) {
        return Some(StopReason::ControlFlow { offset });
    }
    if instr.is_stack_instruction() || instr.stack_pointer_increment() != 0 {
        return Some(StopReason::MovesStackPointer { offset });
    }
    if instr.is_privileged() || instr.is_save_restore_instruction() {
        return Some(StopReason::Unusual { offset });
    }
    let info = info.info(instr);
    for used in info.used_registers() {
        if !writes(used.access()) {
            continue;
        }
        if used.register().full_register() == Register::RSP {
            return Some(StopReason::MovesStackPointer { offset });
        }
        if used.register().is_segment_register() {
            return Some(StopReason::Unusual { offset });
        }
    }
    if info.used_memory().iter().any(|m| writes(m.access())) {
        return Some(StopReason::WritesMemory { offset });
    }
    None
}

/// System calls may do anything to the process (`rt_sigreturn` replaces
/// every register); iced does not count them as control flow.
fn is_system_call(instr: &Instruction) -> bool {
    matches!(
        instr.mnemonic(),
        Mnemonic::Syscall | Mnemonic::Sysenter | Mnemonic::Sysexit | Mnemonic::Sysret
    )
}

/// `true` if the access may write.
fn writes(access: OpAccess) -> bool {
    matches!(
        access,
        OpAccess::Write | OpAccess::CondWrite | OpAccess::ReadWrite | OpAccess::ReadCondWrite
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const ADDR: u64 = 0x40_1000;
    const PUSH_RBP: [u8; 1] = [0x55];
    const MOV_RSP_RBP: [u8; 3] = [0x48, 0x89, 0xe5];
    const TEST_RDI: [u8; 3] = [0x48, 0x85, 0xff];
    const NOP5: [u8; 5] = [0x0f, 0x1f, 0x44, 0x00, 0x00];
    const RET: [u8; 1] = [0xc3];

    fn code(parts: &[&[u8]]) -> Vec<u8> {
        parts.concat()
    }

    fn place(parts: &[&[u8]]) -> Placement {
        place_probe(&code(parts), ADDR)
    }

    #[test]
    fn endbr64_then_push_moves_to_the_push() {
        let p = place(&[&ENDBR64, &PUSH_RBP, &MOV_RSP_RBP, &[0x5d], &RET]);
        assert_eq!(p.offset, 4);
        assert_eq!(p.kind, EntryKind::Emulated);
        assert_eq!(p.at_entry_kind, EntryKind::SingleStep);
        assert_eq!(p.skipped_instructions, 1);
        assert_eq!(p.reason, StopReason::MovesStackPointer { offset: 4 });
        assert!(p.moved());
    }

    #[test]
    fn test_then_je_moves_to_the_je() {
        // test %rdi,%rdi ; je +1 ; ret ; xor %eax,%eax ; ret
        let p = place(&[&TEST_RDI, &[0x74, 0x01], &RET, &[0x31, 0xc0], &RET]);
        assert_eq!((p.offset, p.kind), (3, EntryKind::Emulated));
        assert_eq!(p.reason, StopReason::ControlFlow { offset: 3 });
        // Same behind an endbr64: both the endbr64 and the test are skipped.
        let p = place(&[&ENDBR64, &TEST_RDI, &[0x74, 0x01], &RET, &RET]);
        assert_eq!(
            (p.offset, p.kind, p.skipped_instructions),
            (7, EntryKind::Emulated, 2)
        );
    }

    #[test]
    fn sub_rsp_cannot_be_skipped_and_is_no_cheaper() {
        // endbr64 ; sub $8,%rsp ; call rel32 ; add $8,%rsp ; ret
        let p = place(&[
            &ENDBR64,
            &[0x48, 0x83, 0xec, 0x08],
            &[0xe8, 0, 0, 0, 0],
            &[0x48, 0x83, 0xc4, 0x08],
            &RET,
        ]);
        assert_eq!((p.offset, p.kind), (0, EntryKind::SingleStep));
        assert_eq!(p.reason, StopReason::MovesStackPointer { offset: 4 });
        // The call behind it is never reached: the sub may not be skipped.
        assert!(!p.moved());
    }

    /// `endbr64; L: test %rdi,%rdi; je out; mov (%rdi),%rdi; jmp L; out: ret`
    fn list_walk(back_edge_to: u8) -> Vec<u8> {
        let jmp_end = 14u8; // the jmp rel8 is at +12
        code(&[
            &ENDBR64,
            &TEST_RDI,
            &[0x74, 0x05], // +7: je +14
            &[0x48, 0x8b, 0x3f],
            &[0xeb, back_edge_to.wrapping_sub(jmp_end)],
            &RET,
        ])
    }

    #[test]
    fn a_loop_back_into_the_prefix_keeps_the_entry() {
        // The back edge to +4 (the test) would make a probe at +7 fire on
        // every iteration.
        let p = place_probe(&list_walk(4), ADDR);
        assert_eq!((p.offset, p.kind), (0, EntryKind::SingleStep));
        assert_eq!(p.reason, StopReason::BranchTarget { offset: 4 });
        // A back edge onto the je itself: same.
        let p = place_probe(&list_walk(7), ADDR);
        assert_eq!(p.offset, 0);
        assert_eq!(p.reason, StopReason::BranchTarget { offset: 7 });
        // A back edge to +0 is a tail call: the entry state, the prefix runs
        // again as on any call.
        let p = place_probe(&list_walk(0), ADDR);
        assert_eq!((p.offset, p.kind), (7, EntryKind::Emulated));
        // A back edge after the point does not matter.
        let p = place_probe(&list_walk(9), ADDR);
        assert_eq!(p.offset, 7);
    }

    #[test]
    fn a_later_nop5_is_the_cheapest() {
        let mov_rdi_rax = [0x48, 0x89, 0xf8];
        let p = place(&[&mov_rdi_rax, &NOP5, &PUSH_RBP, &RET]);
        assert_eq!((p.offset, p.kind), (3, EntryKind::Nop5));
        assert_eq!(p.reason, StopReason::CheapestFound);
        // An emulated push before it is passed over: push can't be skipped.
        let p = place(&[&mov_rdi_rax, &PUSH_RBP, &NOP5, &RET]);
        assert_eq!((p.offset, p.kind), (3, EntryKind::Emulated));
        // A canonical nop5 across a page boundary is only emulated.
        let bytes = code(&[&mov_rdi_rax, &NOP5, &RET]);
        let p = place_probe(&bytes, 0x1ffa);
        assert_eq!((p.offset, p.kind), (3, EntryKind::Emulated));
        // A nop5 at +0 stays there.
        let p = place(&[&NOP5, &PUSH_RBP, &RET]);
        assert_eq!((p.offset, p.kind), (0, EntryKind::Nop5));
        assert_eq!(p.reason, StopReason::CheapestFound);
        // endbr64 ; nop5: Nop5 at +4.
        let p = place(&[&ENDBR64, &NOP5, &RET]);
        assert_eq!((p.offset, p.kind), (4, EntryKind::Nop5));
    }

    #[test]
    fn emulated_beats_single_step_but_the_earliest_wins_ties() {
        // endbr64 ; xor %eax,%eax ; call rel32 ; ret: the call is emulated.
        let p = place(&[&ENDBR64, &[0x31, 0xc0], &[0xe8, 0, 0, 0, 0], &RET]);
        assert_eq!((p.offset, p.kind), (6, EntryKind::Emulated));
        assert_eq!(p.reason, StopReason::ControlFlow { offset: 6 });
        // Two emulated nops, then a push: the first nop is kept.
        let p = place(&[&[0x90], &[0x90], &PUSH_RBP, &RET]);
        assert_eq!((p.offset, p.kind), (0, EntryKind::Emulated));
        // All single-stepped: no move.
        let p = place(&[&ENDBR64, &[0x89, 0xf8], &[0x01, 0xf0], &RET]);
        assert_eq!((p.offset, p.kind), (0, EntryKind::SingleStep));
        assert_eq!(p.reason, StopReason::ControlFlow { offset: 8 });
        // A push at +0 (emulated) is never skipped.
        let p = place(&[&PUSH_RBP, &NOP5, &RET]);
        assert_eq!((p.offset, p.kind), (0, EntryKind::Emulated));
        assert_eq!(p.reason, StopReason::MovesStackPointer { offset: 0 });
    }

    #[test]
    fn a_function_of_only_ret() {
        let p = place(&[&RET]);
        assert_eq!((p.offset, p.kind), (0, EntryKind::SingleStep));
        assert_eq!(p.reason, StopReason::ControlFlow { offset: 0 });
        // endbr64 ; ret: the ret is no cheaper.
        let p = place(&[&ENDBR64, &RET]);
        assert_eq!((p.offset, p.kind), (0, EntryKind::SingleStep));
    }

    #[test]
    fn memory_writes_are_never_skipped() {
        // mov %rdi,-8(%rsp) (red zone), mov %rax,(%rdi), mov %rax,0x8(%rsp),
        // rep stosb, lock incl (%rdi) (refused by the kernel anyway).
        for write in [
            &[0x48, 0x89, 0x7c, 0x24, 0xf8][..],
            &[0x48, 0x89, 0x07],
            &[0x48, 0x89, 0x44, 0x24, 0x08],
            &[0xf3, 0xaa],
        ] {
            let p = place(&[&ENDBR64, write, &PUSH_RBP, &RET]);
            assert_eq!(p.offset, 0, "{write:02x?}");
            assert_eq!(
                p.reason,
                StopReason::WritesMemory { offset: 4 },
                "{write:02x?}"
            );
        }
        let p = place(&[&ENDBR64, &[0xf0, 0xff, 0x07], &PUSH_RBP, &RET]);
        assert_eq!(p.reason, StopReason::KernelRejects { offset: 4 });
        // A load, even through %rsp, is fine (the stack protector's load too).
        for read in [
            &[0x48, 0x8b, 0x07][..],
            &[0x48, 0x8b, 0x04, 0x24],
            &[0x64, 0x48, 0x8b, 0x04, 0x25, 0x28, 0, 0, 0],
        ] {
            let p = place(&[&ENDBR64, read, &PUSH_RBP, &RET]);
            assert_eq!(p.offset, 4 + read.len() as u64, "{read:02x?}");
        }
    }

    #[test]
    fn stack_pointer_changes_are_never_skipped() {
        for rsp in [
            &[0x48, 0x89, 0xc4][..],         // mov %rax,%rsp
            &[0x48, 0x8d, 0x64, 0x24, 0xf8], // lea -8(%rsp),%rsp
            &[0x48, 0x83, 0xe4, 0xf0],       // and $-16,%rsp
            &[0x48, 0x94],                   // xchg %rax,%rsp
            &[0x9c],                         // pushf
            &[0x58],                         // pop %rax
            &[0xc9],                         // leave
            &[0xc8, 0x10, 0x00, 0x00],       // enter $16,$0
        ] {
            let p = place(&[&ENDBR64, rsp, &PUSH_RBP, &RET]);
            assert_eq!(p.offset, 0, "{rsp:02x?}");
            assert_eq!(
                p.reason,
                StopReason::MovesStackPointer { offset: 4 },
                "{rsp:02x?}"
            );
        }
        // Reading %rsp is fine.
        let p = place(&[&ENDBR64, &[0x48, 0x89, 0xe0], &PUSH_RBP, &RET]);
        assert_eq!(p.offset, 7);
    }

    #[test]
    fn control_flow_and_system_calls_are_never_skipped() {
        for flow in [
            &[0xeb, 0x00][..],         // jmp +0 (to the next instruction)
            &[0x74, 0x00],             // je
            &[0xe8, 0, 0, 0, 0],       // call
            &[0xff, 0xd0],             // call *%rax
            &[0x0f, 0x05],             // syscall
            &[0x0f, 0x0b],             // ud2
            &[0xc7, 0xf8, 0, 0, 0, 0], // xbegin
        ] {
            let p = place(&[&ENDBR64, &[0x31, 0xc0], flow, &NOP5, &RET]);
            assert!(p.offset <= 6, "{flow:02x?}: {p:?}");
            assert!(p.kind != EntryKind::Nop5, "{flow:02x?}");
            assert!(
                matches!(
                    p.reason,
                    StopReason::ControlFlow { offset: 6 }
                        | StopReason::MovesStackPointer { offset: 6 }
                ),
                "{flow:02x?}: {p:?}"
            );
        }
    }

    #[test]
    fn unusual_instructions_are_never_skipped() {
        // mov %eax,%fs ; xsave (%rdi) writes memory; cpuid is fine.
        let p = place(&[&ENDBR64, &[0x8e, 0xe0], &PUSH_RBP, &RET]);
        assert_eq!(p.reason, StopReason::Unusual { offset: 4 });
        let p = place(&[&ENDBR64, &[0x0f, 0xae, 0x27], &PUSH_RBP, &RET]);
        assert_eq!(p.offset, 0);
        // cs-prefixed nopw (alignment padding): refused by the kernel.
        let cs_nopw = [0x2e, 0x66, 0x0f, 0x1f, 0x84, 0, 0, 0, 0, 0];
        let p = place(&[&ENDBR64, &cs_nopw, &PUSH_RBP, &RET]);
        assert_eq!(
            (p.offset, p.reason),
            (0, StopReason::KernelRejects { offset: 4 })
        );
    }

    #[test]
    fn undecodable_bytes_keep_the_entry() {
        // An invalid opcode (06, push %es, is not in 64-bit mode) far after
        // the cheap point: the sweep can't vouch for the branches.
        let p = place(&[&ENDBR64, &PUSH_RBP, &RET, &[0x06], &RET]);
        assert_eq!((p.offset, p.kind), (0, EntryKind::SingleStep));
        assert_eq!(p.reason, StopReason::Undecodable { offset: 6 });
        // The last instruction cut off by the symbol size.
        let p = place(&[&ENDBR64, &PUSH_RBP, &[0xe8, 0, 0]]);
        assert_eq!(p.reason, StopReason::Undecodable { offset: 5 });
        // Branch targets are still found after undecodable bytes.
        let bytes = code(&[&[0x06], &[0xe8, 0, 0, 0, 0], &[0x06], &[0xeb, 0x00]]);
        assert_eq!(
            direct_branch_targets(&bytes, ADDR),
            vec![ADDR + 6, ADDR + 9]
        );
    }

    #[test]
    fn a_branch_into_the_middle_of_an_instruction_keeps_the_entry() {
        // endbr64 ; push %rbp ; mov $imm32,%eax ; jmp into the imm32
        let p = place(&[
            &ENDBR64,
            &PUSH_RBP,
            &[0xb8, 1, 2, 3, 4],
            &[0xeb, 0xfb],
            &RET,
        ]);
        assert_eq!(p.offset, 0);
        assert_eq!(p.reason, StopReason::MisalignedBranchTarget { offset: 7 });
    }

    #[test]
    fn jump_tables_allow_only_the_endbr64_to_be_skipped() {
        let jmp_rax = [0xff, 0xe0];
        let notrack_jmp_rax = [0x3e, 0xff, 0xe0];
        let jmp_table = [0xff, 0x24, 0xc5, 0, 0x10, 0x40, 0]; // jmp *0x401000(,%rax,8)
        for jmp in [&jmp_rax[..], &notrack_jmp_rax, &jmp_table] {
            let p = place(&[&ENDBR64, &PUSH_RBP, jmp, &RET]);
            assert_eq!((p.offset, p.kind), (4, EntryKind::Emulated), "{jmp:02x?}");
            // je over the jump, to the ret.
            let je = [0x74, jmp.len() as u8];
            let p = place(&[&ENDBR64, &TEST_RDI, &je, jmp, &RET]);
            assert_eq!(p.offset, 0, "{jmp:02x?}");
            assert_eq!(
                p.reason,
                StopReason::IndirectJump { offset: 9 },
                "{jmp:02x?}"
            );
            let p = place(&[&TEST_RDI, &je, jmp, &RET]);
            assert_eq!(
                p.reason,
                StopReason::IndirectJump { offset: 5 },
                "{jmp:02x?}"
            );
        }
        // A tail call through the GOT is no jump table.
        let p = place(&[&TEST_RDI, &[0x74, 0x06], &[0xff, 0x25, 0, 0, 0, 0], &RET]);
        assert_eq!(p.offset, 3);
    }

    #[test]
    fn entries_from_outside_count_as_branch_targets() {
        let bytes = code(&[&ENDBR64, &TEST_RDI, &[0x74, 0x01], &RET, &RET]);
        assert_eq!(place_probe(&bytes, ADDR).offset, 7);
        // Outside the function, or at +0 (a call): ignored.
        let far = [ADDR - 16, ADDR, ADDR + 100];
        assert_eq!(place_probe_with(&bytes, ADDR, &far).offset, 7);
        let p = place_probe_with(&bytes, ADDR, &[ADDR + 4]);
        assert_eq!(
            (p.offset, p.reason),
            (0, StopReason::BranchTarget { offset: 4 })
        );
        // Into the middle of an instruction: the sweep is suspect.
        let p = place_probe_with(&bytes, ADDR, &[ADDR + 5]);
        assert_eq!(p.reason, StopReason::MisalignedBranchTarget { offset: 5 });
    }

    #[test]
    fn direct_branch_targets_lists_jumps_and_calls() {
        // +0 je +7 ; +2 call 0x401100 ; +7 jmp +0 ; +9 ret
        let bytes = code(&[
            &[0x74, 0x05],
            &[0xe8, 0xf9, 0x00, 0, 0],
            &[0xeb, 0xf7],
            &RET,
        ]);
        assert_eq!(
            direct_branch_targets(&bytes, ADDR),
            vec![ADDR + 7, ADDR + 0x100, ADDR]
        );
    }

    /// A function of the file-level tests (the fields placement reads).
    fn function(name: &str, addr: u64, offset: u64, size: u64) -> Function {
        Function {
            name: name.into(),
            raw_name: name.into(),
            aliases: vec![],
            addr,
            size,
            offset: crate::elf::FileOffset(offset),
            source: crate::elf::SymbolSource::Symtab,
            binding: crate::elf::Binding::Global,
            entry_bytes: vec![],
            entry_kind: EntryKind::Unknown,
        }
    }

    #[test]
    fn place_all_sees_jumps_from_code_between_functions() {
        // hot: endbr64 ; xor %eax,%eax ; L: test %rdi,%rdi ; je out ;
        //      add $1,%eax ; jmp cold ; out: ret          (17 bytes)
        // cold (no symbol, as in a stripped file): mov (%rdi),%rdi ; jmp L
        // next: ret
        let hot = code(&[
            &ENDBR64,
            &[0x31, 0xc0],
            &TEST_RDI,
            &[0x74, 0x05],
            &[0x83, 0xc0, 0x01],
            &[0xeb, 0x01],
            &RET,
        ]);
        let cold = code(&[&[0x48, 0x8b, 0x3f], &[0xeb, 0xf0]]); // to hot+6
        let file = code(&[&[0xcc; 16], &hot, &cold, &RET]);
        let base = 0x40_0000;
        let next_offset = (16 + hot.len() + cold.len()) as u64;
        let functions = [
            function("hot", base + 16, 16, hot.len() as u64),
            function("next", base + next_offset, next_offset, 1),
        ];
        // The jmp to cold: hot+14 -> hot+17, the first byte of the gap.
        assert_eq!(place_probe(&hot, base + 16).offset, 9);
        let placed = place_all(&file, &functions);
        assert_eq!(placed[0].offset, 0);
        assert_eq!(placed[0].reason, StopReason::BranchTarget { offset: 6 });
        assert_eq!(
            (placed[1].offset, placed[1].kind),
            (0, EntryKind::SingleStep)
        );
        // A gap that is not at the same distance in the file as in memory
        // (another segment) is not swept.
        let elsewhere = [
            function("hot", base + 16, 16, hot.len() as u64),
            function("next", base + 0x1000 + next_offset, next_offset, 1),
        ];
        assert_eq!(place_all(&file, &elsewhere)[0].offset, 9);
        // Functions outside the file: no bytes.
        let outside = [function("gone", base, 1 << 40, 4)];
        assert_eq!(place_all(&file, &outside)[0].reason, StopReason::NoBytes);
        assert_eq!(function_code(&file, &function("f", 0, u64::MAX, 2)), None);
    }

    #[test]
    fn addresses_at_the_top_of_the_address_space_do_not_overflow() {
        let bytes = code(&[&ENDBR64, &TEST_RDI, &[0x74, 0x01], &RET, &RET]);
        for addr in [u64::MAX, u64::MAX - 3, u64::MAX - 8] {
            let p = place_probe(&bytes, addr);
            assert!(p.offset <= 7, "{p:?}");
            let _ = place_probe_with(&bytes, addr, &[0, u64::MAX]);
            let _ = direct_branch_targets(&bytes, addr);
        }
        let f = function("top", u64::MAX - 2, 0, 16);
        let _ = place_all(&bytes, &[f.clone(), f]);
    }

    #[test]
    fn no_bytes() {
        let p = place_probe(&[], ADDR);
        assert_eq!((p.offset, p.kind), (0, EntryKind::Unknown));
        assert_eq!(p.reason, StopReason::NoBytes);
        assert!(direct_branch_targets(&[], ADDR).is_empty());
    }

    /// Random bytes, and random mixes of real instructions: never a panic,
    /// never worse than +0, always on an instruction start of the sweep.
    #[test]
    fn random_code_obeys_the_invariants() {
        let pieces: [&[u8]; 12] = [
            &ENDBR64,
            &PUSH_RBP,
            &MOV_RSP_RBP,
            &TEST_RDI,
            &NOP5,
            &RET,
            &[0x74, 0x02],
            &[0xeb, 0xfc],
            &[0x48, 0x89, 0x07],
            &[0xff, 0xe0],
            &[0xe8, 0, 0, 0, 0],
            &[0x90],
        ];
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut moved = 0;
        for round in 0..20_000 {
            let bytes: Vec<u8> = if round % 2 == 0 {
                (0..next() % 40).map(|_| next() as u8).collect()
            } else {
                (0..next() % 12)
                    .flat_map(|_| pieces[(next() % 12) as usize].iter().copied())
                    .collect()
            };
            let addr = 0x1000 + next() % 0x2000;
            let p = place_probe(&bytes, addr);
            assert!(
                cost_rank(p.kind) <= cost_rank(p.at_entry_kind),
                "{bytes:02x?}: {p:?}"
            );
            assert_eq!(p.at_entry_kind, classify_entry_at(&bytes, addr));
            if p.moved() {
                moved += 1;
                let off = p.offset as usize;
                assert!(off < bytes.len());
                assert!(cost_rank(p.kind) < cost_rank(p.at_entry_kind));
                assert_eq!(p.kind, classify_entry_at(&bytes[off..], addr + p.offset));
                assert!(kernel_rejects(&bytes[off..]).is_none());
                let mut d = Decoder::with_ip(64, &bytes, addr, DecoderOptions::NONE);
                let mut starts = Vec::new();
                while d.can_decode() {
                    starts.push(d.position());
                    let i = d.decode();
                    assert!(!i.is_invalid());
                    if starts.len() as u32 <= p.skipped_instructions {
                        assert_eq!(i.flow_control(), FlowControl::Next, "{bytes:02x?}");
                    }
                    if let Some(t) = near_branch_target(&i) {
                        assert!(t <= addr || t > addr + p.offset, "{bytes:02x?}: {p:?}");
                    }
                }
                assert_eq!(starts[p.skipped_instructions as usize], off);
            }
        }
        // The mixes of real instructions exercise moves, not only refusals.
        assert!(moved > 500, "{moved}");
    }

    /// Tests on code GCC produced: `-O2 -fcf-protection=full` (an `endbr64`
    /// at every function), with and without frame pointers.
    mod compiled {
        use super::super::*;
        use crate::elf::read_elf;
        use crate::elf::testutil::{run, Scratch};
        use std::path::{Path, PathBuf};

        /// Small functions of the usual shapes, two hand-written ones with a
        /// branch into their entry prefix, and a `main` calling them all a
        /// number of times set by `argv[1]`.
        pub(super) const PROGRAM_C: &str = r#"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct node { struct node *next; long value; };

/* A loop whose header is the second instruction: the back edge targets +4. */
__asm__(
    ".text\n.globl loop_head\n.type loop_head,@function\n"
    "loop_head:\n endbr64\n1: test %rdi,%rdi\n je 2f\n mov (%rdi),%rdi\n jmp 1b\n2: ret\n"
    ".size loop_head, .-loop_head\n"
    /* split_cold jumps back into split_hot's prefix, as GCC's foo.cold does. */
    ".globl split_hot\n.type split_hot,@function\n"
    "split_hot:\n endbr64\n xor %eax,%eax\n3: test %rdi,%rdi\n je 4f\n add $1,%eax\n"
    " jmp split_cold\n4: ret\n.size split_hot, .-split_hot\n"
    ".type split_cold,@function\n"
    "split_cold:\n mov (%rdi),%rdi\n jmp 3b\n.size split_cold, .-split_cold\n");
long loop_head(const struct node *n);
int split_hot(const struct node *n);

__attribute__((noinline)) long list_sum(const struct node *n) {
    long s = 0;
    for (; n; n = n->next) s += n->value;
    return s;
}

__attribute__((noinline)) long twice_sum(const struct node *n) {
    return list_sum(n) * 2 + (long)strlen("ab");
}

__attribute__((noinline)) long count_calls(const struct node *n, int rounds) {
    long total = 0;
    for (int i = 0; i < rounds; i++) total += twice_sum(n) + i;
    return total;
}

__attribute__((noinline)) int classify(int op, int x) {
    switch (op) {
    case 0: return x + 1;
    case 1: return x * 3;
    case 2: return x - 7;
    case 3: return x ^ 0x55;
    case 4: return x << 2;
    case 5: return x / 3;
    case 6: return -x;
    default: return 0;
    }
}

__attribute__((noinline)) long fib(int n) { return n < 2 ? n : fib(n - 1) + fib(n - 2); }

__attribute__((noinline)) int digits(unsigned v, char *out) {
    char buf[24];
    int k = 0;
    do { buf[k++] = (char)('0' + v % 10); v /= 10; } while (v);
    for (int i = 0; i < k; i++) out[i] = buf[k - 1 - i];
    out[k] = 0;
    return k;
}

__attribute__((noinline)) int tail(int op, int x) {
    if (x > 100) return classify(op, x - 1);
    return classify(op + 1, x);
}

int main(int argc, char **argv) {
    int rounds = argc > 1 ? atoi(argv[1]) : 100;
    struct node c = {0, 3}, b = {&c, 2}, a = {&b, 1};
    long t = count_calls(&a, rounds);
    int cl = 0, walked = 0;
    for (int i = 0; i < rounds; i++) {
        cl += classify(i % 8, i) + tail(i % 7, i);
        walked += split_hot(&a) + (int)loop_head(&a);
    }
    char d[32];
    digits((unsigned)t, d);
    printf("sum %ld classify %d fib %ld digits %s walked %d\n", t, cl, fib(12), d, walked);
    return 0;
}
"#;

        /// The two builds: (name, extra gcc flags).
        pub(super) const VARIANTS: [(&str, &[&str]); 2] =
            [("cet", &[]), ("cet-fp", &["-fno-omit-frame-pointer"])];

        pub(super) fn build(s: &Scratch, name: &str, extra: &[&str]) -> PathBuf {
            s.write("program.c", PROGRAM_C);
            let mut args = vec!["-O2", "-fcf-protection=full"];
            args.extend_from_slice(extra);
            args.extend_from_slice(&["-o", name, "program.c"]);
            run(&s.dir, "gcc", &args);
            s.path(name)
        }

        /// Every function of `path` with its bytes and placement.
        pub(super) fn placements(path: &Path) -> Vec<(Function, Vec<u8>, Placement)> {
            let elf = read_elf(path).unwrap();
            let file = std::fs::read(path).unwrap();
            let placed = place_all(&file, &elf.functions);
            assert_eq!(placed.len(), elf.functions.len());
            elf.functions
                .into_iter()
                .zip(placed)
                .map(|(f, p)| {
                    let code = function_code(&file, &f).unwrap().to_vec();
                    (f, code, p)
                })
                .collect()
        }

        fn get<'a>(
            all: &'a [(Function, Vec<u8>, Placement)],
            name: &str,
        ) -> &'a (Function, Vec<u8>, Placement) {
            all.iter()
                .find(|(f, _, _)| f.name == name)
                .unwrap_or_else(|| panic!("no function {name}"))
        }

        fn is_jcc(b: &[u8]) -> bool {
            matches!(b, [0x70..=0x7f, ..] | [0x0f, 0x80..=0x8f, ..])
        }

        fn is_push(b: &[u8]) -> bool {
            matches!(b, [0x50..=0x57, ..] | [0x41, 0x50..=0x57, ..])
        }

        #[test]
        fn every_function_of_gcc_o2_cet_code_gets_a_placement() {
            let s = Scratch::new("placement-gcc");
            for (variant, flags) in VARIANTS {
                let all = placements(&build(&s, variant, flags));
                for (f, code, p) in &all {
                    assert!(code.starts_with(&f.entry_bytes), "{variant} {}", f.name);
                    assert_eq!(p.at_entry_kind, f.entry_kind, "{variant} {}", f.name);
                    assert!(p.offset < f.size.max(1), "{variant} {}: {p:?}", f.name);
                    assert!(cost_rank(p.kind) <= cost_rank(p.at_entry_kind));
                }
                // The shapes of the functions decide the points.
                for name in ["list_sum", "tail"] {
                    let (_, code, p) = get(&all, name);
                    assert!(p.moved(), "{variant} {name}: {p:?}");
                    assert_eq!(p.kind, EntryKind::Emulated, "{variant} {name}");
                    assert!(
                        is_jcc(&code[p.offset as usize..]),
                        "{variant} {name}: {p:?}"
                    );
                    assert_eq!(p.reason, StopReason::ControlFlow { offset: p.offset });
                }
                for name in ["fib", "main", "digits"] {
                    let (_, code, p) = get(&all, name);
                    assert_eq!(
                        (p.offset, p.kind),
                        (4, EntryKind::Emulated),
                        "{variant} {name}"
                    );
                    assert!(is_push(&code[4..]), "{variant} {name}");
                }
                // Without a frame pointer twice_sum starts with its call,
                // with one with push %rbp: +4 either way.
                let (_, _, p) = get(&all, "twice_sum");
                assert_eq!((p.offset, p.kind), (4, EntryKind::Emulated), "{variant}");
                // The switch's jump table: only the endbr64 may be skipped,
                // and a cmp follows it.
                let (_, _, p) = get(&all, "classify");
                assert_eq!(p.offset, 0, "{variant}");
                assert!(matches!(p.reason, StopReason::IndirectJump { .. }), "{p:?}");
                // The loop header at +4.
                let (_, _, p) = get(&all, "loop_head");
                assert_eq!(p.offset, 0, "{variant}");
                assert_eq!(p.reason, StopReason::BranchTarget { offset: 4 });
                // split_cold's jump back: seen only file-wide.
                let (f, code, p) = get(&all, "split_hot");
                assert_eq!(p.offset, 0, "{variant}");
                assert_eq!(p.reason, StopReason::BranchTarget { offset: 6 });
                assert_eq!(place_probe(code, f.addr).offset, 9);
            }
        }

        /// tracefs mounted at a private mount point for one test, with a
        /// trace instance of its own: unmounted (and the mount point
        /// removed) on drop, whatever happened.
        struct Tracefs {
            root: PathBuf,
            instance: PathBuf,
            group: String,
            events: Vec<String>,
        }

        impl Tracefs {
            fn mount() -> Tracefs {
                let id = std::process::id();
                let root = std::env::temp_dir().join(format!("perfgate-tracefs-{id}"));
                std::fs::create_dir_all(&root).unwrap();
                let ok = std::process::Command::new("mount")
                    .args(["-t", "tracefs", "nodev"])
                    .arg(&root)
                    .status()
                    .unwrap()
                    .success();
                assert!(ok, "mount -t tracefs (needs root)");
                let group = format!("pgplace{id}");
                let instance = root.join("instances").join(&group);
                std::fs::create_dir(&instance).unwrap();
                std::fs::write(instance.join("buffer_size_kb"), "8192").unwrap();
                Tracefs {
                    root,
                    instance,
                    group,
                    events: Vec::new(),
                }
            }

            /// Adds an event, `p` (entry) or `r` (return), named `name`.
            fn add(&mut self, kind: char, name: &str, path: &Path, offset: u64) {
                use std::io::Write;
                let line = format!(
                    "{kind}:{}/{name} {}:{offset:#x}\n",
                    self.group,
                    path.display()
                );
                let mut f = std::fs::OpenOptions::new()
                    .append(true)
                    .open(self.root.join("uprobe_events"))
                    .unwrap();
                f.write_all(line.as_bytes())
                    .unwrap_or_else(|e| panic!("{line}: {e}"));
                self.events.push(name.to_string());
            }

            fn enable(&self, on: bool) -> std::io::Result<()> {
                let path = self
                    .instance
                    .join("events")
                    .join(&self.group)
                    .join("enable");
                std::fs::write(path, if on { "1" } else { "0" })
            }

            /// Hits per event name in the instance's buffer, then clears it.
            fn hits(&self) -> std::collections::BTreeMap<String, usize> {
                let trace = std::fs::read_to_string(self.instance.join("trace")).unwrap();
                assert!(!trace.contains("LOST"), "trace buffer overrun");
                let mut hits = std::collections::BTreeMap::new();
                for line in trace.lines().filter(|l| !l.starts_with('#')) {
                    let name = line.split_whitespace().find_map(|w| {
                        w.strip_suffix(':')
                            .filter(|n| self.events.iter().any(|e| e == n))
                    });
                    if let Some(name) = name {
                        *hits.entry(name.to_string()).or_default() += 1;
                    }
                }
                std::fs::write(self.instance.join("trace"), "").unwrap();
                hits
            }

            /// Removes the events added so far (also from `drop`: no panics).
            fn clear(&mut self) {
                use std::io::Write;
                if self.events.is_empty() {
                    return;
                }
                let _ = self.enable(false);
                for name in std::mem::take(&mut self.events) {
                    let line = format!("-:{}/{name}\n", self.group);
                    let _ = std::fs::OpenOptions::new()
                        .append(true)
                        .open(self.root.join("uprobe_events"))
                        .and_then(|mut f| f.write_all(line.as_bytes()));
                }
            }
        }

        impl Drop for Tracefs {
            fn drop(&mut self) {
                self.clear();
                let _ = std::fs::remove_dir(&self.instance);
                let _ = std::process::Command::new("umount")
                    .arg(&self.root)
                    .status();
                // Only an empty directory: never recurse into a tracefs.
                let _ = std::fs::remove_dir(&self.root);
            }
        }

        /// Runs `program 20` with entry and return probes at `offsets` (one
        /// per function, `None`: not probed): its output and the hits of
        /// each function's probes, as `(name, entries, returns)`.
        fn traced_run(
            tracefs: &mut Tracefs,
            program: &Path,
            all: &[(Function, Vec<u8>, Placement)],
            offsets: &[Option<u64>],
        ) -> (String, Vec<(String, usize, usize)>) {
            for (i, ((f, _, _), offset)) in all.iter().zip(offsets).enumerate() {
                if let Some(offset) = offset {
                    tracefs.add('p', &format!("e{i}"), program, f.offset.0 + offset);
                    tracefs.add('r', &format!("x{i}"), program, f.offset.0 + offset);
                }
            }
            tracefs.enable(true).unwrap();
            let out = std::process::Command::new(program)
                .arg("20")
                .output()
                .unwrap();
            tracefs.enable(false).unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            let hits = tracefs.hits();
            tracefs.clear();
            let counts = all
                .iter()
                .enumerate()
                .map(|(i, (f, _, _))| {
                    let get = |k: &str| hits.get(&format!("{k}{i}")).copied().unwrap_or(0);
                    (f.name.clone(), get("e"), get("x"))
                })
                .collect();
            (String::from_utf8_lossy(&out.stdout).into_owned(), counts)
        }

        /// The real thing on this kernel, with plain tracefs uprobes: the
        /// program prints the same and every function's entry and return
        /// probes fire as often at the chosen points as at `+0`; and the
        /// check does catch a bad point (split_hot probed where a jump from
        /// split_cold lands before it). Ignored in the suite: it mounts a
        /// tracefs and adds uprobe events (root). Run with
        /// `cargo test --lib probes_at_the_chosen_points -- --ignored`.
        #[test]
        #[ignore]
        fn probes_at_the_chosen_points_see_the_same_calls() {
            let s = Scratch::new("placement-tracefs");
            let mut tracefs = Tracefs::mount();
            for (variant, flags) in VARIANTS {
                let program = build(&s, variant, flags);
                let untraced = std::process::Command::new(&program)
                    .arg("20")
                    .output()
                    .unwrap();
                let untraced = String::from_utf8_lossy(&untraced.stdout).into_owned();
                let all = placements(&program);
                // `_start` has no return address: `[%rsp]` is argc, which a
                // return probe would overwrite (perfgate leaves it out too).
                let probeable = |f: &Function, code: &[u8]| {
                    f.name != "_start" && kernel_rejects(code).is_none()
                };
                let at_entry: Vec<Option<u64>> = all
                    .iter()
                    .map(|(f, c, _)| probeable(f, c).then_some(0))
                    .collect();
                let placed: Vec<Option<u64>> = all
                    .iter()
                    .map(|(f, c, p)| probeable(f, c).then_some(p.offset))
                    .collect();
                assert!(all.iter().filter(|(_, _, p)| p.moved()).count() >= 6);
                let (out0, hits0) = traced_run(&mut tracefs, &program, &all, &at_entry);
                let (out1, hits1) = traced_run(&mut tracefs, &program, &all, &placed);
                assert_eq!(out0, untraced, "{variant}");
                assert_eq!(out1, untraced, "{variant}");
                for ((name, e0, x0), (_, e1, x1)) in hits0.iter().zip(&hits1) {
                    eprintln!("{variant} {name}: +0 {e0}/{x0}, placed {e1}/{x1}");
                    assert_eq!((e0, x0), (e1, x1), "{variant} {name}");
                }
                let get = |h: &[(String, usize, usize)], n: &str| {
                    h.iter()
                        .find(|(name, _, _)| name == n)
                        .map(|&(_, e, x)| (e, x))
                        .unwrap()
                };
                assert_eq!(get(&hits0, "list_sum"), (20, 20), "{variant}");
                assert_eq!(get(&hits0, "main"), (1, 1), "{variant}");
                // split_hot at the point its own bytes suggest: the probe
                // fires again on each of the 3 jumps back from split_cold.
                let naive: Vec<Option<u64>> = all
                    .iter()
                    .zip(&placed)
                    .map(|((f, c, _), &o)| {
                        if f.name == "split_hot" {
                            Some(place_probe(c, f.addr).offset)
                        } else {
                            o
                        }
                    })
                    .collect();
                let (out2, hits2) = traced_run(&mut tracefs, &program, &all, &naive);
                assert_eq!(out2, untraced, "{variant}");
                assert_eq!(get(&hits0, "split_hot").0, 20, "{variant}");
                assert_eq!(get(&hits2, "split_hot").0, 4 * 20, "{variant}");
            }
        }
    }
}
