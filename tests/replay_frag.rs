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
