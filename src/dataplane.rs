//! (dataplane: being written)
