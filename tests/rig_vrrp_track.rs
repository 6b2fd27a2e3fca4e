//! VRRP tracking against the real keepalived (issue 12 part 5): a DR rig
//! with a second director (the rig's `peer`) running `keepalived --vrrp`,
//! lvsfwd on the director, VRRPv2 with PASS authentication and advert_int
//! 1 s, as in rig_vrrp.
//!
//! What is asserted:
//! - lvsfwd tracks a `vrrp_script` (weight 0, run as `nobody`): when the
//!   script fails, lvsfwd goes FAULT, advertises priority 0 and keepalived
//!   owns the VIP about one interval + Skew_Time later (the figure printed);
//!   when it passes again lvsfwd (higher priority) preempts back. With a
//!   negative weight instead, the lowered priority hands over after
//!   keepalived's Master_Down_Interval and the restored one takes it back.
//! - keepalived tracks a vrrp_script with a negative weight: when it fails,
//!   lvsfwd (backup, preempting) takes the VIP.
//! - `track_interface`: a weighted tracked interface going down lowers the
//!   priority (handover), a weight-0 one is FAULT (fast handover).
//! - `vrrp_sync_group` (a NAT director's external VIP and its internal
//!   gateway VIP on a second segment): the internal interface failing
//!   puts both instances in FAULT, keepalived (with the same sync group)
//!   takes both VIPs, and both come back together; the group's notify runs.
//! - SIGHUP: an unchanged instance keeps its state with no extra advert,
//!   announcement or transition (captured on the switch, decoded by
//!   tshark), while an edited instance is restarted with its new priority;
//!   a removed instance releases its VIP and an added one starts.
//!
//! Measured times are printed (`--nocapture` shows them).
#![forbid(unsafe_code)]

mod rig;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rig::daemon::Lvsfwd;
use rig::{CMD_TIMEOUT, Fam, Host, IFACE, Mode, Rig, Role, e2e, run};

const VIP: &str = "198.18.0.250";
const VIP2: &str = "198.18.0.251";
const GW_VIP: &str = "198.18.100.1";
const INT: &str = "lfeth1";
const PASS: &str = "lvs-vr1";
const POLL: Duration = Duration::from_millis(5);

fn mdi(prio: u8) -> Duration {
    Duration::from_secs(3) + skew(prio)
}

fn skew(prio: u8) -> Duration {
    Duration::from_nanos((256 - prio as u64) * 1_000_000_000 / 256)
}

fn vrrp_rig() -> Rig {
    let rig = Rig::builder(Mode::Dr).peer_director(true).build();
    rig.director().del_addr(IFACE, &format!("{VIP}/32"));
    rig.director()
        .del_addr(IFACE, &format!("{}/128", rig.vip(Fam::V6)));
    rig
}

/// One lb.toml `[[vrrp_instance]]` (VRRPv2, PASS, advert_int 1).
fn instance(name: &str, iface: &str, vrid: u8, prio: u8, vip: &str, extra: &str) -> String {
    format!(
        "\n[[vrrp_instance]]\nname = \"{name}\"\nstate = \"BACKUP\"\ninterface = \"{iface}\"\n\
         virtual_router_id = {vrid}\npriority = {prio}\nadvert_int = 1\nauth_type = \"PASS\"\n\
         auth_pass = \"{PASS}\"\nvirtual_ipaddress = [\"{vip}/32\"]\n{extra}"
    )
}

/// One keepalived `vrrp_instance` block.
fn ka_instance(name: &str, iface: &str, vrid: u8, prio: u8, vip: &str, extra: &str) -> String {
    format!(
        "vrrp_instance {name} {{\n  state BACKUP\n  interface {iface}\n  virtual_router_id {vrid}\n  \
         priority {prio}\n  advert_int 1\n  authentication {{\n    auth_type PASS\n    \
         auth_pass {PASS}\n  }}\n  virtual_ipaddress {{\n    {vip}/32\n  }}\n{extra}}}\n"
    )
}

/// Starts keepalived (VRRP only, foreground) in the peer's namespace with
/// `body` after its global_defs; returns its pid.
fn start_keepalived(rig: &Rig, tag: &str, body: &str) -> u32 {
    let text = format!("global_defs {{\n  router_id peer\n  script_user root\n}}\n{body}");
    rig::keepalived::start(rig, tag, &text)
}

fn has_addr(host: &Host, dev: &str, addr: &str) -> bool {
    let out = run(
        &["ip", "-n", &host.ns, "-4", "-o", "addr", "show", "dev", dev],
        CMD_TIMEOUT,
    );
    out.stdout.contains(&format!(" {addr}/32 "))
}

