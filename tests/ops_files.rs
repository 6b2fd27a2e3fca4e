//! The operations files shipped in configs/: the systemd unit passes
//! `systemd-analyze verify` (systemd's own checker, from scripts/test.sh's
//! package list) and says what interface.md §6 promises.
#![forbid(unsafe_code)]

use std::process::Command;

const UNIT: &str = include_str!("../configs/lvsfwd.service");

#[test]
fn the_unit_is_type_notify_reloads_with_sighup_and_restarts_on_failure() {
    let keys: Vec<&str> = UNIT.lines().filter(|l| !l.starts_with('#')).collect();
    for want in [
        "Type=notify",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "Restart=on-failure",
        "RuntimeDirectory=lvsfwd",
    ] {
        assert!(keys.contains(&want), "the unit lacks {want}");
    }
    assert!(
        keys.iter().any(|l| l.starts_with("CapabilityBoundingSet=")),
        "the unit grants every capability"
    );
    assert!(keys.iter().any(|l| l.starts_with("WatchdogSec=")));
}

#[test]
fn systemd_analyze_verify_is_clean() {
    // The unit names the installed binary; verify it against the built one
    // (systemd-analyze checks that ExecStart exists and is executable).
    let dir = tempfile::tempdir().unwrap();
    let unit = dir.path().join("lvsfwd.service");
    std::fs::write(
        &unit,
        UNIT.replace("/usr/local/bin/lvsfwd", env!("CARGO_BIN_EXE_lvsfwd")),
    )
    .unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&unit)
        .output()
        .expect("systemd-analyze (Debian's systemd package, in scripts/test.sh's list)");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stderr.trim().is_empty(),
        "systemd-analyze verify: {}\n{stderr}",
        out.status
    );
}

#[test]
fn the_unit_flushes_the_announce_table_of_both_families_when_it_stops() {
    let keys: Vec<&str> = UNIT.lines().filter(|l| !l.starts_with('#')).collect();
    for fam in ["-4", "-6"] {
        let want = format!("ExecStopPost=-/sbin/ip {fam} route flush table 100 proto 201");
        assert!(keys.contains(&want.as_str()), "the unit lacks {want}");
    }
}
