//! Persistence, timers across capture timestamps, the connection listing
//! and the seed 004 director script's table, through `lvsfwd replay`.

mod common;
use common::*;
use std::collections::{HashMap, HashSet};

const VIP: &str = "198.18.0.250";

/// seed 004's lvs-DR.sh: `ipvsadm -A -t $VIP:10087 -s wrr -p 60` and three
/// real servers with `-g -w 2`, `-w 1`, `-w 1`.
fn seed004() -> String {
    config(
        r#"[[virtual_server]]
address = "198.18.0.120:10087"
protocol = "TCP"
lb_algo = "wrr"
lb_kind = "DR"
persistence_timeout = 60
  [[virtual_server.real_server]]
  address = "198.18.1.102:10087"
  weight = 2
  mac = "02:5e:00:00:00:66"
  [[virtual_server.real_server]]
  address = "198.18.1.103:10087"
  weight = 1
  mac = "02:5e:00:00:00:67"
  [[virtual_server.real_server]]
  address = "198.18.1.104:10087"
  weight = 1
  mac = "02:5e:00:00:00:68"
"#,
    )
}

#[test]
fn seed_004_director_split_and_stickiness() {
    // 100 clients, 4 connections each, within the 60 s persistence window;
    // every connection is a full handshake, a request and a close.
    let mut frames = Vec::new();
    let mut owner = Vec::new();
    for k in 0..4u16 {
        for i in 0..100u16 {
            let c = format!("198.18.{}.{}", 100 + i / 50, 1 + i % 50);
            let t = 1.0 + k as f64 * 10.0 + i as f64 * 0.05;
            let port = 30000 + k;
            for (dt, f) in [(0.0, SYN), (0.001, ACK), (0.002, PSHACK), (0.003, FINACK)] {
                frames.push((t + dt, tcp(&c, port, "198.18.0.120", 10087, f)));
                owner.push(i);
            }
        }
    }
    let r = replay(&seed004(), &frames, &["--stats", "--dump-conns"]);
    assert_eq!(r.summary(), (1600, 1600, 0, 0));
    let rs = rs_of(&r.out);
    let mut per_client: HashMap<u16, HashSet<u8>> = HashMap::new();
    for (o, x) in owner.iter().zip(rs.iter()) {
        per_client.entry(*o).or_default().insert(*x);
    }
    assert!(
        per_client.values().all(|s| s.len() == 1),
        "every client sticks to one real server"
    );
    let mut clients = HashMap::new();
    for s in per_client.values() {
        *clients.entry(*s.iter().next().unwrap()).or_insert(0) += 1;
    }
    assert_eq!(
        (clients[&0x66], clients[&0x67], clients[&0x68]),
        (50, 25, 25),
        "wrr 2:1:1 over the clients' first connections"
    );
    let stats = stats_conns(&r.stdout);
    assert_eq!(
        stats,
        vec![
            ("198.18.1.102:10087".to_string(), 200),
            ("198.18.1.103:10087".to_string(), 100),
            ("198.18.1.104:10087".to_string(), 100),
        ],
        "{}",
        r.stdout
    );
    // One template per client: <caddr, 0, vaddr, vport, daddr, dport>.
    let rows = conn_rows(&r.stdout);
    let templates: Vec<&ConnRow> = rows.iter().filter(|c| c.source.ends_with(":0")).collect();
    assert_eq!(templates.len(), 100, "{}", r.stdout);
    assert!(
        templates
            .iter()
            .all(|t| t.state == "NONE" && t.virt == "198.18.0.120:10087")
    );
}

fn rr2(extra: &str) -> String {
    config(&vs4(
        &format!("{VIP}:80"),
        "rr",
        "DR",
        &[(11, 80, 1), (12, 80, 1)],
        extra,
    ))
}

#[test]
fn persistence_template_keeps_a_client_then_expires() {
    // rr over the kernel list [12, 11].
    let frames = vec![
        (0.0, tcp("198.18.100.1", 1001, VIP, 80, SYN)), // A -> 12 (template)
        (1.0, tcp("198.18.101.1", 1001, VIP, 80, SYN)), // B -> 11
        (2.0, tcp("198.18.102.1", 1001, VIP, 80, SYN)), // C -> 12
        (3.0, tcp("198.18.100.1", 1002, VIP, 80, SYN)), // A: rr says 11, template says 12
        (200.0, tcp("198.18.100.1", 1003, VIP, 80, SYN)), // template gone: rr -> 11
    ];
    let r = replay(&rr2("persistence_timeout = 60"), &frames, &[]);
    assert_eq!(rs_of(&r.out), vec![12, 11, 12, 12, 11]);
    let r = replay(&rr2(""), &frames, &[]);
    assert_eq!(
        rs_of(&r.out),
        vec![12, 11, 12, 11, 12],
        "without persistence: plain rr"
    );
}

