//! Terminal emulation (vt100), keyframes for seeking and command extraction, shared by the gateway
//! (which indexes commands as it seals) and the player (which replays and searches them).
//!
//! # Layout
//! Filled by the reviewer-tools issue.
