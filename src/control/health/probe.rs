//! The probes: blocking, bounded, through the kernel's own network stack.
//!
//! Every network probe opens an ordinary kernel socket (socket2) from the
//! director's own address, bound to `bindto` / `bind_port` / `bind_if` when
//! given; replies are addressed to that address, which lvsfwd's XDP program
//! hands to the kernel, so probes work while the data plane runs on the same
//! NIC. keepalived's rules, probe by probe:
//! - TCP_CHECK: the connection opens;
//! - HTTP_GET / SSL_GET: each url on its own connection, judged by
//!   [`super::http`]; SSL_GET speaks TLS through rustls and, as keepalived
//!   (which never sets SSL_VERIFY_PEER), does not verify the certificate;
//!   SNI only with `enable_sni`; a close without close_notify ends the body;
//!   the probe then closes without a close_notify alert (keepalived's
//!   default quiet shutdown), or sends one first with `tls_compliant`;
//! - DNS_CHECK: one query over UDP ([`crate::wire::dns`]), waiting for the
//!   answer with its id until the timeout;
//! - UDP_CHECK: one datagram on a connected socket with IP(V6)_RECVERR; an
//!   ICMP error fails; silence until the timeout passes unless a reply is
//!   required; a reply must fit the lengths and the pattern;
//! - PING_CHECK: one ICMP echo (ping socket, or a raw socket where ping
//!   sockets are not allowed), passing on the echo reply of its sequence;
//! - SMTP_CHECK: a `220` banner, `HELO name` answered `250`, then `QUIT`
//!   answered with a line;
//! - MISC_CHECK runs the script directly (argument vector, no shell) in its
//!   own process group, and on timeout signals the whole group: SIGTERM,
//!   then SIGKILL 2 s later, as keepalived does.
//!
//! Every call returns within its timeouts (MISC: misc_timeout + 2 s + the
//! reaping); nothing here keeps state between probes.

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, SockAddr, Socket, Type};

use super::engine::{Conn, ProbeOutcome, ProbeSpec, TlsSpec};
use super::http::{self, ResponseReader, UrlCheck};
use crate::config::{HttpProtocol, UdpCheck};
use crate::control::script::{self, RunAs};

/// Bodies larger than this fail HTTP_GET (a bound on a misbehaving server).
pub const MAX_BODY_BYTES: u64 = 64 << 20;
/// Between SIGTERM and SIGKILL of a MISC_CHECK script that timed out.
pub const MISC_KILL_GRACE: Duration = Duration::from_secs(2);
/// How often a running script is polled.
const MISC_POLL: Duration = Duration::from_millis(10);
/// An SMTP reply line longer than this fails the check.
const SMTP_MAX_LINE: usize = 512;
/// The ICMP echo's payload.
const PING_PAYLOAD: &[u8] = b"keepalived check - lvsfwd";

/// A random id / sequence number.
fn random16() -> u16 {
    use rand::{Rng, SeedableRng};
    rand::rngs::SmallRng::from_os_rng().random()
}

/// Runs one probe to completion.
pub fn run(spec: &ProbeSpec) -> ProbeOutcome {
    run_as(spec, None)
}

fn outcome(what: &str, dst: SocketAddr, r: Result<(), String>) -> ProbeOutcome {
    match r {
        Ok(()) => ProbeOutcome::Success,
        Err(e) => {
            log::debug!("{what} {dst}: {e}");
            ProbeOutcome::Failure
        }
    }
}

