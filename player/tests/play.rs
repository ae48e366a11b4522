//! `kubetape play` driven through tmux as a reviewer would: a session is recorded with
//! `kubetape record` in one tmux pane, then played in another, and every assertion is on what
//! `capture-pane` shows. Waits poll the screen with a deadline; nothing sleeps in their place.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use test_support::{TempStore, Tmux};

const KUBETAPE: &str = env!("CARGO_BIN_EXE_kubetape");

/// A private tmux server and a store and keyring of this test's own.
struct Play {
    tmux: Tmux,
    temp: TempStore,
}

impl std::ops::Deref for Play {
    type Target = Tmux;

    fn deref(&self) -> &Tmux {
        &self.tmux
    }
}

impl Play {
    fn new(name: &str) -> Self {
        Self {
            tmux: Tmux::new(&format!("play-{name}")),
            temp: TempStore::new(),
        }
    }

    fn dir(&self) -> &Path {
        self.temp.root()
    }

    fn store(&self) -> PathBuf {
        self.temp.store_dir()
    }

    /// Every wait here is on a whole frame: a capture can catch the player mid-frame, with a
    /// box's first rows drawn and the rest still on its way (see [`Tmux::wait_drawn`]).
    fn wait(&self, target: &str, what: &str, ok: impl Fn(&str) -> bool) -> String {
        self.tmux.wait_drawn(target, what, ok)
    }

    /// `kubetape` with this test's store and keyring, as a shell command line.
    fn kubetape(&self, args: &str) -> String {
        self.temp.kubetape_line(KUBETAPE, args)
    }
}

/// The rows of the recorded screen as shown (its frame removed), above the timeline.
fn screen_rows(screen: &str) -> Vec<&str> {
    let lines: Vec<&str> = screen.lines().collect();
    lines[..lines.len().saturating_sub(2)]
        .iter()
        .map(|l| l.trim().trim_matches('│').trim())
        .filter(|l| !l.starts_with(['┌', '└']))
        .collect()
}

/// Whether some row of the recorded screen, trimmed, is exactly `text`.
fn has_line(screen: &str, text: &str) -> bool {
    screen_rows(screen).contains(&text)
}

/// The last non-blank row of the recorded screen.
fn last_screen_line(screen: &str) -> String {
    screen_rows(screen)
        .into_iter()
        .rev()
        .find(|l| !l.is_empty())
        .unwrap_or("")
        .to_string()
}

/// The status line's play-head clock in tenths of a second (`m:ss.d / …`).
fn clock(screen: &str) -> Option<u64> {
    let re = regex::Regex::new(r"(\d+):(\d\d)\.(\d) / \d+:\d\d\.\d").unwrap();
    let c = re.captures(screen)?;
    let n = |i: usize| c[i].parse::<u64>().unwrap();
    Some((n(1) * 60 + n(2)) * 10 + n(3))
}

/// The `cmd k/N` counter of the status line.
fn cmd_counter(screen: &str) -> Option<String> {
    let re = regex::Regex::new(r"cmd (\d+/\d+)").unwrap();
    Some(re.captures(screen)?[1].to_string())
}

const PROMPT: &str = "demo$";

/// Records a bash session in window `rec`: a 1 s pause, three commands, a 6 s pause and one
/// more, typed and waited for like a person. Returns the session id.
fn record(t: &Play) -> String {
    let shell = t.kubetape("record -- bash --norc --noprofile");
    t.window("rec", 80, 24, &format!("PS1='{PROMPT} ' {shell}"));
    let prompts =
        |n: usize| move |s: &str| s.lines().filter(|l| l.starts_with(PROMPT)).count() == n;
    t.wait("rec", "showed the prompt", prompts(1));
    let steps: [(&str, &str); 6] = [
        ("sleep 1", ""),
        ("echo one", "one"),
        ("echo two", "two"),
        // The word is only in the output, not in what was typed.
        ("printf 'nee%sle\\n' d", "needle"),
        ("sleep 6", ""),
        ("echo three", "three"),
    ];
    for (i, (command, output)) in steps.iter().enumerate() {
        t.type_text("rec", command);
        t.wait("rec", "echoed the command", |s| {
            s.lines().any(|l| l == format!("{PROMPT} {command}"))
        });
        t.keys("rec", &["Enter"]);
        if !output.is_empty() {
            t.wait("rec", "printed the output", |s| has_line(s, output));
        }
        t.wait("rec", "showed the next prompt", prompts(i + 2));
    }
    t.type_text("rec", "exit");
    t.keys("rec", &["Enter"]);
    session_id(&t.wait("rec", "sealed the session", |s| s.contains("EXIT=0")))
}

