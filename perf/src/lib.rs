//! lvsfwd's performance harness, the pure parts: the generator's packet
//! format ([`packet`]), the sink's accounting and latency histogram
//! ([`stats`]), the report ([`report`]: tables, README, plots) and flame
//! graphs from `perf script` ([`flame`]). The `lvsperf` binary adds the
//! I/O: the AF_XDP tester, the raw forwarder, the rig and the orchestration
//! (see perf/README.md).
#![forbid(unsafe_code)]

pub mod flame;
pub mod packet;
pub mod report;
pub mod stats;
