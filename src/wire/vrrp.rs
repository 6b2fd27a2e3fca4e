//! VRRP advertisements: VRRPv2 (RFC 3768, IPv4, with its authentication
//! fields) and VRRPv3 (RFC 5798, IPv4 and IPv6).
//!
//! The VRRP message is the IP payload (protocol 112); the IP header is the
//! caller's business. [`VrrpPacket`] is a zero-copy view in the style of
//! smoltcp: [`VrrpPacket::new_checked`] verifies that the buffer holds
//! exactly one message of the version and family it claims, after which every
//! accessor reads within bounds. Accessors never panic even on an unchecked
//! view: out-of-range reads give zero. [`VrrpRepr`] is the owned, high-level
//! form that [`VrrpRepr::emit`] writes back, checksum included.
//!
//! Layout (both versions share the first 4 bytes and the checksum position):
//!
//! ```text
//!  0        4        8               16              24              32
//! +--------+--------+---------------+---------------+---------------+
//! |Version | Type   | Virtual Rtr ID|   Priority    | Count IPvX Addr|
//! +--------+--------+---------------+---------------+---------------+
//! | v2: Auth Type   | v2: Adver Int |          Checksum             |
//! | v3: rsvd(4) + Max Adver Int(12, centiseconds)   |  Checksum     |
//! +-----------------------------------------------------------------+
//! | Count IP addresses (4 bytes each for IPv4, 16 for IPv6)          |
//! +-----------------------------------------------------------------+
//! | v2 only: Authentication Data (8 bytes)                           |
//! +-----------------------------------------------------------------+
//! ```
//!
//! Checksums: v2 sums the VRRP message alone (auth data included); v3 adds
//! the IPv4 or IPv6 pseudo-header (RFC 5798 section 5.2.8).
//!
//! Deliberately not here: semantic checks (TTL, VRID, password, interval),
//! which belong to the state machine in `control::vrrp`, and IPsec AH.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::checksum;

/// IP protocol number of VRRP.
pub const IPPROTO_VRRP: u8 = 112;
/// TTL / hop limit every advertisement is sent and must arrive with.
pub const VRRP_TTL: u8 = 255;
/// The VRRP multicast groups.
pub const MCAST_V4: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 18);
pub const MCAST_V6: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 0x12);
/// Byte positions in the VRRP header (RFC 3768 §5.1 for v2, RFC 9568 §5.1
/// for v3), from the start of the VRRP message.
pub mod field {
    use core::ops::Range;

    /// Version (high nibble) and Type (low nibble).
    pub const VER_TYPE: usize = 0;
    pub const VRID: usize = 1;
    pub const PRIORITY: usize = 2;
    /// Count IPvX Addr.
    pub const COUNT: usize = 3;
    /// v2 only: Auth Type.
    pub const AUTH_TYPE: usize = 4;
    /// v2 only: Adver Int, in seconds.
    pub const ADVER_INT: usize = 5;
    /// v3: 4 reserved bits and the 12-bit Max Adver Int (centiseconds);
    /// v2: Auth Type and Adver Int.
    pub const MAX_ADVER_INT: Range<usize> = 4..6;
    pub const CHECKSUM: Range<usize> = 6..8;
    /// The first address.
    pub const ADDRS: usize = 8;
}

/// Fixed header length, both versions.
pub const HEADER_LEN: usize = field::ADDRS;
/// VRRPv2 authentication data length.
pub const AUTH_DATA_LEN: usize = 8;
/// The only packet type either RFC defines.
pub const TYPE_ADVERTISEMENT: u8 = 1;
/// VRRPv2 Auth Type values (RFC 2338 section 5.3.6; RFC 3768 keeps the field).
pub const AUTH_NONE: u8 = 0;
pub const AUTH_PASS: u8 = 1;
pub const AUTH_AH: u8 = 2;
/// Largest VRRPv3 Max Adver Int (12 bits of centiseconds).
pub const MAX_ADVER_INT_CS: u16 = 0x0fff;

