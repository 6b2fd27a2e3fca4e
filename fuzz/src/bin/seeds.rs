//! Writes the fuzz targets' seed corpora into fuzz/corpus/<target>/ from
//! material kept in the repository: frames captured on a veth rig
//! (fuzz/seeds/rig.pcap, see fuzz/seeds/capture.sh), the example lb.toml
//! files, the seeds' keepalived.conf files, and the seeds' ipvsadm command
//! lines. Deterministic: the same repository gives the same corpus.
//!
//! Usage: `seeds [FUZZ_DIR]` (default: the directory of this crate);
//! `seeds --check [FUZZ_DIR]` instead runs every file of every corpus
//! through its target's checks once, without libFuzzer (a quick
//! regression run over the seeds and whatever the fuzzers added).
#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};

use lvsfwd_fuzz::{LB_TOML_A, LB_TOML_B, admin_input, ctl, record, vrrp_ctl, vrrp_record};

fn write(dir: &Path, name: &str, data: &[u8]) {
    std::fs::create_dir_all(dir).expect("corpus directory");
    std::fs::write(dir.join(name), data).expect("corpus file");
}

/// Time step of a record: `dt` x 10 ms, or whole seconds when larger.
fn step(gap: std::time::Duration) -> (u8, u8) {
    let ms = gap.as_millis();
    if ms <= 2550 {
        (0, (ms / 10) as u8)
    } else {
        (ctl::SECONDS, gap.as_secs().min(255) as u8)
    }
}

fn frames(root: &Path, out: &Path) -> usize {
    let pcap = root.join("seeds/rig.pcap");
    let caps =
        lvsfwd::replay::read_capture(&pcap).unwrap_or_else(|e| panic!("{}: {e:#}", pcap.display()));
    let mut n = 0;
    let mut put = |name: String, data: Vec<u8>| {
        write(out, &name, &data);
        n += 1;
    };
    // The capture as it happened, under each of the four table sizes.
    for knob in [0x00u8, 0x01, 0x06, 0x33] {
        let mut v = vec![knob];
        let mut last = caps.first().map(|c| c.ts).unwrap_or_default();
        for c in &caps {
            let (flag, dt) = step(c.ts.saturating_sub(last));
            last = c.ts;
            v.extend(record(flag, dt, &c.data));
        }
        put(format!("capture-k{knob:02x}"), v);
    }
    // Each frame followed by the reply to what the director sent: the
    // NAT / FULLNAT return paths and the TCP state machine.
    let mut v = vec![0x01u8];
    for c in &caps {
        v.extend(record(0, 1, &c.data));
        let is_syn = c.data.len() > 47 && c.data[47] & 0x12 == 0x02;
        let flags = if is_syn { 0x12 } else { 0x10 };
        v.extend(record(ctl::REFLECT, 1, &[flags]));
    }
    put("capture-replies".into(), v);
    // Reloads, flushes and timer jumps between the captured frames.
    let mut v = vec![0x11u8];
    for (i, c) in caps.iter().enumerate() {
        let extra = match i % 7 {
            2 => ctl::RELOAD,
            4 => ctl::FLUSH | ctl::TICK,
            5 => ctl::SECONDS | ctl::TICK,
            _ => 0,
        };
        v.extend(record(extra, if i % 7 == 5 { 200 } else { 3 }, &c.data));
        v.extend(record(ctl::REFLECT, 0, &[0x10]));
    }
    put("capture-reload-expire".into(), v);
    // Every frame on its own, checksums repaired, in a tiny table.
    for (i, c) in caps.iter().enumerate() {
        let mut v = vec![0x00u8];
        v.extend(record(ctl::FIX, 0, &c.data));
        put(format!("frame-{i:03}"), v);
    }
    // Fragments (reassembly): the TCP/UDP frames cut into 16-byte pieces,
    // in order, last first, twice (duplicates), and cut two ways at once
    // (overlaps), with the timers run 31 s later.
    let mut k = 0;
    for c in &caps {
        let Some(pieces) = cut(&c.data) else { continue };
        let mut v = vec![0x01u8];
        for (geometry, reverse) in [(0, false), (0, true), (1, false)] {
            let mut p = pieces[geometry].clone();
            if reverse {
                p.reverse();
            }
            for f in &p {
                v.extend(record(0, 1, f));
            }
        }
        for (a, b) in pieces[0].iter().zip(pieces[1].iter().rev()) {
            v.extend(record(0, 0, a));
            v.extend(record(0, 0, b));
        }
        v.extend(record(ctl::SECONDS | ctl::TICK, 31, &pieces[0][0]));
        put(format!("fragments-{k:03}"), v);
        k += 1;
        if k == 24 {
            break;
        }
    }
    n
}

