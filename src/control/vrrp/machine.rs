//! The VRRP state machine of one `[[vrrp_instance]]` (RFC 3768 for v2,
//! RFC 5798 for v3), with keepalived's choices where the RFCs leave room.
//!
//! Pure: time comes in as [`Timestamp`], received advertisements as bytes
//! plus what the IP header said ([`RxMeta`]), and every entry point returns
//! the [`Actions`] the runtime must carry out, in order (send an advert, add
//! or remove the virtual addresses, announce them, run notify scripts). No
//! socket, clock or thread here; `control::vrrp_thread` is the I/O shell.
//!
//! Rules (every one has a unit test on a simulated clock):
//! - Start: priority 255 (address owner) becomes Master at once; anything
//!   else starts as Backup with Master_Down_Timer = Master_Down_Interval.
//!   `state = MASTER` in the configuration does not skip the wait: keepalived
//!   2.x also listens for Master_Down_Interval first, so two directors both
//!   configured MASTER never both claim the VIP at boot.
//! - Master_Down_Interval = 3 x Master_Adver_Interval + Skew_Time. v2:
//!   Skew_Time = (256 - Priority) / 256 s and Master_Adver_Interval is our
//!   own interval (v2 adverts with another interval are dropped, as RFC 3768
//!   says and keepalived does). v3: Skew_Time = (256 - Priority) x
//!   Master_Adver_Interval / 256, and a Backup takes Master_Adver_Interval
//!   from the adverts it accepts (RFC 5798 section 6.4.2).
//! - Backup: an advert with priority 0 sets the timer to Skew_Time. One with
//!   priority >= ours, or any when preemption is off, resets it to
//!   Master_Down_Interval; a lower one is discarded (the timer runs out and we
//!   preempt). With `preempt_delay`, lower adverts are still accepted until
//!   the delay, started by the first of them, has passed (keepalived).
//! - Master: sends an advert every Advertisement_Interval. Priority 0
//!   received: advertise at once. A higher priority, or an equal one from a
//!   higher primary address, makes us Backup (VIPs removed). A lower one is
//!   answered with an advert at once, keepalived's default, so that a
//!   lower-priority router that thinks it is master backs off quickly.
//! - Shutdown: a Master sends priority 0 and removes its VIPs.
//! - Received adverts are checked in keepalived's order (`vrrp_check_packet`),
//!   each failure a [`Reject`] counter: VRID, own source address, length,
//!   TTL / hop limit 255 (multicast only), version, type, auth type and
//!   password (v2), advert interval (v2 drops; v3 only logs), checksum,
//!   multicast vs unicast destination, unicast source not a configured
//!   peer. An address list that differs from ours is logged and counted but
//!   the advert still counts (RFC: "MAY verify").
//!
//! - Fault: the instance's interface down (or without carrier) is FAULT: a
//!   Master gives its VIPs up, `notify_fault` runs, adverts are ignored;
//!   the link back up starts the instance over as at start-up.
//!
//! - Tracking (`control::vrrp::track` decides, the runtime applies): a
//!   tracked fault is FAULT as above, except that a Master whose link still
//!   works first advertises priority 0 (keepalived 2.x does, so the peer
//!   takes over after Skew_Time); [`VrrpMachine::set_priority`] changes the
//!   effective priority (a Master advertises it at once).
//! - Preemption with connection sync ([`VrrpMachine::set_preempt_hold`],
//!   set for the instance `lvs_sync_daemon` follows): a Backup whose
//!   master-down timer runs out while it is discarding a live master's
//!   lower-priority adverts (the last one heard less than
//!   Master_Down_Interval ago) does not take over yet: it holds
//!   ([`VrrpMachine::holding`]) until the runtime says the master's table
//!   arrived ([`VrrpMachine::table_ready`]). The hold ends at once when
//!   that master stops advertising for Master_Down_Interval or sends
//!   priority 0 (then it takes over without the table, as without the
//!   hold), and is called off by an advert it must accept (priority >=
//!   ours). A master that died (nothing heard for Master_Down_Interval)
//!   is taken over at once, as before. Everything before the expiry
//!   (preempt_delay, the discarded adverts, the timer) is keepalived's.
//! - A priority change in Backup moves the running master-down timer by
//!   the change of Skew_Time (keepalived's `vrrp_set_effective_priority`).
//! - Sync-group member ([`VrrpMachine::set_in_group`]): a Backup whose
//!   master-down timer runs out only says it wants to be master
//!   ([`VrrpMachine::wants_master`]) and waits another interval; the group
//!   decides ([`VrrpMachine::force_master`], [`VrrpMachine::force_backup`]).
//!
//! Deliberately not done: IPsec AH authentication (refused at
//! construction) and keepalived's "rogue address owner" back-off.

