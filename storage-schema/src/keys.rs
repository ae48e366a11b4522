//! Keys: the keyring of key-encryption keys (KEKs) and Ed25519 signing keys, per-session data keys
//! (DEKs) and their wrapping.
//!
//! Envelope encryption: every session gets a fresh random DEK; the DEK is stored only wrapped by
//! the newest KEK, in its own object, so deleting that one object makes the session unreadable
//! (crypto-shredding) while the KEK stays in use for everyone else. Rotation adds a KEK and a
//! signing key; new sessions use the newest, old sessions name theirs by id and stay readable.
//!
//! # On disk
//! A keyring is a directory (mode 0700) of one-line text files (mode 0600):
//! ```text
//! kek-<id>.key       kubetape-kek-v1 <64 hex>
//! signing-<id>.key   kubetape-ed25519-secret-v1 <64 hex seed>
//! signing-<id>.pub   kubetape-ed25519-v1 <id> <64 hex public key>
//! ```
//! Ids are `<UTC yyyymmddThhmmss.ffffffZ>-<8 hex fingerprint>`, so sorting ids sorts keys by age. A
//! private key file that group or others can read is refused, as ssh does.

use std::collections::BTreeMap;
use std::fmt;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use ed25519_dalek::Signer;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::aead;
use crate::session::SessionId;

/// Why a key could not be loaded, created or used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("no keyring at {0} (create one with `kubetape keys init`)")]
    NoKeyring(PathBuf),
    #[error("keyring {dir}: {source}")]
    Io {
        dir: PathBuf,
        source: std::io::Error,
    },
    #[error("key file {path}: {reason}")]
    BadKeyFile { path: PathBuf, reason: String },
    #[error(
        "key file {path} is readable by group or others (mode {mode:o}); run `chmod 600` on it"
    )]
    InsecurePermissions { path: PathBuf, mode: u32 },
    #[error("keyring {0} holds no key-encryption key")]
    NoKek(PathBuf),
    #[error("keyring {0} holds no signing key")]
    NoSigningKey(PathBuf),
    #[error("key-encryption key {0} is not in the keyring")]
    KekMissing(String),
    #[error(
        "the data key does not unwrap with key-encryption key {0}: wrong key, or the wrapped key was altered"
    )]
    UnwrapFailed(String),
    #[error("public key for signing key {0} is not known (pass --pubkey FILE)")]
    PublicKeyMissing(String),
    #[error("could not read randomness from the OS: {0}")]
    Random(String),
}

/// Fills a fresh array from the OS random source.
pub(crate) fn random<const N: usize>() -> Result<[u8; N], KeyError> {
    let mut out = [0u8; N];
    getrandom::getrandom(&mut out).map_err(|e| KeyError::Random(e.to_string()))?;
    Ok(out)
}

/// A key id: `<UTC yyyymmddThhmmss.ffffffZ>-<fingerprint>`, strictly after `after` (the newest
/// id of its kind), so that sorting ids sorts keys by age even for rotations in one microsecond.
fn new_key_id(fingerprint_of: &[u8], domain: &[u8], after: &str) -> String {
    let micros = crate::time::unix_micros_now().max(id_micros(after).map_or(0, |m| m + 1));
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_micros(micros);
    let secs = humantime::format_rfc3339_seconds(t)
        .to_string()
        .replace(['-', ':'], "");
    let stamp = format!("{}.{:06}Z", secs.trim_end_matches('Z'), micros % 1_000_000);
    let fp = Sha256::new()
        .chain_update(domain)
        .chain_update(fingerprint_of)
        .finalize();
    format!("{stamp}-{}", hex::encode(&fp[..4]))
}

/// When the key with id `id` was made, in µs since the Unix epoch (its id starts with it), or
/// `None` for an id that does not: `keys rewrap --older-than` picks KEKs by it.
pub fn key_created_us(id: &str) -> Option<u64> {
    id_micros(id)
}

/// The creation time an id records, in µs (ids without a fraction count as the second's end).
fn id_micros(id: &str) -> Option<u64> {
    let stamp = id.split('-').next()?;
    let (whole, frac) = match stamp.split_once('.') {
        Some((w, f)) => (
            w.to_string() + "Z",
            f.trim_end_matches('Z').parse::<u64>().ok()?,
        ),
        None => (stamp.to_string(), 999_999),
    };
    let (d, t) = whole.trim_end_matches('Z').split_once('T')?;
    if d.len() != 8 || t.len() != 6 {
        return None;
    }
    let rfc = format!(
        "{}-{}-{}T{}:{}:{}Z",
        &d[..4],
        &d[4..6],
        &d[6..],
        &t[..2],
        &t[2..4],
        &t[4..]
    );
    let secs = humantime::parse_rfc3339(&rfc)
        .ok()?
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?
        .as_secs();
    Some(secs * 1_000_000 + frac)
}

