//! (replay: being written)
