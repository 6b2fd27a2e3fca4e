//! Scale-out (issue 16): two lvsfwd directors behind a router's ECMP, the
//! VIP announced over BGP by real BIRD 2 daemons, with real parts only.
//!
//! Topology (the rig's DR segment plus one namespace): the rig's client
//! namespace is the router: BIRD 2 (`configs/bird-router.conf`: eBGP with
//! any director of the segment, `merge paths`), IPv4 forwarding and
//! `fib_multipath_hash_policy = 1` (L4 hash). Behind it, on a veth of its
//! own, a client namespace (`lfec...`, 198.19.16.2) runs many long-lived
//! TCP streams (tests/rig/streams.py) to the VIP. The rig's director and
//! peer each run lvsfwd (DR, mh with mh-port, `sloppy_tcp`, active-active sync,
//! `[announce] table = 100`) and BIRD 2 (`configs/bird-director.conf`:
//! learns table 100, exports it to the router with next hop self); the VIP
//! is on neither director's NIC, only on the real servers' lo. The real
//! servers run `stream.py server` and route the client's subnet back
//! through the router.
//!
//! What is asserted:
//! - nothing is announced until lvsfwd serves: BGP sessions up, no route;
//!   lvsfwd started, the router's route to the VIP has both directors;
//! - the router spreads the streams over both directors (seen on the
//!   router's wire by destination MAC), and each director lists, by sync,
//!   the other's connections;
//! - a third real server is added (lvsadm, both directors) while the
//!   streams are open, so mh maps some of them to another server: the
//!   synced entries keep them where they are;
//! - one director dies (its link down, lvsfwd and BIRD SIGKILLed): BFD
//!   withdraws its path; 0 streams broken, every stream answered by one
//!   real server from start to end;
//! - it returns (link up, lvsfwd and BIRD started again): its path comes
//!   back and ECMP rehashes a share of the streams onto it; 0 broken;
//! - its real servers' health checks fail (nft drops its probes, not the
//!   streams, which lvsfwd forwards past the director's stack): it
//!   withdraws its path, the survivor carries every stream; 0 broken;
//! - (second test) lvsfwd stopped (SIGTERM): its route goes at once; a
//!   director that dies without BFD is withdrawn after the 3 s hold time.
//!
//! Printed with `--nocapture`: the time from a death to the withdrawal
//! (BFD and hold time), the longest stall of a stream, the share of
//! streams moved at the join.
#![forbid(unsafe_code)]

mod rig;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use rig::daemon::{Lvsfwd, lvsadm_ok};
use rig::{CMD_TIMEOUT, Fam, Host, IFACE, Mode, Rig, python, run, script, wait_until};

const PORT: u16 = 7000;
const TABLE: u32 = 100;
const ROUTER_AS: u32 = 65000;
const DIRECTOR_AS: u32 = 65001;
const SYNCID: u8 = 16;
const CLIENT_NET: &str = "198.19.16";
/// The client's IPv6 subnet behind the router (a /64 of it).
const CLIENT_NET6: &str = "2001:2:16:";
const STREAMS: usize = 24;
/// FULLNAT: the director's and the peer's local address.
const LADDR: [&str; 2] = ["198.18.9.1", "198.18.9.2"];

fn conf_path(name: &str) -> String {
    format!("{}/configs/{name}", env!("CARGO_MANIFEST_DIR"))
}

fn fill(template: &str, vars: &[(&str, String)]) -> String {
    let mut s = std::fs::read_to_string(conf_path(template)).expect("BIRD config template");
    for (k, v) in vars {
        s = s.replace(&format!("@{k}@"), v);
    }
    assert!(!s.contains('@'), "unfilled placeholder in {template}:\n{s}");
    s
}

/// The client namespace behind the router, removed on drop.
struct ClientNs {
    host: Host,
}

impl Drop for ClientNs {
    fn drop(&mut self) {
        let out = run(&["ip", "netns", "pids", &self.host.ns], CMD_TIMEOUT);
        for pid in out.stdout.split_whitespace() {
            let _ = run(&["kill", "-KILL", pid], CMD_TIMEOUT);
        }
        let _ = run(&["ip", "netns", "del", &self.host.ns], CMD_TIMEOUT);
    }
}

struct Ecmp {
    rig: Rig,
    client: ClientNs,
    bfd: bool,
    /// lb.toml: a FULLNAT IPv4 virtual server (per-director local
    /// addresses) and an IPv6 DR one, instead of the IPv4 DR one.
    fullnat: bool,
}

impl Ecmp {
    fn router(&self) -> &Host {
        self.rig.client()
    }

    fn router_ip(&self) -> String {
        self.rig.client_ip(Fam::V4).to_string()
    }

    fn sock(&self, who: &str) -> String {
        self.rig
            .dir()
            .join(format!("{who}.sock"))
            .to_string_lossy()
            .into_owned()
    }

    /// The directors' addresses (the router's next hops).
    fn addr(&self, h: &Host) -> String {
        if h.ns == self.rig.director().ns {
            self.rig.dip(Fam::V4).to_string()
        } else {
            "198.18.0.3".to_string()
        }
    }

    /// The directors' IPv6 addresses (next hops of the IPv6 routes).
    fn addr6(&self, h: &Host) -> String {
        if h.ns == self.rig.director().ns {
            self.rig.dip(Fam::V6).to_string()
        } else {
            "2001:2::3".to_string()
        }
    }

    /// This director's FULLNAT local address and the other's.
    fn laddrs(&self, h: &Host) -> (&'static str, &'static str) {
        if h.ns == self.rig.director().ns {
            (LADDR[0], LADDR[1])
        } else {
            (LADDR[1], LADDR[0])
        }
    }

