//! `[[fwmark]]` rules and `[[virtual_server_group]]`s, and what a virtual
//! server's `address` / `fwmark` / `group` resolves to.
//!
//! A fwmark match says (see `service::FwmarkMatch`):
//! - `"TCP 198.18.0.250:80"` / `"UDP [2001:2::1]:53"`: one protocol, one
//!   address, one port;
//! - `"TCP 198.18.0.250"`: one protocol, every port of the address;
//! - `"198.18.0.250:80"` / `"198.18.0.250"`: TCP and UDP.
//!
//! Prefixes are refused: the XDP program redirects frames by exact
//! address. A group member is keepalived's: `"198.18.0.1:80"`, a range of
//! the last IPv4 octet `"198.18.0.1-10:80"`, a range of the last group of
//! an IPv6 address `"[2001:2::1-1f]:80"` (keepalived's `2001:2::1-1f 80`:
//! the end is hexadecimal, at most ffff, and greater than the start, as
//! keepalived's `inet_stor` and check_data.c take it), or `"fwmark 7"`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use super::super::raw::{RawFwmark, RawVsGroup, S};
use super::super::{FwmarkRule, Protocol};
use super::common::{R, fail, int_in, parse_sockaddr};
use crate::service::FwmarkMatch;

/// What a virtual server (or one member of its group) serves.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(super) enum Target {
    Addr(SocketAddr),
    /// A mark and its family (true: IPv6).
    Fwmark(u32, bool),
}

/// The address-family-of-a-service helper: an address service's address,
/// a fwmark service's unspecified address with port 0.
impl Target {
    pub(super) fn anchor(self) -> SocketAddr {
        match self {
            Target::Addr(a) => a,
            Target::Fwmark(_, false) => SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0),
            Target::Fwmark(_, true) => {
                SocketAddr::new(IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED), 0)
            }
        }
    }
}

pub(super) fn mark(v: &S<i64>, key: &str) -> R<u32> {
    Ok(int_in(v, key, 1, u32::MAX as i64)? as u32)
}

fn one_match(s: &S<String>) -> R<FwmarkMatch> {
    let text = s.get_ref().trim();
    let (proto, rest) = match text.split_once(' ') {
        Some((p, rest)) => {
            let proto = match p {
                "TCP" => Protocol::Tcp,
                "UDP" => Protocol::Udp,
                _ => {
                    return fail(
                        s.span(),
                        format!(
                            "fwmark match `{text}`: unknown protocol `{p}`, expected TCP or UDP"
                        ),
                    );
                }
            };
            (Some(proto), rest.trim())
        }
        None => (None, text),
    };
    if rest.contains('/') {
        return fail(
            s.span(),
            format!(
                "fwmark match `{text}`: prefixes are not supported (the XDP program \
                 redirects by exact address); list each address"
            ),
        );
    }
    let bare = rest.parse::<IpAddr>().ok().or_else(|| {
        rest.strip_prefix('[')
            .and_then(|r| r.strip_suffix(']'))
            .and_then(|r| r.parse::<std::net::Ipv6Addr>().ok())
            .map(IpAddr::V6)
    });
    let (addr, port) = match bare {
        Some(a) => (a, None),
        None => {
            let a = parse_sockaddr(&S::new(s.span(), rest.to_string()), "fwmark match", None)?;
            (a.ip(), Some(a.port()))
        }
    };
    if addr.is_unspecified() || addr.is_multicast() {
        return fail(
            s.span(),
            format!("fwmark match `{text}`: {addr} cannot be a virtual address"),
        );
    }
    Ok(FwmarkMatch { proto, addr, port })
}

/// The `[[fwmark]]` rules; a match listed twice (under any mark) is refused,
/// since a frame carries one mark.
pub(super) fn rules(raw: Vec<S<RawFwmark>>) -> R<Vec<FwmarkRule>> {
    let mut out: Vec<FwmarkRule> = Vec::with_capacity(raw.len());
    for r in raw {
        let r = r.into_inner();
        let mark = mark(&r.mark, "mark")?;
        if r.matches.get_ref().is_empty() {
            return fail(r.matches.span(), "fwmark rule without any match");
        }
        let mut matches = Vec::with_capacity(r.matches.get_ref().len());
        for m in r.matches.get_ref() {
            let x = one_match(m)?;
            let before = out
                .iter()
                .flat_map(|r| r.matches.iter().map(move |m| (r.mark, m)));
            if let Some((other, _)) = before
                .chain(matches.iter().map(|m| (mark, m)))
                .find(|(_, y)| overlap(y, &x))
            {
                return fail(
                    m.span(),
                    format!(
                        "fwmark match `{x}` overlaps a match of mark {other}: a frame carries one mark"
                    ),
                );
            }
            matches.push(x);
        }
        out.push(FwmarkRule { mark, matches });
    }
    Ok(out)
}

