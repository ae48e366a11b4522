//! Exports of a recording into formats other tools read: asciicast v2/v3 (asciinema) and plain
//! text. Each writer takes events in order and a `Write`; the `export` command feeds them.

pub mod asciicast;
pub mod text;
pub mod utf8;
