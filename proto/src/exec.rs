//! exec/attach/port-forward requests: the path `/api/v1/namespaces/{ns}/pods/{pod}/{exec|attach|
//! portforward}` and the options in its query (`PodExecOptions`, `PodAttachOptions`,
//! `PodPortForwardOptions`), read exactly as the API server reads them, because the recording
//! names the command, container and terminal the cluster was asked for.

use crate::query::{Query, QueryError};

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

/// Parameter names: the JSON names of `PodExecOptions`, `PodAttachOptions` and
/// `PodPortForwardOptions` (`k8s.io/api/core/v1/types.go`), which are what the API server's
/// parameter codec reads (`zz_generated.conversion.go`, `Convert_url_Values_To_v1_PodExecOptions`
/// and its siblings). `input`, `output` and `error` are kubelet's names for the streams; the API
/// server ignores them, and so does the gateway.
pub mod param {
    pub const COMMAND: &str = "command";
    pub const CONTAINER: &str = "container";
    pub const STDIN: &str = "stdin";
    pub const STDOUT: &str = "stdout";
    pub const STDERR: &str = "stderr";
    pub const TTY: &str = "tty";
    pub const PORTS: &str = "ports";
}

/// What a stream asks for, as the API server reads it from the query.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StreamOptions {
    /// exec only: every `command` value, in order (an attach runs nothing).
    pub command: Vec<String>,
    /// `None` when absent or empty: the API server then picks the pod's only container.
    pub container: Option<String>,
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
    pub tty: bool,
    /// port-forward only: ports in query order.
    pub ports: Vec<u16>,
}

impl StreamOptions {
    /// Reads the options of `subresource` from `query` exactly as the API server does, or
    /// refuses where it cannot be sure (see [`crate::query`]):
    /// - exec: `command` is every value in order (`""` included); `container`, `stdin`,
    ///   `stdout`, `stderr`, `tty` are scalars (the API server takes the first of several;
    ///   given twice, the request is refused); booleans as `Convert_Slice_string_To_bool`;
    /// - attach: the same without `command` (`PodAttachOptions` has none: a `command` sent
    ///   with an attach runs nothing, so nothing is recorded for it);
    /// - port-forward: `ports`, every value split on `,`, each `strconv.ParseUint(p, 10, 16)`
    ///   (`Convert_Slice_string_To_Slice_int32`, apimachinery `pkg/apis/meta/v1/conversion.go`).
    ///
    /// No defaults are applied: since Kubernetes 1.7 the codec defaults nothing for these
    /// (kubernetes#49586), so an absent `stdout` is false.
    pub fn from_query(query: &Query, subresource: Subresource) -> Result<Self, QueryError> {
        let mut o = StreamOptions::default();
        match subresource {
            Subresource::Exec | Subresource::Attach => {
                if subresource == Subresource::Exec {
                    o.command = query.values(param::COMMAND).map(str::to_string).collect();
                }
                o.container = query
                    .scalar(param::CONTAINER)?
                    .filter(|c| !c.is_empty())
                    .map(str::to_string);
                o.stdin = query.boolean(param::STDIN)?;
                o.stdout = query.boolean(param::STDOUT)?;
                o.stderr = query.boolean(param::STDERR)?;
                o.tty = query.boolean(param::TTY)?;
            }
            Subresource::PortForward => {
                for value in query.values(param::PORTS) {
                    for p in value.split(',') {
                        o.ports.push(parse_port(p)?);
                    }
                }
            }
        }
        Ok(o)
    }