use std::net::IpAddr;
use std::time::Duration;

use crate::config::argv::{self, ArgvError};
use crate::config::{IpPrefix, VrrpAuth, VrrpInstance, VrrpVersion};
use crate::counter::counter_enum;
use crate::time::Timestamp;
use crate::wire::vrrp::{
    self as wire, AUTH_NONE, AUTH_PASS, Family, TYPE_ADVERTISEMENT, VRRP_TTL, Version, VrrpPacket,
    VrrpRepr,
};

/// Priority of the address owner.
pub const PRIO_OWNER: u8 = 255;
/// Priority a leaving master advertises.
pub const PRIO_STOP: u8 = 0;
/// Delay of the second round of gratuitous ARPs after becoming master
/// (keepalived's `vrrp_garp_master_delay` default).
pub const GARP_MASTER_DELAY: Duration = Duration::from_secs(5);

/// RFC state of the instance.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum State {
    Initialize,
    Backup,
    Master,
    /// The instance's interface is down (keepalived's FAULT): no adverts,
    /// no VIPs, adverts ignored until the link comes back.
    Fault,
}

/// What a notify script is told (keepalived's state words).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum NotifyState {
    Master,
    Backup,
    /// The interface went down.
    Fault,
    /// The instance stopped (daemon shutdown).
    Stop,
}

impl NotifyState {
    pub fn as_str(self) -> &'static str {
        match self {
            NotifyState::Master => "MASTER",
            NotifyState::Backup => "BACKUP",
            NotifyState::Fault => "FAULT",
            NotifyState::Stop => "STOP",
        }
    }
}

/// One thing the runtime must do, in the order given.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Send one advertisement with this priority (0: we are leaving).
    Advertise { priority: u8 },
    /// Add the virtual addresses to the interface.
    AddVips,
    /// Gratuitous ARP / unsolicited NA for every virtual address.
    Announce,
    /// Remove the virtual addresses from the interface.
    RemoveVips,
    /// The instance entered a state: run the notify scripts, tell the daemon.
    Notify(NotifyState),
}

/// What an entry point asks of the runtime.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Actions {
    pub steps: Vec<Action>,
    /// Messages worth logging; rate-limited like keepalived's (each reason
    /// once until the next state change).
    pub log: Vec<String>,
}

counter_enum! {
    /// Why a received advertisement was dropped. Each variant is a counter,
    /// printed as `bad_NAME` in [`VrrpStats::summary`].
    pub enum Reject {
        /// Another virtual router's advert (its VRID is not ours).
        Vrid => "vrid",
        /// Our own primary address as source: our advert looped back.
        Loop => "loop",
        /// Not a complete message (length vs. address count, unknown version
        /// field, v2 over IPv6).
        Length => "length",
        /// IPv4 TTL / IPv6 hop limit not 255 on a multicast advert: it crossed
        /// a router.
        Ttl => "ttl",
        /// A VRRP version other than the instance's.
        Version => "version",
        /// Type is not Advertisement.
        Type => "type",
        /// v2 auth type differs from ours.
        AuthType => "auth_type",
        /// v2 simple password differs from ours.
        AuthFailure => "auth_failure",
        /// v2 advertisement interval differs from ours (dropped so that two
        /// configurations cannot both be master of one VRID).
        Interval => "interval",
        /// Checksum does not verify.
        Checksum => "checksum",
        /// Multicast advert to a unicast instance, or unicast to a multicast one.
        Destination => "destination",
        /// Unicast advert from an address that is not one of `unicast_peer`.
        UnknownPeer => "unknown_peer",
    }
}

/// Counters of one instance.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VrrpStats {
    /// Adverts that passed every check.
    pub adverts_rx: u64,
    pub adverts_tx: u64,
    pub priority_zero_rx: u64,
    pub priority_zero_tx: u64,
    pub became_master: u64,
    pub released_master: u64,
    /// Dropped adverts, indexed by [`Reject::index`].
    pub rejected: [u64; Reject::COUNT],
    /// Accepted v3 adverts whose interval differs from ours.
    pub interval_mismatch: u64,
    /// Accepted adverts whose address list differs from ours.
    pub address_list_mismatch: u64,
}

impl VrrpStats {
    pub fn rejected(&self, r: Reject) -> u64 {
        self.rejected[r.index()]
    }

