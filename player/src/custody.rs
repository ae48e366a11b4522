//! Chain of custody on the reader's side: every command that shows a recording's content
//! (`cat`, `play`, `export`) writes an entry into the store's reads log
//! (`storage_schema::store::reads`) *before* it reads, and refuses to read when the entry
//! cannot be written — a reading that is not logged does not happen through kubetape.
//!
//! Who the reader is: `--as NAME` (or `KUBETAPE_READER`), else the login. The login is always
//! recorded beside it (`os_user`), so a claimed name is never the only trace, and so is the
//! fingerprint of the keyring's signing key (whose keys opened it).

use anyhow::Context as _;
use storage_schema::store::{Store, read_policy, reads};
use storage_schema::{Keyring, SessionId};

/// The options every reading command takes.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ReadArgs {
    /// Why you are reading it (kept in the store's reads log; `kubetape audit --reads`).
    /// Required for the namespaces the store's read policy names (the gateways'
    /// `[custody] reason_required`)
    #[arg(long, value_name = "TEXT")]
    pub reason: Option<String>,

    /// Who is reading, when not the login (kept beside the login in the reads log)
    #[arg(long = "as", value_name = "NAME", env = "KUBETAPE_READER")]
    pub reader: Option<String>,
}

/// The login of this process.
pub fn login() -> String {
    std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| format!("uid:{}", rustix::process::getuid().as_raw()))
}

/// This host's name.
pub fn host() -> String {
    rustix::system::uname()
        .nodename()
        .to_string_lossy()
        .into_owned()
}

impl ReadArgs {
    /// `--reason`, trimmed; `None` when absent or blank.
    pub fn reason(&self) -> Option<&str> {
        self.reason
            .as_deref()
            .map(str::trim)
            .filter(|r| !r.is_empty())
    }
}

/// Who is reading, as the reads log records it.
#[derive(Debug, Clone)]
pub struct Reader {
    /// `--as`, else the login.
    pub reader: String,
    pub login: String,
    /// The fingerprint of the keyring's current signing key.
    pub keyring: String,
}

impl Reader {
    pub fn of(keyring: &Keyring, args: &ReadArgs) -> Self {
        let login = login();
        let reader = args
            .reader
            .as_deref()
            .map(str::trim)
            .filter(|r| !r.is_empty())
            .unwrap_or(&login)
            .to_string();
        let keyring = keyring
            .current_signing_key()
            .map(|k| k.public().fingerprint())
            .unwrap_or_default();
        Self {
            reader,
            login,
            keyring,
        }
    }
}

/// Writes the reads-log entry for reading `session` with `action`; fails (and the caller must
/// not read) when it cannot be written.
pub async fn log_read(
    store: &Store,
    keyring: &Keyring,
    session: SessionId,
    action: &str,
    args: &ReadArgs,
) -> anyhow::Result<()> {
    let Reader {
        reader,
        login,
        keyring: keyring_id,
    } = Reader::of(keyring, args);
    let reason = args.reason();
    require_reason(store, session, reason).await?;
    let entry = reads::entry(
        session,
        action,
        &reader,
        &login,
        &host(),
        reason,
        &keyring_id,
    );
    reads::log(store, &entry).await.with_context(|| {
        format!("cannot write the reads log in {} (every reading of a recording is logged; nothing was read)", store.url())
    })?;
    Ok(())
}

/// Refuses a reading without a reason when the store's read policy
/// (`storage_schema::store::read_policy`, set by the gateways' `[custody] reason_required`)
/// says the session's namespace needs one. Fails closed: a policy or session metadata that
/// cannot be read refuses the reading.
async fn require_reason(
    store: &Store,
    session: SessionId,
    reason: Option<&str>,
) -> anyhow::Result<()> {
    if reason.is_some() {
        return Ok(());
    }
    let policy = read_policy::current(store).await.with_context(|| {
        format!(
            "cannot read the store's read policy ({}); nothing was read",
            storage_schema::layout::READ_POLICY
        )
    })?;
    let Some(policy) = policy.filter(|p| !p.reason_required.is_empty()) else {
        return Ok(());
    };
    let dir = storage_schema::store::locate(store, session)
        .await?
        .with_context(|| format!("session {session} is not in the store"))?;
    let meta: storage_schema::SessionMeta = serde_json::from_slice(&store.get(&dir.meta()).await?)
        .with_context(|| format!("session {session}: unreadable metadata; nothing was read"))?;
    if let Some(namespace) = meta.target.namespace.as_deref()
        && let Some(pattern) = policy.requires_reason(namespace)
    {
        anyhow::bail!(
            "reading recordings of namespace {namespace} needs --reason: the store's read policy (namespaces {pattern:?}, set by {} on {}) asks why, for the reads log; nothing was read",
            if policy.by.is_empty() {
                "a gateway"
            } else {
                &policy.by
            },
            storage_schema::time::format_unix_micros(policy.at_us)
        );
    }
    Ok(())
}
