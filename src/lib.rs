//! lvsfwd: a userspace Layer-4 load balancer with IPVS's behaviour.
//!
//! The crate is a pure core with a thin I/O shell, in layers: a module
//! imports only the modules listed above it (tests/layering.rs checks this
//! on the source and fails on an upward import).
//!
//! The core: frames and `now` in, verdicts and rewritten frames out. Nothing
//! in it reads a clock, opens a socket or starts a thread (time comes in as
//! [`time::Timestamp`]), and nothing in it imports the shell.
//!
//! - [`time`]: the data plane's clock value. [`hint`]: prefetch hints and
//!   the batch pipeline; [`hugemem`]: large tables marked for huge pages
//!   (with the shell, the places with `unsafe`). [`counter`]: the macro behind every
//!   counter enum (parse errors, drop reasons, VRRP rejects, admin options).
//! - [`wire`]: frame layouts, one file per protocol with its `field` byte
//!   ranges (smoltcp-style), the one-pass `Copy` summary [`wire::Headers`],
//!   checksums, VRRP and ARP/NA announcements; owns nothing but byte layouts.
//! - [`dest`]: a real server and its spec.
//! - [`sched`]: IPVS's schedulers behind one trait.
//! - [`service`]: the service table (virtual services, their real servers
//!   and schedulers), changed as IPVS changes a live table.
//! - [`conn`]: the connection table, IPVS's TCP state machine, timers and
//!   persistence templates.
//! - [`forward`]: DR, TUN, NAT and FULLNAT rewrites, ICMP handling.
//! - [`view`]: what the shell reads: connection views, live counters, rates.
//! - [`dataplane`]: the per-batch pipeline, its input [`dataplane::Snapshot`]
//!   (applied in one place) and the queries workers answer.
//!
//! The shell:
//!
//! - [`config`]: lb.toml schema and validation, keepalived.conf import, and
//!   the core's input types built from a config.
//! - [`admin`]: lvsadm's command line, the admin protocol, ipvsadm-format
//!   listings.
//! - [`xsk`]: the AF_XDP shell: XDP program, sockets, pinned workers, the
//!   snapshot they share with the control thread (the other place with
//!   `unsafe`).
//! - [`control`]: the control plane: rtnetlink, next hops, VRRP, health
//!   checks, scripts, rate estimator, admin socket.
//! - [`replay`]: the data plane over a pcap (`lvsfwd replay`).
//! - [`daemon`]: `lvsfwd --config`: start-up, the control loop, clean stop.

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
#[allow(unsafe_code)]
pub mod hugemem;
pub mod replay;
pub mod sched;
pub mod service;
pub mod time;
pub mod view;
pub mod wire;
#[allow(unsafe_code)]
pub mod xsk;