/// [`run`], with MISC_CHECK scripts run as `user` (see
/// [`crate::control::script`]; the runner passes the checker's own `user`
/// when it has one, the global script user otherwise).
pub fn run_as(spec: &ProbeSpec, user: Option<RunAs>) -> ProbeOutcome {
    match spec {
        ProbeSpec::Tcp(c) => outcome(
            "TCP_CHECK",
            c.dst,
            connect(c).map(|_| ()).map_err(|e| e.to_string()),
        ),
        ProbeSpec::Http {
            conn,
            tls,
            virtualhost,
            protocol,
            urls,
        } => {
            let what = if tls.is_some() { "SSL_GET" } else { "HTTP_GET" };
            for (i, u) in urls.iter().enumerate() {
                let host = u.virtualhost.as_deref().or(virtualhost.as_deref());
                let close_notify = tls
                    .as_ref()
                    .is_some_and(|t| t.close_notify.get(i) == Some(&true));
                if let Err(e) = http_get(conn, tls.as_ref(), host, *protocol, u, close_notify) {
                    log::debug!("{what} {}{}: {e}", conn.dst, u.path);
                    return ProbeOutcome::Failure;
                }
            }
            ProbeOutcome::Success
        }
        ProbeSpec::Dns { conn, qtype, name } => {
            outcome("DNS_CHECK", conn.dst, dns(conn, *qtype, name))
        }
        ProbeSpec::Udp { conn, check } => outcome("UDP_CHECK", conn.dst, udp(conn, check)),
        ProbeSpec::Ping(c) => outcome("PING_CHECK", c.dst, ping(c)),
        ProbeSpec::Smtp { conn, helo_name } => {
            outcome("SMTP_CHECK", conn.dst, smtp(conn, helo_name))
        }
        ProbeSpec::Misc { argv, timeout, .. } => misc(argv, *timeout, user),
    }
}

/// A socket for `c`: bound to its device, source address and port.
fn socket(c: &Conn, ty: Type, proto: Protocol) -> std::io::Result<Socket> {
    let s = Socket::new(Domain::for_address(c.dst), ty, Some(proto))?;
    if let Some(dev) = &c.bind_if {
        s.bind_device(Some(dev.as_bytes()))?;
    }
    if let Some(m) = c.fwmark {
        s.set_mark(m)?;
    }
    if c.bind.is_some() || c.bind_port.is_some() {
        let ip = c.bind.unwrap_or(match c.dst {
            SocketAddr::V4(_) => IpAddr::from([0u8; 4]),
            SocketAddr::V6(_) => IpAddr::from([0u16; 8]),
        });
        if c.bind_port.is_some() {
            s.set_reuse_address(true)?;
        }
        s.bind(&SockAddr::from(SocketAddr::new(
            ip,
            c.bind_port.unwrap_or(0),
        )))?;
    }
    Ok(s)
}

/// A kernel TCP connection for `c` within its timeout.
pub fn connect(c: &Conn) -> std::io::Result<TcpStream> {
    let s = socket(c, Type::STREAM, Protocol::TCP)?;
    if c.bind_port.is_some() {
        // A fixed source port cannot wait in TIME_WAIT for the next probe:
        // close with a reset.
        s.set_linger(Some(Duration::ZERO))?;
    }
    s.connect_timeout(&SockAddr::from(c.dst), c.timeout)?;
    s.set_read_timeout(Some(c.timeout))?;
    s.set_write_timeout(Some(c.timeout))?;
    Ok(s.into())
}

/// SSL_GET's certificate "verifier": keepalived checks no certificate, but
/// the handshake's signatures are still verified with the certificate's
/// key, so a server must hold the key of the certificate it sends.
#[derive(Debug)]
struct NoCertCheck(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for NoCertCheck {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// The one TLS client configuration of every SSL_GET (and of `lvsfwd
/// genhash -S`).
pub(super) fn tls_config() -> Result<Arc<rustls::ClientConfig>, String> {
    static CONFIG: OnceLock<Result<Arc<rustls::ClientConfig>, String>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            // ring rather than aws-lc-rs (no cmake / C++ build); rustls
            // deprecates it for its lack of post-quantum key exchange,
            // which a health probe does not need.
            #[allow(deprecated)]
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let cfg = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
                .with_safe_default_protocol_versions()
                .map_err(|e| e.to_string())?
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(NoCertCheck(provider)))
                .with_no_client_auth();
            Ok(Arc::new(cfg))
        })
        .clone()
}

