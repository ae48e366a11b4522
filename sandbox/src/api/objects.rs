//! The cluster's objects as the API shows them: pods (status derived from the main processes),
//! namespaces, the single node, and (always empty) events — each as full JSON and as a
//! `meta.k8s.io/v1` Table row, which is what `kubectl get` prints.

use std::collections::BTreeMap;
use std::time::SystemTime;

use serde_json::{Value, json};

use crate::cluster::{Cluster, Pod};

/// The node every pod runs on.
pub(crate) const NODE: &str = "sandbox";
/// Pods and the node all live at the loopback address.
const IP: &str = "127.0.0.1";

/// The kinds the sandbox lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Pod,
    Namespace,
    Node,
    Event,
}

/// One object, ready for every response form.
#[derive(Debug, Clone)]
pub(crate) struct Item {
    pub name: String,
    pub namespace: Option<String>,
    pub labels: BTreeMap<String, String>,
    pub resource_version: u64,
    pub object: Value,
    pub cells: Vec<Value>,
    /// Values field selectors can match.
    pub fields: Vec<(&'static str, String)>,
}

impl Item {
    pub fn field(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(f, _)| *f == name)
            .map(|(_, v)| v.as_str())
    }
}

fn time(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

/// `duration.HumanDuration` from apimachinery: the Age column's format.
pub(crate) fn human_duration(secs: u64) -> String {
    let (m, h) = (secs / 60, secs / 3600);
    let (d, y) = (h / 24, h / 24 / 365);
    let with = |a: u64, ua: &str, b: u64, ub: &str| {
        if b == 0 {
            format!("{a}{ua}")
        } else {
            format!("{a}{ua}{b}{ub}")
        }
    };
    match () {
        () if secs < 120 => format!("{secs}s"),
        () if m < 10 => with(m, "m", secs % 60, "s"),
        () if m < 180 => format!("{m}m"),
        () if h < 8 => with(h, "h", m % 60, "m"),
        () if h < 48 => format!("{h}h"),
        () if h < 24 * 8 => with(d, "d", h % 24, "h"),
        () if h < 24 * 365 * 2 => format!("{d}d"),
        () if h < 24 * 365 * 8 => with(y, "y", d % 365, "d"),
        () => format!("{y}y"),
    }
}

fn age(t: SystemTime) -> String {
    human_duration(
        SystemTime::now()
            .duration_since(t)
            .unwrap_or_default()
            .as_secs(),
    )
}

impl Kind {
    pub fn resource(self) -> &'static str {
        match self {
            Kind::Pod => "pods",
            Kind::Namespace => "namespaces",
            Kind::Node => "nodes",
            Kind::Event => "events",
        }
    }

    pub fn list_kind(self) -> &'static str {
        match self {
            Kind::Pod => "PodList",
            Kind::Namespace => "NamespaceList",
            Kind::Node => "NodeList",
            Kind::Event => "EventList",
        }
    }

    /// Fields a field selector may use (`None`: accept any, as nothing ever matches).
    pub fn selectable_fields(self) -> Option<&'static [&'static str]> {
        match self {
            Kind::Pod => Some(&[
                "metadata.name",
                "metadata.namespace",
                "spec.nodeName",
                "spec.restartPolicy",
                "spec.schedulerName",
                "spec.serviceAccountName",
                "status.phase",
                "status.podIP",
                "status.nominatedNodeName",
            ]),
            Kind::Namespace => Some(&["metadata.name", "status.phase"]),
            Kind::Node => Some(&["metadata.name", "spec.unschedulable"]),
            Kind::Event => None,
        }
    }

    /// Table columns, as the API server's printers define them.
    pub fn columns(self) -> Value {
        let col = |name: &str, format: &str, priority: u8, description: &str| json!({"name": name, "type": "string", "format": format, "description": description, "priority": priority});
        let name = col("Name", "name", 0, "Name must be unique within a namespace.");
        let age = col(
            "Age",
            "",
            0,
            "CreationTimestamp is a timestamp representing the server time when this object was created.",
        );
        match self {
            Kind::Pod => json!([
                name,
                col(
                    "Ready",
                    "",
                    0,
                    "The aggregate readiness state of this pod for accepting traffic."
                ),
                col(
                    "Status",
                    "",
                    0,
                    "The aggregate status of the containers in this pod."
                ),
                col(
                    "Restarts",
                    "",
                    0,
                    "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted."
                ),
                age,
                col(
                    "IP",
                    "",
                    1,
                    "podIP address allocated to the pod. Routable at least within the cluster. Empty if not yet allocated."
                ),
                col(
                    "Node",
                    "",
                    1,
                    "NodeName indicates in which node this pod is scheduled."
                ),
                col(
                    "Nominated Node",
                    "",
                    1,
                    "nominatedNodeName is set only when this pod preempts other pods on the node."
                ),
                col(
                    "Readiness Gates",
                    "",
                    1,
                    "If specified, all readiness gates will be evaluated for pod readiness."
                ),
            ]),
            Kind::Namespace => json!([
                name,
                col("Status", "", 0, "The status of the namespace"),
                age
            ]),
            Kind::Node => json!([
                name,
                col("Status", "", 0, "The status of the node"),
                col("Roles", "", 0, "The roles of the node"),
                age,
                col("Version", "", 0, "Kubelet Version reported by the node."),
            ]),
            Kind::Event => json!([
                col("Last Seen", "", 0, "Time when last seen"),
                col("Type", "", 0, "Type of this event (Normal, Warning)."),
                col(
                    "Reason",
                    "",
                    0,
                    "This should be a short, machine understandable string."
                ),
                col("Object", "", 0, "The object that this event is about."),
                col(
                    "Message",
                    "",
                    0,
                    "A human-readable description of the status of this operation."
                ),
            ]),
        }
    }

    /// Every object of this kind, optionally in one namespace.
    pub fn items(self, cluster: &Cluster, namespace: Option<&str>) -> Vec<Item> {
        match self {
            Kind::Pod => cluster
                .pods()
                .iter()
                .filter(|p| namespace.is_none_or(|ns| p.spec.namespace == ns))
                .map(|p| pod(p))
                .collect(),
            Kind::Namespace => cluster
                .namespaces
                .iter()
                .map(|n| namespace_item(cluster, n))
                .collect(),
            Kind::Node => vec![node(cluster)],
            Kind::Event => Vec::new(),
        }
    }
}

