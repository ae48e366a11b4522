//! The two connections a forward relays between, as pipes of bytes or messages, and the
//! bounded queues between the relay and their writers.
//!
//! The relay pushes what it must send into a [`Queue`] while it holds the switch's lock, so
//! frames leave in exactly the order the protocol state produced them (header blocks share one
//! compression context per direction); a writer task per connection drains it. Readers wait for
//! room in the queues before they read more, so a peer that does not read holds the other back
//! through TCP rather than through the gateway's memory: SPDY as Kubernetes speaks it has no
//! flow control, and one slow reader stalls its whole connection, as it does through kubelet.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use futures::stream::{SplitSink, SplitStream};
use futures::{SinkExt as _, StreamExt as _};
use hyper_util::rt::TokioIo;
use proto::channel::{self, Frame, Protocol};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _, ReadHalf, WriteHalf};
use tokio::sync::Notify;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, frame::coding::CloseCode};

pub(crate) type Io = TokioIo<hyper::upgrade::Upgraded>;
pub(crate) type Ws = WebSocketStream<Io>;

/// A bounded FIFO between the relay and one consumer (a connection's writer, or the recorder).
/// Pushing never waits (so it can be done under a lock, in order); producers wait for
/// [`Queue::room`] before taking in more work.
#[derive(Debug)]
pub(crate) struct Queue<T> {
    state: Mutex<QueueState<T>>,
    ready: Notify,
    room: Notify,
    limit: usize,
    weight: fn(&T) -> usize,
}

#[derive(Debug)]
struct QueueState<T> {
    items: VecDeque<T>,
    weight: usize,
    closed: bool,
}

impl<T> Queue<T> {
    /// A queue that has room while it holds less than `limit` by `weight`.
    pub fn new(limit: usize, weight: fn(&T) -> usize) -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(QueueState {
                items: VecDeque::new(),
                weight: 0,
                closed: false,
            }),
            ready: Notify::new(),
            room: Notify::new(),
            limit,
            weight,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, QueueState<T>> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Appends `item`; dropped if the queue is closed (its consumer is gone).
    pub fn push(&self, item: T) {
        let mut s = self.lock();
        if s.closed {
            return;
        }
        s.weight += (self.weight)(&item);
        s.items.push_back(item);
        drop(s);
        self.ready.notify_one();
    }

    /// No more items: the consumer takes what is queued, then gets `None`.
    pub fn close(&self) {
        self.lock().closed = true;
        self.ready.notify_one();
        self.room.notify_waiters();
    }

    /// Resolves once the queue is under its limit (or closed).
    pub async fn room(&self) {
        loop {
            let notified = self.room.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let s = self.lock();
                if s.weight < self.limit || s.closed {
                    return;
                }
            }
            notified.await;
        }
    }

    /// Everything queued, waiting for something; `None` once closed and empty.
    pub async fn take(&self) -> Option<Vec<T>> {
        loop {
            let notified = self.ready.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let mut s = self.lock();
                if !s.items.is_empty() {
                    s.weight = 0;
                    let items = s.items.drain(..).collect();
                    drop(s);
                    self.room.notify_waiters();
                    return Some(items);
                }
                if s.closed {
                    return None;
                }
            }
            notified.await;
        }
    }
}

/// Bytes queued for a connection.
#[expect(
    clippy::ptr_arg,
    reason = "a queue's weight function takes a reference to its item"
)]
pub(crate) fn bytes_weight(b: &Vec<u8>) -> usize {
    b.len()
}

/// What a connection carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Carrier {
    /// SPDY bytes on the upgraded connection itself.
    Raw,
    /// SPDY bytes inside binary WebSocket messages (the tunnel): boundaries mean nothing.
    Tunnel,
    /// Channel-protocol frames, one per message (text, base64, for `v4.base64`).
    Channels(Protocol),
}

/// Something read from a connection.
#[derive(Debug)]
pub(crate) enum Input {
    Bytes(Vec<u8>),
    Frame(Frame),
}

/// The read half of a connection.
#[derive(Debug)]
pub(crate) enum Reader {
    Raw(ReadHalf<Io>, Vec<u8>),
    Ws(SplitStream<Ws>, Carrier),
}

/// The write half of a connection.
#[derive(Debug)]
pub(crate) enum Writer {
    Raw(WriteHalf<Io>),
    Ws(SplitSink<Ws, Message>, Carrier),
}

/// Splits an upgraded connection.
pub(crate) fn split_raw(io: Io) -> (Reader, Writer) {
    let (r, w) = tokio::io::split(io);
    (Reader::Raw(r, vec![0u8; 64 << 10]), Writer::Raw(w))
}

