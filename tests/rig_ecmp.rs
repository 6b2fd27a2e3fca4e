//! Scale-out (issue 16): two lvsfwd directors behind a router's ECMP, the
//! VIP announced over BGP by real BIRD 2 daemons, with real parts only.
//!
//! Topology (the rig's DR segment plus one namespace): the rig's client
//! namespace is the router: BIRD 2 (`configs/bird-router.conf`: eBGP with
//! any director of the segment, `merge paths`), IPv4 and IPv6 forwarding
//! and `fib_multipath_hash_policy = 1` (L4 hash). Behind it, on a veth of
//! its own, a client namespace (`lfec...`, 198.19.16.2, 2001:2:16::2) runs
//! many long-lived TCP streams (tests/rig/streams.py) to the VIPs. The
//! rig's director and peer each run lvsfwd (mh with mh-port, `sloppy_tcp`,
//! active-active sync, `[announce] table = 100`) and BIRD 2
//! (`configs/bird-director.conf`: learns table 100, exports it to the
//! router with next hop self); the VIPs are on neither director's NIC. The
//! real servers run `stream.py server` and route the client's subnets and
//! the directors' FULLNAT local addresses through the router.
//!
//! The two-director tests are cases of one setup ([`Case`]: the virtual
//! servers, `peer_local_address`, sync; [`serve_on_both`]):
//! - nothing is announced until lvsfwd serves: BGP sessions up, no route
//!   to a VIP or local address; lvsfwd started, the router's route to each
//!   VIP has both directors, to each local address its owner only (the
//!   other's route to it has a longer AS path);
//! - the router spreads the streams over both directors (seen on the
//!   router's wire by destination MAC), and the peer lists, by sync, the
//!   director's connections;
//! - one director dies (its link down, lvsfwd and BIRD SIGKILLed): BFD
//!   withdraws its VIP paths, its local addresses are routed to the
//!   survivor; 0 streams broken, every stream answered by one real server
//!   from start to end.
//!
//! DR over IPv4 (first test) also: a third real server is added (lvsadm,
//! both directors) while the streams are open, so mh maps some of them to
//! another server: the synced entries keep them where they are; the dead
//! director returns (link up, lvsfwd and BIRD started again): its path
//! comes back and ECMP rehashes a share of the streams onto it; 0 broken;
//! its real servers' health checks fail (nft drops its probes, not the
//! streams, which lvsfwd forwards past the director's stack): it
//! withdraws its path, the survivor carries every stream; 0 broken.
//! FULLNAT over IPv4 and IPv6 and DR over IPv6 (second test): the real
//! servers' replies follow the dead director's local addresses to the
//! survivor. Then: lvsfwd stopped (SIGTERM): its route goes at once; a
//! director that dies without BFD is withdrawn after the 3 s hold time;
//! SIGHUP changes of `[announce]`, a SIGKILLed lvsfwd's routes, quorum
//! hysteresis.
//!
//! Printed with `--nocapture`: the time from a death to the withdrawal
//! (BFD and hold time) and to the local addresses' move, the longest
//! stall of a stream, the share of streams moved at the join.
#![forbid(unsafe_code)]

mod rig;

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
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
/// FULLNAT local addresses: the director's and the peer's, per family;
/// the real servers route 198.18.9.0/24 and 2001:2:9::/64 to the router.
const LADDR: [&str; 2] = ["198.18.9.1", "198.18.9.2"];
const LADDR6: [&str; 2] = ["2001:2:9::1", "2001:2:9::2"];
/// The IPv6 FULLNAT VIP (the rig's IPv6 VIP is the DR one).
const VIP6_FULLNAT: &str = "2001:2::251";

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

fn fam(a: IpAddr) -> Fam {
    if a.is_ipv4() { Fam::V4 } else { Fam::V6 }
}

/// `a` as a host route's prefix.
fn host_prefix(a: IpAddr) -> String {
    format!("{a}/{}", if a.is_ipv4() { 32 } else { 128 })
}

