//! Access to the real components that `scripts/test` starts (a Samba AD DC, PostgreSQL, an SMTP
//! server), and test users created on the DC. Run through `scripts/test`, or start the components
//! once with `scripts/env-up` and `source` the exports it prints.

use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::panic::AssertUnwindSafe;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, LazyLock, Mutex, Once};

use futures::FutureExt;
use ldap3::{Ldap, LdapConnAsync, LdapConnSettings, Mod, Scope, SearchEntry};
use secrecy::SecretString;
use sqlx::{Connection, Executor, PgConnection};
use sspr_bridge::config::{Config, LogConfig, LogFormat, Sources};
use sspr_bridge::directory::codec::unicode_pwd_value;
use sspr_bridge::store::{Backend, Store};
use sspr_bridge::tls::client_config;

/// A variable `scripts/test` exports; a missing one fails the test with directions.
pub fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!(
            "{name} is not set: the integration tests run against a real Samba DC, PostgreSQL \
             and SMTP server started by `scripts/test` (or `scripts/env-up` for repeated runs)"
        )
    })
}

/// A configuration for the test DC, layered like production: defaults, then `extra` TOML. The
/// service binds as the delegated account `svc-sspr` (scripts/lib/dc.sh), as in production;
/// fixtures are made as Administrator ([`admin`]).
pub fn config(extra: &str) -> Config {
    try_config(extra).unwrap_or_else(|e| panic!("{e}"))
}

/// Like [`config`], with several layers on top, later ones winning.
pub fn config_layers(extra: &[&str]) -> Config {
    try_config_layers(extra).unwrap_or_else(|e| panic!("{e}"))
}

pub fn try_config(extra: &str) -> Result<Config, sspr_bridge::config::ConfigError> {
    try_config_layers(&[extra])
}

/// The key every test configuration has, unless a layer replaces it.
const SECRET_KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

/// The keys derived from [`SECRET_KEY`], e.g. to compute what the service keeps of a login.
pub fn keys() -> sspr_bridge::domain::secrets::Keys {
    sspr_bridge::domain::secrets::Keys::new(config("").security.secret_key.bytes())
}

fn try_config_layers(extra: &[&str]) -> Result<Config, sspr_bridge::config::ConfigError> {
    keep_logs();
    let base = format!(
        r#"
        [directory]
        urls = [{url:?}]
        ca_file = {ca:?}
        base_dn = {base:?}
        bind_dn = {bind_dn:?}
        bind_password = {bind_pw:?}
        timeout = "10s"
        [security]
        secret_key = {SECRET_KEY:?}
        "#,
        url = env("SSPR_TEST_LDAPS_URL"),
        ca = env("SSPR_TEST_CA_FILE"),
        base = env("SSPR_TEST_BASE_DN"),
        bind_dn = env("SSPR_TEST_SERVICE_DN"),
        bind_pw = env("SSPR_TEST_SERVICE_PASSWORD"),
    );
    // The extra layers come later, so they may override any of the above.
    let mut layers = vec![base];
    layers.extend(extra.iter().map(|l| (*l).to_owned()));
    Config::load(&Sources {
        file: None,
        layers,
        environment: false,
    })
}

static NEXT: AtomicU32 = AtomicU32::new(0);

/// A name no other test (or earlier run against the same DC) uses; sAMAccountName allows 20 chars.
pub fn unique_name(prefix: &str) -> String {
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let r: u32 = rand::random();
    format!("{prefix}{:04x}{:04x}", r & 0xffff, n & 0xffff)
}

pub struct TestUser {
    pub sam: String,
    pub upn: String,
    pub dn: String,
    pub password: String,
}

impl TestUser {
    pub fn secret(&self) -> SecretString {
        SecretString::from(self.password.clone())
    }
}

/// A fresh LDAPS connection to the DC at `url` (verified with the test CA), not bound.
pub async fn connect_at(url: &str) -> Ldap {
    try_connect_at(url)
        .await
        .unwrap_or_else(|e| panic!("LDAPS connection to the test DC at {url}: {e}"))
}

/// Like [`connect_at`], for a DC that may be down.
pub async fn try_connect_at(url: &str) -> Result<Ldap, ldap3::LdapError> {
    let tls = client_config(Some(env("SSPR_TEST_CA_FILE").as_ref())).expect("test CA");
    let settings = LdapConnSettings::new().set_config(Arc::clone(&tls));
    let (conn, ldap) = LdapConnAsync::with_settings(settings, url).await?;
    ldap3::drive!(conn);
    Ok(ldap)
}

