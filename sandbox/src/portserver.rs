//! The processes behind a pod's ports: for each declared port the sandbox starts a real local
//! server on a loopback port it picks, and port-forward connects there. Built-in servers are
//! `kubetape-sandbox serve-port --http|--echo`, which takes its listening socket on stdin
//! (inetd-style: the sandbox binds, so no port can be taken in between); `command` ports run any
//! program with `PORT` set.
//!
//! The built-in servers are here too ([`serve`]), so the binary's `serve-port` is one call.

use std::net::{Ipv4Addr, SocketAddr};
use std::os::fd::{AsFd as _, OwnedFd};
use std::path::PathBuf;
use std::process::Stdio;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt as _, Full, combinators::BoxBody};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::io::AsyncWriteExt as _;

use crate::config::{BuiltinServer, PortSpec};
use crate::process::{self, Killer};

/// What `GET /` on the built-in HTTP server answers (tests compare against it).
pub const HTTP_GREETING: &[u8] = b"hello from kubetape-sandbox (pod port 80)\n";

/// `GET /bytes/N`: byte `i` of the answer (a known pattern, not compressible to nothing).
pub fn known_byte(i: u64) -> u8 {
    (i.wrapping_mul(31) ^ (i >> 8)) as u8
}

/// Where the `kubetape-sandbox` binary is, for the built-in servers: `$KUBETAPE_SANDBOX_BIN`,
/// this very program if it is `kubetape-sandbox`, else one next to this program or one
/// directory up (cargo puts test binaries in `target/*/deps/`, the binaries in `target/*/`), so
/// the gateway's quickstart and the test crates find it without being told.
pub fn helper_binary() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("KUBETAPE_SANDBOX_BIN") {
        return Some(PathBuf::from(p));
    }
    let exe = std::env::current_exe().ok()?;
    if exe.file_name().is_some_and(|n| n == "kubetape-sandbox") {
        return Some(exe);
    }
    let dir = exe.parent()?;
    [
        dir.join("kubetape-sandbox"),
        dir.parent()?.join("kubetape-sandbox"),
    ]
    .into_iter()
    .find(|p| p.is_file())
}

/// A declared port and where its server listens (`None`: its server could not start, so
/// forwarding to it fails like a port nobody listens on).
#[derive(Debug)]
pub(crate) struct ForwardPort {
    pub spec: PortSpec,
    pub addr: Option<SocketAddr>,
    killer: Option<Killer>,
}

impl ForwardPort {
    /// Starts the port's server; failures are logged, not fatal (a pod with a broken port still
    /// serves exec).
    pub fn start(spec: &PortSpec, env: &[(String, String)], workdir: &std::path::Path) -> Self {
        let started = match (&spec.serve, &spec.command) {
            (Some(kind), _) => start_builtin(*kind, env, workdir),
            (None, Some(cmd)) => start_command(cmd, env, workdir),
            (None, None) => Err("no server configured".to_string()),
        };
        match started {
            Ok((addr, killer)) => {
                tracing::debug!(port = spec.port, %addr, "port server started");
                Self {
                    spec: spec.clone(),
                    addr: Some(addr),
                    killer: Some(killer),
                }
            }
            Err(e) => {
                tracing::warn!(port = spec.port, error = %e, "port server not started");
                Self {
                    spec: spec.clone(),
                    addr: None,
                    killer: None,
                }
            }
        }
    }

    pub fn stop(&self) {
        if let Some(k) = self.killer {
            k.kill();
        }
    }
}

fn start_builtin(
    kind: BuiltinServer,
    env: &[(String, String)],
    workdir: &std::path::Path,
) -> Result<(SocketAddr, Killer), String> {
    let bin =
        helper_binary().ok_or("kubetape-sandbox binary not found (set KUBETAPE_SANDBOX_BIN)")?;
    let listener =
        std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).map_err(|e| e.to_string())?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let argv = [
        bin.display().to_string(),
        "serve-port".into(),
        kind.flag().into(),
    ];
    let killer = process::spawn_service(&argv, env, workdir, Stdio::from(OwnedFd::from(listener)))
        .map_err(|e| e.to_string())?;
    Ok((addr, killer))
}

fn start_command(
    cmd: &[String],
    env: &[(String, String)],
    workdir: &std::path::Path,
) -> Result<(SocketAddr, Killer), String> {
    // Picked by binding and letting go: the program binds it again itself.
    let addr = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map_err(|e| e.to_string())?;
    let mut env = env.to_vec();
    env.push(("PORT".into(), addr.port().to_string()));
    let killer =
        process::spawn_service(cmd, &env, workdir, Stdio::null()).map_err(|e| e.to_string())?;
    Ok((addr, killer))
}

// === the built-in servers ===

