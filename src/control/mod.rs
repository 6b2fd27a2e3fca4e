//! The control plane: everything that runs beside the workers.
//!
//! [`shared`] is the only meeting point between the control thread and the
//! data-plane workers: the control thread publishes immutable snapshots,
//! workers pick the newest at a batch boundary (lock-free read side).

pub mod admin_socket;
pub mod estimator;
pub mod health;
pub mod neigh;
pub mod netlink;
pub mod script;
pub mod vrrp;
pub mod vrrp_thread;
