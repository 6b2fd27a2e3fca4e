//! lb.toml: schema, validation and conversion to service specs.
//!
//! Owns the user-facing configuration file described in interface.md §2.
//! Key names are keepalived.conf's keywords and defaults are keepalived's
//! (and IPVS's where keepalived defers to it), so a keepalived user can read
//! an lb.toml without a manual.
//!
//! Loading is two-staged: serde reads the document into `raw` structs that
//! keep the byte span of every value, then `validate` checks ranges,
//! addresses and cross-field rules and produces the typed [`Config`]. Every
//! error, syntactic or semantic, is reported as `PATH:LINE:COL: message`
//! with the position of the offending value.
//!
//! Invariants of a [`Config`] (a value of this type has passed every check):
//! - no two virtual servers share protocol + address + port, no service has
//!   two real servers with the same address + port;
//! - DR and TUN real servers carry the VIP's port (IPVS ignores it anyway);
//! - address families agree wherever the forwarding method needs them to;
//! - weights are within ipvsadm's 0..=65535 and thresholds are ordered.
//!
//! Deliberately not done here: resolving interfaces, MACs or next hops,
//! running health checks or VRRP (their sections are parsed and typed for
//! the engines that come later), and keepalived.conf import.

pub mod argv;
mod core;
pub mod keepalived;
mod raw;
mod validate;

pub use core::{os_hash_seeds, os_seed};

use crate::conn::SyncSysctls;

#[cfg(test)]
mod tests;

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::conn::Timeouts;
pub use crate::dest::{TunCsum, TunType, TunnelSpec};
use crate::sched::{SchedFlags, SchedKind};
pub use crate::service::FwmarkRule;
use crate::service::{DestSpec, FwdMethod, Protocol, ServiceKey, ServiceSpec};
use crate::wire::MacAddr;

/// `[global] idle_spin_us`'s default: how long a worker keeps polling
/// after its last frame before it sleeps.
pub const DEFAULT_IDLE_SPIN: Duration = Duration::from_micros(200);

/// A validated lb.toml.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    pub global: Global,
    pub timeouts: Timeouts,
    pub vrrp_instances: Vec<VrrpInstance>,
    /// `[[vrrp_script]]`, in file order (names unique).
    pub vrrp_scripts: Vec<VrrpScript>,
    /// `[[vrrp_sync_group]]`, in file order (an instance is in one at most).
    pub vrrp_sync_groups: Vec<VrrpSyncGroup>,
    /// Every service the virtual servers make: a `group` virtual server
    /// gives one per member (keepalived's IPVS service per member), each
    /// with the virtual server's settings and real servers.
    pub virtual_servers: Vec<VirtualServer>,
    /// `[announce]`: each served VIP's route in a kernel table.
    pub announce: Option<Announce>,
    /// `[[fwmark]]` rules, in file order.
    pub fwmarks: Vec<FwmarkRule>,
}

/// `[announce]`: while a VIP is served, its host route (type blackhole)
/// is in kernel table `table` with protocol id `protocol`, where a BGP
/// daemon (BIRD's `kernel` protocol with `learn`) imports and announces
/// it; see `control::announce`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Announce {
    pub table: u32,
    pub protocol: u8,
    /// The VIPs announced (`vips`); default every virtual server's address.
    pub vips: Vec<std::net::IpAddr>,
    /// This director's FULLNAT local addresses (every virtual server's
    /// `local_address`): announced while lvsfwd runs, so that real
    /// servers' replies come back to the director that owns them.
    pub local_addrs: Vec<std::net::IpAddr>,
    /// `peer_local_address`: the other directors' FULLNAT local addresses.
    /// Taken (the XDP program redirects them) and announced as a less
    /// preferred route (kernel metric [`PEER_LOCAL_METRIC`]), so that when
    /// a peer dies its replies reach a survivor that has its connections
    /// by sync.
    pub peer_local_addrs: Vec<std::net::IpAddr>,
}

/// Kernel metric (priority) of a peer's local address route in the
/// announce table: the director's BIRD prepends its AS to routes that
/// carry it (`configs/bird-director.conf`).
pub const PEER_LOCAL_METRIC: u32 = 2000;

