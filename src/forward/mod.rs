//! (module forward: being written)