pub async fn admin() -> Ldap {
    admin_at(&env("SSPR_TEST_LDAPS_URL")).await
}

/// A connection to the DC at `url`, bound as Administrator.
pub async fn admin_at(url: &str) -> Ldap {
    let mut ldap = connect_at(url).await;
    ldap.simple_bind(&env("SSPR_TEST_ADMIN_DN"), &env("SSPR_TEST_ADMIN_PASSWORD"))
        .await
        .and_then(ldap3::LdapResult::success)
        .expect("administrator bind");
    ldap
}

/// Binds as `dn` on a fresh connection: Ok on success, else the result code and message.
pub async fn bind(dn: &str, password: &str) -> Result<(), (u32, String)> {
    bind_at(&env("SSPR_TEST_LDAPS_URL"), dn, password).await
}

/// [`bind`] at the DC at `url`.
pub async fn bind_at(url: &str, dn: &str, password: &str) -> Result<(), (u32, String)> {
    let mut ldap = connect_at(url).await;
    let result = ldap
        .simple_bind(dn, password)
        .await
        .expect("bind request answered");
    let _ = ldap.unbind().await;
    if result.rc == 0 {
        Ok(())
    } else {
        Err((result.rc, result.text))
    }
}

/// Creates an enabled user with a known password, `mail` set, in CN=Users.
pub async fn create_user(prefix: &str) -> TestUser {
    let sam = unique_name(prefix);
    let realm = env("SSPR_TEST_BASE_DN")
        .split(',')
        .filter_map(|rdn| rdn.strip_prefix("DC="))
        .collect::<Vec<_>>()
        .join(".");
    let upn = format!("{sam}@{realm}");
    let dn = format!("CN={sam},CN=Users,{}", env("SSPR_TEST_BASE_DN"));
    let password = format!("Initial-{}-Pw1!", rand::random::<u16>());
    remember_secret("password", &password);
    let mut ldap = admin().await;
    let set = |v: &str| HashSet::from([v.as_bytes().to_vec()]);
    let attrs: Vec<(Vec<u8>, HashSet<Vec<u8>>)> = vec![
        (b"objectClass".to_vec(), set("user")),
        (b"sAMAccountName".to_vec(), set(&sam)),
        (b"userPrincipalName".to_vec(), set(&upn)),
        (b"displayName".to_vec(), set(&format!("Test {sam}"))),
        (b"mail".to_vec(), set(&format!("{sam}@mail.test"))),
        (
            b"unicodePwd".to_vec(),
            HashSet::from([unicode_pwd_value(&password)]),
        ),
        // NORMAL_ACCOUNT, enabled.
        (b"userAccountControl".to_vec(), set("512")),
    ];
    ldap.add(&dn, attrs)
        .await
        .and_then(ldap3::LdapResult::success)
        .unwrap_or_else(|e| panic!("create test user {sam}: {e}"));
    let _ = ldap.unbind().await;
    TestUser {
        sam,
        upn,
        dn,
        password,
    }
}

/// Replaces an attribute as Administrator.
pub async fn set_attr(dn: &str, attr: &str, value: &str) {
    let mut ldap = admin().await;
    ldap.modify(
        dn,
        vec![Mod::Replace(
            attr.as_bytes().to_vec(),
            HashSet::from([value.as_bytes().to_vec()]),
        )],
    )
    .await
    .and_then(ldap3::LdapResult::success)
    .unwrap_or_else(|e| panic!("set {attr} on {dn}: {e}"));
    let _ = ldap.unbind().await;
}

/// Reads one attribute as Administrator.
pub async fn read_attr(dn: &str, attr: &str) -> Option<String> {
    read_attr_at(&env("SSPR_TEST_LDAPS_URL"), dn, attr).await
}

/// Reads one attribute as Administrator on the DC at `url`.
pub async fn read_attr_at(url: &str, dn: &str, attr: &str) -> Option<String> {
    let mut ldap = admin_at(url).await;
    let (entries, _) = ldap
        .search(dn, Scope::Base, "(objectClass=*)", vec![attr])
        .await
        .and_then(ldap3::SearchResult::success)
        .expect("read attribute");
    let _ = ldap.unbind().await;
    entries
        .into_iter()
        .next()
        .map(SearchEntry::construct)
        .and_then(|e| e.attrs.get(attr).and_then(|v| v.first().cloned()))
}

