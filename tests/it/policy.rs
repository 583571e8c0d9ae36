//! The password policy against the real Samba DC: the domain policy and fine-grained policies
//! (PSOs) as read from AD, the checks before a write, and what AD still refuses after them.

use std::time::Duration;

use axum::http::StatusCode;
use secrecy::SecretString;
use serde_json::{Value, json};
use sspr_bridge::directory::LdapDirectory;
use sspr_bridge::domain::directory::{AccountChange, Directory};

use crate::client::{Answer, TestApp, test_app};
use crate::harness::{self, add_member, bind, create_group, env, unique_name};
use crate::selfservice::{set_password, start_flow, verified_flow};

const LICENSED: &str = "[licence]\nazure_ad_premium = true\n";

async fn app(extra: &str) -> TestApp {
    test_app(&format!("{LICENSED}{extra}")).await
}

/// Runs `samba-tool … -s $SSPR_TEST_SMB_CONF` on the test DC's own database.
async fn samba_tool(args: &[&str]) -> String {
    let out = tokio::process::Command::new("samba-tool")
        .args(args)
        .args(["-s", &env("SSPR_TEST_SMB_CONF")])
        .output()
        .await
        .expect("samba-tool runs");
    assert!(
        out.status.success(),
        "samba-tool {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A fine-grained password policy, deleted when dropped (also when the test fails).
pub struct Pso {
    name: String,
}

impl Pso {
    /// Creates a PSO with a unique name and applies it to the group (by its sAMAccountName).
    pub async fn for_group(group_dn: &str, options: &[&str]) -> Self {
        let pso = Self {
            name: unique_name("pso"),
        };
        let mut create = vec![
            "domain",
            "passwordsettings",
            "pso",
            "create",
            &pso.name,
            "10",
        ];
        create.extend(options);
        samba_tool(&create).await;
        let group = harness::read_attr(group_dn, "sAMAccountName")
            .await
            .expect("the group has a sAMAccountName");
        samba_tool(&[
            "domain",
            "passwordsettings",
            "pso",
            "apply",
            &pso.name,
            &group,
        ])
        .await;
        pso
    }

    async fn set(&self, options: &[&str]) {
        let mut set = vec!["domain", "passwordsettings", "pso", "set", &self.name];
        set.extend(options);
        samba_tool(&set).await;
    }
}

impl Drop for Pso {
    fn drop(&mut self) {
        let deleted = std::process::Command::new("samba-tool")
            .args(["domain", "passwordsettings", "pso", "delete", &self.name])
            .args(["-s", &env("SSPR_TEST_SMB_CONF")])
            .output();
        if !deleted.is_ok_and(|out| out.status.success()) {
            eprintln!("could not delete the test PSO {}", self.name);
        }
    }
}

/// A group with `member_dn` in it.
async fn group_with(member_dn: &str) -> String {
    let group = create_group(&unique_name("psogrp")).await;
    add_member(&group, member_dn).await;
    group
}

async fn policy_of(app: &TestApp, flow: &str) -> Value {
    app.get(&format!("/api/v1/reset/{flow}/policy"), None)
        .await
        .expect(StatusCode::OK)
        .json()
}

async fn check(app: &TestApp, flow: &str, password: &str) -> Answer {
    app.post(
        "/api/v1/password/check",
        json!({"flow": flow, "password": password}),
        None,
    )
    .await
}

/// The rule ids of a 422 `password_policy` answer.
fn refused_rules(answer: Answer) -> Vec<String> {
    let error = answer.expect(StatusCode::UNPROCESSABLE_ENTITY).error();
    assert_eq!(error.error, "password_policy");
    assert!(!error.rules.is_empty(), "a refusal names its rules");
    error.rules.into_iter().map(|r| r.rule).collect()
}

/// `samba-tool domain passwordsettings show`, as `label → value`.
async fn samba_password_settings() -> Vec<(String, String)> {
    samba_tool(&["domain", "passwordsettings", "show"])
        .await
        .lines()
        .filter_map(|line| line.split_once(": "))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect()
}

fn setting(settings: &[(String, String)], label: &str) -> u64 {
    settings
        .iter()
        .find(|(k, _)| k == label)
        .unwrap_or_else(|| panic!("samba-tool shows no {label:?}: {settings:?}"))
        .1
        .parse()
        .unwrap_or_else(|e| panic!("{label}: {e}"))
}

#[tokio::test]
async fn the_domain_policy_is_what_samba_tool_shows() {
    let settings = samba_password_settings().await;
    let directory = LdapDirectory::new(&harness::config("").directory).unwrap();
    let policy = directory
        .domain_password_policy()
        .await
        .expect("policy read");

    let complexity = settings
        .iter()
        .any(|(k, v)| k == "Password complexity" && v == "on");
    assert_eq!(policy.complexity, complexity);
    assert_eq!(
        u64::from(policy.min_length),
        setting(&settings, "Minimum password length")
    );
    assert_eq!(
        u64::from(policy.history_length),
        setting(&settings, "Password history length")
    );
    assert_eq!(
        policy.min_age.as_secs(),
        setting(&settings, "Minimum password age (days)") * 86_400
    );
    assert_eq!(
        policy.max_age.map(|d| d.as_secs()),
        Some(setting(&settings, "Maximum password age (days)") * 86_400)
    );
    assert_eq!(
        u64::from(policy.lockout_threshold),
        setting(&settings, "Account lockout threshold (attempts)")
    );
    assert_eq!(
        policy.lockout_duration.map(|d| d.as_secs()),
        Some(setting(&settings, "Account lockout duration (mins)") * 60)
    );
    assert_eq!(policy.pso, None);
    // What the test DC is provisioned with, so the other tests here can rely on it.
    assert_eq!(
        (policy.min_length, policy.complexity, policy.history_length),
        (7, true, 24)
    );
    assert_eq!(
        (policy.min_age, policy.lockout_threshold),
        (Duration::ZERO, 5)
    );

    // A user without a fine-grained policy has the domain's.
    let user = harness::create_user("dpol").await;
    let found = directory.find_user(&user.sam).await.unwrap().unwrap();
    assert_eq!(found.resultant_pso, None);
    assert_eq!(directory.password_policy(&found).await.unwrap(), policy);

    // The API says the same, for an unknown user too (a decoy flow).
    let app = app("").await;
    let decoy = start_flow(&app, "nobody-with-this-name").await;
    assert_eq!(
        policy_of(&app, &decoy).await,
        json!({
            "min_length": 7,
            "complexity": true,
            "history": 24,
            "min_age_days": 0.0,
            "max_age_days": 42.0,
            "banned_list": true,
            "min_strength": 3,
        })
    );
}

#[tokio::test]
async fn a_fine_grained_policy_applies_to_its_members_only() {
    // Strength off: an 8-character password scores below 3 however it is made, and this test
    // is about the minimum length.
    let app = app("[policy]\nmin_strength = 0").await;
    let (member, member_flow) = verified_flow(&app, "psom").await;
    let (other, other_flow) = verified_flow(&app, "psoo").await;
    let group = group_with(&member.dn).await;
    let pso = Pso::for_group(
        &group,
        &[
            "--min-pwd-length=12",
            "--complexity=on",
            "--history-length=5",
        ],
    )
    .await;

    let rules = policy_of(&app, &member_flow).await;
    assert_eq!(rules["min_length"], 12, "{rules}");
    assert_eq!(rules["history"], 5, "{rules}");
    assert_eq!(rules["complexity"], true);
    assert_eq!(policy_of(&app, &other_flow).await["min_length"], 7);

    // Before verification the answer is the domain's, whoever the user is.
    let unverified = start_flow(&app, &member.sam).await;
    assert_eq!(policy_of(&app, &unverified).await["min_length"], 7);

    let eight = "Kx7#mQ2p";
    let answer = set_password(&app, &member_flow, eight).await;
    let error = answer.expect(StatusCode::UNPROCESSABLE_ENTITY).error();
    assert_eq!(error.error, "password_policy");
    let too_short = error
        .rules
        .iter()
        .find(|r| r.rule == "too_short")
        .unwrap_or_else(|| panic!("{error:?}"));
    assert!(too_short.message.contains("12"), "{too_short:?}");
    assert!(error.message.contains("12"), "{error:?}");
    bind(&member.dn, &member.password)
        .await
        .expect("nothing was written");

    set_password(&app, &other_flow, eight)
        .await
        .expect(StatusCode::NO_CONTENT);
    bind(&other.dn, eight)
        .await
        .expect("the non-member's new password binds");

    set_password(&app, &member_flow, "Kx7#mQ2p-Lw9z")
        .await
        .expect(StatusCode::NO_CONTENT);
    bind(&member.dn, "Kx7#mQ2p-Lw9z")
        .await
        .expect("a password of 13 characters meets the PSO");
    drop(pso);
}

#[tokio::test]
async fn banned_and_substituted_passwords_are_refused() {
    let app = app("").await;
    let (user, flow) = verified_flow(&app, "ban").await;
    for password in ["P@ssw0rd2024!", "Welcome1!", "Qwerty123!"] {
        let rules = refused_rules(set_password(&app, &flow, password).await);
        assert!(rules.iter().any(|r| r == "banned"), "{password}: {rules:?}");
    }
    bind(&user.dn, &user.password).await.expect("untouched");
}

/// `policy.banned_file` through the real service to the DC: banned words are found inside a
/// password after normalisation, and a passphrase that holds one passes on the rest.
#[tokio::test]
async fn the_custom_banned_file_is_found_inside_passwords() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("banned.txt");
    std::fs::write(&file, "# our own words\ncontoso\nFabrikam\n").unwrap();
    let custom = app(&format!(
        "[policy]\nbanned_file = {:?}",
        file.display().to_string()
    ))
    .await;
    let (user, flow) = verified_flow(&custom, "banf").await;
    for password in [
        "C0ntos0Blank12",
        "xContoso2026!",
        "Kontoso-2026!",
        "F@br1kamm-99",
        "P@ssw0rd-2026-2027!x",
        "xPassword2026!",
        "Welkom2026!!Welkom",
    ] {
        let rules = refused_rules(set_password(&custom, &flow, password).await);
        assert!(rules.iter().any(|r| r == "banned"), "{password}: {rules:?}");
        bind(&user.dn, &user.password)
            .await
            .unwrap_or_else(|e| panic!("{password} wrote nothing: {e:?}"));
    }
    // The same words without the file are no concern of the built-in list.
    let plain = app("").await;
    let (_, other) = verified_flow(&plain, "banp").await;
    let answer = check(&plain, &other, "xContoso2026!").await.json();
    assert!(!answer["broken"].to_string().contains("banned"), "{answer}");

    let passphrase = "Contoso-Harbour-Tram-82";
    set_password(&custom, &flow, passphrase)
        .await
        .expect(StatusCode::NO_CONTENT);
    bind(&user.dn, passphrase)
        .await
        .expect("a banned word with enough beside it passes");
    assert!(bind(&user.dn, &user.password).await.is_err());
}

#[tokio::test]
async fn a_password_with_the_account_name_is_refused() {
    let app = app("").await;
    let (user, flow) = verified_flow(&app, "acct").await;
    let password = format!("Plum-{}-Orbit-7", user.sam.to_uppercase());
    let rules = refused_rules(set_password(&app, &flow, &password).await);
    assert!(
        rules.iter().any(|r| r == "contains_account_name"),
        "{rules:?}"
    );
    bind(&user.dn, &user.password).await.expect("untouched");
    // Only the display name "Test <sam>" is looked for in parts.
    let rules = refused_rules(set_password(&app, &flow, "Plum-Test-Orbit-7").await);
    assert_eq!(rules, ["contains_display_name"]);
}

#[tokio::test]
async fn a_check_names_the_broken_rules_and_writes_nothing() {
    let app = app("").await;
    let (user, flow) = verified_flow(&app, "chk").await;

    let weak = check(&app, &flow, "Ab1!")
        .await
        .expect(StatusCode::OK)
        .json();
    assert_eq!(weak["ok"], false);
    let broken: Vec<&str> = weak["broken"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["rule"].as_str().unwrap())
        .collect();
    assert_eq!(broken, ["too_short", "too_weak"], "{weak}");
    assert!(weak["broken"][0]["message"].as_str().unwrap().contains('7'));

    let banned = check(&app, &flow, "Summer2024!").await.json();
    assert!(
        banned["broken"].to_string().contains("\"banned\""),
        "{banned}"
    );

    let good = check(&app, &flow, "Velvet-Harbour-Tram-82")
        .await
        .expect(StatusCode::OK)
        .json();
    assert_eq!(good, json!({"ok": true, "broken": []}));
    bind(&user.dn, &user.password)
        .await
        .expect("a check writes nothing: the old password still binds");

    // A decoy flow is checked against the domain's policy like any other.
    let decoy = start_flow(&app, "nobody-with-this-name").await;
    let answer = check(&app, &decoy, "Ab1!")
        .await
        .expect(StatusCode::OK)
        .json();
    assert_eq!(answer["broken"], weak["broken"]);

    let gone = check(&app, "no-such-flow", "Velvet-Harbour-Tram-82")
        .await
        .expect(StatusCode::NOT_FOUND);
    assert_eq!(gone.error().error, "flow_not_found");
}

#[tokio::test]
async fn control_characters_are_refused_by_name_and_never_reach_ad() {
    let app = app("").await;
    let (user, flow) = verified_flow(&app, "ctl").await;
    for (name, c) in [
        ("NUL", '\0'),
        ("TAB", '\t'),
        ("CR", '\r'),
        ("LF", '\n'),
        ("BEL", '\u{7}'),
    ] {
        let password = format!("Velvet-Harbour{c}Tram-82");
        assert_eq!(
            refused_rules(set_password(&app, &flow, &password).await),
            ["control_characters"],
            "{name}"
        );
        let verdict = check(&app, &flow, &password)
            .await
            .expect(StatusCode::OK)
            .json();
        assert_eq!(verdict["ok"], false, "{name}");
        assert_eq!(
            verdict["broken"][0]["rule"], "control_characters",
            "{verdict}"
        );
        assert!(
            verdict["broken"][0]["message"]
                .as_str()
                .unwrap()
                .contains("control characters"),
            "{verdict}"
        );
        bind(&user.dn, &user.password)
            .await
            .unwrap_or_else(|e| panic!("{name}: AD still has the old password: {e:?}"));
    }
    // The flow stays open, and without the control character the same password is written.
    set_password(&app, &flow, "Velvet-HarbourTram-82")
        .await
        .expect(StatusCode::NO_CONTENT);
    bind(&user.dn, "Velvet-HarbourTram-82")
        .await
        .expect("the new password binds");
    assert!(
        bind(&user.dn, &user.password).await.is_err(),
        "the old one no longer does"
    );
}

/// Lone surrogates cannot be in a Rust string: the JSON parser refuses a body with one, so a
/// password with one is never checked, let alone written.
#[tokio::test]
async fn a_lone_surrogate_in_a_password_is_a_bad_request() {
    let app = app("").await;
    let (user, flow) = verified_flow(&app, "sur").await;
    for (path, body) in [
        (
            format!("/api/v1/reset/{flow}/password"),
            r#"{"new_password": "Velvet-Harbour\ud800Tram-82"}"#.to_owned(),
        ),
        (
            "/api/v1/password/check".to_owned(),
            format!(r#"{{"flow": "{flow}", "password": "Velvet-Harbour\udfffTram-82"}}"#),
        ),
    ] {
        let request = axum::http::Request::builder()
            .method("POST")
            .uri(&path)
            .header("content-type", "application/json")
            .body(axum::body::Body::from(body))
            .unwrap();
        let answer = app.send(request).await.expect(StatusCode::BAD_REQUEST);
        assert_eq!(answer.error().error, "invalid_request", "{path}");
    }
    bind(&user.dn, &user.password).await.expect("untouched");
    // The flow was not spent: a good password is still taken.
    set_password(&app, &flow, "Velvet-Harbour-Tram-82")
        .await
        .expect(StatusCode::NO_CONTENT);
}

/// Samba 4.17 does not apply password history to an administrative reset, and it does not
/// support LDAP_SERVER_POLICY_HINTS, which makes Windows DCs do so: a reset back to an earlier
/// password is accepted. (Against AD with policy hints this is the `history_or_min_age` refusal
/// of the next test.)
#[tokio::test]
async fn samba_does_not_apply_history_to_a_reset() {
    let app = app("").await;
    let (user, flow) = verified_flow(&app, "hist").await;
    set_password(&app, &flow, "Velvet-Harbour-Tram-82")
        .await
        .expect(StatusCode::NO_CONTENT);

    let directory = LdapDirectory::new(&harness::config("").directory).unwrap();
    let found = directory.find_user(&user.sam).await.unwrap().unwrap();
    let previous = user.secret();
    directory
        .write_account(
            &found,
            &AccountChange {
                new_password: Some(&previous),
                ..AccountChange::default()
            },
        )
        .await
        .expect("history (24) is not applied to a reset by Samba 4.17");
    bind(&user.dn, &user.password)
        .await
        .expect("back to the first password");

    let with_hints = "[directory]\npolicy_hints = \"required\"";
    let strict = LdapDirectory::new(&harness::config(with_hints).directory).unwrap();
    let again = SecretString::from("Velvet-Harbour-Tram-82".to_owned());
    let refused = strict
        .write_account(
            &found,
            &AccountChange {
                new_password: Some(&again),
                ..AccountChange::default()
            },
        )
        .await
        .expect_err("Samba has no policy hints control");
    assert!(
        matches!(
            refused,
            sspr_bridge::domain::directory::DirectoryError::PolicyHintsUnsupported { .. }
        ),
        "{refused:?}"
    );
}

/// A refusal by AD of a password that passed every check in advance is explained as history or
/// minimum age. Samba does not refuse a reset for history (see above), so the refusal here comes
/// from a PSO tightened after the service read it: the checks use the cached minimum of 12, the
/// DC enforces 20.
#[tokio::test]
async fn a_refusal_after_the_checks_is_explained_as_history_or_minimum_age() {
    let app = app("").await;
    let (user, flow) = verified_flow(&app, "late").await;
    let group = group_with(&user.dn).await;
    let pso = Pso::for_group(&group, &["--min-pwd-length=12", "--history-length=5"]).await;
    assert_eq!(policy_of(&app, &flow).await["min_length"], 12);

    pso.set(&["--min-pwd-length=20"]).await;
    let answer = set_password(&app, &flow, "Velvet-Harbour-82!").await;
    let error = answer.expect(StatusCode::UNPROCESSABLE_ENTITY).error();
    assert_eq!(error.error, "password_policy");
    assert_eq!(error.rules.len(), 1, "{error:?}");
    assert_eq!(error.rules[0].rule, "history_or_min_age");
    assert!(
        error.message.contains("one of your last 5 passwords"),
        "{}",
        error.message
    );
    bind(&user.dn, &user.password)
        .await
        .expect("the DC wrote nothing");

    // The flow stays open for another password.
    set_password(&app, &flow, "Velvet-Harbour-Tram-Quay-82")
        .await
        .expect(StatusCode::NO_CONTENT);
    drop(pso);
}

#[tokio::test]
async fn the_openapi_document_describes_the_policy_routes() {
    let app = app("").await;
    let doc = app
        .get("/api/v1/openapi.json", None)
        .await
        .expect(StatusCode::OK)
        .json();
    for path in ["/api/v1/reset/{flow}/policy", "/api/v1/password/check"] {
        assert!(doc["paths"][path].is_object(), "{path} missing");
    }
    let error = &doc["components"]["schemas"]["ErrorBody"]["properties"];
    assert!(error["rules"].is_object(), "{error}");

    // Both are self-service: closed without the licence.
    let unlicensed = test_app("").await;
    let closed = unlicensed
        .get("/api/v1/reset/any/policy", None)
        .await
        .expect(StatusCode::FORBIDDEN);
    assert_eq!(closed.error().error, "licence_required");
    check(&unlicensed, "any", "x")
        .await
        .expect(StatusCode::FORBIDDEN);
}
