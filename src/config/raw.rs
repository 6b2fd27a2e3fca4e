//! The lb.toml document exactly as written: serde structs that mirror the
//! file's tables and keys, with the source span of every value that a later
//! semantic check may need to point at.
//!
//! Invariants: every struct denies unknown keys, and key names are
//! keepalived.conf's keywords. Nothing here checks ranges, addresses or
//! cross-field rules: that is `validate`'s job, which turns these into the
//! typed [`super::Config`]. Numbers are read as the widest TOML type (`i64`,
//! `f64`) so that an out-of-range value gets our message and position rather
//! than serde's.

use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};
use toml::Spanned;

pub(crate) type S<T> = Spanned<T>;

#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawConfig {
    #[serde(default)]
    pub global: RawGlobal,
    #[serde(default)]
    pub timeouts: RawTimeouts,
    #[serde(default)]
    pub vrrp_instance: Vec<S<RawVrrp>>,
    #[serde(default)]
    pub virtual_server: Vec<S<RawVirtualServer>>,
}

#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawGlobal {
    pub router_id: Option<S<String>>,
    pub interface: Option<S<OneOrMany>>,
    pub queues: Option<S<Vec<S<i64>>>>,
    pub cores: Option<S<Vec<S<i64>>>>,
    pub xdp_mode: Option<S<String>>,
    pub zero_copy: Option<S<String>>,
    pub admin_socket: Option<S<String>>,
    pub conn_max: Option<S<i64>>,
    pub idle_spin_us: Option<S<i64>>,
    pub expire_nodest_conn: Option<bool>,
    pub expire_quiescent_template: Option<bool>,
    pub drop_entry: Option<bool>,
    pub script_user: Option<S<String>>,
    pub script_group: Option<S<String>>,
    pub sloppy_tcp: Option<bool>,
    pub sync_threshold: Option<S<i64>>,
    pub sync_period: Option<S<i64>>,
    pub sync_refresh_period: Option<S<i64>>,
    pub sync_retries: Option<S<i64>>,
    pub backup_only: Option<bool>,
    pub lvs_sync_daemon: Option<S<RawSyncDaemon>>,
}

/// `[global.lvs_sync_daemon]`.
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSyncDaemon {
    pub interface: S<String>,
    pub vrrp_instance: Option<S<String>>,
    pub id: Option<S<i64>>,
    pub maxlen: Option<S<i64>>,
    pub port: Option<S<i64>>,
    pub ttl: Option<S<i64>>,
    pub group: Option<S<String>>,
}

/// A string or a list of strings (`interface = "eth0"` or
/// `interface = ["eth0", "eth1"]`).
#[derive(Deserialize, Debug)]
#[serde(untagged)]
pub(crate) enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    pub fn into_vec(self) -> Vec<String> {
        match self {
            OneOrMany::One(s) => vec![s],
            OneOrMany::Many(v) => v,
        }
    }
}

