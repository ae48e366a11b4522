//! `pods/{name}/ephemeralcontainers` (GET and PATCH), what `kubectl debug POD --image=…` uses
//! (kubernetes-streams.md §3): kubectl 1.27–1.37 send a strategic-merge patch
//! `{"spec":{"ephemeralContainers":[{…}]}}` (with `$setElementOrder/ephemeralContainers` once the
//! pod has some); JSON patch and merge patch are accepted too, as the API server does.
//!
//! As in the API server's ephemeral-containers strategy, only `spec.ephemeralContainers` of the
//! patched pod counts: existing ones may not change or go, new ones are validated and started
//! as real processes (their image mapped to a local program by the config's `[[images]]`).

use http::{Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt as _, Limited};
use hyper::body::Incoming;
use serde_json::{Value, json};

use super::objects::Kind;
use super::resources::{self, Form};
use crate::cluster::{Cluster, Pod};
use crate::config::{ContainerSpec, local_command};
use crate::respond::{self, Body};

/// Largest patch body accepted (kubectl's are under 1 KiB).
const MAX_BODY: usize = 1 << 20;

/// `GET|PATCH /api/v1/namespaces/{ns}/pods/{pod}/ephemeralcontainers`.
pub(crate) async fn handle(
    cluster: &Cluster,
    req: Request<Incoming>,
    ns: &str,
    name: &str,
) -> Response<Body> {
    let Some(pod) = cluster.pod(ns, name) else {
        return respond::object_not_found("pods", name);
    };
    match *req.method() {
        Method::GET => resources::get(cluster, Kind::Pod, Some(ns), name, Form::Json),
        Method::PATCH => {
            let content_type = req
                .headers()
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase();
            let body = match Limited::new(req.into_body(), MAX_BODY).collect().await {
                Ok(b) => b.to_bytes(),
                Err(e) => return respond::bad_request(format!("reading the patch: {e}")),
            };
            let current = pod_object(cluster, ns, name);
            let patched = match apply(&content_type, &current, &body) {
                Ok(v) => v,
                Err(Refusal::Unsupported) => {
                    return respond::status(
                        StatusCode::UNSUPPORTED_MEDIA_TYPE,
                        "UnsupportedMediaType",
                        format!(
                            "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/strategic-merge-patch+json (got {content_type:?})"
                        ),
                    );
                }
                Err(Refusal::Bad(m)) => return respond::bad_request(m),
                Err(Refusal::Invalid(m)) => {
                    return respond::status(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        "Invalid",
                        format!("Pod \"{name}\" is invalid: {m}"),
                    );
                }
            };
            if let Err(m) = add_new(cluster, &pod, &current, &patched) {
                return respond::status(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "Invalid",
                    format!("Pod \"{name}\" is invalid: {m}"),
                );
            }
            respond::json(StatusCode::OK, &pod_object(cluster, ns, name))
        }
        _ => respond::method_not_allowed(),
    }
}

fn pod_object(cluster: &Cluster, ns: &str, name: &str) -> Value {
    Kind::Pod
        .items(cluster, Some(ns))
        .into_iter()
        .find(|i| i.name == name)
        .map(|i| i.object)
        .unwrap_or(Value::Null)
}

#[derive(Debug, PartialEq, Eq)]
enum Refusal {
    Unsupported,
    Bad(String),
    Invalid(String),
}

/// The pod after the patch (only its `spec.ephemeralContainers` matters).
fn apply(content_type: &str, current: &Value, body: &[u8]) -> Result<Value, Refusal> {
    let patch: Value = serde_json::from_slice(body)
        .map_err(|e| Refusal::Bad(format!("the patch is not JSON: {e}")))?;
    match content_type {
        "application/strategic-merge-patch+json" => strategic(current, &patch),
        "application/merge-patch+json" => {
            let mut out = current.clone();
            merge(&mut out, &patch);
            Ok(out)
        }
        "application/json-patch+json" => json_patch(current, &patch),
        _ => Err(Refusal::Unsupported),
    }
}

