//! keepalived.conf syntax and the keyword mapping.
use super::*;

fn words(n: &Node) -> Vec<&str> {
    n.words.iter().map(String::as_str).collect()
}

#[test]
fn tokens_comments_quotes_and_braces() {
    assert_eq!(
        tokenize(r#"  notify "/bin/x a b" {   # comment } "#),
        vec![
            Tok::Word("notify".into()),
            Tok::Word("/bin/x a b".into()),
            Tok::Open
        ]
    );
    assert_eq!(tokenize("! all comment"), vec![]);
    assert_eq!(
        tokenize("url{path /a}"),
        vec![
            Tok::Word("url".into()),
            Tok::Open,
            Tok::Word("path".into()),
            Tok::Word("/a".into()),
            Tok::Close
        ]
    );
    // A `#` inside a word is part of it.
    assert_eq!(
        tokenize("auth_pass a#b"),
        vec![Tok::Word("auth_pass".into()), Tok::Word("a#b".into())]
    );
}

#[test]
fn tree_with_brace_on_next_line_and_unbalanced_braces() {
    let mut w = Vec::new();
    let t = parse_tree("a 1\n{\n  b 2\n}\nc {\n d\n", &mut w);
    assert_eq!(words(&t[0]), ["a", "1"]);
    assert_eq!(words(&t[0].children()[0]), ["b", "2"]);
    assert_eq!(t[0].children()[0].line, 3);
    assert_eq!(words(&t[1]), ["c"]);
    assert_eq!(w.len(), 1);
    assert_eq!((w[0].1.line, w[0].1.keyword.as_str()), (5, "c"));
    let mut w = Vec::new();
    parse_tree("}\n", &mut w);
    assert_eq!(w[0].1.message, "closes no block, ignored");
}

#[test]
fn words_after_an_opening_brace_are_a_statement_of_the_block() {
    let (toml, w) = import("virtual_server 198.18.0.250 80 { stray\n lb_algo rr\n}\n");
    assert!(toml.contains("lb_algo = \"rr\""));
    assert_eq!(w.len(), 1);
    assert_eq!((w[0].line, w[0].keyword.as_str()), (1, "stray"));
}

#[test]
fn dr_real_server_port_follows_the_virtual_server() {
    let (toml, w) = import(
        "virtual_server 198.18.0.250 80 {\n lb_kind DR\n real_server 198.18.0.11 8080 {\n }\n}\n",
    );
    assert!(toml.contains("address = \"198.18.0.11:80\""), "{toml}");
    assert_eq!(w.len(), 1);
    assert!(w[0].message.contains("port 8080"));
    let (toml, w) = import(
        "virtual_server 2001:2::1 80 {\n lb_kind NAT\n real_server 2001:2::11 8080 {\n }\n}\n",
    );
    assert!(toml.contains("address = \"[2001:2::1]:80\""));
    assert!(toml.contains("address = \"[2001:2::11]:8080\""));
    assert!(w.is_empty());
}

#[test]
fn bad_numbers_are_reported_not_written() {
    let (toml, w) = import("vrrp_instance V {\n interface eth0\n priority high\n}\n");
    assert!(!toml.contains("priority"));
    assert_eq!(w[0].line, 3);
    assert_eq!(w[0].message, "`high` is not a number, dropped");
}

#[test]
fn health_keywords_quorum_scripts_alpha_bindto_and_status_ranges() {
    let (toml, w) = import(
        "virtual_server 198.18.0.250 80 {\n lb_kind DR\n alpha\n quorum_up /bin/up x\n quorum_down /bin/down\n\
          real_server 198.18.0.11 80 {\n  HTTP_GET {\n   url {\n    path /\n    status_code 200-299 302\n   }\n   bindto 198.18.0.2\n  }\n }\n}\n",
    );
    assert!(w.is_empty(), "{w:?}");
    assert!(toml.contains("alpha = true"), "{toml}");
    assert!(toml.contains("quorum_up = \"/bin/up x\""), "{toml}");
    assert!(toml.contains("quorum_down = \"/bin/down\""), "{toml}");
    assert!(toml.contains("status_code = \"200-299 302\""), "{toml}");
    assert!(toml.contains("bindto = \"198.18.0.2\""), "{toml}");
    let c = crate::config::parse_str(&toml, "out.toml").expect("the import parses");
    assert!(c.virtual_servers[0].alpha);
}

#[test]
fn script_user_and_group_are_mapped() {
    let (toml, w) = import("global_defs {\n  script_user nobody nogroup\n}\n");
    assert!(w.is_empty(), "{w:?}");
    let cfg = crate::config::parse_str(&toml, "x").unwrap();
    assert_eq!(cfg.global.script_user.as_deref(), Some("nobody"));
    assert_eq!(cfg.global.script_group.as_deref(), Some("nogroup"));
    let (toml, _) = import("global_defs {\n  script_user keepalived_script\n}\n");
    let cfg = crate::config::parse_str(&toml, "x").unwrap();
    assert_eq!(cfg.global.script_group, None);
    let (_, w) = import("global_defs {\n  script_user\n}\n");
    assert_eq!(w.len(), 1);
}

/// A keyword given twice in one block: keepalived keeps the last; the
/// import must too, and still write valid TOML (found by fuzzing).
#[test]
fn repeated_keywords_keep_the_last_and_stay_valid_toml() {
    let conf = "vrrp_instance VI_1 {\n  interface eth0\n  virtual_router_id 51\n  \
                priority 100\n  priority 150\n  notify_master \"/a x\"\n  \
                notify_master \"/b y\"\n}\n\
                virtual_server 198.18.0.1 80 {\n  lb_algo rr\n  lb_algo wrr\n  \
                real_server 198.18.0.11 80 {\n    weight 1\n    weight 3\n  }\n}\n";
    let (toml, w) = import(conf);
    let cfg = crate::config::parse_str(&toml, "x").unwrap_or_else(|e| panic!("{e}\n{toml}"));
    let v = &cfg.vrrp_instances[0];
    assert_eq!(v.priority, 150);
    assert_eq!(v.notify_master.as_deref(), Some("/b y"));
    assert_eq!(cfg.virtual_servers[0].real_servers[0].weight, 3);
    let repeated: Vec<usize> = w
        .iter()
        .filter(|w| w.message.contains("more than once"))
        .map(|w| w.line)
        .collect();
    assert_eq!(repeated, vec![5, 7, 11, 14], "{w:?}");
}

/// keepalived reads `+05`, `007` and `1.` as numbers; TOML does not: the
/// import writes them canonically (found by fuzzing).
#[test]
fn numbers_are_written_as_toml_numbers() {
    let conf = "vrrp_instance VI_1 {\n  interface eth0\n  virtual_router_id 051\n  \
                priority +00150\n  advert_int 1.\n}\n\
                virtual_server 198.18.0.1 80 {\n  persistence_timeout 0300\n  \
                persistence_granularity +24\n  \
                real_server 198.18.0.11 80 {\n    weight 007\n    uthreshold +00\n  }\n}\n";
    let (toml, _) = import(conf);
    let cfg = crate::config::parse_str(&toml, "x").unwrap_or_else(|e| panic!("{e}\n{toml}"));
    let v = &cfg.vrrp_instances[0];
    assert_eq!((v.virtual_router_id, v.priority), (51, 150));
    assert_eq!(cfg.virtual_servers[0].real_servers[0].weight, 7);
    assert!(toml.contains("advert_int = 1.0\n"), "{toml}");
    assert!(toml.contains("uthreshold = 0\n"), "{toml}");
}

/// Repeated keywords inside an HTTP_GET url block keep the last value
/// (found by fuzzing), and repeated checkers of one kind stay valid TOML.
#[test]
fn repeated_url_fields_and_checkers_stay_valid_toml() {
    let conf = "virtual_server 198.18.0.1 80 {\n  lb_algo rr\n  \
                real_server 198.18.0.11 80 {\n    HTTP_GET {\n      url {\n        \
                path /a\n        status_code 200\n        status_code 204\n      }\n    }\n    \
                TCP_CHECK {\n      connect_timeout 3\n    }\n    \
                TCP_CHECK {\n      connect_port 81\n    }\n    \
                HTTP_GET {\n      url {\n        path /b\n      }\n    }\n  }\n}\n";
    let (toml, w) = import(conf);
    if let Err(e) = toml.parse::<toml::Table>() {
        panic!("invalid TOML: {e}\n{toml}");
    }
    assert!(toml.contains("status_code = 204"), "{toml}");
    assert!(!toml.contains("status_code = 200"), "{toml}");
    assert!(
        w.iter()
            .any(|w| w.line == 8 && w.message.contains("more than once")),
        "{w:?}"
    );
}

#[test]
fn vrrp_scripts_tracking_and_sync_groups_are_mapped() {
    let conf = "global_defs {\n  enable_script_security\n}\n\
        vrrp_script chk_lvs {\n  script \"/usr/local/bin/check --fast\"\n  interval 2\n  \
        timeout 1\n  weight -60 reverse\n  fall 2\n  rise 3\n  user nobody\n  init_fail\n}\n\
        vrrp_instance VI_1 {\n  interface eth0\n  virtual_router_id 51\n  track_script {\n    \
        chk_lvs\n  }\n  track_interface {\n    eth1\n    eth2 weight -50\n    eth3 weight 5 reverse\n  }\n}\n\
        vrrp_instance VI_2 {\n  interface eth1\n  virtual_router_id 52\n  track_script {\n    \
        chk_lvs weight 0 noreverse\n  }\n}\n\
        vrrp_instance VI_3 {\n  interface eth1\n  virtual_router_id 53\n  track_script {\n    \
        chk_lvs weight 5 reverse\n  }\n}\n\
        vrrp_sync_group VG_1 {\n  group {\n    VI_2\n  }\n  notify_master /bin/m\n  \
        global_tracking\n}\n";
    let (toml, w) = import(conf);
    let cfg = crate::config::parse_str(&toml, "x").unwrap_or_else(|e| panic!("{e}\n{toml}"));
    let s = &cfg.vrrp_scripts[0];
    assert_eq!(s.name, "chk_lvs");
    assert_eq!(s.script, "/usr/local/bin/check --fast");
    assert_eq!(s.interval, std::time::Duration::from_secs(2));
    assert_eq!(s.timeout, std::time::Duration::from_secs(1));
    assert_eq!((s.weight, s.fall, s.rise), (-60, 2, 3));
    assert_eq!(s.user.as_deref(), Some("nobody"));
    assert!(s.reverse && s.init_fail);
    assert!(cfg.global.enable_script_security);
    let v1 = &cfg.vrrp_instances[0];
    assert_eq!(v1.track_script[0].name, "chk_lvs");
    assert_eq!(v1.track_script[0].weight, None);
    let ifs: Vec<(&str, i32)> = v1
        .track_interface
        .iter()
        .map(|t| (t.name.as_str(), t.weight))
        .collect();
    assert_eq!(ifs, [("eth1", 0), ("eth2", -50)]);
    assert_eq!(
        v1.track_script[0].reverse, None,
        "the script's reverse applies"
    );
    let t2 = &cfg.vrrp_instances[1].track_script[0];
    assert_eq!((t2.weight, t2.reverse), (Some(0), Some(false)));
    let t3 = &cfg.vrrp_instances[2].track_script[0];
    assert_eq!((t3.weight, t3.reverse), (Some(5), Some(true)));
    assert_eq!(cfg.vrrp_sync_groups[0].group, ["VI_2"]);
    assert_eq!(
        cfg.vrrp_sync_groups[0].notify_master.as_deref(),
        Some("/bin/m")
    );
    // What is not mapped is reported with its line.
    let lines: Vec<(usize, &str)> = w.iter().map(|w| (w.line, w.keyword.as_str())).collect();
    assert_eq!(lines, [(23, "eth3"), (45, "global_tracking")], "{w:?}");
}

#[test]
fn lvs_sync_daemon_becomes_the_global_sync_table() {
    let conf = "global_defs {\n  lvs_sync_daemon eth1 VI_1 id 7 maxlen 1400 port 9000 ttl 2 group 239.1.1.1\n}\n\
                vrrp_instance VI_1 {\n  state MASTER\n  interface eth0\n  virtual_router_id 51\n  \
                priority 100\n  virtual_ipaddress {\n    198.18.0.250/32\n  }\n}\n";
    let (toml, warnings) = import(conf);
    assert!(warnings.is_empty(), "{warnings:?}");
    let c = crate::config::parse_str(&toml, "lb.toml").unwrap_or_else(|e| panic!("{e}\n{toml}"));
    let d = c.global.lvs_sync_daemon.expect("the sync daemon");
    assert_eq!(
        (d.interface.as_str(), d.vrrp_instance.as_deref(), d.syncid),
        ("eth1", Some("VI_1"), 7)
    );
    assert_eq!((d.maxlen, d.port, d.ttl), (Some(1400), 9000, 2));
    assert_eq!(d.group.to_string(), "239.1.1.1");
    // Without id: the instance's virtual_router_id.
    let (toml, _) = import(&conf.replace(" id 7", ""));
    let c = crate::config::parse_str(&toml, "lb.toml").unwrap();
    assert_eq!(c.global.lvs_sync_daemon.unwrap().syncid, 51);
    let (_, warnings) = import(&conf.replace(" id 7", " bogus 7"));
    assert!(
        warnings.iter().any(|w| w.message.contains("bogus")),
        "{warnings:?}"
    );
}

#[test]
fn tunnel_types_of_lvs_method_become_tun_keys() {
    // keepalived: `lvs_method TUN type T port P F` on the virtual server
    // (every real server's start) and on a real server (its own).
    let conf = "virtual_server 198.18.0.250 80 {\n lvs_method TUN type gue port 6080 csum\n\
                real_server 198.18.0.11 80 {\n }\n\
                real_server 198.18.0.12 80 {\n  lvs_method TUN type gre\n }\n\
                real_server 198.18.0.13 80 {\n  lvs_method TUN type ipip\n }\n\
                real_server 198.18.0.14 80 {\n  lvs_method TUN remcsum\n }\n}\n";
    let (toml, w) = import(conf);
    // `TUN remcsum` is ipip with a checksum option: refused with its line,
    // and the server keeps the virtual server's tunnel, as in keepalived.
    assert_eq!(w.len(), 1, "{w:?}");
    assert_eq!(
        (w[0].line, w[0].message.as_str()),
        (12, "ipip tunnels do not support checksum option, dropped")
    );
    let c = crate::config::parse_str(&format!("[global]\ninterface = \"lf0\"\n{toml}"), "lb.toml")
        .unwrap_or_else(|e| panic!("{e}\n{toml}"));
    let rs = &c.virtual_servers[0].real_servers;
    let t = |i: usize| (rs[i].tun.kind.name(), rs[i].tun.port, rs[i].tun.csum.name());
    assert_eq!(
        c.virtual_servers[0].lb_kind,
        crate::service::FwdMethod::Tunnel
    );
    assert_eq!(t(0), ("gue", 6080, "csum"));
    // A real server's TUN line gives its whole tunnel.
    assert_eq!(t(1), ("gre", 0, "nocsum"));
    assert_eq!(t(3), ("gue", 6080, "csum"));
    assert_eq!(t(2).0, "ipip");
}

#[test]
fn wrong_tunnel_words_are_named_with_their_line() {
    for (words, msg) in [
        (
            "TUN type gue",
            "gue tunnels require port, otherwise cannot have port, dropped",
        ),
        (
            "TUN type gre port 6080",
            "gue tunnels require port, otherwise cannot have port, dropped",
        ),
        (
            "TUN type ipip csum",
            "ipip tunnels do not support checksum option, dropped",
        ),
        (
            "TUN type gre remcsum",
            "gre tunnels do not support remote checksum option, dropped",
        ),
        ("TUN type vxlan", "unknown tunnel type vxlan, dropped"),
        ("TUN type gue port 0", "invalid gue tunnel port, dropped"),
        ("TUN fast", "invalid tunnel option fast, dropped"),
        ("DR type gre", "tunnel options without TUN, ignored"),
    ] {
        let (toml, w) = import(&format!(
            "virtual_server 198.18.0.250 80 {{\n lvs_method {words}\n real_server 198.18.0.11 80 {{\n }}\n}}\n"
        ));
        assert_eq!(w.len(), 1, "{words}: {w:?}");
        assert_eq!((w[0].line, w[0].message.as_str()), (2, msg), "{words}");
        assert!(!toml.contains("tun_"), "{words}: {toml}");
    }
    // A real server's other method cannot be expressed: named, dropped.
    let (_, w) = import(
        "virtual_server 198.18.0.250 80 {\n lvs_method TUN\n real_server 198.18.0.11 80 {\n  lvs_method DR\n }\n}\n",
    );
    assert_eq!(w[0].line, 4);
    assert!(
        w[0].message.contains("one lb_kind per virtual server"),
        "{w:?}"
    );
}

#[test]
fn fwmark_and_group_virtual_servers_are_mapped() {
    let conf = "virtual_server_group web {\n  198.18.0.1-3 80\n  198.18.0.20 443\n  fwmark 7\n  198.18.0.30\n}\n\
virtual_server group web {\n  lb_algo rr\n  lb_kind DR\n  real_server 198.18.0.11 80 {\n  }\n}\n\
virtual_server fwmark 1 {\n  lb_algo rr\n  lb_kind DR\n  persistence_timeout 60\n  real_server 198.18.0.12 80 {\n  }\n}\n\
virtual_server fwmark 2 {\n  lb_kind NAT\n  real_server 198.18.0.13 8080 {\n  }\n}\n";
    let (toml, w) = import(conf);
    assert!(
        toml.contains(
            "name = \"web\"\nmembers = [\"198.18.0.1-3:80\", \"198.18.0.20:443\", \"fwmark 7\"]"
        ),
        "{toml}"
    );
    assert!(toml.contains("group = \"web\""), "{toml}");
    assert!(toml.contains("fwmark = 1"), "{toml}");
    // DR servers of a group or fwmark service take each service's port.
    assert!(toml.contains("address = \"198.18.0.11\"\n"), "{toml}");
    assert!(toml.contains("address = \"198.18.0.12\"\n"), "{toml}");
    assert!(toml.contains("address = \"198.18.0.13:8080\"\n"), "{toml}");
    // Warnings: the member without a port, and each mark's missing rule.
    let lines: Vec<(usize, &str)> = w.iter().map(|w| (w.line, w.keyword.as_str())).collect();
    assert_eq!(
        lines,
        [
            (4, "fwmark"),
            (5, "198.18.0.30"),
            (13, "virtual_server"),
            (20, "virtual_server")
        ],
        "{w:?}"
    );
    assert!(
        w[2].message.contains("add a [[fwmark]] rule with mark = 1"),
        "{}",
        w[2].message
    );
    // `check` accepts the result (without rules nothing reaches the fwmark
    // services, as with IPVS without the iptables rules).
    let c = crate::config::parse_str(&toml, "out.toml").expect("the import parses");
    let keys: Vec<String> = c
        .service_specs()
        .iter()
        .map(|s| s.key.to_string())
        .collect();
    assert_eq!(
        keys,
        [
            "TCP 198.18.0.1:80",
            "TCP 198.18.0.2:80",
            "TCP 198.18.0.3:80",
            "TCP 198.18.0.20:443",
            "FWM  7",
            "FWM  1",
            "FWM  2"
        ]
    );
}

#[test]
fn lvs_timeouts_any_subset_to_timeouts() {
    use std::time::Duration;
    let d = crate::config::Timeouts::default();
    // A subset in any order; a repeated option keeps the last value.
    let (toml, w) =
        import("global_defs {\n lvs_timeouts udp 60 tcp 7200\n lvs_timeouts tcp 3600\n}\n");
    assert_eq!(w, []);
    assert!(
        toml.contains("\n[timeouts]\ntcp = 3600\nudp = 60\n"),
        "{toml}"
    );
    let c = crate::config::parse_str(&toml, "lb.toml").unwrap_or_else(|e| panic!("{e}\n{toml}"));
    assert_eq!(c.timeouts.tcp, Duration::from_secs(3600));
    assert_eq!(c.timeouts.tcp_fin, d.tcp_fin);
    assert_eq!(c.timeouts.udp, Duration::from_secs(60));

    let (toml, _) = import("global_defs {\n lvs_timeouts tcpfin 30\n}\n");
    let c = crate::config::parse_str(&toml, "lb.toml").unwrap_or_else(|e| panic!("{e}\n{toml}"));
    assert_eq!(c.timeouts.tcp_fin, Duration::from_secs(30));
    assert_eq!((c.timeouts.tcp, c.timeouts.udp), (d.tcp, d.udp));
    // keepalived's maximum, 31 days, is lb.toml's too.
    let (toml, w) = import("global_defs {\n lvs_timeouts udp 2678400\n}\n");
    assert_eq!(w, []);
    crate::config::parse_str(&toml, "lb.toml").unwrap_or_else(|e| panic!("{e}\n{toml}"));
}

#[test]
fn lvs_timeouts_bad_values_named_with_their_line() {
    let (toml, w) = import(
        "global_defs {\n lvs_timeouts\n lvs_timeouts tcp x tcpfin 0 bogus udp 2678401\n \
         lvs_timeouts udp 10 tcp\n}\n",
    );
    let got: Vec<(usize, &str, &str)> = w
        .iter()
        .map(|w| (w.line, w.keyword.as_str(), w.message.as_str()))
        .collect();
    let kw = "lvs_timeouts";
    assert_eq!(
        got,
        [
            (2, kw, "needs at least one of tcp N, tcpfin N, udp N"),
            (
                3,
                kw,
                "tcp `x` is not a number of seconds from 0 to 2678400, dropped"
            ),
            (
                3,
                kw,
                "tcpfin 0 leaves the timeout unchanged; lb.toml's default applies"
            ),
            (3, kw, "`bogus`: not an lvs_timeouts option, dropped"),
            (
                3,
                kw,
                "udp `2678401` is not a number of seconds from 0 to 2678400, dropped"
            ),
            (4, kw, "tcp needs a value, dropped"),
        ]
    );
    // Only the good value is written.
    assert!(toml.contains("\n[timeouts]\nudp = 10\n"), "{toml}");
    assert!(!toml.contains("tcp ="), "{toml}");
    crate::config::parse_str(&toml, "lb.toml").unwrap_or_else(|e| panic!("{e}\n{toml}"));
}

#[test]
fn import_of_text_reports_an_include() {
    // import() has no file: the include is reported, not followed.
    let (_, w) = import("include /x/*.conf\nbogus 1\n");
    assert_eq!(w.len(), 2);
    assert_eq!((w[0].file.as_ref(), w[0].line), (None, 1));
    assert!(w[0].message.contains("not followed from text"), "{w:?}");
}

#[test]
fn vrrp_mcast_groups_become_global_keys() {
    let conf = "global_defs {\n  vrrp_mcast_group4 224.0.0.19\n  vrrp_mcast_group6 ff02::13\n}\n\
                vrrp_instance VI_1 {\n  interface eth0\n  virtual_router_id 51\n  \
                virtual_ipaddress {\n    198.18.0.250/32\n  }\n}\n";
    let (toml, warnings) = import(conf);
    assert!(warnings.is_empty(), "{warnings:?}");
    let c = crate::config::parse_str(&toml, "lb.toml").unwrap_or_else(|e| panic!("{e}\n{toml}"));
    assert_eq!(c.global.vrrp_mcast_group4.to_string(), "224.0.0.19");
    assert_eq!(c.global.vrrp_mcast_group6.to_string(), "ff02::13");
    // Alone in global_defs, it still makes a [global] table.
    let (toml, _) = import("global_defs {\n  vrrp_mcast_group4 224.0.0.20\n}\n");
    let c = crate::config::parse_str(&toml, "lb.toml").unwrap_or_else(|e| panic!("{e}\n{toml}"));
    assert_eq!(c.global.vrrp_mcast_group4.to_string(), "224.0.0.20");
    // A unicast address is copied, and check refuses it with its line.
    let (toml, _) = import("global_defs {\n  vrrp_mcast_group4 198.18.0.1\n}\n");
    let e = crate::config::parse_str(&toml, "lb.toml")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("vrrp_mcast_group4: `198.18.0.1` is not a multicast address"),
        "{e}"
    );
    let (_, warnings) = import("global_defs {\n  vrrp_mcast_group6\n}\n");
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert_eq!(warnings[0].line, 2);
}

