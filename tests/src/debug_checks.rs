//! `kubectl debug -it demo --image=busybox --target=shell -- sh` in a real terminal (tmux), as
//! a person runs it: the attach notice, a prompt, a command and its output, `exit 3` and
//! kubectl's own end (a non-zero exit of the attached process is reported, then kubectl falls
//! back to the logs and exits 0, as against any cluster).

use std::path::Path;

use test_support::Tmux;

use crate::Kubectl;

/// Runs it with `bin` (kubectl `version`) and `kubeconfig`, `home` as HOME; panics unless it
/// went as a person would expect.
pub fn debug_it(version: Kubectl, bin: &Path, kubeconfig: &Path, home: &Path) {
    let tmux = Tmux::new(&format!("debug-{version:?}"));
    let shell = format!(
        "env HOME={home} {bin} --kubeconfig {kc} --cache-dir {home}/.kube/cache debug -it demo --image=busybox --target=shell -- sh",
        home = home.display(),
        bin = bin.display(),
        kc = kubeconfig.display(),
    );
    tmux.window("d", 120, 40, &shell);
    tmux.wait("d", "the attach notice", |s| {
        s.contains("If you don't see a command prompt, try pressing enter.")
    });
    tmux.keys("d", &["Enter"]);
    tmux.send("d", "echo dbg-$((6*7)) $(busybox | head -1 | cut -c1-7)");
    tmux.wait_for("d", "dbg-42 BusyBox");
    tmux.send("d", "exit 3");
    let screen = tmux.wait("d", "kubectl to exit", |s| s.contains("EXIT="));
    assert!(
        screen.contains("command terminated with exit code 3"),
        "{version:?}:\n{screen}"
    );
    assert!(screen.contains("EXIT=0"), "{version:?}:\n{screen}");
}
