//! Fragmentation on output, as the kernel's `ip_do_fragment` (IPv4) and
//! `ip6_fragment` (IPv6) do, into [`ExtraTx`]: the frames a data plane
//! emits beyond the one it received.
//!
//! Used for a datagram the data plane reassembled (DR/NAT/FULLNAT send the
//! whole datagram, which the output path refragments, as IPVS behind
//! nf_defrag does) and for the outer packet of a tunnel when the inner IPv4
//! packet has no DF (`ip_vs_tunnel_xmit` leaves that to `ip_fragment`).
//!
//! Every fragment repeats the link header (tags included) and the IP
//! header; IPv4 options without the copy flag become NOPs in later
//! fragments (`ip_options_fragment`); IPv6 fragments carry the
//! unfragmentable part (hop-by-hop, routing and the destination options
//! before a routing header: `ip6_find_1stfragopt`) and a fragment header.
//! Non-last fragments hold a multiple of 8 payload bytes.

use std::net::IpAddr;

use crate::dest::NicId;
use crate::wire::{
    IPPROTO_ICMP, IPPROTO_ICMPV6, IPV4_HLEN, IPV6_HLEN, IpVersion, MacAddr, checksum, ethernet,
    icmp, icmpv6, ipv4, ipv6,
};

/// IPv6 fragment header length.
pub const FRAG_HDR_LEN: usize = 8;
/// IPv6 next-header number of the fragment header.
pub const IPPROTO_FRAGMENT: u8 = 44;

/// Frames queued for transmission besides the received one, in one buffer
/// allocated at start: no allocation per frame. [`ExtraTx::clear`] after
/// the shell sent them.
#[derive(Debug)]
pub struct ExtraTx {
    bytes: Vec<u8>,
    frames: Vec<(u32, u32, NicId)>,
}

/// The queue cannot take another frame (its capacity is fixed).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Full;

impl ExtraTx {
    /// Room for `bytes` bytes of frames and at most `frames` frames.
    pub fn with_capacity(bytes: usize, frames: usize) -> ExtraTx {
        ExtraTx {
            bytes: Vec::with_capacity(bytes),
            frames: Vec::with_capacity(frames),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    pub fn len(&self) -> usize {
        self.frames.len()
    }

    pub fn clear(&mut self) {
        self.bytes.clear();
        self.frames.clear();
    }

    /// The queued frames and their NICs, in order.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], NicId)> {
        self.frames
            .iter()
            .map(|&(s, l, n)| (&self.bytes[s as usize..(s + l) as usize], n))
    }

    /// Frame `i`, writable.
    pub fn get_mut(&mut self, i: usize) -> Option<(&mut [u8], NicId)> {
        let &(s, l, n) = self.frames.get(i)?;
        Some((&mut self.bytes[s as usize..(s + l) as usize], n))
    }

    /// Forgets frames from the `n`th on (a fragmentation that failed half
    /// way sends nothing).
    fn truncate(&mut self, n: usize) {
        if let Some(&(s, _, _)) = self.frames.get(n) {
            self.bytes.truncate(s as usize);
            self.frames.truncate(n);
        }
    }

    /// Appends a frame made of `parts`, never growing the buffers.
    fn push(&mut self, parts: &[&[u8]], nic: NicId) -> Result<&mut [u8], Full> {
        let len: usize = parts.iter().map(|p| p.len()).sum();
        let start = self.bytes.len();
        if start + len > self.bytes.capacity() || self.frames.len() == self.frames.capacity() {
            return Err(Full);
        }
        for p in parts {
            self.bytes.extend_from_slice(p);
        }
        self.frames.push((start as u32, len as u32, nic));
        Ok(&mut self.bytes[start..])
    }

    /// Queues `frame` as it is.
    pub fn push_frame(&mut self, frame: &[u8], nic: NicId) -> Result<(), Full> {
        self.push(&[frame], nic).map(|_| ())
    }
}

/// The code of ICMP / ICMPv6 time exceeded for "fragment reassembly time
/// exceeded" (`ICMP_EXC_FRAGTIME`, `ICMPV6_EXC_FRAGTIME`).
pub const CODE_FRAG_TIME: u8 = 1;

/// The first fragment of a datagram whose reassembly timed out, in pieces
/// as the reassembly kept it.
#[derive(Copy, Clone, Debug)]
pub struct FirstFragment<'a> {
    /// Link header (MACs, tags).
    pub link: &'a [u8],
    /// IP header as received (IPv6: the unfragmentable part).
    pub ip: &'a [u8],
    /// IPv6 fragment header; empty for IPv4.
    pub frag_hdr: &'a [u8],
    /// Payload.
    pub data: &'a [u8],
    /// Its source: where the error goes.
    pub to: IpAddr,
}

