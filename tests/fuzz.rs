//! Hostile input, fuzzed: seeded mutations of real inputs (recordings made by the real binary, the
//! fixture ELF files, this machine's ld.so cache, baselines and reports computed from real runs) fed to
//! the library's readers and views in-process, a few through the real binary under a memory limit.
//!
//! Every input must be rejected with a one-line message naming its file, or accepted; nothing may
//! panic; the memory a reader allocates and the bytes a view writes must stay proportional to the
//! input's size (measured with a counting allocator and a capped writer). Each test prints how many
//! inputs it tried. The same seeds give the same inputs on every run, so a failure (printed with its
//! kind, seed and case number, its input kept under `target/fuzz-failures/`) reproduces.
mod common;
mod fuzz_support;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use common::{fixture, perfgate, text};
use fuzz_support::*;
use perfgate::profile::file::{Event, EventKind, Recording};
use perfgate::report::{chrome, flame, replay, summary};

/// An error as the binary prints it (`perfgate: error: …`): one line, cut past 1 KiB.
fn user_sees(e: impl Into<anyhow::Error>) -> String {
    perfgate::cmd::one_line(&e.into())
}

/// Keeps an input that broke a rule, for reproduction outside the test.
fn keep_failure(kind: &str, case: u64, bytes: &[u8]) -> PathBuf {
    let dir = common::root().join("target/fuzz-failures");
    let _ = std::fs::create_dir_all(&dir);
    let p = dir.join(format!("{kind}-{case}"));
    let _ = std::fs::write(&p, bytes);
    p
}

/// The rules broken so far, one line each (the first of each kind is kept).
static BROKEN: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

/// Runs one case; a panic is recorded with the case and its input kept, and the test goes on, so one
/// run shows every kind of defect ([`assert_nothing_broken`] fails the test at the end).
fn guarded(kind: &str, case: u64, bytes: &[u8], f: impl FnOnce()) {
    if let Err(p) = catch_unwind(AssertUnwindSafe(f)) {
        let msg = p
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default();
        let first_line = msg.lines().next().unwrap_or_default().to_string();
        let mut broken = BROKEN.lock().unwrap_or_else(|e| e.into_inner());
        let key: String = first_line.chars().take(40).collect();
        if !broken.iter().any(|b| b.contains(&key)) {
            let kept = keep_failure(kind, case, bytes);
            broken.push(format!(
                "{kind} case {case} ({}): {first_line}",
                kept.display()
            ));
        }
    }
}

/// Fails the test with every rule broken by its cases.
fn assert_nothing_broken(kind: &str) {
    let broken = std::mem::take(&mut *BROKEN.lock().unwrap_or_else(|e| e.into_inner()));
    assert!(
        broken.is_empty(),
        "{kind}: {} kinds of failure:\n{}",
        broken.len(),
        broken.join("\n")
    );
}

// ---------------------------------------------------------------------------------------------------
// Recordings

/// Named inputs: (kind or fixture, bytes).
type Seeds = Vec<(String, Vec<u8>)>;

/// The recording seeds, made once for all tests of this binary (in a directory kept until it exits).
fn seeds() -> &'static [(String, Vec<u8>)] {
    static SEEDS: std::sync::OnceLock<(tempfile::TempDir, Seeds)> = std::sync::OnceLock::new();
    let (_, seeds) = SEEDS.get_or_init(|| {
        let dir = common::scratch();
        let seeds = recording_seeds(dir.path());
        (dir, seeds)
    });
    seeds
}

/// Real recordings, made by the real binary: a two-function run, 50-deep recursion, C++ names,
/// threads, one of which exits in the middle of calls (unfinished calls), and one of each way a call
/// ends without returning: C++ exceptions (frames unwound), longjmp (frames abandoned), a stack
/// switch (frames switched away), and a forked process's calls.
fn recording_seeds(dir: &Path) -> Seeds {
    // (fixture, its arguments, whether it exits non-zero by design: 3 and 42 for these two).
    let runs: [(&str, &[&str], bool); 8] = [
        ("work", &["100"], false),
        ("recursive", &[], false),
        ("cpp", &[], false),
        ("threads", &["exit"], false),
        ("exceptions", &["across"], true),
        ("jumps", &["two_levels"], false),
        ("ucontext", &[], true),
        ("procs", &["fork"], false),
    ];
    runs.iter()
        .map(|(bin, args, fails)| {
            let out = dir.join(format!("{bin}.data"));
            let o = perfgate()
                .args(["record", "--trace", "--no-calibrate", "-o"])
                .arg(&out)
                .args(fails.then_some("--allow-failure"))
                .arg("--")
                .arg(fixture(bin))
                .args(*args)
                .output()
                .expect("running perfgate record");
            assert!(
                o.status.success() || (*fails && out.exists()),
                "record {bin}: {}",
                text(&o.stderr)
            );
            (
                bin.to_string(),
                std::fs::read(&out).expect("reading the recording"),
            )
        })
        .collect()
}

/// The layout of a recording's container, to mutate its parts and not only its bytes.
struct Parts {
    header_json: Vec<u8>,
    events: Vec<u8>,
    profile_json: Vec<u8>,
}

fn split(rec: &[u8]) -> Parts {
    let hlen = u32::from_le_bytes(rec[12..16].try_into().unwrap()) as usize;
    let n = rec.len();
    let plen = u64::from_le_bytes(rec[n - 16..n - 8].try_into().unwrap()) as usize;
    Parts {
        header_json: rec[16..16 + hlen].to_vec(),
        events: rec[16 + hlen..n - 16 - plen].to_vec(),
        profile_json: rec[n - 16 - plen..n - 16].to_vec(),
    }
}

fn join(p: &Parts) -> Vec<u8> {
    let mut v = b"PERFGATE".to_vec();
    v.extend_from_slice(&1u32.to_le_bytes());
    v.extend_from_slice(&(p.header_json.len() as u32).to_le_bytes());
    v.extend_from_slice(&p.header_json);
    v.extend_from_slice(&p.events);
    v.extend_from_slice(&p.profile_json);
    v.extend_from_slice(&(p.profile_json.len() as u64).to_le_bytes());
    v.extend_from_slice(b"PGEND\0\0\0");
    v
}

/// A structured mutation: the events (depth, kind, function, thread, time) or the profile's statistics
/// (min above max, counts that overflow when summed, histogram buckets out of range, ids past the
/// table), re-assembled into a valid container so the damage reaches the views.
fn mutate_recording(rng: &mut Rng, seed: &[u8]) -> Vec<u8> {
    let mut p = split(seed);
    match rng.below(4) {
        0 => {
            let n = p.events.len() / 20;
            for _ in 0..1 + rng.below(8) {
                if n == 0 {
                    break;
                }
                let e = 20 * rng.below(n);
                match rng.below(6) {
                    0 => put_le(
                        &mut p.events,
                        e + 16,
                        2,
                        *rng.pick(&[0, 63, 64, 65, 1000, 0xffff]),
                    ),
                    // Another kind: entry, exit, each way a call ends without returning, and
                    // kinds no writer makes.
                    1 => p.events[e + 18] = *rng.pick(&[0, 1, 2, 3, 4, 5, 0xff]),
                    2 => put_le(&mut p.events, e + 12, 4, interesting(rng, n)),
                    3 => put_le(&mut p.events, e + 8, 4, rng.next() & 0xffff_ffff),
                    4 => put_le(&mut p.events, e, 8, interesting(rng, 0)),
                    _ => {
                        let at = 20 * rng.below(n + 1);
                        let copy = p.events[e..e + 20].to_vec();
                        p.events.splice(at..at, copy);
                    }
                }
            }
        }
        1 | 2 => {
            let mut v: serde_json::Value = serde_json::from_slice(&p.profile_json).unwrap();
            for _ in 0..1 + rng.below(4) {
                damage_profile(rng, &mut v);
            }
            p.profile_json = serde_json::to_vec(&v).unwrap();
        }
        _ => {
            let text = String::from_utf8_lossy(&p.profile_json).into_owned();
            p.profile_json = mutate_text(rng, &text);
        }
    }
    join(&p)
}

