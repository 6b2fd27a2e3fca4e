//! Reassembly of IPv4 and IPv6 fragments addressed to a virtual service,
//! as the kernel's defragmentation in front of IPVS (`nf_defrag_ipv4/6`,
//! net/ipv4/ip_fragment.c, net/ipv6/reassembly.c, inet_fragment.c).
//!
//! Memory is a fixed pool allocated at start: [`SLOTS`] datagrams of up to
//! 64 KiB each, one buffer per slot (about 2 MiB per worker: the kernel's
//! `ipfrag_high_thresh` is 4 MB per network namespace, shared by all
//! CPUs; two workers together stay within it). Nothing is allocated per
//! frame. When every slot is busy a fragment of a new datagram is dropped
//! (`frag_no_room`), as the kernel refuses new queues above
//! `ipfrag_high_thresh`; the busy slots time out after [`TIMEOUT`]
//! (`ipfrag_time`, 30 s, counted from the datagram's first fragment, as
//! the kernel's queue timer is armed once).
//!
//! Like Linux (RFC 5722 for IPv6, and IPv4 since 4.19), a fragment that
//! partly overlaps what the datagram already holds discards the whole
//! datagram (`frag_overlap`); one entirely inside data already held is a
//! duplicate, dropped alone (`frag_dup`). A fragment that ends beyond the
//! last one, a last one that disagrees with data or an earlier last one, an
//! empty fragment, a datagram over 65535 bytes, and (IPv6) a non-last
//! fragment whose length is not a multiple of 8 are dropped (`frag_bad`);
//! an IPv4 non-last fragment is cut to a multiple of 8 as
//! `ip_frag_queue` does. A first fragment too short for its TCP/UDP header
//! is reassembled like any other (the parser leaves its ports out): IPv4
//! always, IPv6 when it holds the whole extension chain and the first 20
//! TCP / 8 UDP bytes, which is what `ipv6frag_thdr_truncated` asks of
//! `nf_ct_frag6_gather` (RFC 8200 4.5); shorter IPv6 ones the parser drops.
//!
//! A datagram that times out after its first fragment came is answered as
//! `ip_expire` / `ip6frag_expire_frag_queue` do: ICMP time exceeded,
//! "fragment reassembly time exceeded" (IPv4 11/1, IPv6 3/1) quoting that
//! first fragment ([`Expired`], built by the data plane), rate limited
//! like `icmp_send` ([`ErrorLimit`]).
//!
//! A datagram is keyed by (source, destination, identification, protocol)
//! for IPv4 and (source, destination, identification) for IPv6, as
//! `ip4_frag_match` / `ip6frag_key`.

use std::net::IpAddr;
use std::time::Duration;

use crate::dest::NicId;
use crate::forward::frag::{FRAG_HDR_LEN, IPPROTO_FRAGMENT, unfragmentable_v6};
use crate::time::Timestamp;
use crate::wire::{Headers, IpVersion, checksum, ipv4, ipv6};

use super::DropReason;

/// Datagrams being reassembled at once, per worker.
pub const SLOTS: usize = 32;
/// `ipfrag_time`.
pub const TIMEOUT: Duration = Duration::from_secs(30);
/// Largest IPv4 datagram / IPv6 payload.
const MAX_LEN: usize = 65535;
/// Room before the payload for the link and IP headers (an IPv6
/// unfragmentable part of up to 256 bytes, tags, and a tunnel header).
const HEAD_ROOM: usize = 512;
/// Tailroom kept after a whole datagram (a tunnel header may push it back).
const TAIL_ROOM: usize = 64;
const BUF_LEN: usize = HEAD_ROOM + MAX_LEN + TAIL_ROOM;
/// 8-byte units of a 64 KiB datagram, as 64-bit words of a bitmap.
const UNITS_WORDS: usize = MAX_LEN.div_ceil(8).div_ceil(64);

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
struct Key {
    src: IpAddr,
    dst: IpAddr,
    id: u32,
    proto: u8,
}

