//! `kubetape-quickstart`: kubetape on one machine in one command, for trying it and for tests;
//! never part of a production deployment. It puts together what the production binaries do not
//! carry: a sandbox cluster (the `sandbox` crate, in-process), a development identity issuer
//! that mints tokens for any user, and kubeconfigs that use them; the gateway itself is the
//! `gateway` library, configured as `kubetape-gateway serve` would be.
//!
//! # Layout
//! - [`devissuer`]: the development OIDC issuer (an Ed25519 key in a directory) and the exec
//!   credential plugin kubectl runs (`kubetape-quickstart token`);
//! - [`kubeconfig`]: kubeconfigs for a gateway, with a fixed token or the plugin;
//! - [`run`]: the quickstart itself — sandbox, issuer, gateway, kubeconfigs, instructions.

pub mod devissuer;
pub mod kubeconfig;
pub mod run;

pub use devissuer::DevIssuer;
pub use run::QuickstartArgs;
