//! The recording file: a small header, the event stream (trace mode only), and the profile as a JSON trailer.
//!
//! ```text
//! "PERFGATE" | format u32 LE | header length u32 LE | header JSON
//! event × N  (20 bytes each: ts u64, tid u32, func u32, depth u16, kind u8 (0 entry, 1 exit, 2 ended by
//!             an exception, 3 left by longjmp, 4 left on a stack a switch left behind), 0u8)
//! profile JSON | profile length u64 LE | "PGEND\0\0\0"
//! ```
//! Events stream to disk while the benchmark runs, so long recordings never sit in memory; the trailer is
//! written last and the file is renamed into place only then, so an interrupted recording leaves no half file.
//! Every file is parsed as untrusted: lengths are checked against the file size before anything is allocated.
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use super::calls::MAX_LEVEL;
use super::{FuncId, FunctionInfo, Nanos, Profile};

const MAGIC: &[u8; 8] = b"PERFGATE";
const END_MAGIC: &[u8; 8] = b"PGEND\0\0\0";
/// Version of the container layout.
pub const FORMAT: u32 = 1;
/// Bytes per event on disk.
pub const EVENT_BYTES: u64 = 20;
const MAX_JSON: u64 = 1 << 30;

/// Entry or one of the ways a frame ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum EventKind {
    /// The function was entered.
    Entry,
    /// The function returned.
    Exit,
    /// An exception (or panic) ended the call: the timestamp is the catch, or the first traced event
    /// after the unwinder left the frame.
    Unwound,
    /// The call was left without returning (longjmp): the timestamp is when the kernel side found out,
    /// at the next traced event.
    Abandoned,
    /// The call was on a stack that a stack switch (swapcontext) left behind: its return cannot be seen;
    /// the timestamp is when the kernel side found out.
    SwitchedAway,
}

/// One trace event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Event {
    /// Monotonic kernel time, ns.
    pub ts: Nanos,
    /// Thread id.
    pub tid: u32,
    /// Function.
    pub func: FuncId,
    /// 1-based depth of the frame on its thread's shadow stack.
    pub depth: u16,
    /// Entry or exit.
    pub kind: EventKind,
}

impl Event {
    fn encode(&self) -> [u8; EVENT_BYTES as usize] {
        let mut b = [0u8; EVENT_BYTES as usize];
        b[0..8].copy_from_slice(&self.ts.to_le_bytes());
        b[8..12].copy_from_slice(&self.tid.to_le_bytes());
        b[12..16].copy_from_slice(&self.func.to_le_bytes());
        b[16..18].copy_from_slice(&self.depth.to_le_bytes());
        b[18] = match self.kind {
            EventKind::Entry => 0,
            EventKind::Exit => 1,
            EventKind::Unwound => 2,
            EventKind::Abandoned => 3,
            EventKind::SwitchedAway => 4,
        };
        b
    }

    fn decode(b: &[u8; EVENT_BYTES as usize]) -> Option<Event> {
        let u64_at = |i: usize| {
            u64::from_le_bytes([
                b[i],
                b[i + 1],
                b[i + 2],
                b[i + 3],
                b[i + 4],
                b[i + 5],
                b[i + 6],
                b[i + 7],
            ])
        };
        let u32_at = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        let kind = match b[18] {
            0 => EventKind::Entry,
            1 => EventKind::Exit,
            2 => EventKind::Unwound,
            3 => EventKind::Abandoned,
            4 => EventKind::SwitchedAway,
            _ => return None,
        };
        Some(Event {
            ts: u64_at(0),
            tid: u32_at(8),
            func: u32_at(12),
            depth: u16::from_le_bytes([b[16], b[17]]),
            kind,
        })
    }
}

/// What is known before the run starts.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Header {
    /// The command.
    pub command: Vec<String>,
    /// Seconds since the Unix epoch.
    pub started_at: u64,
    /// The function table, indexed by id.
    pub functions: Vec<FunctionInfo>,
}