/// `[announce] protocol` by default: unused by iproute2's rt_protos and by
/// the routing daemons.
pub const DEFAULT_ANNOUNCE_PROTOCOL: u8 = 201;

/// XDP attach mode (`xdp_mode`).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum XdpMode {
    Native,
    Generic,
    Auto,
}

/// AF_XDP zero-copy request (`zero_copy`).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum ZeroCopy {
    On,
    Off,
    Auto,
}

/// `[global]`.
#[derive(Clone, Debug, PartialEq)]
pub struct Global {
    pub router_id: Option<String>,
    /// The data-plane NICs (`interface`, a name or a list: a two-armed
    /// director serves several); empty only makes sense for offline use
    /// (replay, check).
    pub interfaces: Vec<String>,
    /// RX queues to serve; `None` = every queue of the NIC.
    pub queues: Option<Vec<u32>>,
    /// Core of worker i is `cores[i]`; `None` = core i mod ncpu.
    pub cores: Option<Vec<usize>>,
    pub xdp_mode: XdpMode,
    pub zero_copy: ZeroCopy,
    pub admin_socket: PathBuf,
    /// Connection-table capacity, all workers together.
    pub conn_max: usize,
    /// How long a worker keeps polling its rings after the last frame
    /// before it sleeps (`idle_spin_us`; 0 = sleep at once). Longer trades
    /// CPU time for latency at moderate load (see the engine).
    pub idle_spin: Duration,
    /// IPVS sysctl `expire_nodest_conn`: drop connections whose real server
    /// was removed at their next packet instead of letting them time out.
    pub expire_nodest_conn: bool,
    /// IPVS sysctl `expire_quiescent_template`: expire persistence templates
    /// that point at a weight-0 server.
    pub expire_quiescent_template: bool,
    /// IPVS sysctl `drop_entry`: with the connection table full, reclaim
    /// ESTABLISHED connections that carried only a few client packets
    /// (spoofed handshakes). Default on (see `conn`'s capacity policy).
    pub drop_entry: bool,
    /// keepalived's `script_user USER [GROUP]`: whom MISC_CHECK and notify
    /// scripts run as (`None`: `keepalived_script` if that user exists,
    /// else root; see `control::script`).
    pub script_user: Option<String>,
    pub script_group: Option<String>,
    /// keepalived's `enable_script_security`: vrrp_script and MISC_CHECK
    /// scripts that would run as root from a path non-root users can
    /// write are disabled, and scripts never default to root
    /// (`control::script::security`).
    pub enable_script_security: bool,
    /// `[metrics] listen`: where `GET /metrics` is served; `None`: nowhere.
    pub metrics_listen: Option<std::net::SocketAddr>,
    /// IPVS sysctl `sloppy_tcp`: any TCP segment without RST may create a
    /// connection.
    pub sloppy_tcp: bool,
    /// IPVS sysctls `sync_threshold` (threshold and period),
    /// `sync_refresh_period`, `sync_retries`.
    pub sync: SyncSysctls,
    /// IPVS sysctl `backup_only`.
    pub backup_only: bool,
    /// `[global.lvs_sync_daemon]`: connection sync tied to a VRRP instance.
    pub lvs_sync_daemon: Option<SyncDaemon>,
    /// keepalived's `vrrp_mcast_group4` / `vrrp_mcast_group6`: the groups
    /// multicast VRRP instances join and advertise to (default 224.0.0.18
    /// and ff02::12, RFC 5798's); unicast instances ignore them.
    pub vrrp_mcast_group4: std::net::Ipv4Addr,
    pub vrrp_mcast_group6: std::net::Ipv6Addr,
}