fn damage_profile(rng: &mut Rng, v: &mut serde_json::Value) {
    use serde_json::json;
    let nstats = v["stats"].as_array().map_or(0, Vec::len);
    let nfuncs = v["functions"].as_array().map_or(0, Vec::len);
    let big = |rng: &mut Rng| json!(interesting(rng, 0));
    if nstats > 0 && rng.below(3) > 0 {
        let s = &mut v["stats"][rng.below(nstats)];
        let which = *rng.pick(&["inclusive", "self_time"]);
        match rng.below(8) {
            0 => {
                // Inconsistent: the shortest call longer than the longest.
                s[which]["min_ns"] = json!(1_000_000_000u64);
                s[which]["max_ns"] = json!(1u64);
            }
            1 => s["calls"] = big(rng),
            2 => s[which]["sum_ns"] = big(rng),
            3 => s["func"] = json!(nfuncs + rng.below(3)),
            4 => {
                s[which]["hist"]["buckets"] =
                    json!([[0, u64::MAX], [1, u64::MAX], [65535, 1], [327, u64::MAX]])
            }
            5 => s[which]["hist"]["buckets"] = json!([[5, 1], [2, 3], [5, 0]]),
            6 => s["overhead_ns"] = big(rng),
            _ => s[which]["max_ns"] = big(rng),
        }
    } else {
        match rng.below(5) {
            0 if nfuncs > 0 => {
                v["functions"][rng.below(nfuncs)]["name"] = json!("\u{1b}[2J|`<&%]]>\\\n".repeat(8))
            }
            1 => v["accounting"]["lost"]["events_dropped"] = big(rng),
            2 => v["wall_ns"] = big(rng),
            3 => v["functions"] = json!([]),
            _ => v["accounting"]["lost"]["events_dropped_per_cpu"] = json!([u64::MAX, u64::MAX]),
        }
    }
}

/// What each view of a recording may write per byte of it (plus [`OUTPUT_SLACK`]), from its
/// structure: every event is 20 bytes; names are cut to `MAX_SHOWN_NAME` (1 KiB) after escaping, a
/// JSON escape is at most 6 bytes per byte, a nesting level is at most 64 (the kernel's).
/// * summary: one row per statistic (a statistic is over 200 bytes of JSON) of at most two names;
/// * replay: one line per event, of an indent (2 per level), a name and figures;
/// * chrome: one line per call (an entry), of a name and a module, JSON-escaped;
/// * folded: one line per stack with self time; stacks are at most one per entry, of 64 names each
///   (each new stack of a walk takes at least one entry, so 64 KiB per 20 bytes: 3,300 per byte);
/// * flame graphs: one rectangle per distinct stack, of a name XML-escaped (5 bytes per `&`).
const VIEW_BOUNDS: [(&str, u64); 8] = [
    ("summary", 20),
    ("replay", 64 + 128 / 20),
    ("chrome", 2 * 6 * 1024 / 20 + 20),
    ("folded", 64 * 1030 / 20),
    ("flame graph", 5 * 1024 / 20 + 100),
    ("folded per thread", 65 * 1030 / 20),
    ("replay (small buffer)", 64 + 128 / 20),
    (
        "folded diff + diff flame graph",
        2 * 64 * 1030 / 20 + 5 * 1024 / 20 + 100,
    ),
];
const OUTPUT_SLACK: u64 = 1 << 20;
/// Bytes a reader or view may allocate per byte of its input, plus [`ALLOC_SLACK`]. Folding holds
/// every stack's text (see "folded" above), the other views a fixed buffer and the open frames.
const ALLOC_PER_BYTE: usize = 3 * 64 * 1030 / 20;
const ALLOC_SLACK: usize = 16 << 20;

