//! Throughput, latency and memory of self-service flows against the DC's own write limit.
//!
//!     scripts/bench [--users N] [--seconds S]          # its own Samba DC, release build
//!     source /tmp/sspr-test-env.sh && cargo bench --bench flows -- --users 100 --seconds 5
//!
//! In one run against one DC: (1) the raw limit, `unicodePwd` replaces with ldap3 alone on
//! pooled connections bound as the service account; (2) complete flows through the HTTP API of
//! the release `sspr-bridge serve` (start, verify an authenticator code, set the password) at
//! the same concurrencies, each by a registered user whose code's step is unspent; (3) flows at
//! high concurrency for memory; (4) a verification alone (no LDAP) against an axum hello-world
//! in its own process, with the same client. Memory is the service's VmRSS/VmHWM from /proc.
//! See docs/benchmarks.md for what was measured and what limits it.

mod client;
mod directory;
mod load;
mod report;
mod service;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Parser;

use client::{BenchUser, Http, UserPool};
use directory::Dc;
use load::{Run, closed_loop};
use report::{Report, StageRow};
use service::{Process, RssWatch, ServiceSettings};

#[derive(Parser)]
#[command(
    name = "flows",
    about = "Self-service flows per second against the DC's raw unicodePwd replaces; latency and memory"
)]
struct Args {
    /// Test users to create and register with an authenticator app first (each is a DC write).
    #[arg(long, default_value_t = 2000)]
    users: usize,
    /// Length of each measured stage, in seconds.
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
    /// Raw replaces and flows alternate in this many rounds per level (each seconds/rounds long).
    #[arg(long, default_value_t = 3)]
    rounds: u32,
    /// Concurrency levels of the raw, flow, verification and hello-world stages.
    #[arg(long, value_delimiter = ',', default_value = "1,4,16")]
    concurrency: Vec<usize>,
    /// Concurrent flows of the memory stage.
    #[arg(long, default_value_t = 200)]
    load_concurrency: usize,
    /// Flows started, then verified, per level of the verification stage (at most; one per user
    /// whose TOTP step is unspent).
    #[arg(long, default_value_t = 1000)]
    verify_flows: usize,
    /// Stages to run, of raw,flows,load,verify (raw and flows alternate per level; verify
    /// alternates with the hello-world).
    #[arg(long, value_delimiter = ',', default_value = "raw,flows,load,verify")]
    stages: Vec<Stage>,
    /// Also measure raw replaces that clear lockoutTime in the same modify, as the service's
    /// reset does (`reset.unlock_on_reset`).
    #[arg(long)]
    raw_unlock: bool,
    /// The service's `directory.pool_size` (the raw stage opens as many connections as its
    /// concurrency).
    #[arg(long, default_value_t = 16)]
    pool_size: usize,
    /// The service's `database.max_connections` (PostgreSQL, or an older binary: the service now
    /// gives SQLite one connection whatever this says).
    #[arg(long)]
    db_connections: Option<u32>,
    #[arg(long, env = "SSPR_TEST_LDAPS_URL")]
    ldaps_url: String,
    #[arg(long, env = "SSPR_TEST_CA_FILE")]
    ca_file: PathBuf,
    #[arg(long, env = "SSPR_TEST_BASE_DN")]
    base_dn: String,
    /// Creates and deletes the test users.
    #[arg(long, env = "SSPR_TEST_ADMIN_DN")]
    admin_dn: String,
    #[arg(long, env = "SSPR_TEST_ADMIN_PASSWORD", hide_env_values = true)]
    admin_password: String,
    /// The delegated account the service and the raw stage bind as.
    #[arg(long, env = "SSPR_TEST_SERVICE_DN")]
    service_dn: String,
    #[arg(long, env = "SSPR_TEST_SERVICE_PASSWORD", hide_env_values = true)]
    service_password: String,
    /// Container for the test users (default CN=Users,<base DN>, where the harness delegates).
    #[arg(long)]
    users_dn: Option<String>,
    /// The service's database (default: SQLite in a temporary directory).
    #[arg(long)]
    database_url: Option<String>,
    /// The service binary (default: the one cargo built with this bench).
    #[arg(long, default_value = env!("CARGO_BIN_EXE_sspr-bridge"))]
    service_bin: PathBuf,
    /// Leave the test users in the directory (for a throwaway DC: deleting costs a write each).
    #[arg(long)]
    keep_users: bool,
    /// Also write the results as Markdown to this file.
    #[arg(long)]
    markdown: Option<PathBuf>,
    /// Passed by `cargo bench`: without it, the program runs as a test and does nothing.
    #[arg(long, hide = true)]
    bench: bool,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Stage {
    Raw,
    Flows,
    Load,
    Verify,
}

/// A password AD and the service's policy accept, never used before.
pub fn new_password() -> String {
    format!("Bn-{:016x}-q9Z!", rand::random::<u64>())
}

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().collect();
    if argv.get(1).map(String::as_str) == Some("--hello") {
        return service::serve_hello(argv.get(2).map_or("127.0.0.1:0", String::as_str));
    }
    if !argv.iter().any(|a| a == "--bench") {
        // `cargo test --all-targets` (scripts/test) runs bench targets too, with the test
        // harness's arguments; `cargo bench` passes --bench. As a test there is nothing to do.
        eprintln!("flows is a benchmark: run it with scripts/bench or cargo bench --bench flows");
        return ExitCode::SUCCESS;
    }
    let _ = rustls::crypto::ring::default_provider().install_default();
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    match runtime.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench failed: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<(), String> {
    if args.concurrency.is_empty() || args.concurrency.contains(&0) || args.users == 0 {
        return Err("--concurrency needs levels of 1 or more, and --users at least 1".to_owned());
    }
    let users_dn = args
        .users_dn
        .clone()
        .unwrap_or_else(|| format!("CN=Users,{}", args.base_dn));
    let dc = Dc::new(
        &args.ldaps_url,
        &args.ca_file,
        &args.base_dn,
        &users_dn,
        (args.admin_dn.clone(), args.admin_password.clone()),
        (args.service_dn.clone(), args.service_password.clone()),
    )?;
    let run_id: u16 = rand::random();
    let names: Vec<String> = (0..args.users)
        .map(|i| format!("bn{run_id:04x}{i:05}"))
        .collect();

    let t = Instant::now();
    eprintln!(
        "creating {} users in {users_dn} on {} ...",
        names.len(),
        dc.url
    );
    let created = dc
        .create_users(&names, &format!("Bench-{run_id:04x}-Start1!"), 4)
        .await;
    let creation = t.elapsed();
    let result = match created {
        Ok(()) => {
            eprintln!(
                "  {} users in {:.1} s ({:.0}/s)",
                names.len(),
                creation.as_secs_f64(),
                names.len() as f64 / creation.as_secs_f64()
            );
            stages(&args, &dc, &names, run_id, creation).await
        }
        Err(e) => Err(e),
    };
    if !args.keep_users {
        let t = Instant::now();
        eprintln!("deleting the test users ...");
        match dc.delete_users(&names, 4).await {
            Ok(()) => eprintln!("  deleted in {:.1} s", t.elapsed().as_secs_f64()),
            Err(e) => eprintln!("  could not delete every test user: {e}"),
        }
    }
    result
}

async fn stages(
    args: &Args,
    dc: &Dc,
    names: &[String],
    run_id: u16,
    creation: Duration,
) -> Result<(), String> {
    let seconds = Duration::from_secs_f64(args.seconds);
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let service = service::start_service(
        &args.service_bin,
        dir.path(),
        &ServiceSettings {
            ldaps_url: &args.ldaps_url,
            ca_file: &args.ca_file,
            base_dn: &args.base_dn,
            bind_dn: &args.service_dn,
            bind_password: &args.service_password,
            database_url: args.database_url.as_deref(),
            pool_size: args.pool_size,
            db_connections: args.db_connections,
        },
    )
    .await?;
    eprintln!(
        "service pid {} at {} (log: {})",
        service.pid(),
        service.base_url,
        service
            .log
            .as_deref()
            .unwrap_or(std::path::Path::new("-"))
            .display()
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut report = Report {
        users: names.len(),
        seconds: args.seconds,
        creation,
        idle_rss_kb: service.status_kb("VmRSS"),
        idle_split: service.rss_split(),
        load_average: (report::load_average(), String::new()),
        ..Report::default()
    };
    let http = Http::new(&service.base_url);

    eprintln!("registering an authenticator app for each user (sign-in, begin, confirm) ...");
    let (registration, users) = register_all(&http, names, run_id).await;
    eprintln!(
        "  {} registered in {:.1} s ({:.0}/s), {} failed",
        users.len(),
        registration.elapsed.as_secs_f64(),
        registration.rate(),
        registration.errors
    );
    if users.is_empty() {
        return Err(format!(
            "no user could register: {:?} (service log: {:?})",
            registration.error_samples, service.log
        ));
    }
    report.registration = Some(registration.elapsed);
    let pool = Arc::new(UserPool::new(users));

    let runs = |stage| args.stages.contains(&stage);
    // Raw replaces and flows take turns in short rounds, so that a change in the machine's
    // other load (which moves the DC's CPU-bound password hashing a lot) hits both alike.
    let round = seconds / args.rounds.max(1);
    for &c in &args.concurrency {
        let (mut raw, mut raw_unlock, mut flow) = (None::<Run>, None::<Run>, None::<FlowStage>);
        for r in 1..=args.rounds.max(1) {
            if runs(Stage::Raw) {
                eprintln!("raw unicodePwd replaces, concurrency {c}, round {r} ...");
                pool_run(&mut raw, dc.raw_replaces(names, c, round, false).await?);
                if args.raw_unlock {
                    eprintln!("raw replaces + lockoutTime = 0, concurrency {c}, round {r} ...");
                    pool_run(
                        &mut raw_unlock,
                        dc.raw_replaces(names, c, round, true).await?,
                    );
                }
            }
            if runs(Stage::Flows) {
                eprintln!("complete flows, concurrency {c}, round {r} ...");
                pool.wait_fresh(pool.len() / 2).await;
                let stage = flows(&http, &pool, &service, c, round).await;
                match &mut flow {
                    Some(f) => f.absorb(stage),
                    None => flow = Some(stage),
                }
            }
        }
        if let Some(raw) = raw {
            report.push(StageRow::new("raw replace", &raw, None));
        }
        if let Some(raw) = raw_unlock {
            report.push(StageRow::new("raw + unlock", &raw, None));
        }
        if let Some(flow) = flow {
            report.push(flow.row());
        }
    }

    if runs(Stage::Load) {
        let c = args.load_concurrency;
        eprintln!("complete flows, concurrency {c} (memory under load) ...");
        pool.wait_fresh(pool.len().min(2 * c)).await;
        let row = flows(&http, &pool, &service, c, seconds).await.row();
        report.load_peak_rss_kb = row.peak_rss_kb;
        report.push(row);
    }
    if runs(Stage::Verify) {
        verify_and_hello(args, &http, &pool, &service, &mut report, seconds).await?;
    }

    // Idle again: the client's keep-alive connections closed (each holds the service's buffers),
    // and past the 10 s after which tokio ends idle blocking threads (zxcvbn runs there).
    drop(http);
    eprintln!("service memory when idle again (in 15 s) ...");
    tokio::time::sleep(Duration::from_secs(15)).await;
    report.after_rss_kb = service.status_kb("VmRSS");
    report.after_split = service.rss_split();
    report.load_average.1 = report::load_average();
    report.hwm_kb = service.status_kb("VmHWM");
    report.starved = pool.starved.load(std::sync::atomic::Ordering::Relaxed);

    let text = report.text();
    println!("{text}");
    if let Some(path) = &args.markdown {
        std::fs::write(path, report.markdown()).map_err(|e| format!("{}: {e}", path.display()))?;
        eprintln!("results written to {}", path.display());
    }
    drop(service);
    Ok(())
}

/// Per level: a verification alone, then the hello-world with the same client.
async fn verify_and_hello(
    args: &Args,
    http: &Http,
    pool: &Arc<UserPool>,
    service: &Process,
    report: &mut Report,
    seconds: Duration,
) -> Result<(), String> {
    let hello = service::start_hello().await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    report.hello_idle_rss_kb = hello.status_kb("VmRSS");
    let hello_http = Http::new(&hello.base_url);
    for &c in &args.concurrency {
        eprintln!("verification alone (started flows), concurrency {c} ...");
        let (started, verified) = verify_stage(http, pool, service, args, c, seconds).await;
        report.push(started);
        report.push(verified);

        eprintln!("axum hello-world, concurrency {c} ...");
        let run = closed_loop(c, seconds, {
            let http = hello_http.clone();
            move |_| {
                let http = http.clone();
                async move {
                    let t = Instant::now();
                    Some(match http.get("/").await {
                        Ok((status, _)) if status.is_success() => Ok(vec![t.elapsed()]),
                        Ok((status, _)) => Err(format!("hello-world: {status}")),
                        Err(e) => Err(e),
                    })
                }
            }
        })
        .await;
        report.push(StageRow::new("hello-world", &run, None));
    }
    drop(hello);
    Ok(())
}

/// Registers every user through the API, 16 at a time.
async fn register_all(http: &Http, names: &[String], run_id: u16) -> (Run, Vec<BenchUser>) {
    let names: Arc<Vec<String>> = Arc::new(names.to_vec());
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let users = Arc::new(Mutex::new(Vec::with_capacity(names.len())));
    let run = closed_loop(16, Duration::from_secs(24 * 3600), {
        let (http, users) = (http.clone(), users.clone());
        move |_| {
            let (http, names, next, users) =
                (http.clone(), names.clone(), next.clone(), users.clone());
            async move {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let sam = names.get(i)?;
                let password = format!("Bench-{run_id:04x}-Start1!");
                let t = Instant::now();
                Some(
                    client::register(&http, sam, &password, client::address_of(i))
                        .await
                        .map(|user| {
                            users.lock().expect("not poisoned").push(user);
                            vec![t.elapsed()]
                        }),
                )
            }
        }
    })
    .await;
    let users = std::mem::take(&mut *users.lock().expect("not poisoned"));
    (run, users)
}

/// A stage of complete flows: the run, the service's highest VmRSS and its LDAP operations.
struct FlowStage {
    run: Run,
    peak_rss_kb: u64,
    ldap: Option<client::LdapTotals>,
}

impl FlowStage {
    fn absorb(&mut self, other: FlowStage) {
        self.run.absorb(other.run);
        self.peak_rss_kb = self.peak_rss_kb.max(other.peak_rss_kb);
        self.ldap = self.ldap.take().zip(other.ldap).map(|(mut a, b)| {
            a.add(&b);
            a
        });
    }

    fn row(&self) -> StageRow {
        let mut row = StageRow::new("flow", &self.run, Some(self.peak_rss_kb));
        row.ldap = self.ldap.clone();
        row
    }
}

fn pool_run(into: &mut Option<Run>, run: Run) {
    match into {
        Some(pooled) => pooled.absorb(run),
        None => *into = Some(run),
    }
}

/// Complete flows for `seconds` at `concurrency`.
async fn flows(
    http: &Http,
    pool: &Arc<UserPool>,
    service: &Process,
    concurrency: usize,
    seconds: Duration,
) -> FlowStage {
    let before = http.ldap_totals(service::METRICS_TOKEN).await.ok();
    let watch = RssWatch::start(service.pid());
    let run = closed_loop(concurrency, seconds, {
        let (http, pool) = (http.clone(), pool.clone());
        move |_| {
            let (http, pool) = (http.clone(), pool.clone());
            async move {
                let mut user = pool.take().await;
                let result = client::flow(&http, &mut user).await;
                pool.give_back(user);
                Some(result)
            }
        }
    })
    .await;
    let peak_rss_kb = watch.finish().await;
    let after = http.ldap_totals(service::METRICS_TOKEN).await.ok();
    FlowStage {
        run,
        peak_rss_kb,
        ldap: before.zip(after).map(|(b, a)| a.since(&b)),
    }
}

/// Starts a flow for each of up to `verify_flows` users (16 at a time), then verifies them at
/// `concurrency`: the service's work without the directory.
async fn verify_stage(
    http: &Http,
    pool: &Arc<UserPool>,
    service: &Process,
    args: &Args,
    concurrency: usize,
    seconds: Duration,
) -> (StageRow, StageRow) {
    let n = args.verify_flows.min(pool.len());
    pool.wait_fresh(n).await;
    let batch = Arc::new(Mutex::new(pool.take_batch(n)));
    let ready = Arc::new(Mutex::new(Vec::with_capacity(n)));
    let started = closed_loop(16, Duration::from_secs(3600), {
        let (http, pool, batch, ready) = (http.clone(), pool.clone(), batch.clone(), ready.clone());
        move |_| {
            let (http, pool, ready) = (http.clone(), pool.clone(), ready.clone());
            let user = batch.lock().expect("not poisoned").pop();
            async move {
                let user = user?;
                let t = Instant::now();
                Some(match client::start(&http, &user).await {
                    Ok(flow) => {
                        let took = t.elapsed();
                        ready.lock().expect("not poisoned").push((user, flow));
                        Ok(vec![took])
                    }
                    Err(e) => {
                        pool.give_back(user);
                        Err(e)
                    }
                })
            }
        }
    })
    .await;
    let before = http.ldap_totals(service::METRICS_TOKEN).await.ok();
    let watch = RssWatch::start(service.pid());
    let verified = closed_loop(concurrency, seconds, {
        let (http, pool, ready) = (http.clone(), pool.clone(), ready.clone());
        move |_| {
            let (http, pool) = (http.clone(), pool.clone());
            let next = ready.lock().expect("not poisoned").pop();
            async move {
                let (mut user, flow) = next?;
                let t = Instant::now();
                let result = client::verify(&http, &mut user, &flow).await;
                let took = t.elapsed();
                pool.give_back(user);
                Some(result.map(|()| vec![took]))
            }
        }
    })
    .await;
    let peak = watch.finish().await;
    let after = http.ldap_totals(service::METRICS_TOKEN).await.ok();
    // Flows the time did not allow to verify: their users' steps are unspent.
    for (user, _) in ready.lock().expect("not poisoned").drain(..) {
        pool.give_back(user);
    }
    let mut verified = StageRow::new("verify alone", &verified, Some(peak));
    verified.ldap = before.zip(after).map(|(b, a)| a.since(&b));
    (
        StageRow::new("start (for verify)", &started, None),
        verified,
    )
}
