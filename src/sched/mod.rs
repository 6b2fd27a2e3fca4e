//! Schedulers: how a virtual service picks a real server for a new
//! connection.
//!
//! One file per scheduler, all behind [`Scheduler`]. Each follows the Linux
//! kernel's `ip_vs_<name>.c` so that, for the same history of connections,
//! lvsfwd picks the same sequence of real servers as IPVS would. Schedulers
//! are pure: the packet's addresses, the time and any randomness come in
//! through [`SchedInput`]; the connection counters they read are kept by the
//! connection table.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use crate::dest::Dest;
use crate::time::Timestamp;

mod common;
pub mod dh;
pub mod fo;
pub mod lblc;
pub mod lblcr;
pub mod lc;
mod locality;
pub mod mh;
pub mod nq;
pub mod ovf;
pub mod rr;
pub mod sed;
pub mod sh;
pub mod twos;
pub mod wlc;
pub mod wrr;

/// Every scheduler IPVS has, by its ipvsadm name.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum SchedKind {
    Rr,
    Wrr,
    Lc,
    Wlc,
    Sed,
    Nq,
    Lblc,
    Lblcr,
    Dh,
    Sh,
    Mh,
    Fo,
    Ovf,
    Twos,
}

impl SchedKind {
    pub const ALL: [SchedKind; 14] = [
        SchedKind::Rr,
        SchedKind::Wrr,
        SchedKind::Lc,
        SchedKind::Wlc,
        SchedKind::Sed,
        SchedKind::Nq,
        SchedKind::Lblc,
        SchedKind::Lblcr,
        SchedKind::Dh,
        SchedKind::Sh,
        SchedKind::Mh,
        SchedKind::Fo,
        SchedKind::Ovf,
        SchedKind::Twos,
    ];

    /// The name ipvsadm uses (`-s NAME`) and lists.
    pub const fn name(self) -> &'static str {
        match self {
            SchedKind::Rr => "rr",
            SchedKind::Wrr => "wrr",
            SchedKind::Lc => "lc",
            SchedKind::Wlc => "wlc",
            SchedKind::Sed => "sed",
            SchedKind::Nq => "nq",
            SchedKind::Lblc => "lblc",
            SchedKind::Lblcr => "lblcr",
            SchedKind::Dh => "dh",
            SchedKind::Sh => "sh",
            SchedKind::Mh => "mh",
            SchedKind::Fo => "fo",
            SchedKind::Ovf => "ovf",
            SchedKind::Twos => "twos",
        }
    }
}

impl fmt::Display for SchedKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for SchedKind {
    type Err = ();
    fn from_str(s: &str) -> Result<SchedKind, ()> {
        SchedKind::ALL
            .iter()
            .copied()
            .find(|k| k.name() == s)
            .ok_or(())
    }
}

/// ipvsadm's `-b` scheduler flags (keepalived's sched_flags). Flag 1 is
/// `sh-fallback`/`mh-fallback`, flag 2 `sh-port`/`mh-port`.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct SchedFlags {
    /// `IP_VS_SVC_F_SCHED1`: fall back to another server when the hashed
    /// one is unavailable.
    pub fallback: bool,
    /// `IP_VS_SVC_F_SCHED2`: hash the source port too.
    pub port: bool,
    /// `IP_VS_SVC_F_SCHED3`: unused by any scheduler, kept for listing.
    pub flag3: bool,
}

/// What a scheduler may look at for one new connection.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct SchedInput {
    pub src: IpAddr,
    pub sport: u16,
    pub dst: IpAddr,
    pub dport: u16,
    pub now: Timestamp,
    /// A fresh random number for schedulers that need one (twos).
    pub rand: u64,
}

/// A scheduler instance of one virtual service.
pub trait Scheduler: Send + fmt::Debug {
    fn kind(&self) -> SchedKind;

    /// The service's dests changed (added, removed, weight edited): rebuild
    /// whatever state depends on them (IPVS's `init_service`, `add_dest`,
    /// `del_dest`, `upd_dest`). Allocation is allowed here, never in
    /// [`Scheduler::schedule`].
    fn update(&mut self, dests: &[Dest]);

    /// Picks a dest for a new connection: an index into `dests`, or `None`
    /// when no server can take it. Skips dests that are not `available`.
    fn schedule(&mut self, dests: &[Dest], input: &SchedInput) -> Option<usize>;
}

/// Creates the scheduler `kind` with `flags`.
pub fn new_scheduler(kind: SchedKind, flags: SchedFlags) -> Box<dyn Scheduler> {
    // Only sh and mh read flags (sh-/mh-fallback, sh-/mh-port), as in IPVS.
    match kind {
        SchedKind::Rr => Box::new(rr::RoundRobin::new()),
        SchedKind::Wrr => Box::new(wrr::WeightedRoundRobin::new()),
        SchedKind::Lc => Box::new(lc::LeastConn),
        SchedKind::Wlc => Box::new(wlc::WeightedLeastConn),
        SchedKind::Sed => Box::new(sed::ShortestExpectedDelay),
        SchedKind::Nq => Box::new(nq::NeverQueue),
        SchedKind::Lblc => Box::new(lblc::Lblc::new()),
        SchedKind::Lblcr => Box::new(lblcr::Lblcr::new()),
        SchedKind::Dh => Box::new(dh::DestHash::new()),
        SchedKind::Sh => Box::new(sh::SourceHash::new(flags)),
        SchedKind::Mh => Box::new(mh::Maglev::new(flags)),
        SchedKind::Fo => Box::new(fo::Failover),
        SchedKind::Ovf => Box::new(ovf::Overflow),
        SchedKind::Twos => Box::new(twos::PowerOfTwo),
    }
}