/// Protocol version.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum Version {
    /// RFC 3768.
    V2,
    /// RFC 5798.
    V3,
}

impl Version {
    pub fn number(self) -> u8 {
        match self {
            Version::V2 => 2,
            Version::V3 => 3,
        }
    }
}

/// Address family of the advertisement (from the IP header it came in).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum Family {
    V4,
    V6,
}

impl Family {
    pub fn of(addr: &IpAddr) -> Family {
        match addr {
            IpAddr::V4(_) => Family::V4,
            IpAddr::V6(_) => Family::V6,
        }
    }
    /// Bytes per address in the message.
    pub fn addr_len(self) -> usize {
        match self {
            Family::V4 => 4,
            Family::V6 => 16,
        }
    }
}

/// Why bytes are not a VRRP message, or a [`VrrpRepr`] cannot be written.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum VrrpError {
    /// Shorter than the 8-byte fixed header.
    Truncated,
    /// The version field is neither 2 nor 3.
    UnknownVersion,
    /// VRRPv2 in an IPv6 packet: RFC 3768 defines v2 for IPv4 only.
    V2OverIpv6,
    /// The length is not what the address count (and v2 auth data) make.
    BadLength,
    /// Emit: an address of the other family than the packet's.
    FamilyMismatch,
    /// Emit: more than 255 addresses.
    TooManyAddresses,
    /// Emit: the interval does not fit the version's field (v2: whole
    /// seconds 1..=255; v3: 1..=4095 centiseconds).
    BadInterval,
    /// Emit: the output buffer is shorter than [`VrrpRepr::buffer_len`].
    BufferTooSmall,
}

/// The VRID of a message, read before anything else is checked (receivers
/// sort adverts by VRID first, as keepalived does).
pub fn peek_vrid(bytes: &[u8]) -> Option<u8> {
    bytes.get(1).copied()
}

/// A read-only view of one VRRP message.
#[derive(Debug, Clone)]
pub struct VrrpPacket<T: AsRef<[u8]>> {
    buffer: T,
    family: Family,
}

impl<T: AsRef<[u8]>> VrrpPacket<T> {
    /// A view without any check; accessors still never panic.
    pub fn new_unchecked(buffer: T, family: Family) -> VrrpPacket<T> {
        VrrpPacket { buffer, family }
    }

    /// A view of a buffer that holds exactly one well-formed message.
    pub fn new_checked(buffer: T, family: Family) -> Result<VrrpPacket<T>, VrrpError> {
        let p = VrrpPacket::new_unchecked(buffer, family);
        p.check_len()?;
        Ok(p)
    }

    /// Checks the header is present, the version known and allowed for the
    /// family, and the length exact.
    pub fn check_len(&self) -> Result<(), VrrpError> {
        let b = self.buffer.as_ref();
        if b.len() < HEADER_LEN {
            return Err(VrrpError::Truncated);
        }
        let version = match self.version_raw() {
            2 => Version::V2,
            3 => Version::V3,
            _ => return Err(VrrpError::UnknownVersion),
        };
        if version == Version::V2 && self.family == Family::V6 {
            return Err(VrrpError::V2OverIpv6);
        }
        if b.len() != message_len(version, self.family, self.addr_count() as usize) {
            return Err(VrrpError::BadLength);
        }
        Ok(())
    }

    fn byte(&self, i: usize) -> u8 {
        self.buffer.as_ref().get(i).copied().unwrap_or(0)
    }

    fn u16_at(&self, i: usize) -> u16 {
        u16::from_be_bytes([self.byte(i), self.byte(i + 1)])
    }

