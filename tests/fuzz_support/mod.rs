//! What the fuzz tests share: a counting allocator (the test binary's `#[global_allocator]`), a seeded
//! PRNG, the mutators, a writer that counts and caps what a view writes, and the checks every rejected
//! input must pass (its message names the file, is one line and is short).
//!
//! Invariants: the same seed gives the same inputs (a failure names its kind, seed and case, and is
//! reproduced by running the test again); no input is larger than its seed plus a fixed slack, so the
//! bounds asserted stay meaningful; the allocator only counts, it never changes what is allocated.
#![allow(dead_code)]
use std::io::Write;

// The counting allocator is the library's unit-test one (src/sys/counting_alloc.rs, `#[cfg(test)]` there
// and so out of an integration test's reach): the same file, compiled into this test binary, where it is
// the `#[global_allocator]`.
#[path = "../../src/sys/counting_alloc.rs"]
mod counting_alloc;
pub use counting_alloc::peak_allocation;

/// SplitMix64: small, fast, and the same sequence on every machine.
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x5DEE_CE66_D1CE_4E5B)
    }

    /// The next 64 random bits.
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    /// True with probability 1/n.
    pub fn one_in(&mut self, n: usize) -> bool {
        self.below(n) == 0
    }

    /// One element.
    pub fn pick<'a, T>(&mut self, v: &'a [T]) -> &'a T {
        &v[self.below(v.len())]
    }
}

/// Values that break size and offset arithmetic: zero, one, the signed and unsigned limits, and a few
/// around the input's own length.
pub fn interesting(rng: &mut Rng, len: usize) -> u64 {
    let len = len as u64;
    *rng.pick(&[
        0,
        1,
        2,
        0x7f,
        0x80,
        0xff,
        0x7fff,
        0xffff,
        0x7fff_ffff,
        0x8000_0000,
        0xffff_ffff,
        0x1_0000_0000,
        i64::MAX as u64,
        1 << 63,
        u64::MAX,
        u64::MAX - 7,
        len,
        len.wrapping_sub(1),
        len + 1,
        len.wrapping_mul(2),
        len / 2,
    ])
}

/// Overwrites `width` bytes (1, 2, 4 or 8, little-endian) at `at` with `v`, where they fit.
pub fn put_le(buf: &mut [u8], at: usize, width: usize, v: u64) {
    if let Some(dst) = buf.get_mut(at..at.saturating_add(width)) {
        dst.copy_from_slice(&v.to_le_bytes()[..width]);
    }
}

/// Most bytes a byte mutation adds to its seed.
pub const GROWTH: usize = 4096;

/// A byte-level mutation of `seed`: one to four of bit flips, interesting bytes and integers,
/// truncation, deletion, duplication and insertion of chunks. Never longer than `seed` + [`GROWTH`].
pub fn mutate_bytes(rng: &mut Rng, seed: &[u8]) -> Vec<u8> {
    let mut b = seed.to_vec();
    for _ in 0..1 + rng.below(4) {
        let len = b.len().max(1);
        match rng.below(9) {
            0 => {
                for _ in 0..1 + rng.below(8) {
                    let i = rng.below(len);
                    if let Some(x) = b.get_mut(i) {
                        *x ^= 1 << rng.below(8);
                    }
                }
            }
            1 => {
                let i = rng.below(len);
                let v = *rng.pick(&[0u8, 0xff, 0x7f, 0x80, 0x01, b'"', b'[', b'\n', 0x1b]);
                if let Some(x) = b.get_mut(i) {
                    *x = v;
                }
            }
            2 | 3 => {
                let width = *rng.pick(&[2usize, 4, 8]);
                let at = rng.below(len) & !(width - 1);
                let v = interesting(rng, b.len());
                put_le(&mut b, at, width, v);
            }
            4 => {
                let at = rng.below(len);
                b.truncate(at);
            }
            5 => {
                let at = rng.below(len);
                let n = rng.below(len - at.min(len - 1)).min(GROWTH);
                b.drain(at..(at + n).min(b.len()));
            }
            6 | 7 => {
                if b.len() < seed.len() + GROWTH / 2 {
                    let from = rng.below(len);
                    let n = rng.below(256).min(b.len().saturating_sub(from));
                    let chunk = b[from..from + n].to_vec();
                    let at = rng.below(b.len() + 1);
                    b.splice(at..at, chunk);
                }
            }
            _ => {
                let at = rng.below(b.len() + 1);
                let junk: Vec<u8> = (0..rng.below(64)).map(|_| rng.next() as u8).collect();
                b.splice(at..at, junk);
            }
        }
    }
    b.truncate(seed.len() + GROWTH);
    b
}

