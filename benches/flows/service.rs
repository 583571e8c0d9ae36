//! The process under test, the release `sspr-bridge serve` with a configuration the bench
//! writes. Its memory is read from /proc/PID/status, its CPU time from /proc/PID/stat.

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

    /// CPU time the process has used so far, user and system, in milliseconds (its threads
    /// together: the runtime's workers, sqlx's SQLite thread, blocking threads, the outbox).
    pub fn cpu_ms(&self) -> Option<f64> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid())).ok()?;
        // The fields after the command name, which is in parentheses and may hold spaces:
        // state is field 3, utime and stime are fields 14 and 15.
        let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
        let ticks: u64 =
            fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
        Some(ticks as f64 * 1000.0 / clock_ticks_per_second())
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

/// `getconf CLK_TCK`, the unit of /proc/PID/stat's times (100 on Linux unless built otherwise).
fn clock_ticks_per_second() -> f64 {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
            .unwrap_or(100.0)
    })
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
    /// The SMTP sink (host, port); `None`: no `[smtp]`, so no mail and no email method.
    pub smtp: Option<(&'a str, u16)>,
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
    // The sink's certificate is signed by the DC's test CA (certs/make-certs.sh).
    let smtp = s.smtp.map_or_else(String::new, |(host, port)| {
        format!(
            "[smtp]\nhost = {host:?}\nport = {port}\ntls = \"starttls\"\nca_file = {ca:?}\n\
             from = \"sspr-bridge bench <no-reply@sspr.test>\"\n",
            ca = s.ca_file.display().to_string(),
        )
    });
    // Throttles high enough never to refuse the bench, but still doing their work: every
    // request is counted against its own client address (X-Forwarded-For from 127.0.0.1, a
    // trusted proxy), as the service would count real users behind a reverse proxy. The public
    // URL is a host name, not the listening address, because WebAuthn refuses IP addresses: it
    // is the origin the passkey authenticator signs for (tests/it/authenticator.rs).
    let config = format!(
        r#"
[server]
listen = "127.0.0.1:{port}"
public_url = "{origin}"
trusted_proxies = ["127.0.0.1"]

[licence]
azure_ad_premium = true

[throttle]
user_max_failures = 1000000
ip_max_starts = 1000000
ip_max_verifications = 1000000
email_max_sends = 1000000

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

{smtp}
"#,
        origin = crate::authenticator::ORIGIN,
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
