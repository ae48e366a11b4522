//! Request parsing parity with the Kubernetes API server (issue 12, finding 3): a table of the
//! cases that went wrong and of apimachinery's edge cases, then a differential proptest against
//! a model of the API server written from its Go sources (`apiserver/model.rs`). The property
//! (`apiserver/parity.rs`): the gateway refuses a request or derives exactly what the API server
//! would, and forwards a query that reads, to the API server, as exactly what it decided on.

mod apiserver;

use apiserver::parity::{check_attributes, check_stream};
use gateway::policy::{Attributes, parse_attributes};
use proptest::prelude::*;
use proto::exec::{StreamOptions, Subresource};
use proto::query::Query;

const STREAMS: [Subresource; 3] = [
    Subresource::Exec,
    Subresource::Attach,
    Subresource::PortForward,
];

fn options(sub: Subresource, raw: &str) -> Option<StreamOptions> {
    Query::parse(raw)
        .and_then(|q| StreamOptions::from_query(&q, sub))
        .ok()
}

fn verb(method: &str, path: &str, query: &str) -> Option<String> {
    match parse_attributes(method, path, Some(query)) {
        Attributes::Resource(r) => Some(r.verb),
        _ => None,
    }
}

/// The review's findings, each now read as the API server reads it or refused, and checked
/// against the model too.
#[test]
fn the_review_cases() {
    let pods = "/api/v1/namespaces/dev/pods";
    // `?wat%63h=true` gave a list-only role a watch, audited as a list.
    assert_eq!(verb("GET", pods, "wat%63h=true").as_deref(), Some("watch"));
    assert_eq!(verb("GET", pods, "watch=yes").as_deref(), Some("watch"));
    // `comm%61nd=` was not the command; the recording named another one.
    let o = options(Subresource::Exec, "comm%61nd=rm&command=-rf&command=%2F").unwrap();
    assert_eq!(o.command, ["rm", "-rf", "/"]);
    // `tty=yes` ran with a terminal that the recording said was not there.
    assert!(
        options(Subresource::Exec, "command=sh&tty=yes")
            .unwrap()
            .tty
    );
    // A repeated `container=`: the API server uses the first, the recording named the last.
    assert!(options(Subresource::Exec, "command=sh&container=a&container=b").is_none());
    for (path, query) in [
        (pods, "wat%63h=true"),
        (pods, "watch=false&watch=true"),
        (pods, "watch=1;x=y"),
        (pods, "fieldSelector=metadata.name%3Dweb&watch=1"),
    ] {
        check_attributes("GET", path, Some(query)).unwrap();
    }
    for query in [
        "comm%61nd=rm&command=-rf",
        "command=sh&tty=yes",
        "command=sh&container=a&container=b",
        "command=sh&input=1&stdout=0",
        "command=a%3Bb&command=&command=%2B",
    ] {
        for sub in STREAMS {
            check_stream(sub, query).unwrap();
        }
    }
}

/// Edge cases from Go's and apimachinery's tables, through the differential check.
#[test]
fn table_through_the_model() {
    #[rustfmt::skip]
    let requests: &[(&str, &str, &str)] = &[
        ("GET", "/api/v1/namespaces/other/pods", "watch=1"),
        ("GET", "/api/v1/namespaces/other/pods", "watch=0"),
        ("GET", "/api/v1/namespaces/other/pods", "watch=FaLsE"),
        ("GET", "/api/v1/namespaces/other/pods", "watch=fal%C5%BFe"),
        ("GET", "/apis/group/version/resource", "fieldSelector=metadata.name=name1,foo&watch=true"),
        ("GET", "/apis/group/version/resource", "fieldSelector=metadata.name=foo&fieldSelector=metadata.name=bar"),
        ("GET", "/apis/group/version/resource", "fieldSelector=metadata.name%3Db%2Cmetadata.name%3D%3Da"),
        ("GET", "/apis/group/version/resource", "fieldSelector=metadata.name%3Dweb&labelSelector=a%3Db"),
        ("GET", "/apis/group/version/resource", "fieldSelector=metadata.name%3Dweb&limit=99999999999999999999"),
        ("GET", "/apis/group/version/watch/resource", "fieldSelector=metadata.name%3Dfoo"),
        ("DELETE", "/api/v1/watch/namespaces/a/pods/b", ""),
        ("POST", "/api/v1/proxy/namespaces/a/pods/b/c/d", ""),
        ("GET", "/api/v1/watch", ""),
        ("OPTIONS", "/api/v1/pods", ""),
        ("get", "/api/v1/pods", ""),
        ("GET", "/api/v1/namespaces/a/pods/b/exec", "command=x"),
        ("POST", "/api/v1/namespaces/a/pods/b/attach", ""),
        ("GET", "/api/v1/namespaces/a/pods/b/exec/", ""),
        ("GET", "//api/v1/pods", ""),
        ("GET", "/api/v1/pods/%2e%2e", ""),
        ("GET", "/api/v1/pods", "a=1;b=2"),
        ("GET", "/version", "x=%zz"),
        ("GET", "/version", "x=%FF"),
    ];
    for (method, path, query) in requests {
        check_attributes(method, path, Some(query)).unwrap();
        check_attributes(method, path, None).unwrap();
    }
    for query in [
        "ports=80%2C8443&ports=9",
        "ports=+80",
        "ports=80,",
        "ports=",
        "ports=65536",
        "stdin&stdout=&stderr=no&tty=off",
        "stdin=0&stdout=FALSE",
        "container=&command=",
    ] {
        for sub in STREAMS {
            check_stream(sub, query).unwrap();
        }
    }
}

