//! The AF_XDP shell: lvsfwd's XDP program and its maps ([`prog`]), and the
//! per-queue workers that move frames between AF_XDP rings and the pure
//! data plane ([`engine`], over the sockets in [`afxdp`], with multi-queue
//! hand-over decided by [`steer`]), and [`port`], a bare socket for tools
//! (the perf harness's raw forwarder and tester), and [`kport`], the
//! tap through which frames go back to the director's own stack. The only module of the crate allowed
//! `unsafe`; every block carries a `// SAFETY:` comment.

pub mod afxdp;
pub mod engine;
pub mod kport;
pub mod nic;
pub mod packet;
pub mod port;
pub mod prog;
pub mod shared;
pub mod steer;
pub mod sync_steer;
