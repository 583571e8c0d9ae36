//! Throughput, latency, CPU and memory of self-service flows against the DC's own write limit.
//!
//!     scripts/bench [--users N] [--seconds S]          # its own Samba DC and SMTP sink
//!     source /tmp/sspr-test-env.sh && cargo bench --bench flows -- --users 200 --seconds 6
//!
//! In one run against one DC: (1) the raw limit, what the service writes for a reset
//! (`unicodePwd` and `lockoutTime = 0` in one modify) with ldap3 alone on pooled connections
//! bound as the service account; (2) complete flows through the HTTP API of the release
//! `sspr-bridge serve`, one stage per kind of user: an authenticator app without and with an AD
//! `mail` (the reset notice mailed), an email address (the code read from the SMTP sink), a
//! passkey; raw writes and flows alternate in rounds at each concurrency; (3) TOTP flows at high
//! concurrency for memory; (4) a verification alone (no LDAP) against a bare SQLite transaction
//! of the same writes. Per flow stage, the service's own time (API request time less LDAP time)
//! and LDAP operations come from its /metrics, its CPU time from /proc/PID/stat, its memory from
//! /proc/PID/status. See docs/benchmarks.md for what was measured and what limits it.

#[allow(dead_code)] // the integration tests' authenticator; the bench signs, never clones
#[path = "../../tests/it/authenticator.rs"]
mod authenticator;
mod baseline;
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

use client::{BenchUser, Http, Kind, MailSink, ServiceCounters, UserPool};
use directory::Dc;
use load::{Run, closed_loop};
use report::{Report, StageRow};
use service::{Process, RssWatch, ServiceSettings};

#[derive(Parser)]
#[command(
    name = "flows",
    about = "Self-service flows per second against the DC's raw reset writes; latency, CPU and memory"
)]
struct Args {
    /// Test users to create and register first (each is a DC write): a tenth each (at least
    /// 16) with an email address and with a passkey, the rest half with an authenticator app
    /// and no AD mail, half with an app and an AD mail.
    #[arg(long, default_value_t = 2000)]
    users: usize,
    /// Length of each measured stage, in seconds.
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
    /// Raw replaces and flows alternate in this many rounds per level (each seconds/rounds long).
    #[arg(long, default_value_t = 3)]
    rounds: u32,
    /// Concurrency levels of the raw, flow, verification and SQLite stages.
    #[arg(long, value_delimiter = ',', default_value = "1,8")]
    concurrency: Vec<usize>,
    /// Concurrent flows of the memory stage.
    #[arg(long, default_value_t = 200)]
    load_concurrency: usize,
    /// Flows started, then verified, per level of the verification stage (at most; one per user
    /// whose TOTP step is unspent).
    #[arg(long, default_value_t = 1000)]
    verify_flows: usize,
    /// Stages to run, of raw,flows,load,verify (raw and flows alternate per level; verify is
    /// followed by the bare SQLite transactions).
    #[arg(long, value_delimiter = ',', default_value = "raw,flows,load,verify")]
    stages: Vec<Stage>,
    /// The flow stages, of totp,totp-notice,email,passkey (the mail ones need the SMTP sink).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "totp,totp-notice,email,passkey"
    )]
    kinds: Vec<KindArg>,
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
    /// The SMTP sink the service mails through (none: no mail, and no email or notice stage).
    #[arg(long, env = "SSPR_TEST_SMTP_HOST")]
    smtp_host: Option<String>,
    #[arg(long, env = "SSPR_TEST_SMTP_PORT")]
    smtp_port: Option<u16>,
    /// The Maildir the sink writes, where the bench reads the codes.
    #[arg(long, env = "SSPR_TEST_MAILDIR")]
    maildir: Option<PathBuf>,
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
enum KindArg {
    Totp,
    TotpNotice,
    Email,
    Passkey,
}

