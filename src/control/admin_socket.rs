//! The daemon's admin socket: a Unix stream socket only root can use.
//!
//! Created with mode 0600 inside a directory created 0700; a socket file
//! left by a daemon that died is replaced, one that still answers is
//! refused (another lvsfwd owns it). Accepting is non-blocking so that the
//! control loop polls it between its other duties; each accepted
//! connection carries one request and is served with a bounded timeout, so
//! a stuck client cannot stall the control thread for long.

use std::io;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};

/// How long one admin connection may take.
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(5);

/// The listening admin socket; its file is removed on drop.
pub struct AdminSocket {
    listener: UnixListener,
    path: PathBuf,
}

impl AdminSocket {
    pub fn bind(path: &Path) -> Result<AdminSocket> {
        if let Some(dir) = path.parent()
            && !dir.as_os_str().is_empty()
            && !dir.exists()
        {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .with_context(|| format!("creating {}", dir.display()))?;
        }
        if path.exists() {
            if UnixStream::connect(path).is_ok() {
                bail!(
                    "admin socket {} is in use by another lvsfwd",
                    path.display()
                );
            }
            std::fs::remove_file(path)
                .with_context(|| format!("removing the stale socket {}", path.display()))?;
        }
        let listener = UnixListener::bind(path)
            .with_context(|| format!("binding the admin socket {}", path.display()))?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            .with_context(|| format!("restricting {} to root", path.display()))?;
        listener
            .set_nonblocking(true)
            .context("admin socket: non-blocking")?;
        Ok(AdminSocket {
            listener,
            path: path.to_path_buf(),
        })
    }

    /// The next waiting client, if any (never blocks).
    pub fn accept(&self) -> io::Result<Option<UnixStream>> {
        match self.listener.accept() {
            Ok((s, _)) => {
                s.set_nonblocking(false)?;
                s.set_read_timeout(Some(CLIENT_TIMEOUT))?;
                s.set_write_timeout(Some(CLIENT_TIMEOUT))?;
                Ok(Some(s))
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for AdminSocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn root_only_stale_replaced_live_refused_removed_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run/lvsfwd/admin.sock");
        let a = AdminSocket::bind(&path).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().mode() & 0o777, 0o600);
        assert_eq!(
            std::fs::metadata(path.parent().unwrap()).unwrap().mode() & 0o777,
            0o700
        );
        assert!(a.accept().unwrap().is_none(), "nobody waiting: no block");
        let err = AdminSocket::bind(&path).err().unwrap();
        assert!(format!("{err:#}").contains("in use"), "{err:#}");
        let _c = UnixStream::connect(&path).unwrap();
        assert!(a.accept().unwrap().is_some());
        // A dead daemon's socket file: replaced.
        std::mem::forget(a);
        let b = AdminSocket::bind(&path);
        // The forgotten listener still answers in this process, so this
        // is "in use"; drop the file by hand to emulate a dead owner.
        assert!(b.is_err());
        std::fs::remove_file(&path).unwrap();
        std::os::unix::net::UnixListener::bind(&path)
            .map(drop)
            .unwrap();
        let b = AdminSocket::bind(&path).unwrap();
        drop(b);
        assert!(!path.exists());
    }
}
