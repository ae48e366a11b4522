//! One module per subcommand, each with its clap `Args` and an async `run` returning the
//! process exit code.

pub mod audit;
pub mod cat;
pub mod export;
pub mod jit;
pub mod keys;
pub mod ls;
pub mod play;
pub mod record;
pub mod seal;
pub mod search;
pub mod verify;
