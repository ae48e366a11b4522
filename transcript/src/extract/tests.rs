//! Synthetic byte streams for the tricky cases (the corpus in `tests/` records real shells).

use storage_schema::{Event, EventKind, Stream, TermSize};

use super::{CommandEntry, CommandExtractor, EntryKind};

/// A scripted session: what the user typed and what the "shell" echoed, 10 ms apart.
struct Sim {
    at: u64,
    events: Vec<Event>,
}

impl Sim {
    fn new() -> Self {
        Self {
            at: 0,
            events: vec![],
        }
    }
    fn push(&mut self, stream: Stream, bytes: &[u8]) -> &mut Self {
        self.at += 10_000;
        self.events.push(Event {
            at_us: self.at,
            kind: EventKind::Data {
                stream,
                bytes: bytes.to_vec(),
            },
        });
        self
    }
    fn out(&mut self, b: &str) -> &mut Self {
        self.push(Stream::Stdout, b.as_bytes())
    }
    fn key(&mut self, b: &str) -> &mut Self {
        self.push(Stream::Stdin, b.as_bytes())
    }
    /// Types `s` one key at a time with a readline-like echo of each character.
    fn typed(&mut self, s: &str) -> &mut Self {
        for c in s.chars() {
            let c = c.to_string();
            self.key(&c).out(&c);
        }
        self
    }
    fn enter(&mut self) -> &mut Self {
        self.key("\r").out("\r\n")
    }
    fn run(&self, cols: u16, rows: u16) -> Vec<CommandEntry> {
        let mut x = CommandExtractor::tty(TermSize { cols, rows });
        for e in &self.events {
            x.feed(e);
        }
        x.finish()
    }
}

/// The commands' texts (what `kubetape search` finds by default); a redacted entry is "".
fn texts(cmds: &[CommandEntry]) -> Vec<&str> {
    cmds.iter()
        .filter(|c| matches!(c.kind, EntryKind::Command | EntryKind::Redacted))
        .map(|c| c.shown_text().unwrap_or(""))
        .collect()
}

/// Every entry as `kind: text`.
fn all(cmds: &[CommandEntry]) -> Vec<String> {
    cmds.iter()
        .map(|c| format!("{}: {}", c.kind.name(), c.shown_text().unwrap_or("")))
        .collect()
}

#[test]
fn plain_commands_with_prompt() {
    let mut s = Sim::new();
    s.out("kt$ ").typed("ls -la").enter().out("total 0\r\nkt$ ");
    s.typed("pwd").enter().out("/root\r\nkt$ ");
    let got = s.run(80, 24);
    assert_eq!(texts(&got), vec!["ls -la", "pwd"]);
    assert_eq!(got[0].prompt.as_deref(), Some("kt$"));
    assert!(got[0].at_us > 0 && got[0].at_us < got[1].at_us);
    assert!(!got[0].redacted);
}

#[test]
fn backspace_ctrl_u_ctrl_w_and_cursor_edits_use_the_screen() {
    let mut s = Sim::new();
    s.out("kt$ ").typed("lss");
    s.key("\x7f").out("\x08\x1b[K");
    s.enter().out("kt$ ");
    // Ctrl-U: readline erases back to the prompt.
    s.typed("rm -rf /").key("\x15").out("\r\x1b[Kkt$ ");
    s.typed("echo safe word");
    // Ctrl-W: erase "word".
    s.key("\x17").out("\x08\x08\x08\x08\x1b[K");
    s.enter().out("safe\r\nkt$ ");
    // Left arrow twice, insert "X".
    s.typed("abcd")
        .key("\x1b[D")
        .out("\x08")
        .key("\x1b[D")
        .out("\x08");
    s.key("X").out("\x1b[@X");
    s.enter().out("kt$ ");
    assert_eq!(texts(&s.run(80, 24)), vec!["ls", "echo safe", "abXcd"]);
}

