//! Connection sync between two lvsfwd directors (IPVS's sync protocol,
//! tied to VRRP by `[global.lvs_sync_daemon]`): the rig's director is VRRP
//! MASTER (priority 100), the rig's peer BACKUP (90), both on VRID 51 with
//! the VIP; both run the sync daemon on the segment.
//!
//! What is asserted:
//! - a long-lived TCP stream through the VIP (one line a 50 ms, answered by
//!   the real server) survives the master's death (its link down, then
//!   SIGKILL): every answer comes from the same real server, no reset, no
//!   error, for DR, NAT and FULLNAT (the client's gateway, NAT's real
//!   servers' gateway and FULLNAT's local address are VRRP addresses of the
//!   same instance, so no sync group is needed); before the kill the backup
//!   already lists the connection with the master's real server;
//! - tshark's IPVS sync dissector, on the backup's NIC, decodes lvsfwd's
//!   datagrams: syncid 51 (the VRID), the connection's client, virtual and
//!   real server addresses and client port (Wireshark's dissector reads
//!   v1 entries as if they had no options, so after a FULLNAT entry, whose
//!   option it cannot skip, it misreads the rest of the datagram: there the
//!   first entry is checked and the option in the bytes);
//! - lvsadm `--start-daemon`, `-L --daemon` (ipvsadm's text) and
//!   `--stop-daemon` on a running daemon, and what its master sends for
//!   1000 new connections;
//! - fail-back: the old master returns, takes the current master's whole
//!   table before it joins VRRP, preempts, and the stream goes on (with
//!   `sync_period = 0`, so that nothing but that table can bring the
//!   connection); the same for a director that kept running (its link
//!   down, then up), and for a running BACKUP whose priority rises past
//!   the master's (a tracked script's weight): it preempts only once it
//!   has the master's table;
//! - `sloppy_tcp` with mh: a flow whose path moves from one director to
//!   another (no sync between them) goes on on the same real server.
//!
//! Each case's directors are the plain pair ([`Case::plain`]) with what
//! the case changes ([`Case`]); the stream clients are [`Stream`]s.
//!
//! The stall of the stream at fail-over, the sync bytes per entry and the
//! entries synced per second are printed (`--nocapture`).
//!
//! Without sync the backup has no entry for the stream: its kernel, which
//! then holds the VIP, answers the client's next segment with a reset and
//! the stream test fails.
#![forbid(unsafe_code)]

mod rig;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use rig::daemon::{Lvsfwd, lvsadm_ok};
use rig::{CMD_TIMEOUT, Fam, Host, IFACE, Mode, Rig, python, run, script, wait_until};

const PORT: u16 = 7000;
const VRID: u8 = 51;
/// NAT and FULLNAT: the client's gateway, a VRRP address.
const CLIENT_GW: &str = "198.18.100.1";
/// NAT: the real servers' gateway, a VRRP address (the rig routes them via
/// the director's own address, which cannot move).
const RS_GW: &str = "198.18.0.254";

fn sock(rig: &Rig, who: &str) -> String {
    rig.dir()
        .join(format!("{who}.sock"))
        .to_string_lossy()
        .into_owned()
}

/// `who`'s connection table (`lvsadm -L -c -n`).
fn conns(rig: &Rig, who: &str) -> String {
    lvsadm_ok(&sock(rig, who), &["-L", "-c", "-n"])
}

/// The VRRP addresses: the VIP, and for FULLNAT the local address and the
/// client's gateway, which must move with it.
fn vrrp_addrs(rig: &Rig) -> Vec<String> {
    let mut v = vec![vip(rig)];
    match rig.mode {
        Mode::FullNat => {
            v.push(format!("{}/24", rig.lip(Fam::V4)));
            v.push(format!("{CLIENT_GW}/24"));
        }
        Mode::Nat => {
            v.push(format!("{RS_GW}/24"));
            v.push(format!("{CLIENT_GW}/24"));
        }
        _ => {}
    }
    v
}

/// The VIP as `ip addr` lists it.
fn vip(rig: &Rig) -> String {
    format!("{}/32", rig.vip(Fam::V4))
}

/// A director of the pair: its name, VRRP state and priority.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Role {
    who: &'static str,
    state: &'static str,
    prio: u8,
}

const MASTER: Role = Role {
    who: "director",
    state: "MASTER",
    prio: 100,
};
const BACKUP: Role = Role {
    who: "peer",
    state: "BACKUP",
    prio: 90,
};

/// What a case's directors change in the plain pair's lb.toml.
#[derive(Clone, Copy)]
struct Case {
    mode: Mode,
    /// Lines in both directors' `[global]`.
    global: &'static str,
    /// The BACKUP's own additions: lines in its `[[vrrp_instance]]`,
    /// tables at the end of its file.
    backup: fn(&Rig) -> (String, String),
}

impl Case {
    fn plain(mode: Mode) -> Case {
        Case {
            mode,
            global: "",
            backup: |_| Default::default(),
        }
    }

    /// DR with `sync_period = 0`: a connection is sent once (its third
    /// packet), never again, so that only a table request can bring it.
    fn sent_once() -> Case {
        Case {
            global: "sync_period = 0\n",
            ..Case::plain(Mode::Dr)
        }
    }
}

/// The two real servers of a virtual server, as lb.toml lines.
fn real_servers(rig: &Rig) -> String {
    (1..=2)
        .map(|n| {
            format!(
                "\n  [[virtual_server.real_server]]\n  address = \"{}:{PORT}\"\n  weight = 1\n",
                rig.rip(n, Fam::V4)
            )
        })
        .collect()
}

