//! lvsfwd: a userspace Layer-4 load balancer with IPVS's behaviour.
//!
//! The crate is a pure core with a thin I/O shell:
//!
//! - [`wire`]: zero-copy frame parsing (Ethernet, VLAN, ARP, IPv4, IPv6, TCP,
//!   UDP, ICMP/ICMPv6) and checksums; owns nothing but byte layouts.
//! - [`service`]: runtime virtual services and real servers.
//! - [`sched`]: IPVS's schedulers behind one trait.
//! - [`conn`]: the connection table, IPVS's TCP state machine, timers and
//!   persistence templates.
//! - [`forward`]: DR, TUN, NAT and FULLNAT rewrites, ICMP handling.
//! - [`dataplane`]: the per-batch pipeline: frames and `now` in, verdicts out.
//! - [`config`]: lb.toml schema and validation.
//! - [`admin`]: ipvsadm-format listings.
//! - [`replay`]: the data plane over a pcap (`lvsfwd replay`).
//! - [`daemon`]: `lvsfwd --config`: start-up, the control loop, clean stop.
//! - [`control`]: the control plane and the snapshots it publishes to workers.
//! - [`xsk`]: the AF_XDP shell: XDP program, sockets, pinned workers.
//!
//! Nothing in the core reads a clock, opens a socket or starts a thread:
//! time comes in as [`time::Timestamp`].

#![deny(unsafe_code)]

pub mod admin;
pub mod config;
pub mod conn;
pub mod control;
pub mod counter;
pub mod daemon;
pub mod dataplane;
pub mod dest;
pub mod forward;
#[allow(unsafe_code)]
pub mod hint;
pub mod replay;
pub mod sched;
pub mod service;
pub mod time;
pub mod view;
pub mod wire;
#[allow(unsafe_code)]
pub mod xsk;