// === impl DataKey ===

/// A session's data key. Zeroed on drop; `Debug` never shows it.
#[derive(Clone)]
pub struct DataKey(Zeroizing<[u8; 32]>);

impl fmt::Debug for DataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DataKey(..)")
    }
}

impl DataKey {
    pub fn generate() -> Result<Self, KeyError> {
        Ok(Self(Zeroizing::new(random()?)))
    }

    /// Builds a key from known bytes (fixtures and tests).
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(Zeroizing::new(bytes))
    }

    pub(crate) fn bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

/// A DEK wrapped by a KEK, as stored in a session's `dek.json`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct WrappedKey {
    pub format: u32,
    /// Id of the KEK that wraps it.
    pub kek: String,
    /// Hex nonce.
    pub nonce: String,
    /// Hex AES-256-GCM ciphertext of the 32-byte DEK (with tag).
    pub wrapped: String,
}

fn wrap_aad(session: SessionId, kek_id: &str) -> Vec<u8> {
    let mut aad = b"kubetape/dek/v1".to_vec();
    aad.extend_from_slice(session.as_bytes());
    aad.extend_from_slice(kek_id.as_bytes());
    aad
}

// === impl Kek ===

/// A key-encryption key.
#[derive(Clone)]
pub struct Kek {
    id: String,
    key: Zeroizing<[u8; 32]>,
}

impl fmt::Debug for Kek {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Kek")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl Kek {
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Wraps `dek` for `session`; the session id and KEK id are bound as associated data so a
    /// wrapped key cannot be moved to another session.
    pub fn wrap(&self, session: SessionId, dek: &DataKey) -> Result<WrappedKey, KeyError> {
        let nonce: [u8; 12] = random()?;
        let aad = wrap_aad(session, &self.id);
        let wrapped = aead::seal(&self.key, nonce, &aad, &dek.0[..])
            .map_err(|_| KeyError::Random("AES-GCM refused to encrypt".into()))?;
        Ok(WrappedKey {
            format: 1,
            kek: self.id.clone(),
            nonce: hex::encode(nonce),
            wrapped: hex::encode(wrapped),
        })
    }

    pub fn unwrap_key(
        &self,
        session: SessionId,
        wrapped: &WrappedKey,
    ) -> Result<DataKey, KeyError> {
        let fail = || KeyError::UnwrapFailed(wrapped.kek.clone());
        let nonce = hex::decode(&wrapped.nonce).map_err(|_| fail())?;
        let ct = hex::decode(&wrapped.wrapped).map_err(|_| fail())?;
        let nonce: [u8; 12] = nonce.try_into().map_err(|_| fail())?;
        let aad = wrap_aad(session, &wrapped.kek);
        let plain = Zeroizing::new(aead::open(&self.key, nonce, &aad, &ct).map_err(|_| fail())?);
        let bytes: [u8; 32] = plain.as_slice().try_into().map_err(|_| fail())?;
        Ok(DataKey::from_bytes(bytes))
    }
}

// === impl SigningKey / PublicKey ===

/// An Ed25519 key that signs chunks and seals.
#[derive(Clone)]
pub struct SigningKey {
    id: String,
    key: ed25519_dalek::SigningKey,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    pub fn from_seed(id: impl Into<String>, seed: [u8; 32]) -> Self {
        Self {
            id: id.into(),
            key: ed25519_dalek::SigningKey::from_bytes(&seed),
        }
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn public(&self) -> PublicKey {
        PublicKey {
            id: self.id.clone(),
            key: self.key.verifying_key(),
        }
    }

    /// Signs `domain ‖ message`; the domain keeps a chunk signature from passing as a seal's.
    pub fn sign(&self, domain: &[u8], message: &[u8]) -> [u8; 64] {
        let mut msg = Vec::with_capacity(domain.len() + message.len());
        msg.extend_from_slice(domain);
        msg.extend_from_slice(message);
        self.key.sign(&msg).to_bytes()
    }
}

/// The public half of a signing key: all an auditor needs to verify recordings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKey {
    id: String,
    key: ed25519_dalek::VerifyingKey,
}

