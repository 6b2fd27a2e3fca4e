//! HTTP_GET's protocol rules, without any socket: the request keepalived
//! sends, and the verdict on the response it gets back.
//!
//! Request (keepalived's template): `GET <path> HTTP/1.0` (or `HTTP/1.1`
//! with `http_protocol 1.1`), `User-Agent: KeepAliveClient`,
//! `Connection: close` for `1.0C` and `1.1`, and `Host:` the url's
//! `virtualhost`, else the checker's (inherited from the real and virtual
//! server), else the checked address and port (`[v6]:port` for IPv6).
//!
//! Verdict (keepalived's http_handle_response): no bytes at all fails; the
//! status code must be in the accepted set (200..=299 when none is
//! configured); then, when a digest is configured, the MD5 of the body
//! (everything after the blank line that ends the headers, as received:
//! keepalived does not undo chunked encoding) must match; then, with a
//! `regex`, the body must match it (or must not, with `regex_no_match`).
//!
//! [`ResponseReader`] takes the response in pieces as they arrive, keeps only
//! the header bytes, and hashes the body as it streams; with a regex it also
//! keeps the body's first [`MAX_REGEX_BODY`] bytes, the text matched (a
//! bound where keepalived's PCRE matches across the whole stream).

use std::net::SocketAddr;
use std::ops::RangeInclusive;

use md5::{Digest, Md5};

use crate::config::HttpProtocol;

/// Headers larger than this fail the check (no real health page has them).
pub const MAX_HEADER_BYTES: usize = 64 * 1024;
/// The part of the body a `regex` is matched against.
pub const MAX_REGEX_BODY: usize = 1 << 20;

/// A compiled `regex` (compared by its pattern).
#[derive(Clone, Debug)]
pub struct Pattern(pub regex::bytes::Regex);

impl PartialEq for Pattern {
    fn eq(&self, other: &Pattern) -> bool {
        self.0.as_str() == other.0.as_str()
    }
}

impl Eq for Pattern {}

/// One `url` to fetch and judge.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UrlCheck {
    pub path: String,
    /// Accepted codes; empty = 200..=299.
    pub status_code: Vec<RangeInclusive<u16>>,
    pub digest: Option<[u8; 16]>,
    /// This url's `Host:`, over the checker's.
    pub virtualhost: Option<String>,
    pub regex: Option<Pattern>,
    /// Pass when the body does not match `regex`.
    pub regex_no_match: bool,
}

/// Why a response failed the check.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum HttpFailure {
    /// The server closed without sending anything.
    Empty,
    /// The headers exceed [`MAX_HEADER_BYTES`] or never end.
    BadHeaders,
    /// No parsable `HTTP/x.y NNN` status line.
    BadStatusLine,
    /// The status code is not accepted.
    Status(u16),
    /// The body's MD5 differs from the configured digest.
    Digest,
    /// The body does not match `regex` (or matches it, with
    /// `regex_no_match`).
    Regex,
}

/// The request bytes for `path` against `dst`; `virtualhost` is the Host
/// header when given.
pub fn request(
    path: &str,
    dst: SocketAddr,
    virtualhost: Option<&str>,
    protocol: HttpProtocol,
) -> Vec<u8> {
    let host = match virtualhost {
        Some(v) => v.to_string(),
        None => dst.to_string(),
    };
    let (minor, close) = match protocol {
        HttpProtocol::V10 => (0, ""),
        HttpProtocol::V10Close => (0, "Connection: close\r\n"),
        HttpProtocol::V11 => (1, "Connection: close\r\n"),
    };
    format!(
        "GET {path} HTTP/1.{minor}\r\nUser-Agent: KeepAliveClient\r\n{close}Host: {host}\r\n\r\n"
    )
    .into_bytes()
}

/// Whether `code` is accepted by `accepted` (empty = any 2xx).
pub fn status_accepted(code: u16, accepted: &[RangeInclusive<u16>]) -> bool {
    if accepted.is_empty() {
        (200..=299).contains(&code)
    } else {
        accepted.iter().any(|r| r.contains(&code))
    }
}

