//! Session identity and the plaintext metadata written when a session starts.
//!
//! The metadata is stored as the exact JSON bytes it was written with, and the first chunk's chain
//! link commits to a digest of those bytes, so editing who/where after the fact breaks the chain.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use crate::time::unix_micros_now;

/// A session id: a UUIDv7, so ids sort by start time as text and as bytes.
#[derive(
    Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(transparent)]
pub struct SessionId(uuid::Uuid);

impl SessionId {
    #[allow(clippy::new_without_default)]
    pub fn new() -> Self {
        Self(uuid::Uuid::now_v7())
    }

    pub fn from_bytes(bytes: [u8; 16]) -> Self {
        Self(uuid::Uuid::from_bytes(bytes))
    }

    pub fn as_bytes(&self) -> &[u8; 16] {
        self.0.as_bytes()
    }

    /// When the id was made (its UUIDv7 millisecond), µs since the Unix epoch; `None` for an
    /// id that is not a UUIDv7. Retention uses it to skip, unread, streams too young to expire.
    pub fn created_at_us(&self) -> Option<u64> {
        let (secs, nanos) = self.0.get_timestamp()?.to_unix();
        Some(secs * 1_000_000 + u64::from(nanos) / 1_000)
    }

    /// The id's short form: its last [`SHORT_ID_LEN`] hex digits.
    ///
    /// Why the tail: a UUIDv7 begins with its millisecond timestamp, so prefixes of ids made in
    /// the same minute are equal (and audit streams opened beside a session share them too).
    /// The tail is the last 32 bits of `rand_b`, which the `uuid` crate fills from the OS random
    /// source for every id (its monotonic counter occupies `rand_a` and the top of `rand_b`), so
    /// two ids' short forms collide with probability 2⁻³²: about one pair in 200 sessions made
    /// in one second, never; one pair among ~65,000 sessions, expected — where a short form
    /// is ambiguous, the readers say so and ask for more digits ([`Self::matches_short`]).
    pub fn short(&self) -> String {
        let hex = self.0.simple().to_string();
        hex[hex.len() - SHORT_ID_LEN..].to_string()
    }

    /// Whether `text` (hex digits, hyphens ignored, any case) names this id: as a prefix of its
    /// text (the form ids had before short forms) or as a suffix of its digits (the short
    /// form, or more of the tail to tell two apart). At least 4 digits, so a stray character
    /// matches nothing.
    pub fn matches_short(&self, text: &str) -> bool {
        let wanted: String = text
            .chars()
            .filter(|c| *c != '-')
            .map(|c| c.to_ascii_lowercase())
            .collect();
        if wanted.len() < 4 || !wanted.chars().all(|c| c.is_ascii_hexdigit()) {
            return false;
        }
        let hex = self.0.simple().to_string();
        hex.ends_with(&wanted) || self.to_string().starts_with(&text.to_ascii_lowercase())
    }
}

/// Hex digits in a [`SessionId::short`] form.
pub const SHORT_ID_LEN: usize = 8;

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0.hyphenated(), f)
    }
}

impl fmt::Debug for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SessionId({self})")
    }
}

impl FromStr for SessionId {
    type Err = uuid::Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        uuid::Uuid::parse_str(s).map(Self)
    }
}

/// Who opened the session.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Identity {
    pub user: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    /// Claims carried for audit, e.g. a CI job's repository, ref and run id.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub claims: BTreeMap<String, String>,
}

/// Where the session ran.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Target {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    /// For sessions recorded on a host (`kubetape record`): the host name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.namespace, &self.pod) {
            (Some(ns), Some(pod)) => {
                if let Some(cluster) = &self.cluster {
                    write!(f, "{cluster}/")?;
                }
                write!(f, "{ns}/{pod}")?;
                if let Some(c) = &self.container {
                    write!(f, ":{c}")?;
                }
                Ok(())
            }
            _ => write!(f, "{}", self.host.as_deref().unwrap_or("-")),
        }
    }
}

