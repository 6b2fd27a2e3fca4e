//! The lb.toml loader on arbitrary text: never panics; an error names a
//! line and column inside the text; a configuration it accepts converts to
//! service specs that build a service table and a data plane.
#![no_main]
#![forbid(unsafe_code)]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    lvsfwd_fuzz::check_lb_toml(text);
});
