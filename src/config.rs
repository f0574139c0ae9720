//! `perfgate.toml`: the list of a project's benchmarks, for `check --all`, `baseline --all`, the CI shards
//! and the pre-push hook.
//!
//! ```toml
//! [gate]                                   # every benchmark; same keys as a baseline's [gate]
//! threshold = 0.05
//!
//! [[benchmark]]
//! name = "gatebench"                        # letters, digits, `.`, `_`, `-`: it names report files
//! command = ["./fixtures/bin/gatebench"]    # run from the directory of perfgate.toml
//! baseline = "baselines/gatebench.toml"     # relative to that directory
//! build = "bash fixtures/build.sh"          # optional, `sh -c`, run before recording or checking
//! runs = 10                                 # optional, runs recorded by `baseline --all`
//! function = ["hash_*"]                     # optional selection, as --lib/--function/--no-function
//! [benchmark.gate]                          # optional, overrides [gate] for this benchmark
//! threshold = 0.10
//! ```
//!
//! Invariants: a parsed [`Config`] has at least one benchmark, unique valid names, non-empty commands and
//! baseline paths; unknown keys are errors (a typo never silently means "default"); the file is read with a
//! size bound, and every error is one line naming the file. [`Shard`] splits the benchmarks the same way on
//! every machine: sorted by name, round-robin.
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _, Result};
use serde::Deserialize;

use crate::gate::baseline::GateOverrides;

/// The file's usual name, looked for in the current directory.
pub const CONFIG_FILE: &str = "perfgate.toml";
/// A project's benchmark list is small; anything larger is not one.
pub const MAX_CONFIG_BYTES: u64 = 1 << 20;
/// Benchmarks at most in one file (each one costs minutes of runs).
pub const MAX_BENCHMARKS: usize = 1000;

/// A parsed `perfgate.toml`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Gate settings for every benchmark (each overrides the baseline's `[gate]`).
    #[serde(default)]
    pub gate: GateOverrides,
    /// The benchmarks, in the file's order.
    #[serde(rename = "benchmark", default)]
    pub benchmarks: Vec<BenchmarkConfig>,
    /// The directory of the file: commands, baselines and builds are relative to it.
    #[serde(skip)]
    pub dir: PathBuf,
}

/// One `[[benchmark]]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BenchmarkConfig {
    /// Its name in reports, report file names and `--benchmark`.
    pub name: String,
    /// The program and its arguments.
    pub command: Vec<String>,
    /// The baseline file.
    pub baseline: PathBuf,
    /// A shell command that builds the benchmark, run before it is recorded or checked.
    #[serde(default)]
    pub build: Option<String>,
    /// Runs recorded by `baseline --all`. [default: 10]
    #[serde(default)]
    pub runs: Option<usize>,
    /// `--lib` globs.
    #[serde(default)]
    pub lib: Vec<String>,
    /// `--function` globs.
    #[serde(default)]
    pub function: Vec<String>,
    /// `--no-function` globs.
    #[serde(default)]
    pub no_function: Vec<String>,
    /// Also trace C runtime start-up code.
    #[serde(default)]
    pub startup: bool,
    /// Gate settings of this benchmark, over the file's `[gate]`.
    #[serde(default)]
    pub gate: GateOverrides,
}

impl Config {
    /// Reads and validates `path`.
    pub fn read(path: &Path) -> Result<Config> {
        let shown = path.display();
        let bytes = crate::files::read_regular(path, MAX_CONFIG_BYTES, "perfgate.toml")?;
        let text = String::from_utf8(bytes).map_err(|e| {
            anyhow::anyhow!(
                "{shown}: not UTF-8 text (byte {})",
                e.utf8_error().valid_up_to()
            )
        })?;
        let mut c = Config::parse(&text).with_context(|| shown.to_string())?;
        c.dir = path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
        Ok(c)
    }

