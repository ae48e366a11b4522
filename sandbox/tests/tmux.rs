//! Interactive `kubectl exec -it` in a real terminal (tmux): a prompt appears, the PTY has the
//! client's size, keystrokes reach the shell and its exit code comes back. WebSocket (1.33) and
//! SPDY (1.27).

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::{Kubectl, TestSandbox, config, start};

/// A private tmux server (own socket, no user config), killed on drop.
struct Tmux {
    socket: String,
}

impl Tmux {
    fn new() -> Self {
        Self {
            socket: format!("kubetape-sandbox-test-{}", uuid::Uuid::new_v4().simple()),
        }
    }

    fn run(&self, args: &[&str]) -> String {
        let out = Command::new("tmux")
            .args(["-L", &self.socket, "-f", "/dev/null"])
            .args(args)
            .env_remove("TMUX")
            .output()
            .expect("tmux is installed");
        assert!(
            out.status.success(),
            "tmux {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn screen(&self) -> String {
        self.run(&["capture-pane", "-p", "-t", "s"])
    }

    /// Polls the screen until `done` holds (bounded: 30 s).
    async fn wait_for(&self, what: &str, done: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let screen = self.screen();
            if done(&screen) {
                return screen;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; screen:\n{screen}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["-L", &self.socket, "kill-server"])
            .output();
    }
}

fn has_prompt(screen: &str) -> bool {
    screen
        .lines()
        .any(|l| matches!(l.trim_end(), "#" | "$") || l.ends_with("$ ") || l.ends_with("# "))
}

async fn interactive(k: Kubectl) {
    let t: TestSandbox = start(config()).await;
    let tmux = Tmux::new();
    let cmd = format!(
        "{}; echo kubectl-exited-$?; sleep 600",
        k.command_line(&t, "exec -it demo -- sh")
    );
    tmux.run(&[
        "new-session",
        "-d",
        "-s",
        "s",
        "-x",
        "100",
        "-y",
        "30",
        &cmd,
    ]);
    tmux.wait_for("the shell prompt", has_prompt).await;
    tmux.run(&[
        "send-keys",
        "-t",
        "s",
        "stty size; echo marker-$HOSTNAME-$(pwd)",
        "Enter",
    ]);
    let screen = tmux
        .wait_for("stty output", |s| s.contains("marker-demo-/tmp"))
        .await;
    assert!(
        screen.lines().any(|l| l.trim_end() == "30 100"),
        "terminal size not applied:\n{screen}"
    );
    tmux.run(&["send-keys", "-t", "s", "exit 7", "Enter"]);
    let screen = tmux
        .wait_for("kubectl to exit", |s| s.contains("kubectl-exited-"))
        .await;
    assert!(
        screen.contains("command terminated with exit code 7"),
        "{screen}"
    );
    assert!(screen.contains("kubectl-exited-7"), "{screen}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interactive_exec_1_33_websocket() {
    interactive(Kubectl::new("1.33")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interactive_exec_1_27_spdy() {
    interactive(Kubectl::new("1.27")).await;
}