/// `role`'s lb.toml in `case`.
fn lb_toml(rig: &Rig, role: Role, case: &Case) -> String {
    let (instance, tail) = if role == BACKUP {
        (case.backup)(rig)
    } else {
        Default::default()
    };
    let vips: Vec<String> = vrrp_addrs(rig).iter().map(|a| format!("\"{a}\"")).collect();
    let mut s = format!(
        "[global]\nrouter_id = \"{who}\"\ninterface = \"{IFACE}\"\nadmin_socket = \"{}\"\n{global}\n\
         [global.lvs_sync_daemon]\ninterface = \"{IFACE}\"\nvrrp_instance = \"VI_1\"\n\n\
         [[vrrp_instance]]\nname = \"VI_1\"\nstate = \"{state}\"\ninterface = \"{IFACE}\"\n\
         virtual_router_id = {VRID}\npriority = {prio}\nadvert_int = 1\n\
         virtual_ipaddress = [{}]\n{instance}\n\
         [[virtual_server]]\naddress = \"{}:{PORT}\"\nprotocol = \"TCP\"\nlb_algo = \"rr\"\n\
         lb_kind = \"{}\"\n",
        sock(rig, role.who),
        vips.join(", "),
        rig.vip(Fam::V4),
        rig.mode.lb_kind(),
        who = role.who,
        global = case.global,
        state = role.state,
        prio = role.prio,
    );
    if rig.mode == Mode::FullNat {
        s += &format!("local_address = [\"{}\"]\n", rig.lip(Fam::V4));
    }
    s + &real_servers(rig) + &tail
}

fn has_addr(h: &Host, cidr: &str) -> bool {
    h.ip(&["-4", "-o", "addr", "show", "dev", IFACE])
        .contains(&format!(" {cidr} "))
}

/// Waits (10 s) until `h` holds the VIP; `what` names it in the failure.
fn takes_the_vip(rig: &Rig, h: &Host, what: &str) {
    let vip = vip(rig);
    assert!(
        wait_until(Duration::from_secs(10), || has_addr(h, &vip)),
        "the {what} never took the VIP"
    );
}

/// Waits (`secs`) until the VIP moved to `to` (and left `from`); panics
/// with `what` and the log of `who` else.
fn vip_moves(rig: &Rig, (to, from): (&Host, &Host), secs: u64, what: &str, who: &Lvsfwd) {
    let vip = vip(rig);
    let moved = wait_until(Duration::from_secs(secs), || {
        has_addr(to, &vip) && !has_addr(from, &vip)
    });
    assert!(moved, "{what}: {}", who.stderr());
}

/// A rig of `mode` with two real servers and no service; `peer`: with the
/// second director.
fn two_servers(mode: Mode, peer: bool) -> Rig {
    Rig::builder(mode)
        .peer_director(peer)
        .real_servers(2)
        .services(false)
        .build()
}

/// Stream servers (`stream.py server`) on both real servers.
fn stream_servers(rig: &Rig) {
    let (py, port) = (script("stream.py"), PORT.to_string());
    for n in 1..=2 {
        let name = format!("rs{n}");
        let argv = [
            python(),
            py.as_str(),
            "server",
            "--port",
            &port,
            "--name",
            &name,
        ];
        rig.spawn_ready(rig.rs(n), "stream", &argv, Duration::from_secs(10));
    }
}

/// The two directors of `case`, VRRP with sync, stream servers on both
/// real servers; the MASTER holds the VIP.
fn pair(case: Case) -> (Rig, Lvsfwd, Lvsfwd) {
    let mode = case.mode;
    let rig = two_servers(mode, true);
    let d = rig.director();
    d.del_addr(IFACE, &vip(&rig));
    if mode == Mode::FullNat {
        d.del_addr(IFACE, &format!("{}/24", rig.lip(Fam::V4)));
    }
    if mode == Mode::Nat {
        for n in 1..=2 {
            rig.rs(n).ip(&[
                "-4", "route", "replace", "default", "via", RS_GW, "dev", IFACE,
            ]);
        }
    }
    if matches!(mode, Mode::Nat | Mode::FullNat) {
        d.del_addr(IFACE, &format!("{CLIENT_GW}/24"));
        let p = rig.peer();
        p.sysctl("net.ipv4.ip_forward", "0");
        for dev in ["all", "default", IFACE] {
            p.sysctl(&format!("net.ipv4.conf.{dev}.send_redirects"), "0");
        }
    }
    stream_servers(&rig);
    let master = Lvsfwd::start(&rig, &lb_toml(&rig, MASTER, &case));
    let backup = Lvsfwd::start_on(&rig, rig.peer(), "peer.toml", &lb_toml(&rig, BACKUP, &case));
    takes_the_vip(&rig, rig.director(), "MASTER");
    (rig, master, backup)
}

/// One answer of the stream client: (seq, sent, received, server).
type Answer = (u64, f64, f64, String);

fn answers(out: &str) -> Vec<Answer> {
    out.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            if f.len() != 4 {
                return None;
            }
            Some((
                f[0].parse().ok()?,
                f[1].parse().ok()?,
                f[2].parse().ok()?,
                f[3].to_string(),
            ))
        })
        .collect()
}

/// The gaps between consecutive answers, longest first.
fn stalls(a: &[Answer]) -> Vec<f64> {
    let mut s: Vec<f64> = a.windows(2).map(|w| w[1].2 - w[0].2).collect();
    s.sort_by(|x, y| y.total_cmp(x));
    s
}