/// Connection sync's daemon settings (keepalived's `lvs_sync_daemon`,
/// ipvsadm's `--start-daemon` options).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyncDaemon {
    pub interface: String,
    /// The VRRP instance whose state decides master or backup (`None`:
    /// started by lvsadm with a fixed role).
    pub vrrp_instance: Option<String>,
    /// `active_active`: master and backup at once, always (directors
    /// behind ECMP each send their connections and take the others').
    pub active_active: bool,
    /// syncid (`id`; default the instance's virtual_router_id).
    pub syncid: u8,
    /// Largest message (UDP payload); `None`: from the MTU as the kernel
    /// computes it.
    pub maxlen: Option<u16>,
    pub group: std::net::IpAddr,
    pub port: u16,
    pub ttl: u8,
}

impl SyncDaemon {
    /// The kernel's defaults for interface `ifname` and `syncid`.
    pub fn new(ifname: &str, syncid: u8) -> SyncDaemon {
        SyncDaemon {
            interface: ifname.to_string(),
            vrrp_instance: None,
            active_active: false,
            syncid,
            maxlen: None,
            group: std::net::IpAddr::V4(crate::wire::ipvs_sync::SYNC_GROUP),
            port: crate::wire::ipvs_sync::SYNC_PORT,
            ttl: 1,
        }
    }
}

/// Most NICs one director serves (`interface` lists): a NIC index is one
/// byte in the data plane, and every worker holds a socket per NIC.
pub const MAX_INTERFACES: usize = 8;

/// Default admin socket path (interface.md §2).
pub const DEFAULT_ADMIN_SOCKET: &str = "/run/lvsfwd/admin.sock";
/// Default connection-table capacity.
pub const DEFAULT_CONN_MAX: usize = 1 << 20;

impl Default for Global {
    fn default() -> Global {
        Global {
            router_id: None,
            interfaces: Vec::new(),
            queues: None,
            cores: None,
            xdp_mode: XdpMode::Auto,
            zero_copy: ZeroCopy::Auto,
            admin_socket: PathBuf::from(DEFAULT_ADMIN_SOCKET),
            conn_max: DEFAULT_CONN_MAX,
            idle_spin: DEFAULT_IDLE_SPIN,
            expire_nodest_conn: false,
            expire_quiescent_template: false,
            drop_entry: true,
            script_user: None,
            script_group: None,
            enable_script_security: false,
            metrics_listen: None,
            sloppy_tcp: false,
            sync: SyncSysctls::default(),
            backup_only: false,
            lvs_sync_daemon: None,
            vrrp_mcast_group4: crate::wire::vrrp::MCAST_V4,
            vrrp_mcast_group6: crate::wire::vrrp::MCAST_V6,
        }
    }
}

/// VRRP initial state.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum VrrpState {
    Master,
    Backup,
}

/// VRRP protocol version.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum VrrpVersion {
    /// RFC 3768.
    V2,
    /// RFC 5798.
    V3,
}

/// VRRPv2 authentication (`auth_type` + `auth_pass`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VrrpAuth {
    /// Simple text password, at most 8 bytes.
    Pass(String),
    /// IPSEC-AH, keyed with the password.
    Ah(String),
}

/// An address with a prefix length (`virtual_ipaddress` entries).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct IpPrefix {
    pub addr: IpAddr,
    pub len: u8,
}

/// `[[vrrp_instance]]`.
#[derive(Clone, Debug, PartialEq)]
pub struct VrrpInstance {
    pub name: String,
    pub state: VrrpState,
    pub interface: String,
    pub virtual_router_id: u8,
    /// 1..=255; 255 = address owner.
    pub priority: u8,
    pub advert_int: Duration,
    pub version: VrrpVersion,
    pub nopreempt: bool,
    pub preempt_delay: Duration,
    pub auth: Option<VrrpAuth>,
    /// All of one address family.
    pub virtual_ipaddress: Vec<IpPrefix>,
    pub unicast_src_ip: Option<IpAddr>,
    pub unicast_peer: Vec<IpAddr>,
    pub notify_master: Option<String>,
    pub notify_backup: Option<String>,
    pub notify_fault: Option<String>,
    pub notify: Option<String>,
    /// `track_script`: `[[vrrp_script]]` names, each with the script's
    /// weight or the instance's override.
    pub track_script: Vec<TrackScript>,
    /// `track_interface`: interfaces whose link state this instance follows.
    pub track_interface: Vec<TrackInterface>,
}

