//! One UMEM, two NICs (`lvsfwd::xsk::afxdp::WorkerUmem`): a socket on each
//! of two veth links in one namespace, bound from the same UMEM; a frame
//! received on link A is transmitted out of link B by moving its descriptor
//! (no copy), seen by an AF_PACKET socket on B's far end, and completes on
//! B's completion ring back into the shared pool. Needs root. (One
//! `unsafe` block: looking at a frame's bytes, whose contract is the frame
//! ownership rule of `afxdp`.)

mod engine_netns;

use std::collections::BTreeSet;
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use engine_netns::*;
use lvsfwd::config::{XdpMode, ZeroCopy};
use lvsfwd::xsk::afxdp::{BindOptions, FrameDesc, WorkerUmem};
use lvsfwd::xsk::prog::{self, Filter, XdpProgram};

const PEER_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 5, 1);
/// The director's end of the second link, and its far end.
const B_MAC: [u8; 6] = [0x02, 0x1f, 0xd0, 0, 0, 0x02];
const PEER_B_MAC: [u8; 6] = [0x02, 0x1f, 0xe0, 0, 0, 0x02];
const FRAMES: u32 = 256;
/// Frames the test never gives the kernel: the pool must end with these
/// plus every forwarded frame.
const KEEP: usize = 128;
const N: usize = 40;

fn sh(args: &[&str]) {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .expect("spawn");
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn mac_str(m: [u8; 6]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Captures on `capture_if` (bound before anything is sent), sends the
/// frames on stdin out of `send_if`, prints up to `want` captured frames.
const SCRIPT: &str = r#"
import select, socket, sys, time
send_if, capture_if, want, timeout = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
frames = [bytes.fromhex(l.strip()) for l in sys.stdin if l.strip()]
c = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))
c.bind((capture_if, 0))
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))
s.bind((send_if, 0))
for f in frames:
    s.send(f)
got = 0
end = time.time() + timeout
while got < want:
    left = end - time.time()
    if left <= 0:
        break
    r, _, _ = select.select([c], [], [], left)
    if not r:
        break
    data, addr = c.recvfrom(65535)
    if addr[2] == socket.PACKET_OUTGOING:
        continue
    print(data.hex())
    got += 1
"#;

/// What the director thread saw.
struct Forwarded {
    received: Vec<usize>,
    completed_on_b: Vec<usize>,
    completed_on_a: u32,
    pool_after: usize,
    rebind_refused: bool,
}

fn director(
    ns: String,
    dev_a: String,
    dev_b: String,
    ready: mpsc::Sender<()>,
) -> anyhow::Result<Forwarded> {
    prog::enter_netns(Path::new(&ns))?;
    let (umem, pool) = WorkerUmem::new(FRAMES)?;
    let bind = |ifname: &str| {
        umem.bind(&BindOptions {
            ifname,
            queue: 0,
            zero_copy: ZeroCopy::Off,
        })
    };
    let mut xa = bind(&dev_a)?;
    let mut xb = bind(&dev_b)?;
    // The kernel's mode, read back: veth in copy mode, and a socket sharing
    // a UMEM takes its first socket's.
    anyhow::ensure!(
        !xa.is_zero_copy() && !xb.is_zero_copy(),
        "copy mode on veth"
    );
    // One socket per (interface, queue) and UMEM: each has its own fill
    // and completion rings.
    let rebind_refused = bind(&dev_a).is_err();
    let mut xdp = XdpProgram::attach(&dev_a, XdpMode::Native)?;
    let vip = IpAddr::V4(VIP);
    xdp.set_filter(&Filter {
        services: vec![(lvsfwd::service::Protocol::Tcp, vip, 80)],
        vips: vec![vip],
        ..Filter::default()
    })?;
    xdp.register_socket(0, xa.fd())?;
    let mut free: Vec<FrameDesc> = Vec::with_capacity(FRAMES as usize);
    free.extend(pool);
    let filled = xa.refill(&mut free, KEEP);
    anyhow::ensure!(filled as usize == FRAMES as usize - KEEP, "filled {filled}");
    let mut rx = vec![FrameDesc::default(); 16];
    let mut scratch: Vec<FrameDesc> = Vec::with_capacity(FRAMES as usize);
    let mut received = Vec::new();
    let mut completed_on_b = Vec::new();
    let mut completed_on_a = 0;
    ready.send(()).ok();
    let deadline = Instant::now() + Duration::from_secs(15);
    while completed_on_b.len() < N && Instant::now() < deadline {
        let n = xa.receive(&mut rx);
        for d in &mut rx[..n] {
            received.push(d.addr());
            // SAFETY: the frame came off A's RX ring, so this thread owns
            // it until it goes on B's TX ring below; nothing else looks at
            // it meanwhile.
            let f = unsafe { umem.frame_mut(d) };
            let Some(mut f) = f else {
                anyhow::bail!("a received descriptor outside the UMEM");
            };
            let len = f.len();
            // Rewritten in place for link B.
            f.buf()[0..6].copy_from_slice(&PEER_B_MAC);
            f.buf()[6..12].copy_from_slice(&B_MAC);
            f.finish(0, len);
        }
        let sent = xb.transmit(&rx[..n]);
        anyhow::ensure!(sent == n, "TX ring full: {sent} of {n}");
        xb.drain_tx()?;
        let before = free.len();
        xb.reap_completions(&mut free);
        completed_on_b.extend(free[before..].iter().map(|d| d.addr()));
        completed_on_a += xa.reap_completions(&mut scratch);
        if n == 0 {
            xa.poll(None, 10)?;
        }
    }
    let pool_after = free.len();
    drop((xa, xb));
    xdp.detach()?;
    Ok(Forwarded {
        received,
        completed_on_b,
        completed_on_a,
        pool_after,
        rebind_refused,
    })
}

