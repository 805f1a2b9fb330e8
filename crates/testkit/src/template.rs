//! Initialised data directories, made once per test process and copied for
//! each server: `mariadb-install-db` and `initdb` take a second or two, a
//! copy a few tens of milliseconds.
//!
//! A template is never started; it lives in its own temporary directory,
//! which stays until the process ends (statics are not dropped) and is
//! removed by the next test process's sweep (see `cleanup`).

use std::os::unix::fs::{chown, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use crate::cleanup::new_temp_dir;
use crate::error::TestkitError;

/// A slot for one kind of template: the initialised data directory.
pub(crate) struct TemplateSlot(Mutex<Option<PathBuf>>);

impl TemplateSlot {
    /// An empty slot, for a `static`.
    pub(crate) const fn new() -> Self {
        TemplateSlot(Mutex::new(None))
    }

    /// The template data directory for `kind`, made by `init` on first use.
    ///
    /// `init(root, datadir)` must create `datadir` inside the fresh,
    /// empty directory `root`. Callers that come meanwhile wait for it; a
    /// failure is returned and not remembered, so the next call tries again.
    pub(crate) fn get_or_init(
        &self,
        kind: &str,
        init: impl FnOnce(&Path, &Path) -> Result<(), TestkitError>,
    ) -> Result<PathBuf, TestkitError> {
        let mut slot = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(datadir) = slot.as_ref().filter(|dir| dir.is_dir()) {
            return Ok(datadir.clone());
        }
        let dir = new_temp_dir(&format!("template-{kind}"))?;
        let root = dir
            .path()
            .canonicalize()
            .map_err(|e| TestkitError::io("resolving the template directory", e))?;
        let datadir = root.join("data");
        init(&root, &datadir)?;
        // Keep the directory for the rest of the process.
        let _ = dir.keep();
        tracing::debug!(kind, dir = %datadir.display(), "template data directory ready");
        *slot = Some(datadir.clone());
        Ok(datadir)
    }
}

/// Copies the directory tree `src` to `dst` (which must not exist), with
/// permissions and, when running as root, owners.
pub(crate) fn copy_tree(src: &Path, dst: &Path) -> Result<(), TestkitError> {
    let as_root = nix::unistd::geteuid().is_root();
    copy_dir(src, dst, as_root)
        .map_err(|e| TestkitError::io(format!("copying {} to {}", src.display(), dst.display()), e))
}

/// One level of [`copy_tree`].
fn copy_dir(src: &Path, dst: &Path, as_root: bool) -> std::io::Result<()> {
    std::fs::create_dir(dst)?;
    for entry in std::fs::read_dir(src)? {
        let entry = entry?;
        let from = entry.path();
        let to = dst.join(entry.file_name());
        let file_type = entry.file_type()?;
        if file_type.is_dir() {
            copy_dir(&from, &to, as_root)?;
        } else if file_type.is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(&from)?, &to)?;
        } else {
            std::fs::copy(&from, &to)?;
            keep_owner(&from, &to, as_root)?;
        }
    }
    std::fs::set_permissions(dst, std::fs::metadata(src)?.permissions())?;
    keep_owner(src, dst, as_root)
}

/// Gives `to` the owner of `from` (only root may).
fn keep_owner(from: &Path, to: &Path, as_root: bool) -> std::io::Result<()> {
    if !as_root {
        return Ok(());
    }
    let meta = std::fs::metadata(from)?;
    chown(to, Some(meta.uid()), Some(meta.gid()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn tree_is_copied_with_permissions() {
        let src = tempfile::tempdir().unwrap();
        std::fs::create_dir(src.path().join("sub")).unwrap();
        std::fs::write(src.path().join("sub/file"), b"data").unwrap();
        std::fs::set_permissions(
            src.path().join("sub"),
            std::fs::Permissions::from_mode(0o700),
        )
        .unwrap();
        let dst_root = tempfile::tempdir().unwrap();
        let dst = dst_root.path().join("copy");
        copy_tree(src.path(), &dst).unwrap();
        assert_eq!(std::fs::read(dst.join("sub/file")).unwrap(), b"data");
        let mode = std::fs::metadata(dst.join("sub"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o700);
    }

    #[test]
    fn failed_init_is_retried() {
        static SLOT: TemplateSlot = TemplateSlot::new();
        let err = SLOT.get_or_init("unit", |_, _| {
            Err(TestkitError::NotRunning { server: "unit" })
        });
        assert!(err.is_err());
        let datadir = SLOT
            .get_or_init("unit", |_, datadir| {
                std::fs::create_dir(datadir).map_err(|e| TestkitError::io("mkdir", e))
            })
            .unwrap();
        assert!(datadir.is_dir());
        assert_eq!(
            SLOT.get_or_init("unit", |_, _| unreachable!()).unwrap(),
            datadir
        );
        std::fs::remove_dir_all(datadir.parent().unwrap()).unwrap();
    }
}
