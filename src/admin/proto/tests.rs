//! The daemon side of requests, over a fake data plane, and the wire.
use super::*;
use crate::service::Stats;
use crate::view::{LiveDest, Rates};
use std::cell::RefCell;
use std::time::Duration;

/// A data plane with fixed counters that records `-Z`.
#[derive(Default)]
struct Fake {
    live: Vec<(ServiceKey, LiveService)>,
    conns: Vec<ConnView>,
    zeroed: RefCell<Vec<Option<ServiceKey>>>,
}

impl ListingSource for Fake {
    fn conn_tab_size(&self) -> usize {
        4096
    }
    fn live(&self, key: &ServiceKey) -> Option<LiveService> {
        self.live
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, l)| l.clone())
    }
    fn connections(&self) -> Vec<ConnView> {
        self.conns.clone()
    }
    fn zero_counters(&self, svc: Option<&ServiceKey>) {
        self.zeroed.borrow_mut().push(svc.copied());
    }
    /// Two served NICs: lfa0 with 198.18.1.9 and 198.18.1.10, lfa1 with
    /// 2001:2::9.
    fn local_address_nic(&self, addr: IpAddr) -> Result<String, String> {
        match addr.to_string().as_str() {
            "198.18.1.9" | "198.18.1.10" => Ok("lfa0".into()),
            "2001:2::9" => Ok("lfa1".into()),
            _ => Err(format!("local address {addr} is not on a served NIC")),
        }
    }
}

fn req(line: &str) -> Request {
    Request::new(line.split_whitespace().map(String::from).collect(), None)
}

fn serve(state: &mut AdminState, view: &Fake, line: &str) -> Response {
    serve_one(state, &req(line), view)
}

#[test]
fn changes_list_and_errors() {
    let view = Fake::default();
    let mut st = AdminState::default();
    let r = serve(&mut st, &view, "-A -t 198.18.0.250:80 -s rr");
    assert_eq!((r.exit_code, r.changed, r.stdout.as_str()), (0, true, ""));
    let r = serve(&mut st, &view, "-a -t 198.18.0.250:80 -r 198.18.0.11 -w 2");
    assert!(r.changed);
    let r = serve(&mut st, &view, "-A -t 198.18.0.250:80 -s rr");
    assert_eq!(r.stderr, "Service already exists\n");
    assert_eq!((r.exit_code, r.changed), (1, false));
    let r = serve(&mut st, &view, "-a -t 198.18.0.250:80 -r 198.18.0.11 -w x");
    assert_eq!(
        (r.stderr.as_str(), r.exit_code),
        ("illegal weight specified\n", 1)
    );
    let r = serve(&mut st, &view, "-Ln");
    assert_eq!(
        r.stdout,
        "IP Virtual Server version 1.2.1 (size=4096)\n\
         Prot LocalAddress:Port Scheduler Flags\n  \
         -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n\
         TCP  198.18.0.250:80 rr\n  \
         -> 198.18.0.11:80               Route   2      0          0         \n"
    );
    let r = serve(&mut st, &view, "-L -t 198.18.0.250:81");
    assert_eq!((r.stderr.as_str(), r.exit_code), ("No such service\n", 1));
    let r = serve(&mut st, &view, "-L --timeout");
    assert_eq!(r.stdout, "Timeout (tcp tcpfin udp): 900 120 300\n");
    let r = serve(&mut st, &view, "--set 0 60 0");
    assert!(r.changed);
    assert_eq!(st.timeouts.tcp_fin, Duration::from_secs(60));
    let r = serve(&mut st, &view, "-S -n");
    assert_eq!(
        r.stdout,
        "-A -t 198.18.0.250:80 -s rr\n-a -t 198.18.0.250:80 -r 198.18.0.11:80 -g -w 2\n"
    );
    let r = serve(&mut st, &view, "-h");
    assert!(r.stdout.starts_with("lvsadm v") && r.stdout.contains("--fullnat"));
}