impl PublicKey {
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The fingerprint part of the id (after the timestamp), derived from the key itself.
    pub fn fingerprint(&self) -> String {
        hex::encode(
            &Sha256::new()
                .chain_update(b"kubetape/signing-id")
                .chain_update(self.key.as_bytes())
                .finalize()[..4],
        )
    }

    pub fn verify(&self, domain: &[u8], message: &[u8], signature: &[u8; 64]) -> bool {
        let mut msg = Vec::with_capacity(domain.len() + message.len());
        msg.extend_from_slice(domain);
        msg.extend_from_slice(message);
        self.key
            .verify_strict(&msg, &ed25519_dalek::Signature::from_bytes(signature))
            .is_ok()
    }

    /// The one-line `.pub` file form.
    pub fn to_line(&self) -> String {
        format!(
            "kubetape-ed25519-v1 {} {}\n",
            self.id,
            hex::encode(self.key.as_bytes())
        )
    }

    pub fn from_line(line: &str) -> Result<Self, String> {
        let mut parts = line.split_whitespace();
        let (Some("kubetape-ed25519-v1"), Some(id), Some(hexkey), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err("expected `kubetape-ed25519-v1 <id> <hex key>`".into());
        };
        let bytes: [u8; 32] = hex::decode(hexkey)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or("public key is not 32 hex bytes")?;
        let key = ed25519_dalek::VerifyingKey::from_bytes(&bytes)
            .map_err(|_| "not an Ed25519 public key")?;
        let public = Self {
            id: id.to_string(),
            key,
        };
        if !id.ends_with(&public.fingerprint()) {
            return Err(format!(
                "id {id} does not match the key's fingerprint {}",
                public.fingerprint()
            ));
        }
        Ok(public)
    }

    pub fn read_file(path: &Path) -> Result<Self, KeyError> {
        let text = fs::read_to_string(path).map_err(|source| KeyError::Io {
            dir: path.to_path_buf(),
            source,
        })?;
        Self::from_line(text.trim()).map_err(|reason| KeyError::BadKeyFile {
            path: path.to_path_buf(),
            reason,
        })
    }
}

// === impl Keyring ===

/// All keys in one directory.
#[derive(Debug)]
pub struct Keyring {
    dir: PathBuf,
    keks: BTreeMap<String, Kek>,
    signing: BTreeMap<String, SigningKey>,
    public: BTreeMap<String, PublicKey>,
}