/// The id `kubetape record` printed on `screen` (possibly wrapped over lines).
fn session_id(screen: &str) -> String {
    let re = regex::Regex::new(r"session ([0-9a-f-]{36}) recorded").unwrap();
    re.captures(&screen.replace('\n', ""))
        .unwrap_or_else(|| panic!("no session id in:\n{screen}"))[1]
        .to_string()
}

#[test]
fn play_pause_seek_next_command_search_and_quit() {
    let t = Play::new("keys");
    let id = record(&t);
    let play = format!(
        "stty -g > {0}/stty.before; {1}; stty -g > {0}/stty.after",
        t.dir().display(),
        // Half speed: the session plays for ~7 s, ample time to see it play and pause it
        // even on a loaded machine.
        t.kubetape(&format!("play {} --speed 0.5", &id[..13]))
    );
    // Script the exit code the way `window` reports it, after the stty snapshot.
    t.window("play", 100, 30, &play);

    // It renders the recorded screen and plays: the clock moves.
    let s = t.wait("play", "played the first command", |s| {
        s.contains("PLAYING") && s.lines().any(|l| l.contains("demo$ echo one"))
    });
    let first = clock(&s).expect("a clock on the status line");
    t.wait("play", "moved the clock", |s| {
        clock(s).is_some_and(|c| c > first)
    });

    // Space pauses: the status says so and the clock stops.
    t.keys("play", &["Space"]);
    let s = t.wait("play", "paused", |s| s.contains("PAUSED"));
    let stopped = clock(&s).unwrap();
    // A running clock shows a new tenth every 100 ms: half a second unchanged means stopped.
    let until = Instant::now() + Duration::from_millis(500);
    while Instant::now() < until {
        let s = t.screen("play");
        assert_eq!(clock(&s), Some(stopped), "clock moved while paused:\n{s}");
        std::thread::sleep(Duration::from_millis(50));
    }

    // End shows the last screen; ← (−5 s) lands in the `sleep 6`: an earlier screen.
    t.keys("play", &["End"]);
    let s = t.wait("play", "shown the end", |s| has_line(s, "three"));
    let end = clock(&s).unwrap();
    t.keys("play", &["Left"]);
    let s = t.wait("play", "gone back 5 s", |s| clock(s) == Some(end - 50));
    assert!(!has_line(&s, "three"), "still the last screen:\n{s}");
    assert!(has_line(&s, "needle"), "not the screen of the pause:\n{s}");
    assert!(s.contains("demo$ sleep 6"), "{s}");

    // n from the start: each command at the moment it was entered, typed on the prompt line,
    // its output not there yet.
    t.keys("play", &["Home"]);
    t.wait("play", "gone to the start", |s| clock(s) == Some(0));
    t.keys("play", &["n"]);
    let s = t.wait("play", "jumped to command 1", |s| {
        cmd_counter(s).as_deref() == Some("1/7")
    });
    assert_eq!(last_screen_line(&s), "demo$ sleep 1", "{s}");
    let at_sleep = clock(&s).unwrap();
    t.keys("play", &["n"]);
    let s = t.wait("play", "jumped to command 2", |s| {
        cmd_counter(s).as_deref() == Some("2/7")
    });
    assert_eq!(last_screen_line(&s), "demo$ echo one", "{s}");
    assert!(!has_line(&s, "one"), "output shown too early:\n{s}");
    // Entered after the `sleep 1` ended: the clock shows a second more at least.
    let at_one = clock(&s).unwrap();
    assert!(at_one >= at_sleep + 10, "{at_sleep} → {at_one}:\n{s}");
    t.keys("play", &["n"]);
    let s = t.wait("play", "jumped to command 3", |s| {
        cmd_counter(s).as_deref() == Some("3/7")
    });
    assert_eq!(last_screen_line(&s), "demo$ echo two", "{s}");
    assert!(has_line(&s, "one") && !has_line(&s, "two"), "{s}");
    assert!(clock(&s).unwrap() >= at_one, "{s}");
    // p goes back one.
    t.keys("play", &["p"]);
    let s = t.wait("play", "gone back to command 2", |s| {
        cmd_counter(s).as_deref() == Some("2/7")
    });
    assert_eq!(last_screen_line(&s), "demo$ echo one", "{s}");

    // / searches the output (the word was never typed) and jumps to where it appeared.
    t.keys("play", &["/"]);
    t.wait("play", "opened the search prompt", |s| {
        s.contains("search: /")
    });
    t.type_text("play", "NEEDLE");
    t.keys("play", &["Enter"]);
    let s = t.wait("play", "found the word", |s| s.contains("/NEEDLE 1/1"));
    assert!(has_line(&s, "needle"), "{s}");
    assert!(!s.contains("demo$ sleep 6"), "jumped past the match:\n{s}");
    t.keys("play", &["/"]);
    t.type_text("play", "absent-word");
    t.keys("play", &["Enter"]);
    t.wait("play", "said there is no match", |s| {
        s.contains("no match for \"absent-word\"")
    });

    // A click on the timeline (SGR mouse report; the row above the status line) seeks: the
    // first column is the start, the last the end.
    t.type_text("play", "\x1b[<0;1;29M\x1b[<0;1;29m");
    let s = t.wait("play", "seeked to the click", |s| clock(s) == Some(0));
    assert_eq!(cmd_counter(&s).as_deref(), Some("0/7"), "{s}");
    t.type_text("play", "\x1b[<0;100;29M\x1b[<0;100;29m");
    t.wait("play", "seeked to the end", |s| has_line(s, "three"));

    // q quits, leaves the alternate screen and restores the terminal settings.
    t.keys("play", &["q"]);
    let s = t.wait("play", "exited", |s| s.contains("EXIT=0"));
    assert!(!s.contains("PAUSED"), "player still on screen:\n{s}");
    let read = |name: &str| std::fs::read_to_string(t.dir().join(name)).unwrap();
    assert_eq!(
        read("stty.before"),
        read("stty.after"),
        "terminal not restored"
    );
}

