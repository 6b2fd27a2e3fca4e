//! A real server's health checks: keepalived's TCP_CHECK, HTTP_GET,
//! SSL_GET, DNS_CHECK, UDP_CHECK, PING_CHECK, SMTP_CHECK and MISC_CHECK,
//! any number of each.
//!
//! Timers and connect_timeout are inherited as keepalived does: the
//! checker's key, else the real server's, else the virtual server's, else
//! the kind's default (retry 1, DNS 3, MISC 0; delay_before_retry 1 s,
//! HTTP/SSL 3 s, DNS the delay_loop; warmup the delay_loop; connect_timeout
//! 5 s). HTTP's `virtualhost` follows url, checker, real server, virtual
//! server.

use std::net::SocketAddr;
use std::ops::RangeInclusive;
use std::time::Duration;

use super::super::raw::{
    RawDnsCheck, RawHttpGet, RawMiscCheck, RawPingCheck, RawSmtpCheck, RawTcpCheck, RawUdpCheck,
    ReplyPattern, S, StatusCodes,
};
use super::super::{
    CheckKind, Connect, DnsCheck, HealthCheck, HttpGet, HttpProtocol, HttpUrl, MiscCheck,
    SmtpCheck, UdpCheck,
};
use super::common::{
    MAX_TIMEOUT_SECS, R, fail, int_in, nonempty, parse_ip, same_family, secs_in, timeout_secs,
};

/// keepalived's SMTP_CHECK helo_name default.
pub const SMTP_DEFAULT_HELO: &str = "smtpchecker.keepalived.org";
/// keepalived's UDP_CHECK max_reply_length default (and bound).
pub const UDP_MAX_REPLY: usize = 255;

/// What a real server passes down to its checkers (its own keys over the
/// virtual server's).
#[derive(Clone, Debug, Default)]
pub(super) struct Inherited {
    pub retry: Option<u32>,
    pub delay_before_retry: Option<Duration>,
    pub warmup: Option<Duration>,
    pub connect_timeout: Option<Duration>,
    pub delay_loop: Duration,
    pub alpha: bool,
    pub virtualhost: Option<String>,
    /// The virtual server's `weight` and `inhibit_on_failure`, the
    /// defaults of its real servers' own.
    pub weight: Option<i32>,
    pub inhibit_on_failure: Option<bool>,
}

/// The timer keys, read from a checker, a real server or a virtual server.
pub(super) struct TimerKeys<'a> {
    pub retry: &'a Option<S<i64>>,
    pub delay_before_retry: &'a Option<S<f64>>,
    pub warmup: &'a Option<S<f64>>,
    pub connect_timeout: Option<&'a Option<S<f64>>>,
    pub delay_loop: &'a Option<S<f64>>,
    pub alpha: Option<bool>,
}

impl Inherited {
    /// `self` overridden by the keys given at the next level down.
    pub fn over(&self, k: TimerKeys, virtualhost: Option<&S<String>>) -> R<Inherited> {
        Ok(Inherited {
            retry: match k.retry {
                None => self.retry,
                Some(r) => Some(int_in(r, "retry", 0, u32::MAX as i64)? as u32),
            },
            delay_before_retry: match k.delay_before_retry {
                None => self.delay_before_retry,
                Some(d) => Some(secs_in(
                    d,
                    "delay_before_retry",
                    0.0,
                    MAX_TIMEOUT_SECS as f64,
                    true,
                )?),
            },
            warmup: match k.warmup {
                None => self.warmup,
                Some(w) => Some(secs_in(w, "warmup", 0.0, MAX_TIMEOUT_SECS as f64, true)?),
            },
            connect_timeout: match k.connect_timeout {
                Some(Some(t)) => Some(timeout_secs(t, "connect_timeout")?),
                _ => self.connect_timeout,
            },
            delay_loop: match k.delay_loop {
                None => self.delay_loop,
                Some(d) => timeout_secs(d, "delay_loop")?,
            },
            alpha: k.alpha.unwrap_or(self.alpha),
            virtualhost: match virtualhost {
                None => self.virtualhost.clone(),
                Some(v) => nonempty(Some(v.clone()), "virtualhost")?,
            },
            weight: self.weight,
            inhibit_on_failure: self.inhibit_on_failure,
        })
    }

