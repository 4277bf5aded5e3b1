//! A fixture tree for the unit tests of several modules.

use std::fs;
use std::path::PathBuf;

use crate::now_ms;

/// A fixture cgroup tree in a fresh temp directory, removed on drop.
pub(crate) struct Tree(pub(crate) PathBuf);

impl Tree {
    pub(crate) fn new(name: &str, files: &[(&str, &str)]) -> Tree {
        let dir = std::env::temp_dir().join(format!(
            "fake-runsc-{name}-{}-{}",
            std::process::id(),
            now_ms()
        ));
        for (path, text) in files {
            let file = dir.join(path);
            fs::create_dir_all(file.parent().unwrap()).unwrap();
            fs::write(file, text).unwrap();
        }
        Tree(dir)
    }
}

impl Drop for Tree {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}
