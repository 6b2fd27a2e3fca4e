//! Fragments through lvsfwd, end to end (needs root): a client sends UDP
//! datagrams of 3000 bytes (fragmented by its stack at the 1500-byte MTU)
//! to a VIP; lvsfwd reassembles them, schedules the datagram with its
//! ports and forwards it refragmented; the real server's echo, 3000 bytes
//! as well, comes back whole (DR: straight to the client; NAT: through
//! lvsfwd, which reassembles the reply, rewrites it and refragments it).
//! tshark on a real server's NIC confirms that what lvsfwd sends there is
//! fragments, from the director's MAC, to the VIP (DR) or the real server
//! (NAT). IPv4 and IPv6.
#![forbid(unsafe_code)]

mod rig;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;

use rig::daemon::Lvsfwd;
use rig::plan::Svc;
use rig::{Fam, IFACE, Mode, Rig, python, run, script, wait_until};

const PORT: u16 = 9055;
const SIZE: &str = "3000";
const COUNT: usize = 8;

fn echo_through(mode: Mode, fam: Fam) {
    let rig = Rig::builder(mode).real_servers(2).services(false).build();
    for h in rig.real_servers() {
        let name = h.name();
        rig.spawn_ready(
            h,
            "echo",
            &[
                python(),
                &script("frag_echo.py"),
                "serve",
                "--name",
                &name,
                "--port",
                &PORT.to_string(),
            ],
            Duration::from_secs(10),
        );
    }
    let config = rig.lb_toml(&[Svc::udp(fam, PORT)]);
    let mut lb = Lvsfwd::start(&rig, &config);
    let what = format!("{} {fam:?}", mode.lb_kind());

    let rs = &rig.real_servers()[0];
    let pcap = rig.dir().join("rs.pcap").to_string_lossy().into_owned();
    let tpid = rig.spawn(
        rs,
        "tshark",
        &["tshark", "-i", IFACE, "-a", "duration:20", "-w", &pcap],
    );
    let up = wait_until(Duration::from_secs(10), || {
        rig.proc_logs(tpid).1.contains("Capturing on")
    });
    assert!(up, "tshark did not start: {}", rig.proc_logs(tpid).1);

    let target = SocketAddr::new(rig.vip(fam), PORT).to_string();
    let out = rig.client().exec_timeout(
        &[
            python(),
            &script("frag_echo.py"),
            "ask",
            "--target",
            &target,
            "--size",
            SIZE,
            "--count",
            &COUNT.to_string(),
        ],
        Duration::from_secs(60),
    );
    lb.assert_running();
    if !out.ok() {
        rig.kill(tpid);
        std::thread::sleep(Duration::from_secs(1));
        let seen = run(&["tshark", "-r", &pcap], Duration::from_secs(30));
        panic!(
            "{what}: not every 3000-byte datagram came back whole:\n{}\n{}\non {}:\n{}",
            out.stdout,
            out.stderr,
            rs.name(),
            seen.stdout,
        );
    }
    let servers: BTreeSet<&str> = out
        .stdout
        .lines()
        .filter_map(|l| l.strip_prefix("ok "))
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(
        servers.len(),
        2,
        "{what}: round robin over both: {}",
        out.stdout
    );
    let client_seen = rig.seen_client_ip(fam).to_string();
    assert!(
        out.stdout
            .lines()
            .filter(|l| l.starts_with("ok "))
            .all(|l| l.ends_with(&client_seen)),
        "{what}: the real servers saw the client's address: {}",
        out.stdout
    );

    // What lvsfwd sent to the real server: fragments.
    assert!(
        wait_until(Duration::from_secs(30), || !rig
            .proc_logs(tpid)
            .1
            .is_empty()
            && std::fs::metadata(&pcap).is_ok()
            && rig.pids_named(rs, "tshark").iter().all(|&p| !alive(p))),
        "tshark did not finish"
    );
    let (filter, dst_field) = match fam {
        Fam::V4 => ("ip.flags.mf == 1 || ip.frag_offset > 0", "ip.dst"),
        Fam::V6 => ("ipv6.fraghdr", "ipv6.dst"),
    };
    let decoded = run(
        &[
            "tshark", "-r", &pcap, "-Y", filter, "-T", "fields", "-e", "eth.src", "-e", dst_field,
        ],
        Duration::from_secs(30),
    )
    .expect_ok();
    let dmac = rig.director().mac.to_lowercase();
    let want_dst = match mode {
        Mode::Nat => rig.rip(1, fam).to_string(),
        _ => rig.vip(fam).to_string(),
    };
    let from_lb: Vec<&str> = decoded
        .lines()
        .filter(|l| l.to_lowercase().starts_with(&dmac))
        .collect();
    assert!(
        from_lb.len() >= 2 * (COUNT / 2),
        "{what}: fragments from the director to the real server: {decoded}"
    );
    assert!(
        from_lb.iter().all(|l| l.ends_with(&want_dst)),
        "{what}: fragments to {want_dst}: {decoded}"
    );
    rig::e2e::clean_stop(&rig, &mut lb);
    // lvsfwd's own count: every request datagram (and with NAT every
    // reply) reassembled.
    let err = lb.stderr();
    let stop = err
        .lines()
        .find(|l| l.starts_with("lvsfwd: stopped"))
        .unwrap_or_else(|| panic!("no stop line:\n{err}"));
    let reassembled: usize = stop
        .split("frag_reassembled ")
        .nth(1)
        .and_then(|r| r.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no frag_reassembled in {stop}"));
    let want = if mode == Mode::Nat { 2 * COUNT } else { COUNT };
    assert_eq!(reassembled, want, "{what}: {stop}");
}

fn alive(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .unwrap_or_default()
            .contains(") Z ")
}

#[test]
fn dr_reassembles_ipv4_fragments_to_the_vip() {
    echo_through(Mode::Dr, Fam::V4);
}

#[test]
fn nat_reassembles_both_ways_ipv4() {
    echo_through(Mode::Nat, Fam::V4);
}

#[test]
fn dr_reassembles_ipv6_fragments_to_the_vip() {
    echo_through(Mode::Dr, Fam::V6);
}

#[test]
fn nat_reassembles_both_ways_ipv6() {
    echo_through(Mode::Nat, Fam::V6);
}
