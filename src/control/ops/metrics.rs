//! `[metrics] listen`: Prometheus text exposition on `GET /metrics`.
//!
//! Names: node_exporter's IPVS collector (`collector/ipvs_linux.go`) for
//! what IPVS has, so dashboards built on node_exporter work unchanged:
//! the global `node_ipvs_{connections,incoming_packets,outgoing_packets,
//! incoming_bytes,outgoing_bytes}_total` (IPVS's `/proc/net/ip_vs_stats`,
//! which the kernel counts alongside every service's stats: here the sum
//! over services), and per real server `node_ipvs_backend_connections_
//! {active,inactive}` and `node_ipvs_backend_weight` labelled
//! `local_address, local_port, remote_address, remote_port, proto,
//! local_mark` (procfs's values: `proto` `TCP`/`UDP`, `local_mark` empty
//! for an address service). Only real servers in the running table are
//! listed, as IPVS lists them. Everything IPVS never had is `lvsfwd_*`.
//!
//! Encoding: the `prometheus` crate's text encoder (format 0.0.4, what
//! node_exporter serves and `promtool check metrics` lints). A fresh
//! registry per scrape holds the values of one [`Status`]: nothing is
//! updated in between, so a scrape costs nothing when nobody scrapes.
//!
//! Serving: [`MetricsServer`] is a thread of its own on a std
//! `TcpListener` (one request per connection, `Connection: close`); a
//! scrape every few seconds needs no HTTP framework, and nothing here is
//! worth a dependency (tiny_http would bring its own threads and buffers
//! for the same 60 lines). Connections are served one at a time, each
//! bounded by read/write timeouts: a client that sends nothing delays the
//! next scrape by at most [`READ_TIMEOUT`], never the control loop. It asks the control
//! thread for a [`Status`] over a channel and renders it itself, so a slow
//! or stuck client never holds up the control loop, and the workers are
//! never involved beyond the batch-boundary queries listings already make.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{Context, Result};
use prometheus::{
    Encoder, Gauge, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder,
};

use super::{Status, VRRP_STATES};

/// The text format's content type.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";
/// Longest a client may take to send its request.
const READ_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest the control thread may take to answer (it queries the workers).
const STATUS_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest request head read.
const MAX_REQUEST: usize = 8192;
/// Pause after a failed accept (e.g. out of file descriptors).
const POLL: Duration = Duration::from_millis(100);
/// How long stopping waits to connect to the listener.
const WAKE_TIMEOUT: Duration = Duration::from_secs(1);

/// node_exporter's backend label names, in its order.
const BACKEND_LABELS: [&str; 6] = [
    "local_address",
    "local_port",
    "remote_address",
    "remote_port",
    "proto",
    "local_mark",
];

/// Registers and returns one metric (names are literals: a failure is a
/// programming error caught by the tests, reported rather than panicking).
fn reg<M: prometheus::core::Collector + Clone + 'static>(r: &Registry, m: M) -> Result<M> {
    r.register(Box::new(m.clone()))
        .context("registering a metric")?;
    Ok(m)
}

fn counter(r: &Registry, name: &str, help: &str, v: u64) -> Result<()> {
    let c = reg(r, IntCounter::with_opts(Opts::new(name, help))?)?;
    c.inc_by(v);
    Ok(())
}

fn gauge(r: &Registry, name: &str, help: &str, v: i64) -> Result<()> {
    reg(r, IntGauge::with_opts(Opts::new(name, help))?)?.set(v);
    Ok(())
}

fn counter_vec(r: &Registry, name: &str, help: &str, labels: &[&str]) -> Result<IntCounterVec> {
    reg(r, IntCounterVec::new(Opts::new(name, help), labels)?)
}

fn gauge_vec(r: &Registry, name: &str, help: &str, labels: &[&str]) -> Result<IntGaugeVec> {
    reg(r, IntGaugeVec::new(Opts::new(name, help), labels)?)
}

