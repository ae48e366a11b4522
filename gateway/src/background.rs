//! The recording runtime: a second tokio runtime, at a lower CPU priority, for the work a
//! session does besides relaying — sealing chunks (zstd, AES-GCM, signatures), writing them to
//! the store, and extracting typed commands.
//!
//! Why: on a busy gateway that work comes in bursts (sessions opened together flush together,
//! and every flush of the file store costs an inode allocation that took 30 µs to 1 ms on the
//! test VM). Sharing the relay's threads and priority, a burst of 100 flushes delayed
//! keystroke echoes by tens of milliseconds (`cargo bench -p tests --bench exec`, keystrokes at
//! 100 sessions). At `nice` +10 the kernel runs relay threads first and the recording catches
//! up in the gaps; nothing is dropped, because a recorder that falls behind fills its bounded
//! queue and the relay waits for it (the recorder's back-pressure), so under sustained overload
//! the session slows down rather than the recording losing data.
//!
//! Threads the runtime starts (workers and its blocking pool, which runs the file store's
//! writes) lower their own priority; threads they create inherit it (Linux), which covers the
//! command extractor's thread.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::runtime::{Handle, Runtime};
use tokio::task::JoinHandle;

/// How much lower than the relay the recording runs by default (`nice` +10: the kernel gives
/// it ~10% of a core the relay also wants, all of an idle one).
pub const DEFAULT_NICENESS: u8 = 10;

/// Owns the runtime; dropping it stops the runtime without blocking (it may be dropped from a
/// task of the main runtime, where blocking is not allowed).
#[derive(Debug)]
pub struct Background {
    runtime: Option<Runtime>,
    handle: Handle,
}

impl Background {
    /// Starts `workers` worker threads named `kubetape-rec`, `niceness` steps (at most 19)
    /// below the priority of the thread that starts them.
    pub fn start(workers: usize, niceness: u8) -> std::io::Result<Self> {
        // Relative to this thread, computed once: threads of the runtime's blocking pool are
        // started by its (already lowered) workers and would otherwise go lower still.
        let base = rustix::process::getpriority_process(None).unwrap_or(0);
        let target = (base + i32::from(niceness)).min(19);
        static WARNED: AtomicBool = AtomicBool::new(false);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(workers.max(1))
            .thread_name("kubetape-rec")
            .on_thread_start(move || {
                if niceness == 0 {
                    return;
                }
                let me = rustix::thread::gettid();
                // Best effort: a priority is not a security property, so a refusal (some
                // sandboxes) only costs latency under load; say so once.
                if let Err(e) = rustix::process::setpriority_process(Some(me), target)
                    && !WARNED.swap(true, Ordering::Relaxed)
                {
                    tracing::warn!(error = %e, "cannot lower the recording threads' priority");
                }
            })
            .enable_all()
            .build()?;
        let handle = runtime.handle().clone();
        Ok(Self {
            runtime: Some(runtime),
            handle,
        })
    }

    /// Runs `work` on the recording runtime.
    pub fn spawn<F>(&self, work: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.handle.spawn(work)
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn my_priority() -> i32 {
        rustix::process::getpriority_process(Some(rustix::thread::gettid())).unwrap()
    }

    /// The runtime's workers, its blocking pool (started by lowered workers) and threads they
    /// start all run exactly `niceness` below the starting thread, and that thread is untouched.
    #[test]
    fn threads_run_at_the_lower_priority() {
        let base = my_priority();
        let bg = Background::start(1, DEFAULT_NICENESS).unwrap();
        let seen = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(bg.spawn(async {
                let worker = my_priority();
                let blocking = tokio::task::spawn_blocking(my_priority).await.unwrap();
                let child = std::thread::spawn(my_priority).join().unwrap();
                [worker, blocking, child]
            }))
            .unwrap();
        let expected = (base + i32::from(DEFAULT_NICENESS)).min(19);
        assert_eq!(seen, [expected; 3]);
        assert_eq!(my_priority(), base);
    }

    #[test]
    fn niceness_zero_leaves_priorities_alone() {
        let base = my_priority();
        let bg = Background::start(1, 0).unwrap();
        let seen = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(bg.spawn(async { my_priority() }))
            .unwrap();
        assert_eq!(seen, base);
    }
}
