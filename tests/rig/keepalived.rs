//! The real keepalived as a VRRP peer: `keepalived --vrrp` in the foreground
//! in a rig host's namespace (the rig's `peer` director), with its
//! configuration and pid files in the rig's directory, named by a tag so
//! that one test can start several in turn.
#![forbid(unsafe_code)]

use std::path::PathBuf;

use super::{Host, Rig};

/// The pid file of the VRRP child of the keepalived started as `tag`.
pub fn vrrp_pid_file(rig: &Rig, tag: &str) -> PathBuf {
    rig.dir().join(format!("keepalived-vrrp-{tag}.pid"))
}

/// Writes `text` as `keepalived-{tag}.conf` and starts keepalived on it
/// (VRRP only, foreground, logging to the console, never respawning) in
/// `host`'s namespace; returns the pid of its parent process (the rig
/// kills it when it is dropped).
pub fn start_on(rig: &Rig, host: &Host, tag: &str, text: &str) -> u32 {
    let dir = rig.dir();
    let conf = dir.join(format!("keepalived-{tag}.conf"));
    std::fs::write(&conf, text).expect("write keepalived.conf");
    let pid = dir.join(format!("keepalived-{tag}.pid"));
    let (c, p, v) = (
        conf.to_string_lossy().into_owned(),
        pid.to_string_lossy().into_owned(),
        vrrp_pid_file(rig, tag).to_string_lossy().into_owned(),
    );
    rig.spawn(
        host,
        "keepalived",
        &[
            "keepalived",
            "--vrrp",
            "--dont-fork",
            "--log-console",
            "--no-syslog",
            "--dont-respawn",
            "-f",
            &c,
            "-p",
            &p,
            "-r",
            &v,
        ],
    )
}

/// [`start_on`] the rig's peer director.
pub fn start(rig: &Rig, tag: &str, text: &str) -> u32 {
    start_on(rig, rig.peer(), tag, text)
}