#[test]
fn live_counters_and_rates_reach_the_listing() {
    let key = ServiceKey {
        proto: crate::service::Protocol::Tcp,
        addr: "198.18.0.250".parse().unwrap(),
        port: 80,
        fwmark: 0,
    };
    let mut view = Fake::default();
    view.live.push((
        key,
        LiveService {
            stats: Stats {
                conns: 7,
                ..Default::default()
            },
            rates: Rates::default(),
            dests: vec![LiveDest {
                addr: "198.18.0.11".parse().unwrap(),
                port: 80,
                active_conns: 3,
                inact_conns: 4,
                persist_conns: 1,
                local: false,
                stats: Stats {
                    conns: 7,
                    ..Default::default()
                },
                rates: Rates {
                    cps: 5,
                    ..Default::default()
                },
            }],
            laddr_conflicts: Vec::new(),
        },
    ));
    let mut st = AdminState::default();
    serve(&mut st, &view, "-A -t 198.18.0.250:80 -s rr");
    serve(&mut st, &view, "-a -t 198.18.0.250:80 -r 198.18.0.11");
    let r = serve(&mut st, &view, "-Ln");
    assert!(
        r.stdout.contains("Route   1      3          4         \n"),
        "{}",
        r.stdout
    );
    let r = serve(&mut st, &view, "-Ln --stats");
    assert!(
        r.stdout.contains(
            "TCP  198.18.0.250:80                     7        0        0        0        0\n"
        ),
        "{}",
        r.stdout
    );
    let r = serve(&mut st, &view, "-Ln --rate");
    assert!(
        r.stdout
            .contains("  -> 198.18.0.11:80                      5        0        0"),
        "{}",
        r.stdout
    );
    let r = serve(&mut st, &view, "-L -n --persistent-conn -t 198.18.0.250:80");
    assert!(
        r.stdout.starts_with("Prot LocalAddress:Port"),
        "no version line for one service"
    );
    assert!(
        r.stdout.contains("1         1           3          4"),
        "{}",
        r.stdout
    );
    let r = serve(&mut st, &view, "-Z -t 198.18.0.250:80");
    assert_eq!((r.exit_code, r.changed), (0, false));
    let r = serve(&mut st, &view, "-Z");
    assert_eq!(r.exit_code, 0);
    assert_eq!(*view.zeroed.borrow(), vec![Some(key), None]);
}