#[test]
fn history_recall_and_tab_completion_are_taken_from_the_screen() {
    let mut s = Sim::new();
    s.out("kt$ ").typed("uname -a").enter().out("Linux\r\nkt$ ");
    s.key("\x1b[A").out("uname -a").enter().out("Linux\r\nkt$ ");
    s.typed("cat /etc/hostn").key("\t").out("ame ");
    s.enter().out("pod\r\nkt$ ");
    // Double tab lists candidates and redraws the prompt on a new line.
    s.typed("ls /u")
        .key("\t\t")
        .out("\r\nusr/  uu/\r\nkt$ ls /u")
        .typed("sr")
        .enter();
    assert_eq!(
        texts(&s.run(80, 24)),
        vec!["uname -a", "uname -a", "cat /etc/hostname", "ls /usr"]
    );
}

#[test]
fn enter_before_the_echo_arrives() {
    // tmux send-keys delivers a whole line at once; the echo comes after.
    let mut s = Sim::new();
    s.out("$ ").key("echo hi\r").out("echo hi\r\nhi\r\n$ ");
    s.key("true\r").out("true\r\n$ ");
    assert_eq!(texts(&s.run(80, 24)), vec!["echo hi", "true"]);
}

#[test]
fn lines_typed_ahead_of_the_echo_are_not_mistaken_for_unechoed_input() {
    let mut s = Sim::new();
    s.out("$ ").key("cat\r").key("typed into cat").key("\r");
    s.out("cat\r\ntyped into cat\r\ntyped into cat\r\n")
        .key("\x04")
        .out("$ ");
    s.key("read x\r")
        .key("answer\r")
        .out("read x\r\n")
        .out("answer\r\n$ ");
    s.typed("true").enter();
    let got = s.run(80, 24);
    assert_eq!(texts(&got), vec!["cat", "read x", "true"]);
    assert!(got.iter().all(|c| !c.redacted), "{got:?}");
}

#[test]
fn unechoed_input_is_redacted_and_never_stored() {
    let mut s = Sim::new();
    s.out("kt$ ")
        .typed("sudo-like")
        .enter()
        .out("[sudo] password: ");
    s.key("hunter2").key("\r").out("\r\nok\r\nkt$ ");
    s.typed("read -s").enter().key("s3cr3t\r");
    s.out("\r\nkt$ ").typed("echo done").enter();
    // bash `read -s -p`: no newline after the secret; the next prompt lands on the same row.
    s.out("kt$ ")
        .typed("read -sp 'Password: ' pw")
        .enter()
        .out("Password: ");
    s.key("pa55")
        .key("\r")
        .out("kt$ ")
        .typed("echo next")
        .enter();
    let got = s.run(80, 24);
    assert_eq!(
        texts(&got),
        vec![
            "sudo-like",
            "",
            "read -s",
            "",
            "echo done",
            "read -sp 'Password: ' pw",
            "",
            "echo next"
        ]
    );
    assert!(got[1].redacted && got[3].redacted && got[6].redacted);
    assert_eq!(got[7].prompt.as_deref(), Some("Password: kt$"));
    assert_eq!(got[1].prompt.as_deref(), Some("[sudo] password:"));
    let all = format!("{got:?}");
    assert!(
        !all.contains("hunter2") && !all.contains("s3cr3t") && !all.contains("pa55"),
        "{all}"
    );
}

#[test]
fn star_echo_is_redacted_but_erased_input_is_not() {
    let mut s = Sim::new();
    s.out("Password: ").key("ab").out("**").enter().out("$ ");
    s.typed("oops")
        .key("\x7f\x7f\x7f\x7f")
        .out("\x08\x08\x08\x08\x1b[K")
        .enter();
    let got = s.run(80, 24);
    assert_eq!(got.len(), 1);
    assert!(got[0].redacted && got[0].text.is_empty());
}

#[test]
fn full_screen_programs_produce_no_commands() {
    let mut s = Sim::new();
    s.out("kt$ ")
        .typed("vim x")
        .enter()
        .out("\x1b[?1049h\x1b[H~\r\n~");
    s.key("ihello\x1b")
        .out("hello")
        .key(":wq\r")
        .out("\x1b[?1049l\r\nkt$ ");
    s.typed("less y")
        .enter()
        .out("\x1b[?1049hline\r\n:")
        .key("/pat\r")
        .key("q");
    s.out("\x1b[?1049lkt$ ").typed("echo back").enter();
    assert_eq!(texts(&s.run(80, 24)), vec!["vim x", "less y", "echo back"]);
}

