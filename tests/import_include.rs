//! `lvsfwd import-keepalived FILE` follows `include` as keepalived does:
//! globs, paths relative to the including file's directory whatever the
//! working directory, nesting, includes inside a block; a missing include
//! and the keywords of included files are named as FILE:LINE on stderr;
//! `lvsfwd check` accepts the output.

mod common;
use common::*;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

fn put(dir: &Path, name: &str, text: &str) {
    let p = dir.join(name);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

/// Runs `lvsfwd import-keepalived file` in `cwd`: (stdout, stderr).
fn import(cwd: &Path, file: &Path) -> (String, String) {
    let o = Command::new(lvsfwd())
        .arg("import-keepalived")
        .arg(file)
        .current_dir(cwd)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(o.status.code(), Some(0), "{err}");
    (String::from_utf8(o.stdout).unwrap(), err)
}

#[test]
fn includes_are_followed_and_check_accepts_the_result() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().join("keepalived");
    put(
        &d,
        "keepalived.conf",
        "global_defs {\n  router_id LVS_A\n  include defs.d/*.conf\n}\n\
         include conf.d/*.conf\n\
         include missing.d/*.conf\n",
    );
    // Inside global_defs: keepalived splices lines, not statements.
    put(
        &d,
        "defs.d/timeouts.conf",
        "lvs_timeouts tcp 900 tcpfin 60 udp 120\n",
    );
    put(
        &d,
        "conf.d/10-vrrp.conf",
        "vrrp_instance VI_1 {\n  state BACKUP\n  interface eth0\n  virtual_router_id 51\n  \
         priority 50\n  advert_int 1\n  virtual_ipaddress {\n    198.18.0.250\n  }\n}\n",
    );
    // Nested, relative to conf.d (the including file's directory), not to
    // keepalived.conf's.
    put(&d, "conf.d/20-services.conf", "include vs/web.conf\n");
    put(
        &d,
        "conf.d/vs/web.conf",
        "virtual_server 198.18.0.250 80 {\n  lb_algo wrr\n  lb_kind DR\n  protocol TCP\n  \
         nat_mask 255.255.255.0\n  real_server 198.18.0.11 80 {\n    weight 2\n    \
         TCP_CHECK {\n      connect_timeout 3\n    }\n  }\n}\n",
    );

    // From another directory, with the absolute path.
    let (toml, err) = import(Path::new("/"), &d.join("keepalived.conf"));
    let top = d.join("keepalived.conf");
    let web = d.join("conf.d/vs/web.conf");
    // In the order of the spliced configuration: web.conf comes in
    // through conf.d's glob, before the missing include of line 6.
    let expected = [
        format!(
            "{}:5: nat_mask: not supported by lvsfwd, dropped",
            web.display()
        ),
        format!(
            "{}:6: include: no file matches `missing.d/*.conf`; skipped, as keepalived does",
            top.display()
        ),
    ];
    assert_eq!(err.lines().collect::<Vec<_>>(), expected, "{err}");

    // From the file's directory with its bare name: the same lb.toml.
    let (toml2, _) = import(&d, Path::new("keepalived.conf"));
    assert_eq!(toml, toml2);

    let cfg = lvsfwd::config::parse_str(&toml, "lb.toml").unwrap_or_else(|e| panic!("{e}\n{toml}"));
    assert_eq!(cfg.global.router_id.as_deref(), Some("LVS_A"));
    assert_eq!(cfg.vrrp_instances.len(), 1);
    assert_eq!(cfg.timeouts.tcp, Duration::from_secs(900));
    assert_eq!(cfg.timeouts.tcp_fin, Duration::from_secs(60));
    assert_eq!(cfg.timeouts.udp, Duration::from_secs(120));
    assert_eq!(cfg.virtual_servers.len(), 1);
    let vs = &cfg.virtual_servers[0];
    let sa = |s: &str| s.parse::<SocketAddr>().unwrap();
    assert_eq!(vs.address, sa("198.18.0.250:80"));
    assert_eq!(vs.real_servers.len(), 1);
    assert_eq!(vs.real_servers[0].address, sa("198.18.0.11:80"));
    assert_eq!(vs.real_servers[0].weight, 2);

    let out = tmp.path().join("lb.toml");
    std::fs::write(&out, &toml).unwrap();
    let o = Command::new(lvsfwd())
        .arg("check")
        .arg("--config")
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "{}\n{toml}",
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn an_unreadable_file_is_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    let o = Command::new(lvsfwd())
        .arg("import-keepalived")
        .arg(tmp.path().join("none.conf"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(o.stdout.is_empty());
    assert!(String::from_utf8_lossy(&o.stderr).contains("none.conf"));
}
