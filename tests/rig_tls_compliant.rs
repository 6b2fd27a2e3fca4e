//! SSL_GET `tls_compliant` (keepalived's check_ssl.c: without it the probe
//! shuts TLS down quietly, SSL_set_quiet_shutdown, and just closes; with it
//! the close_notify alert goes out first), on a DR rig: lvsfwd's probes
//! against a python TLS server (OpenSSL) that logs, connection by
//! connection, whether the client answered its close_notify with one.
//! Real server 1's checker is tls_compliant, real server 2's is not, a url
//! of real server 3's is.
#![forbid(unsafe_code)]

mod rig;

use std::time::Duration;

use rig::daemon::Lvsfwd;
use rig::{Fam, Mode, Rig, python, script, wait_until};

const PORT: u16 = 8443;

#[test]
fn ssl_get_sends_close_notify_only_when_tls_compliant() {
    let rig = Rig::builder(Mode::Dr).real_servers(3).build();
    let (crt, key) = rig.self_signed_cert();
    let prog = script("tls_notify.py");
    let port = PORT.to_string();
    let pids: Vec<u32> = (1..=3)
        .map(|i| {
            rig.spawn_ready(
                rig.rs(i),
                "tls_notify",
                &[
                    python(),
                    prog.as_str(),
                    &port,
                    crt.to_str().unwrap(),
                    key.to_str().unwrap(),
                ],
                Duration::from_secs(10),
            )
        })
        .collect();
    let checks = [
        "tls_compliant = true\nurl = [{ path = \"/a\" }]\n",
        "url = [{ path = \"/a\" }]\n",
        "url = [{ path = \"/a\" }, { path = \"/b\", tls_compliant = true }]\n",
    ];
    let mut toml = format!(
        "[global]\ninterface = \"{}\"\nadmin_socket = \"{}\"\n\n\
         [[virtual_server]]\naddress = \"{}:80\"\nlb_algo = \"rr\"\nlb_kind = \"DR\"\n\
         delay_loop = 1\nretry = 0\nconnect_timeout = 2\n",
        rig::IFACE,
        rig.dir().join("admin.sock").display(),
        rig.vip(Fam::V4)
    );
    for (i, c) in checks.iter().enumerate() {
        toml += &format!(
            "\n[[virtual_server.real_server]]\naddress = \"{}:80\"\n\
             [virtual_server.real_server.ssl_get]\nconnect_port = {PORT}\n{c}",
            rig.rip(i + 1, Fam::V4)
        );
    }
    let mut lb = Lvsfwd::start(&rig, &toml);
    let logs = || -> Vec<String> { pids.iter().map(|&p| rig.proc_logs(p).0).collect() };
    let count = |l: &str, what: &str| l.lines().filter(|x| x.starts_with(what)).count();
    // A few rounds of probes on every server.
    let enough = wait_until(Duration::from_secs(20), || {
        let l = logs();
        count(&l[0], "close_notify") >= 3
            && count(&l[1], "quiet") >= 3
            && count(&l[2], "quiet") >= 3
    });
    let l = logs();
    assert!(enough, "not enough probes seen:\n{l:#?}");
    // tls_compliant on the checker: every connection ends with the alert.
    assert_eq!(count(&l[0], "quiet"), 0, "{}", l[0]);
    // keepalived's default: never.
    assert_eq!(count(&l[1], "close_notify"), 0, "{}", l[1]);
    // On one url: that url's connections only, one in two.
    let (n, q) = (count(&l[2], "close_notify"), count(&l[2], "quiet"));
    assert!(n + 1 >= q && q + 1 >= n && n > 0, "{}", l[2]);
    assert!(l.iter().all(|x| !x.contains("error")), "{l:#?}");
    lb.assert_running();
    assert!(lb.terminate().success());
}