/// A stream client through the VIP (`stream.py client`: one line each
/// 50 ms, echoed by the real server), by its pid.
struct Stream(u32);

impl Stream {
    /// For `secs` seconds, `more` arguments added.
    fn start(rig: &Rig, secs: u32, more: &[&str]) -> Stream {
        let (py, secs) = (script("stream.py"), secs.to_string());
        let target = format!("{}:{PORT}", rig.vip(Fam::V4));
        let mut argv = vec![python(), py.as_str(), "client", "--target", target.as_str()];
        argv.extend(["--interval", "0.05", "--duration", secs.as_str()]);
        argv.extend(more);
        Stream(rig.spawn(rig.client(), "stream", &argv))
    }

    fn answers(&self, rig: &Rig) -> Vec<Answer> {
        answers(&rig.proc_logs(self.0).0)
    }

    fn count(&self, rig: &Rig) -> usize {
        self.answers(rig).len()
    }

    /// Waits (10 s) for 20 answers; `via` names the director in the failure.
    fn runs(&self, rig: &Rig, via: &str) {
        assert!(
            wait_until(Duration::from_secs(10), || self.count(rig) >= 20),
            "the stream does not run through {via}: {:?}",
            rig.proc_logs(self.0)
        );
    }

    /// The client's address and port, as the connection listings show them.
    fn local(&self, rig: &Rig) -> String {
        rig.proc_logs(self.0)
            .0
            .lines()
            .find_map(|l| l.strip_prefix("local ").map(str::to_string))
            .expect("the client's local address")
    }

    /// Waits (`secs`) for its end: no error (`at` names the event in the
    /// failure), every answer from one real server. Returns the answers.
    fn finish(&self, rig: &Rig, secs: u64, at: &str) -> Vec<Answer> {
        let ended = wait_until(Duration::from_secs(secs), || {
            let o = rig.proc_logs(self.0).0;
            o.contains("done") || o.contains("ERROR")
        });
        let (out, err) = rig.proc_logs(self.0);
        assert!(ended, "the stream client never finished: {out}\n{err}");
        assert!(
            !out.contains("ERROR"),
            "the stream broke {at}: {}\n{err}",
            out.lines().rev().take(5).collect::<Vec<_>>().join("\n")
        );
        let a = answers(&out);
        let servers: BTreeSet<&str> = a.iter().map(|x| x.3.as_str()).collect();
        assert_eq!(servers.len(), 1, "answers from {servers:?}");
        a
    }
}

/// Starts tshark on `h`'s NIC for sync datagrams; returns its pid and pcap.
fn capture(rig: &Rig, h: &Host, secs: u32) -> (u32, String) {
    let pcap = rig.dir().join("sync.pcap").to_string_lossy().into_owned();
    let pid = rig.spawn(
        h,
        "tshark",
        &[
            "tshark",
            "-i",
            IFACE,
            "-f",
            "udp port 8848",
            "-a",
            &format!("duration:{secs}"),
            "-w",
            &pcap,
        ],
    );
    // tshark says "Capturing on" once the filter is in place.
    let up = wait_until(Duration::from_secs(10), || {
        rig.proc_logs(pid).1.contains("Capturing on")
    });
    assert!(up, "tshark did not start: {}", rig.proc_logs(pid).1);
    (pid, pcap)
}

/// The fields tshark's IPVS dissector decodes from `pcap`, one line a
/// datagram.
fn decode(pcap: &str) -> Vec<Vec<String>> {
    let out = run(
        &[
            "tshark",
            "-r",
            pcap,
            "-d",
            "udp.port==8848,ipvs",
            "-T",
            "fields",
            "-E",
            "separator=;",
            "-e",
            "ipvs.syncid",
            "-e",
            "ipvs.conncount",
            "-e",
            "ipvs.caddr",
            "-e",
            "ipvs.vaddr",
            "-e",
            "ipvs.daddr",
            "-e",
            "ipvs.cport",
            "-e",
            "udp.length",
            "-e",
            "_ws.malformed",
            "-e",
            "udp.payload",
        ],
        CMD_TIMEOUT,
    )
    .expect_ok();
    out.lines()
        .map(|l| l.split(';').map(str::to_string).collect())
        .collect()
}

