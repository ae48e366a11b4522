//! Kubernetes' protobuf encoding of a `v1/Pod`, read into its JSON form — the fields that say
//! what a pod runs and with which privileges. kubectl (1.27–1.37) creates pods with
//! `Content-Type: application/vnd.kubernetes.protobuf` (`kubectl debug --copy-to`, `kubectl
//! debug node/NAME`), so the sandbox must read them to run them, and a policy engine must read
//! them to inspect them.
//!
//! ```text
//! body    = "k8s\0" Unknown
//! Unknown = 1: TypeMeta {1: apiVersion, 2: kind}   2: raw (the Pod)   3: contentEncoding
//!           4: contentType
//! Pod     = 1: ObjectMeta   2: PodSpec   3: PodStatus (ignored)
//! ```
//! Field numbers are those of `k8s.io/api/core/v1/generated.proto` and apimachinery's
//! `meta/v1` and `runtime` protos. Fields not listed in [`decode_pod`] are skipped (any wire
//! type), so a newer kubectl's additions never fail the decode; malformed input is an error,
//! never a panic, and nesting is bounded.

use serde_json::{Map, Value, json};

/// The 4-byte prefix of every Kubernetes protobuf body.
pub const MAGIC: &[u8; 4] = b"k8s\0";
/// The media type.
pub const CONTENT_TYPE: &str = "application/vnd.kubernetes.protobuf";
/// Deepest message nesting read: the schemas here are not recursive (a pod needs 5), so this
/// only guards against a future schema that is.
const MAX_DEPTH: usize = 16;

/// Why bytes are not a protobuf Pod.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtobufError {
    #[error("missing the k8s\\0 prefix")]
    Magic,
    #[error("truncated or malformed protobuf at byte {0}")]
    Malformed(usize),
    #[error("field {0} is not valid UTF-8")]
    Utf8(u32),
    #[error("the object is a {0}, not a v1 Pod")]
    NotAPod(String),
    #[error("messages nested too deeply")]
    TooDeep,
}

/// One field as read off the wire.
#[derive(Debug, Clone, Copy)]
enum Field<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
    /// Fixed 32/64-bit: skipped by every message here.
    Fixed,
}

/// Reads `(field number, value)` pairs from one message.
struct Reader<'a> {
    buf: &'a [u8],
    at: usize,
    /// Offset of `buf` in the whole input, for error positions.
    base: usize,
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8], base: usize) -> Self {
        Self { buf, at: 0, base }
    }

    fn varint(&mut self) -> Result<u64, ProtobufError> {
        let mut v = 0u64;
        for i in 0..10 {
            let b = *self
                .buf
                .get(self.at)
                .ok_or(ProtobufError::Malformed(self.base + self.at))?;
            self.at += 1;
            v |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(ProtobufError::Malformed(self.base + self.at))
    }

    fn next(&mut self) -> Result<Option<(u32, Field<'a>, usize)>, ProtobufError> {
        if self.at >= self.buf.len() {
            return Ok(None);
        }
        let start = self.at;
        let key = self.varint()?;
        let number =
            u32::try_from(key >> 3).map_err(|_| ProtobufError::Malformed(self.base + start))?;
        let bad = ProtobufError::Malformed(self.base + start);
        let field = match key & 7 {
            0 => Field::Varint(self.varint()?),
            1 | 5 => {
                let n = if key & 7 == 1 { 8 } else { 4 };
                if self.buf.len() - self.at < n {
                    return Err(bad);
                }
                self.at += n;
                Field::Fixed
            }
            2 => {
                let len = usize::try_from(self.varint()?).map_err(|_| bad.clone())?;
                if self.buf.len() - self.at < len {
                    return Err(bad);
                }
                let offset = self.at;
                self.at += len;
                return Ok(Some((
                    number,
                    Field::Bytes(&self.buf[offset..offset + len]),
                    self.base + offset,
                )));
            }
            _ => return Err(bad),
        };
        Ok(Some((number, field, self.base + self.at)))
    }
}