#[test]
fn misc_check_user_and_group_are_mapped() {
    let conf = "virtual_server 198.18.0.250 80 {\n  lb_kind DR\n  real_server 198.18.0.11 80 {\n    \
                MISC_CHECK {\n      misc_path /bin/true\n      user nobody daemon\n    }\n    \
                MISC_CHECK {\n      misc_path /bin/false\n      user nobody\n    }\n    \
                MISC_CHECK {\n      misc_path /bin/false\n      user\n    }\n  }\n}\n";
    let (toml, w) = import(conf);
    let cfg = crate::config::parse_str(&toml, "x").unwrap_or_else(|e| panic!("{e}\n{toml}"));
    let users: Vec<(Option<&str>, Option<&str>)> = cfg.virtual_servers[0].real_servers[0]
        .checks
        .iter()
        .map(|c| match &c.kind {
            crate::config::CheckKind::Misc(m) => (m.user.as_deref(), m.group.as_deref()),
            k => panic!("{k:?}"),
        })
        .collect();
    assert_eq!(
        users,
        [
            (Some("nobody"), Some("daemon")),
            (Some("nobody"), None),
            (None, None)
        ]
    );
    let lines: Vec<(usize, &str)> = w.iter().map(|w| (w.line, w.keyword.as_str())).collect();
    assert_eq!(lines, [(14, "user")], "{w:?}");
}

