//! Hostile traffic against the real daemon on a DR rig, measured.
//!
//! - A SYN flood from random spoofed sources (198.19.0.0/16, 65536 flows),
//!   then a SYN+ACK flood (each spoofed SYN followed by its ACK), sent from
//!   the client namespace on a raw socket as fast as it goes, while the
//!   client makes ordinary HTTP requests through the VIP: the connection
//!   table stays within `conn_max`, the daemon's memory stays flat (the
//!   table is preallocated), no connection is refused for a full table,
//!   and legitimate requests keep succeeding. The success ratio, the flood
//!   rate and the memory figures are printed.
//! - A flood of malformed frames (bad IPv4 checksum, bad total length, bad
//!   TCP data offset, truncated TCP, IP fragments, TTL 1, ACKs of no
//!   connection, IP options, bad TCP checksums, frames too broken to
//!   classify): nothing crashes, each kind the data plane sees is counted
//!   under its own reason, the rest is forwarded or left to the kernel.
//!
//! Needs root (network namespaces).
#![forbid(unsafe_code)]

mod rig;
mod robust;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rig::daemon::Lvsfwd;
use rig::{Fam, HTTP_PORT, IFACE, Rig, e2e};
use robust::{admin_socket, flood, flood_result, http, listed_conns, lvsadm, stop_counters};

/// Connection-table capacity of the flood test (one queue on veth).
const CONN_MAX: u64 = 2048;

/// A SYN flood, then a SYN+ACK flood, on one rig and one daemon (run
/// one after the other: the machine's cores are the limit, not the table).
///
/// SYN+ACK: spoofed SYN then ACK per flow. A DR director sees only the
/// client side, so each such flow looks ESTABLISHED (IPVS's input-only
/// table) and would hold its entry for the 900 s ESTABLISHED timeout; the
/// table's drop_entry reclaim of established conns that carried only a few
/// packets keeps room for legitimate clients (without it, the second
/// SYN+ACK round served 0 of 40 requests: every new conn was `table_full`).
#[test]
fn spoofed_floods_keep_serving_within_conn_max() {
    let rig = Rig::dr();
    robust::plain_wire(&rig);
    let config = robust::with_global(
        &rig.lb_toml(&[e2e::tcp(Fam::V4)]),
        "conn_max",
        &CONN_MAX.to_string(),
    );
    let mut lb = Lvsfwd::start(&rig, &config);
    let rss_before = robust::vm_kib(lb.pid(), "VmRSS");
    let mut sent = 0;
    for ack in [false, true] {
        sent += flood_while_serving(&rig, &mut lb, ack, rss_before);
    }
    e2e::clean_stop(&rig, &mut lb);
    let c = stop_counters(&lb.stderr());
    eprintln!(
        "flood stop counters: {c:?}; the data plane received {} frames of the {sent} flood \
         frames sent (the rest were lost before it: veth, bridge or AF_XDP RX ring)",
        c.get("rx").copied().unwrap_or(0)
    );
    // Legitimate failures, if any, were frames lost before the data plane
    // (a saturated RX ring), never a table that refused a connection.
    assert_eq!(c.get("table_full"), None, "table_full drops: {c:?}");
}

/// One flood round's figures.
struct Round {
    during: robust::Requests,
    rss: u64,
    hwm: u64,
    sent: u64,
}

