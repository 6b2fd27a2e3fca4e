//! Scheduling a new connection: the scheduler call, persistence templates
//! and the FULLNAT local address and port.

use std::net::IpAddr;
use std::time::Duration;

use super::{ConnTable, FTP_PORT, KIND_TPL, Tuple};
use crate::conn::{
    Conn, ConnId, ConnState, Direction, F_INACTIVE, F_NO_OUTPUT, F_ONE_PACKET, F_TEMPLATE,
    F_TPL_INVALID, F_TPL_LINGER, F_USED, LPORT_TRIES, NO_LINK, NewFlow, ScheduleError,
    TEMPLATE_LINGER,
};
use crate::sched::SchedInput;
use crate::service::{DestRef, FwdMethod, Protocol, Service, ServiceTable};
use crate::time::Timestamp;

/// The client network a template is keyed by (`svc->netmask`).
fn mask_addr(a: IpAddr, prefix: u8) -> IpAddr {
    match a {
        IpAddr::V4(v) => {
            let p = u32::from(prefix.min(32));
            let m = if p == 0 { 0 } else { u32::MAX << (32 - p) };
            IpAddr::V4((u32::from(v) & m).into())
        }
        IpAddr::V6(v) => {
            let p = u32::from(prefix.min(128));
            let m = if p == 0 { 0 } else { u128::MAX << (128 - p) };
            IpAddr::V6((u128::from(v) & m).into())
        }
    }
}

/// The address a fwmark service's templates are keyed by: the mark in the
/// first 32 bits, as `ip_vs_sched_persist` fills `vaddr` (`.ip =
/// htonl(svc->fwmark)`).
pub(crate) fn fwmark_addr(mark: u32, v6: bool) -> IpAddr {
    if v6 {
        IpAddr::V6((u128::from(mark) << 96).into())
    } else {
        IpAddr::V4(mark.into())
    }
}

/// A persistence template's key: `<proto, snet, 0, vaddr, vport>`, or for a
/// fwmark service `<IP, snet, 0, mark, 0>` so that one template covers
/// every port and protocol of the mark (`IPPROTO_IP` has no variant here:
/// the nominal `Tcp` of fwmark keys stands for it).
fn template_tuple(flow: &NewFlow, fwmark: u32, snet: IpAddr, tvport: u16) -> Tuple {
    if fwmark != 0 {
        Tuple::new(
            Protocol::Tcp,
            snet,
            0,
            fwmark_addr(fwmark, snet.is_ipv6()),
            0,
        )
    } else {
        Tuple::new(flow.proto, snet, 0, flow.vaddr, tvport)
    }
}

impl ConnTable {
    /// `ip_vs_check_template` failing: unhash the template so it is never
    /// found again and let it die on its own timer (it keeps its
    /// PersistConn until then). Listed with ports 65535 like the kernel's.
    fn invalidate_template(&mut self, t: u32) {
        self.unfile::<KIND_TPL>(t);
        let c = &mut self.slab[t as usize];
        c.flags |= F_TPL_INVALID;
        c.vport = 0xffff;
        c.dport = 0xffff;
        c.cport = 0;
    }

