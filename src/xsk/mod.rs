//! The AF_XDP shell: lvsfwd's XDP program and its maps ([`prog`]), and the
//! per-queue workers that move frames between AF_XDP rings and the pure
//! data plane ([`engine`]). The only module of the crate allowed `unsafe`;
//! every block carries a `// SAFETY:` comment.

pub mod engine;
pub mod prog;
