//! One exec-authorized user pushing stdin that the pod never reads cannot exhaust the gateway's
//! memory: read-ahead is bounded in bytes per session, back-pressure reaches the client, and a
//! message too large for a terminal closes the stream.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use kube::api::AttachParams;
use tests::Cluster;
use tokio_tungstenite::tungstenite::Message;

/// Sessions pushing stdin at once (the review measured six taking RSS from 112 MB to 1.9 GB).
const SESSIONS: usize = 6;
/// What the gateway may grow by while they push, per session: the read-ahead budget (256 KiB),
/// one message in flight (at most 256 KiB, with its upstream frame and write buffer), the
/// recorder's queues (64 events of at most 64 KiB, 8 sealed chunks), a zstd context, and the
/// allocator's slack. Measured: 8-12 MiB per session, reached within a second.
const RSS_BOUND_PER_SESSION_KIB: u64 = 16 * 1024;

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap()
}

async fn client(kubeconfig: &std::path::Path) -> kube::Client {
    let kc = kube::config::Kubeconfig::read_from(kubeconfig).unwrap();
    let config = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .unwrap();
    kube::Client::try_from(config).unwrap()
}

async fn open(client: &kube::Client) -> tokio_tungstenite::WebSocketStream<hyper_util_io::Io> {
    let params = AttachParams::default()
        .stdin(true)
        .stdout(true)
        .stderr(true);
    let req = kube::core::Request::new("/api/v1/namespaces/default/pods")
        .exec("demo", ["sleep", "3600"], &params)
        .unwrap();
    client.connect(req).await.unwrap().into_stream()
}

/// The upgraded connection type kube hands out.
mod hyper_util_io {
    pub type Io = hyper_util::rt::TokioIo<hyper::upgrade::Upgraded>;
}

#[test]
fn six_sessions_flooding_stdin_keep_the_gateway_small() {
    let cluster = Cluster::start();
    let kc = cluster.kubeconfig("bob@example.com", &["developers"]);
    let pid = cluster.gateway.child.id();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let client = client(&kc).await;
        let before = rss_kib(pid);
        let sent: Vec<Arc<AtomicU64>> = (0..SESSIONS).map(|_| Arc::default()).collect();
        let mut pushers = Vec::new();
        for counter in &sent {
            let ws = open(&client).await;
            let counter = counter.clone();
            pushers.push(tokio::spawn(async move {
                let (mut tx, mut rx) = ws.split();
                // Keep reading so pings are answered; the pod writes nothing.
                tokio::spawn(async move { while rx.next().await.is_some() {} });
                // The largest message the gateway takes (256 KiB), as fast as it takes them.
                let mut frame = vec![b'x'; 256 << 10];
                frame[0] = 0; // stdin
                loop {
                    if tx.send(Message::binary(frame.clone())).await.is_err() {
                        break;
                    }
                    counter.fetch_add(frame.len() as u64 - 1, Ordering::Relaxed);
                }
            }));
        }
        // Push for a while, watching the gateway's memory.
        let mut samples = Vec::new();
        for _ in 0..40 {
            tokio::time::sleep(Duration::from_millis(250)).await;
            samples.push(rss_kib(pid));
        }
        eprintln!("rss samples: {samples:?}");
        let peak = samples.iter().copied().max().unwrap();
        let accepted: Vec<u64> = sent.iter().map(|c| c.load(Ordering::Relaxed)).collect();
        eprintln!(
            "stdin flood: RSS {before} KiB before, peak {peak} KiB; bytes each client got to send: {accepted:?}"
        );
        assert!(
            peak < before + SESSIONS as u64 * RSS_BOUND_PER_SESSION_KIB,
            "gateway RSS grew from {before} to {peak} KiB"
        );
        // Back-pressure reached every client: what each could send is bounded by buffers
        // (socket buffers on both hops, the read-ahead, the sandbox's queue, the pod's pipe),
        // not by its will: and once they are full, nothing more is taken (below).
        for (i, n) in accepted.iter().enumerate() {
            assert!(*n < 128 << 20, "session {i} pushed {n} bytes unhindered");
        }
        let settled = accepted.clone();
        tokio::time::sleep(Duration::from_secs(1)).await;
        let later: Vec<u64> = sent.iter().map(|c| c.load(Ordering::Relaxed)).collect();
        assert_eq!(settled, later, "clients kept sending while the pod read nothing");

        // A message far beyond what a terminal sends ends that stream.
        let ws = open(&client).await;
        let (mut tx, mut rx) = ws.split();
        let mut huge = vec![b'y'; 4 << 20];
        huge[0] = 0;
        let _ = tx.send(Message::binary(huge)).await;
        let closed = tokio::time::timeout(Duration::from_secs(20), async {
            loop {
                match rx.next().await {
                    None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return,
                    Some(Ok(_)) => {}
                }
            }
        })
        .await;
        assert!(closed.is_ok(), "a 4 MiB stdin message did not end the stream");
        for p in pushers {
            p.abort();
        }
    });
}
