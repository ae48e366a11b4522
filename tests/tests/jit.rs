//! Just-in-time access end to end, with real kubectl and the `kubetape` CLI: denied →
//! request → self-approval refused → approval by someone else → exec works → the grant expires:
//! the next request is denied and the live session opened under it is ended with a message.
//! Two gateway processes share the store and agree throughout.

use std::io::{BufRead, BufReader, Write};
use std::process::Stdio;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use tests::{Cluster, Kubectl, run};

const T: Duration = Duration::from_secs(60);
/// The grant's lifetime: short, so the test waits for little more than it.
const TTL_SECS: u64 = 5;

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `kubetape request ROLE -n prod --reason REASON [EXTRA…] --json` as the user of `kubeconfig`;
/// the created request, as printed.
fn request_prod(
    cluster: &Cluster,
    kubeconfig: &std::path::Path,
    role: &str,
    reason: &str,
    extra: &[&str],
) -> serde_json::Value {
    let mut args = vec!["request", role, "--namespace", "prod", "--reason", reason];
    args.extend_from_slice(extra);
    args.push("--json");
    let (code, out, err) = run(cluster.kubetape_as(kubeconfig).args(&args), b"", T);
    assert_eq!(code, Some(0), "{}", text(&err));
    serde_json::from_slice(&out).unwrap()
}

