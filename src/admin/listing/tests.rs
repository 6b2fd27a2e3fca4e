//! Golden tests: the expected texts were produced from ipvsadm 1.31's printf
//! formats (print_title, print_service_entry, print_largenum, print_conn,
//! list_timeout) applied to the same data, trailing spaces included.
use super::*;
use crate::dest::{TunCsum, TunType};
use crate::sched::{SchedFlags, SchedInput, Scheduler};
use crate::service::{Dest, ServiceKey, Stats};

/// Listing only asks a scheduler for its kind; `from_spec` would need the
/// real schedulers, so the tests build services around this one.
#[derive(Debug)]
struct NameOnly(SchedKind);

impl Scheduler for NameOnly {
    fn kind(&self) -> SchedKind {
        self.0
    }
    fn update(&mut self, _dests: &[Dest]) {}
    fn schedule(&mut self, dests: &[Dest], _input: &SchedInput) -> Option<usize> {
        dests.iter().position(|d| d.available)
    }
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn svc(proto: Protocol, addr: &str, port: u16, sched: SchedKind) -> Service {
    let addr = ip(addr);
    Service {
        key: ServiceKey {
            proto,
            addr,
            port,
            fwmark: 0,
        },
        sched_flags: SchedFlags::default(),
        persistence: None,
        persistence_prefix: if addr.is_ipv4() { 32 } else { 128 },
        ops: false,
        local_addrs: Vec::new(),
        laddr_conflicts: Vec::new(),
        fwmark_matches: Vec::new(),
        dests: Vec::new(),
        sched: Box::new(NameOnly(sched)),
        stats: Stats::default(),
    }
}

fn dest(addr: &str, port: u16, fwd: FwdMethod, weight: i32, active: u32, inact: u32) -> Dest {
    let mut d = Dest::new(ip(addr), port, fwd, weight);
    d.active_conns = active;
    d.inact_conns = inact;
    d
}

fn table(services: Vec<Service>) -> ServiceTable {
    let mut t = ServiceTable::default();
    for s in services {
        t.add(s);
    }
    t
}

fn render(
    t: &ServiceTable,
    opts: &ListOptions,
    size: usize,
    rates: Option<&RateSnapshot>,
) -> String {
    let mut s = String::new();
    list_services(&mut s, t, opts, size, rates).unwrap();
    s
}

fn plain() -> ListOptions {
    ListOptions {
        numeric: true,
        ..ListOptions::default()
    }
}

fn stats(conns: u64, inpkts: u64, outpkts: u64, inbytes: u64, outbytes: u64) -> Stats {
    Stats {
        conns,
        inpkts,
        outpkts,
        inbytes,
        outbytes,
    }
}

/// Seed 004's listing (addresses moved into 198.18.0.0/15), dests added out
/// of order: ipvsadm sorts them by address.
#[test]
fn dr_service_with_three_dests_in_address_order() {
    let mut s = svc(Protocol::Tcp, "198.18.144.120", 10087, SchedKind::Wrr);
    s.persistence = Some(Duration::from_secs(60));
    s.dests = vec![
        dest("198.18.144.104", 10087, FwdMethod::Route, 1, 0, 0),
        dest("198.18.144.102", 10087, FwdMethod::Route, 2, 0, 4),
        dest("198.18.144.103", 10087, FwdMethod::Route, 1, 0, 0),
    ];
    assert_eq!(render(&table(vec![s]), &plain(), 4096, None), GOLD_DR);
}

#[test]
fn nat_with_port_mapping_hides_removed_dests() {
    let mut s = svc(Protocol::Tcp, "198.18.0.71", 80, SchedKind::Wlc);
    let mut gone = dest("198.18.1.10", 10012, FwdMethod::Masq, 1, 0, 0);
    gone.available = false;
    s.dests = vec![
        dest("198.18.1.12", 10012, FwdMethod::Masq, 0, 0, 7),
        gone,
        dest("198.18.1.11", 10012, FwdMethod::Masq, 1, 12, 345),
    ];
    // Without -n the columns are the same: there is no resolver.
    assert_eq!(
        render(&table(vec![s]), &ListOptions::default(), 4096, None),
        GOLD_NAT
    );
}

#[test]
fn flags_persistence_mask_and_ops() {
    let mut udp = svc(Protocol::Udp, "198.18.0.1", 53, SchedKind::Rr);
    udp.persistence = Some(Duration::from_secs(360));
    udp.persistence_prefix = 24;
    udp.ops = true;
    udp.dests = vec![dest("198.18.0.2", 53, FwdMethod::Masq, 1, 0, 0)];
    let mut sh = svc(Protocol::Tcp, "198.18.0.5", 443, SchedKind::Sh);
    sh.sched_flags = SchedFlags {
        fallback: true,
        port: true,
        flag3: false,
    };
    sh.dests = vec![dest("198.18.0.6", 443, FwdMethod::Tunnel, 1, 0, 0)];
    let mut rr = svc(Protocol::Tcp, "198.18.0.5", 8080, SchedKind::Rr);
    rr.sched_flags.flag3 = true;
    // Added UDP first, TCP 8080 before TCP 443: listed TCP before UDP and
    // by port.
    let t = table(vec![udp, rr, sh]);
    assert_eq!(render(&t, &plain(), 65536, None), GOLD_PERSIST_MASK);
}

#[test]
fn ipv6_services_follow_ipv4_and_fullnat_lists_as_fullnat() {
    let mut v6 = svc(Protocol::Tcp, "2001:2::1", 80, SchedKind::Mh);
    v6.sched_flags.port = true;
    v6.persistence = Some(Duration::from_secs(300));
    v6.persistence_prefix = 64;
    v6.dests = vec![
        dest(
            "2001:2:0:ffff:ffff:ffff:ffff:fff1",
            80,
            FwdMethod::Route,
            100,
            2,
            3,
        ),
        dest("2001:2::10", 80, FwdMethod::Route, 1, 0, 0),
    ];
    let mut v6u = svc(Protocol::Udp, "2001:2::1", 53, SchedKind::Wrr);
    v6u.persistence = Some(Duration::from_secs(60));
    let mut fnat = svc(Protocol::Tcp, "198.18.0.90", 80, SchedKind::Lc);
    fnat.local_addrs = vec![ip("198.18.9.1")];
    fnat.dests = vec![dest("198.18.20.1", 8080, FwdMethod::FullNat, 5, 1, 2)];
    let t = table(vec![v6u, v6, fnat]);
    assert_eq!(render(&t, &plain(), 4096, None), GOLD_V6);
}

fn stats_table() -> ServiceTable {
    let mut s = svc(Protocol::Tcp, "198.18.0.1", 80, SchedKind::Wlc);
    s.stats = stats(123456, 98765432, 123456789, 12345678901, 123456789012345);
    let mut a = dest("198.18.0.2", 80, FwdMethod::Masq, 1, 0, 0);
    a.stats = stats(0, 1, 99999999, 100000000, 999999999);
    let mut b = dest("198.18.0.3", 80, FwdMethod::Masq, 1, 0, 0);
    b.stats = stats(
        1000000000,
        99999999999,
        100000000000,
        99999999999999,
        100000000000000,
    );
    s.dests = vec![b, a];
    table(vec![s])
}

#[test]
fn stats_abbreviate_large_numbers() {
    let o = ListOptions {
        stats: true,
        ..plain()
    };
    assert_eq!(render(&stats_table(), &o, 4096, None), GOLD_STATS);
}

#[test]
fn stats_exact_widen_the_column() {
    let o = ListOptions {
        stats: true,
        exact: true,
        ..plain()
    };
    assert_eq!(render(&stats_table(), &o, 4096, None), GOLD_STATS_EXACT);
}

#[test]
fn largenum_boundaries() {
    let f = |n, exact| {
        let mut s = String::new();
        largenum(&mut s, n, exact).unwrap();
        s
    };
    assert_eq!(f(99_999_999, false), " 99999999");
    assert_eq!(f(100_000_000, false), "  100000K");
    assert_eq!(f(999_999_999, false), "  999999K");
    assert_eq!(f(1_000_000_000, false), "    1000M");
    assert_eq!(f(99_999_999_999, false), "   99999M");
    assert_eq!(f(100_000_000_000, false), "     100G");
    assert_eq!(f(99_999_999_999_999, false), "   99999G");
    assert_eq!(f(100_000_000_000_000, false), "     100T");
    assert_eq!(f(u64::MAX, false), "18446744T");
    assert_eq!(f(12_345_678, true), " 12345678");
    assert_eq!(f(123_456_789, true), " 123456789");
    assert_eq!(f(u64::MAX, true), " 18446744073709551615");
}

#[test]
fn rate_columns() {
    let mut s = svc(Protocol::Tcp, "198.18.0.1", 80, SchedKind::Wlc);
    s.dests = vec![
        dest("198.18.0.2", 80, FwdMethod::Route, 1, 0, 0),
        dest("198.18.0.3", 80, FwdMethod::Route, 1, 0, 0),
    ];
    let rates = RateSnapshot {
        services: vec![ServiceRates {
            service: Rates {
                cps: 5,
                inpps: 400,
                outpps: 380,
                inbps: 123456789,
                outbps: 2000,
            },
            // Only dest 0 has rates: dest 1 reads as zero.
            dests: vec![Rates {
                cps: 3,
                inpps: 250,
                outpps: 123456789,
                inbps: 987654321,
                outbps: 0,
            }],
        }],
    };
    let o = ListOptions {
        rate: true,
        ..plain()
    };
    assert_eq!(render(&table(vec![s]), &o, 4096, Some(&rates)), GOLD_RATE);
}

#[test]
fn thresholds_columns() {
    let mut s = svc(Protocol::Tcp, "198.18.0.1", 80, SchedKind::Wlc);
    let mut a = dest("198.18.0.2", 80, FwdMethod::Masq, 1, 950, 40);
    a.u_threshold = 1000;
    a.l_threshold = 800;
    s.dests = vec![a, dest("198.18.0.3", 80, FwdMethod::Masq, 1, 0, 0)];
    let o = ListOptions {
        thresholds: true,
        ..plain()
    };
    assert_eq!(render(&table(vec![s]), &o, 4096, None), GOLD_THR);
}

#[test]
fn persistent_conn_columns() {
    let mut s = svc(Protocol::Tcp, "198.18.0.1", 80, SchedKind::Wlc);
    s.persistence = Some(Duration::from_secs(360));
    let mut a = dest("198.18.0.2", 80, FwdMethod::Route, 3, 5, 9);
    a.persist_conns = 17;
    s.dests = vec![a];
    let o = ListOptions {
        persistent_conn: true,
        ..plain()
    };
    assert_eq!(render(&table(vec![s]), &o, 4096, None), GOLD_PC);
}

fn conn(
    proto: Protocol,
    c: (&str, u16),
    v: (&str, u16),
    d: (&str, u16),
    state: &'static str,
    expires_in: Duration,
) -> ConnView {
    ConnView {
        any_proto: false,
        proto,
        caddr: ip(c.0),
        cport: c.1,
        vaddr: ip(v.0),
        vport: v.1,
        daddr: ip(d.0),
        dport: d.1,
        state,
        expires_in,
        local: None,
    }
}

#[test]
fn connection_entries() {
    let vip = ("198.18.144.120", 10087);
    let conns = [
        // 22.9 s left: the kernel reports whole seconds.
        conn(
            Protocol::Tcp,
            ("198.18.62.204", 50937),
            vip,
            ("198.18.144.102", 10087),
            "FIN_WAIT",
            Duration::from_millis(22_900),
        ),
        conn(
            Protocol::Tcp,
            ("198.18.62.204", 50959),
            vip,
            ("198.18.144.103", 10087),
            "ESTABLISHED",
            Duration::from_secs(899),
        ),
        conn(
            Protocol::Udp,
            ("198.18.62.204", 5353),
            ("198.18.0.1", 53),
            ("198.18.0.2", 53),
            "UDP",
            Duration::from_secs(299),
        ),
        // A persistence template: client port 0, state NONE.
        conn(
            Protocol::Tcp,
            ("198.18.62.204", 0),
            vip,
            ("198.18.144.103", 10087),
            "NONE",
            Duration::from_secs(50),
        ),
        // Minutes are not capped at two digits.
        conn(
            Protocol::Tcp,
            ("2001:2::c", 40000),
            ("2001:2::1", 80),
            ("2001:2::10", 80),
            "ESTABLISHED",
            Duration::from_secs(7200),
        ),
    ];
    let mut s = String::new();
    list_conns(&mut s, &conns, &plain()).unwrap();
    assert_eq!(s, GOLD_CONNS);
}

#[test]
fn connection_entries_with_persistent_conn_header() {
    let conns = [conn(
        Protocol::Tcp,
        ("198.18.62.204", 1),
        ("198.18.0.1", 80),
        ("198.18.0.2", 80),
        "SYN_RECV",
        Duration::from_millis(400),
    )];
    let o = ListOptions {
        persistent_conn: true,
        ..plain()
    };
    let mut s = String::new();
    list_conns(&mut s, &conns, &o).unwrap();
    assert_eq!(s, GOLD_CONNS_PC);
}

#[test]
fn timeouts_line() {
    let mut s = String::new();
    list_timeouts(
        &mut s,
        Duration::from_secs(900),
        Duration::from_secs(120),
        Duration::from_secs(300),
    )
    .unwrap();
    assert_eq!(s, GOLD_TIMEOUT);
}

#[test]
fn single_service_listing_has_no_version_line() {
    let mut a = svc(Protocol::Tcp, "198.18.0.1", 80, SchedKind::Rr);
    a.dests = vec![dest("198.18.0.2", 80, FwdMethod::Route, 1, 0, 0)];
    let b = svc(Protocol::Tcp, "198.18.0.3", 80, SchedKind::Rr);
    let t = table(vec![b, a]);
    let mut s = String::new();
    list_service(&mut s, &t, 1, &plain(), None).unwrap();
    assert_eq!(
        s,
        concat!(
            "Prot LocalAddress:Port Scheduler Flags\n",
            "  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n",
            "TCP  198.18.0.1:80 rr\n",
            "  -> 198.18.0.2:80                Route   1      0          0         \n",
        )
    );
}

#[test]
fn save_rules_as_ipvsadm_dash_s() {
    let mut dr = svc(Protocol::Tcp, "198.18.144.120", 10087, SchedKind::Wrr);
    dr.persistence = Some(Duration::from_secs(60));
    dr.persistence_prefix = 24;
    dr.dests = vec![
        dest("198.18.144.103", 10087, FwdMethod::Route, 1, 0, 0),
        dest("198.18.144.102", 10087, FwdMethod::Route, 2, 0, 0),
    ];
    let mut u = svc(Protocol::Udp, "198.18.0.1", 53, SchedKind::Sh);
    u.ops = true;
    u.sched_flags.port = true;
    u.dests = vec![
        dest("198.18.0.2", 5353, FwdMethod::Masq, 1, 0, 0),
        dest("198.18.0.3", 53, FwdMethod::Tunnel, 1, 0, 0),
    ];
    let mut v6 = svc(Protocol::Tcp, "2001:2::1", 80, SchedKind::Wlc);
    v6.persistence = Some(Duration::from_secs(300));
    v6.persistence_prefix = 64;
    v6.dests = vec![dest("2001:2::10", 8080, FwdMethod::FullNat, 3, 0, 0)];
    let mut s = String::new();
    save_rules(&mut s, &table(vec![v6, u, dr])).unwrap();
    assert_eq!(
        s,
        concat!(
            "-A -t 198.18.144.120:10087 -s wrr -p 60 -M 255.255.255.0\n",
            "-a -t 198.18.144.120:10087 -r 198.18.144.102:10087 -g -w 2\n",
            "-a -t 198.18.144.120:10087 -r 198.18.144.103:10087 -g -w 1\n",
            "-A -u 198.18.0.1:53 -s sh -o -b sh-port\n",
            "-a -u 198.18.0.1:53 -r 198.18.0.2:5353 -m -w 1\n",
            "-a -u 198.18.0.1:53 -r 198.18.0.3:53 -i -w 1 --tun-type ipip\n",
            "-A -t [2001:2::1]:80 -s wlc -p 300 -M 64\n",
            "-a -t [2001:2::1]:80 -r [2001:2::10]:8080 --fullnat -w 3\n",
        )
    );
}

#[test]
fn service_order_is_family_protocol_address_port() {
    let t = table(vec![
        svc(Protocol::Udp, "198.18.0.1", 53, SchedKind::Rr),
        svc(Protocol::Tcp, "2001:2::1", 1, SchedKind::Rr),
        svc(Protocol::Tcp, "198.18.0.10", 1, SchedKind::Rr),
        svc(Protocol::Tcp, "198.18.0.9", 80, SchedKind::Rr),
        svc(Protocol::Tcp, "198.18.0.9", 22, SchedKind::Rr),
    ]);
    let order: Vec<String> = sorted_services(&t)
        .into_iter()
        .map(|i| t.services[i].key.to_string())
        .collect();
    assert_eq!(
        order,
        [
            "TCP 198.18.0.9:22",
            "TCP 198.18.0.9:80",
            "TCP 198.18.0.10:1",
            "UDP 198.18.0.1:53",
            "TCP [2001:2::1]:1",
        ]
    );
}

const GOLD_DR: &str = concat!(
    "IP Virtual Server version 1.2.1 (size=4096)\n",
    "Prot LocalAddress:Port Scheduler Flags\n",
    "  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n",
    "TCP  198.18.144.120:10087 wrr persistent 60\n",
    "  -> 198.18.144.102:10087         Route   2      0          4         \n",
    "  -> 198.18.144.103:10087         Route   1      0          0         \n",
    "  -> 198.18.144.104:10087         Route   1      0          0         \n",
);

const GOLD_NAT: &str = concat!(
    "IP Virtual Server version 1.2.1 (size=4096)\n",
    "Prot LocalAddress:Port Scheduler Flags\n",
    "  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n",
    "TCP  198.18.0.71:80 wlc\n",
    "  -> 198.18.1.11:10012            Masq    1      12         345       \n",
    "  -> 198.18.1.12:10012            Masq    0      0          7         \n",
);

const GOLD_PERSIST_MASK: &str = concat!(
    "IP Virtual Server version 1.2.1 (size=65536)\n",
    "Prot LocalAddress:Port Scheduler Flags\n",
    "  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n",
    "TCP  198.18.0.5:443 sh (sh-fallback,sh-port)\n",
    "  -> 198.18.0.6:443               Tunnel  1      0          0         \n",
    "TCP  198.18.0.5:8080 rr (flag-3)\n",
    "UDP  198.18.0.1:53 rr persistent 360 mask 255.255.255.0 ops\n",
    "  -> 198.18.0.2:53                Masq    1      0          0         \n",
);

const GOLD_V6: &str = concat!(
    "IP Virtual Server version 1.2.1 (size=4096)\n",
    "Prot LocalAddress:Port Scheduler Flags\n",
    "  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n",
    "TCP  198.18.0.90:80 lc\n",
    "  -> 198.18.20.1:8080             FullNat 5      1          2         \n",
    "TCP  [2001:2::1]:80 mh (mh-port) persistent 300 mask 64\n",
    "  -> [2001:2::10]:80              Route   1      0          0         \n",
    "  -> [2001:2:0:ffff:ffff:ffff:ffff:fff1]:80 Route   100    2          3         \n",
    "UDP  [2001:2::1]:53 wrr persistent 60\n",
);

const GOLD_STATS: &str = concat!(
    "IP Virtual Server version 1.2.1 (size=4096)\n",
    "Prot LocalAddress:Port               Conns   InPkts  OutPkts  InBytes OutBytes\n",
    "  -> RemoteAddress:Port\n",
    "TCP  198.18.0.1:80                  123456 98765432  123456K   12345M     123T\n",
    "  -> 198.18.0.2:80                       0        1 99999999  100000K  999999K\n",
    "  -> 198.18.0.3:80                   1000M   99999M     100G   99999G     100T\n",
);

const GOLD_STATS_EXACT: &str = concat!(
    "IP Virtual Server version 1.2.1 (size=4096)\n",
    "Prot LocalAddress:Port               Conns   InPkts  OutPkts  InBytes OutBytes\n",
    "  -> RemoteAddress:Port\n",
    "TCP  198.18.0.1:80                  123456 98765432 123456789 12345678901 123456789012345\n",
    "  -> 198.18.0.2:80                       0        1 99999999 100000000 999999999\n",
    "  -> 198.18.0.3:80                1000000000 99999999999 100000000000 99999999999999 100000000000000\n",
);

const GOLD_RATE: &str = concat!(
    "IP Virtual Server version 1.2.1 (size=4096)\n",
    "Prot LocalAddress:Port                 CPS    InPPS   OutPPS    InBPS   OutBPS\n",
    "  -> RemoteAddress:Port\n",
    "TCP  198.18.0.1:80                       5      400      380  123456K     2000\n",
    "  -> 198.18.0.2:80                       3      250 123456789  987654K        0\n",
    "  -> 198.18.0.3:80                       0        0        0        0        0\n",
);

const GOLD_THR: &str = concat!(
    "IP Virtual Server version 1.2.1 (size=4096)\n",
    "Prot LocalAddress:Port            Uthreshold Lthreshold ActiveConn InActConn \n",
    "  -> RemoteAddress:Port\n",
    "TCP  198.18.0.1:80 wlc\n",
    "  -> 198.18.0.2:80                1000       800        950        40        \n",
    "  -> 198.18.0.3:80                0          0          0          0         \n",
);

const GOLD_PC: &str = concat!(
    "IP Virtual Server version 1.2.1 (size=4096)\n",
    "Prot LocalAddress:Port            Weight    PersistConn ActiveConn InActConn \n",
    "  -> RemoteAddress:Port\n",
    "TCP  198.18.0.1:80 wlc persistent 360\n",
    "  -> 198.18.0.2:80                3         17          5          9         \n",
);

const GOLD_CONNS: &str = concat!(
    "IPVS connection entries\n",
    "pro expire state       source             virtual            destination\n",
    "TCP 00:22  FIN_WAIT    198.18.62.204:50937 198.18.144.120:10087 198.18.144.102:10087\n",
    "TCP 14:59  ESTABLISHED 198.18.62.204:50959 198.18.144.120:10087 198.18.144.103:10087\n",
    "UDP 04:59  UDP         198.18.62.204:5353 198.18.0.1:53      198.18.0.2:53\n",
    "TCP 00:50  NONE        198.18.62.204:0    198.18.144.120:10087 198.18.144.103:10087\n",
    "TCP 120:00 ESTABLISHED [2001:2::c]:40000  [2001:2::1]:80     [2001:2::10]:80\n",
);

const GOLD_CONNS_PC: &str = concat!(
    "IPVS connection entries\n",
    "pro expire state       source             virtual            destination        pe name          pe_data\n",
    "TCP 00:00  SYN_RECV    198.18.62.204:1    198.18.0.1:80      198.18.0.2:80\n",
);

const GOLD_TIMEOUT: &str = "Timeout (tcp tcpfin udp): 900 120 300\n";

#[test]
fn removed_services_are_not_listed() {
    let cfg = |body: &str| {
        crate::config::parse_str(&format!("[global]\ninterface = \"lf0\"\n{body}"), "t.toml")
            .unwrap()
            .service_specs()
    };
    let vs = |port: u16| {
        format!(
            "[[virtual_server]]\naddress = \"198.18.0.250:{port}\"\nlb_algo = \"rr\"\nlb_kind = \"DR\"\n  [[virtual_server.real_server]]\n  address = \"198.18.0.11:{port}\"\n"
        )
    };
    let mut table =
        crate::service::ServiceTable::from_specs(&cfg(&format!("{}{}", vs(80), vs(81))));
    table.apply_specs(&cfg(&vs(81)));
    let mut out = String::new();
    list_services(&mut out, &table, &ListOptions::default(), 4096, None).unwrap();
    assert!(!out.contains(":80 "), "{out}");
    assert!(out.contains("198.18.0.250:81"), "{out}");
    let mut saved = String::new();
    save_rules(&mut saved, &table).unwrap();
    assert!(!saved.contains(":80 "), "{saved}");
}

#[test]
fn daemon_listing_is_ipvsadm_1_31s() {
    let mut m = crate::config::SyncDaemon::new("eth0", 1);
    m.maxlen = Some(1472);
    let mut b = crate::config::SyncDaemon::new("eth1", 51);
    b.maxlen = Some(1472);
    b.group = "239.0.0.1".parse().unwrap();
    b.port = 9000;
    b.ttl = 3;
    let mut out = String::new();
    list_daemon(&mut out, &[(true, &m), (false, &b)]).unwrap();
    assert_eq!(
        out,
        "master sync daemon (mcast=eth0, syncid=1, maxlen=1472, group=224.0.0.81, port=8848, ttl=1)\n\
         backup sync daemon (mcast=eth1, syncid=51, maxlen=1472, group=239.0.0.1, port=9000, ttl=3)\n"
    );
}

fn tunnelled(addr: &str, kind: TunType, port: u16, csum: TunCsum) -> Dest {
    let mut d = dest(addr, 80, FwdMethod::Tunnel, 1, 0, 0);
    d.tun = crate::dest::TunnelSpec { kind, port, csum };
    d
}

#[test]
fn tunnels_save_and_tun_info_as_ipvsadm_prints_them() {
    let mut s = svc(Protocol::Tcp, "198.18.0.1", 80, SchedKind::Rr);
    s.dests = vec![
        tunnelled("198.18.0.2", TunType::Ipip, 0, TunCsum::NoCsum),
        tunnelled("198.18.0.3", TunType::Gue, 6080, TunCsum::NoCsum),
        tunnelled("198.18.0.4", TunType::Gue, 6081, TunCsum::Csum),
        tunnelled("198.18.0.5", TunType::Gue, 6082, TunCsum::RemCsum),
        tunnelled("198.18.0.6", TunType::Gre, 0, TunCsum::NoCsum),
        tunnelled("198.18.0.7", TunType::Gre, 0, TunCsum::Csum),
        dest("198.18.0.8", 80, FwdMethod::Route, 1, 0, 0),
    ];
    let t = table(vec![s]);
    let mut out = String::new();
    save_rules(&mut out, &t).unwrap();
    assert_eq!(
        out,
        concat!(
            "-A -t 198.18.0.1:80 -s rr\n",
            "-a -t 198.18.0.1:80 -r 198.18.0.2:80 -i -w 1 --tun-type ipip\n",
            "-a -t 198.18.0.1:80 -r 198.18.0.3:80 -i -w 1 --tun-type gue --tun-port 6080 --tun-nocsum\n",
            "-a -t 198.18.0.1:80 -r 198.18.0.4:80 -i -w 1 --tun-type gue --tun-port 6081 --tun-csum\n",
            "-a -t 198.18.0.1:80 -r 198.18.0.5:80 -i -w 1 --tun-type gue --tun-port 6082 --tun-remcsum\n",
            "-a -t 198.18.0.1:80 -r 198.18.0.6:80 -i -w 1 --tun-type gre --tun-nocsum\n",
            "-a -t 198.18.0.1:80 -r 198.18.0.7:80 -i -w 1 --tun-type gre --tun-csum\n",
            "-a -t 198.18.0.1:80 -r 198.18.0.8:80 -g -w 1\n",
        )
    );
    let o = ListOptions {
        tun_info: true,
        ..plain()
    };
    let got = render(&t, &o, 4096, None);
    let want = concat!(
        "IP Virtual Server version 1.2.1 (size=4096)\n",
        "Prot LocalAddress:Port Scheduler Flags\n",
        "  -> RemoteAddress:Port           Forward TunnelInfo    Weight ActiveConn InActConn\n",
        "TCP  198.18.0.1:80 rr\n",
        "  -> 198.18.0.2:80                Tunnel  ipip          1      0          0         \n",
        "  -> 198.18.0.3:80                Tunnel  gue:6080:-c   1      0          0         \n",
        "  -> 198.18.0.4:80                Tunnel  gue:6081:+c   1      0          0         \n",
        "  -> 198.18.0.5:80                Tunnel  gue:6082:r+c  1      0          0         \n",
        "  -> 198.18.0.6:80                Tunnel  gre:-c        1      0          0         \n",
        "  -> 198.18.0.7:80                Tunnel  gre:+c        1      0          0         \n",
        "  -> 198.18.0.8:80                Route   n/a           1      0          0         \n",
    );
    assert_eq!(got, want);
}

// fwmark services: ipvsadm's print_service_entry names them "FWM  N"
// ("FWM  N IPv6"), padded like any service name; they sort after the
// address services (ipvs_cmp_services compares the mark first); -S writes
// "-f N" ("-f N -6"); a fwmark template's protocol is IPPROTO_IP ("IP")
// and its virtual address the mark.

fn fwmark_table() -> ServiceTable {
    let mut a = svc(Protocol::Tcp, "198.18.0.1", 80, SchedKind::Wlc);
    a.dests = vec![dest("198.18.0.2", 80, FwdMethod::Route, 1, 0, 0)];
    let fwm = |mark: u32, v6: bool, sched| Service {
        key: ServiceKey::fwmark(mark, v6),
        ..svc(Protocol::Tcp, if v6 { "::" } else { "0.0.0.0" }, 0, sched)
    };
    let mut f1 = fwm(1, false, SchedKind::Rr);
    f1.persistence = Some(Duration::from_secs(60));
    let mut x = dest("198.18.2.11", 0, FwdMethod::Route, 1, 2, 0);
    x.stats = stats(2, 20, 0, 1200, 0);
    let mut y = dest("198.18.2.12", 0, FwdMethod::Route, 1, 0, 1);
    y.stats = stats(1, 10, 0, 600, 0);
    f1.dests = vec![y, x];
    f1.stats = stats(3, 30, 0, 1800, 0);
    let mut f2 = fwm(2, true, SchedKind::Wlc);
    f2.persistence = Some(Duration::from_secs(30));
    f2.persistence_prefix = 64;
    f2.dests = vec![dest("2001:2::11", 0, FwdMethod::Route, 1, 0, 0)];
    // Inserted out of order: the listing sorts.
    table(vec![f2, f1, a])
}

#[test]
fn fwmark_services_list_as_fwm() {
    assert_eq!(render(&fwmark_table(), &plain(), 4096, None), GOLD_FWM);
    let o = ListOptions {
        stats: true,
        ..plain()
    };
    assert_eq!(render(&fwmark_table(), &o, 4096, None), GOLD_FWM_STATS);
}

#[test]
fn fwmark_services_save_as_dash_f() {
    let mut s = String::new();
    save_rules(&mut s, &fwmark_table()).unwrap();
    assert_eq!(
        s,
        concat!(
            "-A -t 198.18.0.1:80 -s wlc\n",
            "-a -t 198.18.0.1:80 -r 198.18.0.2:80 -g -w 1\n",
            "-A -f 1 -s rr -p 60\n",
            "-a -f 1 -r 198.18.2.11:0 -g -w 1\n",
            "-a -f 1 -r 198.18.2.12:0 -g -w 1\n",
            "-A -f 2 -6 -s wlc -p 30 -M 64\n",
            "-a -f 2 -6 -r [2001:2::11]:0 -g -w 1\n",
        )
    );
}

#[test]
fn fwmark_templates_list_as_ip() {
    let mut t = conn(
        Protocol::Tcp,
        ("198.18.1.1", 0),
        ("0.0.0.1", 0),
        ("198.18.2.11", 0),
        "NONE",
        Duration::from_secs(59),
    );
    t.any_proto = true;
    let c = conn(
        Protocol::Tcp,
        ("198.18.1.1", 40000),
        ("198.18.0.250", 443),
        ("198.18.2.11", 443),
        "ESTABLISHED",
        Duration::from_secs(899),
    );
    let mut s = String::new();
    list_conns(&mut s, &[t, c], &plain()).unwrap();
    assert_eq!(s, GOLD_FWM_CONNS);
}

const GOLD_FWM: &str = concat!(
    "IP Virtual Server version 1.2.1 (size=4096)\n",
    "Prot LocalAddress:Port Scheduler Flags\n",
    "  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n",
    "TCP  198.18.0.1:80 wlc\n",
    "  -> 198.18.0.2:80                Route   1      0          0         \n",
    "FWM  1 rr persistent 60\n",
    "  -> 198.18.2.11:0                Route   1      2          0         \n",
    "  -> 198.18.2.12:0                Route   1      0          1         \n",
    "FWM  2 IPv6 wlc persistent 30 mask 64\n",
    "  -> [2001:2::11]:0               Route   1      0          0         \n",
);

const GOLD_FWM_STATS: &str = concat!(
    "IP Virtual Server version 1.2.1 (size=4096)\n",
    "Prot LocalAddress:Port               Conns   InPkts  OutPkts  InBytes OutBytes\n",
    "  -> RemoteAddress:Port\n",
    "TCP  198.18.0.1:80                       0        0        0        0        0\n",
    "  -> 198.18.0.2:80                       0        0        0        0        0\n",
    "FWM  1                                   3       30        0     1800        0\n",
    "  -> 198.18.2.11:0                       2       20        0     1200        0\n",
    "  -> 198.18.2.12:0                       1       10        0      600        0\n",
    "FWM  2 IPv6                              0        0        0        0        0\n",
    "  -> [2001:2::11]:0                      0        0        0        0        0\n",
);

const GOLD_FWM_CONNS: &str = concat!(
    "IPVS connection entries\n",
    "pro expire state       source             virtual            destination\n",
    "IP  00:59  NONE        198.18.1.1:0       0.0.0.1:0          198.18.2.11:0\n",
    "TCP 14:59  ESTABLISHED 198.18.1.1:40000   198.18.0.250:443   198.18.2.11:443\n",
);
