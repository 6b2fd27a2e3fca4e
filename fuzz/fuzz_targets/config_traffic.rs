//! Configuration × traffic: a service table that `lvsfwd check` accepts
//! (lb.toml text generated from the input and loaded by the real loader),
//! several NICs and next hops, then structured frames, replies, ICMP
//! errors, reloads and timer jumps through `Dataplane::process_on`; see
//! lvsfwd_fuzz::config_traffic for the input and every invariant checked.
#![no_main]
#![forbid(unsafe_code)]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    lvsfwd_fuzz::config_traffic::run(data);
});
