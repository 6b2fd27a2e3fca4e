//! `lvsfwd replay` over the tunnels: mixed-family TUN both ways, GUE and
//! GRE from lb.toml, every emitted checksum verified (tests/common's
//! `emitted`, which also checks the packet inside an IPIP outer header).
#![forbid(unsafe_code)]

mod common;
use common::*;

const VIP4: &str = "198.18.0.250";
const VIP6: &str = "2001:2::250";

/// One TUN virtual server on `vip`:80 with one real server `rs` (its MAC
/// set) and the real server's extra lb.toml `keys`.
fn tun(vip: &str, rs: &str, keys: &str) -> String {
    let addr = |a: &str, p: u16| {
        if a.contains(':') {
            format!("[{a}]:{p}")
        } else {
            format!("{a}:{p}")
        }
    };
    config(&format!(
        "[[virtual_server]]\naddress = \"{}\"\nprotocol = \"TCP\"\nlb_algo = \"rr\"\nlb_kind = \"TUN\"\n\
         [[virtual_server.real_server]]\n  address = \"{}\"\n  mac = \"{}\"\n{keys}",
        addr(vip, 80),
        addr(rs, 80),
        rs_mac_str(1)
    ))
}

const OWN: [&str; 4] = ["--ip", "198.18.0.2", "--ip", "2001:2::2"];

#[test]
fn tun_across_families_both_ways() {
    let r = replay(
        &tun(VIP4, "2001:2::1:11", ""),
        &[(1.0, tcp("198.18.100.3", 40004, VIP4, 80, SYN))],
        &OWN,
    );
    assert_eq!(r.summary(), (1, 1, 0, 0), "{}", r.stderr);
    let e = emitted(&r.out[0].1);
    assert_eq!(
        (e.proto, e.src, e.dst),
        (4, ip("2001:2::2"), ip("2001:2::1:11"))
    );
    assert_eq!(e.dmac, rs_mac(1));
    let r = replay(
        &tun(VIP6, "198.18.1.11", ""),
        &[(1.0, tcp("2001:2::100:1", 40003, VIP6, 80, SYN))],
        &OWN,
    );
    assert_eq!(r.summary(), (1, 1, 0, 0), "{}", r.stderr);
    let e = emitted(&r.out[0].1);
    assert_eq!(
        (e.proto, e.src, e.dst),
        (41, ip("198.18.0.2"), ip("198.18.1.11"))
    );
}

#[test]
fn gue_and_gre_from_lb_toml() {
    let syn = tcp("198.18.100.3", 40004, VIP4, 80, SYN);
    let r = replay(
        &tun(
            VIP4,
            "198.18.1.11",
            "  tun_type = \"gue\"\n  tun_port = 6080\n  tun_flags = \"csum\"\n",
        ),
        &[(1.0, syn.clone())],
        &OWN,
    );
    assert_eq!(r.summary(), (1, 1, 0, 0), "{}", r.stderr);
    let e = emitted(&r.out[0].1);
    assert_eq!((e.proto, e.dport), (17, 6080));
    assert!((32768..=60999).contains(&e.sport));
    assert_ne!(&e.ip[26..28], &[0, 0], "UDP checksum set (and verified)");
    assert_eq!(&e.ip[28..32], &[0, 4, 0, 0], "GUE header");
    check_ip(&e.ip[32..], 0x0800);
    let r = replay(
        &tun(
            VIP4,
            "2001:2::1:11",
            "  tun_type = \"gre\"\n  tun_flags = \"csum\"\n",
        ),
        &[(1.0, syn)],
        &OWN,
    );
    assert_eq!(r.summary(), (1, 1, 0, 0), "{}", r.stderr);
    let e = emitted(&r.out[0].1);
    assert_eq!(e.proto, 47);
    assert_eq!(
        &e.ip[40..44],
        &[0x80, 0, 0x08, 0x00],
        "GRE C flag, IPv4 inside"
    );
    assert_eq!(naive_sum(&[&e.ip[40..]]), 0xffff, "GRE checksum");
    check_ip(&e.ip[48..], 0x0800);
}
