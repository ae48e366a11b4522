//! Terminal resize messages on the resize channel: JSON `{"Width":u16,"Height":u16}`. kubectl
//! appends a newline, kube-rs does not, and the server reads a JSON *stream*, so one message may
//! hold zero or more objects.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TerminalSize {
    #[serde(rename = "Width")]
    pub width: u16,
    #[serde(rename = "Height")]
    pub height: u16,
}

/// Every size in one resize message, in order.
pub fn parse(msg: &[u8]) -> Result<Vec<TerminalSize>, serde_json::Error> {
    serde_json::Deserializer::from_slice(msg)
        .into_iter::<TerminalSize>()
        .collect()
}

/// One size as kubectl sends it (with the trailing newline).
pub fn encode(size: TerminalSize) -> Vec<u8> {
    let mut out = serde_json::to_vec(&size).expect("size serializes");
    out.push(b'\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_one_or_many() {
        assert_eq!(parse(b"").unwrap(), vec![]);
        assert_eq!(
            parse(b"{\"Width\":100,\"Height\":30}\n").unwrap(),
            vec![TerminalSize {
                width: 100,
                height: 30
            }]
        );
        assert_eq!(
            parse(b"{\"Width\":1,\"Height\":2}{\"Width\":3,\"Height\":4}\n").unwrap(),
            vec![
                TerminalSize {
                    width: 1,
                    height: 2
                },
                TerminalSize {
                    width: 3,
                    height: 4
                }
            ]
        );
        assert!(parse(b"{\"Width\":70000,\"Height\":1}").is_err());
        assert!(parse(b"{\"Width\":1").is_err());
        assert_eq!(
            encode(TerminalSize {
                width: 80,
                height: 24
            }),
            b"{\"Width\":80,\"Height\":24}\n"
        );
    }
}