/// Queues for `nic` an ICMP time exceeded, "fragment reassembly time
/// exceeded" (IPv4 11/1, ICMPv6 3/1), from `from` back to the sender of
/// the first fragment `f`, quoting it as Linux's `icmp_send` /
/// `icmpv6_send` do (as much as fits in 576 bytes / 1280 bytes), with the
/// same header choices as [`crate::forward::icmp_too_big`]: Ethernet to the
/// fragment's source MAC from `our_mac` (tags kept), TTL / hop limit 64,
/// IPv4 TOS bits kept with internetwork-control precedence, DF and ID 0.
pub fn time_exceeded(
    out: &mut ExtraTx,
    f: &FirstFragment<'_>,
    from: IpAddr,
    our_mac: MacAddr,
    nic: NicId,
) -> Result<(), FragError> {
    let (src, dst, v6) = match (from, f.to) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            let (mut a, mut b) = ([0; 16], [0; 16]);
            a[..4].copy_from_slice(&s.octets());
            b[..4].copy_from_slice(&d.octets());
            (a, b, false)
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => (s.octets(), d.octets(), true),
        _ => return Err(FragError::Bad),
    };
    let l2 = f.link.len();
    if l2 < ethernet::field::ADDRS.end || f.ip.is_empty() {
        return Err(FragError::Bad);
    }
    let (hdr, cap) = if v6 {
        (IPV6_HLEN, 1280)
    } else {
        (IPV4_HLEN, 576)
    };
    let room = cap - hdr - icmp::HEADER_LEN;
    let qip = f.ip.len().min(room);
    let qfh = f.frag_hdr.len().min(room - qip);
    let qd = f.data.len().min(room - qip - qfh);
    let msg_len = icmp::HEADER_LEN + qip + qfh + qd;
    let orig_tos = f.ip.get(ipv4::field::DSCP_ECN).copied().unwrap_or(0);
    let zero = [0u8; IPV6_HLEN + icmp::HEADER_LEN];
    let frame = out
        .push(
            &[
                f.link,
                &zero[..hdr + icmp::HEADER_LEN],
                &f.ip[..qip],
                &f.frag_hdr[..qfh],
                &f.data[..qd],
            ],
            nic,
        )
        .map_err(|_| FragError::Full)?;
    frame.copy_within(ethernet::field::SOURCE, ethernet::field::DESTINATION.start);
    frame[ethernet::field::SOURCE].copy_from_slice(&our_mac);
    let (iph, msg) = frame[l2..l2 + hdr + msg_len].split_at_mut(hdr);
    if v6 {
        use ipv6::field as F;
        iph[F::VER_TC_FLOW].copy_from_slice(&ipv6::ver_tc_flow(0, 0));
        iph[F::LENGTH].copy_from_slice(&(msg_len as u16).to_be_bytes());
        iph[F::NXT_HDR] = IPPROTO_ICMPV6;
        iph[F::HOP_LIMIT] = 64;
        iph[F::SRC].copy_from_slice(&src);
        iph[F::DST].copy_from_slice(&dst);
        msg[icmpv6::field::TYPE] = icmpv6::TIME_EXCEEDED;
        msg[icmpv6::field::CODE] = CODE_FRAG_TIME;
        let ph = checksum::pseudo_v6(src, dst, IPPROTO_ICMPV6, msg_len as u32);
        let c = checksum::finish(checksum::add(ph, checksum::sum(msg)));
        msg[icmpv6::field::CHECKSUM].copy_from_slice(&c.to_be_bytes());
    } else {
        use ipv4::field as F;
        iph[F::VER_IHL] = ipv4::VER_IHL_NO_OPTIONS;
        iph[F::DSCP_ECN] = (orig_tos & 0x1e) | 0xc0;
        iph[F::LENGTH].copy_from_slice(&((hdr + msg_len) as u16).to_be_bytes());
        iph[F::FLG_OFF].copy_from_slice(&ipv4::DF.to_be_bytes());
        iph[F::TTL] = 64;
        iph[F::PROTOCOL] = IPPROTO_ICMP;
        iph[F::SRC].copy_from_slice(&src[..4]);
        iph[F::DST].copy_from_slice(&dst[..4]);
        let c = checksum::checksum(iph);
        iph[F::CHECKSUM].copy_from_slice(&c.to_be_bytes());
        msg[icmp::field::TYPE] = icmp::TIME_EXCEEDED;
        msg[icmp::field::CODE] = CODE_FRAG_TIME;
        let c = checksum::checksum(msg);
        msg[icmp::field::CHECKSUM].copy_from_slice(&c.to_be_bytes());
    }
    Ok(())
}