fn failover_keeps_the_stream(mode: Mode) {
    let (rig, master, mut backup) = pair(Case::plain(mode));
    let (tpid, pcap) = capture(&rig, rig.peer(), 8);
    let client = Stream::start(&rig, 30, &[]);
    // The stream runs; the backup learns its connection (sent at the
    // third packet, in a message flushed within 2 s).
    client.runs(&rig, "the master");
    let server = client.answers(&rig)[0].3.clone();
    let n: usize = server[2..].parse().unwrap();
    let rip = rig.rip(n, Fam::V4).to_string();
    let local = client.local(&rig);
    let cport = local.rsplit(':').next().unwrap().to_string();
    let synced = wait_until(Duration::from_secs(8), || {
        conns(&rig, BACKUP.who).lines().any(|l| {
            l.contains(&local) && l.contains(&format!("{rip}:{PORT}")) && l.contains("ESTABLISHED")
        })
    });
    assert!(
        synced,
        "the backup never listed the stream's connection to {rip}: {}",
        conns(&rig, BACKUP.who)
    );

    // The master dies: link down, then SIGKILL.
    let killed = Instant::now();
    rig.director().ip(&["link", "set", IFACE, "down"]);
    run(&["kill", "-KILL", &master.pid().to_string()], CMD_TIMEOUT);
    takes_the_vip(&rig, rig.peer(), "BACKUP");
    let took = killed.elapsed();
    let a = client.finish(&rig, 40, "at fail-over");
    let stall = stalls(&a).first().copied().unwrap_or(0.0);
    let after = a.iter().filter(|x| x.2 - a[0].2 > 0.0).count();
    assert!(
        stall < 20.0 && after > 0,
        "stall {stall:.3} s, {after} answers"
    );
    eprintln!(
        "{}: stream kept its real server {server} through fail-over; VIP on the backup {:.2} s \
         after the kill; longest stall {:.0} ms; {} answers",
        mode.lb_kind(),
        took.as_secs_f64(),
        stall * 1000.0,
        a.len()
    );

    // tshark decodes what the master sent.
    let stopped = |rig: &Rig| rig.proc_logs(tpid).1.contains("captured");
    if !wait_until(Duration::from_secs(3), || stopped(&rig)) {
        // Its duration is long over: make it close the file.
        run(&["kill", "-INT", &tpid.to_string()], CMD_TIMEOUT);
    }
    assert!(
        wait_until(Duration::from_secs(15), || stopped(&rig)),
        "tshark did not stop: {}",
        rig.proc_logs(tpid).1
    );
    let rows = decode(&pcap);
    assert!(!rows.is_empty(), "no sync datagram captured");
    let conn = rows
        .iter()
        .find(|r| r[2].split(',').next() == Some(&rig.client_ip(Fam::V4).to_string()))
        .unwrap_or_else(|| panic!("no entry for the client in {rows:?}"));
    assert_eq!(conn[0], VRID.to_string(), "syncid");
    assert!(conn[1].parse::<u32>().unwrap() >= 1);
    let first = |i: usize| conn[i].split(',').next().unwrap_or("").to_string();
    assert_eq!(first(3), rig.vip(Fam::V4).to_string());
    assert_eq!(first(4), rip, "{conn:?}");
    assert_eq!(first(5), cport, "{conn:?}");
    if mode == Mode::FullNat {
        // Wireshark's dissector steps over a v1 entry as if it had no
        // options (36 bytes), so it misreads whatever follows an entry
        // with options (the kernel's sequence and persistence options
        // too): only each datagram's first entry is read right. Our
        // FULLNAT option is checked in the bytes instead: type 0x48
        // (optional), length 6, the local address.
        let lip = rig.lip(Fam::V4).to_string();
        let hex: String = lip
            .split('.')
            .map(|o| format!("{:02x}", o.parse::<u8>().unwrap()))
            .collect();
        assert!(
            rows.iter().all(|r| r[8].contains(&format!("4806{hex}"))),
            "no FULLNAT option with {lip} in {rows:?}"
        );
    } else {
        assert!(rows.iter().all(|r| r[7].is_empty()), "malformed: {rows:?}");
    }
    let entries: u32 = rows.iter().map(|r| r[1].parse::<u32>().unwrap_or(0)).sum();
    let bytes: u32 = rows
        .iter()
        .map(|r| r[6].parse::<u32>().unwrap_or(0) - 8)
        .sum();
    eprintln!(
        "{}: {} sync datagrams, {entries} entries, {bytes} bytes of UDP payload ({:.1} bytes an entry)",
        mode.lb_kind(),
        rows.len(),
        f64::from(bytes) / f64::from(entries.max(1))
    );
    assert!(backup.terminate().success(), "{}", backup.stderr());
    drop(master);
}

#[test]
fn dr_stream_survives_the_masters_death() {
    failover_keeps_the_stream(Mode::Dr);
}

#[test]
fn nat_stream_survives_the_masters_death() {
    failover_keeps_the_stream(Mode::Nat);
}

#[test]
fn fullnat_stream_survives_the_masters_death() {
    failover_keeps_the_stream(Mode::FullNat);
}

