//! The admin socket protocol between `lvsadm` and the daemon, and the
//! daemon's side of one request ([`serve_one`]).
//!
//! Wire format: over a Unix stream socket, the client sends one
//! [`Request`] as a single line of JSON (`\n`-terminated; JSON escapes
//! newlines inside strings) and the daemon answers with one [`Response`]
//! line, then the connection is done. Newline-delimited JSON needs no
//! length arithmetic, is readable with `socat` while debugging, and every
//! field is versioned by `version`.
//!
//! Why the request carries lvsadm's raw `argv` rather than a typed
//! command: the daemon parses it with the very same [`cmd::parse_args`]
//! the client used to reject bad arguments early, so there is one parser
//! and nothing to keep in sync between a typed wire format and ipvsadm's
//! grammar; an older lvsadm talking to a newer daemon still gets the
//! daemon's semantics. `-R` input travels in `stdin`.
//!
//! The response carries the exact text lvsadm prints on stdout and stderr
//! and its exit code, so the client is a dumb pipe.
//!
//! Invariants: [`serve_one`] changes `state` only through [`apply`], so a
//! refused command leaves it untouched; `Response::changed` tells the
//! daemon when to publish the new table.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::IpAddr;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::admin::apply::{AdminState, ApplyError, apply};
use crate::admin::cmd::{self, AdminCommand, ListWhat};
use crate::admin::listing::{self, ListOptions, RateSnapshot};
use crate::config::DEFAULT_ADMIN_SOCKET;
use crate::service::{ServiceKey, ServiceTable};
use crate::view::{ConnView, LiveService, ServiceRates};

/// The protocol version this build speaks.
pub const PROTOCOL_VERSION: u32 = 1;

/// Requests larger than this are refused (a restore of ~100k rules fits).
pub const MAX_REQUEST_BYTES: u64 = 16 << 20;

/// The environment variable naming the socket.
pub const SOCKET_ENV: &str = "LVSFWD_SOCKET";

/// One lvsadm invocation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    pub version: u32,
    /// lvsadm's arguments after the program name, `--socket` removed.
    pub argv: Vec<String>,
    /// Standard input, for `-R`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stdin: Option<String>,
}

impl Request {
    pub fn new(argv: Vec<String>, stdin: Option<String>) -> Request {
        Request {
            version: PROTOCOL_VERSION,
            argv,
            stdin,
        }
    }
}

/// What lvsadm prints and returns.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Response {
    pub version: u32,
    pub stdout: String,
    pub stderr: String,
    pub exit_code: i32,
    /// Daemon side only: the state changed and must be published.
    #[serde(skip)]
    pub changed: bool,
}

/// What only the running data plane knows; the daemon implements it.
pub trait ListingSource {
    /// The connection table's size, for `(size=N)`.
    fn conn_tab_size(&self) -> usize;
    /// Live counters of a service; `None` = not (yet) running: zeros.
    fn live(&self, key: &ServiceKey) -> Option<LiveService>;
    /// Every connection and persistence template, for `-L -c`.
    fn connections(&self) -> Vec<ConnView>;
    /// `-Z`: zero the counters of one service or of all.
    fn zero_counters(&self, svc: Option<&ServiceKey>);
    /// `-P`: the name of the served NIC that has `addr` among its
    /// addresses, or why `addr` cannot be a FULLNAT local address (the
    /// message names it): replies to it must reach a NIC lvsfwd serves.
    fn local_address_nic(&self, addr: std::net::IpAddr) -> Result<String, String>;
    /// The sync daemon's commands (`--start-daemon`, `--stop-daemon`,
    /// `-L --daemon`): what to print, or the error. A source without a
    /// sync daemon (replay, tests) refuses them.
    fn sync_daemon(&self, cmd: &AdminCommand) -> Result<String, String> {
        let _ = cmd;
        Err("the connection synchronization daemon runs only in lvsfwd".into())
    }
}

/// The table a listing shows: the canonical state with live counters.
fn listing_table(state: &AdminState, view: &dyn ListingSource) -> (ServiceTable, RateSnapshot) {
    let mut table = ServiceTable::from_specs(&state.services);
    let mut rates = RateSnapshot::default();
    for s in table.services.iter_mut() {
        let live = view.live(&s.key).unwrap_or_default();
        s.stats = live.stats;
        let mut sr = ServiceRates {
            service: live.rates,
            dests: Vec::with_capacity(s.dests.len()),
        };
        for d in s.dests.iter_mut() {
            let l = live
                .dests
                .iter()
                .find(|l| l.addr == d.addr && l.port == d.port);
            if let Some(l) = l {
                d.active_conns = l.active_conns;
                d.inact_conns = l.inact_conns;
                d.persist_conns = l.persist_conns;
                d.stats = l.stats;
                // IPVS lists the method the dest runs with: Local while
                // its address is the director's.
                d.set_local(l.local);
            }
            sr.dests.push(l.map(|l| l.rates).unwrap_or_default());
        }
        rates.services.push(sr);
    }
    (table, rates)
}

