//! Per-run figures: what one run says about each function, the unit of evidence of the gate.
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::profile::Profile;

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
    /// Total inclusive time in the run.
    pub total: f64,
    /// Total self time in the run.
    pub self_total: f64,
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
    /// Reduces a profile to per-function figures (threads merged).
    pub fn from_profile(p: &Profile) -> RunFigures {
        let mut functions: BTreeMap<FuncKey, FuncRun> = BTreeMap::new();
        for s in p.per_function() {
            let Some(info) = p.function(s.func) else {
                continue;
            };
            if s.calls == 0 {
                continue;
            }
            let key = FuncKey {
                module: info.module.clone(),
                symbol: info.raw_name.clone(),
            };
            let run = FuncRun {
                name: info.name.clone(),
                calls: s.calls,
                mean: s.inclusive.mean(s.calls),
                p50: s.inclusive.quantile(0.5),
                p90: s.inclusive.quantile(0.9),
                p99: s.inclusive.quantile(0.99),
                self_mean: s.self_time.mean(s.calls),
                self_p50: s.self_time.quantile(0.5),
                total: s.inclusive.sum_ns as f64,
                self_total: s.self_time.sum_ns as f64,
            };
            // Two local symbols of one name in one file (static functions of two units): keep the busier.
            match functions.get(&key) {
                Some(old) if old.total >= run.total => {}
                _ => {
                    functions.insert(key, run);
                }
            }
        }
        let total_self = functions.values().map(|f| f.self_total).sum();
        RunFigures {
            functions,
            total_self,
            wall_ns: p.wall_ns as f64,
        }
    }
}
