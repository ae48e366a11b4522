//! The forward's life once both connections are up: two readers (the client's, the cluster's)
//! running side by side so neither direction ever waits for the other, one [`Switch`] they
//! share, a writer per connection, and the journal — what the switch noted, recorded in the
//! order it happened, and each connection's end audited.
//!
//! ```text
//! client ──reader──► switch ──queue──► writer ──► cluster
//! client ◄──writer◄──queue── switch ◄──reader── cluster
//!                              └──journal──► recorder (events) · audit (one record per connection)
//! ```
//! The session ends when the client leaves, the cluster goes away, or [`Ends::wait`]
//! (revocation, grant expiry, `max_session`, token expiry, drain, a failed recorder) says so;
//! then every open connection is told why on its error stream (kubectl prints it and ends the
//! forward), the journal is recorded to its last note, and the session is sealed.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use storage_schema::builder::MAX_EVENT_DATA;
use storage_schema::store::{RecordError, Recorder};
use storage_schema::{AuditDecision, AuditRecord, EventKind, ExitInfo, ForwardOutcome};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::Role;

use super::switch::{Ended, Note, Stop, Switch};
use super::upstream::{Upstream, tunnel_config};
use super::wire::{self, Carrier, Input, Queue, Reader};
use crate::audit::AuditLog;
use crate::ops::metrics::{Direction as Way, Metrics};
use crate::session::{EndReason, Ending, Ends, Relay, Tape};

/// Bytes queued toward either connection before its reader stops reading the other.
const OUT_LIMIT: usize = 512 << 10;
/// Bytes of notes (payload, with full capture) queued for the recorder before the readers wait.
const JOURNAL_LIMIT: usize = 1 << 20;
/// How often byte counts are recorded: the recording's loss bound.
const TICK: Duration = Duration::from_secs(1);
/// How often the cluster's connection is pinged.
const KEEPALIVE: Duration = Duration::from_secs(30);
/// How long the client has to finish its WebSocket or SPDY upgrade after the 101.
const UPGRADE_WAIT: Duration = Duration::from_secs(30);
/// How long the last frames (errors, GOAWAY) may take to reach each peer at the end.
const CLOSE_WAIT: Duration = Duration::from_secs(5);
/// How long a client told why its forward ends (revocation, expiry, the cluster gone) has to
/// close the tunnel itself before the gateway does. kubectl prints a connection's error only
/// after it has read it to the end, and exits at once when the tunnel closes: closed first, it
/// would say only "lost connection to pod". Well within the 1 s an ending may take.
const CLIENT_GRACE: Duration = Duration::from_millis(300);

/// Per-connection audit records: the forward's request record, made one per connection.
#[derive(Debug)]
pub(crate) struct Audit {
    pub log: Arc<AuditLog>,
    pub template: AuditRecord,
}

impl Audit {
    fn record(&self, e: &Ended) -> AuditRecord {
        let mut r = self.template.clone();
        r.time_us = e.opened_at_us;
        let refused = e.outcome == ForwardOutcome::Refused;
        if refused {
            r.decision = AuditDecision::Deny;
            r.reason = Some(e.message.clone());
            r.status = 403;
        } else {
            r.status = 200;
        }
        let closed_at_us = storage_schema::time::unix_micros_now();
        r.extra.insert(
            "port_forward".into(),
            serde_json::json!({
                "connection": e.conn,
                "port": e.port,
                "request": e.key,
                "opened_at_us": e.opened_at_us,
                "closed_at_us": closed_at_us,
                "bytes_to_pod": e.to_pod,
                "bytes_from_pod": e.from_pod,
                "outcome": e.outcome.name(),
                "message": e.message,
            }),
        );
        r
    }
}

/// One port-forward session's relay.
#[derive(Debug)]
pub(crate) struct Forward {
    pub client: OnUpgrade,
    pub carrier: Carrier,
    pub upstream: Upstream,
    pub switch: Switch,
    pub audit: Audit,
}

