//! port-forward's port parsing and the channel protocol's port prefix (`proto::portforward`).
//!
//! Input: lossy UTF-8, split on `&` into query values.
//!
//! Properties:
//! - no panic;
//! - `parse_ports` accepts exactly when every comma-separated item is 1–65535 written in ASCII
//!   digits (checked against a re-statement), and the ports come out in order;
//! - a parsed port list written back comma-joined parses to the same list;
//! - `port_prefix`/`split_port_prefix` round-trip every port, and the channel numbers of a port
//!   index map back to it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use proto::portforward::{
    channel_port, data_channel, error_channel, parse_ports, port_prefix, split_port_prefix,
};

fn reference(values: &[&str]) -> Option<Vec<u16>> {
    if values.is_empty() {
        return None;
    }
    let mut out = Vec::new();
    for v in values {
        for item in v.split(',') {
            if item.is_empty() || !item.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            let n: u32 = item.parse().ok()?;
            if n == 0 || n > 65535 {
                return None;
            }
            out.push(n as u16);
        }
    }
    Some(out)
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let values: Vec<&str> = if text.is_empty() {
        Vec::new()
    } else {
        text.split('&').collect()
    };
    let got = parse_ports(values.iter().copied());
    assert_eq!(got.as_ref().ok(), reference(&values).as_ref());
    if let Ok(ports) = got {
        let joined: Vec<String> = ports.iter().map(u16::to_string).collect();
        let joined = joined.join(",");
        assert_eq!(parse_ports([joined.as_str()]).unwrap(), ports);
        for (i, p) in ports.iter().enumerate() {
            let mut msg = port_prefix(*p).to_vec();
            msg.extend_from_slice(data);
            assert_eq!(split_port_prefix(&msg), Some((*p, data)));
            if let (Some(d), Some(e)) = (data_channel(i), error_channel(i)) {
                assert_eq!(channel_port(d), (i, false));
                assert_eq!(channel_port(e), (i, true));
            }
        }
    }
    if data.len() < 2 {
        assert_eq!(split_port_prefix(data), None);
    }
});