/// What the views of one recording did: accepted (bytes written per view) or the first error.
type ViewsResult = Result<Vec<(&'static str, u64)>, String>;

/// Opens a recording and runs every view over it (the diff views against `base`); checks each
/// view's output against its bound, the memory against [`ALLOC_PER_BYTE`], and a rejection's message.
fn views_of(path: &Path, size: u64, base: &Path, tally: &mut Tally) -> ViewsResult {
    let (result, peak) = peak_allocation(|| -> ViewsResult {
        let rec = Recording::open(path).map_err(user_sees)?;
        let mut written = Vec::new();
        let cap_of = |view: &str| {
            let per_byte = VIEW_BOUNDS.iter().find(|(v, _)| *v == view).unwrap().1;
            per_byte * size + OUTPUT_SLACK
        };
        let opts = summary::SummaryOptions {
            verbose: true,
            ..Default::default()
        };
        let per_thread = summary::SummaryOptions {
            per_thread: true,
            width: Some(80),
            ..opts
        };
        let n = summary::table(&rec.profile, opts).len()
            + summary::table(&rec.profile, per_thread).len();
        assert!(
            n as u64 <= cap_of("summary"),
            "summary: {n} bytes for {size}"
        );
        written.push(("summary", n as u64));
        let _ = perfgate::gate::figures::RunFigures::from_profile(&rec.profile);
        if !rec.profile.has_events {
            return Ok(written);
        }
        let base = Recording::open(base).map_err(user_sees)?;
        type View<'a> = &'a dyn Fn(&mut Capped) -> anyhow::Result<()>;
        let views: [(&str, View); 7] = [
            ("replay", &|o| {
                let opts = replay::ReplayOptions::default();
                replay::replay(&rec.profile, rec.events()?, &opts, o).map(|_| ())
            }),
            ("chrome", &|o| {
                chrome::chrome_trace(&rec.profile, rec.events()?, o)
            }),
            ("folded", &|o| {
                let f = flame::folded(&rec.profile, rec.events()?)?;
                flame::write_folded(&f, o)
            }),
            ("flame graph", &|o| {
                let f = flame::folded(&rec.profile, rec.events()?)?;
                if f.iter().any(|(_, v)| *v > 0) {
                    flame::flame_graph_svg(&f, "fuzz", o)?;
                }
                Ok(())
            }),
            ("folded per thread", &|o| {
                let f = flame::folded_per_thread(&rec.profile, rec.events()?)?;
                flame::write_folded(&f, o)
            }),
            ("replay (small buffer)", &|o| {
                let opts = replay::ReplayOptions {
                    max_buffered_lines: Some(4),
                    ..Default::default()
                };
                replay::replay(&rec.profile, rec.events()?, &opts, o).map(|_| ())
            }),
            ("folded diff + diff flame graph", &|o| {
                let b = flame::folded(&base.profile, base.events()?)?;
                let h = flame::folded(&rec.profile, rec.events()?)?;
                flame::write_folded_diff(&b, &h, o)?;
                if h.iter().any(|(_, v)| *v > 0) {
                    flame::diff_flame_graph_svg(&b, &h, "fuzz", o)?;
                }
                Ok(())
            }),
        ];
        let mut failure = None;
        for (name, view) in views {
            let cap = cap_of(name);
            let mut out = Capped::new(cap);
            if let Err(e) = view(&mut out) {
                assert!(
                    !out.overflowed,
                    "{name} wrote more than {cap} bytes for {size}"
                );
                failure.get_or_insert(user_sees(e));
            }
            written.push((name, out.written));
        }
        failure.map_or(Ok(written), Err)
    });
    let alloc_bound = ALLOC_PER_BYTE * size as usize + ALLOC_SLACK;
    assert!(
        peak <= alloc_bound,
        "allocated {peak} bytes for a {size}-byte recording"
    );
    tally.alloc(peak, size);
    if let Some(written) = tally.judge(&result, path, "recording") {
        tally.output(written.iter().map(|(_, n)| n).sum(), size);
    }
    result
}

#[test]
fn recordings_fuzzed() {
    let dir = common::scratch();
    let seeds = seeds();
    let mut tally = Tally::default();
    let path = dir.path().join("case.data");
    let base = dir.path().join("base.data");
    // Fewer cases of the big seeds: each case runs every view over all its events.
    let cases = |name: &str| match name {
        "threads" => 60,
        "cpp" => 200,
        // main's ways for a call to end (exception, longjmp, stack switch) and a fork: fewer, to
        // keep the whole fuzz run under a minute in a debug build on a busy machine.
        "exceptions" | "jumps" | "ucontext" | "procs" => 80,
        _ => 500,
    };
    let mut case = 0u64;
    for (name, seed) in seeds {
        let mut rng = Rng::new(0xEC0D ^ seed.len() as u64);
        std::fs::write(&base, seed).unwrap();
        for _ in 0..cases(name) {
            case += 1;
            let bytes = if rng.one_in(2) {
                mutate_recording(&mut rng, seed)
            } else {
                mutate_bytes(&mut rng, seed)
            };
            std::fs::write(&path, &bytes).unwrap();
            guarded("recording", case, &bytes, || {
                let _ = views_of(&path, bytes.len() as u64, &base, &mut tally);
            });
        }
    }
    tally.report("recordings");
    assert_nothing_broken("recordings");
}

/// A recording written with the library's own writer: the real profile of `seed` with its function
/// table replaced by `functions` (name, module) and no statistics, and `events`.
fn synthetic_recording(
    path: &Path,
    seed: &Recording,
    functions: &[(String, String)],
    events: impl Iterator<Item = Event>,
) -> u64 {
    use perfgate::profile::file::{Header, Writer};
    let template = seed.profile.functions[0].clone();
    let table: Vec<_> = functions
        .iter()
        .map(|(name, module)| perfgate::profile::FunctionInfo {
            name: name.clone(),
            raw_name: name.clone(),
            module: module.clone(),
            ..template.clone()
        })
        .collect();
    let header = Header {
        command: seed.profile.command.clone(),
        started_at: 0,
        functions: table.clone(),
    };
    let mut profile = seed.profile.clone();
    profile.functions = table;
    profile.stats.clear();
    let mut w = Writer::create(path, &header).unwrap();
    for e in events {
        w.event(&e).unwrap();
    }
    w.finish(&profile).unwrap();
    std::fs::metadata(path).unwrap().len()
}

fn ev(ts: u64, tid: u32, func: u32, depth: u16, kind: EventKind) -> Event {
    Event {
        ts,
        tid,
        func,
        depth,
        kind,
    }
}

/// Entries and exits of a call tree walked depth first: `fanout` callees per call, `levels` deep,
/// the function at each frame chosen by `func(level, index)`.
fn call_tree(levels: u16, fanout: u32, func: impl Fn(u16, u64) -> u32 + Copy) -> Vec<Event> {
    fn walk(
        out: &mut Vec<Event>,
        level: u16,
        levels: u16,
        fanout: u32,
        index: u64,
        func: impl Fn(u16, u64) -> u32 + Copy,
    ) {
        let f = func(level, index);
        let ts = out.len() as u64 * 10;
        out.push(ev(ts, 1, f, level, EventKind::Entry));
        if level < levels {
            for k in 0..fanout {
                walk(
                    out,
                    level + 1,
                    levels,
                    fanout,
                    index * u64::from(fanout) + u64::from(k),
                    func,
                );
            }
        }
        let ts = out.len() as u64 * 10;
        out.push(ev(ts, 1, f, level, EventKind::Exit));
    }
    let mut out = Vec::new();
    walk(&mut out, 1, levels, fanout, 0, func);
    out
}

/// A crafted recording: its views, by name, or the error (which must name the file).
fn crafted(name: &str, functions: &[(String, String)], events: Vec<Event>) -> (u64, ViewsResult) {
    let dir = common::scratch();
    let seed_path = dir.path().join("seed.data");
    std::fs::write(&seed_path, &seeds()[0].1).unwrap();
    let seed = Recording::open(&seed_path).unwrap();
    let path = dir.path().join(format!("{name}.data"));
    let size = synthetic_recording(&path, &seed, functions, events.into_iter());
    let mut tally = Tally::default();
    let result = views_of(&path, size, &seed_path, &mut tally);
    let shown: Vec<String> = match &result {
        Ok(w) => w.iter().map(|(v, n)| format!("{v} {n}")).collect(),
        Err(e) => vec![format!("rejected: {e}")],
    };
    println!("fuzz: crafted {name}: {size} bytes; {}", shown.join(", "));
    (size, result)
}

fn names(n: usize, len: usize) -> Vec<(String, String)> {
    (0..n)
        .map(|i| {
            (
                format!("f{i}_{}", "n".repeat(len.saturating_sub(8))),
                "crafted".to_string(),
            )
        })
        .collect()
}

/// Nesting far deeper than the kernel's 64 levels: 65,535 nested entries once made `report --format
/// folded` grow to 13 GB and `replay` print 8.6 GB; every view that reads the events refuses it now.
#[test]
fn recording_nested_65535_deep_is_refused_by_every_view() {
    let mut events: Vec<Event> = (1..=u16::MAX)
        .map(|d| ev(u64::from(d), 1, 0, d, EventKind::Entry))
        .collect();
    events.extend(
        (1..=u16::MAX)
            .rev()
            .map(|d| ev(200_000 - u64::from(d), 1, 0, d, EventKind::Exit)),
    );
    let (_, result) = crafted("nested-65535", &names(1, 8), events);
    let e = result.expect_err("a 65,535-deep recording is damaged");
    assert!(e.contains("nesting level 65"), "{e}");
}

/// The deepest the kernel writes, flooded: 65,535 entries all at level 64 (each closes the one
/// before as unfinished): accepted, every view within its bound.
#[test]
fn recording_flooded_at_level_64_stays_bounded() {
    let mut events: Vec<Event> = (1..64)
        .map(|d| ev(u64::from(d), 1, u32::from(d % 2), d, EventKind::Entry))
        .collect();
    events.extend((0..65_535u64).map(|i| ev(100 + i, 1, (i % 2) as u32, 64, EventKind::Entry)));
    let (_, result) = crafted("flood-64", &names(2, 64), events);
    result.expect("level 64 is the kernel's deepest");
}

/// A 200 KB name called 64 deep, 50 times: every line that repeats it shows it cut to 1 KiB.
#[test]
fn recording_with_a_200_kb_name_in_deep_recursion_stays_bounded() {
    let mut events = Vec::new();
    for rep in 0..50u64 {
        let t = rep * 1000;
        events.extend((1..=64).map(|d| ev(t + u64::from(d), 1, 0, d, EventKind::Entry)));
        events.extend(
            (1..=64)
                .rev()
                .map(|d| ev(t + 200 - u64::from(d), 1, 0, d, EventKind::Exit)),
        );
    }
    let (size, result) = crafted("long-name", &names(1, 200_000), events);
    let written = result.expect("a long name is not damage");
    let folded = written.iter().find(|(v, _)| *v == "folded").unwrap().1;
    // 64 stacks of 1..64 frames of a 1 KiB name: about 2 MiB, not the 400 MiB of full names.
    assert!(
        folded < 64 * 65 / 2 * 1100,
        "folded {folded} bytes for {size}"
    );
}

/// The worst case of the folded view: 56 nested frames, then a binary tree 8 levels deep, so every
/// leaf's stack is 64 frames of 1 KiB names, each a new stack. The output is large per input byte
/// (the folded format repeats every frame of a stack) but within the bound of `VIEW_BOUNDS`.
#[test]
fn recording_with_distinct_deepest_stacks_stays_within_the_folded_bound() {
    let mut events: Vec<Event> = (1..=56)
        .map(|d| ev(u64::from(d), 1, 0, d, EventKind::Entry))
        .collect();
    let tree = call_tree(8, 2, |level, index| ((index + u64::from(level)) % 2) as u32);
    let t0 = 100;
    events.extend(tree.into_iter().map(|e| Event {
        ts: t0 + e.ts,
        depth: e.depth + 56,
        ..e
    }));
    let (size, result) = crafted("distinct-stacks", &names(2, 1024), events);
    let written = result.expect("a deep tree is not damage");
    let folded = written.iter().find(|(v, _)| *v == "folded").unwrap().1;
    println!(
        "fuzz: the folded view wrote {:.0} bytes per input byte",
        folded as f64 / size as f64
    );
}

/// 20,000 threads with one call each, all at the same time: the replay's reorder buffer and the
/// per-thread stacks stay within their bounds.
#[test]
fn recording_of_20000_threads_stays_bounded() {
    let mut events = Vec::new();
    for tid in 1..=20_000u32 {
        events.push(ev(1000, tid, 0, 1, EventKind::Entry));
    }
    for tid in 1..=20_000u32 {
        events.push(ev(2000, tid, 0, 1, EventKind::Exit));
    }
    let (_, result) = crafted("threads-20000", &names(1, 16), events);
    result.expect("many threads are not damage");
}

// ---------------------------------------------------------------------------------------------------
// ELF files

/// Where the tables of an ELF file are, read from the seed (which is well formed) to aim mutations.
struct ElfLayout {
    /// Offsets of the section headers.
    sections: Vec<usize>,
    /// Offsets of the program headers.
    segments: Vec<usize>,
    /// Offsets of the symbols of `.symtab` and `.dynsym`.
    symbols: Vec<usize>,
    /// Offsets of `DT_*` entries.
    dynamic: Vec<usize>,
}

fn u16_at(b: &[u8], at: usize) -> usize {
    u16::from_le_bytes([b[at], b[at + 1]]) as usize
}

fn u64_at(b: &[u8], at: usize) -> usize {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap()) as usize
}

