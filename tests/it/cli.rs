//! The `sspr-bridge` binary: `check`, `gen-key`, `migrate` and `serve`, as an operator runs them,
//! against the real DC, SMTP server and databases.

use std::collections::HashSet;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use sspr_bridge::domain::store::{AuditKind, Outcome};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::harness::{self, env};

/// A config file for the test DC and SMTP server, bound as the delegated service account, plus
/// `extra` lines appended per section.
pub(crate) fn write_config(dir: &Path, extra: &str) -> std::path::PathBuf {
    write_config_as(
        dir,
        &env("SSPR_TEST_SERVICE_DN"),
        &env("SSPR_TEST_SERVICE_PASSWORD"),
        extra,
    )
}

/// Like [`write_config`], bound as `bind_dn`.
fn write_config_as(
    dir: &Path,
    bind_dn: &str,
    bind_password: &str,
    extra: &str,
) -> std::path::PathBuf {
    let path = dir.join("sspr-bridge.toml");
    let ca = env("SSPR_TEST_CA_FILE");
    let body = format!(
        r#"
[server]
listen = "127.0.0.1:0"
[directory]
urls = [{url:?}]
ca_file = {ca:?}
base_dn = {base:?}
bind_dn = {bind_dn:?}
bind_password_file = {pw_file:?}
[database]
url = "sqlite://{data}/sspr.db"
[smtp]
host = {smtp_host:?}
port = {smtp_port}
tls = "starttls"
ca_file = {ca:?}
from = "sspr-bridge <no-reply@sspr.test>"
{extra}
"#,
        url = env("SSPR_TEST_LDAPS_URL"),
        base = env("SSPR_TEST_BASE_DN"),
        pw_file = write_secret(dir, "bind_password", bind_password),
        data = dir.display(),
        smtp_host = env("SSPR_TEST_SMTP_HOST"),
        smtp_port = env("SSPR_TEST_SMTP_PORT"),
    );
    std::fs::write(&path, body).unwrap();
    path
}

fn write_secret(dir: &Path, name: &str, value: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, format!("{value}\n")).unwrap();
    path
}

fn run(args: &[&str], envs: &[(&str, &str)]) -> Output {
    let mut cmd = harness::service_command();
    cmd.args(args);
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let output = cmd.output().expect("run sspr-bridge");
    harness::keep_service_log("cli", &output.stderr);
    output
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub(crate) fn gen_key() -> String {
    let output = run(&["gen-key"], &[]);
    assert!(output.status.success());
    let key = stdout(&output).trim().to_owned();
    harness::remember_secret("secret-key", &key);
    key
}

#[test]
fn gen_key_prints_32_random_bytes_in_base64() {
    use base64::Engine as _;
    let a = gen_key();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(&a)
        .unwrap();
    assert_eq!(bytes.len(), 32);
    assert_ne!(a, gen_key());
}

#[tokio::test]
async fn check_reports_every_dependency_ok_against_the_real_components() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "");
    let key = gen_key();
    let output = run(
        &["--config", config.to_str().unwrap(), "check"],
        &[("SSPR__SECURITY__SECRET_KEY", &key)],
    );
    let text = stdout(&output);
    assert!(
        output.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    for subject in ["config", "licence", "database", "smtp", "scope"] {
        assert!(
            text.lines()
                .any(|l| l.starts_with("OK") && l.split_whitespace().nth(1) == Some(subject)),
            "no OK line for {subject}:\n{text}"
        );
    }
    assert_dc_line_tells_policy_hints(line_for(&text, "dc")).await;
    assert!(
        line_for(&text, "scope").contains("policy.scope = all"),
        "{text}"
    );
    assert!(
        line_for(&text, "helpdesk").starts_with("SKIP")
            && line_for(&text, "helpdesk").contains("helpdesk is off"),
        "{text}"
    );
    let licence = line_for(&text, "licence");
    assert!(
        licence.contains("self-service off")
            && licence.contains("requires an Azure AD Premium licence")
            && licence.contains("set licence.azure_ad_premium = true"),
        "the licence state, and for administrators what to do: {licence}"
    );
    assert!(
        !text.contains(&env("SSPR_TEST_ADMIN_PASSWORD")),
        "no secret printed"
    );
}