/// One `track_script` entry of an instance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrackScript {
    /// A `[[vrrp_script]]` name (checked to exist).
    pub name: String,
    /// The instance's `weight` override; `None` = the script's weight.
    pub weight: Option<i32>,
    /// keepalived's `weight W reverse|noreverse`; `None` = the script's.
    pub reverse: Option<bool>,
}

/// One `track_interface` entry of an instance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrackInterface {
    pub name: String,
    /// 0: the link down puts the instance in FAULT; otherwise keepalived's
    /// priority change (a positive weight is added while the link is up, a
    /// negative one while it is down).
    pub weight: i32,
}

/// `[[vrrp_script]]`: keepalived's vrrp_script.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VrrpScript {
    pub name: String,
    /// The command line (split into an argument vector, never a shell).
    pub script: String,
    pub interval: Duration,
    /// A run that has not exited by then is killed and counts as a failure
    /// (keepalived's default: the interval).
    pub timeout: Duration,
    /// -253..=253; 0 = a failing script puts its instances in FAULT.
    pub weight: i32,
    /// Failures in a row that make an OK script failed.
    pub fall: u32,
    /// Successes in a row that make a failed script OK.
    pub rise: u32,
    /// keepalived's `weight W reverse`: the weight applies the other way
    /// (a positive one is taken off while the script is OK, a negative one
    /// added while it fails; weight 0: FAULT while it is OK).
    pub reverse: bool,
    /// keepalived's `init_fail`: the script is failed until it succeeds
    /// (instead of "not reported yet").
    pub init_fail: bool,
    /// keepalived's `user USER [GROUP]`; `None` = `[global] script_user`.
    pub user: Option<String>,
    pub group: Option<String>,
}

/// `[[vrrp_sync_group]]`: instances that change state together.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VrrpSyncGroup {
    pub name: String,
    /// `vrrp_instance` names (checked to exist, each in one group at most).
    pub group: Vec<String>,
    pub notify_master: Option<String>,
    pub notify_backup: Option<String>,
    pub notify_fault: Option<String>,
    pub notify: Option<String>,
}

/// `[[virtual_server]]`.
#[derive(Clone, Debug, PartialEq)]
pub struct VirtualServer {
    pub protocol: Protocol,
    /// A fwmark service's is its family's unspecified address, port 0.
    pub address: SocketAddr,
    /// `fwmark = N`: the fwmark service of mark N; 0 for an address service.
    pub fwmark: u32,
    pub lb_algo: SchedKind,
    pub lb_kind: FwdMethod,
    /// `Some` for a persistent service.
    pub persistence_timeout: Option<Duration>,
    /// Persistence granularity as a prefix length (32 / 128 = per client).
    pub persistence_prefix: u8,
    pub sched_flags: SchedFlags,
    pub ops: bool,
    /// Interval between two health checks of a real server.
    pub delay_loop: Duration,
    pub sorry_server: Option<SocketAddr>,
    /// `sorry_server_inhibit`: the sorry server stays listed with weight 0
    /// while it is not needed (keepalived's inhibit_on_failure for it).
    pub sorry_server_inhibit: bool,
    /// `sorry_server_lvs_method`: the sorry server's forwarding method;
    /// `None` = the virtual server's lb_kind.
    pub sorry_server_lvs_method: Option<FwdMethod>,
    /// `omega`: at shutdown, run the notify_down of every alive real
    /// server and quorum_down, as keepalived does.
    pub omega: bool,
    /// `ha_suspend`: the checkers run only while the virtual server's
    /// address is configured on the director (the VRRP master has it).
    pub ha_suspend: bool,
    pub quorum: u32,
    pub hysteresis: u32,
    /// Run when the pool gains quorum (command line, split into an
    /// argument vector; never given to a shell).
    pub quorum_up: Option<String>,
    /// Run when the pool loses quorum.
    pub quorum_down: Option<String>,
    /// keepalived's alpha mode: real servers with a checker start down and
    /// join the pool at their first successful check.
    pub alpha: bool,
    /// FULLNAT source pool; empty for every other method.
    pub local_address: Vec<IpAddr>,
    /// In file order.
    pub real_servers: Vec<RealServer>,
}

