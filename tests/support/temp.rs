//! Temporary directories (`tempfile`), removed when dropped.

use std::path::{Path, PathBuf};

/// A fresh directory of its own under the system's temp dir.
pub struct TempDir(tempfile::TempDir);

impl TempDir {
    pub fn new() -> TempDir {
        let dir = tempfile::Builder::new()
            .prefix("rollguard-test-")
            .tempdir()
            .expect("temp dir");
        TempDir(dir)
    }

    pub fn path(&self) -> &Path {
        self.0.path()
    }

    /// Writes `contents` to `name` in the directory and returns its path.
    pub fn write(&self, name: &str, contents: impl AsRef<[u8]>) -> PathBuf {
        let path = self.0.path().join(name);
        std::fs::write(&path, contents).expect("write temp file");
        path
    }
}