/// `s` as Prometheus text.
pub fn render(s: &Status) -> Result<String> {
    let r = Registry::new();
    // ---- node_exporter's IPVS collector: the totals.
    let mut total = super::Traffic::default();
    for svc in &s.services {
        total.conns += svc.traffic.conns;
        total.inpkts += svc.traffic.inpkts;
        total.outpkts += svc.traffic.outpkts;
        total.inbytes += svc.traffic.inbytes;
        total.outbytes += svc.traffic.outbytes;
    }
    counter(
        &r,
        "node_ipvs_connections_total",
        "The total number of connections made.",
        total.conns,
    )?;
    counter(
        &r,
        "node_ipvs_incoming_packets_total",
        "The total number of incoming packets.",
        total.inpkts,
    )?;
    counter(
        &r,
        "node_ipvs_outgoing_packets_total",
        "The total number of outgoing packets.",
        total.outpkts,
    )?;
    counter(
        &r,
        "node_ipvs_incoming_bytes_total",
        "The total amount of incoming data.",
        total.inbytes,
    )?;
    counter(
        &r,
        "node_ipvs_outgoing_bytes_total",
        "The total amount of outgoing data.",
        total.outbytes,
    )?;
    // ---- ... and per real server.
    let active = gauge_vec(
        &r,
        "node_ipvs_backend_connections_active",
        "The current active connections by local and remote address.",
        &BACKEND_LABELS,
    )?;
    let inactive = gauge_vec(
        &r,
        "node_ipvs_backend_connections_inactive",
        "The current inactive connections by local and remote address.",
        &BACKEND_LABELS,
    )?;
    let weight = gauge_vec(
        &r,
        "node_ipvs_backend_weight",
        "The current backend weight by local and remote address.",
        &BACKEND_LABELS,
    )?;
    // ---- lvsfwd's own, per service and real server.
    let svc_labels = ["local_address", "local_port", "proto"];
    let rs_labels = [
        "local_address",
        "local_port",
        "proto",
        "remote_address",
        "remote_port",
    ];
    let svc_counters: Vec<IntCounterVec> = TRAFFIC
        .iter()
        .map(|(name, help)| {
            counter_vec(
                &r,
                &format!("lvsfwd_service_{name}_total"),
                &format!("{help} of the virtual service."),
                &svc_labels,
            )
        })
        .collect::<Result<_>>()?;
    let rs_counters: Vec<IntCounterVec> = TRAFFIC
        .iter()
        .map(|(name, help)| {
            counter_vec(
                &r,
                &format!("lvsfwd_real_server_{name}_total"),
                &format!("{help} of the real server."),
                &rs_labels,
            )
        })
        .collect::<Result<_>>()?;
    let rs_up = gauge_vec(
        &r,
        "lvsfwd_real_server_up",
        "1 while the real server's health checkers pass (always 1 without checkers).",
        &rs_labels,
    )?;
    let rs_in = gauge_vec(
        &r,
        "lvsfwd_real_server_in_table",
        "1 while the real server is in the running table (health checking may take it out).",
        &rs_labels,
    )?;
    let sorry = gauge_vec(
        &r,
        "lvsfwd_service_sorry_server_active",
        "1 while the sorry server serves the virtual service (quorum lost).",
        &svc_labels,
    )?;
    for svc in &s.services {
        // node_exporter labels a fwmark service (procfs's `FWM` line)
        // with an empty local_address, port 0 and its mark.
        let addr = match svc.fwmark {
            Some(_) => String::new(),
            None => svc.address.to_string(),
        };
        let port = svc.port.to_string();
        let mark = svc.fwmark.map(|m| m.to_string()).unwrap_or_default();
        let sl = [addr.as_str(), port.as_str(), svc.protocol];
        for (c, v) in svc_counters.iter().zip(traffic_values(&svc.traffic)) {
            c.with_label_values(&sl).inc_by(v);
        }
        sorry
            .with_label_values(&sl)
            .set(i64::from(svc.sorry_server_active));
        for rs in &svc.real_servers {
            let (raddr, rport) = (rs.address.to_string(), rs.port.to_string());
            let rl = [
                addr.as_str(),
                port.as_str(),
                svc.protocol,
                raddr.as_str(),
                rport.as_str(),
            ];
            for (c, v) in rs_counters.iter().zip(traffic_values(&rs.traffic)) {
                c.with_label_values(&rl).inc_by(v);
            }
            rs_up.with_label_values(&rl).set(i64::from(rs.alive));
            rs_in
                .with_label_values(&rl)
                .set(i64::from(rs.running_weight.is_some()));
            if let Some(w) = rs.running_weight {
                let bl = [
                    addr.as_str(),
                    port.as_str(),
                    raddr.as_str(),
                    rport.as_str(),
                    svc.protocol,
                    mark.as_str(),
                ];
                active
                    .with_label_values(&bl)
                    .set(i64::from(rs.active_conns));
                inactive
                    .with_label_values(&bl)
                    .set(i64::from(rs.inactive_conns));
                weight.with_label_values(&bl).set(i64::from(w));
            }
        }
    }
    // ---- the data plane.
    let drops = counter_vec(
        &r,
        "lvsfwd_drops_total",
        "Frames the data plane dropped, by reason.",
        &["reason"],
    )?;
    for (reason, n) in &s.drops {
        drops.with_label_values(&[*reason]).inc_by(*n);
    }
    let kernel = counter_vec(
        &r,
        "lvsfwd_to_kernel_frames_total",
        "Frames the data plane handed to the director's own stack, by reason.",
        &["reason"],
    )?;
    for (reason, n) in &s.to_kernel {
        kernel.with_label_values(&[*reason]).inc_by(*n);
    }
    let wl = ["worker", "queue"];
    let frames = counter_vec(
        &r,
        "lvsfwd_worker_frames_total",
        "Frames a worker handled, by what became of them (rx: received; tx: sent; \
         pass: left to the kernel by the XDP verdict; drop: dropped; to_kernel: written to \
         the kernel port; kernel_port_drop, steer_drop, tx_ring_full, kernel_rx_dropped: lost \
         for want of room; steered_out: handed to the worker owning the flow).",
        &["worker", "queue", "outcome"],
    )?;
    let busy = reg(
        &r,
        prometheus::CounterVec::new(
            Opts::new(
                "lvsfwd_worker_busy_seconds_total",
                "Time a worker spent in rounds that had frames to move.",
            ),
            &wl,
        )?,
    )?;
    let zc = gauge_vec(
        &r,
        "lvsfwd_xsk_zero_copy",
        "1 when the worker's AF_XDP sockets run in zero-copy mode, 0 in copy mode.",
        &wl,
    )?;
    for w in &s.workers {
        let (wi, q) = (w.worker.to_string(), w.queue.to_string());
        for (outcome, v) in [
            ("rx", w.rx),
            ("tx", w.tx),
            ("pass", w.pass),
            ("drop", w.drop),
            ("to_kernel", w.to_kernel),
            ("kernel_port_drop", w.kernel_port_drop),
            ("steered_out", w.steered_out),
            ("steer_drop", w.steer_drop),
            ("tx_ring_full", w.tx_ring_full),
            ("kernel_rx_dropped", w.kernel_rx_dropped),
        ] {
            frames
                .with_label_values(&[wi.as_str(), q.as_str(), outcome])
                .inc_by(v);
        }
        busy.with_label_values(&[wi.as_str(), q.as_str()])
            .inc_by(w.busy_seconds);
        zc.with_label_values(&[wi.as_str(), q.as_str()])
            .set(i64::from(w.zero_copy));
    }
    gauge(
        &r,
        "lvsfwd_conn_table_entries",
        "Connections and persistence templates in the connection table (all workers).",
        s.conn_table.entries as i64,
    )?;
    gauge(
        &r,
        "lvsfwd_conn_table_capacity",
        "Capacity of the connection table (all workers).",
        s.conn_table.capacity as i64,
    )?;
    counter(
        &r,
        "lvsfwd_conn_table_evictions_total",
        "Entries reclaimed because the connection table was full.",
        s.conn_table.evictions,
    )?;
    let xdp = gauge_vec(
        &r,
        "lvsfwd_xdp_mode",
        "1 for the mode lvsfwd's XDP program is attached in on the interface.",
        &["interface", "mode"],
    )?;
    for x in &s.xdp {
        for m in ["native", "generic"] {
            xdp.with_label_values(&[x.interface.as_str(), m])
                .set(i64::from(x.mode == m));
        }
    }
    // ---- VRRP.
    let state = gauge_vec(
        &r,
        "lvsfwd_vrrp_state",
        "1 for the VRRP instance's current state, 0 for the others.",
        &["instance", "interface", "state"],
    )?;
    let prio = gauge_vec(
        &r,
        "lvsfwd_vrrp_priority",
        "The priority the VRRP instance advertises.",
        &["instance", "interface"],
    )?;
    let adverts = counter_vec(
        &r,
        "lvsfwd_vrrp_adverts_total",
        "VRRP adverts received (accepted) and sent.",
        &["instance", "interface", "direction"],
    )?;
    let rejected = counter_vec(
        &r,
        "lvsfwd_vrrp_adverts_rejected_total",
        "Received VRRP adverts dropped, by reason.",
        &["instance", "interface", "reason"],
    )?;
    let transitions = counter_vec(
        &r,
        "lvsfwd_vrrp_became_master_total",
        "Times the VRRP instance became master.",
        &["instance", "interface"],
    )?;
    for v in &s.vrrp_instances {
        let (n, i) = (v.name.as_str(), v.interface.as_str());
        for st in VRRP_STATES {
            state
                .with_label_values(&[n, i, st])
                .set(i64::from(v.state == st));
        }
        prio.with_label_values(&[n, i]).set(i64::from(v.priority));
        adverts
            .with_label_values(&[n, i, "rx"])
            .inc_by(v.adverts_rx);
        adverts
            .with_label_values(&[n, i, "tx"])
            .inc_by(v.adverts_tx);
        for (reason, c) in &v.rejected {
            rejected.with_label_values(&[n, i, reason]).inc_by(*c);
        }
        transitions
            .with_label_values(&[n, i])
            .inc_by(v.became_master);
    }
    let sync = &s.sync;
    let role = gauge_vec(
        &r,
        "lvsfwd_sync_daemon_running",
        "1 while connection sync's thread of this role runs.",
        &["role"],
    )?;
    role.with_label_values(&["master"])
        .set(i64::from(sync.master));
    role.with_label_values(&["backup"])
        .set(i64::from(sync.backup));
    let msgs = counter_vec(
        &r,
        "lvsfwd_sync_messages_total",
        "IPVS sync messages sent (master) and taken (backup).",
        &["direction"],
    )?;
    msgs.with_label_values(&["sent"]).inc_by(sync.sent_messages);
    msgs.with_label_values(&["received"])
        .inc_by(sync.received_messages);
    counter(
        &r,
        "lvsfwd_sync_sent_bytes_total",
        "UDP payload bytes of the sync messages sent.",
        sync.sent_bytes,
    )?;
    let conns = counter_vec(
        &r,
        "lvsfwd_sync_conns_total",
        "Connection entries synced, by what happened to them.",
        &["event"],
    )?;
    for (event, v) in [
        ("sent", sync.sent_conns),
        ("received", sync.received_conns),
        ("created", sync.applied_created),
        ("updated", sync.applied_updated),
        ("no_dest", sync.applied_no_dest),
        ("refused", sync.refused_conns + sync.applied_refused),
        ("mixed_family", sync.mixed_family),
        ("not_v0", sync.not_v0),
    ] {
        conns.with_label_values(&[event]).inc_by(v);
    }
    let errors = counter_vec(
        &r,
        "lvsfwd_sync_errors_total",
        "Sync traffic lost, by reason.",
        &["reason"],
    )?;
    for (reason, v) in [
        ("send_error", sync.send_errors),
        ("wrong_syncid", sync.wrong_syncid),
        ("malformed", sync.malformed),
        ("queue_full_to_sender", sync.queue_drops_out),
        ("queue_full_to_worker", sync.queue_drops_in),
    ] {
        errors.with_label_values(&[reason]).inc_by(v);
    }
    let tables = counter_vec(
        &r,
        "lvsfwd_sync_tables_total",
        "Whole connection tables sent to a returning director, or received.",
        &["direction"],
    )?;
    tables.with_label_values(&["sent"]).inc_by(sync.tables_sent);
    tables
        .with_label_values(&["received"])
        .inc_by(sync.tables_received);
    let up = reg(
        &r,
        Gauge::with_opts(Opts::new(
            "lvsfwd_uptime_seconds",
            "Seconds since lvsfwd started serving.",
        ))?,
    )?;
    up.set(s.uptime_seconds);
    let mut buf = Vec::new();
    TextEncoder::new()
        .encode(&r.gather(), &mut buf)
        .context("encoding the metrics")?;
    String::from_utf8(buf).context("the metrics are not UTF-8")
}

