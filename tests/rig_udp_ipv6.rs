//! End to end: UDP services and IPv6 services through lvsfwd (same checks
//! as the TCP tests, see tests/rig/e2e.rs). Needs root and the daemon.
#![forbid(unsafe_code)]

mod rig;

use rig::{Fam, Mode, e2e};

#[test]
fn dr_udp_round_robin_through_the_vip() {
    e2e::balanced_service(Mode::Dr, e2e::udp(Fam::V4));
}

#[test]
fn nat_udp_round_robin_through_the_vip() {
    e2e::balanced_service(Mode::Nat, e2e::udp(Fam::V4));
}

#[test]
fn dr_ipv6_http_round_robin_through_the_vip() {
    e2e::balanced_service(Mode::Dr, e2e::tcp(Fam::V6));
}

#[test]
fn nat_ipv6_http_round_robin_through_the_vip() {
    e2e::balanced_service(Mode::Nat, e2e::tcp(Fam::V6));
}

#[test]
fn fullnat_ipv6_http_round_robin_through_the_vip() {
    e2e::balanced_service(Mode::FullNat, e2e::tcp(Fam::V6));
}
