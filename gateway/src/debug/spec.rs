//! What a debug request asks the cluster to run, read from its body: the containers (image,
//! privileges, target) and, for a created pod, its host access (namespaces, node, host paths).
//!
//! The reading is strict, because the gateway forwards the body it read and the API server
//! applies it: anything that could change what runs, and that this module cannot read with
//! certainty, is an error ([`SpecError`]) and the request is refused — never guessed at.
//!
//! | body | accepted forms |
//! |---|---|
//! | strategic-merge / merge patch (`pods/ephemeralcontainers`) | `{"spec":{"ephemeralContainers":[…], "$setElementOrder/ephemeralContainers":[…]}}` |
//! | JSON patch | `add`/`replace` of `/spec/ephemeralContainers`, `…/-` or `…/N` with whole containers; `test` |
//! | JSON `Pod` (PUT of the subresource; `POST pods`) | the pod; ephemeral containers only for the subresource |
//! | protobuf `Pod` (`POST pods`, what kubectl sends) | via `proto::pod_protobuf`, refusing privilege-bearing fields it skips |
//!
//! JSON is read without duplicate keys (which copy of a key wins is the kind of question two
//! parsers answer differently), and a key that differs from a privilege-bearing one only in
//! case (`"Privileged"`) is refused rather than trusted to be ignored.

use serde_json::{Map, Value};

/// Which debug request a body belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    /// PATCH/PUT `pods/{name}/ephemeralcontainers`.
    Ephemeral,
    /// POST `pods` (`kubectl debug --copy-to`, `kubectl debug node/NAME`, any pod creation).
    Pod,
}

/// Why a body cannot be inspected; the request is refused with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct SpecError {
    /// Where in the body: `spec.ephemeralContainers[0].securityContext.seLinuxOptions`.
    pub field: String,
    pub message: String,
}

fn err(field: impl Into<String>, message: impl Into<String>) -> SpecError {
    SpecError {
        field: field.into(),
        message: message.into(),
    }
}

/// One container the request would run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Container {
    /// Where it is in the body: `spec.ephemeralContainers[0]`, `spec.containers[1]`.
    pub field: String,
    pub name: Option<String>,
    pub image: Option<String>,
    /// `targetContainerName` (ephemeral containers).
    pub target: Option<String>,
    pub privileged: bool,
    /// `securityContext.capabilities.add`, upper-cased without a `CAP_` prefix.
    pub capabilities: Vec<String>,
    /// Drops every capability and runs as non-root (kubectl's `restricted` profile).
    pub restricted: bool,
    /// Whether it has a `securityContext` at all.
    pub has_security_context: bool,
    /// Whether it mounts volumes (the pod's; a host path for node debugging).
    pub volume_mounts: Vec<String>,
}

/// The pod-level access of a created pod.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodAccess {
    pub name: Option<String>,
    pub host_pid: bool,
    pub host_network: bool,
    pub host_ipc: bool,
    pub node_name: Option<String>,
    /// `hostPath` volumes: (field, path).
    pub host_paths: Vec<(String, String)>,
}

/// Everything the policy decides a debug request on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Spec {
    pub containers: Vec<Container>,
    /// For [`Form::Pod`].
    pub pod: Option<PodAccess>,
}

/// Largest body inspected (a pod with many containers is a few KiB).
pub const MAX_BODY: usize = 1 << 20;

/// Reads a debug request's body (`content_type` as sent, parameters allowed).
pub fn parse(form: Form, content_type: &str, body: &[u8]) -> Result<Spec, SpecError> {
    if body.len() > MAX_BODY {
        return Err(err("body", format!("larger than {MAX_BODY} bytes")));
    }
    let media = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    match (form, media.as_str()) {
        (
            Form::Ephemeral,
            "application/strategic-merge-patch+json" | "application/merge-patch+json",
        ) => merge_patch(&strict_json(body)?),
        (Form::Ephemeral, "application/json-patch+json") => json_patch(&strict_json(body)?),
        (Form::Ephemeral, "application/json") => {
            let pod = strict_json(body)?;
            let spec = object(&pod, "")?
                .get("spec")
                .map(|s| object(s, "spec"))
                .transpose()?;
            let mut out = Spec::default();
            if let Some(list) = spec.and_then(|s| s.get("ephemeralContainers")) {
                containers(list, "spec.ephemeralContainers", Form::Ephemeral, &mut out)?;
            }
            Ok(out)
        }
        (Form::Pod, "application/json") => pod_json(&strict_json(body)?),
        (Form::Pod, proto::pod_protobuf::CONTENT_TYPE) => pod_protobuf(body),
        (_, other) => Err(err(
            "Content-Type",
            format!("kubetape cannot inspect a {other:?} body (send JSON or protobuf)"),
        )),
    }
}