/// Two rounds of a spoofed flood (SYN, or SYN+ACK with `ack`) while the
/// client makes HTTP requests; see the module docs for what is checked.
/// Returns the flood frames sent.
fn flood_while_serving(rig: &Rig, lb: &mut Lvsfwd, ack: bool, rss_before: u64) -> u64 {
    let kind = if ack { "SYN+ACK" } else { "SYN" };
    let vip = SocketAddr::new(rig.vip(Fam::V4), HTTP_PORT);
    let sock = admin_socket(rig);
    let before = http(
        rig.client(),
        vip,
        15,
        // 5 s: a lost SYN is retried at 1 s and 3 s; only a broken
        // service fails every time.
        Duration::from_secs(5),
        Duration::from_secs(40),
    );
    assert_eq!(before.ok, 15, "before the flood: {:?}", before.failed);

    let vip_s = rig.vip(Fam::V4).to_string();
    let dmac = rig.director().mac.clone();
    let port = HTTP_PORT.to_string();
    // Two flood rounds: the second shows the memory stays where the first
    // left it (nothing grows with the number of spoofed flows).
    let mut rounds: Vec<Round> = Vec::new();
    for seed in ["1", "2"] {
        let mut args = vec![
            "syn",
            "--iface",
            IFACE,
            "--dst-mac",
            &dmac,
            "--dst",
            &vip_s,
            "--dport",
            &port,
            "--src-net",
            "198.19.0.0/16",
            "--flows",
            "65536",
            "--count",
            "3000000",
            "--deadline",
            "15",
            "--seed",
            seed,
        ];
        if ack {
            args.push("--ack");
        }
        let t0 = Instant::now();
        let pid = flood(rig, rig.client(), &args);
        // Let the table fill before the legitimate requests start.
        std::thread::sleep(Duration::from_millis(1500));
        let sampler = {
            let sock = sock.clone();
            std::thread::spawn(move || {
                let mut samples = Vec::new();
                let end = Instant::now() + Duration::from_secs(10);
                while Instant::now() < end {
                    let o = lvsadm(&sock, &["-L", "-n"]);
                    if o.ok() {
                        samples.push(listed_conns(&o.stdout));
                    }
                    std::thread::sleep(Duration::from_millis(500));
                }
                samples
            })
        };
        let during = http(
            rig.client(),
            vip,
            40,
            Duration::from_secs(4),
            Duration::from_secs(60),
        );
        let samples = sampler.join().expect("sampler");
        let out = flood_result(rig, pid, "sent", Duration::from_secs(40));
        lb.assert_running();
        let max_conns = samples.iter().copied().max().unwrap_or(0);
        let rss = robust::vm_kib(lb.pid(), "VmRSS");
        let hwm = robust::vm_kib(lb.pid(), "VmHWM");
        let line = out.lines().find(|l| l.starts_with("sent")).unwrap_or("");
        eprintln!(
            "{kind} flood round {seed}: {line} (frames, seconds, frames/s) in {:.1} s; \
             legitimate requests {}/{} ok (ratio {:.3}); conns listed max {max_conns} of \
             conn_max {CONN_MAX} over {} samples; VmRSS {rss_before} -> {rss} KiB, VmHWM \
             {hwm} KiB",
            t0.elapsed().as_secs_f64(),
            during.ok,
            during.total(),
            during.ratio(),
            samples.len()
        );
        assert!(samples.len() >= 5, "lvsadm could not list during the flood");
        assert!(
            max_conns <= CONN_MAX,
            "{max_conns} connections listed, conn_max is {CONN_MAX}"
        );
        assert!(
            max_conns >= CONN_MAX / 2,
            "the flood never filled the table ({max_conns}): it did not reach the data plane"
        );
        rounds.push(Round {
            during,
            rss,
            hwm,
            sent: sent_frames(&out),
        });
    }
    for (i, r) in rounds.iter().enumerate() {
        assert!(
            r.during.ratio() >= 0.8,
            "{kind} round {}: only {}/{} legitimate requests succeeded under the flood: {:?}",
            i + 1,
            r.during.ok,
            r.during.total(),
            r.during.failed
        );
    }
    // Memory is bounded: the table is preallocated; the first round may
    // touch buffers for the first time, the second adds (almost) nothing.
    let (r1, r2) = (rounds[0].rss, rounds[1].rss);
    assert!(
        r2 <= r1 + 2048,
        "VmRSS grew from {r1} KiB to {r2} KiB during the second flood round"
    );
    assert!(
        rounds[1].hwm <= rss_before + 64 * 1024,
        "VmHWM {} KiB: more than 64 MiB above the {rss_before} KiB before the flood",
        rounds[1].hwm
    );

    let after = http(
        rig.client(),
        vip,
        15,
        // 5 s: a lost SYN is retried at 1 s and 3 s; only a broken
        // service fails every time.
        Duration::from_secs(5),
        Duration::from_secs(40),
    );
    assert_eq!(after.ok, 15, "after the flood: {:?}", after.failed);
    rounds.iter().map(|r| r.sent).sum()
}

