//! The extractor as the recorder's [`CommandObserver`]: the gateway and `kubetape record` hand
//! it to `Recorder::start_observed`, so commands are extracted on the recorder's task as the
//! session runs and written, encrypted, with the seal.

use storage_schema::Event;
use storage_schema::commands::{CommandEntry, CommandObserver};

use crate::extract::CommandExtractor;

impl CommandObserver for CommandExtractor {
    fn observe(&mut self, event: &Event) {
        self.feed(event);
    }

    fn reads_output(&self) -> bool {
        CommandExtractor::reads_output(self)
    }

    fn finish(self: Box<Self>) -> Vec<CommandEntry> {
        CommandExtractor::finish(*self)
    }
}

#[cfg(test)]
mod tests {
    use storage_schema::commands::EntryKind;
    use storage_schema::{EventKind, Stream, TermSize};

    use super::*;

    /// Without a terminal, output changes nothing the extractor finds: the recorder may keep
    /// it from the extractor (`reads_output`); with one, it may not.
    #[test]
    fn only_a_terminal_session_reads_output() {
        let data = |at_us, stream, bytes: &[u8]| Event {
            at_us,
            kind: EventKind::Data {
                stream,
                bytes: bytes.to_vec(),
            },
        };
        let events = [
            data(0, Stream::Stdin, b"echo one\n"),
            data(10, Stream::Stdout, b"one\n$ not a command\n"),
            data(20, Stream::Stderr, b"warning\n"),
            data(30, Stream::Stdin, b"ls -l\n"),
            data(40, Stream::Stdout, b"total 0\n"),
        ];
        let shell = ["sh".to_string()];
        let exec = CommandExtractor::exec(&shell);
        assert!(!CommandObserver::reads_output(&exec));
        let tty = CommandExtractor::tty(TermSize { cols: 80, rows: 24 });
        assert!(CommandObserver::reads_output(&tty));
        let mut all: Box<dyn CommandObserver> = Box::new(exec);
        let mut input_only: Box<dyn CommandObserver> = Box::new(CommandExtractor::exec(&shell));
        for e in &events {
            all.observe(e);
            if matches!(
                &e.kind,
                EventKind::Data {
                    stream: Stream::Stdin,
                    ..
                }
            ) {
                input_only.observe(e);
            }
        }
        let (all, input_only) = (all.finish(), input_only.finish());
        assert_eq!(all.len(), 3, "the shell, then its two lines: {all:?}");
        assert_eq!(all, input_only);
    }

    #[test]
    fn redacted_entries_carry_no_text() {
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
            data(20, Stream::Stdout, b"ls\r\nREADME\r\n[sudo] password: "),
            data(30, Stream::Stdin, b"hunter2\r"),
            data(40, Stream::Stdout, b"\r\n$ "),
        ] {
            x.observe(&e);
        }
        // What the recorder stores is what the extractor produced, redaction included.
        let entries = x.finish();
        assert_eq!(entries.len(), 2, "{entries:?}");
        assert_eq!(entries[0].shown_text(), Some("ls"));
        assert!(!entries[0].redacted && entries[0].kind == EntryKind::Command);
        assert!(entries[1].redacted && entries[1].text.is_empty());
        assert!(entries[1].kind == EntryKind::Redacted);
        assert_eq!(entries[1].shown_text(), None);
        let all = format!("{entries:?}");
        assert!(!all.contains("hunter2"), "{all}");
    }
}
