//! lvsfwd's XDP program (bpf/xdp_lvsfwd.c, compiled by build.rs and embedded
//! here) and its loader.
//!
//! The program sorts every frame received on the data-plane NIC: what the
//! balancer must see (traffic to a virtual service, NAT/FULLNAT replies,
//! ICMP errors and fragments about the VIPs) is redirected into the AF_XDP
//! socket of its rx queue through the `xsks` XSKMAP; everything else (ARP,
//! ping, SSH, VRRP, health-check replies, the director's own traffic) goes
//! to the kernel with `XDP_PASS`. The exact rules are in the C file's header
//! comment; [`Filter`] is what the control plane feeds them.
//!
//! Map layout (kept in step with `struct lf_key` in the C file): every key
//! is 20 bytes: `addr[16]` (IPv4 in the first 4 bytes, the rest zero),
//! `port` as 2 bytes in **network byte order** (0 = any port / an
//! address-only key), `proto` (IP protocol number, 0 in address-only keys),
//! `family` (4 or 6). Maps: `services` and `nat_rs` (TCP/UDP keys, value one
//! byte), `addrs` (address-only keys, value a native-endian `u32` bit set of
//! roles: VIP, FULLNAT local, own, NAT real server), `xsks` (rx queue ->
//! AF_XDP socket) and `counters` (per-CPU `u64`s, see [`ProgCounters`]).
//!
//! Invariants: [`XdpObject::set_filter`] never removes a key that is in both
//! the old and the new filter, so a reconfiguration never sends a live
//! service's frames to the kernel; a program attached by an [`XdpProgram`]
//! is detached when it is dropped, but only while it is still the program on
//! the interface (a newer lvsfwd that replaced it keeps its own).
//!
//! Deliberately not here: the AF_XDP sockets themselves (the engine), and
//! learning the director's own addresses (the control plane).

use std::collections::BTreeMap;
use std::collections::BTreeSet;
use std::ffi::{CString, OsStr};
use std::fs::File;
use std::net::IpAddr;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::path::Path;

use anyhow::{Context, Result, anyhow, bail};
use libbpf_rs::{MapCore, MapFlags, Object, ObjectBuilder, Xdp, XdpFlags};

use crate::config::XdpMode;
use crate::service::{FwdMethod, Protocol, ServiceSpec};

/// The compiled BPF object (see build.rs).
static OBJECT: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/xdp_lvsfwd.o"));

const PROG_NAME: &str = "xdp_lvsfwd";
const KEY_LEN: usize = 20;

/// Address roles in the `addrs` map (`enum addr_role` in the C file).
const ADDR_VIP: u32 = 1;
const ADDR_LOCAL: u32 = 2;
const ADDR_OWN: u32 = 4;
const ADDR_NAT_RS: u32 = 8;

/// Indices of the `counters` map (`enum counter` in the C file).
const C_REDIR_SERVICE: u32 = 0;
const C_REDIR_REPLY: u32 = 1;
const C_REDIR_ICMP: u32 = 2;
const C_REDIR_FRAGMENT: u32 = 3;
const C_PASSED: u32 = 4;
const C_REDIRECT_FAILED: u32 = 5;

/// What the XDP program redirects, in the control plane's terms.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Filter {
    /// Virtual services (port 0 = every port of that address).
    pub services: Vec<(Protocol, IpAddr, u16)>,
    /// Every virtual address (fragments and ICMP errors to them).
    pub vips: Vec<IpAddr>,
    /// NAT (Masq) real servers: their replies come back through us.
    pub nat_real_servers: Vec<(Protocol, IpAddr, u16)>,
    /// FULLNAT local addresses: real servers answer to them.
    pub local_addrs: Vec<IpAddr>,
    /// The director's own addresses: traffic to them stays with the kernel
    /// unless it is for a virtual service.
    pub own_addrs: Vec<IpAddr>,
}

