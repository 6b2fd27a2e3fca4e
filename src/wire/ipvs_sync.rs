//! IPVS connection synchronisation messages, as the Linux kernel's sync
//! daemon sends and receives them (UDP, by default to 224.0.0.81:8848):
//! protocol version 1 on send and receive, version 0 on receive.
//!
//! A message (one UDP datagram) is a header and `count` connection entries:
//!
//! ```text
//! v1 header (8 bytes)                      v0 header (4 bytes)
//! +------+--------+---------------+        +-------+--------+-----------+
//! | 0    | syncid | size (BE16)   |        | count | syncid | size      |
//! +------+--------+---------------+        +-------+--------+-----------+
//! | count| version=1 | spare = 0  |        v0 entries: 24 bytes, +24
//! +------+-----------+------------+        when flags has IN_SEQ|OUT_SEQ
//!
//! v1 entry: type(1: bit 0 = IPv6) protocol(1) ver_size(BE16: version in
//! the top 4 bits, always 0; the entry's length with its options in the
//! low 12) flags(BE32) state(BE16) cport vport dport(BE16) fwmark(BE32)
//! timeout(BE32, seconds) caddr vaddr daddr (4 or 16 bytes each): 36
//! bytes for IPv4, 72 for IPv6, then options `type(1) len(1) data(len)`.
//! Entries start on 4-byte boundaries (zero padding, counted in `size`).
//! ```
//!
//! `size` is the whole datagram's length; a receiver drops a datagram whose
//! length differs. A v1 datagram has byte 0 = 0 (a v0 receiver then sees
//! zero entries), `version` 1 and `spare` 0; anything else is read as v0.
//!
//! Options: [`OPT_SEQ_DATA`] (the in and out sequence adjustments, 24
//! bytes), [`OPT_PE_DATA`] and [`OPT_PE_NAME`] (a persistence engine's
//! key, e.g. SIP's Call-ID, and its name). An option type with
//! [`OPT_F_PARAM`] (0x40) set is optional: a receiver that does not know
//! it skips it; an unknown option without it drops the entry.
//!
//! lvsfwd's own option, for FULLNAT (which IPVS lacks): [`OPT_FULLNAT_LOCAL`]
//! = 0x48 (the optional bit and 8), data = the local address (4 or 16
//! bytes, the entry's family) and the local port (BE16): 6 or 18 bytes.
//! A FULLNAT entry carries the forwarding method MASQ in its flags, so a
//! kernel backup skips the option and keeps a NAT entry.
//!
//! [`parse`] checks a datagram and walks its entries without allocating or
//! panicking on any input; [`Writer`] builds datagrams up to a maximum
//! length. Deliberately not here: what a backup does with an entry (that is
//! `conn::table`'s `apply_synced`) and the sockets (`control::sync`).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::counter::counter_enum;

/// The kernel's default multicast group and port.
pub const SYNC_GROUP: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 81);
pub const SYNC_PORT: u16 = 8848;
/// Protocol version this module writes.
pub const VERSION: u8 = 1;

/// Byte positions of the v1 header and of an entry.
pub mod field {
    use core::ops::Range;

    /// v1 header: 0 (v0: the entry count).
    pub const RESERVED: usize = 0;
    pub const SYNCID: usize = 1;
    pub const SIZE: Range<usize> = 2..4;
    /// v1 header: entry count.
    pub const COUNT: usize = 4;
    pub const VERSION: usize = 5;
    pub const SPARE: Range<usize> = 6..8;

    /// v1 entry (from the entry's start).
    pub const TYPE: usize = 0;
    pub const PROTOCOL: usize = 1;
    pub const VER_SIZE: Range<usize> = 2..4;
    pub const FLAGS: Range<usize> = 4..8;
    pub const STATE: Range<usize> = 8..10;
    pub const CPORT: Range<usize> = 10..12;
    pub const VPORT: Range<usize> = 12..14;
    pub const DPORT: Range<usize> = 14..16;
    pub const FWMARK: Range<usize> = 16..20;
    pub const TIMEOUT: Range<usize> = 20..24;
    /// caddr, vaddr, daddr follow (4 or 16 bytes each).
    pub const ADDRS: usize = 24;

