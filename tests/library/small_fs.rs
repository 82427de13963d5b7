//! A small real file system, for the tests of a full disk.

use std::path::PathBuf;
use std::process::Command;

use tempfile::TempDir;

/// A 1 MiB tmpfs, unmounted on drop: a real full disk for tests. Needs
/// root and mount(8); `None` where they are missing.
pub struct SmallFs {
    pub path: PathBuf,
    _dir: TempDir,
}

impl SmallFs {
    pub fn mount() -> Option<Self> {
        let dir = TempDir::new().ok()?;
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=1m", "tmpfs"])
            .arg(dir.path())
            .output()
            .ok()?
            .status
            .success();
        ok.then(|| Self {
            path: dir.path().to_path_buf(),
            _dir: dir,
        })
    }
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.path).status();
    }
}