/// The DN of the object with this GUID, searched by its binary AD form.
pub async fn dn_by_guid(guid: &sspr_bridge::domain::ObjectGuid) -> Option<String> {
    let escaped: String = guid
        .0
        .to_bytes_le()
        .iter()
        .map(|b| format!("\\{b:02x}"))
        .collect();
    let mut ldap = admin().await;
    let (entries, _) = ldap
        .search(
            &env("SSPR_TEST_BASE_DN"),
            Scope::Subtree,
            &format!("(objectGUID={escaped})"),
            vec!["1.1"],
        )
        .await
        .and_then(ldap3::SearchResult::success)
        .expect("search by GUID");
    let _ = ldap.unbind().await;
    entries
        .into_iter()
        .next()
        .map(|e| SearchEntry::construct(e).dn)
}

/// Creates a global security group in CN=Users with a unique sAMAccountName and returns its DN.
/// `rdn` is the CN as it appears in a DN, so special characters come escaped per RFC 4514
/// (`Grp (x)\, test`).
pub async fn create_group(rdn: &str) -> String {
    let dn = format!("CN={rdn},CN=Users,{}", env("SSPR_TEST_BASE_DN"));
    let sam = unique_name("grp");
    let mut ldap = admin().await;
    let set = |v: &str| HashSet::from([v.as_bytes().to_vec()]);
    let attrs: Vec<(Vec<u8>, HashSet<Vec<u8>>)> = vec![
        (b"objectClass".to_vec(), set("group")),
        (b"sAMAccountName".to_vec(), set(&sam)),
    ];
    ldap.add(&dn, attrs)
        .await
        .and_then(ldap3::LdapResult::success)
        .unwrap_or_else(|e| panic!("create test group {dn}: {e}"));
    let _ = ldap.unbind().await;
    dn
}

/// Adds `member_dn` (a user or a group) to the group, as Administrator.
pub async fn add_member(group_dn: &str, member_dn: &str) {
    let value = HashSet::from([member_dn.as_bytes().to_vec()]);
    modify_group(group_dn, Mod::Add(b"member".to_vec(), value)).await;
}

/// Removes `member_dn` from the group, as Administrator.
pub async fn remove_member(group_dn: &str, member_dn: &str) {
    let value = HashSet::from([member_dn.as_bytes().to_vec()]);
    modify_group(group_dn, Mod::Delete(b"member".to_vec(), value)).await;
}

async fn modify_group(group_dn: &str, change: Mod<Vec<u8>>) {
    let mut ldap = admin().await;
    ldap.modify(group_dn, vec![change])
        .await
        .and_then(ldap3::LdapResult::success)
        .unwrap_or_else(|e| panic!("change the members of {group_dn}: {e}"));
    let _ = ldap.unbind().await;
}

/// Reads one binary attribute (objectSid, objectGUID) as Administrator.
pub async fn read_binary_attr(dn: &str, attr: &str) -> Option<Vec<u8>> {
    let mut ldap = admin().await;
    let (entries, _) = ldap
        .search(dn, Scope::Base, "(objectClass=*)", vec![attr])
        .await
        .and_then(ldap3::SearchResult::success)
        .expect("read attribute");
    let _ = ldap.unbind().await;
    let entry = SearchEntry::construct(entries.into_iter().next()?);
    sspr_bridge::directory::codec::binary_values(&entry, attr)
        .first()
        .map(|bytes| bytes.to_vec())
}

/// Which database `SSPR_TEST_DATABASE` asks the app tests to run on: `sqlite` (the default) or
/// `postgres` (a fresh schema of the server at `SSPR_TEST_POSTGRES_URL`).
pub fn test_backend() -> Backend {
    match std::env::var("SSPR_TEST_DATABASE").as_deref() {
        Err(_) | Ok("" | "sqlite") => Backend::Sqlite,
        Ok("postgres") => Backend::Postgres,
        Ok(other) => panic!("SSPR_TEST_DATABASE={other:?}: expected sqlite or postgres"),
    }
}

/// A database no other test uses: a SQLite file in a temporary directory, or a schema of the test
/// PostgreSQL server that the URL puts first in `search_path`. Dropped with it, unless the test
/// failed: then the directory or `sspr_test_*` schema is left for inspection.
pub struct TestDatabase {
    /// What the app is configured with.
    pub url: String,
    place: Place,
}