// === JSON ===

/// JSON into a `Value`, refusing duplicate keys.
pub fn strict_json(body: &[u8]) -> Result<Value, SpecError> {
    struct Strict(Value);
    impl<'de> serde::Deserialize<'de> for Strict {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            d.deserialize_any(Visitor).map(Strict)
        }
    }
    struct Visitor;
    impl<'de> serde::de::Visitor<'de> for Visitor {
        type Value = Value;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("JSON")
        }
        fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
            Ok(Value::Bool(v))
        }
        fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
            Ok(Value::from(v))
        }
        fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
            Ok(Value::from(v))
        }
        fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
            Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
        }
        fn visit_str<E>(self, v: &str) -> Result<Value, E> {
            Ok(Value::String(v.to_string()))
        }
        fn visit_string<E>(self, v: String) -> Result<Value, E> {
            Ok(Value::String(v))
        }
        fn visit_unit<E>(self) -> Result<Value, E> {
            Ok(Value::Null)
        }
        fn visit_none<E>(self) -> Result<Value, E> {
            Ok(Value::Null)
        }
        fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
            let mut out = Vec::new();
            while let Some(Strict(v)) = seq.next_element()? {
                out.push(v);
            }
            Ok(Value::Array(out))
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
            let mut out = Map::new();
            while let Some(key) = map.next_key::<String>()? {
                let Strict(v) = map.next_value()?;
                if out.insert(key.clone(), v).is_some() {
                    return Err(serde::de::Error::custom(format!("duplicate key {key:?}")));
                }
            }
            Ok(Value::Object(out))
        }
    }
    serde_json::from_slice::<Strict>(body)
        .map(|Strict(v)| v)
        .map_err(|e| err("body", format!("not JSON kubetape can read: {e}")))
}

fn object<'a>(v: &'a Value, field: &str) -> Result<&'a Map<String, Value>, SpecError> {
    v.as_object()
        .ok_or_else(|| err(display(field), "expected an object"))
}

fn display(field: &str) -> &str {
    if field.is_empty() { "body" } else { field }
}

fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_string()
    } else {
        format!("{parent}.{key}")
    }
}

/// Refuses a key that matches one of `known` only when case is ignored.
fn no_case_tricks(obj: &Map<String, Value>, field: &str, known: &[&str]) -> Result<(), SpecError> {
    for key in obj.keys() {
        if let Some(k) = known
            .iter()
            .find(|k| k.eq_ignore_ascii_case(key) && **k != key.as_str())
        {
            return Err(err(
                join(field, key),
                format!("not a field; did you mean {k:?}? (refused: it differs only in case)"),
            ));
        }
    }
    Ok(())
}

fn string(v: Option<&Value>, field: &str) -> Result<Option<String>, SpecError> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(err(field, "expected a string")),
    }
}

fn boolean(v: Option<&Value>, field: &str) -> Result<bool, SpecError> {
    match v {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(_) => Err(err(field, "expected true or false")),
    }
}

