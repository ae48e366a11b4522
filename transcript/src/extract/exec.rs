//! Non-TTY execs: the exec's own command, and the lines of a script piped into a shell
//! (`kubectl exec -i pod -- sh < script.sh`).

use storage_schema::{Event, EventKind, Stream};

use super::CommandEntry;

/// Longest script line kept; the rest of a longer line is dropped (and the line marked with
/// a trailing ellipsis) so a binary blob on stdin cannot grow memory without bound.
const MAX_LINE: usize = 64 * 1024;

/// Shells whose stdin, when no `-c` is given, is a script of commands.
const SHELLS: &[&str] = &["sh", "bash", "dash", "ash", "zsh", "ksh", "mksh", "busybox"];

#[derive(Debug)]
pub(crate) struct ExecExtractor {
    own: Option<CommandEntry>,
    script: bool,
    line: Vec<u8>,
    line_at: u64,
    overflow: bool,
    done: Vec<CommandEntry>,
}

impl ExecExtractor {
    pub(crate) fn new(command: &[String]) -> Self {
        let own = (!command.is_empty()).then(|| CommandEntry::command(0, shell_join(command)));
        Self {
            own,
            script: reads_script_from_stdin(command),
            line: Vec::new(),
            line_at: 0,
            overflow: false,
            done: Vec::new(),
        }
    }

    pub(crate) fn feed(&mut self, event: &Event) {
        match &event.kind {
            EventKind::Data {
                stream: Stream::Stdin,
                bytes,
            } if self.script => {
                for &b in bytes {
                    if b == b'\n' {
                        self.end_line();
                        continue;
                    }
                    if self.line.is_empty() {
                        self.line_at = event.at_us;
                    }
                    if self.line.len() < MAX_LINE {
                        self.line.push(b);
                    } else {
                        self.overflow = true;
                    }
                }
            }
            EventKind::StreamClose {
                stream: Stream::Stdin,
            } => self.end_line(),
            EventKind::Exit { code, .. } => {
                self.end_line();
                if let Some(own) = &mut self.own {
                    own.exit_code = Some(*code);
                }
            }
            _ => {}
        }
    }

    fn end_line(&mut self) {
        if self.line.is_empty() {
            return;
        }
        let mut text = String::from_utf8_lossy(&self.line).trim().to_owned();
        if self.overflow {
            text.push('…');
        }
        self.line.clear();
        self.overflow = false;
        if text.is_empty() || text.starts_with('#') {
            return;
        }
        self.done.push(CommandEntry::command(self.line_at, text));
    }

    pub(crate) fn take(&mut self) -> Vec<CommandEntry> {
        std::mem::take(&mut self.done)
    }

    pub(crate) fn finish(&mut self) {
        self.end_line();
        if let Some(own) = self.own.take() {
            self.done.insert(0, own);
        }
    }
}

/// `sh`, `bash -s`, `busybox sh`, `/bin/bash -e`: a shell with no `-c` reads commands from stdin.
fn reads_script_from_stdin(command: &[String]) -> bool {
    // `env [-i] [VAR=value]... sh`: look through env to the program it runs.
    let command = match command.first().map(|c| c.rsplit('/').next().unwrap_or(c)) {
        Some("env") => {
            let skip = command[1..]
                .iter()
                .take_while(|a| a.starts_with('-') || a.contains('='))
                .count();
            &command[1 + skip..]
        }
        _ => command,
    };
    let Some(first) = command.first() else {
        return false;
    };
    let name = first.rsplit('/').next().unwrap_or(first);
    if !SHELLS.contains(&name) {
        return false;
    }
    let mut args = command[1..].iter();
    if name == "busybox" {
        match args.next().map(String::as_str) {
            Some("sh" | "ash" | "bash") => {}
            _ => return false,
        }
    }
    // Options only: a script file argument means stdin is not the script.
    args.all(|a| a.starts_with('-') && !a.starts_with("-c") && !a.contains('c'))
}

/// The argv as a shell would need it typed, quoting only what needs quoting.
pub(crate) fn shell_join(argv: &[String]) -> String {
    argv.iter()
        .map(|a| {
            let plain = !a.is_empty()
                && a.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_./=:,+@%".contains(&b));
            if plain {
                a.clone()
            } else {
                format!("'{}'", a.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(s: &[&str]) -> Vec<String> {
        s.iter().map(|s| s.to_string()).collect()
    }

    fn stdin(at_us: u64, b: &[u8]) -> Event {
        Event {
            at_us,
            kind: EventKind::Data {
                stream: Stream::Stdin,
                bytes: b.to_vec(),
            },
        }
    }

    #[test]
    fn own_command_with_exit_code() {
        let mut x = ExecExtractor::new(&argv(&["ls", "-la", "/my dir", "it's"]));
        x.feed(&stdin(5, b"ignored\n"));
        x.feed(&Event {
            at_us: 9,
            kind: EventKind::Exit {
                code: 2,
                message: String::new(),
            },
        });
        x.finish();
        let got = x.take();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].shown_text(), Some(r"ls -la '/my dir' 'it'\''s'"));
        assert_eq!(got[0].exit_code, Some(2));
    }

    #[test]
    fn script_lines_on_stdin_of_a_shell() {
        let mut x = ExecExtractor::new(&argv(&["/bin/sh", "-e"]));
        x.feed(&stdin(10, b"echo one\n# comment\n\n  uname -a  \nech"));
        x.feed(&stdin(20, b"o two"));
        x.feed(&Event {
            at_us: 30,
            kind: EventKind::StreamClose {
                stream: Stream::Stdin,
            },
        });
        x.finish();
        let got: Vec<_> = x.take().into_iter().map(|c| (c.at_us, c.text)).collect();
        assert_eq!(
            got,
            vec![
                (0, "/bin/sh -e".to_owned()),
                (10, "echo one".into()),
                (10, "uname -a".into()),
                (10, "echo two".into())
            ]
        );
    }

    #[test]
    fn only_shells_without_c_read_scripts() {
        assert!(reads_script_from_stdin(&argv(&["bash"])));
        assert!(reads_script_from_stdin(&argv(&["busybox", "sh", "-s"])));
        assert!(!reads_script_from_stdin(&argv(&["bash", "-c", "ls"])));
        assert!(!reads_script_from_stdin(&argv(&["bash", "-ec", "ls"])));
        assert!(!reads_script_from_stdin(&argv(&["bash", "script.sh"])));
        assert!(!reads_script_from_stdin(&argv(&["python3"])));
        assert!(!reads_script_from_stdin(&argv(&["busybox", "ls"])));
        assert!(!reads_script_from_stdin(&[]));
        assert!(reads_script_from_stdin(&argv(&[
            "env",
            "-i",
            "A=b",
            "/bin/dash"
        ])));
        assert!(!reads_script_from_stdin(&argv(&["env", "A=b", "python3"])));
        assert!(!reads_script_from_stdin(&argv(&["/usr/bin/env", "A=b"])));
    }

    #[test]
    fn long_lines_are_bounded() {
        let mut x = ExecExtractor::new(&argv(&["sh"]));
        x.feed(&stdin(1, &vec![b'a'; MAX_LINE * 3]));
        x.finish();
        let got = x.take();
        assert_eq!(got[1].text.chars().count(), MAX_LINE + 1);
    }
}
