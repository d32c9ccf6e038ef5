//! `Memory::rewind_pending` kept on disk. A primary demoted without knowing the new leader must be
//! checked with pg_rewind before it follows anyone; its demotion already started it as a replica
//! (standby.signal written), so after a daemon restart or a machine crash nothing in the data
//! directory tells it apart from a replica that never diverged. The marker does.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use tracing::warn;

pub struct RewindMarker {
    path: PathBuf,
    on_disk: bool,
}

impl RewindMarker {
    /// Next to the data directory, never inside it: pg_rewind deletes files the source lacks and
    /// pg_basebackup copies what it finds.
    pub fn new(data_dir: &Path) -> RewindMarker {
        let mut path = data_dir.as_os_str().to_owned();
        path.push(".rewind_pending");
        let path = PathBuf::from(path);
        let on_disk = path.exists();
        RewindMarker { path, on_disk }
    }

    /// Whether an earlier daemon left the duty to rewind.
    pub fn pending(&self) -> bool {
        self.on_disk
    }

    /// Makes the marker say `pending`, durably before the demotion it goes with runs.
    pub fn store(&mut self, pending: bool) {
        if pending == self.on_disk {
            return;
        }
        let result = if pending { self.create() } else { self.remove() };
        match result {
            Ok(()) => self.on_disk = pending,
            Err(e) => warn!(path = %self.path.display(), "cannot update the rewind marker: {e}"),
        }
    }

    fn create(&self) -> std::io::Result<()> {
        let mut file = OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .open(&self.path)?;
        file.write_all(b"this data directory must be checked with pg_rewind before it follows a leader\n")?;
        file.sync_all()?;
        self.sync_dir()
    }

    fn remove(&self) -> std::io::Result<()> {
        match fs::remove_file(&self.path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        self.sync_dir()
    }

    fn sync_dir(&self) -> std::io::Result<()> {
        match self.path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => File::open(dir)?.sync_all(),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_duty_survives_a_new_daemon_and_is_dropped_when_done() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let mut marker = RewindMarker::new(&data);
        assert!(!marker.pending());
        marker.store(true);
        assert!(dir.path().join("data.rewind_pending").exists());
        assert!(!data.exists(), "nothing is written inside the data directory");
        let mut restarted = RewindMarker::new(&data);
        assert!(restarted.pending(), "a new daemon finds the duty");
        restarted.store(false);
        assert!(!RewindMarker::new(&data).pending());
    }
}