fn pod(p: &Pod) -> Item {
    let created = time(p.created);
    let mut statuses = Vec::new();
    let mut containers = Vec::new();
    let (mut ready, mut exit_codes) = (0, Vec::new());
    for c in &p.containers {
        let s = &c.spec;
        let mut spec = json!({
            "name": s.name,
            "image": s.image,
            "command": s.command,
            "workingDir": s.workdir().display().to_string(),
            "resources": {},
            "terminationMessagePath": "/dev/termination-log",
            "terminationMessagePolicy": "File",
            "imagePullPolicy": "IfNotPresent",
        });
        if s.stdin {
            spec["stdin"] = json!(true);
        }
        if s.stdin_once {
            spec["stdinOnce"] = json!(true);
        }
        if s.tty {
            spec["tty"] = json!(true);
        }
        if !s.ports.is_empty() {
            spec["ports"] = s
                .ports
                .iter()
                .map(|p| {
                    let mut port = json!({"containerPort": p.port, "protocol": "TCP"});
                    if let Some(name) = &p.name {
                        port["name"] = json!(name);
                    }
                    port
                })
                .collect();
        }
        if !s.env.is_empty() {
            spec["env"] = s
                .env
                .iter()
                .map(|(k, v)| json!({"name": k, "value": v}))
                .collect();
        }
        containers.push(spec);
        let state = match c.main.terminated() {
            None => {
                ready += 1;
                json!({"running": {"startedAt": created}})
            }
            Some(t) => {
                exit_codes.push(t.exit_code);
                json!({"terminated": {
                    "exitCode": t.exit_code,
                    "reason": if t.exit_code == 0 { "Completed" } else { "Error" },
                    "startedAt": created,
                    "finishedAt": time(t.finished_at),
                    "containerID": c.id,
                }})
            }
        };
        let running = state.get("running").is_some();
        statuses.push(json!({
            "name": s.name,
            "state": state,
            "lastState": {},
            "ready": running,
            "restartCount": 0,
            "image": s.image,
            "imageID": format!("{}@sha256:{}", s.image, "0".repeat(64)),
            "containerID": c.id,
            "started": running,
        }));
    }
    let (ephemeral_specs, ephemeral_statuses) = ephemeral(p);
    let ephemeral_specs_empty = ephemeral_specs.is_empty();
    let total = p.containers.len();
    let finished = exit_codes.len() == total;
    let (phase, reason) = match () {
        () if !finished => ("Running", "Running".to_string()),
        () if exit_codes.iter().all(|c| *c == 0) => ("Succeeded", "Completed".to_string()),
        () => ("Failed", "Error".to_string()),
    };
    let all_ready = if ready == total { "True" } else { "False" };
    let condition = |kind: &str, status: &str| json!({"type": kind, "status": status, "lastProbeTime": null, "lastTransitionTime": created});
    let mut metadata = json!({
        "name": p.spec.name,
        "namespace": p.spec.namespace,
        "uid": p.uid,
        "resourceVersion": p.resource_version().to_string(),
        "creationTimestamp": created,
    });
    if !p.spec.labels.is_empty() {
        metadata["labels"] = json!(p.spec.labels);
    }
    let object = json!({
        "kind": "Pod",
        "apiVersion": "v1",
        "metadata": metadata,
        "spec": {
            "containers": containers,
            "ephemeralContainers": ephemeral_specs,
            "restartPolicy": "Never",
            "terminationGracePeriodSeconds": 30,
            "dnsPolicy": "ClusterFirst",
            "serviceAccountName": "default",
            "serviceAccount": "default",
            "nodeName": NODE,
            "securityContext": {},
            "schedulerName": "default-scheduler",
            "priority": 0,
            "enableServiceLinks": true,
            "preemptionPolicy": "PreemptLowerPriority",
        },
        "status": {
            "phase": phase,
            "conditions": [
                condition("PodReadyToStartContainers", if finished { "False" } else { "True" }),
                condition("Initialized", "True"),
                condition("Ready", all_ready),
                condition("ContainersReady", all_ready),
                condition("PodScheduled", "True"),
            ],
            "hostIP": IP,
            "hostIPs": [{"ip": IP}],
            "podIP": IP,
            "podIPs": [{"ip": IP}],
            "startTime": created,
            "containerStatuses": statuses,
            "ephemeralContainerStatuses": ephemeral_statuses,
            "qosClass": "BestEffort",
        },
    });
    let mut object = object;
    if let Some(sent) = &p.submitted {
        overlay_submitted(&mut object, sent);
    }
    // The API leaves empty lists out.
    if ephemeral_specs_empty {
        for (part, key) in [
            ("spec", "ephemeralContainers"),
            ("status", "ephemeralContainerStatuses"),
        ] {
            if let Some(m) = object[part].as_object_mut() {
                m.remove(key);
            }
        }
    }
    let cells = vec![
        json!(p.spec.name),
        json!(format!("{ready}/{total}")),
        json!(reason),
        json!("0"),
        json!(age(p.created)),
        json!(IP),
        json!(NODE),
        json!("<none>"),
        json!("<none>"),
    ];
    Item {
        name: p.spec.name.clone(),
        namespace: Some(p.spec.namespace.clone()),
        labels: p.spec.labels.clone(),
        resource_version: p.resource_version(),
        fields: vec![
            ("metadata.name", p.spec.name.clone()),
            ("metadata.namespace", p.spec.namespace.clone()),
            ("spec.nodeName", NODE.into()),
            ("spec.restartPolicy", "Never".into()),
            ("spec.schedulerName", "default-scheduler".into()),
            ("spec.serviceAccountName", "default".into()),
            ("status.phase", phase.into()),
            ("status.podIP", IP.into()),
        ],
        object,
        cells,
    }
}

