//! The extractor as the recorder's [`CommandObserver`]: the gateway and `kubetape record` hand
//! it to `Recorder::start_observed`, so commands are extracted on the recorder's task as the
//! session runs and written, encrypted, with the seal.

use storage_schema::Event;
use storage_schema::commands::{CommandEntry, CommandObserver};

use crate::extract::{Command, CommandExtractor};

impl From<Command> for CommandEntry {
    fn from(c: Command) -> Self {
        CommandEntry {
            at_us: c.at_us,
            // A redacted command's text is empty by construction; store none at all.
            text: (!c.redacted).then_some(c.text),
            redacted: c.redacted,
            prompt: c.prompt,
            cwd: c.cwd,
            exit_code: c.exit_code,
            kind: if c.redacted {
                storage_schema::commands::EntryKind::Redacted
            } else {
                storage_schema::commands::EntryKind::Command
            },
            ..CommandEntry::default()
        }
    }
}

impl CommandObserver for CommandExtractor {
    fn observe(&mut self, event: &Event) {
        self.feed(event);
    }

    fn finish(self: Box<Self>) -> Vec<CommandEntry> {
        CommandExtractor::finish(*self)
            .into_iter()
            .map(CommandEntry::from)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use storage_schema::{EventKind, Stream, TermSize};

    use super::*;

    #[test]
    fn redacted_commands_carry_no_text() {
        let mut x: Box<dyn CommandObserver> =
            Box::new(CommandExtractor::tty(TermSize { cols: 80, rows: 24 }));
        let data = |at_us, stream, bytes: &[u8]| Event {
            at_us,
            kind: EventKind::Data {
                stream,
                bytes: bytes.to_vec(),
            },
        };
        for e in [
            data(0, Stream::Stdout, b"$ "),
            data(10, Stream::Stdin, b"ls\r"),
            data(20, Stream::Stdout, b"ls\r\nREADME\r\n$ "),
        ] {
            x.observe(&e);
        }
        let entries = x.finish();
        assert_eq!(entries[0].text.as_deref(), Some("ls"));
        assert!(!entries[0].redacted);
        let redacted = CommandEntry::from(Command {
            at_us: 1,
            text: String::new(),
            prompt: Some("Password: ".into()),
            cwd: None,
            exit_code: None,
            redacted: true,
        });
        assert_eq!(redacted.text, None);
        assert!(redacted.redacted);
    }
}