#[test]
fn continuation_lines_join_the_command() {
    let mut s = Sim::new();
    s.out("$ ").typed("for i in 1 2; do").enter().out("> ");
    s.typed("echo $i")
        .enter()
        .out("> ")
        .typed("done")
        .enter()
        .out("1\r\n2\r\n$ ");
    s.typed("cat <<EOF")
        .enter()
        .out("> ")
        .typed("hello")
        .enter()
        .out("> ");
    s.typed("EOF").enter().out("hello\r\n$ ");
    assert_eq!(
        texts(&s.run(80, 24)),
        vec!["for i in 1 2; do\necho $i\ndone", "cat <<EOF\nhello\nEOF"]
    );
}

#[test]
fn answers_to_program_prompts_are_not_commands() {
    let mut s = Sim::new();
    s.out("$ ")
        .typed("read name")
        .enter()
        .out("Name: ")
        .typed("bob")
        .enter();
    s.out("$ ")
        .typed("cat")
        .enter()
        .typed("typed into cat")
        .enter()
        .key("\x04");
    s.out("$ ").typed("true").enter();
    assert_eq!(texts(&s.run(80, 24)), vec!["read name", "cat", "true"]);
}

#[test]
fn ctrl_c_abandons_the_line() {
    let mut s = Sim::new();
    s.out("$ ")
        .typed("rm -rf /tmp/x")
        .key("\x03")
        .out("^C\r\n$ ");
    s.typed("ls").enter();
    assert_eq!(texts(&s.run(80, 24)), vec!["ls"]);
}

#[test]
fn wrapped_lines_are_joined() {
    let mut s = Sim::new();
    let long = "echo 0123456789012345678901234567890123456789";
    s.out("kt$ ").typed(long).enter().out("kt$ ");
    s.typed("true").enter();
    // 20 columns: the command spans three rows.
    assert_eq!(texts(&s.run(20, 10)), vec![long, "true"]);
    // Also when the wrap scrolls the screen (prompt on the bottom row of 4).
    let mut s = Sim::new();
    s.out("a\r\nb\r\nc\r\nkt$ ").typed(long).enter().out("kt$ ");
    s.typed("true").enter();
    assert_eq!(texts(&s.run(20, 4)), vec![long, "true"]);
}

#[test]
fn bracketed_paste_keeps_pasted_newlines() {
    let mut s = Sim::new();
    s.out("$ ").key("\x1b[200~echo one\necho two\x1b[201~");
    s.out("echo one\r\necho two")
        .key("\r")
        .out("\r\none\r\ntwo\r\n$ ");
    s.key("\x1b[200~echo pasted\x1b[201~")
        .out("echo pasted")
        .enter();
    assert_eq!(
        texts(&s.run(80, 24)),
        vec!["echo one\necho two", "echo pasted"]
    );
}

#[test]
fn osc_133_marks_give_exit_codes_cwd_and_shell_prompts() {
    let a = "\x1b]133;A\x07";
    let b = "\x1b]133;B\x07";
    let c = "\x1b]133;C\x07";
    let mut s = Sim::new();
    s.out(&format!("\x1b]7;file://pod/work\x07{a}[pod]> {b}"));
    s.typed("false")
        .enter()
        .out(c)
        .out(&format!("\x1b]133;D;1\x07{a}[pod]> {b}"));
    // Not a shell prompt by the heuristic, but B says it is; answers after C are not commands.
    s.typed("read x")
        .enter()
        .out(c)
        .out("value? ")
        .typed("42")
        .enter();
    s.out(&format!("\x1b]133;D;0\x07{a}[pod]> {b}"))
        .typed("exit")
        .enter();
    let got = s.run(80, 24);
    assert_eq!(texts(&got), vec!["false", "read x", "exit"]);
    assert_eq!(got[0].exit_code, Some(1));
    assert_eq!(got[1].exit_code, Some(0));
    assert_eq!(got[2].exit_code, None);
    assert_eq!(got[0].cwd.as_deref(), Some("/work"));
    assert_eq!(got[0].prompt.as_deref(), Some("[pod]>"));
}

