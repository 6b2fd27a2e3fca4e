//! What lvsfwd tells the people and programs that run it: the Prometheus
//! endpoint ([`metrics`]), systemd's notification protocol ([`notify`]),
//! keepalived-style data and stats dumps ([`dump`]), and rate-limited
//! warnings ([`ratelimit`]).
//!
//! All of them read one [`Status`]: a plain, serialisable picture of the
//! running director that the control thread assembles on request from what
//! the admin listings use (the workers' merged answers, the health view,
//! the VRRP board, the shared worker counters). Nothing here runs on a
//! worker or touches the data path; rendering and writing happen off the
//! control loop where they could block (the metrics thread).

pub mod dump;
pub mod metrics;
pub mod notify;
pub mod ratelimit;

use std::net::IpAddr;

use serde::Serialize;

use crate::dest::Stats;

/// Traffic counters of a service or real server (`lvsadm --stats`'s
/// columns).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Traffic {
    pub conns: u64,
    pub inpkts: u64,
    pub outpkts: u64,
    pub inbytes: u64,
    pub outbytes: u64,
}

impl From<&Stats> for Traffic {
    fn from(s: &Stats) -> Traffic {
        Traffic {
            conns: s.conns,
            inpkts: s.inpkts,
            outpkts: s.outpkts,
            inbytes: s.inbytes,
            outbytes: s.outbytes,
        }
    }
}

/// One real server of a virtual service.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RealServerStatus {
    pub address: IpAddr,
    pub port: u16,
    /// `Route`, `Masq`, `Tunnel`, `FullNat`, `Local`.
    pub forward: &'static str,
    /// The configured weight.
    pub weight: i32,
    /// The weight the data plane runs it with, `None` when health checking
    /// took it out of the table (what `lvsadm -L` shows: IPVS's table under
    /// keepalived).
    pub running_weight: Option<i32>,
    /// The checkers' verdict (`true` when it has none).
    pub alive: bool,
    /// keepalived's checker keywords (`TCP_CHECK`, `HTTP_GET`, ...).
    pub checkers: Vec<String>,
    pub active_conns: u32,
    pub inactive_conns: u32,
    pub persistent_conns: u32,
    pub traffic: Traffic,
}

/// One virtual service.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ServiceStatus {
    /// `TCP` or `UDP`; `FWM` for a fwmark service (procfs's word).
    pub protocol: &'static str,
    /// A fwmark service's mark (its address is then unspecified, port 0).
    pub fwmark: Option<u32>,
    pub address: IpAddr,
    pub port: u16,
    pub scheduler: &'static str,
    pub persistence_secs: Option<u64>,
    /// The sorry server, and whether it serves now (quorum lost).
    pub sorry_server: Option<String>,
    pub sorry_server_active: bool,
    pub traffic: Traffic,
    pub real_servers: Vec<RealServerStatus>,
}

/// One VRRP instance.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct VrrpInstanceStatus {
    pub name: String,
    pub interface: String,
    pub virtual_router_id: u8,
    /// keepalived's words: `INIT`, `BACKUP`, `MASTER`, `FAULT`.
    pub state: &'static str,
    pub priority: u8,
    /// The master last heard (`ADDR priority N`), when another router.
    pub master: Option<String>,
    pub virtual_ipaddress: Vec<IpAddr>,
    pub adverts_rx: u64,
    pub adverts_tx: u64,
    pub priority_zero_rx: u64,
    pub priority_zero_tx: u64,
    pub became_master: u64,
    pub released_master: u64,
    /// Dropped adverts by reason (every reason, zero or not).
    pub rejected: Vec<(&'static str, u64)>,
}

/// The VRRP states that exist, in keepalived's words, for a stable set of
/// `lvsfwd_vrrp_state` series.
pub const VRRP_STATES: [&str; 4] = ["INIT", "BACKUP", "MASTER", "FAULT"];

/// One worker (one RX queue of every data-plane NIC).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct WorkerStatus {
    pub worker: usize,
    pub queue: u32,
    pub core: usize,
    /// Whether its AF_XDP sockets run zero-copy (else copy mode).
    pub zero_copy: bool,
    pub rx: u64,
    pub tx: u64,
    pub pass: u64,
    pub drop: u64,
    pub to_kernel: u64,
    pub kernel_port_drop: u64,
    pub steered_out: u64,
    pub steer_drop: u64,
    pub tx_ring_full: u64,
    /// Frames the kernel dropped before the socket (no fill buffer, RX ring
    /// full).
    pub kernel_rx_dropped: u64,
    /// Seconds spent in rounds that had frames to move.
    pub busy_seconds: f64,
}

/// The connection table, all workers together.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ConnTableStatus {
    pub entries: u64,
    pub capacity: u64,
    pub evictions: u64,
}

/// lvsfwd's XDP program on one data-plane NIC.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct XdpStatus {
    pub interface: String,
    /// `native` or `generic` (skb).
    pub mode: String,
}

/// Everything operators are shown; see the module documentation.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Status {
    /// Seconds since the daemon started serving.
    pub uptime_seconds: f64,
    pub services: Vec<ServiceStatus>,
    pub vrrp_instances: Vec<VrrpInstanceStatus>,
    pub workers: Vec<WorkerStatus>,
    /// Dropped frames by reason (every reason, zero or not), all workers.
    pub drops: Vec<(&'static str, u64)>,
    /// Frames handed to the director's own stack, by reason.
    pub to_kernel: Vec<(&'static str, u64)>,
    pub conn_table: ConnTableStatus,
    pub xdp: Vec<XdpStatus>,
    /// Connection sync (keepalived's lvs_sync_daemon, lvsadm's daemon).
    pub sync: SyncStatus,
}

/// Connection sync's roles and counters (since start; they survive a
/// stop and start of the daemon threads).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct SyncStatus {
    /// Which threads run now.
    pub master: bool,
    pub backup: bool,
    /// Master: messages, entries and bytes (UDP payload) sent, send errors.
    pub sent_messages: u64,
    pub sent_conns: u64,
    pub sent_bytes: u64,
    pub send_errors: u64,
    /// Backup: datagrams and entries taken; datagrams of another syncid;
    /// datagrams dropped as malformed; entries refused.
    pub received_messages: u64,
    pub received_conns: u64,
    pub wrong_syncid: u64,
    pub malformed: u64,
    pub refused_conns: u64,
    /// Workers: records applied (created, updated), skipped for a real
    /// server this director does not have, refused.
    pub applied_created: u64,
    pub applied_updated: u64,
    pub applied_no_dest: u64,
    pub applied_refused: u64,
    /// Records lost to a full queue: workers to the sender, and the
    /// receiver to a worker.
    pub queue_drops_out: u64,
    pub queue_drops_in: u64,
    /// Whole tables sent (master) and received (backup) for a returning
    /// director.
    pub tables_sent: u64,
    pub tables_received: u64,
    /// Master: mixed-family entries the format cannot carry, not sent.
    pub mixed_family: u64,
    /// Master with `sync_version = 0`: IPv6 and FULLNAT entries not sent.
    pub not_v0: u64,
}