/// The server name of an SSL_GET handshake: a DNS name sends SNI; without
/// SNI the address (rustls sends no SNI for an address).
fn tls_name(
    tls: &TlsSpec,
    host: Option<&str>,
    dst: SocketAddr,
) -> rustls::pki_types::ServerName<'static> {
    let ip = rustls::pki_types::ServerName::IpAddress(dst.ip().into());
    if !tls.enable_sni {
        return ip;
    }
    match tls.sni_name.as_deref().or(host) {
        Some(n) => rustls::pki_types::ServerName::try_from(n.to_string()).unwrap_or(ip),
        None => ip,
    }
}

/// One url of HTTP_GET / SSL_GET; `Err` carries why it failed.
fn http_get(
    conn: &Conn,
    tls: Option<&TlsSpec>,
    host: Option<&str>,
    protocol: HttpProtocol,
    url: &UrlCheck,
    close_notify: bool,
) -> Result<(), String> {
    let s = connect(conn).map_err(|e| format!("connect: {e}"))?;
    let req = http::request(&url.path, conn.dst, host, protocol);
    match tls {
        None => exchange(s, &req, url),
        Some(t) => {
            let c = rustls::ClientConnection::new(tls_config()?, tls_name(t, host, conn.dst))
                .map_err(|e| format!("tls: {e}"))?;
            let mut stream = rustls::StreamOwned::new(c, s);
            let r = fetch(&mut stream, &req, ResponseReader::for_url(url))?;
            if close_notify {
                // keepalived's SSL_shutdown without quiet shutdown: the
                // alert goes out before the socket closes. Best effort, as
                // there: the verdict is the response's.
                stream.conn.send_close_notify();
                if let Err(e) = stream.flush() {
                    log::debug!("SSL_GET {}: close_notify: {e}", conn.dst);
                }
            }
            r.finish(url).map_err(|e| format!("{e:?}"))
        }
    }
}

/// Sends `req` and judges the response against `url`.
fn exchange(s: impl Read + Write, req: &[u8], url: &UrlCheck) -> Result<(), String> {
    let r = fetch(s, req, ResponseReader::for_url(url))?;
    r.finish(url).map_err(|e| format!("{e:?}"))
}

/// Sends `req` and reads the whole response into `r`.
fn fetch(
    mut s: impl Read + Write,
    req: &[u8],
    mut r: ResponseReader,
) -> Result<ResponseReader, String> {
    s.write_all(req).map_err(|e| format!("send: {e}"))?;
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
            // A TLS peer that closes without close_notify: the end of the
            // response, as keepalived reads it.
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
            Err(e) => return Err(format!("read: {e}")),
        }
    }
    Ok(r)
}

/// A connected datagram socket of `proto` for `c`, with its timeouts.
fn datagram(c: &Conn, ty: Type, proto: Protocol) -> std::io::Result<Socket> {
    let s = socket(c, ty, proto)?;
    s.connect(&SockAddr::from(c.dst))?;
    s.set_write_timeout(Some(c.timeout))?;
    Ok(s)
}