#[derive(Debug)]
struct Slot {
    key: Option<Key>,
    created: Timestamp,
    /// Headers then payload; the payload starts at [`HEAD_ROOM`].
    buf: Vec<u8>,
    /// Link + IP header of the whole datagram, once the first fragment
    /// came: they end at [`HEAD_ROOM`].
    head_len: usize,
    /// Offset (from the IP header) of the byte that names the upper
    /// protocol: IPv4's protocol field or the IPv6 next-header field that
    /// pointed at the fragment header.
    l3_len: usize,
    nh_at: usize,
    /// The upper protocol (IPv6: the first fragment's fragment header's).
    next: u8,
    /// The first fragment, for an ICMP time exceeded: its NIC, payload
    /// bytes held (from the start of the payload) and IPv6 fragment header.
    first_nic: NicId,
    first_len: usize,
    first_fh: [u8; FRAG_HDR_LEN],
    /// Payload length, known once the last fragment came.
    total: Option<usize>,
    /// Payload bytes held.
    got: usize,
    /// Highest end of data held.
    end: usize,
    /// Largest fragment (IP length), and whether every fragment had DF.
    max_frag: usize,
    all_df: bool,
    held: [u64; UNITS_WORDS],
}

impl Slot {
    fn new() -> Slot {
        Slot {
            key: None,
            created: Timestamp::ZERO,
            buf: vec![0; BUF_LEN],
            head_len: 0,
            l3_len: 0,
            nh_at: 0,
            next: 0,
            first_nic: 0,
            first_len: 0,
            first_fh: [0; FRAG_HDR_LEN],
            total: None,
            got: 0,
            end: 0,
            max_frag: 0,
            all_df: true,
            held: [0; UNITS_WORDS],
        }
    }

    fn reset(&mut self) {
        self.key = None;
        self.head_len = 0;
        self.total = None;
        self.got = 0;
        self.end = 0;
        self.max_frag = 0;
        self.all_df = true;
        self.held = [0; UNITS_WORDS];
    }

    /// How many of the 8-byte units `from..to` are already held.
    fn units_held(&self, from: usize, to: usize) -> usize {
        (from..to)
            .filter(|u| self.held[u / 64] >> (u % 64) & 1 != 0)
            .count()
    }

    fn hold(&mut self, from: usize, to: usize) {
        for u in from..to {
            self.held[u / 64] |= 1 << (u % 64);
        }
    }
}

/// What became of a fragment.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Added {
    /// Kept; the datagram is not whole yet.
    Held,
    /// Its datagram is whole: [`Reasm::take`] slot `usize`.
    Whole(usize),
    /// Dropped for this reason (the datagram may be gone with it).
    Drop(DropReason),
}

/// A whole datagram taken out of its slot: `buf[head..head + len]` is
/// the frame (link header, IP header without fragment header, payload).
#[derive(Debug)]
pub struct Whole {
    pub buf: Vec<u8>,
    pub head: usize,
    pub len: usize,
    /// The largest fragment's IP length (`frag_max_size`): the datagram is
    /// refragmented to at most this.
    pub max_frag: usize,
    /// The slot it came from, which gets `buf` back
    /// ([`Reasm::give_back`]).
    pub slot: usize,
}

/// A datagram that timed out after its first fragment came: the first
/// fragment as it was received, which an ICMP time exceeded quotes.
#[derive(Debug)]
pub struct Expired<'a> {
    pub src: IpAddr,
    pub dst: IpAddr,
    /// The NIC the first fragment came in on.
    pub nic: NicId,
    /// Its link header (MACs and tags).
    pub link: &'a [u8],
    /// Its IP header (IPv6: the unfragmentable part, whose last next
    /// header names the fragment header).
    pub ip: &'a [u8],
    /// IPv6: its fragment header; IPv4: empty.
    pub frag_hdr: &'a [u8],
    /// Its payload.
    pub data: &'a [u8],
}

/// Where a fragment sits, read from its headers.
struct FragInfo {
    key: Key,
    /// Bytes of IP header kept for the whole datagram (IPv6: the
    /// unfragmentable part, without the fragment header).
    l3_len: usize,
    nh_at: usize,
    next: u8,
    /// IPv6: the fragment header.
    fh: [u8; FRAG_HDR_LEN],
    off: usize,
    more: bool,
    df: bool,
    /// Payload within the frame.
    data: std::ops::Range<usize>,
}

