//! The bundle-level checks, with no store and no keyring: the manifest's signature, every
//! member against the manifest (missing, extra, altered), and `SHA256SUMS` against both. The
//! recordings inside are checked afterwards, as a store, by the ordinary verifier.

use std::collections::BTreeMap;

use storage_schema::PublicKey;

use super::manifest::{Manifest, Member, sha256sums};
use super::reader::ReadBundle;
use super::{KEYS_DIR, MANIFEST, SIGN_DOMAIN, SIGNATURE, SUMS, is_envelope};

/// One thing checked: a member, the signature, the sums.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub subject: String,
    pub ok: bool,
    pub detail: String,
}

impl Finding {
    fn ok(subject: &str, detail: impl Into<String>) -> Self {
        Self {
            subject: subject.into(),
            ok: true,
            detail: detail.into(),
        }
    }

    fn fail(subject: &str, detail: impl Into<String>) -> Self {
        Self {
            subject: subject.into(),
            ok: false,
            detail: detail.into(),
        }
    }
}

/// How the manifest's signer came to be trusted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trust {
    /// The auditor named the key (`--pubkey`).
    Pinned,
    /// The key came in the bundle itself: the signature proves the manifest is whole, not who
    /// made it. Compare the fingerprint with one obtained another way.
    SelfAsserted,
}

/// The outcome of [`check`].
#[derive(Debug, Default)]
pub struct Checked {
    /// The manifest, when it parsed (trust it only if [`Checked::signed_by`] is set).
    pub manifest: Option<Manifest>,
    /// The key whose valid signature the manifest carries, and why it is trusted.
    pub signed_by: Option<(PublicKey, Trust)>,
    pub findings: Vec<Finding>,
    /// The public keys in the bundle (`keys/<id>.pub`) that are intact, by id: the manifest
    /// lists their hashes, so a manifest signed by a trusted key vouches for them.
    pub keys: BTreeMap<String, PublicKey>,
}

impl Checked {
    pub fn passed(&self) -> bool {
        self.signed_by.is_some() && self.findings.iter().all(|f| f.ok)
    }
}

/// Checks `read` against its manifest; `pinned` is the key the auditor trusts to have signed
/// it (without one, the bundle's own copy of the signing key is used, [`Trust::SelfAsserted`]).
pub fn check(read: &ReadBundle, pinned: Option<&PublicKey>) -> Checked {
    let mut out = Checked::default();
    let manifest_bytes = read.kept.get(MANIFEST);
    let manifest = match manifest_bytes.map(|b| Manifest::parse(b)) {
        None => {
            out.findings.push(Finding::fail(MANIFEST, "missing"));
            None
        }
        Some(Err(e)) => {
            out.findings.push(Finding::fail(MANIFEST, e.to_string()));
            None
        }
        Some(Ok(m)) => Some(m),
    };
    let signature: Option<[u8; 64]> = match read.kept.get(SIGNATURE) {
        None => {
            out.findings.push(Finding::fail(SIGNATURE, "missing"));
            None
        }
        Some(sig) => match <[u8; 64]>::try_from(sig.as_slice()) {
            Ok(sig) => Some(sig),
            Err(_) => {
                out.findings.push(Finding::fail(
                    SIGNATURE,
                    format!("{} bytes, not a 64-byte Ed25519 signature", sig.len()),
                ));
                None
            }
        },
    };

    if let Some(m) = &manifest {
        check_members(read, m, &mut out.findings);
        out.keys = intact_keys(read, m, &mut out.findings);
    }

    if let (Some(m), Some(bytes), Some(sig)) = (&manifest, manifest_bytes, signature) {
        let (key, trust) = match pinned {
            Some(k) => (Some(k.clone()), Trust::Pinned),
            None => (out.keys.get(&m.signing_key).cloned(), Trust::SelfAsserted),
        };
        match key {
            None => out.findings.push(Finding::fail(
                SIGNATURE,
                format!(
                    "the manifest names signing key {} but the bundle has no intact keys/{}.pub (give --pubkey)",
                    m.signing_key, m.signing_key
                ),
            )),
            Some(key) if key.verify(SIGN_DOMAIN, bytes, &sig) => {
                let how = match trust {
                    Trust::Pinned => "the key given with --pubkey".to_string(),
                    Trust::SelfAsserted => format!(
                        "SELF-ASSERTED: the key came in the bundle; compare its fingerprint {} with one you obtained \
                         another way, or pin it with --pubkey",
                        key.fingerprint()
                    ),
                };
                out.findings.push(Finding::ok(
                    &format!("{MANIFEST} + {SIGNATURE}"),
                    format!("signature by {} ({how})", key.id()),
                ));
                out.signed_by = Some((key, trust));
            }
            Some(key) => out.findings.push(Finding::fail(
                &format!("{MANIFEST} + {SIGNATURE}"),
                format!(
                    "the signature does not verify with {} {}: manifest.json or manifest.sig was altered, or another key signed it",
                    if trust == Trust::Pinned { "the pinned key" } else { "the bundle's key" },
                    key.id()
                ),
            )),
        }
    }
    out.manifest = manifest;
    out
}