/// A session typed the way tmux, a paste or a fast link delivers keys (the whole line and
/// Enter at once, the echo after them), replayed in a terminal smaller than the recording:
/// `n` lands where the command line is whole and the status line names it, a search hit is
/// highlighted on the screen, and the status line says the screen is clipped.
#[test]
fn n_lands_on_whole_lines_hits_are_highlighted_and_clipping_is_said() {
    let t = Play::new("reviewer");
    let shell = t.kubetape("record -- bash --norc --noprofile");
    t.window("rec", 130, 30, &format!("PS1='{PROMPT} ' {shell}"));
    let prompts =
        |n: usize| move |s: &str| s.lines().filter(|l| l.starts_with(PROMPT)).count() == n;
    t.wait("rec", "showed the prompt", prompts(1));
    for (i, command) in ["echo burst-one", "echo burst-two"].iter().enumerate() {
        t.keys("rec", &[command, "Enter"]);
        t.wait("rec", "showed the next prompt", prompts(i + 2));
    }
    t.keys("rec", &["exit", "Enter"]);
    let id = session_id(&t.wait("rec", "sealed the session", |s| s.contains("EXIT=0")));

    t.window(
        "play",
        100,
        20,
        &t.kubetape(&format!("play {} --at 0", &id[..13])),
    );
    let s = t.wait("play", "opened paused", |s| s.contains("PAUSED"));
    assert!(s.contains("CLIPPED 130×30 → 100×18"), "{s}");

    t.keys("play", &["n"]);
    let s = t.wait("play", "named the first command", |s| {
        s.contains("#1 $ echo burst-one")
    });
    // Whole on the screen (its output came with its echo, in one piece).
    assert!(has_line(&s, "demo$ echo burst-one"), "{s}");
    t.keys("play", &["n"]);
    let s = t.wait("play", "named the second command", |s| {
        s.contains("#2 $ echo burst-two")
    });
    assert!(has_line(&s, "demo$ echo burst-two"), "{s}");

    // The hit is drawn black on yellow (background colour 3: SGR 43, or 48;5;3) on the
    // recorded screen, the rest of its row not.
    t.keys("play", &["Home", "/"]);
    t.type_text("play", "burst-one");
    t.keys("play", &["Enter"]);
    t.wait("play", "found the command", |s| s.contains("/burst-one 1/"));
    let styled = t.run(&["capture-pane", "-p", "-e", "-t", "play"]);
    let row = styled
        .lines()
        .find(|l| l.contains("demo$ ") && l.contains("burst-one"))
        .unwrap_or_else(|| panic!("no row with the hit:\n{styled}"));
    let yellow =
        |sgr: &str| sgr.contains("48;5;3m") || sgr.ends_with("[43m") || sgr.contains(";43m");
    let hit = row.find("burst-one").unwrap();
    let before = &row[..hit];
    let sgr = before.rfind("\x1b[").map(|i| &before[i..]).unwrap_or("");
    assert!(yellow(sgr), "not highlighted: {row:?}");
    assert!(
        !yellow(&row[..row.find("echo").unwrap()]),
        "more highlighted: {row:?}"
    );
    t.keys("play", &["q"]);
    t.wait("play", "exited", |s| s.contains("EXIT=0"));
}