/// `{"spec":{"ephemeralContainers":[…]}}` as kubectl sends it (strategic merge, or merge).
fn merge_patch(v: &Value) -> Result<Spec, SpecError> {
    let top = object(v, "")?;
    no_case_tricks(top, "", &["spec"])?;
    let mut out = Spec::default();
    for (key, value) in top {
        match key.as_str() {
            "spec" => {}
            // Not changed through this subresource; nothing in them runs anything.
            "metadata" | "apiVersion" | "kind" => continue,
            _ => {
                return Err(err(
                    key.clone(),
                    "kubetape reads only `spec` in a debug patch",
                ));
            }
        }
        let spec = object(value, "spec")?;
        no_case_tricks(spec, "spec", &["ephemeralContainers"])?;
        for (k, list) in spec {
            match k.as_str() {
                "ephemeralContainers" => {
                    containers(list, "spec.ephemeralContainers", Form::Ephemeral, &mut out)?
                }
                // Only orders the list by name.
                "$setElementOrder/ephemeralContainers" => {}
                _ => {
                    return Err(err(
                        join("spec", k),
                        "kubetape reads only ephemeralContainers in a debug patch",
                    ));
                }
            }
        }
    }
    Ok(out)
}

/// RFC 6902: only operations whose effect on the containers is plain to see.
fn json_patch(v: &Value) -> Result<Spec, SpecError> {
    let ops = v
        .as_array()
        .ok_or_else(|| err("body", "a JSON patch is an array of operations"))?;
    let mut out = Spec::default();
    for (i, op) in ops.iter().enumerate() {
        let field = format!("[{i}]");
        let o = object(op, &field)?;
        let kind = string(o.get("op"), &format!("{field}.op"))?.unwrap_or_default();
        let path = string(o.get("path"), &format!("{field}.path"))?.unwrap_or_default();
        match kind.as_str() {
            "test" => continue,
            "add" | "replace" => {}
            other => {
                return Err(err(
                    format!("{field}.op"),
                    format!(
                        "kubetape reads only add, replace and test in a debug JSON patch, not {other:?}"
                    ),
                ));
            }
        }
        let value = o
            .get("value")
            .ok_or_else(|| err(format!("{field}.value"), "missing"))?;
        let rest = path.strip_prefix("/spec/ephemeralContainers");
        match rest {
            Some("") => containers(value, "spec.ephemeralContainers", Form::Ephemeral, &mut out)?,
            Some(index)
                if index == "/-"
                    || (index.len() > 1 && index[1..].bytes().all(|b| b.is_ascii_digit())) =>
            {
                let at = out.containers.len();
                out.containers.push(container(
                    value,
                    &format!("spec.ephemeralContainers[{at}]"),
                    Form::Ephemeral,
                )?);
            }
            _ => {
                return Err(err(
                    format!("{field}.path"),
                    format!(
                        "kubetape reads only whole containers added at /spec/ephemeralContainers, not {path:?}"
                    ),
                ));
            }
        }
    }
    Ok(out)
}

fn containers(list: &Value, field: &str, form: Form, out: &mut Spec) -> Result<(), SpecError> {
    match list {
        Value::Null => Ok(()),
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                out.containers
                    .push(container(item, &format!("{field}[{i}]"), form)?);
            }
            Ok(())
        }
        _ => Err(err(field, "expected a list of containers")),
    }
}

/// Container fields that neither run code nor grant privileges beyond what the policy checks
/// (the image, the security context, volume mounts), read as they are.
const CONTAINER_FIELDS: &[&str] = &[
    "name",
    "image",
    "command",
    "args",
    "workingDir",
    "env",
    "envFrom",
    "resources",
    "resizePolicy",
    "restartPolicy",
    "terminationMessagePath",
    "terminationMessagePolicy",
    "imagePullPolicy",
    "stdin",
    "stdinOnce",
    "tty",
    "ports",
    "livenessProbe",
    "readinessProbe",
    "startupProbe",
    "lifecycle",
    "securityContext",
    "volumeMounts",
    "targetContainerName",
];

/// Security-context fields read, or known not to widen access beyond what is checked.
const SECURITY_FIELDS: &[&str] = &[
    "capabilities",
    "privileged",
    "allowPrivilegeEscalation",
    "runAsUser",
    "runAsGroup",
    "runAsNonRoot",
    "readOnlyRootFilesystem",
    "seccompProfile",
];

