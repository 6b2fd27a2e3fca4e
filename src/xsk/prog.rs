//! (prog: being written)