/// Shows back what a created pod was sent with and the sandbox does not model (host namespaces,
/// volumes, tolerations, a container's securityContext and volumeMounts…): fields the sandbox
/// rendered itself win.
fn overlay_submitted(object: &mut Value, sent: &Value) {
    let (Some(spec), Some(sent_spec)) = (object["spec"].as_object_mut(), sent["spec"].as_object())
    else {
        return;
    };
    for (k, v) in sent_spec {
        if k == "containers" {
            let sent_containers = v.as_array().cloned().unwrap_or_default();
            if let Some(containers) = spec.get_mut("containers").and_then(Value::as_array_mut) {
                for (c, s) in containers.iter_mut().zip(sent_containers) {
                    if let (Some(c), Some(s)) = (c.as_object_mut(), s.as_object()) {
                        for (ck, cv) in s {
                            c.entry(ck.clone()).or_insert_with(|| cv.clone());
                        }
                    }
                }
            }
        } else {
            spec.entry(k.clone()).or_insert_with(|| v.clone());
        }
    }
    // The node the pod was sent to: the sandbox has one.
    spec.insert("nodeName".into(), json!(NODE));
}

/// `spec.ephemeralContainers` and their statuses (what `kubectl debug` waits on: `running`,
/// or `terminated`, or `waiting` with `ImagePullBackOff` for an image mapped to no program).
fn ephemeral(p: &Pod) -> (Vec<Value>, Vec<Value>) {
    let (mut specs, mut statuses) = (Vec::new(), Vec::new());
    for e in p.ephemeral() {
        specs.push(e.object.clone());
        let image = e.object["image"].clone();
        let started = time(e.started);
        let (state, id) = match (&e.container, &e.waiting) {
            (Some(c), _) => match c.main.terminated() {
                None => (
                    json!({"running": {"startedAt": started}}),
                    Some(c.id.clone()),
                ),
                Some(t) => (
                    json!({"terminated": {
                        "exitCode": t.exit_code,
                        "reason": if t.exit_code == 0 { "Completed" } else { "Error" },
                        "startedAt": started,
                        "finishedAt": time(t.finished_at),
                        "containerID": c.id,
                    }}),
                    Some(c.id.clone()),
                ),
            },
            (None, waiting) => (
                json!({"waiting": {
                    "reason": "ImagePullBackOff",
                    "message": waiting.clone().unwrap_or_default(),
                }}),
                None,
            ),
        };
        let mut status = json!({
            "name": e.name,
            "state": state,
            "lastState": {},
            "ready": false,
            "restartCount": 0,
            "image": image,
            "imageID": "",
        });
        if let Some(id) = id {
            status["containerID"] = json!(id);
            status["imageID"] = json!(format!(
                "{}@sha256:{}",
                image.as_str().unwrap_or(""),
                "0".repeat(64)
            ));
        }
        statuses.push(status);
    }
    (specs, statuses)
}

