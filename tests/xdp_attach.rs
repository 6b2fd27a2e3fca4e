//! Attaching and detaching lvsfwd's XDP program on real interfaces: a veth
//! pair (native and generic XDP) and a bridge (no native XDP) inside a
//! network namespace each test creates and deletes (also when it fails).
//! The loader runs on a thread moved into that namespace; `ip -d link show`
//! in the namespace is the independent witness of what is attached.
//! Needs root: these tests fail, not skip, without it.
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::Command;

use lvsfwd::config::XdpMode;
use lvsfwd::xsk::prog::{AttachMode, XdpProgram, enter_netns};

const VETH: &str = "lfa0";
const PEER: &str = "lfb0";

fn assert_root() {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let uid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap();
    assert_eq!(uid, "0", "XDP attach tests need root");
}

fn run(args: &[&str]) -> String {
    let out = Command::new(args[0]).args(&args[1..]).output().unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// A network namespace `lfx<tag><pid>` holding a veth pair, deleted (with
/// everything in it) on drop.
struct Netns {
    name: String,
}

impl Netns {
    fn new(tag: &str) -> Netns {
        assert_root();
        let name = format!("lfx{tag}{}", std::process::id());
        assert!(name.len() <= 15);
        let ns = Netns { name };
        run(&["ip", "netns", "add", &ns.name]);
        ns.ip(&["link", "add", VETH, "type", "veth", "peer", "name", PEER]);
        ns.ip(&["link", "set", VETH, "up"]);
        ns.ip(&["link", "set", PEER, "up"]);
        ns
    }

    fn ip(&self, args: &[&str]) -> String {
        let mut all = vec!["ip", "-n", &self.name];
        all.extend_from_slice(args);
        run(&all)
    }

    fn path(&self) -> PathBuf {
        PathBuf::from(format!("/var/run/netns/{}", self.name))
    }

    /// What `ip -d link show` says is attached to `ifname`: the mode word
    /// ("xdp" for driver mode, "xdpgeneric") and the program id.
    fn xdp(&self, ifname: &str) -> Option<(String, u32)> {
        let out = self.ip(&["-d", "link", "show", "dev", ifname]);
        let first = out.lines().next().unwrap_or_default();
        let mode = first
            .split_whitespace()
            .find(|w| w.starts_with("xdp"))
            .map(str::to_string);
        let id = out
            .split("prog/xdp id ")
            .nth(1)
            .and_then(|r| r.split_whitespace().next())
            .and_then(|n| n.parse().ok());
        match (mode, id) {
            (None, None) => None,
            (Some(m), Some(id)) => Some((m, id)),
            other => panic!("inconsistent xdp state {other:?} in:\n{out}"),
        }
    }

    /// Runs `f` on a thread inside this namespace; a panic there fails the
    /// test (after which `self` still deletes the namespace).
    fn enter<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        let path = self.path();
        let h = std::thread::spawn(move || {
            enter_netns(&path).unwrap();
            f()
        });
        h.join().unwrap_or_else(|e| std::panic::resume_unwind(e))
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

#[test]
fn native_attach_then_detach_leaves_no_program() {
    let ns = Netns::new("n");
    let p = ns.enter(|| XdpProgram::attach(VETH, XdpMode::Native).unwrap());
    assert_eq!(p.mode(), AttachMode::Native);
    let id = p.object().prog_id().unwrap();
    assert_eq!(ns.xdp(VETH), Some(("xdp".to_string(), id)));
    assert_eq!(ns.xdp(PEER), None);
    let ifindex: u32 = ns
        .ip(&["-o", "link", "show", "dev", VETH])
        .split(':')
        .next()
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(p.ifindex(), ifindex);
    // The peer may already have sent something (IPv6 DAD, MLD) when the
    // link came up: with an empty filter it is passed, never redirected.
    let c = p.counters().unwrap();
    assert_eq!(
        c,
        lvsfwd::xsk::prog::ProgCounters {
            passed: c.passed,
            ..Default::default()
        }
    );
    ns.enter(move || p.detach().unwrap());
    assert_eq!(ns.xdp(VETH), None);
}

#[test]
fn generic_attach_then_detach_leaves_no_program() {
    let ns = Netns::new("g");
    let p = ns.enter(|| XdpProgram::attach(VETH, XdpMode::Generic).unwrap());
    assert_eq!(p.mode(), AttachMode::Generic);
    let id = p.object().prog_id().unwrap();
    assert_eq!(ns.xdp(VETH), Some(("xdpgeneric".to_string(), id)));
    ns.enter(move || p.detach().unwrap());
    assert_eq!(ns.xdp(VETH), None);
}

#[test]
fn dropping_the_program_detaches_it() {
    let ns = Netns::new("d");
    ns.enter(|| {
        let p = XdpProgram::attach(VETH, XdpMode::Generic).unwrap();
        drop(p);
    });
    assert_eq!(ns.xdp(VETH), None);
}

#[test]
fn auto_prefers_native_and_falls_back_to_generic() {
    let ns = Netns::new("a");
    // A bridge has no driver-level XDP.
    ns.ip(&["link", "add", "lfbr0", "type", "bridge"]);
    let (veth, br, native_err) = ns.enter(|| {
        let veth = XdpProgram::attach(VETH, XdpMode::Auto).unwrap();
        let br = XdpProgram::attach("lfbr0", XdpMode::Auto).unwrap();
        let native = XdpProgram::attach("lfbr0", XdpMode::Native).map(|_| ());
        (veth, br, native)
    });
    assert_eq!(veth.mode(), AttachMode::Native);
    assert_eq!(br.mode(), AttachMode::Generic);
    assert!(native_err.is_err(), "native XDP on a bridge must fail");
    let br_id = br.object().prog_id().unwrap();
    // The failed native attempt left the generic program in place.
    assert_eq!(ns.xdp("lfbr0"), Some(("xdpgeneric".to_string(), br_id)));
    ns.enter(move || {
        veth.detach().unwrap();
        br.detach().unwrap();
    });
    assert_eq!(ns.xdp(VETH), None);
    assert_eq!(ns.xdp("lfbr0"), None);
}

#[test]
fn a_stale_program_is_replaced() {
    let ns = Netns::new("s");
    for (stale_mode, new_mode, word) in [
        (XdpMode::Native, XdpMode::Native, "xdp"),
        (XdpMode::Generic, XdpMode::Generic, "xdpgeneric"),
        (XdpMode::Generic, XdpMode::Native, "xdp"),
        (XdpMode::Native, XdpMode::Generic, "xdpgeneric"),
    ] {
        let stale_id = ns.enter(move || {
            let stale = XdpProgram::attach(VETH, stale_mode).unwrap();
            let id = stale.object().prog_id().unwrap();
            // As if lvsfwd had crashed: nothing detaches it.
            std::mem::forget(stale);
            id
        });
        assert_eq!(ns.xdp(VETH).map(|(_, id)| id), Some(stale_id));
        let p = ns.enter(move || XdpProgram::attach(VETH, new_mode).unwrap());
        let id = p.object().prog_id().unwrap();
        assert_ne!(id, stale_id);
        assert_eq!(
            ns.xdp(VETH),
            Some((word.to_string(), id)),
            "{stale_mode:?} replaced by {new_mode:?}"
        );
        ns.enter(move || p.detach().unwrap());
        assert_eq!(
            ns.xdp(VETH),
            None,
            "{stale_mode:?} replaced by {new_mode:?}"
        );
    }
}

#[test]
fn a_replaced_program_does_not_detach_its_successor() {
    let ns = Netns::new("r");
    let (old, new) = ns.enter(|| {
        let old = XdpProgram::attach(VETH, XdpMode::Generic).unwrap();
        let new = XdpProgram::attach(VETH, XdpMode::Generic).unwrap();
        (old, new)
    });
    let new_id = new.object().prog_id().unwrap();
    assert_eq!(ns.xdp(VETH), Some(("xdpgeneric".to_string(), new_id)));
    let err = ns.enter(move || old.detach().map_err(|e| format!("{e:#}")));
    assert!(err.unwrap_err().contains("no longer"));
    assert_eq!(ns.xdp(VETH), Some(("xdpgeneric".to_string(), new_id)));
    ns.enter(move || new.detach().unwrap());
    assert_eq!(ns.xdp(VETH), None);
}

#[test]
fn attaching_to_a_missing_interface_fails() {
    let ns = Netns::new("m");
    let err = ns.enter(|| {
        XdpProgram::attach("lfnone0", XdpMode::Auto)
            .map(|_| ())
            .map_err(|e| format!("{e:#}"))
    });
    assert!(err.unwrap_err().contains("lfnone0"));
}

/// Real frames through the attached program: UDP datagrams sent out of the
/// peer veth reach `lfa0`'s XDP hook; the service's are redirected (and,
/// with no AF_XDP socket on the queue, fall back to the kernel), the rest
/// are passed.
#[test]
fn received_frames_are_sorted_by_the_attached_program() {
    use lvsfwd::service::Protocol;
    use lvsfwd::xsk::prog::Filter;
    use std::net::{IpAddr, UdpSocket};
    use std::time::{Duration, Instant};

    let ns = Netns::new("f");
    ns.ip(&["addr", "add", "198.18.0.1/24", "dev", PEER]);
    let mac = ns
        .ip(&["-o", "link", "show", "dev", VETH])
        .split("link/ether ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .unwrap()
        .to_string();
    // The VIP lives behind lfa0: no ARP needed, nothing local answers it.
    ns.ip(&[
        "neigh",
        "add",
        "198.18.0.10",
        "lladdr",
        &mac,
        "dev",
        PEER,
        "nud",
        "permanent",
    ]);
    for mode in [XdpMode::Native, XdpMode::Generic] {
        let vip: IpAddr = "198.18.0.10".parse().unwrap();
        let p = ns.enter(move || {
            let mut p = XdpProgram::attach(VETH, mode).unwrap();
            p.set_filter(&Filter {
                services: vec![(Protocol::Udp, vip, 53)],
                vips: vec![vip],
                ..Filter::default()
            })
            .unwrap();
            let s = UdpSocket::bind("198.18.0.1:0").unwrap();
            for _ in 0..3 {
                s.send_to(b"to the service", "198.18.0.10:53").unwrap();
            }
            for _ in 0..2 {
                s.send_to(b"not a service", "198.18.0.10:54").unwrap();
            }
            p
        });
        // Delivery through the veth is asynchronous: wait, bounded.
        let deadline = Instant::now() + Duration::from_secs(5);
        let c = loop {
            let c = p.counters().unwrap();
            if (c.redirected_service >= 3 && c.passed >= 2) || Instant::now() > deadline {
                break c;
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        assert_eq!(c.redirected_service, 3, "{mode:?}: {c:?}");
        assert_eq!(
            c.redirect_failed, 3,
            "{mode:?}: no socket on the queue: {c:?}"
        );
        assert!(c.passed >= 2, "{mode:?}: {c:?}");
        assert_eq!(
            c.redirected_reply + c.redirected_icmp + c.redirected_fragment,
            0
        );
        ns.enter(move || p.detach().unwrap());
    }
}
