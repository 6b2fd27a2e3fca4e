//! DPVS's ipvsadm extension for FULLNAT local addresses through lvsadm, on a
//! running director: `-P` adds an address to a service's pool, `-Q` removes
//! one, `-G` lists the pools in DPVS's columns; the real servers see the
//! addresses the pool holds at the time. An address that is not on a NIC
//! lvsfwd serves (or not on the `-F` NIC) is refused naming the argument,
//! and the pool stays as it was.
#![forbid(unsafe_code)]

mod rig;

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use rig::daemon::{Lvsfwd, lvsadm, lvsadm_ok as ok};
use rig::plan::Svc;
use rig::{Fam, HTTP_PORT, IFACE, Mode, Rig, wait_until};

/// A second local address on the director's NIC.
const LIP2: &str = "198.18.0.8";
/// An address on a NIC lvsfwd does not serve.
const OFF_NIC: &str = "198.18.7.9";
/// `[announce] table`.
const TABLE: &str = "100";

#[test]
fn local_addresses_change_on_a_running_director() {
    let rig = Rig::builder(Mode::FullNat).real_servers(2).build();
    let d = rig.director();
    d.add_addr(IFACE, &format!("{LIP2}/24"));
    d.ip(&[
        "link", "add", "lfdum0", "type", "veth", "peer", "name", "lfdum1",
    ]);
    d.ip(&["link", "set", "lfdum1", "up"]);
    d.ip(&["link", "set", "lfdum0", "up"]);
    d.add_addr("lfdum0", &format!("{OFF_NIC}/24"));

    let svc = Svc::tcp(Fam::V4, HTTP_PORT);
    let mut lb = Lvsfwd::start(&rig, &rig.lb_toml(&[svc]));
    let sock = rig.dir().join("admin.sock").to_string_lossy().into_owned();
    let vs = svc.vaddr().to_string();
    let lip = rig.lip(Fam::V4).to_string();
    let seen = |want: &str| {
        let t = rig.http(rig.client(), svc.vaddr(), 10);
        t.assert_all_ok("HTTP through FULLNAT");
        t.assert_client_seen(want.parse::<IpAddr>().unwrap(), "FULLNAT source");
    };
    seen(&lip);

    // Swap the pool's address for another on the same NIC.
    ok(&sock, &["-P", "-t", &vs, "-z", LIP2]);
    ok(&sock, &["--del-laddr", "-t", &vs, "--laddr", &lip]);
    seen(LIP2);
    let listing = ok(&sock, &["-G", "-t", &vs]);
    let lines: Vec<&str> = listing.lines().collect();
    assert_eq!(
        lines[0].split_whitespace().collect::<Vec<_>>(),
        ["VIP:VPORT", "TOTAL", "SNAT_IP", "CONFLICTS", "CONNS"],
        "{listing}"
    );
    assert_eq!(
        lines[1].split_whitespace().collect::<Vec<_>>(),
        [vs.as_str(), "1"],
        "{listing}"
    );
    let row: Vec<&str> = lines[2].split_whitespace().collect();
    assert_eq!(row[0], LIP2, "{listing}");
    // Port conflicts are counted (a random port among 64512 is seldom
    // held: no exact figure here; the unit tests provoke them).
    let _conflicts: u64 = row[1].parse().expect("CONFLICTS is a count");
    let conns: u32 = row[2].parse().unwrap();
    assert!(
        conns >= 1,
        "the connections just made (TIME_WAIT) use {LIP2}: {listing}"
    );

    // Refused with the argument at fault; nothing changes.
    let refused = |args: &[&str], want: &[&str]| {
        let (code, _, err) = lvsadm(&sock, args);
        assert_eq!(code, 1, "{args:?}: {err}");
        for w in want {
            assert!(err.contains(w), "{args:?}: {err}");
        }
    };
    refused(
        &["-P", "-t", &vs, "-z", OFF_NIC],
        &[
            &format!("-z {OFF_NIC}"),
            "not an address of a NIC lvsfwd serves",
            IFACE,
        ],
    );
    refused(
        &["-P", "-t", &vs, "-z", "198.18.0.77"],
        &["-z 198.18.0.77", "not an address of a NIC lvsfwd serves"],
    );
    refused(
        &["-P", "-t", &vs, "-z", &lip, "-F", "lfdum0"],
        &[&format!("-F lfdum0: local address {lip} is on {IFACE}")],
    );
    refused(&["-Q", "-t", &vs, "-z", &lip], &["No such Local address"]);
    refused(
        &["-Q", "-t", &vs, "-z", LIP2],
        &["the last one of a service with FULLNAT real servers"],
    );
    let after = ok(&sock, &["-G"]);
    assert!(
        after.contains(LIP2) && !after.contains(OFF_NIC) && !after.contains(&lip),
        "{after}"
    );
    seen(LIP2);

    // Both in the pool: new connections take either.
    ok(&sock, &["-P", "-t", &vs, "-z", &lip, "-F", IFACE]);
    let t = rig.http(
        rig.client(),
        SocketAddr::new(svc.vaddr().ip(), HTTP_PORT),
        40,
    );
    t.assert_all_ok("HTTP over a pool of two");
    let want: std::collections::BTreeSet<String> = [lip.clone(), LIP2.to_string()].into();
    assert_eq!(t.clients_seen(), want, "both local addresses in use");
    assert!(lb.terminate().success(), "{}", lb.stderr());
}

