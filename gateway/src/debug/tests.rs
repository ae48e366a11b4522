//! The inspection of debug bodies, as kubectl 1.27–1.37 send them and as an attacker might: what
//! is read, what is refused, and a property test that arbitrary patches never panic the reader
//! and are never allowed beyond the policy.

use proptest::prelude::*;
use serde_json::{Value, json};

use super::spec::{Form, parse};
use super::*;
use crate::policy::debug::{DebugLimits, profile_of};

const SMP: &str = "application/strategic-merge-patch+json";
const JSON_PATCH: &str = "application/json-patch+json";

fn limits(toml_text: &str) -> DebugLimits {
    toml::from_str(toml_text).unwrap()
}

fn busybox_only() -> DebugLimits {
    limits("images = [\"busybox\", \"busybox:*\"]")
}

/// What kubectl 1.33 sends for `debug -it demo --image=busybox --target=shell --profile=general`.
const KUBECTL_PATCH: &str = r#"{"spec":{"$setElementOrder/ephemeralContainers":[{"name":"debugger-h65lp"}],"ephemeralContainers":[{"command":["sh"],"image":"busybox","name":"debugger-h65lp","resources":{},"securityContext":{"capabilities":{"add":["SYS_PTRACE"]}},"stdin":true,"targetContainerName":"shell","terminationMessagePolicy":"File","tty":true}]}}"#;

#[test]
fn kubectls_patch_is_read_and_allowed() {
    let spec = parse(Form::Ephemeral, SMP, KUBECTL_PATCH.as_bytes()).unwrap();
    assert_eq!(spec.containers.len(), 1);
    let c = &spec.containers[0];
    assert_eq!(c.image.as_deref(), Some("busybox"));
    assert_eq!(c.target.as_deref(), Some("shell"));
    assert_eq!(c.capabilities, ["SYS_PTRACE"]);
    assert_eq!(profile_of(c), "general");
    let v = busybox_only().check("dev", Form::Ephemeral, &spec).unwrap();
    assert_eq!((v.form, v.profile.as_str()), ("ephemeral", "general"));
}

#[test]
fn refusals_name_the_field_and_the_rule() {
    let cases: &[(&str, &str, &str, &str)] = &[
        (
            r#"{"spec":{"ephemeralContainers":[{"name":"d","image":"alpine:3"}]}}"#,
            "spec.ephemeralContainers[0].image",
            "role \"dev\" debug.images",
            "\"alpine:3\"",
        ),
        (
            r#"{"spec":{"ephemeralContainers":[{"name":"d","image":"busybox","securityContext":{"privileged":true}}]}}"#,
            "spec.ephemeralContainers[0].securityContext.privileged",
            "role \"dev\" debug.profiles",
            "sysadmin",
        ),
        (
            r#"{"spec":{"ephemeralContainers":[{"name":"d","image":"busybox","securityContext":{"capabilities":{"add":["NET_ADMIN","NET_RAW"]}}}]}}"#,
            "spec.ephemeralContainers[0].securityContext.capabilities.add",
            "role \"dev\" debug.profiles",
            "netadmin",
        ),
        (
            r#"{"spec":{"ephemeralContainers":[{"name":"d","image":"busybox","securityContext":{"capabilities":{"add":["cap_sys_admin"]}}}]}}"#,
            "spec.ephemeralContainers[0].securityContext.capabilities.add",
            "role \"dev\" debug.profiles",
            "SYS_ADMIN",
        ),
    ];
    for (body, field, rule, text) in cases {
        let spec = parse(Form::Ephemeral, SMP, body.as_bytes()).unwrap();
        let r = busybox_only()
            .check("dev", Form::Ephemeral, &spec)
            .unwrap_err();
        assert_eq!(&r.field, field, "{body}");
        assert_eq!(&r.rule, rule, "{body}");
        assert!(r.message.contains(text), "{body}: {}", r.message);
    }
    // sysadmin allowed by profile; extra capabilities by name.
    let l = limits(
        "images = [\"busybox\"]\nprofiles = [\"sysadmin\", \"netadmin\"]\ncapabilities = [\"SYS_ADMIN\"]",
    );
    for body in &cases[1..] {
        let spec = parse(Form::Ephemeral, SMP, body.0.as_bytes()).unwrap();
        assert!(l.check("ops", Form::Ephemeral, &spec).is_ok(), "{}", body.0);
    }
}