fn elf_layout(b: &[u8]) -> ElfLayout {
    let (phoff, shoff) = (u64_at(b, 0x20), u64_at(b, 0x28));
    let (phnum, shnum) = (u16_at(b, 0x38), u16_at(b, 0x3c));
    let sections: Vec<usize> = (0..shnum).map(|i| shoff + 64 * i).collect();
    let segments = (0..phnum).map(|i| phoff + 56 * i).collect();
    let mut symbols = Vec::new();
    let mut dynamic = Vec::new();
    for &sh in &sections {
        let kind = u32::from_le_bytes(b[sh + 4..sh + 8].try_into().unwrap());
        let (off, size) = (u64_at(b, sh + 24), u64_at(b, sh + 32));
        match kind {
            2 | 11 => symbols.extend((off..off + size).step_by(24)),
            6 => dynamic.extend((off..off + size).step_by(16)),
            _ => {}
        }
    }
    ElfLayout {
        sections,
        segments,
        symbols,
        dynamic,
    }
}

/// A structured mutation of an ELF file: header fields, a section or program header, a symbol or a
/// dynamic entry given absurd values (sizes past the file, offsets outside it, counts that overflow),
/// then sometimes the file truncated.
fn mutate_elf(rng: &mut Rng, seed: &[u8], layout: &ElfLayout) -> Vec<u8> {
    let mut b = seed.to_vec();
    let len = b.len();
    for _ in 0..1 + rng.below(3) {
        let v = interesting(rng, len);
        match rng.below(5) {
            0 => {
                // e_entry, e_phoff, e_shoff, e_phentsize, e_phnum, e_shentsize, e_shnum, e_shstrndx.
                let (at, w) = *rng.pick(&[
                    (0x18, 8),
                    (0x20, 8),
                    (0x28, 8),
                    (0x36, 2),
                    (0x38, 2),
                    (0x3a, 2),
                    (0x3c, 2),
                    (0x3e, 2),
                    (0x10, 2),
                ]);
                put_le(&mut b, at, w, v);
            }
            1 if !layout.sections.is_empty() => {
                // sh_name, sh_type, sh_offset, sh_size, sh_link, sh_info, sh_entsize, sh_addr.
                let sh = *rng.pick(&layout.sections);
                let (at, w) = *rng.pick(&[
                    (0, 4),
                    (4, 4),
                    (24, 8),
                    (32, 8),
                    (40, 4),
                    (44, 4),
                    (56, 8),
                    (16, 8),
                ]);
                put_le(&mut b, sh + at, w, v);
            }
            2 if !layout.segments.is_empty() => {
                // p_type, p_flags, p_offset, p_vaddr, p_filesz, p_memsz, p_align.
                let ph = *rng.pick(&layout.segments);
                let (at, w) =
                    *rng.pick(&[(0, 4), (4, 4), (8, 8), (16, 8), (32, 8), (40, 8), (48, 8)]);
                put_le(&mut b, ph + at, w, v);
            }
            3 if !layout.symbols.is_empty() => {
                // st_name, st_info, st_shndx, st_value, st_size: symbols pointing outside the file.
                for _ in 0..1 + rng.below(16) {
                    let sym = *rng.pick(&layout.symbols);
                    let (at, w) = *rng.pick(&[(0, 4), (4, 1), (6, 2), (8, 8), (16, 8)]);
                    let v = interesting(rng, len);
                    put_le(&mut b, sym + at, w, v);
                }
            }
            _ if !layout.dynamic.is_empty() => {
                let d = *rng.pick(&layout.dynamic);
                let (at, w) = *rng.pick(&[(0, 8), (8, 8)]);
                put_le(&mut b, d + at, w, v);
            }
            _ => {}
        }
    }
    if rng.one_in(6) {
        let at = rng.below(len);
        b.truncate(at);
    }
    b
}

/// The fixtures mutated: an executable, a stripped one (`.dynsym` only), a shared library, C++
/// names, CET code, a loop at the entry, 100 functions; and one with MiniDebugInfo (its `.symtab`
/// xz-compressed in `.gnu_debugdata`, as Fedora ships them), built here with objcopy and xz.
fn elf_seeds(dir: &Path) -> Seeds {
    let mut seeds: Seeds = [
        "work",
        "work_stripped",
        "libfixture.so",
        "cpp",
        "cet",
        "loop_entry",
        "many_100",
    ]
    .iter()
    .map(|n| (n.to_string(), std::fs::read(fixture(n)).unwrap()))
    .collect();
    let work = fixture("work");
    let script = format!(
        "set -e; cd {dir}; cp {work} full; cp full mini; strip --strip-all mini
         objcopy --only-keep-debug full full.debug
         objcopy -S --remove-section .gdb_index --remove-section .comment full.debug symtab
         xz -k symtab; objcopy --add-section .gnu_debugdata=symtab.xz mini",
        dir = dir.display(),
        work = work.display()
    );
    let st = std::process::Command::new("sh")
        .args(["-c", &script])
        .status()
        .unwrap();
    assert!(st.success(), "building the MiniDebugInfo seed");
    seeds.push((
        "minidebuginfo".into(),
        std::fs::read(dir.join("mini")).unwrap(),
    ));
    seeds
}