impl Filter {
    /// The filter for a service table: every service key, every VIP, the
    /// real servers forwarded with NAT, every FULLNAT local address, and
    /// `own_addrs`. Each list is sorted and free of duplicates.
    pub fn from_specs(specs: &[ServiceSpec], own_addrs: &[IpAddr]) -> Filter {
        let mut services = BTreeSet::new();
        let mut vips = BTreeSet::new();
        let mut nat = BTreeSet::new();
        let mut local = BTreeSet::new();
        const BOTH: [Protocol; 2] = [Protocol::Tcp, Protocol::Udp];
        for s in specs {
            // A fwmark service's frames are those its rules match (any
            // protocol: both; any port: 0), of either protocol.
            let protos: &[Protocol] = if s.key.is_fwmark() {
                for m in &s.fwmark_matches {
                    for p in m.proto.as_ref().map_or(&BOTH[..], std::slice::from_ref) {
                        services.insert((*p, m.addr, m.port.unwrap_or(0)));
                    }
                    vips.insert(m.addr);
                }
                &BOTH
            } else {
                services.insert((s.key.proto, s.key.addr, s.key.port));
                vips.insert(s.key.addr);
                std::slice::from_ref(&s.key.proto)
            };
            for d in &s.dests {
                if d.fwd == FwdMethod::Masq {
                    nat.extend(protos.iter().map(|p| (*p, d.addr, d.port)));
                }
            }
            local.extend(s.local_addrs.iter().copied());
        }
        let own: BTreeSet<IpAddr> = own_addrs.iter().copied().collect();
        Filter {
            services: services.into_iter().collect(),
            vips: vips.into_iter().collect(),
            nat_real_servers: nat.into_iter().collect(),
            local_addrs: local.into_iter().collect(),
            own_addrs: own.into_iter().collect(),
        }
    }
}

impl Filter {
    /// Also FULLNAT local addresses `more` (another director's, which this
    /// one answers for when it dies: `[announce] peer_local_address`).
    pub fn with_local_addrs<'a>(mut self, more: impl IntoIterator<Item = &'a IpAddr>) -> Filter {
        let all: BTreeSet<IpAddr> = self
            .local_addrs
            .drain(..)
            .chain(more.into_iter().copied())
            .collect();
        self.local_addrs = all.into_iter().collect();
        self
    }
}

/// The map key shared with the C program (see the module doc).
fn key(proto: u8, addr: IpAddr, port: u16) -> [u8; KEY_LEN] {
    let mut k = [0u8; KEY_LEN];
    match addr {
        IpAddr::V4(a) => {
            k[..4].copy_from_slice(&a.octets());
            k[19] = 4;
        }
        IpAddr::V6(a) => {
            k[..16].copy_from_slice(&a.octets());
            k[19] = 6;
        }
    }
    k[16..18].copy_from_slice(&port.to_be_bytes());
    k[18] = proto;
    k
}

/// The keys of `existing` that `want` does not hold: the only ones an
/// update deletes (a key in both is updated in place, never deleted).
fn stale_keys(
    existing: impl Iterator<Item = Vec<u8>>,
    want: &BTreeMap<[u8; KEY_LEN], Vec<u8>>,
) -> Vec<Vec<u8>> {
    existing
        .filter(|k| {
            <[u8; KEY_LEN]>::try_from(k.as_slice()).map_or(true, |k| !want.contains_key(&k))
        })
        .collect()
}

/// Per-decision frame counts of the XDP program, summed over CPUs.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct ProgCounters {
    /// To a virtual service.
    pub redirected_service: u64,
    /// NAT replies from a real server, or anything to a FULLNAT local
    /// address.
    pub redirected_reply: u64,
    /// ICMP errors about the balancer's traffic.
    pub redirected_icmp: u64,
    /// IP fragments to a VIP or local address.
    pub redirected_fragment: u64,
    /// Handed to the kernel by decision.
    pub passed: u64,
    /// Meant for AF_XDP but no socket served the rx queue, so handed to the
    /// kernel; counted in addition to the redirect decision.
    pub redirect_failed: u64,
}

