use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use super::*;

fn v4(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn conn<'a>() -> SyncConn<'a> {
    SyncConn {
        protocol: 6,
        flags: flags::DROUTE,
        state: 1,
        cport: 40000,
        vport: 80,
        dport: 8080,
        fwmark: 0,
        timeout: 900,
        caddr: v4("198.18.1.2"),
        vaddr: v4("198.18.0.250"),
        daddr: v4("198.18.0.11"),
        seq: None,
        pe_data: None,
        pe_name: None,
        fullnat_local: None,
    }
}

/// In and out sequence adjustments whose six fields all differ.
fn seqs() -> [Seq; 2] {
    [
        Seq {
            init_seq: 1,
            delta: 2,
            previous_delta: 3,
        },
        Seq {
            init_seq: 4,
            delta: 5,
            previous_delta: 6,
        },
    ]
}

fn all(buf: &[u8]) -> Result<(Header, Vec<SyncConn<'_>>), SyncError> {
    let mut v = Vec::new();
    let (h, _) = parse(buf, |c| v.push(c))?;
    Ok((h, v))
}

#[test]
fn an_ipv4_entry_is_laid_out_as_the_kernel_lays_it_out() {
    let mut w = Writer::new(51, 1472);
    assert!(w.push(&conn()));
    let b = w.bytes();
    assert_eq!(b.len(), HEADER_LEN + CONN_V4_LEN);
    // Header: reserved 0, syncid, size, count 1, version 1, spare 0.
    assert_eq!(&b[..8], &[0, 51, 0, 44, 1, 1, 0, 0]);
    let e = &b[8..];
    assert_eq!(e[0], 0, "type IPv4");
    assert_eq!(e[1], 6);
    assert_eq!(&e[2..4], &[0, 36], "version 0, size 36");
    assert_eq!(&e[4..8], &[0, 0, 0, 3], "flags DROUTE");
    assert_eq!(&e[8..10], &[0, 1], "ESTABLISHED");
    assert_eq!(&e[10..16], &[0x9c, 0x40, 0, 80, 0x1f, 0x90]);
    assert_eq!(&e[16..20], &[0; 4]);
    assert_eq!(&e[20..24], &900u32.to_be_bytes());
    assert_eq!(&e[24..28], &[198, 18, 1, 2]);
    assert_eq!(&e[28..32], &[198, 18, 0, 250]);
    assert_eq!(&e[32..36], &[198, 18, 0, 11]);
    let (h, cs) = all(b).unwrap();
    assert_eq!(
        h,
        Header {
            version: 1,
            syncid: 51,
            count: 1
        }
    );
    assert_eq!(cs, vec![conn()]);
}

#[test]
fn ipv6_entries_options_and_padding_round_trip() {
    let pe = b"call-id-1";
    let mut c6 = conn();
    c6.caddr = "2001:2::1".parse().unwrap();
    c6.vaddr = "2001:2::250".parse().unwrap();
    c6.daddr = "2001:2::11".parse().unwrap();
    c6.protocol = 17;
    c6.state = 0;
    c6.pe_data = Some(pe);
    c6.pe_name = Some(b"sip");
    let mut c4 = conn();
    c4.flags |= flags::IN_SEQ;
    c4.seq = Some(seqs());
    let mut fnat = conn();
    fnat.flags = flags::MASQ;
    fnat.fullnat_local = Some((v4("198.18.9.1"), 1025));
    let mut w = Writer::new(7, 1472);
    for c in [&c6, &c4, &fnat] {
        assert!(w.push(c));
    }
    let b = w.bytes().to_vec();
    assert_eq!(
        b[8 + 2..8 + 4],
        ((CONN_V6_LEN + 2 + 9 + 2 + 3) as u16).to_be_bytes()
    );
    let (h, cs) = all(&b).unwrap();
    assert_eq!(h.count, 3);
    assert_eq!(cs, vec![c6, c4, fnat]);
}

#[test]
fn a_kernel_receiver_would_skip_the_fullnat_option() {
    // The option's type has the optional bit and no kernel meaning.
    assert_ne!(OPT_FULLNAT_LOCAL & OPT_F_PARAM, 0);
    assert!(
        ![OPT_SEQ_DATA, OPT_PE_DATA, OPT_PE_NAME].contains(&(OPT_FULLNAT_LOCAL & !OPT_F_PARAM))
    );
}

#[test]
fn an_unknown_mandatory_option_skips_the_entry_and_an_optional_one_does_not() {
    let mut w = Writer::new(1, 1472);
    w.push(&conn());
    let mut b = w.bytes().to_vec();
    // Append an option by hand: type 9 (mandatory), len 2.
    b.extend_from_slice(&[9, 2, 0xaa, 0xbb]);
    let n = b.len() as u16;
    b[2..4].copy_from_slice(&n.to_be_bytes());
    b[8 + 2..8 + 4].copy_from_slice(&40u16.to_be_bytes());
    let mut got = 0;
    let (_, s) = parse(&b, |_| got += 1).unwrap();
    assert_eq!((got, s.entries), (0, 1));
    b[HEADER_LEN + CONN_V4_LEN] = 9 | OPT_F_PARAM;
    let (_, s) = parse(&b, |_| got += 1).unwrap();
    assert_eq!((got, s.entries), (1, 0));
}

#[test]
fn malformed_datagrams_are_refused() {
    let mut w = Writer::new(1, 1472);
    w.push(&conn());
    let b = w.bytes().to_vec();
    assert_eq!(all(&b[..3]).unwrap_err(), SyncError::Short);
    assert_eq!(all(&b[..20]).unwrap_err(), SyncError::BadSize);
    let mut t = b.clone();
    t[8] = 5;
    assert_eq!(all(&t).unwrap_err(), SyncError::BadType);
    let mut t = b.clone();
    t[8 + 2] = 0x10;
    assert_eq!(all(&t).unwrap_err(), SyncError::BadVersion);
    let mut t = b.clone();
    t[8 + 3] = 40;
    assert_eq!(all(&t).unwrap_err(), SyncError::Truncated);
    let mut t = b.clone();
    t[4] = 2;
    assert_eq!(all(&t).unwrap_err(), SyncError::Truncated);
}

#[test]
fn version_0_messages_are_read() {
    // nr_conns 1, syncid 3, size 4 + 24.
    let mut b = vec![1, 3, 0, 28];
    b.extend_from_slice(&[0, 6, 0x9c, 0x40, 0, 80, 0, 80]);
    b.extend_from_slice(&[198, 18, 1, 2, 198, 18, 0, 250, 198, 18, 0, 11]);
    b.extend_from_slice(&[0, 3, 0, 1]);
    let (h, cs) = all(&b).unwrap();
    assert_eq!(
        h,
        Header {
            version: 0,
            syncid: 3,
            count: 1
        }
    );
    let c = cs[0];
    assert_eq!((c.protocol, c.cport, c.vport, c.dport), (6, 40000, 80, 80));
    assert_eq!((c.flags, c.state, c.timeout), (flags::DROUTE, 1, 0));
    assert_eq!(c.daddr, v4("198.18.0.11"));
}

#[test]
fn a_full_message_refuses_the_next_entry() {
    let mut w = Writer::new(1, 1472);
    let mut n = 0;
    while w.push(&conn()) {
        n += 1;
    }
    // (1472 - 8) / 36 entries of 36 bytes (already 4-aligned).
    assert_eq!(n, 40);
    assert!(w.bytes().len() <= 1472);
    assert_eq!(all(w.bytes()).unwrap().1.len(), 40);
}

fn random_addr(r: &mut SmallRng, v6: bool) -> IpAddr {
    if v6 {
        IpAddr::V6(Ipv6Addr::from(r.random::<u128>()))
    } else {
        IpAddr::V4(Ipv4Addr::from(r.random::<u32>()))
    }
}

/// Property: any entries written come back as written, in order, however
/// many datagrams they take.
#[test]
fn property_random_entries_round_trip() {
    let mut r = SmallRng::seed_from_u64(12);
    let pe: Vec<u8> = (0..255).map(|i| i as u8).collect();
    for _ in 0..2000 {
        let v6 = r.random_bool(0.5);
        let mut c = SyncConn {
            protocol: r.random(),
            flags: r.random::<u32>() & !flags::HASHED,
            state: r.random(),
            cport: r.random(),
            vport: r.random(),
            dport: r.random(),
            fwmark: r.random(),
            timeout: r.random(),
            caddr: random_addr(&mut r, v6),
            vaddr: random_addr(&mut r, v6),
            daddr: random_addr(&mut r, v6),
            seq: None,
            pe_data: None,
            pe_name: None,
            fullnat_local: None,
        };
        if r.random_bool(0.3) {
            c.seq = Some(
                [Seq {
                    init_seq: r.random(),
                    delta: r.random(),
                    previous_delta: r.random(),
                }; 2],
            );
        }
        if r.random_bool(0.3) {
            c.pe_data = Some(&pe[..r.random_range(1..=255)]);
            if r.random_bool(0.5) {
                c.pe_name = Some(&pe[..r.random_range(1..=PE_NAME_MAX)]);
            }
        }
        if r.random_bool(0.3) {
            c.fullnat_local = Some((random_addr(&mut r, v6), r.random()));
        }
        let mut w = Writer::new(r.random(), r.random_range(1..3000));
        let mut n = 0;
        while n < 20 && w.push(&c) {
            n += 1;
        }
        assert!(n > 0);
        let (h, cs) = all(w.bytes()).unwrap();
        assert_eq!(h.count as usize, n);
        assert!(cs.iter().all(|x| *x == c), "{c:?}");
    }
}

/// Property: parse never panics on arbitrary bytes, nor on mutations of
/// valid datagrams (which reach far deeper than random noise).
#[test]
fn property_parse_never_panics() {
    let mut r = SmallRng::seed_from_u64(8848);
    let mut w = Writer::new(1, 1472);
    let mut c = conn();
    c.seq = Some([Seq::default(); 2]);
    c.fullnat_local = Some((v4("198.18.9.1"), 5000));
    while w.push(&c) {}
    let valid = w.bytes().to_vec();
    for i in 0..20000 {
        let mut b: Vec<u8> = if i % 2 == 0 {
            (0..r.random_range(0..200)).map(|_| r.random()).collect()
        } else {
            let mut b = valid.clone();
            for _ in 0..r.random_range(1..8) {
                let at = r.random_range(0..b.len());
                b[at] = r.random();
            }
            b.truncate(r.random_range(0..=b.len()));
            b
        };
        if i % 3 == 0 && b.len() >= 4 {
            // Make the size field right so the walk goes past the header.
            let n = b.len() as u16;
            b[2..4].copy_from_slice(&n.to_be_bytes());
        }
        let mut n = 0usize;
        let _ = parse(&b, |_| n += 1);
        assert!(n <= 255);
    }
}

#[test]
fn control_messages_round_trip_and_a_kernel_sees_no_entries() {
    for c in [Control::TableRequest, Control::TableDone] {
        let b = c.encode(9);
        assert_eq!(Control::decode(&b), Some((c, 9)));
        // The kernel's reading: not v1, so v0 with a count of 0.
        let (h, cs) = all(&b).unwrap();
        assert_eq!((h.version, h.count, cs.len()), (0, 0, 0));
    }
    let mut w = Writer::new(9, 1472);
    assert_eq!(Control::decode(w.bytes()), None, "an empty v1 message");
    w.push(&conn());
    assert_eq!(Control::decode(w.bytes()), None);
    let mut b = Control::TableDone.encode(9);
    b[4] = 1;
    assert_eq!(Control::decode(&b), None);
}

/// `sync_version = 0`: the kernel's v0 layout (the bytes of the test
/// above), read back by the v0 parser; IPv6 and FULLNAT entries are not
/// carried; a full message refuses the next entry.
#[test]
fn version_0_messages_are_written_as_the_kernel_writes_them() {
    let mut w = Writer::new_v0(3, 1472);
    let mut c = conn();
    c.dport = 80;
    assert!(w.push(&c));
    let mut b = vec![1, 3, 0, 28];
    b.extend_from_slice(&[0, 6, 0x9c, 0x40, 0, 80, 0, 80]);
    b.extend_from_slice(&[198, 18, 1, 2, 198, 18, 0, 250, 198, 18, 0, 11]);
    b.extend_from_slice(&[0, 3, 0, 1]);
    assert_eq!(w.bytes(), &b[..]);
    // With sequence adjustments: 24 more bytes, read back.
    let seq = seqs();
    let s = SyncConn {
        flags: flags::MASQ | flags::IN_SEQ,
        seq: Some(seq),
        cport: 40001,
        ..c
    };
    assert!(w.push(&s));
    let (h, cs) = all(w.bytes()).unwrap();
    assert_eq!((h.version, h.syncid, h.count), (0, 3, 2));
    assert_eq!(cs[0], SyncConn { timeout: 0, ..c });
    assert_eq!(cs[1].seq, Some(seq));
    assert_eq!(cs[1].cport, 40001);
    // Not carried by v0.
    let v6 = SyncConn {
        caddr: "2001:2::1".parse().unwrap(),
        vaddr: "2001:2::250".parse().unwrap(),
        daddr: "2001:2::11".parse().unwrap(),
        ..c
    };
    let fnat = SyncConn {
        fullnat_local: Some((v4("198.18.9.1"), 5000)),
        ..c
    };
    assert!(!w.carries(&v6) && !w.carries(&fnat));
    assert!(!w.push(&v6) && !w.push(&fnat));
    assert_eq!(w.count(), 2);
    // Full: 4 + n * 24 <= 1472 -> 61 entries.
    let mut w = Writer::new_v0(3, 1472);
    let mut n = 0;
    while w.push(&c) {
        n += 1;
    }
    assert_eq!(n, 61);
    w.reset(3);
    assert!(w.is_empty() && w.bytes().len() == 4);
}