/// Reads one ELF file as `record` would: symbols (with MiniDebugInfo and debug files next to it),
/// the code of every function with its probe placement; every 8th case the whole plan, libraries
/// resolved like ld.so. Returns the error message if rejected.
fn read_elf_case(path: &Path, whole_plan: bool) -> Result<usize, String> {
    use perfgate::elf::{self, placement, DebugDirs};
    let mut dirs = DebugDirs::none();
    dirs.next_to_file = true;
    dirs.mini_debuginfo = true;
    let (file, image) = elf::read_elf_image(path, &dirs).map_err(user_sees)?;
    let mut placed = 0;
    for f in file.functions.iter().take(500) {
        let code = image.code_of(f);
        let _ = placement::place_probe_with(code, f.addr, &[]);
        let _ = placement::direct_branch_targets(code, f.addr);
        let _ = elf::classify_entry_at(code, f.addr);
        placed += 1;
    }
    let _ = elf::symbol_address(path, "main");
    if whole_plan {
        let sel = perfgate::plan::Selection::default();
        perfgate::plan::build(path, &sel).map_err(user_sees)?;
    }
    Ok(placed)
}

#[test]
fn elf_files_fuzzed() {
    let dir = common::scratch();
    let seeds = elf_seeds(dir.path());
    let mut tally = Tally::default();
    let path = dir.path().join("case");
    let mut case = 0u64;
    for (name, seed) in &seeds {
        let layout = elf_layout(seed);
        let mut rng = Rng::new(0xE1F ^ seed.len() as u64);
        let cases = if seed.len() > 50_000 { 150 } else { 300 };
        for _ in 0..cases {
            case += 1;
            let bytes = match rng.below(3) {
                0 => mutate_bytes(&mut rng, seed),
                _ => mutate_elf(&mut rng, seed, &layout),
            };
            std::fs::write(&path, &bytes).unwrap();
            let whole_plan = case % 8 == 0;
            guarded(&format!("elf-{name}"), case, &bytes, || {
                let size = bytes.len() as u64;
                let (result, peak) = peak_allocation(|| read_elf_case(&path, whole_plan));
                // A plan reads the system's libraries too: their size is not the input's.
                if !whole_plan {
                    let bound = ALLOC_PER_ELF_BYTE * bytes.len() + ALLOC_SLACK;
                    assert!(
                        peak <= bound,
                        "allocated {peak} bytes for a {size}-byte ELF file"
                    );
                    tally.alloc(peak, size);
                }
                tally.judge(&result, &path, "ELF");
            });
        }
    }
    tally.report("ELF files");
    assert_nothing_broken("ELF files");
}

/// Memory an ELF read may take per byte of the file: the file itself, its symbols and names
/// (demangled names are longer), the code kept for placement.
const ALLOC_PER_ELF_BYTE: usize = 16;

// ---------------------------------------------------------------------------------------------------
// The ld.so cache

/// This machine's `/etc/ld.so.cache` mutated: header counts, entry string offsets, flags; parsed
/// from bytes and loaded from a file, then looked up; every 10th case resolves a fixture's libraries
/// through it (paths of a hostile cache lead to whatever file they name).
#[test]
fn ld_so_cache_fuzzed() {
    use perfgate::elf::{self, LdCache, LoaderEnv};
    let seed = std::fs::read(elf::LD_SO_CACHE).expect("reading /etc/ld.so.cache");
    let dir = common::scratch();
    let path = dir.path().join("ld.so.cache");
    let uselib = elf::read_elf(&fixture("uselib")).unwrap();
    let hwcaps = elf::supported_hwcaps();
    let mut rng = Rng::new(0x1D50);
    let mut tally = Tally::default();
    // The new format's header is 48 bytes, then 24-byte entries (flags, key, value, osversion, hwcap).
    let new_at = seed
        .windows(17)
        .position(|w| w == b"glibc-ld.so.cache")
        .unwrap();
    let entries = (seed.len() - new_at - 48) / 24;
    for case in 0..2000u64 {
        let mut bytes = seed.clone();
        match rng.below(3) {
            0 => bytes = mutate_bytes(&mut rng, &seed),
            1 => {
                for _ in 0..1 + rng.below(6) {
                    let e = new_at + 48 + 24 * rng.below(entries.min(2000));
                    let (at, w) = *rng.pick(&[(0, 4), (4, 4), (8, 4), (16, 8)]);
                    let v = interesting(&mut rng, seed.len());
                    put_le(&mut bytes, e + at, w, v);
                }
            }
            _ => {
                // nlibs, len_strings, flags, extension offset.
                let (at, w) = *rng.pick(&[(20, 4), (24, 4), (28, 1), (32, 4), (36, 4)]);
                let v = interesting(&mut rng, seed.len());
                put_le(&mut bytes, new_at + at, w, v);
            }
        }
        std::fs::write(&path, &bytes).unwrap();
        guarded("ld.so.cache", case, &bytes, || {
            let size = bytes.len() as u64;
            let (result, peak) = peak_allocation(|| {
                let parsed = LdCache::parse(&bytes);
                let loaded = LdCache::load(&path);
                assert_eq!(parsed.is_ok(), loaded.is_ok(), "parse and load disagree");
                if let Ok(c) = &loaded {
                    let _ = c.lookup("libc.so.6");
                    let _ = c.lookup_hwcaps("libm.so.6", &hwcaps);
                    let _ = c.lookup("");
                }
                loaded
            });
            assert!(
                peak <= 8 * bytes.len() + ALLOC_SLACK,
                "allocated {peak} bytes for {size}"
            );
            tally.alloc(peak, size);
            tally.tried += 1;
            match result {
                Ok(_) => {
                    tally.accepted += 1;
                    if case % 10 == 0 {
                        let mut env = LoaderEnv::new();
                        env.hwcaps = hwcaps.clone();
                        env.load_cache(&path);
                        let _ = elf::resolve_libraries(&uselib, &env);
                    }
                }
                Err(msg) => {
                    tally.rejected += 1;
                    assert_names_file(&user_sees(anyhow::anyhow!(msg)), &path, "ld.so.cache");
                }
            }
        });
    }
    tally.report("ld.so caches");
    assert_nothing_broken("ld.so caches");
}

// ---------------------------------------------------------------------------------------------------
// Baselines, comparisons and the reports made of them

/// The per-run figures of the seed recordings: what `baseline` and `check` compute from real runs.
fn seed_runs() -> Vec<(String, Vec<perfgate::gate::figures::RunFigures>)> {
    let dir = common::scratch();
    seeds()
        .iter()
        .map(|(name, bytes)| {
            let p = dir.path().join("seed.data");
            std::fs::write(&p, bytes).unwrap();
            let rec = Recording::open(&p).unwrap();
            let one = perfgate::gate::figures::RunFigures::from_profile(&rec.profile);
            // Five runs that differ a little, like real ones.
            let runs = (0..5)
                .map(|k| {
                    let mut r = one.clone();
                    let f = 1.0 + 0.01 * k as f64;
                    for v in r.functions.values_mut() {
                        v.mean *= f;
                        v.self_mean *= f;
                        v.total *= f;
                        v.self_total *= f;
                    }
                    r.total_self *= f;
                    r
                })
                .collect();
            (name.clone(), runs)
        })
        .collect()
}