fn overlap(a: &FwmarkMatch, b: &FwmarkMatch) -> bool {
    a.addr == b.addr
        && (a.proto.is_none() || b.proto.is_none() || a.proto == b.proto)
        && (a.port.is_none() || b.port.is_none() || a.port == b.port)
}

/// The family of `mark`'s fwmark service: its rules' (IPv6 if they are),
/// IPv4 without rules; rules of both families are refused at `span`.
pub(super) fn mark_family(
    rules: &[FwmarkRule],
    mark: u32,
    span: std::ops::Range<usize>,
) -> R<bool> {
    let mut fams = rules
        .iter()
        .filter(|r| r.mark == mark)
        .flat_map(|r| r.matches.iter().map(|m| m.addr.is_ipv6()));
    let first = fams.next().unwrap_or(false);
    if fams.any(|f| f != first) {
        return fail(
            span,
            format!(
                "fwmark {mark}: its [[fwmark]] rules match IPv4 and IPv6 addresses; \
                 use one mark per family"
            ),
        );
    }
    Ok(first)
}

/// A `[[virtual_server_group]]`: its name and its members as written.
pub(super) struct Group {
    pub name: String,
    pub members: Vec<S<String>>,
}

pub(super) fn groups(raw: Vec<S<RawVsGroup>>) -> R<Vec<Group>> {
    let mut out: Vec<Group> = Vec::with_capacity(raw.len());
    for g in raw {
        let g = g.into_inner();
        let name = g.name.get_ref().clone();
        if name.is_empty() {
            return fail(g.name.span(), "virtual_server_group name is empty");
        }
        if out.iter().any(|x| x.name == name) {
            return fail(
                g.name.span(),
                format!("duplicate virtual_server_group name `{name}`"),
            );
        }
        let span = g.members.span();
        let members = g.members.into_inner();
        if members.is_empty() {
            return fail(span, format!("virtual_server_group {name} has no member"));
        }
        out.push(Group { name, members });
    }
    Ok(out)
}

/// One member: its services (a range gives several), in order.
pub(super) fn member(s: &S<String>, rules: &[FwmarkRule]) -> R<Vec<Target>> {
    let text = s.get_ref().trim();
    if let Some(n) = text.strip_prefix("fwmark ") {
        let n: i64 = n.trim().parse().or_else(|_| {
            fail(
                s.span(),
                format!("group member `{text}`: `{n}` is not a mark"),
            )
        })?;
        let m = mark(&S::new(s.span(), n), "fwmark")?;
        return Ok(vec![Target::Fwmark(m, mark_family(rules, m, s.span())?)]);
    }
    // keepalived's IPv6 range: the last 16-bit group runs to END (hex).
    if let Some(rest) = text.strip_prefix('[')
        && let Some((inner, port)) = rest.split_once("]:")
        && let Some((first, end)) = inner.split_once('-')
    {
        let bad = |why: &str| fail(s.span(), format!("group member `{text}`: {why}"));
        let Ok(first) = first.parse::<Ipv6Addr>() else {
            return bad("an IPv6 range is an address whose last group runs: `[2001:2::1-1f]:PORT`");
        };
        let Ok(end) = u16::from_str_radix(end, 16) else {
            return bad("the end of the range is not a hexadecimal group (0..=ffff)");
        };
        let seg = first.segments();
        if seg[7] >= end {
            return bad("the range end is not greater than its start");
        }
        let a = parse_sockaddr(
            &S::new(s.span(), format!("[{first}]:{port}")),
            "group member",
            None,
        )?;
        return Ok((seg[7]..=end)
            .map(|last| {
                let mut g = seg;
                g[7] = last;
                Target::Addr(SocketAddr::new(IpAddr::V6(Ipv6Addr::from(g)), a.port()))
            })
            .collect());
    }
    // keepalived's range: the last octet of an IPv4 address runs to END.
    if !text.starts_with('[')
        && let Some((addr, port)) = text.rsplit_once(':')
        && let Some((first, end)) = addr.split_once('-')
    {
        let bad = |why: &str| fail(s.span(), format!("group member `{text}`: {why}"));
        let Ok(first) = first.parse::<Ipv4Addr>() else {
            return bad("a range is an IPv4 address whose last octet runs: `A.B.C.D-E:PORT`");
        };
        let Ok(end) = end.parse::<u8>() else {
            return bad("the end of the range is not an octet (0..=255)");
        };
        let o = first.octets();
        if end < o[3] {
            return bad("the range ends below its start");
        }
        let a = parse_sockaddr(
            &S::new(s.span(), format!("{first}:{port}")),
            "group member",
            None,
        )?;
        return Ok((o[3]..=end)
            .map(|last| {
                Target::Addr(SocketAddr::new(
                    IpAddr::V4(Ipv4Addr::new(o[0], o[1], o[2], last)),
                    a.port(),
                ))
            })
            .collect());
    }
    Ok(vec![Target::Addr(parse_sockaddr(s, "group member", None)?)])
}