    /// One line, `name value` pairs, for logs and tests.
    pub fn summary(&self) -> String {
        let mut s = format!(
            "rx {} tx {} pri0_rx {} pri0_tx {} became_master {} released_master {} \
             interval_mismatch {} address_list_mismatch {}",
            self.adverts_rx,
            self.adverts_tx,
            self.priority_zero_rx,
            self.priority_zero_tx,
            self.became_master,
            self.released_master,
            self.interval_mismatch,
            self.address_list_mismatch
        );
        for &r in Reject::ALL {
            s += &format!(" bad_{} {}", r.name(), self.rejected(r));
        }
        s
    }
}

/// What the IP header of a received advertisement said.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct RxMeta {
    pub src: IpAddr,
    pub dst: IpAddr,
    /// TTL / hop limit, when the socket reported it.
    pub ttl: Option<u8>,
}

/// An instance the machine cannot run.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MachineError {
    #[error("vrrp_instance {0}: auth_type AH (IPsec-AH) is not supported; use PASS or none")]
    AhUnsupported(String),
    #[error("vrrp_instance {name}: primary address {primary} is not of the instance's family")]
    Family { name: String, primary: IpAddr },
    #[error("vrrp_instance {name}: {key} `{line}`: {error}")]
    Script {
        name: String,
        key: &'static str,
        line: String,
        error: ArgvError,
    },
}

/// A notify script line of `inst` as an argument vector (see
/// [`crate::control::script::argv`]); a line without a word is no script,
/// as before, and one that cannot be split is refused.
fn script_argv(
    inst: &VrrpInstance,
    key: &'static str,
    line: &Option<String>,
) -> Result<Option<Vec<String>>, MachineError> {
    let Some(line) = line else {
        return Ok(None);
    };
    match argv::split(line) {
        Ok(v) => Ok(Some(v)),
        Err(ArgvError::Empty) => Ok(None),
        Err(error) => Err(MachineError::Script {
            name: inst.name.clone(),
            key,
            line: line.clone(),
            error,
        }),
    }
}

/// The state machine of one VRRP instance.
#[derive(Clone, Debug)]
pub struct VrrpMachine {
    name: String,
    vrid: u8,
    /// The effective priority: the configured one as tracking adjusts it.
    priority: u8,
    /// The configured priority.
    base_priority: u8,
    version: Version,
    family: Family,
    adver_int: Duration,
    preempt: bool,
    preempt_delay: Duration,
    auth_type: u8,
    auth_data: [u8; wire::AUTH_DATA_LEN],
    vips: Vec<IpPrefix>,
    primary: IpAddr,
    unicast_peers: Vec<IpAddr>,
    /// The notify scripts, split once at construction.
    notify_master: Option<Vec<String>>,
    notify_backup: Option<Vec<String>>,
    notify_fault: Option<Vec<String>>,
    notify: Option<Vec<String>>,

    state: State,
    /// A sync-group member: the group decides when it becomes master.
    in_group: bool,
    /// Group member in Backup whose master-down timer ran out.
    wants_master: bool,
    master_adver_int: Duration,
    /// Backup: when the master is declared down.
    down_at: Option<Timestamp>,
    /// Master: next advertisement.
    advert_at: Option<Timestamp>,
    /// Master: second round of announcements.
    garp_at: Option<Timestamp>,
    /// Backup with preempt_delay: lower-priority adverts are accepted until then.
    preempt_until: Option<Timestamp>,
    /// Backup: the last lower-priority advert discarded (we preempt its
    /// sender): when, from whom, its priority.
    lower_heard: Option<(Timestamp, IpAddr, u8)>,
    /// Preempting a live master waits for the sync master's table.
    preempt_hold: bool,
    /// Backup: the master-down timer ran out and we wait for that table.
    holding: bool,
    master_addr: Option<IpAddr>,
    master_priority: u8,
    /// Reasons already logged since the last state change (bit
    /// [`Reject::index`] per reason, the next two for the two accepted
    /// mismatches).
    logged: u32,
    stats: VrrpStats,
}

const LOG_INTERVAL_MISMATCH: u32 = 1 << Reject::COUNT;
const LOG_ADDR_MISMATCH: u32 = 1 << (Reject::COUNT + 1);
const _: () = assert!(Reject::COUNT + 2 <= u32::BITS as usize);

