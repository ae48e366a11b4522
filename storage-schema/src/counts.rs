//! Byte counts per stream: what a seal states and what a gap admits to losing. Its own module
//! so that `seal` (which lists gaps) and `gap` (which counts bytes) need not import each other.

/// Bytes recorded per stream.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StreamBytes {
    pub stdin: u64,
    pub stdout: u64,
    pub stderr: u64,
    #[serde(default)]
    pub port_forward: u64,
}