/// Why a packet could not be fragmented; nothing was queued.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum FragError {
    /// The headers leave no room for 8 payload bytes within the MTU, or the
    /// packet is not the IP packet it claims to be.
    Bad,
    /// [`ExtraTx`] is full.
    Full,
}

/// Splits the IP packet at `frame[l3..]` (the frame ends with it) into
/// fragments of at most `mtu` bytes of IP, each queued with the frame's
/// link header for `nic`. `id` is the IPv6 identification (IPv4 keeps the
/// packet's own, as `ip_do_fragment`). Returns how many fragments.
pub fn fragment(
    frame: &[u8],
    l3: usize,
    version: IpVersion,
    mtu: usize,
    id: u32,
    out: &mut ExtraTx,
    nic: NicId,
) -> Result<usize, FragError> {
    let mark = out.len();
    let r = match version {
        IpVersion::V4 => fragment_v4(frame, l3, mtu, out, nic),
        IpVersion::V6 => fragment_v6(frame, l3, mtu, id, out, nic),
    };
    if r.is_err() {
        out.truncate(mark);
    }
    r
}

fn fragment_v4(
    frame: &[u8],
    l3: usize,
    mtu: usize,
    out: &mut ExtraTx,
    nic: NicId,
) -> Result<usize, FragError> {
    let ip = frame.get(l3..).ok_or(FragError::Bad)?;
    let hlen = usize::from(ip.first().ok_or(FragError::Bad)? & 0x0f) * 4;
    if hlen < IPV4_HLEN || ip.len() < hlen {
        return Err(FragError::Bad);
    }
    let payload = &ip[hlen..];
    let room = mtu.checked_sub(hlen).ok_or(FragError::Bad)? & !7;
    if room == 0 {
        return Err(FragError::Bad);
    }
    let fo = u16::from_be_bytes([
        ip[ipv4::field::FLG_OFF.start],
        ip[ipv4::field::FLG_OFF.start + 1],
    ]);
    // A packet that is itself a fragment keeps its place and its MF.
    let base = usize::from(fo & ipv4::FRAG_OFFSET_MASK) * 8;
    let last_mf = fo & ipv4::MF != 0;
    let keep = fo & ipv4::DF;
    let mut hdr = [0u8; 60];
    hdr[..hlen].copy_from_slice(&ip[..hlen]);
    let mut n = 0;
    let mut off = 0;
    while off < payload.len() || (off == 0 && payload.is_empty()) {
        let len = room.min(payload.len() - off);
        let last = off + len == payload.len();
        let more = !last || last_mf;
        let h = &mut hdr[..hlen];
        h[ipv4::field::LENGTH].copy_from_slice(&((hlen + len) as u16).to_be_bytes());
        let word = keep | if more { ipv4::MF } else { 0 } | (((base + off) / 8) as u16);
        h[ipv4::field::FLG_OFF].copy_from_slice(&word.to_be_bytes());
        h[ipv4::field::CHECKSUM].fill(0);
        let c = checksum::checksum(h);
        h[ipv4::field::CHECKSUM].copy_from_slice(&c.to_be_bytes());
        out.push(&[&frame[..l3], h, &payload[off..off + len]], nic)
            .map_err(|_| FragError::Full)?;
        if n == 0 {
            options_fragment(&mut hdr[IPV4_HLEN..hlen]);
        }
        n += 1;
        off += len;
        if payload.is_empty() {
            break;
        }
    }
    Ok(n)
}

