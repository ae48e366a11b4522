//! The compliance report (`kubetape report`): what was gathered from a store over a window
//! ([`model`]) and its three renderings — one self-contained HTML page ([`html`], with
//! [`chart`]'s inline SVG bar charts), one CSV table ([`csv`]) and one JSON document ([`json`]).
//!
//! Gathering lives in the binary (`cmd/report.rs`), because it reuses the `ls`, `audit` and
//! `verify` commands' own listing code so the report's values are exactly theirs; everything
//! here is pure (no store, no clock), so it is tested without one.

pub mod chart;
pub mod csv;
pub mod escape;
pub mod html;
pub mod json;
pub mod model;

pub use model::Report;
