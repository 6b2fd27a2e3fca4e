//! VRRP against the real keepalived: a DR rig with a second director (the
//! rig's `peer`) running `keepalived --vrrp` in its own namespace, lvsfwd on
//! the director, both on VRID 51 for the VIP 198.18.0.250 (VRRPv2, PASS
//! authentication, advert_int 1 s).
//!
//! What is asserted:
//! - keepalived MASTER, lvsfwd BACKUP: when keepalived dies, lvsfwd owns the
//!   VIP within Master_Down_Interval (measured from the kill to the VIP on
//!   lvsfwd's NIC) and HTTP through the VIP is balanced by lvsfwd; a
//!   keepalived started again with a higher priority takes the VIP back and
//!   lvsfwd removes it, and (as backup) does not balance traffic that still
//!   reaches it for the VIP.
//! - lvsfwd MASTER, keepalived BACKUP: SIGTERM makes lvsfwd send priority 0
//!   and keepalived takes over after its Skew_Time, far sooner than
//!   Master_Down_Interval; lvsfwd leaves no VIP behind. tshark, capturing on
//!   the switch, decodes lvsfwd's adverts as valid VRRP.
//! - Bad adverts from a raw sender (TTL, VRID, version, password, auth type,
//!   interval) do not move an lvsfwd master and are counted; the same advert
//!   made valid does move it.
//!
//! - IPv6, VRRPv3 (ff02::12, link-local sources, hop limit 255): lvsfwd
//!   stays backup to a keepalived master well past Master_Down_Interval (so
//!   it receives and accepts keepalived's v3 adverts), takes over about
//!   Skew_Time after keepalived stops cleanly (priority 0), and serves the
//!   IPv6 VIP.
//!
//! - A non-default multicast group (`vrrp_mcast_group4 224.0.0.19` on both):
//!   lvsfwd stays backup to a keepalived master, takes the VIP over when
//!   keepalived is killed, a lower-priority keepalived started then stays
//!   backup (it hears lvsfwd on the group); a SIGHUP moving lvsfwd to
//!   224.0.0.20 restarts its instance there (keepalived takes over, lvsfwd
//!   no longer hears it and is master too), one moving it back makes it
//!   master alone again; keepalived takes over when lvsfwd stops. tshark on
//!   the switch sees keepalived's adverts and lvsfwd's go to 224.0.0.19
//!   (lvsfwd's to 224.0.0.20 while it was moved) and none to 224.0.0.18.
//!
//! Measured times are printed (`--nocapture` shows them).
#![forbid(unsafe_code)]

mod rig;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rig::daemon::Lvsfwd;
use rig::{CMD_TIMEOUT, Fam, Host, IFACE, Mode, Rig, Role, e2e, python, run, script};

const VIP: &str = "198.18.0.250";
const PASS: &str = "lvs-vr1";
/// Poll period of the timing measurements.
const POLL: Duration = Duration::from_millis(5);

/// Master_Down_Interval of a v2 router with `prio` and advert_int 1 s.
fn mdi(prio: u8) -> Duration {
    Duration::from_secs(3) + skew(prio)
}

/// Skew_Time of a v2 router with `prio`.
fn skew(prio: u8) -> Duration {
    Duration::from_nanos((256 - prio as u64) * 1_000_000_000 / 256)
}

/// A DR rig with a peer director and no VIP on either director (VRRP adds it).
fn vrrp_rig() -> Rig {
    let rig = Rig::builder(Mode::Dr).peer_director(true).build();
    rig.director().del_addr(IFACE, &format!("{VIP}/32"));
    rig.director()
        .del_addr(IFACE, &format!("{}/128", rig.vip(Fam::V6)));
    rig
}

fn lvsfwd_toml(rig: &Rig, state: &str, prio: u8) -> String {
    let mut s = rig.lb_toml(&[e2e::tcp(Fam::V4)]);
    s += &format!(
        "\n[[vrrp_instance]]\nname = \"VI_1\"\nstate = \"{state}\"\ninterface = \"{IFACE}\"\n\
         virtual_router_id = 51\npriority = {prio}\nadvert_int = 1\nauth_type = \"PASS\"\n\
         auth_pass = \"{PASS}\"\nvirtual_ipaddress = [\"{VIP}/32\"]\n"
    );
    s
}

fn keepalived_conf(state: &str, prio: u8) -> String {
    format!(
        "global_defs {{\n  router_id peer\n}}\n\
         vrrp_instance VI_1 {{\n  state {state}\n  interface {IFACE}\n  virtual_router_id 51\n  \
         priority {prio}\n  advert_int 1\n  authentication {{\n    auth_type PASS\n    \
         auth_pass {PASS}\n  }}\n  virtual_ipaddress {{\n    {VIP}/32\n  }}\n}}\n"
    )
}