/// Baselines made from the seed runs, as `baseline` writes them, one with every optional table.
fn baseline_seeds(runs: &[(String, Vec<perfgate::gate::figures::RunFigures>)]) -> Vec<String> {
    use perfgate::gate::baseline::{Baseline, GateOverrides};
    let mut out = Vec::new();
    for (name, r) in runs {
        let b = Baseline::from_runs(
            vec![format!("fixtures/bin/{name}")],
            Some("45608d41aa2024f97ae15a1a9a397b5608c56668".into()),
            perfgate::profile::Machine::current(),
            GateOverrides::default(),
            &perfgate::plan::Selection::default(),
            r,
        );
        out.push(b.to_toml().unwrap());
    }
    let mut full = out[0].clone();
    full = full.replace(
        "[gate]\n",
        "[gate]\nalpha = 0.05\nthreshold = 0.1\nconfidence = 0.9\nmin_share = 0.02\nruns = 5\nmax_runs = 20\n\
         metric = \"inclusive\"\ngate_calls = true\nrelative = false\nnormalise = true\n",
    );
    full = full.replace(
        "[select]\n",
        "[select]\nlibs = [\"libc.so*\"]\nfunctions = [\"work*\"]\nno_functions = [\"main\"]\nno_placement = true\n",
    );
    full = full.replacen(
        "symbol = \"main\"\n",
        "symbol = \"main\"\nthreshold = 0.2\nignore = true\n",
        1,
    );
    out.push(full);
    out
}

/// Memory a baseline may take per byte: the TOML tree, the baseline, its runs as figures, the
/// comparison and its reports.
const ALLOC_PER_BASELINE_BYTE: usize = 64;

/// Reads a baseline and does with it what `check` does after its runs: the comparison against real
/// head runs, the rule for more runs, every report (when `compare_too`: a comparison takes 75 ms in
/// a debug build). The error message if rejected.
fn check_with_baseline(
    path: &Path,
    head: &[perfgate::gate::figures::RunFigures],
    compare_too: bool,
) -> Result<u64, String> {
    use perfgate::gate::{baseline::Baseline, compare, model::GateSettings, rule};
    use perfgate::report::{check_table, json, junit, markdown, Exporter};
    let b = Baseline::read(path).map_err(user_sees)?;
    let mut settings = GateSettings::default();
    b.gate.apply(&mut settings);
    let machine = b.machine.clone();
    let _ = b.run_figures();
    if !compare_too {
        return Ok(0);
    }
    let c = compare::compare(&b, head, &settings, "fuzz", &machine);
    let _ = rule::more_runs(&c, head.len(), &settings);
    let mut written = 0u64;
    let style = check_table::TableStyle {
        all: true,
        width: Some(100),
        color: true,
        full_names: false,
        quick: false,
    };
    written += check_table::table(&c, &style).len() as u64;
    written += json::Json.render(&c).map_err(user_sees)?.len() as u64;
    written += markdown::Markdown::default()
        .render(&c)
        .map_err(user_sees)?
        .len() as u64;
    let at = junit::Provenance::current();
    written += junit::report(std::slice::from_ref(&c), &at)
        .map_err(user_sees)?
        .len() as u64;
    Ok(written)
}

#[test]
fn baselines_fuzzed() {
    let runs = seed_runs();
    let seeds = baseline_seeds(&runs);
    let dir = common::scratch();
    let path = dir.path().join("base.toml");
    let mut rng = Rng::new(0xBA5E);
    let mut tally = Tally::default();
    for case in 0..1500u64 {
        let seed = rng.pick(&seeds).clone();
        let bytes = if rng.one_in(4) {
            mutate_bytes(&mut rng, seed.as_bytes())
        } else {
            mutate_text(&mut rng, &seed)
        };
        std::fs::write(&path, &bytes).unwrap();
        let head = &rng.pick(&runs).1;
        guarded("baseline", case, &bytes, || {
            let size = bytes.len() as u64;
            let (result, peak) =
                peak_allocation(|| check_with_baseline(&path, head, case % 3 == 0));
            let bound = ALLOC_PER_BASELINE_BYTE * bytes.len() + ALLOC_SLACK;
            assert!(
                peak <= bound,
                "allocated {peak} bytes for a {size}-byte baseline"
            );
            tally.alloc(peak, size);
            if let Some(&written) = tally.judge(&result, &path, "baseline") {
                tally.output(written, size);
            }
        });
    }
    tally.report("baselines");
    assert_nothing_broken("baselines");
}

/// A crafted baseline: `runs` runs (every function called in each), one function with a name of
/// `name_len` bytes (its symbol as long), the rest as a real baseline has them.
fn crafted_baseline(runs: usize, name_len: usize) -> String {
    crafted_baseline_of(runs, name_len, 1, "1")
}

/// [`crafted_baseline`] with `functions` such functions (names `0…`, `1…`) and `value` for every
/// figure.
fn crafted_baseline_of(runs: usize, name_len: usize, functions: usize, value: &str) -> String {
    let ones = vec![value; runs].join(",");
    let calls = vec!["1"; runs].join(",");
    let mut t = format!(
        "schema = 1\nperfgate_version = \"0.1.0\"\ncommand = [\"fixtures/bin/work\"]\ncreated_at = 1\n\
         runs = {runs}\nwall_ns = [{ones}]\ntotal_self_ns = [{ones}]\n\n[machine]\ncpu_model = \"x\"\n\
         cores = 2\nkernel = \"6\"\n\n"
    );
    for k in 0..functions {
        let name = format!("{k}{}", "n".repeat(name_len));
        t += &format!("[[function]]\nname = \"{name}\"\nmodule = \"work\"\nsymbol = \"{name}\"\n");
        for key in [
            "calls",
            "mean_ns",
            "p50_ns",
            "p90_ns",
            "p99_ns",
            "self_mean_ns",
            "self_p50_ns",
            "total_ns",
            "self_total_ns",
        ] {
            let values = if key == "calls" { &calls } else { &ones };
            t += &format!("{key} = [{values}]\n");
        }
    }
    t
}

/// The finding of a crafted 10 MB baseline (20,000 runs, a 200 KB name) that reached 7.9 GB: every
/// run's figures held their own copy of the name. Scaled down here (2,000 runs, a 20 KB name) to
/// measure in-process: refused before the copies are made, naming the file.
#[test]
fn baseline_with_many_runs_and_a_long_name_is_refused_within_bounded_memory() {
    let dir = common::scratch();
    let path = dir.path().join("crafted.toml");
    let text = crafted_baseline(2000, 20_000);
    std::fs::write(&path, &text).unwrap();
    let head = &seed_runs()[0].1;
    let (result, peak) = peak_allocation(|| check_with_baseline(&path, head, true));
    println!(
        "fuzz: crafted baseline of {} bytes (2,000 runs, a 20 KB name): peak allocation {} KiB, {:?}",
        text.len(),
        peak >> 10,
        result
    );
    let bound = ALLOC_PER_BASELINE_BYTE * text.len() + ALLOC_SLACK;
    assert!(
        peak <= bound,
        "allocated {peak} bytes for a {}-byte baseline",
        text.len()
    );
    let e = result.expect_err("refused");
    assert_names_file(&e, &path, "baseline");
}