    /// FULLNAT: a local address and port that make the reply tuple unique.
    #[allow(clippy::too_many_arguments)]
    fn local_side(
        &self,
        proto: Protocol,
        fwd: FwdMethod,
        client: (IpAddr, u16),
        daddr: IpAddr,
        dport: u16,
        pool: &[IpAddr],
        conflicts: &mut [u64],
        rand: u64,
    ) -> Result<(IpAddr, u16), ScheduleError> {
        if fwd != FwdMethod::FullNat {
            return Ok(client);
        }
        let v6 = daddr.is_ipv6();
        let family = || {
            pool.iter()
                .copied()
                .enumerate()
                .filter(move |(_, a)| a.is_ipv6() == v6)
        };
        let k = family().count() as u64;
        if k == 0 {
            return Err(ScheduleError::NoLocalAddr);
        }
        let lo = *self.lports.start();
        let nports = u64::from(*self.lports.end() - lo) + 1;
        let space = k * nports;
        // Decorrelate from the bits the scheduler saw.
        let start = (rand.rotate_left(23) ^ 0x5851_f42d_4c95_7f2d)
            .wrapping_mul(0x2545_f491_4f6c_dd1d)
            % space;
        for s in 0..space.min(LPORT_TRIES as u64) {
            let x = (start + s) % space;
            let Some((i, laddr)) = family().nth((x % k) as usize) else {
                break;
            };
            let lport = lo + (x / k) as u16;
            if self.lookup_out(proto, daddr, dport, laddr, lport).is_none() {
                return Ok((laddr, lport));
            }
            // Alibaba LVS's `port_conflict`: this port of this address is
            // held by a conn to the same real server.
            if let Some(c) = conflicts.get_mut(i) {
                *c += 1;
            }
        }
        Err(ScheduleError::NoLocalAddr)
    }

