//! (module config: being written)
