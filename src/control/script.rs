//! Running the scripts a configuration names (MISC_CHECK, notify_up /
//! notify_down, quorum_up / quorum_down, and VRRP's notify scripts): as an
//! unprivileged user, and never through a shell.
//!
//! keepalived's rules, which this follows: scripts run as `script_user`
//! (global_defs `script_user USER [GROUP]`; here lb.toml's `[global]`
//! `script_user` / `script_group`), and when none is configured as the user
//! `keepalived_script` if that user exists, else as root. A configured user
//! or group that does not exist is an error at start-up, not a silent
//! fallback to root.
//!
//! A script is an argument vector (split by [`argv`]): the program is
//! executed directly, so nothing of a command line or of the data a script
//! is given ever reaches a shell. The child gets the user's uid and gid and
//! no supplementary groups (std drops them when root changes uid), stdin,
//! stdout and stderr on /dev/null, and `/` as working directory.
//!
//! Users and groups are looked up in /etc/passwd and /etc/group (local
//! accounts, no NSS): the daemon cannot call getpwnam without unsafe code,
//! and a script user is a local system account.

use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};

pub mod security;

/// keepalived's script user when none is configured.
pub const DEFAULT_SCRIPT_USER: &str = "keepalived_script";

/// The uid and gid scripts run with.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct RunAs {
    pub uid: u32,
    pub gid: u32,
}

/// Why a script user could not be resolved.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ScriptUserError {
    #[error("script_user `{0}`: no such user in /etc/passwd")]
    NoSuchUser(String),
    #[error("script_group `{0}`: no such group in /etc/group")]
    NoSuchGroup(String),
    #[error("reading {0}: {1}")]
    Read(&'static str, String),
}

/// The `(id, primary gid)` of `name` in passwd-format `db`.
fn passwd_entry(db: &str, name: &str) -> Option<(u32, u32)> {
    db.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        if f.len() >= 4 && f[0] == name {
            Some((f[2].parse().ok()?, f[3].parse().ok()?))
        } else {
            None
        }
    })
}

/// The gid of `name` in group-format `db`.
fn group_entry(db: &str, name: &str) -> Option<u32> {
    db.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        if f.len() >= 3 && f[0] == name {
            f[2].parse().ok()
        } else {
            None
        }
    })
}

fn numeric(s: &str) -> Option<u32> {
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        s.parse().ok()
    } else {
        None
    }
}

/// Resolves `user` (a name, or a numeric uid) and `group` (a name or a
/// numeric gid; default: the user's primary group, or the uid's number for
/// a numeric user not in `passwd`) against the given databases.
pub fn resolve_in(
    passwd: &str,
    groups: &str,
    user: &str,
    group: Option<&str>,
) -> Result<RunAs, ScriptUserError> {
    let (uid, primary) = match (passwd_entry(passwd, user), numeric(user)) {
        (Some(e), _) => e,
        (None, Some(n)) => (n, n),
        (None, None) => return Err(ScriptUserError::NoSuchUser(user.to_string())),
    };
    let gid = match group {
        None => primary,
        Some(g) => group_entry(groups, g)
            .or_else(|| numeric(g))
            .ok_or_else(|| ScriptUserError::NoSuchGroup(g.to_string()))?,
    };
    Ok(RunAs { uid, gid })
}

fn read(path: &'static str) -> Result<String, ScriptUserError> {
    std::fs::read_to_string(path).map_err(|e| ScriptUserError::Read(path, e.to_string()))
}

/// Whom scripts run as under `script_user` / `script_group` (see the
/// module docs); `None` = root (no script user configured and no
/// `keepalived_script` account).
pub fn run_as(user: Option<&str>, group: Option<&str>) -> Result<Option<RunAs>, ScriptUserError> {
    let passwd = read("/etc/passwd")?;
    let groups = read("/etc/group").unwrap_or_default();
    choose(&passwd, &groups, user, group)
}

