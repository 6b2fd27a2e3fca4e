//! Numbers, addresses and ports as ipvsadm reads them: C's `strtol` and
//! `atoi`, glibc's `inet_aton`, `getservbyname` for a few well-known names
//! and ipvsadm's `parse_service`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::service::Protocol;

/// The service or real-server address being assembled, as ipvsadm's
/// `ipvs_service_t` (address family, address, port).
#[derive(Copy, Clone, Debug, Default)]
pub(super) struct AddrPort {
    pub(super) addr: Option<IpAddr>,
    pub(super) port: u16,
}

/// ipvsadm's `SERVICE_ADDR | SERVICE_PORT` result of `parse_service`.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(super) struct Parsed {
    pub(super) addr: IpAddr,
    pub(super) port: Option<u16>,
}

/// C's `strtol(s, &end, 10)` accepted only when the whole word is a
/// number: leading white space and a sign are allowed.
pub(super) fn strtol_whole(s: &str) -> Option<i64> {
    let t = s.trim_start_matches([' ', '\t', '\n', '\r', '\x0b', '\x0c']);
    let (neg, digits) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let v: i64 = digits.parse().ok()?;
    Some(if neg { -v } else { v })
}

/// ipvsadm's `string_to_number`: a whole decimal number within bounds.
pub(super) fn string_to_number(s: &str, min: i64, max: i64) -> Option<i64> {
    strtol_whole(s).filter(|n| (min..=max).contains(n))
}

/// C's `atoi`: leading digits after white space and a sign, else 0.
pub(super) fn atoi(s: &str) -> i64 {
    let t = s.trim_start_matches([' ', '\t', '\n', '\r', '\x0b', '\x0c']);
    let (neg, rest) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    let digits: String = rest
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .take(12)
        .collect();
    let v: i64 = digits.parse().unwrap_or(0);
    if neg { -v } else { v }
}

/// glibc's `inet_aton`: one to four parts, each decimal, octal (leading 0)
/// or hex (0x); the last part fills the remaining bytes. Anything after
/// white space is ignored, as glibc does.
pub fn inet_aton(s: &str) -> Option<Ipv4Addr> {
    let s = match s.find([' ', '\t', '\n', '\r', '\x0b', '\x0c']) {
        Some(i) => &s[..i],
        None => s,
    };
    let mut parts = Vec::with_capacity(4);
    for p in s.split('.') {
        let v = if let Some(h) = p.strip_prefix("0x").or_else(|| p.strip_prefix("0X")) {
            if h.is_empty() {
                0
            } else {
                u64::from_str_radix(h, 16).ok()?
            }
        } else if p.len() > 1 && p.starts_with('0') {
            u64::from_str_radix(&p[1..], 8).ok()?
        } else if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) {
            p.parse().ok()?
        } else {
            return None;
        };
        if p.starts_with('+') || p.starts_with('-') {
            return None;
        }
        parts.push(v);
    }
    let n = parts.len();
    if n == 0 || n > 4 {
        return None;
    }
    let last_bits = 8 * (5 - n as u32);
    let (head, last) = parts.split_at(n - 1);
    if head.iter().any(|&v| v > 0xff) || last[0] >= (1u64 << last_bits) {
        return None;
    }
    let mut v: u64 = 0;
    for (i, &h) in head.iter().enumerate() {
        v |= h << (24 - 8 * i);
    }
    v |= last[0];
    Some(Ipv4Addr::from(v as u32))
}

/// Well-known service names (`getservbyname`), so that `-t VIP:http`
/// works without reading /etc/services in the daemon.
const SERVICES: &[(&str, u16, bool, bool)] = &[
    // name, port, tcp, udp
    ("ftp-data", 20, true, false),
    ("ftp", 21, true, false),
    ("ssh", 22, true, false),
    ("telnet", 23, true, false),
    ("smtp", 25, true, false),
    ("domain", 53, true, true),
    ("tftp", 69, false, true),
    ("http", 80, true, false),
    ("www", 80, true, false),
    ("kerberos", 88, true, true),
    ("pop3", 110, true, false),
    ("ntp", 123, false, true),
    ("imap2", 143, true, false),
    ("imap", 143, true, false),
    ("snmp", 161, true, true),
    ("ldap", 389, true, true),
    ("https", 443, true, true),
    ("syslog", 514, false, true),
    ("submission", 587, true, false),
    ("ldaps", 636, true, true),
    ("imaps", 993, true, false),
    ("pop3s", 995, true, false),
    ("openvpn", 1194, true, true),
    ("mysql", 3306, true, false),
    ("postgresql", 5432, true, false),
    ("http-alt", 8080, true, false),
];

/// `None` protocol: no `-t`/`-u` seen yet on the line, which makes every
/// name unknown (ipvsadm looks names up for protocol 0).
fn service_to_port(name: &str, proto: Option<Protocol>) -> Option<u16> {
    SERVICES
        .iter()
        .find(|(n, _, tcp, udp)| {
            *n == name
                && match proto {
                    Some(Protocol::Tcp) => *tcp,
                    Some(Protocol::Udp) => *udp,
                    None => false,
                }
        })
        .map(|e| e.1)
}

/// ipvsadm's `parse_service`: `None` is its `SERVICE_NONE`.
pub(super) fn parse_service(buf: &str, proto: Option<Protocol>) -> Option<Parsed> {
    if buf.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let (host, mut port_str): (&str, Option<&str>) = if let Some(rest) = buf.strip_prefix('[') {
        let (h, after) = rest.split_once(']')?;
        (h, Some(after.strip_prefix(':')?))
    } else {
        (buf, None)
    };
    let addr = if let Ok(v6) = host.parse::<Ipv6Addr>() {
        IpAddr::V6(v6)
    } else {
        // A bracketed non-IPv6 loses its port, as in ipvsadm (the port
        // pointer is re-taken from inside the brackets).
        let host = if port_str.is_some() {
            port_str = None;
            host
        } else {
            match host.rsplit_once(':') {
                Some((h, p)) => {
                    port_str = Some(p);
                    h
                }
                None => host,
            }
        };
        IpAddr::V4(inet_aton(host)?)
    };
    let port = match port_str {
        None => None,
        Some(p) => Some(match string_to_number(p, 0, 65535) {
            Some(n) => n as u16,
            None => service_to_port(p, proto)?,
        }),
    };
    Some(Parsed { addr, port })
}