#[test]
fn take_returns_each_command_once_and_only_when_complete() {
    let mut x = CommandExtractor::tty(TermSize { cols: 80, rows: 24 });
    let mut s = Sim::new();
    s.out("$ ").typed("for x in a; do").enter().out("> ");
    for e in &s.events {
        x.feed(e);
    }
    assert!(
        x.take().is_empty(),
        "a command waiting for its continuation is held back"
    );
    let mut s2 = Sim::new();
    s2.at = s.at;
    s2.typed("done")
        .enter()
        .out("$ ")
        .typed("ls")
        .enter()
        .out("$ ")
        .key("x");
    for e in &s2.events {
        x.feed(e);
    }
    assert_eq!(texts(&x.take()), vec!["for x in a; do\ndone", "ls"]);
    assert!(x.take().is_empty());
    assert!(x.finish().is_empty());
}

#[test]
fn hostile_events_do_not_panic() {
    let mut x = CommandExtractor::tty(TermSize { cols: 0, rows: 0 });
    let junk: &[&[u8]] = &[
        b"\r\r\r\x1b[200~\r\r",
        b"\x1b]133;B\x07\x1b]133;D;abc\x07\x1b]7;file://\x07",
        b"\x1b[99999;99999H\xff\xfe\r\n",
        "\u{1F600}\u{0301}$ ".as_bytes(),
    ];
    for (i, j) in junk.iter().cycle().take(40).enumerate() {
        for stream in [Stream::Stdin, Stream::Stdout] {
            x.feed(&Event {
                at_us: i as u64,
                kind: EventKind::Data {
                    stream,
                    bytes: j.to_vec(),
                },
            });
        }
        x.feed(&Event {
            at_us: i as u64,
            kind: EventKind::Resize {
                cols: (i * 7) as u16,
                rows: (i * 3) as u16,
            },
        });
    }
    let got = x.finish();
    assert!(got.iter().all(|c| c.text.len() <= 64 * 1024 + 4));
}

#[test]
fn bash_multi_line_paste_as_recorded() {
    // Bytes from the corpus recording 40-bash-paste-lines: at Enter, readline moves up and
    // redraws both lines, so the first echoed newline comes with the cursor on line one.
    let mut s = Sim::new();
    s.out("\x1b[?2004hkt$ ");
    s.key("\x1b[200~echo pasted-one\recho pasted-two\x1b[201~");
    s.out("\x1b[7mecho pasted-one\x1b[27m\r\n\r\x1b[7mecho pasted-two\x1b[27m");
    s.key("\r");
    s.out("\x1b[A\r\x1b[C\x1b[C\x1b[C\x1b[Cecho pasted-one\r\n\recho pasted-two\r\n\x1b[?2004l\rpasted-one\r\npasted-two\r\n\x1b[?2004hkt$ ");
    s.typed("exit").enter();
    assert_eq!(
        texts(&s.run(100, 30)),
        vec!["echo pasted-one\necho pasted-two", "exit"]
    );
}

#[test]
fn typed_ahead_lines_whose_echo_arrived_early_as_recorded() {
    // From 41-ash-paste-lines: a plain paste of two lines reaches busybox ash in one event;
    // the second line's echo is already half on screen when its keys are replayed.
    let mut s = Sim::new();
    s.out("kt$ ")
        .key("echo ash-pasted-one\recho ash-pasted-two\r");
    s.out("echo ash-pasted-one\r\nash-pasted-one\r\nkt$ echo ash-pasted-t");
    s.out("wo\r\nash-pasted-two\r\nkt$ ");
    s.typed("exit").enter();
    let got = s.run(100, 30);
    assert_eq!(
        texts(&got),
        vec!["echo ash-pasted-one", "echo ash-pasted-two", "exit"]
    );
    assert!(
        got.iter().all(|c| c.prompt.as_deref() == Some("kt$")),
        "{got:?}"
    );
}

#[test]
fn typed_ahead_lines_echoed_in_one_output_as_recorded() {
    // From 41-ash-paste-lines (another run): both lines' echo and output in one event, and
    // busybox asking for the cursor position (the terminal's answer arrives as stdin).
    let mut s = Sim::new();
    s.out("\r\n\r\nBusyBox v1.35.0\r\n\r\nkt$ \x1b[6n")
        .key("\x1b[6;5R")
        .out("\rkt$ \x1b[J");
    s.key("echo ash-pasted-one\recho ash-pasted-two\r");
    s.out("echo ash-pasted-one\r\nash-pasted-one\r\nkt$ echo ash-pasted-two\r\nash-pasted-two\r\nkt$ \x1b[6n");
    s.key("\x1b[10;5R")
        .key("exit")
        .out("exit")
        .key("\r")
        .out("\r\n");
    let got = s.run(100, 30);
    assert_eq!(
        texts(&got),
        vec!["echo ash-pasted-one", "echo ash-pasted-two", "exit"]
    );
}

