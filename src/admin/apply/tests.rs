//! IPVS's answers to table changes, with ipvsadm's texts.
use super::*;
use crate::admin::cmd::parse_args;
use std::time::Duration;

fn run(state: &AdminState, line: &str) -> Result<AdminState, ApplyError> {
    let argv: Vec<String> = line.split_whitespace().map(String::from).collect();
    let cmd = parse_args(&argv).unwrap_or_else(|e| panic!("{line}: {e}"));
    apply(state, &cmd)
}

fn build(lines: &[&str]) -> AdminState {
    let mut s = AdminState::default();
    for l in lines {
        s = run(&s, l).unwrap_or_else(|e| panic!("{l}: {e}"));
    }
    s
}

const VS: &str = "-t 198.18.0.250:80";

#[test]
fn add_delete_and_their_errors() {
    let s = build(&["-A -t 198.18.0.250:80 -s rr"]);
    assert_eq!(s.services.len(), 1);
    let before = s.clone();
    assert_eq!(
        run(&s, "-A -t 198.18.0.250:80 -s wrr")
            .unwrap_err()
            .to_string(),
        "Service already exists"
    );
    assert_eq!(s, before, "a refused change leaves the state alone");
    assert_eq!(
        run(&s, "-D -t 198.18.0.250:81").unwrap_err().to_string(),
        "No such service"
    );
    assert_eq!(
        run(&s, "-E -u 198.18.0.250:80").unwrap_err().to_string(),
        "No such service"
    );
    assert_eq!(
        run(&s, "-Z -t 198.18.0.250:81").unwrap_err().to_string(),
        "No such service"
    );
    assert!(run(&s, "-Z").is_ok());
    let s = run(&s, "-D -t 198.18.0.250:80").unwrap();
    assert!(s.services.is_empty());
}

#[test]
fn dest_errors_use_ipvsadms_texts() {
    let s = build(&[
        "-A -t 198.18.0.250:80",
        "-a -t 198.18.0.250:80 -r 198.18.0.11",
    ]);
    let e = |l: &str| run(&s, l).unwrap_err().to_string();
    assert_eq!(
        e("-a -t 198.18.0.250:81 -r 198.18.0.11"),
        "Service not defined"
    );
    assert_eq!(
        e("-e -t 198.18.0.250:81 -r 198.18.0.11"),
        "Service not defined"
    );
    assert_eq!(
        e("-d -t 198.18.0.250:81 -r 198.18.0.11"),
        "Service not defined"
    );
    assert_eq!(
        e("-a -t 198.18.0.250:80 -r 198.18.0.11 -w 3"),
        "Destination already exists"
    );
    assert_eq!(
        e("-e -t 198.18.0.250:80 -r 198.18.0.12"),
        "No such destination"
    );
    assert_eq!(
        e("-d -t 198.18.0.250:80 -r 198.18.0.11:81"),
        "No such destination"
    );
    assert_eq!(
        e("-a -t 198.18.0.250:80 -r 198.18.0.12 -x 5 -y 6"),
        "Numerical result out of range"
    );
    assert_eq!(
        e("-a -t 198.18.0.250:80 -r 198.18.0.12 -y 1"),
        "Numerical result out of range",
        "l_threshold above an unset u_threshold"
    );
    let einval = "Invalid operation.  Possibly wrong module version, address not unicast, ...";
    assert_eq!(e("-a -t 198.18.0.250:80 -r 224.0.0.5"), einval);
    assert_eq!(e("-a -t 198.18.0.250:80 -r 255.255.255.255"), einval);
    assert_eq!(e("-a -t 198.18.0.250:80 -r 0.0.0.0"), einval);
    assert_eq!(
        e("-a -t 198.18.0.250:80 -r 198.18.0.12:8080 --fullnat"),
        "FULLNAT needs the service's local_address (set it in lb.toml)"
    );
}

#[test]
fn fullnat_dests_need_a_pool_of_their_family() {
    let mut s = build(&["-A -t 198.18.0.250:80"]);
    s.services[0].local_addrs = vec!["198.18.9.1".parse().unwrap()];
    let s = run(&s, "-a -t 198.18.0.250:80 -r 198.18.0.11:8080 --fullnat").unwrap();
    assert_eq!(s.services[0].dests[0].fwd, FwdMethod::FullNat);
    let mut v6 = build(&["-A -t [2001:2::1]:80"]);
    v6.services[0].local_addrs = vec!["198.18.9.1".parse().unwrap()];
    assert_eq!(
        run(&v6, "-a -t [2001:2::1]:80 -r [2001:2::11]:80 --fullnat").unwrap_err(),
        ApplyError::FullNatFamily
    );
}

