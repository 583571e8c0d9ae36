//! How long `sspr-bridge report` takes on a large domain.
//!
//!     source /tmp/sspr-test-env.sh && cargo bench --bench report -- [--users 50000] [--audit-rows 1000000]
//!
//! Creating 50,000 users in Samba takes hours (20-50 adds a second), so the report is measured
//! twice: (1) on a directory of `--users` accounts held in memory, with a real SQLite database
//! (or `--database-url`) filled with their registrations, a year of audit rows and some blocks,
//! which times everything the service itself does; (2) on the test DC, the paged read of every
//! user it has and the whole report with it, which times what the directory adds per user.
//! Prints figures, asserts none: they depend on the machine.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use clap::Parser;
use rand::Rng;
use secrecy::SecretString;
use sqlx::{AnyConnection, Connection};
use sspr_bridge::config::{Config, Sources};
use sspr_bridge::domain::ObjectGuid;
use sspr_bridge::domain::clock::Timestamp;
use sspr_bridge::domain::directory::{
    AccountChange, BindGuard, DcId, DcStatus, Directory, DirectoryError, DirectoryUser,
    GuardedCheck, ManagerLink, PasswordCheck,
};
use sspr_bridge::domain::policy::PasswordPolicy;
use sspr_bridge::domain::report::{Per, ReportQueries, Reports};
use sspr_bridge::wiring;

#[derive(Parser)]
#[command(name = "report", about = "Time of the rollout report on many users")]
struct Args {
    /// Accounts of the directory held in memory.
    #[arg(long, default_value_t = 50_000)]
    users: usize,
    /// Share of them with a registered method.
    #[arg(long, default_value_t = 0.6)]
    registered: f64,
    /// Audit rows over the last year (about 20 per user: sign-ins, flows, codes, resets).
    #[arg(long, default_value_t = 1_000_000)]
    audit_rows: usize,
    /// The database to fill; a new SQLite file in a temporary directory if not given. A
    /// PostgreSQL database must be empty (a fresh schema).
    #[arg(long)]
    database_url: Option<String>,
    /// How many times each report is made; the table gives the fastest and the slowest.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    #[arg(long, env = "SSPR_TEST_LDAPS_URL")]
    ldaps_url: String,
    #[arg(long, env = "SSPR_TEST_CA_FILE")]
    ca_file: String,
    #[arg(long, env = "SSPR_TEST_BASE_DN")]
    base_dn: String,
    #[arg(long, env = "SSPR_TEST_SERVICE_DN")]
    bind_dn: String,
    #[arg(long, env = "SSPR_TEST_SERVICE_PASSWORD")]
    bind_password: String,
    /// What `cargo bench` passes to every bench target.
    #[arg(long, hide = true)]
    bench: bool,
}

const DAY_MS: i64 = 86_400_000;

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        // `cargo test --all-targets` (scripts/test) runs bench targets too, with the test
        // harness's arguments; `cargo bench` passes --bench. As a test there is nothing to do.
        eprintln!("report is a benchmark: run it with cargo bench --bench report");
        return;
    }
    let _ = rustls::crypto::ring::default_provider().install_default();
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(run(args));
}

async fn run(args: Args) {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = args
        .database_url
        .clone()
        .unwrap_or_else(|| format!("sqlite://{}/report.db", dir.path().display()));
    let config = config(&args, &url);
    let wired = wiring::wire(&config).await.expect("wire");
    let now = wired.deps.now();

    let users: Vec<DirectoryUser> = (0..args.users).map(fake_user).collect();
    let started = Instant::now();
    fill(&url, &users, &args, now).await;
    println!(
        "filled the {} database: {} users, {:.0}% registered, {} audit rows, in {:.1?}",
        wired.store.backend(),
        args.users,
        args.registered * 100.0,
        args.audit_rows,
        started.elapsed()
    );
    println!(
        "build: {}",
        if cfg!(debug_assertions) {
            "debug (unoptimised; `cargo bench` builds optimised and is faster)"
        } else {
            "optimised"
        }
    );
    println!();

    let mut deps = wired.deps.clone();
    deps.directory = Arc::new(InMemory {
        users,
        inner: wired.deps.directory.clone(),
    });
    let queries: &dyn ReportQueries = &wired.store;
    let since = now - Duration::from_secs(365 * 86_400);
    println!("{:<58} {:>10} {:>10}", "measured", "fastest", "slowest");
    for per in [Per::Day, Per::Week] {
        let label = format!(
            "report, {} in-memory users, a year per {}",
            args.users,
            per.as_str()
        );
        let times = timed(args.runs, || async {
            Reports::new(&deps, queries)
                .report(since, per)
                .await
                .expect("report");
        })
        .await;
        row(&label, &times);
    }
    let month = now - Duration::from_secs(30 * 86_400);
    let times = timed(args.runs, || async {
        Reports::new(&deps, queries)
            .report(month, Per::Day)
            .await
            .expect("report");
    })
    .await;
    row(
        &format!("report, {} in-memory users, 30 days per day", args.users),
        &times,
    );
    let current = Some(now - Duration::from_secs(365 * 86_400));
    let times = timed(args.runs, || async {
        queries.registered_users(current).await.expect("query");
    })
    .await;
    row("  of which: registrations summed per user (SQL)", &times);
    let times = timed(args.runs, || async {
        queries
            .activity(since, Per::Day, &sspr_bridge::domain::report::Action::ALL)
            .await
            .expect("query");
    })
    .await;
    row("  of which: a year of activity per day (SQL)", &times);
    let times = timed(args.runs, || async {
        queries.refusal_reasons(since, 10).await.expect("query");
    })
    .await;
    row("  of which: top refusal reasons of a year (SQL)", &times);

    let real = wired.deps.directory.clone();
    let count = std::sync::atomic::AtomicUsize::new(0);
    let times = timed(args.runs, || async {
        let n = real.users(None).await.expect("paged read").len();
        count.store(n, std::sync::atomic::Ordering::Relaxed);
    })
    .await;
    let count = count.into_inner();
    row(
        &format!("test DC: paged read of its {count} enabled users"),
        &times,
    );
    let times = timed(args.runs, || async {
        Reports::new(&wired.deps, queries)
            .report(month, Per::Day)
            .await
            .expect("report");
    })
    .await;
    row(
        &format!("test DC: report on its {count} users, 30 days per day"),
        &times,
    );
    wired.store.close().await;
}