/// `lvsadm --start-daemon` on a daemon started without sync (ipvsadm's
/// workflow), its listing, its datagrams on the wire while 1000 new
/// connections go through the director, and `--stop-daemon`.
#[test]
fn lvsadm_starts_lists_and_stops_the_sync_daemon() {
    let rig = Rig::dr();
    let _lvsfwd = Lvsfwd::start(&rig, &rig.lb_toml(&[rig::e2e::tcp(Fam::V4)]));
    let s = rig.dir().join("admin.sock").to_string_lossy().into_owned();
    assert_eq!(lvsadm_ok(&s, &["-L", "--daemon"]), "");
    lvsadm_ok(
        &s,
        &[
            "--start-daemon",
            "master",
            "--mcast-interface",
            IFACE,
            "--syncid",
            "7",
        ],
    );
    lvsadm_ok(
        &s,
        &[
            "--start-daemon",
            "backup",
            "--mcast-interface",
            IFACE,
            "--syncid",
            "7",
            "--mcast-ttl",
            "2",
        ],
    );
    assert_eq!(
        lvsadm_ok(&s, &["-L", "--daemon"]),
        format!(
            "master sync daemon (mcast={IFACE}, syncid=7, maxlen=1472, group=224.0.0.81, port=8848, ttl=1)\n\
             backup sync daemon (mcast={IFACE}, syncid=7, maxlen=1472, group=224.0.0.81, port=8848, ttl=2)\n"
        )
    );
    let (code, _, err) = rig::daemon::lvsadm(
        &s,
        &["--start-daemon", "master", "--mcast-interface", IFACE],
    );
    assert_eq!((code, err.trim()), (1, "Daemon has already run"));

    // What the master sends, seen from the client's NIC.
    let pcap = rig.dir().join("conns.pcap").to_string_lossy().into_owned();
    let tpid = rig.spawn(
        rig.client(),
        "tshark",
        &["tshark", "-i", IFACE, "-f", "udp port 8848", "-w", &pcap],
    );
    assert!(wait_until(Duration::from_secs(10), || rig
        .proc_logs(tpid)
        .1
        .contains("Capturing on")));
    let vip = std::net::SocketAddr::new(rig.vip(Fam::V4), rig::HTTP_PORT);
    let t0 = Instant::now();
    let n = 1000;
    rig.http(rig.client(), vip, n)
        .assert_all_ok("1000 connections through the master");
    let took = t0.elapsed();
    // A partial message leaves within 2 s.
    std::thread::sleep(Duration::from_secs(3));
    run(&["kill", "-INT", &tpid.to_string()], CMD_TIMEOUT);
    assert!(wait_until(Duration::from_secs(15), || rig
        .proc_logs(tpid)
        .1
        .contains("captured")));
    let rows = decode(&pcap);
    assert!(!rows.is_empty(), "no sync datagram");
    assert!(
        rows.iter().all(|r| r[0] == "7" && r[7].is_empty()),
        "{rows:?}"
    );
    let entries: u32 = rows.iter().map(|r| r[1].parse::<u32>().unwrap()).sum();
    let bytes: u32 = rows.iter().map(|r| r[6].parse::<u32>().unwrap() - 8).sum();
    // Each connection is sent when it is ESTABLISHED (its third packet)
    // and again on each move into FIN_WAIT / CLOSE / TIME_WAIT...
    assert!(
        entries as usize >= n,
        "{entries} entries for {n} connections"
    );
    eprintln!(
        "lvsadm master: {n} connections in {:.2} s: {} datagrams, {entries} entries ({:.0} entries/s), \
         {bytes} bytes of UDP payload ({:.0} bytes per 1000 connections)",
        took.as_secs_f64(),
        rows.len(),
        f64::from(entries) / took.as_secs_f64(),
        f64::from(bytes) * 1000.0 / n as f64
    );

    lvsadm_ok(&s, &["--stop-daemon", "master"]);
    assert_eq!(
        lvsadm_ok(&s, &["-L", "--daemon"]),
        format!(
            "backup sync daemon (mcast={IFACE}, syncid=7, maxlen=1472, group=224.0.0.81, port=8848, ttl=2)\n"
        )
    );
    let (code, _, err) = rig::daemon::lvsadm(&s, &["--stop-daemon", "master"]);
    assert_eq!((code, err.trim()), (1, "No daemon is running"));
    lvsadm_ok(&s, &["--stop-daemon", "backup"]);
    assert_eq!(lvsadm_ok(&s, &["-L", "--daemon"]), "");
}

/// Fail-over, then fail-back: the old master returns (link up, lvsfwd
/// started again, MASTER with the higher priority), takes the current
/// master's whole table before it takes part in VRRP, preempts, and the
/// stream goes on through it on the same real server. `sync_period = 0`:
/// a connection is sent once (its third packet), never again, so only the
/// table the returning master asks for can bring it.
#[test]
fn dr_stream_survives_fail_over_and_fail_back() {
    let case = Case::sent_once();
    let (rig, master, _backup) = pair(case);
    let client = Stream::start(&rig, 40, &[]);
    client.runs(&rig, "the master");
    let local = client.local(&rig);
    assert!(
        wait_until(Duration::from_secs(8), || conns(&rig, BACKUP.who)
            .contains(&local)),
        "the backup never got the stream's connection"
    );
    rig.director().ip(&["link", "set", IFACE, "down"]);
    run(&["kill", "-KILL", &master.pid().to_string()], CMD_TIMEOUT);
    drop(master);
    takes_the_vip(&rig, rig.peer(), "BACKUP");
    // The stream runs through the new master.
    let before = client.count(&rig);
    assert!(
        wait_until(Duration::from_secs(15), || client.count(&rig)
            >= before + 40),
        "the stream did not resume through the backup: {:?}",
        rig.proc_logs(client.0)
    );

    // The old master comes back and preempts once it has the table.
    rig.director().ip(&["link", "set", IFACE, "up"]);
    let back = Instant::now();
    let returned = Lvsfwd::start(&rig, &lb_toml(&rig, MASTER, &case));
    let hosts = (rig.director(), rig.peer());
    vip_moves(
        &rig,
        hosts,
        10,
        "the returning master never preempted",
        &returned,
    );
    let took = back.elapsed().as_secs_f64();
    eprintln!("DR fail-back: VIP back on the returning master {took:.2} s after its start");
    assert!(
        conns(&rig, MASTER.who).contains(&local),
        "the returning master lacks the stream's connection"
    );
    assert!(
        returned.stderr().contains("the master's table arrived"),
        "{}",
        returned.stderr()
    );
    let before = client.count(&rig);
    let a = client.finish(&rig, 40, "at fail-back");
    assert!(a.len() > before, "no answer after the fail-back");
    let top = stalls(&a);
    eprintln!(
        "DR fail-over and fail-back: {} answers from {}, the two longest stalls {:.0} ms and {:.0} ms",
        a.len(),
        a[0].3,
        top[0] * 1000.0,
        top.get(1).copied().unwrap_or(0.0) * 1000.0
    );
}

/// Where `marks` stand in `log`, each searched after the one before;
/// panics naming the first one missing.
fn in_order(log: &str, marks: &[&str]) -> Vec<usize> {
    let mut at = Vec::new();
    let mut from = 0;
    for m in marks {
        let i = log[from..]
            .find(m)
            .map(|i| i + from)
            .unwrap_or_else(|| panic!("no {m:?} after byte {from} of the log:\n{log}"));
        at.push(i);
        from = i;
    }
    at
}

