//! A minimal HTTP/1.1 GET for JWKS and discovery documents: rustls (system roots plus an optional CA file)
//! under a hyper client connection, one connection per request, bounded in time and size, no redirects, no
//! proxies. `http://` is accepted only for loopback hosts (local tests, sidecar issuers).

use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode, Uri, header};
use http_body_util::{BodyExt as _, Empty, Limited};
use hyper_util::rt::TokioIo;
use rustls::RootCertStore;
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// Whole-request deadline: connect, TLS, request, body.
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);
/// Key sets and discovery documents are small; refuse anything bigger.
const MAX_BODY: usize = 1024 * 1024;
/// Where the system's trust roots are looked for (Debian/Ubuntu/Alpine, then Fedora/RHEL), unless
/// `SSL_CERT_FILE` names a bundle.
const SYSTEM_BUNDLES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
];

/// A URL the fetcher accepts.
#[derive(Clone, Debug)]
pub(crate) struct FetchUrl {
    uri: Uri,
    tls: bool,
    /// Host without IPv6 brackets.
    host: String,
    port: u16,
}

/// Parses and vets a key-source URL; the error is a short reason.
pub(crate) fn parse_url(url: &str) -> Result<FetchUrl, String> {
    let uri: Uri = url.parse().map_err(|_| "not a valid URL".to_owned())?;
    let host = uri.host().ok_or("URL has no host")?;
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let tls = match uri.scheme_str() {
        Some("https") => true,
        Some("http") if is_loopback(&host) => false,
        Some("http") => return Err("plain http is allowed only for loopback hosts".to_owned()),
        _ => return Err("URL scheme must be https".to_owned()),
    };
    if uri.authority().is_some_and(|a| a.as_str().contains('@')) {
        return Err("URL must not contain credentials".to_owned());
    }
    let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
    Ok(FetchUrl {
        uri,
        tls,
        host,
        port,
    })
}

fn is_loopback(host: &str) -> bool {
    host == "localhost" || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

impl FetchUrl {
    pub(crate) fn needs_tls(&self) -> bool {
        self.tls
    }
}

impl std::fmt::Display for FetchUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.uri.fmt(f)
    }
}

/// Fetches documents for one issuer.
#[derive(Clone)]
pub(crate) struct Fetcher {
    /// The TLS setup, or why there is none (kept so that a loopback-only issuer works on a machine without
    /// a CA bundle, and fails clearly if a discovery document then points at https).
    tls: Result<TlsConnector, String>,
}

impl std::fmt::Debug for Fetcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fetcher")
            .field("tls", &self.tls.is_ok())
            .finish()
    }
}

impl Fetcher {
    /// A fetcher trusting the system roots and the PEM certificates in `ca_file`.
    pub(crate) fn new(ca_file: Option<&Path>) -> Fetcher {
        Fetcher {
            tls: tls_connector(ca_file),
        }
    }

    /// Why https URLs cannot be fetched, if they cannot.
    pub(crate) fn tls_error(&self) -> Option<&str> {
        self.tls.as_ref().err().map(String::as_str)
    }

    /// GETs `url` and returns the body of a 200 response. Errors are for logs (they name the URL).
    pub(crate) async fn get(&self, url: &FetchUrl) -> Result<Bytes, String> {
        tokio::time::timeout(FETCH_TIMEOUT, self.get_inner(url))
            .await
            .unwrap_or_else(|_| Err(format!("GET {url}: timed out after {FETCH_TIMEOUT:?}")))
    }

    async fn get_inner(&self, url: &FetchUrl) -> Result<Bytes, String> {
        let fail = |what: &str, e: &dyn std::fmt::Display| format!("GET {url}: {what}: {e}");
        let tcp = TcpStream::connect((url.host.as_str(), url.port))
            .await
            .map_err(|e| fail("connect", &e))?;
        let _ = tcp.set_nodelay(true);
        let path = url.uri.path_and_query().map_or("/", |pq| pq.as_str());
        let authority = url
            .uri
            .authority()
            .map_or(url.host.as_str(), |a| a.as_str());
        let request = Request::get(path)
            .header(header::HOST, authority)
            .header(header::ACCEPT, "application/json")
            .header(
                header::USER_AGENT,
                concat!("kubetape-gateway/", env!("CARGO_PKG_VERSION")),
            )
            .body(Empty::<Bytes>::new())
            .map_err(|e| fail("request", &e))?;

        let response = if url.tls {
            let connector = self.tls.as_ref().map_err(|e| fail("TLS setup", e))?;
            let name =
                ServerName::try_from(url.host.clone()).map_err(|e| fail("server name", &e))?;
            let tls = connector
                .connect(name, tcp)
                .await
                .map_err(|e| fail("TLS", &e))?;
            send(TokioIo::new(tls), request).await
        } else {
            send(TokioIo::new(tcp), request).await
        }
        .map_err(|e| fail("request", &e))?;

        if response.status() != StatusCode::OK {
            return Err(fail("status", &response.status()));
        }
        let body = Limited::new(response.into_body(), MAX_BODY)
            .collect()
            .await
            .map_err(|e| fail("body", &e))?;
        Ok(body.to_bytes())
    }
}

async fn send<T>(
    io: TokioIo<T>,
    request: Request<Empty<Bytes>>,
) -> Result<http::Response<hyper::body::Incoming>, String>
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| e.to_string())?;
    // The connection task ends when the response body is read or the sender is dropped.
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!(error = %e, "key fetch connection ended with an error");
        }
    });
    sender
        .send_request(request)
        .await
        .map_err(|e| e.to_string())
}

fn tls_connector(ca_file: Option<&Path>) -> Result<TlsConnector, String> {
    let mut roots = RootCertStore::empty();
    let system = std::env::var_os("SSL_CERT_FILE")
        .map(std::path::PathBuf::from)
        .into_iter()
        .chain(SYSTEM_BUNDLES.iter().map(Into::into))
        .find(|p| p.is_file());
    if let Some(bundle) = &system {
        let (added, _ignored) = roots.add_parsable_certificates(read_pem_certs(bundle)?);
        tracing::debug!(bundle = %bundle.display(), added, "loaded system trust roots");
    }
    if let Some(ca_file) = ca_file {
        for cert in read_pem_certs(ca_file)? {
            roots
                .add(cert)
                .map_err(|e| format!("{}: {e}", ca_file.display()))?;
        }
    }
    if roots.is_empty() {
        return Err("no trust roots: no system CA bundle found and no `ca_file` given".to_owned());
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| e.to_string())?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(TlsConnector::from(Arc::new(config)))
}

fn read_pem_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{}: no PEM certificates", path.display()));
    }
    Ok(certs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_rules() {
        for ok in [
            "https://idp.example",
            "https://idp.example:8443/.well-known/jwks.json",
            "http://127.0.0.1:9000/jwks",
            "http://127.3.4.5/jwks",
            "http://localhost:1/x",
            "http://[::1]:8080/jwks",
        ] {
            parse_url(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
        for bad in [
            "idp.example/jwks",
            "ftp://idp.example/jwks",
            "http://idp.example/jwks",
            "http://10.0.0.1/jwks",
            "http://[::2]/jwks",
            "https://user:pw@idp.example/jwks",
            "file:///etc/passwd",
        ] {
            assert!(parse_url(bad).is_err(), "{bad}");
        }
        let u = parse_url("http://[::1]:8080/jwks").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.needs_tls()),
            ("::1", 8080, false)
        );
        assert_eq!(parse_url("https://idp.example").unwrap().port, 443);
    }
}
