//! What every section's checks share: the positioned error, the ipvsadm
//! bounds, range checks, keywords, addresses and the family and
//! listed-twice rules, so each message is worded in one place.

use std::fmt::Display;
use std::net::{IpAddr, SocketAddr};
use std::ops::Range;
use std::time::Duration;

use super::super::raw::S;

/// A semantic error at a byte offset of the document.
#[derive(Debug)]
pub(crate) struct VErr {
    pub offset: usize,
    pub msg: String,
}

pub(super) type R<T> = Result<T, VErr>;

/// Refuses the value at `span`: its start is the position the user sees.
pub(super) fn fail<T>(span: Range<usize>, msg: impl Into<String>) -> R<T> {
    Err(VErr {
        offset: span.start,
        msg: msg.into(),
    })
}

/// ipvsadm's MAX_TIMEOUT: 31 days, the bound of `-p` and `--set`.
pub(super) const MAX_TIMEOUT_SECS: i64 = 86400 * 31;

pub(super) fn int_in(v: &S<i64>, key: &str, lo: i64, hi: i64) -> R<i64> {
    let n = *v.get_ref();
    if n < lo || n > hi {
        return fail(v.span(), format!("{key} {n} is out of range {lo}..={hi}"));
    }
    Ok(n)
}

/// Seconds given as a TOML number (integer or float), `lo..=hi`.
pub(super) fn secs_in(v: &S<f64>, key: &str, lo: f64, hi: f64, lo_inclusive: bool) -> R<Duration> {
    let x = *v.get_ref();
    let low_ok = if lo_inclusive { x >= lo } else { x > lo };
    if !x.is_finite() || !low_ok || x > hi {
        let open = if lo_inclusive { "" } else { " (exclusive)" };
        return fail(
            v.span(),
            format!("{key} {x} is out of range {lo}{open}..={hi} seconds"),
        );
    }
    Ok(Duration::from_secs_f64(x))
}

/// Seconds above 0 and at most ipvsadm's MAX_TIMEOUT (a period or a
/// timeout, where 0 would mean "never wait").
pub(super) fn timeout_secs(v: &S<f64>, key: &str) -> R<Duration> {
    secs_in(v, key, 0.0, MAX_TIMEOUT_SECS as f64, false)
}

/// One of `table`'s words; otherwise "unknown KEY `x`, expected a, b or c"
/// with the words in the table's order.
pub(super) fn keyword<T: Clone>(s: &S<String>, key: &str, table: &[(&str, T)]) -> R<T> {
    let word = s.get_ref().as_str();
    if let Some((_, t)) = table.iter().find(|(w, _)| *w == word) {
        return Ok(t.clone());
    }
    let (last, rest) = table.split_last().expect("a keyword table is not empty");
    let rest: Vec<&str> = rest.iter().map(|(w, _)| *w).collect();
    fail(
        s.span(),
        format!(
            "unknown {key} `{word}`, expected {} or {}",
            rest.join(", "),
            last.0
        ),
    )
}

/// A string key that, when given, must not be empty.
pub(super) fn nonempty(s: Option<S<String>>, key: &str) -> R<Option<String>> {
    match s {
        Some(v) if v.get_ref().is_empty() => fail(v.span(), format!("{key} is empty")),
        other => Ok(other.map(S::into_inner)),
    }
}

/// A script line (notify, quorum_up...): blank means no script; otherwise
/// it must split into an argument vector as the script runner splits it.
pub(super) fn script_line(s: Option<S<String>>, key: &str) -> R<Option<String>> {
    match s {
        Some(v) if v.get_ref().trim().is_empty() => Ok(None),
        Some(v) => match crate::config::argv::split(v.get_ref()) {
            Ok(_) => Ok(Some(v.into_inner())),
            Err(e) => fail(v.span(), format!("{key}: {e}")),
        },
        None => Ok(None),
    }
}

/// `x` unless `before` already holds it: "KEY x is listed twice".
pub(super) fn once<T: PartialEq + Display>(
    mut before: impl Iterator<Item = T>,
    x: T,
    span: Range<usize>,
    key: &str,
) -> R<T> {
    if before.any(|b| b == x) {
        return fail(span, format!("{key} {x} is listed twice"));
    }
    Ok(x)
}

pub(super) fn parse_ip(v: &S<String>, what: &str) -> R<IpAddr> {
    v.get_ref().parse().or_else(|_| {
        fail(
            v.span(),
            format!("{what} `{}` is not an IP address", v.get_ref()),
        )
    })
}

/// Parses `ADDR:PORT`, `[V6]:PORT`, or, when `default_port` is given, a bare
/// `ADDR` / `V6` / `[V6]` that takes that port.
pub(super) fn parse_sockaddr(
    v: &S<String>,
    what: &str,
    default_port: Option<u16>,
) -> R<SocketAddr> {
    let s = v.get_ref().as_str();
    let bad = |why: String| fail(v.span(), format!("{what} `{s}`: {why}"));
    if let Some(p) = default_port {
        if let Ok(ip) = s.parse::<IpAddr>() {
            return Ok(SocketAddr::new(ip, p));
        }
        if let Some(inner) = s.strip_prefix('[').and_then(|r| r.strip_suffix(']'))
            && let Ok(ip) = inner.parse::<std::net::Ipv6Addr>()
        {
            return Ok(SocketAddr::new(IpAddr::V6(ip), p));
        }
    }
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        match rest.split_once("]:") {
            Some((h, p)) => (h, p),
            None => return bad("expected `[IPv6]:PORT`".into()),
        }
    } else {
        match s.rsplit_once(':') {
            Some((h, _)) if h.contains(':') => {
                return bad("an IPv6 address with a port needs brackets: `[ADDR]:PORT`".into());
            }
            Some((h, p)) => (h, p),
            None if default_port.is_none() => return bad("expected `ADDR:PORT`".into()),
            None => return bad("not an IP address".into()),
        }
    };
    let ip: IpAddr = match host.parse() {
        Ok(ip) if s.starts_with('[') == matches!(ip, IpAddr::V6(_)) => ip,
        _ => return bad(format!("`{host}` is not an IP address")),
    };
    let port: u64 = match port.parse() {
        Ok(p) => p,
        Err(_) => return bad(format!("`{port}` is not a port number")),
    };
    if port > u16::MAX as u64 {
        return bad(format!("port {port} is out of range 0..=65535"));
    }
    Ok(SocketAddr::new(ip, port as u16))
}

fn family(ip: &IpAddr) -> &'static str {
    match ip {
        IpAddr::V4(_) => "IPv4",
        IpAddr::V6(_) => "IPv6",
    }
}

/// Refuses `ip` when `reference` is given and of the other family;
/// `msg(ip's family, reference's family, reference)` says why.
pub(super) fn same_family(
    ip: IpAddr,
    reference: Option<IpAddr>,
    span: Range<usize>,
    msg: impl FnOnce(&str, &str, IpAddr) -> String,
) -> R<()> {
    match reference {
        Some(r) if r.is_ipv4() != ip.is_ipv4() => fail(span, msg(family(&ip), family(&r), r)),
        _ => Ok(()),
    }
}
