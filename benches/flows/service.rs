//! The processes under test, each on its own so its memory is its own: the release
//! `sspr-bridge serve` with a configuration the bench writes, and an axum hello-world (this very
//! program, run again with `--hello`). Memory is read from /proc/PID/status.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::client::Http;

/// A child process, killed when dropped (also when the bench fails half-way).
pub struct Process {
    child: Child,
    pub base_url: String,
    pub log: Option<PathBuf>,
}

impl Process {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// A field of /proc/PID/status in kB, e.g. `VmRSS` (resident now) or `VmHWM` (peak).
    pub fn status_kb(&self, field: &str) -> Option<u64> {
        status_kb(self.pid(), field)
    }

    /// RssAnon and RssFile: heap and stacks, and the mapped binary and libraries.
    pub fn rss_split(&self) -> Option<(u64, u64)> {
        self.status_kb("RssAnon").zip(self.status_kb("RssFile"))
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn status_kb(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find_map(|line| {
        line.strip_prefix(field)?
            .strip_prefix(':')?
            .trim()
            .strip_suffix("kB")?
            .trim()
            .parse()
            .ok()
    })
}

/// Samples a process's VmRSS every 20 ms while a stage runs; the highest seen.
pub struct RssWatch {
    peak: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl RssWatch {
    pub fn start(pid: u32) -> Self {
        let peak = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let task = tokio::spawn({
            let (peak, stop) = (peak.clone(), stop.clone());
            async move {
                while !stop.load(Ordering::Relaxed) {
                    if let Some(kb) = status_kb(pid, "VmRSS") {
                        peak.fetch_max(kb, Ordering::Relaxed);
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        });
        Self { peak, stop, task }
    }

    /// The highest VmRSS seen, in kB.
    pub async fn finish(self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.task.await;
        self.peak.load(Ordering::Relaxed)
    }
}

fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// The bearer token of the service's `/metrics`, which the bench reads LDAP timings from.
pub const METRICS_TOKEN: &str = "bench-metrics";

/// What the service is configured with, besides the DC.
pub struct ServiceSettings<'a> {
    pub ldaps_url: &'a str,
    pub ca_file: &'a Path,
    pub base_dn: &'a str,
    pub bind_dn: &'a str,
    pub bind_password: &'a str,
    pub database_url: Option<&'a str>,
    pub pool_size: usize,
    /// `database.max_connections`; `None`: the default.
    pub db_connections: Option<u32>,
}

/// Writes the configuration into `dir` and starts `sspr-bridge serve` on a free port; returns
/// once `/healthz` answers.
pub async fn start_service(
    binary: &Path,
    dir: &Path,
    s: &ServiceSettings<'_>,
) -> Result<Process, String> {
    let port = free_port().map_err(|e| e.to_string())?;
    let database = match s.database_url {
        Some(url) => url.to_owned(),
        None => format!("sqlite://{}/sspr.db", dir.display()),
    };
    // Throttles high enough never to refuse the bench, but still doing their work: every
    // request is counted against its own client address (X-Forwarded-For from 127.0.0.1, a
    // trusted proxy), as the service would count real users behind a reverse proxy.
    let config = format!(
        r#"
[server]
listen = "127.0.0.1:{port}"
public_url = "http://127.0.0.1:{port}"
trusted_proxies = ["127.0.0.1"]

[licence]
azure_ad_premium = true

[throttle]
user_max_failures = 1000000
ip_max_starts = 1000000
ip_max_verifications = 1000000

[directory]
urls = [{url:?}]
ca_file = {ca:?}
base_dn = {base:?}
bind_dn = {bind_dn:?}
bind_password = {bind_pw:?}
pool_size = {pool}

[database]
url = {database:?}
{db_connections}

[metrics]
token = "{METRICS_TOKEN}"

[security]
secret_key = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
"#,
        url = s.ldaps_url,
        ca = s.ca_file.display().to_string(),
        base = s.base_dn,
        bind_dn = s.bind_dn,
        bind_pw = s.bind_password,
        pool = s.pool_size,
        db_connections = s
            .db_connections
            .map_or_else(String::new, |n| format!("max_connections = {n}")),
        METRICS_TOKEN = METRICS_TOKEN,
    );
    let config_file = dir.join("sspr-bridge.toml");
    std::fs::write(&config_file, config).map_err(|e| e.to_string())?;
    let log = dir.join("service.log");
    let log_file = std::fs::File::create(&log).map_err(|e| e.to_string())?;
    let child = Command::new(binary)
        .arg("serve")
        .arg("--config")
        .arg(&config_file)
        .env_remove("SSPR_CONFIG")
        .stdin(Stdio::null())
        .stdout(log_file.try_clone().map_err(|e| e.to_string())?)
        .stderr(log_file)
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", binary.display()))?;
    let process = Process {
        child,
        base_url: format!("http://127.0.0.1:{port}"),
        log: Some(log),
    };
    wait_healthy(&process).await?;
    Ok(process)
}

async fn wait_healthy(process: &Process) -> Result<(), String> {
    let http = Http::new(&process.base_url);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if matches!(http.get("/healthz").await, Ok((status, _)) if status.is_success()) {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!(
                "{} did not answer /healthz within 30 s (log: {:?})",
                process.base_url, process.log
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Runs this program again as the hello-world server and waits for its port.
pub async fn start_hello() -> Result<Process, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut child = Command::new(exe)
        .args(["--hello", "127.0.0.1:0"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start the hello-world server: {e}"))?;
    let stdout = child.stdout.take().expect("piped");
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .map_err(|e| e.to_string())?;
    let addr = line
        .trim()
        .strip_prefix("listening on ")
        .ok_or_else(|| format!("unexpected hello-world output {line:?}"))?
        .to_owned();
    let process = Process {
        child,
        base_url: format!("http://{addr}"),
        log: None,
    };
    wait_healthy(&process).await?;
    Ok(process)
}

/// The baseline: axum's hello-world, on the same multi-threaded runtime as the service.
pub fn serve_hello(addr: &str) -> std::process::ExitCode {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .expect("bind the hello-world port");
        println!("listening on {}", listener.local_addr().expect("bound"));
        let app = axum::Router::new()
            .route("/", axum::routing::get(|| async { "Hello, World!" }))
            .route("/healthz", axum::routing::get(|| async { "ok" }));
        axum::serve(listener, app).await.expect("serve");
    });
    std::process::ExitCode::SUCCESS
}
