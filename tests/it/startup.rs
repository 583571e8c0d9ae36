//! The binary in a container's life: `healthcheck` as a HEALTHCHECK runs it, and `serve` waiting
//! (`server.startup_wait`) for the files and the DC that come up after it.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::cli::{gen_key, write_config};
use crate::harness::{self, TestDatabase, env};

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// A service configuration on the test DC, listening on `port`, on the database
/// `SSPR_TEST_DATABASE` names: the file, and the variables that complete it.
struct Setup {
    dir: tempfile::TempDir,
    config: PathBuf,
    envs: Vec<(String, String)>,
    _database: TestDatabase,
    port: u16,
}

impl Setup {
    async fn new(extra: &str) -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let config = write_config(dir.path(), extra);
        let database = TestDatabase::from_env().await;
        let port = free_port();
        let envs = vec![
            ("SSPR__SECURITY__SECRET_KEY".to_owned(), gen_key()),
            (
                "SSPR__SERVER__LISTEN".to_owned(),
                format!("127.0.0.1:{port}"),
            ),
            ("SSPR__DATABASE__URL".to_owned(), database.url.clone()),
        ];
        Setup {
            dir,
            config,
            envs,
            _database: database,
            port,
        }
    }

    /// The value the last of [`Setup::envs`] named `name` gives.
    fn var(&self, name: &str) -> &str {
        let found = self.envs.iter().rev().find(|(k, _)| k == name);
        found.map(|(_, v)| v.as_str()).unwrap_or_default()
    }

    fn with(mut self, key: &str, value: impl Into<String>) -> Self {
        self.envs.push((key.to_owned(), value.into()));
        self
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = harness::service_command();
        command
            .args(["--config", self.config.to_str().unwrap()])
            .args(args)
            .envs(self.envs.iter().map(|(k, v)| (k, v)));
        command
    }

    fn serve(&self) -> Child {
        self.command(&["serve"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }

    /// `healthcheck` with `args`: whether it passed, and what it wrote to standard error.
    fn healthcheck(&self, args: &[&str]) -> (Option<i32>, String) {
        let mut full = vec!["healthcheck"];
        full.extend_from_slice(args);
        let output = self.command(&full).output().unwrap();
        harness::keep_service_log("healthcheck", &output.stderr);
        (
            output.status.code(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    }

    /// Runs `healthcheck` until it passes; how long that took from `since`, or `None` if it did
    /// not within `within`.
    async fn healthy_within(&self, since: Instant, within: Duration) -> Option<Duration> {
        while since.elapsed() < within {
            if self.healthcheck(&["--timeout", "1s"]).0 == Some(0) {
                return Some(since.elapsed());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        None
    }
}

/// The exit status and standard error of `child` once it has exited, waiting at most `within`.
fn exited(mut child: Child, within: Duration) -> Option<(ExitStatus, String)> {
    let deadline = Instant::now() + within;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            child
                .stderr
                .as_mut()
                .unwrap()
                .read_to_string(&mut err)
                .unwrap();
            harness::keep_service_log("serve-startup", err.as_bytes());
            return Some((status, err));
        }
        if Instant::now() > deadline {
            child.kill().unwrap();
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// SIGTERM, then the exit status and standard error.
async fn stop(child: Child) -> (ExitStatus, String) {
    let kill = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    tokio::task::spawn_blocking(move || exited(child, Duration::from_secs(10)))
        .await
        .unwrap()
        .expect("serve stops within 10 s of SIGTERM")
}

/// A listener on loopback that answers every request with `answer` (or, `None`, never). On a
/// thread of its own, since the probe is awaited by blocking this test's runtime.
fn fake_service(answer: Option<&'static str>) -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut request = [0u8; 1024];
            let _ = stream.read(&mut request);
            match answer {
                Some(answer) => {
                    let _ = stream.write_all(answer.as_bytes());
                }
                None => held.push(stream),
            }
        }
    });
    port
}

#[tokio::test]
async fn healthcheck_passes_against_the_running_service_and_fails_with_the_reason() {
    let setup = Setup::new("").await;
    let (code, stderr) = setup.healthcheck(&[]);
    assert_eq!(code, Some(1), "nothing listens yet: {stderr}");
    assert!(stderr.contains("connection refused"), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");

    let child = setup.serve();
    let up = setup
        .healthy_within(Instant::now(), Duration::from_secs(20))
        .await;
    let (code, stderr) = setup.healthcheck(&[]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stderr.is_empty(), "a healthy probe says nothing: {stderr}");

    // The same probe by URL; a path under it is kept.
    let url = format!("http://127.0.0.1:{}", setup.port);
    let (code, stderr) = setup.healthcheck(&["--url", &url]);
    assert_eq!(code, Some(0), "{stderr}");
    let (code, stderr) = setup.healthcheck(&["--url", &format!("{url}/under")]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("/under/healthz: status 404"), "{stderr}");

    let (status, stderr) = stop(child).await;
    assert!(up.is_some(), "the service came up: {stderr}");
    assert!(status.success(), "{stderr}");
}

#[tokio::test]
async fn healthcheck_fails_on_another_status_and_on_silence() {
    let setup = Setup::new("").await;
    let port = fake_service(Some(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
    ));
    let (code, stderr) = setup.healthcheck(&["--url", &format!("http://127.0.0.1:{port}")]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("status 503"), "{stderr}");

    let silent = fake_service(None);
    let started = Instant::now();
    let (code, stderr) = setup.healthcheck(&[
        "--url",
        &format!("http://127.0.0.1:{silent}"),
        "--timeout",
        "1s",
    ]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("no answer within 1s"), "{stderr}");
    assert!(started.elapsed() < Duration::from_secs(5), "{stderr}");

    // A configuration that does not load is no healthy service either, and still one line.
    let (code, stderr) = setup.with("SSPR__SERVER__BODY_LIMIT", "1").healthcheck(&[]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("server.body_limit"), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
}

/// The test DC's certificate (SANs localhost and 127.0.0.1) and the second DC's, both from the
/// test CA.
fn cert_pair(name: &str) -> (String, String) {
    let ca = PathBuf::from(env("SSPR_TEST_CA_FILE"));
    let dir = ca.parent().unwrap();
    let file = |ext: &str| dir.join(format!("{name}.{ext}")).display().to_string();
    (file("pem"), file("key"))
}

fn with_tls(setup: Setup, (cert, key): (String, String)) -> Setup {
    let url = format!("https://localhost:{}", setup.port);
    setup
        .with("SSPR__SERVER__PUBLIC_URL", url)
        .with("SSPR__SERVER__TLS_CERT", cert)
        .with("SSPR__SERVER__TLS_KEY", key)
}

#[tokio::test]
async fn healthcheck_speaks_https_trusting_exactly_the_configured_certificate() {
    let setup = with_tls(Setup::new("").await, cert_pair("dc"));
    let child = setup.serve();
    let up = setup
        .healthy_within(Instant::now(), Duration::from_secs(20))
        .await;
    let (code, stderr) = setup.healthcheck(&[]);

    // The same CA, but not the certificate the configuration names: the pin refuses it.
    let port = setup.port.to_string();
    let other = with_tls(Setup::new("").await, cert_pair("dc2"))
        .with("SSPR__SERVER__LISTEN", format!("127.0.0.1:{port}"))
        .with(
            "SSPR__SERVER__PUBLIC_URL",
            format!("https://localhost:{port}"),
        );
    let (other_code, other_stderr) = other.healthcheck(&[]);

    let (status, serve_stderr) = stop(child).await;
    assert!(
        up.is_some(),
        "the service came up over HTTPS: {serve_stderr}"
    );
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(other_code, Some(1), "{other_stderr}");
    assert!(other_stderr.contains("TLS"), "{other_stderr}");
    assert!(status.success(), "{serve_stderr}");
}

#[tokio::test]
async fn serve_waits_for_a_secret_file_written_after_it_started() {
    let setup = Setup::new("").await;
    let password_file = setup.dir.path().join("written-later");
    let setup = setup
        .with(
            "SSPR__DIRECTORY__BIND_PASSWORD_FILE",
            password_file.display().to_string(),
        )
        .with("SSPR__SERVER__STARTUP_WAIT", "20s");
    let started = Instant::now();
    let child = setup.serve();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let early = setup.healthcheck(&[]);
    std::fs::write(
        &password_file,
        format!("{}\n", env("SSPR_TEST_SERVICE_PASSWORD")),
    )
    .unwrap();
    let up = setup.healthy_within(started, Duration::from_secs(20)).await;
    let (status, stderr) = stop(child).await;

    assert_eq!(early.0, Some(1), "not up while the file is missing");
    let up = up.unwrap_or_else(|| panic!("the service came up once the file was there: {stderr}"));
    assert!(up >= Duration::from_millis(1500), "{up:?}");
    assert!(status.success(), "{stderr}");
    let begins = stderr
        .lines()
        .find(|l| l.contains("waiting up to 20s"))
        .unwrap_or_else(|| panic!("the wait is told: {stderr}"));
    assert!(
        begins.contains("directory.bind_password_file")
            && begins.contains(&password_file.display().to_string()),
        "{begins}"
    );
    assert!(
        stderr.contains("the configuration's files appeared after"),
        "{stderr}"
    );
    assert!(stderr.contains("sspr-bridge listening"), "{stderr}");
    assert!(
        !stderr.contains("waiting up to 20s (server.startup_wait) for a domain controller"),
        "the DC was up: {stderr}"
    );
}

#[tokio::test]
async fn serve_gives_up_on_a_file_that_never_appears_and_names_its_key() {
    let setup = Setup::new("").await;
    let never = setup.dir.path().join("never-written");
    let setup = setup
        .with(
            "SSPR__DIRECTORY__BIND_PASSWORD_FILE",
            never.display().to_string(),
        )
        .with("SSPR__SERVER__STARTUP_WAIT", "1s");
    let started = Instant::now();
    let child = setup.serve();
    let (status, stderr) = tokio::task::spawn_blocking(move || {
        exited(child, Duration::from_secs(15)).expect("serve gives up within 15 s")
    })
    .await
    .unwrap();
    let took = started.elapsed();
    assert!(!status.success(), "{stderr}");
    assert!(
        took >= Duration::from_secs(1),
        "waited the second: {took:?}"
    );
    assert!(stderr.contains("waiting up to 1s"), "{stderr}");
    assert!(
        stderr.contains("invalid configuration")
            && stderr.contains("directory.bind_password_file: cannot read"),
        "{stderr}"
    );
}

#[tokio::test]
async fn serve_does_not_wait_for_a_missing_file_by_default() {
    let setup = Setup::new("").await;
    let never = setup.dir.path().join("never-written");
    let setup = setup.with(
        "SSPR__DIRECTORY__BIND_PASSWORD_FILE",
        never.display().to_string(),
    );
    let started = Instant::now();
    let child = setup.serve();
    let (status, stderr) = tokio::task::spawn_blocking(move || {
        exited(child, Duration::from_secs(15)).expect("serve stops at once")
    })
    .await
    .unwrap();
    assert!(!status.success(), "{stderr}");
    assert!(started.elapsed() < Duration::from_secs(5), "{stderr}");
    assert!(!stderr.contains("waiting"), "{stderr}");
    assert!(stderr.contains("directory.bind_password_file"), "{stderr}");
}

#[tokio::test]
async fn serve_waits_for_a_dc_that_never_answers_then_starts_anyway() {
    let closed = free_port();
    let url = format!("ldaps://127.0.0.1:{closed}");
    let setup = Setup::new("")
        .await
        .with("SSPR__DIRECTORY__URLS", url.clone())
        .with("SSPR__SERVER__STARTUP_WAIT", "2s");
    let started = Instant::now();
    let child = setup.serve();
    let up = setup.healthy_within(started, Duration::from_secs(20)).await;
    let (status, stderr) = stop(child).await;
    let up = up.unwrap_or_else(|| panic!("the service started anyway: {stderr}"));
    assert!(up >= Duration::from_secs(2), "it waited: {up:?} {stderr}");
    assert!(status.success(), "{stderr}");
    let waiting = stderr
        .lines()
        .find(|l| l.contains("for a domain controller"))
        .unwrap_or_else(|| panic!("the wait is told: {stderr}"));
    assert!(
        waiting.contains(&url) && waiting.contains("refused"),
        "{waiting}"
    );
    let gave_up = stderr
        .lines()
        .find(|l| l.contains("no domain controller answered within server.startup_wait"))
        .unwrap_or_else(|| panic!("the end of the wait is told: {stderr}"));
    assert!(gave_up.contains("WARN"), "{gave_up}");
    assert!(stderr.contains("sspr-bridge listening"), "{stderr}");
}

#[tokio::test]
async fn serve_stops_waiting_at_once_when_the_dc_refuses_the_bind() {
    // A user of its own as the "service account", so the wrong password counts against nobody
    // else's lockout.
    let user = harness::create_user("waitbind").await;
    let setup = Setup::new("").await;
    let wrong = setup.dir.path().join("wrong-password");
    std::fs::write(&wrong, "not-the-password\n").unwrap();
    let setup = setup
        .with("SSPR__DIRECTORY__BIND_DN", user.dn.clone())
        .with(
            "SSPR__DIRECTORY__BIND_PASSWORD_FILE",
            wrong.display().to_string(),
        )
        .with("SSPR__SERVER__STARTUP_WAIT", "20s");
    let started = Instant::now();
    let child = setup.serve();
    let up = setup.healthy_within(started, Duration::from_secs(20)).await;
    let (status, stderr) = stop(child).await;
    let up = up.unwrap_or_else(|| panic!("the service started: {stderr}"));
    assert!(up < Duration::from_secs(10), "no wait: {up:?} {stderr}");
    assert!(status.success(), "{stderr}");
    assert!(
        stderr.contains("refused the service account's bind"),
        "{stderr}"
    );
    assert!(!stderr.contains("for a domain controller"), "{stderr}");
    assert_eq!(
        harness::read_attr(&user.dn, "badPwdCount").await.as_deref(),
        Some("1"),
        "one bind was tried"
    );
}

#[tokio::test]
async fn serve_does_not_wait_when_the_dc_answers() {
    let setup = Setup::new("")
        .await
        .with("SSPR__SERVER__STARTUP_WAIT", "20s");
    let started = Instant::now();
    let child = setup.serve();
    let up = setup.healthy_within(started, Duration::from_secs(20)).await;
    let (status, stderr) = stop(child).await;
    let up = up.unwrap_or_else(|| panic!("the service started: {stderr}"));
    assert!(up < Duration::from_secs(10), "{up:?}");
    assert!(status.success(), "{stderr}");
    assert!(!stderr.contains("waiting"), "{stderr}");
    assert!(stderr.contains("sspr-bridge listening"), "{stderr}");
}

#[tokio::test]
async fn migrate_waits_for_the_secret_key_file_too() {
    let setup = Setup::new("").await;
    let key_file = setup.dir.path().join("secret-key");
    let key = setup.var("SSPR__SECURITY__SECRET_KEY").to_owned();
    let setup = setup
        .with("SSPR__SECURITY__SECRET_KEY", "")
        .with(
            "SSPR__SECURITY__SECRET_KEY_FILE",
            key_file.display().to_string(),
        )
        .with("SSPR__SERVER__STARTUP_WAIT", "20s");
    let child = setup
        .command(&["migrate"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    std::fs::write(&key_file, format!("{key}\n")).unwrap();
    let (status, stderr) = tokio::task::spawn_blocking(move || {
        exited(child, Duration::from_secs(20)).expect("migrate ends")
    })
    .await
    .unwrap();
    assert!(status.success(), "{stderr}");
    assert!(
        stderr.contains("security.secret_key_file") && stderr.contains("appeared after"),
        "{stderr}"
    );
}