/// Reads datagrams until `done` returns a verdict or the deadline passes
/// (`Ok(None)`).
fn read_until<T>(
    s: &Socket,
    deadline: Instant,
    buf: &mut [u8],
    mut done: impl FnMut(&[u8]) -> Option<T>,
) -> std::io::Result<Option<T>> {
    loop {
        let now = Instant::now();
        if now >= deadline {
            return Ok(None);
        }
        s.set_read_timeout(Some(deadline - now))?;
        match (&*s).read(buf) {
            Ok(n) => {
                if let Some(v) = done(&buf[..n]) {
                    return Ok(Some(v));
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return Ok(None);
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

fn dns(c: &Conn, qtype: u16, name: &str) -> Result<(), String> {
    use crate::wire::dns::{Verdict, query, verdict};
    let id: u16 = random16();
    let q = query(id, name, qtype).map_err(|e| e.to_string())?;
    let s = datagram(c, Type::DGRAM, Protocol::UDP).map_err(|e| format!("socket: {e}"))?;
    (&s).write_all(&q).map_err(|e| format!("send: {e}"))?;
    let mut buf = [0u8; 4096];
    let v = read_until(
        &s,
        Instant::now() + c.timeout,
        &mut buf,
        |m| match verdict(id, m) {
            Verdict::Ignore => None,
            v => Some(v),
        },
    )
    .map_err(|e| format!("read: {e}"))?;
    match v {
        Some(Verdict::Pass) => Ok(()),
        Some(Verdict::Fail(rc)) => Err(format!("rcode {rc}")),
        _ => Err("no answer".into()),
    }
}

/// keepalived's UDP_CHECK payload when none is configured: its filler
/// text repeated over 32 bytes.
pub fn udp_default_payload() -> Vec<u8> {
    b"keepalived check - "
        .iter()
        .copied()
        .cycle()
        .take(32)
        .collect()
}

/// Whether `reply` satisfies `check` (keepalived's check_udp_reply: the
/// lengths, then the lesser of the pattern's and the reply's length in
/// bytes, ignoring the wildcard nibbles).
pub fn udp_reply_ok(check: &UdpCheck, reply: &[u8]) -> bool {
    if reply.len() < check.min_reply_length || reply.len() > check.max_reply_length {
        return false;
    }
    match &check.reply {
        None => true,
        Some((data, mask)) => reply
            .iter()
            .zip(data.iter().zip(mask))
            .all(|(r, (d, m))| (r ^ d) & !m == 0),
    }
}

fn udp(c: &Conn, check: &UdpCheck) -> Result<(), String> {
    let s = datagram(c, Type::DGRAM, Protocol::UDP).map_err(|e| format!("socket: {e}"))?;
    {
        use std::os::fd::AsFd;
        let r = match c.dst {
            SocketAddr::V4(_) => nix::sys::socket::setsockopt(
                &s.as_fd(),
                nix::sys::socket::sockopt::Ipv4RecvErr,
                &true,
            ),
            SocketAddr::V6(_) => nix::sys::socket::setsockopt(
                &s.as_fd(),
                nix::sys::socket::sockopt::Ipv6RecvErr,
                &true,
            ),
        };
        r.map_err(|e| format!("IP_RECVERR: {e}"))?;
    }
    let payload = check.payload.clone().unwrap_or_else(udp_default_payload);
    (&s).write_all(&payload).map_err(|e| format!("send: {e}"))?;
    let mut buf = [0u8; 256 + 1];
    match read_until(&s, Instant::now() + c.timeout, &mut buf, |m| {
        Some(m.to_vec())
    }) {
        Err(e) => Err(format!("{e}")),
        Ok(None) if check.require_reply => Err("no reply".into()),
        Ok(None) => Ok(()),
        Ok(Some(r)) if !check.require_reply || udp_reply_ok(check, &r) => Ok(()),
        Ok(Some(r)) => Err(format!("reply of {} bytes does not match", r.len())),
    }
}

/// An ICMP(v6) echo request; the checksum is left 0 for the kernel (ping
/// sockets, ICMPv6) or filled in (`v4_checksum`, raw IPv4 sockets).
pub fn echo_request(v6: bool, id: u16, seq: u16, v4_checksum: bool) -> Vec<u8> {
    let mut m = vec![if v6 { 128 } else { 8 }, 0, 0, 0];
    m.extend_from_slice(&id.to_be_bytes());
    m.extend_from_slice(&seq.to_be_bytes());
    m.extend_from_slice(PING_PAYLOAD);
    if v4_checksum && !v6 {
        let c = crate::wire::checksum::checksum(&m);
        m[2..4].copy_from_slice(&c.to_be_bytes());
    }
    m
}

/// Whether `msg` (ICMP, from its type on) is the echo reply to
/// (`id`, `seq`); `id` is `None` on ping sockets, where the kernel owns it.
pub fn is_echo_reply(v6: bool, msg: &[u8], id: Option<u16>, seq: u16) -> bool {
    msg.len() >= 8
        && msg[0] == if v6 { 129 } else { 0 }
        && id.is_none_or(|i| u16::from_be_bytes([msg[4], msg[5]]) == i)
        && u16::from_be_bytes([msg[6], msg[7]]) == seq
}

fn ping(c: &Conn) -> Result<(), String> {
    let v6 = c.dst.is_ipv6();
    let proto = if v6 {
        Protocol::ICMPV6
    } else {
        Protocol::ICMPV4
    };
    let seq: u16 = random16();
    // keepalived's ping socket; a raw socket where ping_group_range leaves
    // it out (the default, even for root).
    let (s, raw) = match datagram(c, Type::DGRAM, proto) {
        Ok(s) => (s, false),
        Err(_) => (
            datagram(c, Type::RAW, proto).map_err(|e| format!("socket: {e}"))?,
            true,
        ),
    };
    let id: u16 = random16();
    let req = echo_request(v6, id, seq, raw);
    (&s).write_all(&req).map_err(|e| format!("send: {e}"))?;
    let mut buf = [0u8; 1500];
    let want = raw.then_some(id);
    let got = read_until(&s, Instant::now() + c.timeout, &mut buf, |m| {
        // A raw IPv4 socket hands the IP header over too.
        let icmp = if raw && !v6 {
            let ihl = m.first().map_or(0, |b| (b & 0x0f) as usize * 4);
            m.get(ihl..).unwrap_or_default()
        } else {
            m
        };
        is_echo_reply(v6, icmp, want, seq).then_some(())
    })
    .map_err(|e| format!("read: {e}"))?;
    got.ok_or_else(|| "no echo reply".into())
}

/// keepalived's smtp_get_status: three digits followed by a space or the
/// end of the line; anything else is no status.
pub fn smtp_status(line: &str) -> Option<u16> {
    let line = line.trim_end_matches(['\r', '\n']);
    let (code, rest) = line.split_at_checked(3)?;
    if !code.bytes().all(|b| b.is_ascii_digit()) || !(rest.is_empty() || rest.starts_with(' ')) {
        return None;
    }
    code.parse().ok()
}

/// One reply line (up to LF), bounded.
fn smtp_line(s: &mut impl Read) -> Result<String, String> {
    let mut line = Vec::new();
    let mut b = [0u8; 1];
    loop {
        match s.read(&mut b) {
            Ok(0) => return Err("connection closed".into()),
            Ok(_) => {
                line.push(b[0]);
                if b[0] == b'\n' {
                    return Ok(String::from_utf8_lossy(&line).into_owned());
                }
                if line.len() > SMTP_MAX_LINE {
                    return Err("reply line too long".into());
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(format!("read: {e}")),
        }
    }
}

fn smtp(c: &Conn, helo_name: &str) -> Result<(), String> {
    let mut s = connect(c).map_err(|e| format!("connect: {e}"))?;
    let banner = smtp_line(&mut s)?;
    if smtp_status(&banner) != Some(220) {
        return Err(format!("bad greeting banner {:?}", banner.trim_end()));
    }
    s.write_all(format!("HELO {helo_name}\r\n").as_bytes())
        .map_err(|e| format!("send: {e}"))?;
    let helo = smtp_line(&mut s)?;
    if smtp_status(&helo) != Some(250) {
        return Err(format!("bad HELO response {:?}", helo.trim_end()));
    }
    s.write_all(b"QUIT\r\n").map_err(|e| format!("send: {e}"))?;
    smtp_line(&mut s).map(|_| ())
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