    /// The checker's timers with the kind's defaults (retry,
    /// delay_before_retry; `None` = the delay_loop).
    fn check(&self, retry: u32, dbr: Option<Duration>, kind: CheckKind) -> HealthCheck {
        HealthCheck {
            log_all_failures: false,
            delay_loop: self.delay_loop,
            retry: self.retry.unwrap_or(retry),
            delay_before_retry: self.delay_before_retry.or(dbr).unwrap_or(self.delay_loop),
            warmup: self.warmup.unwrap_or(self.delay_loop),
            alpha: self.alpha,
            kind,
        }
    }
}

impl HealthCheck {
    fn logging(mut self, all: Option<bool>) -> HealthCheck {
        self.log_all_failures = all.unwrap_or(false);
        self
    }
}

/// The connection keys every network checker shares.
struct ConnectKeys<'a> {
    fwmark: &'a Option<S<i64>>,
    ip: &'a Option<S<String>>,
    port: &'a Option<S<i64>>,
    bindto: &'a Option<S<String>>,
    bind_port: &'a Option<S<i64>>,
    bind_if: &'a Option<S<String>>,
}

/// Reads a raw checker's common keys: (its inherited timers, its
/// connection keys).
macro_rules! common {
    ($raw:expr, $up:expr, $vhost:expr) => {
        (
            $up.over(
                TimerKeys {
                    retry: &$raw.retry,
                    delay_before_retry: &$raw.delay_before_retry,
                    warmup: &$raw.warmup,
                    connect_timeout: Some(&$raw.connect_timeout),
                    delay_loop: &$raw.delay_loop,
                    alpha: $raw.alpha,
                },
                $vhost,
            )?,
            ConnectKeys {
                fwmark: &$raw.fwmark,
                ip: &$raw.connect_ip,
                port: &$raw.connect_port,
                bindto: &$raw.bindto,
                bind_port: &$raw.bind_port,
                bind_if: &$raw.bind_if,
            },
        )
    };
}

/// The connection a check makes to real server `rs`.
fn connect(rs: SocketAddr, k: ConnectKeys, t: &Inherited) -> R<Connect> {
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
    let bind_if = match k.bind_if {
        None => None,
        Some(i) => {
            let name = i.get_ref();
            // IFNAMSIZ: 15 bytes and a NUL.
            if name.is_empty() || name.len() > 15 || name.contains(['/', ' ', '\0']) {
                return fail(
                    i.span(),
                    format!("bind_if `{name}` is not an interface name"),
                );
            }
            Some(name.clone())
        }
    };
    Ok(Connect {
        connect_ip: ip,
        connect_port: match k.port {
            None => rs.port(),
            Some(p) => int_in(p, "connect_port", 1, 65535)? as u16,
        },
        bindto,
        bind_port: match k.bind_port {
            None => None,
            Some(p) => Some(int_in(p, "bind_port", 1, 65535)? as u16),
        },
        bind_if,
        fwmark: match k.fwmark {
            None => None,
            Some(m) => Some(int_in(m, "fwmark", 1, u32::MAX as i64)? as u32),
        },
        connect_timeout: t.connect_timeout.unwrap_or(Duration::from_secs(5)),
    })
}

pub(super) fn tcp_check(t: RawTcpCheck, rs: SocketAddr, up: &Inherited) -> R<HealthCheck> {
    let (i, k) = common!(t, up, None);
    let c = connect(rs, k, &i)?;
    Ok(i.check(1, Some(Duration::from_secs(1)), CheckKind::Tcp(c))
        .logging(t.log_all_failures))
}

pub(super) fn ping_check(t: RawPingCheck, rs: SocketAddr, up: &Inherited) -> R<HealthCheck> {
    if let Some(p) = &t.connect_port {
        return fail(p.span(), "ping_check has no port (ICMP echo)");
    }
    if let Some(p) = &t.bind_port {
        return fail(p.span(), "ping_check has no port (ICMP echo)");
    }
    let (i, k) = common!(t, up, None);
    let c = connect(rs, k, &i)?;
    Ok(i.check(1, Some(Duration::from_secs(1)), CheckKind::Ping(c))
        .logging(t.log_all_failures))
}