impl Relay for Forward {
    async fn run(self, tape: Tape<'_>) -> Ending {
        run(self, tape).await
    }
}

/// Why the relay stopped.
enum End {
    /// The client went away (EOF, close, GOAWAY), or every port of a channel request ended.
    Client,
    ClientLost(String),
    UpstreamLost(String),
    Ended(EndReason),
    Recording(RecordError),
}

type Shared = Mutex<Switch>;

fn lock(s: &Shared) -> std::sync::MutexGuard<'_, Switch> {
    s.lock().unwrap_or_else(|p| p.into_inner())
}

/// The queues the switch feeds.
struct Queues {
    client: Arc<Queue<Vec<u8>>>,
    upstream: Arc<Queue<Vec<u8>>>,
    journal: Arc<Queue<Note>>,
}

impl Queues {
    /// Moves what the switch produced into the queues; called with the switch locked, so the
    /// order of frames and notes is the order the switch made them in.
    fn flush(&self, s: &mut Switch) {
        for piece in s.take_client_output() {
            self.client.push(piece);
        }
        let up = s.take_upstream_output();
        if !up.is_empty() {
            self.upstream.push(up);
        }
        for note in s.take_notes() {
            self.journal.push(note);
        }
    }

    /// Room for what reading `toward` produces: its data, and the notes. Control frames the
    /// read makes for the other connection (SPDY replies, resets, PING echoes) are small and
    /// few, and must not wait: the other direction may be waiting for this one to read
    /// (an echo server that stops reading while its answer is not taken), which is the
    /// deadlock the two independent readers exist to avoid.
    async fn room(&self, toward: &Queue<Vec<u8>>) {
        toward.room().await;
        self.journal.room().await;
    }
}

fn note_weight(n: &Note) -> usize {
    match n {
        Note::Data { bytes, .. } => bytes.len() + 64,
        _ => 64,
    }
}

async fn run(forward: Forward, tape: Tape<'_>) -> Ending {
    let Tape {
        recorder,
        ends,
        metrics,
    } = tape;
    let Forward {
        client,
        carrier,
        upstream,
        switch,
        audit,
    } = forward;
    let upgraded = match tokio::time::timeout(UPGRADE_WAIT, client).await {
        Ok(Ok(u)) => TokioIo::new(u),
        Ok(Err(e)) => return gone(format!("kubetape: the client's upgrade failed: {e}")),
        Err(_) => return gone("kubetape: the client never completed its upgrade".into()),
    };
    let (client_rx, client_tx) = match carrier {
        Carrier::Raw => wire::split_raw(upgraded),
        ws => {
            let config = tunnel_config().max_message_size(Some(1 << 20));
            let socket =
                WebSocketStream::from_raw_socket(upgraded, Role::Server, Some(config)).await;
            wire::split_ws(socket, ws)
        }
    };
    let (up_rx, up_tx) = match upstream {
        Upstream::Spdy(io) => wire::split_raw(io),
        Upstream::Tunnel(ws) => wire::split_ws(*ws, Carrier::Tunnel),
    };
    let queues = Queues {
        client: Queue::new(OUT_LIMIT, wire::bytes_weight),
        upstream: Queue::new(OUT_LIMIT, wire::bytes_weight),
        journal: Queue::new(JOURNAL_LIMIT, note_weight),
    };
    let switch: Shared = Mutex::new(switch);
    queues.flush(&mut lock(&switch));
    let client_writer = tokio::spawn(client_tx.run(queues.client.clone()));
    let up_writer = tokio::spawn(up_tx.run(queues.upstream.clone()));

    let (end, recorded) = tokio::join!(
        relay(&switch, &queues, client_rx, up_rx, ends, metrics),
        journal(recorder, &queues.journal, &audit, metrics),
    );
    let end = match recorded {
        Err(e) => End::Recording(e),
        Ok(()) => end,
    };
    // Both writers drain what the end queued, then close their connections.
    let _ = tokio::time::timeout(CLOSE_WAIT, client_writer).await;
    let _ = tokio::time::timeout(CLOSE_WAIT, up_writer).await;
    ending(end)
}

