//! Driving terminal programs through tmux as a person would: type, press keys, read the screen.
//!
//! Each [`Tmux`] is a private tmux server (its own socket, no user configuration, outside any
//! tmux the tests themselves run in), killed when it is dropped, so a failing test leaves no
//! server behind. Sessions and windows are addressed by name (`-t NAME`). Every wait polls the
//! screen against a deadline and panics with the last screen when it passes; nothing sleeps in
//! place of a condition.

use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// How long [`Tmux::wait`] and [`Tmux::wait_for`] wait for a screen.
pub const SCREEN_WAIT: Duration = Duration::from_secs(30);
/// How long [`Tmux::wait_count`] waits: it reads the whole history, for slower multi-step cases.
pub const HISTORY_WAIT: Duration = Duration::from_secs(40);
const POLL: Duration = Duration::from_millis(20);

/// A private tmux server.
#[derive(Debug)]
pub struct Tmux {
    socket: String,
}

impl Tmux {
    /// A new server; `name` only makes its socket recognizable (`kubetape-NAME-PID-N`).
    pub fn new(name: &str) -> Self {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let name: String = name
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .collect();
        Self {
            socket: format!("kubetape-{name}-{}-{n}", std::process::id()),
        }
    }

    fn cmd(&self) -> Command {
        let mut c = Command::new("tmux");
        c.args(["-L", &self.socket, "-f", "/dev/null"])
            .env_remove("TMUX");
        c
    }