    /// v0 entry.
    pub const V0_PROTOCOL: usize = 1;
    pub const V0_CPORT: Range<usize> = 2..4;
    pub const V0_VPORT: Range<usize> = 4..6;
    pub const V0_DPORT: Range<usize> = 6..8;
    pub const V0_CADDR: Range<usize> = 8..12;
    pub const V0_VADDR: Range<usize> = 12..16;
    pub const V0_DADDR: Range<usize> = 16..20;
    pub const V0_FLAGS: Range<usize> = 20..22;
    pub const V0_STATE: Range<usize> = 22..24;
}

pub const HEADER_LEN: usize = 8;
pub const HEADER_V0_LEN: usize = 4;
pub const CONN_V4_LEN: usize = 36;
pub const CONN_V6_LEN: usize = 72;
pub const CONN_V0_LEN: usize = 24;
/// Two `ip_vs_seq` (init_seq, delta, previous_delta).
pub const SEQ_LEN: usize = 24;
/// Most entry bytes `ver_size` can state.
const SIZE_MASK: u16 = 0x0fff;
const VER_SHIFT: u16 = 12;
/// `type` bit: the entry is IPv6.
pub const TYPE_F_INET6: u8 = 1;

pub const OPT_SEQ_DATA: u8 = 1;
pub const OPT_PE_DATA: u8 = 2;
pub const OPT_PE_NAME: u8 = 3;
/// Option-type bit: the option may be skipped by a receiver that does not
/// know it.
pub const OPT_F_PARAM: u8 = 1 << 6;
/// lvsfwd: FULLNAT's local address and port (see the module doc).
pub const OPT_FULLNAT_LOCAL: u8 = OPT_F_PARAM | 8;
/// The kernel's limits on persistence-engine data and name lengths.
pub const PE_DATA_MAX: usize = 255;
pub const PE_NAME_MAX: usize = 16;

/// `IP_VS_CONN_F_*`: connection flags as the kernel numbers them.
pub mod flags {
    pub const FWD_MASK: u32 = 0x0007;
    pub const MASQ: u32 = 0x0000;
    pub const LOCALNODE: u32 = 0x0001;
    pub const TUNNEL: u32 = 0x0002;
    pub const DROUTE: u32 = 0x0003;
    pub const BYPASS: u32 = 0x0004;
    pub const SYNC: u32 = 0x0020;
    pub const HASHED: u32 = 0x0040;
    pub const NOOUTPUT: u32 = 0x0080;
    pub const INACTIVE: u32 = 0x0100;
    pub const OUT_SEQ: u32 = 0x0200;
    pub const IN_SEQ: u32 = 0x0400;
    pub const SEQ_MASK: u32 = 0x0600;
    pub const NO_CPORT: u32 = 0x0800;
    pub const TEMPLATE: u32 = 0x1000;
    pub const ONE_PACKET: u32 = 0x2000;
    /// What a backup takes from a message.
    pub const BACKUP_MASK: u32 = FWD_MASK | NOOUTPUT | INACTIVE | SEQ_MASK | NO_CPORT | TEMPLATE;
    /// What a backup updates on an entry it already has.
    pub const BACKUP_UPD_MASK: u32 = INACTIVE | SEQ_MASK;
}

counter_enum! {
    /// Why a datagram (or the rest of it) was dropped.
    pub enum SyncError {
        /// Shorter than a v0 header.
        Short => "short",
        /// `size` is not the datagram's length.
        BadSize => "bad_size",
        /// An entry runs past the end.
        Truncated => "truncated",
        /// An entry's version (top bits of `ver_size`) is not 0.
        BadVersion => "bad_version",
        /// An entry type other than IPv4 or IPv6.
        BadType => "bad_type",
        /// An option with length 0, running past its entry, a sequence
        /// option of the wrong length, or an option given twice.
        BadOption => "bad_option",
    }
}