/// TOML's parser takes about 200 bytes per value: a baseline of 20,000 runs of `1,` (10 MB of them
/// would take 1 GB before anything is checked) is refused before it is parsed.
#[test]
fn baseline_of_dense_values_is_refused_before_parsing() {
    let dir = common::scratch();
    let path = dir.path().join("dense.toml");
    let text = crafted_baseline(20_000, 100);
    std::fs::write(&path, &text).unwrap();
    let (result, peak) = peak_allocation(|| check_with_baseline(&path, &[], false));
    println!(
        "fuzz: crafted baseline of {} bytes (20,000 runs): peak allocation {} KiB, {result:?}",
        text.len(),
        peak >> 10
    );
    // The file itself, and little more: the parser never ran.
    assert!(peak < 2 * text.len() + (1 << 20), "{peak}");
    assert_names_file(&result.expect_err("refused"), &path, "baseline");
}

// ---------------------------------------------------------------------------------------------------
// perfgate.toml and the JSON reports `merge` reads

/// A project file with every key, and a small one.
const CONFIG_SEEDS: [&str; 2] = [
    "[gate]\nthreshold = 0.05\nrelative = true\nalpha = 0.05\nmetric = \"self\"\n\n\
     [[benchmark]]\nname = \"gb1\"\ncommand = [\"./bin/gatebench\", \"--n\", \"3\"]\n\
     baseline = \"baselines/gb1.toml\"\nruns = 10\nbuild = \"make bench\"\nlib = [\"libc.so*\"]\n\
     function = [\"work*\"]\nno_function = [\"main\"]\nstartup = true\n\n[benchmark.gate]\nthreshold = 0.1\n\n\
     [[benchmark]]\nname = \"gb2\"\ncommand = [\"./bin/gatebench\"]\nbaseline = \"baselines/gb2.toml\"\n",
    "[[benchmark]]\nname = \"work\"\ncommand = [\"fixtures/bin/work\"]\nbaseline = \"b.toml\"\n",
];

#[test]
fn project_files_fuzzed() {
    use perfgate::config::{Config, Shard};
    let dir = common::scratch();
    let path = dir.path().join("perfgate.toml");
    let mut rng = Rng::new(0xC0F1);
    let mut tally = Tally::default();
    for case in 0..1500u64 {
        let seed = *rng.pick(&CONFIG_SEEDS);
        let bytes = if rng.one_in(4) {
            mutate_bytes(&mut rng, seed.as_bytes())
        } else {
            mutate_text(&mut rng, seed)
        };
        std::fs::write(&path, &bytes).unwrap();
        guarded("perfgate.toml", case, &bytes, || {
            let size = bytes.len() as u64;
            let (result, peak) = peak_allocation(|| {
                let c = Config::read(&path).map_err(user_sees)?;
                let all = c.select(&[]).map_err(user_sees)?;
                for b in &all {
                    let _ = c.resolve(&b.baseline);
                }
                let _ = Shard::parse("2/3").map(|s| s.pick(&all).len());
                Ok::<_, String>(all.len())
            });
            assert!(
                peak <= 256 * bytes.len() + ALLOC_SLACK,
                "allocated {peak} bytes for {size}"
            );
            tally.alloc(peak, size);
            tally.judge(&result, &path, "perfgate.toml");
        });
    }
    tally.report("perfgate.toml files");
    assert_nothing_broken("perfgate.toml files");
}

/// `check --json` reports of real comparisons (the seed runs against baselines of themselves), one
/// benchmark alone and a suite of all, with an unchecked benchmark.
fn report_seeds() -> Vec<String> {
    use perfgate::gate::{baseline::Baseline, compare, model::GateSettings};
    use perfgate::report::json::{to_json, BenchmarkReport, Context, FailOn, Suite};
    let runs = seed_runs();
    let seeds = baseline_seeds(&runs);
    let settings = GateSettings::default();
    let mut reports = Vec::new();
    for (i, ((name, head), text)) in runs.iter().zip(&seeds).enumerate() {
        let b = Baseline::parse(text).unwrap();
        let c = compare::compare(&b, head, &settings, name, &b.machine);
        reports.push(BenchmarkReport {
            name: name.clone(),
            baseline: format!("baselines/{name}.toml"),
            base_commit: Some("abc1234".into()),
            reproduce: format!("perfgate check --baseline baselines/{name}.toml"),
            update: format!("perfgate check --baseline baselines/{name}.toml --update"),
            error: None,
            context: (i == 0).then(Context::default),
            fail_on: FailOn::Regression,
            comparison: Some(c),
        });
    }
    let mut unchecked = reports[0].clone();
    unchecked.name = "broken".into();
    unchecked.error = Some("baselines/broken.toml: no such file".into());
    unchecked.comparison = None;
    let suite = Suite {
        perfgate_suite: 1,
        context: Context {
            head_commit: Some("def5678".into()),
            run_url: Some("https://ci.example/run/1".into()),
            artifact_url: None,
            quick: false,
        },
        shards: vec!["1/2".into()],
        benchmarks: reports.iter().cloned().chain([unchecked]).collect(),
    };
    let mut out: Vec<String> = vec![String::from_utf8(to_json(&reports[0]).unwrap()).unwrap()];
    out.push(String::from_utf8(to_json(&suite).unwrap()).unwrap());
    out
}
/// Reads a report as `merge` does (a JSON tree, then the suite or the one benchmark) and renders
/// what `merge` writes: markdown, JUnit, JSON, the brief lines. The error message if rejected.
fn merge_in_process(path: &Path) -> Result<u64, String> {
    use perfgate::report::json::{to_json, BenchmarkReport, Suite};
    use perfgate::report::{check_table, junit, markdown};
    let shown = path.display();
    let bytes = std::fs::read(path).unwrap();
    let value: serde_json::Value = serde_json::from_slice(&bytes)
        .map_err(|e| user_sees(anyhow::anyhow!("{shown}: not JSON: {e}")))?;
    let suite = if value.get("perfgate_suite").is_some() {
        serde_json::from_value::<Suite>(value)
    } else {
        serde_json::from_value::<BenchmarkReport>(value).map(|b| Suite {
            perfgate_suite: 1,
            context: b.context.clone().unwrap_or_default(),
            shards: Vec::new(),
            benchmarks: vec![b],
        })
    }
    .map_err(|e| user_sees(anyhow::anyhow!("{shown}: not a perfgate report: {e}")))?;
    let mut written = markdown::suite(&suite, false).len() + markdown::suite(&suite, true).len();
    let at = junit::Provenance::current();
    written += junit::report_all(&suite.comparisons(), &[], &at)
        .map_err(user_sees)?
        .len();
    written += to_json(&suite).map_err(user_sees)?.len();
    for b in &suite.benchmarks {
        written += check_table::brief(b, false, false).len();
        written += markdown::benchmark(b, &suite.context, false).len();
    }
    Ok(written as u64)
}

