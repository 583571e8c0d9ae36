//! The bench's HTTP client (hyper, keep-alive, one connection per concurrent worker) and the
//! self-service API calls it makes, as a user with an authenticator app would.

use std::collections::{HashMap, VecDeque};
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::http::{Method, Request, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};
use totp_rs::TOTP;

use crate::authenticator::SoftAuthenticator;

const STEP_SECS: u64 = 30;

#[derive(Clone)]
pub struct Http {
    client: Client<HttpConnector, Full<Bytes>>,
    base: String,
}

impl Http {
    pub fn new(base: &str) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(usize::MAX)
            .build(connector);
        Self {
            client,
            base: base.trim_end_matches('/').to_owned(),
        }
    }

    /// One request; the status and the whole body.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        headers: &[(&str, &str)],
    ) -> Result<(StatusCode, Bytes), String> {
        let mut request = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let body = match body {
            Some(json) => {
                request = request.header(header::CONTENT_TYPE, "application/json");
                Full::new(Bytes::from(json.to_string()))
            }
            None => Full::new(Bytes::new()),
        };
        let request = request.body(body).map_err(|e| e.to_string())?;
        let response = self
            .client
            .request(request)
            .await
            .map_err(|e| format!("{path}: {e}"))?;
        let status = response.status();
        let bytes = response
            .into_body()
            .collect()
            .await
            .map_err(|e| format!("{path}: {e}"))?
            .to_bytes();
        Ok((status, bytes))
    }

    pub async fn get(&self, path: &str) -> Result<(StatusCode, Bytes), String> {
        self.call(Method::GET, path, None, &[]).await
    }

    /// What the service has counted so far, from `/metrics`: its LDAP operations and the time
    /// its API requests took.
    pub async fn service_counters(&self, token: &str) -> Result<ServiceCounters, String> {
        let bearer = format!("Bearer {token}");
        let body = expect(
            "metrics",
            StatusCode::OK,
            self.call(Method::GET, "/metrics", None, &[("authorization", &bearer)])
                .await?,
        )?;
        Ok(ServiceCounters::parse(&String::from_utf8_lossy(&body)))
    }
}

/// The service's counters at one moment: per LDAP operation (`search`, `bind`, `modify`) how
/// many and their total seconds over every DC, and the total seconds and number of its API
/// requests (`/metrics` itself excluded).
#[derive(Clone, Default)]
pub struct ServiceCounters {
    pub ldap: LdapTotals,
    pub api_seconds: f64,
    pub api_requests: f64,
}

impl ServiceCounters {
    fn parse(text: &str) -> Self {
        let mut counters = Self::default();
        let value = |line: &str| -> f64 {
            line.rsplit(' ')
                .next()
                .and_then(|v| v.parse().ok())
                .unwrap_or(0.0)
        };
        let label = |line: &str, name: &str| -> Option<String> {
            line.split(&format!("{name}=\""))
                .nth(1)
                .and_then(|r| r.split('"').next())
                .map(str::to_owned)
        };
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("sspr_directory_operation_seconds_") {
                let Some(op) = label(line, "operation") else {
                    continue;
                };
                let entry = counters.ldap.0.entry(op).or_default();
                if rest.starts_with("count") {
                    entry.0 += value(line);
                } else if rest.starts_with("sum") {
                    entry.1 += value(line);
                }
            } else if let Some(rest) = line.strip_prefix("sspr_http_request_duration_seconds_") {
                if !label(line, "route").is_some_and(|r| r.starts_with("/api/")) {
                    continue;
                }
                if rest.starts_with("count") {
                    counters.api_requests += value(line);
                } else if rest.starts_with("sum") {
                    counters.api_seconds += value(line);
                }
            }
        }
        counters
    }

    /// What happened between `before` and `self`.
    pub fn since(&self, before: &ServiceCounters) -> ServiceCounters {
        ServiceCounters {
            ldap: self.ldap.since(&before.ldap),
            api_seconds: self.api_seconds - before.api_seconds,
            api_requests: self.api_requests - before.api_requests,
        }
    }

    pub fn add(&mut self, other: &ServiceCounters) {
        self.ldap.add(&other.ldap);
        self.api_seconds += other.api_seconds;
        self.api_requests += other.api_requests;
    }
}

/// Per LDAP operation: count and total seconds.
#[derive(Clone, Default)]
pub struct LdapTotals(pub std::collections::BTreeMap<String, (f64, f64)>);

