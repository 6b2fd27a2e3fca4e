//! Administration output: what `lvsadm` prints.
//!
//! [`listing`] renders the service table, connections and timeouts exactly
//! as ipvsadm 1.31 does. Parsing lvsadm's command line and talking to the
//! daemon live elsewhere; this module only formats.
#![forbid(unsafe_code)]

pub mod listing;

pub use listing::{
    ConnView, ListOptions, RateSnapshot, Rates, ServiceRates, list_conns, list_service,
    list_services, list_timeouts, save_rules,
};
