//! Driving terminal programs through tmux like a person would, with several windows on one
//! private tmux server. Included by several test binaries (`#[path]`), each using a part of it.
#![allow(dead_code)]

use std::process::Command;
use std::time::{Duration, Instant};

pub struct Tmux {
    socket: String,
}

impl Tmux {
    pub fn new(name: &str) -> Self {
        Self {
            socket: format!("kubetape-{name}-{}", std::process::id()),
        }
    }

    fn cmd(&self) -> Command {
        let mut c = Command::new("tmux");
        c.args(["-L", &self.socket]);
        c
    }

    pub fn run(&self, args: &[&str]) {
        let out = self.cmd().args(args).output().expect("tmux");
        assert!(
            out.status.success(),
            "tmux {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Starts `shell` in a new detached session named `name`, 100x30.
    pub fn start(&self, name: &str, shell: &str) {
        self.run(&[
            "new-session",
            "-d",
            "-s",
            name,
            "-x",
            "100",
            "-y",
            "30",
            shell,
        ]);
    }

    pub fn send(&self, name: &str, keys: &str) {
        self.run(&["send-keys", "-t", name, keys, "Enter"]);
    }

    pub fn screen(&self, name: &str) -> String {
        let out = self
            .cmd()
            .args(["capture-pane", "-p", "-t", name])
            .output()
            .expect("tmux capture-pane");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The pane with its scroll-back, wrapped lines joined.
    pub fn history(&self, name: &str) -> String {
        let out = self
            .cmd()
            .args(["capture-pane", "-p", "-J", "-S", "-", "-t", name])
            .output()
            .expect("tmux capture-pane");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Waits (bounded) until `text` occurs at least `want` times in the pane's history.
    pub fn wait_count(&self, name: &str, text: &str, want: usize) {
        let deadline = Instant::now() + Duration::from_secs(40);
        loop {
            let history = self.history(name);
            if history.matches(text).count() >= want {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{name}: screen never showed {text:?} {want} times:\n{history}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits (bounded) until the screen of `name` shows `text`.
    pub fn wait_for(&self, name: &str, text: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let screen = self.screen(name);
            if screen.contains(text) {
                return screen;
            }
            assert!(
                Instant::now() < deadline,
                "screen {name} never showed {text:?}:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.cmd().arg("kill-server").output();
    }
}
