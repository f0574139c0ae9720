//! `perfgate hook install|uninstall`: the git pre-push hook that runs a quick check of the project's
//! benchmarks and refuses the push on a regression.
//!
//! Invariants: perfgate only ever replaces or removes a hook that carries its [`MARKER`] line (another
//! hook is replaced only with `--force`, and kept beside it as `pre-push.perfgate-backup`, which
//! `uninstall` puts back); the hook itself builds and decides nothing: it runs perfgate, which runs the
//! build commands of perfgate.toml as the user and prints one line per benchmark.
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Context as _, Result};

use super::suite::quoted;
use super::{shown, status, Exit};
use crate::cli::{HookArgs, HookCommand};
use crate::config::Config;

/// The line that marks a hook as perfgate's.
pub const MARKER: &str = "# perfgate-hook: pre-push v1";
/// Where a replaced foreign hook is kept.
const BACKUP: &str = "pre-push.perfgate-backup";
/// A hook is a short script; a larger file is not one to parse.
const MAX_HOOK_BYTES: u64 = 1 << 20;

pub(super) fn run(a: HookArgs) -> Result<Exit> {
    match a.command {
        HookCommand::Install {
            benchmarks,
            force,
            config,
            sudo,
        } => install(&benchmarks, force, &config, sudo),
        HookCommand::Uninstall => uninstall(),
    }
}

/// The hooks directory git uses (`core.hooksPath` honoured), created if missing.
fn hooks_dir() -> Result<PathBuf> {
    let out = Command::new("git")
        .args(["rev-parse", "--git-path", "hooks"])
        .stdin(Stdio::null())
        .output()
        .context("cannot run git")?;
    if !out.status.success() {
        bail!(
            "not in a git repository ({})",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", shown(&dir)))?;
    Ok(dir)
}

/// The repository's top directory: the hook runs there, so perfgate.toml is found relative to it.
fn top_dir() -> Result<PathBuf> {
    let out = Command::new("git")
        .args(["rev-parse", "--show-toplevel"])
        .stdin(Stdio::null())
        .output()
        .context("cannot run git")?;
    if !out.status.success() {
        bail!("not in a git work tree");
    }
    Ok(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
}

fn is_ours(path: &Path) -> Result<Option<bool>> {
    if std::fs::symlink_metadata(path).is_err() {
        return Ok(None);
    }
    let text = crate::files::read_regular(path, MAX_HOOK_BYTES, "pre-push hook")?;
    Ok(Some(
        String::from_utf8_lossy(&text).lines().any(|l| l == MARKER),
    ))
}

fn install(benchmarks: &[String], force: bool, config: &Path, sudo: bool) -> Result<Exit> {
    let top = top_dir()?;
    let config_path = if config.is_absolute() {
        config.to_path_buf()
    } else {
        top.join(config)
    };
    // A typo in a name or the file fails now, not at the next push.
    Config::read(&config_path)?.select(benchmarks)?;
    let hook = hooks_dir()?.join("pre-push");
    match is_ours(&hook)? {
        Some(false) if !force => bail!(
            "{} exists and perfgate did not write it: --force replaces it (it is kept as {BACKUP})",
            shown(&hook)
        ),
        Some(false) => {
            let backup = hook.with_file_name(BACKUP);
            std::fs::rename(&hook, &backup)
                .with_context(|| format!("cannot keep the old hook as {}", shown(&backup)))?;
            status(&format!("kept the old hook as {}", shown(&backup)));
        }
        _ => {}
    }
    let perfgate = std::env::current_exe()
        .ok()
        .and_then(|p| p.canonicalize().ok())
        .map_or_else(|| "perfgate".to_string(), |p| p.display().to_string());
    let script = script(&perfgate, config, benchmarks, sudo);
    crate::files::write_atomic(&hook, script.as_bytes())?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755))
        .with_context(|| format!("cannot make {} executable", shown(&hook)))?;
    status(&format!(
        "installed {}: every `git push` runs a quick check of {} (git push --no-verify skips it)",
        shown(&hook),
        if benchmarks.is_empty() {
            "every benchmark in perfgate.toml".to_string()
        } else {
            benchmarks.join(", ")
        }
    ));
    if !sudo && !crate::sys::is_root() && crate::bpf::check_privileges().is_err() {
        status(&format!(
            "tracing needs privileges the hook cannot ask for: give them to perfgate once with \
             `sudo setcap cap_bpf,cap_perfmon,cap_sys_resource+ep {}` (or reinstall with --sudo and a NOPASSWD \
             sudoers line, see the README)",
            quoted(&perfgate)
        ));
    }
    Ok(Exit::Ok)
}

/// The hook script. Everything in it is quoted for `sh`; it reads nothing from git's stdin.
fn script(perfgate: &str, config: &Path, benchmarks: &[String], sudo: bool) -> String {
    let mut args = format!(
        "check --config {} --all --quick --brief",
        quoted(&config.display().to_string())
    );
    for b in benchmarks {
        args.push_str(&format!(" --benchmark {}", quoted(b)));
    }
    let prefix = if sudo { "sudo -n " } else { "" };
    format!(
        r#"#!/bin/sh
{MARKER}
# Written by `perfgate hook install`; `perfgate hook uninstall` removes it. Before every push, a quick
# perfgate check of the benchmarks in perfgate.toml (perfgate runs their build commands first, as you).
# A regression refuses the push; `git push --no-verify` skips the check once. All output goes to
# stderr, which git shows.
perfgate={perfgate}
[ -x "$perfgate" ] || perfgate=perfgate
{prefix}"$perfgate" {args} </dev/null >&2
code=$?
case $code in
  0) exit 0 ;;
  1) echo "perfgate: push refused: a benchmark regressed (quick verdict, see above)." >&2 ;;
  *) echo "perfgate: push refused: perfgate could not check the benchmarks (exit $code, see above)." >&2 ;;
esac
echo "perfgate: push anyway with: git push --no-verify" >&2
exit 1
"#,
        perfgate = quoted(perfgate),
    )
}

fn uninstall() -> Result<Exit> {
    let hook = hooks_dir()?.join("pre-push");
    match is_ours(&hook)? {
        None => status(&format!("no pre-push hook at {}", shown(&hook))),
        Some(false) => bail!("{} was not written by perfgate: left alone", shown(&hook)),
        Some(true) => {
            std::fs::remove_file(&hook)
                .with_context(|| format!("cannot remove {}", shown(&hook)))?;
            let backup = hook.with_file_name(BACKUP);
            if backup.exists() {
                std::fs::rename(&backup, &hook)
                    .with_context(|| format!("cannot restore {}", shown(&backup)))?;
                status("removed perfgate's hook and restored the one it replaced");
            } else {
                status(&format!("removed {}", shown(&hook)));
            }
        }
    }
    Ok(Exit::Ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_script_is_marked_and_quoted() {
        let s = script(
            "/opt/my tools/perfgate",
            Path::new("perfgate.toml"),
            &["a".into(), "b-2".into()],
            false,
        );
        assert!(s.starts_with("#!/bin/sh\n# perfgate-hook: pre-push v1\n"));
        assert!(s.contains("perfgate='/opt/my tools/perfgate'"));
        assert!(s.contains(r#""$perfgate" check --config perfgate.toml --all --quick --brief --benchmark a --benchmark b-2 </dev/null >&2"#), "{s}");
        assert!(script("p", Path::new("perfgate.toml"), &[], true)
            .contains("sudo -n \"$perfgate\" check"));
    }
}