impl Keyring {
    /// Opens an existing keyring.
    pub fn open(dir: &Path) -> Result<Self, KeyError> {
        if !dir.is_dir() {
            return Err(KeyError::NoKeyring(dir.to_path_buf()));
        }
        let io = |source| KeyError::Io {
            dir: dir.to_path_buf(),
            source,
        };
        let mut ring = Keyring {
            dir: dir.to_path_buf(),
            keks: BTreeMap::new(),
            signing: BTreeMap::new(),
            public: BTreeMap::new(),
        };
        for entry in fs::read_dir(dir).map_err(io)? {
            let path = entry.map_err(io)?.path();
            let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
                continue;
            };
            if let Some(id) = name
                .strip_prefix("kek-")
                .and_then(|n| n.strip_suffix(".key"))
            {
                let key = read_secret(&path, "kubetape-kek-v1")?;
                ring.keks.insert(
                    id.to_string(),
                    Kek {
                        id: id.to_string(),
                        key,
                    },
                );
            } else if let Some(id) = name
                .strip_prefix("signing-")
                .and_then(|n| n.strip_suffix(".key"))
            {
                let seed = read_secret(&path, "kubetape-ed25519-secret-v1")?;
                let key = SigningKey::from_seed(id, *seed);
                ring.public.insert(id.to_string(), key.public());
                ring.signing.insert(id.to_string(), key);
            } else if let Some(id) = name
                .strip_prefix("signing-")
                .and_then(|n| n.strip_suffix(".pub"))
            {
                let public = PublicKey::read_file(&path)?;
                if public.id != id {
                    return Err(KeyError::BadKeyFile {
                        path,
                        reason: format!("names key {}", public.id),
                    });
                }
                ring.public.entry(id.to_string()).or_insert(public);
            }
        }
        Ok(ring)
    }

    /// Opens the keyring at `dir`, creating it with a first KEK and signing key when it does not
    /// exist. The flag says whether it was created, so a CLI can tell the user once.
    pub fn open_or_init(dir: &Path) -> Result<(Self, bool), KeyError> {
        if dir.is_dir() {
            let ring = Self::open(dir)?;
            if !ring.keks.is_empty() && !ring.signing.is_empty() {
                return Ok((ring, false));
            }
        }
        let mut ring = Self::init_dir(dir)?;
        ring.rotate()?;
        Ok((ring, true))
    }

    fn init_dir(dir: &Path) -> Result<Self, KeyError> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|source| KeyError::Io {
                dir: dir.to_path_buf(),
                source,
            })?;
        Self::open(dir)
    }

    /// Adds a new KEK and signing key; new sessions use them from now on.
    ///
    /// "Newest" is the greatest id; ids start with their creation time, made strictly later than
    /// the newest existing id, so the new keys are current even after a clock step back.
    pub fn rotate(&mut self) -> Result<(&Kek, PublicKey), KeyError> {
        let newest_kek = self.keks.keys().next_back().cloned().unwrap_or_default();
        let kek_bytes = Zeroizing::new(random::<32>()?);
        let kek_id = new_key_id(&*kek_bytes, b"kubetape/kek-id", &newest_kek);
        let newest_signing = self.signing.keys().next_back().cloned().unwrap_or_default();
        let seed = Zeroizing::new(random::<32>()?);
        let probe = ed25519_dalek::SigningKey::from_bytes(&seed);
        let sig_id = new_key_id(
            probe.verifying_key().as_bytes(),
            b"kubetape/signing-id",
            &newest_signing,
        );
        write_new(
            &self.dir.join(format!("kek-{kek_id}.key")),
            &format!("kubetape-kek-v1 {}\n", hex::encode(*kek_bytes)),
            0o600,
        )?;
        let signing = SigningKey::from_seed(sig_id.clone(), *seed);
        write_new(
            &self.dir.join(format!("signing-{sig_id}.key")),
            &format!("kubetape-ed25519-secret-v1 {}\n", hex::encode(*seed)),
            0o600,
        )?;
        let public = signing.public();
        write_new(
            &self.dir.join(format!("signing-{sig_id}.pub")),
            &public.to_line(),
            0o644,
        )?;
        self.keks.insert(
            kek_id.clone(),
            Kek {
                id: kek_id.clone(),
                key: kek_bytes,
            },
        );
        self.public.insert(sig_id.clone(), public.clone());
        self.signing.insert(sig_id, signing);
        Ok((&self.keks[&kek_id], public))
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The KEK new sessions are wrapped with.
    pub fn current_kek(&self) -> Result<&Kek, KeyError> {
        self.keks
            .values()
            .next_back()
            .ok_or_else(|| KeyError::NoKek(self.dir.clone()))
    }

    /// The key new sessions are signed with.
    pub fn current_signing_key(&self) -> Result<&SigningKey, KeyError> {
        self.signing
            .values()
            .next_back()
            .ok_or_else(|| KeyError::NoSigningKey(self.dir.clone()))
    }

    pub fn signing_key(&self, id: &str) -> Option<&SigningKey> {
        self.signing.get(id)
    }

    pub fn kek(&self, id: &str) -> Result<&Kek, KeyError> {
        self.keks
            .get(id)
            .ok_or_else(|| KeyError::KekMissing(id.to_string()))
    }

    pub fn public_key(&self, id: &str) -> Result<&PublicKey, KeyError> {
        self.public
            .get(id)
            .ok_or_else(|| KeyError::PublicKeyMissing(id.to_string()))
    }

    pub fn kek_ids(&self) -> impl Iterator<Item = &str> {
        self.keks.keys().map(String::as_str)
    }

    pub fn public_keys(&self) -> impl Iterator<Item = &PublicKey> {
        self.public.values()
    }

    /// Destroys KEK `id`: its file is removed and it is forgotten. The current KEK is refused
    /// (new sessions need it). The caller first makes sure nothing needs it any more
    /// (`storage_schema::store::shred::streams_needing_kek`): what only it wraps becomes
    /// unreadable, which is crypto-shredding by another name.
    pub fn destroy_kek(&mut self, id: &str) -> Result<(), KeyError> {
        self.kek(id)?;
        if self.current_kek()?.id() == id {
            return Err(KeyError::BadKeyFile {
                path: self.dir.join(format!("kek-{id}.key")),
                reason: "is the current key-encryption key; rotate first".into(),
            });
        }
        let path = self.dir.join(format!("kek-{id}.key"));
        fs::remove_file(&path).map_err(|source| KeyError::Io {
            dir: path.clone(),
            source,
        })?;
        self.keks.remove(id);
        Ok(())
    }

    /// Unwraps a session's DEK with whichever KEK wrapped it.
    pub fn unwrap_dek(
        &self,
        session: SessionId,
        wrapped: &WrappedKey,
    ) -> Result<DataKey, KeyError> {
        self.kek(&wrapped.kek)?.unwrap_key(session, wrapped)
    }
}

