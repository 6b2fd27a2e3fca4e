//! End to end, NAT: lvsfwd on a one-armed director balances HTTP over three
//! real servers with rr; the real servers see the client's own address (the director rewrites only the destination). Needs root
//! and the `lvsfwd --config` daemon; see tests/rig/e2e.rs for every check.
#![forbid(unsafe_code)]

mod rig;

use rig::{Fam, Mode, e2e};

#[test]
fn nat_http_round_robin_through_the_vip() {
    e2e::balanced_service(Mode::Nat, e2e::tcp(Fam::V4));
}
