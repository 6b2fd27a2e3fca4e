//! `lvsfwd replay`: the real data-plane pipeline, fed from a capture.
//!
//! Every frame of the input capture is taken as received on the data-plane
//! NIC, in order; its capture timestamp is the data plane's clock, so timers,
//! persistence and expiry are reproducible to the packet. Frames the data
//! plane transmits go to the output capture stamped with the time of the
//! frame that caused them; frames it hands to the kernel go to the optional
//! pass capture, unchanged. This module is only file I/O around
//! [`crate::dataplane::Dataplane`]: it makes no forwarding decision itself.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use pcap_file::DataLink;
use pcap_file::pcap::{PcapHeader, PcapPacket, PcapReader, PcapWriter};
use pcap_file::pcapng::{Block, PcapNgReader};

use crate::dataplane::{Dataplane, Verdict};
use crate::time::Timestamp;
use crate::wire::FrameBuf;

/// Room kept in front of every frame, as an AF_XDP UMEM frame keeps it, so
/// that TUN encapsulation can grow the frame at the front.
pub const HEADROOM: usize = 256;
/// Largest frame replay handles (jumbo frames included).
pub const MAX_FRAME: usize = 16384;

/// One captured frame.
pub struct CapturedFrame {
    pub ts: Duration,
    pub data: Vec<u8>,
}

/// Reads Ethernet frames from a pcap or pcapng file, whichever it is.
pub fn read_capture(path: &Path) -> Result<Vec<CapturedFrame>> {
    let mut bytes = Vec::new();
    File::open(path)
        .with_context(|| format!("cannot open {}", path.display()))?
        .read_to_end(&mut bytes)
        .with_context(|| format!("cannot read {}", path.display()))?;
    let magic = bytes.get(..4).unwrap_or(&[]);
    let mut frames = Vec::new();
    if magic == [0x0a, 0x0d, 0x0d, 0x0a] {
        let mut r = PcapNgReader::new(&bytes[..])
            .with_context(|| format!("{}: not a valid pcapng file", path.display()))?;
        let mut links = Vec::new();
        while let Some(block) = r.next_block() {
            let block =
                block.with_context(|| format!("{}: corrupt pcapng block", path.display()))?;
            match block {
                Block::SectionHeader(_) => links.clear(),
                Block::InterfaceDescription(idb) => links.push(idb.linktype),
                Block::EnhancedPacket(epb) => {
                    let link = links.get(epb.interface_id as usize).copied();
                    if link != Some(DataLink::ETHERNET) {
                        bail!(
                            "{}: packet on interface {} whose link type ({:?}) is not Ethernet",
                            path.display(),
                            epb.interface_id,
                            link
                        );
                    }
                    frames.push(CapturedFrame {
                        ts: epb.timestamp,
                        data: epb.data.into_owned(),
                    });
                }
                _ => {}
            }
        }
    } else {
        let mut r = PcapReader::new(BufReader::new(&bytes[..]))
            .with_context(|| format!("{}: not a pcap or pcapng file", path.display()))?;
        if r.header().datalink != DataLink::ETHERNET {
            bail!(
                "{}: link type {:?} is not Ethernet",
                path.display(),
                r.header().datalink
            );
        }
        while let Some(pkt) = r.next_packet() {
            let pkt = pkt.with_context(|| format!("{}: corrupt pcap record", path.display()))?;
            frames.push(CapturedFrame {
                ts: pkt.timestamp,
                data: pkt.data.into_owned(),
            });
        }
    }
    Ok(frames)
}

/// A pcap writer for Ethernet frames (microsecond timestamps).
pub struct CaptureWriter {
    w: PcapWriter<BufWriter<File>>,
}

impl CaptureWriter {
    pub fn create(path: &Path) -> Result<CaptureWriter> {
        let f = File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
        let header = PcapHeader {
            datalink: DataLink::ETHERNET,
            snaplen: MAX_FRAME as u32,
            ..PcapHeader::default()
        };
        let w = PcapWriter::with_header(BufWriter::new(f), header)
            .with_context(|| format!("cannot write {}", path.display()))?;
        Ok(CaptureWriter { w })
    }