/// Director `i`'s (0 the rig's director, 1 its peer) FULLNAT local
/// address in family `f`.
fn laddr(i: usize, f: Fam) -> IpAddr {
    match f {
        Fam::V4 => LADDR[i],
        Fam::V6 => LADDR6[i],
    }
    .parse()
    .unwrap()
}

/// A virtual server of a case: every director serves it alike (a FULLNAT
/// one with its own local address of the VIP's family).
#[derive(Clone)]
struct Vs {
    vip: IpAddr,
    /// `lb_kind`: DR or FULLNAT.
    kind: &'static str,
    /// Further keys (`quorum = ...`).
    extra: &'static str,
    /// Real servers 1..=this, each with a TCP check.
    real_servers: usize,
    /// Streams the client runs to it (the two-director cases).
    streams: usize,
}

impl Vs {
    fn dr(vip: IpAddr, real_servers: usize) -> Vs {
        Vs {
            vip,
            kind: "DR",
            extra: "",
            real_servers,
            streams: 0,
        }
    }

    fn fullnat(&self) -> bool {
        self.kind == "FULLNAT"
    }

    /// What its streams are called in messages.
    fn what(&self) -> String {
        format!(
            "{} {}",
            self.kind,
            if self.vip.is_ipv4() { "IPv4" } else { "IPv6" }
        )
    }
}

/// What a test's directors run: each gets the lb.toml [`Ecmp::lb_toml`]
/// makes of it.
#[derive(Clone)]
struct Case {
    /// `[announce]`'s keys (`table = ...` and what else the case needs).
    announce: String,
    /// `peer_local_address`: the other director's local addresses (of each
    /// family a FULLNAT virtual server uses).
    peer_local: bool,
    /// Active-active sync (`[global.lvs_sync_daemon]`).
    sync: bool,
    vss: Vec<Vs>,
}

impl Case {
    /// One director, DR virtual servers of `real_servers` each, no sync.
    fn dr(announce: &str, vips: &[&str], real_servers: usize) -> Case {
        Case {
            announce: announce.to_string(),
            peer_local: false,
            sync: false,
            vss: vips
                .iter()
                .map(|v| Vs::dr(v.parse().unwrap(), real_servers))
                .collect(),
        }
    }

    /// The FULLNAT local addresses of director `i`.
    fn laddrs(&self, i: usize) -> Vec<IpAddr> {
        let fams: BTreeSet<bool> = self
            .vss
            .iter()
            .filter(|v| v.fullnat())
            .map(|v| v.vip.is_ipv4())
            .collect();
        fams.into_iter()
            .rev()
            .map(|v4| laddr(i, if v4 { Fam::V4 } else { Fam::V6 }))
            .collect()
    }
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
}