/// One sequence adjustment (`struct ip_vs_seq`).
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct Seq {
    pub init_seq: u32,
    pub delta: u32,
    pub previous_delta: u32,
}

/// One connection entry (owned fields, borrowed option data).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct SyncConn<'a> {
    pub protocol: u8,
    /// `IP_VS_CONN_F_*` as sent.
    pub flags: u32,
    /// The kernel's state number (TCP: `IP_VS_TCP_S_*`; UDP: 0).
    pub state: u16,
    pub cport: u16,
    pub vport: u16,
    pub dport: u16,
    pub fwmark: u32,
    /// Seconds; 0 in v0 messages (the receiver uses its own).
    pub timeout: u32,
    /// All three of the same family.
    pub caddr: IpAddr,
    pub vaddr: IpAddr,
    pub daddr: IpAddr,
    /// In and out sequence adjustments.
    pub seq: Option<[Seq; 2]>,
    pub pe_data: Option<&'a [u8]>,
    pub pe_name: Option<&'a [u8]>,
    /// lvsfwd's FULLNAT option.
    pub fullnat_local: Option<(IpAddr, u16)>,
}

impl SyncConn<'_> {
    fn v6(&self) -> bool {
        self.caddr.is_ipv6()
    }

    /// Encoded length without padding.
    pub fn encoded_len(&self) -> usize {
        let mut n = if self.v6() { CONN_V6_LEN } else { CONN_V4_LEN };
        if self.seq.is_some() {
            n += 2 + SEQ_LEN;
        }
        if let Some(d) = self.pe_data {
            n += 2 + d.len();
            if let Some(m) = self.pe_name {
                n += 2 + m.len();
            }
        }
        if let Some((a, _)) = self.fullnat_local {
            n += 2 + addr_len(a) + 2;
        }
        n
    }
}

fn addr_len(a: IpAddr) -> usize {
    if a.is_ipv6() { 16 } else { 4 }
}

/// A datagram's header.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Header {
    /// 0 or 1.
    pub version: u8,
    pub syncid: u8,
    pub count: u8,
}

/// What [`parse`] saw besides the entries it handed over.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct Skipped {
    /// Entries left out as the kernel leaves them out: an unknown
    /// mandatory option.
    pub entries: u32,
}

fn be16(b: &[u8], r: core::ops::Range<usize>) -> u16 {
    b.get(r)
        .and_then(|s| s.try_into().ok())
        .map_or(0, u16::from_be_bytes)
}

fn be32(b: &[u8], r: core::ops::Range<usize>) -> u32 {
    b.get(r)
        .and_then(|s| s.try_into().ok())
        .map_or(0, u32::from_be_bytes)
}

fn addr_at(b: &[u8], at: usize, v6: bool) -> Option<IpAddr> {
    if v6 {
        let s: [u8; 16] = b.get(at..at + 16)?.try_into().ok()?;
        Some(IpAddr::V6(Ipv6Addr::from(s)))
    } else {
        let s: [u8; 4] = b.get(at..at + 4)?.try_into().ok()?;
        Some(IpAddr::V4(Ipv4Addr::from(s)))
    }
}

fn seq_at(b: &[u8]) -> [Seq; 2] {
    let one = |o: usize| Seq {
        init_seq: be32(b, o..o + 4),
        delta: be32(b, o + 4..o + 8),
        previous_delta: be32(b, o + 8..o + 12),
    };
    [one(0), one(12)]
}