/// A text-level mutation of TOML or JSON: numbers replaced by absurd ones, strings by hostile ones,
/// lines duplicated, dropped or swapped, brackets inserted; then sometimes a byte mutation on top.
/// Never longer than `seed` + 4 × [`GROWTH`].
pub fn mutate_text(rng: &mut Rng, seed: &str) -> Vec<u8> {
    let mut lines: Vec<String> = seed.lines().map(str::to_string).collect();
    for _ in 0..1 + rng.below(3) {
        if lines.is_empty() {
            lines.push(String::new());
        }
        let i = rng.below(lines.len());
        match rng.below(7) {
            0 | 1 => lines[i] = replace_number(rng, &lines[i]),
            2 => lines[i] = replace_string(rng, &lines[i]),
            3 => {
                let l = lines[i].clone();
                lines.insert(rng.below(lines.len() + 1), l);
            }
            4 => {
                lines.remove(i);
            }
            5 => {
                let j = rng.below(lines.len());
                lines.swap(i, j);
            }
            _ => {
                let open = *rng.pick(&["[", "{", "[[", "{\"a\":", "a = ["]);
                let n = 1 + rng.below(300);
                lines[i].insert_str(0, &open.repeat(n));
            }
        }
    }
    let text = lines.join("\n");
    let mut out = if rng.one_in(3) {
        mutate_bytes(rng, text.as_bytes())
    } else {
        text.into_bytes()
    };
    out.truncate(seed.len() + 4 * GROWTH);
    out
}

fn replace_number(rng: &mut Rng, line: &str) -> String {
    let starts: Vec<usize> = line
        .char_indices()
        .filter(|&(i, c)| {
            c.is_ascii_digit() && (i == 0 || !line.as_bytes()[i - 1].is_ascii_alphanumeric())
        })
        .map(|(i, _)| i)
        .collect();
    if starts.is_empty() {
        return line.to_string();
    }
    let at = *rng.pick(&starts);
    let end = line[at..]
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == 'e' || c == '-' || c == '+'))
        .map_or(line.len(), |n| at + n);
    let with = *rng.pick(&[
        "-1",
        "0",
        "1e308",
        "1e309",
        "-1e309",
        "nan",
        "inf",
        "-inf",
        "18446744073709551615",
        "18446744073709551616",
        "9223372036854775807",
        "-9223372036854775808",
        "4294967296",
        "65535",
        "65",
        "0.0000000001",
        "1.7976931348623157e308",
        "99999999999999999999999999999",
    ]);
    format!("{}{with}{}", &line[..at], &line[end..])
}

fn replace_string(rng: &mut Rng, line: &str) -> String {
    let Some(a) = line.find('"') else {
        return line.to_string();
    };
    let Some(b) = line[a + 1..].find('"').map(|n| a + 1 + n) else {
        return line.to_string();
    };
    let with = match rng.below(5) {
        0 => String::new(),
        1 => "x".repeat(1 + rng.below(GROWTH)),
        2 => "\\u001b[31m|`<&%]]>\\n\\u0000".to_string(),
        3 => "\\ud800".to_string(),
        _ => "é".repeat(1 + rng.below(64)),
    };
    format!("{}{with}{}", &line[..=a], &line[b..])
}

