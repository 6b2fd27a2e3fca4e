//! `lvsfwd genhash`: keepalived's genhash, the tool that prints the digest
//! to put in an HTTP_GET / SSL_GET `digest`.
//!
//! Like genhash it sends one HTTP/1.0 `GET` (genhash's own User-Agent,
//! `Host:` the virtual host or the server's `ADDR:PORT`), reads the response
//! to the end of the stream, and prints `MD5SUM = <hex>` followed by a blank
//! line; when `Content-Length` disagrees with the bytes received it adds
//! genhash's `WARNING - Content-Length (N) does not match received bytes
//! (M).` line. The digest is computed by the HTTP_GET checker's own
//! [`ResponseReader`] (the MD5 of every byte after the blank line ending the
//! headers), so what genhash prints is what the checker compares.
//!
//! `-S` speaks TLS (rustls) and, as genhash, does not verify the server's
//! certificate: the point is to read the page of one real server by
//! address, whose certificate names the service, not the address. The
//! handshake's signatures are still checked. No SNI is sent (genhash sends
//! it only with `-I`, which lvsfwd does not offer).
//!
//! `-v` adds genhash's verbose sections: the response header, the body
//! length, and the response time.

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use rustls::pki_types::ServerName;

use super::http::{Fetched, ResponseReader};

/// genhash's connect and read timeout (`HTTP_CNX_TIMEOUT`).
pub const TIMEOUT: Duration = Duration::from_secs(5);
/// genhash's User-Agent.
pub const USER_AGENT: &str = "KeepAlive GenHash Client";

/// What to fetch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    pub server: IpAddr,
    pub port: u16,
    pub url: String,
    pub ssl: bool,
    pub virtualhost: Option<String>,
    pub verbose: bool,
}

/// genhash's request bytes.
pub fn request_bytes(r: &Request) -> Vec<u8> {
    let host = match &r.virtualhost {
        Some(v) => v.clone(),
        None => SocketAddr::new(r.server, r.port).to_string(),
    };
    format!(
        "GET {} HTTP/1.0\r\nUser-Agent: {USER_AGENT}\r\nHost: {host}\r\n\r\n",
        r.url
    )
    .into_bytes()
}

/// The `Content-Length` of a header block, when there is a valid one.
fn content_length(header: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(header).ok()?;
    text.split("\r\n")
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse().ok())
}

/// genhash's report of a fetched page.
pub fn report(r: &Request, f: &Fetched, elapsed: Duration) -> String {
    let mut out = String::new();
    if r.verbose {
        out += "-----------------------[ HTTP Header Ascii Buffer ]-----------------------\n";
        out += &String::from_utf8_lossy(&f.header);
        out += &format!(
            "-----------------------[        HTML Buffer        ]-----------------------\n\
             {} bytes\n\n",
            f.body_len
        );
        out += "-----------------------[    HTML hash resulting    ]-----------------------\n";
        out += &hex(&f.digest);
        out += "\n-----------------------[ HTML hash final resulting ]-----------------------\n";
    }
    out += &format!("MD5SUM = {}", hex(&f.digest));
    if let Some(n) = content_length(&f.header)
        && n != f.body_len
    {
        out += &format!(
            "\nWARNING - Content-Length ({n}) does not match received bytes ({}).",
            f.body_len
        );
    }
    out += "\n\n";
    if r.verbose {
        out += &format!(
            "Global response time for [{}] ={}\n",
            r.url,
            elapsed.as_micros()
        );
    }
    out
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Fetches `r.url` and returns genhash's report.
pub fn run(r: &Request) -> Result<String> {
    let t0 = Instant::now();
    let dst = SocketAddr::new(r.server, r.port);
    let tcp = TcpStream::connect_timeout(&dst, TIMEOUT)
        .with_context(|| format!("connecting to {dst}"))?;
    tcp.set_read_timeout(Some(TIMEOUT))?;
    tcp.set_write_timeout(Some(TIMEOUT))?;
    let req = request_bytes(r);
    let mut reader = ResponseReader::new();
    if r.ssl {
        let config = tls_config()?;
        let name = ServerName::IpAddress(r.server.into());
        let conn =
            rustls::ClientConnection::new(config, name).with_context(|| format!("TLS to {dst}"))?;
        let mut s = rustls::StreamOwned::new(conn, tcp);
        s.write_all(&req)
            .with_context(|| format!("TLS to {dst}: sending the request"))?;
        read_all(&mut s, &mut reader, dst)?;
    } else {
        let mut s = tcp;
        s.write_all(&req)
            .with_context(|| format!("sending the request to {dst}"))?;
        read_all(&mut s, &mut reader, dst)?;
    }
    let Some(f) = reader.fetched() else {
        bail!("{dst}: the response has no complete header (nothing to hash)");
    };
    Ok(report(r, &f, t0.elapsed()))
}

fn read_all(s: &mut impl Read, reader: &mut ResponseReader, dst: SocketAddr) -> Result<()> {
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => reader.feed(&buf[..n]),
            // A TLS server that closes without close_notify: the stream
            // ended all the same (HTTP/1.0 ends the body with the
            // connection).
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(e) => return Err(e).with_context(|| format!("reading from {dst}")),
        }
    }
}