pub(super) fn smtp_check(t: RawSmtpCheck, rs: SocketAddr, up: &Inherited) -> R<HealthCheck> {
    let (i, k) = common!(t, up, None);
    let c = connect(rs, k, &i)?;
    let helo_name = match &t.helo_name {
        None => SMTP_DEFAULT_HELO.to_string(),
        Some(h) => {
            let v = h.get_ref();
            if v.is_empty() || v.contains(['\r', '\n']) || v.len() > 255 {
                return fail(h.span(), format!("helo_name `{v}` is not a host name"));
            }
            v.clone()
        }
    };
    Ok(i.check(
        1,
        Some(Duration::from_secs(1)),
        CheckKind::Smtp(SmtpCheck {
            connect: c,
            helo_name,
        }),
    )
    .logging(t.log_all_failures))
}

/// keepalived's DNS_TYPE table.
const DNS_TYPES: &[(&str, u16)] = &[
    ("A", 1),
    ("NS", 2),
    ("CNAME", 5),
    ("SOA", 6),
    ("MX", 15),
    ("TXT", 16),
    ("AAAA", 28),
    ("RRSIG", 46),
    ("DNSKEY", 48),
];

pub(super) fn dns_check(t: RawDnsCheck, rs: SocketAddr, up: &Inherited) -> R<HealthCheck> {
    let (i, k) = common!(t, up, None);
    let c = connect(rs, k, &i)?;
    let qtype = match &t.qtype {
        None => 6,
        Some(q) => match DNS_TYPES
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(q.get_ref()))
        {
            Some((_, v)) => *v,
            None => {
                let names: Vec<&str> = DNS_TYPES.iter().map(|(n, _)| *n).collect();
                return fail(
                    q.span(),
                    format!(
                        "unknown DNS type `{}`, expected one of {}",
                        q.get_ref(),
                        names.join(", ")
                    ),
                );
            }
        },
    };
    let name = match &t.name {
        None => String::new(),
        Some(n) => {
            let v = n.get_ref();
            if let Err(e) = crate::wire::dns::encode_name(v) {
                return fail(n.span(), format!("DNS name `{v}`: {e}"));
            }
            v.clone()
        }
    };
    Ok(i.check(
        3,
        None,
        CheckKind::Dns(DnsCheck {
            connect: c,
            qtype,
            name,
        }),
    )
    .logging(t.log_all_failures))
}

/// keepalived's read_hex_str: hex digits, spaces between octets, and (for
/// a reply pattern) `x` wildcard nibbles; returns (bytes, mask of ignored
/// bits).
pub(crate) fn hex_str(s: &str, wildcards: bool) -> Result<(Vec<u8>, Vec<u8>), String> {
    fn nib(c: u8, wild: bool) -> Option<(u8, u8)> {
        match c {
            b'0'..=b'9' => Some((c - b'0', 0)),
            b'a'..=b'f' => Some((c - b'a' + 10, 0)),
            b'A'..=b'F' => Some((c - b'A' + 10, 0)),
            b'x' | b'X' if wild => Some((0, 0x0f)),
            _ => None,
        }
    }
    let b = s.as_bytes();
    let (mut data, mut mask) = (Vec::new(), Vec::new());
    let mut i = 0;
    loop {
        while i < b.len() && (b[i] == b' ' || b[i] == b'\t') {
            i += 1;
        }
        if i >= b.len() {
            break;
        }
        let bad = |c: u8| format!("`{}` is not a hex digit", c as char);
        let (mut v, mut m) = nib(b[i], wildcards).ok_or_else(|| bad(b[i]))?;
        i += 1;
        if i < b.len() && b[i] != b' ' && b[i] != b'\t' {
            let (v2, m2) = nib(b[i], wildcards).ok_or_else(|| bad(b[i]))?;
            v = (v << 4) | v2;
            m = (m << 4) | m2;
            i += 1;
        }
        data.push(v);
        mask.push(m);
    }
    if data.is_empty() {
        return Err("no hex digits".into());
    }
    Ok((data, mask))
}

