//! The policy file parser, on arbitrary UTF-8 (the input, lossily decoded):
//! - `Policy::from_toml` never panics;
//! - an accepted policy is valid: role names are unique and plain, every binding names only
//!   defined roles, requestable roles have approvers;
//! - parsing is deterministic (the same text gives the same policy);
//! - deciding requests against an accepted policy never panics, and a denial has a message.
#![no_main]

use std::collections::BTreeMap;
use std::time::SystemTime;

use gateway::authn::Identity;
use gateway::policy::{Decision, Elevation, Policy, parse_attributes, valid_name};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let Ok(policy) = Policy::from_toml(&text, "fuzz.toml") else {
        return;
    };
    assert_eq!(Policy::from_toml(&text, "fuzz.toml").as_ref(), Ok(&policy));
    let mut names = std::collections::BTreeSet::new();
    for role in &policy.roles {
        assert!(valid_name(&role.name));
        assert!(names.insert(role.name.as_str()), "duplicate role accepted");
        assert!(!role.rules.is_empty());
        assert!(!role.requestable || !role.approvers.is_empty());
    }
    for binding in &policy.bindings {
        assert!(binding.roles.iter().all(|r| names.contains(r.as_str())));
    }
    let who = Identity {
        user: "dan".into(),
        groups: vec!["developers".into()],
        issuer: "https://ci".into(),
        claims: BTreeMap::from([("repository".to_string(), "org/app".to_string())]),
        expires_at: SystemTime::UNIX_EPOCH,
        session_grace: std::time::Duration::ZERO,
    };
    let grants: Vec<Elevation<'_>> = policy
        .roles
        .iter()
        .map(|r| Elevation {
            id: "g",
            role: &r.name,
            namespace: "prod",
        })
        .collect();
    for (method, path) in [
        ("GET", "/api/v1/namespaces/prod/pods/db/exec"),
        ("GET", "/api/v1/pods"),
        ("DELETE", "/apis/apps/v1/namespaces/staging/deployments"),
        ("POST", "/version"),
    ] {
        let attrs = parse_attributes(method, path, None);
        for g in [&[][..], &grants[..]] {
            if let Decision::Deny(message) = policy.decide(&who, &attrs, g) {
                assert!(message.starts_with("kubetape: "));
            }
        }
    }
});
