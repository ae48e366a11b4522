//! What the workspace's tests share, so that each helper exists once: a dev-dependency of the
//! crates whose tests use it, never a dependency of a shipped binary.
//!
//! # Layout
//! - [`tmux`]: [`Tmux`], a private tmux server to drive terminal programs as a person would;
//! - [`kubectl`]: [`Kubectl`], the real kubectl builds by version (1.27–1.37), and [`strict`];
//! - [`process`]: the workspace's binaries ([`bin`]), servers killed on drop ([`Proc`]), runs
//!   with a deadline ([`run`]);
//! - [`asciinema`]: the real asciinema 2.x that plays exports;
//! - [`store`]: [`TempStore`], a recording store and keyring of a test's own;
//! - `gateway` (feature `gateway`): the sandbox and a gateway in-process on `127.0.0.1:0`
//!   (`TestGateway`), with tokens, kubeconfigs and kube-rs clients for any user, and the files
//!   (`GatewayFiles`: configuration, policy, issuers, certificate) the end-to-end harness in
//!   `tests` runs real processes with.

pub mod asciinema;
#[cfg(feature = "gateway")]
pub mod gateway;
pub mod kubectl;
pub mod process;
pub mod store;
pub mod tmux;

pub use asciinema::asciinema;
pub use kubectl::{Kubectl, strict};
pub use process::{Proc, bin, run, run_with_open_stdin, spawn_until};
pub use store::TempStore;
pub use tmux::Tmux;
