//! tshark, an independent decoder, reads every tunnel the data plane builds:
//! IPv4 in IPv6 and IPv6 in IPv4 (IPIP across families), GRE with and
//! without its checksum over both outer families, and GUE's outer UDP
//! datagram with its checksum (zero, which tshark accepts only over IPv4
//! or with `udp.ignore_ipv6_zero_checksum`, and a computed one). tshark
//! 4.0 has no GUE dissector: the GUE header is checked byte by byte and the
//! packet behind it decoded by tshark on its own.
#![forbid(unsafe_code)]

mod common;
use common::*;

use std::process::Command;

use lvsfwd::config;
use lvsfwd::dataplane::{Dataplane, DataplaneConfig, Verdict};
use lvsfwd::dest::{DestSpec, TunCsum, TunType, TunnelSpec};
use lvsfwd::sched::SchedKind;
use lvsfwd::service::{FwdMethod, Protocol, ServiceKey, ServiceSpec, ServiceTable};
use lvsfwd::time::Timestamp;
use lvsfwd::wire::FrameBuf;

const HEADROOM: usize = 256;
const CLIENT4: &str = "198.18.5.1";
const CLIENT6: &str = "2001:2:5::1";

/// The frame a client's SYN to `vip`:80 leaves as, towards `rs` under `tun`.
fn encapsulate(vip: &str, rs: &str, tun: TunnelSpec) -> Vec<u8> {
    let base = config::parse_str("[global]\ninterface = \"lf0\"\n", "lb.toml")
        .unwrap()
        .dataplane_config();
    let mut dest = DestSpec::new(ip(rs), 80, FwdMethod::Tunnel);
    dest.mac = Some(rs_mac(1));
    dest.tun = tun;
    let key = ServiceKey {
        proto: Protocol::Tcp,
        addr: ip(vip),
        port: 80,
        fwmark: 0,
    };
    let spec = ServiceSpec::new(key, SchedKind::Rr, vec![dest]);
    let mut dp = Dataplane::new(
        DataplaneConfig {
            own_macs: vec![DIRECTOR_MAC],
            own_addrs: vec![ip("198.18.0.1"), ip("2001:2::1")],
            ..base
        },
        ServiceTable::from_specs(&[spec]),
    );
    let client = if vip.contains(':') { CLIENT6 } else { CLIENT4 };
    let syn = tcp(client, 40000, vip, 80, SYN);
    let mut buf = vec![0u8; HEADROOM + syn.len()];
    buf[HEADROOM..].copy_from_slice(&syn);
    let mut fb = FrameBuf::new(&mut buf, HEADROOM, syn.len());
    assert_eq!(dp.process(&mut fb, Timestamp::from_secs(1)), Verdict::Tx(0));
    fb.data().to_vec()
}