    pub fn family(&self) -> Family {
        self.family
    }
    /// The 4-bit version field as received.
    pub fn version_raw(&self) -> u8 {
        self.byte(field::VER_TYPE) >> 4
    }
    /// The version (a checked view's is always 2 or 3; an unchecked view
    /// reports anything but 2 as V3).
    pub fn version(&self) -> Version {
        if self.version_raw() == 2 {
            Version::V2
        } else {
            Version::V3
        }
    }
    /// The 4-bit type field (1 = advertisement).
    pub fn kind(&self) -> u8 {
        self.byte(field::VER_TYPE) & 0x0f
    }
    pub fn vrid(&self) -> u8 {
        self.byte(field::VRID)
    }
    pub fn priority(&self) -> u8 {
        self.byte(field::PRIORITY)
    }
    pub fn addr_count(&self) -> u8 {
        self.byte(field::COUNT)
    }
    /// v2 Auth Type; 0 for v3 (whose byte 4 is part of the interval).
    pub fn auth_type(&self) -> u8 {
        match self.version() {
            Version::V2 => self.byte(field::AUTH_TYPE),
            Version::V3 => 0,
        }
    }
    /// The advertisement interval in centiseconds, from either version's
    /// field (v2: seconds x 100; v3: the 12-bit Max Adver Int).
    pub fn interval_cs(&self) -> u16 {
        match self.version() {
            Version::V2 => self.byte(field::ADVER_INT) as u16 * 100,
            Version::V3 => self.u16_at(field::MAX_ADVER_INT.start) & MAX_ADVER_INT_CS,
        }
    }
    pub fn checksum(&self) -> u16 {
        self.u16_at(field::CHECKSUM.start)
    }
    /// The addresses, in order. Empty past the end of the buffer.
    pub fn addresses(&self) -> impl Iterator<Item = IpAddr> + '_ {
        let alen = self.family.addr_len();
        let b = self.buffer.as_ref();
        let body = b.get(HEADER_LEN..).unwrap_or(&[]);
        body.chunks_exact(alen)
            .take(self.addr_count() as usize)
            .map(move |c| match <[u8; 16]>::try_from(c) {
                Ok(a16) => IpAddr::V6(Ipv6Addr::from(a16)),
                Err(_) => {
                    let mut a4 = [0u8; 4];
                    a4.copy_from_slice(c.get(..4).unwrap_or(&[0; 4]));
                    IpAddr::V4(Ipv4Addr::from(a4))
                }
            })
    }
    /// v2 Authentication Data (all zero for v3 or when absent).
    pub fn auth_data(&self) -> [u8; AUTH_DATA_LEN] {
        let mut out = [0u8; AUTH_DATA_LEN];
        if self.version() == Version::V2 {
            let off = HEADER_LEN + self.addr_count() as usize * self.family.addr_len();
            if let Some(d) = self.buffer.as_ref().get(off..off + AUTH_DATA_LEN) {
                out.copy_from_slice(d);
            }
        }
        out
    }
    /// Whether the checksum is right: v2 over the message alone, v3 with
    /// the pseudo-header of `src` -> `dst` (the IP header's addresses).
    pub fn verify_checksum(&self, src: IpAddr, dst: IpAddr) -> bool {
        let b = self.buffer.as_ref();
        let s = match self.version() {
            Version::V2 => checksum::sum(b),
            Version::V3 => {
                let Ok(len) = u32::try_from(b.len()) else {
                    return false;
                };
                if Family::of(&src) != self.family || Family::of(&dst) != self.family {
                    return false;
                }
                checksum::add(
                    checksum::pseudo(src, dst, IPPROTO_VRRP, len),
                    checksum::sum(b),
                )
            }
        };
        s == 0xFFFF
    }
}

/// Length of a message of `version` / `family` with `count` addresses.
pub fn message_len(version: Version, family: Family, count: usize) -> usize {
    HEADER_LEN
        + count * family.addr_len()
        + match version {
            Version::V2 => AUTH_DATA_LEN,
            Version::V3 => 0,
        }
}

/// An advertisement in high-level form.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VrrpRepr {
    pub version: Version,
    pub vrid: u8,
    pub priority: u8,
    /// Advertisement interval in centiseconds (v2 carries whole seconds, so
    /// a v2 interval must be a multiple of 100).
    pub interval_cs: u16,
    /// v2 Auth Type and Authentication Data; zero for v3.
    pub auth_type: u8,
    pub auth_data: [u8; AUTH_DATA_LEN],
    /// All of the packet's family.
    pub addrs: Vec<IpAddr>,
}