/// The traffic counters' metric names and help, in [`traffic_values`]'s
/// order.
const TRAFFIC: [(&str, &str); 5] = [
    ("connections", "Connections scheduled"),
    ("incoming_packets", "Packets from clients"),
    ("outgoing_packets", "Packets from real servers"),
    ("incoming_bytes", "Bytes from clients"),
    ("outgoing_bytes", "Bytes from real servers"),
];

fn traffic_values(t: &super::Traffic) -> [u64; 5] {
    [t.conns, t.inpkts, t.outpkts, t.inbytes, t.outbytes]
}

/// A scrape's question to the control thread: answer with a [`Status`].
pub type StatusRequest = mpsc::Sender<Status>;

/// The metrics thread.
pub struct MetricsServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    handle: JoinHandle<()>,
}

impl MetricsServer {
    /// Binds `addr` (errors here, before anything runs) and starts serving;
    /// each scrape sends a [`StatusRequest`] on `ask`.
    pub fn start(addr: SocketAddr, ask: mpsc::Sender<StatusRequest>) -> Result<MetricsServer> {
        let listener =
            TcpListener::bind(addr).with_context(|| format!("[metrics] listen {addr}"))?;
        let addr = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let handle = std::thread::Builder::new()
            .name("lvsfwd-metrics".into())
            .spawn(move || serve(listener, ask, flag))
            .context("starting the metrics thread")?;
        Ok(MetricsServer { addr, stop, handle })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops the thread: it blocks in `accept`, so a connection of our own
    /// wakes it.
    pub fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        let mut wake = self.addr;
        if wake.ip().is_unspecified() {
            wake.set_ip(match wake {
                SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
                SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
            });
        }
        if let Err(e) = TcpStream::connect_timeout(&wake, WAKE_TIMEOUT) {
            log::warn!("metrics: waking the thread to stop it: {e}; left running");
            return;
        }
        if self.handle.join().is_err() {
            log::error!("the metrics thread panicked");
        }
    }
}

