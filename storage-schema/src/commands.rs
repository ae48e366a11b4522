//! The commands object: what was typed in a session, as the transcript extractor reconstructed
//! it, stored next to the chunks so reviewers can search sessions without replaying them.
//!
//! ```text
//! off  len  field (big-endian)
//!   0    4  magic "KTCM"
//!   4    1  version = 1
//!   5    3  reserved = 0
//!   8   16  session id
//!  24    4  entry count
//!  28    4  plaintext length (JSON bytes, ≤ 64 MiB)
//!  32    n  AES-256-GCM(DEK, nonce = "KTcm" ‖ 0u64, zstd(JSON array of entries), AAD = bytes 0..32)
//! ```
//! Commands are as confidential as the terminal they came from, so they are encrypted under the
//! session's own data key (deleting `dek.json` shreds them too); the nonce domain differs from the
//! chunks' ("KTck"), so no (key, nonce) pair repeats. The object is written once, before the seal,
//! and the signed seal carries its SHA-256 ([`CommandsRef`]): the commands are as tamper-evident
//! as the seal, and a verifier with only the public key can check them without decrypting.

use sha2::{Digest as _, Sha256};

use crate::aead;
use crate::chunk::MAX_PLAINTEXT;
use crate::keys::DataKey;
use crate::session::SessionId;

pub const MAGIC: [u8; 4] = *b"KTCM";
pub const VERSION: u8 = 1;
pub const HEADER_LEN: usize = 32;
const NONCE: [u8; 12] = *b"KTcm\0\0\0\0\0\0\0\0";

/// One line of input as the transcript extractor accounted for it: the single definition of a
/// command entry. The extractor produces it, the recorder stores it (this module's object), and
/// the reviewer's tools read it; the local search index keeps a row derived from it
/// (`player::index::segment::IndexedCommand`), which is not this type because it holds what an
/// index needs (a position, text only for what may be searched).
///
/// An entry is a command the shell ran, a line typed to a program, input typed without echo, or
/// a line abandoned before it ran ([`EntryKind`]).
///
/// The JSON of a stored entry: `at_us`, then `text` (left out when empty, always for a redacted
/// entry), `redacted` (only when true), `prompt`, `cwd`, `exit_code` (each only when known),
/// then `kind`, `typed`, `inferred`, `typeahead`, `shown_us` (each only when it says something).
/// Every field after `exit_code` was added after the first commands objects were written
/// (without a version bump: they are optional and default to what an old entry meant, a
/// command). Old objects decode unchanged, including those written when `text` was an optional
/// field; an old reader ignores the new fields, so it shows program input and abandoned lines as
/// if they were commands, never less than before.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(from = "wire::Entry")]
pub struct CommandEntry {
    /// When Enter was pressed (Ctrl-C for an aborted line), µs since the session started (for
    /// a non-TTY exec's own command, 0; for a script line, when the line arrived).
    pub at_us: u64,
    /// The line as it ran, continuation lines joined with `\n`. Empty when `redacted`: input
    /// typed without echo (a password) is never stored, only the fact and the time.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub text: String,
    /// Typed while the terminal did not echo: never stored in clear. Always equal to
    /// `kind == Redacted` (kept so readers older than `kind` withhold it too).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub redacted: bool,
    /// The prompt it was typed at, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt: Option<String>,
    /// The working directory, when the shell reported it (OSC 7).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cwd: Option<String>,
    /// The exit code, when the shell reported it (OSC 133;D) or for an exec's own command.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// What the line was. Absent (written before kinds existed): `command`, or `redacted`
    /// when `redacted` is set.
    #[serde(default, skip_serializing_if = "EntryKind::is_command")]
    pub kind: EntryKind,
    /// What was typed, when the shell ran something else: `!!`, `!$` or `^old^new`, which
    /// bash and zsh print expanded before running (`text` holds that expansion).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub typed: Option<String>,
    /// The extractor could not be sure of the kind or the text (no shell-integration marks
    /// and a prompt it had not seen before, a line typed ahead and attributed by counting
    /// prompts, a command echoed by the shell after an editor): shown as such, never dropped.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub inferred: bool,
    /// Typed while the previous command was still running (type-ahead): `kind` says who read
    /// it, the shell (`command`) or the running program (`input`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub typeahead: bool,
    /// When the whole line was on the screen, µs since the session started: where a player
    /// lands to show it (`at_us` may be before its echo arrived).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shown_us: Option<u64>,
}