/// Writes a recording to a temporary file beside the target, renamed into place by [`Writer::finish`].
pub struct Writer {
    out: Option<BufWriter<File>>,
    tmp: PathBuf,
    path: PathBuf,
    events: u64,
}

impl Writer {
    /// Creates the temporary file and writes the header. Fails early when the target cannot be written.
    pub fn create(path: &Path, header: &Header) -> Result<Writer> {
        let (file, tmp) = crate::files::create_beside(path)?;
        let mut out = BufWriter::with_capacity(1 << 20, file);
        let json = serde_json::to_vec(header)?;
        out.write_all(MAGIC)?;
        out.write_all(&FORMAT.to_le_bytes())?;
        out.write_all(&(json.len() as u32).to_le_bytes())?;
        out.write_all(&json)?;
        Ok(Writer {
            out: Some(out),
            tmp,
            path: path.to_path_buf(),
            events: 0,
        })
    }

    /// Appends one event.
    pub fn event(&mut self, e: &Event) -> Result<()> {
        self.events += 1;
        let out = self.out.as_mut().context("recording already finished")?;
        out.write_all(&e.encode()).context("writing the trace")
    }

    /// Events written so far.
    pub fn events(&self) -> u64 {
        self.events
    }

    /// Writes the trailer, flushes, and renames the file into place.
    pub fn finish(mut self, profile: &Profile) -> Result<()> {
        let json = serde_json::to_vec(profile)?;
        let mut out = self.out.take().context("recording already finished")?;
        out.write_all(&json)?;
        out.write_all(&(json.len() as u64).to_le_bytes())?;
        out.write_all(END_MAGIC)?;
        let file = out.into_inner().map_err(|e| e.into_error())?;
        file.sync_all().ok();
        std::fs::rename(&self.tmp, &self.path)
            .with_context(|| format!("cannot write {}", self.path.display()))?;
        self.tmp = PathBuf::new();
        Ok(())
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        if !self.tmp.as_os_str().is_empty() {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

/// A recording opened for reading.
pub struct Recording {
    /// The file.
    pub path: PathBuf,
    /// The header.
    pub header: Header,
    /// The profile from the trailer.
    pub profile: Profile,
    /// The file opened and checked by [`Recording::open`]: the events are read from it, never from the
    /// path again (which may name another file by then, even a FIFO).
    file: File,
    events_start: u64,
    events_len: u64,
}

impl Recording {
    /// Opens and validates a recording file.
    pub fn open(path: &Path) -> Result<Recording> {
        let shown = path.display();
        let io = || format!("cannot read recording {shown}");
        // Recordings hold an event stream of any length: the cap only refuses what no disk holds.
        let (mut f, size) = crate::files::open_regular(path, 1 << 50, "recording")?;
        let mut head = [0u8; 16];
        if size < 16 || f.read_exact(&mut head).is_err() || &head[0..8] != MAGIC {
            bail!("{shown}: not a perfgate recording");
        }
        let format = u32::from_le_bytes([head[8], head[9], head[10], head[11]]);
        if format != FORMAT {
            bail!("{shown}: recording format {format}, this perfgate reads format {FORMAT}");
        }
        let header_len = u32::from_le_bytes([head[12], head[13], head[14], head[15]]) as u64;
        if 16 + header_len + 16 > size {
            bail!("{shown}: truncated recording (the header runs past the end; was the recording interrupted?)");
        }
        let mut hjson = vec![0u8; header_len as usize];
        f.read_exact(&mut hjson).with_context(io)?;
        let header: Header = serde_json::from_slice(&hjson)
            .with_context(|| format!("{shown}: damaged recording header"))?;
        let mut tail = [0u8; 16];
        f.seek(SeekFrom::Start(size - 16)).with_context(io)?;
        f.read_exact(&mut tail).with_context(io)?;
        if &tail[8..16] != END_MAGIC {
            bail!("{shown}: truncated recording (no trailer; was the recording interrupted?)");
        }
        let plen = u64::from_le_bytes([
            tail[0], tail[1], tail[2], tail[3], tail[4], tail[5], tail[6], tail[7],
        ]);
        let events_start = 16 + header_len;
        if plen > MAX_JSON || plen > size - 16 - events_start {
            bail!("{shown}: damaged recording (trailer length {plen} does not fit the file)");
        }
        let pstart = size - 16 - plen;
        f.seek(SeekFrom::Start(pstart)).with_context(io)?;
        let mut pjson = vec![0u8; plen as usize];
        f.read_exact(&mut pjson).with_context(io)?;
        let profile: Profile = serde_json::from_slice(&pjson)
            .with_context(|| format!("{shown}: damaged recording trailer"))?;
        let events_len = pstart - events_start;
        if events_len % EVENT_BYTES != 0 {
            bail!("{shown}: damaged recording (event section is not a whole number of events)");
        }
        if let Err(why) = profile.check_consistent() {
            bail!("{shown}: damaged recording ({why})");
        }
        if let Some(e) = profile
            .stats
            .iter()
            .flat_map(|s| [&s.inclusive.hist, &s.self_time.hist])
            .find_map(|h| h.validate().err())
        {
            bail!("{shown}: damaged recording ({e})");
        }
        Ok(Recording {
            path: path.to_path_buf(),
            header,
            profile,
            file: f,
            events_start,
            events_len,
        })
    }

    /// Number of events stored.
    pub fn event_count(&self) -> u64 {
        self.events_len / EVENT_BYTES
    }

    /// Streams the events in file order. A malformed record (an unknown kind, a function not in the
    /// table, a level deeper than the kernel's shadow stack) ends the stream with an error naming the
    /// file.
    pub fn events(&self) -> Result<EventIter> {
        let file = self
            .file
            .try_clone()
            .with_context(|| format!("cannot read {}", self.path.display()))?;
        let at = ReadAt {
            file,
            pos: self.events_start,
        };
        Ok(EventIter {
            r: BufReader::with_capacity(1 << 20, at),
            left: self.event_count(),
            index: 0,
            nfuncs: self.profile.functions.len(),
            path: self.path.clone(),
        })
    }
}

/// Reads a file from its own position with `pread`, so several iterators over one open file (a
/// `try_clone` shares the file offset) never disturb each other.
struct ReadAt {
    file: File,
    pos: u64,
}

impl Read for ReadAt {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        use std::os::unix::fs::FileExt;
        let n = self.file.read_at(buf, self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

/// Iterator over a recording's events.
pub struct EventIter {
    r: BufReader<ReadAt>,
    left: u64,
    index: u64,
    nfuncs: usize,
    path: PathBuf,
}

impl Iterator for EventIter {
    type Item = Result<Event>;
    fn next(&mut self) -> Option<Result<Event>> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        self.index += 1;
        let mut b = [0u8; EVENT_BYTES as usize];
        if let Err(e) = self.r.read_exact(&mut b) {
            self.left = 0;
            let e = anyhow::Error::new(e);
            return Some(Err(
                e.context(format!("cannot read {}", self.path.display()))
            ));
        }
        let damaged = match Event::decode(&b) {
            None => "an unknown kind".to_string(),
            Some(e) if e.func as usize >= self.nfuncs => {
                format!("function #{} of a table of {}", e.func, self.nfuncs)
            }
            Some(e) if e.depth > MAX_LEVEL => format!(
                "nesting level {}, deeper than the {MAX_LEVEL} levels the kernel records",
                e.depth
            ),
            Some(e) => return Some(Ok(e)),
        };
        self.left = 0;
        Some(Err(anyhow::anyhow!(
            "{}: damaged recording (event {} has {damaged})",
            self.path.display(),
            self.index
        )))
    }
}