/// How the program is attached.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum AttachMode {
    /// In the driver (`XDP_FLAGS_DRV_MODE`).
    Native,
    /// In the generic skb path (`XDP_FLAGS_SKB_MODE`).
    Generic,
}

impl AttachMode {
    fn flags(self) -> XdpFlags {
        match self {
            AttachMode::Native => XdpFlags::DRV_MODE,
            AttachMode::Generic => XdpFlags::SKB_MODE,
        }
    }
    fn name(self) -> &'static str {
        match self {
            AttachMode::Native => "native",
            AttachMode::Generic => "generic",
        }
    }
}

/// The loaded program and its maps, not attached to any interface.
#[derive(Debug)]
pub struct XdpObject {
    obj: Object,
}

impl XdpObject {
    /// Loads the embedded object into the kernel (needs CAP_BPF / root).
    pub fn load() -> Result<XdpObject> {
        let open = ObjectBuilder::default()
            .open_memory(OBJECT)
            .context("opening lvsfwd's embedded XDP object")?;
        let obj = open.load().context(
            "loading lvsfwd's XDP program into the kernel (root, or CAP_BPF, CAP_PERFMON and \
                 CAP_NET_ADMIN, needed)",
        )?;
        let x = XdpObject { obj };
        x.prog_fd_check()?;
        Ok(x)
    }

    fn prog_fd_check(&self) -> Result<()> {
        self.obj
            .progs()
            .find(|p| p.name() == OsStr::new(PROG_NAME))
            .map(|_| ())
            .ok_or_else(|| anyhow!("the XDP object has no program `{PROG_NAME}`"))
    }

