//! Helpers for the end-to-end tests in `tests/tests/`: locating the built binaries and giving each
//! run its own store, keys and `HOME`.
