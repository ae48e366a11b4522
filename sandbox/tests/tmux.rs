//! Interactive `kubectl exec -it` in a real terminal (tmux): a prompt appears, the PTY has the
//! client's size, keystrokes reach the shell and its exit code comes back. WebSocket (1.33) and
//! SPDY (1.27).

mod common;

use common::{Kubectl, TestSandbox, config, start, wait};
use test_support::Tmux;

fn has_prompt(screen: &str) -> bool {
    screen
        .lines()
        .any(|l| matches!(l.trim_end(), "#" | "$") || l.ends_with("$ ") || l.ends_with("# "))
}

async fn interactive(k: Kubectl) {
    let t: TestSandbox = start(config()).await;
    let tmux = Tmux::new("sandbox-test");
    let cmd = format!(
        "{}; echo kubectl-exited-$?; sleep 600",
        k.command_line(&t, "exec -it demo -- sh")
    );
    tmux.start("s", &cmd);
    wait(&tmux, "the shell prompt", has_prompt);
    tmux.send("s", "stty size; echo marker-$HOSTNAME-$(pwd)");
    let screen = wait(&tmux, "stty output", |s| s.contains("marker-demo-/tmp"));
    assert!(
        screen.lines().any(|l| l.trim_end() == "30 100"),
        "terminal size not applied:\n{screen}"
    );
    tmux.send("s", "exit 7");
    let screen = wait(&tmux, "kubectl to exit", |s| s.contains("kubectl-exited-"));
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