    /// Parses and validates the text of a `perfgate.toml` (paths stay relative).
    pub fn parse(text: &str) -> Result<Config> {
        let c: Config = toml::from_str(text)
            .map_err(|e| anyhow::anyhow!("{}", e.to_string().replace('\n', " ").trim()))?;
        if c.benchmarks.is_empty() {
            bail!("no [[benchmark]]: list at least one (name, command, baseline)");
        }
        if c.benchmarks.len() > MAX_BENCHMARKS {
            bail!(
                "{} benchmarks: at most {MAX_BENCHMARKS}",
                c.benchmarks.len()
            );
        }
        let mut names = std::collections::BTreeSet::new();
        for b in &c.benchmarks {
            check_name(&b.name)?;
            if !names.insert(b.name.as_str()) {
                bail!("benchmark {:?} is listed twice", b.name);
            }
            if b.command.first().is_none_or(|p| p.is_empty()) {
                bail!("benchmark {:?}: command is empty", b.name);
            }
            if b.baseline.as_os_str().is_empty() {
                bail!("benchmark {:?}: baseline is empty", b.name);
            }
            if b.runs == Some(0) {
                bail!("benchmark {:?}: runs = 0 (at least 1)", b.name);
            }
        }
        Ok(c)
    }

    /// The benchmarks named (all when `names` is empty), in the file's order; an unknown name is an error
    /// that lists the known ones.
    pub fn select(&self, names: &[String]) -> Result<Vec<&BenchmarkConfig>> {
        for n in names {
            if !self.benchmarks.iter().any(|b| &b.name == n) {
                let known: Vec<&str> = self.benchmarks.iter().map(|b| b.name.as_str()).collect();
                bail!(
                    "no benchmark {n:?} in perfgate.toml (it has: {})",
                    known.join(", ")
                );
            }
        }
        Ok(self
            .benchmarks
            .iter()
            .filter(|b| names.is_empty() || names.contains(&b.name))
            .collect())
    }

    /// A path of the file (a baseline), resolved against the file's directory.
    pub fn resolve(&self, p: &Path) -> PathBuf {
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.dir.join(p)
        }
    }
}

/// A name usable in file names, markers and command lines without quoting.
fn check_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 100
        && !name.starts_with(['.', '-'])
        && name
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-'));
    if !ok {
        bail!("benchmark name {name:?}: use 1 to 100 letters, digits, `.`, `_` or `-` (not first)");
    }
    Ok(())
}

/// `--shard K/N`: the K-th of N parts of the benchmarks (1-based).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// Which part, 1..=count.
    pub index: usize,
    /// How many parts.
    pub count: usize,
}

impl Shard {
    /// Parses `2/4`.
    pub fn parse(s: &str) -> Result<Shard, String> {
        let bad = || format!("{s:?}: write K/N with 1 ≤ K ≤ N ≤ 1000, e.g. 2/4");
        let (k, n) = s.trim().split_once('/').ok_or_else(bad)?;
        let index: usize = k.trim().parse().map_err(|_| bad())?;
        let count: usize = n.trim().parse().map_err(|_| bad())?;
        if index == 0 || index > count || count > MAX_BENCHMARKS {
            return Err(bad());
        }
        Ok(Shard { index, count })
    }

    /// This shard's part of `benchmarks`: sorted by name, every `count`-th from `index - 1`. The same on
    /// every machine and for any order in the file; shard sizes differ by at most one.
    pub fn pick<'a>(&self, benchmarks: &[&'a BenchmarkConfig]) -> Vec<&'a BenchmarkConfig> {
        let mut sorted = benchmarks.to_vec();
        sorted.sort_by(|a, b| a.name.cmp(&b.name));
        sorted
            .into_iter()
            .enumerate()
            .filter(|(i, _)| i % self.count == self.index - 1)
            .map(|(_, b)| b)
            .collect()
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = r#"
[gate]
threshold = 0.05

[[benchmark]]
name = "gatebench"
command = ["./fixtures/bin/gatebench"]
baseline = "baselines/gatebench.toml"
build = "bash fixtures/build.sh"
runs = 10