    fn prog(&self) -> libbpf_rs::Program<'_> {
        self.obj
            .progs()
            .find(|p| p.name() == OsStr::new(PROG_NAME))
            .expect("checked in load")
    }

    fn map(&self, name: &str) -> Result<libbpf_rs::Map<'_>> {
        self.obj
            .maps()
            .find(|m| m.name() == OsStr::new(name))
            .ok_or_else(|| anyhow!("the XDP object has no map `{name}`"))
    }

    /// The kernel's id of the loaded program (as `ip link` and `bpftool`
    /// show it).
    pub fn prog_id(&self) -> Result<u32> {
        libbpf_rs::Program::id_from_fd(self.prog().as_fd()).context("querying the XDP program id")
    }

    /// Makes the maps hold exactly `f`: keys no longer present are deleted
    /// first, then every key of `f` is inserted or updated in place. A key
    /// present before and after is never absent in between.
    pub fn set_filter(&mut self, f: &Filter) -> Result<()> {
        let mut services = BTreeMap::new();
        for &(proto, addr, port) in &f.services {
            services.insert(key(proto.number(), addr, port), vec![1u8]);
        }
        let mut nat = BTreeMap::new();
        for &(proto, addr, port) in &f.nat_real_servers {
            nat.insert(key(proto.number(), addr, port), vec![1u8]);
        }
        let mut roles: BTreeMap<[u8; KEY_LEN], u32> = BTreeMap::new();
        let mut add_role = |addrs: &mut dyn Iterator<Item = IpAddr>, role: u32| {
            for a in addrs {
                *roles.entry(key(0, a, 0)).or_default() |= role;
            }
        };
        add_role(&mut f.vips.iter().copied(), ADDR_VIP);
        add_role(&mut f.local_addrs.iter().copied(), ADDR_LOCAL);
        add_role(&mut f.own_addrs.iter().copied(), ADDR_OWN);
        add_role(
            &mut f.nat_real_servers.iter().map(|&(_, a, _)| a),
            ADDR_NAT_RS,
        );
        let addrs: BTreeMap<[u8; KEY_LEN], Vec<u8>> = roles
            .into_iter()
            .map(|(k, r)| (k, r.to_ne_bytes().to_vec()))
            .collect();

        // Check every capacity before touching any map, so a filter that
        // cannot fit leaves the previous one whole.
        for (name, want) in [("services", &services), ("nat_rs", &nat), ("addrs", &addrs)] {
            let max = self.map(name)?.max_entries() as usize;
            if want.len() > max {
                bail!(
                    "XDP map `{name}` holds at most {max} entries, the filter needs {}",
                    want.len()
                );
            }
        }
        self.sync_map("services", &services)?;
        self.sync_map("nat_rs", &nat)?;
        self.sync_map("addrs", &addrs)?;
        Ok(())
    }

    fn sync_map(&self, name: &str, want: &BTreeMap<[u8; KEY_LEN], Vec<u8>>) -> Result<()> {
        let map = self.map(name)?;
        // Collected first: deleting while iterating makes the kernel's
        // next-key walk restart or skip.
        let stale = stale_keys(map.keys(), want);
        for k in stale {
            match map.delete(&k) {
                Ok(()) => {}
                Err(e) if e.kind() == libbpf_rs::ErrorKind::NotFound => {}
                Err(e) => return Err(e).with_context(|| format!("deleting from XDP map `{name}`")),
            }
        }
        for (k, v) in want {
            map.update(k, v, MapFlags::ANY)
                .with_context(|| format!("updating XDP map `{name}`"))?;
        }
        Ok(())
    }

    /// Points rx queue `queue` at the AF_XDP socket `fd`.
    pub fn register_socket(&mut self, queue: u32, fd: RawFd) -> Result<()> {
        let map = self.map("xsks")?;
        if queue >= map.max_entries() {
            bail!(
                "rx queue {queue} is beyond the XSKMAP's {} entries",
                map.max_entries()
            );
        }
        let fd = u32::try_from(fd).map_err(|_| anyhow!("invalid socket fd {fd}"))?;
        map.update(&queue.to_ne_bytes(), &fd.to_ne_bytes(), MapFlags::ANY)
            .with_context(|| format!("registering AF_XDP socket {fd} for rx queue {queue}"))
    }

    /// The decision counters, summed over CPUs.
    pub fn counters(&self) -> Result<ProgCounters> {
        let map = self.map("counters")?;
        let read = |idx: u32| -> Result<u64> {
            let per_cpu = map
                .lookup_percpu(&idx.to_ne_bytes(), MapFlags::ANY)
                .context("reading the XDP counters")?
                .ok_or_else(|| anyhow!("XDP counter {idx} missing"))?;
            Ok(per_cpu
                .iter()
                .filter_map(|v| v.as_slice().try_into().ok())
                .map(u64::from_ne_bytes)
                .fold(0u64, u64::wrapping_add))
        };
        Ok(ProgCounters {
            redirected_service: read(C_REDIR_SERVICE)?,
            redirected_reply: read(C_REDIR_REPLY)?,
            redirected_icmp: read(C_REDIR_ICMP)?,
            redirected_fragment: read(C_REDIR_FRAGMENT)?,
            passed: read(C_PASSED)?,
            redirect_failed: read(C_REDIRECT_FAILED)?,
        })
    }

    /// Runs the program once over `frame` with `BPF_PROG_TEST_RUN`; see
    /// [`ProgRunner::run`].
    pub fn test_run(&self, frame: &[u8]) -> Result<u32> {
        self.runner()?.run(frame)
    }

    /// A handle that runs this program with `BPF_PROG_TEST_RUN` from any
    /// thread, while the maps are being updated through `self`.
    pub fn runner(&self) -> Result<ProgRunner> {
        let fd = self
            .prog()
            .as_fd()
            .try_clone_to_owned()
            .context("duplicating the XDP program fd")?;
        Ok(ProgRunner { fd })
    }

    /// Attaches in `mode`, replacing whatever program is already on the
    /// interface: in the same mode in one step; in the other mode by
    /// detaching it first (the kernel refuses native and generic together)
    /// and putting it back if this attach then fails, so a failed attach
    /// leaves the interface as it was.
    fn attach_in(&self, ifindex: u32, ifname: &str, mode: AttachMode) -> Result<()> {
        let prog = self.prog();
        let xdp = Xdp::new(prog.as_fd());
        let idx = ifindex as i32;
        let q = xdp
            .query(idx, XdpFlags::NONE)
            .with_context(|| format!("querying XDP programs on {ifname}"))?;
        let (same, other, other_mode) = match mode {
            AttachMode::Native => (q.drv_prog_id, q.skb_prog_id, AttachMode::Generic),
            AttachMode::Generic => (q.skb_prog_id, q.drv_prog_id, AttachMode::Native),
        };
        let what = || format!("attaching XDP in {} mode to {ifname}", mode.name());
        if same != 0 {
            log::warn!(
                "{ifname}: replacing XDP program id {same} already attached in {} mode",
                mode.name()
            );
        }
        if other == 0 {
            // Without XDP_FLAGS_UPDATE_IF_NOEXIST the kernel swaps programs
            // of the same mode in one step.
            return xdp.attach(idx, mode.flags()).with_context(what);
        }
        log::warn!(
            "{ifname}: detaching XDP program id {other} found in {} mode to attach in {} mode",
            other_mode.name(),
            mode.name()
        );
        xdp.detach(idx, other_mode.flags())
            .with_context(|| format!("detaching XDP program id {other} from {ifname}"))?;
        let Err(e) = xdp.attach(idx, mode.flags()) else {
            return Ok(());
        };
        let restored = libbpf_rs::Program::fd_from_id(other).and_then(|fd| {
            Xdp::new(fd.as_fd()).attach(idx, other_mode.flags() | XdpFlags::UPDATE_IF_NOEXIST)
        });
        if let Err(r) = restored {
            log::warn!("{ifname}: could not put XDP program id {other} back: {r}");
        }
        Err(e).with_context(what)
    }

    /// Detaches this program from `ifindex` if it is still the one attached
    /// in `mode` (XDP_FLAGS_REPLACE with this program as the expected one).
    fn detach_from(&self, ifindex: u32, ifname: &str, mode: AttachMode) -> Result<()> {
        let prog = self.prog();
        let opts = libbpf_rs::libbpf_sys::bpf_xdp_attach_opts {
            sz: std::mem::size_of::<libbpf_rs::libbpf_sys::bpf_xdp_attach_opts>() as _,
            old_prog_fd: prog.as_fd().as_raw_fd(),
            ..Default::default()
        };
        // SAFETY: `opts` is a fully initialised bpf_xdp_attach_opts whose
        // `sz` is its own size and which outlives the call; `old_prog_fd` is
        // the fd of this object's program, open as long as `self` lives.
        let rc = unsafe {
            libbpf_rs::libbpf_sys::bpf_xdp_detach(ifindex as i32, mode.flags().bits(), &opts)
        };
        if rc < 0 {
            let err = std::io::Error::from_raw_os_error(-rc);
            if -rc == libc::EEXIST {
                bail!(
                    "the XDP program on {ifname} is no longer lvsfwd's (replaced); left in place"
                );
            }
            return Err(err).with_context(|| format!("detaching XDP from {ifname}"));
        }
        Ok(())
    }
}

