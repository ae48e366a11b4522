//! The manifest: what a bundle holds and how it was made, and the hashing around it.

use sha2::{Digest, Sha256};

use super::{FORMAT, is_envelope};

/// The most a manifest may take: a bundle of thousands of sessions has a manifest of a few
/// MiB (one line per chunk); anything far beyond is not one of ours.
pub const MAX_MANIFEST_BYTES: usize = 256 << 20;

/// A bundle's manifest (`manifest.json`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Manifest {
    /// [`FORMAT`].
    pub format: String,
    /// When the bundle was made (RFC 3339, UTC).
    pub created_at: String,
    pub created_by: Creator,
    /// `kubetape --version` of the exporter.
    pub kubetape_version: String,
    /// The store the recordings were read from (its URL).
    pub store: String,
    /// The selection as it was given.
    pub selection: Selection,
    /// The id of the key that signed this manifest (`keys/<id>.pub` in the bundle).
    pub signing_key: String,
    /// The sessions selected.
    pub sessions: Vec<SessionEntry>,
    /// The gateways' audit streams holding records about them.
    pub audit_streams: Vec<StreamEntry>,
    /// Every member but the manifest, its signature and `SHA256SUMS`, sorted by path.
    pub members: Vec<Member>,
}

/// Who made the bundle: as the reads log records a reader (`--as` or the login, the login, the
/// host, the keyring's signing-key fingerprint).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Creator {
    pub reader: String,
    pub login: String,
    pub host: String,
    pub keyring: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// The selection criteria, exactly as given on the command line.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Selection {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sessions: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub search: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jit: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jit_reason: Option<String>,
}

/// One selected session.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SessionEntry {
    pub id: String,
    pub short: String,
    /// Its directory in the store (`sessions/<id>`): its objects are `store/<dir>/…`.
    pub dir: String,
    pub kind: String,
    pub user: String,
    pub target: String,
    pub started_at: String,
    /// The JIT grant it was opened under.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grant: Option<String>,
    /// The shred record's description, for a crypto-shredded session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shredded: Option<String>,
    /// Readable renderings of it in the bundle.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub renderings: Vec<String>,
}

/// One audit stream.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StreamEntry {
    pub id: String,
    /// Its directory in the store (`audit/<id>`, or `sessions/<id>` in older stores).
    pub dir: String,
}

/// One member: path in the tar, size, SHA-256 (lowercase hex).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub struct Member {
    pub path: String,
    pub size: u64,
    pub sha256: String,
}

impl Member {
    pub fn of(path: &str, bytes: &[u8]) -> Self {
        Self {
            path: path.to_string(),
            size: bytes.len() as u64,
            sha256: sha256_hex(bytes),
        }
    }
}

/// SHA-256 of `bytes`, lowercase hex (what `sha256sum` prints).
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Why a manifest is not one this version can use.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("manifest.json is larger than {MAX_MANIFEST_BYTES} bytes")]
    TooLarge,
    #[error("manifest.json is not a bundle manifest: {0}")]
    Json(#[from] serde_json::Error),
    #[error("manifest.json has format {0:?}, not {FORMAT:?} (a newer kubetape wrote it?)")]
    Format(String),
    #[error("manifest.json lists {0:?}: {1}")]
    BadMember(String, String),
}

impl Manifest {
    /// The bytes written to `manifest.json` (and signed).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut bytes = serde_json::to_vec_pretty(self).expect("a manifest serializes");
        bytes.push(b'\n');
        bytes
    }

    /// Parses and checks the shape of `manifest.json`: format, member paths safe and distinct,
    /// hashes well-formed. Says nothing of whether it is authentic (the signature does).
    pub fn parse(bytes: &[u8]) -> Result<Self, ManifestError> {
        if bytes.len() > MAX_MANIFEST_BYTES {
            return Err(ManifestError::TooLarge);
        }
        let manifest: Manifest = serde_json::from_slice(bytes)?;
        if manifest.format != FORMAT {
            return Err(ManifestError::Format(manifest.format));
        }
        let mut seen = std::collections::HashSet::new();
        for m in &manifest.members {
            let bad = |why: &str| ManifestError::BadMember(m.path.clone(), why.to_string());
            check_path(&m.path).map_err(|e| bad(&e))?;
            if is_envelope(&m.path) {
                return Err(bad("the envelope is not listed"));
            }
            if !seen.insert(m.path.as_str()) {
                return Err(bad("listed twice"));
            }
            if m.sha256.len() != 64
                || !m
                    .sha256
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
            {
                return Err(bad("its SHA-256 is not 64 lowercase hex digits"));
            }
        }
        Ok(manifest)
    }
}