fn string(n: u32, f: Field<'_>) -> Result<Option<String>, ProtobufError> {
    match f {
        Field::Bytes(b) => std::str::from_utf8(b)
            .map(|s| Some(s.to_string()))
            .map_err(|_| ProtobufError::Utf8(n)),
        _ => Ok(None),
    }
}

fn boolean(f: Field<'_>) -> Option<bool> {
    match f {
        Field::Varint(v) => Some(v != 0),
        _ => None,
    }
}

fn push(obj: &mut Map<String, Value>, key: &str, v: Value) {
    match obj.entry(key.to_string()).or_insert_with(|| json!([])) {
        Value::Array(a) => a.push(v),
        other => *other = json!([v]),
    }
}

/// What a field becomes in JSON.
#[derive(Clone, Copy)]
enum Kind {
    Str,
    Bool,
    Int,
    Strings,
    Message(Schema),
    Messages(Schema),
    /// `map<string,string>` (entries: 1 key, 2 value).
    StringMap,
    /// A message whose fields are inlined into the parent (Volume's `volumeSource`).
    Inline(Schema),
}

type Schema = &'static [(u32, &'static str, Kind)];

const TYPE_META: Schema = &[(1, "apiVersion", Kind::Str), (2, "kind", Kind::Str)];
const OBJECT_META: Schema = &[
    (1, "name", Kind::Str),
    (2, "generateName", Kind::Str),
    (3, "namespace", Kind::Str),
    (11, "labels", Kind::StringMap),
    (12, "annotations", Kind::StringMap),
];
const CAPABILITIES: Schema = &[(1, "add", Kind::Strings), (2, "drop", Kind::Strings)];
const SECURITY_CONTEXT: Schema = &[
    (1, "capabilities", Kind::Message(CAPABILITIES)),
    (2, "privileged", Kind::Bool),
];
const ENV_VAR: Schema = &[(1, "name", Kind::Str), (2, "value", Kind::Str)];
const VOLUME_MOUNT: Schema = &[(1, "name", Kind::Str), (3, "mountPath", Kind::Str)];
const CONTAINER: Schema = &[
    (1, "name", Kind::Str),
    (2, "image", Kind::Str),
    (3, "command", Kind::Strings),
    (4, "args", Kind::Strings),
    (5, "workingDir", Kind::Str),
    (7, "env", Kind::Messages(ENV_VAR)),
    (9, "volumeMounts", Kind::Messages(VOLUME_MOUNT)),
    (14, "imagePullPolicy", Kind::Str),
    (15, "securityContext", Kind::Message(SECURITY_CONTEXT)),
    (16, "stdin", Kind::Bool),
    (17, "stdinOnce", Kind::Bool),
    (18, "tty", Kind::Bool),
    (20, "terminationMessagePolicy", Kind::Str),
];
const HOST_PATH: Schema = &[(1, "path", Kind::Str), (2, "type", Kind::Str)];
const VOLUME_SOURCE: Schema = &[(1, "hostPath", Kind::Message(HOST_PATH))];
const VOLUME: Schema = &[
    (1, "name", Kind::Str),
    (2, "volumeSource", Kind::Inline(VOLUME_SOURCE)),
];
const TOLERATION: Schema = &[
    (1, "key", Kind::Str),
    (2, "operator", Kind::Str),
    (3, "value", Kind::Str),
    (4, "effect", Kind::Str),
    (5, "tolerationSeconds", Kind::Int),
];
const POD_SPEC: Schema = &[
    (1, "volumes", Kind::Messages(VOLUME)),
    (2, "containers", Kind::Messages(CONTAINER)),
    (3, "restartPolicy", Kind::Str),
    (4, "terminationGracePeriodSeconds", Kind::Int),
    (10, "nodeName", Kind::Str),
    (11, "hostNetwork", Kind::Bool),
    (12, "hostPID", Kind::Bool),
    (13, "hostIPC", Kind::Bool),
    (20, "initContainers", Kind::Messages(CONTAINER)),
    (27, "shareProcessNamespace", Kind::Bool),
    (22, "tolerations", Kind::Messages(TOLERATION)),
    (34, "ephemeralContainers", Kind::Messages(CONTAINER)),
];
const POD: Schema = &[
    (1, "metadata", Kind::Message(OBJECT_META)),
    (2, "spec", Kind::Message(POD_SPEC)),
];

