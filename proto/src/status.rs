//! The `Status` object the server sends on the error channel when a remote command ends, and the
//! Status bodies of HTTP errors. kubectl reads the exit code from the cause whose reason is
//! `ExitCode`; a clean WebSocket close *without* a Status makes kubectl exit 0, so relays must
//! always send one (synthesizing a failure when the upstream died).

use serde::{Deserialize, Serialize};

/// `metav1.Status`, with the fields kubectl reads.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(
        rename = "apiVersion",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub api_version: Option<String>,
    #[serde(default)]
    pub metadata: serde_json::Map<String, serde_json::Value>,
    #[serde(default)]
    pub status: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<StatusDetails>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<u16>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusDetails {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub causes: Vec<StatusCause>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusCause {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
}

/// How a remote command ended, as kubectl will understand it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitOutcome {
    /// Exit code (0 for Success).
    Code(u8),
    /// A failure without an exit code: kubectl prints the message and exits 1.
    Failure,
}

impl Status {
    /// What the server sends when the command exited 0.
    pub fn success() -> Self {
        Self {
            status: "Success".into(),
            ..Self::default()
        }
    }

    /// What the server sends for a non-zero exit code.
    pub fn exit_code(code: u8) -> Self {
        if code == 0 {
            return Self::success();
        }
        Self {
            status: "Failure".into(),
            message: format!(
                "command terminated with non-zero exit code: error executing command [..], exit code {code}"
            ),
            reason: "NonZeroExitCode".into(),
            details: Some(StatusDetails {
                causes: vec![StatusCause {
                    reason: "ExitCode".into(),
                    message: code.to_string(),
                }],
                ..StatusDetails::default()
            }),
            ..Self::default()
        }
    }

    /// A failure with an HTTP-style code and reason (e.g. 500 `InternalError`, 403 `Forbidden`).
    pub fn failure(code: u16, reason: &str, message: impl Into<String>) -> Self {
        Self {
            kind: Some("Status".into()),
            api_version: Some("v1".into()),
            status: "Failure".into(),
            message: message.into(),
            reason: reason.into(),
            code: Some(code),
            ..Self::default()
        }
    }

    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("Status serializes")
    }

    pub fn parse(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(bytes)
    }

    /// The outcome kubectl derives from this Status.
    pub fn outcome(&self) -> ExitOutcome {
        if self.status == "Success" {
            return ExitOutcome::Code(0);
        }
        let code = self
            .details
            .iter()
            .flat_map(|d| &d.causes)
            .find(|c| c.reason == "ExitCode")
            .filter(|c| !c.message.is_empty() && c.message.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|c| c.message.parse::<u8>().ok());
        match (self.reason.as_str(), code) {
            ("NonZeroExitCode", Some(code)) => ExitOutcome::Code(code),
            _ => ExitOutcome::Failure,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_round_trip() {
        for code in [0u8, 1, 3, 137, 255] {
            let s = Status::parse(&Status::exit_code(code).to_json()).unwrap();
            assert_eq!(s.outcome(), ExitOutcome::Code(code));
        }
    }

    #[test]
    fn observed_server_bytes() {
        let success = br#"{"metadata":{},"status":"Success"}"#;
        assert_eq!(Status::success().to_json(), success.to_vec());
        let three = br#"{"metadata":{},"status":"Failure","message":"command terminated with non-zero exit code: ...","reason":"NonZeroExitCode","details":{"causes":[{"reason":"ExitCode","message":"3"}]}}"#;
        assert_eq!(
            Status::parse(three).unwrap().outcome(),
            ExitOutcome::Code(3)
        );
        let internal = br#"{"metadata":{},"status":"Failure","message":"boom","reason":"InternalError","code":500}"#;
        assert_eq!(
            Status::parse(internal).unwrap().outcome(),
            ExitOutcome::Failure
        );
        assert!(Status::parse(b"not json").is_err());
        // kubectl parses the code with ParseUint: a sign is not a number to it.
        let signed = br#"{"status":"Failure","reason":"NonZeroExitCode","details":{"causes":[{"reason":"ExitCode","message":"+3"}]}}"#;
        assert_eq!(
            Status::parse(signed).unwrap().outcome(),
            ExitOutcome::Failure
        );
    }
}
