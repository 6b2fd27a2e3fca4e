//! The kernel port: how frames that the XDP program redirected to an AF_XDP
//! socket but that belong to the director's own stack get back to the
//! kernel.
//!
//! An AF_XDP socket cannot hand a frame it received back to the kernel, so
//! lvsfwd owns a tap device and writes such frames to it: the kernel takes
//! a frame written to a tap exactly as if a NIC had received it (`eth_type_trans`,
//! then the IPv4/IPv6 input path, sockets, RSTs), no extra kernel module is
//! needed (a veth pair would need a second end to feed, a KNI-like device a
//! module), and a tap that is not made persistent goes away with the last
//! file descriptor attached to it, so a crashed daemon leaves nothing behind.
//!
//! What goes there: every frame the data plane does not forward
//! ([`Verdict::Pass`](crate::dataplane::Verdict::Pass): not the balancer's;
//! [`Verdict::Kernel`](crate::dataplane::Verdict::Kernel): packets of
//! connections to a real server that is the director itself, IPVS's Local
//! forwarding, and TCP segments to a virtual service without a connection,
//! which the stack answers with a RST). What the kernel sends in return
//! leaves through the NIC as it routes it; the XDP program only sees RX.
//!
//! The device: `lvsk-<NIC>` ([`port_name`], truncated to 15 bytes), created
//! at start with `IFF_TAP | IFF_NO_PI | IFF_MULTI_QUEUE`: one queue (file
//! descriptor, non-blocking) per worker, so no two workers ever share or
//! lock one. It keeps the random locally administered MAC the kernel gives
//! a new tap, is brought up, and gets no address. A frame is written with
//! its destination MAC set to the tap's (a unicast frame addressed to
//! another MAC would be `PACKET_OTHERHOST` and dropped; group addresses are
//! left alone, the kernel takes them as broadcast / multicast). A write
//! that fails (`EAGAIN`: the tap's queue is full; anything else) is counted
//! (`kernel_port_drop`) and the frame recycled: the worker never blocks.
//! Written frames are counted (`to_kernel`).
//!
//! Sysctls set on the tap (only on it) before it goes up:
//! - `net/ipv4/conf/<tap>/rp_filter = 0`. The kernel's effective value is
//!   max(all, dev), and any reverse-path filter, strict or loose, rejects
//!   every packet arriving on an interface without an IPv4 address
//!   (`__fib_validate_source`: `no_addr` ends in `last_resort`, which fails
//!   whenever rp_filter is on), so loose (2) is not enough for an
//!   address-less tap; 0 is what works. The frames it gets came in through
//!   the NIC, and the source of one that is the director's own address is
//!   still refused (the martian check stays). Should `all.rp_filter` be
//!   non-zero (the kernel's default and systemd's are 0; some distributions
//!   set 1), the effective value stays non-zero and the kernel drops what
//!   the tap delivers (`TcpExtIPReversePathFilter`): lvsfwd says so at start
//!   rather than change a global setting.
//! - `net/ipv6/conf/<tap>/addr_gen_mode = 1`: no link-local address (the
//!   tap stays address-less; IPv6 input needs none), and `accept_ra = 0`,
//!   `disable_ipv6 = 0`: IPv6 input is on, router advertisements are not
//!   taken from it. IPv6 has no reverse-path filter of its own.
//!
//! IPv4 accepts a packet for any local address on any interface (the weak
//! host model), so the tap needs no address: a frame to a VIP (an address
//! of the NIC) is delivered to the sockets listening on it.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use anyhow::{Context, bail};

use crate::wire::MacAddr;
use crate::xsk::shared::WorkerCounters;

/// What the name of the tap starts with.
pub const NAME_PREFIX: &str = "lvsk-";

/// The kernel port's name for the data-plane NIC `nic`: `lvsk-<nic>`,
/// truncated to the 15 bytes a Linux interface name may have.
pub fn port_name(nic: &str) -> String {
    let mut name = format!("{NAME_PREFIX}{nic}");
    while name.len() >= libc::IFNAMSIZ {
        name.pop();
    }
    name
}

/// The tap device, as created: its name, its MAC and one queue per worker
/// (handed out with [`KernelPort::into_queues`]). It goes away when the
/// last queue is closed.
#[derive(Debug)]
pub struct KernelPort {
    name: String,
    mac: MacAddr,
    queues: Vec<File>,
}