/// Runs the loaded program over frames with `BPF_PROG_TEST_RUN`, for tests
/// and self-checks; it holds its own reference to the program.
#[derive(Debug)]
pub struct ProgRunner {
    fd: OwnedFd,
}

impl ProgRunner {
    /// Runs the program once over `frame` (rx queue 0, no interface) and
    /// returns its XDP action. The counters count the run like a received
    /// frame. The kernel refuses frames shorter than an Ethernet header or
    /// longer than a page minus XDP's headroom.
    pub fn run(&self, frame: &[u8]) -> Result<u32> {
        let mut opts = libbpf_rs::libbpf_sys::bpf_test_run_opts {
            sz: std::mem::size_of::<libbpf_rs::libbpf_sys::bpf_test_run_opts>() as _,
            data_in: frame.as_ptr().cast(),
            data_size_in: u32::try_from(frame.len()).context("frame too long")?,
            repeat: 1,
            ..Default::default()
        };
        // SAFETY: `opts` is a fully initialised bpf_test_run_opts whose `sz`
        // is its own size; `data_in` points at `frame`, which outlives the
        // call and is only read (no data_out/ctx buffers are given, so the
        // kernel writes nothing through pointers of ours); `self.fd` is an
        // open BPF program fd.
        let rc = unsafe {
            libbpf_rs::libbpf_sys::bpf_prog_test_run_opts(self.fd.as_raw_fd(), &mut opts)
        };
        if rc < 0 {
            return Err(std::io::Error::from_raw_os_error(-rc))
                .context("BPF_PROG_TEST_RUN of the XDP program");
        }
        Ok(opts.retval)
    }
}