/// What cannot be read with certainty is an error, never allowed.
#[test]
fn unreadable_bodies_are_refused() {
    let cases: &[(Form, &str, &str, &str)] = &[
        (Form::Ephemeral, SMP, "not json", "body"),
        (
            Form::Ephemeral,
            SMP,
            r#"{"spec":{"ephemeralContainers":[{"name":"d","image":"busybox","image":"alpine"}]}}"#,
            "body",
        ),
        (
            Form::Ephemeral,
            SMP,
            r#"{"spec":{"ephemeralContainers":[{"name":"d","image":"busybox","securityContext":{"Privileged":true}}]}}"#,
            "spec.ephemeralContainers[0].securityContext.Privileged",
        ),
        (
            Form::Ephemeral,
            SMP,
            r#"{"spec":{"ephemeralContainers":[{"name":"d","image":"busybox","securityContext":{"seLinuxOptions":{"type":"spc_t"}}}]}}"#,
            "spec.ephemeralContainers[0].securityContext.seLinuxOptions",
        ),
        (
            Form::Ephemeral,
            SMP,
            r#"{"spec":{"ephemeralContainers":[{"name":"d","image":"busybox","$patch":"replace"}]}}"#,
            "spec.ephemeralContainers[0].$patch",
        ),
        (
            Form::Ephemeral,
            SMP,
            r#"{"spec":{"containers":[{"name":"shell","image":"evil"}]}}"#,
            "spec.containers",
        ),
        (
            Form::Ephemeral,
            JSON_PATCH,
            r#"[{"op":"copy","from":"/spec/containers/0","path":"/spec/ephemeralContainers/-"}]"#,
            "[0].op",
        ),
        (
            Form::Ephemeral,
            JSON_PATCH,
            r#"[{"op":"add","path":"/spec/ephemeralContainers/0/securityContext","value":{"privileged":true}}]"#,
            "[0].path",
        ),
        (Form::Ephemeral, "application/yaml", "{}", "Content-Type"),
        (
            Form::Pod,
            "application/json",
            r#"{"metadata":{"name":"p"},"spec":{"containers":[{"name":"c","image":"busybox"}],"securityContext":{"sysctls":[{"name":"kernel.x","value":"1"}]}}}"#,
            "spec.securityContext.sysctls",
        ),
        (
            Form::Pod,
            "application/json",
            r#"{"metadata":{"name":"p"},"spec":{"containers":[{"name":"c","image":"busybox"}],"volumes":[{"name":"v","nfs":{"server":"x","path":"/"}}]}}"#,
            "spec.volumes[0].nfs",
        ),
        (
            Form::Pod,
            "application/json",
            r#"{"metadata":{"name":"p"},"spec":{"containers":[{"name":"c","image":"busybox"}],"runtimeClassName":"host"}}"#,
            "spec.runtimeClassName",
        ),
    ];
    for (form, ctype, body, field) in cases {
        let e = parse(*form, ctype, body.as_bytes()).unwrap_err();
        assert_eq!(&e.field, field, "{body}: {e}");
    }
}

fn node_pod(privileged: bool) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "node-debugger-n1-abcde"},
        "spec": {
            "containers": [{
                "name": "debugger", "image": "busybox", "stdin": true, "tty": true,
                "command": ["sh"], "terminationMessagePolicy": "File",
                "securityContext": if privileged { json!({"privileged": true}) } else { json!({}) },
                "volumeMounts": [{"name": "host-root", "mountPath": "/host"}],
            }],
            "nodeName": "n1", "hostIPC": true, "hostNetwork": true, "hostPID": true,
            "restartPolicy": "Never",
            "tolerations": [{"operator": "Exists"}],
            "volumes": [{"name": "host-root", "hostPath": {"path": "/"}}],
        },
    })
}