fn container(v: &Value, field: &str, form: Form) -> Result<Container, SpecError> {
    let o = object(v, field)?;
    no_case_tricks(o, field, CONTAINER_FIELDS)?;
    for key in o.keys() {
        if !CONTAINER_FIELDS.contains(&key.as_str())
            || (key == "targetContainerName" && form != Form::Ephemeral)
        {
            return Err(err(
                join(field, key),
                "kubetape does not know what this field does to a container, so it refuses it",
            ));
        }
    }
    let mut c = Container {
        field: field.to_string(),
        name: string(o.get("name"), &join(field, "name"))?,
        image: string(o.get("image"), &join(field, "image"))?,
        target: string(
            o.get("targetContainerName"),
            &join(field, "targetContainerName"),
        )?,
        ..Container::default()
    };
    if let Some(mounts) = o.get("volumeMounts").filter(|m| !m.is_null()) {
        let f = join(field, "volumeMounts");
        let list = mounts
            .as_array()
            .ok_or_else(|| err(&f, "expected a list"))?;
        for (i, m) in list.iter().enumerate() {
            let name = string(
                object(m, &format!("{f}[{i}]"))?.get("name"),
                &format!("{f}[{i}].name"),
            )?;
            c.volume_mounts.push(name.unwrap_or_default());
        }
    }
    if let Some(sc) = o.get("securityContext").filter(|s| !s.is_null()) {
        let f = join(field, "securityContext");
        let sc = object(sc, &f)?;
        c.has_security_context = true;
        no_case_tricks(sc, &f, SECURITY_FIELDS)?;
        for key in sc.keys() {
            if !SECURITY_FIELDS.contains(&key.as_str()) {
                return Err(err(
                    join(&f, key),
                    "kubetape does not inspect this security setting, so it refuses it",
                ));
            }
        }
        c.privileged = boolean(sc.get("privileged"), &join(&f, "privileged"))?;
        let non_root = boolean(sc.get("runAsNonRoot"), &join(&f, "runAsNonRoot"))?;
        if let Some(seccomp) = sc.get("seccompProfile").filter(|s| !s.is_null()) {
            let sf = join(&f, "seccompProfile");
            let kind = string(object(seccomp, &sf)?.get("type"), &join(&sf, "type"))?;
            if !matches!(kind.as_deref(), Some("RuntimeDefault")) {
                return Err(err(
                    join(&sf, "type"),
                    "only RuntimeDefault is accepted (Unconfined lifts the syscall filter)",
                ));
            }
        }
        let mut drops_all = false;
        if let Some(caps) = sc.get("capabilities").filter(|s| !s.is_null()) {
            let cf = join(&f, "capabilities");
            let caps = object(caps, &cf)?;
            no_case_tricks(caps, &cf, &["add", "drop"])?;
            for key in caps.keys() {
                if key != "add" && key != "drop" {
                    return Err(err(join(&cf, key), "not a capabilities field"));
                }
            }
            for (which, list) in [("add", caps.get("add")), ("drop", caps.get("drop"))] {
                let lf = join(&cf, which);
                let Some(list) = list.filter(|l| !l.is_null()) else {
                    continue;
                };
                let list = list.as_array().ok_or_else(|| err(&lf, "expected a list"))?;
                for (i, cap) in list.iter().enumerate() {
                    let cap = string(Some(cap), &format!("{lf}[{i}]"))?.unwrap_or_default();
                    let cap = normalize_capability(&cap);
                    if which == "add" {
                        c.capabilities.push(cap);
                    } else if cap == "ALL" {
                        drops_all = true;
                    }
                }
            }
        }
        c.restricted = non_root && drops_all && c.capabilities.is_empty() && !c.privileged;
    }
    Ok(c)
}

/// `cap_sys_ptrace` and `SYS_PTRACE` are one capability to the container runtime.
pub fn normalize_capability(cap: &str) -> String {
    let upper = cap.trim().to_ascii_uppercase();
    upper
        .strip_prefix("CAP_")
        .map(str::to_string)
        .unwrap_or(upper)
}