/// `[[virtual_server.real_server]]`.
#[derive(Clone, Debug, PartialEq)]
pub struct RealServer {
    pub address: SocketAddr,
    pub weight: i32,
    pub mac: Option<MacAddr>,
    pub inhibit_on_failure: bool,
    pub uthreshold: u32,
    pub lthreshold: u32,
    pub notify_up: Option<String>,
    pub notify_down: Option<String>,
    /// TUN only: the encapsulation (`tun_type`, `tun_port`, `tun_flags`).
    pub tun: TunnelSpec,
    /// Every configured checker; as in keepalived the server is up only
    /// while all of them succeed, and always up when there is none.
    pub checks: Vec<HealthCheck>,
}

/// One health checker of a real server: its timers (each resolved as
/// keepalived does: the checker's own key, else the real server's, else the
/// virtual server's, else the checker kind's default) and what it probes.
#[derive(Clone, Debug, PartialEq)]
pub struct HealthCheck {
    /// Between two probes (`delay_loop`).
    pub delay_loop: Duration,
    /// Failed probes retried before the checker goes down.
    pub retry: u32,
    pub delay_before_retry: Duration,
    /// The first probe is due at a random point within this span.
    pub warmup: Duration,
    /// Start down until the first success (`alpha`).
    pub alpha: bool,
    /// Log every failure, also while the checker is down
    /// (`log_all_failures`); otherwise only those of an up checker.
    pub log_all_failures: bool,
    pub kind: CheckKind,
}

/// What a checker probes (keepalived's checker keywords, lower case).
#[derive(Clone, Debug, PartialEq)]
pub enum CheckKind {
    /// `tcp_check`: a connection opens.
    Tcp(Connect),
    /// `http_get`: every url answers as configured.
    Http(HttpGet),
    /// `ssl_get`: HTTP_GET over TLS (no certificate verification, as
    /// keepalived).
    Ssl(HttpGet),
    /// `dns_check`: a query is answered with rcode NOERROR.
    Dns(DnsCheck),
    /// `udp_check`: a datagram draws no ICMP error (or a matching reply).
    Udp(UdpCheck),
    /// `ping_check`: an ICMP / ICMPv6 echo is answered.
    Ping(Connect),
    /// `smtp_check`: a 220 banner, then 250 to HELO.
    Smtp(SmtpCheck),
    /// `misc_check`: a script's exit status.
    Misc(MiscCheck),
}

impl CheckKind {
    /// keepalived's keyword for this checker (dumps, metrics).
    pub fn keyword(&self) -> &'static str {
        match self {
            CheckKind::Tcp(_) => "TCP_CHECK",
            CheckKind::Http(_) => "HTTP_GET",
            CheckKind::Ssl(_) => "SSL_GET",
            CheckKind::Dns(_) => "DNS_CHECK",
            CheckKind::Udp(_) => "UDP_CHECK",
            CheckKind::Ping(_) => "PING_CHECK",
            CheckKind::Smtp(_) => "SMTP_CHECK",
            CheckKind::Misc(_) => "MISC_CHECK",
        }
    }
}

/// The connection options every network checker shares.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Connect {
    /// Address to probe; the real server's by default.
    pub connect_ip: IpAddr,
    /// Port to probe; the real server's by default.
    pub connect_port: u16,
    /// Source address (`bindto`); the kernel's choice by default.
    pub bindto: Option<IpAddr>,
    /// Source port (`bind_port`); the kernel's choice by default.
    pub bind_port: Option<u16>,
    /// Device the probe's socket is bound to (`bind_if`).
    pub bind_if: Option<String>,
    /// The probe's packets carry this firewall mark (`fwmark`, SO_MARK).
    pub fwmark: Option<u32>,
    pub connect_timeout: Duration,
}

/// HTTP_GET / SSL_GET's `http_protocol`.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Default)]
pub enum HttpProtocol {
    /// `GET ... HTTP/1.0` (keepalived's default).
    #[default]
    V10,
    /// HTTP/1.0 with `Connection: close` (`1.0C`).
    V10Close,
    /// `GET ... HTTP/1.1` with `Connection: close`.
    V11,
}

