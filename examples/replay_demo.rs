//! The replay demo: client traffic for the first virtual service of an
//! lb.toml, run through the real data plane with `lvsfwd replay`, and which
//! real server took each connection.
//!
//! Usage: `replay_demo LVSFWD_BINARY CONFIG`

use std::net::IpAddr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use etherparse::PacketBuilder;
use pcap_file::DataLink;
use pcap_file::pcap::{PcapHeader, PcapPacket, PcapReader, PcapWriter};

const CLIENT_MAC: [u8; 6] = [0x02, 0xc1, 0, 0, 0, 1];
const DIRECTOR_MAC: [u8; 6] = [0x02, 0xd1, 0, 0, 0, 1];

fn segment(src: IpAddr, sport: u16, dst: IpAddr, dport: u16, flags: &str) -> Vec<u8> {
    let eth = PacketBuilder::ethernet2(CLIENT_MAC, DIRECTOR_MAC);
    let payload: &[u8] = if flags == "P" {
        b"GET / HTTP/1.0\r\n\r\n"
    } else {
        b""
    };
    let mut out = Vec::new();
    macro_rules! tcp {
        ($b:expr) => {{
            let b = $b.tcp(sport, dport, 1, 64240);
            let b = match flags {
                "S" => b.syn(),
                "A" => b.ack(1),
                "P" => b.ack(1).psh(),
                _ => b.ack(1).fin(),
            };
            b.write(&mut out, payload).expect("frame fits");
        }};
    }
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => tcp!(eth.ipv4(s.octets(), d.octets(), 64)),
        (IpAddr::V6(s), IpAddr::V6(d)) => tcp!(eth.ipv6(s.octets(), d.octets(), 64)),
        _ => panic!("client and VIP of different families"),
    }
    out
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let [_, lvsfwd, config] = &args[..] else {
        anyhow::bail!("usage: replay_demo LVSFWD_BINARY CONFIG");
    };
    let cfg = lvsfwd::config::load_file(Path::new(config)).map_err(|e| anyhow::anyhow!("{e}"))?;
    let specs = cfg.service_specs();
    let svc = specs
        .first()
        .ok_or_else(|| anyhow::anyhow!("{config} has no virtual_server"))?;
    let vip = svc.key.addr;
    let clients: Vec<IpAddr> = if vip.is_ipv4() {
        (1..=4)
            .map(|i| format!("198.18.100.{i}").parse().unwrap())
            .collect()
    } else {
        (1..=4)
            .map(|i| format!("2001:2::100:{i}").parse().unwrap())
            .collect()
    };

    let dir = std::env::temp_dir().join(format!("lvsfwd-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let inp = dir.join("in.pcap");
    let out = dir.join("out.pcap");
    let header = PcapHeader {
        datalink: DataLink::ETHERNET,
        ..PcapHeader::default()
    };
    let mut w = PcapWriter::with_header(std::fs::File::create(&inp)?, header)?;
    let mut conns = Vec::new();
    let mut t = 1.0f64;
    for round in 0..3u16 {
        for c in &clients {
            let port = 40000 + round;
            conns.push((*c, port));
            for f in ["S", "A", "P", "F"] {
                let frame = segment(*c, port, vip, svc.key.port, f);
                let ts = Duration::from_secs_f64(t);
                w.write_packet(&PcapPacket::new(ts, frame.len() as u32, &frame))?;
                t += 0.001;
            }
            t += 0.1;
        }
    }
    drop(w);

    println!(
        "lvsfwd replay demo: {} connections to {} ({} {} {:?})",
        conns.len(),
        svc.key,
        svc.sched,
        svc.dests[0].fwd.name(),
        svc.persistence
    );
    let status = Command::new(lvsfwd)
        .args(["replay", "--config", config, "--ip"])
        .arg(if vip.is_ipv4() {
            "198.18.0.2"
        } else {
            "2001:2::2"
        })
        .arg("--in")
        .arg(&inp)
        .arg("--out")
        .arg(&out)
        .arg("--stats")
        .status()?;
    anyhow::ensure!(status.success(), "lvsfwd replay failed");

    // Every 4th emitted frame is the SYN of the next connection.
    let mut r = PcapReader::new(std::fs::File::open(&out)?)?;
    let mut i = 0;
    println!();
    while let Some(p) = r.next_packet() {
        let p = p?;
        if i % 4 == 0 {
            let (c, port) = conns[i / 4];
            let mac = &p.data[0..6];
            let rs = svc
                .dests
                .iter()
                .find(|d| d.mac.as_ref().map(|m| &m[..]) == Some(mac))
                .map(|d| format!("{}:{}", d.addr, d.port))
                .unwrap_or_else(|| format!("{mac:02x?}"));
            println!("  {c}:{port} -> real server {rs}");
        }
        i += 1;
    }
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