/// A stream as the router and lvsadm see it: its VIP and client port.
type Flow = (IpAddr, u16);

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

    /// 0 for the rig's director, 1 for its peer.
    fn index(&self, h: &Host) -> usize {
        usize::from(h.ns != self.rig.director().ns)
    }

    /// The directors' addresses (the router's next hops).
    fn addr(&self, h: &Host) -> String {
        self.addr_of(h, Fam::V4)
    }

    /// The directors' addresses in family `f` (next hops of its routes).
    fn addr_of(&self, h: &Host, f: Fam) -> String {
        match (self.index(h), f) {
            (0, f) => self.rig.dip(f).to_string(),
            (_, Fam::V4) => "198.18.0.3".to_string(),
            (_, Fam::V6) => "2001:2::3".to_string(),
        }
    }

    fn name(&self, h: &Host) -> &'static str {
        ["director", "peer"][self.index(h)]
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
        let f = if prefix.contains(':') {
            Fam::V6
        } else {
            Fam::V4
        };
        let want: BTreeSet<String> = want.iter().map(|h| self.addr_of(h, f)).collect();
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
                ("LOCAL_IP6", self.addr_of(h, Fam::V6)),
                ("LOCAL_AS", DIRECTOR_AS.to_string()),
                ("ROUTER_IP", self.router_ip()),
                ("ROUTER_AS", ROUTER_AS.to_string()),
                ("BFD", if self.bfd { "on" } else { "off" }.into()),
            ],
        );
        self.start_bird(h, self.name(h), conf)
    }

    /// Director `h`'s lb.toml for `case`.
    fn lb_toml(&self, h: &Host, case: &Case) -> String {
        let me = self.index(h);
        let mut s = format!(
            "[global]\nrouter_id = \"{}\"\ninterface = \"{IFACE}\"\nadmin_socket = \"{}\"\n\
             sloppy_tcp = true\n",
            self.name(h),
            self.sock(self.name(h)),
        );
        if case.sync {
            s += &format!(
                "\n[global.lvs_sync_daemon]\ninterface = \"{IFACE}\"\nactive_active = true\n\
                 id = {SYNCID}\n"
            );
        }
        s += &format!("\n[announce]\n{}\n", case.announce);
        if case.peer_local {
            let peers: Vec<String> = case
                .laddrs(1 - me)
                .iter()
                .map(|a| format!("\"{a}\""))
                .collect();
            s += &format!("peer_local_address = [{}]\n", peers.join(", "));
        }
        for vs in &case.vss {
            s += &format!(
                "\n[[virtual_server]]\naddress = \"{}\"\nprotocol = \"TCP\"\nlb_algo = \"mh\"\n\
                 sched_flags = [\"mh-port\"]\nlb_kind = \"{}\"\ndelay_loop = 1\n{}",
                SocketAddr::new(vs.vip, PORT),
                vs.kind,
                vs.extra
            );
            if vs.fullnat() {
                s += &format!("local_address = [\"{}\"]\n", laddr(me, fam(vs.vip)));
            }
            for n in 1..=vs.real_servers {
                s += &format!(
                    "\n  [[virtual_server.real_server]]\n  address = \"{}\"\n  weight = 1\n\
                     [virtual_server.real_server.tcp_check]\nconnect_timeout = 1\nretry = 1\n\
                     delay_before_retry = 1\n",
                    SocketAddr::new(self.rig.rip(n, fam(vs.vip)), PORT)
                );
            }
        }
        s
    }

    fn start_lvsfwd(&self, h: &Host, case: &Case) -> Lvsfwd {
        let name = format!("{}.toml", self.name(h));
        Lvsfwd::start_on(&self.rig, h, &name, &self.lb_toml(h, case))
    }

    /// Which director the router sends each stream to, from up to 3 s of
    /// the router's wire (destination MAC of the streams' segments).
    fn who_carries(&self) -> BTreeMap<Flow, String> {
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
            // `... MAC1 > MAC2, ethertype IPv4 ..., length N: SRC.SPORT > VIP.PORT: ...`
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
            let Some(vip) = f
                .get(j + 1)
                .and_then(|d| d.rsplit_once('.'))
                .and_then(|(a, _)| a.parse().ok())
            else {
                continue;
            };
            let who = if dst_mac == self.rig.director().mac {
                "director"
            } else if dst_mac == self.rig.peer().mac {
                "peer"
            } else {
                continue;
            };
            map.insert((vip, port), who.to_string());
        }
        map
    }

    /// The client's connections `who` lists.
    fn listed(&self, who: &str) -> BTreeSet<Flow> {
        let out = lvsadm_ok(&self.sock(who), &["-L", "-c", "-n"]);
        out.lines()
            .filter_map(|l| {
                let mut f = l.split_whitespace().skip(3);
                let src: SocketAddr = f.next()?.parse().ok()?;
                let virt: SocketAddr = f.next()?.parse().ok()?;
                let ours = src.ip().to_string().starts_with(CLIENT_NET)
                    || src.ip().to_string().starts_with(CLIENT_NET6);
                ours.then_some((virt.ip(), src.port()))
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
    router.add_addr(&rside, &format!("{CLIENT_NET}.1/24"));
    router.add_addr(&rside, &format!("{CLIENT_NET6}:1/64"));
    router.ip(&["link", "set", &rside, "up"]);
    c.ip(&["link", "set", "lo", "up"]);
    c.add_addr(&cside, &format!("{CLIENT_NET}.2/24"));
    c.add_addr(&cside, &format!("{CLIENT_NET6}:2/64"));
    c.ip(&["link", "set", &cside, "up"]);
    c.exec_ok(&["ethtool", "-K", &cside, "tx", "off"]);
    c.add_route(&["default", "via", &format!("{CLIENT_NET}.1")]);
    c.add_route(&["default", "via", &format!("{CLIENT_NET6}:1")]);
    let router_ip = rig.client_ip(Fam::V4).to_string();
    let router_ip6 = rig.client_ip(Fam::V6).to_string();
    for n in 1..=3 {
        // The client's subnets and (FULLNAT) the directors' local
        // addresses by the router, which routes each local address to the
        // director announcing it.
        for (net, via) in [
            (format!("{CLIENT_NET}.0/24"), &router_ip),
            (format!("{CLIENT_NET6}:/64"), &router_ip6),
            ("198.18.9.0/24".to_string(), &router_ip),
            ("2001:2:9::/64".to_string(), &router_ip6),
        ] {
            rig.rs(n).add_route(&[&net, "via", via]);
        }
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
    let e = Ecmp { rig, client, bfd };
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

/// A director of a two-director case: its BIRD and lvsfwd.
struct Director {
    host: Host,
    bird: u32,
    lvs: Lvsfwd,
}

/// The setup every two-director case shares: BIRD on both directors and
/// their BGP sessions up with nothing announced (no route to a VIP or a
/// local address of `case`); then lvsfwd on both, serving `case`: each
/// VIP routed to both directors, each local address to its owner only
/// and, with `peer_local_address`, also announced by the other director
/// with its AS prepended twice. Returns the director and the peer.
fn serve_on_both(e: &Ecmp, case: &Case) -> [Director; 2] {
    let hosts = [e.rig.director().clone(), e.rig.peer().clone()];
    let birds: Vec<u32> = hosts.iter().map(|h| e.start_director_bird(h)).collect();
    assert!(
        wait_until(Duration::from_secs(15), || e
            .birdc(e.router(), "router", "show protocols")
            .matches("Established")
            .count()
            == 2),
        "BGP sessions never came up: {}",
        e.birdc(e.router(), "router", "show protocols all")
    );
    let vips: Vec<String> = case.vss.iter().map(|v| host_prefix(v.vip)).collect();
    let laddrs: Vec<(usize, String)> = (0..2)
        .flat_map(|i| case.laddrs(i).into_iter().map(move |a| (i, host_prefix(a))))
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    for p in vips.iter().chain(laddrs.iter().map(|(_, p)| p)) {
        assert!(
            e.hops_to(p).is_empty(),
            "a route to {p} before any lvsfwd serves: {:?}",
            e.hops_to(p)
        );
    }
    let lvs: Vec<Lvsfwd> = hosts.iter().map(|h| e.start_lvsfwd(h, case)).collect();
    for p in &vips {
        e.wait_hops_to(p, &[&hosts[0], &hosts[1]], Duration::from_secs(10));
    }
    // Each local address goes to its owner only: the other director's
    // route to it has a longer AS path (prepended twice).
    for (i, p) in &laddrs {
        e.wait_hops_to(p, &[&hosts[*i]], Duration::from_secs(10));
        if case.peer_local {
            let paths = e.birdc(e.router(), "router", &format!("show route {p} all"));
            let prepended = format!("BGP.as_path: {DIRECTOR_AS} {DIRECTOR_AS} {DIRECTOR_AS}");
            assert!(
                paths.contains(&prepended)
                    && paths.contains(&format!("BGP.as_path: {DIRECTOR_AS}\n")),
                "the router should have the owner's route to {p} and the other's, \
                 prepended: {paths}"
            );
        }
    }
    let mut ds = hosts
        .into_iter()
        .zip(birds)
        .zip(lvs)
        .map(|((host, bird), lvs)| Director { host, bird, lvs });
    [ds.next().unwrap(), ds.next().unwrap()]
}

/// Streams from the client to each virtual server of `case` that wants
/// some, `duration` s long: (virtual server, streams.py's pid).
fn start_case_streams(e: &Ecmp, case: &Case, duration: u32) -> Vec<(Vs, u32)> {
    case.vss
        .iter()
        .filter(|v| v.streams > 0)
        .map(|v| {
            // streams.py splits at the last colon: no brackets.
            let target = format!("{}:{PORT}", v.vip);
            (v.clone(), start_streams(e, &target, v.streams, duration))
        })
        .collect()
}

/// The streams the router sends to the director, once it spreads all
/// `total` over both; the director lists them, and the peer lists every
/// connection the director does (active-active sync; FULLNAT: with its
/// local address and port).
fn spread_and_synced(e: &Ecmp, total: usize) -> BTreeSet<Flow> {
    std::thread::sleep(Duration::from_secs(2));
    let before = e.who_carries();
    let on_d: BTreeSet<Flow> = before
        .iter()
        .filter(|(_, w)| *w == "director")
        .map(|(f, _)| *f)
        .collect();
    assert_eq!(
        before.len(),
        total,
        "streams seen on the router: {before:?}"
    );
    assert!(
        !on_d.is_empty() && on_d.len() < total,
        "ECMP does not spread the streams over both directors: {before:?}"
    );
    let mine = e.listed("director");
    assert!(
        mine.is_superset(&on_d),
        "the director does not list the streams it carries: {mine:?} vs {on_d:?}"
    );
    assert!(
        wait_until(Duration::from_secs(5), || e
            .listed("peer")
            .is_superset(&mine)),
        "the peer lacks synced connections of the director: {:?} vs {mine:?}",
        e.listed("peer")
    );
    on_d
}

/// When the router stopped using a dead director.
struct Death {
    /// Its path to the rig's IPv4 VIP gone (BFD or hold time).
    vip_gone: Duration,
    /// Each of its local addresses routed to the survivor.
    laddrs_moved: Vec<(IpAddr, Duration)>,
}

/// `dead` dies (link down, BIRD and lvsfwd SIGKILLed): every VIP of
/// `case` is routed to `survivor` alone, and so are the dead one's local
/// addresses; 4 s later the router sends every one of `total` streams to
/// the survivor.
fn die(e: &Ecmp, case: &Case, dead: Director, survivor: &Host, total: usize) -> Death {
    let i = e.index(&dead.host);
    let t0 = kill_director(e, &dead.host, dead.lvs, dead.bird);
    e.wait_hops(&[survivor], Duration::from_secs(10));
    let vip_gone = t0.elapsed();
    let laddrs_moved = case
        .laddrs(i)
        .into_iter()
        .map(|a| {
            e.wait_hops_to(&host_prefix(a), &[survivor], Duration::from_secs(10));
            (a, t0.elapsed())
        })
        .collect();
    for v in &case.vss {
        e.wait_hops_to(&host_prefix(v.vip), &[survivor], Duration::from_secs(10));
    }
    std::thread::sleep(Duration::from_secs(4));
    let alone = e.who_carries();
    assert!(
        alone.len() == total && alone.values().all(|w| *w == e.name(survivor)),
        "after the death every stream must go to the {}: {alone:?}",
        e.name(survivor)
    );
    Death {
        vip_gone,
        laddrs_moved,
    }
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
    assert!(
        broken.is_empty(),
        "{} of {count} {what} streams broken:\n{out}",
        broken.len()
    );
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
fn streams_survive_a_director_dying_and_returning_behind_ecmp() {
    let e = ecmp_rig(true);
    let vip = e.rig.vip(Fam::V4);
    let case = Case {
        announce: format!("table = {TABLE}"),
        peer_local: false,
        sync: true,
        vss: vec![Vs {
            streams: STREAMS,
            ..Vs::dr(vip, 2)
        }],
    };
    let [d, p] = serve_on_both(&e, &case);
    let client = start_case_streams(&e, &case, 40).remove(0).1;
    let on_d = spread_and_synced(&e, STREAMS);

    // A real server is added while the streams are open: mh now maps
    // some of them elsewhere; only the synced entries keep them.
    let target = SocketAddr::new(vip, PORT).to_string();
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
    let dh = d.host.clone();
    let bfd_withdrawal = die(&e, &case, d, &p.host, STREAMS).vip_gone;

    // ---- it returns: ECMP rehashes
    dh.ip(&["link", "set", IFACE, "up"]);
    let lvs_d = e.start_lvsfwd(&dh, &case);
    let _bird_d = e.start_director_bird(&dh);
    let t_join = Instant::now();
    e.wait_hops(&[&dh, &p.host], Duration::from_secs(15));
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
    dh.exec_ok(&[
        "nft",
        "add table ip lfecmp { chain out { type filter hook output priority 0; tcp dport 7000 drop; }; }",
    ]);
    let t_fail = Instant::now();
    e.wait_hops(&[&p.host], Duration::from_secs(15));
    let health_withdrawal = t_fail.elapsed();
    std::thread::sleep(Duration::from_secs(3));
    let last = e.who_carries();
    assert!(
        last.values().all(|w| w == "peer"),
        "the withdrawn director still gets streams: {last:?}"
    );

    // ---- every stream ran to its end, on one real server
    let s = assert_streams_ok(&e, client, STREAMS, "DR IPv4");
    let mut gaps: Vec<f64> = s
        .iter()
        .filter(|x| on_d.contains(&(vip, x.port)))
        .map(|x| x.gap)
        .collect();
    gaps.sort_by(f64::total_cmp);
    let others: f64 = s
        .iter()
        .filter(|x| !on_d.contains(&(vip, x.port)))
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
}

/// FULLNAT over IPv4 and IPv6, each director with its own local address
/// of each family and the other's as `peer_local_address`, and DR over
/// IPv6: the dead director's clients move by ECMP and its real servers'
/// replies by its local addresses' routes to the peer, which has its
/// connections by sync.
#[test]
fn fullnat_and_ipv6_streams_survive_a_director_dying_behind_ecmp() {
    let e = ecmp_rig(true);
    let with_streams = |vs: Vs, streams| Vs { streams, ..vs };
    let case = Case {
        announce: format!("table = {TABLE}"),
        peer_local: true,
        sync: true,
        vss: vec![
            with_streams(
                Vs {
                    kind: "FULLNAT",
                    ..Vs::dr(e.rig.vip(Fam::V4), 2)
                },
                STREAMS,
            ),
            with_streams(Vs::dr(e.rig.vip(Fam::V6), 2), 8),
            with_streams(
                Vs {
                    kind: "FULLNAT",
                    ..Vs::dr(VIP6_FULLNAT.parse().unwrap(), 2)
                },
                16,
            ),
        ],
    };
    let total: usize = case.vss.iter().map(|v| v.streams).sum();
    let [d, p] = serve_on_both(&e, &case);
    let clients = start_case_streams(&e, &case, 30);
    let on_d = spread_and_synced(&e, total);

    // ---- the director dies: its VIP paths go, and its local addresses
    // move to the peer, whose less preferred routes are now the only ones.
    let death = die(&e, &case, d, &p.host, total);
    let mut stalls = Vec::new();
    for (vs, pid) in clients {
        let s = assert_streams_ok(&e, pid, vs.streams, &vs.what());
        let on_dead: Vec<&Stream> = s
            .iter()
            .filter(|x| on_d.contains(&(vs.vip, x.port)))
            .collect();
        let stall = on_dead.iter().map(|x| x.gap).fold(0.0, f64::max);
        stalls.push(format!(
            "{}: {} of {} on it, longest stall {:.0} ms",
            vs.what(),
            on_dead.len(),
            vs.streams,
            stall * 1000.0
        ));
    }
    let moved: Vec<String> = death
        .laddrs_moved
        .iter()
        .map(|(a, t)| format!("{a} in {:.0} ms", t.as_secs_f64() * 1000.0))
        .collect();
    eprintln!(
        "ECMP FULLNAT: the director died; VIP withdrawn in {:.0} ms, its local addresses \
         routed to the peer: {}; {}",
        death.vip_gone.as_secs_f64() * 1000.0,
        moved.join(", "),
        stalls.join("; ")
    );
    drop(p);
}

#[test]
fn a_stopped_lvsfwd_withdraws_at_once_and_a_dead_director_after_the_hold_time() {
    let e = ecmp_rig(false);
    let d = e.rig.director().clone();
    let case = Case::dr(
        &format!("table = {TABLE}"),
        &[&e.rig.vip(Fam::V4).to_string()],
        2,
    );
    let bird_d = e.start_director_bird(&d);
    let mut lvs_d = e.start_lvsfwd(&d, &case);
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
    let lvs_d = e.start_lvsfwd(&d, &case);
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

/// The routes in kernel table `table` of `h` (none: a table that does
/// not exist yet).
fn table_routes(h: &Host, table: u32) -> String {
    h.exec(&["ip", "route", "show", "table", &table.to_string()])
        .stdout
}

/// Rewrites `lvs`'s lb.toml for `case` and sends it SIGHUP.
fn reload(e: &Ecmp, h: &Host, lvs: &Lvsfwd, case: &Case) {
    let path = e.rig.dir().join(format!("{}.toml", e.name(h)));
    std::fs::write(&path, e.lb_toml(h, case)).expect("write lb.toml");
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
    let lvs = e.start_lvsfwd(&d, &Case::dr(&table, &[&vip], 2));
    e.wait_hops_to(&r1, &[&d], Duration::from_secs(15));
    // Every route change from now on, as the kernel tells it.
    let monitor = e.rig.spawn(&d, "monitor", &["ip", "monitor", "route"]);
    std::thread::sleep(Duration::from_millis(300));

    // A second VIP: announced; the first one untouched.
    reload(&e, &d, &lvs, &Case::dr(&table, &[&vip, &vip2], 2));
    e.wait_hops_to(&r2, &[&d], Duration::from_secs(15));
    // `vips` narrowed to the second: the first goes, the second stays.
    reload(
        &e,
        &d,
        &lvs,
        &Case::dr(&format!("{table}\nvips = [\"{vip2}\"]"), &[&vip, &vip2], 2),
    );
    e.wait_hops_to(&r1, &[], Duration::from_secs(15));
    e.wait_hops_to(&r2, &[&d], Duration::from_secs(5));
    // A bad [announce] is refused; nothing changes.
    reload(&e, &d, &lvs, &Case::dr("table = 254", &[&vip, &vip2], 2));
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
        &Case::dr(
            &format!("table = {other}\nvips = [\"{vip2}\"]"),
            &[&vip, &vip2],
            2,
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
    let lvs = e.start_lvsfwd(&d, &Case::dr(&table, &[&vip], 2));
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
    let case = Case {
        vss: vec![Vs {
            extra: "quorum = 2\nhysteresis = 1\n",
            ..Vs::dr(e.rig.vip(Fam::V4), 3)
        }],
        ..Case::dr(&format!("table = {TABLE}"), &[], 0)
    };
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
    let lvs = e.start_lvsfwd(&d, &case);
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