/// One `url` entry of `http_get`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpUrl {
    pub path: String,
    /// Accepted status codes as inclusive ranges (a single code is `c..=c`);
    /// empty = 200..=299, keepalived's rule without `status_code`.
    pub status_code: Vec<RangeInclusive<u16>>,
    /// Expected MD5 of the body.
    pub digest: Option<[u8; 16]>,
    /// `Host:` for this url; overrides the checker's.
    pub virtualhost: Option<String>,
    /// A regular expression the body must match (`regex`), with
    /// `regex_options` as inline flags (`(?i)...`).
    pub regex: Option<String>,
    /// The check passes when the body does NOT match `regex`.
    pub regex_no_match: bool,
    /// SSL_GET: this url's connection ends with a close_notify alert
    /// (keepalived's url `tls_compliant`).
    pub tls_compliant: bool,
}

/// `http_get` / `ssl_get`.
#[derive(Clone, Debug, PartialEq)]
pub struct HttpGet {
    pub urls: Vec<HttpUrl>,
    pub connect: Connect,
    /// `Host:`: the checker's, else the real server's, else the virtual
    /// server's `virtualhost`; the address and port when none.
    pub virtualhost: Option<String>,
    pub http_protocol: HttpProtocol,
    /// SSL_GET: send SNI (the `sni_name`, else the url's or the checker's
    /// virtualhost).
    pub enable_sni: bool,
    pub sni_name: Option<String>,
    /// keepalived's `fast_recovery`: a server comes up at the first
    /// success, instead of after every url has passed again, a delay_loop
    /// apart (`control::health::checker`).
    pub fast_recovery: bool,
    /// SSL_GET `tls_compliant`: every url's connection ends with a
    /// close_notify alert, where keepalived otherwise shuts TLS down
    /// quietly (SSL_set_quiet_shutdown) and just closes.
    pub tls_compliant: bool,
}

/// `dns_check`.
#[derive(Clone, Debug, PartialEq)]
pub struct DnsCheck {
    pub connect: Connect,
    /// The query type (`type`, SOA by default).
    pub qtype: u16,
    /// The queried name (`name`, the root by default).
    pub name: String,
}

/// `udp_check`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UdpCheck {
    pub connect: Connect,
    /// The datagram to send; keepalived's 32-byte filler when `None`.
    pub payload: Option<Vec<u8>>,
    /// A reply is needed (no reply within connect_timeout fails).
    pub require_reply: bool,
    /// The reply's first bytes: (value, mask of nibbles to ignore).
    pub reply: Option<(Vec<u8>, Vec<u8>)>,
    pub min_reply_length: usize,
    pub max_reply_length: usize,
}

/// `smtp_check`.
#[derive(Clone, Debug, PartialEq)]
pub struct SmtpCheck {
    pub connect: Connect,
    pub helo_name: String,
}

/// `misc_check` (keepalived MISC_CHECK).
#[derive(Clone, Debug, PartialEq)]
pub struct MiscCheck {
    pub misc_path: String,
    /// `None` = the checker's delay_loop, as in keepalived.
    pub misc_timeout: Option<Duration>,
    /// Exit status 2..=255 sets the weight to status - 2.
    pub misc_dynamic: bool,
    /// keepalived's `user USER [GROUP]`: whom the script runs as; `None`
    /// = `[global] script_user`. The group defaults to the user's own.
    pub user: Option<String>,
    pub group: Option<String>,
}

/// Why lb.toml was refused.
#[derive(Debug)]
pub enum ConfigError {
    /// The file could not be read.
    Io {
        path: String,
        source: std::io::Error,
    },
    /// Syntax, schema or semantic error at a position (1-based line and
    /// column; the column counts characters, not bytes).
    Invalid {
        path: String,
        line: usize,
        col: usize,
        msg: String,
    },
}

