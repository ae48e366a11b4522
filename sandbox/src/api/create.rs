//! `POST /api/v1/namespaces/{ns}/pods`: pods created through the API, as `kubectl debug
//! --copy-to=NAME` and `kubectl debug node/NAME` do. kubectl sends them as protobuf
//! (`application/vnd.kubernetes.protobuf`, read by `proto::pod_protobuf`) and takes a JSON
//! answer; JSON bodies are accepted too. Each container runs as a real process, its image
//! mapped to a local program by `[[images]]`; what the sandbox does not model (host
//! namespaces, volumes, securityContext…) is kept and shown back.

use http::{Request, Response, StatusCode, header};
use http_body_util::{BodyExt as _, Limited};
use hyper::body::Incoming;
use serde_json::Value;

use super::objects::Kind;
use crate::cluster::Cluster;
use crate::config::{ContainerSpec, PodSpec, local_command};
use crate::respond::{self, Body};

/// Largest pod body accepted.
const MAX_BODY: usize = 1 << 20;

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

fn is_dns_subdomain(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        && !s.starts_with(['-', '.'])
        && !s.ends_with(['-', '.'])
}

/// `generateName`'s suffix: 5 characters from the API server's alphabet (no vowels).
fn random_suffix() -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let bytes = uuid::Uuid::new_v4().into_bytes();
    bytes[..5]
        .iter()
        .map(|b| char::from(ALPHABET[usize::from(*b) % ALPHABET.len()]))
        .collect()
}

fn invalid(name: &str, message: String) -> Response<Body> {
    respond::status(
        StatusCode::UNPROCESSABLE_ENTITY,
        "Invalid",
        format!("Pod \"{name}\" is invalid: {message}"),
    )
}

pub(crate) async fn create(cluster: &Cluster, req: Request<Incoming>, ns: &str) -> Response<Body> {
    if !cluster.namespaces.iter().any(|n| n == ns) {
        return respond::object_not_found("namespaces", ns);
    }
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
        Err(e) => return respond::bad_request(format!("reading the body: {e}")),
    };
    let object: Value = match content_type.as_str() {
        proto::pod_protobuf::CONTENT_TYPE => match proto::pod_protobuf::decode_pod(&body) {
            Ok(v) => v,
            Err(e) => {
                return respond::bad_request(format!("the object provided is unrecognized: {e}"));
            }
        },
        "application/json" => match serde_json::from_slice::<Value>(&body) {
            Ok(v) if v["kind"] == "Pod" && v["apiVersion"] == "v1" => v,
            Ok(v) => {
                return respond::bad_request(format!(
                    "the object provided is unrecognized (kind {}, apiVersion {})",
                    v["kind"], v["apiVersion"]
                ));
            }
            Err(e) => return respond::bad_request(format!("the body is not JSON: {e}")),
        },
        other => {
            return respond::status(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "UnsupportedMediaType",
                format!(
                    "the body of the request was in an unknown format - accepted media types include: application/json, application/vnd.kubernetes.protobuf (got {other:?})"
                ),
            );
        }
    };
    let meta = &object["metadata"];
    if let Some(sent_ns) = meta["namespace"].as_str()
        && !sent_ns.is_empty()
        && sent_ns != ns
    {
        return respond::bad_request(
            "the namespace of the provided object does not match the namespace sent on the request",
        );
    }
    let name = match (meta["name"].as_str(), meta["generateName"].as_str()) {
        (Some(n), _) if !n.is_empty() => n.to_string(),
        (_, Some(g)) if !g.is_empty() => format!("{g}{}", random_suffix()),
        _ => {
            return invalid(
                "",
                "metadata.name: Required value: name or generateName is required".into(),
            );
        }
    };
    if !is_dns_subdomain(&name) {
        return invalid(
            &name,
            format!("metadata.name: Invalid value: {name:?}: a lowercase RFC 1123 subdomain"),
        );
    }
    let sent_containers = object["spec"]["containers"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    if sent_containers.is_empty() {
        return invalid(&name, "spec.containers: Required value".into());
    }
    let mut containers: Vec<ContainerSpec> = Vec::new();
    for (i, c) in sent_containers.iter().enumerate() {
        let cname = c["name"].as_str().unwrap_or("");
        let image = c["image"].as_str().unwrap_or("");
        if cname.is_empty() {
            return invalid(&name, format!("spec.containers[{i}].name: Required value"));
        }
        if containers.iter().any(|k| k.name == cname) {
            return invalid(
                &name,
                format!("spec.containers[{i}].name: Duplicate value: {cname:?}"),
            );
        }
        if image.is_empty() {
            return invalid(&name, format!("spec.containers[{i}].image: Required value"));
        }
        let (command, args) = (strings(&c["command"]), strings(&c["args"]));
        // An image no program stands for fails to start, like one that cannot run.
        let argv = local_command(&cluster.images, image, &command, &args).unwrap_or_else(|| {
            vec![format!(
                "kubetape-sandbox: image {image} is not mapped to a local program"
            )]
        });
        let mut spec = ContainerSpec::new(cname, argv);
        spec.image = image.to_string();
        spec.tty = c["tty"].as_bool().unwrap_or(false);
        spec.stdin = c["stdin"].as_bool().unwrap_or(false);
        spec.stdin_once = c["stdinOnce"].as_bool().unwrap_or(false);
        spec.workdir = c["workingDir"]
            .as_str()
            .filter(|w| !w.is_empty())
            .map(Into::into);
        for e in c["env"].as_array().into_iter().flatten() {
            if let (Some(k), Some(v)) = (e["name"].as_str(), e["value"].as_str()) {
                spec.env.insert(k.into(), v.into());
            }
        }
        containers.push(spec);
    }
    let labels = meta["labels"]
        .as_object()
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                .collect()
        })
        .unwrap_or_default();
    let spec = PodSpec {
        name: name.clone(),
        namespace: ns.to_string(),
        labels,
        containers,
    };
    let fields: Vec<&String> = object["spec"]
        .as_object()
        .map(|m| m.keys().collect())
        .unwrap_or_default();
    tracing::info!(pod = %name, namespace = %ns, %content_type, ?fields, "creating pod");
    match cluster.create_pod(spec, object) {
        Ok(_) => {
            let created = Kind::Pod
                .items(cluster, Some(ns))
                .into_iter()
                .find(|i| i.name == name)
                .map(|i| i.object)
                .unwrap_or(Value::Null);
            respond::json(StatusCode::CREATED, &created)
        }
        Err(()) => {
            let mut s = proto::status::Status::failure(
                409,
                "AlreadyExists",
                format!("pods \"{name}\" already exists"),
            );
            s.details = Some(proto::status::StatusDetails {
                name,
                kind: "pods".into(),
                causes: Vec::new(),
            });
            respond::with_type(StatusCode::CONFLICT, "application/json", s.to_json())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_names_use_the_api_alphabet() {
        let s = random_suffix();
        assert_eq!(s.len(), 5);
        assert!(
            s.bytes()
                .all(|b| b"bcdfghjklmnpqrstvwxz2456789".contains(&b))
        );
        assert!(is_dns_subdomain("node-debugger-sandbox-x7k2p"));
        assert!(!is_dns_subdomain("Bad") && !is_dns_subdomain("-x"));
    }
}