/// A writer that counts what it is given and fails once more than `cap` bytes come (so a view that
/// blows up fails the test instead of filling the disk or the memory).
pub struct Capped {
    /// Bytes written.
    pub written: u64,
    /// Most bytes accepted.
    pub cap: u64,
    /// The cap was hit.
    pub overflowed: bool,
}

impl Capped {
    /// A writer accepting at most `cap` bytes.
    pub fn new(cap: u64) -> Capped {
        Capped {
            written: 0,
            cap,
            overflowed: false,
        }
    }
}

impl Write for Capped {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.written + buf.len() as u64 > self.cap {
            self.overflowed = true;
            return Err(std::io::Error::other("fuzz: output cap reached"));
        }
        self.written += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Longest error message accepted for a rejected input (a message quoting a 200 KB name is a defect;
/// `cmd::one_line` cuts what it prints to 1 KiB).
pub const MAX_MESSAGE: usize = 1024;

/// Asserts that the message of a rejected input names the file, is one line and is short.
pub fn assert_names_file(msg: &str, path: &std::path::Path, what: &str) {
    let shown = path.display().to_string();
    assert!(
        msg.contains(&shown),
        "{what}: message does not name {shown}: {msg:?}"
    );
    assert!(
        !msg.contains('\n'),
        "{what}: message is not one line: {msg:?}"
    );
    assert!(
        msg.len() <= MAX_MESSAGE,
        "{what}: message of {} bytes: {:?}…",
        msg.len(),
        &msg[..msg.floor_char_boundary_compat(200)]
    );
}

/// `str::floor_char_boundary` (unstable) for the messages above.
trait FloorCharBoundary {
    fn floor_char_boundary_compat(&self, i: usize) -> usize;
}

impl FloorCharBoundary for str {
    fn floor_char_boundary_compat(&self, i: usize) -> usize {
        let mut i = i.min(self.len());
        while !self.is_char_boundary(i) {
            i -= 1;
        }
        i
    }
}

/// Tally of one kind of input.
#[derive(Debug, Default)]
pub struct Tally {
    /// Inputs tried.
    pub tried: u64,
    /// Rejected with an error.
    pub rejected: u64,
    /// Accepted (and, where there are views, rendered).
    pub accepted: u64,
    /// The largest peak allocation seen, with its input's size.
    pub peak: (usize, u64),
    /// The largest output per input byte seen, with its input's size.
    pub output: (f64, u64),
}

impl Tally {
    /// Counts one input's peak allocation.
    pub fn alloc(&mut self, peak: usize, size: u64) {
        if peak > self.peak.0 {
            self.peak = (peak, size);
        }
    }

    /// Counts one input: accepted (its value returned), or rejected, whose message must name the file
    /// ([`assert_names_file`]).
    pub fn judge<'r, T>(
        &mut self,
        result: &'r Result<T, String>,
        path: &std::path::Path,
        what: &str,
    ) -> Option<&'r T> {
        self.tried += 1;
        match result {
            Ok(v) => {
                self.accepted += 1;
                Some(v)
            }
            Err(msg) => {
                self.rejected += 1;
                assert_names_file(msg, path, what);
                None
            }
        }
    }

    /// Counts one accepted input's output.
    pub fn output(&mut self, written: u64, size: u64) {
        let r = written as f64 / size.max(1) as f64;
        if r > self.output.0 {
            self.output = (r, size);
        }
    }

    /// One line for the test log: what was tried and what happened.
    pub fn report(&self, kind: &str) {
        let mut line = format!(
            "fuzz: {kind}: {} inputs tried, {} rejected with a message naming the file, {} accepted",
            self.tried, self.rejected, self.accepted
        );
        if self.peak.0 > 0 {
            line += &format!(
                "; largest peak allocation {} KiB (for a {}-byte input)",
                self.peak.0 >> 10,
                self.peak.1
            );
        }
        if self.output.0 > 0.0 {
            line += &format!(
                "; most output {:.1} bytes per input byte (a {}-byte input)",
                self.output.0, self.output.1
            );
        }
        println!("{line}");
    }
}