#[test]
fn a_flood_of_unechoed_keys_is_bounded() {
    let mut x = CommandExtractor::tty(TermSize { cols: 80, rows: 24 });
    let mut s = Sim::new();
    s.out("Password: ").key("x\r");
    for _ in 0..100 {
        s.key(&"y\r".repeat(100));
    }
    for e in &s.events {
        x.feed(e);
    }
    let got = x.finish();
    // Every line was typed at a prompt that never echoed: redacted, never stored.
    assert!(!got.is_empty() && got.iter().all(|c| c.redacted && c.text.is_empty()));
}

#[test]
fn an_echo_arriving_after_enter_is_not_mistaken_for_no_echo() {
    // From 21-bash-cat: "cat" and Enter reach the shell before its echo; the next keys come
    // after the echo of "cat" but before the echoed newline.
    let mut s = Sim::new();
    s.out("kt$ ").typed("true").enter().out("kt$ ");
    s.key("cat").key("\r").out("cat").key("typed into cat");
    s.out("\r\n\x1b[?2004l\r")
        .key("\r")
        .out("typed into cat")
        .out("\r\ntyped into cat\r\n");
    s.key("\x04").out("kt$ ").typed("echo after").enter();
    let got = s.run(80, 24);
    assert_eq!(texts(&got), vec!["true", "cat", "echo after"]);
    assert!(got.iter().all(|c| !c.redacted), "{got:?}");
}

#[test]
fn continuation_lines_under_osc_133_marks() {
    let a = "\x1b]133;A\x07";
    let b = "\x1b]133;B\x07";
    let mut s = Sim::new();
    s.out(&format!("{a}kt$ {b}"))
        .typed("for i in 1 2; do")
        .enter()
        .out("> ");
    s.typed("echo $i").enter().out("> ").typed("done").enter();
    s.out("\x1b]133;C\x07")
        .out(&format!("1\r\n2\r\n\x1b]133;D;0\x07{a}kt$ {b}"));
    s.typed("true").enter();
    let got = s.run(80, 24);
    assert_eq!(texts(&got), vec!["for i in 1 2; do\necho $i\ndone", "true"]);
    assert_eq!(got[0].exit_code, Some(0));
}

#[test]
fn a_silent_program_gets_its_unechoed_input_redacted_after_the_timeout() {
    let mut s = Sim::new();
    s.out("kt$ ")
        .typed("silent-reader")
        .enter()
        .out("Password: ");
    s.key("s3cret-silent\r");
    // Nothing comes back; the next keys arrive two seconds later (still no echo).
    s.at += 2_000_000;
    s.key("more\r");
    let got = s.run(80, 24);
    assert_eq!(texts(&got), vec!["silent-reader", "", ""]);
    assert!(got[1].redacted && got[2].redacted);
    assert!(!format!("{got:?}").contains("s3cret"));
}

#[test]
fn themed_prompts_count_as_shell_prompts() {
    let mut s = Sim::new();
    s.out("\x1b[35m~/src\x1b[0m \x1b[32m❯\x1b[0m ")
        .typed("git status")
        .enter();
    s.out("clean\r\n~/src ❯ ")
        .typed("make")
        .enter()
        .out("done\r\n");
    s.out("Continue? ").typed("yes").enter();
    let got = s.run(80, 24);
    assert_eq!(texts(&got), vec!["git status", "make"]);
    assert_eq!(got[0].prompt.as_deref(), Some("~/src ❯"));
}

