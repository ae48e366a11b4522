//! The pod-process guardian: a tiny helper process that outlives the sandbox just long enough to
//! kill every pod process group when the sandbox is gone, however it ended. Ctrl-C and SIGTERM
//! already clean up (shutdown kills each group), but SIGKILL (of `kubetape-sandbox`, or of a
//! program running the sandbox in-process such as the gateway's quickstart) runs no code of ours,
//! and then every pod process used to survive: 125 stray pod shells after a day of testing.
//!
//! Why a helper process, not a parent-death signal: `PR_SET_PDEATHSIG` must be set in the child
//! between fork and exec (a `pre_exec` hook, which is `unsafe`, forbidden here), it fires when
//! the *thread* that forked exits (tokio's blocking-pool threads come and go), and it reaches only
//! the direct child, not the background processes a pod's shell started. Instead:
//!
//! - every pod process leads its own process group (`process_group(0)` for pipes, `setsid` for a
//!   PTY), so one `kill(-pgid)` reaches its grandchildren too;
//! - the guardian (`/bin/sh` running [`SCRIPT`], its own process group, deaf to INT/TERM/HUP so a
//!   terminal's Ctrl-C does not kill it before the sandbox is done) reads `+ PGID` / `- PGID`
//!   lines on a pipe whose only writer is this process (Rust opens every fd close-on-exec, so no
//!   child inherits it);
//! - when this process dies in any way the kernel closes the pipe, the guardian reads EOF and
//!   SIGKILLs every group still registered, then exits.
//!
//! A group is registered right after its leader started and unregistered only after the group
//! was killed, so the only window is the instant between `spawn` and the `+` line. One guardian
//! serves every sandbox in the process (tests start many); it starts with the first pod process.

use std::io::Write as _;
use std::os::unix::process::CommandExt as _;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Mutex, OnceLock};

/// The guardian's program. Group ids are kept as a space-separated list; removal rebuilds it
/// (only live processes are listed, so it stays short).
pub(crate) const SCRIPT: &str = r#"trap '' INT TERM HUP QUIT PIPE
groups=' '
while read -r op pg; do
  case "$op" in
    +) groups="$groups$pg " ;;
    -) rest=' '; for g in $groups; do [ "$g" = "$pg" ] || rest="$rest$g "; done; groups=$rest ;;
  esac
done
for g in $groups; do kill -s KILL -- "-$g" 2>/dev/null; done
"#;

#[derive(Debug)]
struct Guardian {
    /// Kept so the process is not reaped behind our back; it is never waited for (it exits only
    /// after this process is gone).
    _child: Child,
    pipe: Option<ChildStdin>,
}

static GUARDIAN: OnceLock<Option<Mutex<Guardian>>> = OnceLock::new();

fn guardian() -> Option<&'static Mutex<Guardian>> {
    GUARDIAN
        .get_or_init(|| {
            let started = Command::new("/bin/sh")
                .args(["-c", SCRIPT])
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .process_group(0)
                .spawn();
            match started {
                Ok(mut child) => {
                    tracing::debug!(pid = child.id(), "pod-process guardian started");
                    let pipe = child.stdin.take();
                    Some(Mutex::new(Guardian {
                        _child: child,
                        pipe,
                    }))
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot start the pod-process guardian; pod processes may outlive a killed sandbox");
                    None
                }
            }
        })
        .as_ref()
}

fn send(op: char, pgid: i32) {
    let Some(g) = guardian() else { return };
    let mut g = g.lock().unwrap_or_else(|p| p.into_inner());
    let Some(pipe) = g.pipe.as_mut() else { return };
    // A short line into a pipe the guardian drains: does not block in practice.
    if let Err(e) = pipe.write_all(format!("{op} {pgid}\n").as_bytes()) {
        tracing::warn!(error = %e, "the pod-process guardian is gone");
        g.pipe = None;
    }
}

/// Asks the guardian to kill process group `pgid` if this process dies before [`release`].
pub(crate) fn watch(pgid: i32) {
    send('+', pgid);
}

/// The group is gone (killed by us): the guardian forgets it, so a later process that reuses
/// the id is never touched.
pub(crate) fn release(pgid: i32) {
    send('-', pgid);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    fn alive(pid: i32) -> bool {
        // A zombie still has a /proc entry; it counts as gone.
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|s| {
                !s.rsplit(')')
                    .next()
                    .unwrap_or("")
                    .trim_start()
                    .starts_with('Z')
            })
            .unwrap_or(false)
    }

    /// The script on its own: kills registered groups at EOF, spares released ones.
    #[test]
    fn script_kills_registered_groups_at_eof() {
        let spawn_group = || {
            Command::new("sh")
                .args(["-c", "sleep 3600 & exec sleep 3601"])
                .process_group(0)
                .spawn()
                .unwrap()
        };
        let (mut watched, mut released) = (spawn_group(), spawn_group());
        let mut g = Command::new("/bin/sh")
            .args(["-c", SCRIPT])
            .stdin(Stdio::piped())
            .process_group(0)
            .spawn()
            .unwrap();
        let (w, r) = (watched.id() as i32, released.id() as i32);
        let mut pipe = g.stdin.take().unwrap();
        write!(pipe, "+ {w}\n+ {r}\n+ 999999\n- {r}\n- 999999\n").unwrap();
        drop(pipe);
        assert!(g.wait().unwrap().success());
        let deadline = Instant::now() + Duration::from_secs(10);
        while alive(w) {
            assert!(Instant::now() < deadline, "watched group survived");
            let _ = watched.try_wait();
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = watched.wait();
        assert!(alive(r), "a released group was killed");
        let _ = rustix::process::kill_process_group(
            rustix::process::Pid::from_raw(r).unwrap(),
            rustix::process::Signal::KILL,
        );
        let _ = released.wait();
    }
}