/// Pod-spec fields read, or known not to widen access beyond what is checked. Everything
/// else (sysctls, runtime classes, new fields) is refused.
const POD_SPEC_FIELDS: &[&str] = &[
    "containers",
    "initContainers",
    "ephemeralContainers",
    "volumes",
    "restartPolicy",
    "terminationGracePeriodSeconds",
    "activeDeadlineSeconds",
    "dnsPolicy",
    "dnsConfig",
    "nodeSelector",
    "serviceAccountName",
    "serviceAccount",
    "automountServiceAccountToken",
    "nodeName",
    "hostNetwork",
    "hostPID",
    "hostIPC",
    "shareProcessNamespace",
    "securityContext",
    "imagePullSecrets",
    "hostname",
    "subdomain",
    "affinity",
    "schedulerName",
    "tolerations",
    "hostAliases",
    "priorityClassName",
    "priority",
    "readinessGates",
    "enableServiceLinks",
    "preemptionPolicy",
    "overhead",
    "topologySpreadConstraints",
    "setHostnameAsFQDN",
    "os",
];

/// Pod security-context fields that do not widen access.
const POD_SECURITY_FIELDS: &[&str] = &[
    "runAsUser",
    "runAsGroup",
    "runAsNonRoot",
    "fsGroup",
    "fsGroupChangePolicy",
    "supplementalGroups",
    "seccompProfile",
];

/// Volume sources that need no privilege (Pod Security "restricted"), and `hostPath`, which the
/// policy decides on.
const VOLUME_SOURCES: &[&str] = &[
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
];

fn pod_json(v: &Value) -> Result<Spec, SpecError> {
    let top = object(v, "")?;
    let name = top
        .get("metadata")
        .and_then(|m| m.get("name"))
        .and_then(Value::as_str)
        .map(str::to_string);
    let spec = object(
        top.get("spec")
            .ok_or_else(|| err("spec", "a pod without a spec"))?,
        "spec",
    )?;
    no_case_tricks(spec, "spec", POD_SPEC_FIELDS)?;
    let mut out = Spec::default();
    let mut pod = PodAccess {
        name,
        ..PodAccess::default()
    };
    for (key, value) in spec {
        let field = join("spec", key);
        match key.as_str() {
            "containers" | "initContainers" => containers(value, &field, Form::Pod, &mut out)?,
            "ephemeralContainers" => containers(value, &field, Form::Ephemeral, &mut out)?,
            "hostPID" => pod.host_pid = boolean(Some(value), &field)?,
            "hostNetwork" => pod.host_network = boolean(Some(value), &field)?,
            "hostIPC" => pod.host_ipc = boolean(Some(value), &field)?,
            "nodeName" => pod.node_name = string(Some(value), &field)?.filter(|n| !n.is_empty()),
            "securityContext" if !value.is_null() => {
                let sc = object(value, &field)?;
                no_case_tricks(sc, &field, POD_SECURITY_FIELDS)?;
                if let Some(k) = sc
                    .keys()
                    .find(|k| !POD_SECURITY_FIELDS.contains(&k.as_str()))
                {
                    return Err(err(
                        join(&field, k),
                        "kubetape does not inspect this pod security setting, so it refuses it",
                    ));
                }
                if let Some(seccomp) = sc.get("seccompProfile").filter(|s| !s.is_null()) {
                    let t = seccomp.get("type").and_then(Value::as_str);
                    if t != Some("RuntimeDefault") {
                        return Err(err(
                            join(&field, "seccompProfile.type"),
                            "only RuntimeDefault is accepted (Unconfined lifts the syscall filter)",
                        ));
                    }
                }
            }
            "volumes" if !value.is_null() => {
                let list = value
                    .as_array()
                    .ok_or_else(|| err(&field, "expected a list"))?;
                for (i, vol) in list.iter().enumerate() {
                    let vf = format!("{field}[{i}]");
                    let vol = object(vol, &vf)?;
                    no_case_tricks(vol, &vf, &["hostPath"])?;
                    for (k, source) in vol {
                        if k == "name" || VOLUME_SOURCES.contains(&k.as_str()) {
                            continue;
                        }
                        if k == "hostPath" {
                            let hf = join(&vf, "hostPath");
                            let path =
                                string(object(source, &hf)?.get("path"), &join(&hf, "path"))?
                                    .unwrap_or_default();
                            pod.host_paths.push((hf, path));
                            continue;
                        }
                        return Err(err(
                            join(&vf, k),
                            "kubetape accepts only configMap, csi, downwardAPI, emptyDir, ephemeral, persistentVolumeClaim, projected, secret and hostPath volumes",
                        ));
                    }
                }
            }
            k if POD_SPEC_FIELDS.contains(&k) => {}
            _ => {
                return Err(err(
                    field,
                    "kubetape does not know what this field does to a pod, so it refuses it",
                ));
            }
        }
    }
    out.pod = Some(pod);
    Ok(out)
}

