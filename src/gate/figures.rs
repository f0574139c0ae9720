//! Per-run figures: what one run says about each function, the unit of evidence of the gate.
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::model::{Metric, Statistic, TimeKind};
use crate::profile::{Histogram, Profile};

/// A function's identity across runs and builds: its file's short name and its raw symbol.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct FuncKey {
    /// File short name (`work`, `libc.so.6`).
    pub module: String,
    /// Raw symbol name.
    pub symbol: String,
}

/// What one run measured for one function. Times in ns.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FuncRun {
    /// Demangled name.
    pub name: String,
    /// Completed calls.
    pub calls: u64,
    /// Mean inclusive time per call.
    pub mean: f64,
    /// Median inclusive time per call (from the histogram).
    pub p50: f64,
    /// 90th percentile of inclusive time per call.
    pub p90: f64,
    /// 99th percentile of inclusive time per call.
    pub p99: f64,
    /// Mean self time per call.
    pub self_mean: f64,
    /// Median self time per call.
    pub self_p50: f64,
    /// 90th percentile of self time per call (0 in baselines written before it was kept).
    #[serde(default)]
    pub self_p90: f64,
    /// 99th percentile of self time per call (likewise).
    #[serde(default)]
    pub self_p99: f64,
    /// Longest call, inclusive time (likewise).
    #[serde(default)]
    pub max: f64,
    /// Longest self time of a call (likewise).
    #[serde(default)]
    pub self_max: f64,
    /// Total inclusive time in the run.
    pub total: f64,
    /// Total self time in the run.
    pub self_total: f64,
    /// The calibrated probe cost taken out of `total` (its own probe's inside part and its traced
    /// descendants'), ns; 0 without a calibration and in baselines written before it was kept.
    #[serde(default)]
    pub probe: f64,
    /// Likewise taken out of `self_total`.
    #[serde(default)]
    pub self_probe: f64,
    /// The run's calls by inclusive time, as measured (probe cost in); empty from a baseline, which keeps
    /// its runs' histograms merged.
    #[serde(default)]
    pub incl_hist: Histogram,
    /// The run's calls by self time, likewise.
    #[serde(default)]
    pub self_hist: Histogram,
}

impl FuncRun {
    /// The run's figure of a metric, ns.
    pub fn value(&self, m: Metric) -> f64 {
        match (m.time, m.statistic) {
            (TimeKind::SelfTime, Statistic::Mean) => self.self_mean,
            (TimeKind::SelfTime, Statistic::P50) => self.self_p50,
            (TimeKind::SelfTime, Statistic::P90) => self.self_p90,
            (TimeKind::SelfTime, Statistic::P99) => self.self_p99,
            (TimeKind::Inclusive, Statistic::Mean) => self.mean,
            (TimeKind::Inclusive, Statistic::P50) => self.p50,
            (TimeKind::Inclusive, Statistic::P90) => self.p90,
            (TimeKind::Inclusive, Statistic::P99) => self.p99,
            (TimeKind::SelfTime, Statistic::Total) => self.self_total,
            (TimeKind::Inclusive, Statistic::Total) => self.total,
        }
    }

    /// The run's histogram of one kind of time.
    pub fn histogram(&self, t: TimeKind) -> &Histogram {
        match t {
            TimeKind::SelfTime => &self.self_hist,
            TimeKind::Inclusive => &self.incl_hist,
        }
    }

    /// The run's total of one kind of time and the probe cost taken out of it, ns.
    pub fn total_and_probe(&self, t: TimeKind) -> (f64, f64) {
        match t {
            TimeKind::SelfTime => (self.self_total, self.self_probe),
            TimeKind::Inclusive => (self.total, self.probe),
        }
    }

    /// The run's longest call of one kind of time, ns.
    pub fn max_of(&self, t: TimeKind) -> f64 {
        match t {
            TimeKind::SelfTime => self.self_max,
            TimeKind::Inclusive => self.max,
        }
    }
}

/// All functions of one run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RunFigures {
    /// Per function.
    pub functions: BTreeMap<FuncKey, FuncRun>,
    /// Sum of self time over all functions: the traced time, counted once.
    pub total_self: f64,
    /// Wall time of the run, ns.
    pub wall_ns: f64,
}

