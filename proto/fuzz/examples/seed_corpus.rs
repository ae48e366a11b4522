//! Writes small seed corpora of valid inputs into `corpus/<target>/`, so mutations start from
//! what kubectl, kube-rs and the API server really send:
//!
//! ```text
//! cargo run --example seed_corpus      # from proto/fuzz
//! ```
//! Seeds follow each target's input layout (see the target's doc comment).

use std::fs;
use std::path::Path;

use proto::channel::{self, Protocol};
use proto::exec::percent_encode;
use proto::resize::{self, TerminalSize};
use proto::spdy::frame::{Frame, RST_CANCEL, RST_REFUSED_STREAM};
use proto::spdy::headers::HeaderEncoder;
use proto::status::Status;

fn write(target: &str, name: &str, bytes: &[u8]) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("corpus")
        .join(target);
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join(name), bytes).unwrap();
}

/// Client → server SPDY bytes of `kubectl exec -i` (one header context for the connection).
fn exec_conversation() -> Vec<u8> {
    let mut enc = HeaderEncoder::new();
    let mut wire = Vec::new();
    Frame::Settings {
        entries: vec![(0, 4, 1000), (0, 7, 1 << 20)],
    }
    .encode(&mut wire);
    for (id, kind) in [
        (1, "error"),
        (3, "stdin"),
        (5, "stdout"),
        (7, "stderr"),
        (9, "resize"),
    ] {
        let block = enc.encode(&[("streamtype", kind)]);
        Frame::SynStream {
            stream_id: id,
            associated_to: 0,
            priority: 0,
            fin: kind == "error",
            unidirectional: false,
            block,
        }
        .encode(&mut wire);
    }
    Frame::Data {
        stream_id: 9,
        fin: false,
        data: resize::encode(TerminalSize {
            width: 80,
            height: 24,
        }),
    }
    .encode(&mut wire);
    Frame::Data {
        stream_id: 3,
        fin: false,
        data: b"ls -l\n".to_vec(),
    }
    .encode(&mut wire);
    Frame::Ping { id: 1 }.encode(&mut wire);
    Frame::WindowUpdate {
        stream_id: 3,
        delta: 65536,
    }
    .encode(&mut wire);
    Frame::Data {
        stream_id: 3,
        fin: true,
        data: vec![],
    }
    .encode(&mut wire);
    Frame::RstStream {
        stream_id: 9,
        status: RST_CANCEL,
    }
    .encode(&mut wire);
    Frame::GoAway {
        last_good: 0,
        status: 0,
    }
    .encode(&mut wire);
    wire
}

/// Client → server SPDY bytes of `kubectl port-forward` for one connection to port 8080.
fn portforward_conversation() -> Vec<u8> {
    let mut enc = HeaderEncoder::new();
    let mut wire = Vec::new();
    for (id, kind) in [(1, "error"), (3, "data")] {
        let block = enc.encode(&[("streamtype", kind), ("port", "8080"), ("requestid", "0")]);
        Frame::SynStream {
            stream_id: id,
            associated_to: 0,
            priority: 0,
            fin: false,
            unidirectional: false,
            block,
        }
        .encode(&mut wire);
    }
    Frame::Data {
        stream_id: 3,
        fin: false,
        data: b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n".to_vec(),
    }
    .encode(&mut wire);
    Frame::Headers {
        stream_id: 3,
        fin: false,
        block: enc.encode(&[("x-extra", "1")]),
    }
    .encode(&mut wire);
    Frame::RstStream {
        stream_id: 1,
        status: RST_REFUSED_STREAM,
    }
    .encode(&mut wire);
    Frame::Unknown {
        kind: 10,
        flags: 0,
        payload: vec![0, 0, 0, 1],
    }
    .encode(&mut wire);
    wire
}

/// Server → client bytes of an `exec -i` (stdin, stdout, stderr) that exits 3.
fn remotecommand_answer() -> Vec<u8> {
    use proto::exec::StreamOptions;
    use proto::spdy::remotecommand::{Client, Server, StreamType};
    let opts = StreamOptions {
        stdin: true,
        stdout: true,
        stderr: true,
        ..StreamOptions::default()
    };
    let mut client = Client::new(&opts);
    let mut server = Server::new(&opts);
    client.ping();
    server.receive(&client.take_output()).unwrap();
    server.send(StreamType::Stdout, b"out\n");
    server.send(StreamType::Stderr, b"err\n");
    server.finish(&Status::exit_code(3).to_json());
    let mut wire = server.take_output();
    Frame::Ping { id: 2 }.encode(&mut wire);
    wire
}