/// The session's exit for a client that never got its connection.
fn gone(message: String) -> Ending {
    tracing::warn!(%message, "port-forward ended before it started");
    Ending {
        exit: ExitInfo { code: 1, message },
        ended_by: None,
    }
}

fn ending(end: End) -> Ending {
    let exit = |code: i32, message: String| ExitInfo { code, message };
    match end {
        End::Client => Ending {
            exit: exit(0, "the client ended the port-forward".into()),
            ended_by: None,
        },
        End::ClientLost(e) => Ending {
            exit: exit(
                1,
                format!("kubetape: lost the connection to the client: {e}"),
            ),
            ended_by: None,
        },
        End::UpstreamLost(e) => Ending {
            exit: exit(
                1,
                format!("kubetape: lost the connection to the cluster: {e}"),
            ),
            ended_by: None,
        },
        End::Ended(why) => Ending {
            exit: why.exit(),
            ended_by: Some(why),
        },
        End::Recording(e) => {
            let why = EndReason::recording_error(&e);
            Ending {
                exit: why.exit(),
                ended_by: Some(why),
            }
        }
    }
}

/// Runs both directions until one ends or the session must; then tells every open connection
/// why, and closes the queues (the writers finish what is queued, the journal records it).
async fn relay(
    switch: &Shared,
    queues: &Queues,
    mut client: Reader,
    mut upstream: Reader,
    mut ends: Ends<'_>,
    metrics: &Metrics,
) -> End {
    // Resolved once: the loops only add to atomics.
    let to_cluster = metrics.relayed_counter(Way::to_cluster);
    let to_client = metrics.relayed_counter(Way::to_client);
    let count = |s: &Switch, before: (u64, u64)| {
        let now = s.relayed();
        to_cluster.inc_by(now.0 - before.0);
        to_client.inc_by(now.1 - before.1);
    };
    let from_client = async {
        loop {
            queues.room(&queues.upstream).await;
            let input = match client.next().await {
                Ok(Some(i)) => i,
                Ok(None) => return End::Client,
                Err(e) => return End::ClientLost(e),
            };
            let mut s = lock(switch);
            let before = s.relayed();
            let result = match input {
                Input::Bytes(b) => s.on_client_bytes(&b),
                Input::Frame(f) => {
                    s.on_client_frame(f);
                    Ok(())
                }
            };
            count(&s, before);
            queues.flush(&mut s);
            if let Err(e) = result {
                return End::ClientLost(format!("malformed SPDY from the client: {e}"));
            }
            if s.stop().is_some() {
                return End::Client;
            }
        }
    };
    let from_upstream = async {
        loop {
            queues.room(&queues.client).await;
            let bytes = match upstream.next().await {
                Ok(Some(Input::Bytes(b))) => b,
                Ok(Some(Input::Frame(_))) => continue,
                Ok(None) => return End::UpstreamLost("the cluster closed the connection".into()),
                Err(e) => return End::UpstreamLost(e),
            };
            let mut s = lock(switch);
            let before = s.relayed();
            let result = s.on_upstream_bytes(&bytes);
            count(&s, before);
            queues.flush(&mut s);
            if let Err(e) = result {
                return End::UpstreamLost(format!("malformed SPDY from the cluster: {e}"));
            }
            match s.stop() {
                Some(Stop::UpstreamGoAway) => {
                    return End::UpstreamLost("the cluster ended the port-forward (GOAWAY)".into());
                }
                Some(Stop::ClientDone) => return End::Client,
                None => {}
            }
        }
    };
    let duties = async {
        let mut tick = tokio::time::interval(TICK);
        let mut keepalive = tokio::time::interval(KEEPALIVE);
        keepalive.tick().await;
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    let mut s = lock(switch);
                    s.tick();
                    queues.flush(&mut s);
                }
                _ = keepalive.tick() => {
                    let mut s = lock(switch);
                    s.ping_upstream();
                    queues.flush(&mut s);
                }
            }
        }
    };
    tokio::pin!(from_client);
    let end = tokio::select! {
        why = ends.wait() => End::Ended(why),
        end = &mut from_client => end,
        end = from_upstream => end,
        never = duties => never,
    };
    let message = match &end {
        End::Client => "kubetape: the client ended the port-forward".to_string(),
        End::ClientLost(e) => format!("kubetape: lost the connection to the client: {e}"),
        End::UpstreamLost(e) => format!("kubetape: lost the connection to the cluster: {e}"),
        End::Ended(why) => why.message.clone(),
        End::Recording(e) => format!("kubetape: recording failed ({e}); the session was ended"),
    };
    {
        let mut s = lock(switch);
        let open = s.open_connections();
        if open > 0 {
            tracing::info!(open, reason = %message, "ending the port-forward's open connections");
        }
        s.end_all(&message);
        s.tick();
        queues.flush(&mut s);
    }
    if !matches!(end, End::Client | End::ClientLost(_)) {
        // The client reads the errors and closes; what it still sends meanwhile is taken (and
        // refused: no connection is open). A client that does not close is closed after this.
        if tokio::time::timeout(CLIENT_GRACE, &mut from_client)
            .await
            .is_err()
        {
            let mut s = lock(switch);
            s.goaway_client();
            queues.flush(&mut s);
        }
    }
    queues.client.close();
    queues.upstream.close();
    queues.journal.close();
    end
}