/// Fields the schema does not read, by where they were: `spec.containers.securityContext#3`
/// (the JSON path of the message, list indexes left out, then `#` and the field number). A
/// policy engine that must not allow what it cannot see refuses the pods whose unread fields
/// fall in messages it constrains.
#[derive(Debug, Default)]
struct Unread {
    path: Vec<&'static str>,
    found: Vec<String>,
}

impl Unread {
    fn note(&mut self, n: u32) {
        self.found.push(format!("{}#{n}", self.path.join(".")));
    }
}

fn message(
    buf: &[u8],
    base: usize,
    schema: Schema,
    depth: usize,
    unread: &mut Unread,
) -> Result<Map<String, Value>, ProtobufError> {
    if depth > MAX_DEPTH {
        return Err(ProtobufError::TooDeep);
    }
    let mut obj = Map::new();
    let mut r = Reader::new(buf, base);
    while let Some((n, f, at)) = r.next()? {
        let Some((_, key, kind)) = schema.iter().find(|(num, _, _)| *num == n) else {
            // An empty message is the same as none (Go writes `{}` structs as such).
            if !matches!(f, Field::Bytes(b) if b.is_empty()) {
                unread.note(n);
            }
            continue;
        };
        let bytes = match f {
            Field::Bytes(b) => Some(b),
            _ => None,
        };
        match kind {
            Kind::Str => {
                if let Some(s) = string(n, f)? {
                    obj.insert(key.to_string(), json!(s));
                }
            }
            Kind::Bool => {
                if let Some(b) = boolean(f) {
                    obj.insert(key.to_string(), json!(b));
                }
            }
            Kind::Int => {
                if let Field::Varint(v) = f {
                    obj.insert(key.to_string(), json!(v as i64));
                }
            }
            Kind::Strings => {
                if let Some(s) = string(n, f)? {
                    push(&mut obj, key, json!(s));
                }
            }
            Kind::Message(s) => {
                if let Some(b) = bytes {
                    unread.path.push(key);
                    let inner = message(b, at, s, depth + 1, unread);
                    unread.path.pop();
                    let inner = inner?;
                    match obj.get_mut(*key) {
                        // A repeated occurrence of a message field merges into it.
                        Some(Value::Object(existing)) => existing.extend(inner),
                        _ => {
                            obj.insert(key.to_string(), Value::Object(inner));
                        }
                    }
                }
            }
            Kind::Messages(s) => {
                if let Some(b) = bytes {
                    unread.path.push(key);
                    let inner = message(b, at, s, depth + 1, unread);
                    unread.path.pop();
                    push(&mut obj, key, Value::Object(inner?));
                }
            }
            Kind::Inline(s) => {
                if let Some(b) = bytes {
                    unread.path.push(key);
                    let inner = message(b, at, s, depth + 1, unread);
                    unread.path.pop();
                    obj.extend(inner?);
                }
            }
            Kind::StringMap => {
                if let Some(b) = bytes {
                    let entry = message(
                        b,
                        at,
                        &[(1, "k", Kind::Str), (2, "v", Kind::Str)],
                        depth + 1,
                        &mut Unread::default(),
                    )?;
                    let k = entry
                        .get("k")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_string();
                    let v = entry.get("v").cloned().unwrap_or_else(|| json!(""));
                    match obj.entry(key.to_string()).or_insert_with(|| json!({})) {
                        Value::Object(m) => {
                            m.insert(k, v);
                        }
                        other => *other = json!({ k: v }),
                    }
                }
            }
        }
    }
    Ok(obj)
}

/// Reads a `k8s\0`-prefixed body holding a `v1` `Pod` into its JSON form (`apiVersion`, `kind`,
/// `metadata`, `spec` with the fields listed in this module).
pub fn decode_pod(body: &[u8]) -> Result<Value, ProtobufError> {
    decode_pod_reporting(body).map(|(pod, _)| pod)
}

