//! `edit-config` without --set/--pg/--apply/--replace: the configuration goes to a temporary YAML
//! file, `$EDITOR` (else `editor`, else `vi`, as patronictl looks them up) edits it, and the result is
//! read back. `$EDITOR` may carry arguments (`code --wait`); it is split like a shell would, but no
//! shell runs it.
//!
//! The file is created exclusively with mode 0600 (the configuration may hold passwords, e.g. in
//! `standby_cluster`) and removed afterwards, also when the editor fails.

use crate::error::{CtlError, CtlResult};
use crate::yaml_in;
use serde_json::Value;
use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Returns the edited configuration.
pub fn edit(before: &str, cluster: &str) -> CtlResult<Value> {
    let command = editor_command()?;
    let file = TempFile::create(cluster, before)?;
    let status = Command::new(&command[0])
        .args(&command[1..])
        .arg(&file.path)
        .status()
        .map_err(|e| CtlError::failed(format!("cannot run the editor {:?}: {e}", command[0])))?;
    if !status.success() {
        let code = status.code().map_or_else(|| "a signal".to_string(), |c| c.to_string());
        return Err(CtlError::failed(format!("Editor exited with return code {code}")));
    }
    let after = std::fs::read_to_string(&file.path)
        .map_err(|e| CtlError::failed(format!("cannot read back {}: {e}", file.path.display())))?;
    yaml_in::parse(&after).map_err(|e| CtlError::usage(format!("the edited configuration is not valid YAML: {e}")))
}

fn editor_command() -> CtlResult<Vec<String>> {
    if let Some(editor) = std::env::var("EDITOR").ok().filter(|e| !e.trim().is_empty()) {
        let words = ferroni_config::split_command(&editor)
            .map_err(|e| CtlError::usage(format!("cannot read EDITOR={editor:?}: {e}")))?;
        if !words.is_empty() {
            return Ok(words);
        }
    }
    ["editor", "vi"]
        .iter()
        .find(|name| in_path(name))
        .map(|name| vec![name.to_string()])
        .ok_or_else(|| CtlError::failed("EDITOR environment variable is not set. editor or vi are not available"))
}

fn in_path(name: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|path| std::env::split_paths(&path).any(|dir| is_executable(&dir.join(name))))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Removed on drop.
struct TempFile {
    path: PathBuf,
}

impl TempFile {
    fn create(cluster: &str, contents: &str) -> CtlResult<TempFile> {
        let dir = std::env::temp_dir();
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        // Exclusive creation makes a name collision (or a planted symlink) an error, not a hijack;
        // a few attempts with other names get past a collision.
        let mut last_error = None;
        for attempt in 0..5u32 {
            let path = dir.join(format!(
                "{cluster}-config-{}-{nanos}-{attempt}.yaml",
                std::process::id()
            ));
            match OpenOptions::new().write(true).create_new(true).mode(0o600).open(&path) {
                Ok(mut f) => {
                    let file = TempFile { path };
                    f.write_all(contents.as_bytes())
                        .map_err(|e| CtlError::failed(format!("cannot write {}: {e}", file.path.display())))?;
                    return Ok(file);
                }
                Err(e) => last_error = Some(e),
            }
        }
        Err(CtlError::failed(format!(
            "cannot create a temporary file in {}: {}",
            dir.display(),
            last_error.map(|e| e.to_string()).unwrap_or_default()
        )))
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}
