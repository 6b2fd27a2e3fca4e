//! (module wire: being written)
