use super::*;
use std::net::{Ipv4Addr, Ipv6Addr};

fn ok(text: &str) -> Config {
    match parse_str(text, "lb.toml") {
        Ok(c) => c,
        Err(e) => panic!("unexpected error: {e}"),
    }
}

/// The error's full Display text.
fn err(text: &str) -> String {
    match parse_str(text, "lb.toml") {
        Ok(c) => panic!("accepted: {c:?}"),
        Err(e) => e.to_string(),
    }
}

/// Asserts an error at `line:col` whose message contains `needle`.
#[track_caller]
fn err_at(text: &str, line: usize, col: usize, needle: &str) {
    let e = err(text);
    let prefix = format!("lb.toml:{line}:{col}: ");
    assert!(e.starts_with(&prefix), "want {prefix}…, got: {e}");
    assert!(e.contains(needle), "want …{needle}…, got: {e}");
}

fn v4(s: &str) -> IpAddr {
    IpAddr::V4(s.parse::<Ipv4Addr>().unwrap())
}
fn v6(s: &str) -> IpAddr {
    IpAddr::V6(s.parse::<Ipv6Addr>().unwrap())
}
fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// interface.md §2's example with every commented key set to a valid value.
const FULL: &str = r#"
[global]
router_id = "lb1"
interface = "eth0"
queues = [0, 1]
cores = [2, 3]
xdp_mode = "native"
zero_copy = "on"
admin_socket = "/run/lvsfwd/admin.sock"
conn_max = 1048576
expire_nodest_conn = true
expire_quiescent_template = true
drop_entry = false
script_user = "nobody"
script_group = "nogroup"

[timeouts]
tcp = 900
tcp_fin = 120
udp = 300

[[vrrp_instance]]
name = "VI_1"
state = "BACKUP"
interface = "eth0"
virtual_router_id = 51
priority = 50
advert_int = 1
version = 2
nopreempt = false
preempt_delay = 0
auth_type = "PASS"
auth_pass = "1111"
virtual_ipaddress = ["198.18.0.250/32"]
unicast_src_ip = "198.18.0.2"
unicast_peer = ["198.18.0.3", "198.18.0.4"]
notify_master = "/etc/lvsfwd/notify master"
notify_backup = "/etc/lvsfwd/notify backup"
notify_fault = "/etc/lvsfwd/notify fault"
notify = "/etc/lvsfwd/notify"

[[virtual_server]]
address = "198.18.0.250:80"
protocol = "TCP"
lb_algo = "rr"
lb_kind = "DR"
persistence_timeout = 50
persistence_granularity = "255.255.255.0"
ops = false
delay_loop = 6
sorry_server = "198.18.0.20:80"
quorum = 2
hysteresis = 1

  [[virtual_server.real_server]]
  address = "198.18.0.11:80"
  weight = 1
  mac = "52:54:00:00:00:11"
  inhibit_on_failure = true
  uthreshold = 100
  lthreshold = 50
  notify_up = "/bin/up"
  notify_down = "/bin/down"
  [virtual_server.real_server.tcp_check]
  connect_timeout = 3
  retry = 3
  delay_before_retry = 3
  connect_port = 80

  [[virtual_server.real_server]]
  address = "198.18.0.12:80"
  [virtual_server.real_server.http_get]
  url = [{ path = "/index.html", status_code = 200 }, { path = "/x", digest = "9b3a0c85a887a256d6939da88aabd8cd" }]
  virtualhost = "www.example"

  [[virtual_server.real_server]]
  address = "198.18.0.13:80"
  [virtual_server.real_server.misc_check]
  misc_path = "/usr/local/bin/check 198.18.0.13"
  misc_timeout = 5
  misc_dynamic = true

[[virtual_server]]
address = "198.18.0.250:53"
protocol = "UDP"
lb_algo = "sh"
lb_kind = "FULLNAT"
sched_flags = ["sh-port", "sh-fallback"]
ops = true
local_address = ["198.18.9.1", "198.18.9.2"]

  [[virtual_server.real_server]]
  address = "198.18.0.21:5353"
"#;

#[test]
fn full_example_parses_into_typed_values() {
    let c = ok(FULL);
    let g = &c.global;
    assert_eq!(g.router_id.as_deref(), Some("lb1"));
    assert_eq!(g.interfaces, ["eth0"]);
    assert_eq!(g.queues, Some(vec![0, 1]));
    assert_eq!(g.cores, Some(vec![2, 3]));
    assert_eq!(g.xdp_mode, XdpMode::Native);
    assert_eq!(g.zero_copy, ZeroCopy::On);
    assert_eq!(g.conn_max, 1 << 20);
    assert!(g.expire_nodest_conn && g.expire_quiescent_template);
    assert!(!g.drop_entry);
    assert_eq!(
        (g.script_user.as_deref(), g.script_group.as_deref()),
        (Some("nobody"), Some("nogroup"))
    );

    let v = &c.vrrp_instances[0];
    assert_eq!(v.name, "VI_1");
    assert_eq!(v.state, VrrpState::Backup);
    assert_eq!(v.virtual_router_id, 51);
    assert_eq!(v.priority, 50);
    assert_eq!(v.advert_int, Duration::from_secs(1));
    assert_eq!(v.auth, Some(VrrpAuth::Pass("1111".into())));
    assert_eq!(
        v.virtual_ipaddress,
        vec![IpPrefix {
            addr: v4("198.18.0.250"),
            len: 32
        }]
    );
    assert_eq!(v.unicast_src_ip, Some(v4("198.18.0.2")));
    assert_eq!(v.unicast_peer, vec![v4("198.18.0.3"), v4("198.18.0.4")]);
    assert_eq!(v.notify.as_deref(), Some("/etc/lvsfwd/notify"));

    let vs = &c.virtual_servers[0];
    assert_eq!(vs.address, sa("198.18.0.250:80"));
    assert_eq!(vs.lb_algo, SchedKind::Rr);
    assert_eq!(vs.lb_kind, FwdMethod::Route);
    assert_eq!(vs.persistence_timeout, Some(Duration::from_secs(50)));
    assert_eq!(vs.persistence_prefix, 24);
    assert_eq!(vs.delay_loop, Duration::from_secs(6));
    assert_eq!(vs.sorry_server, Some(sa("198.18.0.20:80")));
    assert_eq!((vs.quorum, vs.hysteresis), (2, 1));
    let r0 = &vs.real_servers[0];
    assert_eq!(r0.mac, Some([0x52, 0x54, 0, 0, 0, 0x11]));
    assert!(r0.inhibit_on_failure);
    assert_eq!((r0.uthreshold, r0.lthreshold), (100, 50));
    assert_eq!(
        r0.checks,
        vec![HealthCheck {
            delay_loop: Duration::from_secs(6),
            retry: 3,
            delay_before_retry: Duration::from_secs(3),
            warmup: Duration::from_secs(6),
            alpha: false,
            log_all_failures: false,
            kind: CheckKind::Tcp(Connect {
                connect_ip: v4("198.18.0.11"),
                connect_port: 80,
                bindto: None,
                bind_port: None,
                bind_if: None,
                fwmark: None,
                connect_timeout: Duration::from_secs(3),
            })
        }]
    );
    match &vs.real_servers[1].checks[..] {
        [
            HealthCheck {
                kind: CheckKind::Http(h),
                ..
            },
        ] => {
            assert_eq!(h.urls.len(), 2);
            assert_eq!(h.urls[0].status_code, vec![200..=200]);
            assert!(h.urls[1].status_code.is_empty());
            let d = h.urls[1].digest.unwrap();
            assert_eq!((d[0], d[15]), (0x9b, 0xcd));
            assert_eq!(h.virtualhost.as_deref(), Some("www.example"));
        }
        other => panic!("{other:?}"),
    }
    match &vs.real_servers[2].checks[..] {
        [
            HealthCheck {
                kind: CheckKind::Misc(m),
                ..
            },
        ] => {
            assert_eq!(m.misc_timeout, Some(Duration::from_secs(5)));
            assert!(m.misc_dynamic);
        }
        other => panic!("{other:?}"),
    }
    let u = &c.virtual_servers[1];
    assert_eq!(u.protocol, Protocol::Udp);
    assert!(u.ops);
    assert_eq!(
        u.sched_flags,
        SchedFlags {
            fallback: true,
            port: true,
            flag3: false
        }
    );
    assert_eq!(u.local_address, vec![v4("198.18.9.1"), v4("198.18.9.2")]);
    assert_eq!(u.real_servers[0].address, sa("198.18.0.21:5353"));
}

const MIN_VS: &str = "[[virtual_server]]\naddress = \"198.18.0.1:80\"\n";

#[test]
fn defaults_are_keepalived_and_ipvs_ones() {
    let c = ok(&format!(
        "{MIN_VS}  [[virtual_server.real_server]]\n  address = \"198.18.0.2\"\n"
    ));
    assert_eq!(c.global, Global::default());
    assert_eq!(
        c.global.admin_socket,
        PathBuf::from("/run/lvsfwd/admin.sock")
    );
    assert_eq!(c.global.conn_max, 1_048_576);
    assert_eq!(
        (c.global.xdp_mode, c.global.zero_copy),
        (XdpMode::Auto, ZeroCopy::Auto)
    );
    assert!(!c.global.expire_nodest_conn && !c.global.expire_quiescent_template);
    assert!(c.global.drop_entry, "drop_entry defaults to on");
    assert_eq!(c.global.script_user, None);
    assert_eq!(
        c.timeouts,
        Timeouts {
            tcp: Duration::from_secs(900),
            tcp_fin: Duration::from_secs(120),
            udp: Duration::from_secs(300)
        }
    );
    let vs = &c.virtual_servers[0];
    assert_eq!(vs.protocol, Protocol::Tcp);
    assert_eq!(vs.lb_algo, SchedKind::Wlc);
    assert_eq!(vs.lb_kind, FwdMethod::Masq);
    assert_eq!(vs.persistence_timeout, None);
    assert_eq!(vs.persistence_prefix, 32);
    assert_eq!(vs.delay_loop, Duration::from_secs(60));
    assert_eq!((vs.quorum, vs.hysteresis), (1, 0));
    assert_eq!(
        (vs.quorum_up.as_ref(), vs.quorum_down.as_ref()),
        (None, None)
    );
    assert!(!vs.alpha);
    assert!(!vs.ops);
    let rs = &vs.real_servers[0];
    // No port: the VIP's, as ipvsadm -r without a port.
    assert_eq!(rs.address, sa("198.18.0.2:80"));
    assert_eq!(rs.weight, 1);
    assert_eq!((rs.uthreshold, rs.lthreshold, rs.mac), (0, 0, None));
    assert!(rs.checks.is_empty());
}

