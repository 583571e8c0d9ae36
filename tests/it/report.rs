//! `sspr-bridge report` against the real DC and the test database: the figures of a fixture of
//! users counted by hand. The DC is shared with every other test, so the scope is a group holding
//! only this test's users.

use std::time::Duration;

use sqlx::{AnyConnection, Connection};
use sspr_bridge::cli::report::{self, Format, Since};
use sspr_bridge::config::Config;
use sspr_bridge::domain::ObjectGuid;
use sspr_bridge::domain::clock::Timestamp;
use sspr_bridge::domain::report::Per;
use sspr_bridge::domain::store::{
    AuditEvent, AuditKind, AuditLog, EnrolledMethod, MethodKind, Outcome, RegistrationStore,
    ThrottleStore,
};

use axum::http::{StatusCode, header};

use crate::harness::{
    self, TestDatabase, TestUser, add_member, create_group, create_user, read_binary_attr,
    unique_name,
};
use crate::helpdesk::desk;
use crate::helpdesk_pages::operator_signs_in;
use crate::pages::{Browser, assert_page};

const DAY_MS: i64 = 86_400_000;

async fn guid_of(user: &TestUser) -> ObjectGuid {
    let raw = read_binary_attr(&user.dn, "objectGUID").await.unwrap();
    ObjectGuid::from_ad_bytes(&raw).unwrap()
}

fn method(kind: MethodKind, confirmed_at: Timestamp) -> EnrolledMethod {
    EnrolledMethod {
        kind,
        address: (kind == MethodKind::Email).then(|| "someone@mail.test".to_owned()),
        secret_sealed: None,
        last_step: None,
        confirmed_at: Some(confirmed_at),
        created_at: confirmed_at,
    }
}

fn event(
    at: Timestamp,
    kind: AuditKind,
    user: ObjectGuid,
    method: Option<&str>,
    outcome: Outcome,
    reason: Option<&str>,
) -> AuditEvent {
    AuditEvent {
        at,
        event: kind,
        outcome,
        object_guid: Some(user),
        sam_account_name: None,
        actor: None,
        client_ip: None,
        method: method.map(str::to_owned),
        reason: reason.map(str::to_owned),
        login_hash: None,
    }
}