fn read_secret(path: &Path, label: &str) -> Result<Zeroizing<[u8; 32]>, KeyError> {
    let bad = |reason: &str| KeyError::BadKeyFile {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    };
    let meta = fs::metadata(path).map_err(|source| KeyError::Io {
        dir: path.to_path_buf(),
        source,
    })?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(KeyError::InsecurePermissions {
            path: path.to_path_buf(),
            mode,
        });
    }
    let text = Zeroizing::new(fs::read_to_string(path).map_err(|source| KeyError::Io {
        dir: path.to_path_buf(),
        source,
    })?);
    let hexkey = text
        .trim()
        .strip_prefix(label)
        .map(str::trim)
        .ok_or_else(|| bad(&format!("expected `{label} <hex>`")))?;
    let mut out = Zeroizing::new([0u8; 32]);
    hex::decode_to_slice(hexkey, &mut out[..]).map_err(|_| bad("key is not 64 hex digits"))?;
    Ok(out)
}

fn write_new(path: &Path, contents: &str, mode: u32) -> Result<(), KeyError> {
    let io = |source| KeyError::Io {
        dir: path.to_path_buf(),
        source,
    };
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(io)?;
    file.write_all(contents.as_bytes()).map_err(io)?;
    file.sync_all().map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_rotate_and_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys");
        let (ring, created) = Keyring::open_or_init(&path).unwrap();
        assert!(created);
        let first_kek = ring.current_kek().unwrap().id().to_string();
        let (_, again) = Keyring::open_or_init(&path).unwrap();
        assert!(!again);
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o700
        );

        let session = SessionId::new();
        let dek = DataKey::generate().unwrap();
        let wrapped = ring.current_kek().unwrap().wrap(session, &dek).unwrap();

        let mut ring = Keyring::open(&path).unwrap();
        ring.rotate().unwrap();
        let ring = Keyring::open(&path).unwrap();
        assert_eq!(ring.kek_ids().count(), 2);
        assert_ne!(
            ring.current_kek().unwrap().id(),
            first_kek,
            "rotation makes the new key current"
        );
        // Old sessions stay readable after rotation.
        let back = ring.unwrap_dek(session, &wrapped).unwrap();
        assert_eq!(&*back.0, &*dek.0);
        // ...but not under another session's id.
        assert!(matches!(
            ring.unwrap_dek(SessionId::new(), &wrapped),
            Err(KeyError::UnwrapFailed(_))
        ));
    }

    #[test]
    fn rotations_within_one_second_each_become_current() {
        let dir = tempfile::tempdir().unwrap();
        let (mut ring, _) = Keyring::open_or_init(dir.path()).unwrap();
        for _ in 0..8 {
            let (kek, public) = ring.rotate().unwrap();
            let (kek, public) = (kek.id().to_string(), public.id().to_string());
            assert_eq!(ring.current_kek().unwrap().id(), kek);
            assert_eq!(ring.current_signing_key().unwrap().id(), public);
        }
        assert_eq!(Keyring::open(dir.path()).unwrap().kek_ids().count(), 9);
    }

    #[test]
    fn refuses_world_readable_secrets() {
        let dir = tempfile::tempdir().unwrap();
        let (ring, _) = Keyring::open_or_init(dir.path()).unwrap();
        let kek = dir
            .path()
            .join(format!("kek-{}.key", ring.current_kek().unwrap().id()));
        fs::set_permissions(&kek, fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(
            Keyring::open(dir.path()),
            Err(KeyError::InsecurePermissions { .. })
        ));
    }

    #[test]
    fn signatures_are_domain_separated_and_public_lines_round_trip() {
        let key = SigningKey::from_seed("t", [7; 32]);
        let public = PublicKey::from_line(
            &SigningKey::from_seed(format!("x-{}", key.public().fingerprint()), [7; 32])
                .public()
                .to_line(),
        )
        .unwrap();
        let sig = key.sign(b"a", b"msg");
        assert!(public.verify(b"a", b"msg", &sig));
        assert!(!public.verify(b"b", b"msg", &sig));
        assert!(!public.verify(b"a", b"msh", &sig));
        assert!(PublicKey::from_line("kubetape-ed25519-v1 x-00000000 00").is_err());
    }
}