/// `HTTP/1.1 404 Not Found` -> 404.
fn status_of(line: &[u8]) -> Option<u16> {
    let line = std::str::from_utf8(line).ok()?;
    let mut it = line.split_ascii_whitespace();
    let proto = it.next()?;
    if !proto.starts_with("HTTP/") {
        return None;
    }
    let code = it.next()?;
    if code.len() != 3 {
        return None;
    }
    code.parse().ok()
}

/// Streams one response: feed it what the socket returns, then [`finish`].
///
/// [`finish`]: ResponseReader::finish
pub struct ResponseReader {
    head: Vec<u8>,
    /// Set once the blank line that ends the headers was seen.
    status: Option<Option<u16>>,
    body: Md5,
    /// The header block (status line to the blank line), once complete.
    header: Vec<u8>,
    /// Body bytes hashed.
    body_len: u64,
    /// The body's first bytes, kept when a regex will need them.
    text: Option<Vec<u8>>,
    any: bool,
    overflow: bool,
}

/// A whole response as genhash reports it: the header block, the status,
/// and the MD5 of the body exactly as the checker computes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fetched {
    pub header: Vec<u8>,
    pub status: Option<u16>,
    pub digest: [u8; 16],
    pub body_len: u64,
}

impl Default for ResponseReader {
    fn default() -> Self {
        ResponseReader::new()
    }
}

impl ResponseReader {
    pub fn new() -> ResponseReader {
        ResponseReader {
            head: Vec::new(),
            status: None,
            body: Md5::new(),
            header: Vec::new(),
            body_len: 0,
            text: None,
            any: false,
            overflow: false,
        }
    }

    /// A reader that also keeps the body for `url`'s regex.
    pub fn for_url(url: &UrlCheck) -> ResponseReader {
        let mut r = ResponseReader::new();
        if url.regex.is_some() {
            r.text = Some(Vec::new());
        }
        r
    }

    fn body(&mut self, bytes: &[u8]) {
        self.body.update(bytes);
        if let Some(t) = &mut self.text {
            let room = MAX_REGEX_BODY.saturating_sub(t.len());
            t.extend_from_slice(&bytes[..bytes.len().min(room)]);
        }
    }

    /// Takes the next bytes of the response.
    pub fn feed(&mut self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        self.any = true;
        if self.status.is_some() {
            self.body(bytes);
            self.body_len += bytes.len() as u64;
            return;
        }
        if self.overflow {
            return;
        }
        // Only the last 3 bytes already held can start the terminator.
        let from = self.head.len().saturating_sub(3);
        self.head.extend_from_slice(bytes);
        if let Some(pos) = find(&self.head[from..], b"\r\n\r\n").map(|p| p + from) {
            let line_end = find(&self.head, b"\r\n").unwrap_or(pos);
            self.status = Some(status_of(&self.head[..line_end]));
            let rest = self.head.split_off(pos + 4);
            self.body(&rest);
            self.body_len += rest.len() as u64;
            self.header = std::mem::take(&mut self.head);
        } else if self.head.len() > MAX_HEADER_BYTES {
            self.overflow = true;
            self.head = Vec::new();
        }
    }

    /// The response as genhash shows it; `None` when the headers never
    /// ended (nothing to hash, as the checker would fail it).
    pub fn fetched(self) -> Option<Fetched> {
        let status = self.status?;
        Some(Fetched {
            header: self.header,
            status,
            digest: self.body.finalize().into(),
            body_len: self.body_len,
        })
    }

    /// The verdict on the whole response against `url`.
    pub fn finish(self, url: &UrlCheck) -> Result<(), HttpFailure> {
        if !self.any {
            return Err(HttpFailure::Empty);
        }
        let status = match self.status {
            None => return Err(HttpFailure::BadHeaders),
            Some(None) => return Err(HttpFailure::BadStatusLine),
            Some(Some(s)) => s,
        };
        if !status_accepted(status, &url.status_code) {
            return Err(HttpFailure::Status(status));
        }
        if let Some(want) = url.digest {
            let got: [u8; 16] = self.body.finalize().into();
            if got != want {
                return Err(HttpFailure::Digest);
            }
        }
        if let Some(re) = &url.regex {
            let text = self.text.as_deref().unwrap_or_default();
            if re.0.is_match(text) == url.regex_no_match {
                return Err(HttpFailure::Regex);
            }
        }
        Ok(())
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}