enum Place {
    Dir(tempfile::TempDir),
    Schema {
        server_url: String,
        schema: String,
    },
    /// The database of a PostgreSQL server the test started for itself; that test removes it.
    OwnServer,
}

impl TestDatabase {
    /// On the backend `SSPR_TEST_DATABASE` names.
    pub async fn from_env() -> TestDatabase {
        TestDatabase::fresh(test_backend()).await
    }

    pub async fn fresh(backend: Backend) -> TestDatabase {
        keep_logs();
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().unwrap();
                TestDatabase {
                    url: format!("sqlite://{}/sspr.db", dir.path().display()),
                    place: Place::Dir(dir),
                }
            }
            Backend::Postgres => {
                let (url, schema) = create_postgres_schema().await;
                TestDatabase {
                    url,
                    place: Place::Schema {
                        server_url: env("SSPR_TEST_POSTGRES_URL"),
                        schema,
                    },
                }
            }
        }
    }

    /// The database at `url`, of a PostgreSQL server the test started for itself (e.g. to
    /// restart it, which the shared one must not be); nothing is dropped with it.
    pub fn on_own_server(url: String) -> TestDatabase {
        TestDatabase {
            url,
            place: Place::OwnServer,
        }
    }

    /// A `[database]` configuration layer naming this database.
    pub fn section(&self) -> String {
        format!("[database]\nurl = {:?}\n", self.url)
    }

    /// A store on this database, for reading what the app wrote through the store's own API.
    pub async fn store(&self) -> Store {
        Store::connect(&self.url, 2)
            .await
            .expect("open the test database")
    }

    /// Everything the database holds, for secret scans. SQLite: the bytes of the file and its
    /// write-ahead log (freed pages included). PostgreSQL: every value of every table in the
    /// schema, one per line, `bytea` as its bytes and anything else as its text form.
    pub async fn contents(&self) -> Vec<u8> {
        match &self.place {
            // The log first: should the last connection close between the two reads, its
            // checkpoint moves pages from the log into the file, never the other way.
            Place::Dir(dir) => ["sspr.db-wal", "sspr.db"]
                .iter()
                .filter_map(|name| std::fs::read(dir.path().join(name)).ok())
                .flatten()
                .collect(),
            Place::Schema { .. } | Place::OwnServer => {
                let mut conn = PgConnection::connect(&self.url).await.unwrap();
                // Not sqlx's migration table: it holds no secret, but its execution times in
                // nanoseconds are whole numbers that a fast migration makes six digits long,
                // which a code of the same run then matches by chance.
                let columns: Vec<(String, String, String)> = sqlx::query_as(
                    "SELECT table_name::text, column_name::text, data_type::text
                     FROM information_schema.columns
                     WHERE table_schema = current_schema() AND table_name <> '_sqlx_migrations'
                     ORDER BY table_name, ordinal_position",
                )
                .fetch_all(&mut conn)
                .await
                .unwrap();
                assert!(!columns.is_empty(), "no tables in the test schema");
                let mut all = Vec::new();
                for (table, column, data_type) in columns {
                    let values: Vec<Vec<u8>> = if data_type == "bytea" {
                        let sql = format!("SELECT \"{column}\" FROM \"{table}\"");
                        let values: Vec<Option<Vec<u8>>> =
                            sqlx::query_scalar(&sql).fetch_all(&mut conn).await.unwrap();
                        values.into_iter().flatten().collect()
                    } else {
                        let sql = format!("SELECT \"{column}\"::text FROM \"{table}\"");
                        let values: Vec<Option<String>> =
                            sqlx::query_scalar(&sql).fetch_all(&mut conn).await.unwrap();
                        values
                            .into_iter()
                            .flatten()
                            .map(String::into_bytes)
                            .collect()
                    };
                    // One value per line: two values never run together into a third (ids 1
                    // to 6 into "123456", a code a test made up).
                    for value in values {
                        all.extend(value);
                        all.push(b'\n');
                    }
                }
                conn.close().await.unwrap();
                all
            }
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let dump_dir = std::env::var_os("SSPR_TEST_DB_DUMP_DIR");
        let drop_schema = match &self.place {
            // Left behind for inspection when the test failed.
            Place::Schema { server_url, schema } if !std::thread::panicking() => {
                Some((server_url.as_str(), schema.as_str()))
            }
            _ => None,
        };
        if dump_dir.is_none() && drop_schema.is_none() {
            return;
        }
        // Drop cannot await, and the test's runtime may be single-threaded: work from a thread of
        // its own. A lock held by a task of the dropped app (which cannot run while this thread
        // is joined) must not hang the test, hence the timeouts.
        let this = &*self;
        let dropped = std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .unwrap()
                        .block_on(async {
                            if let Some(dir) = &dump_dir {
                                // A database never migrated, or a server the test stopped, is
                                // not worth a failure here; its schema is still dropped.
                                let dumped = AssertUnwindSafe(this.dump(Path::new(dir)));
                                if dumped.catch_unwind().await.is_err() {
                                    eprintln!("test database {} not dumped", this.url);
                                }
                            }
                            match drop_schema {
                                Some((url, name)) => drop_postgres_schema(url, name, "5s").await,
                                None => Ok(()),
                            }
                        })
                })
                .join()
        });
        if let (Ok(Err(e)), Some((_, schema))) = (dropped, drop_schema) {
            eprintln!("test schema {schema} left behind: {e}");
        }
    }
}