    /// Creates the conn for the first packet of a flow to service `svc`
    /// (`ip_vs_schedule`, or `ip_vs_sched_persist` for a persistent
    /// service), already accounted for that packet (stats, SYN transition,
    /// timer): do not call [`ConnTable::on_packet`] for it.
    ///
    /// - TCP: only a segment with SYN and without RST may create a conn
    ///   (`tcp_conn_schedule`; like the kernel, ACK is not looked at); with
    ///   `sloppy_tcp` any segment without RST. UDP: any datagram.
    /// - Persistence: the template `<proto, client & prefix, 0, vaddr, vport>`
    ///   (vport 0 for an FTP service on port 21) picks the server while that
    ///   server is available (and, with `expire_quiescent_template`, has a
    ///   weight); otherwise the scheduler picks one and a new template is
    ///   made. Each new conn re-arms the template for the service's
    ///   persistence timeout (or [`TEMPLATE_LINGER`] once it lingered).
    /// - One-packet services (ops, UDP only): the conn is not hashed and is
    ///   freed at the next [`ConnTable::expire`].
    /// - FULLNAT: `laddr:lport` as described in the module doc.
    /// - Counters: InActConn (then the SYN moves it to ActiveConn),
    ///   PersistConn for a new template, `conns` of dest and service.
    pub fn schedule(
        &mut self,
        services: &mut ServiceTable,
        svc: u32,
        flow: &NewFlow,
        ip_len: u32,
        now: Timestamp,
        rand: u64,
    ) -> Result<ConnId, ScheduleError> {
        // `tcp_conn_schedule`: a SYN without RST, or with `sloppy_tcp` any
        // segment without RST.
        let sloppy = self.sysctls.sloppy_tcp;
        if flow.proto == Protocol::Tcp && !flow.tcp.is_some_and(|f| (f.syn || sloppy) && !f.rst) {
            return Err(ScheduleError::NotSyn);
        }
        self.observe(now);
        let Some(service) = services.services.get_mut(svc as usize) else {
            return Err(ScheduleError::NoDest);
        };
        let one_packet = service.ops && flow.proto == Protocol::Udp;
        let persistence = service.persistence;
        let svc_port = service.key.port;
        let fwmark = service.key.fwmark;

        // Persistence: find a usable template first.
        let mut tpl: Option<u32> = None;
        let mut tpl_key = None;
        if persistence.is_some() {
            let snet = mask_addr(flow.caddr, service.persistence_prefix);
            let tvport = if svc_port == FTP_PORT || fwmark != 0 {
                0
            } else {
                flow.vport
            };
            tpl_key = Some((snet, tvport));
            if let Some(t) = self.find::<KIND_TPL>(template_tuple(flow, fwmark, snet, tvport)) {
                let tref = self.slab[t as usize].dest;
                // An unbound (synced) template is no use (`ip_vs_check_template`).
                let usable = !super::sync::is_unbound(tref)
                    && service.dests.get(tref.dest as usize).is_some_and(|d| {
                        d.available && !(self.sysctls.expire_quiescent_template && d.weight == 0)
                    });
                if usable {
                    tpl = Some(t);
                } else {
                    self.invalidate_template(t);
                }
            }
        }

        let d = match tpl {
            Some(t) => self.slab[t as usize].dest.dest as usize,
            None => {
                let input = SchedInput {
                    src: flow.caddr,
                    sport: flow.cport,
                    dst: flow.vaddr,
                    dport: flow.vport,
                    now,
                    rand,
                };
                service
                    .sched
                    .schedule(&service.dests, &input)
                    .filter(|&d| service.dests.get(d).is_some_and(|x| x.available))
                    .ok_or(ScheduleError::NoDest)?
            }
        };
        let dest = &service.dests[d];
        let (daddr, fwd) = (dest.addr, dest.fwd);
        // A fwmark service's dest without a port takes the packet's.
        let dport = if (flow.vport == svc_port || fwmark != 0) && dest.port != 0 {
            dest.port
        } else {
            flow.vport
        };
        let (laddr, lport) = self.local_side(
            flow.proto,
            fwd,
            (flow.caddr, flow.cport),
            daddr,
            dport,
            &service.local_addrs,
            &mut service.laddr_conflicts,
            rand,
        )?;
        let tpl_dport = if svc_port == FTP_PORT { 0 } else { dest.port };

        let need = if tpl_key.is_some() && tpl.is_none() {
            2
        } else {
            1
        };
        if !self.ensure_room(need, services) {
            return Err(ScheduleError::TableFull);
        }
        let dref = DestRef {
            svc,
            dest: d as u32,
        };

        let mut flags = F_USED | F_INACTIVE;
        if !fwd.sees_replies() {
            flags |= F_NO_OUTPUT;
        }
        if one_packet {
            flags |= F_ONE_PACKET;
        }
        let c = Conn {
            proto: flow.proto,
            caddr: flow.caddr,
            cport: flow.cport,
            vaddr: flow.vaddr,
            vport: flow.vport,
            daddr,
            dport,
            laddr,
            lport,
            dest: dref,
            fwd,
            state: if flow.proto == Protocol::Udp {
                ConnState::Udp
            } else {
                ConnState::None
            },
            client_mac: flow.client_mac,
            client_nic: flow.client_nic,
            expires: now,
            flags,
            in_pkts: 0,
            control: NO_LINK,
            n_control: 0,
        };
        if let (Some((snet, tvport)), None) = (tpl_key, tpl) {
            let t = Conn {
                proto: if fwmark != 0 { Protocol::Tcp } else { c.proto },
                vaddr: if fwmark != 0 {
                    fwmark_addr(fwmark, snet.is_ipv6())
                } else {
                    c.vaddr
                },
                caddr: snet,
                cport: 0,
                vport: tvport,
                dport: tpl_dport,
                laddr: snet,
                lport: 0,
                state: ConnState::None,
                flags: F_USED | F_TEMPLATE | F_INACTIVE,
                ..c
            };
            tpl = Some(self.insert_entry(&t, services));
        }
        let i = self.insert_entry(
            &Conn {
                control: tpl.unwrap_or(NO_LINK),
                ..c
            },
            services,
        );

        if let (Some(t), Some(p)) = (tpl, persistence) {
            let clock = self.clock;
            let e = &mut self.slab[t as usize];
            e.control += 1;
            let timeout: Duration = if e.has(F_TPL_LINGER) {
                TEMPLATE_LINGER
            } else {
                p
            };
            e.set_expires(now + timeout, clock);
            self.wheel.insert(t, e.due_tick(clock));
        }

        if let Some(Service { dests, stats, .. }) = services.services.get_mut(svc as usize) {
            stats.conns += 1;
            if let Some(x) = dests.get_mut(d) {
                x.stats.conns += 1;
            }
        }
        self.account(i as usize, Direction::In, ip_len, services);
        self.transition(i as usize, Direction::In, flow.tcp, services);
        self.rearm(i as usize, now, false);
        if self.sync_master {
            self.sync_packet(i, now, services);
        }
        Ok(ConnId(i))
    }
}
