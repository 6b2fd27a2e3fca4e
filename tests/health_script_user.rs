//! MISC_CHECK `user USER [GROUP]` (keepalived's check_misc.c): the health
//! checker runs the script as that account, and a checker without one as
//! the global script user. Real processes; the script writes the uid and
//! gid it runs with (the tests run as root, so a wrong switch shows).
#![forbid(unsafe_code)]

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use lvsfwd::config::parse_str;
use lvsfwd::control::health::Health;
use lvsfwd::control::script::RunAs;

/// A misc_check whose script appends `uid:gid` to `out`, with `extra`
/// keys.
fn misc(out: &Path, extra: &str) -> String {
    format!(
        "  [[virtual_server.real_server.misc_check]]\n  misc_path = \"/bin/sh -c 'echo $(id -u):$(id -g) >> {}'\"\n{extra}",
        out.display()
    )
}

fn first_line(p: &Path) -> Option<String> {
    let t = std::fs::read_to_string(p).ok()?;
    t.lines().next().map(str::to_string)
}

#[test]
fn misc_check_runs_as_its_own_user_and_group() {
    let dir = tempfile::tempdir().unwrap();
    // The unprivileged scripts must be able to write here.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let (own, own_group, global) = (
        dir.path().join("own"),
        dir.path().join("own_group"),
        dir.path().join("global"),
    );
    let text = format!(
        "[[virtual_server]]\naddress = \"198.18.0.250:80\"\nlb_kind = \"DR\"\ndelay_loop = 1\n\
         [[virtual_server.real_server]]\naddress = \"198.18.0.11:80\"\n{}{}{}",
        misc(&own, "  user = \"nobody\"\n"),
        misc(&own_group, "  user = \"nobody\"\n  group = \"daemon\"\n"),
        misc(&global, ""),
    );
    let cfg = parse_str(&text, "lb.toml").unwrap_or_else(|e| panic!("{e}\n{text}"));
    // The global script user: daemon (1:1).
    let (health, _) = Health::start(&cfg.virtual_servers, Some(RunAs { uid: 1, gid: 1 })).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while [&own, &own_group, &global]
        .iter()
        .any(|p| first_line(p).is_none())
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(50));
    }
    health.stop();
    assert_eq!(
        first_line(&own).as_deref(),
        Some("65534:65534"),
        "user nobody: its primary group"
    );
    assert_eq!(
        first_line(&own_group).as_deref(),
        Some("65534:1"),
        "user nobody, group daemon"
    );
    assert_eq!(
        first_line(&global).as_deref(),
        Some("1:1"),
        "no user: the global script user"
    );
}

#[test]
fn a_misc_check_user_that_does_not_exist_is_refused_with_its_line() {
    let text = "[[virtual_server]]\naddress = \"198.18.0.250:80\"\nlb_kind = \"DR\"\n\
                [[virtual_server.real_server]]\naddress = \"198.18.0.11:80\"\n\
                [[virtual_server.real_server.misc_check]]\nmisc_path = \"/bin/true\"\n\
                user = \"no-such-user-lvsfwd\"\n";
    let e = parse_str(text, "lb.toml").unwrap_err().to_string();
    assert!(
        e.contains(":8:") && e.contains("no-such-user-lvsfwd"),
        "{e}"
    );
    let text = text.replace("user = \"no-such-user-lvsfwd\"", "group = \"daemon\"");
    let e = parse_str(&text, "lb.toml").unwrap_err().to_string();
    assert!(e.contains(":8:") && e.contains("group without user"), "{e}");
}
