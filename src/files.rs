//! The files perfgate writes and reads, in one place: written whole or not at all, never through a planted
//! symlink, read only from regular files whose size is checked before anything is allocated.
//!
//! Invariants: every file perfgate writes under sudo belongs to the invoking user (`SUDO_UID`/`SUDO_GID`),
//! never to root; a file perfgate writes appears under its name only complete (a temporary file beside it is
//! renamed over it), so an interrupted or failed write leaves the previous content byte for byte; temporary
//! names are created exclusively (`O_CREAT|O_EXCL`), so an existing file or symlink is never followed or
//! truncated. Reads refuse FIFOs, devices and directories (a FIFO would block forever, `/dev/zero` would
//! never end) and files larger than the caller's limit.
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

/// Who owns the files perfgate writes: the invoking user under sudo (root running perfgate with a valid
/// `SUDO_UID` and `SUDO_GID`), else `None` (perfgate's own user, as any program).
pub fn file_owner() -> Option<(u32, u32)> {
    static OWNER: std::sync::OnceLock<Option<(u32, u32)>> = std::sync::OnceLock::new();
    *OWNER.get_or_init(|| {
        if !crate::sys::is_root() {
            return None;
        }
        let id = |k: &str| std::env::var(k).ok()?.trim().parse::<u32>().ok();
        match (id("SUDO_UID")?, id("SUDO_GID")?) {
            (0, _) => None,
            (uid, gid) => Some((uid, gid)),
        }
    })
}

/// Creates a new temporary file beside `path` (same directory, so a rename replaces `path` atomically).
/// It is created exclusively: an existing file or symlink of that name is never followed or truncated.
/// Under sudo it belongs to the invoking user from the start.
pub fn create_beside(path: &Path) -> Result<(File, PathBuf)> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if name.is_empty() {
        bail!("{}: not a file name", path.display());
    }
    for attempt in 0..100u32 {
        let tmp = path.with_file_name(format!(".{name}.{}.{attempt}.tmp", std::process::id()));
        match File::options().write(true).create_new(true).open(&tmp) {
            Ok(f) => {
                if let Some((uid, gid)) = file_owner() {
                    use std::os::fd::AsFd;
                    if let Err(e) = crate::sys::fchown(f.as_fd(), uid, gid) {
                        let _ = std::fs::remove_file(&tmp);
                        return Err(e).with_context(|| {
                            format!("cannot give {} to user {uid}", path.display())
                        });
                    }
                }
                return Ok((f, tmp));
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e).with_context(|| format!("cannot write {}", path.display())),
        }
    }
    bail!(
        "cannot write {}: no free temporary name beside it",
        path.display()
    )
}

/// Writes `bytes` to `path` atomically: a new file renamed into place, so a symlink planted at `path` is
/// replaced, never written through, and a failure leaves the old file intact.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let (mut f, tmp) = create_beside(path)?;
    let result = f
        .write_all(bytes)
        .and_then(|()| f.sync_data())
        .and_then(|()| std::fs::rename(&tmp, path));
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.with_context(|| format!("cannot write {}", path.display()))
}

/// Creates a directory and its missing parents; under sudo each directory created belongs to the
/// invoking user, like the files perfgate writes.
pub fn create_dir_all(dir: &Path) -> Result<()> {
    if dir.as_os_str().is_empty() || dir.is_dir() {
        return Ok(());
    }
    if let Some(parent) = dir.parent() {
        create_dir_all(parent)?;
    }
    match std::fs::create_dir(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(()),
        Err(e) => return Err(e).with_context(|| format!("cannot create {}", dir.display())),
    }
    if let Some((uid, gid)) = file_owner() {
        use std::os::fd::AsFd;
        let d = File::open(dir).with_context(|| format!("cannot open {}", dir.display()))?;
        crate::sys::fchown(d.as_fd(), uid, gid)
            .with_context(|| format!("cannot give {} to user {uid}", dir.display()))?;
    }
    Ok(())
}

/// Fails early, before minutes of runs, when `path` cannot be written (a probe file beside it).
pub fn check_writable(path: &Path) -> Result<()> {
    let (_, tmp) = create_beside(path)?;
    std::fs::remove_file(&tmp).with_context(|| format!("cannot write {}", path.display()))
}