/// [`decode_pod`], also naming every non-empty field it skipped, as `path#number` (`spec#14`: the pod's
/// security context; `spec.containers.securityContext#3`: a container's SELinux options), so
/// that a caller inspecting privileges can refuse what it could not read.
pub fn decode_pod_reporting(body: &[u8]) -> Result<(Value, Vec<String>), ProtobufError> {
    let rest = body
        .strip_prefix(MAGIC.as_slice())
        .ok_or(ProtobufError::Magic)?;
    let mut r = Reader::new(rest, MAGIC.len());
    let (mut type_meta, mut raw) = (Map::new(), None);
    while let Some((n, f, at)) = r.next()? {
        match (n, f) {
            (1, Field::Bytes(b)) => {
                type_meta = message(b, at, TYPE_META, 1, &mut Unread::default())?;
            }
            (2, Field::Bytes(b)) => raw = Some((b, at)),
            _ => {}
        }
    }
    let kind = type_meta.get("kind").and_then(Value::as_str).unwrap_or("");
    let api_version = type_meta
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or("");
    if kind != "Pod" || api_version != "v1" {
        return Err(ProtobufError::NotAPod(format!("{api_version}/{kind}")));
    }
    let (raw, at) = raw.unwrap_or((&[], 0));
    let mut unread = Unread::default();
    let mut pod = message(raw, at, POD, 1, &mut unread)?;
    pod.insert("apiVersion".into(), json!("v1"));
    pod.insert("kind".into(), json!("Pod"));
    Ok((Value::Object(pod), unread.found))
}

const RESOURCE_ATTRIBUTES: Schema = &[
    (1, "namespace", Kind::Str),
    (2, "verb", Kind::Str),
    (3, "group", Kind::Str),
    (4, "version", Kind::Str),
    (5, "resource", Kind::Str),
    (6, "subresource", Kind::Str),
    (7, "name", Kind::Str),
];
const NON_RESOURCE_ATTRIBUTES: Schema = &[(1, "path", Kind::Str), (2, "verb", Kind::Str)];
const ACCESS_REVIEW_SPEC: Schema = &[
    (1, "resourceAttributes", Kind::Message(RESOURCE_ATTRIBUTES)),
    (
        2,
        "nonResourceAttributes",
        Kind::Message(NON_RESOURCE_ATTRIBUTES),
    ),
];
const RULES_REVIEW_SPEC: Schema = &[(1, "namespace", Kind::Str)];
const ACCESS_REVIEW: Schema = &[
    (1, "metadata", Kind::Message(OBJECT_META)),
    (2, "spec", Kind::Message(ACCESS_REVIEW_SPEC)),
];
const RULES_REVIEW: Schema = &[
    (1, "metadata", Kind::Message(OBJECT_META)),
    (2, "spec", Kind::Message(RULES_REVIEW_SPEC)),
];
const SUBJECT_REVIEW: Schema = &[(1, "metadata", Kind::Message(OBJECT_META))];

/// Reads a `k8s\0`-prefixed self-review (`authorization.k8s.io` SelfSubjectAccessReview or
/// SelfSubjectRulesReview, `authentication.k8s.io` SelfSubjectReview), as kubectl ≥ 1.33 sends
/// them, into its JSON form: `apiVersion`, `kind`, `metadata`, `spec` (the attributes asked
/// about; a SelfSubjectReview has none).
pub fn decode_review(body: &[u8]) -> Result<Value, ProtobufError> {
    let rest = body
        .strip_prefix(MAGIC.as_slice())
        .ok_or(ProtobufError::Magic)?;
    let mut r = Reader::new(rest, MAGIC.len());
    let (mut type_meta, mut raw) = (Map::new(), None);
    while let Some((n, f, at)) = r.next()? {
        match (n, f) {
            (1, Field::Bytes(b)) => {
                type_meta = message(b, at, TYPE_META, 1, &mut Unread::default())?;
            }
            (2, Field::Bytes(b)) => raw = Some((b, at)),
            _ => {}
        }
    }
    let kind = type_meta.get("kind").and_then(Value::as_str).unwrap_or("");
    let api_version = type_meta
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or("");
    let schema = match (api_version.split('/').next().unwrap_or(""), kind) {
        ("authorization.k8s.io", "SelfSubjectAccessReview") => ACCESS_REVIEW,
        ("authorization.k8s.io", "SelfSubjectRulesReview") => RULES_REVIEW,
        ("authentication.k8s.io", "SelfSubjectReview") => SUBJECT_REVIEW,
        _ => return Err(ProtobufError::NotAPod(format!("{api_version}/{kind}"))),
    };
    let (raw, at) = raw.unwrap_or((&[], 0));
    let mut object = message(raw, at, schema, 1, &mut Unread::default())?;
    object.insert("apiVersion".into(), json!(api_version));
    object.insert("kind".into(), json!(kind));
    Ok(Value::Object(object))
}