impl VrrpMachine {
    /// A machine for `inst`, electing with `primary` (the interface's primary
    /// address, `unicast_src_ip` when set; link-local for IPv6). IPv6
    /// instances always run v3: RFC 3768 is IPv4-only, and keepalived also
    /// defaults IPv6 instances to v3.
    pub fn new(inst: &VrrpInstance, primary: IpAddr) -> Result<VrrpMachine, MachineError> {
        let family = inst
            .virtual_ipaddress
            .first()
            .map(|p| Family::of(&p.addr))
            .or(inst.unicast_src_ip.map(|a| Family::of(&a)))
            .unwrap_or(Family::of(&primary));
        if Family::of(&primary) != family {
            return Err(MachineError::Family {
                name: inst.name.clone(),
                primary,
            });
        }
        let version = match (inst.version, family) {
            (VrrpVersion::V2, Family::V4) => Version::V2,
            _ => Version::V3,
        };
        let (auth_type, auth_data) = match &inst.auth {
            None => (AUTH_NONE, [0; wire::AUTH_DATA_LEN]),
            Some(VrrpAuth::Pass(p)) => (AUTH_PASS, wire::pass_auth_data(p)),
            Some(VrrpAuth::Ah(_)) => return Err(MachineError::AhUnsupported(inst.name.clone())),
        };
        Ok(VrrpMachine {
            name: inst.name.clone(),
            vrid: inst.virtual_router_id,
            priority: inst.priority,
            base_priority: inst.priority,
            version,
            family,
            adver_int: inst.advert_int,
            preempt: !inst.nopreempt,
            preempt_delay: inst.preempt_delay,
            auth_type,
            auth_data,
            vips: inst.virtual_ipaddress.clone(),
            primary,
            unicast_peers: inst.unicast_peer.clone(),
            notify_master: script_argv(inst, "notify_master", &inst.notify_master)?,
            notify_backup: script_argv(inst, "notify_backup", &inst.notify_backup)?,
            notify_fault: script_argv(inst, "notify_fault", &inst.notify_fault)?,
            notify: script_argv(inst, "notify", &inst.notify)?,
            state: State::Initialize,
            in_group: false,
            wants_master: false,
            master_adver_int: inst.advert_int,
            down_at: None,
            advert_at: None,
            garp_at: None,
            preempt_until: None,
            lower_heard: None,
            preempt_hold: false,
            holding: false,
            master_addr: None,
            master_priority: 0,
            logged: 0,
            stats: VrrpStats::default(),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }
    pub fn state(&self) -> State {
        self.state
    }
    pub fn version(&self) -> Version {
        self.version
    }
    pub fn family(&self) -> Family {
        self.family
    }
    pub fn vrid(&self) -> u8 {
        self.vrid
    }
    /// The effective priority (the configured one as tracking adjusts it).
    pub fn priority(&self) -> u8 {
        self.priority
    }
    /// The configured priority.
    pub fn base_priority(&self) -> u8 {
        self.base_priority
    }
    /// Group member in Backup whose master-down timer ran out.
    pub fn wants_master(&self) -> bool {
        self.wants_master
    }
    /// Makes this instance a sync-group member (see the module docs).
    pub fn set_in_group(&mut self, in_group: bool) {
        self.in_group = in_group;
    }
    /// Makes a preemption of a live master wait for the sync master's
    /// table (see the module docs); a hold under way is left to
    /// [`VrrpMachine::table_ready`].
    pub fn set_preempt_hold(&mut self, hold: bool) {
        self.preempt_hold = hold;
    }
    /// Backup waiting for the sync master's table before it preempts.
    pub fn holding(&self) -> bool {
        self.holding
    }
    pub fn primary(&self) -> IpAddr {
        self.primary
    }
    pub fn vips(&self) -> &[IpPrefix] {
        &self.vips
    }
    pub fn unicast_peers(&self) -> &[IpAddr] {
        &self.unicast_peers
    }
    pub fn stats(&self) -> &VrrpStats {
        &self.stats
    }
    /// The master we last heard from (Backup) and its priority.
    pub fn master(&self) -> Option<(IpAddr, u8)> {
        self.master_addr.map(|a| (a, self.master_priority))
    }
    /// The interval the master advertises (v3 Backups learn it).
    pub fn master_adver_int(&self) -> Duration {
        self.master_adver_int
    }

    /// Skew_Time for our priority (the owner uses 255).
    pub fn skew_time(&self) -> Duration {
        let weight = 256 - self.priority as u64;
        match self.version {
            Version::V2 => Duration::from_nanos(weight * 1_000_000_000 / 256),
            Version::V3 => {
                Duration::from_nanos(weight * self.master_adver_int.as_nanos() as u64 / 256)
            }
        }
    }

    /// Master_Down_Interval = 3 x Master_Adver_Interval + Skew_Time.
    pub fn master_down_interval(&self) -> Duration {
        3 * self.master_adver_int + self.skew_time()
    }

    /// The advertisement we send, with `priority`.
    pub fn advert(&self, priority: u8) -> VrrpRepr {
        VrrpRepr {
            version: self.version,
            vrid: self.vrid,
            priority,
            interval_cs: (self.adver_int.as_millis() / 10).min(u16::MAX as u128) as u16,
            auth_type: self.auth_type,
            auth_data: self.auth_data,
            addrs: self.vips.iter().map(|p| p.addr).collect(),
        }
    }

    /// The earliest time [`VrrpMachine::on_timer`] has something to do.
    pub fn next_deadline(&self) -> Option<Timestamp> {
        [
            self.down_at,
            self.advert_at,
            self.garp_at,
            self.hold_deadline(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Holding: when the master we preempt counts as dead (nothing heard
    /// from it for Master_Down_Interval).
    fn hold_deadline(&self) -> Option<Timestamp> {
        let (t, _, _) = self.lower_heard.filter(|_| self.holding)?;
        Some(t + self.master_down_interval())
    }

    /// Initialize -> Master (address owner) or Backup.
    pub fn start(&mut self, now: Timestamp) -> Actions {
        let mut a = Actions::default();
        if self.state != State::Initialize {
            return a;
        }
        self.master_adver_int = self.adver_int;
        if self.priority == PRIO_OWNER {
            self.become_master(now, &mut a);
        } else {
            // Whatever a previous run left on the interface goes (keepalived
            // restores the interface the same way when it starts as backup).
            a.steps.push(Action::RemoveVips);
            self.enter_backup(now, &mut a);
        }
        a
    }

    /// Timers: the master-down timer (Backup), the advert timer and the
    /// delayed announcements (Master).
    pub fn on_timer(&mut self, now: Timestamp) -> Actions {
        let mut a = Actions::default();
        match self.state {
            State::Backup if self.holding => {
                if self.hold_deadline().is_some_and(|t| now >= t) {
                    self.holding = false;
                    a.log.push(
                        "the master stopped advertising: taking over without its table".into(),
                    );
                    self.take_over(now, &mut a);
                }
            }
            State::Backup => {
                if self.down_at.is_some_and(|t| now >= t) {
                    let live_lower = self
                        .lower_heard
                        .filter(|&(t, _, _)| now < t + self.master_down_interval());
                    match live_lower {
                        Some((_, from, prio))
                            if self.preempt_hold && !(self.in_group && self.wants_master) =>
                        {
                            self.holding = true;
                            self.down_at = None;
                            a.log.push(format!(
                                "preempting {from} (priority {prio}) once the sync master's \
                                 table is here"
                            ));
                        }
                        _ => self.take_over(now, &mut a),
                    }
                }
            }
            State::Master => {
                if self.advert_at.is_some_and(|t| now >= t) {
                    self.advertise(now, self.priority, &mut a);
                }
                if self.garp_at.is_some_and(|t| now >= t) {
                    self.garp_at = None;
                    a.steps.push(Action::Announce);
                }
            }
            State::Initialize | State::Fault => {}
        }
        a
    }

    /// The instance's interface went down (keepalived tracks its own
    /// interface): a Master gives its VIPs up (it cannot advertise priority
    /// 0 on a dead link: the peers' down timers take over), every state
    /// goes to FAULT and runs `notify_fault`.
    pub fn link_down(&mut self, now: Timestamp) -> Actions {
        if self.state == State::Initialize {
            return Actions::default();
        }
        self.fault(now, "interface down", false)
    }

    /// The interface is back: FAULT starts over as at start-up (Backup with
    /// a fresh down timer, or Master for the address owner).
    pub fn link_up(&mut self, now: Timestamp) -> Actions {
        self.clear_fault(now, "interface up")
    }

    /// The sync master's table arrived (or the wait for it ended): a
    /// holding Backup takes over now.
    pub fn table_ready(&mut self, now: Timestamp) -> Actions {
        let mut a = Actions::default();
        if self.state == State::Backup && self.holding {
            self.holding = false;
            a.log
                .push("the sync master's table is here: taking over".into());
            self.take_over(now, &mut a);
        }
        a
    }

    /// Master-down timer out (and no hold): master now, or, in a sync
    /// group, wanting to be until the group decides.
    fn take_over(&mut self, now: Timestamp, a: &mut Actions) {
        if self.in_group {
            // The group decides; until then keep waiting.
            self.wants_master = true;
            self.down_at = Some(now + self.master_down_interval());
        } else {
            self.become_master(now, a);
        }
    }

    /// Into FAULT for `reason` (a tracked script or interface, the sync
    /// group, the instance's own link): a Master gives its VIPs up, after
    /// advertising priority 0 when `can_send` (its link works), and
    /// `notify_fault` runs. From Initialize too (a tracked object already
    /// failed at start).
    pub fn fault(&mut self, _now: Timestamp, reason: &str, can_send: bool) -> Actions {
        let mut a = Actions::default();
        if self.state == State::Fault {
            return a;
        }
        if self.state == State::Master {
            if can_send {
                self.stats.adverts_tx += 1;
                self.stats.priority_zero_tx += 1;
                a.steps.push(Action::Advertise {
                    priority: PRIO_STOP,
                });
            }
            self.stats.released_master += 1;
            a.steps.push(Action::RemoveVips);
        }
        self.state = State::Fault;
        self.down_at = None;
        self.advert_at = None;
        self.garp_at = None;
        self.forget_preemption();
        self.master_addr = None;
        self.wants_master = false;
        a.log.push(format!("{reason}: entering FAULT state"));
        a.steps.push(Action::Notify(NotifyState::Fault));
        a
    }

    /// Out of FAULT for `reason`: starts over as at start-up (Backup with a
    /// fresh down timer, or Master for the address owner).
    pub fn clear_fault(&mut self, now: Timestamp, reason: &str) -> Actions {
        if self.state != State::Fault {
            return Actions::default();
        }
        self.state = State::Initialize;
        let mut a = self.start(now);
        a.log.insert(0, format!("{reason}: leaving FAULT state"));
        a
    }

    /// A new effective priority (tracking weights). A Master advertises it
    /// at once; a Backup's next master-down interval uses it.
    pub fn set_priority(&mut self, now: Timestamp, priority: u8) -> Actions {
        let mut a = Actions::default();
        if priority == self.priority || priority == PRIO_STOP {
            return a;
        }
        a.log.push(format!(
            "effective priority {} -> {priority} (configured {})",
            self.priority, self.base_priority
        ));
        let old_skew = self.skew_time();
        self.priority = priority;
        match self.state {
            State::Master => self.advertise(now, self.priority, &mut a),
            // keepalived moves the running timer by the change of its
            // Master_Down_Interval (the skew).
            State::Backup => {
                let new_skew = self.skew_time();
                let (old_ns, new_ns) = (old_skew.as_nanos() as u64, new_skew.as_nanos() as u64);
                self.down_at = self.down_at.map(|t| {
                    let moved = (t.as_nanos() + new_ns).saturating_sub(old_ns);
                    Timestamp::from_nanos(moved.max(now.as_nanos()))
                });
            }
            State::Initialize | State::Fault => {}
        }
        a
    }

    /// Sync group: a Backup becomes master with its group.
    pub fn force_master(&mut self, now: Timestamp) -> Actions {
        let mut a = Actions::default();
        if self.state == State::Backup {
            a.log.push("sync group: master with the group".into());
            self.become_master(now, &mut a);
        }
        a
    }

    /// Sync group: a Master becomes backup with its group.
    pub fn force_backup(&mut self, now: Timestamp) -> Actions {
        let mut a = Actions::default();
        if self.state == State::Master {
            a.log.push("sync group: backup with the group".into());
            self.stats.released_master += 1;
            a.steps.push(Action::RemoveVips);
            self.enter_backup(now, &mut a);
        }
        a
    }

    /// Daemon stop: a Master says priority 0 and gives its VIPs up.
    pub fn shutdown(&mut self, _now: Timestamp) -> Actions {
        let mut a = Actions::default();
        match self.state {
            State::Initialize => return a,
            State::Master => {
                self.stats.adverts_tx += 1;
                self.stats.priority_zero_tx += 1;
                self.stats.released_master += 1;
                a.steps.push(Action::Advertise {
                    priority: PRIO_STOP,
                });
                a.steps.push(Action::RemoveVips);
            }
            State::Backup | State::Fault => {}
        }
        a.steps.push(Action::Notify(NotifyState::Stop));
        self.state = State::Initialize;
        self.down_at = None;
        self.advert_at = None;
        self.garp_at = None;
        self.forget_preemption();
        a
    }

    /// One received advertisement: `payload` is the VRRP message (the IP
    /// payload), `rx` what its IP header said.
    pub fn on_advert(&mut self, now: Timestamp, rx: RxMeta, payload: &[u8]) -> Actions {
        let mut a = Actions::default();
        if matches!(self.state, State::Initialize | State::Fault) {
            return a;
        }
        let p = match self.check(rx, payload, &mut a) {
            Ok(p) => p,
            Err(r) => {
                self.stats.rejected[r.index()] += 1;
                // Other routers' adverts are normal on a shared link.
                if r != Reject::Vrid && r != Reject::Loop {
                    self.log_once(1 << r.index(), &mut a, || {
                        format!("rejected advert from {}: {}", rx.src, r.name())
                    });
                }
                return a;
            }
        };
        self.stats.adverts_rx += 1;
        let prio = p.priority();
        if prio == PRIO_STOP {
            self.stats.priority_zero_rx += 1;
        }
        let their_int = Duration::from_millis(p.interval_cs() as u64 * 10);
        match self.state {
            State::Backup => self.backup_rx(now, rx.src, prio, their_int, &mut a),
            State::Master => self.master_rx(now, rx.src, prio, their_int, &mut a),
            State::Initialize | State::Fault => {}
        }
        a
    }

    /// keepalived's `vrrp_check_packet`, in its order.
    fn check<'p>(
        &mut self,
        rx: RxMeta,
        payload: &'p [u8],
        a: &mut Actions,
    ) -> Result<VrrpPacket<&'p [u8]>, Reject> {
        if wire::peek_vrid(payload) != Some(self.vrid) {
            return Err(if payload.is_empty() {
                Reject::Length
            } else {
                Reject::Vrid
            });
        }
        if rx.src == self.primary {
            return Err(Reject::Loop);
        }
        let p = VrrpPacket::new_checked(payload, self.family).map_err(|_| Reject::Length)?;
        let unicast = !self.unicast_peers.is_empty();
        if !unicast && rx.ttl.is_some_and(|t| t != VRRP_TTL) {
            return Err(Reject::Ttl);
        }
        if p.version() != self.version {
            return Err(Reject::Version);
        }
        if p.kind() != TYPE_ADVERTISEMENT {
            return Err(Reject::Type);
        }
        if self.version == Version::V2 {
            if p.auth_type() != self.auth_type {
                return Err(Reject::AuthType);
            }
            if self.auth_type == AUTH_PASS && p.auth_data() != self.auth_data {
                return Err(Reject::AuthFailure);
            }
            if u128::from(p.interval_cs()) * 10 != self.adver_int.as_millis() {
                return Err(Reject::Interval);
            }
        } else if u128::from(p.interval_cs()) * 10 != self.adver_int.as_millis() {
            self.stats.interval_mismatch += 1;
            let (theirs, ours) = (p.interval_cs(), self.adver_int.as_millis() / 10);
            self.log_once(LOG_INTERVAL_MISMATCH, a, || {
                format!(
                    "advertisement interval mismatch with {}: ours {ours} cs, theirs {theirs} cs",
                    rx.src
                )
            });
        }
        if !p.verify_checksum(rx.src, rx.dst) {
            return Err(Reject::Checksum);
        }
        if rx.dst.is_multicast() == unicast {
            return Err(Reject::Destination);
        }
        if unicast && !self.unicast_peers.contains(&rx.src) {
            return Err(Reject::UnknownPeer);
        }
        let same = p.addr_count() as usize == self.vips.len()
            && self.vips.iter().all(|v| p.addresses().any(|x| x == v.addr));
        if !same {
            self.stats.address_list_mismatch += 1;
            self.log_once(LOG_ADDR_MISMATCH, a, || {
                format!(
                    "address list of {}'s advert differs from ours: {:?}",
                    rx.src,
                    p.addresses().collect::<Vec<_>>()
                )
            });
        }
        Ok(p)
    }

    fn backup_rx(
        &mut self,
        now: Timestamp,
        src: IpAddr,
        prio: u8,
        their_int: Duration,
        a: &mut Actions,
    ) {
        if prio == PRIO_STOP {
            // The master is leaving: it will not answer a table request.
            if self.holding {
                self.holding = false;
                a.log
                    .push(format!("{src} is leaving: taking over without its table"));
            }
            self.lower_heard = None;
            self.down_at = Some(now + self.skew_time());
            return;
        }
        let delaying = !self.preempt_delay.is_zero() && self.preempt_until.is_none_or(|t| t > now);
        if !self.preempt || prio >= self.priority || delaying {
            if self.holding {
                self.holding = false;
                a.log.push(format!(
                    "preemption called off: {src} advertises priority {prio} (ours {})",
                    self.priority
                ));
            }
            self.lower_heard = None;
            self.wants_master = false;
            if self.version == Version::V3 {
                self.master_adver_int = their_int;
            }
            self.down_at = Some(now + self.master_down_interval());
            self.master_addr = Some(src);
            self.master_priority = prio;
            if !self.preempt_delay.is_zero() {
                if prio >= self.priority {
                    self.preempt_until = None;
                } else if self.preempt_until.is_none() {
                    self.preempt_until = Some(now + self.preempt_delay);
                }
            }
        }
        // Else: a lower priority and we preempt. The advert is discarded and
        // the master-down timer keeps running; its sender is alive.
        self.lower_heard = Some((now, src, prio));
    }

    fn master_rx(
        &mut self,
        now: Timestamp,
        src: IpAddr,
        prio: u8,
        their_int: Duration,
        a: &mut Actions,
    ) {
        if prio == PRIO_STOP {
            self.advertise(now, self.priority, a);
            return;
        }
        if prio > self.priority || (prio == self.priority && src > self.primary) {
            if self.version == Version::V3 {
                self.master_adver_int = their_int;
            }
            self.master_addr = Some(src);
            self.master_priority = prio;
            self.stats.released_master += 1;
            a.steps.push(Action::RemoveVips);
            self.enter_backup(now, a);
        } else {
            // A lower-priority router thinks it is master: tell it now.
            self.advertise(now, self.priority, a);
        }
    }

    fn advertise(&mut self, now: Timestamp, priority: u8, a: &mut Actions) {
        self.stats.adverts_tx += 1;
        a.steps.push(Action::Advertise { priority });
        self.advert_at = Some(now + self.adver_int);
    }

    fn become_master(&mut self, now: Timestamp, a: &mut Actions) {
        // The advert goes first so that the old master (if any is left)
        // drops the VIPs before our announcements arrive (keepalived's order).
        self.advertise(now, self.priority, a);
        a.steps.push(Action::AddVips);
        a.steps.push(Action::Announce);
        a.steps.push(Action::Notify(NotifyState::Master));
        self.state = State::Master;
        self.wants_master = false;
        self.forget_preemption();
        self.stats.became_master += 1;
        self.down_at = None;
        self.master_addr = Some(self.primary);
        self.master_priority = self.priority;
        self.garp_at = Some(now + GARP_MASTER_DELAY);
        self.logged = 0;
        a.log.push(format!(
            "entering MASTER state (priority {})",
            self.priority
        ));
    }

    /// A Backup's preemption state (preempt_delay's window, the live
    /// master heard, the hold), which no other state keeps: dropped at
    /// every state change.
    fn forget_preemption(&mut self) {
        self.preempt_until = None;
        self.lower_heard = None;
        self.holding = false;
    }

    fn enter_backup(&mut self, now: Timestamp, a: &mut Actions) {
        a.steps.push(Action::Notify(NotifyState::Backup));
        self.state = State::Backup;
        self.wants_master = false;
        self.forget_preemption();
        self.advert_at = None;
        self.garp_at = None;
        if self.master_addr.is_none() {
            self.master_adver_int = self.adver_int;
        }
        self.down_at = Some(now + self.master_down_interval());
        self.logged = 0;
        a.log.push(format!(
            "entering BACKUP state (priority {})",
            self.priority
        ));
    }

    fn log_once(&mut self, bit: u32, a: &mut Actions, msg: impl FnOnce() -> String) {
        if self.logged & bit == 0 {
            self.logged |= bit;
            a.log.push(msg());
        }
    }

    /// The commands to run for `state`, each an argument vector: the
    /// state's own script (`notify_master` / `notify_backup`) as written,
    /// then the generic `notify` with keepalived's four extra arguments
    /// `INSTANCE NAME STATE PRIORITY`.
    pub fn notify_commands(&self, state: NotifyState) -> Vec<Vec<String>> {
        let mut out = Vec::new();
        let own = match state {
            NotifyState::Master => self.notify_master.as_ref(),
            NotifyState::Backup => self.notify_backup.as_ref(),
            NotifyState::Fault => self.notify_fault.as_ref(),
            NotifyState::Stop => None,
        };
        if let Some(argv) = own {
            out.push(argv.clone());
        }
        if let Some(generic) = &self.notify {
            let mut argv = generic.clone();
            argv.extend([
                "INSTANCE".to_string(),
                self.name.clone(),
                state.as_str().to_string(),
                self.priority.to_string(),
            ]);
            out.push(argv);
        }
        out
    }
}

#[cfg(test)]
mod tests;