/// A captured TCP/UDP frame cut into fragments of 16 and of 24 payload
/// bytes (lvsfwd's own fragmenter); `None` for other frames.
fn cut(frame: &[u8]) -> Option<[Vec<Vec<u8>>; 2]> {
    let p = lvsfwd::wire::parse(frame).ok()??;
    if !matches!(
        p.l4,
        lvsfwd::wire::L4::Tcp { .. } | lvsfwd::wire::L4::Udp { .. }
    ) {
        return None;
    }
    let frame = &frame[..p.l3_end()];
    let hdr = p.l4_off - p.l3_off
        + if p.version == lvsfwd::wire::IpVersion::V6 {
            8
        } else {
            0
        };
    let mut out = [Vec::new(), Vec::new()];
    for (i, payload) in [16usize, 24].into_iter().enumerate() {
        let mut x = lvsfwd::forward::frag::ExtraTx::with_capacity(1 << 16, 256);
        lvsfwd::forward::frag::fragment(frame, p.l3_off, p.version, hdr + payload, 7, &mut x, 0)
            .ok()?;
        out[i] = x.iter().map(|(f, _)| f.to_vec()).collect();
    }
    Some(out)
}

// Adverts captured from keepalived 2.2.7 (the vrrp helper's fixtures in
// src/wire/vrrp.rs): v2 VRID 51 "1111"; v3 IPv4 VRID 52 and its priority-0
// stop; v3 IPv6 VRID 53. Sources 198.18.0.3 / fe80::1f:ff:fe00:3.
const KA_V2: [u8; 20] = [
    0x21, 0x33, 0x64, 0x01, 0x01, 0x01, 0x50, 0x5b, 0xc6, 0x12, 0x00, 0xfa, 0x31, 0x31, 0x31, 0x31,
    0x00, 0x00, 0x00, 0x00,
];
const KA_V3_V4: [u8; 16] = [
    0x31, 0x34, 0x96, 0x02, 0x00, 0x96, 0x03, 0x6e, 0xc6, 0x12, 0x00, 0xfb, 0xc6, 0x12, 0x00, 0xfc,
];
const KA_V3_V4_STOP: [u8; 16] = [
    0x31, 0x34, 0x00, 0x02, 0x00, 0x96, 0x99, 0x6e, 0xc6, 0x12, 0x00, 0xfb, 0xc6, 0x12, 0x00, 0xfc,
];
const KA_V3_V6: [u8; 24] = [
    0x31, 0x35, 0xc8, 0x01, 0x00, 0x64, 0xe6, 0xd1, 0x20, 0x01, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x50,
];

/// `msg` with `edit` applied to its parsed form, checksum recomputed for
/// `src` -> `dst`.
fn edited(
    msg: &[u8],
    v6: bool,
    src: &str,
    dst: &str,
    edit: impl Fn(&mut lvsfwd::wire::vrrp::VrrpRepr),
) -> Vec<u8> {
    use lvsfwd::wire::vrrp::{Family, VrrpPacket, VrrpRepr};
    let fam = if v6 { Family::V6 } else { Family::V4 };
    let p = VrrpPacket::new_checked(msg, fam).expect("fixture advert");
    let mut r = VrrpRepr::parse(&p);
    edit(&mut r);
    r.to_bytes(src.parse().unwrap(), dst.parse().unwrap())
        .expect("edited advert")
}

