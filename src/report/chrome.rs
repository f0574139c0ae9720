//! The recording as a Chrome Trace Event Format file, for Perfetto (ui.perfetto.dev) or chrome://tracing.
//!
//! One complete event (`"ph":"X"`) per reconstructed call, one `thread_name` metadata event per thread,
//! one instant event (`"ph":"i"`, name `gap`) per gap, written as the calls complete: memory is that of
//! the [`Reconstructor`] alone, O(threads × depth), whatever the length of the recording. Events come
//! out in completion order (callees before callers), which the format allows; timestamps are the
//! kernel's monotonic clock in µs with exact ns decimals. The file has one event per line.
use std::collections::HashSet;
use std::io::{BufWriter, Write};

use anyhow::Result;

use super::escape::cut_long;
use crate::profile::calls::{Call, CallSink, EndedBy, Gap, Reconstructor};
use crate::profile::file::Event;
use crate::profile::{FuncId, Nanos, Profile};

/// Process id written in the events (the recording does not keep the real one).
const PID: u32 = 1;

/// Writes the Chrome trace of the events to `out`.
pub fn chrome_trace(
    profile: &Profile,
    events: impl Iterator<Item = Result<Event>>,
    out: &mut dyn Write,
) -> Result<()> {
    let mut w = BufWriter::new(out);
    let command = profile.command.join(" ");
    w.write_all(b"{\"traceEvents\":[\n")?;
    write!(
        w,
        r#"{{"ph":"M","pid":{PID},"tid":0,"name":"process_name","args":{{"name":{}}}}}"#,
        json(&command)?
    )?;
    let mut sink = Sink {
        w,
        profile,
        threads: HashSet::new(),
    };
    let stats = Reconstructor::new().run(events, &mut sink)?;
    let mut w = sink.w;
    write!(
        w,
        "\n],\n\"displayTimeUnit\":\"ns\",\n\"otherData\":{{\"command\":{},\"lost_events\":{},\"gaps\":{},\
         \"missing_events\":{},\"unfinished_calls\":{}}}}}\n",
        json(&command)?,
        profile.accounting.lost.events_dropped,
        stats.total_gaps(),
        stats.missing,
        stats.unfinished
    )?;
    w.flush()?;
    Ok(())
}

struct Sink<'a, W: Write> {
    w: W,
    profile: &'a Profile,
    threads: HashSet<u32>,
}

impl<W: Write> Sink<'_, W> {
    fn thread(&mut self, tid: u32) -> Result<()> {
        if self.threads.insert(tid) {
            write!(
                self.w,
                ",\n{{\"ph\":\"M\",\"pid\":{PID},\"tid\":{tid},\"name\":\"thread_name\",\
                 \"args\":{{\"name\":\"TID {tid}\"}}}}"
            )?;
        }
        Ok(())
    }
}

impl<W: Write> CallSink for Sink<'_, W> {
    fn call(&mut self, c: &Call, _ancestors: &[FuncId]) -> Result<()> {
        self.thread(c.tid)?;
        let (name, cat) = match self.profile.function(c.func) {
            Some(f) => (json(&cut_long(&f.name))?, json(&cut_long(&f.module))?),
            None => (json(&format!("#{}", c.func))?, "\"?\"".to_string()),
        };
        let unfinished = match (c.unfinished, c.ended_by) {
            (true, _) => ",\"unfinished\":true",
            (false, Some(EndedBy::Exception)) => ",\"ended_by\":\"exception\"",
            (false, Some(EndedBy::Jump)) => ",\"ended_by\":\"longjmp\"",
            (false, Some(EndedBy::Switch)) => ",\"ended_by\":\"stack switch\"",
            (false, None) => "",
        };
        write!(
            self.w,
            ",\n{{\"ph\":\"X\",\"pid\":{PID},\"tid\":{},\"ts\":{},\"dur\":{},\
             \"name\":{name},\"cat\":{cat},\"args\":{{\"self_ns\":{}{unfinished}}}}}",
            c.tid,
            micros(c.start),
            micros(c.duration()),
            c.self_ns
        )?;
        Ok(())
    }

    fn gap(&mut self, g: &Gap) -> Result<()> {
        self.thread(g.tid)?;
        write!(
            self.w,
            ",\n{{\"ph\":\"i\",\"s\":\"t\",\"pid\":{PID},\"tid\":{},\"ts\":{},\
             \"name\":\"gap\",\"cat\":\"perfgate\",\"args\":{{\"missing_events\":{}}}}}",
            g.tid,
            micros(g.ts),
            g.missing
        )?;
        Ok(())
    }
}

/// ns as a JSON number of µs with the exact three decimals.
fn micros(ns: Nanos) -> String {
    format!("{}.{:03}", ns / 1000, ns % 1000)
}