#[test]
fn persistence_granularity_groups_clients_by_netmask() {
    let frames = vec![
        (0.0, tcp("198.18.100.1", 1001, VIP, 80, SYN)), // -> 12
        (1.0, tcp("198.18.100.2", 1001, VIP, 80, SYN)), // same /24 -> 12
        (2.0, tcp("198.18.101.1", 1001, VIP, 80, SYN)), // -> 11
    ];
    let r = replay(
        &rr2("persistence_timeout = 60\npersistence_granularity = \"255.255.255.0\""),
        &frames,
        &["--dump-conns"],
    );
    assert_eq!(rs_of(&r.out), vec![12, 12, 11]);
    let rows = conn_rows(&r.stdout);
    assert!(
        rows.iter().any(|c| c.source == "198.18.100.0:0"),
        "{}",
        r.stdout
    );
}

#[test]
fn timers_follow_capture_time() {
    let cfg = config(&format!(
        "{}\n{}",
        vs4(&format!("{VIP}:80"), "rr", "DR", &[(11, 80, 1)], ""),
        r#"[[virtual_server]]
address = "198.18.0.250:53"
protocol = "UDP"
lb_kind = "DR"
  [[virtual_server.real_server]]
  address = "198.18.1.11:53"
  mac = "02:5e:00:00:00:0b"
"#
    ));
    let base = vec![
        (0.0, tcp("198.18.100.1", 1001, VIP, 80, SYN)),
        (1.0, tcp("198.18.100.1", 1001, VIP, 80, ACK)),
        (0.5, udp("198.18.100.1", 5353, VIP, 53, b"q")),
    ];
    let mut frames = base.clone();
    frames[2].0 = 1.0;
    frames.push((100.0, tcp("198.18.100.2", 1001, VIP, 22, SYN))); // clock tick only
    let r = replay(&cfg, &frames, &["--dump-conns"]);
    let rows = conn_rows(&r.stdout);
    let tcp_row = rows.iter().find(|c| c.proto == "TCP").unwrap();
    assert_eq!(tcp_row.state, "ESTABLISHED");
    assert_eq!(tcp_row.expire, "13:21", "900 s from t=1, seen at t=100");
    let udp_row = rows.iter().find(|c| c.proto == "UDP").unwrap();
    assert_eq!(udp_row.expire, "03:21", "300 s from t=1, seen at t=100");

    // Past the ESTABLISHED timeout the connection is gone: a bare ACK no
    // longer matches and goes to the kernel (which answers RST, as with
    // IPVS); a new SYN is scheduled afresh.
    let mut late = base;
    late[2].0 = 1.0;
    late.push((902.0, tcp("198.18.100.1", 1001, VIP, 80, ACK)));
    late.push((903.0, tcp("198.18.100.1", 1001, VIP, 80, SYN)));
    let r = replay(&cfg, &late, &["--dump-conns"]);
    assert_eq!(r.summary(), (5, 4, 1, 0));
    assert_eq!(r.kernel("no_conn"), 1);
    let rows = conn_rows(&r.stdout);
    assert_eq!(
        rows.len(),
        1,
        "UDP expired at 301 s, TCP re-created: {}",
        r.stdout
    );
    assert_eq!(rows[0].state, "SYN_RECV");
}

#[test]
fn configured_timeouts_override_ipvs_defaults() {
    let cfg = config(&format!(
        "[timeouts]\ntcp = 60\ntcp_fin = 10\nudp = 30\n\n{}",
        vs4(&format!("{VIP}:80"), "rr", "DR", &[(11, 80, 1)], "")
    ));
    let frames = vec![
        (0.0, tcp("198.18.100.1", 1001, VIP, 80, SYN)),
        (1.0, tcp("198.18.100.1", 1001, VIP, 80, ACK)),
        (31.0, tcp("198.18.100.2", 1001, VIP, 22, SYN)),
    ];
    let r = replay(&cfg, &frames, &["--dump-conns"]);
    let rows = conn_rows(&r.stdout);
    assert_eq!(rows[0].state, "ESTABLISHED");
    assert_eq!(rows[0].expire, "00:30", "tcp = 60 from t=1, seen at t=31");
}