/// The header of datagram `buf`, checked as the kernel checks it (length,
/// `size`), without its entries.
pub fn header(buf: &[u8]) -> Result<Header, SyncError> {
    if buf.len() < HEADER_V0_LEN {
        return Err(SyncError::Short);
    }
    if usize::from(be16(buf, field::SIZE)) != buf.len() {
        return Err(SyncError::BadSize);
    }
    let v1 = buf.len() >= HEADER_LEN
        && buf[field::VERSION] == VERSION
        && buf[field::RESERVED] == 0
        && be16(buf, field::SPARE) == 0;
    Ok(if v1 {
        Header {
            version: 1,
            syncid: buf[field::SYNCID],
            count: buf[field::COUNT],
        }
    } else {
        Header {
            version: 0,
            syncid: buf[field::SYNCID],
            count: buf[field::RESERVED],
        }
    })
}

/// Walks datagram `buf`, handing each entry to `f` in order. On an error
/// the entries before it have been handed over (as the kernel applies them
/// before dropping the rest). Never panics, never allocates.
pub fn parse<'a>(
    buf: &'a [u8],
    mut f: impl FnMut(SyncConn<'a>),
) -> Result<(Header, Skipped), SyncError> {
    let h = header(buf)?;
    let mut skipped = Skipped::default();
    if h.version == 0 {
        parse_v0(buf, h.count, &mut f)?;
        return Ok((h, skipped));
    }
    let mut at = HEADER_LEN;
    for _ in 0..h.count {
        if at + CONN_V4_LEN > buf.len() {
            return Err(SyncError::Truncated);
        }
        let vs = be16(buf, at + field::VER_SIZE.start..at + field::VER_SIZE.end);
        let size = usize::from(vs & SIZE_MASK);
        let end = at + size;
        if end > buf.len() {
            return Err(SyncError::Truncated);
        }
        if vs >> VER_SHIFT != 0 {
            return Err(SyncError::BadVersion);
        }
        match entry_v1(&buf[at..], size)? {
            Some(c) => f(c),
            None => skipped.entries += 1,
        }
        at += (size + 3) & !3;
    }
    Ok((h, skipped))
}

/// One v1 entry: `rest` runs from its start to the datagram's end (at
/// least [`CONN_V4_LEN`] bytes), `size` is its stated length (within
/// `rest`). `Ok(None)`: skipped.
fn entry_v1(rest: &[u8], size: usize) -> Result<Option<SyncConn<'_>>, SyncError> {
    let ty = rest[field::TYPE];
    let v6 = match ty {
        TYPE_F_INET6 => true,
        0 => false,
        _ => return Err(SyncError::BadType),
    };
    let fixed = if v6 { CONN_V6_LEN } else { CONN_V4_LEN };
    if fixed > size {
        return Err(SyncError::Truncated);
    }
    let e = &rest[..size];
    let alen = if v6 { 16 } else { 4 };
    let a = field::ADDRS;
    let (Some(caddr), Some(vaddr), Some(daddr)) = (
        addr_at(e, a, v6),
        addr_at(e, a + alen, v6),
        addr_at(e, a + 2 * alen, v6),
    ) else {
        return Err(SyncError::Truncated);
    };
    let mut c = SyncConn {
        protocol: e[field::PROTOCOL],
        flags: be32(e, field::FLAGS),
        state: be16(e, field::STATE),
        cport: be16(e, field::CPORT),
        vport: be16(e, field::VPORT),
        dport: be16(e, field::DPORT),
        fwmark: be32(e, field::FWMARK),
        timeout: be32(e, field::TIMEOUT),
        caddr,
        vaddr,
        daddr,
        seq: None,
        pe_data: None,
        pe_name: None,
        fullnat_local: None,
    };
    let mut p = fixed;
    let mut skip = false;
    while p < e.len() {
        if p + 2 > e.len() {
            return Err(SyncError::BadOption);
        }
        let (ty, len) = (e[p], usize::from(e[p + 1]));
        p += 2;
        if len == 0 || p + len > e.len() {
            return Err(SyncError::BadOption);
        }
        let d = &e[p..p + len];
        match ty & !OPT_F_PARAM {
            OPT_SEQ_DATA => {
                if len != SEQ_LEN || c.seq.is_some() {
                    return Err(SyncError::BadOption);
                }
                c.seq = Some(seq_at(d));
            }
            OPT_PE_DATA => {
                if c.pe_data.is_some() {
                    return Err(SyncError::BadOption);
                }
                c.pe_data = Some(d);
            }
            OPT_PE_NAME => {
                if len > PE_NAME_MAX || c.pe_name.is_some() {
                    return Err(SyncError::BadOption);
                }
                c.pe_name = Some(d);
            }
            _ if ty == OPT_FULLNAT_LOCAL => {
                // Ours; a malformed one is ignored as any optional one.
                let la = match len {
                    6 => addr_at(d, 0, false),
                    18 => addr_at(d, 0, true),
                    _ => None,
                };
                if let Some(la) = la
                    && la.is_ipv6() == v6
                {
                    c.fullnat_local = Some((la, be16(d, len - 2..len)));
                }
            }
            _ if ty & OPT_F_PARAM != 0 => {}
            _ => skip = true,
        }
        p += len;
    }
    Ok((!skip).then_some(c))
}