#[test]
fn check_tells_the_branding_and_refuses_an_unknown_time_zone() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        "[ui]\ntimezone = \"Europe/Amsterdam\"\nprimary_colour = \"#1f4e79\"",
    );
    let (output, text) = check_line(&config, &[]);
    assert!(output.status.success(), "{text}");
    let branding: Vec<&str> = text
        .lines()
        .filter(|l| l.split_whitespace().nth(1) == Some("branding"))
        .collect();
    assert_eq!(branding.len(), 4, "{text}");
    assert!(
        branding.iter().any(|l| l.starts_with("OK")
            && l.contains("ui.timezone: Europe/Amsterdam; it is ")
            && (l.ends_with(" CET there now") || l.ends_with(" CEST there now"))),
        "{text}"
    );
    assert!(
        branding
            .iter()
            .any(|l| l.contains("ui.primary_colour: #1f4e79, white text on it 8.7:1")),
        "{text}"
    );

    let wrong = write_config(dir.path(), "[ui]\ntimezone = \"Europe/Amsterdan\"");
    let (output, text) = check_line(&wrong, &[]);
    assert!(!output.status.success(), "{text}");
    assert!(
        line_for(&text, "config").starts_with("FAIL")
            && text.contains("ui.timezone: \"Europe/Amsterdan\" is not a time zone name"),
        "{text}"
    );
}

/// `check` with `config` and a secret key, plus `envs`: its output and its stdout.
fn check_line(config: &Path, envs: &[(&str, &str)]) -> (Output, String) {
    let key = gen_key();
    let mut all = vec![("SSPR__SECURITY__SECRET_KEY", key.as_str())];
    all.extend_from_slice(envs);
    let output = run(&["--config", config.to_str().unwrap(), "check"], &all);
    let text = stdout(&output);
    (output, text)
}

fn line_for<'t>(text: &'t str, subject: &str) -> &'t str {
    text.lines()
        .find(|l| l.split_whitespace().nth(1) == Some(subject))
        .unwrap_or_else(|| panic!("no {subject} line:\n{text}"))
}

#[test]
fn check_warns_when_the_service_account_is_privileged() {
    let dir = tempfile::tempdir().unwrap();
    let admin = write_config_as(
        dir.path(),
        &env("SSPR_TEST_ADMIN_DN"),
        &env("SSPR_TEST_ADMIN_PASSWORD"),
        "",
    );
    let (output, text) = check_line(&admin, &[]);
    let account = line_for(&text, "account");
    assert!(
        account.starts_with("WARN ")
            && account.contains("CN=Administrator")
            && account.contains("the service account is a member of a privileged group")
            && account.contains("README"),
        "{account}"
    );
    assert!(output.status.success(), "a warning does not fail: {text}");

    let dir = tempfile::tempdir().unwrap();
    let (output, text) = check_line(&write_config(dir.path(), ""), &[]);
    assert!(output.status.success(), "{text}");
    let account = line_for(&text, "account");
    assert!(
        account.starts_with("OK ") && account.contains("svc-sspr"),
        "{account}"
    );
    assert!(
        text.lines()
            .filter(|l| l.starts_with("WARN"))
            .all(|l| l.contains("no password policy hints")),
        "only the DC's missing policy hints may warn: {text}"
    );
    let self_test = line_for(&text, "self-test");
    assert!(self_test.starts_with("SKIP"), "off by default: {self_test}");
}

/// Whether the test DC lists LDAP_SERVER_POLICY_HINTS (either OID) in its rootDSE.
async fn dc_has_policy_hints() -> bool {
    let mut ldap = harness::admin().await;
    let (entries, _) = ldap
        .search(
            "",
            ldap3::Scope::Base,
            "(objectClass=*)",
            vec!["supportedControl"],
        )
        .await
        .and_then(ldap3::SearchResult::success)
        .expect("read the rootDSE");
    let _ = ldap.unbind().await;
    let controls = entries
        .into_iter()
        .next()
        .map(|e| ldap3::SearchEntry::construct(e).attrs)
        .and_then(|mut attrs| attrs.remove("supportedControl"))
        .unwrap_or_default();
    controls
        .iter()
        .any(|oid| oid == "1.2.840.113556.1.4.2239" || oid == "1.2.840.113556.1.4.2066")
}