pub(super) fn udp_check(t: RawUdpCheck, rs: SocketAddr, up: &Inherited) -> R<HealthCheck> {
    let (i, k) = common!(t, up, None);
    let c = connect(rs, k, &i)?;
    let payload = match &t.payload {
        None => None,
        Some(p) => match hex_str(p.get_ref(), false) {
            Ok((d, _)) => Some(d),
            Err(e) => return fail(p.span(), format!("payload is not a hex string: {e}")),
        },
    };
    let (require_reply, reply) = match &t.require_reply {
        None => (false, None),
        Some(r) => match r.get_ref() {
            ReplyPattern::Flag(f) => (*f, None),
            ReplyPattern::Hex(h) => match hex_str(h, true) {
                Ok(d) => (true, Some(d)),
                Err(e) => {
                    return fail(r.span(), format!("require_reply is not a hex pattern: {e}"));
                }
            },
        },
    };
    let len = |v: &Option<S<i64>>, key: &str, d: usize| -> R<usize> {
        match v {
            None => Ok(d),
            Some(x) => Ok(int_in(x, key, 0, UDP_MAX_REPLY as i64)? as usize),
        }
    };
    let min_reply_length = len(&t.min_reply_length, "min_reply_length", 0)?;
    let max_reply_length = len(&t.max_reply_length, "max_reply_length", UDP_MAX_REPLY)?;
    if min_reply_length > max_reply_length {
        let span = t
            .min_reply_length
            .as_ref()
            .map(|x| x.span())
            .unwrap_or_default();
        return fail(
            span,
            format!(
                "min_reply_length {min_reply_length} is above max_reply_length \
                 {max_reply_length}: the check could never pass"
            ),
        );
    }
    if (t.min_reply_length.is_some() || t.max_reply_length.is_some()) && !require_reply {
        let span = t
            .min_reply_length
            .as_ref()
            .or(t.max_reply_length.as_ref())
            .map(|x| x.span())
            .unwrap_or_default();
        return fail(span, "reply lengths need require_reply");
    }
    Ok(i.check(
        1,
        Some(Duration::from_secs(1)),
        CheckKind::Udp(UdpCheck {
            connect: c,
            payload,
            require_reply,
            reply,
            min_reply_length,
            max_reply_length,
        }),
    )
    .logging(t.log_all_failures))
}

/// `http_get` (`ssl = false`) or `ssl_get` (`ssl = true`).
pub(super) fn http_get(h: RawHttpGet, rs: SocketAddr, up: &Inherited, ssl: bool) -> R<HealthCheck> {
    let (i, k) = common!(h, up, h.virtualhost.as_ref());
    let c = connect(rs, k, &i)?;
    if h.url.get_ref().is_empty() {
        return fail(h.url.span(), "http_get needs at least one url");
    }
    let http_protocol = match &h.http_protocol {
        None => HttpProtocol::V10,
        Some(p) => match p.get_ref().as_str() {
            "1.0" => HttpProtocol::V10,
            "1.0C" | "1.0c" => HttpProtocol::V10Close,
            "1.1" => HttpProtocol::V11,
            other => {
                return fail(
                    p.span(),
                    format!("http_protocol `{other}`, expected 1.0, 1.0C or 1.1"),
                );
            }
        },
    };
    if !ssl {
        if let Some(v) = &h.enable_sni {
            return fail(v.span(), "enable_sni is for ssl_get only");
        }
        if let Some(n) = &h.sni_name {
            return fail(n.span(), "sni_name is for ssl_get only");
        }
        if let Some(v) = &h.tls_compliant {
            return fail(v.span(), "tls_compliant is for ssl_get only");
        }
        if let Some(v) = h
            .url
            .get_ref()
            .iter()
            .find_map(|u| u.get_ref().tls_compliant.as_ref())
        {
            return fail(v.span(), "tls_compliant is for ssl_get only");
        }
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
        let flags = match &u.regex_options {
            None => String::new(),
            Some(o) => {
                if u.regex.is_none() {
                    return fail(o.span(), "regex_options needs a regex in the same url");
                }
                regex_flags(o)?
            }
        };
        let regex = match &u.regex {
            None => None,
            Some(r) => {
                let pattern = format!("{flags}{}", r.get_ref());
                if let Err(e) = regex::bytes::Regex::new(&pattern) {
                    return fail(r.span(), format!("regex: {e}"));
                }
                Some(pattern)
            }
        };
        if u.regex_no_match.is_some() && regex.is_none() {
            return fail(
                u.path.span(),
                "regex_no_match needs a regex in the same url",
            );
        }
        urls.push(HttpUrl {
            path: u.path.into_inner(),
            status_code,
            digest,
            virtualhost: nonempty(u.virtualhost, "virtualhost")?,
            regex,
            regex_no_match: u.regex_no_match.unwrap_or(false),
            tls_compliant: u.tls_compliant.as_ref().is_some_and(|v| *v.get_ref()),
        });
    }
    let g = HttpGet {
        urls,
        connect: c,
        virtualhost: i.virtualhost.clone(),
        http_protocol,
        enable_sni: h.enable_sni.as_ref().is_some_and(|v| *v.get_ref()),
        sni_name: nonempty(h.sni_name, "sni_name")?,
        tls_compliant: h.tls_compliant.as_ref().is_some_and(|v| *v.get_ref()),
        fast_recovery: h.fast_recovery.unwrap_or(false),
    };
    let kind = if ssl {
        CheckKind::Ssl(g)
    } else {
        CheckKind::Http(g)
    };
    Ok(i.check(1, Some(Duration::from_secs(3)), kind)
        .logging(h.log_all_failures))
}