[[benchmark]]
name = "work"
command = ["./fixtures/bin/work", "4"]
baseline = "baselines/work.toml"
function = ["work*"]
[benchmark.gate]
threshold = 0.10
"#;

    #[test]
    fn parses_the_documented_example() {
        let c = Config::parse(EXAMPLE).unwrap();
        assert_eq!(c.gate.threshold, Some(0.05));
        assert_eq!(c.benchmarks.len(), 2);
        let w = &c.benchmarks[1];
        assert_eq!(w.command, ["./fixtures/bin/work", "4"]);
        assert_eq!(w.gate.threshold, Some(0.10));
        assert_eq!(w.function, ["work*"]);
        assert_eq!(
            c.benchmarks[0].build.as_deref(),
            Some("bash fixtures/build.sh")
        );
        assert_eq!(c.select(&["work".into()]).unwrap().len(), 1);
        let e = c.select(&["nope".into()]).unwrap_err().to_string();
        assert!(e.contains("gatebench, work"), "{e}");
    }

    #[test]
    fn mistakes_are_one_line_errors() {
        let cases = [
            ("", "no [[benchmark]]"),
            ("[[benchmark]]\nname = \"a\"\ncommand = []\nbaseline = \"b\"\n", "command is empty"),
            ("[[benchmark]]\nname = \"a b\"\ncommand = [\"x\"]\nbaseline = \"b\"\n", "benchmark name"),
            ("[[benchmark]]\nname = \"../x\"\ncommand = [\"x\"]\nbaseline = \"b\"\n", "benchmark name"),
            ("[[benchmark]]\nname = \"a\"\ncommand = [\"x\"]\nbaseline = \"b\"\ntreshold = 1\n", "treshold"),
            ("[[benchmark]]\nname = \"a\"\ncommand = \"x\"\nbaseline = \"b\"\n", "invalid type"),
            (
                "[[benchmark]]\nname = \"a\"\ncommand = [\"x\"]\nbaseline = \"b\"\n[[benchmark]]\nname = \"a\"\ncommand = [\"x\"]\nbaseline = \"c\"\n",
                "listed twice",
            ),
            ("[gate]\nthreshhold = 0.1\n", "threshhold"),
        ];
        for (text, needle) in cases {
            let e = format!("{:#}", Config::parse(text).unwrap_err());
            assert!(e.contains(needle), "{needle:?} not in {e:?}");
            assert!(!e.contains('\n'), "{e:?}");
        }
    }

    #[test]
    fn shards_are_stable_balanced_and_cover_everything_once() {
        let text: String = (0..10)
            .rev()
            .map(|i| {
                format!(
                    "[[benchmark]]\nname = \"b{i}\"\ncommand = [\"x\"]\nbaseline = \"b{i}.toml\"\n"
                )
            })
            .collect();
        let c = Config::parse(&text).unwrap();
        let all = c.select(&[]).unwrap();
        let mut seen = Vec::new();
        for k in 1..=4 {
            let part = Shard { index: k, count: 4 }.pick(&all);
            assert!((2..=3).contains(&part.len()), "{}", part.len());
            seen.extend(part.iter().map(|b| b.name.clone()));
        }
        seen.sort();
        let mut names: Vec<String> = all.iter().map(|b| b.name.clone()).collect();
        names.sort();
        assert_eq!(seen, names);
        // The file's order does not matter.
        let mut reversed = all.clone();
        reversed.reverse();
        let s = Shard { index: 2, count: 4 };
        let names = |v: Vec<&BenchmarkConfig>| v.iter().map(|b| b.name.clone()).collect::<Vec<_>>();
        assert_eq!(names(s.pick(&all)), names(s.pick(&reversed)));
        assert_eq!(names(s.pick(&all)), ["b1", "b5", "b9"]);
    }

    #[test]
    fn shard_syntax() {
        assert_eq!(Shard::parse("2/4"), Ok(Shard { index: 2, count: 4 }));
        for bad in ["0/4", "5/4", "2", "a/b", "1/0", "", "1/100000"] {
            assert!(Shard::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(Shard { index: 1, count: 3 }.to_string(), "1/3");
    }
}
