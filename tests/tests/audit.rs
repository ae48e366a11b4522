//! Audit completeness end to end: real kubectl calls (allowed, a recorded exec, a denied one, a
//! 401) through the gateway produce exactly the matching records, with the CI identity's carried
//! claims, in the store (`kubetape audit --json`) and on the gateway's stdout alike; the stream is
//! sealed at shutdown; a flipped bit in an audit chunk is detected and named.

use std::time::{Duration, Instant};

use storage_schema::layout::AUDIT;
use tests::{Cluster, Kubectl, run};

const CI_USER: &str = "ci:deploy-staging";

fn audit(cluster: &Cluster, args: &[&str]) -> (Option<i32>, Vec<serde_json::Value>, String) {
    let (code, out, err) = run(
        cluster.kubetape().arg("audit").args(args),
        b"",
        Duration::from_secs(60),
    );
    let records = String::from_utf8_lossy(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}")))
        .collect();
    (code, records, String::from_utf8_lossy(&err).into_owned())
}

/// The JSON records the first gateway printed on stdout (its log also holds stderr, which is
/// never a JSON object).
fn stdout_records(cluster: &Cluster) -> Vec<serde_json::Value> {
    std::fs::read_to_string(cluster.root().join("gateway.log"))
        .unwrap()
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn summary(r: &serde_json::Value) -> String {
    let s = |k: &str| r[k].as_str().unwrap_or("-").to_string();
    format!(
        "{} {} {} {}/{} {} {} {}",
        s("decision"),
        s("verb"),
        s("resource"),
        s("namespace"),
        s("name"),
        s("subresource"),
        r["status"],
        s("path")
    )
}

#[test]
fn every_request_is_audited_with_identity_and_ci_claims() {
    let mut cluster = Cluster::start();
    let kubectl = Kubectl::V1_33.path().unwrap();
    let ci = cluster.kubeconfig_for(
        cluster.gateway_addr,
        CI_USER,
        &["developers"],
        &[("job_id", "4711"), ("repository", "org/app")],
    );
    let bad = cluster.kubeconfig_with_token("bad", Some("not-a-jwt"));
    let kubectl_ok = |args: &[&str], want_ok: bool| {
        let (code, _, err) = run(
            cluster.kubectl(&kubectl, &ci).args(args),
            b"",
            Duration::from_secs(30),
        );
        assert_eq!(
            code == Some(0),
            want_ok,
            "kubectl {args:?}: {}",
            String::from_utf8_lossy(&err)
        );
    };
    // Fill kubectl's discovery cache first, so the calls below make only their own requests.
    kubectl_ok(&["api-resources", "-o", "name"], true);
    let before = stdout_records(&cluster).len();

    kubectl_ok(&["get", "pods", "-n", "default", "-o", "name"], true);
    kubectl_ok(&["exec", "demo", "--", "echo", "audited"], true);
    kubectl_ok(&["get", "pods", "-n", "kube-system"], false);
    let (code, _, _) = run(
        cluster.kubectl(&kubectl, &bad).args(["get", "pods"]),
        b"",
        Duration::from_secs(30),
    );
    assert_ne!(code, Some(0));

    // Everything the gateway printed reaches the store (within the flush interval).
    let printed = stdout_records(&cluster);
    let deadline = Instant::now() + Duration::from_secs(20);
    let stored = loop {
        let (code, records, err) = audit(&cluster, &["--json"]);
        assert_eq!(code, Some(0), "{err}");
        if records.len() >= printed.len() {
            break records;
        }
        assert!(
            Instant::now() < deadline,
            "{} records stored, {} printed",
            records.len(),
            printed.len()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(
        stored, printed,
        "the store and stdout must hold the same records"
    );

    // Exactly the CI identity's resource requests, in order. kubectl may re-read discovery
    // (/api, /apis) despite its cache when it takes long enough; those reads are audited too
    // (checked below) but are kubectl's choice, not one of the calls made.
    let discovery: Vec<&serde_json::Value> = stored[before..]
        .iter()
        .filter(|r| r["user"] == CI_USER && r["resource"].is_null())
        .collect();
    for r in &discovery {
        assert_eq!(r["decision"], "allow", "{r:#}");
        assert_eq!(r["method"], "GET", "{r:#}");
        let path = r["path"].as_str().unwrap();
        assert!(
            path == "/api" || path.starts_with("/apis") || path.starts_with("/api/"),
            "{r:#}"
        );
    }
    let mine: Vec<&serde_json::Value> = stored[before..]
        .iter()
        .filter(|r| r["user"] == CI_USER && !r["resource"].is_null())
        .collect();
    let shown: Vec<String> = mine.iter().map(|r| summary(r)).collect();
    let expected = [
        "allow list pods default/- - 200 /api/v1/namespaces/default/pods",
        "allow get pods default/demo - 200 /api/v1/namespaces/default/pods/demo",
        "allow create pods default/demo exec 101 /api/v1/namespaces/default/pods/demo/exec",
        "deny list pods kube-system/- - 403 /api/v1/namespaces/kube-system/pods",
    ];
    assert_eq!(shown, expected, "{mine:#?}");
    for r in &mine {
        assert_eq!(r["claims"]["job_id"], "4711", "{r:#}");
        assert_eq!(r["claims"]["repository"], "org/app", "{r:#}");
        assert_eq!(r["groups"], serde_json::json!(["developers"]), "{r:#}");
        assert_eq!(r["issuer"], cluster.issuer().issuer(), "{r:#}");
        assert!(r["client"].as_str().unwrap().starts_with("127.0.0.1:"));
        assert!(r["user_agent"].as_str().unwrap().starts_with("kubectl"));
        assert!(r["latency_ms"].as_f64().unwrap() >= 0.0);
    }
    assert!(mine[0]["rule"].as_str().unwrap().contains("developers"));
    assert!(
        mine[3]["reason"]
            .as_str()
            .unwrap()
            .contains("\"kube-system\"")
    );
    // The exec names its recording.
    let session = mine[2]["session"].as_str().expect("exec has a session id");
    let sessions = cluster.wait_for_sealed_count(1);
    assert_eq!(
        sessions.len(),
        1,
        "ls lists the recording, not audit streams"
    );
    assert_eq!(sessions[0]["session"], session);

    // The bad token: 401s without an identity, and nothing else from that client.
    let unauthenticated: Vec<&serde_json::Value> = stored[before..]
        .iter()
        .filter(|r| r["user"].is_null())
        .collect();
    assert!(!unauthenticated.is_empty());
    for r in &unauthenticated {
        assert_eq!(r["decision"], "unauthenticated", "{r:#}");
        assert_eq!(r["status"], 401, "{r:#}");
        assert!(r["reason"].as_str().unwrap().starts_with("kubetape: "));
    }
    assert_eq!(
        stored[before..].len(),
        mine.len() + discovery.len() + unauthenticated.len(),
        "no other records: {:#?}",
        &stored[before..]
    );

    // Filters.
    let (_, prod, _) = audit(
        &cluster,
        &["--json", "--user", CI_USER, "-n", "kube-system"],
    );
    assert_eq!(prod.len(), 1);
    assert_eq!(prod[0]["decision"], "deny");
    let (_, recent, _) = audit(&cluster, &["--json", "--since", "1h"]);
    assert_eq!(recent.len(), stored.len());
    let (_, future, _) = audit(&cluster, &["--json", "--since", "2999-01-01T00:00:00Z"]);
    assert!(future.is_empty());
    let (code, _, err) = audit(&cluster, &["--since", "last tuesday"]);
    assert_ne!(code, Some(0));
    assert!(err.contains("neither a duration"), "{err}");
    let (code, out, _) = run(
        cluster.kubetape().args(["audit", "--user", CI_USER]),
        b"",
        Duration::from_secs(30),
    );
    assert_eq!(code, Some(0));
    let table = String::from_utf8_lossy(&out);
    assert!(
        table.contains("job_id=4711") && table.contains("deny"),
        "{table}"
    );
    // Within 120 columns, with a SESSION column naming the exec's recording by the short id
    // `play`, `cat` and `export` take.
    for line in table.lines() {
        assert!(
            line.chars().count() <= 120,
            "{} columns: {line}",
            line.chars().count()
        );
    }
    assert!(table.lines().next().unwrap().contains("SESSION"), "{table}");
    let short: storage_schema::SessionId = session.parse().unwrap();
    let exec_row = table
        .lines()
        .find(|l| l.contains("exec"))
        .unwrap_or_else(|| panic!("no exec row: {table}"));
    assert!(exec_row.contains(&short.short()), "{table}");
    let cat = cluster
        .kubetape()
        .args(["cat", &short.short()])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&cat.stdout),
        "audited\n",
        "the short id opens the session: {}",
        String::from_utf8_lossy(&cat.stderr)
    );

    // Shutdown seals the audit stream.
    let pid = cluster.gateway.child.id().to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while cluster.gateway.child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "gateway did not stop");
        std::thread::sleep(Duration::from_millis(20));
    }
    let (code, out, _) = run(
        cluster.kubetape().args(["verify", "--all"]),
        b"",
        Duration::from_secs(60),
    );
    let verdicts = String::from_utf8_lossy(&out).into_owned();
    assert_eq!(code, Some(0), "{verdicts}");
    let stream = stored[0]["gateway"].as_str().unwrap().to_string();
    assert!(!stream.is_empty());
    // Audit streams have a prefix of their own (`storage_schema::layout`).
    let audit_ids: Vec<String> = std::fs::read_dir(cluster.root().join("store").join(AUDIT))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|id| id != session)
        .collect();
    assert_eq!(audit_ids.len(), 1, "one audit stream: {audit_ids:?}");
    let audit_id = &audit_ids[0];
    assert!(
        verdicts
            .lines()
            .any(|l| l.starts_with(&format!("OK   {audit_id}  audit stream, sealed"))),
        "{verdicts}"
    );

    // Tampering: one flipped bit in the first chunk's body.
    let chunk = cluster
        .root()
        .join(format!("store/{AUDIT}/{audit_id}/chunks/{:020}", 0));
    let mut bytes = std::fs::read(&chunk).unwrap();
    let i = 100.min(bytes.len() - 1);
    bytes[i] ^= 0x01;
    std::fs::write(&chunk, bytes).unwrap();
    let (code, records, err) = audit(&cluster, &["--json"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains(&format!("audit stream {audit_id}"))
            && err.contains("chunk 0: signature does not verify"),
        "{err}"
    );
    assert!(records.is_empty(), "nothing from a damaged stream is shown");
    let (code, out, _) = run(
        cluster.kubetape().args(["verify", "--all"]),
        b"",
        Duration::from_secs(60),
    );
    let verdicts = String::from_utf8_lossy(&out);
    assert_eq!(code, Some(1));
    assert!(verdicts.contains(&format!("FAIL {audit_id}")), "{verdicts}");

    // --since later than the stream's signed seal: the stream holds nothing that late and is
    // not read at all, so its damage is not this query's to report (verify --all's above).
    let later = ["--json", "--since", "2999-01-01T00:00:00Z"];
    let (code, records, err) = audit(&cluster, &later);
    assert_eq!(code, Some(0), "skipped unread: {err}");
    assert!(records.is_empty());
    // --since before the seal still reads it, so the damage is reported.
    let (code, _, err) = audit(&cluster, &["--json", "--since", "1h"]);
    assert_eq!(code, Some(1), "{err}");
    // A seal that does not verify proves nothing: the stream is read, the damage reported.
    let seal = cluster
        .root()
        .join(format!("store/{AUDIT}/{audit_id}/seal.json"));
    let mut envelope: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&seal).unwrap()).unwrap();
    let signature = envelope["signature"].as_str().unwrap();
    let flipped = if signature.starts_with('0') { "1" } else { "0" };
    envelope["signature"] = format!("{flipped}{}", &signature[1..]).into();
    std::fs::write(&seal, serde_json::to_vec_pretty(&envelope).unwrap()).unwrap();
    let (code, _, err) = audit(&cluster, &later);
    assert_eq!(code, Some(1), "a forged seal does not hide a stream: {err}");
    assert!(err.contains(&format!("audit stream {audit_id}")), "{err}");
}

