//! Command lines from lb.toml (`misc_path`, `notify_up`, `quorum_up`...)
//! split into an argument vector: the crate's one splitter, which VRRP's
//! notify scripts use too, lives in [`crate::control::script::argv`].
#![forbid(unsafe_code)]

pub use crate::control::script::argv::{ArgvError, split};
