//! keepalived's script security (notify.c `check_script_secure`, and
//! `enable_script_security` in global_defs), for the scripts lvsfwd runs on
//! a schedule: vrrp_script and MISC_CHECK.
//!
//! The check, as keepalived makes it when it reads the configuration:
//! - A bare program name is looked up in `PATH` (as exec does); not found
//!   there, or a path that does not resolve: the script is "not found".
//! - The file the path resolves to must be executable by the uid/gid the
//!   script runs as (keepalived's `is_executable`: root needs any x bit).
//! - A script that runs as root (uid 0 or gid 0), or that is setuid root
//!   or setgid root, needs protection: every element of its path as given
//!   and of the path it resolves to (`/`, `/usr`, `/usr/bin`, ...,
//!   the file), read without following a link, must be a directory (the
//!   last: a file or a link), owned by root, and neither group-writable
//!   with a non-root group nor world-writable, a directory with the sticky
//!   bit excepted (keepalived's `check_security`).
//! - With `enable_script_security`, a script failing any of this is
//!   disabled: a vrrp_script is taken off the instances tracking it, a
//!   MISC_CHECK off its real server, each with keepalived's log line; and a
//!   script without its own user is disabled when there is no script user
//!   to default to (keepalived never falls back to root then). Without it,
//!   unsafe permissions are only logged, and the script runs as before.
//!
//! Difference: keepalived resolves the path with its effective ids switched
//! to the script's; lvsfwd resolves it as the daemon (root), so a path only
//! the script user could not traverse is found here and fails when run.

use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};

use super::RunAs;

const S_ISUID: u32 = 0o4000;
const S_ISGID: u32 = 0o2000;
const S_ISVTX: u32 = 0o1000;
const S_IXUSR: u32 = 0o100;
const S_IXGRP: u32 = 0o010;
const S_IXOTH: u32 = 0o001;
const S_IWGRP: u32 = 0o020;
const S_IWOTH: u32 = 0o002;

/// Why a script is not run under `enable_script_security`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Not found in PATH, or its path does not resolve.
    NotFound(String),
    /// Not executable by its user.
    NotExecutable(String),
    /// An element of its path is not root's, or writable by non-root.
    Insecure(String),
    /// No user of its own and no script user to default to.
    NoDefaultUser,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::NotFound(e) => write!(f, "not found/accessible ({e})"),
            Refusal::NotExecutable(e) => write!(f, "not executable ({e})"),
            Refusal::Insecure(e) => write!(f, "insecure ({e})"),
            Refusal::NoDefaultUser => f.write_str(
                "no script user: set script_user (or create keepalived_script), \
                 enable_script_security never runs scripts as root by default",
            ),
        }
    }
}

/// The program `argv0` names: itself when it has a `/` (relative to `/`,
/// the scripts' working directory), else the first executable file of that
/// name in `path` (a `PATH` value).
fn locate(argv0: &str, path: &str) -> Option<PathBuf> {
    if argv0.contains('/') {
        return Some(Path::new("/").join(argv0));
    }
    path.split(':')
        .filter(|d| !d.is_empty())
        .map(|d| Path::new("/").join(d).join(argv0))
        .find(|p| std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.mode() & 0o111 != 0))
}

/// keepalived's `is_executable`.
fn executable(mode: u32, file_uid: u32, file_gid: u32, who: RunAs) -> bool {
    (who.uid == 0 && mode & (S_IXUSR | S_IXGRP | S_IXOTH) != 0)
        || (who.uid == file_uid && mode & S_IXUSR != 0)
        || (who.uid != file_uid
            && ((who.gid == file_gid && mode & S_IXGRP != 0)
                || (who.gid != file_gid && mode & S_IXOTH != 0)))
}