impl CommandEntry {
    /// A command the shell ran, with nothing else known.
    pub fn command(at_us: u64, text: impl Into<String>) -> Self {
        Self {
            at_us,
            text: text.into(),
            ..Self::default()
        }
    }

    /// A command typed at `at_us`, nothing else known about it yet.
    pub fn new(at_us: u64, text: String) -> Self {
        Self::command(at_us, text)
    }

    /// The text a reviewer may see and search: `None` for a redacted entry (whatever its
    /// `text` field holds, so a malformed object cannot reveal what was withheld).
    pub fn shown_text(&self) -> Option<&str> {
        (!self.redacted && self.kind != EntryKind::Redacted).then_some(self.text.as_str())
    }

    /// Input typed without echo: the fact and the time, never the text.
    pub fn redacted(at_us: u64) -> Self {
        Self {
            at_us,
            redacted: true,
            kind: EntryKind::Redacted,
            ..Self::default()
        }
    }

    /// The same entry with its prompt set.
    pub fn with_prompt(mut self, prompt: impl Into<String>) -> Self {
        self.prompt = Some(prompt.into());
        self
    }

    /// Whether this is a command the shell ran (what `kubetape search` looks in by default).
    pub fn is_command(&self) -> bool {
        self.kind == EntryKind::Command
    }
}

/// What a line of input was.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum EntryKind {
    /// Typed at the shell's prompt and run by it.
    #[default]
    Command,
    /// Read by a program the shell was running: an answer to its prompt, a REPL line (`>>>`,
    /// `db>`), lines for `cat`. Kept and searchable (`kubetape search --all-input`).
    Input,
    /// Typed while the terminal did not echo (a password): no text, ever.
    Redacted,
    /// Typed and abandoned with Ctrl-C before anything ran it (a line, or a whole loop at its
    /// continuation prompt).
    Aborted,
    /// A kind written by a newer version of kubetape.
    #[serde(other)]
    Other,
}

impl EntryKind {
    pub fn is_command(&self) -> bool {
        *self == Self::Command
    }

    /// The name used in the commands object and by `kubetape search --json`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Command => "command",
            Self::Input => "input",
            Self::Redacted => "redacted",
            Self::Aborted => "aborted",
            Self::Other => "other",
        }
    }
}

/// The entry as stored, decoded leniently and then made consistent (`redacted` and `kind`
/// agree, and a redacted entry never carries text, whoever wrote it).
mod wire {
    use super::EntryKind;

    #[derive(serde::Deserialize)]
    pub(super) struct Entry {
        at_us: u64,
        #[serde(default)]
        text: Option<String>,
        #[serde(default)]
        redacted: bool,
        #[serde(default)]
        prompt: Option<String>,
        #[serde(default)]
        cwd: Option<String>,
        #[serde(default)]
        exit_code: Option<i32>,
        #[serde(default)]
        kind: Option<EntryKind>,
        #[serde(default)]
        typed: Option<String>,
        #[serde(default)]
        inferred: bool,
        #[serde(default)]
        typeahead: bool,
        #[serde(default)]
        shown_us: Option<u64>,
    }

    impl From<Entry> for super::CommandEntry {
        fn from(e: Entry) -> Self {
            let redacted = e.redacted || e.kind == Some(EntryKind::Redacted);
            let kind = if redacted {
                EntryKind::Redacted
            } else {
                e.kind.unwrap_or_default()
            };
            Self {
                at_us: e.at_us,
                text: if redacted {
                    String::new()
                } else {
                    e.text.unwrap_or_default()
                },
                redacted,
                prompt: e.prompt,
                cwd: e.cwd,
                exit_code: e.exit_code,
                kind,
                typed: if redacted { None } else { e.typed },
                inferred: e.inferred,
                typeahead: e.typeahead,
                shown_us: e.shown_us,
            }
        }
    }
}

