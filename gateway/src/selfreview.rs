//! `kubectl auth can-i`, `can-i --list` and `auth whoami` through the gateway: the self-review
//! APIs answered by the gateway for the caller, because the question is what *the caller* may
//! do *through the gateway*, which is two answers ANDed — the gateway's policy (bindings and
//! live just-in-time grants) and the cluster's RBAC for the identity the gateway impersonates.
//!
//! | API (`POST`) | answered with |
//! |---|---|
//! | `authorization.k8s.io/v1` `selfsubjectaccessreviews` | allowed iff the policy allows it AND the cluster (asked with impersonation) allows it; the reason names both |
//! | `authorization.k8s.io/v1` `selfsubjectrulesreviews` | the policy's rules for the namespace (roles bound, grants live in it), each kept only as far as the cluster's rules for the impersonated identity cover it |
//! | `authentication.k8s.io/{v1,v1beta1,v1alpha1}` `selfsubjectreviews` | the mapped username and groups, with the issuer, carried claims and live grants as extras |
//!
//! Any authenticated identity may ask these about itself (as every Kubernetes user may); they
//! reveal nothing about anybody else.

use bytes::Bytes;
use http::{Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Limited};
use serde_json::{Value, json};

use crate::authn::Identity;
use crate::jit::Grant;
use crate::policy::{Attributes, Decision, Elevation, Policy, ResourceRequest, Rule};
use crate::status::{self, Body};
use crate::upstream::{self, Impersonation};

/// Which self-review a request is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Review {
    Access,
    Rules,
    /// `whoami`, with the API version asked for (kubectl falls back through them).
    Subject(&'static str),
}

/// The self-review `method` + `path` asks for, if any.
pub fn review_of(method: &http::Method, path: &str) -> Option<Review> {
    if method != http::Method::POST {
        return None;
    }
    match path.trim_end_matches('/') {
        "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews" => Some(Review::Access),
        "/apis/authorization.k8s.io/v1/selfsubjectrulesreviews" => Some(Review::Rules),
        "/apis/authentication.k8s.io/v1/selfsubjectreviews" => Some(Review::Subject("v1")),
        "/apis/authentication.k8s.io/v1beta1/selfsubjectreviews" => {
            Some(Review::Subject("v1beta1"))
        }
        "/apis/authentication.k8s.io/v1alpha1/selfsubjectreviews" => {
            Some(Review::Subject("v1alpha1"))
        }
        _ => None,
    }
}

/// Largest review body read (they are a few hundred bytes).
const MAX_BODY: usize = 64 << 10;

fn json_response(code: StatusCode, v: &Value) -> Response<Body> {
    Response::builder()
        .status(code)
        .header(header::CONTENT_TYPE, "application/json")
        .body(status::full(serde_json::to_vec(v).unwrap_or_default()))
        .expect("static response parts")
}

/// Answers a self-review for `identity`, whose live grants are `grants`.
pub async fn handle(
    client: &kube::Client,
    policy: &Policy,
    review: Review,
    req: Request<hyper::body::Incoming>,
    identity: &Identity,
    grants: &[Grant],
) -> Response<Body> {
    let (parts, body) = req.into_parts();
    let body: Bytes = match Limited::new(body, MAX_BODY).collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => return status::bad_request(format!("kubetape: review body unreadable: {e}")),
    };
    let who = Impersonation {
        user: identity.user.clone(),
        groups: identity.groups.clone(),
        session: None,
    };
    match review {
        Review::Subject(version) => {
            json_response(StatusCode::CREATED, &whoami(identity, grants, version))
        }
        Review::Access | Review::Rules => {
            // kubectl ≥ 1.33 sends reviews as protobuf, older ones as JSON; the cluster is asked
            // in JSON, and the answer is JSON (which every kubectl accepts).
            let content_type = parts
                .headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            let object = if content_type.starts_with(proto::pod_protobuf::CONTENT_TYPE) {
                proto::pod_protobuf::decode_review(&body).map_err(|e| e.to_string())
            } else {
                serde_json::from_slice::<Value>(&body).map_err(|e| e.to_string())
            };
            let mut object = match object {
                Ok(o) if o.is_object() => o,
                Ok(_) => return status::bad_request("kubetape: the review is not an object"),
                Err(e) => {
                    return status::bad_request(format!(
                        "kubetape: the review cannot be read: {e}"
                    ));
                }
            };
            let json_body = Bytes::from(serde_json::to_vec(&object).unwrap_or_default());
            let cluster = ask_cluster(client, &parts, json_body, &who).await;
            let elevations: Vec<Elevation<'_>> = grants
                .iter()
                .map(|g| Elevation {
                    id: &g.id,
                    role: &g.role,
                    namespace: &g.namespace,
                })
                .collect();
            let status = if review == Review::Access {
                access(policy, identity, &elevations, &object["spec"], cluster)
            } else {
                rules(policy, identity, &elevations, &object["spec"], cluster)
            };
            object["status"] = status;
            json_response(StatusCode::CREATED, &object)
        }
    }
}