/// [`run_as`] over given databases.
pub fn choose(
    passwd: &str,
    groups: &str,
    user: Option<&str>,
    group: Option<&str>,
) -> Result<Option<RunAs>, ScriptUserError> {
    match user {
        Some(u) => resolve_in(passwd, groups, u, group).map(Some),
        None => match passwd_entry(passwd, DEFAULT_SCRIPT_USER) {
            Some(_) => resolve_in(passwd, groups, DEFAULT_SCRIPT_USER, group).map(Some),
            None => Ok(None),
        },
    }
}

/// The command that runs `argv` as `run_as` (see the module docs); `None`
/// for an empty argv.
pub fn command(argv: &[String], run_as: Option<RunAs>) -> Option<Command> {
    let (prog, args) = argv.split_first()?;
    let mut c = Command::new(prog);
    c.args(args)
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if let Some(r) = run_as {
        c.uid(r.uid).gid(r.gid);
    }
    Some(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/bash\n\
        nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n\
        keepalived_script:x:998:997::/nonexistent:/usr/sbin/nologin\n\
        broken:x:notanumber:1::/:/bin/false\n";
    const GROUP: &str = "root:x:0:\nnogroup:x:65534:\nscripts:x:4242:nobody\n";

    #[test]
    fn users_and_groups_by_name_or_number() {
        let r = |u, g| resolve_in(PASSWD, GROUP, u, g);
        assert_eq!(
            r("nobody", None),
            Ok(RunAs {
                uid: 65534,
                gid: 65534
            })
        );
        assert_eq!(
            r("nobody", Some("scripts")),
            Ok(RunAs {
                uid: 65534,
                gid: 4242
            })
        );
        assert_eq!(r("1234", Some("77")), Ok(RunAs { uid: 1234, gid: 77 }));
        assert_eq!(
            r("1234", None),
            Ok(RunAs {
                uid: 1234,
                gid: 1234
            })
        );
        assert_eq!(
            r("nosuch", None),
            Err(ScriptUserError::NoSuchUser("nosuch".into()))
        );
        assert_eq!(
            r("nobody", Some("nosuch")),
            Err(ScriptUserError::NoSuchGroup("nosuch".into()))
        );
        // A malformed line is not a match (no uid 0 by accident).
        assert_eq!(
            r("broken", None),
            Err(ScriptUserError::NoSuchUser("broken".into()))
        );
        // A name prefix is not the name.
        assert!(r("nob", None).is_err());
    }

    #[test]
    fn default_is_keepalived_script_then_root() {
        assert_eq!(
            choose(PASSWD, GROUP, None, None),
            Ok(Some(RunAs { uid: 998, gid: 997 }))
        );
        let no_ks = "root:x:0:0:root:/root:/bin/bash\n";
        assert_eq!(choose(no_ks, GROUP, None, None), Ok(None));
        assert_eq!(
            choose(no_ks, GROUP, Some("nobody"), None),
            Err(ScriptUserError::NoSuchUser("nobody".into()))
        );
    }

    /// The child really runs as the user, without a shell and without
    /// root's groups. Needs root to change uid; as another user the spawn
    /// fails with EPERM, which this test reports.
    #[test]
    fn scripts_run_as_the_user_without_supplementary_groups() {
        // Read what id prints for each flag separately.
        let show = |flag: &str| {
            let out = command(
                &["/usr/bin/id".to_string(), flag.to_string()],
                Some(RunAs {
                    uid: 65534,
                    gid: 65533,
                }),
            )
            .unwrap()
            .stdout(Stdio::piped())
            .output()
            .expect("runs /usr/bin/id as uid 65534 (the tests run as root)");
            String::from_utf8_lossy(&out.stdout).trim().to_string()
        };
        assert_eq!(show("-u"), "65534");
        assert_eq!(show("-g"), "65533");
        assert_eq!(show("-G"), "65533", "supplementary groups dropped");
        // Shell metacharacters are plain arguments.
        let echo = command(
            &[
                "/bin/echo".to_string(),
                "$(id -u); touch /tmp/lvsfwd-never".to_string(),
            ],
            None,
        )
        .unwrap()
        .stdout(Stdio::piped())
        .output()
        .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&echo.stdout),
            "$(id -u); touch /tmp/lvsfwd-never\n"
        );
        assert!(command(&[], None).is_none());
    }
}