/// Strategic merge, for the one list that matters: `spec.ephemeralContainers`, merged by `name`
/// (its patch strategy). Directives (`$setElementOrder/…`, `$patch`) are read as the API does
/// for this list: order is kept, `$patch: delete` would remove (and is refused later).
fn strategic(current: &Value, patch: &Value) -> Result<Value, Refusal> {
    let mut out = current.clone();
    let Some(items) = patch.pointer("/spec/ephemeralContainers") else {
        return Ok(out);
    };
    let items = items
        .as_array()
        .ok_or_else(|| Refusal::Bad("spec.ephemeralContainers must be a list".into()))?;
    let list = out["spec"]["ephemeralContainers"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let mut list = list;
    for item in items {
        let name = item["name"]
            .as_str()
            .ok_or_else(|| Refusal::Bad("ephemeral container without a name".into()))?;
        if item.get("$patch").and_then(Value::as_str) == Some("delete") {
            list.retain(|c| c["name"] != name);
            continue;
        }
        match list.iter_mut().find(|c| c["name"] == name) {
            Some(existing) => merge(existing, item),
            None => list.push(item.clone()),
        }
    }
    out["spec"]["ephemeralContainers"] = Value::Array(list);
    Ok(out)
}

/// RFC 7386 merge patch.
fn merge(target: &mut Value, patch: &Value) {
    let Some(p) = patch.as_object() else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = json!({});
    }
    let t = target.as_object_mut().expect("made an object");
    for (k, v) in p {
        if v.is_null() {
            t.remove(k);
        } else {
            merge(t.entry(k.clone()).or_insert(Value::Null), v);
        }
    }
}

/// RFC 6902 JSON patch (add, remove, replace, test, move, copy) over the whole pod.
fn json_patch(current: &Value, patch: &Value) -> Result<Value, Refusal> {
    let ops = patch
        .as_array()
        .ok_or_else(|| Refusal::Bad("a JSON patch is a list of operations".into()))?;
    let mut doc = current.clone();
    for op in ops {
        let kind = op["op"].as_str().unwrap_or("");
        let path = op["path"]
            .as_str()
            .ok_or_else(|| Refusal::Bad(format!("operation without a path: {op}")))?;
        let bad = |m: &str| Refusal::Invalid(format!("{kind} {path}: {m}"));
        match kind {
            "add" => add(&mut doc, path, op["value"].clone()).map_err(|m| bad(&m))?,
            "remove" => {
                remove(&mut doc, path).map_err(|m| bad(&m))?;
            }
            "replace" => {
                remove(&mut doc, path).map_err(|m| bad(&m))?;
                add(&mut doc, path, op["value"].clone()).map_err(|m| bad(&m))?;
            }
            "test" => {
                if doc.pointer(path) != Some(&op["value"]) {
                    return Err(bad("test failed"));
                }
            }
            "move" | "copy" => {
                let from = op["from"].as_str().ok_or_else(|| bad("no from"))?;
                let v = if kind == "move" {
                    remove(&mut doc, from).map_err(|m| bad(&m))?
                } else {
                    doc.pointer(from)
                        .cloned()
                        .ok_or_else(|| bad("no such from"))?
                };
                add(&mut doc, path, v).map_err(|m| bad(&m))?;
            }
            other => return Err(Refusal::Bad(format!("unknown JSON patch op {other:?}"))),
        }
    }
    Ok(doc)
}

fn split_pointer(path: &str) -> Result<(String, String), String> {
    let (parent, last) = path.rsplit_once('/').ok_or("not a JSON pointer")?;
    let last = last.replace("~1", "/").replace("~0", "~");
    Ok((parent.to_string(), last))
}

fn add(doc: &mut Value, path: &str, value: Value) -> Result<(), String> {
    if path.is_empty() {
        *doc = value;
        return Ok(());
    }
    let (parent, key) = split_pointer(path)?;
    match doc.pointer_mut(&parent).ok_or("no such parent")? {
        Value::Object(m) => {
            m.insert(key, value);
        }
        Value::Array(a) if key == "-" => a.push(value),
        Value::Array(a) => {
            let i: usize = key.parse().map_err(|_| "bad index")?;
            if i > a.len() {
                return Err("index out of range".into());
            }
            a.insert(i, value);
        }
        _ => return Err("parent is not a container".into()),
    }
    Ok(())
}