#[test]
fn an_ipv6_group_range_is_mapped_and_expanded() {
    // keepalived's range end is hexadecimal for IPv6: 1-10 is 16 addresses.
    let conf = "virtual_server_group v6 {\n  2001:2::1-10 80\n  2001:2::ff 443\n}\n\
virtual_server group v6 {\n  lb_algo rr\n  lb_kind DR\n  real_server 2001:2::100 80 {\n  }\n}\n";
    let (toml, w) = import(conf);
    assert!(w.is_empty(), "{w:?}");
    assert!(
        toml.contains("members = [\"[2001:2::1-10]:80\", \"[2001:2::ff]:443\"]"),
        "{toml}"
    );
    let cfg = crate::config::parse_str(&toml, "x").unwrap_or_else(|e| panic!("{e}\n{toml}"));
    let keys: Vec<String> = cfg
        .service_specs()
        .iter()
        .map(|s| s.key.to_string())
        .collect();
    assert_eq!(keys.len(), 17);
    assert_eq!(keys[0], "TCP [2001:2::1]:80");
    assert_eq!(keys[9], "TCP [2001:2::a]:80");
    assert_eq!(keys[15], "TCP [2001:2::10]:80");
    assert_eq!(keys[16], "TCP [2001:2::ff]:443");
}

