//! Administration: what `lvsadm` accepts, does and prints.
//!
//! - [`cmd`] parses ipvsadm 1.31's command line into an [`AdminCommand`];
//! - [`apply`] applies one to the canonical service table with IPVS's
//!   rules and error texts, returning a new state;
//! - [`listing`] renders the table, connections and timeouts exactly as
//!   ipvsadm 1.31 does;
//! - [`proto`] is the admin socket protocol and the daemon's handling of
//!   one request.
//!
//! Everything here is pure except [`proto::call`] and
//! [`proto::serve_stream`], which only move bytes over a socket.

pub mod apply;
pub mod cmd;
pub mod listing;
pub mod proto;

pub use apply::{AdminState, ApplyError, apply};
pub use cmd::{AdminCommand, CmdError, ListWhat, parse_args, parse_restore};
pub use listing::{
    ListOptions, RateSnapshot, list_conns, list_laddrs, list_service, list_services, list_timeouts,
    save_rules,
};
pub use proto::{ListingSource, Request, Response, serve_one};