#[test]
fn play_at_opens_paused_on_that_moment() {
    let t = Play::new("at");
    let id = record(&t);

    // #3: the screen as the third command was entered.
    t.window("at2", 100, 30, &t.kubetape(&format!("play {id} --at '#3'")));
    let s = t.wait("at2", "opened on command 3", |s| {
        s.contains("PAUSED") && cmd_counter(s).as_deref() == Some("3/7")
    });
    assert_eq!(last_screen_line(&s), "demo$ echo two", "{s}");
    assert!(!has_line(&s, "two"), "{s}");

    // The command list opens on the command at the play head; ↓ Enter jumps to the next one.
    t.keys("at2", &["c"]);
    let s = t.wait("at2", "listed the commands", |s| s.contains("$ command"));
    assert!(s.contains("#5") && s.contains("echo three"), "{s}");
    t.keys("at2", &["Down", "Enter"]);
    let s = t.wait("at2", "jumped from the list", |s| {
        cmd_counter(s).as_deref() == Some("4/7")
    });
    assert!(s.contains("printf 'nee%sle\\n' d"), "{s}");
    // The metadata pane, the help overlay (any key closes it), idle compression off.
    t.keys("at2", &["i"]);
    let s = t.wait("at2", "shown the metadata", |s| s.contains("JIT grant"));
    assert!(
        s.contains("bash --norc --noprofile") && s.contains("sealed"),
        "{s}"
    );
    t.keys("at2", &["?"]);
    t.wait("at2", "shown the help", |s| {
        s.contains("keys (any key closes)")
    });
    t.keys("at2", &["x"]);
    t.wait("at2", "closed the help", |s| {
        !s.contains("keys (any key closes)")
    });
    t.keys("at2", &["z"]);
    t.wait("at2", "turned idle compression off", |s| {
        s.contains("idle 1:1")
    });
    t.keys("at2", &["q"]);
    t.wait("at2", "exited", |s| s.contains("EXIT=0"));

    // An offset past the end shows the end.
    t.window("late", 100, 30, &t.kubetape(&format!("play {id} --at 1h")));
    t.wait("late", "opened at the end", |s| {
        s.contains("PAUSED") && has_line(s, "three")
    });
    t.keys("late", &["q"]);
    t.wait("late", "exited", |s| s.contains("EXIT=0"));

    // A command number the session does not have is an error, before the screen is taken.
    t.window("bad", 100, 30, &t.kubetape(&format!("play {id} --at '#9'")));
    let s = t.wait("bad", "refused #9", |s| s.contains("EXIT=1"));
    assert!(s.contains("has 7 command(s); there is no #9"), "{s}");
}

