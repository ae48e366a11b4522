//! The parts of `kubetape` that benchmarks and other tools use directly: the local search index
//! and the export writers. The binary (`main.rs`, `cmd/`) is the command line around them.

pub mod bundle;
pub mod export;
pub mod index;
pub mod report;