/// A DC without policy hints (Samba has none) is a warning that says what it means; one with
/// them is OK.
async fn assert_dc_line_tells_policy_hints(dc: &str) {
    if dc_has_policy_hints().await {
        assert!(
            dc.starts_with("OK ") && dc.contains("history and minimum age apply"),
            "{dc}"
        );
    } else {
        assert!(
            dc.starts_with("WARN ")
                && dc.contains("no password policy hints")
                && dc.contains("neither password history nor minimum age"),
            "{dc}"
        );
    }
}

/// The pwdLastSet an OK self-test line reports.
fn reported_pwd_last_set(line: &str) -> i64 {
    line.split("(pwdLastSet ")
        .nth(1)
        .and_then(|rest| rest.trim_end_matches(')').parse().ok())
        .unwrap_or_else(|| panic!("no pwdLastSet in {line}"))
}

#[tokio::test]
async fn check_self_test_resets_the_test_account_as_the_service_account() {
    let user = harness::create_user("chk").await;
    // Disabled, as a dedicated test account should be: a reset works all the same.
    harness::set_attr(&user.dn, "userAccountControl", "514").await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "");
    for id in [user.dn.as_str(), user.sam.as_str()] {
        let (output, text) = check_line(&config, &[("SSPR__DIRECTORY__SELF_TEST_USER", id)]);
        assert!(output.status.success(), "{text}");
        let self_test = line_for(&text, "self-test");
        assert!(
            self_test.starts_with("OK ") && self_test.contains(&user.dn),
            "{self_test}"
        );
        assert_ne!(
            reported_pwd_last_set(self_test),
            0,
            "the reset left the password unexpired"
        );
        assert_eq!(
            harness::read_attr(&user.dn, "pwdLastSet").await.as_deref(),
            Some("0"),
            "then it was forced to change"
        );
    }
    harness::set_attr(&user.dn, "userAccountControl", "512").await;
    assert!(
        harness::bind(&user.dn, &user.password).await.is_err(),
        "the password was reset"
    );
}

#[tokio::test]
async fn check_self_test_fails_where_the_rights_were_not_delegated() {
    // An OU outside CN=Users, where scripts/lib/dc.sh granted svc-sspr nothing.
    let base = env("SSPR_TEST_BASE_DN");
    let ou = format!("OU={},{base}", harness::unique_name("nodeleg"));
    let sam = harness::unique_name("chk");
    let dn = format!("CN={sam},{ou}");
    let set = |v: &str| HashSet::from([v.as_bytes().to_vec()]);
    let mut ldap = harness::admin().await;
    ldap.add(
        &ou,
        vec![(b"objectClass".to_vec(), set("organizationalUnit"))],
    )
    .await
    .and_then(ldap3::LdapResult::success)
    .expect("create OU");
    ldap.add(
        &dn,
        vec![
            (b"objectClass".to_vec(), set("user")),
            (b"sAMAccountName".to_vec(), set(&sam)),
        ],
    )
    .await
    .and_then(ldap3::LdapResult::success)
    .expect("create user");
    let _ = ldap.unbind().await;

    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "");
    let (output, text) = check_line(&config, &[("SSPR__DIRECTORY__SELF_TEST_USER", &dn)]);
    assert!(!output.status.success(), "{text}");
    let self_test = line_for(&text, "self-test");
    assert!(
        self_test.starts_with("FAIL")
            && self_test.contains("lacks the Reset Password right on")
            && self_test.contains(&dn),
        "{self_test}"
    );
}

#[tokio::test]
async fn check_self_test_refuses_protected_and_unknown_accounts() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "");
    for (id, expected) in [
        (env("SSPR_TEST_ADMIN_DN"), "protected account"),
        ("no-such-user-xyz".to_owned(), "no such user"),
        (env("SSPR_TEST_SERVICE_DN"), "the service account itself"),
    ] {
        let (output, text) = check_line(&config, &[("SSPR__DIRECTORY__SELF_TEST_USER", &id)]);
        assert!(!output.status.success(), "{text}");
        let self_test = line_for(&text, "self-test");
        assert!(
            self_test.starts_with("FAIL") && self_test.contains(expected),
            "{self_test}"
        );
    }
    harness::bind(&env("SSPR_TEST_ADMIN_DN"), &env("SSPR_TEST_ADMIN_PASSWORD"))
        .await
        .expect("Administrator keeps its password");
}

