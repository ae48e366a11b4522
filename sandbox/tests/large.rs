//! 50 MB through exec in each direction, over WebSocket and SPDY, with the sandbox's memory
//! staying bounded (it runs in this process, so this process's peak RSS is the measure). One
//! test in this binary so nothing else moves the peak.

mod common;

use std::process::Stdio;

use common::{Kubectl, TestSandbox, config, start};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

const SIZE: u64 = 50_000_000;

/// Peak resident set size of this process, in KiB.
fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// Runs kubectl streaming: `SIZE` zero bytes into its stdin (if `feed`), counting its stdout
/// while keeping only its first 64 bytes.
async fn stream(
    t: &TestSandbox,
    k: &Kubectl,
    args: &[&str],
    feed: bool,
) -> (i32, u64, String, String) {
    let home = t.dir.path().join("home");
    let mut child = tokio::process::Command::new(k.binary())
        .env("HOME", &home)
        .envs(k.env.iter().copied())
        .arg("--kubeconfig")
        .arg(&t.sb.kubeconfig_path)
        .arg("--cache-dir")
        .arg(home.join("cache"))
        .args(args)
        .stdin(if feed { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    if feed {
        let mut w = child.stdin.take().unwrap();
        tokio::spawn(async move {
            let chunk = vec![0u8; 1 << 20];
            let mut left = SIZE;
            while left > 0 {
                let n = left.min(chunk.len() as u64) as usize;
                w.write_all(&chunk[..n]).await.unwrap();
                left -= n as u64;
            }
        });
    }
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let errs = tokio::spawn(async move {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s).await;
        s
    });
    let (mut buf, mut count, mut head) = (vec![0u8; 1 << 16], 0u64, Vec::new());
    loop {
        let n = out.read(&mut buf).await.unwrap();
        if n == 0 {
            break;
        }
        count += n as u64;
        head.extend_from_slice(&buf[..n.min(64 - head.len().min(64))]);
    }
    let code = child.wait().await.unwrap().code().unwrap_or(-1);
    let head = String::from_utf8_lossy(&head).into_owned();
    (code, count, head, errs.await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_megabytes_each_way_with_bounded_memory() {
    let t = start(config()).await;
    // Warm up (discovery cache, TLS, first exec) before taking the baseline.
    let r = Kubectl::new("1.33")
        .run(&t, &["exec", "demo", "--", "true"], None)
        .await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    let before = peak_rss_kib();
    let size = SIZE.to_string();
    for k in [
        Kubectl::new("1.33"),
        Kubectl::spdy_only("1.33"),
        Kubectl::new("1.27"),
    ] {
        let args = ["exec", "demo", "--", "head", "-c", &size, "/dev/zero"];
        let (code, count, _, err) = stream(&t, &k, &args, false).await;
        assert_eq!((code, count), (0, SIZE), "{k:?} output: {err}");
        let args = ["exec", "-i", "demo", "--", "wc", "-c"];
        let (code, _, head, err) = stream(&t, &k, &args, true).await;
        assert_eq!(
            (code, head.trim()),
            (0, size.as_str()),
            "{k:?} input: {err}"
        );
    }
    let grown_mib = (peak_rss_kib() - before) / 1024;
    assert!(
        grown_mib < 25,
        "peak RSS grew by {grown_mib} MiB while streaming 300 MB"
    );
}