impl RunFigures {
    /// Reduces a profile to per-function figures (threads merged), with the calibrated probe costs taken
    /// out when the profile has a calibration.
    pub fn from_profile(p: &Profile) -> RunFigures {
        // Local symbols of one name in one file (static functions of two units) stay apart: the second
        // and later ones by address get `#2`, `#3`… in their symbol and name, stable across runs of a build.
        let mut occurrence: BTreeMap<(&str, &str), Vec<(u64, usize)>> = BTreeMap::new();
        for (id, f) in p.functions.iter().enumerate() {
            occurrence
                .entry((f.module.as_str(), f.raw_name.as_str()))
                .or_default()
                .push((f.addr, id));
        }
        let mut suffix: BTreeMap<usize, String> = BTreeMap::new();
        for ids in occurrence.values_mut().filter(|v| v.len() > 1) {
            ids.sort_unstable();
            for (k, &(_, id)) in ids.iter().enumerate().skip(1) {
                suffix.insert(id, format!("#{}", k + 1));
            }
        }
        let mut functions: BTreeMap<FuncKey, FuncRun> = BTreeMap::new();
        for s in p.per_function() {
            let Some(info) = p.function(s.func) else {
                continue;
            };
            if s.calls == 0 {
                continue;
            }
            let tag = suffix.get(&(s.func as usize)).map_or("", String::as_str);
            let key = FuncKey {
                module: info.module.clone(),
                symbol: format!("{}{tag}", info.raw_name),
            };
            // With a calibration, every figure is taken with the probes' own cost out (exactly for
            // sums and means; quantiles shifted by the mean cost per call, an approximation).
            let calls = s.calls as f64;
            let (total, self_total) = match p.accounting.probe_cost {
                Some(c) => s.compensated(c.inside(info.probe)),
                None => (s.inclusive.sum_ns as f64, s.self_time.sum_ns as f64),
            };
            let outer = s.outer_calls().max(1) as f64;
            let incl_shift = s.inclusive.sum_ns as f64 / outer - total / outer;
            let self_shift = s.self_time.sum_ns as f64 / calls - self_total / calls;
            let shifted = |q: f64, by: f64| (q - by).max(0.0);
            let run = FuncRun {
                name: format!("{}{tag}", info.name),
                calls: s.calls,
                // Per outermost call: a recursive function's inclusive time counts once (FuncStats).
                mean: total / (s.outer_calls().max(1) as f64),
                p50: shifted(s.inclusive.quantile(0.5), incl_shift),
                p90: shifted(s.inclusive.quantile(0.9), incl_shift),
                p99: shifted(s.inclusive.quantile(0.99), incl_shift),
                self_mean: self_total / calls,
                self_p50: shifted(s.self_time.quantile(0.5), self_shift),
                self_p90: shifted(s.self_time.quantile(0.9), self_shift),
                self_p99: shifted(s.self_time.quantile(0.99), self_shift),
                max: shifted(s.inclusive.max_ns as f64, incl_shift),
                self_max: shifted(s.self_time.max_ns as f64, self_shift),
                total,
                self_total,
                probe: (s.inclusive.sum_ns as f64 - total).max(0.0),
                self_probe: (s.self_time.sum_ns as f64 - self_total).max(0.0),
                incl_hist: s.inclusive.hist.clone(),
                self_hist: s.self_time.hist.clone(),
            };
            functions.insert(key, run);
        }
        let total_self = functions.values().map(|f| f.self_total).sum();
        RunFigures {
            functions,
            total_self,
            wall_ns: p.wall_ns as f64,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::{FuncStats, FunctionInfo, ProbeKind, TimeStats};

    fn info(name: &str, addr: u64) -> FunctionInfo {
        FunctionInfo {
            name: name.into(),
            raw_name: name.into(),
            module: "bench".into(),
            addr,
            size: 8,
            probe: ProbeKind::Emulated,
            probe_offset: 0,
            entry_probe: None,
        }
    }

    #[test]
    fn static_functions_of_one_name_stay_apart() {
        let mut p = crate::profile::Profile {
            schema: 1,
            perfgate_version: String::new(),
            command: vec![],
            binary: Default::default(),
            build_id: None,
            machine: Default::default(),
            started_at: 0,
            wall_ns: 0,
            exit: Default::default(),
            functions: vec![
                info("helper", 0x2000),
                info("helper", 0x1000),
                info("main", 0x3000),
            ],
            stats: vec![],
            accounting: Default::default(),
            has_events: false,
        };
        let stat = |func: u32, calls: u64, ns: u64| FuncStats {
            out_ns: 0,
            func,
            tid: 1,
            calls,
            nested_calls: 0,
            inclusive: TimeStats {
                sum_ns: ns,
                min_ns: 1,
                max_ns: ns,
                ..Default::default()
            },
            self_time: TimeStats {
                sum_ns: ns,
                min_ns: 1,
                max_ns: ns,
                ..Default::default()
            },
            overhead_ns: 0,
        };
        p.stats = vec![stat(0, 2, 100), stat(1, 1, 100), stat(2, 1, 50)];
        let r = RunFigures::from_profile(&p);
        let calls = |sym: &str| {
            r.functions[&FuncKey {
                module: "bench".into(),
                symbol: sym.into(),
            }]
                .calls
        };
        // The one at the lower address keeps the plain name.
        assert_eq!(calls("helper"), 1);
        assert_eq!(calls("helper#2"), 2);
        assert_eq!(r.total_self, 250.0);
    }
}
