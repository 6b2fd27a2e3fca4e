//! The control plane: everything that runs beside the workers.
//!
//! [`crate::xsk::shared`] is the only meeting point between the control
//! thread and the data-plane workers: the control thread publishes immutable
//! [`crate::dataplane::Snapshot`]s, workers pick the newest at a batch
//! boundary (lock-free read side) and apply it in one place
//! ([`crate::dataplane::Dataplane::apply_snapshot`]).

pub mod admin_socket;
pub mod announce;
pub mod estimator;
pub mod health;
pub mod neigh;
pub mod netlink;
pub mod ops;
pub mod script;
pub mod sync;
pub mod vrrp;
pub mod vrrp_thread;