#[test]
fn lines_typed_ahead_are_commands_when_the_shell_reads_them() {
    // bash: typed during `sleep`, echoed by the terminal; bash draws each after its prompt.
    let mut s = Sim::new();
    s.out("kt$ ").typed("sleep 3").enter();
    s.typed("echo one").enter().typed("echo two").enter();
    s.out("kt$ echo one\r\none\r\nkt$ echo two\r\ntwo\r\nkt$ ");
    s.typed("exit").enter();
    let got = s.run(80, 24);
    assert_eq!(
        all(&got),
        [
            "command: sleep 3",
            "command: echo one",
            "command: echo two",
            "command: exit"
        ]
    );
    assert!(got[1].typeahead && got[2].typeahead && !got[3].typeahead);
    assert!(!got[1].inferred, "drawn by the shell: no guess");
    // The moment it is on the screen as a command is when bash drew it.
    assert!(got[1].shown_us > Some(got[2].at_us));
}

#[test]
fn dash_reads_lines_typed_ahead_without_drawing_them() {
    // dash prints its prompt, then the output of the line it read; a line that prints
    // nothing shows as one prompt right after another.
    let mut s = Sim::new();
    s.out("kt$ ").typed("sleep 3").enter();
    s.typed("true").enter().typed("echo two").enter();
    s.out("kt$ kt$ two\r\nkt$ ");
    s.typed("exit").enter();
    let got = s.run(80, 24);
    assert_eq!(
        all(&got),
        [
            "command: sleep 3",
            "command: true",
            "command: echo two",
            "command: exit"
        ]
    );
    assert!(
        got[1].inferred && got[2].inferred,
        "counted, not drawn: {got:?}"
    );
}

#[test]
fn a_line_typed_ahead_that_the_program_reads_is_its_input() {
    let mut s = Sim::new();
    s.out("kt$ ").typed("sleep 3; read x").enter();
    s.typed("answer").enter().typed("echo next").enter();
    // `read` took the first line; bash drew the second after its prompt.
    s.out("kt$ echo next\r\nnext\r\nkt$ ");
    s.typed("exit").enter();
    let got = s.run(80, 24);
    assert_eq!(
        all(&got),
        [
            "command: sleep 3; read x",
            "input: answer",
            "command: echo next",
            "command: exit"
        ]
    );
}

#[test]
fn a_continuation_abandoned_with_ctrl_c_is_one_aborted_entry() {
    let mut s = Sim::new();
    s.out("kt$ ").typed("for i in 1 2; do").enter().out("> ");
    s.typed("echo $i").enter().out("> ");
    s.key("\x03").out("^C\r\nkt$ ");
    s.typed("rm -rf /tmp/x").key("\x03").out("^C\r\nkt$ ");
    s.typed("true").enter();
    assert_eq!(
        all(&s.run(80, 24)),
        [
            "aborted: for i in 1 2; do\necho $i",
            "aborted: rm -rf /tmp/x",
            "command: true"
        ]
    );
}

#[test]
fn zsh_continuation_prompts_continue_the_command() {
    let mut s = Sim::new();
    s.out("kt$ ").typed("for i in 1 2").enter().out("for> ");
    s.typed("do echo $i").enter().out("for> ");
    s.typed("done").enter().out("1\r\n2\r\nkt$ ");
    s.typed("echo \"open").enter().out("dquote> ");
    s.typed("close\"").enter().out("open\r\nclose\r\nkt$ ");
    assert_eq!(
        all(&s.run(80, 24)),
        [
            "command: for i in 1 2\ndo echo $i\ndone",
            "command: echo \"open\nclose\""
        ]
    );
}

#[test]
fn repl_lines_and_program_answers_are_input_even_at_shell_like_prompts() {
    let mut s = Sim::new();
    s.out("kt$ ").typed("python3 -q").enter().out(">>> ");
    s.typed("print(6*7)").enter().out("42\r\n>>> ");
    s.typed("exit()").enter().out("kt$ ");
    s.typed("read -p 'db> ' q").enter().out("db> ");
    s.typed("select 1;").enter().out("kt$ ");
    s.typed("echo $q").enter();
    assert_eq!(
        all(&s.run(80, 24)),
        [
            "command: python3 -q",
            "input: print(6*7)",
            "input: exit()",
            "command: read -p 'db> ' q",
            "input: select 1;",
            "command: echo $q"
        ]
    );
}