/// lvsfwd's XDP program attached to the data-plane NIC.
#[derive(Debug)]
pub struct XdpProgram {
    obj: XdpObject,
    ifindex: u32,
    /// The interface's name (messages name interfaces by name).
    ifname: String,
    mode: AttachMode,
    attached: bool,
}

impl XdpProgram {
    /// Loads the program, and attaches it to `ifname` in `mode`
    /// (`Auto` = native, falling back to generic with a logged reason). An
    /// XDP program already attached to the interface (e.g. left by a crashed
    /// lvsfwd) is replaced, and this is logged.
    pub fn attach(ifname: &str, mode: XdpMode) -> Result<XdpProgram> {
        let obj = XdpObject::load()?;
        let ifindex = ifindex_of(ifname)?;
        let mode = match mode {
            XdpMode::Native => {
                obj.attach_in(ifindex, ifname, AttachMode::Native)?;
                AttachMode::Native
            }
            XdpMode::Generic => {
                obj.attach_in(ifindex, ifname, AttachMode::Generic)?;
                AttachMode::Generic
            }
            XdpMode::Auto => match obj.attach_in(ifindex, ifname, AttachMode::Native) {
                Ok(()) => AttachMode::Native,
                Err(e) => {
                    log::warn!(
                        "{ifname}: native XDP unavailable ({e:#}); falling back to generic mode"
                    );
                    obj.attach_in(ifindex, ifname, AttachMode::Generic)?;
                    AttachMode::Generic
                }
            },
        };
        log::info!(
            "{ifname}: lvsfwd's XDP program attached in {} mode",
            mode.name()
        );
        Ok(XdpProgram {
            obj,
            ifindex,
            ifname: ifname.to_string(),
            mode,
            attached: true,
        })
    }

    pub fn mode(&self) -> AttachMode {
        self.mode
    }

    pub fn ifindex(&self) -> u32 {
        self.ifindex
    }

    /// The loaded program and its maps.
    pub fn object(&self) -> &XdpObject {
        &self.obj
    }

    /// See [`XdpObject::set_filter`].
    pub fn set_filter(&mut self, f: &Filter) -> Result<()> {
        self.obj.set_filter(f)
    }

    /// Points rx queue `queue` at AF_XDP socket `fd` (XSKMAP entry).
    pub fn register_socket(&mut self, queue: u32, fd: RawFd) -> Result<()> {
        self.obj.register_socket(queue, fd)
    }

    /// The decision counters, summed over CPUs.
    pub fn counters(&self) -> Result<ProgCounters> {
        self.obj.counters()
    }

    /// Detaches the program from the interface (also done best-effort on
    /// drop). Fails, leaving it in place, if another program has replaced
    /// it since.
    pub fn detach(mut self) -> Result<()> {
        self.attached = false;
        self.obj.detach_from(self.ifindex, &self.ifname, self.mode)
    }
}

impl Drop for XdpProgram {
    fn drop(&mut self) {
        if self.attached
            && let Err(e) = self.obj.detach_from(self.ifindex, &self.ifname, self.mode)
        {
            log::warn!("detaching lvsfwd's XDP program on drop: {e:#}");
        }
    }
}