    /// The query asking for exactly these options of `subresource`, as client-go writes it
    /// (keys in order, false booleans left out): what the gateway forwards upstream, so the
    /// cluster runs what was recorded whatever spelling the client used.
    pub fn to_query(&self, subresource: Subresource) -> Query {
        let mut pairs: Vec<(&str, &str)> = Vec::new();
        match subresource {
            Subresource::Exec | Subresource::Attach => {
                if subresource == Subresource::Exec {
                    pairs.extend(self.command.iter().map(|c| (param::COMMAND, c.as_str())));
                }
                if let Some(c) = &self.container {
                    pairs.push((param::CONTAINER, c));
                }
                for (key, on) in [
                    (param::STDERR, self.stderr),
                    (param::STDIN, self.stdin),
                    (param::STDOUT, self.stdout),
                    (param::TTY, self.tty),
                ] {
                    if on {
                        pairs.push((key, "true"));
                    }
                }
                Query::from_pairs(pairs)
            }
            Subresource::PortForward => Query::from_pairs(
                self.ports
                    .iter()
                    .map(|p| (param::PORTS.to_string(), p.to_string())),
            ),
        }
    }
}

/// `strconv.ParseUint(s, 10, 16)`: decimal digits only (no sign, space or `_`), at most 65535.
fn parse_port(s: &str) -> Result<u16, QueryError> {
    // Rust's `u16::from_str` also takes a leading `+`, which Go's ParseUint refuses.
    s.bytes()
        .all(|b| b.is_ascii_digit())
        .then(|| s.parse::<u16>().ok())
        .flatten()
        .ok_or_else(|| QueryError::Value {
            key: param::PORTS.to_string(),
            value: s.to_string(),
            expected: "a port number (decimal digits, at most 65535)",
        })
}

/// Parses a raw exec query (exec's parameters; an attach reads the same minus `command`).
pub fn parse_query(raw: &str) -> Result<StreamOptions, QueryError> {
    StreamOptions::from_query(&Query::parse(raw)?, Subresource::Exec)
}

/// Decodes one query component as the API server does ([`crate::query::unescape`]); `None`
/// where it would drop the pair or the result is not UTF-8.
pub fn percent_decode(s: &str) -> Option<String> {
    crate::query::unescape(s).ok()
}