    pub fn write(&mut self, ts: Duration, frame: &[u8]) -> Result<()> {
        self.w
            .write_packet(&PcapPacket::new(ts, frame.len() as u32, frame))
            .context("cannot write capture record")?;
        Ok(())
    }

    pub fn finish(self) -> Result<()> {
        self.w
            .into_writer()
            .flush()
            .context("cannot flush capture")?;
        Ok(())
    }
}

/// What a replay did, frame by frame totals.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct ReplaySummary {
    pub rx: u64,
    pub tx: u64,
    pub pass: u64,
    pub drop: u64,
    /// Capture time of the last frame: "now" for listings printed afterwards.
    pub last: Timestamp,
}

impl std::fmt::Display for ReplaySummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "rx {} tx {} pass {} drop {}",
            self.rx, self.tx, self.pass, self.drop
        )
    }
}

/// Runs `frames` through `dp` in order. `out` receives transmitted frames,
/// `pass` (when given) the frames handed to the kernel.
pub fn run(
    dp: &mut Dataplane,
    frames: &[CapturedFrame],
    out: &mut CaptureWriter,
    mut pass: Option<&mut CaptureWriter>,
) -> Result<ReplaySummary> {
    let mut buf = vec![0u8; HEADROOM + MAX_FRAME];
    let mut sum = ReplaySummary::default();
    for f in frames {
        let now = Timestamp::from_nanos(f.ts.as_nanos().min(u64::MAX as u128) as u64);
        sum.rx += 1;
        sum.last = now;
        dp.tick(now);
        // What the timers sent (ICMP errors of reassembly timeouts).
        write_extra(dp, f.ts, out, pass.as_deref_mut(), &mut sum)?;
        if f.data.len() > MAX_FRAME {
            // Larger than any NIC would hand us: the data plane never sees it.
            dp.count_oversized();
            sum.drop += 1;
            continue;
        }
        buf[HEADROOM..HEADROOM + f.data.len()].copy_from_slice(&f.data);
        let mut frame = FrameBuf::new(&mut buf, HEADROOM, f.data.len());
        match dp.process(&mut frame, now) {
            Verdict::Tx(_) => {
                sum.tx += 1;
                out.write(f.ts, frame.data())?;
            }
            Verdict::Pass | Verdict::Kernel(_) => {
                sum.pass += 1;
                if let Some(p) = pass.as_deref_mut() {
                    p.write(f.ts, &f.data)?;
                }
            }
            Verdict::Drop(_) => sum.drop += 1,
            // One data plane keeps no reply stubs (only a multi-worker
            // engine's sync makes them): no other worker to hand it to.
            Verdict::HandOver(_) => {
                dp.count_not_handed();
                sum.pass += 1;
                if let Some(p) = pass.as_deref_mut() {
                    p.write(f.ts, &f.data)?;
                }
            }
            Verdict::Consumed => {
                // Fragments kept for reassembly send nothing; a whole
                // datagram or a fragmented packet leaves as extra frames.
                write_extra(dp, f.ts, out, pass.as_deref_mut(), &mut sum)?;
            }
        }
    }
    Ok(sum)
}

/// Writes (and forgets) the data plane's extra frames.
fn write_extra(
    dp: &mut Dataplane,
    ts: Duration,
    out: &mut CaptureWriter,
    mut pass: Option<&mut CaptureWriter>,
    sum: &mut ReplaySummary,
) -> Result<()> {
    for (data, nic) in dp.extra() {
        if nic == crate::dataplane::TO_KERNEL {
            sum.pass += 1;
            if let Some(p) = pass.as_deref_mut() {
                p.write(ts, data)?;
            }
        } else {
            sum.tx += 1;
            out.write(ts, data)?;
        }
    }
    dp.clear_extra();
    Ok(())
}
