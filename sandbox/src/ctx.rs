//! What every request handler shares: the cluster, the credential requests must present, the
//! request log, and the tasks that shutdown aborts. A module of its own so that the server (which
//! builds it) and the handlers (which use it) both depend on it, not on each other.

use std::future::Future;
use std::sync::{Arc, Mutex};

use http::Request;
use tokio::task::JoinSet;

use crate::cluster::Cluster;
use crate::config::Modes;
use crate::requests::{Authorization, RequestLog};

/// What request handlers share.
pub(crate) struct Ctx {
    pub cluster: Arc<Cluster>,
    /// How this sandbox departs from a default cluster.
    pub modes: Modes,
    token: String,
    pub log: RequestLog,
    /// Connection and stream tasks, aborted together at shutdown.
    tasks: Mutex<JoinSet<()>>,
}

impl std::fmt::Debug for Ctx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The token is a credential: never printed.
        f.debug_struct("Ctx")
            .field("cluster", &self.cluster)
            .finish_non_exhaustive()
    }
}

impl Ctx {
    pub fn new(cluster: Arc<Cluster>, modes: Modes, token: String, log: RequestLog) -> Self {
        Self {
            cluster,
            modes,
            token,
            log,
            tasks: Mutex::new(JoinSet::new()),
        }
    }

    /// Spawns a task that shutdown aborts.
    pub fn spawn(&self, fut: impl Future<Output = ()> + Send + 'static) {
        let mut tasks = self.tasks.lock().unwrap_or_else(|p| p.into_inner());
        // Reap finished tasks so the set does not grow with every connection.
        while tasks.try_join_next().is_some() {}
        tasks.spawn(fut);
    }

    /// Aborts every task [`Ctx::spawn`] started (shutdown).
    pub fn abort_tasks(&self) {
        self.tasks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .abort_all();
    }

    /// Whether `req` carries `Authorization: Bearer <the token>`.
    pub fn authorization<B>(&self, req: &Request<B>) -> Authorization {
        let Some(value) = req.headers().get(http::header::AUTHORIZATION) else {
            return Authorization::Missing;
        };
        let presented = value.to_str().ok().and_then(|v| {
            let (scheme, token) = v.trim().split_once(' ')?;
            scheme
                .eq_ignore_ascii_case("bearer")
                .then_some(token.trim())
        });
        match presented {
            Some(t) if constant_time_eq(t.as_bytes(), self.token.as_bytes()) => {
                Authorization::Valid
            }
            _ => Authorization::Invalid,
        }
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
