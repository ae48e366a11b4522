//! What one client, or all of them together, may hold of the gateway before it has proved anything:
//! connections in total, connections per client address, and how long a connection may take to
//! say something.
//!
//! Why: every connection is a file descriptor, and before a request is authenticated it is
//! anybody's. Without a cap, opening about `nofile` TCP connections made `accept()` fail with
//! "Too many open files", which ended the serve loop and the process, every live session with
//! it. Now:
//! - the total is capped below the open-file limit, and a live session keeps its connection's
//!   permit for as long as it runs (its file descriptor is still open after the upgrade), so
//!   the cap counts what the process really holds;
//! - one client address may hold at most `max_connections_per_client` of them, so a flood from
//!   one place cannot take the permits the rest of the world needs;
//! - a connection must finish its TLS handshake and send its first request's headers within
//!   `handshake_timeout`, and one with no request in flight is closed after `idle_timeout`
//!   (slowloris, idle sockets).
//!
//! A connection over a cap is accepted and closed at once (the kernel's backlog must keep
//! draining, or legitimate clients would wait behind the flood); a client that is over the
//! total cap but within its own gets a 503 Status that says why, when a small budget of such
//! refusals allows.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

pub use crate::config::ServerConfig;

/// File descriptors kept back from the connection cap: listeners, the store's and the
/// cluster's connections, key files, logs.
const FD_RESERVE: u64 = 256;

impl ServerConfig {
    pub fn handshake_timeout(&self) -> Duration {
        Duration::from_secs(self.handshake_timeout_secs.max(1))
    }

    pub fn idle_timeout(&self) -> Duration {
        Duration::from_secs(self.idle_timeout_secs.max(1))
    }

    /// The total cap: as configured, else from the process's open-file limit — a connection
    /// that became a session also holds one to the cluster, so half of what is left after the
    /// reserve.
    pub fn max_connections(&self) -> usize {
        self.max_connections.unwrap_or_else(|| {
            let nofile = rustix::process::getrlimit(rustix::process::Resource::Nofile)
                .current
                .unwrap_or(1 << 20);
            usize::try_from(nofile.saturating_sub(FD_RESERVE) / 2)
                .unwrap_or(usize::MAX)
                .max(16)
        })
    }
}

/// Refusals answered with a 503 at once; beyond this, connections over the cap are just closed.
const REFUSALS: usize = 32;

/// The caps in force, shared by the accept loop and the connections.
#[derive(Debug, Clone)]
pub struct Limits {
    total: Arc<Semaphore>,
    max_total: usize,
    refusals: Arc<Semaphore>,
    per_client: Arc<Mutex<HashMap<IpAddr, usize>>>,
    max_per_client: usize,
    pub handshake_timeout: Duration,
    pub idle_timeout: Duration,
}

/// A connection's share of the caps; released when the last holder (the connection task, or
/// the session its upgrade became) drops it.
#[derive(Debug)]
pub struct Permit {
    _total: OwnedSemaphorePermit,
    _client: ClientSlot,
}

#[derive(Debug)]
struct ClientSlot {
    map: Arc<Mutex<HashMap<IpAddr, usize>>>,
    ip: IpAddr,
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = map.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.ip);
            }
        }
    }
}

/// A connection's permit, carried by its requests (as an extension) so that a request that
/// becomes a live session holds it for the session's life: its file descriptor stays open
/// after the upgrade.
#[derive(Debug, Clone)]
pub struct ConnectionPermit(#[allow(dead_code)] Arc<Permit>);

impl ConnectionPermit {
    pub fn new(permit: Permit) -> Self {
        Self(Arc::new(permit))
    }
}

/// What to do with a connection just accepted.
#[derive(Debug)]
pub enum Admission {
    Serve(Permit),
    /// Over the total cap: answer 503 (the permit is one of the few refusal slots).
    Refuse(OwnedSemaphorePermit),
    /// Over a cap with no refusal slot, or over its client's cap: close at once.
    Drop,
}

impl Limits {
    pub fn new(config: &ServerConfig) -> Self {
        let max_total = config.max_connections();
        Self {
            total: Arc::new(Semaphore::new(max_total)),
            max_total,
            refusals: Arc::new(Semaphore::new(REFUSALS)),
            per_client: Arc::default(),
            max_per_client: config.max_connections_per_client.max(1),
            handshake_timeout: config.handshake_timeout(),
            idle_timeout: config.idle_timeout(),
        }
    }

    pub fn max_connections(&self) -> usize {
        self.max_total
    }

    /// Connections being served now.
    pub fn in_use(&self) -> usize {
        self.max_total - self.total.available_permits()
    }

    /// Decides about a connection from `ip`.
    pub fn admit(&self, ip: IpAddr) -> Admission {
        {
            let mut map = self.per_client.lock().unwrap_or_else(|p| p.into_inner());
            let n = map.entry(ip).or_default();
            if *n >= self.max_per_client {
                return Admission::Drop;
            }
            *n += 1;
        }
        let client = ClientSlot {
            map: self.per_client.clone(),
            ip,
        };
        match self.total.clone().try_acquire_owned() {
            Ok(total) => Admission::Serve(Permit {
                _total: total,
                _client: client,
            }),
            Err(_) => {
                drop(client);
                match self.refusals.clone().try_acquire_owned() {
                    Ok(slot) => Admission::Refuse(slot),
                    Err(_) => Admission::Drop,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(total: usize, per_client: usize) -> Limits {
        Limits::new(&ServerConfig {
            max_connections: Some(total),
            max_connections_per_client: per_client,
            ..ServerConfig::default()
        })
    }

    #[test]
    fn one_client_cannot_take_what_others_need_and_permits_come_back() {
        let l = limits(4, 2);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let a1 = l.admit(a);
        let a2 = l.admit(a);
        assert!(matches!(a1, Admission::Serve(_)));
        assert!(matches!(a2, Admission::Serve(_)));
        // Over its own cap: dropped, without taking a refusal slot.
        assert!(matches!(l.admit(a), Admission::Drop));
        let b1 = l.admit(b);
        let b2 = l.admit(b);
        assert!(matches!(b2, Admission::Serve(_)));
        assert_eq!(l.in_use(), 4);
        // Over the total: a third client gets a refusal it can read.
        let c: IpAddr = "10.0.0.3".parse().unwrap();
        assert!(matches!(l.admit(c), Admission::Refuse(_)));
        drop((a1, b1));
        assert_eq!(l.in_use(), 2);
        assert!(matches!(l.admit(a), Admission::Serve(_)));
        assert!(matches!(l.admit(c), Admission::Serve(_)));
    }

    #[test]
    fn refusals_are_bounded_too() {
        let l = limits(1, 100);
        let _held = l.admit("10.0.0.9".parse().unwrap());
        let refusals: Vec<Admission> = (0..REFUSALS + 5)
            .map(|i| l.admit(IpAddr::from([10, 1, (i / 256) as u8, (i % 256) as u8])))
            .collect();
        let answered = refusals
            .iter()
            .filter(|a| matches!(a, Admission::Refuse(_)))
            .count();
        assert_eq!(answered, REFUSALS);
        assert!(matches!(refusals.last(), Some(Admission::Drop)));
    }

    #[test]
    fn the_default_cap_follows_the_open_file_limit() {
        let l = ServerConfig::default();
        let nofile = rustix::process::getrlimit(rustix::process::Resource::Nofile)
            .current
            .unwrap();
        let cap = l.max_connections() as u64;
        assert!(
            cap * 2 + FD_RESERVE <= nofile.max(2 * 16 + FD_RESERVE),
            "{cap} vs {nofile}"
        );
    }
}