    fn name(&self, h: &Host) -> &'static str {
        if h.ns == self.rig.director().ns {
            "director"
        } else {
            "peer"
        }
    }

    /// The router's next hops for the VIP now.
    fn next_hops(&self) -> BTreeSet<String> {
        self.hops_to(&format!("{}/32", self.rig.vip(Fam::V4)))
    }

    /// The router's next hops for `prefix` now.
    fn hops_to(&self, prefix: &str) -> BTreeSet<String> {
        let fam = if prefix.contains(':') { "-6" } else { "-4" };
        let out = self
            .router()
            .exec(&["ip", fam, "route", "show", "table", "main", prefix]);
        let mut hops = BTreeSet::new();
        let words: Vec<&str> = out.stdout.split_whitespace().collect();
        for w in words.windows(2) {
            if w[0] == "via" {
                hops.insert(w[1].to_string());
            }
        }
        hops
    }

    /// Waits until the router's next hops are `want`; the time it took.
    fn wait_hops(&self, want: &[&Host], timeout: Duration) -> Duration {
        self.wait_hops_to(&format!("{}/32", self.rig.vip(Fam::V4)), want, timeout)
    }

    /// Waits until the router's next hops for `prefix` are `want`.
    fn wait_hops_to(&self, prefix: &str, want: &[&Host], timeout: Duration) -> Duration {
        let want: BTreeSet<String> = want
            .iter()
            .map(|h| {
                if prefix.contains(':') {
                    self.addr6(h)
                } else {
                    self.addr(h)
                }
            })
            .collect();
        let t0 = Instant::now();
        let ok = wait_until(timeout, || self.hops_to(prefix) == want);
        assert!(
            ok,
            "the router's next hops for {prefix} are {:?}, not {want:?}; router BIRD: {}",
            self.hops_to(prefix),
            self.birdc(self.router(), "router", "show route all")
        );
        t0.elapsed()
    }

    fn birdc(&self, h: &Host, who: &str, cmd: &str) -> String {
        let sock = self.sock(&format!("bird-{who}"));
        let mut argv = vec!["birdc", "-s", sock.as_str()];
        argv.extend(cmd.split(' '));
        let o = h.exec(&argv);
        format!("{}{}", o.stdout, o.stderr)
    }

    fn start_bird(&self, h: &Host, who: &str, conf: String) -> u32 {
        let path = self.rig.dir().join(format!("bird-{who}.conf"));
        std::fs::write(&path, conf).expect("write bird.conf");
        let sock = self.sock(&format!("bird-{who}"));
        let pid = self.rig.spawn(
            h,
            &format!("bird-{who}"),
            &["bird", "-f", "-c", path.to_str().unwrap(), "-s", &sock],
        );
        assert!(
            wait_until(Duration::from_secs(10), || self
                .birdc(h, who, "show status")
                .contains("Daemon is up")),
            "BIRD in {who} never came up: {:?}",
            self.rig.proc_logs(pid)
        );
        pid
    }

    fn start_director_bird(&self, h: &Host) -> u32 {
        let ip = self.addr(h);
        let conf = fill(
            "bird-director.conf",
            &[
                ("ROUTER_ID", ip.clone()),
                ("TABLE", TABLE.to_string()),
                ("PROTOCOL", "201".into()),
                ("IFACE", IFACE.into()),
                ("LOCAL_IP", ip),
                ("LOCAL_IP6", self.addr6(h)),
                ("LOCAL_AS", DIRECTOR_AS.to_string()),
                ("ROUTER_IP", self.router_ip()),
                ("ROUTER_AS", ROUTER_AS.to_string()),
                ("BFD", if self.bfd { "on" } else { "off" }.into()),
            ],
        );
        self.start_bird(h, self.name(h), conf)
    }

    fn lb_toml(&self, h: &Host) -> String {
        if self.fullnat {
            return self.lb_toml_fullnat(h);
        }
        let mut s = format!(
            "[global]\nrouter_id = \"{}\"\ninterface = \"{IFACE}\"\nadmin_socket = \"{}\"\n\
             sloppy_tcp = true\n\n\
             [global.lvs_sync_daemon]\ninterface = \"{IFACE}\"\nactive_active = true\nid = {SYNCID}\n\n\
             [announce]\ntable = {TABLE}\n\n\
             [[virtual_server]]\naddress = \"{}:{PORT}\"\nprotocol = \"TCP\"\nlb_algo = \"mh\"\n\
             sched_flags = [\"mh-port\"]\nlb_kind = \"DR\"\ndelay_loop = 1\n",
            self.name(h),
            self.sock(self.name(h)),
            self.rig.vip(Fam::V4),
        );
        for n in 1..=2 {
            s += &format!(
                "\n  [[virtual_server.real_server]]\n  address = \"{}:{PORT}\"\n  weight = 1\n\
                 [virtual_server.real_server.tcp_check]\nconnect_timeout = 1\nretry = 1\n\
                 delay_before_retry = 1\n",
                self.rig.rip(n, Fam::V4)
            );
        }
        s
    }

    /// FULLNAT over IPv4 with this director's own local address (the
    /// peer's taken and announced as less preferred), and DR over IPv6.
    fn lb_toml_fullnat(&self, h: &Host) -> String {
        let (own, peer) = self.laddrs(h);
        let mut s = format!(
            "[global]\nrouter_id = \"{}\"\ninterface = \"{IFACE}\"\nadmin_socket = \"{}\"\n\
             sloppy_tcp = true\n\n\
             [global.lvs_sync_daemon]\ninterface = \"{IFACE}\"\nactive_active = true\nid = {SYNCID}\n\n\
             [announce]\ntable = {TABLE}\npeer_local_address = [\"{peer}\"]\n",
            self.name(h),
            self.sock(self.name(h)),
        );
        for (vip, kind, fam) in [
            (self.rig.vip(Fam::V4).to_string(), "FULLNAT", Fam::V4),
            (format!("[{}]", self.rig.vip(Fam::V6)), "DR", Fam::V6),
        ] {
            s += &format!(
                "\n[[virtual_server]]\naddress = \"{vip}:{PORT}\"\nprotocol = \"TCP\"\n\
                 lb_algo = \"mh\"\nsched_flags = [\"mh-port\"]\nlb_kind = \"{kind}\"\ndelay_loop = 1\n"
            );
            if kind == "FULLNAT" {
                s += &format!("local_address = [\"{own}\"]\n");
            }
            for n in 1..=2 {
                let rip = match fam {
                    Fam::V4 => self.rig.rip(n, fam).to_string(),
                    Fam::V6 => format!("[{}]", self.rig.rip(n, fam)),
                };
                s += &format!(
                    "\n  [[virtual_server.real_server]]\n  address = \"{rip}:{PORT}\"\n  weight = 1\n\
                     [virtual_server.real_server.tcp_check]\nconnect_timeout = 1\nretry = 1\n\
                     delay_before_retry = 1\n"
                );
            }
        }
        s
    }

    fn start_lvsfwd(&self, h: &Host) -> Lvsfwd {
        let name = format!("{}.toml", self.name(h));
        Lvsfwd::start_on(&self.rig, h, &name, &self.lb_toml(h))
    }

    /// Which director the router sends each client port to, from 1.5 s of
    /// the router's wire (destination MAC of the streams' segments).
    fn who_carries(&self) -> BTreeMap<u16, String> {
        let o = self.router().exec_timeout(
            &[
                "timeout",
                "3",
                "tcpdump",
                "-i",
                IFACE,
                "-nn",
                "-e",
                "-c",
                "400",
                "-Q",
                "out",
                &format!("tcp dst port {PORT}"),
            ],
            Duration::from_secs(10),
        );
        let mut map = BTreeMap::new();
        for l in o.stdout.lines() {
            // `... MAC1 > MAC2, ethertype IPv4 ..., length N: A.B.C.D.SPORT > VIP.PORT: ...`
            let f: Vec<&str> = l.split_whitespace().collect();
            let Some(i) = f.iter().position(|w| *w == ">") else {
                continue;
            };
            let dst_mac = f[i + 1].trim_end_matches(',');
            let Some(j) = f.iter().rposition(|w| *w == ">") else {
                continue;
            };
            let Some(port) = f[j - 1].rsplit('.').next().and_then(|p| p.parse().ok()) else {
                continue;
            };
            let who = if dst_mac == self.rig.director().mac {
                "director"
            } else if dst_mac == self.rig.peer().mac {
                "peer"
            } else {
                continue;
            };
            map.insert(port, who.to_string());
        }
        map
    }

    /// Client ports of the connections `who` lists.
    fn listed_ports(&self, who: &str) -> BTreeSet<u16> {
        let out = lvsadm_ok(&self.sock(who), &["-L", "-c", "-n"]);
        out.lines()
            .filter(|l| l.contains(&format!("{CLIENT_NET}.")))
            .filter_map(|l| {
                let src = l.split_whitespace().nth(3)?;
                src.rsplit(':').next()?.parse().ok()
            })
            .collect()
    }
}

