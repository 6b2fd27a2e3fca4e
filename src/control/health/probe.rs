//! The probes: blocking, bounded, through the kernel's own network stack.
//!
//! TCP_CHECK and HTTP_GET open ordinary kernel sockets (socket2, bound to
//! `bindto` when given) from the director's own address; their replies are
//! addressed to that address, which lvsfwd's XDP program hands to the
//! kernel, so probes work while the data plane runs on the same NIC.
//! MISC_CHECK runs the script directly (argument vector, no shell) in its
//! own process group, and on timeout signals the whole group: SIGTERM, then
//! SIGKILL 2 s later, as keepalived does.
//!
//! Every call returns within its timeouts (MISC: misc_timeout + 2 s + the
//! reaping); nothing here keeps state between probes.

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, SockAddr, Socket, Type};

use super::engine::{ProbeOutcome, ProbeSpec};
use super::http::{self, ResponseReader, UrlCheck};
use crate::control::script::{self, RunAs};

/// Bodies larger than this fail HTTP_GET (a bound on a misbehaving server).
pub const MAX_BODY_BYTES: u64 = 64 << 20;
/// Between SIGTERM and SIGKILL of a MISC_CHECK script that timed out.
pub const MISC_KILL_GRACE: Duration = Duration::from_secs(2);
/// How often a running script is polled.
const MISC_POLL: Duration = Duration::from_millis(10);

/// Runs one probe to completion.
pub fn run(spec: &ProbeSpec) -> ProbeOutcome {
    run_as(spec, None)
}

/// [`run`], with MISC_CHECK scripts run as `user` (see
/// [`crate::control::script`]).
pub fn run_as(spec: &ProbeSpec, user: Option<RunAs>) -> ProbeOutcome {
    match spec {
        ProbeSpec::Tcp { dst, bind, timeout } => match connect(*dst, *bind, *timeout) {
            Ok(_) => ProbeOutcome::Success,
            Err(e) => {
                log::debug!("TCP_CHECK {dst}: {e}");
                ProbeOutcome::Failure
            }
        },
        ProbeSpec::Http {
            dst,
            bind,
            timeout,
            virtualhost,
            urls,
        } => {
            for u in urls {
                if let Err(e) = http_get(*dst, *bind, *timeout, virtualhost.as_deref(), u) {
                    log::debug!("HTTP_GET {dst}{}: {e}", u.path);
                    return ProbeOutcome::Failure;
                }
            }
            ProbeOutcome::Success
        }
        ProbeSpec::Misc { argv, timeout } => misc(argv, *timeout, user),
    }
}

/// A kernel TCP connection to `dst` within `timeout`, from `bind` if given.
pub fn connect(
    dst: SocketAddr,
    bind: Option<IpAddr>,
    timeout: Duration,
) -> std::io::Result<TcpStream> {
    let s = Socket::new(Domain::for_address(dst), Type::STREAM, Some(Protocol::TCP))?;
    if let Some(b) = bind {
        s.bind(&SockAddr::from(SocketAddr::new(b, 0)))?;
    }
    s.connect_timeout(&SockAddr::from(dst), timeout)?;
    Ok(s.into())
}

/// One url of HTTP_GET; `Err` carries why it failed.
fn http_get(
    dst: SocketAddr,
    bind: Option<IpAddr>,
    timeout: Duration,
    virtualhost: Option<&str>,
    url: &UrlCheck,
) -> Result<(), String> {
    let mut s = connect(dst, bind, timeout).map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    s.set_write_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    s.write_all(&http::request(&url.path, dst, virtualhost))
        .map_err(|e| format!("send: {e}"))?;
    let mut r = ResponseReader::new();
    let mut buf = [0u8; 16 * 1024];
    let mut total = 0u64;
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                total += n as u64;
                if total > MAX_BODY_BYTES {
                    return Err(format!("response larger than {MAX_BODY_BYTES} bytes"));
                }
                r.feed(&buf[..n]);
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(format!("read: {e}")),
        }
    }
    r.finish(url).map_err(|e| format!("{e:?}"))
}

/// Sends `sig` to the process group `pgid` (the `kill` utility: no unsafe
/// code here, and no shell).
fn signal_group(pgid: u32, sig: &str) {
    let _ = Command::new("kill")
        .args(["-s", sig, "--", &format!("-{pgid}")])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// Waits for `child` until `deadline`; `None` if still running.
fn wait_until(child: &mut Child, deadline: Instant) -> Option<std::process::ExitStatus> {
    loop {
        match child.try_wait() {
            Ok(Some(st)) => return Some(st),
            Ok(None) => {}
            Err(_) => return None,
        }
        let now = Instant::now();
        if now >= deadline {
            return None;
        }
        std::thread::sleep(MISC_POLL.min(deadline - now));
    }
}

/// MISC_CHECK: the script's exit status, or a failure when it could not
/// start, was killed by a signal or ran past `timeout`.
fn misc(argv: &[String], timeout: Duration, user: Option<RunAs>) -> ProbeOutcome {
    use std::os::unix::process::{CommandExt, ExitStatusExt};
    let Some(mut cmd) = script::command(argv, user) else {
        return ProbeOutcome::Failure;
    };
    let prog = &argv[0];
    let mut child = match cmd.process_group(0).spawn() {
        Ok(c) => c,
        Err(e) => {
            log::warn!("MISC_CHECK {prog}: cannot run: {e}");
            return ProbeOutcome::Failure;
        }
    };
    let start = Instant::now();
    if let Some(st) = wait_until(&mut child, start + timeout) {
        return match (st.code(), st.signal()) {
            (Some(c), _) => ProbeOutcome::Exited(c),
            _ => ProbeOutcome::Failure,
        };
    }
    log::info!("MISC_CHECK {prog}: timed out after {timeout:?}");
    let pgid = child.id();
    signal_group(pgid, "TERM");
    if wait_until(&mut child, Instant::now() + MISC_KILL_GRACE).is_none() {
        signal_group(pgid, "KILL");
        let _ = child.kill();
        let _ = child.wait();
    } else {
        // The script is gone; whatever it started must go too.
        signal_group(pgid, "KILL");
    }
    ProbeOutcome::Failure
}