impl LdapTotals {
    pub fn add(&mut self, other: &LdapTotals) {
        for (op, (n, secs)) in &other.0 {
            let entry = self.0.entry(op.clone()).or_default();
            entry.0 += n;
            entry.1 += secs;
        }
    }

    /// What happened between `before` and `self`.
    pub fn since(&self, before: &LdapTotals) -> LdapTotals {
        LdapTotals(
            self.0
                .iter()
                .map(|(op, (n, s))| {
                    let (n0, s0) = before.0.get(op).copied().unwrap_or_default();
                    (op.clone(), (n - n0, s - s0))
                })
                .filter(|(_, (n, _))| *n > 0.0)
                .collect(),
        )
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs()
}

pub fn current_step() -> u64 {
    unix_now() / STEP_SECS
}

/// Time until the next TOTP step begins.
fn until_next_step() -> Duration {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970");
    let next = (now.as_secs() / STEP_SECS + 1) * STEP_SECS;
    Duration::from_secs(next) - now + Duration::from_millis(20)
}

/// The kinds of test user, each measured in a flow stage of its own.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Kind {
    /// An authenticator app, no `mail` in AD: nothing is mailed.
    Totp,
    /// An authenticator app and an AD `mail`: the reset notice is mailed (through the outbox).
    TotpNotice,
    /// A confirmed email address: the code is mailed, read from the SMTP sink, then verified;
    /// the reset notice goes to the same address.
    Email,
    /// A passkey (the software authenticator of the integration tests).
    Passkey,
}

impl Kind {
    pub const ALL: [Kind; 4] = [Kind::Totp, Kind::TotpNotice, Kind::Email, Kind::Passkey];

    /// The stage's name in the report.
    pub fn stage(self) -> &'static str {
        match self {
            Kind::Totp => "flow TOTP",
            Kind::TotpNotice => "flow TOTP + notice",
            Kind::Email => "flow email",
            Kind::Passkey => "flow passkey",
        }
    }

    /// The requests of one flow, as the report names its steps.
    pub fn steps(self) -> &'static [&'static str] {
        match self {
            Kind::Totp | Kind::TotpNotice => &["start", "verify", "password"],
            Kind::Email => &["start", "send code", "code arrives", "verify", "password"],
            Kind::Passkey => &["start", "options", "verify", "password"],
        }
    }

    /// Whether the user has `mail` in AD.
    pub fn ad_mail(self) -> bool {
        self == Kind::TotpNotice
    }
}

/// How a test user proves who they are.
enum Proof {
    /// The authenticator app, and the TOTP step of the last code the service accepted: the next
    /// must be later.
    Totp {
        totp: Box<TOTP>,
        last_step: u64,
    },
    /// The confirmed address the codes go to.
    Email {
        address: String,
    },
    Passkey(Box<SoftAuthenticator>),
}

/// A registered test user.
pub struct BenchUser {
    pub sam: String,
    method: Proof,
    /// The address the user's requests come from (`X-Forwarded-For`, through a trusted
    /// proxy), so per-address throttles count per user as in production, not all on 127.0.0.1.
    pub address: String,
}

impl BenchUser {
    /// Whether the user may verify now: a TOTP step can be spent once.
    fn fresh(&self, step: u64) -> bool {
        match &self.method {
            Proof::Totp { last_step, .. } => *last_step < step,
            _ => true,
        }
    }

    /// The current code, marked as spent: the service refuses any step at or below it later.
    fn spend_code(&mut self) -> Result<String, String> {
        let Proof::Totp { totp, last_step } = &mut self.method else {
            return Err(format!("{} has no authenticator app", self.sam));
        };
        let step = current_step();
        debug_assert!(step > *last_step, "a TOTP step used twice");
        *last_step = step;
        Ok(totp.generate(step * STEP_SECS))
    }
}

pub fn address_of(index: usize) -> String {
    let i = u32::try_from(index).expect("fewer than 2^24 users");
    Ipv4Addr::from(0x0a00_0000 | (i & 0x00ff_ffff)).to_string()
}

/// The AD `mail` of a user of a kind that has one, and the confirmed address of an email user.
pub fn mail_of(sam: &str) -> String {
    format!("{sam}@mail.test")
}

fn expect(
    what: &str,
    want: StatusCode,
    (status, body): (StatusCode, Bytes),
) -> Result<Bytes, String> {
    if status == want {
        Ok(body)
    } else {
        Err(format!(
            "{what}: {status} {}",
            String::from_utf8_lossy(&body)
                .chars()
                .take(200)
                .collect::<String>()
        ))
    }
}

