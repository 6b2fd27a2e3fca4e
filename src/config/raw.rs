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
    pub vrrp_script: Vec<S<RawVrrpScript>>,
    #[serde(default)]
    pub vrrp_sync_group: Vec<S<RawSyncGroup>>,
    #[serde(default)]
    pub virtual_server: Vec<S<RawVirtualServer>>,
    #[serde(default)]
    pub fwmark: Vec<S<RawFwmark>>,
    #[serde(default)]
    pub virtual_server_group: Vec<S<RawVsGroup>>,
    pub metrics: Option<RawMetrics>,
    pub announce: Option<S<RawAnnounce>>,
}

/// `[announce]`: VIP routes in a kernel table for a BGP daemon.
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAnnounce {
    pub table: S<i64>,
    pub protocol: Option<S<i64>>,
    pub vips: Option<S<Vec<S<String>>>>,
    pub peer_local_address: Option<S<Vec<S<String>>>>,
}

/// `[metrics]`: the Prometheus endpoint.
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawMetrics {
    pub listen: S<String>,
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
    pub enable_script_security: Option<bool>,
    pub sloppy_tcp: Option<bool>,
    pub sync_threshold: Option<S<i64>>,
    pub sync_period: Option<S<i64>>,
    pub sync_refresh_period: Option<S<i64>>,
    pub sync_retries: Option<S<i64>>,
    pub sync_persist_mode: Option<S<i64>>,
    pub sync_version: Option<S<i64>>,
    pub sync_ports: Option<S<i64>>,
    pub sync_sock_size: Option<S<i64>>,
    pub backup_only: Option<bool>,
    pub lvs_sync_daemon: Option<S<RawSyncDaemon>>,
    pub vrrp_mcast_group4: Option<S<String>>,
    pub vrrp_mcast_group6: Option<S<String>>,
}

/// `[global.lvs_sync_daemon]`.
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSyncDaemon {
    pub interface: S<String>,
    pub vrrp_instance: Option<S<String>>,
    pub active_active: Option<bool>,
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
    #[serde(default)]
    pub track_script: Vec<S<RawTracked>>,
    #[serde(default)]
    pub track_interface: Vec<S<RawTracked>>,
}

/// A `track_script` / `track_interface` entry: a name, or a table with a
/// weight (`{ name = "eth1", weight = -50 }`).
#[derive(Debug)]
pub(crate) enum RawTracked {
    Name(String),
    Weighted(RawWeighted),
}