/// The cluster's `status` for the same review, asked as the impersonated caller.
async fn ask_cluster(
    client: &kube::Client,
    parts: &http::request::Parts,
    body: Bytes,
    who: &Impersonation,
) -> Result<Value, String> {
    let mut headers = upstream::request_headers(&parts.headers);
    headers.insert(
        header::CONTENT_TYPE,
        "application/json".parse().expect("static"),
    );
    headers.insert(header::ACCEPT, "application/json".parse().expect("static"));
    upstream::impersonate(&mut headers, who).map_err(|e| e.to_string())?;
    let mut req = Request::post(parts.uri.path())
        .body(kube::client::Body::from(body))
        .map_err(|e| e.to_string())?;
    *req.headers_mut() = headers;
    let resp = client.send(req).await.map_err(|e| e.to_string())?;
    let code = resp.status();
    let bytes = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    let v: Value = serde_json::from_slice(&bytes).map_err(|e| format!("HTTP {code}: {e}"))?;
    if !code.is_success() {
        return Err(format!(
            "HTTP {}: {}",
            code.as_u16(),
            v["message"].as_str().unwrap_or("")
        ));
    }
    Ok(v["status"].clone())
}

fn str_of<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or("")
}

/// SelfSubjectAccessReview: the policy AND the cluster.
pub fn access(
    policy: &Policy,
    identity: &Identity,
    grants: &[Elevation<'_>],
    spec: &Value,
    cluster: Result<Value, String>,
) -> Value {
    let attrs = if let Some(r) = spec.get("resourceAttributes").filter(|r| r.is_object()) {
        let mut verb = str_of(r, "verb").to_string();
        let resource = str_of(r, "resource").to_string();
        let subresource = str_of(r, "subresource").to_string();
        // As the gateway decides streams: exec, attach and port-forward are `create`.
        if resource == "pods"
            && ["exec", "attach", "portforward"].contains(&subresource.as_str())
            && verb == "get"
        {
            verb = "create".into();
        }
        Attributes::Resource(ResourceRequest {
            verb,
            api_group: str_of(r, "group").to_string(),
            version: str_of(r, "version").to_string(),
            namespace: str_of(r, "namespace").to_string(),
            resource,
            subresource,
            name: str_of(r, "name").to_string(),
        })
    } else if let Some(n) = spec.get("nonResourceAttributes").filter(|r| r.is_object()) {
        Attributes::NonResource {
            path: str_of(n, "path").to_string(),
            method: match str_of(n, "verb") {
                "get" => "get".to_string(),
                other => other.to_string(),
            },
        }
    } else {
        return json!({"allowed": false, "evaluationError": "kubetape: the review names no resourceAttributes or nonResourceAttributes"});
    };
    let ours = policy.decide(identity, &attrs, grants);
    let (cluster_allowed, cluster_reason) = match &cluster {
        Ok(s) => (
            s["allowed"].as_bool().unwrap_or(false),
            str_of(s, "reason").to_string(),
        ),
        Err(e) => (false, format!("the cluster could not be asked: {e}")),
    };
    match ours {
        Decision::Allow(a) if cluster_allowed => json!({
            "allowed": true,
            "reason": format!("kubetape: {}; cluster: {}", a.rule, if cluster_reason.is_empty() { "allowed" } else { &cluster_reason }),
        }),
        Decision::Allow(a) => json!({
            "allowed": false,
            "reason": format!("kubetape allows it ({}), but the cluster does not for the impersonated identity{}", a.rule, if cluster_reason.is_empty() { String::new() } else { format!(": {cluster_reason}") }),
        }),
        Decision::Deny(message) => json!({"allowed": false, "reason": message}),
    }
}

/// The policy rules that apply to `identity` in `namespace`: its bindings' roles' rules and
/// its live grants' (in the grant's namespace).
fn policy_rules<'a>(
    policy: &'a Policy,
    identity: &Identity,
    grants: &[Elevation<'_>],
    namespace: &str,
) -> Vec<&'a Rule> {
    let mut out = Vec::new();
    let applies = |r: &Rule| {
        r.namespaces
            .iter()
            .any(|p| crate::policy::glob(p, namespace) || p == "*")
    };
    for b in policy.bindings.iter().filter(|b| b.matches(identity)) {
        for role in b.roles.iter().filter_map(|n| policy.role(n)) {
            out.extend(role.rules.iter().filter(|r| applies(r)));
        }
    }
    for g in grants.iter().filter(|g| g.namespace == namespace) {
        if let Some(role) = policy.role(g.role).filter(|r| r.requestable) {
            out.extend(role.rules.iter().filter(|r| applies(r)));
        }
    }
    out
}