/// Starts keepalived (VRRP only, foreground) in the peer's namespace;
/// returns the pid of its parent process.
fn start_keepalived(rig: &Rig, tag: &str, state: &str, prio: u8) -> u32 {
    start_keepalived_with(rig, tag, &keepalived_conf(state, prio))
}

/// [`start_keepalived`] with the configuration `text`.
fn start_keepalived_with(rig: &Rig, tag: &str, text: &str) -> u32 {
    rig::keepalived::start(rig, tag, text)
}

/// Pids of every process in `host`'s namespace.
fn ns_pids(host: &Host) -> Vec<String> {
    run(&["ip", "netns", "pids", &host.ns], CMD_TIMEOUT)
        .stdout
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

/// SIGKILLs keepalived as a crash would: the VRRP child first (keepalived
/// gives it a parent-death SIGTERM, which would make it shut down cleanly
/// and send priority 0), then everything else in the peer's namespace, which
/// runs nothing but keepalived. Reaps the parent.
fn kill_keepalived(rig: &Rig, tag: &str, parent: u32) {
    let vpid = rig::keepalived::vrrp_pid_file(rig, tag);
    let child = std::fs::read_to_string(&vpid)
        .unwrap_or_else(|e| panic!("keepalived's VRRP pid file {}: {e}", vpid.display()));
    let child = child.trim().to_string();
    assert!(
        ns_pids(rig.peer()).contains(&child),
        "keepalived's VRRP child {child} is not in the peer namespace"
    );
    run(&["kill", "-KILL", &child], CMD_TIMEOUT);
    assert!(
        rig::wait_until(Duration::from_secs(5), || !ns_pids(rig.peer())
            .contains(&child)),
        "keepalived's VRRP child survived SIGKILL"
    );
    for pid in ns_pids(rig.peer()) {
        run(&["kill", "-KILL", &pid], CMD_TIMEOUT);
    }
    rig.kill(parent);
}

/// Whether `host` has the VIP on its NIC.
fn has_vip(host: &Host) -> bool {
    let out = run(
        &[
            "ip", "-n", &host.ns, "-4", "-o", "addr", "show", "dev", IFACE,
        ],
        CMD_TIMEOUT,
    );
    out.stdout.contains(&format!(" {VIP}/32 "))
}

/// Time until `f` holds, polling every [`POLL`]; `None` after `limit`.
fn time_until(limit: Duration, mut f: impl FnMut() -> bool) -> Option<Duration> {
    let t0 = Instant::now();
    loop {
        if f() {
            return Some(t0.elapsed());
        }
        if t0.elapsed() > limit {
            return None;
        }
        std::thread::sleep(POLL);
    }
}

/// Panics unless `f` stays false for `d`.
fn stays_false(d: Duration, what: &str, mut f: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while t0.elapsed() < d {
        assert!(!f(), "{what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The counters lvsfwd prints for VI_1 when it stops.
fn stats(stderr: &str) -> BTreeMap<String, u64> {
    stats_of(stderr, "VI_1")
}

fn stats_of(stderr: &str, name: &str) -> BTreeMap<String, u64> {
    let prefix = format!("lvsfwd: vrrp {name}: stopped: ");
    let line = stderr
        .lines()
        .find_map(|l| l.strip_prefix(prefix.as_str()))
        .unwrap_or_else(|| panic!("no VRRP statistics line in lvsfwd's stderr:\n{stderr}"));
    let words: Vec<&str> = line.split_whitespace().collect();
    words
        .chunks(2)
        .map(|kv| (kv[0].to_string(), kv[1].parse().expect("counter value")))
        .collect()
}

fn http_through_vip_works(rig: &Rig, what: &str) {
    let t = rig.http(rig.client(), e2e::tcp(Fam::V4).vaddr(), 30);
    t.assert_all_ok(what);
    t.assert_even_split(&rig.rs_names(), what);
    t.assert_client_seen(rig.client_ip(Fam::V4), what);
}

#[test]
fn lvsfwd_backup_takes_over_from_a_dead_keepalived_and_yields_to_a_better_one() {
    let rig = vrrp_rig();
    let ka = start_keepalived(&rig, "a", "MASTER", 100);
    let t = time_until(Duration::from_secs(8), || has_vip(rig.peer()));
    assert!(t.is_some(), "keepalived never became master");
    let mut lb = Lvsfwd::start(&rig, &lvsfwd_toml(&rig, "BACKUP", 50));
    stays_false(
        Duration::from_millis(2500),
        "lvsfwd took the VIP from a higher-priority keepalived",
        || has_vip(rig.director()),
    );
    assert!(has_vip(rig.peer()));

    // keepalived dies (and its host with it: the address goes too).
    kill_keepalived(&rig, "a", ka);
    let killed = Instant::now();
    rig.peer().del_addr(IFACE, &format!("{VIP}/32"));
    let took = time_until(mdi(50) + Duration::from_secs(2), || has_vip(rig.director()))
        .map(|_| killed.elapsed())
        .unwrap_or_else(|| panic!("lvsfwd never took the VIP over"));
    println!(
        "failover after keepalived was killed: {took:?} (lvsfwd priority 50: \
         Master_Down_Interval {:?})",
        mdi(50)
    );
    // The last advert came at most one interval before the kill.
    assert!(
        took <= mdi(50) + Duration::from_millis(500),
        "took {took:?}, Master_Down_Interval is {:?}",
        mdi(50)
    );
    assert!(
        took + Duration::from_millis(1050) >= mdi(50),
        "took {took:?}: faster than Master_Down_Interval minus one advert interval"
    );
    http_through_vip_works(&rig, "DR through the VIP after failover to lvsfwd");
    lb.assert_running();

    // keepalived comes back with a higher priority and preempts.
    let started = Instant::now();
    let _ka2 = start_keepalived(&rig, "b", "BACKUP", 150);
    let back = time_until(mdi(150) + Duration::from_secs(3), || {
        !has_vip(rig.director())
    })
    .map(|_| started.elapsed())
    .unwrap_or_else(|| panic!("lvsfwd kept the VIP against a higher-priority keepalived"));
    println!(
        "keepalived (priority 150) took the VIP back {back:?} after it started \
         (its Master_Down_Interval {:?})",
        mdi(150)
    );
    assert!(back <= mdi(150) + Duration::from_secs(2), "{back:?}");
    assert!(
        time_until(Duration::from_secs(2), || has_vip(rig.peer())).is_some(),
        "keepalived does not hold the VIP"
    );
    lb.assert_running();
    stays_false(
        Duration::from_millis(2500),
        "lvsfwd took the VIP again from a higher-priority keepalived",
        || has_vip(rig.director()),
    );
    // A backup does not serve the VIP even when traffic reaches it (a
    // client with a stale neighbour entry): the XDP program passes it to
    // the kernel, which has no such address.
    rig.client().ip(&[
        "neigh",
        "replace",
        VIP,
        "lladdr",
        &rig.director().mac,
        "dev",
        IFACE,
        "nud",
        "permanent",
    ]);
    let t = rig.http(rig.client(), e2e::tcp(Fam::V4).vaddr(), 2);
    assert!(
        t.ok.is_empty(),
        "lvsfwd served the VIP as backup: {:?}",
        t.per_server()
    );

    let st = lb.terminate();
    assert!(st.success(), "lvsfwd exited with {st}");
    let s = stats(&lb.stderr());
    assert_eq!(s["became_master"], 1, "{s:?}");
    assert_eq!(s["released_master"], 1, "{s:?}");
    assert!(s["rx"] >= 3, "{s:?}");
    assert_eq!(
        s["bad_checksum"] + s["bad_auth_failure"] + s["bad_ttl"],
        0,
        "{s:?}"
    );
}

#[test]
fn lvsfwd_master_hands_over_to_keepalived_with_priority_zero() {
    let rig = vrrp_rig();
    // Capture every VRRP frame the switch sees on the director's port.
    let sw = Host {
        role: Role::Client,
        ns: rig.switch_ns().to_string(),
        mac: String::new(),
    };
    let pcap = rig.dir().join("vrrp.pcap");
    let pcap_s = pcap.to_string_lossy().into_owned();
    let port = rig.switch_port(rig.director());
    let tcpdump = rig.spawn(
        &sw,
        "tcpdump",
        &["tcpdump", "-i", &port, "-U", "-w", &pcap_s, "ip proto 112"],
    );
    std::thread::sleep(Duration::from_millis(500));

    let mut lb = Lvsfwd::start(&rig, &lvsfwd_toml(&rig, "MASTER", 150));
    let t = time_until(mdi(150) + Duration::from_secs(2), || {
        has_vip(rig.director())
    });
    println!(
        "lvsfwd alone became master after {t:?} (Master_Down_Interval {:?})",
        mdi(150)
    );
    assert!(t.is_some(), "lvsfwd never became master");
    let _ka = start_keepalived(&rig, "a", "BACKUP", 100);
    stays_false(
        Duration::from_millis(2500),
        "keepalived took the VIP from a higher-priority lvsfwd",
        || has_vip(rig.peer()),
    );
    http_through_vip_works(&rig, "DR through the VIP, lvsfwd master");

    let stopped = Instant::now();
    let st = lb.terminate();
    assert!(st.success(), "lvsfwd exited with {st}");
    let over = time_until(mdi(100) + Duration::from_secs(2), || has_vip(rig.peer()))
        .map(|_| stopped.elapsed())
        .unwrap_or_else(|| panic!("keepalived never took over"));
    println!(
        "keepalived (priority 100) took over {over:?} after SIGTERM to lvsfwd \
         (Skew_Time {:?}, Master_Down_Interval {:?})",
        skew(100),
        mdi(100)
    );
    assert!(
        over >= skew(100) - Duration::from_millis(50)
            && over <= skew(100) + Duration::from_millis(600),
        "took {over:?}; priority 0 should make it about Skew_Time {:?}",
        skew(100)
    );
    assert!(!has_vip(rig.director()), "lvsfwd left the VIP behind");
    let s = stats(&lb.stderr());
    assert_eq!(s["pri0_tx"], 1, "{s:?}");

    // Wait (bounded) until the capture holds the priority-0 advert: on a
    // busy machine tcpdump can take a moment to write it out.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let o = run(
            &[
                "tshark",
                "-r",
                &pcap_s,
                "-Y",
                "vrrp && ip.src == 198.18.0.2 && vrrp.prio == 0",
                "-T",
                "fields",
                "-e",
                "vrrp.prio",
            ],
            CMD_TIMEOUT,
        );
        if o.stdout.lines().count() >= 1 || Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    rig.kill(tcpdump);
    let fields = run(
        &[
            "tshark",
            "-r",
            &pcap_s,
            "-Y",
            "vrrp && ip.src == 198.18.0.2",
            "-T",
            "fields",
            "-e",
            "ip.ttl",
            "-e",
            "vrrp.version",
            "-e",
            "vrrp.virt_rtr_id",
            "-e",
            "vrrp.prio",
            "-e",
            "vrrp.checksum.status",
            "-e",
            "vrrp.auth_string",
        ],
        CMD_TIMEOUT,
    );
    let lines: Vec<Vec<String>> = fields
        .stdout
        .lines()
        .map(|l| l.split('\t').map(str::to_string).collect())
        .collect();
    assert!(
        lines.len() >= 4,
        "too few lvsfwd adverts in the capture: {fields}"
    );
    for l in &lines {
        assert_eq!(&l[..3], ["255", "2", "51"], "ttl, version, vrid: {l:?}");
        assert_eq!(l[4], "1", "tshark's checksum status (1 = good): {l:?}");
        assert_eq!(l[5], PASS, "auth string: {l:?}");
    }
    let prios: Vec<&str> = lines.iter().map(|l| l[3].as_str()).collect();
    assert!(prios.contains(&"150"), "{prios:?}");
    assert_eq!(
        prios.last(),
        Some(&"0"),
        "the last lvsfwd advert is priority 0: {prios:?}"
    );
    let verbose = run(
        &[
            "tshark",
            "-r",
            &pcap_s,
            "-V",
            "-Y",
            "vrrp && ip.src == 198.18.0.2",
        ],
        CMD_TIMEOUT,
    );
    assert!(
        verbose
            .stdout
            .contains("Virtual Router Redundancy Protocol")
    );
    assert!(verbose.stdout.contains("Virtual Rtr ID: 51"));
    assert!(verbose.stdout.contains("[Checksum Status: Good]"));
    assert!(!verbose.stdout.contains("[Checksum Status: Bad]"));
    println!(
        "tshark decoded {} lvsfwd adverts, all valid; priorities {prios:?}",
        lines.len()
    );
}

/// Sends one advert from the client with `extra` arguments for vrrp_send.py.
fn send_advert(rig: &Rig, extra: &[&str]) {
    let src = rig.client_ip(Fam::V4).to_string();
    let s = script("vrrp_send.py");
    let mut argv = vec![
        python(),
        s.as_str(),
        "--iface",
        IFACE,
        "--src",
        &src,
        "--vip",
        VIP,
        "--prio",
        "254",
    ];
    argv.extend_from_slice(extra);
    rig.client().exec_ok(&argv);
}

#[test]
fn bad_adverts_are_ignored_and_counted() {
    let rig = vrrp_rig();
    // Notify scripts too: keepalived's arguments, run without a shell of
    // ours (this one asks for sh explicitly).
    let log = rig.dir().join("notify.log");
    let flag = rig.dir().join("master-ran");
    let mut toml = lvsfwd_toml(&rig, "MASTER", 100);
    toml += &format!(
        "notify_master = 'touch {}'
notify = '/bin/sh -c \"echo $* >> {}\" notify'\n",
        flag.display(),
        log.display()
    );
    let mut lb = Lvsfwd::start(&rig, &toml);
    assert!(
        time_until(mdi(100) + Duration::from_secs(2), || has_vip(
            rig.director()
        ))
        .is_some(),
        "lvsfwd never became master"
    );
    let bad: [(&str, &[&str]); 6] = [
        ("ttl", &["--auth-pass", PASS, "--ttl", "64"]),
        ("vrid", &["--auth-pass", PASS, "--vrid", "52"]),
        ("version", &["--version", "3"]),
        ("auth_failure", &["--auth-pass", "guess"]),
        ("auth_type", &[]),
        ("interval", &["--auth-pass", PASS, "--interval", "2"]),
    ];
    for (what, args) in bad {
        send_advert(&rig, args);
        stays_false(
            Duration::from_millis(300),
            &format!("a bad ({what}) priority-254 advert moved lvsfwd"),
            || !has_vip(rig.director()),
        );
    }
    // The positive control: the same advert, valid, makes lvsfwd backup.
    send_advert(&rig, &["--auth-pass", PASS]);
    assert!(
        time_until(Duration::from_secs(1), || !has_vip(rig.director())).is_some(),
        "a valid priority-254 advert did not make lvsfwd backup"
    );
    // Lets the BACKUP notify script finish before STOP's starts.
    std::thread::sleep(Duration::from_millis(300));
    let st = lb.terminate();
    assert!(st.success(), "lvsfwd exited with {st}");
    let s = stats(&lb.stderr());
    for (what, _) in bad {
        assert_eq!(s[&format!("bad_{what}")], 1, "bad_{what}: {s:?}");
    }
    assert_eq!(s["rx"], 1, "{s:?}");
    assert_eq!(s["released_master"], 1, "{s:?}");
    assert!(flag.exists(), "notify_master did not run");
    let lines = std::fs::read_to_string(&log).unwrap_or_default();
    let lines: Vec<&str> = lines.lines().collect();
    assert_eq!(
        lines,
        [
            "INSTANCE VI_1 BACKUP 100",
            "INSTANCE VI_1 MASTER 100",
            "INSTANCE VI_1 BACKUP 100",
            "INSTANCE VI_1 STOP 100"
        ],
        "notify calls"
    );
}

const VIP6: &str = "2001:2::250";

fn has_vip6(host: &Host) -> bool {
    let out = run(
        &[
            "ip", "-n", &host.ns, "-6", "-o", "addr", "show", "dev", IFACE,
        ],
        CMD_TIMEOUT,
    );
    out.stdout.contains(&format!(" {VIP6}/128 "))
}

#[test]
fn ipv6_vrrpv3_with_keepalived() {
    let rig = vrrp_rig();
    let ka = start_keepalived_with(
        &rig,
        "v6",
        &format!(
            "global_defs {{\n  router_id peer6\n}}\n\
             vrrp_instance VI_6 {{\n  state MASTER\n  interface {IFACE}\n  version 3\n  \
             virtual_router_id 61\n  priority 150\n  advert_int 1\n  \
             virtual_ipaddress {{\n    {VIP6}/128\n  }}\n}}\n"
        ),
    );
    assert!(
        time_until(Duration::from_secs(8), || has_vip6(rig.peer())).is_some(),
        "keepalived never became IPv6 master"
    );
    let mut toml = rig.lb_toml(&[e2e::tcp(Fam::V6)]);
    toml += &format!(
        "\n[[vrrp_instance]]\nname = \"VI_6\"\ninterface = \"{IFACE}\"\nversion = 3\n\
         virtual_router_id = 61\npriority = 100\nadvert_int = 1\n\
         virtual_ipaddress = [\"{VIP6}/128\"]\n"
    );
    let mut lb = Lvsfwd::start(&rig, &toml);
    // Well past Master_Down_Interval (3.61 s): lvsfwd hears keepalived.
    stays_false(
        mdi(100) + Duration::from_millis(1500),
        "lvsfwd took the IPv6 VIP from a higher-priority keepalived",
        || has_vip6(rig.director()),
    );
    // keepalived stops cleanly: priority 0, then lvsfwd after Skew_Time.
    let stopped = Instant::now();
    run(&["kill", "-TERM", &ka.to_string()], CMD_TIMEOUT);
    let over = time_until(mdi(100) + Duration::from_secs(2), || {
        has_vip6(rig.director())
    })
    .map(|_| stopped.elapsed())
    .unwrap_or_else(|| panic!("lvsfwd never took the IPv6 VIP over"));
    println!(
        "IPv6/v3: lvsfwd (priority 100) took over {over:?} after SIGTERM to keepalived \
         (Skew_Time {:?}, Master_Down_Interval {:?})",
        skew(100),
        mdi(100)
    );
    assert!(
        over <= skew(100) + Duration::from_millis(700),
        "took {over:?}; priority 0 should make it about Skew_Time {:?}",
        skew(100)
    );
    let t = rig.http(rig.client(), e2e::tcp(Fam::V6).vaddr(), 30);
    t.assert_all_ok("DR through the IPv6 VIP after takeover");
    t.assert_even_split(&rig.rs_names(), "IPv6 VIP");
    let st = lb.terminate();
    assert!(st.success(), "lvsfwd exited with {st}");
    assert!(!has_vip6(rig.director()), "lvsfwd left the IPv6 VIP behind");
    let s = stats_of(&lb.stderr(), "VI_6");
    assert!(s["rx"] >= 4, "{s:?}");
    assert_eq!(s["pri0_rx"], 1, "{s:?}");
    assert_eq!(s["became_master"], 1, "{s:?}");
    assert_eq!(
        s["bad_ttl"] + s["bad_checksum"] + s["bad_length"],
        0,
        "{s:?}"
    );
}

#[test]
fn interface_down_is_fault_keepalived_takes_over_and_lvsfwd_comes_back() {
    let rig = vrrp_rig();
    // The generic notify records every state change with its arguments.
    let log = rig.dir().join("notify.log");
    let sh = rig.dir().join("notify.sh");
    std::fs::write(
        &sh,
        format!("#!/bin/sh\necho \"$@\" >> {}\n", log.display()),
    )
    .expect("write notify.sh");
    run(&["chmod", "755", &sh.to_string_lossy()], CMD_TIMEOUT);
    let toml = lvsfwd_toml(&rig, "MASTER", 150) + &format!("notify = \"{}\"\n", sh.display());
    let mut lb = Lvsfwd::start(&rig, &toml);
    assert!(
        time_until(mdi(150) + Duration::from_secs(2), || has_vip(
            rig.director()
        ))
        .is_some(),
        "lvsfwd never became master"
    );
    let _ka = start_keepalived(&rig, "a", "BACKUP", 100);
    stays_false(
        Duration::from_millis(2500),
        "keepalived took the VIP from a higher-priority lvsfwd",
        || has_vip(rig.peer()),
    );

    // The director's interface goes down: FAULT. lvsfwd gives the VIP up
    // and says so; keepalived, hearing nothing, takes over.
    let down = Instant::now();
    rig.director().ip(&["link", "set", IFACE, "down"]);
    assert!(
        time_until(Duration::from_secs(2), || !has_vip(rig.director())).is_some(),
        "lvsfwd kept the VIP on a dead interface"
    );
    let over = time_until(mdi(100) + Duration::from_secs(2), || has_vip(rig.peer()))
        .map(|_| down.elapsed())
        .unwrap_or_else(|| panic!("keepalived never took over"));
    println!("interface down: keepalived master {over:?} later");
    let notes = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        notes.lines().any(|l| l == "INSTANCE VI_1 FAULT 150"),
        "no FAULT notification: {notes:?}"
    );
    assert!(
        lb.stderr().contains("entering FAULT state"),
        "{}",
        lb.stderr()
    );

    // Up again: lvsfwd starts over as Backup, then preempts the
    // lower-priority keepalived; traffic flows through it again.
    let up = Instant::now();
    rig.director().ip(&["link", "set", IFACE, "up"]);
    let back = time_until(mdi(150) + Duration::from_secs(3), || {
        has_vip(rig.director()) && !has_vip(rig.peer())
    })
    .map(|_| up.elapsed())
    .unwrap_or_else(|| panic!("lvsfwd never took the VIP back:\n{}", lb.stderr()));
    println!("interface up: lvsfwd master again {back:?} later");
    let notes = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        notes
            .lines()
            .skip_while(|l| !l.contains("FAULT"))
            .any(|l| l == "INSTANCE VI_1 BACKUP 150"),
        "no BACKUP after the FAULT: {notes:?}"
    );
    std::thread::sleep(Duration::from_millis(500));
    http_through_vip_works(&rig, "DR through the VIP after the interface came back");
    lb.assert_running();
    assert!(lb.terminate().success());
}

/// Every VRRP frame tshark finds in `pcap`: (source, destination, priority).
fn adverts_in(pcap: &str) -> Vec<(String, String, String)> {
    let o = run(
        &[
            "tshark",
            "-r",
            pcap,
            "-Y",
            "vrrp",
            "-T",
            "fields",
            "-e",
            "ip.src",
            "-e",
            "ip.dst",
            "-e",
            "vrrp.prio",
        ],
        CMD_TIMEOUT,
    );
    o.stdout
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            (f.len() == 3).then(|| (f[0].to_string(), f[1].to_string(), f[2].to_string()))
        })
        .collect()
}