/// With `audit.fail_closed = true` a gateway refuses requests while its audit records can be
/// made durable neither in the store nor in its spool, and serves again once they can; a
/// default gateway on the same store keeps serving. (The spool alone keeping a strict gateway
/// serving through a store outage, and a disk that fills, are in tests/tests/store_outage.rs.)
#[test]
fn fail_closed_gateway_refuses_while_the_audit_log_is_down() {
    let mut cluster = Cluster::start();
    let kubectl = Kubectl::V1_33.path().unwrap();
    // A replica with the same configuration plus fail_closed, and a spool of its own.
    let config = cluster.gateway_config();
    let spool = cluster.root().join("strict-spool");
    std::fs::create_dir_all(&spool).unwrap();
    let mut text = std::fs::read_to_string(&config).unwrap().replacen(
        "[recording]\n",
        &format!("[recording]\nspool_dir = \"{}\"\n", spool.display()),
        1,
    );
    text.push_str("\n[audit]\nfail_closed = true\n");
    std::fs::write(&config, text).unwrap();
    let strict = cluster.start_second_gateway();
    let kc_strict = cluster.kubeconfig_for(strict, "alice@example.com", &["developers"], &[]);
    let kc_default = cluster.kubeconfig("alice@example.com", &["developers"]);
    let get = |kc: &std::path::Path| {
        let (code, _, err) = run(
            cluster.kubectl(&kubectl, kc).args(["get", "pods"]),
            b"",
            Duration::from_secs(30),
        );
        (code, String::from_utf8_lossy(&err).into_owned())
    };
    assert_eq!(get(&kc_strict).0, Some(0));

    // Break the store: the audit streams' directory becomes a file (the gateways already
    // opened their audit streams there, so their next chunk upload fails).
    let audit_dir = cluster.root().join("store").join(AUDIT);
    let moved = cluster.root().join(format!("store/{AUDIT}.moved"));
    std::fs::rename(&audit_dir, &moved).unwrap();
    std::fs::write(&audit_dir, b"not a directory").unwrap();
    // ...and its spool refuses writes (`chattr +i`: not even root may append or create there).
    let frozen = tests::Immutable::set(&spool);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (code, err) = get(&kc_strict);
        if code != Some(0) {
            assert!(err.contains("the audit log cannot be written"), "{err}");
            break;
        }
        assert!(Instant::now() < deadline, "the strict gateway kept serving");
        std::thread::sleep(Duration::from_millis(100));
    }
    let (code, err) = get(&kc_default);
    assert_eq!(code, Some(0), "the default gateway keeps serving: {err}");
    let log = std::fs::read_to_string(cluster.root().join("gateway-2.log")).unwrap();
    assert!(log.contains("AUDIT LOG CANNOT BE WRITTEN"), "{log}");

    // Repair it: the strict gateway opens a new stream and serves again.
    drop(frozen);
    std::fs::remove_file(&audit_dir).unwrap();
    std::fs::rename(&moved, &audit_dir).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (code, err) = get(&kc_strict);
        if code == Some(0) {
            break;
        }
        assert!(Instant::now() < deadline, "never recovered: {err}");
        std::thread::sleep(Duration::from_millis(100));
    }
}
