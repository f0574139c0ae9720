//! What `check`, `baseline` and `merge` share for several benchmarks: the jobs (one `--baseline`, or the
//! benchmarks of perfgate.toml, maybe one shard of them), their build commands, the commits and links of
//! the reports, and writing one report document in every format asked for.
//!
//! Invariants: a job's paths are resolved against perfgate.toml's directory; a build runs as the invoking
//! user under sudo (never as root, so it leaves no root-owned files); every report file goes through
//! `files::write_atomic`; a benchmark that could not be checked is in every report as an error.
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Context as _, Result};

use super::{shown, status, write_report};
use crate::cli::{LinkArgs, ProjectArgs, ReportFiles, SelectArgs};
use crate::config::{Config, Shard, CONFIG_FILE};
use crate::gate::baseline::GateOverrides;
use crate::plan::Selection;
use crate::report::json::{self, BenchmarkReport, Context, Suite, SUITE_SCHEMA};
use crate::report::junit::Junit;
use crate::report::junit_all::{self, Unchecked};
use crate::report::{markdown, Exporter};

/// One benchmark to record or check.
#[derive(Debug, Clone)]
pub(super) struct Job {
    /// Its name in reports.
    pub name: String,
    /// The baseline file, resolved.
    pub baseline: PathBuf,
    /// The baseline file as the user wrote it (for the commands the reports show).
    pub baseline_shown: String,
    /// The command; empty = the baseline's.
    pub command: Vec<OsString>,
    /// The build command, if any, and the directory it runs in (perfgate.toml's).
    pub build: Option<(String, PathBuf)>,
    /// perfgate.toml's gate settings for it (its `[gate]`, then the benchmark's).
    pub gate: GateOverrides,
    /// What to trace when recording.
    pub selection: Selection,
    /// Runs to record, from perfgate.toml.
    pub runs: Option<usize>,
    /// The `perfgate …` arguments that name this job again (`--baseline X` or `--benchmark N`).
    pub again: String,
}

/// The benchmarks of perfgate.toml to run.
pub(super) struct Jobs {
    /// In the order to run.
    pub jobs: Vec<Job>,
    /// The shard, when one.
    pub shard: Option<Shard>,
}

/// The benchmarks of perfgate.toml that `p` names (all with `--all`), maybe one shard of them.
pub(super) fn project_jobs(p: &ProjectArgs) -> Result<Jobs> {
    let config = Config::read(&p.config).with_context(|| {
        if p.config == Path::new(CONFIG_FILE) && !p.config.exists() {
            format!("no {CONFIG_FILE} here: list the project's benchmarks in one (see the README), or use --config")
        } else {
            "reading the benchmark list".to_string()
        }
    })?;
    let chosen = config.select(&p.benchmarks)?;
    let shard = p
        .shard
        .as_deref()
        .map(Shard::parse)
        .transpose()
        .map_err(|e| anyhow::anyhow!("--shard {e}"))?;
    let chosen = match shard {
        Some(s) => s.pick(&chosen),
        None => chosen,
    };
    let config_arg = if p.config == Path::new(CONFIG_FILE) {
        String::new()
    } else {
        format!(" --config {}", quoted(&p.config.display().to_string()))
    };
    let jobs = chosen
        .into_iter()
        .map(|b| {
            let mut gate = config.gate.clone();
            merge_gate(&mut gate, &b.gate);
            // The command runs from perfgate.toml's directory: a relative program path is relative to it.
            let mut command: Vec<OsString> = b.command.iter().map(OsString::from).collect();
            if let Some(prog) = command.first_mut() {
                let p = Path::new(prog.as_os_str());
                if p.components().count() > 1 && p.is_relative() && config.dir != Path::new(".") {
                    *prog = config.dir.join(p).into_os_string();
                }
            }
            Job {
                name: b.name.clone(),
                baseline: config.resolve(&b.baseline),
                baseline_shown: b.baseline.display().to_string(),
                command,
                build: b.build.clone().map(|c| (c, config.dir.clone())),
                gate,
                selection: Selection {
                    libs: b.lib.clone(),
                    functions: b.function.clone(),
                    no_functions: b.no_function.clone(),
                    startup: b.startup,
                    no_placement: false,
                    too_hot: Vec::new(),
                },
                runs: b.runs,
                again: format!("--benchmark {}{config_arg}", b.name),
            }
        })
        .collect();
    Ok(Jobs { jobs, shard })
}