fn row(label: &str, times: &[Duration]) {
    let fastest = times.iter().min().copied().unwrap_or_default();
    let slowest = times.iter().max().copied().unwrap_or_default();
    println!("{label:<58} {fastest:>10.1?} {slowest:>10.1?}");
}

async fn timed<F, Fut>(runs: usize, mut f: F) -> Vec<Duration>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut times = Vec::new();
    for _ in 0..runs.max(1) {
        let started = Instant::now();
        f().await;
        times.push(started.elapsed());
    }
    times
}

fn config(args: &Args, url: &str) -> Config {
    let layer = format!(
        r#"
        [directory]
        urls = [{ldaps:?}]
        ca_file = {ca:?}
        base_dn = {base:?}
        bind_dn = {bind:?}
        bind_password = {pw:?}
        timeout = "30s"
        [database]
        url = {url:?}
        [security]
        secret_key = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
        [registration]
        reconfirm_days = 365
        "#,
        ldaps = args.ldaps_url,
        ca = args.ca_file,
        base = args.base_dn,
        bind = args.bind_dn,
        pw = args.bind_password,
    );
    Config::load(&Sources {
        file: None,
        layers: vec![layer],
        environment: false,
    })
    .expect("config")
}

fn fake_user(n: usize) -> DirectoryUser {
    let sam = format!("bench{n:06}");
    DirectoryUser {
        guid: ObjectGuid(uuid::Uuid::new_v4()),
        dn: format!("CN={sam},OU=Bench,DC=sspr,DC=test"),
        sam_account_name: sam.clone(),
        user_principal_name: Some(format!("{sam}@sspr.test")),
        display_name: Some(format!("Bench {n}")),
        mail: Some(format!("{sam}@mail.test")),
        user_account_control: 512,
        computed_account_control: 0,
        lockout_time: 0,
        pwd_last_set: 134_000_000_000_000_000,
        account_expires: 0,
        admin_count: false,
        member_of: Vec::new(),
        resultant_pso: None,
    }
}