/// keepalived's regex_options (PCRE2 compile options) that change what
/// matches, as the regex crate's inline flags.
const REGEX_OPTIONS: &[(&str, char)] = &[
    ("caseless", 'i'),
    ("multiline", 'm'),
    ("dotall", 's'),
    ("extended", 'x'),
    ("ungreedy", 'U'),
];

/// `regex_options` as an inline flag group (`(?im)`); an option without an
/// equivalent is refused by name.
fn regex_flags(o: &S<Vec<String>>) -> R<String> {
    let mut flags = String::new();
    for name in o.get_ref() {
        match REGEX_OPTIONS.iter().find(|(n, _)| n == name) {
            Some((_, f)) => {
                if !flags.contains(*f) {
                    flags.push(*f);
                }
            }
            None => {
                let known: Vec<&str> = REGEX_OPTIONS.iter().map(|(n, _)| *n).collect();
                return fail(
                    o.span(),
                    format!(
                        "regex_options `{name}` is not supported (supported: {})",
                        known.join(", ")
                    ),
                );
            }
        }
    }
    Ok(if flags.is_empty() {
        flags
    } else {
        format!("(?{flags})")
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

pub(super) fn misc_check(m: RawMiscCheck, up: &Inherited) -> R<HealthCheck> {
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
    let (user, group) = super::vrrp::script_account(&m.user, &m.group)?;
    let i = up.over(
        TimerKeys {
            retry: &m.retry,
            delay_before_retry: &m.delay_before_retry,
            warmup: &m.warmup,
            connect_timeout: None,
            delay_loop: &m.delay_loop,
            alpha: m.alpha,
        },
        None,
    )?;
    Ok(i.check(
        0,
        Some(Duration::from_secs(1)),
        CheckKind::Misc(MiscCheck {
            misc_path: m.misc_path.into_inner(),
            misc_timeout,
            misc_dynamic: m.misc_dynamic.unwrap_or(false),
            user,
            group,
        }),
    )
    .logging(m.log_all_failures))
}

#[cfg(test)]
mod tests {
    use super::hex_str;

    #[test]
    fn hex_strings_read_as_keepalived_reads_them() {
        assert_eq!(
            hex_str("dead BEEF", false),
            Ok((vec![0xde, 0xad, 0xbe, 0xef], vec![0; 4]))
        );
        // A lone digit before a space is one octet of its value.
        assert_eq!(hex_str("1 23", false), Ok((vec![0x01, 0x23], vec![0, 0])));
        assert_eq!(hex_str("1x", true), Ok((vec![0x10], vec![0x0f])));
        assert!(hex_str("1x", false).is_err(), "wildcards only in patterns");
        assert!(hex_str("  ", false).is_err());
        assert!(hex_str("0g", false).is_err());
    }
}
