//! exec/attach request parameters (`PodExecOptions`/`PodAttachOptions` in the query string) and
//! the path shape `/api/v1/namespaces/{ns}/pods/{pod}/{exec|attach}`.

/// Which streaming subresource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subresource {
    Exec,
    Attach,
    PortForward,
}

impl Subresource {
    pub fn name(self) -> &'static str {
        match self {
            Subresource::Exec => "exec",
            Subresource::Attach => "attach",
            Subresource::PortForward => "portforward",
        }
    }
}

/// A parsed streaming request target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamTarget {
    pub namespace: String,
    pub pod: String,
    pub subresource: Subresource,
}

/// Parses `/api/v1/namespaces/{ns}/pods/{pod}/{exec|attach|portforward}`.
pub fn parse_path(path: &str) -> Option<StreamTarget> {
    let rest = path.strip_prefix("/api/v1/namespaces/")?;
    let mut parts = rest.split('/');
    let (namespace, pods, pod, sub) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    if pods != "pods" || parts.next().is_some() || namespace.is_empty() || pod.is_empty() {
        return None;
    }
    let subresource = match sub {
        "exec" => Subresource::Exec,
        "attach" => Subresource::Attach,
        "portforward" => Subresource::PortForward,
        _ => return None,
    };
    Some(StreamTarget {
        namespace: namespace.to_string(),
        pod: pod.to_string(),
        subresource,
    })
}

/// Options from the query string.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StreamOptions {
    pub command: Vec<String>,
    pub container: Option<String>,
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
    pub tty: bool,
    /// port-forward: ports in query order.
    pub ports: Vec<u16>,
}

fn truthy(v: &str) -> bool {
    matches!(v, "true" | "1" | "True" | "TRUE")
}

/// Parses the query string (repeated `command`, booleans as `true`, `ports` repeated or
/// comma-separated). Unknown keys are ignored, as the API server does.
pub fn parse_query(query: &str) -> Result<StreamOptions, String> {
    let mut o = StreamOptions::default();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let v = percent_decode(v).ok_or_else(|| format!("bad percent-encoding in {k}"))?;
        match k {
            "command" => o.command.push(v),
            "container" => o.container = Some(v),
            "stdin" | "input" => o.stdin = truthy(&v),
            "stdout" | "output" => o.stdout = truthy(&v),
            "stderr" | "error" => o.stderr = truthy(&v),
            "tty" => o.tty = truthy(&v),
            "ports" => {
                for p in v.split(',').filter(|p| !p.is_empty()) {
                    o.ports
                        .push(p.trim().parse().map_err(|_| format!("bad port {p:?}"))?);
                }
            }
            _ => {}
        }
    }
    Ok(o)
}

/// Decodes `application/x-www-form-urlencoded` text (`+` is a space).
pub fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                // Exactly two hex digits, as Go's `url.QueryUnescape` (the API server) demands:
                // `from_str_radix` would also take a sign, reading `%+d` as 0x0d.
                let hex = |at: usize| b.get(at).and_then(|&c| char::from(c).to_digit(16));
                out.push((hex(i + 1)? << 4 | hex(i + 2)?) as u8);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// Encodes a query value the way Go's `url.Values.Encode` does.
pub fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for &c in s.as_bytes() {
        match c {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(char::from(c))
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{c:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubectl_exec_query() {
        // Observed from kubectl 1.32.4.
        let q = "command=sh&command=-c&command=cat%3B+echo+done&container=app&stderr=true&stdin=true&stdout=true";
        let o = parse_query(q).unwrap();
        assert_eq!(o.command, ["sh", "-c", "cat; echo done"]);
        assert_eq!(o.container.as_deref(), Some("app"));
        assert!(o.stdin && o.stdout && o.stderr && !o.tty);
        // kube-rs's leading '&'.
        let o = parse_query("&stdin=true&stdout=true&command=cat").unwrap();
        assert_eq!(o.command, ["cat"]);
        assert_eq!(parse_query("ports=80%2C8443").unwrap().ports, [80, 8443]);
        assert!(parse_query("ports=x").is_err());
        assert!(parse_query("command=%zz").is_err());
        assert_eq!(percent_encode("cat; echo done"), "cat%3B+echo+done");
    }

    #[test]
    fn percent_escapes_are_two_hex_digits() {
        assert_eq!(percent_decode("%3b%3B%7e+x").as_deref(), Some(";;~ x"));
        assert_eq!(percent_decode("%e2%9c%93").as_deref(), Some("\u{2713}"));
        // Found by fuzzing (exec_query): a sign was taken as part of the escape, so `%+d` became
        // a carriage return where the API server refuses the query.
        for bad in [
            "%+d", "%+0", "%-1", "% 1", "%1", "%", "%g0", "%0x", "%\u{e9}",
        ] {
            assert_eq!(percent_decode(bad), None, "{bad:?}");
        }
        assert!(parse_query("command=%+d").is_err());
    }

    #[test]
    fn paths() {
        let t = parse_path("/api/v1/namespaces/default/pods/web/exec").unwrap();
        assert_eq!(
            (t.namespace.as_str(), t.pod.as_str(), t.subresource),
            ("default", "web", Subresource::Exec)
        );
        assert!(parse_path("/api/v1/namespaces/default/pods/web/log").is_none());
        assert!(parse_path("/api/v1/namespaces/default/pods/web/exec/x").is_none());
        assert!(parse_path("/api/v1/namespaces//pods/web/exec").is_none());
    }
}
