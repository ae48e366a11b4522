//! Kubeconfigs that point kubectl at a gateway: its address, the CA that signed its
//! certificate, and one user whose credentials are either a fixed bearer token or the
//! development token plugin ([`crate::devissuer`], run as `kubetape-quickstart token`).

use std::net::SocketAddr;
use std::path::Path;

use base64::Engine as _;
use serde_json::{Value, json};

use crate::devissuer::EXEC_CREDENTIAL_API_VERSION;

/// The cluster and context name every kubeconfig written here uses.
pub const NAME: &str = "kubetape-quickstart";

/// A kubeconfig (as JSON, which kubectl reads like YAML) for the gateway at `addr`, trusting
/// `ca_pem`, with one user `user` whose `user:` entry is `credentials` (see [`token`] and
/// [`exec_plugin`]); namespace `default`.
pub fn for_gateway(addr: SocketAddr, ca_pem: &str, user: &str, credentials: Value) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": NAME, "cluster": {
            "server": format!("https://{addr}"),
            "certificate-authority-data": base64::engine::general_purpose::STANDARD.encode(ca_pem),
        }}],
        "users": [{"name": user, "user": credentials}],
        "contexts": [{"name": NAME, "context": {
            "cluster": NAME, "user": user, "namespace": "default",
        }}],
        "current-context": NAME,
    })
}

/// Credentials that present a fixed bearer token (or, for `None`, none at all).
pub fn token(token: Option<&str>) -> Value {
    match token {
        Some(t) => json!({ "token": t }),
        None => json!({}),
    }
}

/// Credentials from an exec credential plugin: kubectl runs `command args…` for every call and
/// reads a `client.authentication.k8s.io/v1` `ExecCredential` from its stdout.
pub fn exec_plugin(command: &Path, args: &[String]) -> Value {
    json!({"exec": {
        "apiVersion": EXEC_CREDENTIAL_API_VERSION,
        "command": command,
        "args": args,
        "interactiveMode": "Never",
        "provideClusterInfo": false,
    }})
}

/// Writes `kubeconfig` to `path`, readable by its owner only (it may hold a token).
pub fn write(path: &Path, kubeconfig: &Value) -> std::io::Result<()> {
    let text = serde_json::to_string_pretty(kubeconfig).expect("JSON serializes");
    gateway::tls::write_private(path, text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    #[test]
    fn shape_and_mode() {
        let addr: SocketAddr = "127.0.0.1:8443".parse().unwrap();
        let plugin = exec_plugin(Path::new("/bin/kubetape-quickstart"), &["token".into()]);
        let kc = for_gateway(addr, "PEM", "dev@example.com", plugin);
        assert_eq!(
            kc["clusters"][0]["cluster"]["server"],
            "https://127.0.0.1:8443"
        );
        assert_eq!(
            kc["clusters"][0]["cluster"]["certificate-authority-data"],
            "UEVN"
        );
        assert_eq!(kc["users"][0]["name"], "dev@example.com");
        assert_eq!(kc["contexts"][0]["context"]["user"], "dev@example.com");
        assert_eq!(kc["current-context"], NAME);
        let exec = &kc["users"][0]["user"]["exec"];
        assert_eq!(exec["apiVersion"], "client.authentication.k8s.io/v1");
        assert_eq!(exec["command"], "/bin/kubetape-quickstart");
        assert_eq!(exec["args"], json!(["token"]));
        assert_eq!(token(Some("t")), json!({"token": "t"}));
        assert_eq!(token(None), json!({}));

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kubeconfig");
        write(&path, &kc).unwrap();
        let back: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(back, kc);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
}