// === protobuf ===

/// Protobuf field numbers of `VolumeSource` that need no privilege (see [`VOLUME_SOURCES`]):
/// emptyDir 2, secret 6, persistentVolumeClaim 10, downwardAPI 16, configMap 19, projected 26,
/// csi 28, ephemeral 29 (`k8s.io/api/core/v1/generated.proto`).
const SAFE_VOLUME_SOURCE_NUMBERS: &[u32] = &[2, 6, 10, 16, 19, 26, 28, 29];

/// Protobuf field numbers of `Container` that neither run code nor grant privileges: ports 6,
/// resources 8, probes 10, 11, 22, lifecycle 12, terminationMessagePath 13, envFrom 19,
/// resizePolicy 23, restartPolicy 24.
const SAFE_CONTAINER_NUMBERS: &[u32] = &[6, 8, 10, 11, 12, 13, 19, 22, 23, 24];

/// Protobuf field numbers of `PodSpec` the reader skips that do not widen access (see
/// [`POD_SPEC_FIELDS`]): activeDeadlineSeconds 5, dnsPolicy 6, nodeSelector 7,
/// serviceAccountName 8, serviceAccount 9, imagePullSecrets 15, hostname 16, subdomain 17,
/// affinity 18, schedulerName 19, automountServiceAccountToken 21, hostAliases 23,
/// priorityClassName 24, priority 25, dnsConfig 26, readinessGates 28, enableServiceLinks 30,
/// preemptionPolicy 31, overhead 32, topologySpreadConstraints 33, setHostnameAsFQDN 35, os 36.
const SAFE_POD_SPEC_NUMBERS: &[u32] = &[
    5, 6, 7, 8, 9, 15, 16, 17, 18, 19, 21, 23, 24, 25, 26, 28, 30, 31, 32, 33, 35, 36,
];

fn pod_protobuf(body: &[u8]) -> Result<Spec, SpecError> {
    let (pod, unread) = proto::pod_protobuf::decode_pod_reporting(body)
        .map_err(|e| err("body", format!("not a protobuf Pod kubetape can read: {e}")))?;
    for skipped in &unread {
        let (path, number) = skipped.rsplit_once('#').unwrap_or((skipped, ""));
        let number: u32 = number.parse().unwrap_or(u32::MAX);
        let safe = match path {
            // The pod's metadata (and status, which a create ignores).
            "" | "metadata" => true,
            "spec" => SAFE_POD_SPEC_NUMBERS.contains(&number),
            "spec.containers" | "spec.initContainers" => SAFE_CONTAINER_NUMBERS.contains(&number),
            "spec.volumes.volumeSource" => SAFE_VOLUME_SOURCE_NUMBERS.contains(&number),
            "spec.volumes" | "spec.tolerations" => true,
            p if p.ends_with(".volumeMounts") || p.ends_with(".env") => true,
            _ => false,
        };
        if !safe {
            return Err(err(
                format!("{} (protobuf field {number})", display(path)),
                "kubetape cannot read this field of a protobuf Pod, so it refuses it (send the pod as JSON)",
            ));
        }
    }
    if pod["spec"].get("ephemeralContainers").is_some() {
        // Its protobuf message is not a Container's; refuse rather than misread it.
        return Err(err(
            "spec.ephemeralContainers",
            "kubetape does not read ephemeral containers in a protobuf Pod (send the pod as JSON)",
        ));
    }
    pod_json(&pod)
}