/// Fail-back of a director that kept running: the master's link goes
/// down long enough for the peer to take over; a new stream starts through
/// the peer (its connection exists only there: `sync_period = 0` sends it
/// once, while the old master's link is down); the link comes back. The
/// old master's VRRP instance leaves FAULT only once it has the peer's
/// whole table, then preempts, and the new stream goes on through it on the
/// same real server. (Without the request on return the old master has no
/// entry for the stream when it takes the VIP back: its kernel resets it.)
#[test]
fn a_returning_running_director_takes_the_table_before_it_preempts() {
    let (rig, master, _backup) = pair(Case::sent_once());
    rig.director().ip(&["link", "set", IFACE, "down"]);
    takes_the_vip(&rig, rig.peer(), "BACKUP");
    let client = Stream::start(&rig, 25, &[]);
    client.runs(&rig, "the peer");
    let local = client.local(&rig);
    assert!(
        !conns(&rig, MASTER.who).contains(&local),
        "the old master got the stream while its link was down"
    );
    rig.director().ip(&["link", "set", IFACE, "up"]);
    let back = Instant::now();
    let what = "the returning master never preempted";
    vip_moves(&rig, (rig.director(), rig.peer()), 15, what, &master);
    let took = back.elapsed().as_secs_f64();
    eprintln!("DR return of a running director: VIP back {took:.2} s after its link came up");
    assert!(
        conns(&rig, MASTER.who).contains(&local),
        "the returning master lacks the stream's connection"
    );
    // Asked, arrived, left FAULT: in that order.
    in_order(
        &master.stderr(),
        &[
            "leaving FAULT once the sync master's table is here",
            "the master's table arrived",
            "leaving FAULT state",
        ],
    );
    let before = client.count(&rig);
    let a = client.finish(&rig, 30, "at fail-back");
    assert!(a.len() > before, "no answer after the fail-back");
    eprintln!(
        "DR return: {} answers, the longest stall {:.0} ms",
        a.len(),
        stalls(&a)[0] * 1000.0
    );
}

/// The BACKUP's tracked script for [`a_backup_whose_priority_rises_takes_the_table_before_it_preempts`]:
/// weight 20 (its 90 becomes 110, past the MASTER's 100) while the file
/// `raise` in the rig's directory exists.
fn raised_by_a_script(rig: &Rig) -> (String, String) {
    let flag = rig.dir().join("raise");
    (
        "track_script = [\"raise\"]\n".into(),
        format!(
            "\n[[vrrp_script]]\nname = \"raise\"\nscript = \"/usr/bin/test -e {}\"\n\
             interval = 1\nweight = 20\nrise = 1\nfall = 1\n",
            flag.display()
        ),
    )
}

/// A running BACKUP preempts because its priority rose (a tracked
/// script's weight): it asks the MASTER for its whole table first and
/// takes over only once that table arrived, so streams the MASTER holds
/// and the BACKUP never heard of go on through it on the same real
/// servers. The BACKUP misses them for real: its sync socket's datagrams
/// are dropped (nft, as a lost multicast datagram) while they start, and
/// `sync_period = 0` never sends them again. (Without the hold the BACKUP
/// takes the VIP without their entries and its kernel resets them.)
#[test]
fn a_backup_whose_priority_rises_takes_the_table_before_it_preempts() {
    let case = Case {
        backup: raised_by_a_script,
        ..Case::sent_once()
    };
    let (rig, master, backup) = pair(case);
    rig.peer().exec_ok(&[
        "nft",
        "add table inet lfsync; add chain inet lfsync in { type filter hook input priority 0; }; \
         add rule inet lfsync in udp dport 8848 drop",
    ]);
    let clients: Vec<Stream> = (0..4).map(|_| Stream::start(&rig, 25, &[])).collect();
    for c in &clients {
        c.runs(&rig, "the master");
    }
    let locals: Vec<String> = clients.iter().map(|c| c.local(&rig)).collect();
    // The master sends each at its third packet, flushed within 2 s.
    std::thread::sleep(Duration::from_secs(3));
    rig.peer().exec_ok(&["nft", "delete table inet lfsync"]);
    let missed = conns(&rig, BACKUP.who);
    assert!(
        locals.iter().all(|l| !missed.contains(l.as_str())),
        "the backup got the streams' connections: {missed}"
    );
    // The backup's priority rises past the master's.
    let raised = Instant::now();
    std::fs::write(rig.dir().join("raise"), "").expect("the flag file");
    let what = "the backup never preempted";
    vip_moves(&rig, (rig.peer(), rig.director()), 15, what, &backup);
    let took = raised.elapsed().as_secs_f64();
    eprintln!("priority rise: VIP on the backup {took:.2} s after its script's flag appeared");
    let table = conns(&rig, BACKUP.who);
    assert!(
        locals.iter().all(|l| table.contains(l.as_str())),
        "the new master lacks the streams' connections: {table}"
    );
    // Priority up, table asked for, arrived, then master: in that order.
    let log = backup.stderr();
    let at = in_order(
        &log,
        &[
            "effective priority 90 -> 110",
            "once the sync master's table is here",
            "the master's table arrived",
            "the sync master's table is here: taking over",
            "entering MASTER state",
        ],
    );
    assert!(
        log[at[0]..].contains("preempting"),
        "the backup did not preempt: {log}"
    );
    // The hold, as the backup logged it (timestamps).
    let from = log[..at[1]].rfind('\n').map_or(0, |i| i + 1);
    for l in log[from..at[4]].lines().filter(|l| l.contains("table")) {
        eprintln!("priority rise: {l}");
    }
    let mut worst = 0.0f64;
    for c in &clients {
        let a = c.finish(&rig, 40, "when the backup preempted");
        let s = stalls(&a)[0];
        worst = worst.max(s);
        assert!(s < 2.0, "a stream stalled {s:.3} s at the preemption");
    }
    eprintln!(
        "priority rise: {} streams kept their real servers through the preemption, the longest \
         stall {:.0} ms",
        clients.len(),
        worst * 1000.0
    );
    drop(master);
}

