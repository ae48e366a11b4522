//! One module per subcommand, each with its clap `Args` and an async `run` returning the
//! process exit code.

pub mod audit;
pub mod audit_reads;
pub mod bundle;
pub mod bundle_verify;
pub mod cat;
pub mod export;
pub mod hold;
pub mod jit;
pub mod keys;
pub mod keys_rewrap;
pub mod ls;
pub mod play;
pub mod record;
pub mod render;
pub mod report;
pub mod seal;
pub mod search;
pub mod shred;
pub mod verify;
