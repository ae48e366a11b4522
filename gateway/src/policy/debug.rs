//! A role's limits on `kubectl debug` (`[roles.debug]` in the policy file), and the check of a
//! request's [`Spec`] (read by [`crate::debug::spec`]) against them. Policy data, so it lives
//! with the policy; the request handling is [`crate::debug`]'s.
//!
//! ```toml
//! [[roles]]
//! name = "developer"
//! # … rules granting patch on pods/ephemeralcontainers (and create on pods for --copy-to) …
//! [roles.debug]
//! images = ["busybox", "busybox:*"]
//! profiles = ["legacy", "general", "baseline", "restricted"]   # the default
//! copy = true          # kubectl debug --copy-to (default false)
//! node = false         # kubectl debug node/NAME (default false)
//! ```
//! A role without `[roles.debug]` allows no debug container (`debug = false`), whatever its
//! rules say: the rules decide *whether* a verb is allowed, these limits decide *what* may run.
//! A role that has the table also limits every pod it allows to be created, by the same
//! images and privileges: the gateway cannot tell a `--copy-to` pod from any other new pod.
//!
//! Profiles are kubectl's (`--profile`); each allows the security settings kubectl gives it:
//! `legacy`/`baseline` none, `general` SYS_PTRACE, `restricted` none (non-root, all dropped),
//! `netadmin` NET_ADMIN and NET_RAW, `sysadmin` privileged. For node debugging kubectl also
//! shares the host's namespaces and mounts `/` (every profile but `baseline` and `restricted`):
//! that is what `node = true` allows.

use serde::Deserialize;

use super::glob::glob;
use crate::debug::spec::{Container, Form, Spec, normalize_capability};

/// kubectl's debug profiles.
pub const PROFILES: [&str; 6] = [
    "legacy",
    "general",
    "baseline",
    "restricted",
    "netadmin",
    "sysadmin",
];

/// A role's debug limits.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DebugLimits {
    /// Image globs (`busybox`, `busybox:*`, `registry.example.com/tools/*`). Every container the
    /// request runs must match one.
    pub images: Vec<String>,
    /// kubectl profiles whose security settings are allowed.
    #[serde(default = "default_profiles")]
    pub profiles: Vec<String>,
    /// Capabilities allowed beyond those of the profiles (`SYS_ADMIN`).
    #[serde(default)]
    pub capabilities: Vec<String>,
    /// Privileged containers (also allowed by the `sysadmin` profile).
    #[serde(default)]
    pub privileged: bool,
    /// The host's process, network and IPC namespaces for created pods (also allowed by
    /// `node = true`).
    #[serde(default)]
    pub host_pid: bool,
    #[serde(default)]
    pub host_network: bool,
    #[serde(default)]
    pub host_ipc: bool,
    /// `kubectl debug --copy-to`: creating pods (with no host access).
    #[serde(default)]
    pub copy: bool,
    /// `kubectl debug node/NAME`: pods on a named node, sharing its namespaces and mounting
    /// host paths.
    #[serde(default)]
    pub node: bool,
}

fn default_profiles() -> Vec<String> {
    ["legacy", "general", "baseline", "restricted"]
        .map(String::from)
        .into()
}

/// Why a debug request is refused: the field, and the rule of which role it breaks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub field: String,
    /// `debug.images`, `debug.profiles`, `debug.node`…
    pub rule: String,
    pub message: String,
}

/// What an allowed debug request is, for the recording of the attach that follows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub form: &'static str,
    pub profile: String,
}

/// The profile kubectl would have used to produce this container's security settings.
pub fn profile_of(c: &Container) -> &'static str {
    if c.privileged {
        "sysadmin"
    } else if c
        .capabilities
        .iter()
        .any(|x| x == "NET_ADMIN" || x == "NET_RAW")
    {
        "netadmin"
    } else if c.capabilities.iter().any(|x| x == "SYS_PTRACE") {
        "general"
    } else if c.restricted {
        "restricted"
    } else if c.has_security_context {
        "baseline"
    } else {
        "legacy"
    }
}

fn profile_capabilities(profile: &str) -> &'static [&'static str] {
    match profile {
        "general" => &["SYS_PTRACE"],
        "netadmin" => &["NET_ADMIN", "NET_RAW"],
        _ => &[],
    }
}