/// A name as a client might spell it: each byte raw, or percent-encoded in either case.
fn spelled(s: String, how: Vec<u8>) -> String {
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        match how.get(i).copied().unwrap_or(0) % 5 {
            0..=2 => out.push(c),
            3 => {
                let mut buf = [0; 4];
                for b in c.encode_utf8(&mut buf).bytes() {
                    out.push_str(&format!("%{b:02X}"));
                }
            }
            _ => {
                let mut buf = [0; 4];
                for b in c.encode_utf8(&mut buf).bytes() {
                    out.push_str(&format!("%{b:02x}"));
                }
            }
        }
    }
    out
}

fn spelling(words: Vec<&'static str>, free: &'static str) -> BoxedStrategy<String> {
    let word = prop_oneof![
        4 => prop::sample::select(words).prop_map(str::to_string),
        1 => free,
    ];
    (word, prop::collection::vec(any::<u8>(), 0..24))
        .prop_map(|(w, how)| spelled(w, how))
        .boxed()
}

fn key() -> BoxedStrategy<String> {
    spelling(
        vec![
            "command",
            "container",
            "stdin",
            "stdout",
            "stderr",
            "tty",
            "watch",
            "fieldSelector",
            "labelSelector",
            "limit",
            "timeoutSeconds",
            "ports",
            "input",
            "Watch",
            "resourceVersion",
        ],
        "[a-zA-Z%+;=&]{0,4}",
    )
}

fn value() -> BoxedStrategy<String> {
    spelling(
        vec![
            "true",
            "false",
            "0",
            "1",
            "yes",
            "no",
            "",
            "TRUE",
            "FaLsE",
            "fal\u{17f}e",
            "t",
            "x y",
            "metadata.name=web",
            "metadata.name==a,metadata.name=b",
            "metadata.name!=x",
            "metadata.name=web,foo",
            "metadata.name=a\\,b",
            "metadata.name=..",
            "metadata.name=a/b",
            "=,metadata.name=w",
            "80",
            "80,443",
            "+80",
            "-1",
            "65536",
            "9223372036854775808",
            "app=x",
            "sh",
            "-c",
            "rm -rf /",
        ],
        "[ -~\u{17f}\u{e9}]{0,8}",
    )
}

fn query() -> BoxedStrategy<String> {
    let pair = (key(), prop::option::of(value())).prop_map(|(k, v)| match v {
        Some(v) => format!("{k}={v}"),
        None => k,
    });
    let piece = prop_oneof![
        8 => pair,
        1 => prop::sample::select(vec!["", "%", "%zz", "%4", ";", "&", "=", "%FF", "%C5%BF"]).prop_map(str::to_string),
    ];
    prop::collection::vec(piece, 0..7)
        .prop_map(|pieces| pieces.join("&"))
        .boxed()
}

/// Queries of lists and watches: a `fieldSelector` (often naming an object), `watch`, and the
/// parameters whose decoding decides whether the name is taken.
fn list_query() -> BoxedStrategy<String> {
    let selector = spelling(
        vec![
            "metadata.name=web",
            "metadata.name==web",
            "metadata.name=web,spec.nodeName=n1",
            "metadata.name!=web",
            "metadata.name=a\\,b",
            "metadata.name=..",
            "metadata.name=a/b",
            "metadata.name=a%b",
            "metadata.name=",
            "=,metadata.name=w",
            "metadata.name=b,metadata.name=a",
            "metadata.name=web,foo",
            "metadata.name=w\\x",
            "status.phase=Running",
        ],
        "[a-z.=!,\\\\]{0,12}",
    );
    let pair = prop_oneof![
        4 => (spelling(vec!["fieldSelector"], "fieldSelector"), selector)
            .prop_map(|(k, v)| format!("{k}={v}")),
        2 => (spelling(vec!["watch"], "watch"), value()).prop_map(|(k, v)| format!("{k}={v}")),
        2 => (
            spelling(vec!["labelSelector", "limit", "timeoutSeconds", "resourceVersion"], "limit"),
            prop::sample::select(vec!["", "5", "+5", "x", "app=web", "-1", "99999999999999999999"]),
        )
            .prop_map(|(k, v)| format!("{k}={v}")),
    ];
    prop::collection::vec(pair, 0..4)
        .prop_map(|pairs| pairs.join("&"))
        .boxed()
}

