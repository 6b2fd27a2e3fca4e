//! The keepalived.conf importer on arbitrary text: never panics, and what
//! it writes is a TOML document (the importer's promise: lb.toml syntax,
//! whatever keepalived.conf held); when that lb.toml validates, it loads
//! like any other.
#![no_main]
#![forbid(unsafe_code)]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    lvsfwd_fuzz::check_keepalived(&text);
});