/// With `[announce]`, the FULLNAT local addresses lvsfwd announces (host
/// routes in the announce table, for BIRD) are those of the running pools:
/// one added with `lvsadm -P` is announced, one removed with `-Q` (lb.toml's
/// included) is withdrawn, and the VIP stays announced throughout.
#[test]
fn local_addresses_added_and_removed_by_lvsadm_are_announced_and_withdrawn() {
    let rig = Rig::builder(Mode::FullNat).real_servers(1).build();
    let d = rig.director();
    d.add_addr(IFACE, &format!("{LIP2}/24"));
    let svc = Svc::tcp(Fam::V4, HTTP_PORT);
    let toml = format!("{}\n[announce]\ntable = {TABLE}\n", rig.lb_toml(&[svc]));
    let mut lb = Lvsfwd::start(&rig, &toml);
    let sock = rig.dir().join("admin.sock").to_string_lossy().into_owned();
    let vs = svc.vaddr().to_string();
    let vip = svc.vaddr().ip().to_string();
    let lip = rig.lip(Fam::V4).to_string();
    // The table does not exist while it holds no route: nothing then.
    let routes = || {
        d.exec(&["ip", "route", "show", "table", TABLE])
            .stdout
            .lines()
            .filter_map(|l| {
                let mut w = l.split_whitespace();
                (w.next() == Some("blackhole")).then(|| w.next().unwrap_or("").to_string())
            })
            .collect::<std::collections::BTreeSet<String>>()
    };
    let expect = |want: &[&str], what: &str| {
        let want: std::collections::BTreeSet<String> = want.iter().map(|s| s.to_string()).collect();
        assert!(
            wait_until(Duration::from_secs(5), || routes() == want),
            "{what}: table {TABLE} holds {:?}, not {want:?}\n{}",
            routes(),
            lb.stderr()
        );
    };
    expect(&[&vip, &lip], "at start");

    ok(&sock, &["-P", "-t", &vs, "-z", LIP2]);
    expect(&[&vip, &lip, LIP2], "after -P");
    ok(&sock, &["-Q", "-t", &vs, "-z", &lip]);
    expect(&[&vip, LIP2], "after -Q of lb.toml's address");
    // Still served through the address that stays.
    let t = rig.http(rig.client(), svc.vaddr(), 5);
    t.assert_all_ok("HTTP through FULLNAT");
    t.assert_client_seen(LIP2.parse::<IpAddr>().unwrap(), "FULLNAT source");
    ok(&sock, &["-P", "-t", &vs, "-z", &lip]);
    ok(&sock, &["-Q", "-t", &vs, "-z", LIP2]);
    expect(&[&vip, &lip], "after -P back and -Q");
    assert!(lb.terminate().success(), "{}", lb.stderr());
    assert_eq!(routes().len(), 0, "every route goes at stop");
}

/// `-G`'s CONFLICTS counts the local ports lvsfwd tried for a new FULLNAT
/// connection that a connection to the same real server already held
/// (Alibaba LVS's `port_conflict`). With one real server, one local
/// address and a random port of 64512 for each new connection, 2500 UDP
/// flows (each from a new client port, all held for the UDP timeout)
/// expect n^2 / 2 / 64512 ~ 48 conflicts: none at all has a probability
/// of about e^-48.
#[test]
fn port_conflicts_are_counted_per_local_address() {
    let rig = Rig::builder(Mode::FullNat).real_servers(1).build();
    let svc = Svc::udp(Fam::V4, rig::UDP_PORT);
    let mut lb = Lvsfwd::start(&rig, &rig.lb_toml(&[svc]));
    let sock = rig.dir().join("admin.sock").to_string_lossy().into_owned();
    let vs = svc.vaddr().to_string();
    let n = 2500;
    let t = rig.udp(rig.client(), svc.vaddr(), n);
    t.assert_all_ok("UDP through FULLNAT");
    let listing = ok(&sock, &["-G", "-u", &vs]);
    let row: Vec<&str> = listing
        .lines()
        .nth(2)
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(row[0], rig.lip(Fam::V4).to_string(), "{listing}");
    let conflicts: u64 = row[1].parse().expect("CONFLICTS is a count");
    let conns: usize = row[2].parse().expect("CONNS is a count");
    // A client port the kernel gives twice makes one flow, not two.
    assert!(conns > n * 9 / 10, "{listing}");
    assert!(
        (1..1000).contains(&conflicts),
        "about 48 conflicts expected: {listing}"
    );
    assert!(lb.terminate().success(), "{}", lb.stderr());
}