impl VrrpRepr {
    /// The high-level form of a checked packet (allocates the address list).
    pub fn parse<T: AsRef<[u8]>>(p: &VrrpPacket<T>) -> VrrpRepr {
        VrrpRepr {
            version: p.version(),
            vrid: p.vrid(),
            priority: p.priority(),
            interval_cs: p.interval_cs(),
            auth_type: p.auth_type(),
            auth_data: p.auth_data(),
            addrs: p.addresses().collect(),
        }
    }

    fn family(&self) -> Family {
        self.addrs.first().map_or(Family::V4, Family::of)
    }

    /// Bytes [`VrrpRepr::emit`] writes.
    pub fn buffer_len(&self) -> usize {
        message_len(self.version, self.family(), self.addrs.len())
    }

    /// Writes the message into `buf` with its checksum (v3: for the IP
    /// header `src` -> `dst`) and returns its length.
    pub fn emit(&self, buf: &mut [u8], src: IpAddr, dst: IpAddr) -> Result<usize, VrrpError> {
        let family = self.family();
        if self.addrs.iter().any(|a| Family::of(a) != family) {
            return Err(VrrpError::FamilyMismatch);
        }
        let count = u8::try_from(self.addrs.len()).map_err(|_| VrrpError::TooManyAddresses)?;
        let word = match self.version {
            Version::V2 => {
                if family == Family::V6 {
                    return Err(VrrpError::V2OverIpv6);
                }
                let secs = self.interval_cs / 100;
                if !self.interval_cs.is_multiple_of(100) || !(1..=255).contains(&secs) {
                    return Err(VrrpError::BadInterval);
                }
                [self.auth_type, secs as u8]
            }
            Version::V3 => {
                if !(1..=MAX_ADVER_INT_CS).contains(&self.interval_cs) {
                    return Err(VrrpError::BadInterval);
                }
                self.interval_cs.to_be_bytes()
            }
        };
        let len = self.buffer_len();
        let out = buf.get_mut(..len).ok_or(VrrpError::BufferTooSmall)?;
        out.fill(0);
        let mut head = [0u8; HEADER_LEN];
        head[field::VER_TYPE] = (self.version.number() << 4) | TYPE_ADVERTISEMENT;
        head[field::VRID] = self.vrid;
        head[field::PRIORITY] = self.priority;
        head[field::COUNT] = count;
        // v2: Auth Type and Adver Int; v3: rsvd and Max Adver Int.
        head[field::MAX_ADVER_INT].copy_from_slice(&word);
        let mut off = HEADER_LEN;
        for a in &self.addrs {
            let bytes: &[u8] = match a {
                IpAddr::V4(v4) => &v4.octets()[..],
                IpAddr::V6(v6) => &v6.octets()[..],
            };
            if let Some(dst) = out.get_mut(off..off + bytes.len()) {
                dst.copy_from_slice(bytes);
            }
            off += bytes.len();
        }
        if self.version == Version::V2
            && let Some(d) = out.get_mut(off..off + AUTH_DATA_LEN)
        {
            d.copy_from_slice(&self.auth_data);
        }
        if let Some(h) = out.get_mut(..HEADER_LEN) {
            h.copy_from_slice(&head);
        }
        let sum = match self.version {
            Version::V2 => checksum::sum(out),
            Version::V3 => {
                if Family::of(&src) != family || Family::of(&dst) != family {
                    return Err(VrrpError::FamilyMismatch);
                }
                checksum::add(
                    checksum::pseudo(src, dst, IPPROTO_VRRP, len as u32),
                    checksum::sum(out),
                )
            }
        };
        if let Some(c) = out.get_mut(field::CHECKSUM) {
            c.copy_from_slice(&checksum::finish(sum).to_be_bytes());
        }
        Ok(len)
    }