/// Encodes a query component as Go's `url.QueryEscape` ([`crate::query::escape`]).
pub fn percent_encode(s: &str) -> String {
    crate::query::escape(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exec(raw: &str) -> Result<StreamOptions, QueryError> {
        StreamOptions::from_query(&Query::parse(raw)?, Subresource::Exec)
    }

    fn attach(raw: &str) -> Result<StreamOptions, QueryError> {
        StreamOptions::from_query(&Query::parse(raw)?, Subresource::Attach)
    }

    #[test]
    fn kubectl_exec_query() {
        // Observed from kubectl 1.32.4.
        let q = "command=sh&command=-c&command=cat%3B+echo+done&container=app&stderr=true&stdin=true&stdout=true";
        let o = parse_query(q).unwrap();
        assert_eq!(o.command, ["sh", "-c", "cat; echo done"]);
        assert_eq!(o.container.as_deref(), Some("app"));
        assert!(o.stdin && o.stdout && o.stderr && !o.tty);
        // What the gateway forwards is what kubectl sent.
        assert_eq!(o.to_query(Subresource::Exec).encode(), q);
        // kube-rs's leading '&'.
        let o = parse_query("&stdin=true&stdout=true&command=cat").unwrap();
        assert_eq!(o.command, ["cat"]);
        assert_eq!(
            o.to_query(Subresource::Exec).encode(),
            "command=cat&stdin=true&stdout=true"
        );
        assert!(parse_query("command=%zz").is_err());
        assert!(parse_query("command=%+d").is_err());
    }

    /// The review's cases (issue 12, finding 3): each either reads as the API server reads it
    /// or is refused; none can make the recording differ from what runs.
    #[test]
    fn spellings_read_as_the_api_server_reads_them() {
        // Keys are percent-decoded: `comm%61nd` is `command`.
        let o = exec("comm%61nd=rm&command=-rf&c%6fntainer=db&t%74y=1").unwrap();
        assert_eq!(o.command, ["rm", "-rf"]);
        assert_eq!(o.container.as_deref(), Some("db"));
        assert!(o.tty);
        // `Convert_Slice_string_To_bool`: anything but `0`/`false` is true, `yes` and `no` too.
        for v in ["yes", "no", "", "on", "True", "t"] {
            assert!(exec(&format!("tty={v}")).unwrap().tty, "tty={v}");
        }
        assert!(
            exec("tty").unwrap().tty,
            "a bare key is the empty value: true"
        );
        for v in ["0", "false", "FALSE", "False"] {
            assert!(!exec(&format!("tty={v}")).unwrap().tty, "tty={v}");
        }
        // Given twice, the API server takes the first; the gateway refuses.
        for q in [
            "container=a&container=b",
            "tty=0&tty=1",
            "stdin=1&stdin=1",
            "stdout&stdout",
        ] {
            assert!(matches!(exec(q), Err(QueryError::Repeated(_))), "{q}");
        }
        assert!(matches!(
            exec("tty=fal%C5%BFe"),
            Err(QueryError::Boolean { .. })
        ));
        assert!(matches!(exec("command=a;b"), Err(QueryError::Semicolon)));
        // kubelet's names mean nothing to the API server.
        let o = exec("input=1&output=1&error=1&command=x").unwrap();
        assert!(!o.stdin && !o.stdout && !o.stderr);
    }

    /// `autoConvert_url_Values_To_v1_PodExecOptions`: `command` keeps every value, in order,
    /// empty ones included; an empty `container` is no container; nothing is defaulted.
    #[test]
    fn exec_options_convert_like_the_generated_code() {
        let o = exec("command=&command=a+b&command=&container=").unwrap();
        assert_eq!(o.command, ["", "a b", ""]);
        assert_eq!(o.container, None);
        assert_eq!(exec("").unwrap(), StreamOptions::default());
        assert_eq!(exec("ports=80").unwrap().ports, Vec::<u16>::new());
    }

    #[test]
    fn attach_has_no_command() {
        let o =
            attach("command=rm&command=-rf&stdin=true&stdout=true&tty=true&container=c").unwrap();
        assert!(o.command.is_empty(), "an attach runs nothing: {o:?}");
        assert!(o.stdin && o.stdout && o.tty && !o.stderr);
        // A repeated command is not even read.
        assert!(attach("command=a&command=b").is_ok());
        assert_eq!(
            o.to_query(Subresource::Attach).encode(),
            "container=c&stdin=true&stdout=true&tty=true"
        );
    }

    /// `Convert_Slice_string_To_Slice_int32`: every value, split on `,`, each
    /// `ParseUint(p, 10, 16)`.
    #[test]
    fn ports_convert_like_apimachinery() {
        let pf = |raw: &str| {
            StreamOptions::from_query(&Query::parse(raw).unwrap(), Subresource::PortForward)
        };
        assert_eq!(pf("ports=80%2C8443&ports=9").unwrap().ports, [80, 8443, 9]);
        assert_eq!(pf("ports=080,0").unwrap().ports, [80, 0]);
        for bad in [
            "ports=",
            "ports=80,",
            "ports=+80",
            "ports=-1",
            "ports=%2080",
            "ports=65536",
            "ports=8_0",
            "ports=x",
        ] {
            assert!(pf(bad).is_err(), "{bad}");
        }
        let o = pf("ports=1,2").unwrap();
        assert_eq!(
            o.to_query(Subresource::PortForward).encode(),
            "ports=1&ports=2"
        );
    }

    #[test]
    fn percent_helpers_are_the_query_ones() {
        assert_eq!(percent_decode("%3b%3B%7e+x").as_deref(), Some(";;~ x"));
        for bad in [
            "%+d", "%+0", "%-1", "% 1", "%1", "%", "%g0", "%0x", "%\u{e9}",
        ] {
            assert_eq!(percent_decode(bad), None, "{bad:?}");
        }
        assert_eq!(percent_encode("cat; echo done"), "cat%3B+echo+done");
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
