//! Firewall-mark classification: what `iptables -t mangle ... -j MARK
//! --set-mark N` does in front of IPVS, as the rules of a fwmark service.
//!
//! A [`FwmarkMatch`] says which frames carry the mark of the fwmark service
//! it belongs to: a protocol (or both) to an address, on one port or every
//! port. Prefixes are deliberately not offered: the XDP program redirects
//! frames by exact address (see `xsk::prog`), so a prefix rule could not
//! reach the data plane; config refuses them with their line.
//!
//! The lb.toml rules (`[[fwmark]]`) are attached to the fwmark services of
//! their mark and family by [`attach_rules`], so they travel with the
//! service table to the workers and to the XDP filter.

use std::fmt;
use std::net::IpAddr;

use super::{Protocol, ServiceSpec};

/// One match of a `[[fwmark]]` rule.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FwmarkMatch {
    /// `None`: TCP and UDP.
    pub proto: Option<Protocol>,
    pub addr: IpAddr,
    /// `None`: every port.
    pub port: Option<u16>,
}

impl FwmarkMatch {
    /// Whether a frame of `proto` to `addr:port` matches.
    #[inline]
    pub fn matches(&self, proto: Protocol, addr: IpAddr, port: u16) -> bool {
        self.addr == addr
            && self.proto.is_none_or(|p| p == proto)
            && self.port.is_none_or(|p| p == port)
    }
}

impl fmt::Display for FwmarkMatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(p) = self.proto {
            write!(f, "{} ", p.name())?;
        }
        match (self.addr, self.port) {
            (IpAddr::V4(a), Some(p)) => write!(f, "{a}:{p}"),
            (IpAddr::V6(a), Some(p)) => write!(f, "[{a}]:{p}"),
            (a, None) => write!(f, "{a}"),
        }
    }
}

/// A `[[fwmark]]` rule: frames matching any of `matches` carry `mark`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FwmarkRule {
    pub mark: u32,
    pub matches: Vec<FwmarkMatch>,
}

/// Gives every fwmark service in `specs` the matches of `rules` with its
/// mark and family, in rule order (replacing what it had): where its
/// traffic comes from. Address services are left alone.
pub fn attach_rules(specs: &mut [ServiceSpec], rules: &[FwmarkRule]) {
    for s in specs.iter_mut().filter(|s| s.key.is_fwmark()) {
        s.fwmark_matches = rules
            .iter()
            .filter(|r| r.mark == s.key.fwmark)
            .flat_map(|r| r.matches.iter())
            .filter(|m| m.addr.is_ipv4() == s.key.addr.is_ipv4())
            .copied()
            .collect();
    }
}
