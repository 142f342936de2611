//! Online log template mining (no I/O).