/// A JSON string literal.
fn json(s: &str) -> Result<String> {
    Ok(serde_json::to_string(s)?)
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;
    use crate::profile::calls::testing::*;
    use crate::profile::calls::{reconstruct, Call};

    fn trace(profile: &Profile, events: &[Event]) -> (String, Value) {
        let mut out = Vec::new();
        chrome_trace(profile, stream(events), &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        let v: Value = serde_json::from_str(&text).unwrap();
        (text, v)
    }

    fn xs(v: &Value) -> Vec<&Value> {
        v["traceEvents"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["ph"] == "X")
            .collect()
    }

    /// ts and end of an X event, in ns (the decimals are exact).
    fn span(e: &Value) -> (u64, u64) {
        let ns = |x: &Value| (x.as_f64().unwrap() * 1000.0).round() as u64;
        let ts = ns(&e["ts"]);
        (ts, ts + ns(&e["dur"]))
    }

    #[test]
    fn one_complete_event_per_call_properly_nested() {
        let s = tree();
        let (text, v) = trace(&names(), &s.events);
        let calls: Vec<Call> = reconstruct(stream(&s.events), None).unwrap().calls;
        let x = xs(&v);
        assert_eq!(x.len(), calls.len());
        assert_eq!(v["displayTimeUnit"], "ns");
        assert_eq!(v["otherData"]["command"], "./bench --fast");
        assert_eq!(v["otherData"]["lost_events"], 0);
        // One event per line.
        assert_eq!(
            text.lines().filter(|l| l.contains(r#""ph":"X""#)).count(),
            calls.len()
        );
        for c in &calls {
            let name = names().functions[c.func as usize].name.clone();
            let matching = x
                .iter()
                .filter(|e| {
                    e["name"] == name.as_str() && e["tid"] == c.tid && span(e) == (c.start, c.end)
                })
                .count();
            assert_eq!(matching, 1, "{c:?}");
        }
        let e = x
            .iter()
            .find(|e| e["name"] == "b" && span(e).0 == 4_000)
            .unwrap();
        assert_eq!(
            (e["ts"].as_f64(), e["dur"].as_f64()),
            (Some(4.0), Some(2.0))
        );
        assert_eq!(
            (&e["cat"], &e["pid"], &e["args"]["self_ns"]),
            (&Value::from("bench"), &Value::from(1), &Value::from(2000))
        );
        // Per thread, sorted by start (longest first on ties), every event lies within the innermost
        // event still open or after it: X events nest.
        for tid in [100, 200] {
            let mut t: Vec<(u64, u64)> = x
                .iter()
                .filter(|e| e["tid"] == tid)
                .map(|e| span(e))
                .collect();
            t.sort_by_key(|&(s, e)| (s, std::cmp::Reverse(e)));
            let mut open: Vec<(u64, u64)> = Vec::new();
            for (s, e) in t {
                while open.last().is_some_and(|&(_, pe)| pe <= s && pe < e) {
                    open.pop();
                }
                if let Some(&(ps, pe)) = open.last() {
                    assert!(
                        ps <= s && e <= pe,
                        "({s}, {e}) overlaps ({ps}, {pe}) on {tid}"
                    );
                }
                open.push((s, e));
            }
        }
        // b within a within main.
        let find = |n: &str| span(x.iter().find(|e| e["name"] == n).unwrap());
        let (m, a, b) = (find("main"), find("a"), find("b"));
        assert!(m.0 <= a.0 && a.1 <= m.1 && a.0 <= b.0 && b.1 <= a.1);
    }

    #[test]
    fn thread_names_and_process_name() {
        let (_, v) = trace(&names(), &tree().events);
        let meta: Vec<&Value> = v["traceEvents"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["ph"] == "M")
            .collect();
        let threads: Vec<&Value> = meta
            .iter()
            .filter(|e| e["name"] == "thread_name")
            .map(|e| &e["tid"])
            .collect();
        assert_eq!(threads.len(), 2);
        assert!(threads.contains(&&Value::from(100)) && threads.contains(&&Value::from(200)));
        let tn = meta.iter().find(|e| e["tid"] == 200).unwrap();
        assert_eq!(tn["args"]["name"], "TID 200");
        assert!(meta
            .iter()
            .any(|e| e["name"] == "process_name" && e["args"]["name"] == "./bench --fast"));
    }

    #[test]
    fn gaps_unfinished_calls_and_hostile_names() {
        let mut p = profile(&["quote\"back\\slash\nnew</script>", "b"]);
        p.accounting.lost.events_dropped = 3;
        let mut s = Script::default();
        s.enter(1_000_123, 5, 0)
            .enter(1_000_500, 5, 1)
            .exit(1_000_900, 5)
            .enter(1_001_000, 5, 1);
        let events = s.without(&[1_000_500]);
        let (_, v) = trace(&p, &events);
        let x = xs(&v);
        assert_eq!(x.len(), 2);
        let outer = x
            .iter()
            .find(|e| e["name"] == p.functions[0].name.as_str())
            .unwrap();
        assert_eq!(outer["ts"].as_f64(), Some(1000.123));
        assert_eq!(outer["args"]["unfinished"], true);
        let gaps: Vec<&Value> = v["traceEvents"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["ph"] == "i")
            .collect();
        assert_eq!(gaps.len(), 1);
        assert_eq!(gaps[0]["args"]["missing_events"], 1);
        assert_eq!(v["otherData"]["lost_events"], 3);
        assert_eq!(v["otherData"]["gaps"], 1);
        assert_eq!(v["otherData"]["unfinished_calls"], 2);
    }

    #[test]
    fn empty_stream_is_a_valid_trace() {
        let (_, v) = trace(&names(), &[]);
        assert!(xs(&v).is_empty());
        assert_eq!(v["traceEvents"].as_array().map(Vec::len), Some(1));
    }
}
