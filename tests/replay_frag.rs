//! Fragments through `lvsfwd replay`: a 3000-byte TCP segment to a NAT
//! service, cut in three fragments and replayed out of order, leaves as
//! three fragments to the real server, rewritten (address, port, checksum
//! over the whole datagram) and cut as it came.

mod common;
use common::*;

use etherparse::PacketBuilder;
use lvsfwd::forward::frag::{ExtraTx, fragment};
use lvsfwd::wire::{self, IpVersion, L4};

const VIP: &str = "198.18.0.250";

fn segment() -> Vec<u8> {
    let mut v = Vec::new();
    let payload: Vec<u8> = (0..3000u32).map(|i| (i % 251) as u8).collect();
    PacketBuilder::ethernet2(CLIENT_MAC, DIRECTOR_MAC)
        .ipv4([198, 18, 100, 1], [198, 18, 0, 250], 64)
        .tcp(40001, 80, 1, 64240)
        .syn()
        .write(&mut v, &payload)
        .unwrap();
    // No DF: the client's stack fragments it.
    v[14 + 6] = 0;
    v[14 + 10] = 0;
    v[14 + 11] = 0;
    let c = wire::checksum::checksum(&v[14..34]);
    v[14 + 10..14 + 12].copy_from_slice(&c.to_be_bytes());
    v
}

#[test]
fn nat_reassembles_and_refragments_in_replay() {
    let whole = segment();
    let mut x = ExtraTx::with_capacity(1 << 16, 16);
    fragment(&whole, 14, IpVersion::V4, 1500, 0, &mut x, 0).unwrap();
    let frags: Vec<Vec<u8>> = x.iter().map(|(f, _)| f.to_vec()).collect();
    assert_eq!(frags.len(), 3);
    let cfg = config(&vs4(
        &format!("{VIP}:80"),
        "rr",
        "NAT",
        &[(11, 8080, 1)],
        "",
    ));
    let input = vec![
        (1.0, frags[2].clone()),
        (1.1, frags[0].clone()),
        (1.2, frags[1].clone()),
    ];
    let r = replay(&cfg, &input, &[]);
    assert_eq!(r.summary(), (3, 3, 0, 0), "{}", r.stderr);
    assert_eq!(r.out.len(), 3);
    let mut payload = vec![0u8; 3000 + 20];
    let mut got = 0;
    for (_, f) in &r.out {
        let p = wire::parse(f).unwrap().unwrap();
        assert_eq!(p.dst, "198.18.1.11".parse::<std::net::IpAddr>().unwrap());
        assert!(p.ip_len <= 1500);
        let off = (u16::from_be_bytes([f[14 + 6], f[14 + 7]]) & 0x1fff) as usize * 8;
        let data = &f[p.l4_off..p.l3_end()];
        payload[off..off + data.len()].copy_from_slice(data);
        got += data.len();
        if let L4::Tcp { dport, .. } = p.l4 {
            assert_eq!(dport, 8080);
        }
    }
    assert_eq!(got, 3020, "every byte, once");
    // The TCP checksum of the whole rewritten segment verifies.
    let mut rebuilt = r.out[0].1[..34].to_vec();
    rebuilt.extend_from_slice(&payload);
    let tl = (rebuilt.len() - 14) as u16;
    rebuilt[16..18].copy_from_slice(&tl.to_be_bytes());
    rebuilt[20..22].fill(0);
    rebuilt[24..26].fill(0);
    let c = wire::checksum::checksum(&rebuilt[14..34]);
    rebuilt[24..26].copy_from_slice(&c.to_be_bytes());
    let p = wire::parse(&rebuilt).unwrap().unwrap();
    assert!(wire::verify_l4_checksum(&rebuilt, &p));
    assert_eq!(&payload[20..], &whole[14 + 40..]);
}

const UDP_DR: &str = r#"
[[virtual_server]]
address = "198.18.0.250:53"
protocol = "UDP"
lb_algo = "rr"
lb_kind = "DR"
  [[virtual_server.real_server]]
  address = "198.18.1.11:53"
  mac = "02:aa:00:00:00:0b"

[[virtual_server]]
address = "[2001:2::250]:53"
protocol = "UDP"
lb_algo = "rr"
lb_kind = "DR"
  [[virtual_server.real_server]]
  address = "[2001:2:1::11]:53"
  mac = "02:aa:00:00:00:0b"
"#;