impl KindArg {
    fn kind(self) -> Kind {
        match self {
            KindArg::Totp => Kind::Totp,
            KindArg::TotpNotice => Kind::TotpNotice,
            KindArg::Email => Kind::Email,
            KindArg::Passkey => Kind::Passkey,
        }
    }
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
    if !std::env::args().any(|a| a == "--bench") {
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

/// How many of `users` each kind gets, in [`Kind::ALL`]'s order (0 for a kind not measured).
fn split_users(users: usize, kinds: &[Kind]) -> Vec<usize> {
    let few = (users / 10).max(16);
    let mut counts: Vec<usize> = Kind::ALL
        .iter()
        .map(|k| match k {
            Kind::Email | Kind::Passkey if kinds.contains(k) => few,
            _ => 0,
        })
        .collect();
    let apps: Vec<usize> = Kind::ALL
        .iter()
        .enumerate()
        .filter(|(_, k)| matches!(k, Kind::Totp | Kind::TotpNotice) && kinds.contains(k))
        .map(|(i, _)| i)
        .collect();
    let rest = users.saturating_sub(counts.iter().sum());
    for (n, &i) in apps.iter().enumerate() {
        counts[i] = rest / apps.len() + usize::from(n < rest % apps.len());
    }
    counts
}

async fn run(args: Args) -> Result<(), String> {
    if args.concurrency.is_empty() || args.concurrency.contains(&0) || args.users == 0 {
        return Err("--concurrency needs levels of 1 or more, and --users at least 1".to_owned());
    }
    let smtp = match (&args.smtp_host, args.smtp_port, &args.maildir) {
        (Some(host), Some(port), Some(_)) => Some((host.as_str(), port)),
        _ => None,
    };
    let mut kinds: Vec<Kind> = args.kinds.iter().map(|k| k.kind()).collect();
    if smtp.is_none() {
        eprintln!(
            "no SMTP sink (SSPR_TEST_SMTP_HOST, SSPR_TEST_SMTP_PORT, SSPR_TEST_MAILDIR): \
             the email and notice stages are left out"
        );
        kinds.retain(|k| !matches!(k, Kind::Email | Kind::TotpNotice));
    }
    if kinds.is_empty() {
        return Err("no flow stage to run (--kinds)".to_owned());
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
    let prefix = format!("bn{run_id:04x}");
    let counts = split_users(args.users, &kinds);
    let mut names = Vec::with_capacity(args.users);
    let mut kind_of = Vec::with_capacity(args.users);
    for (kind, n) in Kind::ALL.iter().zip(&counts) {
        for _ in 0..*n {
            names.push(format!("{prefix}{:05}", names.len()));
            kind_of.push(*kind);
        }
    }

    let t = Instant::now();
    eprintln!(
        "creating {} users in {users_dn} on {} ...",
        names.len(),
        dc.url
    );
    let ad_mail: Vec<bool> = kind_of.iter().map(|k| k.ad_mail()).collect();
    let created = dc
        .create_users(&names, &ad_mail, &format!("Bench-{run_id:04x}-Start1!"), 4)
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
            let sink = Arc::new(MailSink::new(
                args.maildir.clone().filter(|_| smtp.is_some()),
                &prefix,
            ));
            let users = Users {
                names: &names,
                kind_of: &kind_of,
                kinds: &kinds,
                run_id,
            };
            stages(&args, &dc, &users, smtp, &sink, creation).await
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

/// The test users as created: names, the kind of each, the kinds measured.
struct Users<'a> {
    names: &'a [String],
    kind_of: &'a [Kind],
    kinds: &'a [Kind],
    run_id: u16,
}

async fn stages(
    args: &Args,
    dc: &Dc,
    users: &Users<'_>,
    smtp: Option<(&str, u16)>,
    sink: &Arc<MailSink>,
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
            smtp,
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
        users: users.names.len(),
        seconds: args.seconds,
        creation,
        idle_rss_kb: service.status_kb("VmRSS"),
        idle_split: service.rss_split(),
        load_average: (report::load_average(), String::new()),
        ..Report::default()
    };
    let http = Http::new(&service.base_url);

    eprintln!("registering each user's method (sign-in, begin, confirm) ...");
    let (registration, registered) = register_all(&http, sink, users).await;
    eprintln!(
        "  {} registered in {:.1} s ({:.0}/s), {} failed",
        registered.iter().map(|(_, g)| g.len()).sum::<usize>(),
        registration.elapsed.as_secs_f64(),
        registration.rate(),
        registration.errors
    );
    if registered.is_empty() {
        return Err(format!(
            "no user could register: {:?} (service log: {:?})",
            registration.error_samples, service.log
        ));
    }
    for e in &registration.error_samples {
        eprintln!("  registration error: {e}");
    }
    report.registration = Some(registration.elapsed);
    let mut pools: Vec<(Kind, Arc<UserPool>)> = Vec::new();
    for (kind, group) in registered {
        pools.push((kind, Arc::new(UserPool::new(group))));
    }

    let runs = |stage| args.stages.contains(&stage);
    // Raw writes and flows take turns in short rounds, so that a change in the machine's other
    // load (which moves the DC's CPU-bound password hashing a lot) hits all stages alike.
    let round = seconds / args.rounds.max(1);
    for &c in &args.concurrency {
        let mut raw = None::<Run>;
        let mut flows_by_kind: Vec<Option<FlowStage>> = pools.iter().map(|_| None).collect();
        for r in 1..=args.rounds.max(1) {
            if runs(Stage::Raw) {
                eprintln!("raw reset writes, concurrency {c}, round {r} ...");
                pool_run(
                    &mut raw,
                    dc.raw_replaces(users.names, c, round, true).await?,
                );
            }
            if runs(Stage::Flows) {
                for ((kind, pool), into) in pools.iter().zip(&mut flows_by_kind) {
                    eprintln!("{}, concurrency {c}, round {r} ...", kind.stage());
                    pool.wait_fresh(pool.len() / 2).await;
                    let stage = flows(&http, sink, pool, &service, c, round).await;
                    match into {
                        Some(f) => f.absorb(stage),
                        None => *into = Some(stage),
                    }
                }
            }
        }
        if let Some(raw) = raw {
            report.push(StageRow::new(report::RAW, &raw, None));
        }
        for ((kind, _), flow) in pools.iter().zip(flows_by_kind) {
            if let Some(flow) = flow {
                report.push(flow.row(kind.stage(), kind.steps()));
            }
        }
    }

    let totp = pools
        .iter()
        .find(|(k, _)| *k == Kind::Totp)
        .map(|(_, p)| p.clone());
    if let (true, Some(pool)) = (runs(Stage::Load), &totp) {
        let c = args.load_concurrency;
        eprintln!("TOTP flows, concurrency {c} (memory under load) ...");
        pool.wait_fresh(pool.len().min(2 * c)).await;
        let row = flows(&http, sink, pool, &service, c, seconds)
            .await
            .row(report::LOAD, Kind::Totp.steps());
        report.load_peak_rss_kb = row.peak_rss_kb;
        report.push(row);
    }
    if let (true, Some(pool)) = (runs(Stage::Verify), &totp) {
        for &c in &args.concurrency {
            eprintln!("verification alone (started flows), concurrency {c} ...");
            let (started, verified) = verify_stage(&http, pool, &service, args, c, seconds).await;
            report.push(started);
            report.push(verified);
            eprintln!("bare SQLite transactions of a verification's writes, concurrency {c} ...");
            let run = baseline::sqlite_transactions(dir.path(), c, seconds).await?;
            report.push(StageRow::new(report::SQLITE, &run, None));
        }
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
    report.starved = pools
        .iter()
        .map(|(_, p)| p.starved.load(std::sync::atomic::Ordering::Relaxed))
        .sum();
    report.mails = sink.received.load(std::sync::atomic::Ordering::Relaxed);

    let text = report.text();
    println!("{text}");
    if let Some(path) = &args.markdown {
        std::fs::write(path, report.markdown()).map_err(|e| format!("{}: {e}", path.display()))?;
        eprintln!("results written to {}", path.display());
    }
    drop(service);
    Ok(())
}

/// Registers every user's method through the API, 16 at a time; the registered users by kind,
/// in [`Kind::ALL`]'s order.
async fn register_all(
    http: &Http,
    sink: &Arc<MailSink>,
    users: &Users<'_>,
) -> (Run, Vec<(Kind, Vec<BenchUser>)>) {
    let names: Arc<Vec<(String, Kind)>> = Arc::new(
        users
            .names
            .iter()
            .cloned()
            .zip(users.kind_of.iter().copied())
            .collect(),
    );
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let done = Arc::new(Mutex::new(Vec::with_capacity(names.len())));
    let run_id = users.run_id;
    let run = closed_loop(16, Duration::from_secs(24 * 3600), {
        let (http, done) = (http.clone(), done.clone());
        let sink = sink.clone();
        move |_| {
            let (http, names, next, done, sink) = (
                http.clone(),
                names.clone(),
                next.clone(),
                done.clone(),
                sink.clone(),
            );
            async move {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let (sam, kind) = names.get(i)?.clone();
                let password = format!("Bench-{run_id:04x}-Start1!");
                let t = Instant::now();
                Some(
                    client::register(&http, &sink, kind, &sam, &password, client::address_of(i))
                        .await
                        .map(|user| {
                            done.lock().expect("not poisoned").push((kind, user));
                            vec![t.elapsed()]
                        }),
                )
            }
        }
    })
    .await;
    let done = std::mem::take(&mut *done.lock().expect("not poisoned"));
    let mut by_kind: Vec<(Kind, Vec<BenchUser>)> = Kind::ALL
        .iter()
        .filter(|k| users.kinds.contains(k))
        .map(|&k| (k, Vec::new()))
        .collect();
    for (kind, user) in done {
        if let Some((_, group)) = by_kind.iter_mut().find(|(k, _)| *k == kind) {
            group.push(user);
        }
    }
    by_kind.retain(|(_, group)| !group.is_empty());
    (run, by_kind)
}

/// A stage of complete flows: the run, the service's highest VmRSS, its counters and CPU time.
struct FlowStage {
    run: Run,
    peak_rss_kb: u64,
    service: Option<ServiceCounters>,
    cpu_ms: Option<f64>,
}

impl FlowStage {
    fn absorb(&mut self, other: FlowStage) {
        self.run.absorb(other.run);
        self.peak_rss_kb = self.peak_rss_kb.max(other.peak_rss_kb);
        self.service = self.service.take().zip(other.service).map(|(mut a, b)| {
            a.add(&b);
            a
        });
        self.cpu_ms = self.cpu_ms.zip(other.cpu_ms).map(|(a, b)| a + b);
    }

    fn row(&self, stage: &str, steps: &'static [&'static str]) -> StageRow {
        let mut row = StageRow::new(stage, &self.run, Some(self.peak_rss_kb));
        row.step_names = steps;
        row.service = self.service.clone();
        row.cpu_ms = self.cpu_ms;
        row
    }
}

fn pool_run(into: &mut Option<Run>, run: Run) {
    match into {
        Some(pooled) => pooled.absorb(run),
        None => *into = Some(run),
    }
}

/// The service's counters and CPU time, before and after a stage.
struct Meter<'a> {
    http: &'a Http,
    service: &'a Process,
    counters: Option<ServiceCounters>,
    cpu_ms: Option<f64>,
}

impl<'a> Meter<'a> {
    async fn start(http: &'a Http, service: &'a Process) -> Self {
        Self {
            http,
            service,
            counters: http.service_counters(service::METRICS_TOKEN).await.ok(),
            cpu_ms: service.cpu_ms(),
        }
    }