fn parse_v0<'a>(
    buf: &'a [u8],
    count: u8,
    f: &mut impl FnMut(SyncConn<'a>),
) -> Result<(), SyncError> {
    let mut at = HEADER_V0_LEN;
    for _ in 0..count {
        let Some(e) = buf.get(at..at + CONN_V0_LEN) else {
            return Err(SyncError::Truncated);
        };
        let fl = u32::from(be16(e, field::V0_FLAGS));
        let mut c = SyncConn {
            protocol: e[field::V0_PROTOCOL],
            flags: fl,
            state: be16(e, field::V0_STATE),
            cport: be16(e, field::V0_CPORT),
            vport: be16(e, field::V0_VPORT),
            dport: be16(e, field::V0_DPORT),
            fwmark: 0,
            timeout: 0,
            caddr: addr_at(e, field::V0_CADDR.start, false).unwrap_or(IpAddr::V4(0.into())),
            vaddr: addr_at(e, field::V0_VADDR.start, false).unwrap_or(IpAddr::V4(0.into())),
            daddr: addr_at(e, field::V0_DADDR.start, false).unwrap_or(IpAddr::V4(0.into())),
            seq: None,
            pe_data: None,
            pe_name: None,
            fullnat_local: None,
        };
        at += CONN_V0_LEN;
        if fl & flags::SEQ_MASK != 0 {
            // v0 sends the kernel's struct as is (host order); taken as
            // network order like every other field here.
            let Some(o) = buf.get(at..at + SEQ_LEN) else {
                return Err(SyncError::Truncated);
            };
            c.seq = Some(seq_at(o));
            at += SEQ_LEN;
        }
        f(c);
    }
    Ok(())
}

/// lvsfwd's table request and its end marker (fail-back resync): a v1
/// header with no entries and a version byte of its own. A kernel reads
/// any version other than 1 as v0, whose count (byte 0) is 0 here: it
/// ignores them, and so does Wireshark's dissector (0 entries).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Control {
    /// "Send me your whole table" (a returning director).
    TableRequest,
    /// "That was my whole table" (after the entries answering a request).
    TableDone,
}

/// The version bytes of [`Control`] messages.
pub const VERSION_TABLE_REQUEST: u8 = 0xf1;
pub const VERSION_TABLE_DONE: u8 = 0xf2;

impl Control {
    /// The 8-byte datagram for `syncid`.
    pub fn encode(self, syncid: u8) -> [u8; HEADER_LEN] {
        let v = match self {
            Control::TableRequest => VERSION_TABLE_REQUEST,
            Control::TableDone => VERSION_TABLE_DONE,
        };
        [0, syncid, 0, HEADER_LEN as u8, 0, v, 0, 0]
    }