impl<'de> Deserialize<'de> for RawTracked {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawTracked;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a name, or a table { name = \"...\", weight = N }")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<RawTracked, E> {
                Ok(RawTracked::Name(v.to_owned()))
            }
            fn visit_map<A: de::MapAccess<'de>>(self, a: A) -> Result<RawTracked, A::Error> {
                RawWeighted::deserialize(de::value::MapAccessDeserializer::new(a))
                    .map(RawTracked::Weighted)
            }
        }
        d.deserialize_any(V)
    }
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawWeighted {
    pub name: S<String>,
    pub weight: Option<S<i64>>,
    /// keepalived's `weight W reverse|noreverse` (track_script only).
    pub reverse: Option<bool>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawVrrpScript {
    pub name: S<String>,
    pub script: S<String>,
    pub interval: Option<S<f64>>,
    pub timeout: Option<S<f64>>,
    pub weight: Option<S<i64>>,
    pub fall: Option<S<i64>>,
    pub rise: Option<S<i64>>,
    /// keepalived's `weight W reverse`.
    pub reverse: Option<bool>,
    pub init_fail: Option<bool>,
    pub user: Option<S<String>>,
    pub group: Option<S<String>>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSyncGroup {
    pub name: S<String>,
    pub group: Vec<S<String>>,
    pub notify_master: Option<S<String>>,
    pub notify_backup: Option<S<String>>,
    pub notify_fault: Option<S<String>>,
    pub notify: Option<S<String>>,
}

/// `[[fwmark]]`: frames matching any of `match` carry `mark`.
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawFwmark {
    pub mark: S<i64>,
    #[serde(rename = "match")]
    pub matches: S<Vec<S<String>>>,
}

/// `[[virtual_server_group]]`: keepalived's `virtual_server_group NAME`.
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawVsGroup {
    pub name: S<String>,
    pub members: S<Vec<S<String>>>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawVirtualServer {
    /// Exactly one of `address`, `fwmark` and `group` (checked by
    /// `validate`).
    pub address: Option<S<String>>,
    pub fwmark: Option<S<i64>>,
    pub group: Option<S<String>>,
    pub protocol: Option<S<String>>,
    pub lb_algo: Option<S<String>>,
    pub lb_kind: Option<S<String>>,
    pub persistence_timeout: Option<S<Persistence>>,
    pub persistence_granularity: Option<S<Granularity>>,
    pub sched_flags: Option<Vec<S<String>>>,
    pub ops: Option<S<bool>>,
    pub delay_loop: Option<S<f64>>,
    pub sorry_server: Option<S<String>>,
    pub sorry_server_inhibit: Option<S<bool>>,
    pub omega: Option<bool>,
    pub ha_suspend: Option<bool>,
    /// Real-server defaults (keepalived's vs-level keywords).
    pub weight: Option<S<i64>>,
    pub inhibit_on_failure: Option<bool>,
    pub sorry_server_lvs_method: Option<S<String>>,
    pub quorum: Option<S<i64>>,
    pub hysteresis: Option<S<i64>>,
    pub quorum_up: Option<S<String>>,
    pub quorum_down: Option<S<String>>,
    pub alpha: Option<bool>,
    /// Virtual-server defaults of its checkers (keepalived inherits them
    /// through the real servers).
    pub retry: Option<S<i64>>,
    pub delay_before_retry: Option<S<f64>>,
    pub warmup: Option<S<f64>>,
    pub connect_timeout: Option<S<f64>>,
    pub virtualhost: Option<S<String>>,
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
    /// TUN encapsulation (keepalived's `lvs_method TUN type T port P F`).
    pub tun_type: Option<S<String>>,
    pub tun_port: Option<S<i64>>,
    pub tun_flags: Option<S<String>>,
    /// Real-server defaults of its checkers' timers (keepalived's).
    pub retry: Option<S<i64>>,
    pub delay_before_retry: Option<S<f64>>,
    pub warmup: Option<S<f64>>,
    pub connect_timeout: Option<S<f64>>,
    pub delay_loop: Option<S<f64>>,
    pub alpha: Option<bool>,
    pub virtualhost: Option<S<String>>,
    /// Each checker kind: one table or an array of tables.
    #[serde(default)]
    pub tcp_check: Checks<RawTcpCheck>,
    #[serde(default)]
    pub http_get: Checks<RawHttpGet>,
    #[serde(default)]
    pub ssl_get: Checks<RawHttpGet>,
    #[serde(default)]
    pub dns_check: Checks<RawDnsCheck>,
    #[serde(default)]
    pub udp_check: Checks<RawUdpCheck>,
    #[serde(default)]
    pub ping_check: Checks<RawPingCheck>,
    #[serde(default)]
    pub smtp_check: Checks<RawSmtpCheck>,
    #[serde(default)]
    pub misc_check: Checks<RawMiscCheck>,
}

/// A checker key: one table (`[virtual_server.real_server.tcp_check]`) or
/// several (`[[virtual_server.real_server.tcp_check]]`), as keepalived
/// takes any number of checkers of each kind.
#[derive(Debug)]
pub(crate) struct Checks<T>(pub Vec<T>);

impl<T> Default for Checks<T> {
    fn default() -> Self {
        Checks(Vec::new())
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Checks<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = Checks<T>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a checker table or an array of checker tables")
            }
            fn visit_map<A: de::MapAccess<'de>>(self, a: A) -> Result<Checks<T>, A::Error> {
                T::deserialize(de::value::MapAccessDeserializer::new(a)).map(|t| Checks(vec![t]))
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, a: A) -> Result<Checks<T>, A::Error> {
                Vec::<T>::deserialize(de::value::SeqAccessDeserializer::new(a)).map(Checks)
            }
        }
        d.deserialize_any(V(std::marker::PhantomData))
    }
}

