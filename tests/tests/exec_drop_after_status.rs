//! A cluster that sends the exit Status and then drops the connection at once (no close frame),
//! over the gateway's first choice, WebSocket v5: the exit code still reaches every kubectl and
//! the recording; and a client that goes away is recorded as `client disconnected`, not as a
//! failed exit.

use std::io::{BufRead, BufReader};
use std::process::Stdio;

use storage_schema::store::{SessionReader, Store};
use storage_schema::{EventKind, Keyring};
use tests::{Cluster, DEFAULT_POLICY, Kubectl, exec_checks};

#[test]
fn exit_codes_survive_a_dropped_upstream() {
    let cluster = Cluster::start_custom(DEFAULT_POLICY, &["--drop-after-status"]);
    exec_checks::every_version(&cluster);

    // A client that disconnects mid-session: kubectl killed once the command runs.
    let Some(bin) = Kubectl::V1_33.path() else {
        return;
    };
    let kc = cluster.kubeconfig("quitter@example.com", &["developers"]);
    let before = cluster.sessions().len();
    let mut child = cluster
        .kubectl(&bin, &kc)
        .args(["exec", "demo", "--", "sh", "-c", "echo started; sleep 60"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("kubectl");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line, "started\n");
    child.kill().unwrap();
    child.wait().unwrap();
    let sessions = cluster.wait_for_sealed_count(before + 1);
    let quit = sessions
        .iter()
        .find(|s| s["meta"]["identity"]["user"] == "quitter@example.com")
        .expect("the quitter's session");
    assert!(
        quit["exit"].is_null(),
        "no exit code for a client that left: {quit:#}"
    );
    let id = quit["session"].as_str().unwrap().parse().unwrap();
    let markers = tokio::runtime::Runtime::new().unwrap().block_on(async {
        let store = Store::open(&cluster.store_url).unwrap();
        let ring = Keyring::open(&cluster.keys).unwrap();
        let reader = SessionReader::open(&store, &ring, id).await.unwrap();
        let mut markers = Vec::new();
        reader
            .for_each_event(|e| {
                if let EventKind::Marker { text } = &e.kind {
                    markers.push(text.clone());
                }
                assert!(!matches!(e.kind, EventKind::Exit { .. }), "an exit event");
            })
            .await
            .unwrap();
        markers
    });
    assert_eq!(markers, ["client disconnected"]);
}
