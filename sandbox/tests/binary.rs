//! The `kubetape-sandbox` binary as the quickstart and other test crates use it: the ready
//! line, a working kubeconfig, and pod processes gone after SIGTERM.

use std::io::{BufRead as _, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_kubetape-sandbox");

/// Pids whose command line contains `marker`.
fn processes_with(marker: &str) -> Vec<u32> {
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if let Ok(cmdline) = std::fs::read(entry.path().join("cmdline"))
            && String::from_utf8_lossy(&cmdline).contains(marker)
        {
            pids.push(pid);
        }
    }
    pids
}

#[test]
fn help_explains_serve() {
    let out = Command::new(BIN)
        .args(["serve", "--help"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for want in ["--config", "--listen", "--state-dir", "SIGTERM"] {
        assert!(help.contains(want), "{want} missing from:\n{help}");
    }
}

#[test]
fn serves_until_sigterm_then_kills_pod_processes() {
    let dir = tempfile::tempdir().unwrap();
    let marker = format!("sbx-marker-{}", uuid::Uuid::new_v4().simple());
    let config = dir.path().join("sandbox.toml");
    std::fs::write(
        &config,
        format!(
            "token = \"t\"\n[[pods]]\nname = \"demo\"\n[[pods.containers]]\nname = \"c\"\n\
             command = [\"sh\", \"-c\", \"echo {marker}; sleep 3600; echo never\"]\n"
        ),
    )
    .unwrap();
    let state = dir.path().join("state");
    let mut child = Command::new(BIN)
        .args(["serve", "--config"])
        .arg(&config)
        .arg("--state-dir")
        .arg(&state)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let kubeconfig = state.join("kubeconfig");
    assert!(
        line.starts_with("kubetape-sandbox: listening on https://127.0.0.1:")
            && line.ends_with(&format!(" (kubeconfig {})\n", kubeconfig.display())),
        "{line:?}"
    );
    for file in ["ca.crt", "token", "kubeconfig", "requests.jsonl"] {
        assert!(state.join(file).exists(), "{file} missing");
    }
    assert_eq!(std::fs::read_to_string(state.join("token")).unwrap(), "t");

    let out = Command::new("/usr/lib/google-cloud-sdk/bin/kubectl.1.33")
        .env("HOME", dir.path())
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .args([
            "exec",
            "demo",
            "--",
            "sh",
            "-c",
            "echo $HOSTNAME $POD_NAMESPACE",
        ])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "demo default\n");
    // Another process can read what was requested.
    let log = sandbox::RequestLog::read_file(state.join("requests.jsonl")).unwrap();
    assert!(
        log.iter()
            .any(|r| r.path.contains("/exec?") && r.status == 101)
    );

    assert!(
        !processes_with(&marker).is_empty(),
        "main process not running"
    );
    let pid = rustix::process::Pid::from_raw(child.id() as i32).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();
    assert!(child.wait().unwrap().success());
    // The group was SIGKILLed before exit; reaping by init may lag a moment.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !processes_with(&marker).is_empty() {
        assert!(
            Instant::now() < deadline,
            "pod processes outlived the sandbox"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Pids whose environment holds `marker` (pod processes and everything they started inherit
/// the container's environment, so this finds grandchildren too).
fn processes_with_env(marker: &str) -> Vec<u32> {
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let zombie = std::fs::read_to_string(entry.path().join("stat"))
            .map(|s| {
                s.rsplit(')')
                    .next()
                    .unwrap_or("")
                    .trim_start()
                    .starts_with('Z')
            })
            .unwrap_or(true);
        if let Ok(environ) = std::fs::read(entry.path().join("environ"))
            && !zombie
            && String::from_utf8_lossy(&environ).contains(marker)
        {
            pids.push(pid);
        }
    }
    pids
}

/// SIGKILL runs none of the sandbox's cleanup: the guardian must still kill every pod process,
/// the main process's background children, an exec'd command's and a port's server included.
#[test]
fn sigkill_leaves_no_pod_process_behind() {
    let dir = tempfile::tempdir().unwrap();
    let marker = format!("sbx-kill-{}", uuid::Uuid::new_v4().simple());
    let config = dir.path().join("sandbox.toml");
    std::fs::write(
        &config,
        format!(
            "token = \"t\"\n[[pods]]\nname = \"demo\"\n[[pods.containers]]\nname = \"c\"\n\
             command = [\"sh\", \"-c\", \"sleep 3600 & sleep 3600 & wait\"]\n\
             env = {{ MARKER = \"{marker}\" }}\n\
             ports = [{{ port = 80, serve = \"http\" }}]\n"
        ),
    )
    .unwrap();
    let state = dir.path().join("state");
    let mut sandbox = Command::new(BIN)
        .args(["serve", "--config"])
        .arg(&config)
        .arg("--state-dir")
        .arg(&state)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(sandbox.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert!(
        line.starts_with("kubetape-sandbox: listening on"),
        "{line:?}"
    );
    // An exec'd command with a background child of its own, left running.
    let mut kubectl = Command::new("/usr/lib/google-cloud-sdk/bin/kubectl.1.33")
        .env("HOME", dir.path())
        .arg("--kubeconfig")
        .arg(state.join("kubeconfig"))
        .args([
            "exec",
            "demo",
            "--",
            "sh",
            "-c",
            "sleep 3601 & echo started; sleep 3601",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut started = String::new();
    BufReader::new(kubectl.stdout.take().unwrap())
        .read_line(&mut started)
        .unwrap();
    assert_eq!(started, "started\n");
    // Main process: sh + 2 sleeps; exec: sh + 2 sleeps; port 80's server (serve-port).
    let deadline = Instant::now() + Duration::from_secs(10);
    while processes_with_env(&marker).len() < 7 {
        assert!(
            Instant::now() < deadline,
            "pod processes not all running: {:?}",
            processes_with_env(&marker)
        );
        std::thread::sleep(Duration::from_millis(20));
    }

    let pid = rustix::process::Pid::from_raw(sandbox.id() as i32).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::KILL).unwrap();
    let status = sandbox.wait().unwrap();
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(9)
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left = processes_with_env(&marker);
        if left.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "pod processes outlived a SIGKILLed sandbox: {left:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // kubectl notices its stream is gone.
    let _ = kubectl.kill();
    let _ = kubectl.wait();
}