/// Output being assembled for one request.
#[derive(Default)]
struct Out {
    stdout: String,
    stderr: String,
    failed: bool,
    changed: bool,
}

impl Out {
    fn error(&mut self, msg: &str) {
        self.stderr.push_str(msg);
        self.stderr.push('\n');
        self.failed = true;
    }
}

fn list(
    state: &AdminState,
    view: &dyn ListingSource,
    what: &ListWhat,
    opts: &ListOptions,
    out: &mut Out,
) {
    let r = match what {
        ListWhat::All => {
            let (t, rates) = listing_table(state, view);
            listing::list_services(
                &mut out.stdout,
                &t,
                opts,
                view.conn_tab_size(),
                Some(&rates),
            )
        }
        ListWhat::Service(key) => match state.services.iter().position(|s| s.key == *key) {
            None => {
                out.error(&ApplyError::NoSuchService.to_string());
                Ok(())
            }
            Some(i) => {
                let (t, rates) = listing_table(state, view);
                listing::list_service(&mut out.stdout, &t, i, opts, Some(&rates))
            }
        },
        ListWhat::Connections => listing::list_conns(&mut out.stdout, &view.connections(), opts),
        ListWhat::Daemon => {
            let cmd = AdminCommand::List {
                what: ListWhat::Daemon,
                opts: *opts,
                nosort: false,
            };
            match view.sync_daemon(&cmd) {
                Ok(text) => out.stdout.push_str(&text),
                Err(e) => out.error(&e),
            }
            Ok(())
        }
        ListWhat::Timeouts => listing::list_timeouts(
            &mut out.stdout,
            state.timeouts.tcp,
            state.timeouts.tcp_fin,
            state.timeouts.udp,
        ),
    };
    // Writing into a String cannot fail.
    debug_assert!(r.is_ok());
}

/// Runs one parsed command (not `-R`) against `state`.
fn execute(state: &mut AdminState, cmd: &AdminCommand, view: &dyn ListingSource, out: &mut Out) {
    match cmd {
        AdminCommand::Help => out.stdout.push_str(&cmd::usage_text()),
        AdminCommand::Version => out.stdout.push_str(&cmd::version_text()),
        AdminCommand::List { what, opts, .. } => list(state, view, what, opts, out),
        AdminCommand::Save { .. } => {
            // With the data plane's methods: ipvsadm saves a Local dest as -g.
            let (t, _) = listing_table(state, view);
            let r = listing::save_rules(&mut out.stdout, &t);
            debug_assert!(r.is_ok());
        }
        AdminCommand::Restore => out.error(cmd::CmdError::try_help().message()),
        AdminCommand::GetLaddr(key) => {
            let chosen: Vec<&crate::service::ServiceSpec> = match key {
                None => state.services.iter().collect(),
                Some(k) => match state.service(k) {
                    Some(s) => vec![s],
                    None => return out.error(&ApplyError::ServiceNotDefined.to_string()),
                },
            };
            let conns = view.connections();
            let conflicts = |s: &crate::service::ServiceSpec, l| {
                view.live(&s.key).map_or(0, |live| live.conflicts_of(l))
            };
            let r = listing::list_laddrs(&mut out.stdout, &chosen, &conns, &conflicts);
            debug_assert!(r.is_ok());
        }
        AdminCommand::AddLaddr { addr, ifname, .. } => {
            match laddr_nic(view, *addr, ifname.as_deref()) {
                Err(e) => out.error(&e),
                Ok(()) => change(state, cmd, view, out),
            }
        }
        AdminCommand::StartDaemon(_) | AdminCommand::StopDaemon(_) => match view.sync_daemon(cmd) {
            Ok(text) => out.stdout.push_str(&text),
            Err(e) => out.error(&e),
        },
        other => change(state, other, view, out),
    }
}

/// Applies a command that changes the table (or `-Z`).
fn change(state: &mut AdminState, cmd: &AdminCommand, view: &dyn ListingSource, out: &mut Out) {
    match apply(state, cmd) {
        Err(e) => out.error(&e.to_string()),
        Ok(next) => {
            if let AdminCommand::Zero(key) = cmd {
                view.zero_counters(key.as_ref());
            }
            if next != *state {
                *state = next;
                out.changed = true;
            }
        }
    }
}

