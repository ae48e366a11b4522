//! exec and attach: local processes wired to bounded channels ([`process::Session`]).

pub(crate) mod process;