fn ecmp_rig(bfd: bool) -> Ecmp {
    let rig = Rig::builder(Mode::Dr)
        .peer_director(true)
        .real_servers(3)
        .services(false)
        .build();
    // The VIP is routed to the directors, on neither's NIC.
    rig.director()
        .del_addr(IFACE, &format!("{}/32", rig.vip(Fam::V4)));
    rig.director()
        .del_addr(IFACE, &format!("{}/128", rig.vip(Fam::V6)));
    let router = rig.client().clone();
    router.sysctl("net.ipv4.ip_forward", "1");
    router.sysctl("net.ipv4.fib_multipath_hash_policy", "1");
    router.sysctl("net.ipv6.conf.all.forwarding", "1");
    router.sysctl("net.ipv6.fib_multipath_hash_policy", "1");
    for dev in ["all", "default", IFACE] {
        router.sysctl(&format!("net.ipv4.conf.{dev}.send_redirects"), "0");
    }
    // The client namespace behind the router.
    let tag = format!("{:x}", std::process::id());
    let ns = format!(
        "lfec-{tag}-{}",
        rig.dir().file_name().unwrap().to_string_lossy()
    );
    run(&["ip", "netns", "add", &ns], CMD_TIMEOUT).expect_ok();
    let client = ClientNs {
        host: Host {
            role: rig.client().role,
            ns: ns.clone(),
            mac: String::new(),
        },
    };
    let c = &client.host;
    let (rside, cside) = (format!("lfer{tag}"), format!("lfec{tag}"));
    router.ip(&[
        "link", "add", &rside, "type", "veth", "peer", "name", &cside, "netns", &ns,
    ]);
    router.ip(&["addr", "add", &format!("{CLIENT_NET}.1/24"), "dev", &rside]);
    router.ip(&[
        "addr",
        "add",
        &format!("{CLIENT_NET6}:1/64"),
        "dev",
        &rside,
        "nodad",
    ]);
    router.ip(&["link", "set", &rside, "up"]);
    c.ip(&["link", "set", "lo", "up"]);
    c.ip(&["addr", "add", &format!("{CLIENT_NET}.2/24"), "dev", &cside]);
    c.ip(&[
        "addr",
        "add",
        &format!("{CLIENT_NET6}:2/64"),
        "dev",
        &cside,
        "nodad",
    ]);
    c.ip(&["link", "set", &cside, "up"]);
    c.exec_ok(&["ethtool", "-K", &cside, "tx", "off"]);
    c.ip(&["route", "add", "default", "via", &format!("{CLIENT_NET}.1")]);
    c.ip(&[
        "-6",
        "route",
        "add",
        "default",
        "via",
        &format!("{CLIENT_NET6}:1"),
    ]);
    let router_ip = rig.client_ip(Fam::V4).to_string();
    let router_ip6 = rig.client_ip(Fam::V6).to_string();
    for n in 1..=3 {
        rig.rs(n).ip(&[
            "route",
            "add",
            &format!("{CLIENT_NET}.0/24"),
            "via",
            &router_ip,
        ]);
        rig.rs(n).ip(&[
            "-6",
            "route",
            "add",
            &format!("{CLIENT_NET6}:/64"),
            "via",
            &router_ip6,
        ]);
        // FULLNAT: replies to the directors' local addresses go by the
        // router, which routes each to the director announcing it.
        rig.rs(n)
            .ip(&["route", "add", "198.18.9.0/24", "via", &router_ip]);
        rig.spawn_ready(
            rig.rs(n),
            "stream",
            &[
                python(),
                &script("stream.py"),
                "server",
                "--port",
                &PORT.to_string(),
                "--name",
                &format!("rs{n}"),
                "--v6",
            ],
            Duration::from_secs(10),
        );
    }
    let e = Ecmp {
        rig,
        client,
        bfd,
        fullnat: false,
    };
    let conf = fill(
        "bird-router.conf",
        &[
            ("ROUTER_ID", e.router_ip()),
            ("LOCAL_IP", e.router_ip()),
            ("LOCAL_AS", ROUTER_AS.to_string()),
            ("PEER_AS", DIRECTOR_AS.to_string()),
            ("DIRECTORS", "198.18.0.0/24".into()),
            ("BFD", if bfd { "on" } else { "off" }.into()),
            ("PATHS", "16".into()),
        ],
    );
    e.start_bird(e.router(), "router", conf);
    e
}