/// The helpdesk group and the self-service scope group, as `check` resolves them.
fn group_config(dir: &Path, helpdesk: &str, scope: &str) -> std::path::PathBuf {
    write_config(
        dir,
        &format!(
            "[helpdesk]\ngroup_dn = {helpdesk:?}\n[policy]\nscope = \"group\"\ngroup_dn = {scope:?}"
        ),
    )
}

#[tokio::test]
async fn check_counts_the_enabled_members_of_the_helpdesk_and_scope_groups() {
    // Operators as the demo has them: one in a nested tier group, one directly in the group.
    let helpdesk = harness::create_group(&harness::unique_name("Chk Helpdesk ")).await;
    let tier1 = harness::create_group(&harness::unique_name("Chk Tier1 ")).await;
    harness::add_member(&helpdesk, &tier1).await;
    for (group, prefix) in [(&tier1, "chkop"), (&helpdesk, "chkop")] {
        let operator = harness::create_user(prefix).await;
        harness::add_member(group, &operator.dn).await;
    }
    // A disabled member does not count: it cannot sign in or reset.
    let scope = harness::create_group(&harness::unique_name("Chk Staff ")).await;
    let (staff, gone) = (
        harness::create_user("chkst").await,
        harness::create_user("chkst").await,
    );
    harness::add_member(&scope, &staff.dn).await;
    harness::add_member(&scope, &gone.dn).await;
    harness::set_attr(&gone.dn, "userAccountControl", "514").await;

    let dir = tempfile::tempdir().unwrap();
    let (output, text) = check_line(&group_config(dir.path(), &helpdesk, &scope), &[]);
    assert!(output.status.success(), "{text}");
    let line = line_for(&text, "helpdesk");
    assert!(
        line.starts_with("OK ")
            && line.contains(&helpdesk)
            && line.contains(": 2 enabled accounts (nested groups included) may sign in"),
        "{line}"
    );
    let line = line_for(&text, "scope");
    assert!(
        line.starts_with("OK ")
            && line.contains(&scope)
            && line.contains(": 1 enabled account (nested groups included) may use self-service"),
        "{line}"
    );
}

#[tokio::test]
async fn check_fails_for_a_group_that_does_not_exist_and_warns_for_an_empty_one() {
    let base = env("SSPR_TEST_BASE_DN");
    let missing = format!(
        "CN={},CN=Users,{base}",
        harness::unique_name("No Such Group ")
    );
    let empty = harness::create_group(&harness::unique_name("Chk Empty ")).await;
    let dir = tempfile::tempdir().unwrap();
    let (output, text) = check_line(&group_config(dir.path(), &missing, &empty), &[]);
    assert!(!output.status.success(), "a missing group fails: {text}");
    let line = line_for(&text, "helpdesk");
    assert!(
        line.starts_with("FAIL")
            && line.contains(&format!("helpdesk.group_dn {missing}: no such group"))
            && line.contains("nobody can sign in to the helpdesk"),
        "{line}"
    );
    let line = line_for(&text, "scope");
    assert!(
        line.starts_with("WARN")
            && line.contains(&empty)
            && line.contains("has no enabled accounts as members")
            && line.contains("nobody can use self-service"),
        "{line}"
    );

    // The DN of a user, not a group, and the other way round: both name what is wrong.
    let user = harness::create_user("chkng").await;
    let (output, text) = check_line(&group_config(dir.path(), &empty, &user.dn), &[]);
    assert!(!output.status.success(), "{text}");
    let line = line_for(&text, "scope");
    assert!(
        line.starts_with("FAIL") && line.contains(&format!("{} is not a group", user.dn)),
        "{line}"
    );
    let line = line_for(&text, "helpdesk");
    assert!(
        line.starts_with("WARN") && line.contains("nobody can sign in to the helpdesk"),
        "{line}"
    );
}