/// A stable uid for objects the configuration does not name one for (FNV-1a of `seed`).
fn stable_uid(seed: &str) -> String {
    let mut h: u128 = 0x6c62_272e_07bb_0142_62b8_2175_6295_c58d;
    for b in seed.bytes() {
        h ^= u128::from(b);
        h = h.wrapping_mul(0x0000_0000_0100_0000_0000_0000_0000_013b);
    }
    uuid::Builder::from_random_bytes(h.to_be_bytes())
        .into_uuid()
        .to_string()
}

fn namespace_item(cluster: &Cluster, name: &str) -> Item {
    let labels = BTreeMap::from([("kubernetes.io/metadata.name".to_string(), name.to_string())]);
    Item {
        name: name.into(),
        namespace: None,
        labels: labels.clone(),
        resource_version: 1,
        object: json!({
            "kind": "Namespace",
            "apiVersion": "v1",
            "metadata": {
                "name": name,
                "uid": stable_uid(name),
                "resourceVersion": "1",
                "creationTimestamp": time(cluster.created),
                "labels": labels,
            },
            "spec": {"finalizers": ["kubernetes"]},
            "status": {"phase": "Active"},
        }),
        cells: vec![json!(name), json!("Active"), json!(age(cluster.created))],
        fields: vec![
            ("metadata.name", name.into()),
            ("status.phase", "Active".into()),
        ],
    }
}

fn node(cluster: &Cluster) -> Item {
    let labels = BTreeMap::from([
        ("kubernetes.io/hostname".to_string(), NODE.to_string()),
        ("kubernetes.io/os".into(), "linux".into()),
        ("kubernetes.io/arch".into(), "amd64".into()),
        (
            "node-role.kubernetes.io/control-plane".into(),
            String::new(),
        ),
    ]);
    let created = time(cluster.created);
    Item {
        name: NODE.into(),
        namespace: None,
        labels: labels.clone(),
        resource_version: 1,
        object: json!({
            "kind": "Node",
            "apiVersion": "v1",
            "metadata": {
                "name": NODE,
                "uid": stable_uid("node/sandbox"),
                "resourceVersion": "1",
                "creationTimestamp": created,
                "labels": labels,
            },
            "spec": {},
            "status": {
                "conditions": [{
                    "type": "Ready", "status": "True", "reason": "KubeletReady",
                    "message": "kubelet is posting ready status",
                    "lastHeartbeatTime": created, "lastTransitionTime": created,
                }],
                "addresses": [{"type": "InternalIP", "address": IP}, {"type": "Hostname", "address": NODE}],
                "nodeInfo": {
                    "kubeletVersion": cluster.kubernetes_version,
                    "kubeProxyVersion": cluster.kubernetes_version,
                    "operatingSystem": "linux",
                    "architecture": "amd64",
                    "containerRuntimeVersion": "sandbox://0.1.0",
                    "osImage": "kubetape-sandbox",
                    "kernelVersion": "",
                    "machineID": "",
                    "systemUUID": "",
                    "bootID": "",
                },
            },
        }),
        cells: vec![
            json!(NODE),
            json!("Ready"),
            json!("control-plane"),
            json!(age(cluster.created)),
            json!(cluster.kubernetes_version),
        ],
        fields: vec![
            ("metadata.name", NODE.into()),
            ("spec.unschedulable", "false".into()),
        ],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_durations_match_apimachinery() {
        for (secs, want) in [
            (0, "0s"),
            (119, "119s"),
            (120, "2m"),
            (125, "2m5s"),
            (600, "10m"),
            (3 * 3600, "3h"),
            (3 * 3600 + 60, "3h1m"),
            (9 * 3600, "9h"),
            (50 * 3600, "2d2h"),
            (10 * 86400, "10d"),
            (3 * 365 * 86400 + 86400, "3y1d"),
            (9 * 365 * 86400, "9y"),
        ] {
            assert_eq!(human_duration(secs), want, "{secs}");
        }
    }
}