fn field(body: &Bytes, name: &str) -> Result<String, String> {
    serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v.get(name).and_then(Value::as_str).map(str::to_owned))
        .ok_or_else(|| format!("no {name:?} in {}", String::from_utf8_lossy(body)))
}

fn json_of(body: &Bytes) -> Result<Value, String> {
    serde_json::from_slice(body).map_err(|e| format!("{e} in {}", String::from_utf8_lossy(body)))
}

/// Signs in with the AD password and registers the method of `kind`, as the integration tests
/// do: an authenticator app confirmed with the code of the previous step (so the current one
/// stays free for a reset), an address confirmed with the code mailed to it, or a passkey.
pub async fn register(
    http: &Http,
    sink: &MailSink,
    kind: Kind,
    sam: &str,
    password: &str,
    address: String,
) -> Result<BenchUser, String> {
    let xff = [("x-forwarded-for", address.as_str())];
    let body = expect(
        "sign-in",
        StatusCode::OK,
        http.call(
            Method::POST,
            "/api/v1/enrollment/session",
            Some(&json!({"username": sam, "password": password})),
            &xff,
        )
        .await?,
    )?;
    let bearer = format!("Bearer {}", field(&body, "token")?);
    let auth = [
        ("x-forwarded-for", address.as_str()),
        ("authorization", bearer.as_str()),
    ];
    let method = match kind {
        Kind::Totp | Kind::TotpNotice => register_totp(http, &auth).await?,
        Kind::Email => {
            let to = mail_of(sam);
            expect(
                "register address",
                StatusCode::ACCEPTED,
                http.call(
                    Method::POST,
                    "/api/v1/enrollment/email",
                    Some(&json!({"address": to})),
                    &auth,
                )
                .await?,
            )?;
            let code = sink.code_for(&to).await?;
            let (status, body) = http
                .call(
                    Method::POST,
                    "/api/v1/enrollment/email/confirm",
                    Some(&json!({"code": code})),
                    &auth,
                )
                .await?;
            if !status.is_success() {
                return Err(format!(
                    "confirm address: {status} {}",
                    String::from_utf8_lossy(&body)
                ));
            }
            Proof::Email { address: to }
        }
        Kind::Passkey => {
            let name = "Bench key";
            let options = json_of(&expect(
                "begin passkey",
                StatusCode::OK,
                http.call(
                    Method::POST,
                    "/api/v1/enrollment/passkey",
                    Some(&json!({"name": name})),
                    &auth,
                )
                .await?,
            )?)?;
            let mut authenticator = SoftAuthenticator::new();
            let credential = authenticator.create(&options);
            expect(
                "confirm passkey",
                StatusCode::NO_CONTENT,
                http.call(
                    Method::POST,
                    "/api/v1/enrollment/passkey/confirm",
                    Some(&json!({"name": name, "credential": credential})),
                    &auth,
                )
                .await?,
            )?;
            Proof::Passkey(Box::new(authenticator))
        }
    };
    Ok(BenchUser {
        sam: sam.to_owned(),
        method,
        address,
    })
}

async fn register_totp(http: &Http, auth: &[(&str, &str)]) -> Result<Proof, String> {
    let body = expect(
        "begin TOTP",
        StatusCode::OK,
        http.call(
            Method::POST,
            "/api/v1/enrollment/totp",
            Some(&json!({})),
            auth,
        )
        .await?,
    )?;
    let uri = field(&body, "otpauth_uri")?;
    let totp = TOTP::from_url(&uri).map_err(|e| format!("otpauth URI {uri}: {e}"))?;
    // A step boundary between computing the code and the service judging it can make it two
    // steps old: then once more.
    let mut attempt = 0;
    loop {
        let step = current_step() - 1;
        let code = totp.generate(step * STEP_SECS);
        let answer = http
            .call(
                Method::POST,
                "/api/v1/enrollment/totp/confirm",
                Some(&json!({"code": code})),
                auth,
            )
            .await?;
        match expect("confirm TOTP", StatusCode::NO_CONTENT, answer) {
            Ok(_) => {
                return Ok(Proof::Totp {
                    totp: Box::new(totp),
                    last_step: step,
                });
            }
            Err(e) if attempt > 0 => return Err(e),
            Err(_) => attempt += 1,
        }
    }
}

/// `POST /api/v1/reset`: the flow id.
pub async fn start(http: &Http, user: &BenchUser) -> Result<String, String> {
    let body = expect(
        "start",
        StatusCode::CREATED,
        http.call(
            Method::POST,
            "/api/v1/reset",
            Some(&json!({"username": user.sam})),
            &[("x-forwarded-for", &user.address)],
        )
        .await?,
    )?;
    field(&body, "flow")
}