/// Serves `kind` on the listening socket `fd` (`serve-port`'s stdin) until the process is killed.
pub async fn serve_fd(kind: BuiltinServer, fd: std::os::fd::BorrowedFd<'_>) -> std::io::Result<()> {
    let listener = std::net::TcpListener::from(fd.try_clone_to_owned()?);
    listener.set_nonblocking(true)?;
    serve(kind, tokio::net::TcpListener::from_std(listener)?).await
}

/// [`serve_fd`] on this process's stdin.
pub async fn serve_stdin(kind: BuiltinServer) -> std::io::Result<()> {
    let stdin = std::io::stdin();
    serve_fd(kind, stdin.as_fd()).await
}

/// Accepts connections forever, one task each.
pub async fn serve(kind: BuiltinServer, listener: tokio::net::TcpListener) -> std::io::Result<()> {
    loop {
        let (tcp, _) = listener.accept().await?;
        let _ = tcp.set_nodelay(true);
        tokio::spawn(async move {
            let result = match kind {
                BuiltinServer::Echo => echo(tcp).await,
                BuiltinServer::Http => http(tcp).await,
            };
            if let Err(e) = result {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        });
    }
}

/// Every byte back; when the client shuts its write side, ours follows once all is echoed.
async fn echo(tcp: tokio::net::TcpStream) -> std::io::Result<()> {
    let (mut r, mut w) = tcp.into_split();
    tokio::io::copy(&mut r, &mut w).await?;
    w.shutdown().await
}

type HttpBody = BoxBody<Bytes, hyper::Error>;

fn full(b: impl Into<Bytes>) -> HttpBody {
    Full::new(b.into()).map_err(|never| match never {}).boxed()
}

async fn http(tcp: tokio::net::TcpStream) -> std::io::Result<()> {
    hyper::server::conn::http1::Builder::new()
        // A client that shuts its write side after the request still gets the answer.
        .half_close(true)
        .serve_connection(TokioIo::new(tcp), service_fn(answer))
        .await
        .map_err(std::io::Error::other)
}

async fn answer(req: Request<Incoming>) -> Result<Response<HttpBody>, std::convert::Infallible> {
    let path = req.uri().path().to_string();
    let has_body = req.headers().contains_key(http::header::CONTENT_LENGTH)
        || req.headers().contains_key(http::header::TRANSFER_ENCODING);
    let resp = match (req.method(), path.as_str()) {
        (&Method::GET | &Method::HEAD, "/") => Response::new(full(HTTP_GREETING)),
        (&Method::GET, p) if p.starts_with("/bytes/") => match p[7..].parse::<u64>() {
            Ok(n) if n <= 1 << 30 => {
                let body: Vec<u8> = (0..n).map(known_byte).collect();
                Response::new(full(body))
            }
            _ => status(StatusCode::BAD_REQUEST, "bad length\n"),
        },
        // Uploads come back as they arrive (streamed, not buffered).
        _ if has_body => Response::new(req.into_body().boxed()),
        _ => status(StatusCode::NOT_FOUND, "not found\n"),
    };
    Ok(resp)
}

fn status(code: StatusCode, text: &'static str) -> Response<HttpBody> {
    let mut r = Response::new(full(text));
    *r.status_mut() = code;
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt as _;

    async fn server(kind: BuiltinServer) -> SocketAddr {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(serve(kind, l));
        addr
    }

    async fn exchange(addr: SocketAddr, send: &[u8]) -> Vec<u8> {
        let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        tcp.write_all(send).await.unwrap();
        // Half-close: the answer must still come whole.
        tcp.shutdown().await.unwrap();
        let mut got = Vec::new();
        tcp.read_to_end(&mut got).await.unwrap();
        got
    }

    #[tokio::test]
    async fn echo_returns_everything_after_a_half_close() {
        let addr = server(BuiltinServer::Echo).await;
        let data: Vec<u8> = (0..300_000u64).map(known_byte).collect();
        assert_eq!(exchange(addr, &data).await, data);
    }

    #[tokio::test]
    async fn http_greets_counts_and_echoes() {
        let addr = server(BuiltinServer::Http).await;
        let got = exchange(
            addr,
            b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        )
        .await;
        let text = String::from_utf8(got).unwrap();
        assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
        assert!(
            text.ends_with(std::str::from_utf8(HTTP_GREETING).unwrap()),
            "{text}"
        );
        let got = exchange(
            addr,
            b"GET /bytes/1000 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        )
        .await;
        let want: Vec<u8> = (0..1000).map(known_byte).collect();
        assert!(got.ends_with(&want));
        let got = exchange(
            addr,
            b"POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello",
        )
        .await;
        let text = String::from_utf8(got).unwrap();
        assert!(text.contains("200 OK") && text.contains("hello"), "{text}");
        let got = exchange(
            addr,
            b"GET /nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        )
        .await;
        assert!(String::from_utf8(got).unwrap().starts_with("HTTP/1.1 404"));
    }
}