/// A config with the DN lists given; `never_reset` goes into the file's [directory] table.
fn dn_lists_config(
    dir: &Path,
    policy: &[&str],
    helpdesk: &[&str],
    never: &[&str],
) -> std::path::PathBuf {
    let path = write_config(
        dir,
        &format!(
            "[policy]\nallow_protected = {policy:?}\n[helpdesk]\nallow_protected = {helpdesk:?}"
        ),
    );
    let text = std::fs::read_to_string(&path).unwrap().replacen(
        "[directory]\n",
        &format!("[directory]\nnever_reset = {never:?}\n"),
        1,
    );
    std::fs::write(&path, text).unwrap();
    path
}

#[tokio::test]
async fn check_resolves_every_dn_the_lists_name() {
    let user = harness::create_user("chkls").await;
    let group = harness::create_group(&harness::unique_name("Chk Allowed ")).await;
    harness::add_member(&group, &user.dn).await;
    let dir = tempfile::tempdir().unwrap();
    let config = dn_lists_config(dir.path(), &[&user.dn, &group], &[&group], &[&user.dn]);
    let (output, text) = check_line(&config, &[]);
    assert!(output.status.success(), "{text}");
    let lines: Vec<&str> = text.lines().filter(|l| l.contains(" allowlist ")).collect();
    assert_eq!(lines.len(), 2, "one line per list: {text}");
    assert!(
        lines[0].starts_with("OK ")
            && lines[0].contains("policy.allow_protected: ")
            && lines[0].contains(&format!("{} (account)", user.dn))
            && lines[0].contains(&format!("{group} (group of 1 enabled account)")),
        "{}",
        lines[0]
    );
    assert!(
        lines[1].starts_with("OK ") && lines[1].contains("helpdesk.allow_protected: "),
        "{}",
        lines[1]
    );
    let line = line_for(&text, "excluded");
    assert!(
        line.starts_with("OK ")
            && line.contains(&format!("directory.never_reset: {} (account)", user.dn)),
        "{line}"
    );

    // A typo leaves out whom it was meant for; never_reset takes accounts only.
    let base = env("SSPR_TEST_BASE_DN");
    let typo = format!("CN={},CN=Users,{base}", harness::unique_name("Nobody "));
    let config = dn_lists_config(dir.path(), &[&user.dn, &typo], &[&group], &[&group]);
    let (output, text) = check_line(&config, &[]);
    assert!(!output.status.success(), "{text}");
    let line = line_for(&text, "allowlist");
    assert!(
        line.starts_with("FAIL")
            && line.contains(&format!("{typo}: no such entry"))
            && !line.contains(&user.dn),
        "{line}"
    );
    let line = line_for(&text, "excluded");
    assert!(
        line.starts_with("FAIL") && line.contains(&format!("{group} is a group, not an account")),
        "{line}"
    );
}

#[test]
fn check_fails_with_the_reason_and_environment_overrides_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "");
    let key = gen_key();
    let output = run(
        &["--config", config.to_str().unwrap(), "check"],
        &[
            ("SSPR__SECURITY__SECRET_KEY", &key),
            ("SSPR__LICENCE__AZURE_AD_PREMIUM", "true"),
            ("SSPR__DIRECTORY__CA_FILE", &env("SSPR_TEST_OTHER_CA_FILE")),
            ("SSPR__SMTP__PORT", "1"),
        ],
    );
    let text = stdout(&output);
    assert!(!output.status.success(), "{text}");
    assert!(text.contains("self-service enabled"), "{text}");
    let dc = text.lines().find(|l| l.contains(" dc ")).expect("dc line");
    assert!(dc.starts_with("FAIL") && dc.contains("certificate"), "{dc}");
    let smtp = text
        .lines()
        .find(|l| l.contains(" smtp "))
        .expect("smtp line");
    assert!(smtp.starts_with("FAIL"), "{smtp}");
    assert!(
        text.lines()
            .any(|l| l.starts_with("OK") && l.contains(" database ")),
        "{text}"
    );
}

