//! Authentication and authorization through the gateway with real kubectl: ordinary calls are
//! proxied with the caller impersonated (and never with the caller's token); bad tokens and
//! ungranted namespaces are refused with a Kubernetes Status, and nothing is recorded for them.

use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use tests::{Cluster, DevIssuer, Kubectl, run};

const T: Duration = Duration::from_secs(60);

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn claims(
    issuer: &DevIssuer,
    extra: serde_json::Value,
) -> serde_json::Map<String, serde_json::Value> {
    let mut c = serde_json::json!({
        "iss": issuer.issuer(), "aud": issuer.audience(), "sub": "mallory@example.com",
        "groups": ["developers"], "iat": now(), "nbf": now(), "exp": now() + 600,
    });
    for (k, v) in extra.as_object().unwrap() {
        c[k] = v.clone();
    }
    c.as_object().unwrap().clone()
}

/// A JWT with the given header and claims and a signature computed by `sign`.
fn forge(
    header: serde_json::Value,
    claims: &serde_json::Map<String, serde_json::Value>,
    sign: impl Fn(&[u8]) -> Vec<u8>,
) -> String {
    let signing_input = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(serde_json::to_string(claims).unwrap().as_bytes())
    );
    let sig = sign(signing_input.as_bytes());
    format!("{signing_input}.{}", b64(&sig))
}

#[test]
fn rest_calls_are_proxied_as_the_caller() {
    let Some(kubectl) = Kubectl::V1_33.path() else {
        return;
    };
    let cluster = Cluster::start();
    let kc = cluster.kubeconfig("alice@example.com", &["developers"]);

    let (code, out, err) = run(cluster.kubectl(&kubectl, &kc).args(["get", "pods"]), b"", T);
    assert_eq!(code, Some(0), "{}", String::from_utf8_lossy(&err));
    assert!(
        String::from_utf8_lossy(&out).contains("demo"),
        "{}",
        String::from_utf8_lossy(&out)
    );
    let (code, out, err) = run(
        cluster.kubectl(&kubectl, &kc).args(["logs", "demo"]),
        b"",
        T,
    );
    assert_eq!(code, Some(0), "{}", String::from_utf8_lossy(&err));
    assert!(String::from_utf8_lossy(&out).contains("demo-started"));
    // kubectl's own --as must not let a caller choose who the gateway impersonates.
    let (code, _, err) = run(
        cluster.kubectl(&kubectl, &kc).args([
            "get",
            "pods",
            "--as",
            "system:admin",
            "--as-group",
            "system:masters",
        ]),
        b"",
        T,
    );
    assert_eq!(code, Some(0), "{}", String::from_utf8_lossy(&err));
    // Namespaces no role covers are refused with a message that says why.
    let (code, _, err) = run(
        cluster
            .kubectl(&kubectl, &kc)
            .args(["get", "pods", "-n", "kube-system"]),
        b"",
        T,
    );
    assert_ne!(code, Some(0));
    let err = String::from_utf8_lossy(&err);
    assert!(
        err.contains("may not list pods in namespace \"kube-system\""),
        "{err}"
    );

    let requests = cluster.sandbox_requests();
    let proxied: Vec<_> = requests
        .iter()
        .filter(|r| r["path"].as_str().unwrap_or_default().contains("/pods"))
        .collect();
    assert!(proxied.len() >= 3, "{requests:#?}");
    for r in &requests {
        assert_eq!(
            r["authorization"], "valid",
            "the cluster only ever sees the gateway's credential: {r:#}"
        );
        assert_eq!(r["impersonate_user"], "alice@example.com", "{r:#}");
        assert_eq!(
            r["impersonate_groups"],
            serde_json::json!(["developers"]),
            "{r:#}"
        );
        assert!(
            !r["path"]
                .as_str()
                .unwrap()
                .contains("/namespaces/kube-system/"),
            "denied requests never reach the cluster"
        );
    }
    // The caller's token never reaches the cluster in any form.
    let token = cluster
        .issuer()
        .mint(
            "alice@example.com",
            &["developers".into()],
            Duration::from_secs(60),
            Default::default(),
        )
        .token;
    let log = std::fs::read_to_string(cluster.root().join("sandbox-state/requests.jsonl")).unwrap();
    assert!(
        !log.contains(&token[..40]),
        "token prefix found in the cluster's request log"
    );
}