/// Registrations, audit rows and blocks, inserted in large transactions (the service's own
/// writes go one at a time, which would take the benchmark longer than the report).
async fn fill(url: &str, users: &[DirectoryUser], args: &Args, now: Timestamp) {
    let mut conn = AnyConnection::connect(url).await.expect("connect");
    let mut rng = rand::rng();
    let now = now.as_millis();
    let registered = (users.len() as f64 * args.registered) as usize;
    let mut tx = conn.begin().await.expect("begin");
    for user in &users[..registered] {
        let kinds: &[&str] = match rng.random_range(0..3) {
            0 => &["totp"],
            1 => &["email"],
            _ => &["totp", "email"],
        };
        for kind in kinds {
            let confirmed = now - rng.random_range(0..500) * DAY_MS;
            sqlx::query(
                "INSERT INTO enrollment_methods (object_guid, id, kind, sam_account_name, address,
                     confirmed_at_ms, created_at_ms, updated_at_ms)
                 VALUES ($1, $2, $3, $4, $5, $6, $6, $6)",
            )
            .bind(user.guid.to_string())
            .bind(sspr_bridge::domain::store::new_method_id())
            .bind(*kind)
            .bind(&user.sam_account_name)
            .bind(user.mail.clone())
            .bind(confirmed)
            .execute(&mut *tx)
            .await
            .expect("insert method");
        }
    }
    for user in users.iter().step_by(1000) {
        sqlx::query("INSERT INTO throttle_blocks (key, until_ms) VALUES ($1, $2)")
            .bind(format!("user:{}", user.guid))
            .bind(now + 3_600_000)
            .execute(&mut *tx)
            .await
            .expect("insert block");
    }
    tx.commit().await.expect("commit");

    const KINDS: [(&str, &[&str], &[&str]); 8] = [
        ("sign_in", &["success", "failure"], &["wrong_password"]),
        ("flow_started", &["success", "decoy"], &["out_of_scope"]),
        ("code_sent", &["success"], &[]),
        ("verification", &["success", "failure"], &["wrong_code"]),
        (
            "password_reset",
            &["success", "failure"],
            &["password_policy"],
        ),
        ("unlock", &["success"], &[]),
        ("throttled", &["denied"], &["address_starts", "wrong_codes"]),
        ("helpdesk_reset", &["success"], &[]),
    ];
    let mut tx = conn.begin().await.expect("begin");
    for i in 0..args.audit_rows {
        let (event, outcomes, reasons) = KINDS[rng.random_range(0..KINDS.len())];
        let outcome = outcomes[rng.random_range(0..outcomes.len())];
        let reason = (outcome != "success" && !reasons.is_empty())
            .then(|| reasons[rng.random_range(0..reasons.len())]);
        let user = &users[rng.random_range(0..users.len())];
        let method = ["totp", "email"][rng.random_range(0..2)];
        sqlx::query(
            "INSERT INTO audit_events (at_ms, event, outcome, object_guid, sam_account_name,
                 method, reason)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(now - rng.random_range(0..365 * DAY_MS))
        .bind(event)
        .bind(outcome)
        .bind(user.guid.to_string())
        .bind(&user.sam_account_name)
        .bind(method)
        .bind(reason)
        .execute(&mut *tx)
        .await
        .expect("insert audit row");
        if i % 50_000 == 49_999 {
            tx.commit().await.expect("commit");
            tx = conn.begin().await.expect("begin");
        }
    }
    tx.commit().await.expect("commit");
    conn.close().await.expect("close");
}

/// The test DC's directory, but with `users` answering from memory.
struct InMemory {
    users: Vec<DirectoryUser>,
    inner: Arc<dyn Directory>,
}

#[async_trait]
impl Directory for InMemory {
    async fn find_user_by(
        &self,
        id: &str,
        or_mail: bool,
    ) -> Result<Option<DirectoryUser>, DirectoryError> {
        self.inner.find_user_by(id, or_mail).await
    }

    async fn users(&self, _group_dn: Option<&str>) -> Result<Vec<DirectoryUser>, DirectoryError> {
        Ok(self.users.clone())
    }

    async fn is_member_of(
        &self,
        user: &DirectoryUser,
        group_dn: &str,
    ) -> Result<bool, DirectoryError> {
        self.inner.is_member_of(user, group_dn).await
    }

    async fn manager(&self, user: &DirectoryUser) -> Result<Option<ManagerLink>, DirectoryError> {
        self.inner.manager(user).await
    }

    async fn group_sids(&self, user: &DirectoryUser) -> Result<Vec<String>, DirectoryError> {
        self.inner.group_sids(user).await
    }

    async fn check_password(
        &self,
        user: &DirectoryUser,
        password: &SecretString,
    ) -> Result<PasswordCheck, DirectoryError> {
        self.inner.check_password(user, password).await
    }

    async fn check_password_guarded(
        &self,
        user: &DirectoryUser,
        password: &SecretString,
        may_bind: BindGuard<'_>,
    ) -> Result<GuardedCheck, DirectoryError> {
        self.inner
            .check_password_guarded(user, password, may_bind)
            .await
    }

    async fn decoy_password_check(&self, login: &str) -> Result<(), DirectoryError> {
        self.inner.decoy_password_check(login).await
    }

    async fn write_account(
        &self,
        user: &DirectoryUser,
        change: &AccountChange<'_>,
    ) -> Result<DcId, DirectoryError> {
        self.inner.write_account(user, change).await
    }

    async fn change_password(
        &self,
        user: &DirectoryUser,
        current: &SecretString,
        new: &SecretString,
        may_bind: BindGuard<'_>,
    ) -> Result<Option<DcId>, DirectoryError> {
        self.inner
            .change_password(user, current, new, may_bind)
            .await
    }

    async fn password_policy(
        &self,
        user: &DirectoryUser,
    ) -> Result<PasswordPolicy, DirectoryError> {
        self.inner.password_policy(user).await
    }

    async fn domain_password_policy(&self) -> Result<PasswordPolicy, DirectoryError> {
        self.inner.domain_password_policy().await
    }

    async fn probe(&self) -> Vec<DcStatus> {
        self.inner.probe().await
    }
}