#[test]
fn request_approve_exec_expire() {
    let Some(kubectl) = Kubectl::V1_33.path() else {
        return;
    };
    let cluster = Cluster::start();
    // alice is a developer and an approver herself; bob approves; carol is neither.
    let alice = cluster.kubeconfig("alice@example.com", &["developers", "sre"]);
    let bob = cluster.kubeconfig("bob@example.com", &["sre"]);
    let carol = cluster.kubeconfig("carol@example.com", &["developers"]);
    let exec_prod = |kc: &std::path::Path, word: &str| {
        run(
            cluster
                .kubectl(&kubectl, kc)
                .args(["exec", "-n", "prod", "db", "--", "echo", word]),
            b"",
            T,
        )
    };

    // Denied, and told how to ask.
    let (code, _, err) = exec_prod(&alice, "before");
    assert_ne!(code, Some(0));
    assert!(
        text(&err).contains("kubetape request prod-debug --namespace prod"),
        "{}",
        text(&err)
    );

    // Bad requests are refused with the reason.
    for (args, want) in [
        (
            vec!["request", "developer", "-n", "prod", "--reason", "x"],
            "no requestable role \"developer\"; roles you may request: prod-debug",
        ),
        (
            vec!["request", "prod-debug", "-n", "staging", "--reason", "x"],
            "role \"prod-debug\" does not apply in namespace \"staging\"",
        ),
        (
            vec![
                "request",
                "prod-debug",
                "-n",
                "prod",
                "--reason",
                "x",
                "--ttl",
                "2h",
            ],
            "outside 1s..1h",
        ),
        (
            vec!["request", "prod-debug", "-n", "prod", "--reason", " "],
            "a reason is required",
        ),
    ] {
        let (code, _, err) = run(cluster.kubetape_as(&alice).args(&args), b"", T);
        assert_ne!(code, Some(0), "{args:?}");
        assert!(text(&err).contains(want), "{args:?}: {}", text(&err));
    }

    // A second gateway replica, up before the request exists.
    let (_replica, replica_addr) = cluster.start_replica("replica");
    let bob_on_replica = cluster.via(&bob, replica_addr);

    // The request.
    let ttl = format!("{TTL_SECS}s");
    let created = request_prod(
        &cluster,
        &alice,
        "prod-debug",
        "INC-7: db is slow",
        &["--ttl", &ttl],
    );
    let id = created["id"].as_str().unwrap().to_string();
    assert_eq!(created["state"], "pending");

    // Separation of duties, and approver groups.
    let (code, _, err) = run(cluster.kubetape_as(&alice).args(["approve", &id]), b"", T);
    assert_ne!(code, Some(0));
    assert!(
        text(&err).contains("separation of duties"),
        "{}",
        text(&err)
    );
    let (code, _, err) = run(cluster.kubetape_as(&carol).args(["approve", &id]), b"", T);
    assert_ne!(code, Some(0));
    assert!(
        text(&err).contains(
            "may not approve requests for role \"prod-debug\": approvers are members of sre"
        ),
        "{}",
        text(&err)
    );
    assert_ne!(exec_prod(&alice, "pending").0, Some(0), "not approved yet");

    // bob sees it as his to decide (through the replica), and approves.
    let (code, out, err) = run(
        cluster
            .kubetape_as(&bob_on_replica)
            .args(["requests", "--json"]),
        b"",
        T,
    );
    assert_eq!(code, Some(0), "{}", text(&err));
    let listed: serde_json::Value = serde_json::from_slice(&out).unwrap();
    let mine = listed["requests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == id.as_str())
        .expect("the approver sees the pending request");
    assert_eq!(mine["can_decide"], true);
    assert_eq!(mine["user"], "alice@example.com");
    let approving = Instant::now();
    let (code, out, err) = run(cluster.kubetape_as(&bob).args(["approve", &id]), b"", T);
    assert_eq!(code, Some(0), "{}", text(&err));
    assert!(text(&out).contains("approved until"), "{}", text(&out));
    // Exactly one decision, whichever gateway is asked.
    let (code, _, err) = run(
        cluster.kubetape_as(&bob_on_replica).args(["deny", &id]),
        b"",
        T,
    );
    assert_ne!(code, Some(0));
    assert!(
        text(&err).contains("already approved by \"bob@example.com\""),
        "{}",
        text(&err)
    );

    // Allowed now, at once, on this gateway and on a replica sharing its store.
    let (code, out, err) = exec_prod(&alice, "granted");
    assert_eq!(code, Some(0), "{}", text(&err));
    assert_eq!(text(&out), "granted\n");
    let alice_on_replica = cluster.via(&alice, replica_addr);
    let (code, out, err) = exec_prod(&alice_on_replica, "on-replica");
    assert_eq!(code, Some(0), "{}", text(&err));
    assert_eq!(text(&out), "on-replica\n");
    assert_ne!(
        exec_prod(&carol, "not-mine").0,
        Some(0),
        "the grant is alice's only"
    );

    // A live session under the grant ends when it expires.
    let mut live = cluster
        .kubectl(&kubectl, &alice)
        .args(["exec", "-i", "-n", "prod", "db", "--", "cat"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = live.stdin.take().unwrap();
    let (tx, rx) = mpsc::channel();
    let stdout = live.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    stdin.write_all(b"ping\n").unwrap();
    stdin.flush().unwrap();
    assert_eq!(
        rx.recv_timeout(Duration::from_secs(TTL_SECS)).unwrap(),
        "ping",
        "the live session works"
    );
    let deadline = Instant::now() + Duration::from_secs(TTL_SECS + 20);
    let status = loop {
        if let Some(s) = live.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "the session outlived its grant");
        std::thread::sleep(Duration::from_millis(20));
    };
    let ended = approving.elapsed();
    drop(stdin);
    let mut err = String::new();
    std::io::Read::read_to_string(&mut live.stderr.take().unwrap(), &mut err).unwrap();
    assert!(!status.success());
    assert!(
        err.contains(&format!(
            "grant {id} (role prod-debug in namespace prod) expired"
        )),
        "{err}"
    );
    assert!(
        ended >= Duration::from_millis(TTL_SECS * 1000 - 500),
        "ended {ended:?} after the approval, before the grant's {TTL_SECS}s"
    );
    eprintln!("live session ended {ended:?} after approval (TTL {TTL_SECS}s)");

    // The next request is denied again.
    let (code, _, err) = exec_prod(&alice, "after");
    assert_ne!(code, Some(0));
    assert!(
        text(&err).contains("may not create pods/exec \"db\" in namespace \"prod\""),
        "{}",
        text(&err)
    );

    // All three sessions (two gateways) were recorded under the grant, sealed, with who approved and why.
    let sessions = cluster.wait_for_sealed_count(3);
    let under_grant: Vec<_> = sessions
        .iter()
        .filter(|s| s["meta"]["grant"]["id"] == id.as_str())
        .collect();
    assert_eq!(under_grant.len(), 3, "{sessions:#?}");
    for s in &under_grant {
        assert_eq!(s["meta"]["grant"]["approver"], "bob@example.com", "{s:#}");
        assert_eq!(s["meta"]["grant"]["reason"], "INC-7: db is slow", "{s:#}");
        assert_eq!(s["state"], "sealed", "{s:#}");
    }
    assert!(
        under_grant.iter().any(|s| s["exit"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("expired")),
        "{under_grant:#?}"
    );

    // The requester's view: expired. A denied request stays denied.
    let (_, out, _) = run(
        cluster.kubetape_as(&alice).args(["requests", "--json"]),
        b"",
        T,
    );
    let listed: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(listed["requests"][0]["state"], "expired", "{listed:#}");
    let carols = request_prod(&cluster, &carol, "prod-debug", "curious", &[]);
    let carols = carols["id"].as_str().unwrap();
    let (code, out, err) = run(
        cluster
            .kubetape_as(&bob)
            .args(["deny", carols, "--reason", "no incident"]),
        b"",
        T,
    );
    assert_eq!(code, Some(0), "{}", text(&err));
    assert!(text(&out).contains("denied"), "{}", text(&out));
    assert_ne!(exec_prod(&carol, "denied").0, Some(0));
}

/// Revoking a user cancels their grants: lifting the revocation restores their own bindings
/// (staging), not the grant approved before it (prod).
#[test]
fn revocation_cancels_grants_for_good() {
    let Some(kubectl) = Kubectl::V1_33.path() else {
        return;
    };
    let cluster = Cluster::start();
    let alice = cluster.kubeconfig("alice@example.com", &["developers"]);
    let bob = cluster.kubeconfig("bob@example.com", &["sre"]);
    let exec = |ns: &str, pod: &str| {
        run(
            cluster
                .kubectl(&kubectl, &alice)
                .args(["exec", "-n", ns, pod, "--", "echo", "hi"]),
            b"",
            T,
        )
    };
    let created = request_prod(&cluster, &alice, "prod-debug", "INC-9", &["--ttl", "30m"]);
    let id = created["id"].as_str().unwrap().to_string();
    let (code, _, err) = run(cluster.kubetape_as(&bob).args(["approve", &id]), b"", T);
    assert_eq!(code, Some(0), "{}", text(&err));
    assert_eq!(exec("prod", "db").0, Some(0), "the grant works");

    let admin = |args: &[&str]| {
        let (code, _, err) = run(cluster.gateway_admin().args(args), b"", T);
        assert_eq!(code, Some(0), "{}", text(&err));
    };
    admin(&["--user", "alice@example.com", "--reason", "laptop stolen"]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while exec("staging", "web").0 == Some(0) {
        assert!(
            Instant::now() < deadline,
            "the revocation never took effect"
        );
    }
    admin(&["--user", "alice@example.com", "--lift"]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while exec("staging", "web").0 != Some(0) {
        assert!(Instant::now() < deadline, "lifting never took effect");
    }
    let (code, _, err) = exec("prod", "db");
    assert_ne!(code, Some(0), "the grant was cancelled by the revocation");
    assert!(
        text(&err).contains("kubetape request prod-debug"),
        "{}",
        text(&err)
    );
}