#[test]
fn ssl_get_tls_compliant_is_mapped_for_the_checker_and_its_urls() {
    let conf = "virtual_server 198.18.0.250 443 {\n  lb_kind DR\n  real_server 198.18.0.11 443 {\n    \
                SSL_GET {\n      tls_compliant\n      url {\n        path /a\n        tls_compliant off\n      }\n      \
                url {\n        path /b\n        tls_compliant\n      }\n    }\n    \
                HTTP_GET {\n      tls_compliant\n      url {\n        path /c\n        tls_compliant\n      }\n    }\n  }\n}\n";
    let (toml, w) = import(conf);
    let cfg = crate::config::parse_str(&toml, "x").unwrap_or_else(|e| panic!("{e}\n{toml}"));
    let checks = &cfg.virtual_servers[0].real_servers[0].checks;
    let ssl = checks
        .iter()
        .find(|c| matches!(c.kind, crate::config::CheckKind::Ssl(_)));
    match &ssl.unwrap().kind {
        crate::config::CheckKind::Ssl(h) => {
            assert!(h.tls_compliant);
            assert_eq!(
                (h.urls[0].tls_compliant, h.urls[1].tls_compliant),
                (false, true)
            );
        }
        k => panic!("{k:?}"),
    }
    // HTTP_GET has no tls_compliant in keepalived either.
    let lines: Vec<(usize, &str)> = w.iter().map(|w| (w.line, w.keyword.as_str())).collect();
    assert_eq!(
        lines,
        [(16, "tls_compliant"), (19, "tls_compliant")],
        "{w:?}"
    );
}