/// The longest member path accepted.
pub const MAX_PATH: usize = 1024;

/// A member path a bundle may hold: relative, `/`-separated normal components (no `.`, `..`,
/// empty component, backslash or control character), at most [`MAX_PATH`] bytes. Extraction
/// joins it to a fresh directory, so this is what keeps it inside.
pub fn check_path(path: &str) -> Result<(), String> {
    if path.is_empty() || path.len() > MAX_PATH {
        return Err(format!("path length {} outside 1..={MAX_PATH}", path.len()));
    }
    if path.starts_with('/') {
        return Err("absolute path".into());
    }
    if path.chars().any(|c| c.is_control() || c == '\\') {
        return Err("control character or backslash in the path".into());
    }
    for part in path.split('/') {
        match part {
            "" => return Err("empty path component".into()),
            "." | ".." => return Err(format!("path component {part:?}")),
            _ => {}
        }
    }
    Ok(())
}

/// `SHA256SUMS` in coreutils form: `<hex>  <path>` per line, in the order given.
pub fn sha256sums<'a>(members: impl IntoIterator<Item = &'a Member>) -> String {
    members
        .into_iter()
        .map(|m| format!("{}  {}\n", m.sha256, m.path))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(members: Vec<Member>) -> Manifest {
        Manifest {
            format: FORMAT.into(),
            created_at: "2026-12-04T00:00:00Z".into(),
            created_by: Creator::default(),
            kubetape_version: "0".into(),
            store: "file:///s".into(),
            selection: Selection {
                jit: Some("g".into()),
                ..Selection::default()
            },
            signing_key: "k".into(),
            sessions: vec![],
            audit_streams: vec![],
            members,
        }
    }

    #[test]
    fn hashes_are_sha256_sums_coreutils_reads() {
        // sha256sum of "abc" (FIPS 180-2 test vector).
        let m = Member::of("a b/c", b"abc");
        assert_eq!(
            m.sha256,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(m.size, 3);
        assert_eq!(
            sha256sums([&m, &Member::of("e", b"")]),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad  a b/c\n\
             e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855  e\n"
        );
    }

    #[test]
    fn a_manifest_round_trips_and_bad_ones_are_refused() {
        let good = manifest(vec![
            Member::of("store/x", b"1"),
            Member::of("README.txt", b""),
        ]);
        assert_eq!(Manifest::parse(&good.to_bytes()).unwrap(), good);

        let refused = |m: Manifest| Manifest::parse(&m.to_bytes()).unwrap_err().to_string();
        let mut other = good.clone();
        other.format = "kubetape-bundle/v9".into();
        assert!(refused(other).contains("format"));
        for (path, why) in [
            ("/etc/passwd", "absolute"),
            ("store/../x", "\"..\""),
            ("store//x", "empty"),
            ("manifest.sig", "envelope"),
            ("a\\b", "backslash"),
        ] {
            let m = manifest(vec![Member::of(path, b"")]);
            assert!(refused(m).contains(why), "{path}");
        }
        let twice = manifest(vec![Member::of("a", b""), Member::of("a", b"x")]);
        assert!(refused(twice).contains("listed twice"));
        let mut upper = manifest(vec![Member::of("a", b"")]);
        upper.members[0].sha256 = upper.members[0].sha256.to_uppercase();
        assert!(refused(upper).contains("hex"));
        assert!(Manifest::parse(b"{}").is_err());
        assert!(Manifest::parse(b"\xff").is_err());
    }
}