#[test]
fn bad_credentials_are_refused_with_a_status_and_nothing_is_recorded() {
    let Some(kubectl) = Kubectl::V1_33.path() else {
        return;
    };
    let cluster = Cluster::start();
    let issuer = cluster.issuer();
    let jwks: serde_json::Value = serde_json::from_str(&issuer.jwks_json()).unwrap();
    let public_key = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(jwks["keys"][0]["x"].as_str().unwrap())
        .unwrap();
    let kid = issuer.kid().to_string();
    let other = DevIssuer::open_or_create(
        &cluster.root().join("other-issuer"),
        "https://evil.example",
        issuer.audience(),
    )
    .unwrap();
    let minted = |extra: serde_json::Value| {
        let map = extra.as_object().unwrap().clone();
        issuer
            .mint(
                "mallory@example.com",
                &["developers".into()],
                Duration::from_secs(600),
                map,
            )
            .token
    };

    let cases: Vec<(&str, Option<String>)> = vec![
        ("no token", None),
        (
            "expired",
            Some(minted(
                serde_json::json!({"exp": now() - 3600, "iat": now() - 7200, "nbf": now() - 7200}),
            )),
        ),
        (
            "wrong issuer",
            Some(
                other
                    .mint(
                        "mallory@example.com",
                        &["developers".into()],
                        Duration::from_secs(600),
                        Default::default(),
                    )
                    .token,
            ),
        ),
        (
            "wrong audience",
            Some(minted(serde_json::json!({"aud": "someone-else"}))),
        ),
        (
            "alg none",
            Some(forge(
                serde_json::json!({"alg": "none", "typ": "JWT", "kid": kid}),
                &claims(&issuer, serde_json::json!({})),
                |_| Vec::new(),
            )),
        ),
        (
            "HS256 signed with the public key",
            Some(forge(
                serde_json::json!({"alg": "HS256", "typ": "JWT", "kid": kid}),
                &claims(&issuer, serde_json::json!({})),
                |input| {
                    let mut mac = Hmac::<Sha256>::new_from_slice(&public_key).unwrap();
                    mac.update(input);
                    mac.finalize().into_bytes().to_vec()
                },
            )),
        ),
        ("garbage", Some("not-a-jwt".into())),
    ];
    for (name, token) in &cases {
        let kc = cluster.kubeconfig_with_token(&name.replace(' ', "-"), token.as_deref());
        let (code, _, err) = run(
            cluster
                .kubectl(&kubectl, &kc)
                .args(["exec", "demo", "--", "true"]),
            b"",
            T,
        );
        let err = String::from_utf8_lossy(&err);
        assert_ne!(code, Some(0), "{name}: accepted");
        // Without any credential kubectl asks for a username on its (empty) stdin instead.
        assert!(
            token.is_none() || err.contains("logged in") || err.contains("Unauthorized"),
            "{name}: {err}"
        );
        // The stream endpoint itself refuses too, on both the WebSocket and the SPDY attempt.
        for upgrade in ["websocket", "SPDY/3.1"] {
            let status = raw_stream_request(&cluster, token.as_deref(), upgrade);
            assert_eq!(status["code"], 401, "{name} over {upgrade}: {status:#}");
            assert_eq!(status["kind"], "Status", "{name}: {status:#}");
        }
    }

    // A valid identity without a grant for the namespace: 403, with the reason.
    let outsider = cluster.kubeconfig("eve@example.com", &["outsiders"]);
    let (code, _, err) = run(
        cluster
            .kubectl(&kubectl, &outsider)
            .args(["exec", "demo", "--", "true"]),
        b"",
        T,
    );
    assert_ne!(code, Some(0));
    assert!(
        String::from_utf8_lossy(&err)
            .contains("may not get pods \"demo\" in namespace \"default\""),
        "{}",
        String::from_utf8_lossy(&err)
    );
    let developer = cluster.kubeconfig("dan@example.com", &["developers"]);
    let (code, _, err) = run(
        cluster
            .kubectl(&kubectl, &developer)
            .args(["exec", "-n", "prod", "db", "--", "true"]),
        b"",
        T,
    );
    assert_ne!(code, Some(0));
    assert!(
        String::from_utf8_lossy(&err)
            .contains("may not create pods/exec \"db\" in namespace \"prod\""),
        "{}",
        String::from_utf8_lossy(&err)
    );
    let token = cluster
        .issuer()
        .mint(
            "eve@example.com",
            &["outsiders".into()],
            Duration::from_secs(60),
            Default::default(),
        )
        .token;
    let status = raw_stream_request(&cluster, Some(&token), "websocket");
    assert_eq!(status["code"], 403, "{status:#}");

    assert!(
        cluster.sessions().is_empty(),
        "refused requests must leave no recording: {:#?}",
        cluster.sessions()
    );
    let execs = cluster
        .sandbox_requests()
        .into_iter()
        .filter(|r| r["path"].as_str().unwrap_or_default().contains("/exec"))
        .count();
    assert_eq!(execs, 0, "no refused stream reached the cluster");
}

/// An exec upgrade request made directly (no kubectl), returning the Status body.
fn raw_stream_request(cluster: &Cluster, token: Option<&str>, upgrade: &str) -> serde_json::Value {
    let ca = cluster.root().join("gateway-tls/ca.crt");
    let url = format!(
        "https://{}/api/v1/namespaces/default/pods/demo/exec?command=true&stdout=true",
        cluster.gateway_addr
    );
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "--http1.1", "--max-time", "20", "--cacert"])
        .arg(&ca);
    if let Some(t) = token {
        cmd.args(["-H", &format!("Authorization: Bearer {t}")]);
    }
    if upgrade == "websocket" {
        cmd.args([
            "-H",
            "Connection: Upgrade",
            "-H",
            "Upgrade: websocket",
            "-H",
            "Sec-WebSocket-Version: 13",
        ]);
        cmd.args([
            "-H",
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
            "-H",
            "Sec-WebSocket-Protocol: v5.channel.k8s.io",
        ]);
    } else {
        cmd.args([
            "-X",
            "POST",
            "-H",
            "Connection: Upgrade",
            "-H",
            "Upgrade: SPDY/3.1",
            "-H",
            "X-Stream-Protocol-Version: v4.channel.k8s.io",
        ]);
    }
    let (code, out, err) = run(cmd.arg(url), b"", T);
    assert_eq!(code, Some(0), "curl: {}", String::from_utf8_lossy(&err));
    serde_json::from_slice(&out)
        .unwrap_or_else(|e| panic!("not a Status ({e}): {}", String::from_utf8_lossy(&out)))
}
