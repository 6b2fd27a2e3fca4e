//! SIGUSR1 / SIGUSR2: keepalived's data and stats dumps, as JSON.
//!
//! keepalived writes `/tmp/keepalived.data` (SIGUSR1: the configuration as
//! it runs, with each VRRP instance's state and each virtual and real
//! server with its checkers) and `/tmp/keepalived.stats` (SIGUSR2: VRRP
//! counters). lvsfwd writes the same two pictures as JSON, `lvsfwd.data.json`
//! and `lvsfwd.stats.json` (the stats add the traffic and data-plane
//! counters keepalived leaves to ipvsadm), into its runtime directory:
//! systemd's `$RUNTIME_DIRECTORY` when set, else the admin socket's
//! directory. Not /tmp: a root daemon writing fixed names in a
//! world-writable directory follows whatever symlink another user put
//! there. Each file is written to a new temporary name and renamed into
//! place, so a reader never sees half a dump.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde_json::{Value, json};

use super::Status;

/// The data dump's file name.
pub const DATA_FILE: &str = "lvsfwd.data.json";
/// The stats dump's file name.
pub const STATS_FILE: &str = "lvsfwd.stats.json";

/// Where dumps go: `$RUNTIME_DIRECTORY` (its first entry) or `fallback`.
pub fn dump_dir(runtime_directory: Option<&str>, fallback: &Path) -> PathBuf {
    match runtime_directory.and_then(|s| s.split(':').next()) {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ => fallback.to_path_buf(),
    }
}

/// SIGUSR1's picture: instances, virtual and real servers as they run.
pub fn data(s: &Status) -> Value {
    json!({
        "vrrp_instances": s.vrrp_instances.iter().map(|v| json!({
            "name": v.name,
            "interface": v.interface,
            "virtual_router_id": v.virtual_router_id,
            "state": v.state,
            "priority": v.priority,
            "master": v.master,
            "virtual_ipaddress": v.virtual_ipaddress,
        })).collect::<Vec<_>>(),
        "virtual_servers": s.services.iter().map(|svc| json!({
            "protocol": svc.protocol,
            "address": svc.address,
            "port": svc.port,
            "scheduler": svc.scheduler,
            "persistence_secs": svc.persistence_secs,
            "sorry_server": svc.sorry_server,
            "sorry_server_active": svc.sorry_server_active,
            "real_servers": svc.real_servers.iter().map(|rs| json!({
                "address": rs.address,
                "port": rs.port,
                "forward": rs.forward,
                "weight": rs.weight,
                "running_weight": rs.running_weight,
                "alive": rs.alive,
                "checkers": rs.checkers,
            })).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "xdp": s.xdp,
        "workers": s.workers.iter().map(|w| json!({
            "worker": w.worker,
            "queue": w.queue,
            "core": w.core,
            "zero_copy": w.zero_copy,
        })).collect::<Vec<_>>(),
    })
}

/// SIGUSR2's picture: every counter.
pub fn stats(s: &Status) -> Value {
    let reasons = |v: &[(&str, u64)]| -> Value {
        Value::Object(v.iter().map(|(k, n)| (k.to_string(), json!(n))).collect())
    };
    json!({
        "uptime_seconds": s.uptime_seconds,
        "vrrp_instances": s.vrrp_instances.iter().map(|v| json!({
            "name": v.name,
            "state": v.state,
            "adverts_rx": v.adverts_rx,
            "adverts_tx": v.adverts_tx,
            "priority_zero_rx": v.priority_zero_rx,
            "priority_zero_tx": v.priority_zero_tx,
            "became_master": v.became_master,
            "released_master": v.released_master,
            "rejected": reasons(&v.rejected),
        })).collect::<Vec<_>>(),
        "virtual_servers": s.services.iter().map(|svc| json!({
            "protocol": svc.protocol,
            "address": svc.address,
            "port": svc.port,
            "traffic": svc.traffic,
            "real_servers": svc.real_servers.iter().map(|rs| json!({
                "address": rs.address,
                "port": rs.port,
                "active_conns": rs.active_conns,
                "inactive_conns": rs.inactive_conns,
                "persistent_conns": rs.persistent_conns,
                "traffic": rs.traffic,
            })).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "drops": reasons(&s.drops),
        "to_kernel": reasons(&s.to_kernel),
        "workers": s.workers,
        "conn_table": s.conn_table,
    })
}

/// Writes `value` as `dir/name` (pretty JSON), atomically; returns the path.
pub fn write(dir: &Path, name: &str, value: &Value) -> Result<PathBuf> {
    let path = dir.join(name);
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let text = serde_json::to_string_pretty(value).context("encoding the dump")?;
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&tmp)
        .with_context(|| format!("creating {}", tmp.display()))?;
    f.write_all(text.as_bytes())
        .and_then(|()| f.write_all(b"\n"))
        .with_context(|| format!("writing {}", tmp.display()))?;
    drop(f);
    std::fs::rename(&tmp, &path).with_context(|| format!("renaming to {}", path.display()))?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::ops::*;

    #[test]
    fn runtime_directory_wins_over_the_fallback() {
        let fb = Path::new("/run/lvsfwd");
        assert_eq!(dump_dir(None, fb), fb);
        assert_eq!(dump_dir(Some(""), fb), fb);
        assert_eq!(dump_dir(Some("/run/a:/run/b"), fb), Path::new("/run/a"));
    }

    #[test]
    fn dumps_name_instances_and_servers_and_land_whole() {
        let s = Status {
            vrrp_instances: vec![VrrpInstanceStatus {
                name: "VI_1".into(),
                interface: "eth0".into(),
                virtual_router_id: 51,
                state: "BACKUP",
                priority: 100,
                master: Some("198.18.0.2 priority 150".into()),
                virtual_ipaddress: vec!["198.18.0.250".parse().unwrap()],
                adverts_rx: 4,
                adverts_tx: 0,
                priority_zero_rx: 0,
                priority_zero_tx: 0,
                became_master: 0,
                released_master: 0,
                rejected: vec![("ttl", 1)],
            }],
            drops: vec![("no_dest", 3)],
            ..Status::default()
        };
        let d = data(&s);
        assert_eq!(d["vrrp_instances"][0]["name"], "VI_1");
        assert_eq!(d["vrrp_instances"][0]["state"], "BACKUP");
        let st = stats(&s);
        assert_eq!(st["vrrp_instances"][0]["rejected"]["ttl"], 1);
        assert_eq!(st["drops"]["no_dest"], 3);
        let dir = tempfile::tempdir().unwrap();
        let p = write(dir.path(), DATA_FILE, &d).unwrap();
        let back: Value = serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
        assert_eq!(back, d);
        // Only the dump is left behind.
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, [DATA_FILE]);
    }
}