fn serve(listener: TcpListener, ask: mpsc::Sender<StatusRequest>, stop: Arc<AtomicBool>) {
    loop {
        let accepted = listener.accept();
        if stop.load(Ordering::Relaxed) {
            return;
        }
        match accepted {
            Ok((mut stream, peer)) => {
                if let Err(e) = answer(&mut stream, &ask) {
                    log::debug!("metrics: {peer}: {e:#}");
                }
            }
            Err(e) => {
                log::warn!("metrics: accept: {e}");
                std::thread::sleep(POLL);
            }
        }
    }
}

/// What a request asks for.
#[derive(Debug, PartialEq, Eq)]
pub enum Route {
    Metrics,
    NotFound,
    MethodNotAllowed,
    BadRequest,
}

/// Routes a request head (`GET /metrics HTTP/1.1 ...`): `GET` or `HEAD` of
/// `/metrics` (any query string) is the only resource.
pub fn route(head: &[u8]) -> Route {
    let line = head.split(|&b| b == b'\n').next().unwrap_or_default();
    let Ok(line) = std::str::from_utf8(line) else {
        return Route::BadRequest;
    };
    let mut it = line.trim_end_matches('\r').split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (it.next(), it.next(), it.next(), it.next())
    else {
        return Route::BadRequest;
    };
    if !version.starts_with("HTTP/1.") {
        return Route::BadRequest;
    }
    let path = target.split('?').next().unwrap_or_default();
    match (method, path) {
        ("GET" | "HEAD", "/metrics") => Route::Metrics,
        ("GET" | "HEAD", _) => Route::NotFound,
        _ => Route::MethodNotAllowed,
    }
}