/// tshark's fields for each frame of `frames` (one line a frame, fields
/// separated by `;`, repeated fields by `,`).
fn tshark(frames: &[Vec<u8>], fields: &[&str]) -> Vec<Vec<String>> {
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("t.pcap");
    let stamped: Vec<(f64, Vec<u8>)> = frames.iter().map(|f| (1.0, f.clone())).collect();
    write_pcap(&pcap, &stamped);
    let mut cmd = Command::new("tshark");
    cmd.args(["-n", "-r"]).arg(&pcap).args([
        "-o",
        "ip.check_checksum:TRUE",
        "-o",
        "udp.check_checksum:TRUE",
        "-o",
        "udp.ignore_ipv6_zero_checksum:TRUE",
        "-o",
        "tcp.check_checksum:TRUE",
        "-T",
        "fields",
        "-E",
        "separator=;",
    ]);
    for f in fields {
        cmd.args(["-e", f]);
    }
    let out = cmd.output().expect("tshark runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| l.split(';').map(str::to_string).collect())
        .collect()
}

/// tshark's checksum status "Good" (PROTO_CHECKSUM_E_GOOD; 0 is bad, 2 unverified).
const GOOD: &str = "1";

#[test]
fn ipip_across_families_decodes() {
    let frames = [
        encapsulate("198.18.0.100", "2001:2::11", TunnelSpec::default()),
        encapsulate("2001:2::100", "198.18.1.11", TunnelSpec::default()),
    ];
    let rows = tshark(
        &frames,
        &[
            "ipv6.nxt",
            "ip.proto",
            "ipv6.dst",
            "ip.dst",
            "ip.checksum.status",
            "tcp.dstport",
            "tcp.checksum.status",
        ],
    );
    // IPv4 in IPv6: next header 4, then the client's IPv4 SYN to the VIP.
    assert_eq!(rows[0][0], "4");
    assert_eq!(rows[0][1], "6");
    assert_eq!(rows[0][2], "2001:2::11");
    assert_eq!(rows[0][3], "198.18.0.100");
    assert_eq!(rows[0][4], GOOD);
    assert_eq!((rows[0][5].as_str(), rows[0][6].as_str()), ("80", GOOD));
    // IPv6 in IPv4: protocol 41, then the IPv6 SYN.
    assert_eq!(rows[1][0], "6");
    assert_eq!(rows[1][1], "41");
    assert_eq!(rows[1][2], "2001:2::100");
    assert_eq!(rows[1][3], "198.18.1.11");
    assert_eq!(rows[1][4], GOOD);
    assert_eq!((rows[1][5].as_str(), rows[1][6].as_str()), ("80", GOOD));
}

#[test]
fn gre_decodes_with_its_checksum() {
    let gre = |csum| TunnelSpec {
        kind: TunType::Gre,
        port: 0,
        csum,
    };
    let frames = [
        encapsulate("2001:2::100", "198.18.1.11", gre(TunCsum::Csum)),
        encapsulate("198.18.0.100", "198.18.1.11", gre(TunCsum::NoCsum)),
        encapsulate("198.18.0.100", "2001:2::11", gre(TunCsum::Csum)),
    ];
    let rows = tshark(
        &frames,
        &[
            "gre.flags.checksum",
            "gre.proto",
            "gre.checksum.status",
            "tcp.dstport",
            "tcp.checksum.status",
        ],
    );
    let flag = |s: &str| matches!(s, "1" | "True");
    assert!(flag(&rows[0][0]), "{:?}", rows[0]);
    assert_eq!(rows[0][1], "0x86dd");
    assert_eq!(rows[0][2], GOOD);
    assert!(!flag(&rows[1][0]), "{:?}", rows[1]);
    assert_eq!(rows[1][1], "0x0800");
    assert!(flag(&rows[2][0]), "{:?}", rows[2]);
    assert_eq!(rows[2][1], "0x0800");
    assert_eq!(rows[2][2], GOOD);
    for r in &rows {
        assert_eq!((r[3].as_str(), r[4].as_str()), ("80", GOOD), "{r:?}");
    }
}

#[test]
fn gue_outer_udp_decodes_and_the_packet_behind_the_gue_header_too() {
    let gue = |csum| TunnelSpec {
        kind: TunType::Gue,
        port: 6080,
        csum,
    };
    let frames = [
        encapsulate("198.18.0.100", "198.18.1.11", gue(TunCsum::Csum)),
        encapsulate("198.18.0.100", "198.18.1.11", gue(TunCsum::NoCsum)),
        encapsulate("2001:2::100", "2001:2::11", gue(TunCsum::Csum)),
        encapsulate("198.18.0.100", "2001:2::11", gue(TunCsum::NoCsum)),
    ];
    let rows = tshark(
        &frames,
        &[
            "udp.dstport",
            "udp.srcport",
            "udp.length",
            "udp.checksum",
            "udp.checksum.status",
            "data.data",
        ],
    );
    let mut inner = Vec::new();
    for (i, r) in rows.iter().enumerate() {
        assert_eq!(r[0], "6080", "{r:?}");
        let sport: u16 = r[1].parse().unwrap();
        assert!((32768..=60999).contains(&sport), "{r:?}");
        let data: Vec<u8> = (0..r[5].len() / 2)
            .map(|j| u8::from_str_radix(&r[5][2 * j..2 * j + 2], 16).unwrap())
            .collect();
        assert_eq!(r[2].parse::<usize>().unwrap(), 8 + data.len(), "{r:?}");
        match i {
            0 | 2 => assert_eq!(r[4], GOOD, "{r:?}"),
            // No checksum: 0, which tshark does not verify.
            _ => assert_eq!(r[3], "0x0000", "{r:?}"),
        }
        // GUE version 0, no options, proto_ctype of the packet, no flags.
        let ctype = if i == 2 { 41 } else { 4 };
        assert_eq!(&data[..4], &[0, ctype, 0, 0], "{r:?}");
        // The packet behind it, as an Ethernet frame of its own.
        let et: [u8; 2] = if ctype == 4 { [8, 0] } else { [0x86, 0xdd] };
        let mut f = [&[0u8; 12][..], &et].concat();
        f.extend_from_slice(&data[4..]);
        inner.push(f);
    }
    let rows = tshark(
        &inner,
        &["ip.src", "ipv6.src", "tcp.dstport", "tcp.checksum.status"],
    );
    for (r, src) in rows.iter().zip([CLIENT4, CLIENT4, CLIENT6, CLIENT4]) {
        assert!(r[0] == src || r[1] == src, "{r:?}");
        assert_eq!((r[2].as_str(), r[3].as_str()), ("80", GOOD), "{r:?}");
    }
}