/// The client that connected.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Client {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
    /// kubectl's `Kubectl-Session` header, which joins the calls of one kubectl invocation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubectl_session: Option<String>,
}

/// A just-in-time grant the session was opened under.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Grant {
    pub id: String,
    pub reason: String,
    pub approver: String,
    pub expires_at_us: u64,
}

/// What a `kubectl debug` session is debugging: the request that created the container it
/// attaches to (an ephemeral container, or a pod made by `--copy-to` or `debug node/NAME`), as
/// the gateway authorized it. Who is the session's identity; why is the grant's reason, when a
/// grant allowed it.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DebugInfo {
    /// `ephemeral`, `copy` or `node`.
    pub form: String,
    /// The debug container's image.
    pub image: String,
    /// kubectl's `--profile`, as read from the container's security settings (`legacy`,
    /// `general`, `baseline`, `restricted`, `netadmin`, `sysadmin`).
    pub profile: String,
    /// `--target`: the container whose processes it shares (ephemeral containers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// The node, for `debug node/NAME`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// The original pod, for `--copy-to` (when the gateway could tell).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub copied_from: Option<String>,
    /// The rule that allowed the debug request (`binding … → role … rule …`).
    pub rule: String,
    /// Why: the reason of the just-in-time grant it was allowed under.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// When the debug request was authorized, µs since the Unix epoch.
    pub requested_at_us: u64,
}

/// Ids of the keys the session was written with.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct KeyIds {
    pub kek: String,
    pub signing: String,
}

/// What kind of stream was recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SessionKind {
    Exec,
    Attach,
    Debug,
    PortForward,
    /// A local command recorded by `kubetape record`.
    Local,
    /// Not a terminal session: one gateway instance's audit log stream, whose events are
    /// [`crate::EventKind::Audit`] records (one per request). `target.host` names the instance.
    Audit,
}

/// What a port-forward session was asked and allowed to do (sessions of kind
/// [`SessionKind::PortForward`]; added without a version bump, as an optional field).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ForwardMeta {
    /// Ports named in the request (`?ports=`, the channel protocol). kubectl names none up
    /// front: it asks per connection, and each connection's port is in its open event.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<u16>,
    /// The ports the policy allows (`80, 8000-8080`), or `any`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub allowed_ports: String,
    /// Payload capture: `metadata` (connections, ports, bytes, outcomes) or `full` (also every
    /// byte each way, as port-forward data events).
    pub capture: String,
    /// The client's protocol (`SPDY/3.1+portforward.k8s.io` over WebSocket, `SPDY/3.1`,
    /// `v4.channel.k8s.io`) and the one spoken to the cluster.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub client_protocol: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub upstream_protocol: String,
}

impl SessionKind {
    /// What readers make of a stream of this kind. Every reader that must tell sessions from
    /// other streams asks this, and nothing else: a new kind picks its class here once.
    pub fn class(self) -> StreamClass {
        match self {
            SessionKind::Exec | SessionKind::Attach | SessionKind::Debug | SessionKind::Local => {
                StreamClass::Session
            }
            SessionKind::PortForward => StreamClass::PortForward,
            SessionKind::Audit => StreamClass::AuditStream,
        }
    }
}

/// What a recorded stream is to its readers: which commands show it and which prefix it is
/// written under ([`crate::layout::StreamRoot::of`]).
///
/// Deliberately exhaustive: a new class fails to compile in every `match` until each reader has
/// decided what to do with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum StreamClass {
    /// A person's or a job's terminal session (exec, attach, debug, a local recording): listed
    /// by `ls`, played, searched, exported.
    Session,
    /// A port-forward: a person's session like a shell (identity, grant, revocation, an end;
    /// written under `sessions/`, listed by `ls`, sealed and verified the same way), but with
    /// connections instead of a terminal: `play` shows them as a timeline, `cat` prints one
    /// connection's captured bytes (`--connection`), and there is nothing to export to a
    /// terminal format or to search for typed commands.
    PortForward,
    /// A gateway's audit log, one record per request: read by `kubetape audit`, checked by
    /// `verify --all`, never listed, played or searched as a session.
    AuditStream,
}

