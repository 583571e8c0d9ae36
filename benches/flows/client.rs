//! The bench's HTTP client (hyper, keep-alive, one connection per concurrent worker) and the
//! self-service API calls it makes, as a user with an authenticator app would.

use std::collections::VecDeque;
use std::net::Ipv4Addr;
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

    /// The service's LDAP operations so far, from `/metrics`: per operation (`search`, `bind`,
    /// `modify`), how many and their total seconds, over every DC.
    pub async fn ldap_totals(&self, token: &str) -> Result<LdapTotals, String> {
        let bearer = format!("Bearer {token}");
        let body = expect(
            "metrics",
            StatusCode::OK,
            self.call(Method::GET, "/metrics", None, &[("authorization", &bearer)])
                .await?,
        )?;
        let mut totals = LdapTotals::default();
        for line in String::from_utf8_lossy(&body).lines() {
            let Some(rest) = line.strip_prefix("sspr_directory_operation_seconds_") else {
                continue;
            };
            let Some(op) = rest
                .split("operation=\"")
                .nth(1)
                .and_then(|r| r.split('"').next())
            else {
                continue;
            };
            let value: f64 = line
                .rsplit(' ')
                .next()
                .and_then(|v| v.parse().ok())
                .unwrap_or(0.0);
            let entry = totals.0.entry(op.to_owned()).or_default();
            if rest.starts_with("count") {
                entry.0 += value;
            } else if rest.starts_with("sum") {
                entry.1 += value;
            }
        }
        Ok(totals)
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

/// A test user with an authenticator app.
pub struct BenchUser {
    pub sam: String,
    totp: TOTP,
    /// The TOTP step of the last code the service accepted: the next must be later.
    last_step: u64,
    /// The address the user's requests come from (`X-Forwarded-For`, through a trusted
    /// proxy), so per-address throttles count per user as in production, not all on 127.0.0.1.
    pub address: String,
}

impl BenchUser {
    /// The current code, marked as spent: the service refuses any step at or below it later.
    fn spend_code(&mut self) -> String {
        let step = current_step();
        debug_assert!(step > self.last_step, "a TOTP step used twice");
        self.last_step = step;
        self.totp.generate(step * STEP_SECS)
    }
}

pub fn address_of(index: usize) -> String {
    let i = u32::try_from(index).expect("fewer than 2^24 users");
    Ipv4Addr::from(0x0a00_0000 | (i & 0x00ff_ffff)).to_string()
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

/// Signs in with the AD password and registers an authenticator app, confirming it with the
/// code of the previous step (so the current one stays free for a reset), as the integration
/// tests do.
pub async fn register(
    http: &Http,
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
    let body = expect(
        "begin TOTP",
        StatusCode::OK,
        http.call(
            Method::POST,
            "/api/v1/enrollment/totp",
            Some(&json!({})),
            &auth,
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
                &auth,
            )
            .await?;
        match expect("confirm TOTP", StatusCode::NO_CONTENT, answer) {
            Ok(_) => {
                return Ok(BenchUser {
                    sam: sam.to_owned(),
                    totp,
                    last_step: step,
                    address,
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

/// `POST /api/v1/reset/{flow}/verify` with the current authenticator code.
pub async fn verify(http: &Http, user: &mut BenchUser, flow: &str) -> Result<(), String> {
    let code = user.spend_code();
    expect(
        "verify",
        StatusCode::OK,
        http.call(
            Method::POST,
            &format!("/api/v1/reset/{flow}/verify"),
            Some(&json!({"method": "totp", "code": code})),
            &[("x-forwarded-for", &user.address)],
        )
        .await?,
    )
    .map(drop)
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

/// One complete self-service flow: start, verify the authenticator code, set a new password.
/// The latency of each step.
pub async fn flow(http: &Http, user: &mut BenchUser) -> Result<Vec<Duration>, String> {
    let t = Instant::now();
    let flow = start(http, user).await?;
    let started = t.elapsed();
    let t = Instant::now();
    verify(http, user, &flow).await?;
    let verified = t.elapsed();
    let t = Instant::now();
    set_password(http, user, &flow).await?;
    Ok(vec![started, verified, t.elapsed()])
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
        queue.iter().take(n).all(|u| u.last_step < step)
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
                    Some(u) if u.last_step < current_step() => {
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
        while batch.len() < n && queue.front().is_some_and(|u| u.last_step < step) {
            batch.push(queue.pop_front().expect("front exists"));
        }
        batch
    }

    pub fn give_back(&self, user: BenchUser) {
        self.queue.lock().expect("not poisoned").push_back(user);
    }
}