#[test]
fn follow_plays_a_live_session_as_it_is_written() {
    let t = Play::new("follow");
    let shell = t.kubetape("record -- bash --norc --noprofile");
    t.window("rec", 80, 24, &format!("PS1='{PROMPT} ' {shell}"));
    t.wait("rec", "showed the prompt", |s| s.contains(PROMPT));
    // The recorder writes a chunk within a second of the first event; the player opens the
    // session once one exists.
    t.window("live", 100, 30, &t.kubetape("play --latest --follow"));
    t.wait("live", "shown the live prompt", |s| {
        s.contains("LIVE") && s.lines().any(|l| l.contains(PROMPT))
    });
    t.type_text("rec", "echo live-$((6*7))");
    t.keys("rec", &["Enter"]);
    t.wait("live", "played the new output", |s| has_line(s, "live-42"));
    t.type_text("rec", "exit");
    t.keys("rec", &["Enter"]);
    t.wait("rec", "sealed", |s| s.contains("EXIT=0"));
    t.wait("live", "seen the seal", |s| s.contains("sealed"));
    t.keys("live", &["q"]);
    t.wait("live", "exited", |s| s.contains("EXIT=0"));
}

/// The player is up (the first screen drawn, keys answered) before the indexer has read a
/// single chunk: a debug build's indexer waits on the FIFO `KUBETAPE_TEST_HOLD_INDEX` names
/// until the test writes to it, so nothing here races it.
#[test]
fn the_first_screen_and_keys_come_before_the_index() {
    let t = Play::new("early");
    let id = record_short(&t);
    let fifo = t.dir().join("hold-index");
    let made = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(made.success());
    let play = format!(
        "KUBETAPE_TEST_HOLD_INDEX='{}' {}",
        fifo.display(),
        t.kubetape(&format!("play {id}"))
    );
    t.window("early", 100, 30, &play);
    let s = t.wait("early", "drawn the first screen", |s| {
        has_line(s, "short") && s.contains("indexing 0%")
    });
    assert!(!s.contains("DAMAGED"), "{s}");
    t.keys("early", &["i"]);
    let s = t.wait("early", "shown the metadata", |s| s.contains("JIT grant"));
    assert!(s.contains("0 of ") && s.contains("chunks so far"), "{s}");

    // Released (the write returns once the indexer has opened the FIFO), it gets to the end.
    let release = std::thread::spawn(move || std::fs::write(fifo, b"go"));
    let s = t.wait("early", "indexed everything", |s| {
        !s.contains("indexing") && s.contains(" chunks, ")
    });
    assert!(!s.contains("so far"), "{s}");
    release.join().unwrap().unwrap();
    t.keys("early", &["q"]);
    t.wait("early", "exited", |s| s.contains("EXIT=0"));
}

