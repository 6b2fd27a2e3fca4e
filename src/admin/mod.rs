//! (module admin: being written)
