//! `GET .../pods/{pod}/log`: a container's main-process output so far, and with `follow=true`
//! what it writes next, until it exits or the client goes away.

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use tokio::sync::{broadcast, mpsc};

use super::resources::Query;
use crate::cluster::Pod;
use crate::process::Output;
use crate::respond::{self, Body, Reject};

/// Picks the container a request names, or the only one (as the API server does).
pub(crate) fn resolve_container(
    pod: &Pod,
    name: Option<&str>,
) -> Result<std::sync::Arc<crate::cluster::Container>, Reject> {
    match name.filter(|n| !n.is_empty()) {
        Some(n) => pod.find(n).ok_or_else(|| {
            Reject::bad_request(format!(
                "container {n} is not valid for pod {}",
                pod.spec.name
            ))
        }),
        None if pod.containers.len() == 1 => Ok(pod.containers[0].clone()),
        None => {
            let names: Vec<&str> = pod
                .containers
                .iter()
                .map(|c| c.spec.name.as_str())
                .collect();
            Err(Reject::bad_request(format!(
                "a container name must be specified for pod {}, choose one of: [{}]",
                pod.spec.name,
                names.join(" ")
            )))
        }
    }
}

/// The last `n` lines of `log` (a trailing partial line counts as one).
fn tail_lines(log: &[u8], n: u64) -> &[u8] {
    if n == 0 {
        return &[];
    }
    let body = log.strip_suffix(b"\n").unwrap_or(log);
    let mut seen = 0;
    for (i, b) in body.iter().enumerate().rev() {
        if *b == b'\n' {
            seen += 1;
            if seen == n {
                return &log[i + 1..];
            }
        }
    }
    log
}

pub(crate) fn logs(pod: &Pod, q: &Query) -> Response<Body> {
    let container = match resolve_container(pod, q.get("container")) {
        Ok(c) => c,
        Err(reject) => return reject.into_response(),
    };
    if q.flag("previous") {
        return respond::bad_request(format!(
            "previous terminated container \"{}\" in pod \"{}\" not found",
            container.spec.name, pod.spec.name
        ));
    }
    let (tail, limit) = match (q.number("tailLines"), q.number("limitBytes")) {
        (Ok(t), Ok(l)) => (t, l.map(|l| l as usize)),
        (Err(reject), _) | (_, Err(reject)) => return reject.into_response(),
    };
    let stream = container.main.logs(q.flag("follow"));
    let mut first = stream.snapshot.as_slice();
    if let Some(n) = tail {
        first = tail_lines(first, n);
    }
    if let Some(l) = limit {
        first = &first[..first.len().min(l)];
    }
    let body = match stream.follow {
        None => respond::full(Bytes::copy_from_slice(first)),
        Some(rx) => {
            let (tx, body_rx) = mpsc::channel(8);
            let first = Bytes::copy_from_slice(first);
            let remaining = limit.map(|l| l - first.len());
            tokio::spawn(follow(first, rx, tx, remaining));
            respond::channel(body_rx)
        }
    };
    let mut resp = Response::new(body);
    *resp.status_mut() = StatusCode::OK;
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    resp
}

async fn follow(
    first: Bytes,
    mut rx: broadcast::Receiver<Output>,
    tx: mpsc::Sender<Bytes>,
    mut remaining: Option<usize>,
) {
    if !first.is_empty() && tx.send(first).await.is_err() {
        return;
    }
    while remaining != Some(0) {
        let msg = tokio::select! {
            msg = rx.recv() => msg,
            () = tx.closed() => return,
        };
        let mut data = match msg {
            Ok(Output::Stdout(b) | Output::Stderr(b)) => b,
            Ok(Output::Exit(_)) | Err(broadcast::error::RecvError::Closed) => return,
            Err(broadcast::error::RecvError::Lagged(_)) => continue,
        };
        if let Some(r) = remaining.as_mut() {
            data.truncate(*r);
            *r -= data.len();
        }
        if !data.is_empty() && tx.send(data).await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tails() {
        assert_eq!(tail_lines(b"a\nb\nc\n", 2), b"b\nc\n");
        assert_eq!(tail_lines(b"a\nb\nc", 2), b"b\nc");
        assert_eq!(tail_lines(b"a\nb\n", 5), b"a\nb\n");
        assert_eq!(tail_lines(b"a\n", 0), b"");
        assert_eq!(tail_lines(b"", 3), b"");
    }
}