#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTimeouts {
    pub tcp: Option<S<i64>>,
    pub tcp_fin: Option<S<i64>>,
    pub udp: Option<S<i64>>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawVrrp {
    pub name: S<String>,
    pub state: Option<S<String>>,
    pub interface: S<String>,
    pub virtual_router_id: S<i64>,
    pub priority: Option<S<i64>>,
    pub advert_int: Option<S<f64>>,
    pub version: Option<S<i64>>,
    pub nopreempt: Option<bool>,
    pub preempt_delay: Option<S<f64>>,
    pub auth_type: Option<S<String>>,
    pub auth_pass: Option<S<String>>,
    #[serde(default)]
    pub virtual_ipaddress: Vec<S<String>>,
    pub unicast_src_ip: Option<S<String>>,
    #[serde(default)]
    pub unicast_peer: Vec<S<String>>,
    pub notify_master: Option<S<String>>,
    pub notify_backup: Option<S<String>>,
    pub notify_fault: Option<S<String>>,
    pub notify: Option<S<String>>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawVirtualServer {
    pub address: S<String>,
    pub protocol: Option<S<String>>,
    pub lb_algo: Option<S<String>>,
    pub lb_kind: Option<S<String>>,
    pub persistence_timeout: Option<S<Persistence>>,
    pub persistence_granularity: Option<S<Granularity>>,
    pub sched_flags: Option<Vec<S<String>>>,
    pub ops: Option<S<bool>>,
    pub delay_loop: Option<S<f64>>,
    pub sorry_server: Option<S<String>>,
    pub quorum: Option<S<i64>>,
    pub hysteresis: Option<S<i64>>,
    pub quorum_up: Option<S<String>>,
    pub quorum_down: Option<S<String>>,
    pub alpha: Option<bool>,
    #[serde(default)]
    pub local_address: Vec<S<String>>,
    #[serde(default)]
    pub real_server: Vec<S<RawRealServer>>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRealServer {
    pub address: S<String>,
    pub weight: Option<S<i64>>,
    pub mac: Option<S<String>>,
    pub inhibit_on_failure: Option<bool>,
    pub uthreshold: Option<S<i64>>,
    pub lthreshold: Option<S<i64>>,
    pub notify_up: Option<S<String>>,
    pub notify_down: Option<S<String>>,
    pub tcp_check: Option<RawTcpCheck>,
    pub http_get: Option<RawHttpGet>,
    pub misc_check: Option<RawMiscCheck>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTcpCheck {
    pub connect_ip: Option<S<String>>,
    pub bindto: Option<S<String>>,
    pub connect_port: Option<S<i64>>,
    pub connect_timeout: Option<S<f64>>,
    #[serde(alias = "nb_get_retry")]
    pub retry: Option<S<i64>>,
    pub delay_before_retry: Option<S<f64>>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawHttpGet {
    pub url: S<Vec<S<RawUrl>>>,
    pub connect_ip: Option<S<String>>,
    pub bindto: Option<S<String>>,
    pub connect_port: Option<S<i64>>,
    pub connect_timeout: Option<S<f64>>,
    #[serde(alias = "nb_get_retry")]
    pub retry: Option<S<i64>>,
    pub delay_before_retry: Option<S<f64>>,
    pub virtualhost: Option<String>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawUrl {
    pub path: S<String>,
    pub status_code: Option<S<StatusCodes>>,
    pub digest: Option<S<String>>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawMiscCheck {
    pub misc_path: S<String>,
    pub misc_timeout: Option<S<f64>>,
    pub misc_dynamic: Option<bool>,
}

/// `persistence_timeout`: keepalived accepts the bare keyword (meaning the
/// IPVS default, 360 s) or a number of seconds; TOML has no bare keys, so
/// `true` stands for the bare keyword.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Persistence {
    Flag(bool),
    Secs(i64),
}

impl<'de> Deserialize<'de> for Persistence {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Persistence;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a number of seconds, or true for the default 360")
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Persistence, E> {
                Ok(Persistence::Flag(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Persistence, E> {
                Ok(Persistence::Secs(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Persistence, E> {
                Ok(Persistence::Secs(i64::try_from(v).unwrap_or(i64::MAX)))
            }
        }
        d.deserialize_any(V)
    }
}

/// `status_code`: keepalived takes a list of codes and `min-max` ranges
/// (`status_code 200-299 302`); here a number, a string in keepalived's
/// syntax, or an array of either.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum StatusCodes {
    One(i64),
    Text(String),
    List(Vec<StatusCodes>),
}

impl<'de> Deserialize<'de> for StatusCodes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = StatusCodes;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a status code, a string such as \"200-299 302\", or an array of them")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<StatusCodes, E> {
                Ok(StatusCodes::One(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<StatusCodes, E> {
                Ok(StatusCodes::One(i64::try_from(v).unwrap_or(i64::MAX)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<StatusCodes, E> {
                Ok(StatusCodes::Text(v.to_owned()))
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut a: A) -> Result<StatusCodes, A::Error> {
                let mut v = Vec::new();
                while let Some(x) = a.next_element::<StatusCodes>()? {
                    v.push(x);
                }
                Ok(StatusCodes::List(v))
            }
        }
        d.deserialize_any(V)
    }
}

/// `persistence_granularity`: an IPv4 netmask ("255.255.255.0", as in
/// keepalived) or a prefix length (keepalived's form for IPv6).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Granularity {
    Mask(String),
    Prefix(i64),
}

impl<'de> Deserialize<'de> for Granularity {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Granularity;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a netmask string or a prefix length")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Granularity, E> {
                Ok(Granularity::Mask(v.to_owned()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Granularity, E> {
                Ok(Granularity::Prefix(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Granularity, E> {
                Ok(Granularity::Prefix(i64::try_from(v).unwrap_or(i64::MAX)))
            }
        }
        d.deserialize_any(V)
    }
}