/// Opens `path` for reading if it is a regular file of at most `max_bytes`; returns it with its size.
/// `what` names the kind of file in messages ("baseline", "recording").
pub fn open_regular(path: &Path, max_bytes: u64, what: &str) -> Result<(File, u64)> {
    let shown = path.display();
    // Metadata of the path first: opening a FIFO for reading would block until a writer comes.
    let meta = std::fs::metadata(path).with_context(|| format!("cannot read {what} {shown}"))?;
    if !meta.is_file() {
        bail!("{shown}: not a regular file; a {what} must be a file");
    }
    let f = File::open(path).with_context(|| format!("cannot read {what} {shown}"))?;
    // The file opened may not be the one stat'ed (a rename in between): check the open file itself.
    let meta = f
        .metadata()
        .with_context(|| format!("cannot read {what} {shown}"))?;
    if !meta.is_file() {
        bail!("{shown}: not a regular file; a {what} must be a file");
    }
    if meta.len() > max_bytes {
        bail!(
            "{shown}: {} bytes, larger than any {what} ({} at most)",
            meta.len(),
            max_bytes
        );
    }
    Ok((f, meta.len()))
}

/// Reads a whole regular file of at most `max_bytes` (see [`open_regular`]).
pub fn read_regular(path: &Path, max_bytes: u64, what: &str) -> Result<Vec<u8>> {
    let (f, len) = open_regular(path, max_bytes, what)?;
    let mut buf = Vec::with_capacity(len as usize);
    // take(): a file that grows while it is read still stops at the limit.
    f.take(max_bytes + 1)
        .read_to_end(&mut buf)
        .with_context(|| format!("cannot read {what} {}", path.display()))?;
    if buf.len() as u64 > max_bytes {
        bail!(
            "{}: grew past {max_bytes} bytes while being read",
            path.display()
        );
    }
    Ok(buf)
}

/// A fresh directory only perfgate's user can enter (mode 0700), removed on drop: files in it cannot be
/// redirected by another user's symlink, unlike fixed names in /tmp.
#[derive(Debug)]
pub struct PrivateDir(PathBuf);

impl PrivateDir {
    /// Creates one under the temporary directory; `label` is part of its name (`perfgate-LABEL.…`).
    pub fn new(label: &str) -> Result<PrivateDir> {
        use std::os::unix::fs::DirBuilderExt;
        let base = std::env::temp_dir();
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        for attempt in 0..100u32 {
            let p = base.join(format!(
                "perfgate-{label}.{}.{stamp:x}.{attempt}",
                std::process::id()
            ));
            match std::fs::DirBuilder::new().mode(0o700).create(&p) {
                Ok(()) => return Ok(PrivateDir(p)),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => {
                    return Err(e).with_context(|| {
                        format!("cannot create a directory in {}", base.display())
                    })
                }
            }
        }
        bail!("cannot create a private directory in {}", base.display())
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.0
    }

    /// A path inside it.
    pub fn file(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for PrivateDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_a_symlink_instead_of_following_it() {
        let dir = PrivateDir::new("test").unwrap();
        let victim = dir.file("victim");
        std::fs::write(&victim, b"keep").unwrap();
        let link = dir.file("report");
        std::os::unix::fs::symlink(&victim, &link).unwrap();
        write_atomic(&link, b"new").unwrap();
        assert_eq!(std::fs::read(&victim).unwrap(), b"keep");
        assert_eq!(std::fs::read(&link).unwrap(), b"new");
        assert!(!std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink());
    }

    #[test]
    fn reads_refuse_fifos_devices_directories_and_big_files() {
        let dir = PrivateDir::new("test").unwrap();
        let fifo = dir.file("fifo");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        assert!(made.unwrap().success());
        let e = read_regular(&fifo, 100, "baseline").unwrap_err();
        assert!(e.to_string().contains("not a regular file"), "{e}");
        let e = read_regular(Path::new("/dev/zero"), 100, "baseline").unwrap_err();
        assert!(e.to_string().contains("not a regular file"), "{e}");
        let e = read_regular(dir.path(), 100, "recording").unwrap_err();
        assert!(e.to_string().contains("not a regular file"), "{e}");
        let big = dir.file("big");
        std::fs::write(&big, vec![b'x'; 101]).unwrap();
        let e = read_regular(&big, 100, "baseline").unwrap_err();
        assert!(e.to_string().contains("larger than any baseline"), "{e}");
        assert_eq!(read_regular(&big, 101, "baseline").unwrap().len(), 101);
    }

    #[test]
    fn private_dirs_are_private_and_removed() {
        use std::os::unix::fs::PermissionsExt;
        let path;
        {
            let d = PrivateDir::new("test").unwrap();
            path = d.path().to_path_buf();
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o700);
        }
        assert!(!path.exists());
    }
}