/// keepalived's `check_security` of one absolute path: every element from
/// `/` down, not following links.
fn check_path(path: &Path) -> Result<(), String> {
    let mut prefix = PathBuf::new();
    let parts: Vec<Component> = path.components().collect();
    for (i, c) in parts.iter().enumerate() {
        prefix.push(c);
        let last = i + 1 == parts.len();
        let m =
            std::fs::symlink_metadata(&prefix).map_err(|e| format!("{}: {e}", prefix.display()))?;
        let ft = m.file_type();
        if (!last && !ft.is_dir()) || (last && !ft.is_file() && !ft.is_symlink()) {
            return Err(format!("wrong file type: {}", prefix.display()));
        }
        let mode = m.mode();
        let dir_without_sticky = ft.is_dir() && mode & S_ISVTX == 0;
        if m.uid() != 0
            || ((dir_without_sticky || ft.is_file())
                && ((m.gid() != 0 && mode & S_IWGRP != 0) || mode & S_IWOTH != 0))
        {
            return Err(format!(
                "unsafe permissions: {} (uid {} gid {} mode {:o})",
                prefix.display(),
                m.uid(),
                m.gid(),
                mode & 0o7777
            ));
        }
    }
    Ok(())
}

/// keepalived's `check_script_secure` of a script whose program is `argv0`,
/// run as `who` (`None`: as the daemon, root); `path` is the `PATH` a bare
/// name is looked up in. `Err` when keepalived would disable the script
/// under `enable_script_security`; with it off only
/// [`Refusal::Insecure`] is worth a log line.
pub fn check(argv0: &str, who: Option<RunAs>, path: &str) -> Result<(), Refusal> {
    let who = who.unwrap_or(RunAs { uid: 0, gid: 0 });
    let given =
        locate(argv0, path).ok_or_else(|| Refusal::NotFound(format!("{argv0}: not in PATH")))?;
    let real = std::fs::canonicalize(&given)
        .map_err(|e| Refusal::NotFound(format!("{}: {e}", given.display())))?;
    let m = std::fs::metadata(&real)
        .map_err(|e| Refusal::NotFound(format!("{}: {e}", real.display())))?;
    let mode = m.mode();
    if !executable(mode, m.uid(), m.gid(), who) {
        return Err(Refusal::NotExecutable(format!(
            "{} for uid:gid {}:{}",
            real.display(),
            who.uid,
            who.gid
        )));
    }
    let protect = who.uid == 0
        || who.gid == 0
        || (m.uid() == 0 && mode & S_IXUSR != 0 && mode & S_ISUID != 0)
        || (m.gid() == 0 && mode & S_IXGRP != 0 && mode & S_ISGID != 0);
    if protect {
        check_path(&given).map_err(Refusal::Insecure)?;
        if real != given {
            check_path(&real).map_err(Refusal::Insecure)?;
        }
    }
    Ok(())
}