    /// What the service counted and spent since the start (the scrape itself excluded: the
    /// CPU time is read before it).
    async fn finish(self) -> (Option<ServiceCounters>, Option<f64>) {
        let cpu = self.service.cpu_ms().zip(self.cpu_ms).map(|(a, b)| a - b);
        let after = self
            .http
            .service_counters(service::METRICS_TOKEN)
            .await
            .ok();
        (after.zip(self.counters).map(|(a, b)| a.since(&b)), cpu)
    }
}

/// Complete flows for `seconds` at `concurrency`, each by the next fresh user of `pool`.
async fn flows(
    http: &Http,
    sink: &Arc<MailSink>,
    pool: &Arc<UserPool>,
    service: &Process,
    concurrency: usize,
    seconds: Duration,
) -> FlowStage {
    let meter = Meter::start(http, service).await;
    let watch = RssWatch::start(service.pid());
    let run = closed_loop(concurrency, seconds, {
        let (http, pool, sink) = (http.clone(), pool.clone(), sink.clone());
        move |_| {
            let (http, pool, sink) = (http.clone(), pool.clone(), sink.clone());
            async move {
                let mut user = pool.take().await;
                let result = client::flow(&http, &sink, &mut user).await;
                pool.give_back(user);
                Some(result)
            }
        }
    })
    .await;
    let peak_rss_kb = watch.finish().await;
    let (service, cpu_ms) = meter.finish().await;
    FlowStage {
        run,
        peak_rss_kb,
        service,
        cpu_ms,
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
    let meter = Meter::start(http, service).await;
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
    let (counters, cpu_ms) = meter.finish().await;
    // Flows the time did not allow to verify: their users' steps are unspent.
    for (user, _) in ready.lock().expect("not poisoned").drain(..) {
        pool.give_back(user);
    }
    let mut verified = StageRow::new(report::VERIFY, &verified, Some(peak));
    verified.service = counters;
    verified.cpu_ms = cpu_ms;
    (
        StageRow::new("start (for verify)", &started, None),
        verified,
    )
}