#[test]
fn a_bad_configuration_names_the_key_and_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "");
    let output = run(&["--config", config.to_str().unwrap(), "serve"], &[]);
    assert_eq!(output.status.code(), Some(2));
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(
        err.contains("security.secret_key") && err.contains("sspr-bridge gen-key"),
        "{err}"
    );

    let output = run(
        &["--config", config.to_str().unwrap(), "check"],
        &[
            ("SSPR__SECURITY__SECRET_KEY", "dG9vIHNob3J0"),
            ("SSPR__DIRECTORY__URLS", "ldap://127.0.0.1:389"),
            ("SSPR__SERVER__LISTN", "x"),
        ],
    );
    assert_eq!(output.status.code(), Some(2));
    let text = stdout(&output);
    assert!(text.starts_with("FAIL"), "{text}");
    assert!(text.contains("listn"), "unknown key named: {text}");
}

#[test]
fn invalid_values_are_all_named() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "");
    let output = run(
        &["--config", config.to_str().unwrap(), "migrate"],
        &[
            ("SSPR__SECURITY__SECRET_KEY", "dG9vIHNob3J0"),
            (
                "SSPR__DIRECTORY__URLS",
                "ldap://127.0.0.1:389,ldaps://127.0.0.1:636",
            ),
        ],
    );
    assert_eq!(output.status.code(), Some(2));
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(err.contains("security.secret_key"), "{err}");
    assert!(
        err.contains("directory.urls") && err.contains("starttls"),
        "{err}"
    );
}

#[test]
fn migrate_creates_the_sqlite_database_and_is_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "");
    let key = gen_key();
    for _ in 0..2 {
        let output = run(
            &["--config", config.to_str().unwrap(), "migrate"],
            &[("SSPR__SECURITY__SECRET_KEY", &key)],
        );
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    assert!(dir.path().join("sspr.db").is_file());
}

/// Sends one HTTP/1.1 request and returns the status code.
async fn http_status(addr: &str, path: &str) -> Option<u16> {
    let mut stream = tokio::net::TcpStream::connect(addr).await.ok()?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await.ok()?;
    response.split_whitespace().nth(1)?.parse().ok()
}

#[tokio::test]
async fn serve_answers_and_stops_gracefully_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let addr = format!("127.0.0.1:{port}");
    let config = write_config(dir.path(), "");
    let key = gen_key();
    let mut child = harness::service_command()
        .args(["--config", config.to_str().unwrap(), "serve"])
        .env("SSPR__SECURITY__SECRET_KEY", &key)
        .env("SSPR__SERVER__LISTEN", &addr)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();

    let started = Instant::now();
    let mut ready = None;
    while started.elapsed() < Duration::from_secs(20) {
        ready = http_status(&addr, "/readyz").await;
        if ready.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(ready, Some(200), "the service came up ready");
    assert_eq!(http_status(&addr, "/healthz").await, Some(200));

    let kill = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let output = tokio::task::spawn_blocking(move || {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                let mut err = String::new();
                std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
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
    .unwrap();
    harness::keep_service_log("serve", output.1.as_bytes());
    assert!(output.0.success(), "clean exit: {}", output.1);
    assert!(output.1.contains("shutting down"), "{}", output.1);
    assert!(!output.1.contains(&key), "the secret key is never logged");
}

#[tokio::test]
async fn audit_exports_csv_and_json_from_a_date() {
    use sspr_bridge::domain::store::{AuditEvent, AuditLog};
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "");
    let key = gen_key();
    let store = sspr_bridge::store::Store::connect(
        &format!("sqlite://{}/sspr.db", dir.path().display()),
        1,
    )
    .await
    .unwrap();
    store.migrate().await.unwrap();
    let day = |d: i64| 1_793_491_200_000 + d * 86_400_000; // 2026-11-01 + d days
    for (at, event, sam) in [
        (day(-1), AuditKind::SignIn, "old"),
        (day(0), AuditKind::FlowStarted, "a,b \"c\""),
        (day(1), AuditKind::PasswordReset, "bob"),
    ] {
        store
            .record(&AuditEvent {
                at: sspr_bridge::domain::clock::Timestamp::from_millis(at),
                event,
                outcome: Outcome::Success,
                object_guid: None,
                sam_account_name: Some(sam.into()),
                actor: None,
                client_ip: Some("192.0.2.7".into()),
                method: None,
                reason: None,
                login_hash: None,
            })
            .await
            .unwrap();
    }
    store.close().await;

    let env = [("SSPR__SECURITY__SECRET_KEY", key.as_str())];
    let cfg = config.to_str().unwrap();
    let csv = run(
        &[
            "--config",
            cfg,
            "audit",
            "--since",
            "2026-11-01",
            "--format",
            "csv",
        ],
        &env,
    );
    assert!(
        csv.status.success(),
        "{}",
        String::from_utf8_lossy(&csv.stderr)
    );
    let text = stdout(&csv);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "header + 2 rows since the date:\n{text}");
    assert!(lines[0].starts_with("id,time,event,outcome"));
    assert!(
        lines[1].contains("2026-11-01T00:00:00.000Z") && lines[1].contains("\"a,b \"\"c\"\"\""),
        "{}",
        lines[1]
    );
    assert!(!text.contains("old"));

    let json = run(
        &[
            "--config",
            cfg,
            "audit",
            "--since",
            "2026-11-02T00:00:00Z",
            "--format",
            "json",
        ],
        &env,
    );
    let rows: serde_json::Value = serde_json::from_str(&stdout(&json)).unwrap();
    assert_eq!(rows.as_array().unwrap().len(), 1);
    assert_eq!(rows[0]["event"], "password_reset");
    assert_eq!(rows[0]["client_ip"], "192.0.2.7");

    let bad = run(&["--config", cfg, "audit", "--since", "last tuesday"], &env);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("not a date"));
}