/// The fixture: a scope group of six users and what the database holds about them.
///
/// | user     | registered                       | other                          |
/// |----------|----------------------------------|--------------------------------|
/// | totp     | TOTP, confirmed yesterday        |                                |
/// | both     | TOTP and email, yesterday        |                                |
/// | stale    | email, confirmed 400 days ago    |                                |
/// | never    | nothing                          |                                |
/// | blocked  | nothing                          | a throttle block until later   |
/// | disabled | TOTP                             | disabled: not counted          |
///
/// Outside the group: a user with TOTP and a block (not counted). Audit, yesterday: 2 email
/// resets and 1 failed TOTP reset, 1 unlock, 1 `password_changed`, 1 helpdesk reset; 40 days ago
/// 1 reset (before `--since 30d`). Refusals: 3 `wrong_code` failures, 1 `out_of_scope` denial.
async fn fixture(database: &TestDatabase) -> (Config, Timestamp) {
    let group = create_group(&unique_name("rptgrp")).await;
    let mut members = Vec::new();
    for prefix in [
        "rpttotp", "rptboth", "rptstale", "rptnever", "rptblk", "rptdis",
    ] {
        let user = create_user(prefix).await;
        add_member(&group, &user.dn).await;
        members.push(guid_of(&user).await);
        if prefix == "rptdis" {
            harness::set_attr(&user.dn, "userAccountControl", "514").await;
        }
    }
    let outsider = guid_of(&create_user("rptout").await).await;
    let [totp, both, stale, _never, blocked, disabled] = members[..] else {
        unreachable!()
    };

    let store = database.store().await;
    store.migrate().await.unwrap();
    let now = Timestamp::from_system_time(std::time::SystemTime::now());
    // Noon yesterday (UTC), so every row of "yesterday" falls in one day.
    let yesterday = Timestamp::from_millis((now.as_millis() / DAY_MS - 1) * DAY_MS + DAY_MS / 2);
    for (user, kind, at) in [
        (totp, MethodKind::Totp, yesterday),
        (both, MethodKind::Totp, yesterday),
        (both, MethodKind::Email, yesterday),
        (
            stale,
            MethodKind::Email,
            now - Duration::from_secs(400 * 86_400),
        ),
        (disabled, MethodKind::Totp, yesterday),
        (outsider, MethodKind::Totp, yesterday),
    ] {
        store
            .put_method(&user, "fixture", &method(kind, at))
            .await
            .unwrap();
    }
    let later = now + Duration::from_secs(3600);
    for user in [blocked, outsider] {
        store.block(&format!("user:{user}"), later).await.unwrap();
    }

    use AuditKind::*;
    let long_ago = now - Duration::from_secs(40 * 86_400);
    let events = [
        event(
            yesterday,
            PasswordReset,
            totp,
            Some("email"),
            Outcome::Success,
            None,
        ),
        event(
            yesterday,
            PasswordReset,
            both,
            Some("email"),
            Outcome::Success,
            None,
        ),
        event(
            yesterday,
            PasswordReset,
            both,
            Some("totp"),
            Outcome::Failure,
            Some("wrong_code"),
        ),
        event(
            yesterday,
            Unlock,
            totp,
            Some("totp"),
            Outcome::Success,
            None,
        ),
        event(
            yesterday,
            HelpdeskReset,
            stale,
            None,
            Outcome::Success,
            None,
        ),
        event(
            yesterday,
            Verification,
            both,
            Some("totp"),
            Outcome::Failure,
            Some("wrong_code"),
        ),
        event(
            yesterday,
            Verification,
            both,
            Some("totp"),
            Outcome::Failure,
            Some("wrong_code"),
        ),
        event(
            yesterday,
            FlowStarted,
            outsider,
            None,
            Outcome::Denied,
            Some("out_of_scope"),
        ),
        event(yesterday, SignIn, totp, None, Outcome::Success, None),
        event(
            long_ago,
            PasswordReset,
            totp,
            Some("email"),
            Outcome::Success,
            None,
        ),
    ];
    for e in &events {
        store.record(e).await.unwrap();
    }
    store.close().await;
    // A change with the current password, as its audit kind names it: counted by that name.
    let mut conn = AnyConnection::connect(&database.url).await.unwrap();
    sqlx::query(
        "INSERT INTO audit_events (at_ms, event, outcome, object_guid)
         VALUES ($1, 'password_changed', 'success', $2)",
    )
    .bind(yesterday.as_millis())
    .bind(totp.to_string())
    .execute(&mut conn)
    .await
    .unwrap();
    conn.close().await.unwrap();

    let config = harness::config_layers(&[
        &database.section(),
        &format!("[policy]\nscope = \"group\"\ngroup_dn = {group:?}\n"),
        "[registration]\nreconfirm_days = 365\n",
    ]);
    (config, yesterday)
}

async fn run(config: &Config, format: Format) -> String {
    let mut out = Vec::new();
    report::run(
        config,
        Since::Ago(Duration::from_secs(30 * 86_400)),
        Per::Day,
        format,
        &mut out,
    )
    .await
    .unwrap_or_else(|e| panic!("{format:?}: {e}"));
    String::from_utf8(out).unwrap()
}

