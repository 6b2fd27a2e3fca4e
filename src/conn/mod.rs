//! (module conn: being written)