/// TLS client settings: the SSL_GET checker's own (ring, any certificate
/// as genhash accepts, handshake signatures verified).
fn tls_config() -> Result<Arc<rustls::ClientConfig>> {
    super::probe::tls_config().map_err(|e| anyhow::anyhow!("TLS settings: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(vhost: Option<&str>, server: &str) -> Request {
        Request {
            server: server.parse().unwrap(),
            port: 8080,
            url: "/health".into(),
            ssl: false,
            virtualhost: vhost.map(String::from),
            verbose: false,
        }
    }

    #[test]
    fn request_is_genhash_s_template() {
        assert_eq!(
            request_bytes(&req(None, "198.18.0.11")),
            b"GET /health HTTP/1.0\r\nUser-Agent: KeepAlive GenHash Client\r\nHost: 198.18.0.11:8080\r\n\r\n"
        );
        assert_eq!(
            request_bytes(&req(None, "2001:2::11")),
            b"GET /health HTTP/1.0\r\nUser-Agent: KeepAlive GenHash Client\r\nHost: [2001:2::11]:8080\r\n\r\n"
        );
        assert_eq!(
            request_bytes(&req(Some("www.example"), "198.18.0.11")),
            b"GET /health HTTP/1.0\r\nUser-Agent: KeepAlive GenHash Client\r\nHost: www.example\r\n\r\n"
        );
    }

    fn fetched(resp: &[u8]) -> Fetched {
        let mut r = ResponseReader::new();
        for chunk in resp.chunks(5) {
            r.feed(chunk);
        }
        r.fetched().unwrap()
    }

    #[test]
    fn report_is_genhash_s_and_the_digest_is_the_checker_s() {
        let f = fetched(b"HTTP/1.0 200 OK\r\nContent-Length: 3\r\n\r\nok\n");
        // md5sum of "ok\n".
        assert_eq!(
            report(&req(None, "198.18.0.11"), &f, Duration::ZERO),
            "MD5SUM = eff5bc1ef8ec9d03e640fc4370f5eacd\n\n"
        );
        let short = fetched(b"HTTP/1.0 200 OK\r\nContent-Length: 10\r\n\r\nok\n");
        assert_eq!(
            report(&req(None, "198.18.0.11"), &short, Duration::ZERO),
            "MD5SUM = eff5bc1ef8ec9d03e640fc4370f5eacd\n\
             WARNING - Content-Length (10) does not match received bytes (3).\n\n"
        );
        // The checker accepts exactly this digest.
        let url = super::super::http::UrlCheck {
            path: "/".into(),
            status_code: vec![],
            digest: Some(f.digest),
            virtualhost: None,
            regex: None,
            regex_no_match: false,
        };
        let mut r = ResponseReader::new();
        r.feed(b"HTTP/1.0 200 OK\r\nContent-Length: 3\r\n\r\nok\n");
        assert_eq!(r.finish(&url), Ok(()));
    }

    #[test]
    fn a_response_without_headers_has_nothing_to_hash() {
        let mut r = ResponseReader::new();
        r.feed(b"HTTP/1.0 200 OK\r\n");
        assert_eq!(r.fetched(), None);
    }

    #[test]
    fn tls_settings_build() {
        tls_config().unwrap();
    }
}