/// `-P -z ADDR [-F IFNAME]`: `addr` must be an address of a served NIC
/// (of `ifname`, when given).
fn laddr_nic(view: &dyn ListingSource, addr: IpAddr, ifname: Option<&str>) -> Result<(), String> {
    let nic = view
        .local_address_nic(addr)
        .map_err(|e| format!("-z {addr}: {e}"))?;
    match ifname {
        Some(want) if want != nic => Err(format!(
            "-F {want}: local address {addr} is on {nic}, not on {want}"
        )),
        _ => Ok(()),
    }
}

/// Handles one request: parses `argv` exactly as lvsadm did, applies it to
/// `state` (only on success) and renders what lvsadm must print.
pub fn serve_one(state: &mut AdminState, req: &Request, view: &dyn ListingSource) -> Response {
    let mut out = Out::default();
    if req.version != PROTOCOL_VERSION {
        out.error(&format!(
            "lvsfwd: admin protocol version {} is not supported (this daemon speaks {PROTOCOL_VERSION})",
            req.version
        ));
        return finish(out);
    }
    match cmd::parse_args(&req.argv) {
        Err(e) => out.error(e.message()),
        Ok(AdminCommand::Restore) => {
            let text = req.stdin.as_deref().unwrap_or("");
            match cmd::parse_restore(text) {
                Err((line, e)) => {
                    out.error(e.message());
                    out.error(&format!(
                        "{}: -R input line {line} refused; nothing was changed",
                        cmd::PROGRAM
                    ));
                }
                // As ipvsadm, a line the table refuses is reported and the
                // following lines still run.
                Ok(cmds) => {
                    for c in &cmds {
                        execute(state, c, view, &mut out);
                    }
                }
            }
        }
        Ok(c) => execute(state, &c, view, &mut out),
    }
    finish(out)
}

fn finish(out: Out) -> Response {
    Response {
        version: PROTOCOL_VERSION,
        stdout: out.stdout,
        stderr: out.stderr,
        exit_code: if out.failed { 1 } else { 0 },
        changed: out.changed,
    }
}

/// `--socket PATH`, else `$LVSFWD_SOCKET`, else the default path.
pub fn socket_path(arg: Option<&str>) -> PathBuf {
    socket_path_with(arg, std::env::var(SOCKET_ENV).ok().as_deref())
}

fn socket_path_with(arg: Option<&str>, env: Option<&str>) -> PathBuf {
    match (arg, env) {
        (Some(a), _) => PathBuf::from(a),
        (None, Some(e)) if !e.is_empty() => PathBuf::from(e),
        _ => PathBuf::from(DEFAULT_ADMIN_SOCKET),
    }
}

/// Writes one message as a JSON line.
pub fn write_message<T: Serialize>(w: &mut impl Write, msg: &T) -> io::Result<()> {
    let mut line = serde_json::to_vec(msg).map_err(io::Error::other)?;
    line.push(b'\n');
    w.write_all(&line)?;
    w.flush()
}

/// Reads one JSON line (at most [`MAX_REQUEST_BYTES`]).
pub fn read_message<T: for<'de> Deserialize<'de>>(r: impl Read) -> io::Result<T> {
    let mut line = Vec::new();
    BufReader::new(r.take(MAX_REQUEST_BYTES)).read_until(b'\n', &mut line)?;
    if line.last() != Some(&b'\n') {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "admin message not terminated by a newline (closed early or too large)",
        ));
    }
    serde_json::from_slice(&line).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

/// Daemon side of one connection: reads a request, serves it, writes the
/// response. Returns the response (check `changed` to publish).
pub fn serve_stream(
    stream: &mut (impl Read + Write),
    state: &mut AdminState,
    view: &dyn ListingSource,
) -> io::Result<Response> {
    let resp = match read_message::<Request>(&mut *stream) {
        Ok(req) => serve_one(state, &req, view),
        Err(e) => {
            let mut out = Out::default();
            out.error(&format!("lvsfwd: malformed admin request: {e}"));
            finish(out)
        }
    };
    write_message(stream, &resp)?;
    Ok(resp)
}

/// Client side: connects to the daemon's socket.
pub fn connect(path: &Path) -> io::Result<UnixStream> {
    let s = UnixStream::connect(path)?;
    // A wedged daemon must not hang scripts forever.
    s.set_read_timeout(Some(Duration::from_secs(60)))?;
    Ok(s)
}

/// Client side: sends `req` on a connected stream, returns the answer.
pub fn exchange(stream: &mut UnixStream, req: &Request) -> io::Result<Response> {
    write_message(stream, req)?;
    read_message(stream)
}

/// Client side: [`connect`] then [`exchange`].
pub fn call(path: &Path, req: &Request) -> io::Result<Response> {
    exchange(&mut connect(path)?, req)
}

#[cfg(test)]
mod tests;