impl TestDatabase {
    /// Writes [`TestDatabase::contents`] to a file of its own in `dir`, for
    /// `scripts/check-secrets` to search once the suite is done (the database itself is gone
    /// by then).
    async fn dump(&self, dir: &Path) {
        let (kind, contents) = match &self.place {
            Place::Dir(_) => ("sqlite", self.contents().await),
            Place::Schema { .. } | Place::OwnServer => {
                let read =
                    tokio::time::timeout(std::time::Duration::from_secs(10), self.contents());
                match read.await {
                    Ok(contents) => ("postgres", contents),
                    Err(_) => {
                        eprintln!("test database {} not dumped: locked for 10 s", self.url);
                        return;
                    }
                }
            }
        };
        if contents.is_empty() {
            return;
        }
        let path = dir.join(format!("{kind}-{}.bin", uuid::Uuid::new_v4().simple()));
        std::fs::write(&path, contents)
            .unwrap_or_else(|e| panic!("dump the test database to {}: {e}", path.display()));
    }
}

/// Creates an `sspr_test_*` schema on the test PostgreSQL server and returns a URL whose
/// unqualified names (sqlx's `_sqlx_migrations` included) resolve in it, and its name.
pub async fn create_postgres_schema() -> (String, String) {
    keep_logs();
    let server_url = env("SSPR_TEST_POSTGRES_URL");
    let schema = format!("sspr_test_{}", uuid::Uuid::new_v4().simple());
    let mut conn = PgConnection::connect(&server_url).await.unwrap();
    conn.execute(format!("CREATE SCHEMA {schema}").as_str())
        .await
        .unwrap();
    conn.close().await.unwrap();
    let mut url = url::Url::parse(&server_url).unwrap();
    url.query_pairs_mut()
        .append_pair("options", &format!("-c search_path={schema}"));
    (url.into(), schema)
}

/// Drops a schema made by [`create_postgres_schema`], waiting at most `lock_timeout` for locks.
pub async fn drop_postgres_schema(
    server_url: &str,
    schema: &str,
    lock_timeout: &str,
) -> Result<(), sqlx::Error> {
    let mut conn = PgConnection::connect(server_url).await?;
    conn.execute(format!("SET lock_timeout = '{lock_timeout}'").as_str())
        .await?;
    conn.execute(format!("DROP SCHEMA {schema} CASCADE").as_str())
        .await?;
    conn.close().await
}

// ------------------------------------------------------------------- evidence for check-secrets
//
// `scripts/test` sets three variables, and `scripts/check-secrets` searches, after the whole
// suite, the logs (SSPR_TEST_LOG_FILE, SSPR_TEST_LOG_DIR) and the database dumps
// (SSPR_TEST_DB_DUMP_DIR, see `TestDatabase`'s drop) for every secret listed in
// SSPR_TEST_SECRETS_FILE. Unset, nothing is logged, kept or listed.

/// The filter of the kept logs: all the service says, and what the libraries it drives say at
/// debug level (sqlx logs every statement there, ldap3 and rustls through the `log` crate).
pub const KEPT_LOG_LEVEL: &str = "debug,sspr_bridge=trace,tower_http=trace,axum=trace";