#[test]
fn tunnels_cross_families_other_methods_do_not() {
    // IPVS takes a real server of the other family through a tunnel only
    // (ip_vs_check_dest since 3.18); lvsfwd builds the mixed-family outer
    // header, so lvsadm takes them too.
    let s = build(&[
        "-A -t 198.18.0.250:80",
        "-a -t 198.18.0.250:80 -r 198.18.0.11 -i",
        "-A -t [2001:2::1]:80",
        "-a -t [2001:2::1]:80 -r [2001:2::11]:80 -i",
    ]);
    let s = run(&s, "-a -t 198.18.0.250:80 -r [2001:2::12]:80 -i").unwrap();
    let s = run(&s, "-a -t [2001:2::1]:80 -r 198.18.0.12 -i --tun-type ipip").unwrap();
    assert_eq!(s.services[0].dests.len(), 2);
    assert_eq!(
        s.services[0].dests[1].addr,
        "2001:2::12".parse::<std::net::IpAddr>().unwrap()
    );
    assert_eq!(
        s.services[1].dests[1].addr,
        "198.18.0.12".parse::<std::net::IpAddr>().unwrap()
    );
    // Without a tunnel it stays IPVS's EINVAL (ipvsadm refuses it first),
    // and nothing changes.
    let mut to_v6 = s.services[0].dests[0].clone();
    to_v6.addr = "2001:2::13".parse().unwrap();
    to_v6.fwd = FwdMethod::Route;
    let add = AdminCommand::AddDest {
        svc: s.services[0].key,
        dest: to_v6.clone(),
    };
    assert_eq!(apply(&s, &add).unwrap_err(), ApplyError::Invalid);
    // Editing the tunnel into DR across families is refused the same way.
    let mut edit = s.services[0].dests[1].clone();
    edit.fwd = FwdMethod::Route;
    let e = AdminCommand::EditDest {
        svc: s.services[0].key,
        dest: edit,
    };
    assert_eq!(apply(&s, &e).unwrap_err(), ApplyError::Invalid);
    assert_eq!(s.services[0].dests.len(), 2);
    assert_eq!(s.services[0].dests[1].fwd, FwdMethod::Tunnel);
}

#[test]
fn edit_service_resets_what_is_not_given_and_keeps_dests() {
    let s = build(&[
        "-A -t 198.18.0.250:80 -s sh -b sh-port -p 60 -M 255.255.255.0",
        "-a -t 198.18.0.250:80 -r 198.18.0.11 -w 3",
    ]);
    let mut with_pool = s.clone();
    with_pool.services[0].local_addrs = vec!["198.18.9.1".parse().unwrap()];
    let e = run(&with_pool, "-E -t 198.18.0.250:80").unwrap();
    let svc = &e.services[0];
    assert_eq!(svc.sched, crate::sched::SchedKind::Wlc);
    assert_eq!(svc.sched_flags, Default::default());
    assert_eq!(svc.persistence, None);
    assert_eq!(svc.persistence_prefix, 32);
    assert_eq!(svc.dests, s.services[0].dests, "real servers are kept");
    assert_eq!(svc.local_addrs, with_pool.services[0].local_addrs);
    let e = run(&s, "-E -t 198.18.0.250:80 -s rr -p").unwrap();
    assert_eq!(e.services[0].persistence, Some(Duration::from_secs(360)));
}

#[test]
fn edit_dest_resets_to_defaults_and_keeps_the_mac() {
    let mut s = build(&[
        "-A -t 198.18.0.250:80",
        "-a -t 198.18.0.250:80 -r 198.18.0.11:8080 -m -w 5 -x 10 -y 2",
    ]);
    s.services[0].dests[0].mac = Some([2, 0, 0, 0, 0, 1]);
    let e = run(&s, "-e -t 198.18.0.250:80 -r 198.18.0.11:8080 -m").unwrap();
    let d = &e.services[0].dests[0];
    assert_eq!((d.weight, d.u_threshold, d.l_threshold), (1, 0, 0));
    assert_eq!(d.mac, Some([2, 0, 0, 0, 0, 1]));
    // -e without -m is DR, which forces the port: a different dest.
    assert_eq!(
        run(&s, "-e -t 198.18.0.250:80 -r 198.18.0.11:8080").unwrap_err(),
        ApplyError::NoSuchDest
    );
}

#[test]
fn dests_append_in_command_order_and_delete() {
    let s = build(&[
        "-A -t 198.18.0.250:80",
        "-a -t 198.18.0.250:80 -r 198.18.0.12",
        "-a -t 198.18.0.250:80 -r 198.18.0.11",
        "-a -t 198.18.0.250:80 -r 198.18.0.13",
    ]);
    let order: Vec<String> = s.services[0]
        .dests
        .iter()
        .map(|d| d.addr.to_string())
        .collect();
    assert_eq!(order, ["198.18.0.12", "198.18.0.11", "198.18.0.13"]);
    let s = run(&s, "-d -t 198.18.0.250:80 -r 198.18.0.11").unwrap();
    assert_eq!(s.services[0].dests.len(), 2);
    let s = run(&s, "-C").unwrap();
    assert!(s.services.is_empty());
    let _ = VS;
}

#[test]
fn set_changes_only_nonzero_values() {
    let s = build(&["--set 100 0 30"]);
    assert_eq!(s.timeouts.tcp, Duration::from_secs(100));
    assert_eq!(s.timeouts.tcp_fin, Duration::from_secs(120));
    assert_eq!(s.timeouts.udp, Duration::from_secs(30));
}