fn check_members(read: &ReadBundle, manifest: &Manifest, findings: &mut Vec<Finding>) {
    for m in &manifest.members {
        findings.push(match read.members.get(&m.path) {
            None => Finding::fail(
                &m.path,
                "MISSING: listed in the manifest, not in the bundle",
            ),
            Some(seen) if seen.size != m.size => Finding::fail(
                &m.path,
                format!("ALTERED: {} bytes, the manifest says {}", seen.size, m.size),
            ),
            Some(seen) if seen.sha256 != m.sha256 => Finding::fail(
                &m.path,
                format!(
                    "ALTERED: SHA-256 {}, the manifest says {}",
                    seen.sha256, m.sha256
                ),
            ),
            Some(_) => Finding::ok(&m.path, format!("{} bytes, SHA-256 matches", m.size)),
        });
    }
    let listed: std::collections::HashSet<&str> =
        manifest.members.iter().map(|m| m.path.as_str()).collect();
    for path in read.members.keys() {
        if !listed.contains(path.as_str()) && !is_envelope(path) {
            findings.push(Finding::fail(
                path,
                "EXTRA: in the bundle, not in the manifest",
            ));
        }
    }
    // SHA256SUMS: what the manifest lists, then the manifest and its signature as they are.
    let envelope: Vec<Member> = [MANIFEST, SIGNATURE]
        .iter()
        .filter_map(|p| {
            read.members.get(*p).map(|s| Member {
                path: p.to_string(),
                size: s.size,
                sha256: s.sha256.clone(),
            })
        })
        .collect();
    let expected = sha256sums(manifest.members.iter().chain(envelope.iter()));
    findings.push(match read.kept.get(SUMS) {
        None => Finding::fail(SUMS, "MISSING"),
        Some(sums) if sums.as_slice() == expected.as_bytes() => {
            Finding::ok(SUMS, "agrees with the manifest")
        }
        Some(_) => Finding::fail(
            SUMS,
            "ALTERED: does not agree with the manifest and the members",
        ),
    });
}

/// The intact `keys/<id>.pub` members, parsed; a key file whose name is not its key's id is
/// reported.
fn intact_keys(
    read: &ReadBundle,
    manifest: &Manifest,
    findings: &mut Vec<Finding>,
) -> BTreeMap<String, PublicKey> {
    let mut keys = BTreeMap::new();
    for m in &manifest.members {
        let Some(id) = m
            .path
            .strip_prefix(KEYS_DIR)
            .and_then(|r| r.strip_prefix('/'))
            .and_then(|r| r.strip_suffix(".pub"))
        else {
            continue;
        };
        let intact = read
            .members
            .get(&m.path)
            .is_some_and(|s| s.size == m.size && s.sha256 == m.sha256);
        let Some(bytes) = read.kept.get(&m.path).filter(|_| intact) else {
            continue;
        };
        match std::str::from_utf8(bytes)
            .map_err(|e| e.to_string())
            .and_then(|t| PublicKey::from_line(t.trim()))
        {
            Ok(key) if key.id() == id => {
                keys.insert(id.to_string(), key);
            }
            Ok(key) => findings.push(Finding::fail(
                &m.path,
                format!("holds key {}, not {id}", key.id()),
            )),
            Err(e) => findings.push(Finding::fail(&m.path, format!("not a public key: {e}"))),
        }
    }
    keys
}