fn answer(stream: &mut TcpStream, ask: &mpsc::Sender<StatusRequest>) -> Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(READ_TIMEOUT))?;
    stream.set_write_timeout(Some(READ_TIMEOUT))?;
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < MAX_REQUEST {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    let head_only = head.starts_with(b"HEAD ");
    let (status, ctype, body) = match route(&head) {
        Route::Metrics => {
            let (tx, rx) = mpsc::channel();
            ask.send(tx).context("the control thread is gone")?;
            match rx.recv_timeout(STATUS_TIMEOUT) {
                Ok(s) => match render(&s) {
                    Ok(text) => ("200 OK", CONTENT_TYPE, text),
                    Err(e) => (
                        "500 Internal Server Error",
                        "text/plain",
                        format!("{e:#}\n"),
                    ),
                },
                Err(_) => (
                    "503 Service Unavailable",
                    "text/plain",
                    "the control thread did not answer\n".to_string(),
                ),
            }
        }
        Route::NotFound => (
            "404 Not Found",
            "text/plain",
            "lvsfwd serves /metrics only\n".to_string(),
        ),
        Route::MethodNotAllowed => (
            "405 Method Not Allowed",
            "text/plain",
            "GET /metrics\n".to_string(),
        ),
        Route::BadRequest => (
            "400 Bad Request",
            "text/plain",
            "not an HTTP/1 request\n".to_string(),
        ),
    };
    let mut out = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    if !head_only {
        out.extend_from_slice(body.as_bytes());
    }
    stream.write_all(&out)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::*;
    use super::*;

    fn status() -> Status {
        let rs = |a: &str, w: Option<i32>, alive: bool| RealServerStatus {
            address: a.parse().unwrap(),
            port: 80,
            forward: "Route",
            weight: 1,
            running_weight: w,
            alive,
            checkers: vec!["TCP_CHECK".into()],
            active_conns: 3,
            inactive_conns: 2,
            persistent_conns: 0,
            traffic: Traffic {
                conns: 5,
                inpkts: 50,
                outpkts: 0,
                inbytes: 5000,
                outbytes: 0,
            },
        };
        Status {
            uptime_seconds: 1.5,
            services: vec![ServiceStatus {
                protocol: "TCP",
                fwmark: None,
                address: "198.18.0.250".parse().unwrap(),
                port: 80,
                scheduler: "rr",
                persistence_secs: None,
                sorry_server: None,
                sorry_server_active: false,
                traffic: Traffic {
                    conns: 5,
                    inpkts: 50,
                    outpkts: 0,
                    inbytes: 5000,
                    outbytes: 0,
                },
                real_servers: vec![
                    rs("198.18.0.11", Some(1), true),
                    rs("2001:2::12", None, false),
                ],
            }],
            vrrp_instances: vec![VrrpInstanceStatus {
                name: "VI_1".into(),
                interface: "eth0".into(),
                virtual_router_id: 51,
                state: "MASTER",
                priority: 150,
                master: None,
                virtual_ipaddress: vec![],
                adverts_rx: 1,
                adverts_tx: 9,
                priority_zero_rx: 0,
                priority_zero_tx: 0,
                became_master: 1,
                released_master: 0,
                rejected: vec![("ttl", 2)],
            }],
            workers: vec![WorkerStatus {
                worker: 0,
                queue: 0,
                core: 1,
                zero_copy: false,
                rx: 60,
                tx: 50,
                pass: 0,
                drop: 10,
                to_kernel: 0,
                kernel_port_drop: 0,
                steered_out: 0,
                steer_drop: 0,
                tx_ring_full: 0,
                kernel_rx_dropped: 0,
                busy_seconds: 0.25,
            }],
            drops: vec![("no_dest", 7), ("bad_checksum", 0)],
            to_kernel: vec![("no_conn", 1)],
            conn_table: ConnTableStatus {
                entries: 5,
                capacity: 1024,
                evictions: 0,
            },
            xdp: vec![XdpStatus {
                interface: "eth0".into(),
                mode: "native".into(),
            }],
            sync: SyncStatus {
                master: true,
                sent_messages: 3,
                sent_conns: 40,
                sent_bytes: 1608,
                applied_no_dest: 2,
                queue_drops_out: 1,
                ..SyncStatus::default()
            },
        }
    }

    #[test]
    fn fwmark_services_label_as_node_exporter_does() {
        let mut st = status();
        st.services[0].protocol = "FWM";
        st.services[0].fwmark = Some(7);
        st.services[0].address = "0.0.0.0".parse().unwrap();
        st.services[0].port = 0;
        let t = render(&st).unwrap();
        assert!(t.contains("node_ipvs_backend_weight{local_address=\"\",local_mark=\"7\",local_port=\"0\",proto=\"FWM\",remote_address=\"198.18.0.11\",remote_port=\"80\"} 1"), "{t}");
    }

    #[test]
    fn node_exporter_names_and_labels() {
        let t = render(&status()).unwrap();
        for line in [
            "# TYPE node_ipvs_connections_total counter",
            "node_ipvs_connections_total 5",
            "node_ipvs_incoming_packets_total 50",
            "node_ipvs_incoming_bytes_total 5000",
            "node_ipvs_outgoing_packets_total 0",
            "node_ipvs_outgoing_bytes_total 0",
            "# TYPE node_ipvs_backend_weight gauge",
            "node_ipvs_backend_weight{local_address=\"198.18.0.250\",local_mark=\"\",local_port=\"80\",proto=\"TCP\",remote_address=\"198.18.0.11\",remote_port=\"80\"} 1",
            "node_ipvs_backend_connections_active{local_address=\"198.18.0.250\",local_mark=\"\",local_port=\"80\",proto=\"TCP\",remote_address=\"198.18.0.11\",remote_port=\"80\"} 3",
            "node_ipvs_backend_connections_inactive{local_address=\"198.18.0.250\",local_mark=\"\",local_port=\"80\",proto=\"TCP\",remote_address=\"198.18.0.11\",remote_port=\"80\"} 2",
        ] {
            assert!(t.lines().any(|l| l == line), "missing `{line}` in:\n{t}");
        }
        // A real server out of the running table is no IPVS backend...
        assert!(
            !t.lines()
                .any(|l| l.starts_with("node_ipvs_backend") && l.contains("2001:2::12"))
        );
        // ... but lvsfwd says why.
        assert!(t.contains("lvsfwd_real_server_up{local_address=\"198.18.0.250\",local_port=\"80\",proto=\"TCP\",remote_address=\"2001:2::12\",remote_port=\"80\"} 0"));
        assert!(t.contains("lvsfwd_real_server_in_table{local_address=\"198.18.0.250\",local_port=\"80\",proto=\"TCP\",remote_address=\"2001:2::12\",remote_port=\"80\"} 0"));
    }

    #[test]
    fn lvsfwd_series() {
        let t = render(&status()).unwrap();
        for line in [
            "lvsfwd_drops_total{reason=\"no_dest\"} 7",
            "lvsfwd_drops_total{reason=\"bad_checksum\"} 0",
            "lvsfwd_to_kernel_frames_total{reason=\"no_conn\"} 1",
            "lvsfwd_worker_frames_total{outcome=\"rx\",queue=\"0\",worker=\"0\"} 60",
            "lvsfwd_worker_busy_seconds_total{queue=\"0\",worker=\"0\"} 0.25",
            "lvsfwd_xsk_zero_copy{queue=\"0\",worker=\"0\"} 0",
            "lvsfwd_conn_table_entries 5",
            "lvsfwd_sync_daemon_running{role=\"master\"} 1",
            "lvsfwd_sync_daemon_running{role=\"backup\"} 0",
            "lvsfwd_sync_messages_total{direction=\"sent\"} 3",
            "lvsfwd_sync_sent_bytes_total 1608",
            "lvsfwd_sync_conns_total{event=\"sent\"} 40",
            "lvsfwd_sync_conns_total{event=\"no_dest\"} 2",
            "lvsfwd_sync_errors_total{reason=\"queue_full_to_sender\"} 1",
            "lvsfwd_sync_tables_total{direction=\"received\"} 0",
            "lvsfwd_conn_table_capacity 1024",
            "lvsfwd_conn_table_evictions_total 0",
            "lvsfwd_xdp_mode{interface=\"eth0\",mode=\"native\"} 1",
            "lvsfwd_xdp_mode{interface=\"eth0\",mode=\"generic\"} 0",
            "lvsfwd_vrrp_state{instance=\"VI_1\",interface=\"eth0\",state=\"MASTER\"} 1",
            "lvsfwd_vrrp_state{instance=\"VI_1\",interface=\"eth0\",state=\"BACKUP\"} 0",
            "lvsfwd_vrrp_priority{instance=\"VI_1\",interface=\"eth0\"} 150",
            "lvsfwd_vrrp_adverts_rejected_total{instance=\"VI_1\",interface=\"eth0\",reason=\"ttl\"} 2",
            "lvsfwd_service_connections_total{local_address=\"198.18.0.250\",local_port=\"80\",proto=\"TCP\"} 5",
            "lvsfwd_uptime_seconds 1.5",
        ] {
            assert!(t.lines().any(|l| l == line), "missing `{line}` in:\n{t}");
        }
    }

    #[test]
    fn an_empty_director_still_renders() {
        let t = render(&Status::default()).unwrap();
        assert!(t.contains("node_ipvs_connections_total 0"));
    }

    #[test]
    fn only_get_metrics_is_served() {
        assert_eq!(
            route(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"),
            Route::Metrics
        );
        assert_eq!(route(b"GET /metrics?x=1 HTTP/1.0\r\n\r\n"), Route::Metrics);
        assert_eq!(route(b"HEAD /metrics HTTP/1.1\r\n\r\n"), Route::Metrics);
        assert_eq!(route(b"GET / HTTP/1.1\r\n\r\n"), Route::NotFound);
        assert_eq!(route(b"GET /metricsx HTTP/1.1\r\n\r\n"), Route::NotFound);
        assert_eq!(
            route(b"POST /metrics HTTP/1.1\r\n\r\n"),
            Route::MethodNotAllowed
        );
        assert_eq!(route(b"GET /metrics\r\n\r\n"), Route::BadRequest);
        assert_eq!(route(b"\xff\xfe"), Route::BadRequest);
        assert_eq!(route(b""), Route::BadRequest);
    }

    /// Every series name configs/grafana-lvsfwd.json queries is one lvsfwd
    /// serves (a renamed metric would leave a dashboard panel empty).
    #[test]
    fn the_grafana_dashboard_queries_only_served_names() {
        let served: std::collections::BTreeSet<String> = render(&status())
            .unwrap()
            .lines()
            .filter_map(|l| l.strip_prefix("# TYPE "))
            .filter_map(|l| l.split_whitespace().next())
            .map(String::from)
            .collect();
        let dash: serde_json::Value =
            serde_json::from_str(include_str!("../../../configs/grafana-lvsfwd.json")).unwrap();
        let mut used = std::collections::BTreeSet::new();
        for p in dash["panels"].as_array().unwrap() {
            for t in p["targets"].as_array().into_iter().flatten() {
                let expr = t["expr"].as_str().unwrap();
                // Identifiers that start a series name.
                let mut cur = String::new();
                for c in expr.chars().chain(std::iter::once(' ')) {
                    if c.is_ascii_alphanumeric() || c == '_' {
                        cur.push(c);
                    } else {
                        if cur.starts_with("node_ipvs_") || cur.starts_with("lvsfwd_") {
                            used.insert(std::mem::take(&mut cur));
                        }
                        cur.clear();
                    }
                }
            }
        }
        assert!(used.len() >= 15, "{used:?}");
        let missing: Vec<_> = used.difference(&served).collect();
        assert!(missing.is_empty(), "the dashboard queries {missing:?}");
    }

    /// The server on a real socket: `/metrics` is the control side's
    /// answer rendered, other paths 404, and it stops when told.
    #[test]
    fn serves_over_tcp_and_stops() {
        let (tx, rx) = mpsc::channel::<StatusRequest>();
        let m = MetricsServer::start("127.0.0.1:0".parse().unwrap(), tx).unwrap();
        let addr = m.addr();
        let answerer = std::thread::spawn(move || {
            // One scrape to answer.
            let ask = rx.recv_timeout(Duration::from_secs(5)).unwrap();
            ask.send(status()).unwrap();
        });
        let get = |path: &str| {
            let mut s = TcpStream::connect(addr).unwrap();
            write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
            let mut out = String::new();
            s.read_to_string(&mut out).unwrap();
            out
        };
        let ok = get("/metrics");
        assert!(ok.starts_with("HTTP/1.1 200 OK\r\n"), "{ok}");
        assert!(ok.contains(&format!("Content-Type: {CONTENT_TYPE}\r\n")));
        assert!(ok.contains("\nnode_ipvs_connections_total 5\n"));
        answerer.join().unwrap();
        assert!(get("/").starts_with("HTTP/1.1 404 Not Found\r\n"));
        m.stop();
        assert!(TcpStream::connect(addr).is_err(), "still listening");
    }
}