#[test]
fn play_needs_a_terminal() {
    let t = Play::new("notty");
    let out = Command::new(KUBETAPE)
        .env_remove("KUBETAPE_STORE")
        .env_remove("KUBETAPE_KEYS")
        .arg("--store")
        .arg(t.store())
        .args(["play", "--latest"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("needs a terminal") && err.contains("kubetape cat"),
        "{err}"
    );
    assert!(out.stdout.is_empty());
}

#[test]
fn sigterm_restores_the_terminal() {
    let t = Play::new("term");
    let id = record_short(&t);
    let play = format!(
        "stty -g > {0}/stty.before; {1}; stty -g > {0}/stty.after",
        t.dir().display(),
        t.kubetape(&format!("play {id} --at 0"))
    );
    t.window("play", 100, 30, &play);
    t.wait("play", "opened", |s| s.contains("PAUSED"));
    // The player is the only process whose command line holds this test's store and `play`.
    let store = t.store().display().to_string();
    let out = Command::new("pgrep")
        .args([
            "-f",
            &format!("^{}.*{store}.* play ", env!("CARGO_BIN_EXE_kubetape")),
        ])
        .output()
        .unwrap();
    let pids = String::from_utf8_lossy(&out.stdout).into_owned();
    let pid = match pids.split_whitespace().collect::<Vec<_>>()[..] {
        [pid] => pid.to_string(),
        ref other => panic!("expected one player process, found {other:?}"),
    };
    let killed = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(killed.success());
    let s = t.wait("play", "exited", |s| s.contains("EXIT="));
    assert!(!s.contains("PAUSED"), "player still on screen:\n{s}");
    let read = |name: &str| std::fs::read_to_string(t.dir().join(name)).unwrap();
    assert_eq!(
        read("stty.before"),
        read("stty.after"),
        "terminal not restored"
    );
}

/// A one-command session, for tests that need any recording at all.
fn record_short(t: &Play) -> String {
    let shell = t.kubetape("record -- sh -c 'echo short'");
    t.window("rec", 80, 24, &shell);
    session_id(&t.wait("rec", "recorded", |s| s.contains("EXIT=0")))
}

#[test]
fn a_search_hit_opens_in_play_on_the_screen_of_that_moment() {
    let t = Play::new("hit");
    let id = record(&t);
    // `kubetape search` finds the command and names its session and number …
    let out = t
        .temp
        .kubetape(KUBETAPE, &["search", "^printf", "--json", "--index"])
        .arg(t.dir().join("index"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "search: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let hits: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(hits.len(), 1, "{stdout}");
    assert_eq!(hits[0]["session"], id.as_str());
    let number = hits[0]["number"].as_u64().unwrap();
    assert_eq!(number, 4, "{stdout}");

    // … and `play --at '#N'` shows the screen of that moment: the command typed on the
    // prompt line, its output not yet there.
    t.window(
        "hit",
        100,
        30,
        &t.kubetape(&format!("play {id} --at '#{number}'")),
    );
    let s = t.wait("hit", "opened on the hit", |s| {
        s.contains("PAUSED") && cmd_counter(s).as_deref() == Some("4/7")
    });
    assert_eq!(last_screen_line(&s), r"demo$ printf 'nee%sle\n' d", "{s}");
    assert!(!has_line(&s, "needle"), "{s}");
    t.keys("hit", &["q"]);
    t.wait("hit", "exited", |s| s.contains("EXIT=0"));
}

/// A player whose terminal goes away (its tmux server killed, an ssh connection dropped)
/// exits, rather than living on unseen: it once spun a core for as long as nobody killed it.
#[test]
fn the_player_exits_when_its_terminal_goes_away() {
    let t = Play::new("hangup");
    let id = record_short(&t);
    t.window("gone", 100, 30, &t.kubetape(&format!("play {id}")));
    t.wait("gone", "drawn the recording", |s| has_line(s, "short"));
    let kubetape = std::fs::canonicalize(KUBETAPE).unwrap();
    let found = Command::new("pgrep")
        .args(["-f", &format!("play {id}")])
        .output()
        .unwrap();
    // The window's shell has the same words in its command line; the player is the one
    // running our binary.
    let players: Vec<u32> = String::from_utf8_lossy(&found.stdout)
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .filter(|p| std::fs::read_link(format!("/proc/{p}/exe")).ok().as_ref() == Some(&kubetape))
        .collect();
    let [pid] = players[..] else {
        panic!("not one player process: {players:?}");
    };
    drop(t);
    let deadline = Instant::now() + Duration::from_secs(10);
    // Gone, or a zombie nobody reaps (this container's init does not).
    let running = || {
        std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
            stat.rsplit(')')
                .next()
                .is_some_and(|r| !r.trim_start().starts_with('Z'))
        })
    };
    while running() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    if running() {
        let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
        panic!("the player was still running 10 s after its terminal went away");
    }
}