/// Records every note in order, and audits each connection's end, until the journal is
/// closed and empty. A recorder that refuses an event ends the session (fail closed).
async fn journal(
    recorder: &Recorder,
    queue: &Queue<Note>,
    audit: &Audit,
    metrics: &Metrics,
) -> Result<(), RecordError> {
    while let Some(notes) = queue.take().await {
        for note in notes {
            if let Note::Data { bytes, .. } = &note {
                metrics.bytes_recorded.inc_by(bytes.len() as u64);
            }
            if let Err(e) = record(recorder, audit, note).await {
                // Nothing more can be recorded: producers must not wait on this queue.
                queue.close();
                return Err(e);
            }
        }
    }
    Ok(())
}

async fn record(recorder: &Recorder, audit: &Audit, note: Note) -> Result<(), RecordError> {
    match note {
        Note::Opened { conn, port } => {
            recorder
                .record(EventKind::PortForwardOpen { conn, port })
                .await
        }
        Note::Data {
            conn,
            direction,
            bytes,
        } => {
            if bytes.len() <= MAX_EVENT_DATA {
                return recorder
                    .record(EventKind::PortForwardData {
                        conn,
                        direction,
                        bytes,
                    })
                    .await;
            }
            for piece in bytes.chunks(MAX_EVENT_DATA) {
                recorder
                    .record(EventKind::PortForwardData {
                        conn,
                        direction,
                        bytes: piece.to_vec(),
                    })
                    .await?;
            }
            Ok(())
        }
        Note::Bytes {
            conn,
            to_pod,
            from_pod,
        } => {
            recorder
                .record(EventKind::PortForwardBytes {
                    conn,
                    to_pod,
                    from_pod,
                })
                .await
        }
        Note::HalfClose { conn, direction } => {
            recorder
                .record(EventKind::PortForwardHalfClose { conn, direction })
                .await
        }
        Note::Ended(e) => {
            recorder
                .record(EventKind::PortForwardEnd {
                    conn: e.conn,
                    outcome: e.outcome,
                    message: e.message.clone(),
                })
                .await?;
            tracing::info!(
                conn = e.conn,
                port = e.port,
                outcome = e.outcome.name(),
                to_pod = e.to_pod,
                from_pod = e.from_pod,
                "port-forward connection ended"
            );
            // The connection already happened: a record that cannot be made durable is said
            // loudly (and counted by the audit log's lost-records metric), not silently dropped.
            if let Err(err) = audit.log.emit(&audit.record(&e)).await {
                tracing::error!(conn = e.conn, error = %err, "port-forward connection's audit record was not made durable");
            }
            Ok(())
        }
    }
}
