//! HTTPS served by the binary itself, HSTS, and `X-Forwarded-For` from trusted proxies only.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::cli::{gen_key, write_config};
use crate::client::{TestApp, request, test_app};
use crate::harness::{self, env};

const HSTS: &str = "strict-transport-security: max-age=31536000; includeSubDomains";

/// The test DC's certificate (SANs localhost and 127.0.0.1), signed by the test CA.
fn server_cert_files() -> (PathBuf, PathBuf) {
    let ca = PathBuf::from(env("SSPR_TEST_CA_FILE"));
    let dir = ca.parent().unwrap();
    (dir.join("dc.pem"), dir.join("dc.key"))
}

fn connector(ca_file: &str) -> TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca_file).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    TlsConnector::from(Arc::new(config))
}

/// One HTTP/1.1 GET over TLS to `localhost`; the raw response, or why there is none.
async fn https_get(port: u16, ca_file: &str, path: &str) -> Result<String, String> {
    let tcp = TcpStream::connect(("127.0.0.1", port))
        .await
        .map_err(|e| e.to_string())?;
    let mut tls = connector(ca_file)
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    tls.write_all(request.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let mut response = Vec::new();
    tls.read_to_end(&mut response)
        .await
        .map_err(|e| e.to_string())?;
    Ok(String::from_utf8_lossy(&response).into_owned())
}

fn status_of(response: &str) -> Option<u16> {
    response.split_whitespace().nth(1)?.parse().ok()
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// `serve` with the test certificate on `port`.
fn serve_https(config: &Path, port: u16, key: &str) -> Child {
    serve_https_with(config, port, key, &[])
}

/// [`serve_https`] with more environment variables.
fn serve_https_with(config: &Path, port: u16, key: &str, envs: &[(&str, &str)]) -> Child {
    let (cert, tls_key) = server_cert_files();
    harness::service_command()
        .args(["--config", config.to_str().unwrap(), "serve"])
        .envs(envs.iter().copied())
        .env("SSPR__SECURITY__SECRET_KEY", key)
        .env("SSPR__SERVER__LISTEN", format!("127.0.0.1:{port}"))
        .env(
            "SSPR__SERVER__PUBLIC_URL",
            format!("https://localhost:{port}"),
        )
        .env("SSPR__SERVER__TLS_CERT", cert)
        .env("SSPR__SERVER__TLS_KEY", tls_key)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// SIGTERM, then the exit status and stderr (the child is killed after 10 s).
async fn stop(mut child: Child) -> (std::process::ExitStatus, String) {
    let kill = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    tokio::task::spawn_blocking(move || {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                let mut err = String::new();
                std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
                harness::keep_service_log("serve-https", err.as_bytes());
                return (status, err);
            }
            if Instant::now() > deadline {
                child.kill().unwrap();
                panic!("serve did not stop within 10 s of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn serve_speaks_https_only_with_hsts_and_stops_gracefully() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "");
    let port = free_port();
    let key = gen_key();
    let child = serve_https(&config, port, &key);
    let ca = env("SSPR_TEST_CA_FILE");

    let started = Instant::now();
    let mut ready = Err("not tried".to_owned());
    while started.elapsed() < Duration::from_secs(20) {
        ready = https_get(port, &ca, "/readyz").await;
        if ready.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let ready = ready.expect("the service came up over HTTPS");
    assert_eq!(status_of(&ready), Some(200), "{ready}");

    let health = https_get(port, &ca, "/healthz").await.unwrap();
    assert_eq!(status_of(&health), Some(200), "{health}");
    assert!(
        health
            .lines()
            .any(|l| l.trim_end().eq_ignore_ascii_case(HSTS)),
        "{health}"
    );

    let other = https_get(port, &env("SSPR_TEST_OTHER_CA_FILE"), "/healthz").await;
    assert!(
        other.as_ref().is_err_and(|e| e.starts_with("handshake")),
        "a client trusting another CA refuses the certificate: {other:?}"
    );

    let mut plain = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    plain
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), plain.read_to_end(&mut answer)).await;
    assert!(
        !answer.starts_with(b"HTTP/"),
        "plain HTTP gets no HTTP answer: {}",
        String::from_utf8_lossy(&answer)
    );

    let (status, stderr) = stop(child).await;
    assert!(status.success(), "clean exit: {stderr}");
    assert!(stderr.contains("shutting down"), "{stderr}");
    assert!(!stderr.contains(&key), "the secret key is never logged");
}

const LICENSED: &str = "[licence]\nazure_ad_premium = true\n";

/// Starts a reset flow as if forwarded for `forwarded_for`; the status.
async fn start_forwarded_for(app: &TestApp, forwarded_for: &str) -> StatusCode {
    let mut start = request(
        "POST",
        "/api/v1/reset",
        Some(json!({"username": "someone"})),
        None,
    );
    start
        .headers_mut()
        .insert("x-forwarded-for", forwarded_for.parse().unwrap());
    app.send(start).await.status
}

#[tokio::test]
async fn forwarded_for_from_an_untrusted_peer_is_ignored() {
    let app = test_app(&format!("{LICENSED}[throttle]\nip_max_starts = 2\n")).await;
    assert_eq!(
        start_forwarded_for(&app, "203.0.113.1").await,
        StatusCode::CREATED
    );
    assert_eq!(
        start_forwarded_for(&app, "203.0.113.2").await,
        StatusCode::CREATED
    );
    assert_eq!(
        start_forwarded_for(&app, "203.0.113.3").await,
        StatusCode::TOO_MANY_REQUESTS,
        "the peer address is counted, whatever the header says"
    );
}

#[tokio::test]
async fn forwarded_for_from_a_trusted_proxy_names_the_client() {
    let mut app = test_app(&format!(
        "{LICENSED}[throttle]\nip_max_starts = 2\n[server]\ntrusted_proxies = [\"10.9.0.0/16\"]\n"
    ))
    .await;
    app.ip = SocketAddr::from(([10, 9, 0, 1], 40000));
    // Each client behind the proxy has its own count; a client-written entry left of the
    // proxy's own is not what is counted.
    for client in [
        "198.51.100.1",
        "6.6.6.6, 198.51.100.2",
        "198.51.100.3, 10.9.0.7",
    ] {
        assert_eq!(
            start_forwarded_for(&app, client).await,
            StatusCode::CREATED,
            "{client}"
        );
    }
    assert_eq!(
        start_forwarded_for(&app, "198.51.100.1").await,
        StatusCode::CREATED
    );
    assert_eq!(
        start_forwarded_for(&app, "6.6.6.6, 198.51.100.1").await,
        StatusCode::TOO_MANY_REQUESTS,
        "198.51.100.1 started twice already"
    );
}

/// Past `server.max_connections_per_client` an HTTPS connection is closed at once, before any
/// handshake, while other clients are still served.
#[tokio::test]
async fn https_connections_past_the_cap_are_closed_without_a_handshake() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "");
    let port = free_port();
    let key = gen_key();
    let child = serve_https_with(
        &config,
        port,
        &key,
        &[("SSPR__SERVER__MAX_CONNECTIONS_PER_CLIENT", "2")],
    );
    let ca = env("SSPR_TEST_CA_FILE");
    let started = Instant::now();
    let mut ready = Err("not tried".to_owned());
    while started.elapsed() < Duration::from_secs(20) {
        ready = https_get(port, &ca, "/healthz").await;
        if ready.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(status_of(&ready.expect("the service came up")), Some(200));

    // Silent connections from one address: two wait in their handshake, the third is closed.
    let silent = |_| async {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind("127.0.0.2:0".parse().unwrap()).unwrap();
        socket
            .connect(SocketAddr::from(([127, 0, 0, 1], port)))
            .await
            .unwrap()
    };
    let mut held = Vec::new();
    for i in 0..2 {
        held.push(silent(i).await);
    }
    let mut third = silent(2).await;
    let mut buf = [0u8; 64];
    let closed = tokio::time::timeout(Duration::from_secs(2), third.read(&mut buf)).await;
    assert!(
        matches!(closed, Ok(Ok(0) | Err(_))),
        "the third connection is closed at once, unanswered: {closed:?}"
    );
    for stream in &held {
        let mut buf = [0u8; 64];
        assert!(
            matches!(stream.try_read(&mut buf), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
            "the first two are still waiting for their handshake"
        );
    }
    let health = https_get(port, &ca, "/healthz").await.unwrap();
    assert_eq!(
        status_of(&health),
        Some(200),
        "others are still served: {health}"
    );
    drop(held);

    let (status, stderr) = stop(child).await;
    assert!(status.success(), "clean exit: {stderr}");
}