#[tokio::test]
async fn audit_csv_neutralises_formulas() {
    use sspr_bridge::domain::store::{AuditEvent, AuditLog};
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "");
    let key = gen_key();
    let store = sspr_bridge::store::Store::connect(
        &format!("sqlite://{}/sspr.db", dir.path().display()),
        1,
    )
    .await
    .unwrap();
    store.migrate().await.unwrap();
    let typed = [
        "=HYPERLINK(\"http://x\",\"y\")",
        "@SUM(1+1)",
        "+1",
        "-1",
        "\tcmd",
        "jdoe",
    ];
    for (i, sam) in typed.iter().enumerate() {
        store
            .record(&AuditEvent {
                at: sspr_bridge::domain::clock::Timestamp::from_millis(
                    1_793_491_200_000 + i as i64,
                ),
                event: AuditKind::FlowStarted,
                outcome: Outcome::Success,
                object_guid: None,
                sam_account_name: Some((*sam).into()),
                actor: Some("=cmd|' /C calc'!A0".into()),
                client_ip: Some("192.0.2.7".into()),
                method: None,
                reason: Some("-2+3".into()),
                login_hash: None,
            })
            .await
            .unwrap();
    }
    store.close().await;

    let env = [("SSPR__SECURITY__SECRET_KEY", key.as_str())];
    let cfg = config.to_str().unwrap();
    let out = run(
        &[
            "--config",
            cfg,
            "audit",
            "--since",
            "2026-11-01",
            "--format",
            "csv",
        ],
        &env,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = stdout(&out);
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let headers = reader.headers().unwrap().clone();
    let col = |name: &str| headers.iter().position(|h| h == name).unwrap();
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), typed.len(), "{text}");
    for (row, sam) in rows.iter().zip(typed) {
        for cell in row.iter() {
            assert!(
                !cell.starts_with(['=', '+', '-', '@', '\t', '\r']),
                "a cell a spreadsheet would evaluate: {cell:?}"
            );
        }
        let got = &row[col("sam_account_name")];
        if sam == "jdoe" {
            assert_eq!(got, "jdoe", "plain text is left alone");
        } else {
            assert_eq!(got.strip_prefix('\''), Some(sam), "{got:?}");
        }
        assert_eq!(&row[col("actor")], "'=cmd|' /C calc'!A0");
        assert_eq!(&row[col("reason")], "'-2+3");
        assert_eq!(&row[col("client_ip")], "192.0.2.7");
    }

    // JSON is for machines: the text stays exactly as recorded.
    let json = run(
        &[
            "--config",
            cfg,
            "audit",
            "--since",
            "2026-11-01",
            "--format",
            "json",
        ],
        &env,
    );
    let rows: serde_json::Value = serde_json::from_str(&stdout(&json)).unwrap();
    let sams: Vec<&str> = rows
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["sam_account_name"].as_str().unwrap())
        .collect();
    assert_eq!(sams, typed);
}