    /// `buf` as a control message and its syncid, if it is one.
    pub fn decode(buf: &[u8]) -> Option<(Control, u8)> {
        let b: &[u8; HEADER_LEN] = buf.try_into().ok()?;
        if b[field::RESERVED] != 0
            || usize::from(be16(b, field::SIZE)) != HEADER_LEN
            || b[field::COUNT] != 0
            || be16(b, field::SPARE) != 0
        {
            return None;
        }
        let c = match b[field::VERSION] {
            VERSION_TABLE_REQUEST => Control::TableRequest,
            VERSION_TABLE_DONE => Control::TableDone,
            _ => return None,
        };
        Some((c, b[field::SYNCID]))
    }
}

/// Builds v1 (or, [`Writer::new_v0`], v0) datagrams of at most `maxlen`
/// bytes.
#[derive(Debug, Clone)]
pub struct Writer {
    buf: Vec<u8>,
    maxlen: usize,
    v0: bool,
}

impl Writer {
    /// An empty message for `syncid`, of at most `maxlen` bytes (at most
    /// 65507, a UDP payload) unless its one entry alone is longer (as the
    /// kernel sizes a buffer for at least one entry).
    pub fn new(syncid: u8, maxlen: usize) -> Writer {
        let maxlen = maxlen.min(65507);
        let mut w = Writer {
            buf: Vec::with_capacity(maxlen),
            maxlen,
            v0: false,
        };
        w.reset(syncid);
        w
    }

    /// A v0 writer (`sync_version = 0`, `ip_vs_sync_conn_v0`): a 4-byte
    /// header (count, syncid, size) and 24-byte IPv4 entries (proto,
    /// ports, addresses, 16-bit flags, state), each followed by the
    /// sequence adjustments when its flags say so; no timeout, fwmark or
    /// other option. Only entries [`Writer::carries`] may be pushed.
    pub fn new_v0(syncid: u8, maxlen: usize) -> Writer {
        let maxlen = maxlen.min(65507);
        let mut w = Writer {
            buf: Vec::with_capacity(maxlen),
            maxlen,
            v0: true,
        };
        w.reset(syncid);
        w
    }

    /// Whether this writer's version can carry `c`: v1 any, v0 an IPv4
    /// entry without lvsfwd's FULLNAT option (v0 has no options but the
    /// sequence adjustments, and is IPv4 only, as the kernel's
    /// `ip_vs_sync_conn_v0` skips IPv6 conns).
    pub fn carries(&self, c: &SyncConn<'_>) -> bool {
        !self.v0
            || (!c.v6()
                && c.vaddr.is_ipv4()
                && c.daddr.is_ipv4()
                && c.fullnat_local.is_none()
                && c.pe_data.is_none())
    }

    /// Starts a new, empty message.
    pub fn reset(&mut self, syncid: u8) {
        self.buf.clear();
        if self.v0 {
            self.buf
                .extend_from_slice(&[0, syncid, 0, HEADER_V0_LEN as u8]);
        } else {
            self.buf
                .extend_from_slice(&[0, syncid, 0, HEADER_LEN as u8, 0, VERSION, 0, 0]);
        }
    }

    pub fn count(&self) -> u8 {
        if self.v0 {
            self.buf[field::RESERVED]
        } else {
            self.buf[field::COUNT]
        }
    }

    /// [`Writer::push`] for v0.
    fn push_v0(&mut self, c: &SyncConn<'_>) -> bool {
        let seq = c.seq.filter(|_| c.flags & flags::SEQ_MASK != 0);
        let len = CONN_V0_LEN + if seq.is_some() { SEQ_LEN } else { 0 };
        let full = !self.is_empty() && self.buf.len() + len > self.maxlen;
        if self.count() == u8::MAX || full || !self.carries(c) {
            return false;
        }
        let b = &mut self.buf;
        b.push(0);
        b.push(c.protocol);
        for p in [c.cport, c.vport, c.dport] {
            b.extend_from_slice(&p.to_be_bytes());
        }
        for a in [c.caddr, c.vaddr, c.daddr] {
            push_addr(b, a, false);
        }
        let mut fl = c.flags & !flags::HASHED;
        if seq.is_none() {
            fl &= !flags::SEQ_MASK;
        }
        b.extend_from_slice(&(fl as u16).to_be_bytes());
        b.extend_from_slice(&c.state.to_be_bytes());
        if let Some(s) = seq {
            for q in s {
                for v in [q.init_seq, q.delta, q.previous_delta] {
                    b.extend_from_slice(&v.to_be_bytes());
                }
            }
        }
        b[field::RESERVED] += 1;
        let n = b.len() as u16;
        b[field::SIZE].copy_from_slice(&n.to_be_bytes());
        true
    }

