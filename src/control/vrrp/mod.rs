//! VRRP (RFC 3768 v2, RFC 5798 v3) with keepalived's behaviour, pure:
//! no socket, clock, thread or netlink here.
//!
//! - [`machine`]: the state machine of one `[[vrrp_instance]]` (its rules,
//!   received-advert checks and counters, notify commands);
//! - [`helpers`]: what the runtime and the daemon decide without I/O (which
//!   VIPs are served, advert destinations, received IPv4 datagrams,
//!   announcement frames, poll timeouts);
//! - [`track`]: keepalived's tracking (vrrp_script results, tracked
//!   interfaces, weights) and sync-group rules.
//!
//! `control::vrrp_thread` is the I/O shell that runs them.

pub mod helpers;
pub mod machine;
pub mod track;

pub use helpers::{
    McastGroups, VipGate, active_specs, advert_destinations, announcements, instance_family,
    pick_primary, poll_wait_ms, split_ipv4, v6_scope,
};
pub use machine::{
    Action, Actions, GARP_MASTER_DELAY, MachineError, NotifyState, PRIO_OWNER, PRIO_STOP, Reject,
    RxMeta, State, VrrpMachine, VrrpStats,
};