/// Whether a script of `argv0` run as `who` may run: `who_default` says it
/// has no user of its own and `who` is the default. Logs what keepalived
/// logs; `security` is `enable_script_security`. `what` names the script
/// in the log ("track script chk", "misc script /bin/x").
pub fn allowed(
    what: &str,
    argv0: &str,
    who: Option<RunAs>,
    own_user: bool,
    security: bool,
) -> bool {
    if security && !own_user && who.is_none() {
        log::error!("Disabling {what}: {}", Refusal::NoDefaultUser);
        return false;
    }
    let path = std::env::var("PATH").unwrap_or_else(|_| "/usr/bin:/bin".into());
    match check(argv0, who, &path) {
        Ok(()) => true,
        Err(Refusal::Insecure(e)) if !security => {
            log::warn!("Unsafe permissions found for {what}: {e}");
            true
        }
        Err(e) if security => {
            log::error!("Disabling {what} due to {e}");
            false
        }
        // Without enable_script_security lvsfwd runs it as before (a
        // script that cannot start counts as a failure).
        Err(_) => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    const ROOT: Option<RunAs> = None;
    const NOBODY: Option<RunAs> = Some(RunAs {
        uid: 65534,
        gid: 65534,
    });

    fn chmod(p: &Path, mode: u32) {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    /// A root-owned tree under a root-owned, not world-writable directory
    /// (the tests run as root; /tmp itself is sticky, hence fine).
    fn tree() -> (tempfile::TempDir, PathBuf) {
        let d = tempfile::tempdir().unwrap();
        chmod(d.path(), 0o755);
        let s = d.path().join("check.sh");
        std::fs::write(&s, "#!/bin/sh\nexit 0\n").unwrap();
        chmod(&s, 0o755);
        (d, s)
    }

    #[test]
    fn a_root_owned_script_in_root_owned_dirs_is_secure() {
        let (_d, s) = tree();
        assert_eq!(check(s.to_str().unwrap(), ROOT, ""), Ok(()));
        assert_eq!(check("sh", ROOT, "/usr/bin:/bin"), Ok(()));
    }

    #[test]
    fn writable_by_others_is_insecure_for_root_only() {
        let (d, s) = tree();
        let p = s.to_str().unwrap();
        chmod(&s, 0o757);
        assert!(matches!(check(p, ROOT, ""), Err(Refusal::Insecure(_))));
        // Run as nobody, nothing needs protecting.
        assert_eq!(check(p, NOBODY, ""), Ok(()));
        chmod(&s, 0o755);
        // A world-writable directory without the sticky bit...
        chmod(d.path(), 0o777);
        assert!(matches!(check(p, ROOT, ""), Err(Refusal::Insecure(_))));
        // ...is fine with it (as /tmp).
        chmod(d.path(), 0o1777);
        assert_eq!(check(p, ROOT, ""), Ok(()));
        // Group-writable with group root is fine, another group is not.
        chmod(d.path(), 0o775);
        assert_eq!(check(p, ROOT, ""), Ok(()));
        std::os::unix::fs::chown(d.path(), None, Some(1)).unwrap();
        assert!(matches!(check(p, ROOT, ""), Err(Refusal::Insecure(_))));
        std::os::unix::fs::chown(d.path(), None, Some(0)).unwrap();
        // Owned by another user.
        std::os::unix::fs::chown(&s, Some(1), None).unwrap();
        assert!(matches!(check(p, ROOT, ""), Err(Refusal::Insecure(_))));
    }

    #[test]
    fn a_link_is_checked_as_given_and_as_resolved() {
        let (d, s) = tree();
        let unsafe_dir = d.path().join("w");
        std::fs::create_dir(&unsafe_dir).unwrap();
        chmod(&unsafe_dir, 0o777);
        let link = d.path().join("link");
        std::os::unix::fs::symlink(&s, &link).unwrap();
        assert_eq!(check(link.to_str().unwrap(), ROOT, ""), Ok(()));
        let target = unsafe_dir.join("real.sh");
        std::fs::write(&target, "#!/bin/sh\n").unwrap();
        chmod(&target, 0o755);
        let link2 = d.path().join("link2");
        std::os::unix::fs::symlink(&target, &link2).unwrap();
        assert!(matches!(
            check(link2.to_str().unwrap(), ROOT, ""),
            Err(Refusal::Insecure(e)) if e.contains("/w ")
        ));
    }

    #[test]
    fn missing_and_not_executable() {
        let (d, s) = tree();
        let p = s.to_str().unwrap();
        assert!(matches!(
            check(d.path().join("none").to_str().unwrap(), ROOT, ""),
            Err(Refusal::NotFound(_))
        ));
        assert!(matches!(
            check("no-such-prog-lvsfwd", ROOT, "/usr/bin:/bin"),
            Err(Refusal::NotFound(_))
        ));
        chmod(&s, 0o744);
        assert!(matches!(
            check(p, NOBODY, ""),
            Err(Refusal::NotExecutable(_))
        ));
        assert_eq!(check(p, ROOT, ""), Ok(()));
        chmod(&s, 0o644);
        assert!(matches!(check(p, ROOT, ""), Err(Refusal::NotExecutable(_))));
    }

    #[test]
    fn security_disables_what_is_only_logged_without_it() {
        let (_d, s) = tree();
        let p = s.to_str().unwrap();
        chmod(&s, 0o757);
        assert!(allowed("misc script", p, ROOT, true, false));
        assert!(!allowed("misc script", p, ROOT, true, true));
        chmod(&s, 0o755);
        assert!(allowed("misc script", p, ROOT, true, true));
        // No user of its own and no default script user: never root.
        assert!(!allowed("misc script", p, None, false, true));
        assert!(allowed("misc script", p, None, false, false));
    }
}