    pub fn is_empty(&self) -> bool {
        self.count() == 0
    }

    pub fn maxlen(&self) -> usize {
        self.maxlen
    }

    /// Appends `c`; `false` (nothing written) when it does not fit, or
    /// the message already has 255 entries: send it and start anew. An
    /// empty message takes any entry.
    pub fn push(&mut self, c: &SyncConn<'_>) -> bool {
        if self.v0 {
            return self.push_v0(c);
        }
        let len = c.encoded_len();
        let pad = (4 - self.buf.len() % 4) % 4;
        let full = !self.is_empty() && self.buf.len() + pad + len > self.maxlen;
        if self.count() == u8::MAX || full || len > usize::from(SIZE_MASK) {
            return false;
        }
        self.buf.resize(self.buf.len() + pad, 0);
        let b = &mut self.buf;
        b.push(if c.v6() { TYPE_F_INET6 } else { 0 });
        b.push(c.protocol);
        b.extend_from_slice(&(len as u16 & SIZE_MASK).to_be_bytes());
        b.extend_from_slice(&(c.flags & !flags::HASHED).to_be_bytes());
        b.extend_from_slice(&c.state.to_be_bytes());
        for p in [c.cport, c.vport, c.dport] {
            b.extend_from_slice(&p.to_be_bytes());
        }
        b.extend_from_slice(&c.fwmark.to_be_bytes());
        b.extend_from_slice(&c.timeout.to_be_bytes());
        for a in [c.caddr, c.vaddr, c.daddr] {
            push_addr(b, a, c.v6());
        }
        if let Some(s) = c.seq {
            b.push(OPT_SEQ_DATA);
            b.push(SEQ_LEN as u8);
            for q in s {
                for v in [q.init_seq, q.delta, q.previous_delta] {
                    b.extend_from_slice(&v.to_be_bytes());
                }
            }
        }
        if let Some(d) = c.pe_data {
            b.push(OPT_PE_DATA);
            b.push(d.len() as u8);
            b.extend_from_slice(d);
            if let Some(m) = c.pe_name {
                b.push(OPT_PE_NAME);
                b.push(m.len() as u8);
                b.extend_from_slice(m);
            }
        }
        if let Some((a, p)) = c.fullnat_local {
            b.push(OPT_FULLNAT_LOCAL);
            b.push((addr_len(a) + 2) as u8);
            push_addr(b, a, c.v6());
            b.extend_from_slice(&p.to_be_bytes());
        }
        b[field::COUNT] += 1;
        let n = b.len() as u16;
        b[field::SIZE].copy_from_slice(&n.to_be_bytes());
        true
    }

    /// The message as it stands.
    pub fn bytes(&self) -> &[u8] {
        &self.buf
    }
}

fn push_addr(b: &mut Vec<u8>, a: IpAddr, v6: bool) {
    match (a, v6) {
        (IpAddr::V4(x), false) => b.extend_from_slice(&x.octets()),
        (IpAddr::V6(x), true) => b.extend_from_slice(&x.octets()),
        // A family mismatch is written as the entry's family's zero
        // address (the caller's entries are of one family).
        (_, false) => b.extend_from_slice(&[0; 4]),
        (_, true) => b.extend_from_slice(&[0; 16]),
    }
}

#[cfg(test)]
mod tests;