/// Sees every event a recorder takes, on the recorder's own task (off the relay's path), and
/// hands over the session's commands when it is sealed. The transcript crate's extractor
/// implements it; the recorder (`store::Recorder::start_observed`) drives it.
pub trait CommandObserver: Send + 'static {
    fn observe(&mut self, event: &crate::Event);
    /// Whether output (stdout, stderr) can change what it extracts. When it cannot (commands
    /// of a session without a terminal come from its stdin), the recorder never hands output
    /// to it: on bulk output that saved a copy of every byte and a thread handoff per frame.
    /// Asked once, when the recording starts.
    fn reads_output(&self) -> bool {
        true
    }
    /// The commands, in order; called once, when the session is sealed.
    fn finish(self: Box<Self>) -> Vec<CommandEntry>;
}

/// What the seal says about the commands object.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CommandsRef {
    pub count: u64,
    /// Hex SHA-256 of the whole object.
    pub sha256: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandsError {
    #[error("commands object is malformed: {0}")]
    Malformed(&'static str),
    #[error("commands object belongs to session {0}")]
    Foreign(SessionId),
    #[error("commands object does not decrypt: wrong data key, or altered")]
    Decrypt,
    #[error("commands object does not match the seal's digest (altered or replaced)")]
    Digest,
    #[error("commands object content: {0}")]
    Content(String),
}

/// Encrypts `entries` for `session`; returns the object bytes and the reference for the seal.
pub fn encode(
    session: SessionId,
    dek: &DataKey,
    entries: &[CommandEntry],
) -> Result<(Vec<u8>, CommandsRef), CommandsError> {
    let json = serde_json::to_vec(entries).expect("command entries serialize");
    if json.len() > MAX_PLAINTEXT as usize {
        return Err(CommandsError::Malformed("more than 64 MiB of commands"));
    }
    let compressed =
        zstd::bulk::compress(&json, 3).map_err(|e| CommandsError::Content(e.to_string()))?;
    let mut header = [0u8; HEADER_LEN];
    header[0..4].copy_from_slice(&MAGIC);
    header[4] = VERSION;
    header[8..24].copy_from_slice(session.as_bytes());
    header[24..28].copy_from_slice(&(entries.len() as u32).to_be_bytes());
    header[28..32].copy_from_slice(&(json.len() as u32).to_be_bytes());
    let ciphertext = aead::seal(dek.bytes(), NONCE, &header, &compressed)
        .map_err(|_| CommandsError::Malformed("too large to encrypt"))?;
    let mut bytes = header.to_vec();
    bytes.extend_from_slice(&ciphertext);
    let reference = CommandsRef {
        count: entries.len() as u64,
        sha256: digest(&bytes),
    };
    Ok((bytes, reference))
}

/// Hex SHA-256 of an object, as [`CommandsRef::sha256`] holds it.
pub fn digest(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Checks `bytes` against the seal's reference (no key needed).
pub fn check(bytes: &[u8], reference: &CommandsRef) -> Result<(), CommandsError> {
    use subtle::ConstantTimeEq as _;
    let ok: bool = digest(bytes)
        .as_bytes()
        .ct_eq(reference.sha256.as_bytes())
        .into();
    if ok {
        Ok(())
    } else {
        Err(CommandsError::Digest)
    }
}

/// Decrypts and parses a commands object of `session`.
pub fn decode(
    bytes: &[u8],
    session: SessionId,
    dek: &DataKey,
) -> Result<Vec<CommandEntry>, CommandsError> {
    if bytes.len() < HEADER_LEN + aead::TAG_LEN {
        return Err(CommandsError::Malformed("shorter than its header"));
    }
    let (header, ciphertext) = bytes.split_at(HEADER_LEN);
    if header[0..4] != MAGIC {
        return Err(CommandsError::Malformed("bad magic"));
    }
    if header[4] != VERSION || header[5..8] != [0, 0, 0] {
        return Err(CommandsError::Malformed("unsupported version or flags"));
    }
    let owner = SessionId::from_bytes(header[8..24].try_into().expect("16 bytes"));
    if owner != session {
        return Err(CommandsError::Foreign(owner));
    }
    let count = u32::from_be_bytes(header[24..28].try_into().expect("4 bytes")) as usize;
    let plain_len = u32::from_be_bytes(header[28..32].try_into().expect("4 bytes"));
    if plain_len > MAX_PLAINTEXT {
        return Err(CommandsError::Malformed("plaintext length out of range"));
    }
    let compressed =
        aead::open(dek.bytes(), NONCE, header, ciphertext).map_err(|_| CommandsError::Decrypt)?;
    let json = zstd::bulk::decompress(&compressed, plain_len as usize)
        .map_err(|e| CommandsError::Content(e.to_string()))?;
    if json.len() != plain_len as usize {
        return Err(CommandsError::Content(
            "length differs from the header".into(),
        ));
    }
    let entries: Vec<CommandEntry> =
        serde_json::from_slice(&json).map_err(|e| CommandsError::Content(e.to_string()))?;
    if entries.len() != count {
        return Err(CommandsError::Content(format!(
            "{} entries, header says {count}",
            entries.len()
        )));
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries() -> Vec<CommandEntry> {
        vec![
            CommandEntry {
                at_us: 1_500_000,
                text: "kubectl get pods -n prod | grep web".into(),
                prompt: Some("app@web:~$ ".into()),
                cwd: Some("/srv".into()),
                exit_code: Some(0),
                shown_us: Some(1_500_300),
                ..CommandEntry::default()
            },
            CommandEntry {
                prompt: Some("Password: ".into()),
                ..CommandEntry::redacted(9_000_000)
            },
            CommandEntry {
                at_us: 9_500_000,
                text: "echo one".into(),
                typed: Some("!!".into()),
                typeahead: true,
                inferred: true,
                ..CommandEntry::default()
            },
            CommandEntry {
                at_us: 9_600_000,
                text: "print(42)".into(),
                kind: EntryKind::Input,
                prompt: Some(">>>".into()),
                ..CommandEntry::default()
            },
            CommandEntry {
                at_us: 9_700_000,
                text: "rm -rf /".into(),
                kind: EntryKind::Aborted,
                ..CommandEntry::default()
            },
        ]
    }

    #[test]
    fn round_trip_and_seal_reference() {
        let session = SessionId::from_bytes([5; 16]);
        let dek = DataKey::from_bytes([6; 32]);
        let (bytes, reference) = encode(session, &dek, &entries()).unwrap();
        assert_eq!(reference.count, 5);
        check(&bytes, &reference).unwrap();
        assert_eq!(decode(&bytes, session, &dek).unwrap(), entries());
        // Nothing typed is visible in the stored bytes.
        assert!(!bytes.windows(7).any(|w| w == b"kubectl"));
    }

    #[test]
    fn damage_is_refused() {
        let session = SessionId::from_bytes([5; 16]);
        let dek = DataKey::from_bytes([6; 32]);
        let (bytes, reference) = encode(session, &dek, &entries()).unwrap();
        for i in [0, 4, 9, 25, 29, HEADER_LEN + 1, bytes.len() - 1] {
            let mut bad = bytes.clone();
            bad[i] ^= 0x40;
            assert_eq!(
                check(&bad, &reference),
                Err(CommandsError::Digest),
                "byte {i}"
            );
            assert!(decode(&bad, session, &dek).is_err(), "byte {i}");
        }
        assert_eq!(
            decode(&bytes, SessionId::from_bytes([7; 16]), &dek),
            Err(CommandsError::Foreign(session))
        );
        assert_eq!(
            decode(&bytes, session, &DataKey::from_bytes([1; 32])),
            Err(CommandsError::Decrypt)
        );
        assert!(decode(&bytes[..20], session, &dek).is_err());
    }

    /// An object written before entries had kinds (committed bytes, by the code of that time:
    /// `tests/fixtures/commands/`) decodes, and means what it meant: commands, and a redacted
    /// entry.
    #[test]
    fn objects_written_before_kinds_still_decode() {
        let bytes = include_bytes!("../tests/fixtures/commands/v1-before-kinds.ktcm");
        let session = SessionId::from_bytes([0x42; 16]);
        let dek = DataKey::from_bytes([0x24; 32]);
        check(
            bytes,
            &CommandsRef {
                count: 3,
                sha256: "65b13fca2df880f6ab8ee587557a8869f3c1e0b7860d52650903ee49e902ac71".into(),
            },
        )
        .unwrap();
        let got = decode(bytes, session, &dek).unwrap();
        assert_eq!(
            got,
            vec![
                CommandEntry {
                    at_us: 1_500_000,
                    text: "kubectl get pods -n prod".into(),
                    prompt: Some("app@web:~$".into()),
                    cwd: Some("/srv".into()),
                    exit_code: Some(0),
                    ..CommandEntry::default()
                },
                CommandEntry {
                    prompt: Some("Password:".into()),
                    ..CommandEntry::redacted(9_000_000)
                },
                CommandEntry::command(12_250_000, "for i in 1 2; do\necho $i\ndone")
                    .with_prompt("app@web:~$"),
            ]
        );
        assert!(got[0].is_command() && got[2].is_command());
        assert_eq!(got[1].kind, EntryKind::Redacted);
    }

    /// Whatever a writer put in an entry, a redacted one reads back without text, and a kind
    /// this version does not know is kept as `Other`, not refused.
    #[test]
    fn entries_read_back_consistent() {
        let parse = |json: &str| serde_json::from_str::<CommandEntry>(json).unwrap();
        let e = parse(r#"{"at_us":1,"text":"hunter2","redacted":true,"typed":"x"}"#);
        assert_eq!(
            (e.text.as_str(), e.typed, e.kind),
            ("", None, EntryKind::Redacted)
        );
        let e = parse(r#"{"at_us":1,"text":"hunter2","kind":"redacted"}"#);
        assert!(e.redacted && e.text.is_empty() && e.shown_text().is_none());
        let e = parse(r#"{"at_us":1,"text":"x","kind":"from-the-future"}"#);
        assert_eq!(e.kind, EntryKind::Other);
        let e = parse(r#"{"at_us":1,"text":"ls"}"#);
        assert!(e.is_command() && !e.inferred && !e.typeahead);
        // New fields are left out when they say nothing, so a plain command stays small.
        let json = serde_json::to_string(&CommandEntry::command(5, "ls")).unwrap();
        assert_eq!(json, r#"{"at_us":5,"text":"ls"}"#);
        let json = serde_json::to_string(&CommandEntry {
            kind: EntryKind::Input,
            ..CommandEntry::command(5, "y")
        })
        .unwrap();
        assert_eq!(json, r#"{"at_us":5,"text":"y","kind":"input"}"#);
    }

    /// The JSON inside the object is part of the format: pinned here, including objects written
    /// when `text` was an `Option` (a redacted entry had no `text` key; that reads the same).
    #[test]
    fn entry_json_is_stable() {
        let all = entries();
        let (typed, redacted) = (all[0].clone(), all[1].clone());
        assert_eq!(
            serde_json::to_value(&typed).unwrap(),
            serde_json::json!({"at_us": 1_500_000, "text": "kubectl get pods -n prod | grep web",
                "prompt": "app@web:~$ ", "cwd": "/srv", "exit_code": 0, "shown_us": 1_500_300})
        );
        assert_eq!(
            serde_json::to_value(&redacted).unwrap(),
            serde_json::json!({"at_us": 9_000_000, "redacted": true, "prompt": "Password: ",
                "kind": "redacted"})
        );
        let written_before: Vec<CommandEntry> = serde_json::from_str(
            r#"[{"at_us":1500000,"text":"kubectl get pods -n prod | grep web","prompt":"app@web:~$ ","cwd":"/srv","exit_code":0,"shown_us":1500300},
                {"at_us":9000000,"redacted":true,"prompt":"Password: "},
                {"at_us":9500000,"text":""}]"#,
        )
        .unwrap();
        assert_eq!(written_before[..2], all[..2]);
        assert_eq!(
            written_before[2],
            CommandEntry::new(9_500_000, String::new())
        );
        assert_eq!(
            typed.shown_text(),
            Some("kubectl get pods -n prod | grep web")
        );
        assert_eq!(redacted.shown_text(), None);
        // Even with text that should not be there, a redacted entry shows none.
        let odd = CommandEntry {
            text: "hunter2".into(),
            ..redacted
        };
        assert_eq!(odd.shown_text(), None);
    }
}
