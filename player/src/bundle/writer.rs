//! Writing a bundle: members streamed into the tar as they are read, each hashed on the way;
//! then the envelope (manifest, signature, sums) last, once every member is known.

use std::collections::BTreeSet;
use std::io::Write;

use storage_schema::SigningKey;

use super::manifest::{Manifest, Member, check_path, sha256sums};
use super::{BundleError, MANIFEST, SIGN_DOMAIN, SIGNATURE, SUMS, is_envelope};

/// A bundle being written into `W` (a temporary file beside the output, renamed by the
/// caller once [`BundleWriter::finish`] returns).
pub struct BundleWriter<W: Write> {
    tar: tar::Builder<W>,
    members: Vec<Member>,
    paths: BTreeSet<String>,
    mtime: u64,
}

impl<W: Write> std::fmt::Debug for BundleWriter<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BundleWriter")
            .field("members", &self.members.len())
            .finish_non_exhaustive()
    }
}

impl<W: Write> BundleWriter<W> {
    /// `mtime` (seconds since the epoch) is every member's modification time: the bundle's
    /// creation, not the objects' (the store does not keep one that means anything).
    pub fn new(out: W, mtime: u64) -> Self {
        let mut tar = tar::Builder::new(out);
        tar.mode(tar::HeaderMode::Deterministic);
        Self {
            tar,
            members: Vec::new(),
            paths: BTreeSet::new(),
            mtime,
        }
    }

    /// Adds a member listed in the manifest. Paths must be safe ([`check_path`]), distinct, and
    /// not the envelope's.
    pub fn add(&mut self, path: &str, bytes: &[u8]) -> Result<(), BundleError> {
        let bad = |reason: &str| BundleError::Member {
            path: path.to_string(),
            reason: reason.to_string(),
        };
        check_path(path).map_err(|e| bad(&e))?;
        if is_envelope(path) {
            return Err(bad("reserved for the envelope"));
        }
        if !self.paths.insert(path.to_string()) {
            return Err(bad("added twice"));
        }
        self.append(path, bytes)?;
        self.members.push(Member::of(path, bytes));
        Ok(())
    }

    /// Whether `path` was added.
    pub fn contains(&self, path: &str) -> bool {
        self.paths.contains(path)
    }

    fn append(&mut self, path: &str, bytes: &[u8]) -> Result<(), BundleError> {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Regular);
        header.set_size(bytes.len() as u64);
        header.set_mode(0o644);
        header.set_mtime(self.mtime);
        header.set_uid(0);
        header.set_gid(0);
        self.tar.append_data(&mut header, path, bytes)?;
        Ok(())
    }

    /// Completes the bundle: `manifest` gets the member list (sorted by path), is written and
    /// signed by `key`, and `SHA256SUMS` covers every member, the manifest and the signature.
    /// Returns the manifest as written and the output.
    pub fn finish(
        mut self,
        mut manifest: Manifest,
        key: &SigningKey,
    ) -> Result<(Manifest, W), BundleError> {
        let mut members = std::mem::take(&mut self.members);
        members.sort();
        manifest.signing_key = key.id().to_string();
        manifest.members = members;
        let bytes = manifest.to_bytes();
        let signature = key.sign(SIGN_DOMAIN, &bytes);
        self.append(MANIFEST, &bytes)?;
        self.append(SIGNATURE, &signature)?;
        let envelope = [
            Member::of(MANIFEST, &bytes),
            Member::of(SIGNATURE, &signature),
        ];
        let sums = sha256sums(manifest.members.iter().chain(envelope.iter()));
        self.append(SUMS, sums.as_bytes())?;
        let out = self.tar.into_inner()?;
        Ok((manifest, out))
    }
}
