//! zstd compression contexts shared by every session of a process.
//!
//! A context keeps its workspace (window and match tables: ~30 KiB after a small chunk, MiBs
//! after an 8 MiB one) for as long as it lives. Owned by each session's chunk builder, it was
//! the largest single part of an idle gateway session's memory after the buffers (the idle
//! bench, `cargo bench -p tests --bench idle`), and a bulk session kept a multi-MiB workspace
//! long after its burst. A context is busy only while a chunk is sealed, so a process needs
//! about as many as it seals at once: they wait here, keyed by their parameters, and are
//! borrowed for one seal.

use std::ops::{Deref, DerefMut};
use std::sync::Mutex;

use crate::builder::{FlushPolicy, ZstdTables};
use crate::chunk::ChunkError;

/// Idle contexts kept. A process seals on a few threads at a time; a context returned to a
/// full pool is dropped, which bounds what the pool holds to this many workspaces.
const KEEP: usize = 8;

/// What makes two contexts interchangeable: the parameters set on them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Params {
    level: i32,
    tables: Option<ZstdTables>,
}

impl Params {
    fn of(policy: &FlushPolicy) -> Self {
        Self {
            level: policy.zstd_level,
            tables: policy.zstd_tables,
        }
    }
}

static IDLE: Mutex<Vec<(Params, zstd::bulk::Compressor<'static>)>> = Mutex::new(Vec::new());

/// A context borrowed from the pool; it goes back when dropped.
pub struct Borrowed {
    params: Params,
    compressor: Option<zstd::bulk::Compressor<'static>>,
}

/// A context with `policy`'s parameters: an idle one if there is one, else a new one.
pub fn borrow(policy: &FlushPolicy) -> Result<Borrowed, ChunkError> {
    let params = Params::of(policy);
    let idle = {
        let mut idle = IDLE.lock().unwrap_or_else(|e| e.into_inner());
        idle.iter()
            .rposition(|(p, _)| *p == params)
            .map(|i| idle.swap_remove(i).1)
    };
    let compressor = match idle {
        Some(c) => c,
        None => policy.compressor()?,
    };
    Ok(Borrowed {
        params,
        compressor: Some(compressor),
    })
}

impl std::fmt::Debug for Borrowed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Borrowed")
            .field("params", &self.params)
            .finish_non_exhaustive()
    }
}

impl Deref for Borrowed {
    type Target = zstd::bulk::Compressor<'static>;

    fn deref(&self) -> &Self::Target {
        self.compressor.as_ref().expect("present until dropped")
    }
}

impl DerefMut for Borrowed {
    fn deref_mut(&mut self) -> &mut Self::Target {
        self.compressor.as_mut().expect("present until dropped")
    }
}

impl Drop for Borrowed {
    fn drop(&mut self) {
        let Some(compressor) = self.compressor.take() else {
            return;
        };
        let mut idle = IDLE.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < KEEP {
            idle.push((self.params, compressor));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_returned_context_is_reused_and_keeps_its_parameters() {
        let policy = FlushPolicy {
            zstd_level: 7,
            zstd_tables: None,
            ..FlushPolicy::default()
        };
        let data = b"abcabcabcabcabcabcabcabcabcabcabcabc".repeat(100);
        let once = {
            let mut z = borrow(&policy).unwrap();
            z.compress(&data).unwrap()
        };
        // Same parameters: the same output, from the context that went back.
        let again = borrow(&policy).unwrap().compress(&data).unwrap();
        assert_eq!(once, again);
        assert_eq!(zstd::bulk::decompress(&again, data.len()).unwrap(), data);
        let other = FlushPolicy {
            zstd_level: 1,
            ..policy
        };
        let fast = borrow(&other).unwrap().compress(&data).unwrap();
        assert_eq!(zstd::bulk::decompress(&fast, data.len()).unwrap(), data);
    }

    #[test]
    fn the_pool_keeps_at_most_keep_contexts() {
        let policy = FlushPolicy::default();
        let many: Vec<Borrowed> = (0..KEEP + 4).map(|_| borrow(&policy).unwrap()).collect();
        drop(many);
        assert!(IDLE.lock().unwrap().len() <= KEEP);
    }
}