impl ConfigError {
    /// `(line, col)` of an [`ConfigError::Invalid`].
    pub fn position(&self) -> Option<(usize, usize)> {
        match self {
            ConfigError::Io { .. } => None,
            ConfigError::Invalid { line, col, .. } => Some((*line, *col)),
        }
    }
    /// The message without its location.
    pub fn message(&self) -> String {
        match self {
            ConfigError::Io { source, .. } => format!("cannot read: {source}"),
            ConfigError::Invalid { msg, .. } => msg.clone(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::Io { path, source } => write!(f, "{path}: cannot read: {source}"),
            ConfigError::Invalid {
                path,
                line,
                col,
                msg,
            } => write!(f, "{path}:{line}:{col}: {msg}"),
        }
    }
}

impl std::error::Error for ConfigError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ConfigError::Io { source, .. } => Some(source),
            ConfigError::Invalid { .. } => None,
        }
    }
}

/// Reads and validates lb.toml; errors name `path` as given.
pub fn load_file(path: &Path) -> Result<Config, ConfigError> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
        path: shown.clone(),
        source,
    })?;
    parse_str(&text, &shown)
}

/// Parses and validates lb.toml text; `path_for_errors` prefixes messages.
pub fn parse_str(text: &str, path_for_errors: &str) -> Result<Config, ConfigError> {
    let at = |offset: usize, msg: String| {
        let (line, col) = line_col(text, offset);
        ConfigError::Invalid {
            path: path_for_errors.to_owned(),
            line,
            col,
            msg,
        }
    };
    let raw: raw::RawConfig = toml::from_str(text).map_err(|e| {
        let offset = e.span().map(|s| s.start).unwrap_or(0);
        at(offset, e.message().trim_end().to_owned())
    })?;
    validate::validate(raw).map_err(|e| at(e.offset, e.msg))
}

/// 1-based line and column (in characters) of byte `offset` in `text`.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let col = before[line_start..].chars().count() + 1;
    (line, col)
}

impl Config {
    /// The configuration `lvsfwd --interface IF [--interface IF2 ...]` runs
    /// with: every default, those data-plane interfaces, no service (they
    /// come from lvsadm).
    pub fn with_interfaces(ifnames: &[String]) -> Config {
        Config {
            global: Global {
                interfaces: ifnames.to_vec(),
                ..Global::default()
            },
            timeouts: Timeouts::default(),
            vrrp_instances: Vec::new(),
            vrrp_scripts: Vec::new(),
            vrrp_sync_groups: Vec::new(),
            virtual_servers: Vec::new(),
            announce: None,
            fwmarks: Vec::new(),
        }
    }

    /// The virtual servers as service specs, in file order.
    pub fn service_specs(&self) -> Vec<ServiceSpec> {
        let mut specs: Vec<ServiceSpec> = self
            .virtual_servers
            .iter()
            .map(VirtualServer::spec)
            .collect();
        crate::service::attach_rules(&mut specs, &self.fwmarks);
        specs
    }
}

impl VirtualServer {
    /// The IPVS service this virtual server is.
    pub fn key(&self) -> ServiceKey {
        if self.fwmark != 0 {
            ServiceKey::fwmark(self.fwmark, self.address.is_ipv6())
        } else {
            ServiceKey::addr(self.protocol, self.address.ip(), self.address.port())
        }
    }

    /// This virtual server as a service spec (real servers in file order).
    pub fn spec(&self) -> ServiceSpec {
        ServiceSpec {
            key: self.key(),
            sched: self.lb_algo,
            sched_flags: self.sched_flags,
            persistence: self.persistence_timeout,
            persistence_prefix: self.persistence_prefix,
            ops: self.ops,
            local_addrs: self.local_address.clone(),
            fwmark_matches: Vec::new(),
            dests: self
                .real_servers
                .iter()
                .map(|rs| DestSpec {
                    addr: rs.address.ip(),
                    port: rs.address.port(),
                    fwd: self.lb_kind,
                    weight: rs.weight,
                    u_threshold: rs.uthreshold,
                    l_threshold: rs.lthreshold,
                    mac: rs.mac,
                    tun: rs.tun,
                })
                .collect(),
        }
    }
}
