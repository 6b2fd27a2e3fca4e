//! HTTP_GET `fast_recovery` on a DR rig (keepalived's http epilog): without
//! it a server that failed comes back only once the failed url and then
//! every url have passed, a delay_loop apart; with it at the first
//! success. Two real servers with the same three-url checker, one with
//! fast_recovery, go down together and are repaired together; what the
//! checkers decide is read in `lvsadm -L -n`.
#![forbid(unsafe_code)]

mod rig;

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use rig::daemon::{Lvsfwd, lvsadm_ok};
use rig::{Fam, Mode, Rig, python, script, wait_until};

const PORT: u16 = 8080;

/// The real servers `lvsadm -L -n` lists.
fn listed(sock: &Path) -> Vec<SocketAddr> {
    lvsadm_ok(sock.to_str().unwrap(), &["-L", "-n"])
        .lines()
        .filter_map(|l| l.trim().strip_prefix("-> "))
        .filter_map(|l| l.split_whitespace().next()?.parse().ok())
        .collect()
}

#[test]
fn fast_recovery_brings_a_server_back_at_its_first_success() {
    let rig = Rig::builder(Mode::Dr).real_servers(2).build();
    let sock = rig.dir().join("admin.sock");
    let states: Vec<_> = (1..=2)
        .map(|i| {
            let f = rig.dir().join(format!("state-rs{i}"));
            std::fs::write(&f, "up\n").unwrap();
            f
        })
        .collect();
    let prog = script("checker_servers.py");
    let port = PORT.to_string();
    for (i, st) in states.iter().enumerate() {
        let argv = [
            python(),
            prog.as_str(),
            "http",
            "--port",
            &port,
            "--state",
            st.to_str().unwrap(),
            "--hosts",
            "rig.test",
        ];
        rig.spawn_ready(rig.rs(i + 1), "http", &argv, Duration::from_secs(10));
    }
    let url = "{ path = \"/health\", regex = \"state=up\" }";
    let mut toml = format!(
        "[global]\ninterface = \"{}\"\nadmin_socket = \"{}\"\n\n\
         [[virtual_server]]\naddress = \"{}:80\"\nlb_algo = \"rr\"\nlb_kind = \"DR\"\n\
         delay_loop = 1\nretry = 0\nconnect_timeout = 1\ndelay_before_retry = 1\n",
        rig::IFACE,
        sock.display(),
        rig.vip(Fam::V4)
    );
    for (i, fast) in [(1, true), (2, false)] {
        toml += &format!(
            "\n[[virtual_server.real_server]]\naddress = \"{}:80\"\n\
             [virtual_server.real_server.http_get]\nconnect_port = {PORT}\n\
             virtualhost = \"rig.test\"\nfast_recovery = {fast}\nurl = [{url}, {url}, {url}]\n",
            rig.rip(i, Fam::V4)
        );
    }
    let mut lb = Lvsfwd::start(&rig, &toml);
    let rs = |i| SocketAddr::new(rig.rip(i, Fam::V4), 80);
    let both = [rs(1), rs(2)];
    assert!(
        wait_until(Duration::from_secs(15), || {
            let l = listed(&sock);
            both.iter().all(|a| l.contains(a))
        }),
        "both servers in"
    );
    for s in &states {
        std::fs::write(s, "down\n").unwrap();
    }
    assert!(
        wait_until(Duration::from_secs(15), || listed(&sock).is_empty()),
        "both servers out: {:?}",
        listed(&sock)
    );
    let t = Instant::now();
    for s in &states {
        std::fs::write(s, "up\n").unwrap();
    }
    let mut back: [Option<Duration>; 2] = [None, None];
    let done = wait_until(Duration::from_secs(20), || {
        let l = listed(&sock);
        for (i, b) in back.iter_mut().enumerate() {
            if b.is_none() && l.contains(&both[i]) {
                *b = Some(t.elapsed());
            }
        }
        back.iter().all(Option::is_some)
    });
    assert!(done, "not both back: {back:?}");
    let (fast, slow) = (back[0].unwrap(), back[1].unwrap());
    eprintln!("recovery: fast_recovery {fast:?}, without {slow:?}");
    // fast_recovery: the next probe (within the 1 s down interval).
    assert!(
        fast < Duration::from_millis(2500),
        "fast_recovery took {fast:?}"
    );
    // Without: the failed url, then the three urls a delay_loop apart, so
    // at least three delay_loops after the repair whatever the phase of
    // its checker (the two checkers run out of phase: comparing the two
    // times against each other is a race).
    assert!(
        slow >= Duration::from_millis(2500),
        "without fast_recovery {slow:?}, with {fast:?}"
    );
    lb.assert_running();
    assert!(lb.terminate().success());
}
