//! The admin socket protocol, daemon side: arbitrary request bytes (one
//! JSON line, or an argv split at NULs) against a populated state. Never
//! panics; every answer is one JSON line that parses back; a refused
//! command changes nothing.
#![no_main]
#![forbid(unsafe_code)]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    lvsfwd_fuzz::check_admin(data);
});