/// `ip_options_fragment`: options without the copied flag are replaced by
/// NOPs in every fragment after the first.
fn options_fragment(opts: &mut [u8]) {
    let mut i = 0;
    while i < opts.len() {
        match opts[i] {
            0 => return,
            1 => i += 1,
            t => {
                let l = usize::from(opts.get(i + 1).copied().unwrap_or(0));
                if l < 2 || i + l > opts.len() {
                    return;
                }
                if t & 0x80 == 0 {
                    opts[i..i + l].fill(1);
                }
                i += l;
            }
        }
    }
}

/// The unfragmentable part of an IPv6 packet (`ip6_find_1stfragopt`): its
/// length and the offset of the next-header byte that leads past it.
pub fn unfragmentable_v6(ip: &[u8]) -> Option<(usize, usize)> {
    let mut nh_at = ipv6::field::NXT_HDR;
    let mut pos = IPV6_HLEN;
    loop {
        let nh = *ip.get(nh_at)?;
        let ext_len = |p: usize| ip.get(p + 1).map(|l| (usize::from(*l) + 1) * 8);
        match nh {
            0 | 43 => {}
            60 => {
                // Destination options belong here only before a routing
                // header.
                if *ip.get(pos)? != 43 {
                    return Some((pos, nh_at));
                }
            }
            _ => return Some((pos, nh_at)),
        }
        let l = ext_len(pos)?;
        if pos + l > ip.len() {
            return None;
        }
        nh_at = pos;
        pos += l;
    }
}

fn fragment_v6(
    frame: &[u8],
    l3: usize,
    mtu: usize,
    id: u32,
    out: &mut ExtraTx,
    nic: NicId,
) -> Result<usize, FragError> {
    let ip = frame.get(l3..).ok_or(FragError::Bad)?;
    let (unfrag, nh_at) = unfragmentable_v6(ip).ok_or(FragError::Bad)?;
    if unfrag > 256 {
        return Err(FragError::Bad);
    }
    let next = ip[nh_at];
    let payload = &ip[unfrag..];
    let room = mtu
        .checked_sub(unfrag + FRAG_HDR_LEN)
        .ok_or(FragError::Bad)?
        & !7;
    if room == 0 {
        return Err(FragError::Bad);
    }
    let mut hdr = [0u8; 256 + FRAG_HDR_LEN];
    hdr[..unfrag].copy_from_slice(&ip[..unfrag]);
    hdr[nh_at] = IPPROTO_FRAGMENT;
    let mut n = 0;
    let mut off = 0;
    while off < payload.len() {
        let len = room.min(payload.len() - off);
        let more = off + len < payload.len();
        let h = &mut hdr[..unfrag + FRAG_HDR_LEN];
        let plen = (unfrag - IPV6_HLEN + FRAG_HDR_LEN + len) as u16;
        h[ipv6::field::LENGTH].copy_from_slice(&plen.to_be_bytes());
        let fh = &mut h[unfrag..];
        fh[0] = next;
        fh[1] = 0;
        let word = (off as u16) | u16::from(more);
        fh[2..4].copy_from_slice(&word.to_be_bytes());
        fh[4..8].copy_from_slice(&id.to_be_bytes());
        out.push(&[&frame[..l3], h, &payload[off..off + len]], nic)
            .map_err(|_| FragError::Full)?;
        n += 1;
        off += len;
    }
    Ok(n)
}