/// SIGHUP changes a running sync daemon: an unchanged
/// `[global.lvs_sync_daemon]` leaves its threads alone; an edited one
/// (another syncid) restarts them in the instance's current role (MASTER);
/// a removed one stops them; one added back starts them; one naming an
/// interface that does not exist is refused with the reload, the running
/// daemon kept.
#[test]
fn sighup_edits_removes_and_adds_the_sync_daemon() {
    let rig = two_servers(Mode::Dr, false);
    rig.director().del_addr(IFACE, &vip(&rig));
    let toml = lb_toml(&rig, MASTER, &Case::plain(Mode::Dr));
    let mut lb = Lvsfwd::start(&rig, &toml);
    takes_the_vip(&rig, rig.director(), "instance, as MASTER,");
    let s = sock(&rig, MASTER.who);
    let listing = |id: u8| {
        format!(
            "master sync daemon (mcast={IFACE}, syncid={id}, maxlen=1472, group=224.0.0.81, \
             port=8848, ttl=1)\n"
        )
    };
    assert!(
        wait_until(Duration::from_secs(5), || lvsadm_ok(
            &s,
            &["-L", "--daemon"]
        ) == listing(VRID)),
        "{}",
        lvsadm_ok(&s, &["-L", "--daemon"])
    );
    let started = |lb: &Lvsfwd| lb.stderr().matches("sync thread started").count();
    let reloaded = |lb: &Lvsfwd| lb.stderr().matches("reloaded ").count();
    let refused = |lb: &Lvsfwd| lb.stderr().matches("reload refused").count();
    let hup = |lb: &Lvsfwd, toml: &str, check: &dyn Fn(&Lvsfwd) -> usize| {
        let before = check(lb);
        std::fs::write(&lb.config, toml).expect("rewrite lb.toml");
        run(&["kill", "-HUP", &lb.pid().to_string()], CMD_TIMEOUT).expect_ok();
        assert!(
            wait_until(Duration::from_secs(10), || check(lb) > before),
            "{}",
            lb.stderr()
        );
    };
    // Unchanged: the threads stay.
    let n = started(&lb);
    hup(&lb, &toml, &reloaded);
    assert_eq!(started(&lb), n, "an unchanged sync daemon was restarted");
    assert_eq!(lvsadm_ok(&s, &["-L", "--daemon"]), listing(VRID));
    // Edited: restarted as master (the instance is MASTER) with syncid 9.
    let edited = toml.replace(
        "vrrp_instance = \"VI_1\"\n\n",
        "vrrp_instance = \"VI_1\"\nid = 9\n\n",
    );
    assert_ne!(edited, toml);
    hup(&lb, &edited, &reloaded);
    assert_eq!(lvsadm_ok(&s, &["-L", "--daemon"]), listing(9));
    assert_eq!(started(&lb), n + 1);
    // A missing interface: refused, syncid 9 still runs.
    hup(
        &lb,
        &edited.replace(
            &format!("[global.lvs_sync_daemon]\ninterface = \"{IFACE}\""),
            "[global.lvs_sync_daemon]\ninterface = \"lfnosuch0\"",
        ),
        &refused,
    );
    assert!(lb.stderr().contains("lfnosuch0"), "{}", lb.stderr());
    assert_eq!(lvsadm_ok(&s, &["-L", "--daemon"]), listing(9));
    // Removed: stopped.
    let start = toml.find("[global.lvs_sync_daemon]").unwrap();
    let end = start + toml[start..].find("\n\n").unwrap() + 2;
    let without = format!("{}{}", &toml[..start], &toml[end..]);
    hup(&lb, &without, &reloaded);
    assert_eq!(lvsadm_ok(&s, &["-L", "--daemon"]), "");
    // Added back: master again, the default syncid.
    hup(&lb, &toml, &reloaded);
    assert_eq!(lvsadm_ok(&s, &["-L", "--daemon"]), listing(VRID));
    lb.assert_running();
}

