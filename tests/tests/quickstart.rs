//! The README's one-command quickstart, as a newcomer runs it: `kubetape-quickstart` prints
//! what to type, the kubeconfig it wrote works with real kubectl (tokens from its own `token`
//! plugin), the exec is recorded where `kubetape ls` looks, `prod` takes a request, and Ctrl-C
//! stops it cleanly.

use std::io::{BufRead as _, BufReader, Read as _};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tests::{Kubectl, bin, run};

const T: Duration = Duration::from_secs(60);

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn one_command_quickstart_records_an_exec_and_stops_on_ctrl_c() {
    let kubectl = Kubectl::V1_33.path().expect("kubectl 1.33");
    let tmp = tempfile::tempdir().unwrap();
    let (home, dir) = (tmp.path().join("home"), tmp.path().join("quickstart"));
    std::fs::create_dir_all(&home).unwrap();
    let store = format!("file://{}", tmp.path().join("store").display());
    let keys = tmp.path().join("keys");
    let start = |log: &std::path::Path| {
        let mut cmd = Command::new(bin("kubetape-quickstart"));
        cmd.arg("--dir")
            .arg(&dir)
            .args(["--store", &store, "--keys"])
            .arg(&keys)
            .env("HOME", &home)
            .env_remove("KUBETAPE_STORE")
            .env_remove("KUBETAPE_KEYS");
        // The instructions end with the JIT walk-through; wait for all of it.
        test_support::spawn_until(cmd, "allowed until the grant expires", log.to_path_buf(), T).0
    };
    let log = tmp.path().join("quickstart.log");
    let mut quickstart = start(&log);
    let printed = std::fs::read_to_string(&log).unwrap();
    let kubeconfig = dir.join("kubeconfig");
    for want in [
        "kubetape quickstart is running (Ctrl-C stops it).".to_string(),
        format!("export KUBECONFIG={}", kubeconfig.display()),
        "kubectl exec -it demo -- sh".into(),
        format!("{} ls", bin("kubetape").display()),
        format!("--kubeconfig {}", dir.join("kubeconfig-approver").display()),
    ] {
        assert!(printed.contains(&want), "{want:?} not in:\n{printed}");
    }
    for file in [
        "kubeconfig",
        "kubeconfig-approver",
        "policy.toml",
        "issuer/jwks.json",
        "gateway/tls.crt",
        "sandbox/kubeconfig",
    ] {
        assert!(dir.join(file).is_file(), "{file} not written");
    }

    let kubectl = |args: &[&str]| {
        let mut c = Command::new(&kubectl);
        c.env("HOME", &home)
            .env_remove("KUBECONFIG")
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .arg("--cache-dir")
            .arg(home.join(".kube/cache"))
            .args(args);
        c
    };
    let (code, out, err) = run(
        &mut kubectl(&["exec", "demo", "--", "echo", "through-the-quickstart"]),
        b"",
        T,
    );
    assert_eq!(code, Some(0), "{}", text(&err));
    assert_eq!(text(&out), "through-the-quickstart\n");
    let (code, _, err) = run(
        &mut kubectl(&["exec", "-n", "prod", "db", "--", "id"]),
        b"",
        T,
    );
    assert_ne!(code, Some(0));
    assert!(
        text(&err).contains("kubetape request prod-debug"),
        "{}",
        text(&err)
    );

    // The exec is in the store `kubetape ls` reads, sealed, as the quickstart's user.
    let ls = || {
        let mut c = Command::new(bin("kubetape"));
        c.env("HOME", &home)
            .args(["--store", &store, "--keys"])
            .arg(&keys)
            .args(["ls", "--json"]);
        let (code, out, err) = run(&mut c, b"", T);
        assert_eq!(code, Some(0), "{}", text(&err));
        serde_json::from_slice::<Vec<serde_json::Value>>(&out).unwrap()
    };
    let deadline = Instant::now() + T;
    loop {
        let sessions = ls();
        let exec = sessions
            .iter()
            .find(|s| s["meta"]["kind"] == "exec" && s["state"] == "sealed");
        if let Some(s) = exec {
            assert_eq!(s["meta"]["identity"]["user"], "dev@example.com", "{s:#}");
            break;
        }
        assert!(Instant::now() < deadline, "no sealed exec: {sessions:#?}");
        std::thread::sleep(Duration::from_millis(50));
    }

    // A session live when Ctrl-C comes: it prints a marker, then waits on its stdin.
    let mut live = kubectl(&[
        "exec",
        "-i",
        "demo",
        "--",
        "sh",
        "-c",
        "echo live-before-ctrl-c; cat",
    ])
    .stdin(Stdio::piped())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .expect("kubectl exec -i");
    let mut live_out = BufReader::new(live.stdout.take().unwrap());
    let mut first = String::new();
    live_out.read_line(&mut first).unwrap();
    assert_eq!(first, "live-before-ctrl-c\n");
    let mut live_err = live.stderr.take().unwrap();
    let err_reader = std::thread::spawn(move || {
        let mut all = String::new();
        let _ = live_err.read_to_string(&mut all);
        all
    });

    // Ctrl-C stops it, successfully.
    let pid = quickstart.child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-INT", &pid])
            .status()
            .unwrap()
            .success()
    );
    let deadline = Instant::now() + T;
    let status = loop {
        if let Some(status) = quickstart.child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "still running after Ctrl-C");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(
        status.success(),
        "{status}; log:\n{}",
        std::fs::read_to_string(&log).unwrap()
    );

    // The live session was told why and ended non-zero...
    let status = live.wait().unwrap();
    assert!(!status.success(), "the live exec exited 0 after Ctrl-C");
    let err = err_reader.join().unwrap();
    assert!(err.contains("the gateway is shutting down"), "{err}");
    // ...and its recording is sealed with the reason and holds what its client received.
    let sessions = ls();
    let s = sessions
        .iter()
        .find(|s| {
            s["meta"]["command"].as_array().is_some_and(|c| {
                c.iter()
                    .any(|a| a.as_str().is_some_and(|a| a.contains("live-before-ctrl-c")))
            })
        })
        .unwrap_or_else(|| panic!("no recording of the live session: {sessions:#?}"));
    assert_eq!(s["state"], "sealed", "{s:#}");
    assert!(
        s["exit"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("the gateway is shutting down"),
        "{s:#}"
    );
    let id = s["session"].as_str().unwrap();
    let mut c = Command::new(bin("kubetape"));
    c.env("HOME", &home)
        .args(["--store", &store, "--keys"])
        .arg(&keys)
        .args(["cat", id]);
    let (code, out, err) = run(&mut c, b"", T);
    assert_eq!(code, Some(0), "{}", text(&err));
    assert!(text(&out).contains("live-before-ctrl-c"), "{}", text(&out));

    // Started again on the same directory, it keeps the policy the banner invited editing.
    let policy = dir.join("policy.toml");
    let edited = std::fs::read_to_string(&policy).unwrap() + "\n# edited by the newcomer\n";
    std::fs::write(&policy, &edited).unwrap();
    let log = tmp.path().join("quickstart-again.log");
    let mut again = start(&log);
    let printed = std::fs::read_to_string(&log).unwrap();
    assert!(printed.contains("Keeping your edited"), "{printed}");
    assert_eq!(std::fs::read_to_string(&policy).unwrap(), edited);
    let pid = again.child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-INT", &pid])
            .status()
            .unwrap()
            .success()
    );
    let deadline = Instant::now() + T;
    while again.child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "still running after Ctrl-C");
        std::thread::sleep(Duration::from_millis(20));
    }
}