/// Writes the JSON form back as protobuf (the subset [`decode_pod`] reads): for tests, fuzzing
/// and clients that want to send what kubectl sends.
pub fn encode_pod(pod: &Value) -> Vec<u8> {
    fn key(out: &mut Vec<u8>, n: u32, wire: u64) {
        varint(out, (u64::from(n) << 3) | wire);
    }
    fn varint(out: &mut Vec<u8>, mut v: u64) {
        while v >= 0x80 {
            out.push((v as u8) | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
    }
    fn bytes(out: &mut Vec<u8>, n: u32, b: &[u8]) {
        key(out, n, 2);
        varint(out, b.len() as u64);
        out.extend_from_slice(b);
    }
    fn encode(v: &Value, schema: Schema, out: &mut Vec<u8>) {
        for (n, name, kind) in schema {
            if let Kind::Inline(s) = kind {
                let mut inner = Vec::new();
                encode(v, s, &mut inner);
                if !inner.is_empty() {
                    bytes(out, *n, &inner);
                }
                continue;
            }
            let Some(f) = v.get(*name) else { continue };
            match kind {
                Kind::Str => {
                    if let Some(s) = f.as_str() {
                        bytes(out, *n, s.as_bytes());
                    }
                }
                Kind::Bool => {
                    if let Some(b) = f.as_bool() {
                        key(out, *n, 0);
                        varint(out, u64::from(b));
                    }
                }
                Kind::Int => {
                    if let Some(i) = f.as_i64() {
                        key(out, *n, 0);
                        varint(out, i as u64);
                    }
                }
                Kind::Strings => {
                    for s in f.as_array().into_iter().flatten().filter_map(Value::as_str) {
                        bytes(out, *n, s.as_bytes());
                    }
                }
                Kind::Message(s) => {
                    let mut inner = Vec::new();
                    encode(f, s, &mut inner);
                    bytes(out, *n, &inner);
                }
                Kind::Messages(s) => {
                    for item in f.as_array().into_iter().flatten() {
                        let mut inner = Vec::new();
                        encode(item, s, &mut inner);
                        bytes(out, *n, &inner);
                    }
                }
                Kind::StringMap => {
                    for (k, val) in f.as_object().into_iter().flatten() {
                        let mut entry = Vec::new();
                        bytes(&mut entry, 1, k.as_bytes());
                        bytes(&mut entry, 2, val.as_str().unwrap_or("").as_bytes());
                        bytes(out, *n, &entry);
                    }
                }
                Kind::Inline(_) => {}
            }
        }
    }
    let mut raw = Vec::new();
    encode(pod, POD, &mut raw);
    let mut type_meta = Vec::new();
    bytes(&mut type_meta, 1, b"v1");
    bytes(&mut type_meta, 2, b"Pod");
    let mut out = MAGIC.to_vec();
    bytes(&mut out, 1, &type_meta);
    bytes(&mut out, 2, &raw);
    bytes(&mut out, 3, b"");
    bytes(&mut out, 4, b"");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `kubectl debug node/sandbox --image=busybox -it --profile=sysadmin` creates.
    fn node_debugger() -> Value {
        json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "node-debugger-sandbox-x7k2p", "namespace": "default",
                         "labels": {"app.kubernetes.io/managed-by": "kubectl-debug"}},
            "spec": {
                "containers": [{
                    "name": "debugger", "image": "busybox", "stdin": true, "tty": true,
                    "command": ["sh"], "terminationMessagePolicy": "File",
                    "imagePullPolicy": "Always",
                    "securityContext": {"privileged": true, "capabilities": {"add": ["SYS_PTRACE", "NET_ADMIN"]}},
                    "volumeMounts": [{"name": "host-root", "mountPath": "/host"}],
                    "env": [{"name": "A", "value": "1"}],
                }],
                "nodeName": "sandbox", "hostIPC": true, "hostNetwork": true, "hostPID": true,
                "restartPolicy": "Never", "shareProcessNamespace": true,
                "tolerations": [{"operator": "Exists"}],
                "volumes": [{"name": "host-root", "hostPath": {"path": "/"}}],
            },
        })
    }

    #[test]
    fn round_trip_of_a_node_debugger() {
        let pod = node_debugger();
        let bytes = encode_pod(&pod);
        assert_eq!(&bytes[..4], b"k8s\0");
        assert_eq!(decode_pod(&bytes).unwrap(), pod);
    }

    #[test]
    fn hand_made_bytes() {
        // k8s\0, Unknown{1: TypeMeta{1:"v1", 2:"Pod"}, 2: Pod{1: ObjectMeta{1:"p"},
        // 2: PodSpec{2: Container{1:"c", 2:"busybox", 18: true}, 12: true}, 3: status (skipped)},
        // 9: an unknown fixed64 field}.
        let container = [
            0x0a, 1, b'c', 0x12, 7, b'b', b'u', b's', b'y', b'b', b'o', b'x', 0x90, 0x01, 1,
        ];
        let mut spec = vec![0x12, container.len() as u8];
        spec.extend_from_slice(&container);
        spec.extend_from_slice(&[0x60, 1]);
        let mut raw = vec![0x0a, 3, 0x0a, 1, b'p', 0x12, spec.len() as u8];
        raw.extend_from_slice(&spec);
        raw.extend_from_slice(&[0x1a, 2, 0x0a, 0]);
        let mut body = b"k8s\0".to_vec();
        body.extend_from_slice(&[0x0a, 9, 0x0a, 2, b'v', b'1', 0x12, 3, b'P', b'o', b'd']);
        body.push(0x12);
        body.push(raw.len() as u8);
        body.extend_from_slice(&raw);
        body.extend_from_slice(&[0x49, 1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(
            decode_pod(&body).unwrap(),
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
                   "spec": {"containers": [{"name": "c", "image": "busybox", "tty": true}], "hostPID": true}})
        );
    }

    /// Skipped fields are named by where they were: the status, a container's SELinux options
    /// (SecurityContext field 3) and the pod's security context (PodSpec field 14).
    #[test]
    fn skipped_fields_are_reported() {
        let (_, none) = decode_pod_reporting(&encode_pod(&node_debugger())).unwrap();
        assert!(none.is_empty(), "{none:?}");
        // SecurityContext{3: SELinuxOptions{1: "u"}}, inside Container{1:"c", 15: …}, inside
        // PodSpec{2: …, 14: PodSecurityContext{}}.
        let sc = [0x1a, 3, 0x0a, 1, b'u'];
        let mut container = vec![0x0a, 1, b'c', 0x7a, sc.len() as u8];
        container.extend_from_slice(&sc);
        let mut spec = vec![0x12, container.len() as u8];
        spec.extend_from_slice(&container);
        // An empty PodSecurityContext is not reported; a non-empty one (runAsUser: 1) is.
        spec.extend_from_slice(&[0x72, 0, 0x72, 2, 0x10, 1]);
        let mut raw = vec![0x12, spec.len() as u8];
        raw.extend_from_slice(&spec);
        raw.extend_from_slice(&[0x1a, 2, 0x08, 1]);
        let mut body = b"k8s\0".to_vec();
        body.extend_from_slice(&[0x0a, 9, 0x0a, 2, b'v', b'1', 0x12, 3, b'P', b'o', b'd']);
        body.push(0x12);
        body.push(raw.len() as u8);
        body.extend_from_slice(&raw);
        let (pod, unread) = decode_pod_reporting(&body).unwrap();
        assert_eq!(pod["spec"]["containers"][0]["name"], "c");
        assert_eq!(
            unread,
            ["spec.containers.securityContext#3", "spec#14", "#3"]
        );
    }

    /// A SelfSubjectAccessReview as kubectl 1.33 sends it: `k8s\0`, TypeMeta, then
    /// {1: ObjectMeta{}, 2: spec{1: ResourceAttributes{1: "prod", 2: "create", 5: "pods", 6: "exec"}}}.
    #[test]
    fn self_reviews() {
        let attrs = [
            0x0a, 4, b'p', b'r', b'o', b'd', 0x12, 6, b'c', b'r', b'e', b'a', b't', b'e', 0x2a, 4,
            b'p', b'o', b'd', b's', 0x32, 4, b'e', b'x', b'e', b'c',
        ];
        let mut spec = vec![0x0a, attrs.len() as u8];
        spec.extend_from_slice(&attrs);
        let mut raw = vec![0x0a, 0, 0x12, spec.len() as u8];
        raw.extend_from_slice(&spec);
        let api = b"authorization.k8s.io/v1";
        let kind = b"SelfSubjectAccessReview";
        let mut tm = vec![0x0a, api.len() as u8];
        tm.extend_from_slice(api);
        tm.push(0x12);
        tm.push(kind.len() as u8);
        tm.extend_from_slice(kind);
        let mut body = b"k8s\0".to_vec();
        body.push(0x0a);
        body.push(tm.len() as u8);
        body.extend_from_slice(&tm);
        body.push(0x12);
        body.push(raw.len() as u8);
        body.extend_from_slice(&raw);
        assert_eq!(
            decode_review(&body).unwrap(),
            json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
                   "metadata": {}, "spec": {"resourceAttributes": {
                       "namespace": "prod", "verb": "create", "resource": "pods", "subresource": "exec"}}})
        );
        assert!(decode_review(&encode_pod(&node_debugger())).is_err());
    }

    #[test]
    fn bad_input_is_an_error() {
        assert_eq!(decode_pod(b"{}"), Err(ProtobufError::Magic));
        let mut svc = encode_pod(&node_debugger());
        // TypeMeta "Pod" → "Svc".
        let at = svc.windows(3).position(|w| w == b"Pod").unwrap();
        svc[at..at + 3].copy_from_slice(b"Svc");
        assert_eq!(
            decode_pod(&svc),
            Err(ProtobufError::NotAPod("v1/Svc".into()))
        );
        let whole = encode_pod(&node_debugger());
        for cut in 5..whole.len() {
            // Every truncation is an error or a smaller pod, never a panic.
            let _ = decode_pod(&whole[..cut]);
        }
        assert!(matches!(
            decode_pod(b"k8s\0\x0a\xff"),
            Err(ProtobufError::Malformed(_))
        ));
        assert!(matches!(
            decode_pod(b"k8s\0\x0f"),
            Err(ProtobufError::Malformed(_))
        ));
        // A valid envelope whose pod ends inside a length prefix.
        let mut cut = b"k8s\0".to_vec();
        cut.extend_from_slice(&[0x0a, 9, 0x0a, 2, b'v', b'1', 0x12, 3, b'P', b'o', b'd']);
        cut.extend_from_slice(&[0x12, 2, 0x12, 0xc3]);
        assert!(matches!(decode_pod(&cut), Err(ProtobufError::Malformed(_))));
        // A string that is not UTF-8.
        let mut utf = b"k8s\0".to_vec();
        utf.extend_from_slice(&[0x0a, 9, 0x0a, 2, b'v', b'1', 0x12, 3, b'P', b'o', b'd']);
        utf.extend_from_slice(&[0x12, 5, 0x0a, 3, 0x0a, 1, 0xff]);
        assert_eq!(decode_pod(&utf), Err(ProtobufError::Utf8(1)));
    }
}