fn remove(doc: &mut Value, path: &str) -> Result<Value, String> {
    let (parent, key) = split_pointer(path)?;
    match doc.pointer_mut(&parent).ok_or("no such parent")? {
        Value::Object(m) => m.remove(&key).ok_or_else(|| "no such member".into()),
        Value::Array(a) => {
            let i: usize = key.parse().map_err(|_| "bad index")?;
            if i >= a.len() {
                return Err("index out of range".into());
            }
            Ok(a.remove(i))
        }
        _ => Err("parent is not a container".into()),
    }
}

fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// Compares the ephemeral containers before and after; starts the new ones.
fn add_new(cluster: &Cluster, pod: &Pod, before: &Value, after: &Value) -> Result<(), String> {
    let empty = Vec::new();
    let old = before["spec"]["ephemeralContainers"]
        .as_array()
        .unwrap_or(&empty);
    let new = match &after["spec"]["ephemeralContainers"] {
        Value::Null => &empty,
        Value::Array(a) => a,
        _ => return Err("spec.ephemeralContainers: Invalid value: must be a list".into()),
    };
    for (i, o) in old.iter().enumerate() {
        let kept = new.iter().find(|n| n["name"] == o["name"]);
        let same = kept.is_some_and(|n| {
            ["image", "command", "args", "targetContainerName"]
                .iter()
                .all(|f| n.get(*f) == o.get(*f))
        });
        if !same {
            return Err(format!(
                "spec.ephemeralContainers[{i}]: Forbidden: existing ephemeral containers {} may not be changed",
                o["name"]
            ));
        }
    }
    let mut added = Vec::new();
    for (i, c) in new.iter().enumerate() {
        let name = c["name"].as_str().unwrap_or("");
        if old.iter().any(|o| o["name"] == name) {
            continue;
        }
        let field = format!("spec.ephemeralContainers[{i}]");
        if name.is_empty() {
            return Err(format!("{field}.name: Required value"));
        }
        if !is_dns_label(name) {
            return Err(format!(
                "{field}.name: Invalid value: {name:?}: a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-'"
            ));
        }
        if pod.containers.iter().any(|k| k.spec.name == name)
            || added.iter().any(|(n, _): &(String, Value)| n == name)
        {
            return Err(format!("{field}.name: Duplicate value: {name:?}"));
        }
        let image = c["image"].as_str().unwrap_or("");
        if image.is_empty() {
            return Err(format!("{field}.image: Required value"));
        }
        if let Some(target) = c.get("targetContainerName").and_then(Value::as_str)
            && pod.container(target).is_none()
        {
            return Err(format!(
                "{field}.targetContainerName: Not found: {target:?}"
            ));
        }
        for forbidden in [
            "ports",
            "livenessProbe",
            "readinessProbe",
            "startupProbe",
            "lifecycle",
        ] {
            if c.get(forbidden).is_some_and(|v| !v.is_null()) {
                return Err(format!(
                    "{field}.{forbidden}: Forbidden: cannot be set for an Ephemeral Container"
                ));
            }
        }
        added.push((name.to_string(), c.clone()));
    }
    for (name, object) in added {
        start(cluster, pod, name, object);
    }
    Ok(())
}

