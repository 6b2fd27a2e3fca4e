//! A send-only AF_PACKET socket: complete Ethernet frames out of one
//! interface (VRRP's gratuitous ARPs and unsolicited neighbour
//! advertisements, which no IP socket can produce).
//!
//! Here rather than in the control plane because the link-layer address
//! (`sockaddr_ll`) has no safe constructor in std, socket2 or nix; the
//! unsafe surface is one `socket(2)` and one `sendto(2)` call.
//!
//! Tested end to end by the VRRP rig tests (tests/rig_vrrp.rs), which see
//! the announcements arrive: a unit test would have to send on a real
//! interface of the test's own namespace.
//!
//! Invariants: the socket is opened with protocol 0, so the kernel delivers
//! no frames to it (nothing to drain); the descriptor is owned and closed on
//! drop. Frames shorter than an Ethernet header are refused before the
//! system call.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// Sends frames out of one interface.
#[derive(Debug)]
pub struct PacketSender {
    fd: OwnedFd,
    ifindex: i32,
}

impl PacketSender {
    /// A sender on interface `ifindex` (of the caller's network namespace).
    pub fn open(ifindex: u32) -> io::Result<PacketSender> {
        let ifindex = i32::try_from(ifindex)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "interface index"))?;
        // SAFETY: socket(2) takes no pointers; a negative return is an error
        // and nothing is owned then.
        let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` was just returned by socket(2), is open, and nothing
        // else owns it.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(PacketSender { fd, ifindex })
    }

    /// Sends one complete Ethernet frame (destination MAC first).
    pub fn send(&self, frame: &[u8]) -> io::Result<()> {
        let (Some(dst), Some(ethertype)) = (frame.get(0..6), frame.get(12..14)) else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "frame shorter than an Ethernet header",
            ));
        };
        // SAFETY: sockaddr_ll is a plain C struct for which all-zero bytes
        // are a valid value.
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        // Network byte order, as the kernel expects: the frame's own bytes.
        sll.sll_protocol = u16::from_ne_bytes([ethertype[0], ethertype[1]]);
        sll.sll_ifindex = self.ifindex;
        sll.sll_halen = 6;
        sll.sll_addr[..6].copy_from_slice(dst);
        // SAFETY: `frame` is a live slice whose pointer and length are passed
        // together; `sll` lives across the call and its exact size is given;
        // the kernel reads both and writes neither.
        let n = unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                frame.as_ptr().cast(),
                frame.len(),
                0,
                (&sll as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        if n as usize != frame.len() {
            return Err(io::Error::new(
                io::ErrorKind::WriteZero,
                format!("sent {n} of {} bytes", frame.len()),
            ));
        }
        Ok(())
    }
}
