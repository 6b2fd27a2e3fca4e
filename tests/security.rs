//! Security properties of the running daemon, on a DR rig:
//!
//! - the admin socket is a socket file of mode 0600 owned by root, in a
//!   directory lvsfwd creates 0700; an unprivileged user is refused by the
//!   kernel (connect: permission denied) even when the directory is
//!   reachable;
//! - lvsfwd opens no TCP, UDP or raw IP socket at all in its namespace
//!   (nothing listens on a network port unless configured: the data plane
//!   is AF_XDP, the control plane netlink and a Unix socket);
//! - MISC_CHECK, notify_down and VRRP notify_master scripts run as the
//!   configured `script_user` (uid and gid of `nobody`), with their
//!   arguments passed as an argument vector: shell syntax in lb.toml
//!   reaches the script as plain text and runs nothing.
//!
//! Needs root (network namespaces, XDP).
#![forbid(unsafe_code)]

mod rig;
mod robust;

use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::time::Duration;

use rig::daemon::Lvsfwd;
use rig::{CMD_TIMEOUT, Fam, Rig, e2e, run};

#[test]
fn admin_socket_is_root_only() {
    let rig = Rig::dr();
    // A world-traversable parent, so that only the socket's own mode and
    // the directory lvsfwd creates stand between a user and the daemon.
    let open = tempfile::Builder::new()
        .prefix("lfsec-")
        .tempdir()
        .expect("temp dir");
    std::fs::set_permissions(open.path(), std::fs::Permissions::from_mode(0o755))
        .expect("chmod 0755");
    let dir = open.path().join("run");
    let sock = dir.join("admin.sock");
    let sock_s = sock.to_string_lossy().into_owned();
    let config = rig.lb_toml(&[e2e::tcp(Fam::V4)]).replace(
        &rig.dir().join("admin.sock").to_string_lossy().into_owned(),
        &sock_s,
    );
    assert!(config.contains(&sock_s), "admin_socket not redirected");
    let mut lb = Lvsfwd::start(&rig, &config);

    let meta = std::fs::metadata(&sock).expect("admin socket exists");
    assert!(meta.file_type().is_socket(), "not a socket file");
    assert_eq!(meta.mode() & 0o7777, 0o600, "socket mode {:o}", meta.mode());
    assert_eq!((meta.uid(), meta.gid()), (0, 0), "socket owner");
    let dmeta = std::fs::metadata(&dir).expect("socket directory");
    assert_eq!(
        dmeta.mode() & 0o7777,
        0o700,
        "directory lvsfwd created for the socket has mode {:o}",
        dmeta.mode()
    );
    assert_eq!(dmeta.uid(), 0);

    // Root is served.
    let root = robust::lvsadm(&sock_s, &["-L", "-n"]);
    assert!(root.ok(), "root refused: {root}");
    // An unprivileged user is not, even with the directory opened up to
    // it: the socket's own mode refuses the connect.
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let lvsadm = env!("CARGO_BIN_EXE_lvsadm");
    // The binary must be reachable by the user too: copy it somewhere
    // world-readable (the target directory may not be).
    let bin = open.path().join("lvsadm");
    std::fs::copy(lvsadm, &bin).expect("copy lvsadm");
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let bin_s = bin.to_string_lossy().into_owned();
    let user = run(
        &[
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            &bin_s,
            "-L",
            "-n",
            "--socket",
            &sock_s,
        ],
        CMD_TIMEOUT,
    );
    assert!(!user.ok(), "an unprivileged user was served: {user}");
    assert!(
        user.stderr.to_lowercase().contains("permission denied"),
        "refused for another reason than permissions: {user}"
    );
    e2e::clean_stop(&rig, &mut lb);
    assert!(!sock.exists(), "socket file left after a clean stop");
}

#[test]
fn lvsfwd_opens_no_network_socket() {
    let rig = Rig::dr();
    let config = rig.lb_toml(&[e2e::tcp(Fam::V4), e2e::udp(Fam::V4)]);
    let mut lb = Lvsfwd::start(&rig, &config);
    // Some traffic first, so that anything opened lazily is open.
    rig.http(
        rig.client(),
        std::net::SocketAddr::new(rig.vip(Fam::V4), rig::HTTP_PORT),
        3,
    )
    .assert_all_ok("warm-up");
    std::thread::sleep(Duration::from_millis(300));
    let pid = lb.pid();
    // Every TCP, UDP and raw socket in the namespace, any state, with
    // owning processes.
    let all = rig
        .director()
        .exec_ok(&["ss", "-H", "-a", "-n", "-p", "-t", "-u", "-w"]);
    let mine = format!("pid={pid},");
    let owned: Vec<&str> = all.lines().filter(|l| l.contains(&mine)).collect();
    assert!(
        owned.is_empty(),
        "lvsfwd (pid {pid}) has network sockets:\n{}",
        owned.join("\n")
    );
    // The check sees sockets at all: the director's banner service is
    // listed (and is not lvsfwd's).
    assert!(
        all.lines()
            .any(|l| l.contains(&format!(":{}", rig::BANNER_PORT))),
        "ss shows nothing; the check would be vacuous:\n{all}"
    );
    let listening = rig
        .director()
        .exec_ok(&["ss", "-H", "-l", "-n", "-p", "-t", "-u", "-w"]);
    assert!(!listening.contains(&mine), "lvsfwd listens:\n{listening}");
    e2e::clean_stop(&rig, &mut lb);
}