impl DebugLimits {
    /// Problems with the limits themselves (for policy validation).
    pub fn validate(&self) -> Result<(), String> {
        if self.images.is_empty() || self.images.iter().any(String::is_empty) {
            return Err(
                "`debug.images` must name at least one image glob (none would allow nothing)"
                    .into(),
            );
        }
        if let Some(p) = self
            .profiles
            .iter()
            .find(|p| !PROFILES.contains(&p.as_str()))
        {
            return Err(format!(
                "unknown debug profile {p:?}; profiles are {}",
                PROFILES.join(", ")
            ));
        }
        Ok(())
    }

    fn allows_capability(&self, cap: &str) -> bool {
        self.capabilities
            .iter()
            .any(|c| normalize_capability(c) == cap || c == "*")
            || self
                .profiles
                .iter()
                .any(|p| profile_capabilities(p).contains(&cap))
    }

    fn allows_privileged(&self) -> bool {
        self.privileged || self.profiles.iter().any(|p| p == "sysadmin")
    }

    /// Checks `spec` (of a request of `form`) for `role`; the verdict names the debug form
    /// and the profile of its first container.
    pub fn check(&self, role: &str, form: Form, spec: &Spec) -> Result<Verdict, Refusal> {
        let refuse = |field: &str, rule: &str, message: String| Refusal {
            field: field.to_string(),
            rule: format!("role {role:?} {rule}"),
            message,
        };
        let mut kind = match form {
            Form::Ephemeral => "ephemeral",
            Form::Pod => "copy",
        };
        if let Some(pod) = &spec.pod {
            let node_debug = pod.node_name.is_some() || !pod.host_paths.is_empty();
            if node_debug {
                kind = "node";
                if !self.node {
                    let field = if let Some((f, _)) = pod.host_paths.first() {
                        f.as_str()
                    } else {
                        "spec.nodeName"
                    };
                    return Err(refuse(
                        field,
                        "debug.node",
                        "node debugging (a pod on a named node or with host paths) is not allowed (node = false)".into(),
                    ));
                }
            } else if !self.copy {
                return Err(refuse(
                    "spec",
                    "debug.copy",
                    "creating pods (kubectl debug --copy-to) is not allowed (copy = false)".into(),
                ));
            }
            for (flag, on, allowed) in [
                ("hostPID", pod.host_pid, self.host_pid),
                ("hostNetwork", pod.host_network, self.host_network),
                ("hostIPC", pod.host_ipc, self.host_ipc),
            ] {
                if on && !allowed && !self.node {
                    let rule = format!("debug.{}", snake(flag));
                    return Err(refuse(
                        &format!("spec.{flag}"),
                        &rule,
                        format!("{flag}: true is not allowed ({} = false)", snake(flag)),
                    ));
                }
            }
        }
        let mut profile = None;
        for c in &spec.containers {
            let image = c.image.as_deref().unwrap_or("");
            if !self.images.iter().any(|g| glob(g, image)) {
                return Err(refuse(
                    &format!("{}.image", c.field),
                    "debug.images",
                    format!("image {image:?} matches none of {:?}", self.images),
                ));
            }
            let p = profile_of(c);
            if c.privileged && !self.allows_privileged() {
                return Err(refuse(
                    &format!("{}.securityContext.privileged", c.field),
                    "debug.profiles",
                    format!(
                        "privileged: true (profile sysadmin) is not allowed (profiles {:?}, privileged = false)",
                        self.profiles
                    ),
                ));
            }
            if let Some(cap) = c.capabilities.iter().find(|x| !self.allows_capability(x)) {
                return Err(refuse(
                    &format!("{}.securityContext.capabilities.add", c.field),
                    "debug.profiles",
                    format!(
                        "capability {cap} (profile {p}) is not allowed (profiles {:?}, capabilities {:?})",
                        self.profiles, self.capabilities
                    ),
                ));
            }
            // kubectl adds the debugger last (to a copy's containers too).
            profile = Some(p);
        }
        Ok(Verdict {
            form: kind,
            profile: profile.unwrap_or("legacy").to_string(),
        })
    }
}

fn snake(flag: &str) -> String {
    match flag {
        "hostPID" => "host_pid".into(),
        "hostNetwork" => "host_network".into(),
        "hostIPC" => "host_ipc".into(),
        other => other.to_string(),
    }
}
