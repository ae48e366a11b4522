//! `kubectl debug` in the quickstart, as a newcomer tries it after the README: the quickstart's
//! policy lets its developer debug in `default` with busybox. With kubectl 1.27, 1.30, 1.33 and
//! 1.37: `kubectl debug -it demo --image=busybox --target=shell -- sh` works (prompt, command,
//! exit code) and is recorded with its image, profile and target; another image, or a profile
//! the role does not allow, is refused with a message naming the rule, and never reaches the
//! cluster; `--copy-to` works; `debug node/NAME` is refused (the developer may not).

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use tests::{Kubectl, bin, run};

const T: Duration = Duration::from_secs(90);

const VERSIONS: [Kubectl; 4] = [
    Kubectl::V1_27,
    Kubectl::V1_30,
    Kubectl::V1_33,
    Kubectl::V1_37,
];

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

struct Quickstart {
    home: std::path::PathBuf,
    dir: std::path::PathBuf,
    store: String,
    keys: std::path::PathBuf,
}

impl Quickstart {
    fn kubectl(&self, bin: &Path, args: &[&str], stdin: &[u8]) -> (i32, String, String) {
        let mut c = Command::new(bin);
        c.env("HOME", &self.home)
            .env_remove("KUBECONFIG")
            .arg("--kubeconfig")
            .arg(self.dir.join("kubeconfig"))
            .arg("--cache-dir")
            .arg(self.home.join(".kube/cache"))
            .args(args);
        let (code, out, err) = run(&mut c, stdin, T);
        (code.unwrap_or(-1), text(&out), text(&err))
    }

    fn sessions(&self) -> Vec<serde_json::Value> {
        let mut c = Command::new(bin("kubetape"));
        c.env("HOME", &self.home)
            .args(["--store", &self.store, "--keys"])
            .arg(&self.keys)
            .args(["ls", "--json"]);
        let (code, out, err) = run(&mut c, b"", T);
        assert_eq!(code, Some(0), "{}", text(&err));
        serde_json::from_slice(&out).unwrap()
    }

    fn sandbox_writes(&self) -> usize {
        std::fs::read_to_string(self.dir.join("sandbox/requests.jsonl"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|r| r["method"] == "PATCH" || r["method"] == "POST")
            .filter(|r| {
                r["path"]
                    .as_str()
                    .is_some_and(|p| p.ends_with("/ephemeralcontainers") || p.ends_with("/pods"))
            })
            .count()
    }
}

#[test]
fn kubectl_debug_in_the_quickstart() {
    let tmp = tempfile::tempdir().unwrap();
    let q = Quickstart {
        home: tmp.path().join("home"),
        dir: tmp.path().join("quickstart"),
        store: format!("file://{}", tmp.path().join("store").display()),
        keys: tmp.path().join("keys"),
    };
    std::fs::create_dir_all(&q.home).unwrap();
    let mut cmd = Command::new(bin("kubetape-quickstart"));
    cmd.arg("--dir")
        .arg(&q.dir)
        .args(["--store", &q.store, "--keys"])
        .arg(&q.keys)
        .env("HOME", &q.home)
        .env_remove("KUBETAPE_STORE")
        .env_remove("KUBETAPE_KEYS");
    let (_quickstart, _) = test_support::spawn_until(
        cmd,
        "allowed until the grant expires",
        tmp.path().join("quickstart.log"),
        T,
    );

    std::thread::scope(|s| {
        for v in VERSIONS {
            let q = &q;
            s.spawn(move || {
                if let Some(bin) = v.path() {
                    tests::debug_checks::debug_it(v, &bin, &q.dir.join("kubeconfig"), &q.home);
                }
            });
        }
    });
    let present = VERSIONS.iter().filter(|v| v.path().is_some()).count();
    let deadline = Instant::now() + T;
    let debug = loop {
        let sessions = q.sessions();
        let debug: Vec<serde_json::Value> = sessions
            .into_iter()
            .filter(|s| s["meta"]["kind"] == "debug" && s["state"] == "sealed")
            .collect();
        if debug.len() >= present {
            break debug;
        }
        assert!(
            Instant::now() < deadline,
            "debug sessions not sealed: {debug:#?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(debug.len(), present);
    for s in &debug {
        let d = &s["meta"]["debug"];
        assert_eq!(
            (d["image"].as_str(), d["target"].as_str()),
            (Some("busybox"), Some("shell")),
            "{s:#}"
        );
        assert!(d["profile"].is_string(), "{s:#}");
        assert_eq!(s["meta"]["identity"]["user"], "dev@example.com");
        assert_eq!(s["exit"]["code"], 3);
    }
    let writes = q.sandbox_writes();
    assert_eq!(writes, present, "one patch per debug");

    // Refusals name the rule and never reach the cluster.
    for v in [Kubectl::V1_27, Kubectl::V1_37] {
        let Some(bin) = v.path() else { continue };
        let (code, _, err) = q.kubectl(
            &bin,
            &[
                "debug",
                "demo",
                "-i",
                "--image=alpine",
                "--target=shell",
                "--",
                "true",
            ],
            b"",
        );
        assert_ne!(code, 0);
        assert!(
            err.contains("role \"developer\" debug.images") && err.contains("\"alpine\""),
            "{v:?}: {err}"
        );
        if v != Kubectl::V1_27 {
            let (code, _, err) = q.kubectl(
                &bin,
                &[
                    "debug",
                    "demo",
                    "-i",
                    "--image=busybox",
                    "--profile=sysadmin",
                    "--target=shell",
                    "--",
                    "true",
                ],
                b"",
            );
            assert_ne!(code, 0);
            assert!(
                err.contains("role \"developer\" debug.profiles"),
                "{v:?}: {err}"
            );
        }
        let (code, _, err) = q.kubectl(
            &bin,
            &[
                "debug",
                "node/sandbox",
                "-i",
                "--image=busybox",
                "--",
                "true",
            ],
            b"",
        );
        assert_ne!(code, 0);
        assert!(err.contains("kubetape:"), "{v:?}: {err}");
    }
    assert_eq!(
        q.sandbox_writes(),
        writes,
        "a refused debug reached the cluster"
    );

    // --copy-to is allowed.
    let bin = Kubectl::V1_33.path().unwrap();
    let (code, out, err) = q.kubectl(
        &bin,
        &[
            "debug",
            "demo",
            "-i",
            "--copy-to=demo-copy",
            "--image=busybox",
            "--",
            "sh",
            "-c",
            "read x; echo copy got $x",
        ],
        b"hi\n",
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("copy got hi"), "{out}");
    assert_eq!(q.sandbox_writes(), writes + 1);
}