fn has_vip(host: &Host) -> bool {
    has_addr(host, IFACE, VIP)
}

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

fn stays_false(d: Duration, what: &str, mut f: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while t0.elapsed() < d {
        assert!(!f(), "{what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Every counter line lvsfwd printed for `name` (one per stop of the
/// instance: a reload that restarts it prints one too).
fn stats_lines(stderr: &str, name: &str) -> Vec<BTreeMap<String, u64>> {
    let prefix = format!("lvsfwd: vrrp {name}: stopped: ");
    stderr
        .lines()
        .filter_map(|l| l.strip_prefix(prefix.as_str()))
        .map(|line| {
            let words: Vec<&str> = line.split_whitespace().collect();
            words
                .chunks(2)
                .map(|kv| (kv[0].to_string(), kv[1].parse().expect("counter value")))
                .collect()
        })
        .collect()
}

/// A directory every user can read (scripts run as `nobody`), with a
/// check script that logs its uid and succeeds while `ok` exists.
struct Check {
    dir: PathBuf,
}

impl Check {
    fn new(rig: &Rig, tag: &str) -> Check {
        let dir = rig.dir().join(format!("check-{tag}"));
        std::fs::create_dir_all(&dir).expect("mkdir");
        let script = dir.join("check.sh");
        std::fs::write(
            &script,
            format!(
                "#!/bin/sh\nid -u >> {0}/who.log\ntest -e {0}/ok\n",
                dir.display()
            ),
        )
        .expect("write check.sh");
        std::fs::write(dir.join("who.log"), "").expect("who.log");
        let c = Check { dir };
        c.pass();
        for (mode, p) in [
            ("711", rig.dir().to_path_buf()),
            ("755", c.dir.clone()),
            ("755", script),
            ("666", c.dir.join("who.log")),
        ] {
            run(&["chmod", mode, &p.to_string_lossy()], CMD_TIMEOUT).expect_ok();
        }
        c
    }
    fn script(&self) -> String {
        self.dir.join("check.sh").display().to_string()
    }
    fn pass(&self) {
        std::fs::write(self.dir.join("ok"), "").expect("ok flag");
    }
    fn fail(&self) {
        std::fs::remove_file(self.dir.join("ok")).expect("rm ok flag");
    }
    fn uids(&self) -> String {
        std::fs::read_to_string(self.dir.join("who.log")).unwrap_or_default()
    }
}

fn script_toml(name: &str, check: &Check, extra: &str) -> String {
    format!(
        "\n[[vrrp_script]]\nname = \"{name}\"\nscript = \"{}\"\nuser = \"nobody\"\n{extra}",
        check.script()
    )
}

fn write_script(path: &Path, body: &str) {
    std::fs::write(path, body).expect("write script");
    run(&["chmod", "755", &path.to_string_lossy()], CMD_TIMEOUT).expect_ok();
}

fn lvsfwd_master_against_keepalived(rig: &Rig, toml: &str) -> Lvsfwd {
    let lb = Lvsfwd::start(rig, toml);
    assert!(
        time_until(mdi(150) + Duration::from_secs(3), || has_vip(
            rig.director()
        ))
        .is_some(),
        "lvsfwd never became master:\n{}",
        lb.stderr()
    );
    let _ = start_keepalived(rig, "a", &ka_instance("VI_1", IFACE, 51, 100, VIP, ""));
    stays_false(
        Duration::from_millis(2500),
        "keepalived took the VIP from a higher-priority lvsfwd",
        || has_vip(rig.peer()),
    );
    lb
}

#[test]
fn failing_track_script_hands_the_vip_over_and_it_comes_back() {
    let rig = vrrp_rig();
    let check = Check::new(&rig, "a");
    // Weight 0 (keepalived's default): a failing script is FAULT.
    let toml = rig.lb_toml(&[e2e::tcp(Fam::V4)])
        + &instance("VI_1", IFACE, 51, 150, VIP, "track_script = [\"chk\"]\n")
        + &script_toml("chk", &check, "");
    let mut lb = lvsfwd_master_against_keepalived(&rig, &toml);
    let uids = check.uids();
    assert!(
        !uids.is_empty() && uids.lines().all(|l| l == "65534"),
        "the script did not run as nobody: {uids:?}"
    );

    let failed = Instant::now();
    check.fail();
    let over = time_until(Duration::from_secs(5), || {
        has_vip(rig.peer()) && !has_vip(rig.director())
    })
    .map(|_| failed.elapsed())
    .unwrap_or_else(|| panic!("keepalived never took over:\n{}", lb.stderr()));
    println!(
        "FIGURE track_script weight 0 (interval 1 s, fall 1): script failing -> keepalived \
         owns the VIP in {} ms (Skew_Time {:?})",
        over.as_millis(),
        skew(100)
    );
    // At most one interval to notice, then priority 0 and Skew_Time.
    assert!(
        over <= Duration::from_secs(1) + skew(100) + Duration::from_millis(700),
        "took {over:?}"
    );
    assert!(lb.stderr().contains("VRRP_Script(chk) failed"));
    assert!(
        lb.stderr()
            .contains("tracked script chk failed: entering FAULT state")
    );
    stays_false(
        Duration::from_secs(2),
        "lvsfwd took the VIP back while its script fails",
        || has_vip(rig.director()),
    );

    // The script passes again: lvsfwd starts over as backup and preempts.
    let passed = Instant::now();
    check.pass();
    let back = time_until(mdi(150) + Duration::from_secs(3), || {
        has_vip(rig.director()) && !has_vip(rig.peer())
    })
    .map(|_| passed.elapsed())
    .unwrap_or_else(|| panic!("lvsfwd never took the VIP back:\n{}", lb.stderr()));
    println!("track_script passes again: lvsfwd master again {back:?} later");
    assert!(back >= mdi(150) - Duration::from_millis(100), "{back:?}");
    let t = rig.http(rig.client(), e2e::tcp(Fam::V4).vaddr(), 20);
    t.assert_all_ok("DR through the VIP after the script recovered");
    assert!(lb.terminate().success());
    let s = &stats_lines(&lb.stderr(), "VI_1")[0];
    assert_eq!(s["became_master"], 2, "{s:?}");
    assert!(s["pri0_tx"] >= 1, "{s:?}");
}

#[test]
fn failing_weighted_track_script_lowers_the_priority_below_the_peer() {
    let rig = vrrp_rig();
    let check = Check::new(&rig, "w");
    // 150 - 60 = 90 < keepalived's 100, with fall 2 / rise 2.
    let toml = rig.lb_toml(&[e2e::tcp(Fam::V4)])
        + &instance("VI_1", IFACE, 51, 150, VIP, "track_script = [\"chk\"]\n")
        + &script_toml("chk", &check, "weight = -60\nfall = 2\nrise = 2\n");
    let mut lb = lvsfwd_master_against_keepalived(&rig, &toml);
    let failed = Instant::now();
    check.fail();
    let over = time_until(Duration::from_secs(10), || {
        has_vip(rig.peer()) && !has_vip(rig.director())
    })
    .map(|_| failed.elapsed())
    .unwrap_or_else(|| panic!("keepalived never took over:\n{}", lb.stderr()));
    println!(
        "track_script weight -60 (fall 2): keepalived master {over:?} after the script \
         started failing (its Master_Down_Interval {:?})",
        mdi(100)
    );
    // fall 2 at 1 s, then keepalived's Master_Down_Interval.
    assert!(over >= Duration::from_secs(1), "{over:?}");
    assert!(
        over <= Duration::from_secs(2) + mdi(100) + Duration::from_millis(900),
        "{over:?}"
    );
    assert!(
        lb.stderr()
            .contains("effective priority 150 -> 90 (configured 150)"),
        "{}",
        lb.stderr()
    );
    let passed = Instant::now();
    check.pass();
    let back = time_until(Duration::from_secs(12), || {
        has_vip(rig.director()) && !has_vip(rig.peer())
    })
    .map(|_| passed.elapsed())
    .unwrap_or_else(|| panic!("lvsfwd never took the VIP back:\n{}", lb.stderr()));
    println!("weighted script passes again (rise 2): lvsfwd master {back:?} later");
    assert!(lb.terminate().success());
    let s = &stats_lines(&lb.stderr(), "VI_1")[0];
    assert_eq!(s["became_master"], 2, "{s:?}");
    // A priority change is not a fault: no priority 0 was sent.
    assert_eq!(s["pri0_tx"], 1, "only the one at SIGTERM: {s:?}");
}

#[test]
fn keepalived_with_a_failing_vrrp_script_hands_the_vip_to_lvsfwd() {
    let rig = vrrp_rig();
    let flag = rig.dir().join("ka-ok");
    std::fs::write(&flag, "").expect("flag");
    let chk = rig.dir().join("ka-check.sh");
    write_script(&chk, &format!("#!/bin/sh\ntest -e {}\n", flag.display()));
    let body = format!(
        "vrrp_script chk_ka {{\n  script \"{}\"\n  interval 1\n  weight -60\n}}\n{}",
        chk.display(),
        ka_instance(
            "VI_1",
            IFACE,
            51,
            150,
            VIP,
            "  track_script {\n    chk_ka\n  }\n"
        )
    );
    let _ka = start_keepalived(&rig, "s", &body);
    assert!(
        time_until(mdi(150) + Duration::from_secs(3), || has_vip(rig.peer())).is_some(),
        "keepalived never became master"
    );
    let toml = rig.lb_toml(&[e2e::tcp(Fam::V4)]) + &instance("VI_1", IFACE, 51, 100, VIP, "");
    let mut lb = Lvsfwd::start(&rig, &toml);
    stays_false(
        mdi(100) + Duration::from_secs(1),
        "lvsfwd took the VIP from a higher-priority keepalived",
        || has_vip(rig.director()),
    );
    // keepalived's script fails: it advertises 90; lvsfwd (100, preempt)
    // ignores those adverts and takes over after its down interval.
    let failed = Instant::now();
    std::fs::remove_file(&flag).expect("rm flag");
    let over = time_until(Duration::from_secs(10), || {
        has_vip(rig.director()) && !has_vip(rig.peer())
    })
    .map(|_| failed.elapsed())
    .unwrap_or_else(|| panic!("lvsfwd never took over:\n{}", lb.stderr()));
    println!(
        "keepalived's vrrp_script (weight -60) failing -> lvsfwd master in {over:?} \
         (lvsfwd's Master_Down_Interval {:?})",
        mdi(100)
    );
    assert!(over <= Duration::from_secs(1) + mdi(100) + Duration::from_millis(900));
    let t = rig.http(rig.client(), e2e::tcp(Fam::V4).vaddr(), 20);
    t.assert_all_ok("DR through the VIP, lvsfwd master after keepalived's script failed");
    assert!(lb.terminate().success());
    let s = &stats_lines(&lb.stderr(), "VI_1")[0];
    assert_eq!(s["became_master"], 1, "{s:?}");
}

/// A link in `host`'s namespace to track: a veth pair (this kernel has no
/// dummy driver), both ends up.
fn dummy(host: &Host, name: &str) {
    let other = format!("{name}p");
    host.ip(&["link", "add", name, "type", "veth", "peer", "name", &other]);
    host.ip(&["link", "set", &other, "up"]);
    host.ip(&["link", "set", name, "up"]);
}

#[test]
fn track_interface_weight_and_fault() {
    let rig = vrrp_rig();
    let (a, b) = ("lftra", "lftrb");
    dummy(rig.director(), a);
    dummy(rig.director(), b);
    let toml = rig.lb_toml(&[e2e::tcp(Fam::V4)])
        + &instance(
            "VI_1",
            IFACE,
            51,
            150,
            VIP,
            &format!("track_interface = [\"{a}\", {{ name = \"{b}\", weight = -60 }}]\n"),
        );
    let mut lb = lvsfwd_master_against_keepalived(&rig, &toml);

    // The weighted link down: 90 < 100, keepalived preempts.
    let down = Instant::now();
    rig.director().ip(&["link", "set", b, "down"]);
    let over = time_until(Duration::from_secs(8), || {
        has_vip(rig.peer()) && !has_vip(rig.director())
    })
    .map(|_| down.elapsed())
    .unwrap_or_else(|| panic!("keepalived never took over:\n{}", lb.stderr()));
    println!("track_interface weight -60 down: keepalived master {over:?} later");
    assert!(lb.stderr().contains("tracked interface lftrb down"));
    rig.director().ip(&["link", "set", b, "up"]);
    let back = time_until(mdi(150) + Duration::from_secs(3), || {
        has_vip(rig.director()) && !has_vip(rig.peer())
    })
    .unwrap_or_else(|| panic!("lvsfwd never took the VIP back:\n{}", lb.stderr()));
    println!("track_interface weight -60 up: lvsfwd master {back:?} later");

    // The weight-0 link down: FAULT, priority 0, keepalived at once.
    let down = Instant::now();
    rig.director().ip(&["link", "set", a, "down"]);
    let over = time_until(Duration::from_secs(3), || {
        has_vip(rig.peer()) && !has_vip(rig.director())
    })
    .map(|_| down.elapsed())
    .unwrap_or_else(|| panic!("keepalived never took over:\n{}", lb.stderr()));
    println!("track_interface weight 0 down (FAULT): keepalived master {over:?} later");
    assert!(over <= Duration::from_millis(200) + skew(100) + Duration::from_millis(600));
    assert!(
        lb.stderr()
            .contains("tracked interface lftra down: entering FAULT state")
    );
    rig.director().ip(&["link", "set", a, "up"]);
    assert!(
        time_until(mdi(150) + Duration::from_secs(3), || has_vip(
            rig.director()
        ))
        .is_some(),
        "lvsfwd never came back from FAULT"
    );
    assert!(lb.terminate().success());
    let s = &stats_lines(&lb.stderr(), "VI_1")[0];
    assert_eq!(s["became_master"], 3, "{s:?}");
}

/// A second L2 segment (the NAT director's internal side) in the switch
/// namespace with `INT` NICs on the director and the peer.
fn internal_segment(rig: &Rig) {
    let br = format!("lfbt{}", std::process::id() % 100_000);
    let sw = |args: &[&str]| {
        let mut full = vec!["ip", "netns", "exec", rig.switch_ns(), "ip"];
        full.extend_from_slice(args);
        run(&full, CMD_TIMEOUT).expect_ok();
    };
    sw(&[
        "link",
        "add",
        &br,
        "type",
        "bridge",
        "stp_state",
        "0",
        "forward_delay",
        "0",
    ]);
    sw(&["link", "set", &br, "up"]);
    for (h, tag, addr) in [
        (rig.director(), "d", "198.18.100.2/24"),
        (rig.peer(), "p", "198.18.100.3/24"),
    ] {
        let port = format!("lft{tag}{}", std::process::id() % 100_000);
        h.ip(&[
            "link",
            "add",
            INT,
            "type",
            "veth",
            "peer",
            "name",
            &port,
            "netns",
            rig.switch_ns(),
        ]);
        sw(&["link", "set", &port, "master", &br]);
        sw(&["link", "set", &port, "up"]);
        h.ip(&["link", "set", INT, "up"]);
        h.add_addr(INT, addr);
    }
}

#[test]
fn sync_group_members_change_state_together() {
    let rig = vrrp_rig();
    internal_segment(&rig);
    let log = rig.dir().join("group.log");
    let sh = rig.dir().join("group-notify.sh");
    write_script(
        &sh,
        &format!("#!/bin/sh\necho \"$@\" >> {}\n", log.display()),
    );
    let toml = rig.lb_toml(&[e2e::tcp(Fam::V4)])
        + &instance("VI_EXT", IFACE, 51, 150, VIP, "")
        + &instance("VI_INT", INT, 52, 150, GW_VIP, "")
        + &format!(
            "\n[[vrrp_sync_group]]\nname = \"VG_NAT\"\ngroup = [\"VI_EXT\", \"VI_INT\"]\n\
             notify = \"{}\"\n",
            sh.display()
        );
    let mut lb = Lvsfwd::start(&rig, &toml);
    let both = |h: &Host| has_vip(h) && has_addr(h, INT, GW_VIP);
    let neither = |h: &Host| !has_vip(h) && !has_addr(h, INT, GW_VIP);
    assert!(
        time_until(mdi(150) + Duration::from_secs(3), || both(rig.director())).is_some(),
        "lvsfwd never became master of both:\n{}",
        lb.stderr()
    );
    let ka = format!(
        "vrrp_sync_group VG_NAT {{\n  group {{\n    VI_EXT\n    VI_INT\n  }}\n}}\n{}{}",
        ka_instance("VI_EXT", IFACE, 51, 100, VIP, ""),
        ka_instance("VI_INT", INT, 52, 100, GW_VIP, "")
    );
    let _ka = start_keepalived(&rig, "g", &ka);
    stays_false(
        Duration::from_millis(2500),
        "keepalived took a VIP from a higher-priority lvsfwd",
        || !neither(rig.peer()),
    );

    // The internal interface fails: VI_INT is FAULT, and with it VI_EXT
    // (whose own link is fine): both VIPs leave, keepalived takes both.
    let down = Instant::now();
    rig.director().ip(&["link", "set", INT, "down"]);
    let over = time_until(Duration::from_secs(6), || {
        both(rig.peer()) && neither(rig.director())
    })
    .map(|_| down.elapsed())
    .unwrap_or_else(|| panic!("the group did not fail over together:\n{}", lb.stderr()));
    println!("sync group: internal link down -> keepalived owns both VIPs {over:?} later");
    let err = lb.stderr();
    assert!(
        err.contains("vrrp VI_INT: interface down: entering FAULT state"),
        "{err}"
    );
    assert!(
        err.contains("vrrp VI_EXT: sync group VG_NAT: VI_INT is in FAULT: entering FAULT state"),
        "{err}"
    );
    stays_false(
        Duration::from_secs(2),
        "lvsfwd took a VIP back while the group is in FAULT",
        || !neither(rig.director()),
    );

    // Back up: both members start over and preempt together.
    let up = Instant::now();
    rig.director().ip(&["link", "set", INT, "up"]);
    let back = time_until(mdi(150) + Duration::from_secs(4), || {
        both(rig.director()) && neither(rig.peer())
    })
    .map(|_| up.elapsed())
    .unwrap_or_else(|| panic!("the group did not come back together:\n{}", lb.stderr()));
    println!("sync group: internal link up -> lvsfwd owns both VIPs {back:?} later");
    let notes = std::fs::read_to_string(&log).unwrap_or_default();
    let states: Vec<&str> = notes.lines().collect();
    for want in ["GROUP VG_NAT MASTER", "GROUP VG_NAT FAULT"] {
        assert!(states.contains(&want), "no `{want}`: {notes:?}");
    }
    assert_eq!(states.last(), Some(&"GROUP VG_NAT MASTER"), "{notes:?}");
    assert!(lb.terminate().success());
    for name in ["VI_EXT", "VI_INT"] {
        let s = &stats_lines(&lb.stderr(), name)[0];
        assert_eq!(s["became_master"], 2, "{name}: {s:?}");
        assert_eq!(s["released_master"], 2, "{name}: {s:?}");
    }
    // VI_EXT's link stayed up: it said priority 0 when the group faulted
    // (and at SIGTERM).
    assert_eq!(stats_lines(&lb.stderr(), "VI_EXT")[0]["pri0_tx"], 2);
}

/// tshark's `time prio` of VRRP adverts for `vrid` from the director.
fn adverts(pcap: &str, vrid: u8) -> Vec<(f64, u8)> {
    let o = run(
        &[
            "tshark",
            "-r",
            pcap,
            "-Y",
            &format!("vrrp && ip.src == 198.18.0.2 && vrrp.virt_rtr_id == {vrid}"),
            "-T",
            "fields",
            "-e",
            "frame.time_epoch",
            "-e",
            "vrrp.prio",
        ],
        CMD_TIMEOUT,
    );
    o.stdout
        .lines()
        .filter_map(|l| {
            let mut f = l.split('\t');
            Some((f.next()?.parse().ok()?, f.next()?.parse().ok()?))
        })
        .collect()
}

/// tshark's times of gratuitous ARPs for `addr`.
fn garps(pcap: &str, addr: &str) -> Vec<f64> {
    let o = run(
        &[
            "tshark",
            "-r",
            pcap,
            "-Y",
            &format!("arp.isgratuitous == 1 && arp.src.proto_ipv4 == {addr}"),
            "-T",
            "fields",
            "-e",
            "frame.time_epoch",
        ],
        CMD_TIMEOUT,
    );
    o.stdout.lines().filter_map(|l| l.parse().ok()).collect()
}

#[test]
fn sighup_keeps_unchanged_instances_and_restarts_edited_ones() {
    let rig = vrrp_rig();
    let sw = Host {
        role: Role::Client,
        ns: rig.switch_ns().to_string(),
        mac: String::new(),
    };
    let pcap = rig.dir().join("reload.pcap");
    let pcap_s = pcap.to_string_lossy().into_owned();
    let port = rig.switch_port(rig.director());
    let tcpdump = rig.spawn(
        &sw,
        "tcpdump",
        &[
            "tcpdump",
            "-i",
            &port,
            "-U",
            "-w",
            &pcap_s,
            "ip proto 112 or arp",
        ],
    );
    std::thread::sleep(Duration::from_millis(500));
    let epoch = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock after 1970")
            .as_secs_f64()
    };
    let base = rig.lb_toml(&[e2e::tcp(Fam::V4)]);
    let toml = |prio2: u8| {
        base.clone()
            + &instance("VI_1", IFACE, 51, 150, VIP, "")
            + &instance("VI_2", IFACE, 52, prio2, VIP2, "")
    };
    let mut lb = Lvsfwd::start(&rig, &toml(150));
    assert!(
        time_until(mdi(150) + Duration::from_secs(3), || has_vip(
            rig.director()
        ) && has_addr(
            rig.director(),
            IFACE,
            VIP2
        ))
        .is_some(),
        "lvsfwd never became master of both"
    );
    // Past the second round of announcements (5 s after becoming master).
    std::thread::sleep(Duration::from_secs(6));

    // Reload: VI_1 unchanged, VI_2's priority edited.
    std::fs::write(&lb.config, toml(160)).expect("rewrite lb.toml");
    let hup = epoch();
    run(&["kill", "-HUP", &lb.pid().to_string()], CMD_TIMEOUT).expect_ok();
    // VI_1 keeps its VIP through the reload, every 5 ms.
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(6) {
        assert!(has_vip(rig.director()), "VI_1 lost its VIP on reload");
        std::thread::sleep(POLL);
    }
    assert!(
        has_addr(rig.director(), IFACE, VIP2),
        "VI_2 did not come back:\n{}",
        lb.stderr()
    );
    let end = epoch();

    // A second reload: VI_2 removed (its VIP released at once), VI_3 added.
    let vip3 = "198.18.0.252";
    std::fs::write(
        &lb.config,
        base.clone()
            + &instance("VI_1", IFACE, 51, 150, VIP, "")
            + &instance("VI_3", IFACE, 53, 150, vip3, ""),
    )
    .expect("rewrite lb.toml");
    run(&["kill", "-HUP", &lb.pid().to_string()], CMD_TIMEOUT).expect_ok();
    let gone = time_until(Duration::from_secs(2), || {
        !has_addr(rig.director(), IFACE, VIP2)
    });
    assert!(gone.is_some(), "the removed VI_2 kept its VIP");
    let added = time_until(mdi(150) + Duration::from_secs(3), || {
        has_addr(rig.director(), IFACE, vip3)
    });
    assert!(added.is_some(), "the added VI_3 never became master");
    assert!(
        has_vip(rig.director()),
        "VI_1 lost its VIP on the second reload"
    );
    assert!(lb.terminate().success());
    std::thread::sleep(Duration::from_millis(500));
    rig.kill(tcpdump);
    assert_eq!(stats_lines(&lb.stderr(), "VI_3")[0]["became_master"], 1);

    let err = lb.stderr();
    assert!(
        err.contains("vrrp VI_2: reload: stopping (changed or removed)"),
        "{err}"
    );
    assert!(!err.contains("vrrp VI_1: reload"), "{err}");
    // One transition for VI_1 in the whole run; VI_2 ran twice.
    let s1 = stats_lines(&err, "VI_1");
    assert_eq!(s1.len(), 1, "{err}");
    assert_eq!(s1[0]["became_master"], 1, "{:?}", s1[0]);
    assert_eq!(s1[0]["released_master"], 1, "only at SIGTERM: {:?}", s1[0]);
    let s2 = stats_lines(&err, "VI_2");
    assert_eq!(s2.len(), 2, "{err}");
    assert_eq!(s2[1]["became_master"], 1, "{:?}", s2[1]);
    assert_eq!(
        err.matches("vrrp VI_1: entering MASTER state").count(),
        1,
        "{err}"
    );

    // The capture (tshark's epoch times, same clock):
    // VI_1 adverts stay one a second across the reload, no burst, no
    // priority 0, no announcement; VI_2 says priority 0 at the reload,
    // then advertises 160 and announces its VIP again.
    let a1: Vec<(f64, u8)> = adverts(&pcap_s, 51)
        .into_iter()
        // Before the SIGTERM (its priority 0).
        .filter(|(t, _)| *t > hup - 2.0 && *t < end)
        .collect();
    assert!(a1.len() >= 5, "{a1:?}");
    for w in a1.windows(2) {
        let gap = w[1].0 - w[0].0;
        assert!(
            (0.7..=1.3).contains(&gap),
            "VI_1 adverts {gap:.3} s apart around the reload: {a1:?}"
        );
    }
    assert!(a1.iter().all(|(_, p)| *p == 150), "{a1:?}");
    let g1: Vec<f64> = garps(&pcap_s, VIP)
        .into_iter()
        .filter(|t| *t > hup - 0.5 && *t < end)
        .collect();
    assert!(g1.is_empty(), "VI_1 announced its VIP on reload: {g1:?}");
    let a2 = adverts(&pcap_s, 52);
    let prios: Vec<u8> = a2.iter().map(|(_, p)| *p).collect();
    let zero = prios
        .iter()
        .position(|p| *p == 0)
        .unwrap_or_else(|| panic!("no priority 0 from the restarted VI_2: {prios:?}"));
    assert!(prios[..zero].iter().all(|p| *p == 150), "{prios:?}");
    assert!(prios[zero + 1..].contains(&160), "{prios:?}");
    let g2 = garps(&pcap_s, VIP2);
    assert!(
        g2.iter().any(|t| *t > hup),
        "the restarted VI_2 did not announce: {g2:?}"
    );
    println!(
        "SIGHUP: VI_1 {} adverts around the reload, none extra, no GARP; VI_2 restarted \
         with priority 160 ({} GARPs after the reload)",
        a1.len(),
        g2.iter().filter(|t| **t > hup).count()
    );
}

/// `sleep` processes in `host`'s namespace.
fn sleeps(host: &Host) -> usize {
    run(&["ip", "netns", "pids", &host.ns], CMD_TIMEOUT)
        .stdout
        .split_whitespace()
        .filter(|p| {
            std::fs::read_to_string(format!("/proc/{p}/comm")).is_ok_and(|c| c.trim() == "sleep")
        })
        .count()
}

#[test]
fn a_script_past_its_timeout_is_killed_and_counts_as_a_failure() {
    let rig = vrrp_rig();
    let toml = rig.lb_toml(&[e2e::tcp(Fam::V4)])
        + &instance("VI_1", IFACE, 51, 150, VIP, "track_script = [\"slow\"]\n")
        + "\n[[vrrp_script]]\nname = \"slow\"\nscript = \"/bin/sleep 30\"\n\
           interval = 1\ntimeout = 0.3\nuser = \"nobody\"\n";
    let mut lb = Lvsfwd::start(&rig, &toml);
    assert!(
        time_until(Duration::from_secs(3), || lb
            .stderr()
            .contains("VRRP_Script(slow) failed (timed out)"))
        .is_some(),
        "{}",
        lb.stderr()
    );
    // Logged right after the script's verdict, by another thread.
    assert!(
        time_until(Duration::from_secs(2), || lb.stderr().contains(
            "vrrp VI_1: tracked script slow failed: entering FAULT state"
        ))
        .is_some(),
        "{}",
        lb.stderr()
    );
    // Every run is killed at its timeout: never more than one sleeping.
    let t = Instant::now();
    while t.elapsed() < mdi(150) + Duration::from_secs(1) {
        assert!(!has_vip(rig.director()), "master with a failing script");
        assert!(sleeps(rig.director()) <= 1, "timed-out runs left behind");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(lb.terminate().success());
    assert!(
        time_until(Duration::from_secs(2), || sleeps(rig.director()) == 0).is_some(),
        "a script run outlived lvsfwd"
    );
    let s = &stats_lines(&lb.stderr(), "VI_1")[0];
    assert_eq!(s["became_master"], 0, "{s:?}");
}

/// keepalived's `weight 0 reverse` and `init_fail` (vrrp_track.c,
/// vrrp_init_script): an instance tracking a passing script with weight 0
/// reverse stays in FAULT and takes its VIP once the script fails; an
/// instance tracking an `init_fail` script (rise 3) starts in FAULT although
/// the script passes, and leaves it after three successes.
#[test]
fn reverse_and_init_fail_track_scripts() {
    let rig = vrrp_rig();
    let (rev, init) = (Check::new(&rig, "rev"), Check::new(&rig, "init"));
    let toml = rig.lb_toml(&[e2e::tcp(Fam::V4)])
        + &instance(
            "VI_1",
            IFACE,
            51,
            150,
            VIP,
            "track_script = [{ name = \"chk_rev\", weight = 0, reverse = true }]\n",
        )
        + &instance(
            "VI_2",
            IFACE,
            52,
            150,
            VIP2,
            "track_script = [\"chk_init\"]\n",
        )
        + &script_toml("chk_rev", &rev, "")
        + &script_toml("chk_init", &init, "init_fail = true\nrise = 3\n");
    let started = Instant::now();
    let mut lb = Lvsfwd::start(&rig, &toml);
    let vip2 = time_until(mdi(150) + Duration::from_secs(6), || {
        has_addr(rig.director(), IFACE, VIP2)
    })
    .unwrap_or_else(|| panic!("VI_2 never became master:\n{}", lb.stderr()));
    let err = lb.stderr();
    assert!(
        err.contains("tracked script chk_init failed: entering FAULT state"),
        "init_fail starts failed:\n{err}"
    );
    // Three successes a second apart, then the master-down interval.
    assert!(
        vip2 >= mdi(150) + Duration::from_millis(1800),
        "VI_2 master {vip2:?} after start ({:?})",
        started.elapsed()
    );
    println!("init_fail rise 3: VI_2 master {vip2:?} after start");
    assert!(
        err.contains("tracked script chk_rev succeeded (reverse): entering FAULT state"),
        "{err}"
    );
    assert!(
        !has_addr(rig.director(), IFACE, VIP),
        "VI_1 master while its reverse script passes"
    );
    let failed = Instant::now();
    rev.fail();
    let over = time_until(mdi(150) + Duration::from_secs(3), || {
        has_addr(rig.director(), IFACE, VIP)
    })
    .map(|_| failed.elapsed())
    .unwrap_or_else(|| panic!("VI_1 never became master:\n{}", lb.stderr()));
    println!("weight 0 reverse: script failing -> VI_1 master {over:?} later");
    assert!(lb.terminate().success());
}
