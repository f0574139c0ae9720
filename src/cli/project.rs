//! Arguments for a project's benchmarks (perfgate.toml), CI shards, `merge`, the pre-push hook, and the
//! generated completions and man page.
use std::path::PathBuf;

use clap::{Args, Subcommand, ValueEnum};

/// Which benchmarks of perfgate.toml.
#[derive(Debug, Clone, Default, Args)]
pub struct ProjectArgs {
    /// Every benchmark listed in perfgate.toml.
    #[arg(long)]
    pub all: bool,
    /// Only this benchmark of perfgate.toml. Repeatable.
    #[arg(long = "benchmark", value_name = "NAME")]
    pub benchmarks: Vec<String>,
    /// The project's benchmark list.
    #[arg(long, value_name = "FILE", default_value = "perfgate.toml")]
    pub config: PathBuf,
    /// Only the K-th of N stable parts of the benchmarks (sorted by name, round-robin), for a CI matrix;
    /// `perfgate merge` joins the parts' --json reports.
    #[arg(long, value_name = "K/N", requires = "all")]
    pub shard: Option<String>,
    /// Do not run the benchmarks' build commands first.
    #[arg(long)]
    pub no_build: bool,
}

/// Commits and links the reports show (the GitHub Action sets them).
#[derive(Debug, Clone, Default, Args)]
pub struct LinkArgs {
    /// The commit measured, shown in the markdown headline. [default: `git rev-parse --short HEAD`]
    #[arg(long, value_name = "SHA")]
    pub head_commit: Option<String>,
    /// The commit of the baseline. [default: the last commit that changed the baseline file]
    #[arg(long, value_name = "SHA")]
    pub base_commit: Option<String>,
    /// Link to the CI run, in the markdown.
    #[arg(long, value_name = "URL")]
    pub run_url: Option<String>,
    /// Link to the artifact with the reports and the flame-graph diff, in the markdown.
    #[arg(long, value_name = "URL")]
    pub artifact_url: Option<String>,
}

/// `--fail-on`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FailOnArg {
    /// Fail on a regression (or a changed call count with --gate-calls).
    Regression,
    /// Also fail when a function stays inconclusive after --max-runs.
    Inconclusive,
}

/// `perfgate merge`.
#[derive(Debug, Args)]
pub struct MergeArgs {
    /// The shards' JSON reports (`check --json`), each a suite or one benchmark.
    #[arg(required = true, value_name = "JSON")]
    pub inputs: Vec<PathBuf>,
    /// Write JUnit XML here (- for stdout).
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
    /// Write the markdown here (- for stdout).
    #[arg(long, value_name = "FILE")]
    pub markdown: Option<PathBuf>,
    /// Write the merged JSON here (- for stdout).
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Full demangled names in the markdown.
    #[arg(long)]
    pub full_names: bool,
    /// One line per benchmark instead of the tables.
    #[arg(long)]
    pub brief: bool,
    /// Commits and links (override the shards').
    #[command(flatten)]
    pub links: LinkArgs,
}

/// `perfgate hook`.
#[derive(Debug, Args)]
pub struct HookArgs {
    /// Install or uninstall.
    #[command(subcommand)]
    pub command: HookCommand,
}

/// `perfgate hook install|uninstall`.
#[derive(Debug, Subcommand)]
pub enum HookCommand {
    /// Write .git/hooks/pre-push: every `git push` runs `perfgate check --all --quick` and is refused on a
    /// regression (`git push --no-verify` skips it once).
    #[command(
        after_help = "Tracing needs privileges; without a password prompt in the hook, give them to the \
binary once (no root-owned files, the benchmark runs as you):\n  \
sudo setcap cap_bpf,cap_perfmon,cap_sys_resource+ep \"$(command -v perfgate)\"\n\n\
Example:\n  perfgate hook install --benchmark gatebench"
    )]
    Install {
        /// Only these benchmarks of perfgate.toml. Repeatable. [default: all]
        #[arg(long = "benchmark", value_name = "NAME")]
        benchmarks: Vec<String>,
        /// Replace a pre-push hook that perfgate did not write.
        #[arg(long)]
        force: bool,
        /// The project's benchmark list, relative to the repository's top directory.
        #[arg(long, value_name = "FILE", default_value = "perfgate.toml")]
        config: PathBuf,
        /// Run perfgate through `sudo -n` (needs a NOPASSWD sudoers line for the perfgate binary; files
        /// are still written as you).
        #[arg(long)]
        sudo: bool,
    },
    /// Remove the pre-push hook if perfgate wrote it.
    Uninstall,
}

/// `perfgate completions`.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

/// `perfgate man`.
#[derive(Debug, Args)]
pub struct ManArgs {
    /// Write perfgate.1 and one perfgate-SUBCOMMAND.1 per subcommand into this directory instead.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}