/// `POST /api/v1/reset/{flow}/verify` with `proof` (the method and its code or credential).
async fn verify_with(
    http: &Http,
    user: &BenchUser,
    flow: &str,
    proof: Value,
) -> Result<(), String> {
    expect(
        "verify",
        StatusCode::OK,
        http.call(
            Method::POST,
            &format!("/api/v1/reset/{flow}/verify"),
            Some(&proof),
            &[("x-forwarded-for", &user.address)],
        )
        .await?,
    )
    .map(drop)
}

/// Verifies with the current authenticator code.
pub async fn verify(http: &Http, user: &mut BenchUser, flow: &str) -> Result<(), String> {
    let code = user.spend_code()?;
    verify_with(http, user, flow, json!({"method": "totp", "code": code})).await
}

/// `POST /api/v1/reset/{flow}/password`.
pub async fn set_password(http: &Http, user: &BenchUser, flow: &str) -> Result<(), String> {
    expect(
        "set password",
        StatusCode::NO_CONTENT,
        http.call(
            Method::POST,
            &format!("/api/v1/reset/{flow}/password"),
            Some(&json!({"new_password": crate::new_password()})),
            &[("x-forwarded-for", &user.address)],
        )
        .await?,
    )
    .map(drop)
}

/// Times each step of a flow.
struct Steps(Vec<Duration>, Instant);

impl Steps {
    fn new() -> Self {
        Self(Vec::with_capacity(5), Instant::now())
    }

    fn lap(&mut self) {
        let now = Instant::now();
        self.0.push(now - self.1);
        self.1 = now;
    }
}

/// One complete self-service flow by the user's method, from start to the new password. The
/// latency of each step ([`Kind::steps`]).
pub async fn flow(
    http: &Http,
    sink: &MailSink,
    user: &mut BenchUser,
) -> Result<Vec<Duration>, String> {
    let mut steps = Steps::new();
    let flow = start(http, user).await?;
    steps.lap();
    let xff = [("x-forwarded-for", user.address.as_str())];
    match user.method {
        Proof::Totp { .. } => {
            verify(http, user, &flow).await?;
            steps.lap();
        }
        Proof::Email { ref address } => {
            let address = address.clone();
            expect(
                "send code",
                StatusCode::ACCEPTED,
                http.call(
                    Method::POST,
                    &format!("/api/v1/reset/{flow}/email"),
                    Some(&json!({})),
                    &xff,
                )
                .await?,
            )?;
            steps.lap();
            let code = sink.code_for(&address).await?;
            steps.lap();
            verify_with(http, user, &flow, json!({"method": "email", "code": code})).await?;
            steps.lap();
        }
        Proof::Passkey(ref mut authenticator) => {
            let options = json_of(&expect(
                "passkey options",
                StatusCode::OK,
                http.call(
                    Method::POST,
                    &format!("/api/v1/reset/{flow}/passkey"),
                    Some(&json!({})),
                    &xff,
                )
                .await?,
            )?)?;
            steps.lap();
            let credential = authenticator.get(&options);
            verify_with(
                http,
                user,
                &flow,
                json!({"method": "passkey", "credential": credential}),
            )
            .await?;
            steps.lap();
        }
    }
    set_password(http, user, &flow).await?;
    steps.lap();
    Ok(steps.0)
}

/// The SMTP sink's Maildir as the bench reads it: every mail is taken out as soon as it is
/// seen (the reset notices too, so the directory stays small), and the codes kept by address
/// until a flow asks for them.
pub struct MailSink {
    new: Option<PathBuf>,
    /// The start of the bench's users' names: mails to others (the shared test environment's
    /// sink serves the integration tests too) are left alone.
    prefix: String,
    /// Files read that were not the bench's.
    skipped: std::sync::Mutex<std::collections::HashSet<std::ffi::OsString>>,
    codes: tokio::sync::Mutex<HashMap<String, VecDeque<String>>>,
    /// Mails taken out of the Maildir, codes and notices.
    pub received: std::sync::atomic::AtomicUsize,
}

impl MailSink {
    /// The sink writing to `maildir` (`None`: the service has no SMTP, so no mail flows), read
    /// for mails to users whose names start with `prefix`.
    pub fn new(maildir: Option<PathBuf>, prefix: &str) -> Self {
        Self {
            new: maildir.map(|d| d.join("new")),
            prefix: prefix.to_ascii_lowercase(),
            skipped: Default::default(),
            codes: Default::default(),
            received: Default::default(),
        }
    }