/// The fragments (at most 1500 bytes of IP) of a 3000-byte UDP datagram
/// from `src` to `dst`:53, IPv4 identification / IPv6 fragment id `id`.
fn udp_fragments(src: &str, dst: &str, id: u16) -> Vec<Vec<u8>> {
    let mut d = udp(src, 40000, dst, 53, &[0x5a; 3000]);
    let v6 = dst.contains(':');
    if !v6 {
        let h = &mut d[14..34];
        h[4..6].copy_from_slice(&id.to_be_bytes());
        h[6..8].fill(0);
        h[10..12].fill(0);
        let c = wire::checksum::checksum(h);
        h[10..12].copy_from_slice(&c.to_be_bytes());
    }
    let ver = if v6 { IpVersion::V6 } else { IpVersion::V4 };
    let mut x = ExtraTx::with_capacity(1 << 16, 16);
    fragment(&d, 14, ver, 1500, u32::from(id), &mut x, 0).unwrap();
    x.iter().map(|(f, _)| f.to_vec()).collect()
}

/// tshark's `fields` of every frame of the pcap at `path`, one row a frame
/// (repeated fields, outer then quoted, joined by `,`).
fn tshark(path: &std::path::Path, fields: &[&str]) -> Vec<Vec<String>> {
    let mut cmd = std::process::Command::new("tshark");
    cmd.args(["-n", "-r"]).arg(path).args([
        "-o",
        "ip.check_checksum:TRUE",
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

/// A datagram whose fragments do not all come within 30 s is answered, as
/// the kernel's ip_expire / ip6frag_expire_frag_queue do, with an ICMP
/// time exceeded (fragment reassembly) from the VIP quoting its first
/// fragment, if that came; tshark decodes what lvsfwd sent.
#[test]
fn reassembly_timeout_answers_icmp_time_exceeded_decoded_by_tshark() {
    let v4 = udp_fragments("198.18.100.1", "198.18.0.250", 0x1234);
    let v6 = udp_fragments("2001:2:100::1", "2001:2::250", 0x4321);
    let later_only = udp_fragments("198.18.100.2", "198.18.0.250", 7);
    let input = vec![
        (1.0, v4[0].clone()),
        (1.0, v4[2].clone()),
        (1.5, v6[0].clone()),
        (2.0, later_only[1].clone()),
        // Anything later runs the timers (no service on port 9: passed).
        (40.0, udp("198.18.100.3", 1, "198.18.0.250", 9, b"x")),
    ];
    let r = replay(&config(UDP_DR), &input, &[]);
    assert_eq!(r.drops("frag_timeout"), 3, "{}", r.stderr);
    assert!(r.stderr.contains("icmp_frag_time 2"), "{}", r.stderr);
    assert_eq!(
        r.out.len(),
        2,
        "one ICMP error per datagram with a first fragment"
    );
    let rows = tshark(
        &r.dir.path().join("out.pcap"),
        &[
            "eth.dst",
            "ip.src",
            "ip.dst",
            "ipv6.src",
            "ipv6.dst",
            "icmp.type",
            "icmp.code",
            "icmp.checksum.status",
            "icmpv6.type",
            "icmpv6.code",
            "icmpv6.checksum.status",
            "ip.id",
            "ipv6.fraghdr.ident",
            "udp.dstport",
        ],
    );
    assert_eq!(rows.len(), 2, "{rows:?}");
    let r4 = &rows[0];
    assert_eq!(r4[0], "02:c1:00:00:00:01", "back to the client's MAC");
    assert_eq!(
        r4[1], "198.18.0.250,198.18.100.1",
        "from the VIP; quoted: the client's"
    );
    assert_eq!(r4[2], "198.18.100.1,198.18.0.250");
    assert_eq!(
        (r4[5].as_str(), r4[6].as_str()),
        ("11", "1"),
        "fragment reassembly time exceeded"
    );
    assert_eq!(r4[7], "1", "ICMP checksum good");
    assert_eq!(r4[11], "0x0000,0x1234", "quotes the first fragment");
    assert_eq!(r4[13], "53");
    let r6 = &rows[1];
    assert_eq!(r6[3], "2001:2::250,2001:2:100::1");
    assert_eq!(r6[4], "2001:2:100::1,2001:2::250");
    assert_eq!((r6[8].as_str(), r6[9].as_str()), ("3", "1"));
    assert_eq!(r6[10], "1", "ICMPv6 checksum good");
    assert_eq!(r6[12], "0x00004321", "quotes the first fragment");
}