#[test]
fn keepalived_and_lvsfwd_on_a_custom_multicast_group() {
    const GROUP: &str = "224.0.0.19";
    let rig = vrrp_rig();
    let sw = Host {
        role: Role::Client,
        ns: rig.switch_ns().to_string(),
        mac: String::new(),
    };
    let pcap = rig.dir().join("vrrp-mcast.pcap");
    let pcap_s = pcap.to_string_lossy().into_owned();
    let port = rig.switch_port(rig.director());
    let tcpdump = rig.spawn(
        &sw,
        "tcpdump",
        &["tcpdump", "-i", &port, "-U", "-w", &pcap_s, "ip proto 112"],
    );
    std::thread::sleep(Duration::from_millis(500));
    let ka_conf = |state: &str, prio: u8| {
        keepalived_conf(state, prio).replacen(
            "router_id peer\n",
            &format!("router_id peer\n  vrrp_mcast_group4 {GROUP}\n"),
            1,
        )
    };
    let ka = start_keepalived_with(&rig, "a", &ka_conf("MASTER", 150));
    assert!(
        time_until(Duration::from_secs(8), || has_vip(rig.peer())).is_some(),
        "keepalived never became master"
    );
    let toml = lvsfwd_toml(&rig, "BACKUP", 100).replacen(
        "[global]\n",
        &format!("[global]\nvrrp_mcast_group4 = \"{GROUP}\"\n"),
        1,
    );
    let mut lb = Lvsfwd::start(&rig, &toml);
    // Well past Master_Down_Interval: lvsfwd hears keepalived on the group.
    stays_false(
        mdi(100) + Duration::from_millis(1500),
        "lvsfwd took the VIP from a higher-priority keepalived: it does not hear the group",
        || has_vip(rig.director()),
    );
    assert!(has_vip(rig.peer()));

    // The master dies: lvsfwd takes the VIP over.
    kill_keepalived(&rig, "a", ka);
    let killed = Instant::now();
    rig.peer().del_addr(IFACE, &format!("{VIP}/32"));
    let took = time_until(mdi(100) + Duration::from_secs(2), || {
        has_vip(rig.director())
    })
    .map(|_| killed.elapsed())
    .unwrap_or_else(|| panic!("lvsfwd never took the VIP over"));
    println!(
        "group {GROUP}: failover after keepalived was killed: {took:?} \
         (Master_Down_Interval {:?})",
        mdi(100)
    );
    assert!(took <= mdi(100) + Duration::from_millis(500), "{took:?}");
    http_through_vip_works(&rig, "DR through the VIP, lvsfwd master on a custom group");

    // A lower-priority keepalived stays backup: it hears lvsfwd's adverts,
    // which go to the group it joined (and is bound to).
    let _ka2 = start_keepalived_with(&rig, "b", &ka_conf("BACKUP", 50));
    stays_false(
        mdi(50) + Duration::from_millis(1500),
        "keepalived (priority 50) took the VIP: it does not hear lvsfwd on the group",
        || has_vip(rig.peer()),
    );
    assert!(has_vip(rig.director()));

    // SIGHUP onto another group: the instance restarts there (priority 0
    // to the old group first, so keepalived takes over), hears keepalived
    // no more and becomes master too, as routers on different groups do.
    const OTHER: &str = "224.0.0.20";
    std::fs::write(&lb.config, toml.replace(GROUP, OTHER)).expect("rewrite lb.toml");
    let hup = Instant::now();
    run(&["kill", "-HUP", &lb.pid().to_string()], CMD_TIMEOUT).expect_ok();
    let ka_took = time_until(mdi(50) + Duration::from_secs(2), || has_vip(rig.peer()))
        .map(|_| hup.elapsed())
        .unwrap_or_else(|| panic!("keepalived did not take over when lvsfwd left {GROUP}"));
    let lb_took = time_until(mdi(100) + Duration::from_secs(3), || {
        has_vip(rig.director())
    })
    .map(|_| hup.elapsed())
    .unwrap_or_else(|| panic!("lvsfwd on {OTHER} never became master"));
    println!(
        "SIGHUP to {OTHER}: keepalived master after {ka_took:?}, lvsfwd (alone on {OTHER}) \
         after {lb_took:?}"
    );
    assert!(
        lb_took >= mdi(100) - Duration::from_millis(200),
        "{lb_took:?}"
    );
    // And back: lvsfwd (100) hears keepalived (50) on the group again and
    // preempts it; keepalived hears lvsfwd and steps down.
    std::fs::write(&lb.config, &toml).expect("rewrite lb.toml");
    run(&["kill", "-HUP", &lb.pid().to_string()], CMD_TIMEOUT).expect_ok();
    assert!(
        time_until(mdi(100) + Duration::from_secs(3), || !has_vip(rig.peer())).is_some(),
        "keepalived kept the VIP after lvsfwd came back to {GROUP}"
    );
    assert!(
        time_until(Duration::from_secs(2), || has_vip(rig.director())).is_some(),
        "lvsfwd is not master after it came back to {GROUP}"
    );
    lb.assert_running();

    // lvsfwd stops: priority 0 to the group, keepalived takes over.
    let stopped = Instant::now();
    let st = lb.terminate();
    assert!(st.success(), "lvsfwd exited with {st}");
    let over = time_until(mdi(50) + Duration::from_secs(2), || has_vip(rig.peer()))
        .map(|_| stopped.elapsed())
        .unwrap_or_else(|| panic!("keepalived never took over"));
    println!(
        "group {GROUP}: keepalived took over {over:?} after SIGTERM to lvsfwd \
         (Skew_Time {:?})",
        skew(50)
    );
    assert!(over <= skew(50) + Duration::from_millis(700), "{over:?}");
    // Three runs of VI_1 (two reloads), each stopped with priority 0.
    let err = lb.stderr();
    let runs: Vec<&str> = err
        .lines()
        .filter(|l| l.starts_with("lvsfwd: vrrp VI_1: stopped: "))
        .collect();
    assert_eq!(runs.len(), 3, "{err}");
    for l in &runs {
        let s = stats(l);
        assert_eq!((s["became_master"], s["pri0_tx"]), (1, 1), "{l}");
    }
    assert!(stats(runs[0])["rx"] >= 3, "{}", runs[0]);

    // What the switch saw: keepalived's adverts all to the group, lvsfwd's
    // to the group but while it was on the other one.
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut seen = adverts_in(&pcap_s);
    let pri0 = |seen: &[(String, String, String)]| {
        seen.iter()
            .filter(|(src, _, p)| src == "198.18.0.2" && p == "0")
            .count()
    };
    // One per stop: two reloads and the shutdown.
    while pri0(&seen) < 3 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
        seen = adverts_in(&pcap_s);
    }
    rig.kill(tcpdump);
    let from = |a: &str| seen.iter().filter(|(s, _, _)| s == a).count();
    assert!(from("198.18.0.2") >= 4, "too few lvsfwd adverts: {seen:?}");
    assert!(
        from("198.18.0.3") >= 4,
        "too few keepalived adverts: {seen:?}"
    );
    let lvsfwd_to = |g: &str| {
        seen.iter()
            .filter(|(s, d, _)| s == "198.18.0.2" && d == g)
            .count()
    };
    assert!(
        seen.iter()
            .all(|(s, d, _)| d == GROUP || (s == "198.18.0.2" && d == OTHER)),
        "an advert to neither {GROUP} nor (lvsfwd's, after the reload) {OTHER}: {seen:?}"
    );
    assert!(
        lvsfwd_to(OTHER) >= 2,
        "lvsfwd's adverts on {OTHER}: {seen:?}"
    );
    assert_eq!(pri0(&seen), 3, "lvsfwd's priority-0 adverts: {seen:?}");
    println!(
        "tshark: lvsfwd {} adverts to {GROUP}, {} to {OTHER}; keepalived {}, all to {GROUP}",
        lvsfwd_to(GROUP),
        lvsfwd_to(OTHER),
        from("198.18.0.3")
    );
}