#[test]
fn local_addresses_are_added_listed_and_removed_dpvs_style() {
    let mut view = Fake::default();
    let key = ServiceKey {
        proto: crate::service::Protocol::Tcp,
        addr: "198.18.0.250".parse().unwrap(),
        port: 80,
        fwmark: 0,
    };
    let conn = |l: &str| ConnView {
        any_proto: false,
        proto: crate::service::Protocol::Tcp,
        caddr: "198.18.5.1".parse().unwrap(),
        cport: 50937,
        vaddr: "198.18.0.250".parse().unwrap(),
        vport: 80,
        daddr: "198.18.0.11".parse().unwrap(),
        dport: 80,
        state: "ESTABLISHED",
        expires_in: Duration::from_secs(82),
        local: Some((key, l.parse().unwrap())),
    };
    view.conns = vec![conn("198.18.1.9"), conn("198.18.1.9"), conn("198.18.1.10")];
    // The workers' port conflicts, by local address (none yet for
    // 198.18.1.10).
    view.live = vec![(
        key,
        LiveService {
            laddr_conflicts: vec![(ip("198.18.1.9"), 17)],
            ..Default::default()
        },
    )];
    let mut st = AdminState::default();
    assert_eq!(
        serve(&mut st, &view, "-A -t 198.18.0.250:80 -s rr").exit_code,
        0
    );
    let r = serve(&mut st, &view, "-P -t 198.18.0.250:80 -z 198.18.1.9");
    assert_eq!((r.exit_code, r.changed), (0, true), "{}", r.stderr);
    let r = serve(
        &mut st,
        &view,
        "--add-laddr -t 198.18.0.250:80 --laddr 198.18.1.10 -F lfa0",
    );
    assert_eq!((r.exit_code, r.changed), (0, true), "{}", r.stderr);
    assert_eq!(
        st.services[0].local_addrs,
        vec![ip("198.18.1.9"), ip("198.18.1.10")]
    );
    // Refused, naming the argument at fault; nothing changes.
    for (line, err) in [
        (
            "-P -t 198.18.0.250:80 -z 198.18.7.9",
            "-z 198.18.7.9: local address 198.18.7.9 is not on a served NIC\n",
        ),
        (
            "-P -t 198.18.0.250:80 -z 198.18.1.9 -F lfa1",
            "-F lfa1: local address 198.18.1.9 is on lfa0, not on lfa1\n",
        ),
        (
            "-P -t 198.18.0.250:80 -z 198.18.1.9",
            "Local address already exists\n",
        ),
        (
            "-P -t 198.18.0.251:80 -z 198.18.1.9",
            "Service not defined\n",
        ),
        (
            "-P -t 198.18.0.250:80 -z 2001:2::9",
            "Local address must be of the same address family as the service's other local addresses\n",
        ),
        (
            "-Q -t 198.18.0.250:80 -z 198.18.1.11",
            "No such Local address\n",
        ),
        (
            "-P -t 198.18.0.250:80",
            "You need to supply the 'local-address' option for the 'add-laddr' command\n",
        ),
        (
            "-G -t 198.18.0.250:80 -z 198.18.1.9",
            "Illegal 'local-address' option with the 'get-laddr' command\n",
        ),
        (
            "-P -t 198.18.0.250:80 -z nowhere",
            "illegal local address\n",
        ),
    ] {
        let r = serve(&mut st, &view, line);
        assert_eq!(
            (r.stderr.as_str(), r.exit_code, r.changed),
            (err, 1, false),
            "{line}"
        );
    }
    let r = serve(&mut st, &view, "-G");
    assert_eq!(
        r.stdout,
        "VIP:VPORT            TOTAL    SNAT_IP              CONFLICTS  CONNS     \n\
         198.18.0.250:80      2        \n\
         \x20                             198.18.1.9           17         2         \n\
         \x20                             198.18.1.10          0          1         \n"
    );
    // The last address of a service with FULLNAT real servers stays.
    let r = serve(
        &mut st,
        &view,
        "-a -t 198.18.0.250:80 -r 198.18.0.11:80 --fullnat",
    );
    assert_eq!(r.exit_code, 0, "{}", r.stderr);
    let r = serve(&mut st, &view, "-Q -t 198.18.0.250:80 -z 198.18.1.9");
    assert_eq!((r.exit_code, r.changed), (0, true), "{}", r.stderr);
    let r = serve(
        &mut st,
        &view,
        "--del-laddr -t 198.18.0.250:80 -z 198.18.1.10",
    );
    assert_eq!(
        (r.stderr.as_str(), r.exit_code),
        (
            "Local address is the last one of a service with FULLNAT real servers\n",
            1
        )
    );
    assert_eq!(st.services[0].local_addrs, vec![ip("198.18.1.10")]);
    let r = serve(&mut st, &view, "-G -t 198.18.0.250:80");
    assert!(
        r.stdout.contains("198.18.0.250:80      1        \n"),
        "{}",
        r.stdout
    );
    let r = serve(&mut st, &view, "-G -t 198.18.0.9:80");
    assert_eq!(r.stderr, "Service not defined\n");
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[test]
fn connections_listing() {
    let mut view = Fake::default();
    view.conns.push(ConnView {
        any_proto: false,
        proto: crate::service::Protocol::Tcp,
        caddr: "198.18.5.1".parse().unwrap(),
        cport: 50937,
        vaddr: "198.18.0.250".parse().unwrap(),
        vport: 80,
        daddr: "198.18.0.11".parse().unwrap(),
        dport: 80,
        state: "FIN_WAIT",
        expires_in: Duration::from_secs(82),
        local: None,
    });
    let r = serve(&mut AdminState::default(), &view, "-L -n -c");
    assert_eq!(
        r.stdout,
        "IPVS connection entries\n\
         pro expire state       source             virtual            destination\n\
         TCP 01:22  FIN_WAIT    198.18.5.1:50937   198.18.0.250:80    198.18.0.11:80\n"
    );
}

#[test]
fn restore_applies_lines_and_continues_past_table_errors() {
    let view = Fake::default();
    let mut st = AdminState::default();
    let text = "-A -t 198.18.0.250:80 -s rr\n-A -t 198.18.0.250:80 -s rr\n\
                -a -t 198.18.0.250:80 -r 198.18.0.11\n";
    let r = serve_one(
        &mut st,
        &Request::new(vec!["-R".into()], Some(text.into())),
        &view,
    );
    assert_eq!(r.stderr, "Service already exists\n");
    assert_eq!((r.exit_code, r.changed), (1, true));
    assert_eq!(st.services[0].dests.len(), 1);
    // A bad line refuses the whole input.
    let before = st.clone();
    let r = serve_one(
        &mut st,
        &Request::new(
            vec!["-R".into()],
            Some("-C\n-a -t 198.18.0.250:80 -r 198.18.0.12 -w x\n".into()),
        ),
        &view,
    );
    assert_eq!(
        r.stderr,
        "illegal weight specified\nlvsadm: -R input line 2 refused; nothing was changed\n"
    );
    assert_eq!(st, before);
}

#[test]
fn version_mismatch_is_refused() {
    let mut r = req("-C");
    r.version = 2;
    let mut st = AdminState::default();
    let resp = serve_one(&mut st, &r, &Fake::default());
    assert_eq!(resp.exit_code, 1);
    assert!(resp.stderr.contains("version 2"));
}

#[test]
fn socket_path_precedence() {
    assert_eq!(
        socket_path_with(Some("/a"), Some("/b")),
        PathBuf::from("/a")
    );
    assert_eq!(socket_path_with(None, Some("/b")), PathBuf::from("/b"));
    assert_eq!(
        socket_path_with(None, Some("")),
        PathBuf::from(DEFAULT_ADMIN_SOCKET)
    );
    assert_eq!(
        socket_path_with(None, None),
        PathBuf::from(DEFAULT_ADMIN_SOCKET)
    );
}

#[test]
fn wire_round_trip_over_a_socket_pair() {
    let (mut a, mut b) = UnixStream::pair().unwrap();
    let request = Request::new(
        vec!["-A".into(), "-t".into(), "198.18.0.250:80".into()],
        None,
    );
    write_message(&mut a, &request).unwrap();
    let mut st = AdminState::default();
    let resp = serve_stream(&mut b, &mut st, &Fake::default()).unwrap();
    assert!(resp.changed);
    let got: Response = read_message(&mut a).unwrap();
    assert_eq!(got.exit_code, 0);
    assert_eq!(st.services.len(), 1);
    // Garbage gets an answer, not a hang.
    a.write_all(b"{not json\n").unwrap();
    let resp = serve_stream(&mut b, &mut st, &Fake::default()).unwrap();
    assert_eq!(resp.exit_code, 1);
    assert!(resp.stderr.starts_with("lvsfwd: malformed admin request"));
    let line = serde_json::to_string(&request).unwrap();
    assert_eq!(
        line,
        r#"{"version":1,"argv":["-A","-t","198.18.0.250:80"]}"#
    );
}

#[test]
fn a_dest_the_data_plane_serves_locally_lists_as_local_and_saves_as_g() {
    let key = ServiceKey {
        proto: crate::service::Protocol::Tcp,
        addr: "198.18.0.250".parse().unwrap(),
        port: 80,
        fwmark: 0,
    };
    let mut view = Fake::default();
    view.live.push((
        key,
        LiveService {
            dests: vec![LiveDest {
                addr: "127.0.0.1".parse().unwrap(),
                port: 80,
                active_conns: 0,
                inact_conns: 0,
                persist_conns: 0,
                local: true,
                stats: Stats::default(),
                rates: Rates::default(),
            }],
            ..Default::default()
        },
    ));
    let mut st = AdminState::default();
    serve(&mut st, &view, "-A -t 198.18.0.250:80 -s rr");
    serve(&mut st, &view, "-a -t 198.18.0.250:80 -r 127.0.0.1:80 -m");
    let r = serve(&mut st, &view, "-Ln");
    assert!(
        r.stdout
            .contains("  -> 127.0.0.1:80                 Local   1      0          0         \n"),
        "{}",
        r.stdout
    );
    // ipvsadm's fwd_switch: a Local dest is saved as -g.
    let r = serve(&mut st, &view, "-S -n");
    assert!(
        r.stdout
            .contains("-a -t 198.18.0.250:80 -r 127.0.0.1:80 -g -w 1\n"),
        "{}",
        r.stdout
    );
    // Not (or no longer) local in the data plane: its configured method.
    view.live.clear();
    let r = serve(&mut st, &view, "-Ln");
    assert!(
        r.stdout.contains("127.0.0.1:80                 Masq"),
        "{}",
        r.stdout
    );
}