#[test]
fn scripts_run_as_the_script_user_and_never_through_a_shell() {
    let rig = Rig::dr();
    // Scripts must be reachable by `nobody`: a world-traversable directory,
    // a world-writable one for what they record.
    let open = tempfile::Builder::new()
        .prefix("lfsec-")
        .tempdir()
        .expect("temp dir");
    let dir = open.path();
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let out = dir.join("out");
    std::fs::create_dir(&out).expect("mkdir");
    std::fs::set_permissions(&out, std::fs::Permissions::from_mode(0o777)).expect("chmod");
    let state = dir.join("state");
    std::fs::write(&state, "0\n").expect("state");
    let record = |name: &str, body: &str| {
        let p = dir.join(name);
        std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).expect("script");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        p.display().to_string()
    };
    let log = out.join("log");
    let check = record(
        "check.sh",
        &format!(
            "printf 'check %s:%s [%s] [%s]\\n' \"$(id -u)\" \"$(id -g)\" \"$1\" \"$2\" >> '{}'\n\
             read code < '{}'\nexit \"$code\"",
            log.display(),
            state.display()
        ),
    );
    let notify = record(
        "notify.sh",
        &format!(
            "printf 'notify %s:%s [%s]\\n' \"$(id -u)\" \"$(id -g)\" \"$1\" >> '{}'",
            log.display()
        ),
    );
    let pwned = out.join("pwned");
    let pwned_s = pwned.display().to_string();
    // Shell syntax in the command lines: must arrive as text.
    let misc_path = format!("{check} 'a;b' '$(touch {pwned_s})'");
    let notify_down = format!("{notify} \\\"down;touch {pwned_s}\\\"");
    let rip1 = std::net::SocketAddr::new(rig.rip(1, Fam::V4), rig::HTTP_PORT).to_string();
    let config = rig
        .lb_toml(&[e2e::tcp(Fam::V4)])
        .replacen(
            "[global]\n",
            "[global]\nscript_user = \"nobody\"\nscript_group = \"nogroup\"\n",
            1,
        )
        .replacen(
            "lb_kind = \"DR\"\n",
            "lb_kind = \"DR\"\ndelay_loop = 1\n",
            1,
        )
        .replacen(
            &format!("address = \"{rip1}\"\n  weight = 1\n"),
            &format!(
                "address = \"{rip1}\"\n  weight = 1\n  notify_down = \"{notify_down}\"\n  \
                 [virtual_server.real_server.misc_check]\n  misc_path = \"{misc_path}\"\n  \
                 misc_timeout = 2\n"
            ),
            1,
        );
    assert!(
        config.contains("misc_check"),
        "rs1 block not found:\n{config}"
    );
    // A VRRP instance alone on its segment: master after its down timer,
    // then notify_master runs.
    let config = format!(
        "{config}\n[[vrrp_instance]]\nname = \"VI_SEC\"\nstate = \"BACKUP\"\n\
         interface = \"{}\"\nvirtual_router_id = 77\npriority = 100\nadvert_int = 1\n\
         virtual_ipaddress = [\"198.18.0.240/32\"]\n\
         notify_master = \"{notify} 'vrrp;master' '`touch {pwned_s}`'\"\n",
        rig::IFACE
    );
    let mut lb = Lvsfwd::start(&rig, &config);
    let text = || std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        rig::wait_until(Duration::from_secs(10), || text().contains("check ")),
        "the MISC_CHECK script never ran; daemon log:\n{}",
        lb.stderr()
    );
    std::fs::write(&state, "1\n").expect("state");
    assert!(
        rig::wait_until(Duration::from_secs(10), || text().contains("notify ")),
        "notify_down never ran; log:\n{}\ndaemon:\n{}",
        text(),
        lb.stderr()
    );
    let t = text();
    eprintln!("scripts recorded:\n{t}");
    for line in t.lines() {
        assert!(
            line.split_whitespace().nth(1) == Some("65534:65534"),
            "a script ran as someone else than nobody:nogroup: {line}"
        );
    }
    let first_check = t.lines().find(|l| l.starts_with("check ")).unwrap();
    assert_eq!(
        first_check,
        format!("check 65534:65534 [a;b] [$(touch {pwned_s})]"),
        "MISC_CHECK arguments"
    );
    let down = t.lines().find(|l| l.contains("[down")).unwrap();
    assert_eq!(
        down,
        format!("notify 65534:65534 [down;touch {pwned_s}]"),
        "notify_down arguments"
    );
    assert!(
        rig::wait_until(Duration::from_secs(15), || text().contains("[vrrp;master]")),
        "VRRP notify_master never ran; log:\n{}\ndaemon:\n{}",
        text(),
        lb.stderr()
    );
    let t = text();
    let master = t.lines().find(|l| l.contains("[vrrp;master]")).unwrap();
    assert_eq!(
        master, "notify 65534:65534 [vrrp;master]",
        "notify_master arguments (the script prints its first argument)"
    );
    assert!(
        !pwned.exists(),
        "shell syntax in a script line was executed"
    );
    e2e::clean_stop(&rig, &mut lb);
}
