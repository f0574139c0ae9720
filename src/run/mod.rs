//! The benchmark process: whom it runs as, where its output goes, held before `exec` until the probes
//! are attached (`held.rs`), ended with all its descendants (`tree.rs`), watched from outside perfgate so
//! that nothing survives perfgate (`watch.rs`), and the signals that stop it (`signals.rs`).
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

pub mod follow;
mod held;
pub mod signals;
pub mod tree;
pub mod watch;

pub use held::{held_exec_main, mapped_executables, Finished, HeldChild, HELD_EXEC_ARG};

/// Whom the benchmark runs as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunAs {
    /// As perfgate itself.
    Same,
    /// As this user and group (from `SUDO_UID`/`SUDO_GID`).
    User {
        /// uid
        uid: u32,
        /// gid
        gid: u32,
    },
}

/// Why perfgate will not pick whom the benchmark runs as.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    /// `SUDO_UID` is set but is not a user id.
    #[error("SUDO_UID={0:?} is not a user id: refusing to run the benchmark as root by accident (--run-as-root runs it as root)")]
    BadUid(String),
    /// `SUDO_UID` names a user but `SUDO_GID` is missing or not a group id.
    #[error("SUDO_UID is set but SUDO_GID is {0}: refusing to run the benchmark as root by accident (--run-as-root runs it as root)")]
    BadGid(String),
    /// A non-root user with group 0.
    #[error("SUDO_GID=0 for user {0}: refusing to give the benchmark group root (--run-as-root runs it as root)")]
    RootGroup(u32),
}

impl RunAs {
    /// Whom the benchmark runs as, from `SUDO_UID`/`SUDO_GID` as sudo sets them: the invoking user when
    /// perfgate runs as root under sudo, unless `run_as_root`; perfgate's own user otherwise. An
    /// incomplete or inconsistent identity is an error, never a silent root benchmark.
    pub fn from_env(run_as_root: bool) -> Result<RunAs, IdentityError> {
        if run_as_root || !crate::sys::is_root() {
            return Ok(RunAs::Same);
        }
        Self::from_vars(
            std::env::var("SUDO_UID").ok().as_deref(),
            std::env::var("SUDO_GID").ok().as_deref(),
        )
    }

    /// The rule of [`RunAs::from_env`] on the two variables' values (for root).
    pub fn from_vars(uid: Option<&str>, gid: Option<&str>) -> Result<RunAs, IdentityError> {
        let Some(uid_s) = uid else {
            return Ok(RunAs::Same);
        };
        let uid: u32 = uid_s
            .trim()
            .parse()
            .map_err(|_| IdentityError::BadUid(uid_s.to_string()))?;
        if uid == 0 {
            // sudo run by root itself.
            return Ok(RunAs::Same);
        }
        let gid: u32 = match gid {
            None => return Err(IdentityError::BadGid("not set".into())),
            Some(g) => g
                .trim()
                .parse()
                .map_err(|_| IdentityError::BadGid(format!("{g:?}")))?,
        };
        if gid == 0 {
            return Err(IdentityError::RootGroup(uid));
        }
        Ok(RunAs::User { uid, gid })
    }
}

/// Finds the executable a command names, the way `execvp` would.
pub fn resolve_program(program: &OsStr) -> Result<PathBuf> {
    let shown = Path::new(program).display().to_string();
    let path = if program.as_bytes().contains(&b'/') {
        PathBuf::from(program)
    } else {
        let search =
            std::env::var_os("PATH").unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into());
        std::env::split_paths(&search)
            .map(|d| d.join(program))
            .find(|p| is_executable(p))
            .with_context(|| format!("{shown}: command not found in PATH"))?
    };
    let meta = std::fs::metadata(&path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => anyhow::anyhow!("{shown}: no such file"),
        _ => anyhow::anyhow!("{shown}: {e}"),
    })?;
    if meta.is_dir() {
        bail!("{shown}: is a directory, not an executable");
    }
    if !is_executable(&path) {
        bail!("{shown}: not executable (chmod +x?)");
    }
    Ok(path)
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Where the benchmark's standard output goes.
#[derive(Debug, Clone, Default)]
pub enum Stdout {
    /// Passed through untouched.
    #[default]
    Inherit,
    /// To perfgate's stderr, so perfgate's stdout carries only its report (`check`, `baseline`).
    Stderr,
    /// Into a file (perfgate's own benchmarks).
    File(PathBuf),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sudo_identity_is_complete_or_refused() {
        assert_eq!(RunAs::from_vars(None, None), Ok(RunAs::Same));
        assert_eq!(
            RunAs::from_vars(Some("1000"), Some("1000")),
            Ok(RunAs::User {
                uid: 1000,
                gid: 1000
            })
        );
        assert_eq!(RunAs::from_vars(Some("0"), Some("0")), Ok(RunAs::Same));
        assert!(matches!(
            RunAs::from_vars(Some("abc"), Some("1")),
            Err(IdentityError::BadUid(_))
        ));
        assert!(matches!(
            RunAs::from_vars(Some("1000"), None),
            Err(IdentityError::BadGid(_))
        ));
        assert!(matches!(
            RunAs::from_vars(Some("1000"), Some("x")),
            Err(IdentityError::BadGid(_))
        ));
        assert_eq!(
            RunAs::from_vars(Some("1000"), Some("0")),
            Err(IdentityError::RootGroup(1000))
        );
    }
}