/// Node debugging and copies, in JSON and in kubectl's protobuf, read alike.
#[test]
fn created_pods_json_and_protobuf() {
    let pod = node_pod(false);
    let from_json = parse(
        Form::Pod,
        "application/json",
        &serde_json::to_vec(&pod).unwrap(),
    )
    .unwrap();
    let from_proto = parse(
        Form::Pod,
        proto::pod_protobuf::CONTENT_TYPE,
        &proto::pod_protobuf::encode_pod(&pod),
    )
    .unwrap();
    assert_eq!(from_json, from_proto);
    let access = from_json.pod.as_ref().unwrap();
    assert_eq!(access.node_name.as_deref(), Some("n1"));
    assert_eq!(access.host_paths[0].1, "/");
    let r = limits("images = [\"busybox\"]\ncopy = true")
        .check("dev", Form::Pod, &from_json)
        .unwrap_err();
    assert_eq!(r.rule, "role \"dev\" debug.node");
    assert_eq!(r.field, "spec.volumes[0].hostPath");
    let v = limits("images = [\"busybox\"]\nnode = true")
        .check("ops", Form::Pod, &from_json)
        .unwrap();
    assert_eq!(v.form, "node");
    // sysadmin on a node needs that profile too.
    let privileged = parse(
        Form::Pod,
        proto::pod_protobuf::CONTENT_TYPE,
        &proto::pod_protobuf::encode_pod(&node_pod(true)),
    )
    .unwrap();
    let r = limits("images = [\"busybox\"]\nnode = true")
        .check("ops", Form::Pod, &privileged)
        .unwrap_err();
    assert_eq!(r.rule, "role \"ops\" debug.profiles");
    // A copy: no host access; needs copy = true.
    let copy = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "demo-copy"},
        "spec": {"containers": [
            {"name": "shell", "image": "kubetape-sandbox/shell", "command": ["sh"]},
            {"name": "debugger-x", "image": "busybox", "stdin": true, "tty": true}],
            "shareProcessNamespace": true}});
    let copy = parse(
        Form::Pod,
        proto::pod_protobuf::CONTENT_TYPE,
        &proto::pod_protobuf::encode_pod(&copy),
    )
    .unwrap();
    let r = busybox_only().check("dev", Form::Pod, &copy).unwrap_err();
    assert_eq!(r.rule, "role \"dev\" debug.copy");
    let l = limits("images = [\"busybox\", \"kubetape-sandbox/*\"]\ncopy = true");
    assert_eq!(l.check("dev", Form::Pod, &copy).unwrap().form, "copy");
    let l = limits("images = [\"busybox\"]\ncopy = true");
    assert_eq!(
        l.check("dev", Form::Pod, &copy).unwrap_err().field,
        "spec.containers[0].image"
    );
}

#[test]
fn roles_without_a_debug_table_allow_no_debugging() {
    let policy = Policy::from_toml(
        r#"
[[roles]]
name = "exec-only"
[[roles.rules]]
namespaces = ["default"]
resources = ["pods/ephemeralcontainers"]
verbs = ["patch"]

[[roles]]
name = "debugger"
[[roles.rules]]
namespaces = ["default"]
resources = ["pods/ephemeralcontainers"]
verbs = ["patch"]
[roles.debug]
images = ["busybox"]
"#,
        "p",
    )
    .unwrap();
    let spec = parse(Form::Ephemeral, SMP, KUBECTL_PATCH.as_bytes()).unwrap();
    let Decision::Deny(m) = decide(&policy, &["exec-only".into()], Form::Ephemeral, &spec, "u")
    else {
        panic!()
    };
    assert!(m.contains("role \"exec-only\" allows no debugging"), "{m}");
    let roles = ["exec-only".to_string(), "debugger".to_string()];
    assert!(matches!(
        decide(&policy, &roles, Form::Ephemeral, &spec, "u"),
        Decision::Allow { role, .. } if role == "debugger"
    ));
}

// === property: arbitrary patches ===

/// Values drawn near the shape of a debug patch, with privilege-bearing keys in many cases.
fn arb_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i32>().prop_map(|n| json!(n)),
        prop::sample::select(vec![
            "busybox",
            "busybox:1.36",
            "alpine",
            "SYS_PTRACE",
            "NET_ADMIN",
            "cap_sys_admin",
            "ALL",
            "RuntimeDefault",
            "Unconfined",
            "/",
            "sh",
            "",
        ])
        .prop_map(|s| json!(s)),
    ];
    leaf.prop_recursive(5, 64, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec(
                (
                    prop::sample::select(vec![
                        "spec",
                        "ephemeralContainers",
                        "containers",
                        "name",
                        "image",
                        "securityContext",
                        "privileged",
                        "Privileged",
                        "capabilities",
                        "add",
                        "drop",
                        "hostPID",
                        "hostNetwork",
                        "nodeName",
                        "volumes",
                        "hostPath",
                        "path",
                        "targetContainerName",
                        "$patch",
                        "runAsNonRoot",
                        "seccompProfile",
                        "type",
                        "op",
                        "value",
                        "metadata",
                        "$setElementOrder/ephemeralContainers",
                    ]),
                    inner,
                ),
                0..5,
            )
            .prop_map(|kv| Value::Object(
                kv.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
            )),
        ]
    })
}

