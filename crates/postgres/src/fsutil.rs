//! Small file-system helpers: atomic writes with a mode and an owner, emptying a directory.
//!
//! Writes go to a temporary file next to the target and are renamed over it, so PostgreSQL (which may
//! re-read its configuration at any SIGHUP) never sees a half-written file. The owner is only changed
//! when a `RunAs` is given (tests running as root); the daemon runs as the postgres OS user already.
//!
//! Failure: every error is a [`PgError::Io`] naming the path.

use crate::error::PgError;
use crate::runner::RunAs;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// Write `contents` to `path` atomically with `mode`, owned by `owner` when given. Not synced:
/// for files ferroni writes again before each start of Postgres (configuration, pgpass), where an
/// fsync per file cost a replica's start tens of milliseconds right after pg_basebackup had
/// synced the whole directory, and a file a power loss emptied is simply written again.
pub(crate) fn write_atomic(path: &Path, contents: &[u8], mode: u32, owner: Option<RunAs>) -> Result<(), PgError> {
    write_file(path, contents, mode, owner, false)
}

/// [`write_atomic`], synced before the rename: for content that exists nowhere else.
pub(crate) fn write_durable(path: &Path, contents: &[u8], mode: u32, owner: Option<RunAs>) -> Result<(), PgError> {
    write_file(path, contents, mode, owner, true)
}

fn write_file(path: &Path, contents: &[u8], mode: u32, owner: Option<RunAs>, sync: bool) -> Result<(), PgError> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.ferroni-tmp"));
    // A leftover from a crash would make create_new fail; it holds nothing worth keeping.
    let _ = fs::remove_file(&tmp);
    let result = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)
            .map_err(PgError::io(format!("create {}", tmp.display())))?;
        file.write_all(contents)
            .map_err(PgError::io(format!("write {}", tmp.display())))?;
        if sync {
            file.sync_all()
                .map_err(PgError::io(format!("sync {}", tmp.display())))?;
        }
        // The umask may have narrowed the mode at creation; set it exactly.
        fs::set_permissions(&tmp, fs::Permissions::from_mode(mode))
            .map_err(PgError::io(format!("chmod {}", tmp.display())))?;
        if let Some(owner) = owner {
            owner.chown(&tmp)?;
        }
        fs::rename(&tmp, path).map_err(PgError::io(format!("rename {} to {}", tmp.display(), path.display())))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Create `dir` (and parents) if missing, set mode 0700 and the owner: what PostgreSQL demands of a
/// data directory.
pub(crate) fn ensure_private_dir(dir: &Path, owner: Option<RunAs>) -> Result<(), PgError> {
    fs::create_dir_all(dir).map_err(PgError::io(format!("create {}", dir.display())))?;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
        .map_err(PgError::io(format!("chmod 0700 {}", dir.display())))?;
    if let Some(owner) = owner {
        owner.chown(dir)?;
    }
    Ok(())
}

/// Remove everything inside `dir` but keep `dir` itself. Symlinks (an external `pg_wal`) are removed,
/// not followed.
pub(crate) fn remove_contents(dir: &Path) -> Result<(), PgError> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(PgError::io(format!("list {}", dir.display()))(e)),
    };
    for entry in entries {
        let entry = entry.map_err(PgError::io(format!("list {}", dir.display())))?;
        let path = entry.path();
        let file_type = entry
            .file_type()
            .map_err(PgError::io(format!("stat {}", path.display())))?;
        if file_type.is_dir() {
            fs::remove_dir_all(&path).map_err(PgError::io(format!("remove {}", path.display())))?;
        } else {
            fs::remove_file(&path).map_err(PgError::io(format!("remove {}", path.display())))?;
        }
    }
    Ok(())
}

/// True when `dir` does not exist or has no entries.
pub(crate) fn is_absent_or_empty(dir: &Path) -> std::io::Result<bool> {
    match fs::read_dir(dir) {
        Ok(mut entries) => Ok(entries.next().is_none()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(true),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_sets_mode_and_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.conf");
        write_atomic(&path, b"one", 0o600, None).unwrap();
        write_atomic(&path, b"two", 0o600, None).unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "two");
        assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1, "no temporary file left");
    }

    #[test]
    fn remove_contents_keeps_dir_and_does_not_follow_symlinks() {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        fs::write(outside.path().join("keep"), "x").unwrap();
        let data = dir.path().join("data");
        ensure_private_dir(&data, None).unwrap();
        fs::create_dir_all(data.join("base/1")).unwrap();
        fs::write(data.join("base/1/f"), "x").unwrap();
        std::os::unix::fs::symlink(outside.path(), data.join("pg_wal")).unwrap();
        assert!(!is_absent_or_empty(&data).unwrap());
        remove_contents(&data).unwrap();
        assert!(is_absent_or_empty(&data).unwrap());
        assert!(outside.path().join("keep").exists());
        assert!(is_absent_or_empty(&dir.path().join("missing")).unwrap());
    }
}
