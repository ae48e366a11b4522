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

use crate::chunk::ChunkError;

/// Match-finder table sizes (log2 of entries) for zstd's double-fast strategy (levels 2-4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ZstdTables {
    pub hash_log: u32,
    pub chain_log: u32,
    /// How far back a match may reach (log2 bytes). Level 3's own is 2 MiB; within an 8 MiB
    /// chunk that made zstd ~15% slower than on the 256 KiB chunks it was tuned on (matches
    /// searched in history long evicted from cache) for 5% smaller output. 2^18 (256 KiB)
    /// keeps the speed of 256 KiB chunks and the ratio they had, and bounds a reader's window.
    pub window_log: u32,
}

/// A new context with these parameters (`tables`: `None` for the level's own).
pub fn compressor(
    level: i32,
    tables: Option<ZstdTables>,
) -> Result<zstd::bulk::Compressor<'static>, ChunkError> {
    let bad = |e: std::io::Error| ChunkError::Compress(e.to_string());
    let mut compressor = zstd::bulk::Compressor::new(level).map_err(bad)?;
    if let Some(tables) = tables {
        use zstd::zstd_safe::CParameter;
        compressor
            .set_parameter(CParameter::HashLog(tables.hash_log))
            .map_err(bad)?;
        compressor
            .set_parameter(CParameter::ChainLog(tables.chain_log))
            .map_err(bad)?;
        compressor
            .set_parameter(CParameter::WindowLog(tables.window_log))
            .map_err(bad)?;
    }
    Ok(compressor)
}
/// Idle contexts kept. A process seals on a few threads at a time; a context returned to a
/// full pool is dropped, which bounds what the pool holds to this many workspaces.
const KEEP: usize = 8;

/// What makes two contexts interchangeable: the parameters set on them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Params {
    level: i32,
    tables: Option<ZstdTables>,
}

static IDLE: Mutex<Vec<(Params, zstd::bulk::Compressor<'static>)>> = Mutex::new(Vec::new());

/// A context borrowed from the pool; it goes back when dropped.
pub struct Borrowed {
    params: Params,
    compressor: Option<zstd::bulk::Compressor<'static>>,
}

/// A context with these parameters: an idle one if there is one, else a new one.
pub fn borrow(level: i32, tables: Option<ZstdTables>) -> Result<Borrowed, ChunkError> {
    let params = Params { level, tables };
    let idle = {
        let mut idle = IDLE.lock().unwrap_or_else(|e| e.into_inner());
        idle.iter()
            .rposition(|(p, _)| *p == params)
            .map(|i| idle.swap_remove(i).1)
    };
    let compressor = match idle {
        Some(c) => c,
        None => compressor(level, tables)?,
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
        let data = b"abcabcabcabcabcabcabcabcabcabcabcabc".repeat(100);
        let once = {
            let mut z = borrow(7, None).unwrap();
            z.compress(&data).unwrap()
        };
        // Same parameters: the same output, from the context that went back.
        let again = borrow(7, None).unwrap().compress(&data).unwrap();
        assert_eq!(once, again);
        assert_eq!(zstd::bulk::decompress(&again, data.len()).unwrap(), data);
        let fast = borrow(1, None).unwrap().compress(&data).unwrap();
        assert_eq!(zstd::bulk::decompress(&fast, data.len()).unwrap(), data);
    }

    #[test]
    fn the_pool_keeps_at_most_keep_contexts() {
        let tables = Some(ZstdTables {
            hash_log: 16,
            chain_log: 12,
            window_log: 18,
        });
        let many: Vec<Borrowed> = (0..KEEP + 4).map(|_| borrow(3, tables).unwrap()).collect();
        drop(many);
        assert!(IDLE.lock().unwrap().len() <= KEEP);
    }
}