/// Splits a WebSocket connection carrying `carrier`.
pub(crate) fn split_ws(ws: Ws, carrier: Carrier) -> (Reader, Writer) {
    let (tx, rx) = ws.split();
    (Reader::Ws(rx, carrier), Writer::Ws(tx, carrier))
}

impl Reader {
    /// The next input; `Ok(None)` at a clean end (EOF, a close frame).
    pub async fn next(&mut self) -> Result<Option<Input>, String> {
        match self {
            Reader::Raw(r, buf) => match r.read(buf).await {
                Ok(0) => Ok(None),
                Ok(n) => Ok(Some(Input::Bytes(buf[..n].to_vec()))),
                Err(e) => Err(e.to_string()),
            },
            Reader::Ws(rx, carrier) => loop {
                let msg = match rx.next().await {
                    None | Some(Ok(Message::Close(_))) => return Ok(None),
                    Some(Err(e)) => return Err(e.to_string()),
                    Some(Ok(m)) => m,
                };
                let frame = match (msg, *carrier) {
                    (Message::Binary(b), Carrier::Tunnel | Carrier::Raw) => {
                        return Ok(Some(Input::Bytes(b.to_vec())));
                    }
                    (Message::Binary(b), Carrier::Channels(p)) if !p.is_base64() => {
                        channel::decode_binary(&b, p)
                    }
                    (Message::Text(t), Carrier::Channels(p)) if p.is_base64() => {
                        channel::decode_text(t.as_str())
                    }
                    // Pings are answered by tungstenite; anything else carries nothing here.
                    _ => continue,
                };
                match frame {
                    Ok(f) => return Ok(Some(Input::Frame(f))),
                    Err(e) => tracing::debug!(error = %e, "ignoring a malformed channel frame"),
                }
            },
        }
    }
}

impl Writer {
    /// Writes what `queue` holds until it is closed and drained, then closes the connection
    /// cleanly (WebSocket close 1000, or a TCP FIN). On a write error the queue is closed, so
    /// producers stop waiting on it.
    pub async fn run(mut self, queue: Arc<Queue<Vec<u8>>>) -> Result<(), String> {
        while let Some(pieces) = queue.take().await {
            if let Err(e) = self.write(pieces).await {
                queue.close();
                return Err(e);
            }
        }
        match &mut self {
            Writer::Raw(w) => {
                let _ = w.shutdown().await;
            }
            Writer::Ws(tx, _) => {
                let close = CloseFrame {
                    code: CloseCode::Normal,
                    reason: "".into(),
                };
                let _ = tx.send(Message::Close(Some(close))).await;
            }
        }
        Ok(())
    }

    async fn write(&mut self, pieces: Vec<Vec<u8>>) -> Result<(), String> {
        match self {
            Writer::Raw(w) => {
                for p in pieces {
                    w.write_all(&p).await.map_err(|e| e.to_string())?;
                }
                w.flush().await.map_err(|e| e.to_string())
            }
            // The tunnel's boundaries mean nothing: one message for everything queued.
            Writer::Ws(tx, Carrier::Tunnel | Carrier::Raw) => {
                let joined = if pieces.len() == 1 {
                    pieces.into_iter().next().unwrap_or_default()
                } else {
                    pieces.concat()
                };
                tx.send(Message::binary(joined))
                    .await
                    .map_err(|e| e.to_string())
            }
            Writer::Ws(tx, Carrier::Channels(p)) => {
                let base64 = p.is_base64();
                for piece in pieces {
                    let msg = if base64 {
                        Message::text(String::from_utf8_lossy(&piece).into_owned())
                    } else {
                        Message::binary(piece)
                    };
                    tx.feed(msg).await.map_err(|e| e.to_string())?;
                }
                tx.flush().await.map_err(|e| e.to_string())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn a_queue_keeps_order_bounds_producers_and_drains_after_close() {
        let q = Queue::new(10, bytes_weight);
        q.push(vec![1; 6]);
        q.push(vec![2; 6]);
        // Over the limit: no room until the consumer takes.
        let waited = tokio::time::timeout(Duration::from_millis(30), q.room()).await;
        assert!(waited.is_err(), "room while over the limit");
        let room = tokio::spawn({
            let q = q.clone();
            async move { q.room().await }
        });
        assert_eq!(q.take().await.unwrap(), [vec![1; 6], vec![2; 6]]);
        tokio::time::timeout(Duration::from_secs(5), room)
            .await
            .expect("room after a take")
            .unwrap();
        q.push(vec![3]);
        q.close();
        q.push(vec![4]);
        assert_eq!(
            q.take().await.unwrap(),
            [vec![3]],
            "what was queued before close"
        );
        assert_eq!(q.take().await, None);
        // A closed queue never blocks a producer.
        tokio::time::timeout(Duration::from_secs(5), q.room())
            .await
            .unwrap();
    }
}