/// Starts one validated ephemeral container.
fn start(cluster: &Cluster, pod: &Pod, name: String, mut object: Value) {
    // What the API server defaults.
    let image = object["image"].as_str().unwrap_or("").to_string();
    for (k, v) in [
        ("terminationMessagePath", json!("/dev/termination-log")),
        ("terminationMessagePolicy", json!("File")),
        ("resources", json!({})),
        (
            "imagePullPolicy",
            json!(if image.ends_with(":latest")
                || !image.rsplit('/').next().unwrap_or("").contains(':')
            {
                "Always"
            } else {
                "IfNotPresent"
            }),
        ),
    ] {
        if object.get(k).is_none_or(Value::is_null) {
            object[k] = v;
        }
    }
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    };
    let (command, args) = (strings(&object["command"]), strings(&object["args"]));
    let Some(argv) = local_command(&cluster.images, &image, &command, &args) else {
        let why = format!(
            "image {image:?} is not mapped to a local program (kubetape-sandbox config [[images]])"
        );
        tracing::info!(container = %name, %image, "ephemeral container image not mapped");
        pod.add_ephemeral(name, object, None, Some(why));
        return;
    };
    // It shares the target's (or the first container's) working directory and environment.
    let target = object["targetContainerName"]
        .as_str()
        .and_then(|t| pod.container(t))
        .or_else(|| pod.containers.first().map(|c| &**c));
    let mut spec = ContainerSpec::new(&name, argv);
    spec.image = image;
    spec.tty = object["tty"].as_bool().unwrap_or(false);
    spec.stdin = object["stdin"].as_bool().unwrap_or(false);
    spec.stdin_once = object["stdinOnce"].as_bool().unwrap_or(false);
    if let Some(t) = target {
        spec.workdir = t.spec.workdir.clone();
        spec.env = t.spec.env.clone();
    }
    if let Some(env) = object["env"].as_array() {
        for e in env {
            if let (Some(k), Some(v)) = (e["name"].as_str(), e["value"].as_str()) {
                spec.env.insert(k.into(), v.into());
            }
        }
    }
    tracing::info!(container = %name, argv = ?spec.command, "starting ephemeral container");
    pod.add_ephemeral(name, object, Some(spec), None);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod() -> Value {
        json!({"metadata": {"name": "demo"}, "spec": {"containers": [{"name": "shell"}],
            "ephemeralContainers": [{"name": "old", "image": "busybox"}]}})
    }

    #[test]
    fn kubectl_strategic_merge_patch_appends_by_name() {
        let patch = br#"{"spec":{"$setElementOrder/ephemeralContainers":[{"name":"old"},{"name":"debugger-x"}],"ephemeralContainers":[{"command":["sh"],"image":"busybox","name":"debugger-x","resources":{},"stdin":true,"targetContainerName":"shell","terminationMessagePolicy":"File","tty":true}]}}"#;
        let out = apply("application/strategic-merge-patch+json", &pod(), patch).unwrap();
        let names: Vec<&str> = out["spec"]["ephemeralContainers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["old", "debugger-x"]);
        assert_eq!(out["spec"]["ephemeralContainers"][1]["tty"], json!(true));
    }

    #[test]
    fn json_and_merge_patches() {
        let add = br#"[{"op":"test","path":"/metadata/name","value":"demo"},{"op":"add","path":"/spec/ephemeralContainers/-","value":{"name":"d2","image":"busybox"}}]"#;
        let out = apply("application/json-patch+json", &pod(), add).unwrap();
        assert_eq!(out["spec"]["ephemeralContainers"][1]["name"], "d2");
        let failing = br#"[{"op":"test","path":"/metadata/name","value":"other"}]"#;
        assert!(matches!(
            apply("application/json-patch+json", &pod(), failing),
            Err(Refusal::Invalid(_))
        ));
        let merged = br#"{"spec":{"ephemeralContainers":[{"name":"only"}]}}"#;
        let out = apply("application/merge-patch+json", &pod(), merged).unwrap();
        assert_eq!(
            out["spec"]["ephemeralContainers"],
            json!([{"name": "only"}])
        );
        assert_eq!(
            apply("application/yaml", &pod(), b"{}"),
            Err(Refusal::Unsupported)
        );
        assert!(matches!(
            apply("application/json-patch+json", &pod(), b"not json"),
            Err(Refusal::Bad(_))
        ));
        for bad in [
            r#"[{"op":"remove","path":"/spec/nope/0"}]"#,
            r#"[{"op":"add","path":"/spec/ephemeralContainers/9","value":1}]"#,
            r#"[{"op":"frobnicate","path":"/x"}]"#,
            r#"[{"op":"add"}]"#,
        ] {
            assert!(
                apply("application/json-patch+json", &pod(), bad.as_bytes()).is_err(),
                "{bad}"
            );
        }
    }
}