#[test]
fn prompts_without_a_usual_closing_glyph_are_learned() {
    // oh-my-zsh's default theme ends in a branch and a mark; the directory changes.
    let p = |dir: &str| {
        format!(
            "\x1b[32m➜\x1b[39m  \x1b[36m{dir}\x1b[39m \x1b[34mgit:(\x1b[31mmain\x1b[34m)\x1b[39m \x1b[33m✗\x1b[39m "
        )
    };
    let mut s = Sim::new();
    s.out(&p("tmp")).typed("cd /usr").enter().out(&p("usr"));
    s.typed("ls -d lib").enter().out("lib\r\n").out(&p("usr"));
    s.typed("read 'n?Name? '").enter().out("Name? ");
    s.typed("bob").enter().out(&p("usr"));
    s.typed("exit").enter();
    let got = s.run(80, 24);
    assert_eq!(
        all(&got),
        [
            "command: cd /usr",
            "command: ls -d lib",
            "command: read 'n?Name? '",
            "input: bob",
            "command: exit"
        ]
    );
    assert_eq!(got[1].prompt.as_deref(), Some("➜  usr git:(main) ✗"));
}

#[test]
fn a_right_prompt_is_not_part_of_the_command() {
    // zsh draws RPROMPT at the margin and leaves it there when the line is accepted.
    let mut s = Sim::new();
    s.out("kt$ \x1b[K\x1b[66C[0] 14:58\x1b[75D");
    s.typed("echo hi").enter().out("hi\r\n");
    s.out("kt$ \x1b[K\x1b[66C[0] 14:59\x1b[75D")
        .typed("true")
        .enter();
    assert_eq!(texts(&s.run(80, 24)), ["echo hi", "true"]);
}

#[test]
fn history_expansion_is_the_command_and_what_was_typed_is_kept() {
    let mut s = Sim::new();
    s.out("kt$ ").typed("echo one").enter().out("one\r\nkt$ ");
    s.typed("sudo !!")
        .enter()
        .out("sudo echo one\r\nbash: sudo: command not found\r\nkt$ ");
    s.typed("!nope")
        .enter()
        .out("bash: !nope: event not found\r\nkt$ ");
    let got = s.run(80, 24);
    assert_eq!(texts(&got), ["echo one", "sudo echo one", "!nope"]);
    assert_eq!(got[1].typed.as_deref(), Some("sudo !!"));
    assert_eq!(got[2].typed, None);
}

#[test]
fn a_command_run_from_the_editor_is_an_inferred_command() {
    // bash Ctrl-X Ctrl-E: vim on the alternate screen, then bash echoes what it runs.
    let mut s = Sim::new();
    s.out("kt$ ")
        .key("\x18\x05")
        .out("\r\n\x1b[?1049h\x1b[H~\r\n~");
    s.key("iecho from-editor\x1b:wq\r").out("echo from-editor");
    s.out("\x1b[?1049l")
        .out("echo from-editor\r\nfrom-editor\r\nkt$ ");
    s.typed("exit").enter();
    let got = s.run(80, 24);
    assert_eq!(texts(&got), ["echo from-editor", "exit"]);
    assert!(got[0].inferred);
}

#[test]
fn a_long_line_scrolled_sideways_is_read_whole() {
    // mksh shows a window of a line longer than the screen, marked with `<`.
    let line = format!("echo {} {}", "x".repeat(40), "y".repeat(40));
    let mut s = Sim::new();
    s.out("kt$ ").key(&line);
    let window: String = line.chars().skip(line.len() - 50).collect();
    s.out(&format!("\r{window}        <")).enter();
    assert_eq!(texts(&s.run(60, 10)), [line.as_str()]);
}

#[test]
fn fish_blocks_are_one_command() {
    // fish keeps the block in its command line and redraws it from the prompt at the end.
    let mut s = Sim::new();
    s.out("me@box ~> ")
        .typed("for i in 1 2")
        .enter()
        .out("\r\n    ");
    s.typed("echo $i").enter().out("\r\n    ");
    s.typed("end").out("\x1b[4D\x1b[Kend");
    s.enter()
        .out("\x1b[2A\r\x1b[10C\r\n\r\n\r\n1\r\n2\r\nme@box ~> ");
    s.typed("exit").enter();
    assert_eq!(
        all(&s.run(80, 24)),
        ["command: for i in 1 2\necho $i\nend", "command: exit"]
    );
}