/// When `SSPR_TEST_LOG_FILE` names a file, everything the in-process app (and this test binary)
/// logs is appended to it as JSON lines, exactly as `log.format = "json"` writes them, at
/// [`KEPT_LOG_LEVEL`]. Called by every configuration and database the harness makes, so the
/// subscriber is in place before any service code runs.
pub fn keep_logs() {
    static INSTALLED: Once = Once::new();
    INSTALLED.call_once(|| {
        // The configuration's own secrets, which the service holds from the start.
        for var in ["SSPR_TEST_SERVICE_PASSWORD", "SSPR_TEST_ADMIN_PASSWORD"] {
            remember_secret("bind-password", &std::env::var(var).unwrap_or_default());
        }
        remember_secret("secret-key", SECRET_KEY);
        let Some(file) = appended("SSPR_TEST_LOG_FILE") else {
            return;
        };
        let config = LogConfig {
            format: LogFormat::Json,
            level: KEPT_LOG_LEVEL.to_owned(),
        };
        sspr_bridge::logging::init(&config, Mutex::new(file))
            .expect("no other log subscriber in the test binary");
    });
}

/// The filter of service processes whose logs are kept: all the service says, its libraries at
/// info. Not [`KEPT_LOG_LEVEL`]: tests read a process's standard error only once it has exited,
/// and a pipe holds 64 KiB; the in-process app logs the libraries' debug lines for the same code.
pub const KEPT_PROCESS_LOG_LEVEL: &str = "info,sspr_bridge=trace,tower_http=trace,axum=trace";

/// The `sspr-bridge` binary as the suite starts it: with no `SSPR_CONFIG` from the caller's
/// shell and, when the suite keeps logs, at [`KEPT_PROCESS_LOG_LEVEL`] (the format stays the
/// test's). Hand what it wrote to standard error to [`keep_service_log`].
pub fn service_command() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_sspr-bridge"));
    command.env_remove("SSPR_CONFIG");
    if std::env::var_os("SSPR_TEST_LOG_DIR").is_some() {
        command.env("SSPR__LOG__LEVEL", KEPT_PROCESS_LOG_LEVEL);
    }
    command
}

/// Keeps the standard error of a process from [`service_command`] in `SSPR_TEST_LOG_DIR`, one
/// file per process, `what` (e.g. `serve`) in its name.
pub fn keep_service_log(what: &str, stderr: &[u8]) {
    let Some(dir) = std::env::var_os("SSPR_TEST_LOG_DIR") else {
        return;
    };
    if stderr.is_empty() {
        return;
    }
    let path = Path::new(&dir).join(format!("{what}-{}.log", uuid::Uuid::new_v4().simple()));
    std::fs::write(&path, stderr)
        .unwrap_or_else(|e| panic!("keep a service log in {}: {e}", path.display()));
}

/// The file `var` names, opened for appending; `None` if `var` is not set.
fn appended(var: &str) -> Option<File> {
    let path = std::env::var_os(var)?;
    let file = OpenOptions::new().create(true).append(true).open(&path);
    Some(file.unwrap_or_else(|e| panic!("{var}={}: {e}", Path::new(&path).display())))
}

/// Whether the suite lists the secrets it uses ([`remember_secret`]).
pub fn secrets_listed() -> bool {
    std::env::var_os("SSPR_TEST_SECRETS_FILE").is_some()
}

/// Lists `value` in `SSPR_TEST_SECRETS_FILE` (once per value) as a secret of `kind` that the
/// service's logs and database must never contain. `password`, `code`, `totp-secret` (as base32),
/// `session-token`, `flow-id` (both stored only as hashes), `bind-password`, `secret-key`.
pub fn remember_secret(kind: &str, value: &str) {
    /// The file, and what is listed in it already.
    type Listed = Mutex<(File, HashSet<String>)>;
    static LIST: LazyLock<Option<Listed>> = LazyLock::new(|| {
        let file = appended("SSPR_TEST_SECRETS_FILE")?;
        Some(Mutex::new((file, HashSet::new())))
    });
    let Some(list) = LIST.as_ref() else {
        return;
    };
    if value.is_empty() {
        return;
    }
    let mut list = list
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let (file, seen) = &mut *list;
    if seen.insert(format!("{kind}\0{value}")) {
        let mut line = serde_json::json!({"kind": kind, "value": value}).to_string();
        line.push('\n');
        // One write per line: processes sharing the file (O_APPEND) never interleave lines.
        file.write_all(line.as_bytes())
            .expect("append to SSPR_TEST_SECRETS_FILE");
    }
}