fn info(frame: &[u8], p: &Headers) -> Option<FragInfo> {
    let l3 = p.l3_off;
    let ip = frame.get(l3..p.l3_end())?;
    match p.version {
        IpVersion::V4 => {
            let hlen = p.l4_off.checked_sub(l3)?;
            let w = u16::from_be_bytes(ip.get(ipv4::field::FLG_OFF)?.try_into().ok()?);
            let id = u16::from_be_bytes(ip.get(ipv4::field::IDENT)?.try_into().ok()?);
            Some(FragInfo {
                key: Key {
                    src: p.src,
                    dst: p.dst,
                    id: u32::from(id),
                    proto: p.proto,
                },
                l3_len: hlen,
                nh_at: ipv4::field::PROTOCOL,
                next: p.proto,
                fh: [0; FRAG_HDR_LEN],
                off: usize::from(w & ipv4::FRAG_OFFSET_MASK) * 8,
                more: w & ipv4::MF != 0,
                df: w & ipv4::DF != 0,
                data: l3 + hlen..p.l3_end(),
            })
        }
        IpVersion::V6 => {
            let (pos, nh_at) = unfragmentable_v6(ip)?;
            if *ip.get(nh_at)? != IPPROTO_FRAGMENT {
                return None;
            }
            let fh = ip.get(pos..pos + FRAG_HDR_LEN)?;
            let w = u16::from_be_bytes([fh[2], fh[3]]);
            Some(FragInfo {
                key: Key {
                    src: p.src,
                    dst: p.dst,
                    id: u32::from_be_bytes([fh[4], fh[5], fh[6], fh[7]]),
                    proto: 0,
                },
                l3_len: pos,
                nh_at,
                next: fh[0],
                fh: fh.try_into().ok()?,
                off: usize::from(w & !7),
                more: w & 1 != 0,
                df: true,
                data: l3 + pos + FRAG_HDR_LEN..p.l3_end(),
            })
        }
    }
}

/// The reassembly pool of one data plane.
#[derive(Debug)]
pub struct Reasm {
    slots: Vec<Slot>,
    /// No datagram can time out before this (the earliest deadline of a
    /// slot claimed since the last scan; `None`: nothing to scan): the
    /// per-round `expire` with no fragments pending is one comparison.
    /// Conservative: a slot freed by completion leaves it early, which
    /// costs one scan, never a late timeout.
    next_due: Option<Timestamp>,
}

impl Default for Reasm {
    fn default() -> Self {
        Reasm::new()
    }
}

impl Reasm {
    /// Allocates the whole pool.
    pub fn new() -> Reasm {
        Reasm {
            slots: (0..SLOTS).map(|_| Slot::new()).collect(),
            next_due: None,
        }
    }

    /// Datagrams being reassembled.
    pub fn in_use(&self) -> usize {
        self.slots.iter().filter(|s| s.key.is_some()).count()
    }

    /// Bytes of payload held over all slots (never more than the pool).
    pub fn bytes_held(&self) -> usize {
        self.slots.iter().map(|s| s.got).sum()
    }