/// Terminal size in character cells.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TermSize {
    pub cols: u16,
    pub rows: u16,
}

/// Everything known about a session when it starts.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SessionMeta {
    /// Recording format version.
    pub format: u32,
    pub session: SessionId,
    pub kind: SessionKind,
    /// Wall-clock start, microseconds since the Unix epoch.
    pub started_at_us: u64,
    pub identity: Identity,
    pub target: Target,
    pub command: Vec<String>,
    pub tty: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<TermSize>,
    #[serde(default)]
    pub client: Client,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grant: Option<Grant>,
    /// For a `kubectl debug` session (kind `debug`): what it debugs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub debug: Option<DebugInfo>,
    pub keys: KeyIds,
    /// Port-forward sessions: ports, capture, protocols.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port_forward: Option<ForwardMeta>,
    /// Fields written by newer versions, kept so reading never loses them.
    #[serde(flatten)]
    pub extra: BTreeMap<String, serde_json::Value>,
}

impl SessionMeta {
    /// The class of this stream (see [`SessionKind::class`]).
    pub fn class(&self) -> StreamClass {
        self.kind.class()
    }

    /// Metadata for a new session; the keys are filled in by the writer from the keyring.
    pub fn new(
        kind: SessionKind,
        identity: Identity,
        target: Target,
        command: Vec<String>,
        tty: bool,
    ) -> Self {
        Self {
            format: crate::FORMAT_VERSION,
            session: SessionId::new(),
            kind,
            started_at_us: unix_micros_now(),
            identity,
            target,
            command,
            tty,
            size: None,
            client: Client::default(),
            grant: None,
            debug: None,
            keys: KeyIds {
                kek: String::new(),
                signing: String::new(),
            },
            port_forward: None,
            extra: BTreeMap::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_forms_of_ids_made_together_are_distinct() {
        // 200 ids within one millisecond or a few: prefixes collide, tails must not.
        let ids: Vec<SessionId> = (0..200).map(|_| SessionId::new()).collect();
        let shorts: std::collections::BTreeSet<String> = ids.iter().map(|i| i.short()).collect();
        assert_eq!(shorts.len(), ids.len());
        assert_eq!(ids[0].to_string()[..8], ids[199].to_string()[..8]);
        for id in &ids {
            assert_eq!(id.short().len(), SHORT_ID_LEN);
            assert!(id.to_string().ends_with(&id.short()));
            assert!(id.matches_short(&id.short()));
            assert!(id.matches_short(&id.short().to_ascii_uppercase()));
            assert!(
                id.matches_short(&id.to_string()[..13]),
                "prefixes still work"
            );
        }
    }

    #[test]
    fn an_id_knows_when_it_was_made() {
        let before = crate::time::unix_micros_now();
        let id = SessionId::new();
        let at = id.created_at_us().unwrap();
        assert!(at + 1_000 >= before && at <= crate::time::unix_micros_now());
        let v4: SessionId = "9f3c2e4a-1b2c-4d5e-8f60-718293a4b5c6".parse().unwrap();
        assert_eq!(v4.created_at_us(), None);
    }

    #[test]
    fn short_forms_refuse_what_is_not_an_id() {
        let id: SessionId = "01a24188-c0a8-7343-97fb-44af079b3d28".parse().unwrap();
        assert_eq!(id.short(), "079b3d28");
        assert!(id.matches_short("af07-9b3d28"));
        assert!(!id.matches_short("3d28x"));
        assert!(!id.matches_short("d28"), "too short to mean anything");
        assert!(!id.matches_short(""));
        assert!(!id.matches_short("079b3d29"));
    }
}
