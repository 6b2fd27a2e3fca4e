//! `lvsfwd import-keepalived` of every checker keyword (issue 14): the
//! output passes `lvsfwd check`, means what keepalived means, and every
//! keyword lvsfwd does not implement is named with its line.

use std::net::IpAddr;
use std::process::Command;
use std::time::Duration;

use lvsfwd::config::keepalived::import;
use lvsfwd::config::{CheckKind, HealthCheck, HttpProtocol, parse_str};
use lvsfwd::service::FwdMethod;

fn fixture() -> String {
    std::fs::read_to_string(format!(
        "{}/tests/fixtures/keepalived_checkers.conf",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[test]
fn every_checker_keyword_maps_and_the_rest_is_named_with_its_line() {
    let (toml, w) = import(&fixture());
    let cfg = parse_str(&toml, "lb.toml").unwrap_or_else(|e| panic!("{e}\n{toml}"));
    let named: Vec<(usize, &str)> = w.iter().map(|w| (w.line, w.keyword.as_str())).collect();
    assert!(named.is_empty(), "{named:?}\n{toml}");

    let vs = &cfg.virtual_servers[0];
    assert!(vs.sorry_server_inhibit && vs.omega && vs.ha_suspend);
    assert_eq!(vs.sorry_server_lvs_method, Some(FwdMethod::Masq));
    let rs = &vs.real_servers[0];
    let by_kind = |pick: fn(&CheckKind) -> bool| -> Vec<&HealthCheck> {
        rs.checks.iter().filter(|c| pick(&c.kind)).collect()
    };
    // SSL_GET: the real server's timers over the virtual server's.
    let ssl = by_kind(|k| matches!(k, CheckKind::Ssl(_)))[0];
    assert_eq!(
        (
            ssl.retry,
            ssl.delay_before_retry,
            ssl.warmup,
            ssl.delay_loop,
            ssl.alpha
        ),
        (
            4,
            Duration::from_secs(2),
            Duration::from_secs(1),
            Duration::from_secs(5),
            true
        )
    );
    let CheckKind::Ssl(h) = &ssl.kind else {
        unreachable!()
    };
    assert_eq!(h.http_protocol, HttpProtocol::V11);
    assert!(h.fast_recovery, "fast_recovery (line 43)");
    assert!(h.enable_sni);
    assert_eq!(h.sni_name.as_deref(), Some("tls.example"));
    assert_eq!(h.virtualhost.as_deref(), Some("rs.example"));
    assert_eq!(h.connect.connect_timeout, Duration::from_secs(3));
    assert_eq!(
        (
            h.connect.bindto,
            h.connect.bind_port,
            h.connect.bind_if.as_deref()
        ),
        (Some(ip("198.18.0.2")), Some(3000), Some("lf-eth0"))
    );
    assert_eq!(h.urls[0].status_code, vec![200..=299, 302..=302]);
    assert_eq!(h.urls[0].regex.as_deref(), Some("(?im)state=(up|ok)"));
    assert_eq!(h.urls[0].virtualhost.as_deref(), Some("url.example"));
    assert!(!h.urls[0].regex_no_match);
    assert!(h.urls[1].regex_no_match && h.urls[1].digest.is_some());

    let http = by_kind(|k| matches!(k, CheckKind::Http(_)))[0];
    assert_eq!((http.warmup, http.alpha), (Duration::ZERO, false));
    let CheckKind::Http(g) = &http.kind else {
        unreachable!()
    };
    assert_eq!(g.http_protocol, HttpProtocol::V10Close);
    assert_eq!(g.virtualhost.as_deref(), Some("chk.example"));

    let ping = by_kind(|k| matches!(k, CheckKind::Ping(_)))[0];
    assert!(
        matches!(&ping.kind, CheckKind::Ping(c) if c.connect_ip == ip("198.18.0.111") && c.fwmark == Some(7))
    );
    assert!(ping.log_all_failures);
    assert_eq!(ping.retry, 1);

    // SMTP_CHECK with its own connection keys and a host block: two
    // checkers with the same helo_name.
    let smtp: Vec<_> = rs
        .checks
        .iter()
        .filter_map(|c| match &c.kind {
            CheckKind::Smtp(s) => Some((
                s.connect.connect_ip,
                s.connect.connect_port,
                s.helo_name.as_str(),
            )),
            _ => None,
        })
        .collect();
    assert_eq!(
        smtp,
        [
            (ip("198.18.0.11"), 25, "lb.example"),
            (ip("198.18.0.12"), 2525, "lb.example")
        ]
    );

    let udp_rs = &cfg.virtual_servers[1].real_servers[0];
    // The virtual server's weight and inhibit_on_failure, inherited.
    assert_eq!((udp_rs.weight, udp_rs.inhibit_on_failure), (3, true));
    let kinds: Vec<&CheckKind> = udp_rs.checks.iter().map(|c| &c.kind).collect();
    match kinds.as_slice() {
        [
            CheckKind::Dns(d),
            CheckKind::Udp(u1),
            CheckKind::Udp(u2),
            CheckKind::Misc(m),
        ] => {
            assert_eq!((d.qtype, d.name.as_str()), (1, "rig.test."));
            assert_eq!(udp_rs.checks[0].retry, 2);
            assert_eq!(u1.payload.as_deref(), Some(&[1, 2, 0xab][..]));
            assert_eq!(u1.reply, Some((vec![0x6f, 0x60], vec![0, 0x0f])));
            assert_eq!((u1.min_reply_length, u1.max_reply_length), (2, 100));
            assert_eq!(u1.connect.connect_port, 7);
            assert!(!u2.require_reply);
            assert_eq!(u2.connect.connect_timeout, Duration::from_secs(1));
            assert_eq!(m.misc_path, "/bin/check 53");
            // MISC_CHECK `user nobody`: the script runs as nobody.
            assert_eq!(
                (m.user.as_deref(), m.group.as_deref()),
                (Some("nobody"), None)
            );
            assert_eq!(udp_rs.checks[3].retry, 1);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn lvsfwd_check_accepts_the_import() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("keepalived.conf");
    std::fs::write(&conf, fixture()).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_lvsfwd"))
        .arg("import-keepalived")
        .arg(&conf)
        .output()
        .unwrap();
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("fast_recovery"), "{stderr}");
    let lb = dir.path().join("lb.toml");
    std::fs::write(&lb, &out.stdout).unwrap();
    let check = Command::new(env!("CARGO_BIN_EXE_lvsfwd"))
        .args(["check", "--config"])
        .arg(&lb)
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&check.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
}
