//! `import-keepalived`: the seeds' keepalived.conf files and a fixture with
//! every supported keyword convert into lb.toml that lvsfwd accepts and
//! that means the same thing.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use lvsfwd::config::keepalived::{Warning, import};
use lvsfwd::config::{
    CheckKind, Config, HealthCheck, IpPrefix, VrrpAuth, VrrpState, VrrpVersion, parse_str,
};
use lvsfwd::sched::SchedKind;
use lvsfwd::service::{FwdMethod, Protocol};

fn fixture(name: &str) -> String {
    std::fs::read_to_string(format!(
        "{}/tests/fixtures/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

fn convert(name: &str) -> (Config, String, Vec<Warning>) {
    let (toml, warnings) = import(&fixture(name));
    if std::env::var_os("SHOW_IMPORT").is_some() {
        eprintln!("{toml}");
        for w in &warnings {
            eprintln!("{w}");
        }
    }
    let cfg = parse_str(&toml, "lb.toml").unwrap_or_else(|e| panic!("{e}\n{toml}"));
    (cfg, toml, warnings)
}

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn kinds(r: &lvsfwd::config::RealServer) -> Vec<&CheckKind> {
    r.checks.iter().map(|c| &c.kind).collect()
}

fn warned(w: &[Warning]) -> Vec<(usize, &str)> {
    w.iter().map(|w| (w.line, w.keyword.as_str())).collect()
}

#[test]
fn seed000_lvs_dr_with_tcp_checks() {
    let (cfg, _, w) = convert("keepalived_seed000.conf");
    assert_eq!(cfg.global.router_id.as_deref(), Some("LVS-BACKUP"));
    assert_eq!(cfg.global.interfaces, ["eth0"]);
    let v = &cfg.vrrp_instances[0];
    assert_eq!(v.name, "VI_1");
    assert_eq!(v.state, VrrpState::Backup);
    assert_eq!(v.interface, "eth0");
    assert_eq!((v.virtual_router_id, v.priority), (51, 50));
    assert_eq!(v.advert_int, Duration::from_secs(1));
    assert_eq!(v.version, VrrpVersion::V2);
    assert_eq!(v.auth, Some(VrrpAuth::Pass("1111".into())));
    assert_eq!(
        v.virtual_ipaddress,
        [IpPrefix {
            addr: ip("192.168.56.250"),
            len: 32
        }]
    );
    assert_eq!(cfg.virtual_servers.len(), 1);
    let vs = &cfg.virtual_servers[0];
    assert_eq!(vs.address, sa("192.168.56.250:80"));
    assert_eq!(vs.protocol, Protocol::Tcp);
    assert_eq!(vs.lb_algo, SchedKind::Rr);
    assert_eq!(vs.lb_kind, FwdMethod::Route);
    assert_eq!(vs.persistence_timeout, Some(Duration::from_secs(50)));
    assert_eq!(vs.delay_loop, Duration::from_secs(6));
    let rs: Vec<_> = vs.real_servers.iter().map(|r| r.address).collect();
    assert_eq!(rs, [sa("192.168.56.11:80"), sa("192.168.56.12:80")]);
    for r in &vs.real_servers {
        assert_eq!(r.weight, 1);
        match r.checks.as_slice() {
            [
                c @ HealthCheck {
                    kind: CheckKind::Tcp(t),
                    ..
                },
            ] => {
                assert_eq!(t.connect_timeout, Duration::from_secs(3));
                assert_eq!(c.retry, 3, "nb_get_retry");
                assert_eq!(c.delay_before_retry, Duration::from_secs(3));
                assert_eq!(t.connect_port, 80);
                assert_eq!(t.connect_ip, r.address.ip());
            }
            other => panic!("{other:?}"),
        }
    }
    // notification e-mail, smtp, nat_mask and the stray word after `{`.
    assert_eq!(
        warned(&w),
        [
            (4, "notification_email"),
            (9, "notification_email_from"),
            (10, "smtp_server"),
            (11, "smtp_connect_timeout"),
            (30, "VIP的地址"),
            (34, "nat_mask")
        ]
    );
}

#[test]
fn seed001_lvs_dr_with_http_get_and_sorry_server() {
    let (cfg, _, w) = convert("keepalived_seed001.conf");
    assert_eq!(cfg.global.router_id.as_deref(), Some("node2"));
    let v = &cfg.vrrp_instances[0];
    assert_eq!(v.state, VrrpState::Master);
    assert_eq!((v.virtual_router_id, v.priority), (20, 100));
    assert_eq!(v.auth, Some(VrrpAuth::Pass("11112222".into())));
    assert_eq!(v.virtual_ipaddress[0].addr, ip("192.168.0.144"));
    let vs = &cfg.virtual_servers[0];
    assert_eq!(vs.address, sa("192.168.0.144:80"));
    assert_eq!(vs.lb_kind, FwdMethod::Route);
    assert_eq!(vs.lb_algo, SchedKind::Rr);
    assert_eq!(vs.persistence_timeout, None, "commented out");
    assert_eq!(vs.sorry_server, Some(sa("127.0.0.1:80")));
    assert_eq!(vs.real_servers.len(), 2);
    for r in &vs.real_servers {
        match r.checks.as_slice() {
            [
                c @ HealthCheck {
                    kind: CheckKind::Http(h),
                    ..
                },
            ] => {
                assert_eq!(h.urls.len(), 1);
                assert_eq!(h.urls[0].path, "/index.html");
                assert_eq!(h.urls[0].status_code, vec![200..=200]);
                assert_eq!(h.connect.connect_timeout, Duration::from_secs(3));
                assert_eq!(c.retry, 3);
                assert_eq!(c.delay_before_retry, Duration::from_secs(3));
                assert_eq!(h.connect.connect_port, 80);
            }
            other => panic!("{other:?}"),
        }
    }
    let kw: Vec<&str> = w.iter().map(|w| w.keyword.as_str()).collect();
    assert_eq!(
        kw,
        [
            "notification_email",
            "notification_email_from",
            "smtp_server",
            "smtp_connect_timeout",
            "192.168.0.144"
        ]
    );
    assert!(w[4].message.contains("label eth0:0"), "{}", w[4]);
    assert_eq!(
        cfg.global.vrrp_mcast_group4,
        "224.0.29.18".parse::<std::net::Ipv4Addr>().unwrap()
    );
}

#[test]
fn every_supported_keyword() {
    let (cfg, _, w) = convert("keepalived_full.conf");
    assert_eq!(cfg.global.router_id.as_deref(), Some("lb1"));
    let v1 = &cfg.vrrp_instances[0];
    assert_eq!(v1.version, VrrpVersion::V3, "vrrp_version of global_defs");
    assert_eq!(v1.advert_int, Duration::from_millis(500));
    assert!(v1.nopreempt);
    assert_eq!(v1.preempt_delay, Duration::from_secs(5));
    assert_eq!(v1.unicast_src_ip, Some(ip("198.18.0.2")));
    assert_eq!(v1.unicast_peer, [ip("198.18.0.3"), ip("198.18.0.4")]);
    assert_eq!(
        v1.virtual_ipaddress,
        [
            IpPrefix {
                addr: ip("198.18.0.250"),
                len: 32
            },
            IpPrefix {
                addr: ip("198.18.0.251"),
                len: 24
            }
        ]
    );
    assert_eq!(
        v1.notify_master.as_deref(),
        Some("/usr/local/bin/notify.sh master")
    );
    assert_eq!(
        v1.notify_backup.as_deref(),
        Some("/usr/local/bin/notify.sh backup")
    );
    assert_eq!(
        v1.notify_fault.as_deref(),
        Some("/usr/local/bin/notify.sh fault")
    );
    assert_eq!(v1.notify.as_deref(), Some("/usr/local/bin/notify-all.sh"));
    // vrrp_script and track_script are mapped (keepalived's defaults).
    let chk = &cfg.vrrp_scripts[0];
    assert_eq!(chk.name, "chk_haproxy");
    assert_eq!(chk.script, "killall -0 haproxy");
    assert_eq!((chk.interval, chk.weight), (Duration::from_secs(1), 0));
    assert_eq!(v1.track_script.len(), 1);
    assert_eq!(v1.track_script[0].name, "chk_haproxy");
    let v2 = &cfg.vrrp_instances[1];
    assert_eq!(v2.name, "VI_2", "`{{` on the next line");
    assert_eq!(v2.version, VrrpVersion::V2, "the instance's own version");
    assert_eq!(v2.auth, Some(VrrpAuth::Pass("secret".into())));

    let vs = &cfg.virtual_servers[0];
    assert_eq!(vs.lb_algo, SchedKind::Sh);
    assert_eq!(vs.lb_kind, FwdMethod::Masq);
    assert!(vs.sched_flags.port && !vs.sched_flags.fallback);
    assert_eq!(vs.persistence_timeout, Some(Duration::from_secs(360)));
    assert_eq!(vs.persistence_prefix, 24);
    assert_eq!(vs.sorry_server, Some(sa("198.18.0.20:8080")));
    assert_eq!((vs.quorum, vs.hysteresis), (2, 1));
    let r1 = &vs.real_servers[0];
    assert_eq!(r1.address, sa("198.18.0.11:8080"));
    assert_eq!((r1.weight, r1.uthreshold, r1.lthreshold), (3, 100, 10));
    assert!(r1.inhibit_on_failure);
    assert_eq!(r1.notify_up.as_deref(), Some("/usr/local/bin/rs.sh up"));
    assert_eq!(r1.notify_down.as_deref(), Some("/usr/local/bin/rs.sh down"));
    match kinds(r1).as_slice() {
        [CheckKind::Tcp(t), CheckKind::Http(h)] => {
            assert_eq!(t.connect_timeout, Duration::from_secs(2));
            assert_eq!(h.urls.len(), 2);
            assert_eq!(h.urls[1].digest.map(|d| d[0]), Some(0x9b));
            assert_eq!((h.connect.connect_port, r1.checks[1].retry), (8080, 2));
            assert_eq!(h.connect.connect_ip, ip("198.18.0.11"));
            assert_eq!(r1.checks[1].delay_before_retry, Duration::from_secs(2));
            assert_eq!(r1.checks[1].warmup, Duration::from_secs(5));
            assert_eq!(h.virtualhost.as_deref(), Some("www.example.org"));
        }
        other => panic!("{other:?}"),
    }
    let r2 = &vs.real_servers[1];
    match kinds(r2).as_slice() {
        [
            CheckKind::Tcp(t),
            CheckKind::Tcp(t2),
            CheckKind::Ssl(_),
            CheckKind::Misc(m),
        ] => {
            assert_eq!((r2.checks[0].retry, t.connect_port), (3, 8080));
            assert_eq!(t.bindto, Some(ip("198.18.0.2")), "bindto");
            assert_eq!(t.connect_timeout, Duration::from_secs(3));
            assert_eq!(
                t2.connect_timeout,
                Duration::from_secs(9),
                "a second TCP_CHECK"
            );
            assert_eq!(m.misc_path, "/usr/local/bin/check.sh 198.18.0.12");
            assert_eq!(m.misc_timeout, Some(Duration::from_secs(4)));
            assert!(m.misc_dynamic);
        }
        other => panic!("{other:?}"),
    }
    let udp = &cfg.virtual_servers[1];
    assert_eq!(udp.protocol, Protocol::Udp);
    assert_eq!(udp.lb_algo, SchedKind::Rr, "lvs_sched");
    assert_eq!(udp.lb_kind, FwdMethod::Route, "lvs_method");
    assert!(udp.ops);
    assert_eq!(
        udp.real_servers[0].address,
        sa("198.18.0.11:53"),
        "DR keeps the VIP port"
    );
    // `virtual_server fwmark 1` is the fwmark service of mark 1, with a
    // warning (line 137) that its [[fwmark]] rule must be added.
    assert_eq!(cfg.virtual_servers.len(), 3);
    assert_eq!(cfg.virtual_servers[2].fwmark, 1);
    assert!(
        w.iter()
            .any(|w| w.line == 137 && w.message.contains("add a [[fwmark]] rule with mark = 1")),
        "{w:?}"
    );

    assert_eq!(
        warned(&w),
        [
            (5, "notification_email"),
            (8, "smtp_server"),
            (11, "include"),
            (32, "198.18.0.251/24"),
            (32, "198.18.0.251/24"),
            (132, "real_server"),
            (137, "virtual_server"),
        ]
    );
}

#[test]
fn warnings_name_line_and_keyword() {
    let w = Warning {
        file: None,
        line: 7,
        keyword: "smtp_server".into(),
        message: "not supported by lvsfwd, dropped".into(),
    };
    assert_eq!(
        w.to_string(),
        "line 7: smtp_server: not supported by lvsfwd, dropped"
    );
    let w = Warning {
        file: Some("conf.d/a.conf".into()),
        ..w
    };
    assert_eq!(
        w.to_string(),
        "conf.d/a.conf:7: smtp_server: not supported by lvsfwd, dropped"
    );
}
