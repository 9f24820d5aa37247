use serde::{Deserialize, Serialize};
use std::path::Path;

use crate::GovernanceError;

/// Most files a repository may hold; guards the control plane against a runaway upload.
pub const MAX_FILES: usize = 10_000;
/// Largest single file accepted, in bytes.
pub const MAX_FILE_BYTES: usize = 64 * 1024 * 1024;

/// One file of a governance repository, as shipped to the control plane.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceFile {
    /// Path relative to the repository root, `/`-separated.
    pub path: String,
    pub content: String,
}

/// Loads every `.yaml`, `.yml` and `.cedar` file below `root`, skipping hidden entries
/// (such as `.git`), in a stable order.
pub fn read_dir(root: &Path) -> Result<Vec<SourceFile>, GovernanceError> {
    let mut out = Vec::new();
    walk(root, root, &mut out)?;
    out.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}

fn walk(root: &Path, dir: &Path, out: &mut Vec<SourceFile>) -> Result<(), GovernanceError> {
    let io = |path: &Path, source| GovernanceError::Io {
        path: path.display().to_string(),
        source,
    };
    let entries = std::fs::read_dir(dir).map_err(|e| io(dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| io(dir, e))?;
        let path = entry.path();
        let name = entry.file_name();
        if name.to_string_lossy().starts_with('.') {
            continue;
        }
        let file_type = entry.file_type().map_err(|e| io(&path, e))?;
        if file_type.is_dir() {
            walk(root, &path, out)?;
            continue;
        }
        let relevant = matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("yaml" | "yml" | "cedar")
        );
        if !relevant {
            continue;
        }
        if out.len() >= MAX_FILES {
            return Err(GovernanceError::TooLarge(format!(
                "more than {MAX_FILES} files"
            )));
        }
        let bytes = std::fs::read(&path).map_err(|e| io(&path, e))?;
        let rel = path.strip_prefix(root).unwrap_or(&path);
        let rel = rel
            .components()
            .map(|c| c.as_os_str().to_string_lossy())
            .collect::<Vec<_>>()
            .join("/");
        if bytes.len() > MAX_FILE_BYTES {
            return Err(GovernanceError::TooLarge(format!(
                "`{rel}` is larger than {MAX_FILE_BYTES} bytes"
            )));
        }
        let content = String::from_utf8(bytes).map_err(|_| {
            GovernanceError::Invalid(vec![crate::Diagnostic {
                file: rel.clone(),
                line: 0,
                message: "is not valid UTF-8".into(),
            }])
        })?;
        out.push(SourceFile { path: rel, content });
    }
    Ok(())
}