/// The index of interface `name` in the calling thread's network namespace.
pub fn ifindex_of(name: &str) -> Result<u32> {
    let c = CString::new(name).map_err(|_| anyhow!("interface name {name:?} contains NUL"))?;
    // SAFETY: `c` is a valid NUL-terminated string that outlives the call;
    // if_nametoindex only reads it.
    let idx = unsafe { libc::if_nametoindex(c.as_ptr()) };
    if idx == 0 {
        return Err(std::io::Error::last_os_error())
            .with_context(|| format!("no interface named {name}"));
    }
    Ok(idx)
}

/// Moves the calling thread (only it) into the network namespace at `path`
/// (e.g. /var/run/netns/NAME), so that interface lookups and XDP attaches
/// from this thread see that namespace's interfaces.
pub fn enter_netns(path: &Path) -> Result<()> {
    let f = File::open(path).with_context(|| format!("opening netns {}", path.display()))?;
    // SAFETY: `f` is an open namespace file descriptor for the duration of
    // the call; setns with CLONE_NEWNET changes only the calling thread's
    // network namespace and touches no memory of ours.
    let rc = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error())
            .with_context(|| format!("entering netns {}", path.display()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sched::SchedKind;
    use crate::service::{DestSpec, ServiceKey};

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn dest(addr: &str, port: u16, fwd: FwdMethod) -> DestSpec {
        DestSpec::new(ip(addr), port, fwd)
    }

    fn spec(proto: Protocol, vip: &str, port: u16, dests: Vec<DestSpec>) -> ServiceSpec {
        let key = ServiceKey {
            proto,
            addr: ip(vip),
            port,
            fwmark: 0,
        };
        ServiceSpec::new(key, SchedKind::Rr, dests)
    }

    #[test]
    fn a_fwmark_service_is_redirected_by_its_rules() {
        use crate::service::FwmarkMatch;
        let mut f1 = ServiceSpec::new(
            ServiceKey::fwmark(1, false),
            SchedKind::Rr,
            vec![dest("198.18.1.21", 0, FwdMethod::Masq)],
        );
        f1.fwmark_matches = vec![
            FwmarkMatch {
                proto: Some(Protocol::Tcp),
                addr: ip("198.18.0.10"),
                port: Some(443),
            },
            FwmarkMatch {
                proto: None,
                addr: ip("198.18.0.11"),
                port: None,
            },
        ];
        let f = Filter::from_specs(&[f1], &[]);
        // No 0.0.0.0 key: the rules' frames, both protocols where a rule
        // names none, every port (0) where it names none.
        assert_eq!(
            f.services,
            vec![
                (Protocol::Tcp, ip("198.18.0.10"), 443),
                (Protocol::Tcp, ip("198.18.0.11"), 0),
                (Protocol::Udp, ip("198.18.0.11"), 0),
            ]
        );
        assert_eq!(f.vips, vec![ip("198.18.0.10"), ip("198.18.0.11")]);
        // A NAT server's replies, of either protocol, from any port.
        assert_eq!(
            f.nat_real_servers,
            vec![
                (Protocol::Tcp, ip("198.18.1.21"), 0),
                (Protocol::Udp, ip("198.18.1.21"), 0),
            ]
        );
    }

    #[test]
    fn filter_from_specs_sorts_roles_by_forwarding_method() {
        let mut full = spec(
            Protocol::Tcp,
            "198.18.0.12",
            443,
            vec![dest("198.18.1.41", 8443, FwdMethod::FullNat)],
        );
        full.local_addrs = vec![ip("198.18.2.2"), ip("198.18.2.1")];
        let specs = vec![
            spec(
                Protocol::Tcp,
                "198.18.0.10",
                80,
                vec![
                    dest("198.18.1.21", 8080, FwdMethod::Masq),
                    dest("198.18.1.31", 80, FwdMethod::Route),
                    dest("198.18.1.32", 80, FwdMethod::Tunnel),
                ],
            ),
            // Same VIP, another protocol: one VIP entry, two services.
            spec(
                Protocol::Udp,
                "198.18.0.10",
                53,
                vec![dest("198.18.1.21", 5353, FwdMethod::Masq)],
            ),
            full,
        ];
        let own = [ip("198.18.0.2"), ip("2001:2::2"), ip("198.18.0.2")];
        let f = Filter::from_specs(&specs, &own);
        assert_eq!(
            f.services,
            vec![
                (Protocol::Tcp, ip("198.18.0.10"), 80),
                (Protocol::Tcp, ip("198.18.0.12"), 443),
                (Protocol::Udp, ip("198.18.0.10"), 53),
            ]
        );
        assert_eq!(f.vips, vec![ip("198.18.0.10"), ip("198.18.0.12")]);
        // Only Masq dests: DR/TUN replies bypass us, FULLNAT ones come
        // back to a local address.
        assert_eq!(
            f.nat_real_servers,
            vec![
                (Protocol::Tcp, ip("198.18.1.21"), 8080),
                (Protocol::Udp, ip("198.18.1.21"), 5353),
            ]
        );
        assert_eq!(f.local_addrs, vec![ip("198.18.2.1"), ip("198.18.2.2")]);
        // A peer's local addresses join them, sorted, once each.
        let g = f
            .clone()
            .with_local_addrs(&[ip("198.18.2.9"), ip("198.18.2.1")]);
        assert_eq!(
            g.local_addrs,
            vec![ip("198.18.2.1"), ip("198.18.2.2"), ip("198.18.2.9")]
        );
        assert_eq!(f.own_addrs, vec![ip("198.18.0.2"), ip("2001:2::2")]);
    }

    #[test]
    fn key_layout_matches_the_c_struct() {
        let k = key(6, ip("198.18.0.10"), 80);
        let mut want = [0u8; KEY_LEN];
        want[..4].copy_from_slice(&[198, 18, 0, 10]);
        want[16..18].copy_from_slice(&[0, 80]); // network order
        want[18] = 6;
        want[19] = 4;
        assert_eq!(k, want);

        let k6 = key(17, ip("2001:2::10"), 0x1234);
        assert_eq!(&k6[..16], &ip6_octets("2001:2::10"));
        assert_eq!(&k6[16..], &[0x12, 0x34, 17, 6]);

        let addr_only = key(0, ip("198.18.0.2"), 0);
        assert_eq!(&addr_only[16..], &[0, 0, 0, 4]);
    }

    #[test]
    fn an_update_deletes_only_keys_the_new_filter_lacks() {
        let a = key(6, ip("198.18.0.10"), 80);
        let b = key(17, ip("198.18.0.10"), 53);
        let c = key(0, ip("198.18.0.2"), 0);
        let d = key(6, ip("2001:2::10"), 443);
        let want: BTreeMap<_, _> = [(b, vec![1u8]), (c, vec![4u8]), (d, vec![1u8])]
            .into_iter()
            .collect();
        // `c` changes value and `b` stays: neither is deleted.
        let existing = [a.to_vec(), b.to_vec(), c.to_vec()];
        assert_eq!(stale_keys(existing.into_iter(), &want), vec![a.to_vec()]);
        assert!(stale_keys(std::iter::empty(), &want).is_empty());
        // A key of a foreign size cannot be one of ours.
        assert_eq!(
            stale_keys([vec![1u8, 2]].into_iter(), &want),
            vec![vec![1u8, 2]]
        );
    }

    fn ip6_octets(s: &str) -> [u8; 16] {
        s.parse::<std::net::Ipv6Addr>().unwrap().octets()
    }

    #[test]
    fn embedded_object_is_a_bpf_elf() {
        // ELF, 64-bit, machine EM_BPF (247).
        assert_eq!(&OBJECT[..4], b"\x7fELF");
        assert_eq!(OBJECT[4], 2);
        assert_eq!(u16::from_le_bytes([OBJECT[18], OBJECT[19]]), 247);
    }
}