#[tokio::test]
async fn report_figures_match_the_fixture_in_every_format() {
    let database = TestDatabase::from_env().await;
    let (config, yesterday) = fixture(&database).await;
    let day =
        humantime::format_rfc3339_seconds(yesterday.to_system_time()).to_string()[..10].to_owned();

    let json: serde_json::Value = serde_json::from_str(&run(&config, Format::Json).await).unwrap();
    let people = |name: &str| {
        json[name]
            .as_u64()
            .unwrap_or_else(|| panic!("{name}: {json}"))
    };
    assert_eq!(people("users_in_scope"), 5, "{json}");
    assert_eq!(people("registered"), 3, "{json}");
    assert_eq!(people("stale"), 1, "{json}");
    assert_eq!(people("never_registered"), 2, "{json}");
    assert_eq!(people("blocked_now"), 1, "{json}");
    assert_eq!(
        json["registered_by_method"],
        serde_json::json!({"totp": 2, "email": 2, "passkey": 0})
    );
    let row = |action: &str, method: Option<&str>, outcome: &str, count: u64| {
        serde_json::json!({
            "period": day, "action": action, "method": method, "outcome": outcome, "count": count,
        })
    };
    assert_eq!(
        json["activity"],
        serde_json::json!([
            row("password_reset", Some("email"), "success", 2),
            row("password_reset", Some("totp"), "failure", 1),
            row("unlock", Some("totp"), "success", 1),
            row("password_changed", None, "success", 1),
            row("helpdesk_reset", None, "success", 1),
        ]),
        "{json}"
    );
    assert_eq!(
        json["refusals"],
        serde_json::json!([
            {"reason": "wrong_code", "count": 3},
            {"reason": "out_of_scope", "count": 1},
        ])
    );

    let csv = run(&config, Format::Csv).await;
    let rows: Vec<Vec<String>> = csv::Reader::from_reader(csv.as_bytes())
        .records()
        .map(|r| r.unwrap().iter().map(str::to_owned).collect())
        .collect();
    let has = |cells: &[&str]| rows.iter().any(|r| r == cells);
    for cells in [
        ["users_in_scope", "", "", "", "", "", "5"],
        ["registered", "", "", "", "", "", "3"],
        ["stale", "", "", "", "", "", "1"],
        ["never_registered", "", "", "", "", "", "2"],
        ["blocked_now", "", "", "", "", "", "1"],
        ["registered_by_method", "", "", "totp", "", "", "2"],
        ["registered_by_method", "", "", "email", "", "", "2"],
        ["registered_by_method", "", "", "passkey", "", "", "0"],
        [
            "activity",
            &day,
            "password_reset",
            "email",
            "success",
            "",
            "2",
        ],
        ["activity", &day, "password_changed", "", "success", "", "1"],
        ["refusal", "", "", "", "", "wrong_code", "3"],
    ] {
        assert!(has(&cells), "{cells:?} in\n{csv}");
    }
    assert_eq!(rows.len(), 5 + 3 + 5 + 2, "{csv}");

    let table = run(&config, Format::Table).await;
    let line = |label: &str| {
        table
            .lines()
            .find(|l| l.starts_with(label))
            .unwrap_or_else(|| panic!("{label} in\n{table}"))
            .split_whitespace()
            .last()
            .unwrap()
            .to_owned()
    };
    assert_eq!(line("Users in scope"), "5", "{table}");
    assert_eq!(line("Registered but stale"), "1", "{table}");
    assert_eq!(line("Never registered"), "2", "{table}");
    assert_eq!(line("Blocked now"), "1", "{table}");
    assert_eq!(line("  totp"), "2", "{table}");
    assert!(
        table
            .lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>()
                == [day.as_str(), "password_reset", "email", "success", "2"]),
        "{table}"
    );
    assert!(
        table
            .lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["wrong_code", "3"]),
        "{table}"
    );
}

/// The text of the page's fact `<dd id>`.
fn fact(html: &str, id: &str) -> String {
    let start = html
        .find(&format!("<dd id=\"{id}\">"))
        .unwrap_or_else(|| panic!("no #{id}: {html}"));
    let rest = &html[start..];
    let text = &rest[rest.find('>').unwrap() + 1..rest.find("</dd>").unwrap()];
    text.trim().to_owned()
}

#[tokio::test]
async fn admin_page_shows_the_figures_to_admins_only() {
    let admins = create_group(&unique_name("rptadm")).await;
    let scope = create_group(&unique_name("rptscope")).await;
    for prefix in ["rptadma", "rptadmb"] {
        add_member(&scope, &create_user(prefix).await.dn).await;
    }
    let desk = desk(&format!(
        "[admin]\ngroup_dn = {admins:?}\n[policy]\nscope = \"group\"\ngroup_dn = {scope:?}\n"
    ))
    .await;

    let mut anonymous = Browser::new(&desk.app);
    let page = anonymous.get("/admin").await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    assert_eq!(page.headers[header::LOCATION], "/helpdesk");

    // A signed-in operator who is not in admin.group_dn.
    let (mut browser, _) = operator_signs_in(&desk).await;
    let refused = browser.get("/admin").await;
    assert_page(
        &refused,
        StatusCode::FORBIDDEN,
        "Only members of the administrators' group can see these figures.",
    );
    assert!(!refused.body.contains("admin-in-scope"), "{}", refused.body);

    // Membership is read at each request: no new sign-in needed.
    add_member(&admins, &desk.operator.dn).await;
    let shown = browser.get("/admin?days=7&per=week").await;
    assert_eq!(shown.status, StatusCode::OK, "{}", shown.body);
    assert_eq!(fact(&shown.body, "admin-in-scope"), "2");
    assert_eq!(fact(&shown.body, "admin-registered"), "0");
    assert_eq!(fact(&shown.body, "admin-never"), "2");
    assert_eq!(fact(&shown.body, "admin-blocked"), "0");
    // The operator's own sign-in is in the audit, but no action: nothing to count yet.
    assert_page(&shown, StatusCode::OK, "Nothing in this period.");
    assert_page(&shown, StatusCode::OK, "<option value=\"7\" selected>");
    assert_page(&shown, StatusCode::OK, "<option value=\"week\" selected>");
}
