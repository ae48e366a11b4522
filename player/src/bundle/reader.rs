//! Reading a bundle: outside input, parsed defensively. Every entry must be a regular file with
//! a safe, distinct path ([`check_path`]); links, directories, devices and anything else are
//! refused, as are archives past the [`Limits`]. Members are hashed as they stream past;
//! `store/…` members can be extracted into a fresh directory (for the store-level checks), and
//! the small members the checks read (envelope, keys) are kept in memory.

use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::path::Path;

use sha2::{Digest, Sha256};

use super::manifest::{MAX_MANIFEST_BYTES, check_path};
use super::{BundleError, KEYS_DIR, MANIFEST, SIGNATURE, STORE_DIR, SUMS};

/// Bounds on what a bundle may be.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_members: usize,
    pub max_member_bytes: u64,
    pub max_total_bytes: u64,
}

impl Default for Limits {
    /// A recording chunk is at most a few MiB; a bundle of a year of a team's sessions is tens
    /// of GiB at most.
    fn default() -> Self {
        Self {
            max_members: 1_000_000,
            max_member_bytes: 1 << 30,
            max_total_bytes: 256 << 30,
        }
    }
}

/// The most a kept member (envelope, key) may take in memory; the manifest has its own bound.
const MAX_KEPT_BYTES: u64 = 64 << 10;

/// One member as read: its size and SHA-256 (lowercase hex).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    pub size: u64,
    pub sha256: String,
}

/// What was read from a bundle.
#[derive(Debug, Default)]
pub struct ReadBundle {
    /// Every member, by path.
    pub members: BTreeMap<String, Seen>,
    /// The contents of the envelope and the keys (`manifest.json`, `manifest.sig`,
    /// `SHA256SUMS`, `keys/…`), by path.
    pub kept: BTreeMap<String, Vec<u8>>,
}

fn kept_limit(path: &str) -> Option<u64> {
    if path == MANIFEST {
        Some(MAX_MANIFEST_BYTES as u64)
    } else if path == SIGNATURE {
        Some(MAX_KEPT_BYTES)
    } else if path == SUMS {
        Some(MAX_MANIFEST_BYTES as u64)
    } else if path
        .strip_prefix(KEYS_DIR)
        .is_some_and(|rest| rest.starts_with('/'))
    {
        Some(MAX_KEPT_BYTES)
    } else {
        None
    }
}