#[test]
fn checker_defaults_differ_only_in_delay_before_retry() {
    let c = ok(&format!(
        "{MIN_VS}  [[virtual_server.real_server]]\n  address = \"198.18.0.2:8080\"\n\
         [virtual_server.real_server.tcp_check]\n\
         [virtual_server.real_server.http_get]\n  url = [{{ path = \"/\" }}]\n\
         [virtual_server.real_server.misc_check]\n  misc_path = \"/bin/true\"\n"
    ));
    let checks = &c.virtual_servers[0].real_servers[0].checks;
    assert_eq!(
        checks[0],
        HealthCheck {
            delay_loop: Duration::from_secs(60),
            retry: 1,
            delay_before_retry: Duration::from_secs(1),
            warmup: Duration::from_secs(60),
            alpha: false,
            log_all_failures: false,
            kind: CheckKind::Tcp(Connect {
                connect_ip: v4("198.18.0.2"),
                connect_port: 8080,
                bindto: None,
                bind_port: None,
                bind_if: None,
                fwmark: None,
                connect_timeout: Duration::from_secs(5),
            })
        }
    );
    assert_eq!(
        (checks[1].retry, checks[1].delay_before_retry),
        (1, Duration::from_secs(3))
    );
    match &checks[1].kind {
        CheckKind::Http(h) => {
            assert_eq!(h.connect.connect_port, 8080);
            assert_eq!(h.connect.connect_timeout, Duration::from_secs(5));
            assert!(h.urls[0].status_code.is_empty());
            assert_eq!(h.http_protocol, HttpProtocol::V10);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(checks[2].retry, 0, "MISC_CHECK: no retry by default");
    assert_eq!(
        checks[2].kind,
        CheckKind::Misc(MiscCheck {
            misc_path: "/bin/true".into(),
            misc_timeout: None,
            misc_dynamic: false,
            user: None,
            group: None,
        })
    );
}

#[test]
fn nb_get_retry_is_an_alias_of_retry() {
    let c = ok(&format!(
        "{MIN_VS}  [[virtual_server.real_server]]\n  address = \"198.18.0.2\"\n\
         [virtual_server.real_server.tcp_check]\n  nb_get_retry = 4\n"
    ));
    assert_eq!(c.virtual_servers[0].real_servers[0].checks[0].retry, 4);
}

#[test]
fn persistence_true_means_360_seconds() {
    let c = ok(&format!("{MIN_VS}persistence_timeout = true\n"));
    assert_eq!(
        c.virtual_servers[0].persistence_timeout,
        Some(Duration::from_secs(360))
    );
    let c = ok(&format!("{MIN_VS}persistence_timeout = false\n"));
    assert_eq!(c.virtual_servers[0].persistence_timeout, None);
}

#[test]
fn vrrp_defaults() {
    let c = ok("[[vrrp_instance]]\nname = \"a\"\ninterface = \"eth0\"\nvirtual_router_id = 1\n");
    let v = &c.vrrp_instances[0];
    assert_eq!(v.state, VrrpState::Backup);
    assert_eq!(v.priority, 100);
    assert_eq!(v.advert_int, Duration::from_secs(1));
    assert_eq!(v.version, VrrpVersion::V2);
    assert!(!v.nopreempt);
    assert_eq!(v.preempt_delay, Duration::ZERO);
    assert_eq!(v.auth, None);
    assert!(v.virtual_ipaddress.is_empty());
}

#[test]
fn vrrp_v3_takes_centisecond_adverts_and_owner_priority() {
    let c = ok(
        "[[vrrp_instance]]\nname = \"a\"\ninterface = \"eth0\"\nvirtual_router_id = 255\n\
                priority = 255\nversion = 3\nadvert_int = 0.25\nstate = \"MASTER\"\n\
                virtual_ipaddress = [\"2001:2::1\", \"2001:2::2/64\"]\n",
    );
    let v = &c.vrrp_instances[0];
    assert_eq!(v.advert_int, Duration::from_millis(250));
    assert_eq!((v.priority, v.virtual_router_id), (255, 255));
    assert_eq!(v.state, VrrpState::Master);
    assert_eq!(
        v.virtual_ipaddress,
        vec![
            IpPrefix {
                addr: v6("2001:2::1"),
                len: 128
            },
            IpPrefix {
                addr: v6("2001:2::2"),
                len: 64
            }
        ]
    );
}

#[test]
fn ipv6_service_with_prefix_granularity() {
    let c = ok(
        "[[virtual_server]]\naddress = \"[2001:2::1]:443\"\nlb_kind = \"DR\"\n\
                persistence_timeout = 30\npersistence_granularity = 64\n\
                  [[virtual_server.real_server]]\n  address = \"[2001:2::10]\"\n\
                  [[virtual_server.real_server]]\n  address = \"2001:2::11\"\n",
    );
    let vs = &c.virtual_servers[0];
    assert_eq!(vs.persistence_prefix, 64);
    assert_eq!(vs.real_servers[0].address, sa("[2001:2::10]:443"));
    assert_eq!(vs.real_servers[1].address, sa("[2001:2::11]:443"));
}

#[test]
fn tun_crosses_address_families() {
    // IPVS tunnels between families (IPv4 in IPv6, IPv6 in IPv4): lb.toml
    // takes real servers and a sorry server of the other family under TUN.
    let c = ok(
        "[[virtual_server]]\naddress = \"198.18.0.1:80\"\nlb_kind = \"TUN\"\n\
         sorry_server = \"[2001:2::5]:80\"\n\
           [[virtual_server.real_server]]\n  address = \"198.18.0.9:80\"\n\
           [[virtual_server.real_server]]\n  address = \"[2001:2::10]:80\"\n",
    );
    let vs = &c.virtual_servers[0];
    assert_eq!(vs.real_servers[1].address, sa("[2001:2::10]:80"));
    assert_eq!(vs.sorry_server, Some(sa("[2001:2::5]:80")));
    let c = ok(
        "[[virtual_server]]\naddress = \"[2001:2::1]:80\"\nlb_kind = \"TUN\"\n\
           [[virtual_server.real_server]]\n  address = \"198.18.0.10:80\"\n",
    );
    assert_eq!(
        c.virtual_servers[0].real_servers[0].address,
        sa("198.18.0.10:80")
    );
    // A sorry server that is not tunnelled stays of the VIP's family.
    err_at(
        "[[virtual_server]]\naddress = \"198.18.0.1:80\"\nlb_kind = \"TUN\"\n\
         sorry_server = \"[2001:2::5]:80\"\nsorry_server_lvs_method = \"DR\"\n",
        4,
        16,
        "sorry_server is IPv6 but the virtual server is IPv4; only TUN forwards between families",
    );
    // And a TUN sorry server of a DR pool may cross.
    ok(
        "[[virtual_server]]\naddress = \"198.18.0.1:80\"\nlb_kind = \"DR\"\n\
        sorry_server = \"[2001:2::5]:80\"\nsorry_server_lvs_method = \"TUN\"\n",
    );
}

#[test]
fn flag_n_sched_flags_apply_to_any_scheduler() {
    let c = ok(&format!(
        "{MIN_VS}lb_algo = \"rr\"\nsched_flags = [\"flag-1\", \"flag-3\"]\n"
    ));
    assert_eq!(
        c.virtual_servers[0].sched_flags,
        SchedFlags {
            fallback: true,
            port: false,
            flag3: true
        }
    );
}

// ---- errors: syntax and schema -------------------------------------------

#[test]
fn toml_syntax_error_has_position() {
    err_at(
        "[global]\nrouter_id = \"x\"\n[global\n",
        3,
        8,
        "unclosed table",
    );
    err_at("[global]\nrouter_id = \n", 2, 13, "");
}

#[test]
fn unknown_keys_are_refused_at_the_key() {
    err_at("[global]\nfoo = 1\n", 2, 1, "unknown field `foo`");
    err_at("[bogus]\n", 1, 2, "unknown field `bogus`");
    err_at("[timeouts]\ntcpfin = 1\n", 2, 1, "unknown field `tcpfin`");
    err_at(
        "[[vrrp_instance]]\nname = \"a\"\ninterface = \"e\"\nvirtual_router_id = 1\nauthentication = 1\n",
        5,
        1,
        "unknown field `authentication`",
    );
    err_at(
        &format!("{MIN_VS}nat_mask = \"x\"\n"),
        3,
        1,
        "unknown field `nat_mask`",
    );
    err_at(
        &format!(
            "{MIN_VS}  [[virtual_server.real_server]]\n  address = \"198.18.0.2\"\n  bogus = 3\n"
        ),
        5,
        3,
        "unknown field `bogus`",
    );
    err_at(
        &format!(
            "{MIN_VS}  [[virtual_server.real_server]]\n  address = \"198.18.0.2\"\n\
             [virtual_server.real_server.tcp_check]\nconnect_port = 1\nurl = 2\n"
        ),
        7,
        1,
        "unknown field `url`",
    );
    err_at(
        &format!(
            "{MIN_VS}  [[virtual_server.real_server]]\n  address = \"198.18.0.2\"\n\
             [virtual_server.real_server.http_get]\nurl = [{{ path = \"/\", code = 200 }}]\n"
        ),
        6,
        22,
        "unknown field `code`",
    );
}

#[test]
fn wrong_types_are_refused_at_the_value() {
    err_at(
        "[global]\nconn_max = \"x\"\n",
        2,
        12,
        "invalid type: string",
    );
    err_at(
        "[global]\nexpire_nodest_conn = 1\n",
        2,
        22,
        "invalid type: integer",
    );
    err_at(
        &format!("{MIN_VS}persistence_timeout = \"x\"\n"),
        3,
        23,
        "expected a number of seconds",
    );
    err_at(
        &format!("{MIN_VS}persistence_granularity = true\n"),
        3,
        27,
        "expected a netmask",
    );
    err_at(
        &format!("{MIN_VS}sched_flags = \"sh-port\"\n"),
        3,
        15,
        "invalid type",
    );
}

#[test]
fn missing_required_keys_point_at_their_table() {
    err_at(
        "\n[[virtual_server]]\nprotocol = \"TCP\"\n",
        2,
        1,
        "exactly one of `address`, `fwmark` and `group`",
    );
    err_at(
        "[[vrrp_instance]]\nname = \"a\"\n",
        1,
        1,
        "missing field `interface`",
    );
}

#[test]
fn retry_and_its_alias_together_are_a_duplicate() {
    err_at(
        &format!(
            "{MIN_VS}  [[virtual_server.real_server]]\n  address = \"198.18.0.2\"\n\
             [virtual_server.real_server.tcp_check]\nretry = 1\nnb_get_retry = 2\n"
        ),
        5,
        1,
        "duplicate field `retry`",
    );
}

// ---- errors: semantics -----------------------------------------------------

fn vs(body: &str) -> String {
    format!("[[virtual_server]]\n{body}")
}

#[test]
fn bad_addresses() {
    err_at(
        &vs("address = \"198.18.0.300:80\"\n"),
        2,
        11,
        "is not an IP address",
    );
    err_at(
        &vs("address = \"198.18.0.1\"\n"),
        2,
        11,
        "expected `ADDR:PORT`",
    );
    err_at(&vs("address = \"2001:2::1:80\"\n"), 2, 11, "needs brackets");
    err_at(
        &vs("address = \"[198.18.0.1]:80\"\n"),
        2,
        11,
        "is not an IP address",
    );
    err_at(
        &vs("address = \"198.18.0.1:http\"\n"),
        2,
        11,
        "`http` is not a port number",
    );
    err_at(
        &vs(
            "address = \"198.18.0.1:80\"\n  [[virtual_server.real_server]]\n  address = \"nope\"\n",
        ),
        4,
        13,
        "real_server address `nope`",
    );
    err_at(
        &vs(
            "address = \"198.18.0.1:80\"\nlb_kind = \"FULLNAT\"\nlocal_address = [\"198.18.9.1\", \"x\"]\n",
        ),
        4,
        32,
        "local_address `x` is not an IP address",
    );
    err_at(
        "[[vrrp_instance]]\nname = \"a\"\ninterface = \"e\"\nvirtual_router_id = 1\nvirtual_ipaddress = [\"198.18.0.1/33\"]\n",
        5,
        22,
        "prefix length must be 0..=32",
    );
    err_at(
        "[[vrrp_instance]]\nname = \"a\"\ninterface = \"e\"\nvirtual_router_id = 1\nunicast_peer = [\"1.2.3\"]\n",
        5,
        17,
        "unicast_peer `1.2.3` is not an IP address",
    );
}

#[test]
fn port_out_of_range() {
    err_at(
        &vs("address = \"198.18.0.1:65536\"\n"),
        2,
        11,
        "port 65536 is out of range 0..=65535",
    );
    err_at(
        &vs(
            "address = \"198.18.0.1:80\"\n  [[virtual_server.real_server]]\n  address = \"198.18.0.2:70000\"\n",
        ),
        4,
        13,
        "port 70000 is out of range",
    );
    err_at(
        &vs(
            "address = \"198.18.0.1:80\"\n  [[virtual_server.real_server]]\n  address = \"198.18.0.2\"\n\
             [virtual_server.real_server.tcp_check]\nconnect_port = 0\n",
        ),
        6,
        16,
        "connect_port 0 is out of range 1..=65535",
    );
}

#[test]
fn port_zero_needs_persistence() {
    err_at(
        &vs("address = \"198.18.0.1:0\"\n"),
        2,
        11,
        "port 0 (all ports) needs persistence_timeout",
    );
    ok(&vs(
        "address = \"198.18.0.1:0\"\npersistence_timeout = 60\nlb_kind = \"DR\"\n",
    ));
}

#[test]
fn unknown_enumerations() {
    err_at(
        &format!("{MIN_VS}lb_algo = \"wrrr\"\n"),
        3,
        11,
        "unknown lb_algo `wrrr`",
    );
    err_at(
        &format!("{MIN_VS}lb_kind = \"nat\"\n"),
        3,
        11,
        "unknown lb_kind `nat`",
    );
    err_at(
        &format!("{MIN_VS}protocol = \"SCTP\"\n"),
        3,
        12,
        "unknown protocol `SCTP`",
    );
    err_at("[global]\nxdp_mode = \"fast\"\n", 2, 12, "unknown xdp_mode");
    err_at(
        "[global]\nzero_copy = \"yes\"\n",
        2,
        13,
        "unknown zero_copy",
    );
    err_at(
        "[[vrrp_instance]]\nname = \"a\"\ninterface = \"e\"\nvirtual_router_id = 1\nstate = \"FAULT\"\n",
        5,
        9,
        "unknown state `FAULT`",
    );
}

#[test]
fn sched_flags_must_fit_the_scheduler() {
    err_at(
        &format!("{MIN_VS}lb_algo = \"rr\"\nsched_flags = [\"sh-port\"]\n"),
        4,
        16,
        "sched_flags `sh-port` only applies to lb_algo sh, not rr",
    );
    err_at(
        &format!("{MIN_VS}lb_algo = \"sh\"\nsched_flags = [\"sh-port\", \"mh-fallback\"]\n"),
        4,
        27,
        "only applies to lb_algo mh, not sh",
    );
    err_at(
        &format!("{MIN_VS}lb_algo = \"sh\"\nsched_flags = [\"sh-hash\"]\n"),
        4,
        16,
        "unknown sched_flags `sh-hash`",
    );
    let c = ok(&format!(
        "{MIN_VS}lb_algo = \"mh\"\nsched_flags = [\"mh-port\"]\n"
    ));
    assert!(c.virtual_servers[0].sched_flags.port);
}

#[test]
fn duplicate_virtual_server_and_real_server() {
    let dup_vs = format!("{MIN_VS}{MIN_VS}");
    err_at(&dup_vs, 4, 11, "duplicate virtual_server TCP 198.18.0.1:80");
    // Same address and port over another protocol is another service.
    ok(&format!(
        "{MIN_VS}[[virtual_server]]\naddress = \"198.18.0.1:80\"\nprotocol = \"UDP\"\n"
    ));
    err_at(
        &format!(
            "{MIN_VS}  [[virtual_server.real_server]]\n  address = \"198.18.0.2:80\"\n\
               [[virtual_server.real_server]]\n  address = \"198.18.0.2\"\n"
        ),
        6,
        13,
        "duplicate real_server 198.18.0.2:80",
    );
    // NAT: another port of the same host is another real server.
    ok(&format!(
        "{MIN_VS}  [[virtual_server.real_server]]\n  address = \"198.18.0.2:80\"\n\
           [[virtual_server.real_server]]\n  address = \"198.18.0.2:81\"\n"
    ));
}

#[test]
fn weight_and_thresholds_ranges() {
    let rs = |extra: &str| {
        format!("{MIN_VS}  [[virtual_server.real_server]]\n  address = \"198.18.0.2\"\n{extra}")
    };
    err_at(
        &rs("weight = 65536\n"),
        5,
        10,
        "weight 65536 is out of range 0..=65535",
    );
    err_at(&rs("weight = -1\n"), 5, 10, "weight -1 is out of range");
    assert_eq!(
        ok(&rs("weight = 65535\n")).virtual_servers[0].real_servers[0].weight,
        65535
    );
    assert_eq!(
        ok(&rs("weight = 0\n")).virtual_servers[0].real_servers[0].weight,
        0
    );
    err_at(
        &rs("uthreshold = 10\nlthreshold = 11\n"),
        6,
        14,
        "lthreshold 11 is above uthreshold 10",
    );
    err_at(
        &rs("lthreshold = 1\n"),
        5,
        14,
        "lthreshold 1 is above uthreshold 0",
    );
    err_at(
        &rs("uthreshold = -5\n"),
        5,
        14,
        "uthreshold -5 is out of range",
    );
}

#[test]
fn fullnat_needs_local_address_and_others_refuse_it() {
    err_at(
        &format!("{MIN_VS}lb_kind = \"FULLNAT\"\n"),
        3,
        11,
        "FULLNAT needs local_address",
    );
    err_at(
        &format!("{MIN_VS}lb_kind = \"NAT\"\nlocal_address = [\"198.18.9.1\"]\n"),
        4,
        18,
        "only used with lb_kind FULLNAT",
    );
    err_at(
        &format!(
            "{MIN_VS}lb_kind = \"FULLNAT\"\nlocal_address = [\"198.18.9.1\", \"198.18.9.1\"]\n"
        ),
        4,
        32,
        "listed twice",
    );
}

#[test]
fn address_family_mismatches() {
    for kind in ["NAT", "DR", "FULLNAT"] {
        let local = if kind == "FULLNAT" {
            "local_address = [\"198.18.9.1\"]\n"
        } else {
            ""
        };
        err_at(
            &format!(
                "{MIN_VS}lb_kind = \"{kind}\"\n{local}  [[virtual_server.real_server]]\n  address = \"[2001:2::5]:80\"\n"
            ),
            if local.is_empty() { 5 } else { 6 },
            13,
            "only TUN forwards between families",
        );
    }
    err_at(
        &format!(
            "{MIN_VS}lb_kind = \"FULLNAT\"\nlocal_address = [\"198.18.9.1\", \"2001:2::9\"]\n"
        ),
        4,
        32,
        "one family per pool",
    );
    err_at(
        "[[virtual_server]]\naddress = \"[2001:2::1]:80\"\nlb_kind = \"FULLNAT\"\nlocal_address = [\"198.18.9.1\"]\n\
           [[virtual_server.real_server]]\n  address = \"[2001:2::5]:80\"\n",
        6,
        13,
        "but local_address is IPv4",
    );
    err_at(
        &format!("{MIN_VS}sorry_server = \"[2001:2::5]:80\"\n"),
        3,
        16,
        "sorry_server is IPv6",
    );
    err_at(
        "[[vrrp_instance]]\nname = \"a\"\ninterface = \"e\"\nvirtual_router_id = 1\n\
         virtual_ipaddress = [\"198.18.0.1\", \"2001:2::1\"]\n",
        5,
        36,
        "one vrrp_instance serves one address family",
    );
    err_at(
        "[[vrrp_instance]]\nname = \"a\"\ninterface = \"e\"\nvirtual_router_id = 1\n\
         virtual_ipaddress = [\"198.18.0.1\"]\nunicast_peer = [\"2001:2::1\"]\n",
        6,
        17,
        "unicast_peer 2001:2::1 is IPv6",
    );
}

#[test]
fn dr_and_tun_refuse_port_mapping() {
    for kind in ["DR", "TUN"] {
        err_at(
            &format!(
                "{MIN_VS}lb_kind = \"{kind}\"\n  [[virtual_server.real_server]]\n  address = \"198.18.0.2:8080\"\n"
            ),
            5,
            13,
            &format!("{kind} cannot map ports"),
        );
    }
    let c = ok(&format!(
        "{MIN_VS}lb_kind = \"DR\"\n  [[virtual_server.real_server]]\n  address = \"198.18.0.2:80\"\n"
    ));
    assert_eq!(c.virtual_servers[0].real_servers[0].address.port(), 80);
}

#[test]
fn persistence_granularity_must_be_a_netmask() {
    let p = |g: &str| format!("{MIN_VS}persistence_timeout = 10\npersistence_granularity = {g}\n");
    err_at(&p("\"255.0.255.0\""), 4, 27, "not a contiguous netmask");
    err_at(&p("\"255.255.255\""), 4, 27, "is not a netmask");
    err_at(
        &p("33"),
        4,
        27,
        "persistence_granularity 33 is out of range 0..=32",
    );
    assert_eq!(
        ok(&p("\"255.255.0.0\"")).virtual_servers[0].persistence_prefix,
        16
    );
    assert_eq!(
        ok(&p("\"0.0.0.0\"")).virtual_servers[0].persistence_prefix,
        0
    );
    assert_eq!(ok(&p("28")).virtual_servers[0].persistence_prefix, 28);
    err_at(
        "[[virtual_server]]\naddress = \"[2001:2::1]:80\"\npersistence_timeout = 10\npersistence_granularity = 0\n",
        4,
        27,
        "out of range 1..=128",
    );
    err_at(
        "[[virtual_server]]\naddress = \"[2001:2::1]:80\"\npersistence_timeout = 10\npersistence_granularity = \"ffff::\"\n",
        4,
        27,
        "takes a prefix length",
    );
    err_at(
        &format!("{MIN_VS}persistence_granularity = \"255.255.255.0\"\n"),
        3,
        27,
        "without persistence_timeout",
    );
}

#[test]
fn persistence_timeout_range() {
    err_at(
        &format!("{MIN_VS}persistence_timeout = 0\n"),
        3,
        23,
        "persistence_timeout 0 is out of range 1..=2678400",
    );
    err_at(
        &format!("{MIN_VS}persistence_timeout = 2678401\n"),
        3,
        23,
        "out of range",
    );
    ok(&format!("{MIN_VS}persistence_timeout = 2678400\n"));
}

#[test]
fn ops_is_udp_only() {
    err_at(&format!("{MIN_VS}ops = true\n"), 3, 7, "only for UDP");
    ok(&format!("{MIN_VS}ops = false\n"));
}

#[test]
fn quorum_and_hysteresis() {
    err_at(
        &format!("{MIN_VS}quorum = 0\n"),
        3,
        10,
        "quorum 0 is out of range",
    );
    err_at(
        &format!("{MIN_VS}quorum = 2\nhysteresis = 2\n"),
        4,
        14,
        "hysteresis 2 must be below quorum 2",
    );
}

#[test]
fn durations_must_be_positive() {
    err_at(
        &format!("{MIN_VS}delay_loop = 0\n"),
        3,
        14,
        "delay_loop 0 is out of range",
    );
    err_at(
        &format!(
            "{MIN_VS}  [[virtual_server.real_server]]\n  address = \"198.18.0.2\"\n\
             [virtual_server.real_server.tcp_check]\nconnect_timeout = -1\n"
        ),
        6,
        19,
        "connect_timeout -1 is out of range",
    );
    err_at(
        "[timeouts]\ntcp = 0\n",
        2,
        7,
        "tcp 0 is out of range 1..=2678400",
    );
    err_at(
        "[timeouts]\nudp = 2678401\n",
        2,
        7,
        "udp 2678401 is out of range",
    );
}

fn vrrp(extra: &str) -> String {
    format!("[[vrrp_instance]]\nname = \"a\"\ninterface = \"eth0\"\nvirtual_router_id = 1\n{extra}")
}

#[test]
fn vrrp_ranges() {
    err_at(
        "[[vrrp_instance]]\nname = \"a\"\ninterface = \"eth0\"\nvirtual_router_id = 0\n",
        4,
        21,
        "virtual_router_id 0 is out of range 1..=255",
    );
    err_at(
        "[[vrrp_instance]]\nname = \"a\"\ninterface = \"eth0\"\nvirtual_router_id = 256\n",
        4,
        21,
        "out of range 1..=255",
    );
    err_at(
        &vrrp("priority = 0\n"),
        5,
        12,
        "priority 0 is out of range 1..=255",
    );
    err_at(
        &vrrp("priority = 256\n"),
        5,
        12,
        "priority 256 is out of range",
    );
    err_at(
        &vrrp("advert_int = 0\n"),
        5,
        14,
        "advert_int 0 is out of range 1..=255",
    );
    err_at(&vrrp("advert_int = 256\n"), 5, 14, "out of range 1..=255");
    err_at(
        &vrrp("advert_int = 0.5\n"),
        5,
        14,
        "fractions of a second need version = 3",
    );
    err_at(
        &vrrp("version = 3\nadvert_int = 41\n"),
        6,
        14,
        "out of range 0.01..=40.95",
    );
    err_at(&vrrp("version = 4\n"), 5, 11, "version 4 is not 2 or 3");
    err_at(
        &vrrp("preempt_delay = 1001\n"),
        5,
        17,
        "preempt_delay 1001 is out of range",
    );
}

#[test]
fn vrrp_authentication() {
    err_at(
        &vrrp("auth_type = \"PASS\"\nauth_pass = \"123456789\"\n"),
        6,
        13,
        "keepalived would use `12345678`",
    );
    let c = ok(&vrrp("auth_type = \"PASS\"\nauth_pass = \"12345678\"\n"));
    assert_eq!(
        c.vrrp_instances[0].auth,
        Some(VrrpAuth::Pass("12345678".into()))
    );
    let c = ok(&vrrp("auth_type = \"AH\"\nauth_pass = \"k\"\n"));
    assert_eq!(c.vrrp_instances[0].auth, Some(VrrpAuth::Ah("k".into())));
    err_at(
        &vrrp("auth_pass = \"1111\"\n"),
        5,
        13,
        "auth_pass without auth_type",
    );
    err_at(
        &vrrp("auth_type = \"PASS\"\n"),
        5,
        13,
        "auth_type needs auth_pass",
    );
    err_at(
        &vrrp("auth_type = \"MD5\"\nauth_pass = \"1\"\n"),
        5,
        13,
        "unknown auth_type `MD5`",
    );
    err_at(
        &vrrp("auth_type = \"PASS\"\nauth_pass = \"\"\n"),
        6,
        13,
        "auth_pass is empty",
    );
    err_at(
        &vrrp("version = 3\nauth_type = \"PASS\"\nauth_pass = \"1\"\n"),
        6,
        13,
        "version 3 has no authentication",
    );
}

#[test]
fn vrrp_duplicates() {
    let two = format!("{}{}", vrrp(""), vrrp(""));
    err_at(&two, 6, 8, "duplicate vrrp_instance name `a`");
    let same_vrid = format!(
        "{}[[vrrp_instance]]\nname = \"b\"\ninterface = \"eth0\"\nvirtual_router_id = 1\n",
        vrrp("")
    );
    err_at(
        &same_vrid,
        8,
        21,
        "virtual_router_id 1 is already used on interface eth0",
    );
    // Same VRID on another interface is another router.
    ok(&format!(
        "{}[[vrrp_instance]]\nname = \"b\"\ninterface = \"eth1\"\nvirtual_router_id = 1\n",
        vrrp("")
    ));
    err_at(
        &vrrp("virtual_ipaddress = [\"198.18.0.1\", \"198.18.0.1/24\"]\n"),
        5,
        36,
        "virtual_ipaddress 198.18.0.1 is listed twice",
    );
}

#[test]
fn global_checks() {
    err_at("[global]\nqueues = []\n", 2, 10, "queues is empty");
    err_at(
        "[global]\nqueues = [0, 0]\n",
        2,
        14,
        "queue 0 is listed twice",
    );
    err_at(
        "[global]\nqueues = [0, 1]\ncores = [1]\n",
        3,
        9,
        "cores has 1 entries but queues has 2",
    );
    err_at(
        "[global]\nconn_max = 0\n",
        2,
        12,
        "conn_max 0 is out of range",
    );
    err_at(
        "[global]\ninterface = \"\"\n",
        2,
        13,
        "interface: an empty name",
    );
    err_at(
        "[global]\nidle_spin_us = 1000001\n",
        2,
        16,
        "idle_spin_us 1000001 is out of range",
    );
    err_at(
        "[global]\nidle_spin_us = -1\n",
        2,
        16,
        "idle_spin_us -1 is out of range",
    );
}

#[test]
fn idle_spin_defaults_to_200_us_and_0_means_sleep_at_once() {
    let vs = format!("{MIN_VS}  [[virtual_server.real_server]]\n  address = \"198.18.0.2\"\n");
    assert_eq!(ok(&vs).global.idle_spin, Duration::from_micros(200));
    let c = ok(&format!("[global]\nidle_spin_us = 0\n{vs}"));
    assert_eq!(c.global.idle_spin, Duration::ZERO);
    let c = ok(&format!("[global]\nidle_spin_us = 5000\n{vs}"));
    assert_eq!(c.global.idle_spin, Duration::from_millis(5));
}

#[test]
fn mac_must_be_unicast_six_octets() {
    let rs = |m: &str| {
        format!(
            "{MIN_VS}  [[virtual_server.real_server]]\n  address = \"198.18.0.2\"\n  mac = \"{m}\"\n"
        )
    };
    err_at(&rs("52:54:00:00:00"), 5, 9, "is not a MAC address");
    err_at(&rs("52:54:00:00:00:zz"), 5, 9, "is not a MAC address");
    err_at(&rs("01:00:5e:00:00:01"), 5, 9, "not a unicast address");
    err_at(&rs("00:00:00:00:00:00"), 5, 9, "not a unicast address");
    let c = ok(&rs("52-54-00-AB-cd-01"));
    assert_eq!(
        c.virtual_servers[0].real_servers[0].mac,
        Some([0x52, 0x54, 0, 0xab, 0xcd, 1])
    );
}

#[test]
fn http_get_checks() {
    let h = |body: &str| {
        format!(
            "{MIN_VS}  [[virtual_server.real_server]]\n  address = \"198.18.0.2\"\n\
             [virtual_server.real_server.http_get]\n{body}"
        )
    };
    err_at(&h("url = []\n"), 6, 7, "at least one url");
    err_at(
        &h("url = [{ path = \"index\" }]\n"),
        6,
        17,
        "must start with /",
    );
    err_at(
        &h("url = [{ path = \"/\", status_code = 999 }]\n"),
        6,
        36,
        "status_code 999 is out of range 100..=599",
    );
    err_at(
        &h("url = [{ path = \"/\", digest = \"abc\" }]\n"),
        6,
        31,
        "not an MD5 sum",
    );
    err_at(&h("connect_timeout = 3\n"), 5, 1, "missing field `url`");
    err_at(
        &h("url = [{ path = \"/\", status_code = \"200-x\" }]\n"),
        6,
        36,
        "status_code `200-x` is neither a code nor a range min-max",
    );
    err_at(
        &h("url = [{ path = \"/\", status_code = \"300-200\" }]\n"),
        6,
        36,
        "neither a code nor a range",
    );
    err_at(
        &h("url = [{ path = \"/\", status_code = [200, \"500-600\"] }]\n"),
        6,
        36,
        "status_code 500-600 is out of range",
    );
    err_at(
        &h("url = [{ path = \"/\", status_code = [] }]\n"),
        6,
        36,
        "status_code is empty",
    );
    err_at(
        &h("url = [{ path = \"/\" }]\nbindto = \"2001:2::1\"\n"),
        7,
        10,
        "different families",
    );
}

#[test]
fn status_code_lists_and_ranges_as_keepalived_writes_them() {
    let h = |codes: &str| {
        let c = ok(&format!(
            "{MIN_VS}  [[virtual_server.real_server]]\n  address = \"198.18.0.2\"\n\
             [virtual_server.real_server.http_get]\nurl = [{{ path = \"/\", status_code = {codes} }}]\n"
        ));
        match &c.virtual_servers[0].real_servers[0].checks[0].kind {
            CheckKind::Http(h) => h.urls[0].status_code.clone(),
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(h("204"), vec![204..=204]);
    assert_eq!(h("\"200-299 302\""), vec![200..=299, 302..=302]);
    assert_eq!(h("[200, \"301-302\"]"), vec![200..=200, 301..=302]);
}

#[test]
fn quorum_scripts_alpha_and_bindto() {
    let c = ok(&format!(
        "{MIN_VS}quorum_up = \"/bin/up a\"\nquorum_down = \"/bin/down\"\nalpha = true\n\
         [[virtual_server.real_server]]\n  address = \"198.18.0.2\"\n\
         [virtual_server.real_server.tcp_check]\nbindto = \"198.18.0.9\"\n"
    ));
    let vs = &c.virtual_servers[0];
    assert_eq!(vs.quorum_up.as_deref(), Some("/bin/up a"));
    assert_eq!(vs.quorum_down.as_deref(), Some("/bin/down"));
    assert!(vs.alpha);
    assert!(vs.real_servers[0].checks[0].alpha, "alpha is inherited");
    match &vs.real_servers[0].checks[0].kind {
        CheckKind::Tcp(t) => assert_eq!(t.bindto, Some(v4("198.18.0.9"))),
        other => panic!("{other:?}"),
    }
}

#[test]
fn misc_check_needs_a_path() {
    err_at(
        &format!(
            "{MIN_VS}  [[virtual_server.real_server]]\n  address = \"198.18.0.2\"\n\
             [virtual_server.real_server.misc_check]\nmisc_path = \" \"\n"
        ),
        6,
        13,
        "misc_path is empty",
    );
}

#[test]
fn columns_count_characters_not_bytes() {
    // "é" is two bytes; the value after it is still column 23 in characters.
    err_at(
        "[global]\nrouter_id = \"é\"\nconn_max = -1\n",
        3,
        12,
        "conn_max -1",
    );
    err_at(
        "[[vrrp_instance]]\nname = \"é\"\ninterface = \"eth0\"\nvirtual_router_id = 1\nstate = \"x\" # é\n",
        5,
        9,
        "",
    );
    assert_eq!(line_col("ab\néé x", 8), (2, 4));
}

#[test]
fn load_file_names_the_path_as_given() {
    let dir = std::env::temp_dir().join(format!("lvsfwd-config-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join("lb.toml");
    std::fs::write(&p, "[global]\nconn_max = 0\n").unwrap();
    let e = load_file(&p).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "{}:2:12: conn_max 0 is out of range 1..=4294967295",
            p.display()
        )
    );
    assert_eq!(e.position(), Some((2, 12)));
    let missing = dir.join("nope.toml");
    let e = load_file(&missing).unwrap_err();
    assert!(matches!(e, ConfigError::Io { .. }));
    assert!(
        e.to_string()
            .starts_with(&format!("{}: cannot read:", missing.display()))
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

// ---- seed-equivalent configurations ---------------------------------------

/// Seed 004's ipvsadm script (`-A -t VIP:10087 -s wrr -p 60`, three `-g`
/// real servers weighted 2:1:1), addresses moved into 198.18.0.0/15.
const SEED_004: &str = r#"
[[virtual_server]]
address = "198.18.144.120:10087"
lb_algo = "wrr"
lb_kind = "DR"
persistence_timeout = 60
  [[virtual_server.real_server]]
  address = "198.18.144.102"
  weight = 2
  [[virtual_server.real_server]]
  address = "198.18.144.103"
  weight = 1
  [[virtual_server.real_server]]
  address = "198.18.144.104"
  weight = 1
"#;

#[test]
fn seed_004_dr_wrr_persistent_as_service_spec() {
    let c = ok(SEED_004);
    let specs = c.service_specs();
    assert_eq!(specs.len(), 1);
    let s = &specs[0];
    assert_eq!(
        s.key,
        ServiceKey {
            proto: Protocol::Tcp,
            addr: v4("198.18.144.120"),
            port: 10087,
            fwmark: 0,
        }
    );
    assert_eq!(s.sched, SchedKind::Wrr);
    assert_eq!(s.sched_flags, SchedFlags::default());
    assert_eq!(s.persistence, Some(Duration::from_secs(60)));
    assert_eq!(s.persistence_prefix, 32);
    assert!(!s.ops);
    assert!(s.local_addrs.is_empty());
    let d: Vec<(IpAddr, u16, FwdMethod, i32)> = s
        .dests
        .iter()
        .map(|d| (d.addr, d.port, d.fwd, d.weight))
        .collect();
    assert_eq!(
        d,
        vec![
            (v4("198.18.144.102"), 10087, FwdMethod::Route, 2),
            (v4("198.18.144.103"), 10087, FwdMethod::Route, 1),
            (v4("198.18.144.104"), 10087, FwdMethod::Route, 1),
        ]
    );
}

/// Seed 000's keepalived.conf (BACKUP node, VRID 51, DR rr with
/// persistence 50 and TCP_CHECKs), in lb.toml with moved addresses.
const SEED_000: &str = r#"
[global]
router_id = "LVS-BACKUP"

[[vrrp_instance]]
name = "VI_1"
state = "BACKUP"
interface = "eth0"
virtual_router_id = 51
priority = 50
advert_int = 1
auth_type = "PASS"
auth_pass = "1111"
virtual_ipaddress = ["198.18.56.250"]

[[virtual_server]]
address = "198.18.56.250:80"
delay_loop = 6
lb_algo = "rr"
lb_kind = "DR"
persistence_timeout = 50
protocol = "TCP"

  [[virtual_server.real_server]]
  address = "198.18.56.11:80"
  weight = 1
  [virtual_server.real_server.tcp_check]
  connect_timeout = 3
  nb_get_retry = 3
  delay_before_retry = 3
  connect_port = 80

  [[virtual_server.real_server]]
  address = "198.18.56.12:80"
  weight = 1
  [virtual_server.real_server.tcp_check]
  connect_timeout = 3
  nb_get_retry = 3
  delay_before_retry = 3
  connect_port = 80
"#;

#[test]
fn seed_000_keepalived_setup() {
    let c = ok(SEED_000);
    let v = &c.vrrp_instances[0];
    assert_eq!(
        (v.state, v.virtual_router_id, v.priority),
        (VrrpState::Backup, 51, 50)
    );
    assert_eq!(v.virtual_ipaddress[0].len, 32);
    let vs = &c.virtual_servers[0];
    assert_eq!(vs.delay_loop, Duration::from_secs(6));
    assert_eq!(vs.persistence_timeout, Some(Duration::from_secs(50)));
    for rs in &vs.real_servers {
        match &rs.checks[..] {
            [
                HealthCheck {
                    kind: CheckKind::Tcp(t),
                    retry,
                    delay_before_retry,
                    ..
                },
            ] => {
                assert_eq!((*retry, t.connect_port), (3, 80));
                assert_eq!(*delay_before_retry, Duration::from_secs(3));
            }
            other => panic!("{other:?}"),
        }
    }
    let spec = &c.service_specs()[0];
    assert_eq!(spec.sched, SchedKind::Rr);
    assert!(
        spec.dests
            .iter()
            .all(|d| d.fwd == FwdMethod::Route && d.weight == 1)
    );
}

/// Seed 001's keepalived.conf (MASTER, VRID 20, password 11112222, DR rr,
/// sorry server, HTTP_GET on /index.html).
const SEED_001: &str = r#"
[global]
router_id = "node2"

[[vrrp_instance]]
name = "VI_1"
state = "MASTER"
interface = "eth0"
virtual_router_id = 20
priority = 100
advert_int = 1
auth_type = "PASS"
auth_pass = "11112222"
virtual_ipaddress = ["198.18.0.144"]

[[virtual_server]]
address = "198.18.0.144:80"
delay_loop = 6
lb_algo = "rr"
lb_kind = "DR"
protocol = "TCP"
sorry_server = "198.18.0.1:80"

  [[virtual_server.real_server]]
  address = "198.18.100.142:80"
  weight = 1
  [virtual_server.real_server.http_get]
  url = [{ path = "/index.html", status_code = 200 }]
  connect_timeout = 3
  nb_get_retry = 3
  delay_before_retry = 3

  [[virtual_server.real_server]]
  address = "198.18.100.143:80"
  weight = 1
  [virtual_server.real_server.http_get]
  url = [{ path = "/index.html", status_code = 200 }]
  connect_timeout = 3
  nb_get_retry = 3
  delay_before_retry = 3
"#;

#[test]
fn seed_001_keepalived_setup() {
    let c = ok(SEED_001);
    let v = &c.vrrp_instances[0];
    assert_eq!(v.state, VrrpState::Master);
    assert_eq!(v.auth, Some(VrrpAuth::Pass("11112222".into())));
    let vs = &c.virtual_servers[0];
    assert_eq!(vs.persistence_timeout, None);
    assert_eq!(vs.sorry_server, Some(sa("198.18.0.1:80")));
    match &vs.real_servers[0].checks[..] {
        [
            HealthCheck {
                kind: CheckKind::Http(h),
                retry,
                ..
            },
        ] => {
            assert_eq!(h.urls[0].path, "/index.html");
            assert_eq!(h.urls[0].status_code, vec![200..=200]);
            assert_eq!((*retry, h.connect.connect_port), (3, 80));
            assert_eq!(h.connect.connect_timeout, Duration::from_secs(3));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn service_specs_carry_every_field() {
    let c = ok(FULL);
    let specs = c.service_specs();
    assert_eq!(specs.len(), 2);
    let s = &specs[0];
    assert_eq!(s.persistence_prefix, 24);
    assert_eq!(s.dests[0].mac, Some([0x52, 0x54, 0, 0, 0, 0x11]));
    assert_eq!((s.dests[0].u_threshold, s.dests[0].l_threshold), (100, 50));
    assert_eq!(s.dests.len(), 3);
    let u = &specs[1];
    assert_eq!(u.key.proto, Protocol::Udp);
    assert_eq!(u.sched, SchedKind::Sh);
    assert!(u.ops && u.sched_flags.fallback && u.sched_flags.port);
    assert_eq!(u.local_addrs, vec![v4("198.18.9.1"), v4("198.18.9.2")]);
    assert_eq!(u.dests[0].fwd, FwdMethod::FullNat);
    assert_eq!(u.dests[0].port, 5353);
}

/// Every example in configs/ parses and uses only the benchmarking ranges.
#[test]
fn every_example_config_parses() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let p = entry.unwrap().path();
        if p.extension().and_then(|e| e.to_str()) != Some("toml") {
            continue;
        }
        let c = load_file(&p).unwrap_or_else(|e| panic!("{e}"));
        let in_ranges = |ip: IpAddr| match ip {
            IpAddr::V4(a) => a.octets()[0] == 198 && (a.octets()[1] & 0xfe) == 18,
            IpAddr::V6(a) => a.segments()[..3] == [0x2001, 2, 0],
        };
        for vs in &c.virtual_servers {
            assert!(
                in_ranges(vs.address.ip()),
                "{}: {}",
                p.display(),
                vs.address
            );
            for rs in &vs.real_servers {
                assert!(
                    in_ranges(rs.address.ip()),
                    "{}: {}",
                    p.display(),
                    rs.address
                );
            }
            for l in &vs.local_address {
                assert!(in_ranges(*l), "{}: {l}", p.display());
            }
        }
        for v in &c.vrrp_instances {
            for a in &v.virtual_ipaddress {
                assert!(in_ranges(a.addr), "{}: {}", p.display(), a.addr);
            }
        }
        n += 1;
    }
    for name in ["dr.toml", "nat.toml", "tun.toml", "fullnat.toml"] {
        assert!(dir.join(name).exists(), "configs/{name} missing");
    }
    assert!(n >= 4);
}

#[test]
fn example_dr_config_matches_seed_004() {
    let c = load_file(&Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/dr.toml")).unwrap();
    let s = &c.service_specs()[0];
    assert_eq!(s.sched, SchedKind::Wrr);
    assert_eq!(s.persistence, Some(Duration::from_secs(60)));
    assert_eq!(
        s.dests.iter().map(|d| d.weight).collect::<Vec<_>>(),
        vec![2, 1, 1]
    );
}

#[test]
fn script_lines_that_cannot_be_split_are_refused_with_their_position() {
    // VRRP notify lines: refused by `check`, not first at start-up.
    err_at(
        "[[vrrp_instance]]\nname = \"a\"\ninterface = \"eth0\"\nvirtual_router_id = 1\n\
         notify_master = \"/bin/x 'unclosed\"\n",
        5,
        17,
        "notify_master: unclosed quote",
    );
    // Real-server notify, quorum scripts and MISC_CHECK alike.
    err_at(
        &format!(
            "{MIN_VS}  [[virtual_server.real_server]]\n  address = \"198.18.0.2\"\n\
             notify_down = \"/bin/down \\\\\"\n"
        ),
        5,
        15,
        "notify_down: trailing backslash",
    );
    err_at(
        &format!("{MIN_VS}quorum_up = '/bin/up \"a'\n"),
        3,
        13,
        "quorum_up: unclosed quote",
    );
    err_at(
        &format!(
            "{MIN_VS}  [[virtual_server.real_server]]\n  address = \"198.18.0.2\"\n\
             [virtual_server.real_server.misc_check]\nmisc_path = \"/bin/c 'x\"\n"
        ),
        6,
        13,
        "misc_path: unclosed quote",
    );
    // A blank notify line means no script, as keepalived reads it.
    let c = ok(
        "[[vrrp_instance]]\nname = \"a\"\ninterface = \"eth0\"\nvirtual_router_id = 1\n\
                notify = \"  \"\n",
    );
    assert_eq!(c.vrrp_instances[0].notify, None);
}

#[test]
fn interface_is_a_name_or_a_list_of_names() {
    let c = ok("[global]\ninterface = \"eth0\"\n");
    assert_eq!(c.global.interfaces, ["eth0"]);
    let c = ok("[global]\ninterface = [\"eth0\", \"eth1\"]\n");
    assert_eq!(c.global.interfaces, ["eth0", "eth1"]);
    assert!(ok("").global.interfaces.is_empty());
    err_at("[global]\ninterface = []\n", 2, 13, "empty list");
    err_at(
        "[global]\ninterface = [\"eth0\", \"eth0\"]\n",
        2,
        13,
        "eth0 is listed twice",
    );
    err_at(
        "[global]\ninterface = [\"eth0\", \"\"]\n",
        2,
        13,
        "an empty name",
    );
    err_at(
        "[global]\ninterface = \"a-name-longer-than-ifnamsiz\"\n",
        2,
        13,
        "not a valid interface name",
    );
    let nine: Vec<String> = (0..9).map(|i| format!("\"e{i}\"")).collect();
    err_at(
        &format!("[global]\ninterface = [{}]\n", nine.join(", ")),
        2,
        13,
        "at most 8",
    );
}

// ------------------------------------------------- checkers (issue 14)

const RS2: &str = "[[virtual_server.real_server]]\naddress = \"198.18.0.2\"\n";

fn checks_of(extra_vs: &str, extra: &str) -> Vec<HealthCheck> {
    let c = ok(&format!("{MIN_VS}{extra_vs}{RS2}{extra}"));
    c.virtual_servers[0].real_servers[0].checks.clone()
}

#[test]
fn every_checker_kind_parses_with_keepalived_s_defaults() {
    let c = checks_of(
        "",
        "[virtual_server.real_server.ssl_get]\nurl = [{ path = \"/\" }]\nenable_sni = true\n\
         [virtual_server.real_server.dns_check]\n\
         [virtual_server.real_server.udp_check]\n\
         [virtual_server.real_server.ping_check]\n\
         [virtual_server.real_server.smtp_check]\n",
    );
    assert_eq!(c.len(), 5);
    match &c[0].kind {
        CheckKind::Ssl(h) => {
            assert!(h.enable_sni);
            assert_eq!(h.sni_name, None);
            assert_eq!(c[0].delay_before_retry, Duration::from_secs(3));
        }
        other => panic!("{other:?}"),
    }
    match &c[1].kind {
        CheckKind::Dns(d) => {
            // SOA of the root, 3 retries after a delay_loop each.
            assert_eq!((d.qtype, d.name.as_str()), (6, ""));
            assert_eq!(d.connect.connect_port, 80, "the real server's port");
            assert_eq!(c[1].retry, 3);
            assert_eq!(c[1].delay_before_retry, Duration::from_secs(60));
        }
        other => panic!("{other:?}"),
    }
    match &c[2].kind {
        CheckKind::Udp(u) => {
            assert_eq!(u.payload, None);
            assert!(!u.require_reply);
            assert_eq!((u.min_reply_length, u.max_reply_length), (0, 255));
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(&c[3].kind, CheckKind::Ping(p) if p.connect_ip == v4("198.18.0.2")));
    match &c[4].kind {
        CheckKind::Smtp(s) => assert_eq!(s.helo_name, "smtpchecker.keepalived.org"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn several_checkers_of_a_kind_are_an_array_of_tables() {
    let c = checks_of(
        "",
        "[[virtual_server.real_server.tcp_check]]\nconnect_port = 81\n\
         [[virtual_server.real_server.tcp_check]]\nconnect_port = 82\n\
         [[virtual_server.real_server.http_get]]\nurl = [{ path = \"/a\" }, { path = \"/b\" }]\n",
    );
    let ports: Vec<u16> = c
        .iter()
        .filter_map(|c| match &c.kind {
            CheckKind::Tcp(t) => Some(t.connect_port),
            _ => None,
        })
        .collect();
    assert_eq!(ports, [81, 82]);
    assert!(matches!(&c[2].kind, CheckKind::Http(h) if h.urls.len() == 2));
}

#[test]
fn timers_are_inherited_checker_real_server_virtual_server() {
    let c = ok(&format!(
        "{MIN_VS}delay_loop = 7\nretry = 4\ndelay_before_retry = 2\nwarmup = 1\n\
         connect_timeout = 9\nvirtualhost = \"vs.example\"\n\
         {RS2}retry = 5\nconnect_timeout = 8\nvirtualhost = \"rs.example\"\n\
         [[virtual_server.real_server.http_get]]\nurl = [{{ path = \"/\", virtualhost = \"u.example\" }}]\n\
         [[virtual_server.real_server.http_get]]\nurl = [{{ path = \"/\" }}]\nvirtualhost = \"chk.example\"\n\
         retry = 6\ndelay_loop = 3\nalpha = true\n\
         [[virtual_server.real_server]]\naddress = \"198.18.0.3\"\n\
         [virtual_server.real_server.dns_check]\n"
    ));
    let vs = &c.virtual_servers[0];
    let a = &vs.real_servers[0].checks[0];
    assert_eq!(
        (
            a.delay_loop,
            a.retry,
            a.delay_before_retry,
            a.warmup,
            a.alpha
        ),
        (
            Duration::from_secs(7),
            5,
            Duration::from_secs(2),
            Duration::from_secs(1),
            false
        )
    );
    match &a.kind {
        CheckKind::Http(h) => {
            assert_eq!(h.connect.connect_timeout, Duration::from_secs(8));
            assert_eq!(h.virtualhost.as_deref(), Some("rs.example"));
            assert_eq!(h.urls[0].virtualhost.as_deref(), Some("u.example"));
        }
        other => panic!("{other:?}"),
    }
    let b = &vs.real_servers[0].checks[1];
    assert_eq!(
        (b.retry, b.delay_loop, b.alpha),
        (6, Duration::from_secs(3), true)
    );
    assert!(
        matches!(&b.kind, CheckKind::Http(h) if h.virtualhost.as_deref() == Some("chk.example"))
    );
    // Another real server: the virtual server's values.
    let d = &vs.real_servers[1].checks[0];
    assert_eq!((d.retry, d.delay_before_retry), (4, Duration::from_secs(2)));
    assert!(
        matches!(&d.kind, CheckKind::Dns(x) if x.connect.connect_timeout == Duration::from_secs(9))
    );
}

#[test]
fn http_protocol_regex_and_source_options() {
    let c = checks_of(
        "",
        "[virtual_server.real_server.http_get]\nhttp_protocol = \"1.1\"\n\
         url = [{ path = \"/\", regex = \"^ok\", regex_no_match = true }]\n\
         bindto = \"198.18.0.9\"\nbind_port = 4000\nbind_if = \"lf0\"\n",
    );
    match &c[0].kind {
        CheckKind::Http(h) => {
            assert_eq!(h.http_protocol, HttpProtocol::V11);
            assert_eq!(h.urls[0].regex.as_deref(), Some("^ok"));
            assert!(h.urls[0].regex_no_match);
            assert_eq!(h.connect.bind_port, Some(4000));
            assert_eq!(h.connect.bind_if.as_deref(), Some("lf0"));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn udp_check_payload_and_reply_pattern_are_hex() {
    let c = checks_of(
        "",
        "[virtual_server.real_server.udp_check]\npayload = \"de ad be ef\"\n\
         require_reply = \"6x 6b\"\nmin_reply_length = 2\nmax_reply_length = 64\n",
    );
    match &c[0].kind {
        CheckKind::Udp(u) => {
            assert_eq!(u.payload.as_deref(), Some(&[0xde, 0xad, 0xbe, 0xef][..]));
            assert!(u.require_reply);
            assert_eq!(u.reply, Some((vec![0x60, 0x6b], vec![0x0f, 0x00])));
            assert_eq!((u.min_reply_length, u.max_reply_length), (2, 64));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn bad_checker_values_are_refused_at_their_position() {
    let at = |extra: &str| format!("{MIN_VS}{RS2}{extra}");
    // Lines: 1-2 the VS, 3-4 the real server, 5 the table, 6 the key.
    err_at(
        &at("[virtual_server.real_server.dns_check]\ntype = \"PTRX\"\n"),
        6,
        8,
        "unknown DNS type `PTRX`",
    );
    err_at(
        &at("[virtual_server.real_server.dns_check]\nname = \"a..b\"\n"),
        6,
        8,
        "empty label",
    );
    err_at(
        &at("[virtual_server.real_server.udp_check]\npayload = \"zz\"\n"),
        6,
        11,
        "payload is not a hex string",
    );
    err_at(
        &at("[virtual_server.real_server.udp_check]\nmin_reply_length = 3\n"),
        6,
        20,
        "need require_reply",
    );
    err_at(
        &at("[virtual_server.real_server.http_get]\nurl = [{ path = \"/\", regex = \"(\" }]\n"),
        6,
        30,
        "regex",
    );
    err_at(
        &at(
            "[virtual_server.real_server.http_get]\nurl = [{ path = \"/\" }]\nhttp_protocol = \"2\"\n",
        ),
        7,
        17,
        "http_protocol `2`",
    );
    err_at(
        &at("[virtual_server.real_server.http_get]\nurl = [{ path = \"/\" }]\nenable_sni = true\n"),
        7,
        14,
        "ssl_get only",
    );
    err_at(
        &at("[virtual_server.real_server.ping_check]\nconnect_port = 7\n"),
        6,
        16,
        "no port",
    );
    err_at(
        &at("[virtual_server.real_server.tcp_check]\nbind_port = 0\n"),
        6,
        13,
        "bind_port 0 is out of range",
    );
    err_at(
        &at("[virtual_server.real_server.smtp_check]\nhelo_name = \"\"\n"),
        6,
        13,
        "helo_name",
    );
    // keepalived keys not implemented are unknown keys, with their line.
    err_at(
        &at("[virtual_server.real_server.http_get]\nurl = [{ path = \"/\" }]\nregex_stack = 1\n"),
        7,
        1,
        "regex_stack",
    );
    let c = ok(&at(
        "[virtual_server.real_server.http_get]\nurl = [{ path = \"/\" }]\nfast_recovery = true\n",
    ));
    match &c.virtual_servers[0].real_servers[0].checks[0].kind {
        CheckKind::Http(h) => assert!(h.fast_recovery),
        k => panic!("{k:?}"),
    }
    // tls_compliant is SSL_GET's (keepalived installs it for SSL_GET only).
    err_at(
        &at(
            "[virtual_server.real_server.http_get]\nurl = [{ path = \"/\" }]\ntls_compliant = true\n",
        ),
        7,
        17,
        "tls_compliant is for ssl_get only",
    );
    err_at(
        &at(
            "[virtual_server.real_server.http_get]\nurl = [{ path = \"/\", tls_compliant = true }]\n",
        ),
        6,
        38,
        "tls_compliant is for ssl_get only",
    );
    let c = ok(&at(
        "[virtual_server.real_server.ssl_get]\nurl = [{ path = \"/\" }, { path = \"/b\", tls_compliant = true }]\n",
    ));
    match &c.virtual_servers[0].real_servers[0].checks[0].kind {
        CheckKind::Ssl(h) => {
            assert!(!h.tls_compliant);
            assert_eq!(
                (h.urls[0].tls_compliant, h.urls[1].tls_compliant),
                (false, true)
            );
        }
        k => panic!("{k:?}"),
    }
}

#[test]
fn sorry_server_options_need_a_sorry_server() {
    let c = ok(&format!(
        "{MIN_VS}sorry_server = \"198.18.0.9\"\nsorry_server_inhibit = true\n\
         sorry_server_lvs_method = \"DR\"\n"
    ));
    let vs = &c.virtual_servers[0];
    assert!(vs.sorry_server_inhibit);
    assert_eq!(vs.sorry_server_lvs_method, Some(FwdMethod::Route));
    err_at(
        &format!("{MIN_VS}sorry_server_inhibit = true\n"),
        3,
        24,
        "needs a sorry_server",
    );
    err_at(
        &format!("{MIN_VS}sorry_server = \"198.18.0.9\"\nsorry_server_lvs_method = \"FULLNAT\"\n"),
        4,
        27,
        "FULLNAT virtual server",
    );
}

#[test]
fn checker_fwmark_and_log_all_failures() {
    let c = checks_of(
        "",
        "[virtual_server.real_server.tcp_check]\nfwmark = 42\nlog_all_failures = true\n\
         [virtual_server.real_server.misc_check]\nmisc_path = \"/bin/true\"\n",
    );
    assert!(c[0].log_all_failures && !c[1].log_all_failures);
    assert!(matches!(&c[0].kind, CheckKind::Tcp(t) if t.fwmark == Some(42)));
    err_at(
        &format!("{MIN_VS}{RS2}[virtual_server.real_server.tcp_check]\nfwmark = 0\n"),
        6,
        10,
        "fwmark 0 is out of range",
    );
}

#[test]
fn weight_and_inhibit_on_failure_at_virtual_server_level_are_defaults() {
    let c = ok(&format!(
        "{MIN_VS}weight = 4\ninhibit_on_failure = true\n{RS2}\
         [[virtual_server.real_server]]\naddress = \"198.18.0.3\"\nweight = 2\ninhibit_on_failure = false\n"
    ));
    let rs = &c.virtual_servers[0].real_servers;
    assert_eq!((rs[0].weight, rs[0].inhibit_on_failure), (4, true));
    assert_eq!((rs[1].weight, rs[1].inhibit_on_failure), (2, false));
    err_at(&format!("{MIN_VS}weight = 70000\n"), 3, 10, "weight 70000");
}

#[test]
fn regex_options_become_inline_flags() {
    let c = checks_of(
        "",
        "[virtual_server.real_server.http_get]\n\
         url = [{ path = \"/\", regex = \"up\", regex_options = [\"caseless\", \"dotall\"] }]\n",
    );
    assert!(
        matches!(&c[0].kind, CheckKind::Http(h) if h.urls[0].regex.as_deref() == Some("(?is)up"))
    );
    err_at(
        &format!(
            "{MIN_VS}{RS2}[virtual_server.real_server.http_get]\n\
             url = [{{ path = \"/\", regex = \"up\", regex_options = [\"utf\"] }}]\n"
        ),
        6,
        52,
        "regex_options `utf` is not supported",
    );
}

const TRACKING: &str = "[[vrrp_script]]\nname = \"chk\"\nscript = \"/bin/true\"\n\
    [[vrrp_script]]\nname = \"chk2\"\nscript = \"/bin/check 'a b'\"\ninterval = 2\n\
    weight = -20\nfall = 3\nrise = 2\ntimeout = 0.5\nuser = \"nobody\"\n\
    [[vrrp_instance]]\nname = \"a\"\ninterface = \"eth0\"\nvirtual_router_id = 1\n\
    track_script = [\"chk\", { name = \"chk2\", weight = 10 }]\n\
    track_interface = [\"eth1\", { name = \"eth2\", weight = -50 }]\n";

#[test]
fn vrrp_scripts_and_tracking() {
    let c = ok(TRACKING);
    let s = &c.vrrp_scripts;
    // keepalived's defaults: interval 1 s, timeout = interval, weight 0,
    // fall 1, rise 1.
    assert_eq!(
        s[0],
        VrrpScript {
            name: "chk".into(),
            script: "/bin/true".into(),
            interval: Duration::from_secs(1),
            timeout: Duration::from_secs(1),
            weight: 0,
            fall: 1,
            rise: 1,
            reverse: false,
            init_fail: false,
            user: None,
            group: None,
        }
    );
    assert_eq!(s[1].interval, Duration::from_secs(2));
    assert_eq!(s[1].timeout, Duration::from_millis(500));
    assert_eq!((s[1].weight, s[1].fall, s[1].rise), (-20, 3, 2));
    assert_eq!(s[1].user.as_deref(), Some("nobody"));
    let v = &c.vrrp_instances[0];
    assert_eq!(
        v.track_script,
        vec![
            TrackScript {
                name: "chk".into(),
                weight: None,
                reverse: None,
            },
            TrackScript {
                name: "chk2".into(),
                weight: Some(10),
                reverse: None,
            }
        ]
    );
    assert_eq!(
        v.track_interface,
        vec![
            TrackInterface {
                name: "eth1".into(),
                weight: 0
            },
            TrackInterface {
                name: "eth2".into(),
                weight: -50
            }
        ]
    );
}

#[test]
fn vrrp_tracking_errors_name_their_line() {
    let t = TRACKING.replace("track_script = [\"chk\"", "track_script = [\"nosuch\"");
    err_at(&t, 17, 17, "track_script `nosuch`: no [[vrrp_script]]");
    let t = TRACKING.replace("weight = -20", "weight = -254");
    err_at(&t, 8, 10, "weight -254 is out of range -253..=253");
    let t = TRACKING.replace("user = \"nobody\"", "user = \"lvsfwd-no-such-user\"");
    err_at(
        &t,
        12,
        8,
        "user `lvsfwd-no-such-user`: no such user in /etc/passwd",
    );
    let t = TRACKING.replace("fall = 3", "fall = 0");
    err_at(&t, 9, 8, "fall 0 is out of range");
    let t = TRACKING.replace("\"eth1\", {", "\"eth2\", {");
    assert!(err(&t).contains("track_interface `eth2` is listed twice"));
    let t = TRACKING.replace("name = \"chk2\"\nscript", "name = \"chk\"\nscript");
    err_at(&t, 5, 8, "duplicate vrrp_script name `chk`");
    let t = TRACKING.replace("rise = 2", "init_fail = 1");
    err_at(&t, 10, 13, "expected a boolean");
    let t = TRACKING.replace("weight = -50 }", "weight = -50, reverse = true }");
    assert!(
        err(&t).contains("track_interface: `reverse` is not supported"),
        "{}",
        err(&t)
    );
}

#[test]
fn vrrp_script_reverse_and_init_fail() {
    let t = TRACKING
        .replace("rise = 2", "rise = 2\nreverse = true\ninit_fail = true")
        .replace("weight = 10 }", "weight = 10, reverse = false }");
    let c = ok(&t);
    let s = &c.vrrp_scripts[1];
    assert!(s.reverse && s.init_fail);
    assert!(!c.vrrp_scripts[0].reverse && !c.vrrp_scripts[0].init_fail);
    let ts = &c.vrrp_instances[0].track_script;
    assert_eq!((ts[0].reverse, ts[1].reverse), (None, Some(false)));
}

#[test]
fn vrrp_sync_groups() {
    let base = "[[vrrp_instance]]\nname = \"a\"\ninterface = \"eth0\"\nvirtual_router_id = 1\n\
        [[vrrp_instance]]\nname = \"b\"\ninterface = \"eth1\"\nvirtual_router_id = 2\n";
    let c = ok(&format!(
        "{base}[[vrrp_sync_group]]\nname = \"G\"\ngroup = [\"a\", \"b\"]\nnotify = \"/bin/n\"\n"
    ));
    assert_eq!(c.vrrp_sync_groups[0].group, vec!["a", "b"]);
    assert_eq!(c.vrrp_sync_groups[0].notify.as_deref(), Some("/bin/n"));
    err_at(
        &format!("{base}[[vrrp_sync_group]]\nname = \"G\"\ngroup = [\"a\", \"c\"]\n"),
        11,
        15,
        "group member `c`: no vrrp_instance of that name",
    );
    err_at(
        &format!(
            "{base}[[vrrp_sync_group]]\nname = \"G\"\ngroup = [\"a\"]\n\
             [[vrrp_sync_group]]\nname = \"H\"\ngroup = [\"a\"]\n"
        ),
        14,
        10,
        "vrrp_instance a is already in vrrp_sync_group G",
    );
    // keepalived ignores a member's weighted tracking: refused.
    let weighted = base.replace(
        "virtual_router_id = 2\n",
        "virtual_router_id = 2\ntrack_interface = [{ name = \"eth3\", weight = -10 }]\n",
    );
    err_at(
        &format!("{weighted}[[vrrp_sync_group]]\nname = \"G\"\ngroup = [\"a\", \"b\"]\n"),
        12,
        15,
        "vrrp_instance b tracks eth3 with weight -10",
    );
}

#[test]
fn metrics_listen_is_off_unless_configured_and_bad_addresses_name_their_line() {
    assert_eq!(ok("").global.metrics_listen, None);
    assert_eq!(
        ok("[metrics]\nlisten = \"127.0.0.1:9478\"\n")
            .global
            .metrics_listen,
        Some(sa("127.0.0.1:9478"))
    );
    assert_eq!(
        ok("[metrics]\nlisten = \"[::1]:9478\"\n")
            .global
            .metrics_listen,
        Some(sa("[::1]:9478"))
    );
    err_at(
        "[metrics]\nlisten = \"localhost:9478\"\n",
        2,
        10,
        "metrics listen `localhost:9478` is not ADDR:PORT",
    );
    err_at("[metrics]\nlisten = \"0.0.0.0:0\"\n", 2, 10, "port 0");
    err_at(
        "[metrics]\n\nlisten = \"127.0.0.1\"\n",
        3,
        10,
        "not ADDR:PORT",
    );
    // No listen at all, or an unknown key: refused, not ignored.
    assert!(err("[metrics]\n").contains("listen"));
    assert!(err("[metrics]\nlisten = \"127.0.0.1:1\"\nport = 2\n").contains("port"));
}

const SYNC_BASE: &str = r#"
[global]
interface = "eth0"
sloppy_tcp = true
sync_threshold = 2
sync_period = 10
sync_refresh_period = 30
sync_retries = 2
backup_only = true

[[vrrp_instance]]
name = "VI_1"
interface = "eth0"
virtual_router_id = 51
virtual_ipaddress = ["198.18.0.250/32"]
"#;

#[test]
fn lvs_sync_daemon_and_the_sync_sysctls_parse() {
    let c = ok(&format!(
        "{SYNC_BASE}\n[global.lvs_sync_daemon]\ninterface = \"eth1\"\nvrrp_instance = \"VI_1\"\n"
    ));
    let g = &c.global;
    assert!(g.sloppy_tcp && g.backup_only);
    assert_eq!(
        g.sync,
        crate::conn::SyncSysctls {
            threshold: 2,
            period: 10,
            refresh_period: 30,
            retries: 2,
            ..Default::default()
        }
    );
    let d = g.lvs_sync_daemon.as_ref().unwrap();
    assert_eq!(d.interface, "eth1");
    assert_eq!(d.syncid, 51, "default: the instance's virtual_router_id");
    assert_eq!((d.port, d.ttl, d.maxlen), (8848, 1, None));
    assert_eq!(d.group, v4("224.0.0.81"));
    let s = c.sysctls();
    assert!(s.sloppy_tcp && s.backup_only);
    assert_eq!(s.sync.period, 10);
    let c = ok(&format!(
        "{SYNC_BASE}\n[global.lvs_sync_daemon]\ninterface = \"eth1\"\nvrrp_instance = \"VI_1\"\nid = 7\nmaxlen = 1000\nport = 9000\nttl = 3\ngroup = \"239.1.1.1\"\n"
    ));
    let d = c.global.lvs_sync_daemon.unwrap();
    assert_eq!(
        (d.syncid, d.maxlen, d.port, d.ttl),
        (7, Some(1000), 9000, 3)
    );
    assert_eq!(d.group, v4("239.1.1.1"));
}

#[test]
fn lvs_sync_daemon_mistakes_are_refused_with_their_line() {
    let base = "[global]\nsync_threshold = 50\n";
    err_at(base, 2, 18, "must be below sync_period");
    err_at("[global]\nsync_retries = 4\n", 2, 16, "out of range 0..=3");
    let head = format!("{SYNC_BASE}\n[global.lvs_sync_daemon]\ninterface = \"eth1\"\n");
    assert!(err(&head).contains("needs vrrp_instance"));
    err_at(
        &format!("{head}vrrp_instance = \"VI_9\"\n"),
        19,
        17,
        "is not defined",
    );
    err_at(
        &format!("{head}vrrp_instance = \"VI_1\"\ngroup = \"198.18.0.1\"\n"),
        20,
        9,
        "not a multicast address",
    );
    err_at(
        &format!("{head}vrrp_instance = \"VI_1\"\nid = 256\n"),
        20,
        6,
        "out of range 0..=255",
    );
}

#[test]
fn tunnel_keys_of_a_real_server() {
    use crate::dest::{TunCsum, TunType, TunnelSpec};
    let vs = "[[virtual_server]]\naddress = \"198.18.0.1:80\"\nlb_kind = \"TUN\"\n\
              [[virtual_server.real_server]]\n  address = \"198.18.0.9:80\"\n";
    let c = ok(&format!(
        "{vs}  tun_type = \"gue\"\n  tun_port = 6080\n  tun_flags = \"csum\"\n\
         [[virtual_server.real_server]]\n  address = \"198.18.0.10:80\"\n  tun_type = \"gre\"\n\
         [[virtual_server.real_server]]\n  address = \"[2001:2::11]:80\"\n"
    ));
    let rs = &c.virtual_servers[0].real_servers;
    assert_eq!(
        rs[0].tun,
        TunnelSpec {
            kind: TunType::Gue,
            port: 6080,
            csum: TunCsum::Csum
        }
    );
    assert_eq!(rs[1].tun.kind, TunType::Gre);
    assert_eq!(rs[2].tun, TunnelSpec::default());
    let specs = c.service_specs();
    assert_eq!(specs[0].dests[0].tun, rs[0].tun, "into the dest spec");
    // The combinations ipvsadm and keepalived refuse, at the key at fault.
    err_at(
        &format!("{vs}  tun_type = \"gue\"\n"),
        6,
        14,
        "gue tunnels require a port",
    );
    err_at(
        &format!("{vs}  tun_type = \"gre\"\n  tun_port = 6080\n"),
        7,
        14,
        "only gue tunnels have a port",
    );
    err_at(
        &format!("{vs}  tun_type = \"gre\"\n  tun_flags = \"remcsum\"\n"),
        7,
        15,
        "gre tunnels do not support the remote checksum option",
    );
    err_at(
        &format!("{vs}  tun_flags = \"csum\"\n"),
        6,
        15,
        "ipip tunnels do not support a checksum option",
    );
    err_at(
        &format!("{vs}  tun_type = \"vxlan\"\n"),
        6,
        14,
        "tun_type `vxlan` is not one of ipip, gue, gre",
    );
    err_at(
        &format!("{vs}  tun_type = \"gue\"\n  tun_port = 70000\n"),
        7,
        14,
        "tun_port 70000 is out of range 1..=65535",
    );
    err_at(
        "[[virtual_server]]\naddress = \"198.18.0.1:80\"\nlb_kind = \"DR\"\n\
         [[virtual_server.real_server]]\n  address = \"198.18.0.9:80\"\n  tun_type = \"gre\"\n",
        6,
        14,
        "tun_type needs lb_kind = \"TUN\"",
    );
}

#[test]
fn active_active_sync_needs_an_id_and_no_vrrp_instance() {
    let c = ok(&format!(
        "{SYNC_BASE}\n[global.lvs_sync_daemon]\ninterface = \"eth1\"\nactive_active = true\nid = 9\nttl = 2\n"
    ));
    let d = c.global.lvs_sync_daemon.unwrap();
    assert!(d.active_active);
    assert_eq!((d.syncid, d.ttl, d.vrrp_instance), (9, 2, None));
    let head = format!("{SYNC_BASE}\n[global.lvs_sync_daemon]\ninterface = \"eth1\"\n");
    assert!(err(&format!("{head}active_active = true\n")).contains("needs id"));
    err_at(
        &format!("{head}active_active = true\nid = 1\nvrrp_instance = \"VI_1\"\n"),
        21,
        17,
        "exclude each other",
    );
}

const ANNOUNCE_VS: &str = "[[virtual_server]]\naddress = \"198.18.0.250:80\"\n\
                           [[virtual_server]]\naddress = \"198.18.0.251:80\"\n";

#[test]
fn announce_parses_with_defaults() {
    let c = ok(&format!("{ANNOUNCE_VS}[announce]\ntable = 100\n"));
    assert_eq!(
        c.announce,
        Some(Announce {
            table: 100,
            protocol: DEFAULT_ANNOUNCE_PROTOCOL,
            vips: vec![v4("198.18.0.250"), v4("198.18.0.251")],
            local_addrs: vec![],
            peer_local_addrs: vec![],
        })
    );
    let c = ok(&format!(
        "{ANNOUNCE_VS}[announce]\ntable = 4000\nprotocol = 77\nvips = [\"198.18.0.251\"]\n"
    ));
    let a = c.announce.unwrap();
    assert_eq!(
        (a.table, a.protocol, a.vips),
        (4000, 77, vec![v4("198.18.0.251")])
    );
    assert_eq!(ok(MIN_VS).announce, None);
}

#[test]
fn announce_takes_the_fullnat_local_addresses_and_the_peers() {
    let vs = "[[virtual_server]]\naddress = \"198.18.0.250:80\"\nlb_kind = \"FULLNAT\"\n\
              local_address = [\"198.18.9.1\"]\n";
    let c = ok(&format!(
        "{vs}[announce]\ntable = 100\npeer_local_address = [\"198.18.9.2\", \"198.18.9.3\"]\n"
    ));
    let a = c.announce.unwrap();
    assert_eq!(a.local_addrs, vec![v4("198.18.9.1")]);
    assert_eq!(a.peer_local_addrs, vec![v4("198.18.9.2"), v4("198.18.9.3")]);
    let head = format!("{vs}[announce]\ntable = 100\n");
    err_at(
        &format!("{head}peer_local_address = [\"198.18.9.1\"]\n"),
        7,
        23,
        "this director's own local_address",
    );
    err_at(
        &format!("{head}peer_local_address = [\"198.18.0.250\"]\n"),
        7,
        23,
        "virtual_server's address",
    );
    err_at(
        &format!("{head}peer_local_address = [\"198.18.9.2\", \"198.18.9.2\"]\n"),
        7,
        37,
        "listed twice",
    );
    err_at(
        &format!("{head}peer_local_address = [\"x\"]\n"),
        7,
        23,
        "not an IP address",
    );
}

#[test]
fn announce_mistakes_are_refused_with_their_line() {
    let head = format!("{ANNOUNCE_VS}[announce]\n");
    err_at(&format!("{head}table = 254\n"), 6, 9, "kernel's own");
    err_at(&format!("{head}table = 0\n"), 6, 9, "out of range");
    err_at(
        &format!("{head}table = 100\nprotocol = 12\n"),
        7,
        12,
        "BIRD's own",
    );
    err_at(
        &format!("{head}table = 100\nprotocol = 2\n"),
        7,
        12,
        "not for announced",
    );
    err_at(
        &format!("{head}table = 100\nprotocol = 256\n"),
        7,
        12,
        "out of range",
    );
    err_at(
        &format!("{head}table = 100\nvips = [\"198.18.0.9\"]\n"),
        7,
        9,
        "no virtual_server's address",
    );
    err_at(
        &format!("{head}table = 100\nvips = [\"198.18.0.250\", \"198.18.0.250\"]\n"),
        7,
        25,
        "listed twice",
    );
    err_at(&format!("{head}table = 100\nvips = [\"x\"]\n"), 7, 9, "");
    assert!(err(&format!("{head}protocol = 5\n")).contains("table"));
    err_at(
        &format!("{head}table = 100\nroute = \"x\"\n"),
        7,
        1,
        "unknown field",
    );
}

// `[[fwmark]]`, `fwmark = N`, `[[virtual_server_group]]` and `group`.

const FWM_RULES: &str = "[[fwmark]]\nmark = 1\nmatch = [\"TCP 198.18.0.250:80\", \"TCP 198.18.0.250:443\"]\n\
[[fwmark]]\nmark = 2\nmatch = [\"UDP 198.18.0.250\", \"198.18.0.251:53\", \"[2001:2::1]:9\"]\n";

#[test]
fn fwmark_rules_and_a_fwmark_virtual_server() {
    let c = ok(&format!(
        "{FWM_RULES}[[virtual_server]]\nfwmark = 1\nlb_algo = \"rr\"\nlb_kind = \"DR\"\n\
         persistence_timeout = 60\n{RS2}"
    ));
    use crate::service::FwmarkMatch;
    assert_eq!(c.fwmarks.len(), 2);
    assert_eq!(
        c.fwmarks[1].matches,
        [
            FwmarkMatch {
                proto: Some(Protocol::Udp),
                addr: v4("198.18.0.250"),
                port: None
            },
            FwmarkMatch {
                proto: None,
                addr: v4("198.18.0.251"),
                port: Some(53)
            },
            FwmarkMatch {
                proto: None,
                addr: "2001:2::1".parse().unwrap(),
                port: Some(9)
            },
        ]
    );
    let specs = c.service_specs();
    assert_eq!(specs.len(), 1);
    assert_eq!(specs[0].key, ServiceKey::fwmark(1, false));
    // The rules of its mark travel with it; its DR real server has port 0.
    assert_eq!(specs[0].fwmark_matches, c.fwmarks[0].matches);
    assert_eq!(
        (specs[0].dests[0].addr, specs[0].dests[0].port),
        (v4("198.18.0.2"), 0)
    );
    // A fwmark service needs no persistence (no "port 0" rule), and one
    // without any rule is accepted (IPVS has no say on iptables).
    ok(&format!("[[virtual_server]]\nfwmark = 9\n{RS2}"));
}

#[test]
fn fwmark_mistakes_are_refused_with_their_line() {
    err_at(
        "[[fwmark]]\nmark = 0\nmatch = [\"198.18.0.1\"]\n",
        2,
        8,
        "mark 0 is out of range",
    );
    err_at(
        "[[fwmark]]\nmark = 1\nmatch = []\n",
        3,
        9,
        "without any match",
    );
    err_at(
        "[[fwmark]]\nmark = 1\nmatch = [\"198.18.0.0/24\"]\n",
        3,
        10,
        "prefixes are not supported",
    );
    err_at(
        "[[fwmark]]\nmark = 1\nmatch = [\"SCTP 198.18.0.1:80\"]\n",
        3,
        10,
        "unknown protocol `SCTP`",
    );
    err_at(
        "[[fwmark]]\nmark = 1\nmatch = [\"TCP 198.18.0.1:http\"]\n",
        3,
        10,
        "is not a port number",
    );
    err_at(
        "[[fwmark]]\nmark = 1\nmatch = [\"TCP 0.0.0.0:80\"]\n",
        3,
        10,
        "cannot be a virtual address",
    );
    // A frame carries one mark: overlapping matches are refused.
    err_at(
        "[[fwmark]]\nmark = 1\nmatch = [\"TCP 198.18.0.1:80\"]\n[[fwmark]]\nmark = 2\nmatch = [\"198.18.0.1\"]\n",
        6,
        10,
        "overlaps a match of mark 1",
    );
    // One family per mark.
    err_at(
        &format!("{FWM_RULES}[[virtual_server]]\nfwmark = 2\n"),
        8,
        10,
        "match IPv4 and IPv6 addresses",
    );
    err_at(
        "[[virtual_server]]\naddress = \"198.18.0.1:80\"\nfwmark = 1\n",
        1,
        1,
        "exactly one of `address`, `fwmark` and `group`",
    );
    err_at(
        &format!("{FWM_RULES}[[virtual_server]]\nfwmark = 1\n[[virtual_server]]\nfwmark = 1\n"),
        10,
        10,
        "duplicate virtual_server FWM  1",
    );
    err_at(
        "[[virtual_server]]\nfwmark = 1\nha_suspend = true\n",
        2,
        10,
        "ha_suspend needs the virtual server's address",
    );
    // DR keeps the packet's port: a fwmark DR real server names none.
    err_at(
        "[[virtual_server]]\nfwmark = 1\nlb_kind = \"DR\"\n[[virtual_server.real_server]]\naddress = \"198.18.0.2:80\"\n",
        5,
        11,
        "differs from the virtual server's 0",
    );
}

const GROUP: &str = "[[virtual_server_group]]\nname = \"web\"\n\
members = [\"198.18.0.1-3:80\", \"198.18.0.20:443\", \"fwmark 7\"]\n";

#[test]
fn a_group_virtual_server_is_one_service_per_member() {
    let c = ok(&format!(
        "{GROUP}[[virtual_server]]\ngroup = \"web\"\nlb_algo = \"rr\"\nlb_kind = \"DR\"\n\
         persistence_timeout = 30\n{RS2}"
    ));
    let specs = c.service_specs();
    let keys: Vec<String> = specs.iter().map(|s| s.key.to_string()).collect();
    assert_eq!(
        keys,
        [
            "TCP 198.18.0.1:80",
            "TCP 198.18.0.2:80",
            "TCP 198.18.0.3:80",
            "TCP 198.18.0.20:443",
            "FWM  7"
        ]
    );
    // Each with the virtual server's settings and real servers; DR real
    // servers take each member's port.
    assert!(specs.iter().all(|s| s.sched == SchedKind::Rr
        && s.persistence == Some(std::time::Duration::from_secs(30))
        && s.dests.len() == 1
        && s.dests[0].addr == v4("198.18.0.2")));
    let ports: Vec<u16> = specs.iter().map(|s| s.dests[0].port).collect();
    assert_eq!(ports, [80, 80, 80, 443, 0]);
}

/// keepalived's `virtual_server_group` IPv6 range `2001:2::1-a 80`: the
/// last group of the address runs to END, in hexadecimal.
#[test]
fn an_ipv6_group_range_runs_the_last_group() {
    let c = ok(
        "[[virtual_server_group]]\nname = \"v6\"\nmembers = [\"[2001:2::8-b]:80\", \"[2001:2::ffff]:443\"]\n\
         [[virtual_server]]\ngroup = \"v6\"\nlb_kind = \"DR\"\n\
         [[virtual_server.real_server]]\naddress = \"2001:2::100\"\n",
    );
    let keys: Vec<String> = c
        .service_specs()
        .iter()
        .map(|s| s.key.to_string())
        .collect();
    assert_eq!(
        keys,
        [
            "TCP [2001:2::8]:80",
            "TCP [2001:2::9]:80",
            "TCP [2001:2::a]:80",
            "TCP [2001:2::b]:80",
            "TCP [2001:2::ffff]:443"
        ]
    );
    let g = |m: &str| {
        format!(
            "[[virtual_server_group]]\nname = \"g\"\nmembers = [{m}]\n[[virtual_server]]\ngroup = \"g\"\n"
        )
    };
    err_at(
        &g("\"[2001:2::5-5]:80\""),
        3,
        12,
        "not greater than its start",
    );
    err_at(
        &g("\"[2001:2::5-3]:80\""),
        3,
        12,
        "not greater than its start",
    );
    err_at(
        &g("\"[2001:2::5-10000]:80\""),
        3,
        12,
        "not a hexadecimal group",
    );
    err_at(
        &g("\"[2001:2::5-1g]:80\""),
        3,
        12,
        "not a hexadecimal group",
    );
    err_at(&g("\"[198.18.0.1-3]:80\""), 3, 12, "last group runs");
}

#[test]
fn group_mistakes_are_refused_with_their_line() {
    err_at(
        "[[virtual_server]]\ngroup = \"nope\"\n",
        2,
        9,
        "no [[virtual_server_group]] of that name",
    );
    err_at(
        &format!(
            "{GROUP}[[virtual_server]]\ngroup = \"web\"\n[[virtual_server]]\ngroup = \"web\"\n"
        ),
        7,
        9,
        "already served by another virtual_server",
    );
    err_at(
        &format!(
            "{GROUP}[[virtual_server]]\naddress = \"198.18.0.2:80\"\n[[virtual_server]]\ngroup = \"web\"\n"
        ),
        7,
        9,
        "duplicate virtual_server TCP 198.18.0.2:80",
    );
    let g = |m: &str| {
        format!(
            "[[virtual_server_group]]\nname = \"g\"\nmembers = [{m}]\n[[virtual_server]]\ngroup = \"g\"\n"
        )
    };
    err_at(&g("\"198.18.0.5-2:80\""), 3, 12, "ends below its start");
    err_at(&g("\"198.18.0.5-300:80\""), 3, 12, "not an octet");
    err_at(
        &g("\"2001:2::1-5:80\""),
        3,
        12,
        "IPv4 address whose last octet runs",
    );
    err_at(&g("\"fwmark x\""), 3, 12, "is not a mark");
    err_at(
        &g("\"198.18.0.1:80\", \"[2001:2::1]:80\""),
        3,
        29,
        "not of the family",
    );
    err_at(&g(""), 3, 11, "has no member");
    err_at(
        "[[virtual_server_group]]\nname = \"g\"\nmembers = [\"198.18.0.1:80\"]\n\
         [[virtual_server_group]]\nname = \"g\"\nmembers = [\"198.18.0.2:80\"]\n",
        5,
        8,
        "duplicate virtual_server_group name `g`",
    );
}

#[test]
fn vrrp_mcast_groups_default_and_custom() {
    let g = ok("[global]\n").global;
    assert_eq!(g.vrrp_mcast_group4, Ipv4Addr::new(224, 0, 0, 18));
    assert_eq!(g.vrrp_mcast_group6, "ff02::12".parse::<Ipv6Addr>().unwrap());
    let g = ok("[global]\nvrrp_mcast_group4 = \"224.0.0.19\"\nvrrp_mcast_group6 = \"ff02::13\"\n")
        .global;
    assert_eq!(g.vrrp_mcast_group4, Ipv4Addr::new(224, 0, 0, 19));
    assert_eq!(g.vrrp_mcast_group6, "ff02::13".parse::<Ipv6Addr>().unwrap());
}

#[test]
fn vrrp_mcast_group_mistakes_are_refused_with_their_line() {
    err_at(
        "[global]\nvrrp_mcast_group4 = \"198.18.0.1\"\n",
        2,
        21,
        "vrrp_mcast_group4: `198.18.0.1` is not a multicast address",
    );
    err_at(
        "[global]\nvrrp_mcast_group4 = \"ff02::12\"\n",
        2,
        21,
        "vrrp_mcast_group4: `ff02::12` is not IPv4",
    );
    err_at(
        "[global]\nrouter_id = \"a\"\nvrrp_mcast_group6 = \"224.0.0.19\"\n",
        3,
        21,
        "vrrp_mcast_group6: `224.0.0.19` is not IPv6",
    );
    err_at(
        "[global]\nvrrp_mcast_group6 = \"2001:2::1\"\n",
        2,
        21,
        "is not a multicast address",
    );
    err_at(
        "[global]\nvrrp_mcast_group6 = \"group\"\n",
        2,
        21,
        "vrrp_mcast_group6 `group` is not an IP address",
    );
}

#[test]
fn the_sync_daemon_sysctls_parse_and_mistakes_are_refused_with_their_line() {
    let c = ok(
        "[global]\nsync_persist_mode = 1\nsync_version = 0\nsync_ports = 4\nsync_sock_size = 65536\n",
    );
    let s = c.global.sync;
    assert!(s.persist_mode);
    assert_eq!((s.version, s.ports, s.sock_size), (0, 4, 65536));
    let d = ok("[global]\n").global.sync;
    assert_eq!(
        (d.persist_mode, d.version, d.ports, d.sock_size),
        (false, 1, 1, 0)
    );
    err_at("[global]\nsync_ports = 3\n", 2, 14, "not a power of two");
    err_at("[global]\nsync_ports = 128\n", 2, 14, "out of range 1..=64");
    err_at("[global]\nsync_version = 2\n", 2, 16, "out of range 0..=1");
    err_at(
        "[global]\nsync_persist_mode = 2\n",
        2,
        21,
        "out of range 0..=1",
    );
    // Not implemented: refused as unknown, with its line.
    err_at("[global]\nsync_qlen_max = 100\n", 2, 1, "sync_qlen_max");
}
