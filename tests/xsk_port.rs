//! The tools' AF_XDP port (`lvsfwd::xsk::port`) on a real link: a veth
//! pair between two namespaces (tests/engine_netns). Needs root.
#![forbid(unsafe_code)]

mod engine_netns;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use engine_netns::*;
use lvsfwd::config::{XdpMode, ZeroCopy};
use lvsfwd::xsk::port::{Port, PortOptions};
use lvsfwd::xsk::prog::{self, Filter, XdpProgram};

const PEER_IP: std::net::Ipv4Addr = std::net::Ipv4Addr::new(198, 18, 5, 1);

fn in_director<T: Send + 'static>(rig: &Rig, f: impl FnOnce() -> T + Send + 'static) -> T {
    let path = format!("/var/run/netns/{}", rig.dns);
    std::thread::spawn(move || {
        prog::enter_netns(Path::new(&path)).expect("enter the director namespace");
        f()
    })
    .join()
    .expect("director thread")
}

fn frame(i: u16) -> Vec<u8> {
    tcp(
        DIRECTOR_MAC,
        PEER_MAC,
        VIP,
        80,
        PEER_IP,
        1024 + i,
        false,
        true,
    )
}

#[test]
fn one_flush_hands_the_kernel_every_queued_frame() {
    let rig = Rig::new(1);
    let dev = rig.dev.clone();
    let (queued, sent, pending, second) = in_director(&rig, move || {
        let mut p = Port::open(&PortOptions {
            ifname: &dev,
            queue: 0,
            frames: 1024,
            zero_copy: ZeroCopy::Off,
            batch: 64,
            tx_reserve: 512,
        })
        .expect("port");
        let mut i = 0u16;
        let queued = p.send_new(300, |buf| {
            let f = frame(i);
            i += 1;
            buf[..f.len()].copy_from_slice(&f);
            f.len()
        });
        let sent = p.flush().expect("flush");
        // Copy mode moves 32 frames per sendto: a single kick would leave
        // 268 of them on the ring.
        let pending = p.tx_pending();
        std::thread::sleep(Duration::from_millis(50));
        p.service().expect("service");
        (queued, sent, pending, p.send_new(1000, |_| 60))
    });
    assert_eq!((queued, sent), (300, 300));
    assert_eq!(pending, 0, "descriptors left on the TX ring after flush");
    assert_eq!(
        second, 512,
        "completed frames return to the generator pool, which is all it may use"
    );
}

#[test]
fn received_frames_are_transformed_in_place_and_sent_back() {
    let rig = Rig::new(1);
    let dev = rig.dev.clone();
    let stop = Arc::new(AtomicBool::new(false));
    let ns = format!("/var/run/netns/{}", rig.dns);
    let s = Arc::clone(&stop);
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let fwd = std::thread::spawn(move || -> anyhow::Result<u64> {
        prog::enter_netns(Path::new(&ns))?;
        let mut xdp = XdpProgram::attach(&dev, XdpMode::Native)?;
        let vip = std::net::IpAddr::V4(VIP);
        xdp.set_filter(&Filter {
            services: vec![(lvsfwd::service::Protocol::Tcp, vip, 80)],
            vips: vec![vip],
            ..Filter::default()
        })?;
        let mut p = Port::open(&PortOptions {
            ifname: &dev,
            queue: 0,
            frames: 256,
            zero_copy: ZeroCopy::Off,
            batch: 16,
            tx_reserve: 0,
        })?;
        xdp.register_socket(0, p.fd())?;
        ready_tx.send(()).ok();
        let mut n = 0u64;
        while !s.load(Ordering::Relaxed) {
            p.service()?;
            n += p.receive(|f| {
                // Back to the sender (what the raw forwarder does).
                let mut d = [0u8; 6];
                d.copy_from_slice(&f[0..6]);
                f.copy_within(6..12, 0);
                f[6..12].copy_from_slice(&d);
                true
            }) as u64;
            p.flush()?;
            p.wait(5)?;
        }
        drop(p);
        xdp.detach()?;
        Ok(n)
    });
    ready_rx
        .recv_timeout(Duration::from_secs(20))
        .expect("forwarder up");
    let frames: Vec<Vec<u8>> = (0..40)
        .map(|i| {
            tcp(
                PEER_MAC,
                DIRECTOR_MAC,
                PEER_IP,
                2000 + i,
                VIP,
                80,
                true,
                false,
            )
        })
        .collect();
    let back = rig.exchange(&frames, 40, 5.0, 0);
    stop.store(true, Ordering::Relaxed);
    let n = fwd.join().expect("forwarder thread").expect("forwarder");
    assert_eq!(n, 40);
    assert_eq!(back.len(), 40, "every frame came back");
    for (i, f) in back.iter().enumerate() {
        let s = seen(f).expect("a TCP frame");
        assert_eq!((s.dmac, s.smac), (PEER_MAC, DIRECTOR_MAC), "MACs swapped");
        assert!(s.csum_ok);
        assert_eq!(s.dport, 80);
        assert!((2000..2040).contains(&s.sport), "frame {i}: {s:?}");
    }
}