    /// Waits (up to 10 s) for a code mailed to `to`. Polls every 2 ms: the mail is written by
    /// the sink as soon as the service's outbox sender hands it over.
    pub async fn code_for(&self, to: &str) -> Result<String, String> {
        let dir = self
            .new
            .as_ref()
            .ok_or("no SMTP sink (SSPR_TEST_MAILDIR) to read codes from")?;
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            {
                let mut codes = self.codes.lock().await;
                if let Some(code) = codes.get_mut(to).and_then(VecDeque::pop_front) {
                    return Ok(code);
                }
                self.take_all(dir, &mut codes);
                if let Some(code) = codes.get_mut(to).and_then(VecDeque::pop_front) {
                    return Ok(code);
                }
            }
            if Instant::now() > deadline {
                return Err(format!("no code mailed to {to} within 10 s"));
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    fn take_all(&self, dir: &std::path::Path, codes: &mut HashMap<String, VecDeque<String>>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        let mut skipped = self.skipped.lock().expect("not poisoned");
        for entry in entries.flatten() {
            if skipped.contains(&entry.file_name()) {
                continue;
            }
            let path = entry.path();
            let Ok(bytes) = std::fs::read(&path) else {
                continue;
            };
            let to = mail_parser::MessageParser::default()
                .parse(&bytes)
                .and_then(|message| {
                    let to = message.to()?.first()?.address()?.to_ascii_lowercase();
                    Some((message, to))
                });
            let Some((message, to)) = to.filter(|(_, to)| to.starts_with(&self.prefix)) else {
                skipped.insert(entry.file_name());
                continue;
            };
            let _ = std::fs::remove_file(&path);
            self.received
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            // A code mail's text part has the code alone on a line: 8 digits.
            let code = message.body_text(0).and_then(|text| {
                text.lines()
                    .map(str::trim)
                    .find(|l| l.len() == 8 && l.bytes().all(|b| b.is_ascii_digit()))
                    .map(str::to_owned)
            });
            if let Some(code) = code {
                codes.entry(to).or_default().push_back(code);
            }
        }
    }
}

/// The registered users, least recently used first. A TOTP step can be spent once per user, so
/// a user is handed out again only once the step it last used has passed.
pub struct UserPool {
    queue: Mutex<VecDeque<BenchUser>>,
    /// How often a worker had to wait for a new step because every user had been used in this
    /// one: then the stage measured waiting too, and needs more users.
    pub starved: std::sync::atomic::AtomicUsize,
}

impl UserPool {
    pub fn new(users: Vec<BenchUser>) -> Self {
        Self {
            queue: Mutex::new(users.into()),
            starved: Default::default(),
        }
    }

    pub fn len(&self) -> usize {
        self.queue.lock().expect("not poisoned").len()
    }

    fn fresh_front(&self, n: usize) -> bool {
        let step = current_step();
        let queue = self.queue.lock().expect("not poisoned");
        queue.iter().take(n).all(|u| u.fresh(step))
    }

    /// Waits (less than a step) until the `n` least recently used users may verify again.
    pub async fn wait_fresh(&self, n: usize) {
        if !self.fresh_front(n) {
            let wait = until_next_step();
            eprintln!(
                "  waiting {:.0} s for a new TOTP step (users are reused once their last code's step has passed)",
                wait.as_secs_f64()
            );
            tokio::time::sleep(wait).await;
        }
    }

    /// The least recently used user, once it may verify in the current step.
    pub async fn take(&self) -> BenchUser {
        loop {
            let wait = {
                let mut queue = self.queue.lock().expect("not poisoned");
                match queue.front() {
                    Some(u) if u.fresh(current_step()) => {
                        return queue.pop_front().expect("front exists");
                    }
                    Some(_) => until_next_step(),
                    // All are in use by other workers.
                    None => Duration::from_millis(5),
                }
            };
            if wait > Duration::from_millis(5) {
                self.starved
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            tokio::time::sleep(wait).await;
        }
    }

    /// Up to `n` users at once, without waiting.
    pub fn take_batch(&self, n: usize) -> Vec<BenchUser> {
        let step = current_step();
        let mut queue = self.queue.lock().expect("not poisoned");
        let mut batch = Vec::new();
        while batch.len() < n && queue.front().is_some_and(|u| u.fresh(step)) {
            batch.push(queue.pop_front().expect("front exists"));
        }
        batch
    }

    pub fn give_back(&self, user: BenchUser) {
        self.queue.lock().expect("not poisoned").push_back(user);
    }
}