    /// Frees datagrams whose first fragment came [`TIMEOUT`] or more
    /// before `now`, calling `first` for each of them whose first fragment
    /// came (what `ip_expire` answers); returns how many were freed.
    pub fn expire(&mut self, now: Timestamp, mut first: impl FnMut(&Expired<'_>)) -> usize {
        match self.next_due {
            Some(due) if now >= due => {}
            _ => return 0,
        }
        let mut n = 0;
        let mut next: Option<Timestamp> = None;
        for s in &mut self.slots {
            if s.key.is_none() {
                continue;
            }
            if now.since(s.created) >= TIMEOUT {
                if let (Some(k), true) = (s.key, s.head_len > 0) {
                    let ip_at = HEAD_ROOM - s.l3_len;
                    let v6 = s.buf[ip_at] >> 4 == 6;
                    first(&Expired {
                        src: k.src,
                        dst: k.dst,
                        nic: s.first_nic,
                        link: &s.buf[HEAD_ROOM - s.head_len..ip_at],
                        ip: &s.buf[ip_at..HEAD_ROOM],
                        frag_hdr: if v6 { &s.first_fh } else { &[] },
                        data: &s.buf[HEAD_ROOM..HEAD_ROOM + s.first_len],
                    });
                }
                s.reset();
                n += 1;
            } else {
                let due = s.created + TIMEOUT;
                next = Some(next.map_or(due, |d: Timestamp| d.min(due)));
            }
        }
        self.next_due = next;
        n
    }

    /// Adds the fragment `p` of `frame` (received on the first NIC).
    pub fn add(&mut self, frame: &[u8], p: &Headers, now: Timestamp) -> Added {
        self.add_on(frame, p, 0, now)
    }

    /// Adds the fragment `p` of `frame`, received on NIC `nic`.
    pub fn add_on(&mut self, frame: &[u8], p: &Headers, nic: NicId, now: Timestamp) -> Added {
        let Some(fi) = info(frame, p) else {
            return Added::Drop(DropReason::FragBad);
        };
        let mut len = fi.data.len();
        if fi.more && len % 8 != 0 {
            if p.version == IpVersion::V6 {
                return Added::Drop(DropReason::FragBad);
            }
            len &= !7;
        }
        let end = fi.off + len;
        // The whole datagram: IPv4 total length, IPv6 payload length.
        let limit = match p.version {
            IpVersion::V4 => MAX_LEN - fi.l3_len,
            IpVersion::V6 => MAX_LEN + ipv6::HEADER_LEN - fi.l3_len,
        };
        if len == 0 || end > limit || fi.l3_len + p.l3_off > HEAD_ROOM {
            return Added::Drop(DropReason::FragBad);
        }
        let i = match self.slots.iter().position(|s| s.key == Some(fi.key)) {
            Some(i) => i,
            // A slot whose buffer is lent to another worker
            // ([`Reasm::take`]) is not free until it comes back.
            None => match self
                .slots
                .iter()
                .position(|s| s.key.is_none() && !s.buf.is_empty())
            {
                Some(i) => {
                    let s = &mut self.slots[i];
                    s.key = Some(fi.key);
                    s.created = now;
                    let due = now + TIMEOUT;
                    self.next_due = Some(self.next_due.map_or(due, |d| d.min(due)));
                    i
                }
                None => return Added::Drop(DropReason::FragNoRoom),
            },
        };
        let s = &mut self.slots[i];
        if !fi.more {
            if end < s.end || s.total.is_some_and(|t| t != end) {
                return Added::Drop(DropReason::FragBad);
            }
        } else if s.total.is_some_and(|t| end > t) {
            return Added::Drop(DropReason::FragBad);
        }
        let (u0, u1) = (fi.off / 8, end.div_ceil(8));
        match s.units_held(u0, u1) {
            0 => {}
            n if n == u1 - u0 => return Added::Drop(DropReason::FragDup),
            _ => {
                s.reset();
                return Added::Drop(DropReason::FragOverlap);
            }
        }
        s.hold(u0, u1);
        if !fi.more {
            s.total = Some(end);
        }
        s.got += len;
        s.end = s.end.max(end);
        s.max_frag = s.max_frag.max(p.ip_len as usize);
        s.all_df &= fi.df;
        s.buf[HEAD_ROOM + fi.off..HEAD_ROOM + end]
            .copy_from_slice(&frame[fi.data.start..fi.data.start + len]);
        if fi.off == 0 {
            let head = p.l3_off + fi.l3_len;
            s.head_len = head;
            s.l3_len = fi.l3_len;
            s.nh_at = fi.nh_at;
            s.next = fi.next;
            s.first_nic = nic;
            s.first_len = len;
            s.first_fh = fi.fh;
            s.buf[HEAD_ROOM - head..HEAD_ROOM].copy_from_slice(&frame[..head]);
        }
        if s.head_len > 0 && s.total == Some(s.got) {
            Added::Whole(i)
        } else {
            Added::Held
        }
    }

    /// Takes the whole datagram of slot `i` (after [`Added::Whole`]) with
    /// its IP header made that of an unfragmented packet; give the buffer
    /// back with [`Reasm::give_back`]; the slot takes no datagram until then.
    pub fn take(&mut self, i: usize) -> Whole {
        let s = &mut self.slots[i];
        let total = s.total.unwrap_or(0);
        let head = HEAD_ROOM - s.head_len;
        let l3 = HEAD_ROOM - s.l3_len;
        let v6 = s.buf[l3] >> 4 == 6;
        let h = &mut s.buf[l3..HEAD_ROOM];
        if v6 {
            let plen = (s.l3_len - ipv6::HEADER_LEN + total) as u16;
            h[ipv6::field::LENGTH].copy_from_slice(&plen.to_be_bytes());
            h[s.nh_at] = s.next;
        } else {
            let tl = (s.l3_len + total) as u16;
            h[ipv4::field::LENGTH].copy_from_slice(&tl.to_be_bytes());
            // ip_frag_reasm: DF only when every fragment had it.
            let w = if s.all_df { ipv4::DF } else { 0 };
            h[ipv4::field::FLG_OFF].copy_from_slice(&w.to_be_bytes());
            h[ipv4::field::CHECKSUM].fill(0);
            let c = checksum::checksum(h);
            h[ipv4::field::CHECKSUM].copy_from_slice(&c.to_be_bytes());
        }
        let w = Whole {
            buf: std::mem::take(&mut s.buf),
            head,
            len: s.head_len + total,
            max_frag: s.max_frag,
            slot: i,
        };
        s.reset();
        w
    }

    /// Gives back the buffer of a datagram [`Reasm::take`] lent (possibly
    /// after another worker processed it).
    pub fn give_back(&mut self, w: Whole) {
        if let Some(s) = self.slots.get_mut(w.slot) {
            s.buf = w.buf;
        }
    }
}

/// `icmp_send`'s rate limits for the ICMP errors a data plane originates
/// (time exceeded): the global bucket (`icmp_msgs_per_sec` 1000,
/// `icmp_msgs_burst` 50: `icmp_global_allow`) and per destination one
/// message a second with a burst of 6 (`icmp_ratelimit` 1000 ms and
/// `XRLIM_BURST_FACTOR`: `inet_peer_xrlim_allow`; a destination not seen
/// before starts with the whole burst). Destinations are kept in a fixed
/// table of [`LIMIT_PEERS`], the least recently limited one forgotten for a
/// new one. Nothing allocates after [`ErrorLimit::new`].
#[derive(Debug)]
pub struct ErrorLimit {
    /// Global credit, in nanoseconds of refill (one message costs
    /// [`GLOBAL_COST`]).
    global: u64,
    global_at: Timestamp,
    peers: Vec<Peer>,
}

#[derive(Copy, Clone, Debug)]
struct Peer {
    addr: Option<IpAddr>,
    /// Credit in nanoseconds (one message costs [`PEER_COST`]).
    tokens: u64,
    at: Timestamp,
}

/// Destinations whose ICMP error rate is remembered.
pub const LIMIT_PEERS: usize = 64;
/// 1000 messages a second, a burst of 50.
const GLOBAL_COST: u64 = 1_000_000;
const GLOBAL_BURST: u64 = 50 * GLOBAL_COST;
/// One message a second per destination, a burst of 6.
const PEER_COST: u64 = 1_000_000_000;
const PEER_BURST: u64 = 6 * PEER_COST;

impl Default for ErrorLimit {
    fn default() -> Self {
        ErrorLimit::new()
    }
}

impl ErrorLimit {
    pub fn new() -> ErrorLimit {
        ErrorLimit {
            global: GLOBAL_BURST,
            global_at: Timestamp::ZERO,
            peers: vec![
                Peer {
                    addr: None,
                    tokens: 0,
                    at: Timestamp::ZERO,
                };
                LIMIT_PEERS
            ],
        }
    }

    /// Whether an ICMP error to `dst` may be sent at `now` (and if so,
    /// takes its credit).
    pub fn allow(&mut self, dst: IpAddr, now: Timestamp) -> bool {
        let g = (self.global + now.0.saturating_sub(self.global_at.0)).min(GLOBAL_BURST);
        self.global_at = now;
        self.global = g;
        if g < GLOBAL_COST {
            return false;
        }
        let i = match self.peers.iter().position(|p| p.addr == Some(dst)) {
            Some(i) => i,
            None => {
                let i = self
                    .peers
                    .iter()
                    .enumerate()
                    .min_by_key(|(_, p)| (p.addr.is_some(), p.at))
                    .map_or(0, |(i, _)| i);
                self.peers[i] = Peer {
                    addr: Some(dst),
                    tokens: PEER_BURST,
                    at: now,
                };
                i
            }
        };
        let p = &mut self.peers[i];
        let t = (p.tokens + now.0.saturating_sub(p.at.0)).min(PEER_BURST);
        p.at = now;
        if t < PEER_COST {
            p.tokens = t;
            return false;
        }
        p.tokens = t - PEER_COST;
        self.global -= GLOBAL_COST;
        true
    }
}