/// An `ifreq` naming `name` (checked: not empty, no NUL, fits).
fn ifreq(name: &str) -> io::Result<libc::ifreq> {
    let b = name.as_bytes();
    if b.is_empty() || b.len() >= libc::IFNAMSIZ || b.contains(&0) {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    // SAFETY: all-zero is a valid ifreq (integers, arrays and a union of
    // them and pointers).
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    for (d, s) in ifr.ifr_name.iter_mut().zip(b) {
        *d = *s as libc::c_char;
    }
    Ok(ifr)
}

/// Opens one queue of the multi-queue tap `name` (creating the device on
/// the first call), non-blocking.
fn open_queue(name: &str) -> io::Result<File> {
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open("/dev/net/tun")?;
    let mut ifr = ifreq(name)?;
    ifr.ifr_ifru.ifru_flags = (libc::IFF_TAP | libc::IFF_NO_PI | libc::IFF_MULTI_QUEUE) as _;
    // SAFETY: TUNSETIFF reads the ifreq (name and flags) that `ifr` holds,
    // live for the call, and may write the name back into it.
    let r = unsafe { libc::ioctl(f.as_raw_fd(), libc::TUNSETIFF as _, &mut ifr) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(f)
}

/// A socket for interface ioctls.
fn ioctl_socket() -> io::Result<OwnedFd> {
    // SAFETY: plain socket creation; the result is checked.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just created and is owned by nothing else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// The MAC of interface `name`.
fn hw_addr(sock: &OwnedFd, name: &str) -> io::Result<MacAddr> {
    let mut ifr = ifreq(name)?;
    // SAFETY: SIOCGIFHWADDR reads the name in `ifr` and writes the
    // hardware address into its union, both live for the call.
    let r = unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFHWADDR as _, &mut ifr) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: SIOCGIFHWADDR filled `ifru_hwaddr`.
    let sa = unsafe { ifr.ifr_ifru.ifru_hwaddr };
    let mut mac = [0u8; 6];
    for (d, s) in mac.iter_mut().zip(sa.sa_data.iter()) {
        *d = *s as u8;
    }
    Ok(mac)
}

/// Sets `IFF_UP` on interface `name`.
fn set_up(sock: &OwnedFd, name: &str) -> io::Result<()> {
    let mut ifr = ifreq(name)?;
    // SAFETY: SIOCGIFFLAGS reads the name in `ifr` and writes its flags,
    // live for the call.
    let r = unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS as _, &mut ifr) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: SIOCGIFFLAGS filled `ifru_flags`.
    let flags = unsafe { ifr.ifr_ifru.ifru_flags };
    ifr.ifr_ifru.ifru_flags = flags | libc::IFF_UP as libc::c_short;
    // SAFETY: SIOCSIFFLAGS reads the name and flags in `ifr`, live for the
    // call.
    let r = unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS as _, &mut ifr) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Writes one sysctl of the tap; `what` names it for the error.
fn sysctl(path: &str, value: &str) -> anyhow::Result<()> {
    std::fs::write(path, value).with_context(|| format!("setting {path} to {value}"))
}

/// Whether an interface of that name exists.
fn exists(name: &str) -> bool {
    std::path::Path::new("/sys/class/net").join(name).exists()
}

impl KernelPort {
    /// Creates the tap `name` with `queues` queues (one per worker, at
    /// least one), sets its sysctls (module doc) and brings it up. Fails
    /// when an interface of that name already exists: lvsfwd never attaches
    /// to a device it did not create.
    pub fn create(name: &str, queues: usize) -> anyhow::Result<KernelPort> {
        if exists(name) {
            bail!("kernel port {name}: an interface of that name exists already");
        }
        let mut files = Vec::with_capacity(queues.max(1));
        for i in 0..queues.max(1) {
            files.push(
                open_queue(name)
                    .with_context(|| format!("kernel port {name}: opening tap queue {i}"))?,
            );
        }
        sysctl(&format!("/proc/sys/net/ipv4/conf/{name}/rp_filter"), "0")?;
        let all =
            std::fs::read_to_string("/proc/sys/net/ipv4/conf/all/rp_filter").unwrap_or_default();
        if all.trim() != "0" {
            log::warn!(
                "kernel port {name}: net.ipv4.conf.all.rp_filter is {}: the kernel will \
                 drop what lvsfwd hands it (an address-less tap fails every reverse-path \
                 check); set it to 0 (each interface keeps its own rp_filter)",
                all.trim()
            );
        }
        let v6 = format!("/proc/sys/net/ipv6/conf/{name}");
        if std::path::Path::new(&v6).exists() {
            sysctl(&format!("{v6}/addr_gen_mode"), "1")?;
            sysctl(&format!("{v6}/accept_ra"), "0")?;
            sysctl(&format!("{v6}/disable_ipv6"), "0")?;
        }
        let sock = ioctl_socket().context("kernel port: ioctl socket")?;
        let mac = hw_addr(&sock, name).with_context(|| format!("kernel port {name}: its MAC"))?;
        set_up(&sock, name).with_context(|| format!("kernel port {name}: bringing it up"))?;
        Ok(KernelPort {
            name: name.to_string(),
            mac,
            queues: files,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The tap's MAC: the destination of every frame written to it.
    pub fn mac(&self) -> MacAddr {
        self.mac
    }

    /// One [`KernelQueue`] per worker, in queue order, each counting into
    /// that worker's counters.
    pub fn into_queues(self, counters: &[Arc<WorkerCounters>]) -> Vec<KernelQueue> {
        let mac = self.mac;
        self.queues
            .into_iter()
            .zip(counters)
            .map(|(file, c)| KernelQueue {
                file,
                mac,
                counters: Arc::clone(c),
                sent: 0,
                failed: 0,
            })
            .collect()
    }
}

/// One worker's queue of the kernel port.
#[derive(Debug)]
pub struct KernelQueue {
    file: File,
    mac: MacAddr,
    counters: Arc<WorkerCounters>,
    sent: u64,
    failed: u64,
}

impl KernelQueue {
    /// Hands `frame` (a whole Ethernet frame, which this changes) to the
    /// kernel: its destination MAC becomes the tap's when it is unicast,
    /// then one non-blocking write. Counted either way; never blocks.
    pub fn give(&mut self, frame: &mut [u8]) {
        if let Some(dst) = frame.get_mut(0..6)
            && dst[0] & 1 == 0
        {
            dst.copy_from_slice(&self.mac);
        }
        match self.file.write(frame) {
            Ok(n) if n == frame.len() => {
                self.sent += 1;
                self.counters.to_kernel.store(self.sent, Ordering::Relaxed);
            }
            Ok(_) | Err(_) => {
                self.failed += 1;
                self.counters
                    .kernel_port_drop
                    .store(self.failed, Ordering::Relaxed);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_name_follows_the_nic_and_fits_ifnamsiz() {
        assert_eq!(port_name("eth0"), "lvsk-eth0");
        let long = port_name("enp0s31f6abcdefgh");
        assert_eq!(long, "lvsk-enp0s31f6a");
        assert_eq!(long.len(), libc::IFNAMSIZ - 1);
    }
}