/// A checker struct: keepalived's keys common to every network checker
/// (connection, source, timers), then the kind's own.
macro_rules! raw_checker {
    ($name:ident { $($(#[$m:meta])* $f:ident : $t:ty),* $(,)? }) => {
        #[derive(Deserialize, Debug)]
        #[serde(deny_unknown_fields)]
        pub(crate) struct $name {
            pub connect_ip: Option<S<String>>,
            pub connect_port: Option<S<i64>>,
            pub bindto: Option<S<String>>,
            pub bind_port: Option<S<i64>>,
            pub bind_if: Option<S<String>>,
            pub connect_timeout: Option<S<f64>>,
            #[serde(alias = "nb_get_retry")]
            pub retry: Option<S<i64>>,
            pub delay_before_retry: Option<S<f64>>,
            pub warmup: Option<S<f64>>,
            pub delay_loop: Option<S<f64>>,
            pub alpha: Option<bool>,
            pub fwmark: Option<S<i64>>,
            pub log_all_failures: Option<bool>,
            $($(#[$m])* pub $f: $t,)*
        }
    };
}

raw_checker!(RawTcpCheck {});

raw_checker!(RawHttpGet {
    url: S<Vec<S<RawUrl>>>,
    virtualhost: Option<S<String>>,
    http_protocol: Option<S<String>>,
    enable_sni: Option<S<bool>>,
    sni_name: Option<S<String>>,
    tls_compliant: Option<S<bool>>,
    fast_recovery: Option<bool>,
});

raw_checker!(RawDnsCheck {
    #[serde(rename = "type")]
    qtype: Option<S<String>>,
    name: Option<S<String>>,
});

raw_checker!(RawUdpCheck {
    payload: Option<S<String>>,
    require_reply: Option<S<ReplyPattern>>,
    min_reply_length: Option<S<i64>>,
    max_reply_length: Option<S<i64>>,
});

raw_checker!(RawPingCheck {});

raw_checker!(RawSmtpCheck {
    helo_name: Option<S<String>>,
});

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawUrl {
    pub path: S<String>,
    pub status_code: Option<S<StatusCodes>>,
    pub digest: Option<S<String>>,
    pub virtualhost: Option<S<String>>,
    pub regex: Option<S<String>>,
    pub regex_no_match: Option<bool>,
    pub regex_options: Option<S<Vec<String>>>,
    /// SSL_GET: send close_notify (keepalived's url `tls_compliant`).
    pub tls_compliant: Option<S<bool>>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawMiscCheck {
    pub misc_path: S<String>,
    pub misc_timeout: Option<S<f64>>,
    pub misc_dynamic: Option<bool>,
    /// keepalived's `user USER [GROUP]`.
    pub user: Option<S<String>>,
    pub group: Option<S<String>>,
    #[serde(alias = "nb_get_retry")]
    pub retry: Option<S<i64>>,
    pub delay_before_retry: Option<S<f64>>,
    pub warmup: Option<S<f64>>,
    pub delay_loop: Option<S<f64>>,
    pub alpha: Option<bool>,
    pub log_all_failures: Option<bool>,
}

/// UDP_CHECK's `require_reply`: keepalived's bare keyword (`true`), or the
/// hex string the reply must start with (`x` nibbles are wildcards).
#[derive(Deserialize, Debug, Clone, PartialEq)]
#[serde(untagged)]
pub(crate) enum ReplyPattern {
    Flag(bool),
    Hex(String),
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
