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

/// `enable_script_security` (keepalived's check_script_secure): a MISC_CHECK
/// that would run as root from a file others can write is disabled and never
/// runs, the same script kept safe runs; without the option both run. The
/// same rule takes an insecure vrrp_script off the instances tracking it.
#[test]
fn enable_script_security_disables_insecure_scripts() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let script = |name: &str, mode: u32| {
        let p = dir.path().join(name);
        let mark = dir.path().join(format!("{name}.ran"));
        std::fs::write(&p, format!("#!/bin/sh\necho ran >> {}\n", mark.display())).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
        (p, mark)
    };
    let (safe, safe_ran) = script("safe.sh", 0o755);
    let (open, open_ran) = script("open.sh", 0o757);
    let conf = |security: bool| {
        format!(
            "[global]\nenable_script_security = {security}\n\
             [[vrrp_instance]]\nname = \"VI_1\"\ninterface = \"lo\"\nvirtual_router_id = 51\n\
             track_script = [\"chk_safe\", \"chk_open\"]\n\
             [[vrrp_script]]\nname = \"chk_safe\"\nscript = \"{}\"\n\
             [[vrrp_script]]\nname = \"chk_open\"\nscript = \"{}\"\n\
             [[virtual_server]]\naddress = \"198.18.0.250:80\"\nlb_kind = \"DR\"\ndelay_loop = 1\n\
             [[virtual_server.real_server]]\naddress = \"198.18.0.11:80\"\n\
             [[virtual_server.real_server.misc_check]]\nmisc_path = \"{}\"\n\
             [[virtual_server.real_server.misc_check]]\nmisc_path = \"{}\"\n",
            safe.display(),
            open.display(),
            safe.display(),
            open.display()
        )
    };
    let run = |security: bool| {
        let _ = std::fs::remove_file(&safe_ran);
        let _ = std::fs::remove_file(&open_ran);
        let text = conf(security);
        let cfg = parse_str(&text, "lb.toml").unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert_eq!(cfg.global.enable_script_security, security);
        // Root (uid 0) runs them: what needs protecting.
        let root = Some(RunAs { uid: 0, gid: 0 });
        let vrrp = lvsfwd::control::vrrp_thread::VrrpSetup::new(&cfg, root).unwrap();
        let tracked: Vec<&str> = vrrp.instances[0]
            .track_script
            .iter()
            .map(|t| t.name.as_str())
            .collect();
        let scripts: Vec<&str> = vrrp.scripts.iter().map(|(s, _)| s.name.as_str()).collect();
        let vss = lvsfwd::control::health::secure_checkers(&cfg.virtual_servers, root, security);
        let misc = vss[0].real_servers[0].checks.len();
        let (health, _) = Health::start(&vss, root).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while !safe_ran.exists() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        // Two more delay_loops for the other one to show up if it runs.
        std::thread::sleep(Duration::from_millis(2500));
        health.stop();
        (
            tracked.join(","),
            scripts.join(","),
            misc,
            safe_ran.exists(),
            open_ran.exists(),
        )
    };
    assert_eq!(
        run(true),
        ("chk_safe".into(), "chk_safe".into(), 1, true, false),
        "with enable_script_security"
    );
    assert_eq!(
        run(false),
        (
            "chk_safe,chk_open".into(),
            "chk_safe,chk_open".into(),
            2,
            true,
            true
        ),
        "without it only a log line"
    );
}

/// With enable_script_security, a script without a user of its own never
/// defaults to root: with no script user to run it as, it is disabled.
#[test]
fn enable_script_security_never_defaults_to_root() {
    let text = "[[virtual_server]]\naddress = \"198.18.0.250:80\"\nlb_kind = \"DR\"\n\
                [[virtual_server.real_server]]\naddress = \"198.18.0.11:80\"\n\
                [[virtual_server.real_server.misc_check]]\nmisc_path = \"/bin/true\"\n\
                [[virtual_server.real_server.misc_check]]\nmisc_path = \"/bin/true\"\nuser = \"nobody\"\n";
    let cfg = parse_str(text, "lb.toml").unwrap();
    let kept = |security| {
        lvsfwd::control::health::secure_checkers(&cfg.virtual_servers, None, security)[0]
            .real_servers[0]
            .checks
            .len()
    };
    assert_eq!((kept(true), kept(false)), (1, 2));
}
