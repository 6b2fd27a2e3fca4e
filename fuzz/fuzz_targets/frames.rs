//! Arbitrary sequences of frames with timestamps through the real data
//! plane (`Dataplane::process`, timers, hitless reloads, the nodest flush);
//! see lvsfwd_fuzz's module docs for the input encoding and every
//! invariant checked. Seeds: frames captured on a veth rig.
#![no_main]
#![forbid(unsafe_code)]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    lvsfwd_fuzz::FrameRun::run(data);
});