/// Reads a bundle from `input`; with `extract_to` (an empty directory), writes its `store/…`
/// members there under the same relative paths.
pub fn read(
    input: impl Read,
    extract_to: Option<&Path>,
    limits: &Limits,
) -> Result<ReadBundle, BundleError> {
    let mut archive = tar::Archive::new(input);
    let mut out = ReadBundle::default();
    let mut total = 0u64;
    let tar_err = |e: io::Error| BundleError::Tar(e.to_string());
    for entry in archive.entries().map_err(tar_err)? {
        let mut entry = entry.map_err(tar_err)?;
        let raw = entry.path_bytes().into_owned();
        let path = String::from_utf8(raw.clone()).map_err(|_| BundleError::Member {
            path: String::from_utf8_lossy(&raw).into_owned(),
            reason: "the path is not UTF-8".into(),
        })?;
        let bad = |reason: String| BundleError::Member {
            path: path.clone(),
            reason,
        };
        let kind = entry.header().entry_type();
        if !matches!(kind, tar::EntryType::Regular | tar::EntryType::Continuous) {
            return Err(bad(format!(
                "not a regular file ({kind:?}): a bundle holds only files"
            )));
        }
        check_path(&path).map_err(bad)?;
        if out.members.contains_key(&path) {
            return Err(bad("appears twice in the archive".into()));
        }
        if out.members.len() >= limits.max_members {
            return Err(BundleError::TooManyMembers(limits.max_members));
        }
        let size = entry.header().size().map_err(tar_err)?;
        if size > limits.max_member_bytes {
            return Err(bad(format!(
                "{size} bytes, more than {} allowed",
                limits.max_member_bytes
            )));
        }
        total = total.saturating_add(size);
        if total > limits.max_total_bytes {
            return Err(BundleError::TooLarge(limits.max_total_bytes));
        }
        let keep = kept_limit(&path);
        if keep.is_some_and(|max| size > max) {
            return Err(bad(format!("{size} bytes, too large for what it is")));
        }
        let store_rel = path
            .strip_prefix(STORE_DIR)
            .and_then(|rest| rest.strip_prefix('/'));
        let mut file = match (extract_to, store_rel) {
            (Some(dir), Some(rel)) => {
                let dest = dir.join(rel);
                if let Some(parent) = dest.parent() {
                    std::fs::create_dir_all(parent)?;
                }
                // create_new: a path that somehow exists already is never overwritten.
                Some(
                    std::fs::File::options()
                        .write(true)
                        .create_new(true)
                        .open(&dest)?,
                )
            }
            _ => None,
        };
        let mut hasher = Sha256::new();
        let mut kept = keep.map(|_| Vec::with_capacity(size.min(MAX_KEPT_BYTES) as usize));
        let mut buf = vec![0u8; 64 << 10];
        let mut seen = 0u64;
        let mut limited = (&mut entry).take(size);
        loop {
            let n = limited.read(&mut buf).map_err(tar_err)?;
            if n == 0 {
                break;
            }
            seen += n as u64;
            hasher.update(&buf[..n]);
            if let Some(f) = file.as_mut() {
                f.write_all(&buf[..n])?;
            }
            if let Some(k) = kept.as_mut() {
                k.extend_from_slice(&buf[..n]);
            }
        }
        if seen != size {
            return Err(bad(format!(
                "the archive ends inside it ({seen} of {size} bytes)"
            )));
        }
        if let Some(f) = file {
            f.sync_all()?;
        }
        if let Some(k) = kept {
            out.kept.insert(path.clone(), k);
        }
        out.members.insert(
            path,
            Seen {
                size,
                sha256: hex::encode(hasher.finalize()),
            },
        );
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tar_of(entries: &[(&str, tar::EntryType, &[u8])]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (path, kind, data) in entries {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(*kind);
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            if *kind == tar::EntryType::Symlink {
                h.set_size(0);
                b.append_link(&mut h, path, "/etc/passwd").unwrap();
            } else {
                b.append_data(&mut h, path, *data).unwrap();
            }
        }
        b.into_inner().unwrap()
    }

    /// A path the tar crate's own setters refuse: written into the raw header.
    fn raw_tar(path: &[u8]) -> Vec<u8> {
        let mut h = tar::Header::new_old();
        h.as_old_mut().name[..path.len()].copy_from_slice(path);
        h.set_size(1);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        h.set_cksum();
        let mut out = h.as_bytes().to_vec();
        out.extend_from_slice(&[b'x'; 512]);
        out.extend_from_slice(&[0; 1024]);
        out
    }

    fn refusal(bytes: &[u8]) -> String {
        read(bytes, None, &Limits::default())
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn members_are_hashed_kept_and_extracted() {
        let bytes = tar_of(&[
            ("store/sessions/a/meta.json", tar::EntryType::Regular, b"{}"),
            ("manifest.json", tar::EntryType::Regular, b"abc"),
            ("renderings/a.txt", tar::EntryType::Regular, b"hello"),
        ]);
        let dir = tempfile::tempdir().unwrap();
        let read = read(&bytes[..], Some(dir.path()), &Limits::default()).unwrap();
        assert_eq!(read.members.len(), 3);
        assert_eq!(
            read.members["manifest.json"].sha256,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(read.kept["manifest.json"], b"abc");
        assert!(!read.kept.contains_key("renderings/a.txt"));
        assert_eq!(
            std::fs::read(dir.path().join("sessions/a/meta.json")).unwrap(),
            b"{}"
        );
        assert!(
            !dir.path().join("renderings").exists(),
            "only store/ is extracted"
        );
    }

    #[test]
    fn links_dirs_duplicates_and_escapes_are_refused() {
        let link = tar_of(&[("store/x", tar::EntryType::Symlink, b"")]);
        assert!(
            refusal(&link).contains("not a regular file"),
            "{}",
            refusal(&link)
        );
        let dir = tar_of(&[("store", tar::EntryType::Directory, b"")]);
        assert!(refusal(&dir).contains("not a regular file"));
        let twice = tar_of(&[
            ("a", tar::EntryType::Regular, b"1"),
            ("a", tar::EntryType::Regular, b"2"),
        ]);
        assert!(refusal(&twice).contains("appears twice"));
        assert!(refusal(&raw_tar(b"../evil")).contains("\"..\""));
        assert!(refusal(&raw_tar(b"/etc/evil")).contains("absolute"));
        assert!(refusal(&raw_tar(b"a/./b")).contains("\".\""));
        assert!(refusal(&raw_tar(b"\xffname")).contains("not UTF-8"));
    }

    #[test]
    fn limits_and_truncation_are_enforced() {
        let bytes = tar_of(&[
            ("a", tar::EntryType::Regular, b"12345"),
            ("b", tar::EntryType::Regular, b"6"),
        ]);
        let small = |l: Limits| read(&bytes[..], None, &l).unwrap_err().to_string();
        let base = Limits::default();
        assert!(
            small(Limits {
                max_members: 1,
                ..base
            })
            .contains("more than 1 members")
        );
        assert!(
            small(Limits {
                max_member_bytes: 4,
                ..base
            })
            .contains("more than 4 allowed")
        );
        assert!(
            small(Limits {
                max_total_bytes: 5,
                ..base
            })
            .contains("more than 5 bytes")
        );
        let cut = &bytes[..512 + 3];
        assert!(read(cut, None, &base).is_err());
        let sig = tar_of(&[("manifest.sig", tar::EntryType::Regular, &[0u8; 70 << 10])]);
        assert!(refusal(&sig).contains("too large"));
    }
}