#[test]
fn reports_fuzzed() {
    let seeds = report_seeds();
    let dir = common::scratch();
    let path = dir.path().join("report.json");
    let out = dir.path().join("out");
    let mut rng = Rng::new(0x3E6);
    let mut tally = Tally::default();
    let mut through_binary = 0;
    for case in 0..1000u64 {
        let seed = rng.pick(&seeds).clone();
        let bytes = if rng.one_in(4) {
            mutate_bytes(&mut rng, seed.as_bytes())
        } else {
            mutate_text(&mut rng, &seed)
        };
        std::fs::write(&path, &bytes).unwrap();
        guarded("report", case, &bytes, || {
            let size = bytes.len() as u64;
            let (result, peak) = peak_allocation(|| merge_in_process(&path));
            assert!(
                peak <= ALLOC_PER_REPORT_BYTE * bytes.len() + ALLOC_SLACK,
                "allocated {peak} bytes for {size}"
            );
            tally.alloc(peak, size);
            if let Some(&written) = tally.judge(&result, &path, "report") {
                tally.output(written, size);
            }
            // Every 20th through the real binary, under a memory limit: its own messages.
            if case % 20 == 0 {
                through_binary += 1;
                let (md, xml) = (out.with_extension("md"), out.with_extension("xml"));
                let o = limited(&[
                    "merge".as_ref(),
                    "--markdown".as_ref(),
                    md.as_ref(),
                    "--junit".as_ref(),
                    xml.as_ref(),
                    path.as_ref(),
                ]);
                let err = text(&o.stderr);
                assert!(!err.contains("panicked"), "{err}");
                match o.status.code() {
                    Some(0..=2) => {}
                    c => panic!("merge exited with {c:?}: {err}"),
                }
                if result.is_err() {
                    assert_eq!(o.status.code(), Some(2), "{err}");
                    let line = err
                        .lines()
                        .find(|l| l.starts_with("perfgate: error:"))
                        .unwrap_or_default();
                    assert_names_file(line, &path, "merge");
                }
            }
        });
    }
    tally.report("JSON reports");
    println!("fuzz: JSON reports: {through_binary} of them also through `perfgate merge` under a 1 GiB limit");
    assert_nothing_broken("JSON reports");
}

/// Memory a report may take per byte: the JSON tree (32 bytes a value), the typed report, renders.
const ALLOC_PER_REPORT_BYTE: usize = 64;

/// Runs the real binary under `prlimit --as` (1 GiB of address space): a blow-up fails to allocate
/// and aborts instead of swapping the machine.
fn limited(args: &[&std::ffi::OsStr]) -> std::process::Output {
    let bin = assert_cmd::cargo::cargo_bin("perfgate");
    std::process::Command::new("prlimit")
        .arg(format!("--as={}", 1u64 << 30))
        .arg(bin)
        .args(args)
        .current_dir(common::root())
        .output()
        .expect("running prlimit")
}

// ---------------------------------------------------------------------------------------------------
// Through the real binary

/// The first `perfgate: error:` line of a run that must fail cleanly: exit 2, no panic, the file named.
fn clean_error(o: &std::process::Output, path: &Path) -> String {
    let err = text(&o.stderr);
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(o.status.code(), Some(2), "stderr: {err}");
    let line = err
        .lines()
        .find(|l| l.starts_with("perfgate: error:"))
        .unwrap_or_else(|| panic!("no error line: {err}"))
        .to_string();
    assert_names_file(&line, path, "perfgate");
    line
}

/// Files that are not regular files (a FIFO would block a read forever, `/dev/zero` never ends, a
/// directory is no file) are refused by every command that reads one, naming it.
#[test]
fn special_files_are_refused_by_every_reader() {
    let dir = common::scratch();
    let fifo = dir.path().join("fifo");
    assert!(std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    let good = dir.path().join("good.data");
    std::fs::write(&good, &seeds()[0].1).unwrap();
    let mut tried = 0;
    for special in [fifo.as_path(), Path::new("/dev/zero"), dir.path()] {
        let s = special.as_os_str();
        let runs: [Vec<&std::ffi::OsStr>; 8] = [
            vec![
                "check".as_ref(),
                "--baseline".as_ref(),
                s,
                "--".as_ref(),
                "true".as_ref(),
            ],
            vec!["report".as_ref(), "-i".as_ref(), s],
            vec![
                "report".as_ref(),
                "-i".as_ref(),
                good.as_ref(),
                "--diff".as_ref(),
                s,
                "--format".as_ref(),
                "folded".as_ref(),
            ],
            vec!["replay".as_ref(), "-i".as_ref(), s],
            vec!["merge".as_ref(), s],
            vec!["check".as_ref(), "--all".as_ref(), "--config".as_ref(), s],
            vec![
                "baseline".as_ref(),
                "--all".as_ref(),
                "--config".as_ref(),
                s,
            ],
            vec!["hook".as_ref(), "install".as_ref(), "--config".as_ref(), s],
        ];
        for args in runs {
            let o = limited(&args);
            let line = clean_error(&o, special);
            assert!(line.contains("not a regular file"), "{args:?}: {line}");
            tried += 1;
        }
    }
    println!("fuzz: {tried} commands refused a FIFO, /dev/zero and a directory as their input");
}

/// The 65,535-deep recording through every view of the binary, under a 1 GiB address-space limit:
/// each refuses it naming the file, having written almost nothing.
#[test]
fn nested_65535_deep_recording_is_refused_by_the_binary() {
    let dir = common::scratch();
    let seed_path = dir.path().join("seed.data");
    std::fs::write(&seed_path, &seeds()[0].1).unwrap();
    let seed = Recording::open(&seed_path).unwrap();
    let path = dir.path().join("deep.data");
    let events = (1..=u16::MAX)
        .map(|d| ev(u64::from(d), 1, 0, d, EventKind::Entry))
        .chain(
            (1..=u16::MAX)
                .rev()
                .map(|d| ev(200_000 - u64::from(d), 1, 0, d, EventKind::Exit)),
        );
    synthetic_recording(&path, &seed, &names(1, 8), events);
    let mut views = 0;
    // The summary reads the statistics only (this recording has none): it works.
    let o = limited(&["report".as_ref(), "-i".as_ref(), path.as_ref()]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    for format in ["chrome", "flame-graph", "folded"] {
        let o = limited(&[
            "report".as_ref(),
            "-i".as_ref(),
            path.as_ref(),
            "--format".as_ref(),
            format.as_ref(),
        ]);
        let line = clean_error(&o, &path);
        assert!(
            format == "summary" || line.contains("nesting level 65"),
            "{format}: {line}"
        );
        assert!(
            o.stdout.len() < 4096,
            "{format}: {} bytes written",
            o.stdout.len()
        );
        views += 1;
    }
    let o = limited(&["replay".as_ref(), "-i".as_ref(), path.as_ref()]);
    let line = clean_error(&o, &path);
    assert!(line.contains("nesting level 65"), "replay: {line}");
    assert!(
        o.stdout.len() < 64 << 10,
        "replay: {} bytes written",
        o.stdout.len()
    );
    println!(
        "fuzz: the 65,535-deep recording: refused by {} views of the binary",
        views + 1
    );
}

/// The crafted baseline of the finding at full size (20,000 runs, 200 KB names, 10 MB; it reached
/// 7.9 GB), through `check` under a 1 GiB address-space limit: refused, naming the file, before any
/// run. And the same runs with real-looking figures (12 bytes each, not dense): refused too, by
/// the memory its runs would take.
#[test]
fn crafted_10_mb_baselines_are_refused_by_check_within_1_gib() {
    let dir = common::scratch();
    for (name, text) in [
        ("dense.toml", crafted_baseline_of(20_000, 200_000, 3, "1")),
        (
            "figures.toml",
            crafted_baseline_of(20_000, 200_000, 3, "123456789.5"),
        ),
    ] {
        let path = dir.path().join(name);
        std::fs::write(&path, &text).unwrap();
        let o = limited(&[
            "check".as_ref(),
            "--baseline".as_ref(),
            path.as_ref(),
            "--".as_ref(),
            "true".as_ref(),
        ]);
        let line = clean_error(&o, &path);
        println!(
            "fuzz: crafted baseline {name} of {} MB: {line}",
            text.len() >> 20
        );
    }
}