/// The sync sysctls on two directors: `sync_ports = 2` (the master sends
/// over two sockets, to 8848 and 8849, the backup listens on both),
/// `sync_version = 0` (v0 messages: count, syncid, size, 24-byte entries,
/// which tshark's dissector decodes too) and `sync_sock_size` (the
/// sockets' buffers, as `ss` shows them). A dozen connections through the
/// master all reach the backup.
#[test]
fn sync_ports_version_0_and_sock_size_are_applied() {
    let extra = "sync_ports = 2\nsync_version = 0\nsync_sock_size = 200000\n";
    let (rig, _master, _backup) = pair(Case {
        global: extra,
        ..Case::plain(Mode::Dr)
    });
    let pcap = rig.dir().join("v0.pcap").to_string_lossy().into_owned();
    let tpid = rig.spawn(
        rig.peer(),
        "tshark",
        &[
            "tshark",
            "-i",
            IFACE,
            "-f",
            "udp portrange 8848-8849",
            "-a",
            "duration:12",
            "-w",
            &pcap,
        ],
    );
    assert!(
        wait_until(Duration::from_secs(10), || rig
            .proc_logs(tpid)
            .1
            .contains("Capturing on")),
        "tshark did not start"
    );
    let clients: Vec<Stream> = (0..12).map(|_| Stream::start(&rig, 6, &[])).collect();
    let locals: Vec<String> = clients
        .iter()
        .map(|c| {
            assert!(
                wait_until(Duration::from_secs(10), || rig
                    .proc_logs(c.0)
                    .0
                    .lines()
                    .any(|l| l.starts_with("local "))),
                "a stream did not start: {:?}",
                rig.proc_logs(c.0)
            );
            c.local(&rig)
        })
        .collect();
    assert!(
        wait_until(Duration::from_secs(10), || {
            let l = conns(&rig, BACKUP.who);
            locals.iter().all(|x| l.contains(x.as_str()))
        }),
        "the backup lacks connections: {}",
        conns(&rig, BACKUP.who)
    );
    // The sockets' buffers: the kernel doubles what is set.
    let ss = rig.director().exec_ok(&["ss", "-uanm"]);
    let tb: Vec<u64> = ss
        .lines()
        .filter_map(|l| {
            let i = l.find(",tb")?;
            l[i + 3..].split(',').next()?.parse().ok()
        })
        .collect();
    assert!(
        tb.iter().filter(|&&b| b == 400_000).count() >= 2,
        "send buffers: {tb:?}\n{ss}"
    );
    let ss = rig.peer().exec_ok(&["ss", "-uanm"]);
    assert!(
        ss.matches("rb400000").count() >= 2,
        "receive buffers:\n{ss}"
    );
    let _ = wait_until(Duration::from_secs(15), || {
        !std::path::Path::new(&format!("/proc/{tpid}")).exists()
    });
    let out = run(
        &[
            "tshark",
            "-r",
            &pcap,
            "-T",
            "fields",
            "-E",
            "separator=;",
            "-e",
            "udp.dstport",
            "-e",
            "udp.payload",
        ],
        CMD_TIMEOUT,
    )
    .expect_ok();
    let mut ports = std::collections::BTreeSet::new();
    let mut entries = 0;
    for l in out.lines() {
        let f: Vec<&str> = l.split(';').collect();
        let Some(p) = f.get(1).filter(|p| p.len() >= 8) else {
            continue;
        };
        let b: Vec<u8> = (0..p.len() / 2)
            .map(|i| u8::from_str_radix(&p[2 * i..2 * i + 2], 16).unwrap())
            .collect();
        if b[0] == 0 {
            // A table request or end marker (v1 header, no entries).
            continue;
        }
        ports.insert(f[0].to_string());
        // v0: count, syncid (the VRID), size = 4 + 24 x count.
        assert_eq!(b[1], VRID, "{l}");
        assert_eq!(
            usize::from(u16::from_be_bytes([b[2], b[3]])),
            4 + 24 * usize::from(b[0]),
            "{l}"
        );
        assert_eq!(b.len(), 4 + 24 * usize::from(b[0]));
        entries += usize::from(b[0]);
    }
    assert!(entries >= 12, "{entries} entries:\n{out}");
    assert_eq!(
        ports.into_iter().collect::<Vec<_>>(),
        ["8848", "8849"],
        "{out}"
    );
}

/// `sloppy_tcp` with mh, as behind ECMP: two directors serve the VIP with
/// no sync between them; the client's path moves from one to the other
/// mid-stream (its neighbour entry for the VIP changes to the other
/// director's MAC). The second director has no entry for the flow: with
/// `sloppy_tcp` it makes one from a plain ACK, mh picks the same real
/// server, and the stream goes on. (Without `sloppy_tcp` the segment
/// cannot open a connection and the stream stalls.)
#[test]
fn sloppy_tcp_with_mh_keeps_a_flow_that_moves_between_directors() {
    let rig = two_servers(Mode::Dr, true);
    stream_servers(&rig);
    let toml = |who: &str| {
        format!(
            "[global]\ninterface = \"{IFACE}\"\nadmin_socket = \"{}\"\nsloppy_tcp = true\n\n\
             [[virtual_server]]\naddress = \"{}:{PORT}\"\nprotocol = \"TCP\"\nlb_algo = \"mh\"\n\
             lb_kind = \"DR\"\n",
            sock(&rig, who),
            rig.vip(Fam::V4)
        ) + &real_servers(&rig)
    };
    let _a = Lvsfwd::start(&rig, &toml("director"));
    let _b = Lvsfwd::start_on(&rig, rig.peer(), "peer.toml", &toml("peer"));
    let client = Stream::start(&rig, 12, &["--stall", "5"]);
    client.runs(&rig, "the first director");
    // The path moves: the client now reaches the VIP through the peer.
    let peer_mac = rig.peer().mac.clone();
    rig.client().ip(&[
        "neigh",
        "replace",
        &rig.vip(Fam::V4).to_string(),
        "lladdr",
        &peer_mac,
        "dev",
        IFACE,
        "nud",
        "permanent",
    ]);
    let a = client.finish(&rig, 30, "when its path moved");
    // The peer made the flow's connection (it has since closed).
    let local = client.local(&rig);
    let conns = conns(&rig, "peer");
    let server = rig.rip(a[0].3[2..].parse().unwrap(), Fam::V4);
    assert!(
        conns
            .lines()
            .any(|l| l.contains(&local) && l.contains(&format!("{server}:{PORT}"))),
        "the peer has no connection for the flow to {server}: {conns}"
    );
}