    /// Runs a tmux command on this server; panics unless it succeeds. Returns its stdout.
    pub fn run(&self, args: &[&str]) -> String {
        let out = self.cmd().args(args).output().expect("tmux is installed");
        assert!(
            out.status.success(),
            "tmux {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Starts `shell` (a shell command line) in a new detached session `name`, 100×30.
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

    /// A new window `name` of `cols`×`rows` running `shell`, kept open after it ends: it then
    /// shows `EXIT=<status>` (and stays for 10 minutes, or until the server is dropped).
    pub fn window(&self, name: &str, cols: u16, rows: u16, shell: &str) {
        let script = format!("{shell}; echo EXIT=$?; sleep 600");
        let (x, y) = (cols.to_string(), rows.to_string());
        let has_server = self
            .cmd()
            .arg("has-session")
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if has_server {
            self.run(&["new-window", "-d", "-n", name, "sh", "-c", &script]);
            self.run(&["resize-window", "-t", name, "-x", &x, "-y", &y]);
        } else {
            self.run(&[
                "new-session",
                "-d",
                "-s",
                "t",
                "-n",
                name,
                "-x",
                &x,
                "-y",
                &y,
                "sh",
                "-c",
                &script,
            ]);
        }
    }

    /// Types `line` and presses Enter.
    pub fn send(&self, target: &str, line: &str) {
        self.run(&["send-keys", "-t", target, line, "Enter"]);
    }

    /// Presses keys by tmux name (`Enter`, `Space`, `C-c`, `Down`…); other words are typed.
    pub fn keys(&self, target: &str, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", target];
        args.extend_from_slice(keys);
        self.run(&args);
    }

    /// Types `text` literally (no key names; escape sequences go through as they are).
    pub fn type_text(&self, target: &str, text: &str) {
        self.run(&["send-keys", "-t", target, "-l", text]);
    }

    /// The visible screen of `target`.
    pub fn screen(&self, target: &str) -> String {
        self.run(&["capture-pane", "-p", "-t", target])
    }

    /// The pane with its scroll-back, wrapped lines joined.
    pub fn history(&self, target: &str) -> String {
        self.run(&["capture-pane", "-p", "-J", "-S", "-", "-t", target])
    }

    /// Polls the screen of `target` until `ok(screen)` holds (at most [`SCREEN_WAIT`]);
    /// returns that screen. `what` says what was awaited, for the failure message.
    pub fn wait(&self, target: &str, what: &str, ok: impl Fn(&str) -> bool) -> String {
        self.wait_within(SCREEN_WAIT, target, what, ok)
    }

    /// [`Tmux::wait`] with another limit.
    pub fn wait_within(
        &self,
        limit: Duration,
        target: &str,
        what: &str,
        ok: impl Fn(&str) -> bool,
    ) -> String {
        let deadline = Instant::now() + limit;
        loop {
            let screen = self.screen(target);
            if ok(&screen) {
                return screen;
            }
            assert!(
                Instant::now() < deadline,
                "{target}: never {what}; screen:\n{screen}"
            );
            std::thread::sleep(POLL);
        }
    }

    /// [`Tmux::wait`] for a full-screen program that draws boxes (the player): `ok` is only
    /// judged on a screen whose every box is closed. A frame reaches tmux in pieces (a pty
    /// hands it over 4 KiB at a time), and `capture-pane` can run between two of them; a box
    /// whose top border is on screen but not its bottom one is a frame still being drawn, so
    /// what is inside it may be cut short.
    pub fn wait_drawn(&self, target: &str, what: &str, ok: impl Fn(&str) -> bool) -> String {
        self.wait(target, what, |s| boxes_closed(s) && ok(s))
    }

    /// Waits until the screen of `target` shows `text`; returns that screen.
    pub fn wait_for(&self, target: &str, text: &str) -> String {
        self.wait(target, &format!("showed {text:?}"), |s| s.contains(text))
    }

    /// Waits until `text` occurs at least `want` times in the history of `target` (at most
    /// [`HISTORY_WAIT`]).
    pub fn wait_count(&self, target: &str, text: &str, want: usize) {
        let deadline = Instant::now() + HISTORY_WAIT;
        loop {
            let history = self.history(target);
            if history.matches(text).count() >= want {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{target}: never showed {text:?} {want} times:\n{history}"
            );
            std::thread::sleep(POLL);
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.cmd().arg("kill-server").output();
    }
}

/// Whether every box on `screen` whose top border is whole (`┌…┐` on one row) has its bottom
/// border (`└…┘`, as wide) on a row below. Only the width is compared, not the column, so
/// that wide characters left of a box on some row do not matter.
pub fn boxes_closed(screen: &str) -> bool {
    let rows: Vec<Vec<char>> = screen.lines().map(|l| l.chars().collect()).collect();
    rows.iter().enumerate().all(|(r, row)| {
        row.iter()
            .enumerate()
            .filter(|&(_, &ch)| ch == '┌')
            // Its own top-right corner: the next corner to the right, unless another box's
            // top-left comes first (a box drawn over this one's border).
            .filter_map(|(c, _)| {
                let next = row[c + 1..].iter().position(|&ch| ch == '┐' || ch == '┌')?;
                (row[c + 1 + next] == '┐').then_some(next + 1)
            })
            .all(|width| {
                rows[r + 1..].iter().any(|below| {
                    below
                        .iter()
                        .enumerate()
                        .any(|(c, &ch)| ch == '└' && below.get(c + width) == Some(&'┘'))
                })
            })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A frame of the player with its command list drawn over the recording.
    const FRAME: &str = "\
         ┌ rec ──────────────────┐
         │demo$      ┌ typed ──┐ │
         │           │#1 ls    │ │
         │           └─────────┘ │
         └───────────────────────┘
 PAUSED  0:01.1";

    #[test]
    fn a_box_is_closed_once_its_bottom_border_is_drawn() {
        assert!(boxes_closed(FRAME));
        assert!(boxes_closed("no boxes at all\n$ ls"));
        // Cut where a capture caught it: the list's top and first row, not its bottom.
        let cut: String = FRAME.lines().take(3).collect::<Vec<_>>().join("\n");
        assert!(!boxes_closed(&cut));
        // The list's bottom drawn, the outer box's not yet.
        let cut: String = FRAME.lines().take(4).collect::<Vec<_>>().join("\n");
        assert!(!boxes_closed(&cut));
        // A bottom border of another width does not close it.
        assert!(!boxes_closed("┌──┐\n│  │\n└───┘"));
        // A box whose top-right corner is covered by another box is judged by that one.
        assert!(boxes_closed("┌───┌──┐\n│   └──┘"));
    }

    #[test]
    fn drives_a_shell_and_cleans_up() {
        let tmux = Tmux::new("self test");
        // Typed only once the shell prompts: typed earlier, the line is echoed by the
        // terminal before the shell starts, and its output lands after the prompt ("# 42-ok").
        tmux.start("a", "PS1='ready> ' sh");
        tmux.wait_for("a", "ready>");
        tmux.send("a", "echo $((6*7))-ok");
        let screen = tmux.wait_for("a", "42-ok");
        assert!(screen.lines().any(|l| l == "42-ok"), "{screen}");
        tmux.window("b", 50, 10, "printf 'x%.0s' 1 2 3");
        let screen = tmux.wait("b", "exited", |s| s.contains("EXIT=0"));
        assert!(screen.contains("xxx"), "{screen}");
        tmux.type_text("a", "echo typed");
        tmux.keys("a", &["Enter"]);
        tmux.wait_count("a", "typed", 2);
        let socket = tmux.socket.clone();
        drop(tmux);
        let alive = Command::new("tmux")
            .args(["-L", &socket, "has-session"])
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(!alive.success(), "the server outlived its Tmux");
    }

    #[test]
    #[should_panic(expected = "a: never showed something; screen:")]
    fn a_missing_screen_fails_with_the_screen() {
        let tmux = Tmux::new("missing");
        tmux.start("a", "sh");
        tmux.wait_within(Duration::from_millis(200), "a", "showed something", |_| {
            false
        });
    }
}
