//! The VRRP decoder and state machine on arbitrary advertisements with
//! arbitrary TTLs, sources and timings: never panics; decode / encode
//! round trips; every advert counted once; a rejected one (wrong TTL,
//! VRID, version, password...) changes nothing. See lvsfwd_fuzz::check_vrrp.
#![no_main]
#![forbid(unsafe_code)]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    lvsfwd_fuzz::check_vrrp(data);
});