/// Whether a container object carries something `busybox_only` forbids: an image other than
/// busybox, privileged, or an added capability other than SYS_PTRACE.
fn forbidden(c: &Value) -> bool {
    let bad_image = !matches!(
        c.get("image").and_then(Value::as_str),
        Some("busybox" | "busybox:1.36")
    );
    let bad_sc = c.get("securityContext").is_some_and(|sc| {
        sc.get("privileged") == Some(&Value::Bool(true))
            || sc
                .get("capabilities")
                .and_then(|c| c.get("add"))
                .and_then(Value::as_array)
                .is_some_and(|a| a.iter().any(|x| x != "SYS_PTRACE"))
    });
    bad_image || bad_sc
}

/// The containers a list field holds, as the API server would read them.
fn listed<'a>(v: &'a Value, key: &str) -> Vec<&'a Value> {
    v.get(key)
        .and_then(Value::as_array)
        .map(|a| a.iter().collect())
        .unwrap_or_default()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    /// Arbitrary bytes never panic the reader.
    #[test]
    fn arbitrary_bytes_never_panic(body in prop::collection::vec(any::<u8>(), 0..512), which in 0usize..4) {
        let ctype = [SMP, JSON_PATCH, "application/json", proto::pod_protobuf::CONTENT_TYPE][which];
        let _ = parse(Form::Ephemeral, ctype, &body);
        let _ = parse(Form::Pod, ctype, &body);
    }

    /// A patch (merge or JSON patch) with a container that runs a forbidden image or privilege
    /// anywhere in it is never allowed; one allowed has only busybox, unprivileged, at most
    /// SYS_PTRACE.
    #[test]
    fn arbitrary_patches_never_allow_what_is_forbidden(v in arb_value(), wrap in 0usize..3) {
        let (ctype, body) = match wrap {
            0 => (SMP, json!({"spec": {"ephemeralContainers": [v.clone()]}})),
            1 => (JSON_PATCH, json!([{"op": "add", "path": "/spec/ephemeralContainers/-", "value": v.clone()}])),
            _ => (SMP, v.clone()),
        };
        let bytes = serde_json::to_vec(&body).unwrap();
        let added: Vec<&Value> = match wrap {
            1 => vec![&v],
            _ => listed(&body["spec"], "ephemeralContainers"),
        };
        if let Ok(spec) = parse(Form::Ephemeral, ctype, &bytes)
            && busybox_only().check("dev", Form::Ephemeral, &spec).is_ok()
        {
            prop_assert!(!added.iter().any(|c| forbidden(c)), "allowed: {body}");
        }
    }

    /// The same for created pods, in JSON and protobuf: host access is never allowed without
    /// node = true.
    #[test]
    fn arbitrary_pods_never_get_host_access(v in arb_value(), proto_body: bool) {
        let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": v});
        let (ctype, bytes) = if proto_body {
            (proto::pod_protobuf::CONTENT_TYPE, proto::pod_protobuf::encode_pod(&pod))
        } else {
            ("application/json", serde_json::to_vec(&pod).unwrap())
        };
        let l = limits("images = [\"busybox\", \"busybox:1.36\"]\ncopy = true");
        // What the API server would read: for protobuf, what the bytes hold.
        let seen = if proto_body {
            proto::pod_protobuf::decode_pod(&bytes).unwrap_or(Value::Null)
        } else {
            pod.clone()
        };
        if let Ok(spec) = parse(Form::Pod, ctype, &bytes)
            && l.check("dev", Form::Pod, &spec).is_ok()
        {
            let s = &seen["spec"];
            prop_assert!(s.get("hostPID") != Some(&Value::Bool(true)), "{pod}");
            prop_assert!(s.get("hostNetwork") != Some(&Value::Bool(true)), "{pod}");
            prop_assert!(s.get("nodeName").and_then(Value::as_str).is_none_or(str::is_empty), "{pod}");
            prop_assert!(listed(s, "volumes").iter().all(|v| v.get("hostPath").is_none()), "{pod}");
            for key in ["containers", "initContainers", "ephemeralContainers"] {
                prop_assert!(!listed(s, key).iter().any(|c| forbidden(c)), "{pod}");
            }
        }
    }
}