fn vrrp(out: &Path) -> usize {
    let mut n = 0;
    let mut put = |name: &str, data: Vec<u8>| {
        write(out, name, &data);
        n += 1;
    };
    let cases: [(u8, &[u8], bool, &str, &str); 4] = [
        (0, &KA_V2, false, "198.18.0.3", "224.0.0.18"),
        (1, &KA_V3_V4, false, "198.18.0.3", "224.0.0.18"),
        (2, &KA_V3_V6, true, "fe80::1f:ff:fe00:3", "ff02::12"),
        (3, &KA_V3_V4, false, "198.18.0.3", "198.18.0.2"),
    ];
    for (pick, msg, v6, src, dst) in cases {
        let uni = if pick == 3 { vrrp_ctl::UNICAST } else { 0 };
        // As captured, repeated, then a timer run: the peer is master.
        let mut v = vec![pick];
        for _ in 0..3 {
            v.extend(vrrp_record(uni, 100, 255, 0, msg));
        }
        v.extend(vrrp_record(vrrp_ctl::TIMER, 255, 0, 0, &[]));
        put(&format!("ka-{pick}"), v);
        // The bad adverts keepalived's checks drop: TTL, VRID, version,
        // password, interval, priority 0, a looped-back own advert.
        let mut v = vec![pick];
        v.extend(vrrp_record(uni, 10, 64, 0, msg));
        v.extend(vrrp_record(
            uni,
            10,
            255,
            0,
            &edited(msg, v6, src, dst, |r| r.vrid ^= 1),
        ));
        v.extend(vrrp_record(uni, 10, 255, 1, msg));
        v.extend(vrrp_record(
            uni,
            10,
            255,
            0,
            &edited(msg, v6, src, dst, |r| r.priority = 0),
        ));
        v.extend(vrrp_record(
            uni,
            10,
            255,
            0,
            &edited(msg, v6, src, dst, |r| r.priority = 254),
        ));
        if !v6 && pick == 0 {
            v.extend(vrrp_record(
                0,
                10,
                255,
                0,
                &edited(msg, v6, src, dst, |r| r.auth_data[0] ^= 1),
            ));
            v.extend(vrrp_record(
                0,
                10,
                255,
                0,
                &edited(msg, v6, src, dst, |r| r.interval_cs = 300),
            ));
        }
        v.extend(vrrp_record(vrrp_ctl::NO_TTL | uni, 10, 0, 2, msg));
        v.extend(vrrp_record(vrrp_ctl::TIMER, 255, 0, 0, &[]));
        put(&format!("bad-{pick}"), v);
    }
    let mut v = vec![1u8];
    v.extend(vrrp_record(0, 5, 255, 0, &KA_V3_V4_STOP));
    v.extend(vrrp_record(vrrp_ctl::TIMER, 200, 0, 0, &[]));
    put("ka-stop", v);
    n
}

fn text_files(dir: &Path, ext: &str, prefix: &str) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.extension().is_some_and(|x| x == ext)
                && p.file_name()
                    .is_some_and(|f| f.to_string_lossy().starts_with(prefix))
        })
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read_to_string(&p).expect("seed file"))
        })
        .collect();
    v.sort();
    v
}

/// Runs every corpus file through its target once.
fn check(corpus: &Path) {
    for (name, run) in lvsfwd_fuzz::TARGETS {
        let dir = corpus.join(name);
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .filter_map(Result::ok)
            .map(|e| e.path())
            .collect();
        files.sort();
        for f in &files {
            // A libFuzzer running on this corpus meanwhile replaces files.
            let data = match std::fs::read(f) {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                r => r.expect("corpus file"),
            };
            eprintln!("check {}", f.display());
            run(&data);
        }
        eprintln!("seeds --check: {name}: {} inputs passed", files.len());
    }
}

fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let check_only = args.first().is_some_and(|a| a == "--check");
    if check_only {
        args.remove(0);
    }
    let root: PathBuf = args
        .first()
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    if check_only {
        check(&root.join("corpus"));
        return;
    }
    let repo = root.join("..");
    let corpus = root.join("corpus");

    let nf = frames(&root, &corpus.join("frames"));
    let nv = vrrp(&corpus.join("vrrp"));

    let lb = corpus.join("lb_toml");
    let mut tomls = text_files(&repo.join("configs"), "toml", "");
    tomls.push(("fuzz-a.toml".into(), LB_TOML_A.into()));
    tomls.push(("fuzz-b.toml".into(), LB_TOML_B.into()));
    let kas = text_files(&repo.join("tests/fixtures"), "conf", "keepalived");
    for (name, text) in &kas {
        let (imported, _) = lvsfwd::config::keepalived::import(text);
        tomls.push((format!("imported-{name}.toml"), imported));
    }
    for (name, text) in &tomls {
        write(&lb, name, text.as_bytes());
    }
    let ka = corpus.join("keepalived");
    for (name, text) in &kas {
        write(&ka, name, text.as_bytes());
    }

    let ad = corpus.join("admin");
    let vip = "198.18.0.250";
    // Seed 002's commands, then listings.
    write(
        &ad,
        "seed002",
        &admin_input(&[
            (&["-A", "-t", "192.168.150.10:80", "-s", "rr"], None),
            (
                &[
                    "-a",
                    "-t",
                    "192.168.150.10:80",
                    "-r",
                    "192.168.150.2",
                    "-g",
                    "-w",
                    "1",
                ],
                None,
            ),
            (
                &[
                    "-a",
                    "-t",
                    "192.168.150.10:80",
                    "-r",
                    "192.168.150.3",
                    "-g",
                    "-w",
                    "1",
                ],
                None,
            ),
            (&["-ln"], None),
        ]),
    );
    // Seed 004's lvs-DR.sh start branch.
    let svc = format!("{vip}:10087");
    write(
        &ad,
        "seed004",
        &admin_input(&[
            (&["-C"], None),
            (&["-A", "-t", &svc, "-s", "wrr", "-p", "60"], None),
            (
                &["-a", "-t", &svc, "-r", "198.18.0.11", "-g", "-w", "2"],
                None,
            ),
            (
                &["-a", "-t", &svc, "-r", "198.18.0.12", "-g", "-w", "1"],
                None,
            ),
            (&[], None),
        ]),
    );
    write(
        &ad,
        "restore-edit-delete",
        &admin_input(&[
            (
                &["-R"],
                Some(
                    "-A -u 198.18.0.250:53 -s sh -b sh-port\n-a -u 198.18.0.250:53 -r 198.18.0.11:53 -m\n",
                ),
            ),
            (&["-E", "-t", "198.18.0.250:80", "-s", "lblcr"], None),
            (
                &[
                    "-e",
                    "-t",
                    "198.18.0.250:80",
                    "-r",
                    "198.18.0.11:8080",
                    "-w",
                    "0",
                ],
                None,
            ),
            (
                &["-d", "-t", "198.18.0.250:80", "-r", "198.18.0.12:8080"],
                None,
            ),
            (&["-D", "-t", "[2001:2::250]:80"], None),
            (&["--set", "10", "20", "30"], None),
            (&["-Z"], None),
            (&["-L", "-n", "-c"], None),
            (&["-L", "--timeout"], None),
            (&["-S", "-n"], None),
        ]),
    );
    write(
        &ad,
        "wire-json",
        b"\x00{\"version\":1,\"argv\":[\"-A\",\"-t\",\"198.18.0.1:80\",\"-s\",\"rr\"]}\n",
    );
    write(
        &ad,
        "wire-json-restore",
        b"\x00{\"version\":1,\"argv\":[\"-R\"],\"stdin\":\"-A -t 198.18.0.1:80 -s wlc\\n\"}\n",
    );
    // config_traffic: structured inputs decoded from pseudo-random bytes
    // (libFuzzer's mutations then keep the structure's shape).
    let ct = corpus.join("config_traffic");
    for seed in 0..16 {
        let data = lvsfwd_fuzz::config_traffic::pseudo_random_input(seed, 2048);
        write(&ct, &format!("random-{seed:02}"), &data);
    }
    eprintln!(
        "seeds: {nf} frame inputs, {nv} vrrp, {} lb.toml, {} keepalived.conf, 5 admin, \
         16 config_traffic into {}",
        tomls.len(),
        kas.len(),
        corpus.display()
    );
}