/// One job from `--baseline FILE [-- COMMAND]`.
pub(super) fn single_job(
    baseline: &Path,
    command: &[OsString],
    select: Option<&SelectArgs>,
) -> Job {
    let name = baseline
        .file_stem()
        .map_or_else(|| "benchmark".into(), |s| s.to_string_lossy().into_owned());
    let shown_path = baseline.display().to_string();
    let mut again = format!("--baseline {}", quoted(&shown_path));
    if !command.is_empty() {
        again.push_str(" --");
        for a in command {
            again.push(' ');
            again.push_str(&quoted(&a.to_string_lossy()));
        }
    }
    Job {
        name,
        baseline: baseline.to_path_buf(),
        baseline_shown: shown_path,
        command: command.to_vec(),
        build: None,
        gate: GateOverrides::default(),
        selection: select.map(super::selection).unwrap_or_default(),
        runs: None,
        again,
    }
}

/// `b`'s settings over `a`'s.
pub(super) fn merge_gate(a: &mut GateOverrides, b: &GateOverrides) {
    macro_rules! over {
        ($($f:ident),*) => { $( if b.$f.is_some() { a.$f = b.$f.clone(); } )* };
    }
    over!(
        alpha,
        threshold,
        quantile_threshold,
        confidence,
        min_share,
        runs,
        max_runs,
        metrics,
        gate_calls,
        relative
    );
}