/// Whether the cluster's `resourceRules` cover `verb` on `group`/`resource`.
fn cluster_covers(rules: &[Value], group: &str, resource: &str, verb: &str) -> bool {
    let has = |v: &Value, key: &str, want: &str| {
        v[key]
            .as_array()
            .is_some_and(|a| a.iter().any(|x| x == "*" || x == want))
    };
    let (res, _) = resource.split_once('/').unwrap_or((resource, ""));
    rules.iter().any(|r| {
        has(r, "apiGroups", group)
            && has(r, "verbs", verb)
            && (has(r, "resources", resource)
                || r["resources"]
                    .as_array()
                    .is_some_and(|a| a.iter().any(|x| x.as_str() == Some(&format!("{res}/*")))))
            && r["resourceNames"].as_array().is_none_or(Vec::is_empty)
    })
}

/// SelfSubjectRulesReview: the policy's rules for the namespace, narrowed to what the cluster
/// allows.
pub fn rules(
    policy: &Policy,
    identity: &Identity,
    grants: &[Elevation<'_>],
    spec: &Value,
    cluster: Result<Value, String>,
) -> Value {
    let namespace = str_of(spec, "namespace");
    let (cluster_rules, error) = match &cluster {
        Ok(s) => (
            s["resourceRules"].as_array().cloned().unwrap_or_default(),
            s["evaluationError"].as_str().map(str::to_string),
        ),
        Err(e) => (
            Vec::new(),
            Some(format!("the cluster could not be asked: {e}")),
        ),
    };
    let mut resource_rules = Vec::new();
    for rule in policy_rules(policy, identity, grants, namespace) {
        for group in &rule.api_groups {
            for resource in &rule.resources {
                let verbs: Vec<&String> = rule
                    .verbs
                    .iter()
                    .filter(|v| cluster_covers(&cluster_rules, group, resource, v))
                    .collect();
                if verbs.is_empty() {
                    continue;
                }
                let mut r = json!({
                    "verbs": verbs,
                    "apiGroups": [group],
                    "resources": [resource],
                });
                if !rule.resource_names.is_empty() {
                    r["resourceNames"] = json!(rule.resource_names);
                }
                resource_rules.push(r);
            }
        }
    }
    let mut status = json!({
        "resourceRules": resource_rules,
        // Discovery and version reads: what the gateway allows any authenticated identity.
        "nonResourceRules": [{"verbs": ["get"], "nonResourceURLs": ["*"]}],
        "incomplete": error.is_some(),
    });
    if let Some(e) = error {
        status["evaluationError"] = json!(format!("kubetape: {e}"));
    }
    status
}

/// SelfSubjectReview: who the gateway says the caller is.
pub fn whoami(identity: &Identity, grants: &[Grant], version: &str) -> Value {
    let mut extra = serde_json::Map::new();
    extra.insert("kubetape.io/issuer".into(), json!([identity.issuer]));
    for (k, v) in &identity.claims {
        extra.insert(format!("kubetape.io/claim/{k}"), json!([v]));
    }
    if !grants.is_empty() {
        let list: Vec<String> = grants
            .iter()
            .map(|g| {
                format!(
                    "{} in {} until {} ({}; approved by {})",
                    g.role,
                    g.namespace,
                    humantime::format_rfc3339_seconds(g.expires_at()),
                    g.id,
                    g.approver
                )
            })
            .collect();
        extra.insert("kubetape.io/grants".into(), json!(list));
    }
    json!({
        "apiVersion": format!("authentication.k8s.io/{version}"),
        "kind": "SelfSubjectReview",
        "metadata": {"creationTimestamp": null},
        "status": {"userInfo": {
            "username": identity.user,
            "groups": identity.groups,
            "extra": extra,
        }},
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    const POLICY: &str = r#"
[[roles]]
name = "developer"
[[roles.rules]]
namespaces = ["default"]
resources = ["pods", "pods/exec"]
verbs = ["get", "create"]

[[roles]]
name = "prod-debug"
requestable = true
approvers = ["sre"]
[[roles.rules]]
namespaces = ["prod"]
resources = ["pods/exec"]
verbs = ["create"]

[[bindings]]
name = "devs"
groups = ["developers"]
roles = ["developer"]
"#;

    fn dev() -> Identity {
        Identity {
            user: "dan".into(),
            groups: vec!["developers".into()],
            issuer: "https://idp".into(),
            claims: BTreeMap::new(),
            expires_at: std::time::SystemTime::now(),
            session_grace: std::time::Duration::ZERO,
        }
    }

    fn exec_in(ns: &str) -> Value {
        json!({"resourceAttributes": {"namespace": ns, "verb": "create", "resource": "pods", "subresource": "exec"}})
    }

    #[test]
    fn access_is_the_policy_and_the_cluster() {
        let p = Policy::from_toml(POLICY, "p").unwrap();
        let yes = || Ok(json!({"allowed": true}));
        assert_eq!(
            access(&p, &dev(), &[], &exec_in("default"), yes())["allowed"],
            true
        );
        let no = access(&p, &dev(), &[], &exec_in("prod"), yes());
        assert_eq!(no["allowed"], false);
        assert!(
            no["reason"]
                .as_str()
                .unwrap()
                .contains("kubetape request prod-debug")
        );
        let grant = Elevation {
            id: "g1",
            role: "prod-debug",
            namespace: "prod",
        };
        assert_eq!(
            access(&p, &dev(), &[grant], &exec_in("prod"), yes())["allowed"],
            true
        );
        // The cluster says no (or cannot be asked): no.
        let refused = access(
            &p,
            &dev(),
            &[],
            &exec_in("default"),
            Ok(json!({"allowed": false, "reason": "RBAC"})),
        );
        assert_eq!(refused["allowed"], false);
        assert!(refused["reason"].as_str().unwrap().contains("RBAC"));
        let unknown = access(&p, &dev(), &[], &exec_in("default"), Err("HTTP 503".into()));
        assert_eq!(unknown["allowed"], false);
    }

    #[test]
    fn rules_are_the_policys_narrowed_by_the_clusters() {
        let p = Policy::from_toml(POLICY, "p").unwrap();
        let all = Ok(
            json!({"resourceRules": [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}]}),
        );
        let s = rules(&p, &dev(), &[], &json!({"namespace": "default"}), all);
        let rr = s["resourceRules"].as_array().unwrap();
        assert_eq!(rr.len(), 2, "{s}");
        assert_eq!(rr[1]["resources"][0], "pods/exec");
        assert_eq!(s["incomplete"], false);
        // Nothing in prod without a grant; the grant's rules with it.
        let all = || {
            Ok(json!({"resourceRules": [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}]}))
        };
        let s = rules(&p, &dev(), &[], &json!({"namespace": "prod"}), all());
        assert!(s["resourceRules"].as_array().unwrap().is_empty());
        let grant = Elevation {
            id: "g1",
            role: "prod-debug",
            namespace: "prod",
        };
        let s = rules(&p, &dev(), &[grant], &json!({"namespace": "prod"}), all());
        assert_eq!(s["resourceRules"][0]["verbs"], json!(["create"]));
        // The cluster allows only get on pods: only that is left.
        let narrow = Ok(
            json!({"resourceRules": [{"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]}]}),
        );
        let s = rules(&p, &dev(), &[], &json!({"namespace": "default"}), narrow);
        assert_eq!(
            s["resourceRules"],
            json!([{"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]}])
        );
    }

    #[test]
    fn whoami_names_identity_issuer_claims() {
        let mut id = dev();
        id.claims.insert("repository".into(), "acme/shop".into());
        let v = whoami(&id, &[], "v1");
        assert_eq!(v["status"]["userInfo"]["username"], "dan");
        assert_eq!(v["status"]["userInfo"]["groups"], json!(["developers"]));
        assert_eq!(
            v["status"]["userInfo"]["extra"]["kubetape.io/claim/repository"],
            json!(["acme/shop"])
        );
    }
}