/// Server → client bytes for two forwarded connections: data, a FIN, an error message.
fn portforward_answer() -> Vec<u8> {
    use proto::spdy::portforward::{Client, Server};
    let mut client = Client::new();
    let mut server = Server::new();
    let a = client.open(80);
    let b = client.open(7001);
    server.receive(&client.take_output()).unwrap();
    server.send(&a, b"HTTP/1.1 200 OK\r\n\r\nhi");
    server.send_fin(&a);
    server.close(&a);
    server.fail(
        &b,
        "error forwarding port 7001 to pod x, uid : connection refused",
    );
    server.close(&b);
    server.take_output()
}

fn main() {
    // channel_frame: WebSocket messages (the first byte doubles as the supported-protocol mask).
    write(
        "channel_frame",
        "stdout",
        &channel::encode_binary(channel::STDOUT, b"hello\r\n"),
    );
    write(
        "channel_frame",
        "close",
        &channel::encode_close(channel::STDIN),
    );
    write(
        "channel_frame",
        "resize",
        &channel::encode_binary(channel::RESIZE, b"{\"Width\":80,\"Height\":24}\n"),
    );
    write(
        "channel_frame",
        "text",
        channel::encode_text(channel::ERROR, &Status::exit_code(3).to_json()).as_bytes(),
    );
    write("channel_frame", "empty-text", b"1");
    let offer = format!(
        "\x1f{}, {}\n{}",
        Protocol::V5.name(),
        Protocol::V4.name(),
        Protocol::V4Base64.name()
    );
    write("channel_frame", "offer", offer.as_bytes());

    // spdy_frame: every frame kind, and whole conversations.
    let frames = [
        Frame::Data {
            stream_id: 7,
            fin: true,
            data: b"out".to_vec(),
        },
        Frame::SynStream {
            stream_id: 1,
            associated_to: 0,
            priority: 2,
            fin: false,
            unidirectional: true,
            block: vec![0x78, 0xf9],
        },
        Frame::SynReply {
            stream_id: 1,
            fin: false,
            block: vec![0x78],
        },
        Frame::RstStream {
            stream_id: 9,
            status: RST_REFUSED_STREAM,
        },
        Frame::Settings {
            entries: vec![(1, 4, 100)],
        },
        Frame::Ping { id: 3 },
        Frame::GoAway {
            last_good: 5,
            status: 1,
        },
        Frame::Headers {
            stream_id: 3,
            fin: true,
            block: vec![1, 2],
        },
        Frame::WindowUpdate {
            stream_id: 3,
            delta: 1000,
        },
        Frame::Unknown {
            kind: 5,
            flags: 0,
            payload: vec![],
        },
    ];
    for (i, f) in frames.iter().enumerate() {
        write("spdy_frame", &format!("frame-{i}"), &f.to_bytes());
    }
    write("spdy_frame", "exec", &exec_conversation());
    write("spdy_frame", "portforward", &portforward_conversation());

    // spdy_headers: mode 0 with length-prefixed compressed blocks of one context; mode 0x80 seeds
    // are `arbitrary` input and need none.
    let mut enc = HeaderEncoder::new();
    let mut blocks = vec![0u8];
    for h in [
        &[("streamtype", "error")][..],
        &[("streamtype", "data"), ("port", "8080"), ("requestid", "0")][..],
        &[][..],
        &[("Streamtype", "stdout"), ("x", "a\0b")][..],
    ] {
        let block = enc.encode(h);
        blocks.push(u8::try_from(block.len()).unwrap());
        blocks.extend_from_slice(&block);
    }
    write("spdy_headers", "blocks", &blocks);
    let mut raw = vec![0u8, 0xff];
    raw.extend_from_slice(&proto::spdy::headers::encode_block(&[(
        "streamtype",
        "stdin",
    )]));
    write("spdy_headers", "raw", &raw);

    // spdy_session: [n, n piece lengths, stream].
    for (name, wire) in [
        ("exec", exec_conversation()),
        ("portforward", portforward_conversation()),
    ] {
        for (split, lens) in [
            ("whole", &[][..]),
            ("bytewise", &[1][..]),
            ("mixed", &[7, 1, 50, 0][..]),
        ] {
            let mut input = vec![u8::try_from(lens.len()).unwrap()];
            input.extend_from_slice(lens);
            input.extend_from_slice(&wire);
            write("spdy_session", &format!("{name}-{split}"), &input);
        }
    }

    // spdy_client: what a server sends back: replies, output, FINs, the Status, pings, GOAWAY
    // (from proto's own remote-command server answering a real client).
    let answer = remotecommand_answer();
    for (split, lens) in [
        ("whole", &[][..]),
        ("bytewise", &[1][..]),
        ("mixed", &[5, 0, 33][..]),
    ] {
        let mut input = vec![u8::try_from(lens.len()).unwrap()];
        input.extend_from_slice(lens);
        input.extend_from_slice(&answer);
        write("spdy_client", &format!("answer-{split}"), &input);
    }
    // spdy_remotecommand: [mode, piece, peer bytes]; the server side reads kubectl's exec, the
    // client side (mode bit 7) the server's answer.
    write(
        "spdy_remotecommand",
        "server-exec-tty",
        &[[0x0b, 0].as_slice(), &exec_conversation()].concat(),
    );
    write(
        "spdy_remotecommand",
        "server-exec-pieces",
        &[[0x07, 3].as_slice(), &exec_conversation()].concat(),
    );
    write(
        "spdy_remotecommand",
        "client-answer",
        &[[0x87, 0].as_slice(), &answer].concat(),
    );
    write(
        "spdy_remotecommand",
        "client-answer-pieces",
        &[[0x87, 2].as_slice(), &answer].concat(),
    );

    // spdy_portforward: [mode, peer bytes]; the server side reads kubectl's port-forward, the
    // client side (bit 7) the answer of proto's own server to two connections.
    write(
        "spdy_portforward",
        "server-kubectl",
        &[[0u8].as_slice(), &portforward_conversation()].concat(),
    );
    write(
        "spdy_portforward",
        "server-kubectl-pieces",
        &[[5u8].as_slice(), &portforward_conversation()].concat(),
    );
    write(
        "spdy_portforward",
        "client-answer",
        &[[0x80u8].as_slice(), &portforward_answer()].concat(),
    );
    // portforward_ports: query values joined by '&'.
    write("portforward_ports", "kube-rs", b"80,8443");
    write("portforward_ports", "repeated", b"80&9090&65535");
    write("portforward_ports", "bad", b"0&http&+1&");

    // pod_protobuf: a node debugger pod as kubectl creates it.
    let pod = serde_json::json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "node-debugger-sandbox-x7k2p", "namespace": "default",
                     "labels": {"app.kubernetes.io/managed-by": "kubectl-debug"}},
        "spec": {"containers": [{"name": "debugger", "image": "busybox", "stdin": true, "tty": true,
                                  "securityContext": {"privileged": true},
                                  "volumeMounts": [{"name": "host-root", "mountPath": "/host"}]}],
                 "nodeName": "sandbox", "hostPID": true, "hostNetwork": true,
                 "tolerations": [{"operator": "Exists"}],
                 "volumes": [{"name": "host-root", "hostPath": {"path": "/"}}]},
    });
    write("pod_protobuf", "node-debugger", &proto::pod_protobuf::encode_pod(&pod));

    // status_resize: Status bodies as the API server sends them, and resize messages.
    write("status_resize", "success", &Status::success().to_json());
    write("status_resize", "exit-3", &Status::exit_code(3).to_json());
    write(
        "status_resize",
        "forbidden",
        &Status::failure(403, "Forbidden", "pods \"web\" is forbidden").to_json(),
    );
    write(
        "status_resize",
        "resize-kubectl",
        &resize::encode(TerminalSize {
            width: 200,
            height: 50,
        }),
    );
    write(
        "status_resize",
        "resize-two",
        b"{\"Width\":1,\"Height\":2}{\"Width\":3,\"Height\":4}",
    );

    // exec_query: query strings and paths.
    let command = ["sh", "-c", "cat; echo done"]
        .map(|c| format!("command={}", percent_encode(c)))
        .join("&");
    write(
        "exec_query",
        "kubectl",
        format!("{command}&container=app&stderr=true&stdin=true&stdout=true&tty=false").as_bytes(),
    );
    write(
        "exec_query",
        "kube-rs",
        b"&stdin=true&stdout=true&command=cat",
    );
    write("exec_query", "ports", b"ports=80%2C8443&ports=9090");
    write(
        "exec_query",
        "path",
        b"/api/v1/namespaces/default/pods/web/exec",
    );
    write(
        "exec_query",
        "path-pf",
        b"/api/v1/namespaces/kube-system/pods/dns-0/portforward",
    );

    // admin_bodies: what `kubetape request/approve` send and what a gateway answers.
    write(
        "admin_bodies",
        "new-request",
        br#"{"role":"prod-debug","namespace":"prod","reason":"INC-42: db is slow","ttl":"30m"}"#,
    );
    write("admin_bodies", "decision", br#"{"reason":"ok"}"#);
    write("admin_bodies", "decision-empty", b"{}");
    write(
        "admin_bodies",
        "view",
        br#"{"id":"0190c1c4-0000-7000-8000-000000000001","user":"dev@example.com","role":"prod-debug","namespace":"prod","reason":"INC-42","ttl":"5m","requested_at":"2026-11-23T09:00:00Z","state":"approved","decided_by":"sre@example.com","decision_reason":"go","expires_at":"2026-11-23T09:05:00Z","mine":false,"can_decide":false}"#,
    );
    write(
        "admin_bodies",
        "list",
        br#"{"requests":[{"id":"i","user":"u","role":"r","namespace":"n","reason":"w","ttl":"1h","state":"pending","mine":true,"can_decide":false}]}"#,
    );
}
