//! SIGHUP is all or nothing: a reload whose `[announce]` cannot be applied
//! is refused before the connection sync daemon changes, which keeps its
//! running settings (threads, syncid) as `lvsadm -L --daemon` lists them.
//!
//! The `[announce]` that cannot be applied: taking over an announce table
//! starts the guard process (`lvsfwd announce-guard`, lvsfwd's own
//! executable). Here lvsfwd runs from a link to the binary that is removed
//! once it serves (as a package upgrade replaces a running binary), so the
//! guard cannot start and the `[announce]` a reload adds is refused.
#![forbid(unsafe_code)]

mod rig;

use std::time::Duration;

use rig::daemon::{Lvsfwd, binary, lvsadm_ok};
use rig::plan::Svc;
use rig::{CMD_TIMEOUT, Fam, HTTP_PORT, IFACE, Mode, Rig, run, wait_until};

/// lb.toml with an active-active sync daemon of syncid `id` (master and
/// backup both run; no VRRP needed), and `extra` at the end.
fn toml(rig: &Rig, id: u8, extra: &str) -> String {
    let base = rig.lb_toml(&[Svc::tcp(Fam::V4, HTTP_PORT)]);
    let at = base.find("\n[[virtual_server]]").expect("a virtual server");
    format!(
        "{}\n[global.lvs_sync_daemon]\ninterface = \"{IFACE}\"\nactive_active = true\nid = {id}\n{}{extra}",
        &base[..at],
        &base[at..]
    )
}

#[test]
fn a_reload_refused_for_its_announce_leaves_the_sync_daemon_as_it_ran() {
    let rig = Rig::builder(Mode::Dr).real_servers(1).build();
    // A second name for the binary, in its own directory (same file
    // system: a hard link, nothing copied).
    let exe = std::path::Path::new(binary());
    let link = exe.with_file_name(format!("lvsfwd-reload-atomic-{}", std::process::id()));
    let _ = std::fs::remove_file(&link);
    std::fs::hard_link(exe, &link).expect("link the binary");
    let first = toml(&rig, 5, "");
    let mut lb = Lvsfwd::start_program(&rig, &[link.to_str().unwrap()], &first);
    std::fs::remove_file(&link).expect("remove the link");
    let sock = rig.dir().join("admin.sock").to_string_lossy().into_owned();
    let daemons = || lvsadm_ok(&sock, &["-L", "--daemon"]);
    let runs = |id: u8| {
        let l = daemons();
        l.lines().count() == 2
            && l.lines().all(|x| x.contains(&format!("syncid={id},")))
            && l.contains("master sync daemon")
            && l.contains("backup sync daemon")
    };
    assert!(
        wait_until(Duration::from_secs(5), || runs(5)),
        "{}",
        daemons()
    );
    let count = |lb: &Lvsfwd, what: &str| lb.stderr().matches(what).count();
    let hup = |lb: &Lvsfwd, toml: &str, what: &str| {
        let before = count(lb, what);
        std::fs::write(&lb.config, toml).expect("rewrite lb.toml");
        run(&["kill", "-HUP", &lb.pid().to_string()], CMD_TIMEOUT).expect_ok();
        assert!(
            wait_until(Duration::from_secs(10), || count(lb, what) > before),
            "no `{what}` after SIGHUP:\n{}",
            lb.stderr()
        );
    };
    let started = count(&lb, "sync thread started");

    // Another syncid (valid) with an [announce] that cannot be applied:
    // refused, the sync threads untouched.
    hup(
        &lb,
        &toml(&rig, 6, "\n[announce]\ntable = 100\n"),
        "reload refused",
    );
    assert!(
        lb.stderr().contains("starting the announce guard"),
        "{}",
        lb.stderr()
    );
    assert!(
        runs(5),
        "the refused reload changed the sync daemon:\n{}",
        daemons()
    );
    assert_eq!(
        count(&lb, "sync thread started"),
        started,
        "the refused reload restarted the sync threads:\n{}",
        lb.stderr()
    );
    assert_eq!(
        rig.director()
            .exec(&["ip", "route", "show", "table", "100"])
            .stdout
            .trim(),
        "",
        "nothing announced"
    );

    // The same sync change alone is taken: syncid 6.
    hup(&lb, &toml(&rig, 6, ""), "reloaded ");
    assert!(
        wait_until(Duration::from_secs(5), || runs(6)),
        "{}",
        daemons()
    );
    lb.assert_running();
    assert!(lb.terminate().success(), "{}", lb.stderr());
}