fn path() -> BoxedStrategy<String> {
    let segment = prop::sample::select(vec![
        "api",
        "apis",
        "v1",
        "apps",
        "namespaces",
        "dev",
        "pods",
        "web",
        "exec",
        "attach",
        "portforward",
        "watch",
        "proxy",
        "status",
        "finalize",
        "log",
        "nodes",
        "",
        ".",
        "..",
        "%2F",
        "a%20b",
        "x+y",
        "*",
    ]);
    (
        prop::sample::select(vec!["/", "/", "/", "", "//"]),
        prop::collection::vec(segment, 0..8),
        any::<bool>(),
    )
        .prop_map(|(lead, segments, trailing)| {
            let mut p = format!("{lead}{}", segments.join("/"));
            if trailing {
                p.push('/');
            }
            p
        })
        .boxed()
}

fn method() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![
        "GET", "GET", "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "get", "CONNECT",
    ])
}

/// Paths most likely to be read as lists, watches and streams, for the queries that matter there.
fn likely_path() -> BoxedStrategy<String> {
    prop::sample::select(vec![
        "/api/v1/namespaces/dev/pods",
        "/api/v1/namespaces/dev/pods",
        "/api/v1/namespaces/dev/pods/",
        "/api/v1/pods",
        "/apis/apps/v1/namespaces/dev/deployments",
        "/api/v1/watch/namespaces/dev/pods",
        "/api/v1/namespaces/dev/pods/web/exec",
        "/api/v1/namespaces/dev/pods/web/attach",
        "/api/v1/namespaces/dev",
    ])
    .prop_map(str::to_string)
    .boxed()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4096))]

    /// Any method, path and query: the gateway refuses, or derives what the API server would.
    #[test]
    fn attributes_match_the_api_server(method in method(), path in path(), query in query()) {
        check_attributes(method, &path, Some(&query)).map_err(TestCaseError::fail)?;
        check_attributes(method, &path, None).map_err(TestCaseError::fail)?;
    }

    /// Lists, watches and streams with queries built from the parameters they read.
    #[test]
    fn list_and_stream_attributes_match(
        method in method(),
        path in likely_path(),
        query in prop_oneof![query(), list_query()],
    ) {
        check_attributes(method, &path, Some(&query)).map_err(TestCaseError::fail)?;
    }

    /// Any query, read as exec, attach and port-forward options.
    #[test]
    fn stream_options_match_the_api_server(query in query()) {
        for sub in STREAMS {
            check_stream(sub, &query).map_err(TestCaseError::fail)?;
        }
    }

    /// Arbitrary text (not only the grammar above) never panics and keeps the property.
    #[test]
    fn arbitrary_text(method in "[A-Za-z]{0,7}", path in "[ -~]{0,40}", query in "[ -~\u{17f}\u{e9}]{0,40}") {
        check_attributes(&method, &path, Some(&query)).map_err(TestCaseError::fail)?;
        for sub in STREAMS {
            check_stream(sub, &query).map_err(TestCaseError::fail)?;
        }
    }
}

/// The property is not met by refusing everything: most generated requests are decided on (and
/// then agree with the model), and a good share of lists read as naming an object and of
/// queries as exec options with a command, where the subtle rules are.
#[test]
fn most_generated_requests_are_decided_not_refused() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let mut sample = |s: BoxedStrategy<String>| s.new_tree(&mut runner).unwrap().current();
    let total = 2000;
    let (mut decided, mut named_lists, mut execs) = (0, 0, 0);
    for _ in 0..total {
        let (path, query) = (sample(likely_path()), sample(query()));
        if !matches!(
            parse_attributes("GET", &path, Some(&query)),
            Attributes::Invalid { .. }
        ) {
            decided += 1;
        }
        if options(Subresource::Exec, &query).is_some_and(|o| !o.command.is_empty()) {
            execs += 1;
        }
        let list = sample(list_query());
        if let Attributes::Resource(r) =
            parse_attributes("GET", "/api/v1/namespaces/dev/pods", Some(&list))
            && !r.name.is_empty()
        {
            named_lists += 1;
        }
    }
    eprintln!(
        "decided {decided}/{total}, named lists {named_lists}/{total}, execs with a command {execs}/{total}"
    );
    assert!(decided * 2 > total, "decided {decided} of {total}");
    assert!(
        named_lists * 20 > total,
        "named lists {named_lists} of {total}"
    );
    assert!(execs * 25 > total, "execs {execs} of {total}");
}