/// A word for a shell command line, quoted when it needs it.
pub(super) fn quoted(s: &str) -> String {
    if !s.is_empty()
        && s.bytes()
            .all(|c| c.is_ascii_alphanumeric() || b"-_./=:,+@%".contains(&c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// Runs each distinct build command once, in order, with `sh -c` in perfgate.toml's directory. Under sudo
/// it runs as the invoking user so that the build leaves no root-owned files. A failed build is an error
/// naming the benchmark.
pub(super) fn build(jobs: &[Job]) -> Result<()> {
    let mut done: Vec<&(String, PathBuf)> = Vec::new();
    for job in jobs {
        let Some(b) = job.build.as_ref() else {
            continue;
        };
        if done.contains(&b) {
            continue;
        }
        done.push(b);
        let (cmd, dir) = b;
        status(&format!(
            "building {}: {}",
            job.name,
            crate::report::escape::terminal(cmd)
        ));
        let mut c = as_invoking_user("sh");
        c.arg("-c").arg(cmd).current_dir(dir).stdin(Stdio::null());
        // The build's output goes to stderr: stdout carries the tables and `-` reports.
        c.stdout(std::io::stderr());
        let st = c
            .status()
            .with_context(|| format!("cannot run the build of {}", job.name))?;
        if !st.success() {
            bail!(
                "the build of {} failed ({st}): {}",
                job.name,
                crate::report::escape::terminal(cmd)
            );
        }
    }
    Ok(())
}

/// A command that runs as the user who ran sudo (through `setpriv`, with that user's groups and home), or
/// as perfgate's own user when not under sudo.
fn as_invoking_user(program: &str) -> Command {
    let parse = |k: &str| std::env::var(k).ok().and_then(|v| v.parse::<u32>().ok());
    match (crate::sys::is_root(), parse("SUDO_UID"), parse("SUDO_GID")) {
        (true, Some(uid), Some(gid)) if uid != 0 => {
            let mut c = Command::new("setpriv");
            c.arg(format!("--reuid={uid}"))
                .arg(format!("--regid={gid}"))
                .arg("--init-groups")
                .arg("--")
                .arg(program);
            if let Some(u) = crate::sys::passwd_entry(uid) {
                let name = u.name.to_string_lossy().into_owned();
                c.env("HOME", &u.home)
                    .env("USER", &name)
                    .env("LOGNAME", &name);
            }
            c
        }
        _ => Command::new(program),
    }
}

/// The commits and links for the reports: the command line's, else what git says.
pub(super) fn context(links: &LinkArgs, quick: bool) -> Context {
    Context {
        head_commit: links
            .head_commit
            .clone()
            .or_else(|| git(&["rev-parse", "--short", "HEAD"])),
        run_url: links.run_url.clone(),
        artifact_url: links.artifact_url.clone(),
        quick,
    }
}

/// The commit that last changed the baseline file (`--base-commit` wins), if git knows it.
pub(super) fn base_commit(links: &LinkArgs, baseline: &Path) -> Option<String> {
    if let Some(c) = &links.base_commit {
        return Some(c.clone());
    }
    let path = baseline.to_str()?;
    git(&["log", "-1", "--format=%h", "--", path])
}

/// One line of git's output, or `None` (no git, not a repository, a repository of another user).
fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .args(args)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let s = String::from_utf8(out.stdout).ok()?;
    let line = s.lines().next()?.trim();
    (!line.is_empty() && line.len() <= 64 && line.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| line.to_string())
}

/// Where the reports go.
#[derive(Debug, Clone, Default)]
pub(super) struct Outputs {
    pub junit: Option<PathBuf>,
    pub markdown: Option<PathBuf>,
    pub json: Option<PathBuf>,
}

impl Outputs {
    /// The report files `check` and `compare` were given.
    pub fn of(r: &ReportFiles) -> Outputs {
        Outputs {
            junit: r.junit.clone(),
            markdown: r.markdown.clone(),
            json: r.json.clone(),
        }
    }

    /// Whether a report goes to stdout (then tables go to stderr).
    pub fn to_stdout(&self) -> bool {
        [&self.junit, &self.markdown, &self.json]
            .into_iter()
            .flatten()
            .any(|p| p.as_os_str() == "-")
    }

    /// Fails early when a report file cannot be written; two reports to stdout are refused.
    pub fn check(&self) -> Result<()> {
        let all: Vec<&PathBuf> = [&self.junit, &self.markdown, &self.json]
            .into_iter()
            .flatten()
            .collect();
        if all.iter().filter(|p| p.as_os_str() == "-").count() > 1 {
            bail!("only one report can go to stdout (-)");
        }
        for p in all {
            if p.as_os_str() != "-" {
                crate::files::check_writable(p)?;
            }
        }
        Ok(())
    }

    /// Writes one benchmark's report standing alone.
    pub fn write_single(&self, r: &BenchmarkReport, ctx: &Context, full_names: bool) -> Result<()> {
        if let Some(p) = &self.junit {
            let xml = match &r.comparison {
                Some(c) => Junit.render(c)?,
                None => junit_all::render_with_errors(&[], &unchecked(std::slice::from_ref(r)))?,
            };
            write_report(p, &xml)?;
        }
        if let Some(p) = &self.markdown {
            write_report(p, markdown::benchmark(r, ctx, full_names).as_bytes())?;
        }
        if let Some(p) = &self.json {
            let mut standalone = r.clone();
            standalone.context = Some(ctx.clone());
            write_report(p, &json::to_json(&standalone)?)?;
        }
        Ok(())
    }

    /// Writes a suite's reports.
    pub fn write_suite(&self, s: &Suite, full_names: bool) -> Result<()> {
        if let Some(p) = &self.junit {
            let xml = junit_all::render_with_errors(&s.comparisons(), &unchecked(&s.benchmarks))?;
            write_report(p, &xml)?;
        }
        if let Some(p) = &self.markdown {
            write_report(p, markdown::suite(s, full_names).as_bytes())?;
        }
        if let Some(p) = &self.json {
            write_report(p, &json::to_json(s)?)?;
        }
        Ok(())
    }

    /// Says where the reports went.
    pub fn announce(&self) {
        let files: Vec<String> = [&self.junit, &self.markdown, &self.json]
            .into_iter()
            .flatten()
            .filter(|p| p.as_os_str() != "-")
            .map(|p| shown(p))
            .collect();
        if !files.is_empty() {
            status(&format!("wrote {}", files.join(", ")));
        }
    }
}

/// The benchmarks without a comparison, for JUnit.
fn unchecked(reports: &[BenchmarkReport]) -> Vec<Unchecked> {
    reports
        .iter()
        .filter(|b| b.comparison.is_none())
        .map(|b| Unchecked {
            name: b.name.clone(),
            error: b.error.clone().unwrap_or_else(|| "not checked".into()),
        })
        .collect()
}

/// A suite of these reports.
pub(super) fn suite_of(
    ctx: Context,
    shard: Option<Shard>,
    benchmarks: Vec<BenchmarkReport>,
) -> Suite {
    Suite {
        perfgate_suite: SUITE_SCHEMA,
        context: ctx,
        shards: shard.map(|s| s.to_string()).into_iter().collect(),
        benchmarks,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_quoted_only_when_needed() {
        assert_eq!(quoted("baselines/work.toml"), "baselines/work.toml");
        assert_eq!(quoted("a b"), "'a b'");
        assert_eq!(quoted("it's"), r"'it'\''s'");
        assert_eq!(quoted(""), "''");
    }
}
