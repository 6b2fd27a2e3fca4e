//! A real server's health checks: keepalived's TCP_CHECK, HTTP_GET and
//! MISC_CHECK.

use std::net::SocketAddr;
use std::ops::RangeInclusive;
use std::time::Duration;

use super::super::raw::{RawHttpGet, RawMiscCheck, RawTcpCheck, S, StatusCodes};
use super::super::{HttpGet, HttpUrl, MiscCheck, TcpCheck};
use super::common::{
    MAX_TIMEOUT_SECS, R, fail, int_in, parse_ip, same_family, secs_in, timeout_secs,
};

/// The connection keys TCP_CHECK and HTTP_GET share, borrowed from either.
struct ConnectKeys<'a> {
    ip: &'a Option<S<String>>,
    bindto: &'a Option<S<String>>,
    port: &'a Option<S<i64>>,
    timeout: &'a Option<S<f64>>,
    retry: &'a Option<S<i64>>,
    delay: &'a Option<S<f64>>,
}

macro_rules! connect_keys {
    ($raw:expr) => {
        ConnectKeys {
            ip: &$raw.connect_ip,
            bindto: &$raw.bindto,
            port: &$raw.connect_port,
            timeout: &$raw.connect_timeout,
            retry: &$raw.retry,
            delay: &$raw.delay_before_retry,
        }
    };
}

/// The connection a check makes to real server `rs`, which is all a
/// TCP_CHECK is. keepalived's defaults are connect_timeout 5 s and retry 1
/// for both checks; delay_before_retry differs.
fn connect(rs: SocketAddr, k: ConnectKeys, default_delay: u64) -> R<TcpCheck> {
    let ip = match k.ip {
        None => rs.ip(),
        Some(s) => parse_ip(s, "connect_ip")?,
    };
    let bindto = match k.bindto {
        None => None,
        Some(b) => {
            let a = parse_ip(b, "bindto")?;
            same_family(a, Some(ip), b.span(), |_, _, ip| {
                format!("bindto {a} and the checked address {ip} are of different families")
            })?;
            Some(a)
        }
    };
    Ok(TcpCheck {
        connect_ip: ip,
        bindto,
        connect_port: match k.port {
            None => rs.port(),
            Some(p) => int_in(p, "connect_port", 1, 65535)? as u16,
        },
        connect_timeout: match k.timeout {
            None => Duration::from_secs(5),
            Some(t) => timeout_secs(t, "connect_timeout")?,
        },
        retry: match k.retry {
            None => 1,
            Some(r) => int_in(r, "retry", 0, u32::MAX as i64)? as u32,
        },
        delay_before_retry: match k.delay {
            None => Duration::from_secs(default_delay),
            Some(d) => secs_in(d, "delay_before_retry", 0.0, MAX_TIMEOUT_SECS as f64, true)?,
        },
    })
}

pub(super) fn tcp_check(t: RawTcpCheck, rs: SocketAddr) -> R<TcpCheck> {
    connect(rs, connect_keys!(t), 1)
}

pub(super) fn http_get(h: RawHttpGet, rs: SocketAddr) -> R<HttpGet> {
    let c = connect(rs, connect_keys!(h), 3)?;
    if h.url.get_ref().is_empty() {
        return fail(h.url.span(), "http_get needs at least one url");
    }
    let mut urls = Vec::new();
    for u in h.url.into_inner() {
        let u = u.into_inner();
        if !u.path.get_ref().starts_with('/') {
            return fail(
                u.path.span(),
                format!("url path `{}` must start with /", u.path.get_ref()),
            );
        }
        let status_code = match &u.status_code {
            None => Vec::new(),
            Some(s) => status_codes(s)?,
        };
        let digest = u.digest.as_ref().map(md5).transpose()?;
        urls.push(HttpUrl {
            path: u.path.into_inner(),
            status_code,
            digest,
        });
    }
    Ok(HttpGet {
        urls,
        connect_ip: c.connect_ip,
        bindto: c.bindto,
        connect_port: c.connect_port,
        connect_timeout: c.connect_timeout,
        retry: c.retry,
        delay_before_retry: c.delay_before_retry,
        virtualhost: h.virtualhost,
    })
}

/// `digest`: the page's MD5 sum, 32 hex digits.
fn md5(d: &S<String>) -> R<[u8; 16]> {
    let s = d.get_ref();
    let mut out = [0u8; 16];
    let ok = s.len() == 32
        && s.is_ascii()
        && out.iter_mut().enumerate().all(|(i, b)| {
            u8::from_str_radix(&s[2 * i..2 * i + 2], 16)
                .map(|x| *b = x)
                .is_ok()
        });
    if !ok {
        return fail(
            d.span(),
            format!("digest `{s}` is not an MD5 sum (32 hex digits)"),
        );
    }
    Ok(out)
}

/// keepalived's status_code_handler: codes and `min-max` ranges, each
/// within 100..=599.
fn status_codes(v: &S<StatusCodes>) -> R<Vec<RangeInclusive<u16>>> {
    fn code(v: &S<StatusCodes>, n: i64, shown: &str) -> R<u16> {
        if (100..=599).contains(&n) {
            Ok(n as u16)
        } else {
            fail(
                v.span(),
                format!("status_code {shown} is out of range 100..=599"),
            )
        }
    }
    fn walk(v: &S<StatusCodes>, c: &StatusCodes, out: &mut Vec<RangeInclusive<u16>>) -> R<()> {
        match c {
            StatusCodes::One(n) => {
                let n = code(v, *n, &n.to_string())?;
                out.push(n..=n);
            }
            StatusCodes::List(l) => {
                for x in l {
                    walk(v, x, out)?;
                }
            }
            StatusCodes::Text(t) => {
                for word in t.split_whitespace() {
                    let bad = || {
                        fail(
                            v.span(),
                            format!("status_code `{word}` is neither a code nor a range min-max"),
                        )
                    };
                    let (lo, hi) = match word.split_once('-') {
                        Some((a, b)) => (a, b),
                        None => (word, word),
                    };
                    let (Ok(lo), Ok(hi)) = (lo.parse::<i64>(), hi.parse::<i64>()) else {
                        return bad();
                    };
                    let (lo, hi) = (code(v, lo, word)?, code(v, hi, word)?);
                    if lo > hi {
                        return bad();
                    }
                    out.push(lo..=hi);
                }
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    walk(v, v.get_ref(), &mut out)?;
    if out.is_empty() {
        return fail(v.span(), "status_code is empty");
    }
    Ok(out)
}

pub(super) fn misc_check(m: RawMiscCheck) -> R<MiscCheck> {
    if m.misc_path.get_ref().trim().is_empty() {
        return fail(m.misc_path.span(), "misc_path is empty");
    }
    if let Err(e) = crate::config::argv::split(m.misc_path.get_ref()) {
        return fail(m.misc_path.span(), format!("misc_path: {e}"));
    }
    let misc_timeout = match &m.misc_timeout {
        None => None,
        Some(t) => Some(timeout_secs(t, "misc_timeout")?),
    };
    Ok(MiscCheck {
        misc_path: m.misc_path.into_inner(),
        misc_timeout,
        misc_dynamic: m.misc_dynamic.unwrap_or(false),
    })
}