fn kill_director(e: &Ecmp, h: &Host, lvsfwd: Lvsfwd, bird: u32) -> Instant {
    let t0 = Instant::now();
    h.ip(&["link", "set", IFACE, "down"]);
    e.rig.kill(bird);
    drop(lvsfwd);
    t0
}

/// One stream's line of streams.py.
struct Stream {
    port: u16,
    servers: String,
    gap: f64,
    status: String,
}

fn streams(out: &str) -> Vec<Stream> {
    out.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.first() == Some(&"stream")).then(|| Stream {
                port: f[2].parse().unwrap_or(0),
                servers: f[3].to_string(),
                gap: f[5].parse().unwrap_or(0.0),
                status: f[7..].join(" "),
            })
        })
        .collect()
}

#[test]
fn streams_survive_a_director_dying_and_returning_behind_ecmp() {
    let e = ecmp_rig(true);
    let d = e.rig.director().clone();
    let p = e.rig.peer().clone();
    let bird_d = e.start_director_bird(&d);
    let bird_p = e.start_director_bird(&p);
    // Sessions up, nothing announced before lvsfwd serves.
    assert!(
        wait_until(Duration::from_secs(15), || e
            .birdc(e.router(), "router", "show protocols")
            .matches("Established")
            .count()
            == 2),
        "BGP sessions never came up: {}",
        e.birdc(e.router(), "router", "show protocols all")
    );
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        e.next_hops().is_empty(),
        "a route before any lvsfwd serves: {:?}",
        e.next_hops()
    );
    let lvs_d = e.start_lvsfwd(&d);
    let lvs_p = e.start_lvsfwd(&p);
    e.wait_hops(&[&d, &p], Duration::from_secs(10));

    let target = format!("{}:{PORT}", e.rig.vip(Fam::V4));
    let client = e.rig.spawn(
        &e.client.host,
        "streams",
        &[
            python(),
            &script("streams.py"),
            "--target",
            &target,
            "--count",
            &STREAMS.to_string(),
            "--interval",
            "0.1",
            "--duration",
            "40",
            "--stall",
            "20",
        ],
    );
    assert!(
        wait_until(Duration::from_secs(15), || e
            .rig
            .proc_logs(client)
            .0
            .contains("ready")),
        "the streams never opened: {:?}",
        e.rig.proc_logs(client)
    );
    std::thread::sleep(Duration::from_secs(2));
    let before = e.who_carries();
    let on_d: BTreeSet<u16> = before
        .iter()
        .filter(|(_, w)| *w == "director")
        .map(|(p, _)| *p)
        .collect();
    assert_eq!(
        before.len(),
        STREAMS,
        "streams seen on the router: {before:?}"
    );
    assert!(
        !on_d.is_empty() && on_d.len() < STREAMS,
        "ECMP does not spread the streams over both directors: {before:?}"
    );
    // Active-active sync: the peer knows the director's connections.
    assert!(
        wait_until(Duration::from_secs(5), || e
            .listed_ports("peer")
            .is_superset(&on_d)),
        "the peer lacks synced connections of the director: {:?} vs {on_d:?}",
        e.listed_ports("peer")
    );

    // A real server is added while the streams are open: mh now maps
    // some of them elsewhere; only the synced entries keep them.
    for who in ["director", "peer"] {
        lvsadm_ok(
            &e.sock(who),
            &[
                "-a",
                "-t",
                &target,
                "-r",
                &format!("{}:{PORT}", e.rig.rip(3, Fam::V4)),
                "-g",
            ],
        );
    }
    std::thread::sleep(Duration::from_millis(500));

    // ---- the director dies
    let t0 = kill_director(&e, &d, lvs_d, bird_d);
    let bfd_withdrawal = {
        e.wait_hops(&[&p], Duration::from_secs(10));
        t0.elapsed()
    };
    std::thread::sleep(Duration::from_secs(4));
    let alone = e.who_carries();
    assert!(
        alone.len() == STREAMS && alone.values().all(|w| w == "peer"),
        "after the death every stream must go to the peer: {alone:?}"
    );

    // ---- it returns: ECMP rehashes
    d.ip(&["link", "set", IFACE, "up"]);
    let lvs_d = e.start_lvsfwd(&d);
    let bird_d = e.start_director_bird(&d);
    let t_join = Instant::now();
    e.wait_hops(&[&d, &p], Duration::from_secs(15));
    let join_time = t_join.elapsed();
    std::thread::sleep(Duration::from_secs(2));
    let after = e.who_carries();
    assert_eq!(
        after.len(),
        STREAMS,
        "streams seen after the join: {after:?}"
    );
    let moved = after.values().filter(|w| *w == "director").count();
    assert!(moved > 0, "no stream rehashed onto the returning director");

    // ---- the director's real servers fail its checks: it withdraws (it
    // came back with lb.toml's two real servers, without the third)
    d.exec_ok(&[
        "nft",
        "add table ip lfecmp { chain out { type filter hook output priority 0; tcp dport 7000 drop; }; }",
    ]);
    let t_fail = Instant::now();
    e.wait_hops(&[&p], Duration::from_secs(15));
    let health_withdrawal = t_fail.elapsed();
    std::thread::sleep(Duration::from_secs(3));
    let last = e.who_carries();
    assert!(
        last.values().all(|w| w == "peer"),
        "the withdrawn director still gets streams: {last:?}"
    );

    // ---- every stream ran to its end, on one real server
    let ended = wait_until(Duration::from_secs(60), || {
        e.rig.proc_logs(client).0.contains("done")
    });
    let (out, err) = e.rig.proc_logs(client);
    assert!(ended, "the streams never finished: {out}{err}");
    let s = streams(&out);
    assert_eq!(s.len(), STREAMS, "{out}");
    let broken: Vec<&Stream> = s.iter().filter(|x| x.status != "ok").collect();
    assert!(broken.is_empty(), "broken streams:\n{out}");
    for x in &s {
        assert!(
            !x.servers.contains(','),
            "stream from port {} answered by {}",
            x.port,
            x.servers
        );
    }
    let mut gaps: Vec<f64> = s
        .iter()
        .filter(|x| on_d.contains(&x.port))
        .map(|x| x.gap)
        .collect();
    gaps.sort_by(f64::total_cmp);
    let others: f64 = s
        .iter()
        .filter(|x| !on_d.contains(&x.port))
        .map(|x| x.gap)
        .fold(0.0, f64::max);
    eprintln!(
        "ECMP: {STREAMS} streams, {} on the director that died; withdrawal with BFD {:.0} ms; \
         their stalls: median {:.0} ms, max {:.0} ms (others' longest gap {:.0} ms); \
         join: path back in {:.1} s, {moved}/{STREAMS} streams ({:.0}%) moved; \
         withdrawal after its real servers failed {:.1} s",
        on_d.len(),
        bfd_withdrawal.as_secs_f64() * 1000.0,
        gaps[gaps.len() / 2] * 1000.0,
        gaps.last().copied().unwrap_or(0.0) * 1000.0,
        others * 1000.0,
        join_time.as_secs_f64(),
        moved as f64 * 100.0 / STREAMS as f64,
        health_withdrawal.as_secs_f64(),
    );
    let log = lvs_d.stderr();
    eprintln!(
        "director's announcements after its return:\n{}",
        log.lines()
            .filter(|l| l.contains("announce") || l.contains("health"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    drop(lvs_d);
    drop(lvs_p);
    let _ = (bird_d, bird_p);
}

#[test]
fn a_stopped_lvsfwd_withdraws_at_once_and_a_dead_director_after_the_hold_time() {
    let e = ecmp_rig(false);
    let d = e.rig.director().clone();
    let bird_d = e.start_director_bird(&d);
    let mut lvs_d = e.start_lvsfwd(&d);
    e.wait_hops(&[&d], Duration::from_secs(15));
    // Stop: withdrawn before lvsfwd exits.
    let t0 = Instant::now();
    lvs_d.terminate();
    e.wait_hops(&[], Duration::from_secs(5));
    let stop_withdrawal = t0.elapsed();
    assert!(
        d.exec_ok(&["ip", "route", "show", "table", &TABLE.to_string()])
            .trim()
            .is_empty(),
        "routes left in table {TABLE} after a stop"
    );
    // A route left by a killed lvsfwd is removed by the next one.
    d.ip(&[
        "route",
        "add",
        "blackhole",
        "198.18.0.77/32",
        "table",
        &TABLE.to_string(),
        "proto",
        "201",
    ]);
    let lvs_d = e.start_lvsfwd(&d);
    e.wait_hops(&[&d], Duration::from_secs(15));
    let table = d.exec_ok(&["ip", "route", "show", "table", &TABLE.to_string()]);
    assert!(
        !table.contains("198.18.0.77"),
        "a stale route of an earlier run is still there: {table}"
    );
    // Death without BFD: the hold time.
    std::thread::sleep(Duration::from_secs(1));
    let t0 = kill_director(&e, &d, lvs_d, bird_d);
    e.wait_hops(&[], Duration::from_secs(10));
    let hold_withdrawal = t0.elapsed();
    assert!(
        hold_withdrawal >= Duration::from_secs(2),
        "withdrawn in {hold_withdrawal:?} without BFD: faster than the hold time can be"
    );
    eprintln!(
        "withdrawal: at a stop {:.0} ms; at a death without BFD (hold time 3 s) {:.2} s",
        stop_withdrawal.as_secs_f64() * 1000.0,
        hold_withdrawal.as_secs_f64()
    );
}

/// Starts `streams.py` from the client namespace to `target`; waits until
/// every stream is open.
fn start_streams(e: &Ecmp, target: &str, count: usize, duration: u32) -> u32 {
    let pid = e.rig.spawn(
        &e.client.host,
        "streams",
        &[
            python(),
            &script("streams.py"),
            "--target",
            target,
            "--count",
            &count.to_string(),
            "--interval",
            "0.1",
            "--duration",
            &duration.to_string(),
            "--stall",
            "20",
        ],
    );
    assert!(
        wait_until(Duration::from_secs(15), || e
            .rig
            .proc_logs(pid)
            .0
            .contains("ready")),
        "the streams to {target} never opened: {:?}",
        e.rig.proc_logs(pid)
    );
    pid
}

/// Waits for `streams.py` `pid` to end; asserts `count` streams, none
/// broken, each answered by one real server.
fn assert_streams_ok(e: &Ecmp, pid: u32, count: usize, what: &str) -> Vec<Stream> {
    let ended = wait_until(Duration::from_secs(90), || {
        e.rig.proc_logs(pid).0.contains("done")
    });
    let (out, err) = e.rig.proc_logs(pid);
    assert!(ended, "the {what} streams never finished: {out}{err}");
    let s = streams(&out);
    assert_eq!(s.len(), count, "{out}");
    let broken: Vec<&Stream> = s.iter().filter(|x| x.status != "ok").collect();
    assert!(broken.is_empty(), "broken {what} streams:\n{out}");
    for x in &s {
        assert!(
            !x.servers.contains(','),
            "{what} stream from port {} answered by {}",
            x.port,
            x.servers
        );
    }
    s
}

#[test]
fn fullnat_and_ipv6_streams_survive_a_director_dying_behind_ecmp() {
    let mut e = ecmp_rig(true);
    e.fullnat = true;
    let d = e.rig.director().clone();
    let p = e.rig.peer().clone();
    let bird_d = e.start_director_bird(&d);
    let bird_p = e.start_director_bird(&p);
    assert!(
        wait_until(Duration::from_secs(15), || e
            .birdc(e.router(), "router", "show protocols")
            .matches("Established")
            .count()
            == 2),
        "BGP sessions never came up: {}",
        e.birdc(e.router(), "router", "show protocols all")
    );
    let vip6 = format!("{}/128", e.rig.vip(Fam::V6));
    let (l_d, l_p) = (format!("{}/32", LADDR[0]), format!("{}/32", LADDR[1]));
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        e.hops_to(&vip6).is_empty() && e.hops_to(&l_d).is_empty(),
        "routes before any lvsfwd serves"
    );
    let lvs_d = e.start_lvsfwd(&d);
    let lvs_p = e.start_lvsfwd(&p);
    e.wait_hops(&[&d, &p], Duration::from_secs(10));
    e.wait_hops_to(&vip6, &[&d, &p], Duration::from_secs(10));
    // Each local address goes to its owner only: the other director's
    // route to it has a longer AS path (prepended twice).
    e.wait_hops_to(&l_d, &[&d], Duration::from_secs(10));
    e.wait_hops_to(&l_p, &[&p], Duration::from_secs(10));
    let paths = e.birdc(e.router(), "router", &format!("show route {l_d} all"));
    let prepended = format!("BGP.as_path: {DIRECTOR_AS} {DIRECTOR_AS} {DIRECTOR_AS}");
    assert!(
        paths.contains(&prepended) && paths.contains(&format!("BGP.as_path: {DIRECTOR_AS}\n")),
        "the router should have the owner's route to {l_d} and the peer's, prepended: {paths}"
    );

    let client4 = start_streams(&e, &format!("{}:{PORT}", e.rig.vip(Fam::V4)), STREAMS, 30);
    let client6 = start_streams(&e, &format!("{}:{PORT}", e.rig.vip(Fam::V6)), 8, 30);
    std::thread::sleep(Duration::from_secs(2));
    let before = e.who_carries();
    let on_d: BTreeSet<u16> = before
        .iter()
        .filter(|(_, w)| *w == "director")
        .map(|(p, _)| *p)
        .collect();
    assert!(
        !on_d.is_empty() && on_d.len() < before.len(),
        "ECMP does not spread the streams over both directors: {before:?}"
    );
    // The real servers answer the director's streams to its own local
    // address, and the peer has those connections by sync (its FULLNAT
    // local side included).
    let on_d4: BTreeSet<u16> = e.listed_ports("director");
    assert!(!on_d4.is_empty(), "the director carries no IPv4 stream");
    assert!(
        wait_until(Duration::from_secs(5), || e
            .listed_ports("peer")
            .is_superset(&on_d4)),
        "the peer lacks synced FULLNAT connections of the director: {:?} vs {on_d4:?}",
        e.listed_ports("peer")
    );

    // ---- the director dies: its VIP paths go, and its local address
    // moves to the peer, whose less preferred route is now the only one.
    let t0 = kill_director(&e, &d, lvs_d, bird_d);
    e.wait_hops(&[&p], Duration::from_secs(10));
    let vip_gone = t0.elapsed();
    e.wait_hops_to(&l_d, &[&p], Duration::from_secs(10));
    let laddr_moved = t0.elapsed();
    e.wait_hops_to(&vip6, &[&p], Duration::from_secs(10));
    std::thread::sleep(Duration::from_secs(4));
    let alone = e.who_carries();
    assert!(
        alone.values().all(|w| w == "peer"),
        "after the death every stream must go to the peer: {alone:?}"
    );

    let s4 = assert_streams_ok(&e, client4, STREAMS, "FULLNAT IPv4");
    let s6 = assert_streams_ok(&e, client6, 8, "DR IPv6");
    let stall = |s: &[Stream]| {
        s.iter()
            .filter(|x| on_d.contains(&x.port))
            .map(|x| x.gap)
            .fold(0.0, f64::max)
    };
    eprintln!(
        "ECMP FULLNAT: {} IPv4 streams of {STREAMS} and {} IPv6 of 8 on the director that died; \
         VIP withdrawn in {:.0} ms, its local address routed to the peer in {:.0} ms; \
         longest stall of its streams: IPv4 FULLNAT {:.0} ms, IPv6 DR {:.0} ms",
        s4.iter().filter(|x| on_d.contains(&x.port)).count(),
        s6.iter().filter(|x| on_d.contains(&x.port)).count(),
        vip_gone.as_secs_f64() * 1000.0,
        laddr_moved.as_secs_f64() * 1000.0,
        stall(&s4) * 1000.0,
        stall(&s6) * 1000.0,
    );
    drop(lvs_p);
    let _ = bird_p;
}

/// A DR lb.toml for the director: `[announce]` with `announce` (after
/// `table = ...` lines it gives itself), and one virtual server per
/// `(vip, extra keys, real servers)`.
fn dr_toml(e: &Ecmp, h: &Host, announce: &str, vss: &[(&str, &str, usize)]) -> String {
    let mut s = format!(
        "[global]\nrouter_id = \"{}\"\ninterface = \"{IFACE}\"\nadmin_socket = \"{}\"\n\
         sloppy_tcp = true\n\n[announce]\n{announce}\n",
        e.name(h),
        e.sock(e.name(h)),
    );
    for (vip, extra, n_rs) in vss {
        s += &format!(
            "\n[[virtual_server]]\naddress = \"{vip}:{PORT}\"\nprotocol = \"TCP\"\nlb_algo = \"mh\"\n\
             lb_kind = \"DR\"\ndelay_loop = 1\n{extra}"
        );
        for n in 1..=*n_rs {
            s += &format!(
                "\n  [[virtual_server.real_server]]\n  address = \"{}:{PORT}\"\n  weight = 1\n\
                 [virtual_server.real_server.tcp_check]\nconnect_timeout = 1\nretry = 1\n\
                 delay_before_retry = 1\n",
                e.rig.rip(n, Fam::V4)
            );
        }
    }
    s
}

/// The routes in kernel table `table` of `h` (none: a table that does
/// not exist yet).
fn table_routes(h: &Host, table: u32) -> String {
    h.exec(&["ip", "route", "show", "table", &table.to_string()])
        .stdout
}

/// Rewrites `lvs`'s lb.toml and sends it SIGHUP.
fn reload(e: &Ecmp, h: &Host, lvs: &Lvsfwd, toml: &str) {
    let path = e.rig.dir().join(format!("{}.toml", e.name(h)));
    std::fs::write(&path, toml).expect("write lb.toml");
    run(&["kill", "-HUP", &lvs.pid().to_string()], CMD_TIMEOUT).expect_ok();
}

#[test]
fn sighup_changes_announce_without_flapping_and_a_killed_lvsfwd_leaves_no_route() {
    let e = ecmp_rig(true);
    let d = e.rig.director().clone();
    let _bird_d = e.start_director_bird(&d);
    let (vip, vip2) = (e.rig.vip(Fam::V4).to_string(), "198.18.0.251".to_string());
    let (r1, r2) = (format!("{vip}/32"), format!("{vip2}/32"));
    let table = format!("table = {TABLE}");
    let lvs = Lvsfwd::start_on(
        &e.rig,
        &d,
        "director.toml",
        &dr_toml(&e, &d, &table, &[(&vip, "", 2)]),
    );
    e.wait_hops_to(&r1, &[&d], Duration::from_secs(15));
    // Every route change from now on, as the kernel tells it.
    let monitor = e.rig.spawn(&d, "monitor", &["ip", "monitor", "route"]);
    std::thread::sleep(Duration::from_millis(300));

    // A second VIP: announced; the first one untouched.
    reload(
        &e,
        &d,
        &lvs,
        &dr_toml(&e, &d, &table, &[(&vip, "", 2), (&vip2, "", 2)]),
    );
    e.wait_hops_to(&r2, &[&d], Duration::from_secs(15));
    // `vips` narrowed to the second: the first goes, the second stays.
    reload(
        &e,
        &d,
        &lvs,
        &dr_toml(
            &e,
            &d,
            &format!("{table}\nvips = [\"{vip2}\"]"),
            &[(&vip, "", 2), (&vip2, "", 2)],
        ),
    );
    e.wait_hops_to(&r1, &[], Duration::from_secs(15));
    e.wait_hops_to(&r2, &[&d], Duration::from_secs(5));
    // A bad [announce] is refused; nothing changes.
    reload(
        &e,
        &d,
        &lvs,
        &dr_toml(&e, &d, "table = 254", &[(&vip, "", 2), (&vip2, "", 2)]),
    );
    std::thread::sleep(Duration::from_secs(1));
    assert!(
        lvs.stderr().contains("reload refused"),
        "a bad [announce] was not refused: {}",
        lvs.stderr()
    );
    e.wait_hops_to(&r2, &[&d], Duration::from_secs(1));
    let (mon, _) = e.rig.proc_logs(monitor);
    let lines = |what: &str, addr: &str| {
        mon.lines()
            .filter(|l| l.contains(&format!("table {TABLE}")))
            .filter(|l| l.split_whitespace().any(|w| w == addr))
            .filter(|l| l.starts_with("Deleted") == (what == "del"))
            .count()
    };
    assert_eq!(
        (
            lines("add", &vip),
            lines("del", &vip),
            lines("add", &vip2),
            lines("del", &vip2)
        ),
        (0, 1, 1, 0),
        "route changes in table {TABLE} (VIP added/deleted, VIP2 added/deleted); \
         an unchanged VIP must not flap:\n{mon}"
    );
    // Another table: everything moves there (BIRD learns only table
    // 100: the router's route goes).
    let other = TABLE + 1;
    reload(
        &e,
        &d,
        &lvs,
        &dr_toml(
            &e,
            &d,
            &format!("table = {other}\nvips = [\"{vip2}\"]"),
            &[(&vip, "", 2), (&vip2, "", 2)],
        ),
    );
    assert!(
        wait_until(Duration::from_secs(5), || table_routes(&d, other)
            .contains(&vip2)
            && table_routes(&d, TABLE).trim().is_empty()),
        "table {other}: {}; table {TABLE}: {}",
        table_routes(&d, other),
        table_routes(&d, TABLE)
    );
    e.wait_hops_to(&r2, &[], Duration::from_secs(5));

    // ---- SIGKILL: lvsfwd cannot clean up, its guard does.
    let t0 = Instant::now();
    run(&["kill", "-KILL", &lvs.pid().to_string()], CMD_TIMEOUT).expect_ok();
    let gone = wait_until(Duration::from_secs(2), || {
        table_routes(&d, other).trim().is_empty()
    });
    let after_kill = t0.elapsed();
    assert!(
        gone,
        "routes left in table {other} by a killed lvsfwd: {}",
        table_routes(&d, other)
    );
    // And with BIRD's table: a killed lvsfwd's VIP leaves the router.
    let lvs = Lvsfwd::start_on(
        &e.rig,
        &d,
        "director.toml",
        &dr_toml(&e, &d, &table, &[(&vip, "", 2)]),
    );
    e.wait_hops_to(&r1, &[&d], Duration::from_secs(15));
    let t1 = Instant::now();
    run(&["kill", "-KILL", &lvs.pid().to_string()], CMD_TIMEOUT).expect_ok();
    e.wait_hops_to(&r1, &[], Duration::from_secs(2));
    let router_after_kill = t1.elapsed();
    eprintln!(
        "SIGKILLed lvsfwd: its routes gone from the table in {:.0} ms; the router's route \
         in {:.0} ms",
        after_kill.as_secs_f64() * 1000.0,
        router_after_kill.as_secs_f64() * 1000.0
    );
}

#[test]
fn quorum_hysteresis_holds_the_announcement_as_it_holds_quorum_up() {
    let e = ecmp_rig(true);
    let d = e.rig.director().clone();
    let _bird_d = e.start_director_bird(&d);
    let vip = e.rig.vip(Fam::V4).to_string();
    let r1 = format!("{vip}/32");
    // Three real servers of weight 1, quorum 2, hysteresis 1: quorum is
    // gained at 3 live, lost below 1.
    let toml = dr_toml(
        &e,
        &d,
        &format!("table = {TABLE}"),
        &[(&vip, "quorum = 2\nhysteresis = 1\n", 3)],
    );
    // Real server 3 fails its checks from the start: 2 live, not enough
    // to gain the quorum (2 would be without hysteresis).
    let block = |rips: &[usize]| {
        let _ = d.exec(&["nft", "delete table ip lfhyst"]);
        if rips.is_empty() {
            return;
        }
        let set: Vec<String> = rips
            .iter()
            .map(|n| e.rig.rip(*n, Fam::V4).to_string())
            .collect();
        d.exec_ok(&[
            "nft",
            &format!(
                "add table ip lfhyst {{ chain out {{ type filter hook output priority 0; \
                 ip daddr {{ {} }} tcp dport {PORT} drop; }}; }}",
                set.join(", ")
            ),
        ]);
    };
    // What the health checkers said of real server `n`, as lvsfwd logs it.
    let said = |lvs: &Lvsfwd, n: usize, state: &str| {
        lvs.stderr().contains(&format!(
            "health: real server {}:{PORT} of TCP {vip}:{PORT} is {state}",
            e.rig.rip(n, Fam::V4)
        ))
    };
    // Real servers start alive (keepalived's default): 3 live, announced.
    let lvs = Lvsfwd::start_on(&e.rig, &d, "director.toml", &toml);
    e.wait_hops_to(&r1, &[&d], Duration::from_secs(15));
    // Two fail: 1 live, below quorum but not below quorum - hysteresis:
    // still announced (without hysteresis: withdrawn).
    block(&[2, 3]);
    assert!(
        wait_until(Duration::from_secs(15), || said(&lvs, 2, "down")
            && said(&lvs, 3, "down")),
        "real servers 2 and 3 never went down: {}",
        lvs.stderr()
    );
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        e.hops_to(&r1),
        BTreeSet::from([e.addr(&d)]),
        "withdrawn with 1 live of quorum 2 - hysteresis 1:\n{}",
        lvs.stderr()
    );
    // The last one fails: 0 live, withdrawn.
    block(&[1, 2, 3]);
    e.wait_hops_to(&r1, &[], Duration::from_secs(15));
    // Two come back: 2 live, the quorum but not quorum + hysteresis:
    // still withdrawn (without hysteresis: announced).
    block(&[3]);
    assert!(
        wait_until(Duration::from_secs(15), || said(&lvs, 1, "up")
            && said(&lvs, 2, "up")),
        "real servers 1 and 2 never came back: {}",
        lvs.stderr()
    );
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        e.hops_to(&r1).is_empty(),
        "announced again with 2 live of quorum 2 + hysteresis 1:\n{}",
        lvs.stderr()
    );
    // The third: quorum gained, announced.
    block(&[]);
    e.wait_hops_to(&r1, &[&d], Duration::from_secs(15));
    assert!(
        lvs.stderr().contains("quorum lost"),
        "the withdrawal does not say why: {}",
        lvs.stderr()
    );
}
