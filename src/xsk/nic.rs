//! Facts about the data-plane NIC the engine needs before it opens sockets.
//!
//! Everything here acts on the calling thread's network namespace (ioctls
//! resolve interface names there), like the engine's sockets.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

const SIOCETHTOOL: libc::c_ulong = 0x8946;
const ETHTOOL_GCHANNELS: u32 = 0x0000_003c;

/// `struct ethtool_channels` (linux/ethtool.h).
#[repr(C)]
#[derive(Default)]
struct EthtoolChannels {
    cmd: u32,
    max_rx: u32,
    max_tx: u32,
    max_other: u32,
    max_combined: u32,
    rx_count: u32,
    tx_count: u32,
    other_count: u32,
    combined_count: u32,
}

/// How many RX queues `ifname` has: its RX-only plus combined channels
/// (ethtool's `ETHTOOL_GCHANNELS`). A driver without channel reporting
/// falls back to counting `/sys/class/net/IF/queues/rx-*`, and then to 1.
pub fn rx_queue_count(ifname: &str) -> anyhow::Result<u32> {
    match ethtool_channels(ifname) {
        Ok(ch) => {
            let n = ch.rx_count + ch.combined_count;
            if n > 0 {
                return Ok(n);
            }
        }
        Err(e) if e.raw_os_error() == Some(libc::EOPNOTSUPP) => {}
        Err(e) => anyhow::bail!("{ifname}: reading its channels failed: {e}"),
    }
    let dir = Path::new("/sys/class/net").join(ifname).join("queues");
    let n = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .filter(|e| e.file_name().to_string_lossy().starts_with("rx-"))
                .count() as u32
        })
        .unwrap_or(0);
    Ok(n.max(1))
}

/// Whether frames received on `ifname` can carry a partial TCP/UDP
/// checksum (Linux's `CHECKSUM_PARTIAL`: the sender left the pseudo-header
/// sum for a NIC to finish), which the data plane must complete before
/// forwarding. Only a sender on the same host leaves one: a virtual device
/// (veth, tun/tap, macvlan... — no `device/driver` in sysfs) or a
/// paravirtual NIC whose host may hand over unfinished checksums
/// (virtio_net's `NEEDS_CSUM`, Xen netfront's `csum_blank`). A physical NIC
/// delivers frames as they were on the wire, checksums complete, and the
/// data plane skips the per-frame test for it. Unknown means true.
pub fn may_deliver_partial_csum(ifname: &str) -> bool {
    let link = Path::new("/sys/class/net")
        .join(ifname)
        .join("device")
        .join("driver");
    let driver = std::fs::read_link(link).ok();
    driver_may_deliver_partial_csum(
        driver
            .as_deref()
            .map(|d| d.file_name().and_then(|n| n.to_str()).unwrap_or("")),
    )
}

/// [`may_deliver_partial_csum`] from the NIC's driver name (`None`: no
/// driver, a virtual device).
fn driver_may_deliver_partial_csum(driver: Option<&str>) -> bool {
    match driver {
        None | Some("") => true,
        Some(d) => matches!(d, "virtio_net" | "xen_netfront" | "vif"),
    }
}

fn ethtool_channels(ifname: &str) -> io::Result<EthtoolChannels> {
    let name = ifname.as_bytes();
    if name.is_empty() || name.len() >= libc::IFNAMSIZ || name.contains(&0) {
        return Err(io::Error::from_raw_os_error(libc::ENODEV));
    }
    // SAFETY: plain socket creation; the result is checked.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just created and is owned by nothing else.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    let mut ch = EthtoolChannels {
        cmd: ETHTOOL_GCHANNELS,
        ..EthtoolChannels::default()
    };
    // SAFETY: all-zero is a valid ifreq (integers, arrays and a union of
    // them and pointers).
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    for (d, s) in ifr.ifr_name.iter_mut().zip(name) {
        *d = *s as libc::c_char;
    }
    ifr.ifr_ifru.ifru_data = (&mut ch as *mut EthtoolChannels).cast();
    // SAFETY: SIOCETHTOOL reads the NUL-terminated name in `ifr` and writes
    // one `ethtool_channels` through `ifru_data`, which points at `ch`, live
    // for the call.
    let ret = unsafe { libc::ioctl(sock.as_raw_fd(), SIOCETHTOOL as _, &mut ifr) };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(ch)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn virtual_and_paravirtual_nics_may_deliver_partial_checksums() {
        assert!(driver_may_deliver_partial_csum(None), "veth, tun, macvlan");
        assert!(driver_may_deliver_partial_csum(Some("virtio_net")));
        assert!(driver_may_deliver_partial_csum(Some("xen_netfront")));
        assert!(!driver_may_deliver_partial_csum(Some("ice")));
        assert!(!driver_may_deliver_partial_csum(Some("mlx5_core")));
        // lo has no device driver: a virtual device.
        assert!(may_deliver_partial_csum("lo"));
        assert!(may_deliver_partial_csum("lfno-such-nic"));
    }
}