#[test]
fn a_frame_received_on_one_nic_leaves_by_another_without_a_copy() {
    let rig = Rig::new(1);
    let suffix = &rig.dev[3..];
    let (dev_b, peer_b) = (format!("lfb{suffix}"), format!("lfq{suffix}"));
    sh(&[
        "ip",
        "-n",
        &rig.dns,
        "link",
        "add",
        &dev_b,
        "address",
        &mac_str(B_MAC),
        "type",
        "veth",
        "peer",
        "name",
        &peer_b,
        "address",
        &mac_str(PEER_B_MAC),
        "netns",
        &rig.pns,
    ]);
    sh(&["ip", "-n", &rig.dns, "link", "set", &dev_b, "up"]);
    sh(&["ip", "-n", &rig.pns, "link", "set", &peer_b, "up"]);

    let (ready_tx, ready_rx) = mpsc::channel();
    let ns = format!("/var/run/netns/{}", rig.dns);
    let (dev_a, db) = (rig.dev.clone(), dev_b.clone());
    let fwd = std::thread::spawn(move || director(ns, dev_a, db, ready_tx));
    ready_rx
        .recv_timeout(Duration::from_secs(20))
        .expect("director up");

    let frames: Vec<Vec<u8>> = (0..N as u16)
        .map(|i| {
            tcp(
                PEER_MAC,
                DIRECTOR_MAC,
                PEER_IP,
                3000 + i,
                VIP,
                80,
                true,
                false,
            )
        })
        .collect();
    let mut child = Command::new("ip")
        .args(["netns", "exec", &rig.pns, "python3", "-c", SCRIPT])
        .args([&rig.peer, &peer_b, &N.to_string(), "5"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3");
    {
        let mut stdin = child.stdin.take().unwrap();
        for f in &frames {
            let hex: String = f.iter().map(|b| format!("{b:02x}")).collect();
            writeln!(stdin, "{hex}").unwrap();
        }
    }
    let out = child.wait_with_output().expect("python3");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let seen_on_b: Vec<Vec<u8>> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            (0..l.len() / 2)
                .map(|i| u8::from_str_radix(&l[2 * i..2 * i + 2], 16).unwrap())
                .collect()
        })
        .collect();
    let r = fwd.join().expect("director thread").expect("director");

    assert!(r.rebind_refused, "a second socket on (A, 0) from one UMEM");
    // Every frame came out of B, rewritten in place, otherwise as sent.
    assert_eq!(seen_on_b.len(), N, "frames seen on B's far end");
    let mut ports = BTreeSet::new();
    for f in &seen_on_b {
        assert_eq!((&f[0..6], &f[6..12]), (&PEER_B_MAC[..], &B_MAC[..]));
        let s = seen(f).expect("a TCP frame");
        assert!(s.csum_ok);
        let orig = &frames[(s.sport - 3000) as usize];
        assert_eq!(&f[12..], &orig[12..]);
        ports.insert(s.sport);
    }
    assert_eq!(ports.len(), N, "each frame once");
    // The descriptors B completed are exactly those A received: the same
    // frames of the one UMEM, moved, not copied; A's completion ring saw
    // none of them, and every frame is back in the pool.
    assert_eq!(r.received.len(), N);
    let rx: BTreeSet<usize> = r.received.iter().copied().collect();
    let done: BTreeSet<usize> = r.completed_on_b.iter().copied().collect();
    assert_eq!(rx.len(), N, "distinct frames");
    assert_eq!(done, rx);
    assert_eq!(r.completed_on_a, 0);
    assert_eq!(r.pool_after, KEEP + N);
}