/// Frames a `flood.py syn` run reports as sent.
fn sent_frames(out: &str) -> u64 {
    out.lines()
        .find_map(|l| {
            l.strip_prefix("sent ")?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .unwrap_or(0)
}

#[test]
fn malformed_frames_are_counted_by_reason_and_nothing_breaks() {
    const EACH: u64 = 500;
    let rig = Rig::dr();
    robust::plain_wire(&rig);
    let config = rig.lb_toml(&[e2e::tcp(Fam::V4)]);
    let mut lb = Lvsfwd::start(&rig, &config);
    let vip = SocketAddr::new(rig.vip(Fam::V4), HTTP_PORT);
    let csum_errors_before: u64 = rig
        .real_servers()
        .iter()
        .map(|h| robust::snmp(h, "Tcp", "InCsumErrors"))
        .sum();
    let hdr_errors_before = robust::snmp(rig.director(), "Ip", "InHdrErrors");
    let vip_s = rig.vip(Fam::V4).to_string();
    let src = rig.client_ip(Fam::V4).to_string();
    let each = EACH.to_string();
    let port = HTTP_PORT.to_string();
    let pid = flood(
        &rig,
        rig.client(),
        &[
            "malformed",
            "--iface",
            IFACE,
            "--dst-mac",
            &rig.director().mac,
            "--dst",
            &vip_s,
            "--src",
            &src,
            "--dport",
            &port,
            "--each",
            &each,
        ],
    );
    let sent = flood_result(&rig, pid, "done", Duration::from_secs(60));
    for line in sent.lines().filter(|l| l.starts_with("sent ")) {
        assert!(line.ends_with(&format!(" {EACH}")), "not all sent: {line}");
    }
    // Still serving, and balancing as before.
    let t = rig.http(rig.client(), vip, 30);
    t.assert_all_ok("after the malformed frames");
    t.assert_even_split(&rig.rs_names(), "after the malformed frames");
    lb.assert_running();
    // Give the real servers' kernels a moment, then read their counters.
    std::thread::sleep(Duration::from_millis(300));
    let csum_errors: u64 = rig
        .real_servers()
        .iter()
        .map(|h| robust::snmp(h, "Tcp", "InCsumErrors"))
        .sum::<u64>()
        - csum_errors_before;
    let hdr_errors = robust::snmp(rig.director(), "Ip", "InHdrErrors") - hdr_errors_before;
    e2e::clean_stop(&rig, &mut lb);
    let c = stop_counters(&lb.stderr());
    eprintln!(
        "malformed flood, {EACH} of each kind: lvsfwd counters {c:?}; real servers' TCP \
         InCsumErrors +{csum_errors}; director kernel Ip InHdrErrors +{hdr_errors}"
    );
    let get = |k: &str| c.get(k).copied().unwrap_or(0);
    for reason in [
        "ipv4_bad_checksum",
        "ipv4_bad_total_length",
        "tcp_bad_data_offset",
        "tcp_truncated",
        "ttl_exceeded",
        "no_conn",
    ] {
        assert_eq!(get(reason), EACH, "counter {reason}: {c:?}");
    }
    // The same first and later fragment (one datagram, its middle missing)
    // over and over: each kept once for reassembly, the rest duplicates.
    assert_eq!(
        get("frag_dup"),
        2 * EACH - 2,
        "first + later fragments: {c:?}"
    );
    // Forwarded as IPVS forwards them: the segments with IP options reached
    // a real server; the bad TCP checksums were dropped by the real
    // servers' kernels, not by the director.
    assert_eq!(
        csum_errors, EACH,
        "bad-checksum SYNs counted by the real servers"
    );
    // Frames too broken for the XDP program to classify are the kernel's:
    // they never reach the data plane, and its kernel counts them.
    assert!(
        hdr_errors >= 3 * EACH,
        "the director's kernel counted {hdr_errors} header errors, want >= {}",
        3 * EACH
    );
}