    /// [`VrrpRepr::emit`] into a new vector.
    pub fn to_bytes(&self, src: IpAddr, dst: IpAddr) -> Result<Vec<u8>, VrrpError> {
        let mut v = vec![0u8; self.buffer_len()];
        let n = self.emit(&mut v, src, dst)?;
        v.truncate(n);
        Ok(v)
    }
}

/// The 8 bytes of a VRRPv2 simple-text password: the password, zero-padded
/// (keepalived pads the same way; longer ones are refused by the config).
pub fn pass_auth_data(pass: &str) -> [u8; AUTH_DATA_LEN] {
    let mut out = [0u8; AUTH_DATA_LEN];
    for (o, b) in out.iter_mut().zip(pass.as_bytes()) {
        *o = *b;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    /// RFC 1071 written out independently of `wire::checksum`: a 16-bit
    /// one's-complement sum over big-endian words, odd byte padded.
    fn ones_sum(parts: &[&[u8]]) -> u16 {
        let mut bytes = Vec::new();
        for p in parts {
            bytes.extend_from_slice(p);
        }
        if bytes.len() % 2 == 1 {
            bytes.push(0);
        }
        let mut acc: u32 = 0;
        for w in bytes.chunks(2) {
            acc += ((w[0] as u32) << 8) | w[1] as u32;
            acc = (acc & 0xffff) + (acc >> 16);
        }
        acc as u16
    }

    // Captured from keepalived 2.2.7 (Debian bookworm) on a veth:
    // VRRPv2, VRID 51, priority 100, 1 address 198.18.0.250, auth PASS
    // "1111", advert_int 1, from 198.18.0.3 to 224.0.0.18.
    const KA_V2: [u8; 20] = [
        0x21, 0x33, 0x64, 0x01, // v2 advert, VRID 51, prio 100, 1 addr
        0x01, 0x01, 0x50, 0x5b, // auth PASS, 1 s, checksum 0x505b
        0xc6, 0x12, 0x00, 0xfa, // 198.18.0.250
        0x31, 0x31, 0x31, 0x31, 0x00, 0x00, 0x00, 0x00, // "1111"
    ];
    // VRRPv3 over IPv4, VRID 52, priority 150, 198.18.0.251 and .252,
    // advert_int 1.5 s, from 198.18.0.3 to 224.0.0.18.
    const KA_V3_V4: [u8; 16] = [
        0x31, 0x34, 0x96, 0x02, // v3 advert, VRID 52, prio 150, 2 addrs
        0x00, 0x96, 0x03, 0x6e, // 150 cs, checksum 0x036e
        0xc6, 0x12, 0x00, 0xfb, 0xc6, 0x12, 0x00, 0xfc,
    ];
    // The same instance stopping: priority 0, checksum 0x996e.
    const KA_V3_V4_STOP: [u8; 16] = [
        0x31, 0x34, 0x00, 0x02, 0x00, 0x96, 0x99, 0x6e, 0xc6, 0x12, 0x00, 0xfb, 0xc6, 0x12, 0x00,
        0xfc,
    ];
    // VRRPv3 over IPv6, VRID 53, priority 200, 2001:2::250, 1 s, from
    // fe80::1f:ff:fe00:3 to ff02::12.
    const KA_V3_V6: [u8; 24] = [
        0x31, 0x35, 0xc8, 0x01, 0x00, 0x64, 0xe6, 0xd1, 0x20, 0x01, 0x00, 0x02, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x50,
    ];

    #[test]
    fn parses_keepalived_v2() {
        let p = VrrpPacket::new_checked(&KA_V2[..], Family::V4).unwrap();
        assert_eq!(p.version(), Version::V2);
        assert_eq!(p.kind(), TYPE_ADVERTISEMENT);
        assert_eq!(p.vrid(), 51);
        assert_eq!(p.priority(), 100);
        assert_eq!(p.addr_count(), 1);
        assert_eq!(p.auth_type(), AUTH_PASS);
        assert_eq!(p.interval_cs(), 100);
        assert_eq!(p.checksum(), 0x505b);
        assert_eq!(p.addresses().collect::<Vec<_>>(), vec![ip("198.18.0.250")]);
        assert_eq!(p.auth_data(), pass_auth_data("1111"));
        assert!(p.verify_checksum(ip("198.18.0.3"), ip("224.0.0.18")));
        // Independent check: the stored checksum makes the sum all ones.
        assert_eq!(ones_sum(&[&KA_V2]), 0xffff);
    }

    #[test]
    fn parses_keepalived_v3_ipv4_with_pseudo_header() {
        let (src, dst) = (ip("198.18.0.3"), ip("224.0.0.18"));
        let p = VrrpPacket::new_checked(&KA_V3_V4[..], Family::V4).unwrap();
        assert_eq!(p.version(), Version::V3);
        assert_eq!((p.vrid(), p.priority(), p.interval_cs()), (52, 150, 150));
        assert_eq!(p.auth_type(), 0);
        assert_eq!(p.auth_data(), [0; 8]);
        assert_eq!(
            p.addresses().collect::<Vec<_>>(),
            vec![ip("198.18.0.251"), ip("198.18.0.252")]
        );
        assert!(p.verify_checksum(src, dst));
        // The pseudo-header matters: another destination fails.
        assert!(!p.verify_checksum(src, ip("198.18.0.2")));
        let pseudo = [198, 18, 0, 3, 224, 0, 0, 18, 0, 112, 0, 16];
        assert_eq!(ones_sum(&[&pseudo, &KA_V3_V4]), 0xffff);
        let stop = VrrpPacket::new_checked(&KA_V3_V4_STOP[..], Family::V4).unwrap();
        assert_eq!(stop.priority(), 0);
        assert!(stop.verify_checksum(src, dst));
    }

    #[test]
    fn parses_keepalived_v3_ipv6() {
        let (src, dst) = (ip("fe80::1f:ff:fe00:3"), ip("ff02::12"));
        let p = VrrpPacket::new_checked(&KA_V3_V6[..], Family::V6).unwrap();
        assert_eq!((p.vrid(), p.priority(), p.interval_cs()), (53, 200, 100));
        assert_eq!(p.addresses().collect::<Vec<_>>(), vec![ip("2001:2::250")]);
        assert!(p.verify_checksum(src, dst));
        let mut pseudo = Vec::new();
        pseudo
            .extend_from_slice(&Ipv6Addr::from([0xfe80, 0, 0, 0, 0x1f, 0xff, 0xfe00, 3]).octets());
        pseudo.extend_from_slice(&MCAST_V6.octets());
        pseudo.extend_from_slice(&[0, 0, 0, 24, 0, 0, 0, 112]);
        assert_eq!(ones_sum(&[&pseudo, &KA_V3_V6]), 0xffff);
        // Wrong family for the addresses: the length no longer adds up.
        assert_eq!(
            VrrpPacket::new_checked(&KA_V3_V6[..], Family::V4).unwrap_err(),
            VrrpError::BadLength
        );
    }

    #[test]
    fn encoders_reproduce_keepalived_bytes() {
        let v2 = VrrpRepr {
            version: Version::V2,
            vrid: 51,
            priority: 100,
            interval_cs: 100,
            auth_type: AUTH_PASS,
            auth_data: pass_auth_data("1111"),
            addrs: vec![ip("198.18.0.250")],
        };
        assert_eq!(
            v2.to_bytes(ip("198.18.0.3"), ip("224.0.0.18")).unwrap(),
            KA_V2
        );
        let v3 = VrrpRepr {
            version: Version::V3,
            vrid: 52,
            priority: 150,
            interval_cs: 150,
            auth_type: 0,
            auth_data: [0; 8],
            addrs: vec![ip("198.18.0.251"), ip("198.18.0.252")],
        };
        assert_eq!(
            v3.to_bytes(ip("198.18.0.3"), ip("224.0.0.18")).unwrap(),
            KA_V3_V4
        );
        let stop = VrrpRepr {
            priority: 0,
            ..v3.clone()
        };
        assert_eq!(
            stop.to_bytes(ip("198.18.0.3"), ip("224.0.0.18")).unwrap(),
            KA_V3_V4_STOP
        );
        let v6 = VrrpRepr {
            version: Version::V3,
            vrid: 53,
            priority: 200,
            interval_cs: 100,
            auth_type: 0,
            auth_data: [0; 8],
            addrs: vec![ip("2001:2::250")],
        };
        assert_eq!(
            v6.to_bytes(ip("fe80::1f:ff:fe00:3"), ip("ff02::12"))
                .unwrap(),
            KA_V3_V6
        );
    }

    #[test]
    fn round_trips_every_encoder() {
        let cases = [
            (&KA_V2[..], Family::V4, ip("198.18.0.3"), ip("224.0.0.18")),
            (
                &KA_V3_V4[..],
                Family::V4,
                ip("198.18.0.3"),
                ip("224.0.0.18"),
            ),
            (
                &KA_V3_V6[..],
                Family::V6,
                ip("fe80::1f:ff:fe00:3"),
                ip("ff02::12"),
            ),
        ];
        for (bytes, fam, src, dst) in cases {
            let p = VrrpPacket::new_checked(bytes, fam).unwrap();
            let r = VrrpRepr::parse(&p);
            assert_eq!(r.buffer_len(), bytes.len());
            let again = r.to_bytes(src, dst).unwrap();
            assert_eq!(again, bytes);
            assert_eq!(
                VrrpRepr::parse(&VrrpPacket::new_checked(&again[..], fam).unwrap()),
                r
            );
        }
        // Many addresses, unicast destination, v3 max interval.
        let addrs: Vec<IpAddr> = (1..=20)
            .map(|i| IpAddr::V6(Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, i)))
            .collect();
        let r = VrrpRepr {
            version: Version::V3,
            vrid: 255,
            priority: 255,
            interval_cs: MAX_ADVER_INT_CS,
            auth_type: 0,
            auth_data: [0; 8],
            addrs,
        };
        let (s, d) = (ip("2001:2::2"), ip("2001:2::3"));
        let b = r.to_bytes(s, d).unwrap();
        assert_eq!(b.len(), 8 + 20 * 16);
        let p = VrrpPacket::new_checked(&b[..], Family::V6).unwrap();
        assert!(p.verify_checksum(s, d));
        assert_eq!(VrrpRepr::parse(&p), r);
    }

    #[test]
    fn checksum_catches_any_flipped_bit() {
        let (src, dst) = (ip("198.18.0.3"), ip("224.0.0.18"));
        for (bytes, v3) in [(&KA_V2[..], false), (&KA_V3_V4[..], true)] {
            for i in 0..bytes.len() * 8 {
                let mut b = bytes.to_vec();
                b[i / 8] ^= 1 << (i % 8);
                let p = VrrpPacket::new_unchecked(&b[..], Family::V4);
                assert!(!p.verify_checksum(src, dst), "bit {i} v3={v3}");
            }
        }
    }

    #[test]
    fn rejects_malformed_lengths_and_versions() {
        assert_eq!(
            VrrpPacket::new_checked(&KA_V2[..7], Family::V4).unwrap_err(),
            VrrpError::Truncated
        );
        // One byte short, one byte long.
        assert_eq!(
            VrrpPacket::new_checked(&KA_V2[..19], Family::V4).unwrap_err(),
            VrrpError::BadLength
        );
        let mut long = KA_V2.to_vec();
        long.push(0);
        assert_eq!(
            VrrpPacket::new_checked(&long[..], Family::V4).unwrap_err(),
            VrrpError::BadLength
        );
        // Address count claims 2 with room for 1.
        let mut two = KA_V2;
        two[3] = 2;
        assert_eq!(
            VrrpPacket::new_checked(&two[..], Family::V4).unwrap_err(),
            VrrpError::BadLength
        );
        for v in [0u8, 1, 4, 15] {
            let mut b = KA_V2;
            b[0] = (v << 4) | 1;
            assert_eq!(
                VrrpPacket::new_checked(&b[..], Family::V4).unwrap_err(),
                VrrpError::UnknownVersion
            );
        }
        // v2 bytes in an IPv6 packet.
        let mut v2in6 = KA_V3_V6;
        v2in6[0] = 0x21;
        assert_eq!(
            VrrpPacket::new_checked(&v2in6[..], Family::V6).unwrap_err(),
            VrrpError::V2OverIpv6
        );
        assert_eq!(peek_vrid(&KA_V2), Some(51));
        assert_eq!(peek_vrid(&[0x21]), None);
    }

    #[test]
    fn unchecked_views_never_panic() {
        for len in 0..KA_V2.len() {
            let p = VrrpPacket::new_unchecked(&KA_V2[..len], Family::V4);
            let _ = (p.vrid(), p.priority(), p.interval_cs(), p.checksum());
            let _ = (p.auth_data(), p.addresses().count(), p.kind());
            let _ = p.verify_checksum(ip("1.2.3.4"), ip("224.0.0.18"));
            let p6 = VrrpPacket::new_unchecked(&KA_V3_V6[..len], Family::V6);
            let _ = (p6.addresses().count(), p6.auth_data());
            let _ = p6.verify_checksum(ip("1.2.3.4"), ip("::1"));
        }
        // A count far beyond the buffer yields only what is there.
        let mut b = KA_V3_V4;
        b[3] = 200;
        let p = VrrpPacket::new_unchecked(&b[..], Family::V4);
        assert_eq!(p.addresses().count(), 2);
    }

    #[test]
    fn emit_refuses_what_the_wire_cannot_carry() {
        let base = VrrpRepr {
            version: Version::V2,
            vrid: 1,
            priority: 100,
            interval_cs: 100,
            auth_type: 0,
            auth_data: [0; 8],
            addrs: vec![ip("198.18.0.250")],
        };
        let (s, d) = (ip("198.18.0.2"), ip("224.0.0.18"));
        let bad = |r: VrrpRepr| r.to_bytes(s, d).unwrap_err();
        assert_eq!(
            bad(VrrpRepr {
                interval_cs: 150,
                ..base.clone()
            }),
            VrrpError::BadInterval
        );
        assert_eq!(
            bad(VrrpRepr {
                interval_cs: 25600,
                ..base.clone()
            }),
            VrrpError::BadInterval
        );
        assert_eq!(
            bad(VrrpRepr {
                version: Version::V3,
                interval_cs: 4096,
                ..base.clone()
            }),
            VrrpError::BadInterval
        );
        assert_eq!(
            bad(VrrpRepr {
                addrs: vec![ip("198.18.0.250"), ip("2001:2::250")],
                ..base.clone()
            }),
            VrrpError::FamilyMismatch
        );
        assert_eq!(
            bad(VrrpRepr {
                addrs: vec![ip("2001:2::250")],
                ..base.clone()
            }),
            VrrpError::V2OverIpv6
        );
        assert_eq!(
            bad(VrrpRepr {
                addrs: (0..256u32)
                    .map(|i| IpAddr::V4(Ipv4Addr::from(0xc6120000 + i)))
                    .collect(),
                ..base.clone()
            }),
            VrrpError::TooManyAddresses
        );
        let v3 = VrrpRepr {
            version: Version::V3,
            ..base.clone()
        };
        assert_eq!(
            v3.to_bytes(ip("2001:2::2"), ip("ff02::12")).unwrap_err(),
            VrrpError::FamilyMismatch
        );
        let mut short = [0u8; 19];
        assert_eq!(
            base.emit(&mut short, s, d).unwrap_err(),
            VrrpError::BufferTooSmall
        );
    }
}
