//! The directory client against the real Samba AD DC.

use secrecy::SecretString;
use sspr_bridge::config::DcEndpoint;
use sspr_bridge::directory::LdapDirectory;
use sspr_bridge::domain::directory::{
    AccountChange, Directory, DirectoryError, DirectoryUser, PasswordCheck,
};

use crate::harness::{self, TestUser, bind, create_user, env};

fn directory(extra: &str) -> LdapDirectory {
    LdapDirectory::new(&harness::config(extra).directory).expect("directory client")
}

async fn find(dir: &LdapDirectory, login: &str) -> DirectoryUser {
    dir.find_user(login)
        .await
        .expect("search answered")
        .unwrap_or_else(|| panic!("{login} not found"))
}

async fn reset(dir: &LdapDirectory, user: &TestUser, password: &str) -> Result<(), DirectoryError> {
    let found = find(dir, &user.sam).await;
    harness::remember_secret("password", password);
    let secret = SecretString::from(password.to_owned());
    dir.write_account(
        &found,
        &AccountChange {
            new_password: Some(&secret),
            ..AccountChange::default()
        },
    )
    .await
    .map(|_| ())
}

#[tokio::test]
async fn reset_makes_the_new_password_bind_and_the_old_one_fail() {
    let dir = directory("");
    let user = create_user("rst").await;
    bind(&user.dn, &user.password)
        .await
        .expect("initial password binds");

    reset(&dir, &user, "Brand-New-Pass-42")
        .await
        .expect("reset");

    bind(&user.dn, "Brand-New-Pass-42")
        .await
        .expect("new password binds");
    let (rc, text) = bind(&user.dn, &user.password)
        .await
        .expect_err("old password must fail");
    assert_eq!(rc, 49, "{text}");
}

#[tokio::test]
async fn too_short_password_is_a_policy_violation_with_the_dcs_reason() {
    let dir = directory("");
    let user = create_user("shrt").await;
    let err = reset(&dir, &user, "Ab1!").await.expect_err("too short");
    match err {
        DirectoryError::PolicyViolation { detail } => {
            assert!(detail.contains("too short"), "DC reason kept: {detail}")
        }
        other => panic!("expected a policy violation, got {other:?}"),
    }
    bind(&user.dn, &user.password)
        .await
        .expect("nothing was written: the old password still binds");
}

#[tokio::test]
async fn passwords_outside_the_bmp_are_written_correctly() {
    let dir = directory("");
    let user = create_user("uni").await;
    let password = "Wächter-Passwort-😀1";
    reset(&dir, &user, password).await.expect("reset");
    bind(&user.dn, password)
        .await
        .expect("the exact Unicode password binds");
    assert!(
        bind(&user.dn, "Wächter-Passwort-1").await.is_err(),
        "the emoji is part of the password"
    );
}

#[tokio::test]
async fn users_are_found_by_sam_account_name_or_upn_with_their_attributes() {
    let dir = directory("");
    let user = create_user("find").await;
    let by_sam = find(&dir, &user.sam).await;
    let by_upn = find(&dir, &user.upn).await;
    assert_eq!(by_sam, by_upn);
    assert_eq!(by_sam.dn.to_lowercase(), user.dn.to_lowercase());
    assert_eq!(by_sam.sam_account_name, user.sam);
    assert_eq!(
        by_sam.mail.as_deref(),
        Some(&*format!("{}@mail.test", user.sam))
    );
    assert_eq!(
        by_sam.display_name.as_deref(),
        Some(&*format!("Test {}", user.sam))
    );
    assert!(!by_sam.is_disabled() && !by_sam.is_locked() && !by_sam.must_change_password());
    // The GUID round-trips: searching by its AD byte form finds the same object.
    assert_eq!(
        harness::dn_by_guid(&by_sam.guid)
            .await
            .map(|dn| dn.to_lowercase()),
        Some(user.dn.to_lowercase())
    );
    assert_eq!(find(&dir, &user.sam.to_uppercase()).await.guid, by_sam.guid);
}

#[tokio::test]
async fn injection_shaped_usernames_match_nobody() {
    let dir = directory("");
    let user = create_user("inj").await;
    let prefix = &user.sam[..5];
    for login in [
        "*".to_owned(),
        "a*)(cn=*".to_owned(),
        "\\".to_owned(),
        "*)(sAMAccountName=*".to_owned(),
        format!("{prefix}*"),
        format!("{}*", user.sam),
        format!("{})(|(cn=*", user.sam),
        "\0".to_owned(),
        String::new(),
    ] {
        assert_eq!(
            dir.find_user(&login).await.expect("search answered"),
            None,
            "{login:?} must match nobody"
        );
    }
    assert!(dir.find_user(&user.sam).await.unwrap().is_some());
}

#[tokio::test]
async fn password_check_maps_ad_data_codes() {
    let dir = directory("");
    let user = create_user("chk").await;
    let found = find(&dir, &user.sam).await;
    let check = |pw: &str| {
        let secret = SecretString::from(pw.to_owned());
        let dir = &dir;
        let found = found.clone();
        async move {
            dir.check_password(&found, &secret)
                .await
                .expect("bind answered")
        }
    };
    assert_eq!(check(&user.password).await, PasswordCheck::Valid);
    assert_eq!(check("not-the-password").await, PasswordCheck::Wrong);
    // An empty password would be an anonymous bind that "succeeds".
    assert_eq!(check("").await, PasswordCheck::Wrong);

    harness::set_attr(&user.dn, "pwdLastSet", "0").await;
    let must_change = check(&user.password).await;
    assert_eq!(must_change, PasswordCheck::MustChange);
    assert!(must_change.password_was_right());
    assert_eq!(check("not-the-password").await, PasswordCheck::Wrong);

    // ACCOUNTDISABLE | NORMAL_ACCOUNT
    harness::set_attr(&user.dn, "userAccountControl", "514").await;
    let disabled = check(&user.password).await;
    assert!(!disabled.password_was_right(), "{disabled:?}");
    assert!(find(&dir, &user.sam).await.is_disabled());
}

#[tokio::test]
async fn reset_can_force_a_change_at_next_logon_in_the_same_write() {
    let dir = directory("");
    let user = create_user("must").await;
    let found = find(&dir, &user.sam).await;
    harness::remember_secret("password", "Temporary-Pass-77");
    let secret = SecretString::from("Temporary-Pass-77".to_owned());
    dir.write_account(
        &found,
        &AccountChange {
            new_password: Some(&secret),
            must_change: true,
            unlock: true,
        },
    )
    .await
    .expect("reset with must-change");
    assert_eq!(
        harness::read_attr(&user.dn, "pwdLastSet").await.as_deref(),
        Some("0")
    );
    assert!(find(&dir, &user.sam).await.must_change_password());
    assert_eq!(
        dir.check_password(&found, &secret).await.unwrap(),
        PasswordCheck::MustChange,
        "AD answers 773 for the right temporary password"
    );
}

#[tokio::test]
async fn policy_hints_follow_what_the_dc_supports() {
    // Samba 4.17 does not list LDAP_SERVER_POLICY_HINTS in its rootDSE and answers the control
    // with unavailableCriticalExtension; Windows Server 2012+ lists it.
    let auto = directory("");
    let statuses = auto.probe().await;
    let health = statuses[0].result.as_ref().expect("DC answers");
    assert!(
        !health.policy_hints,
        "Samba 4.17 does not support the control"
    );

    let user = create_user("hint").await;
    reset(&auto, &user, "Auto-Hints-Pass-1")
        .await
        .expect("auto: written without the control the DC lacks");
    bind(&user.dn, "Auto-Hints-Pass-1")
        .await
        .expect("new password binds");

    let required = directory("[directory]\npolicy_hints = \"required\"");
    let err = reset(&required, &user, "Required-Hints-2")
        .await
        .expect_err("required: refused, not written without history");
    assert!(
        matches!(err, DirectoryError::PolicyHintsUnsupported { .. }),
        "{err:?}"
    );
    bind(&user.dn, "Auto-Hints-Pass-1")
        .await
        .expect("nothing was written");

    let off = directory("[directory]\npolicy_hints = \"off\"");
    reset(&off, &user, "Off-Hints-Pass-3")
        .await
        .expect("off: written");
    bind(&user.dn, "Off-Hints-Pass-3")
        .await
        .expect("new password binds");
}

#[tokio::test]
async fn plaintext_ldap_without_starttls_is_refused_before_anything_is_sent() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ldap://{}", listener.local_addr().unwrap());

    let err = harness::try_config(&format!("[directory]\nurls = [{url:?}]"))
        .expect_err("configuration refuses plaintext");
    assert!(err.mentions("directory.urls"), "{err}");
    assert!(matches!(
        DcEndpoint::parse(&url, false),
        Err(DirectoryError::InsecureTransport { .. })
    ));

    let accepted = tokio::time::timeout(std::time::Duration::from_millis(300), listener.accept());
    assert!(accepted.await.is_err(), "no connection was ever opened");
}

#[tokio::test]
async fn starttls_on_port_389_carries_a_reset() {
    let dir = directory(&format!(
        "[directory]\nurls = [{:?}]\nstarttls = true",
        env("SSPR_TEST_LDAP_URL")
    ));
    let user = create_user("stls").await;
    reset(&dir, &user, "Over-StartTLS-9z")
        .await
        .expect("reset over StartTLS");
    bind(&user.dn, "Over-StartTLS-9z")
        .await
        .expect("new password binds");
}

#[tokio::test]
async fn a_hostname_url_verifies_against_the_certificate() {
    let dir = directory(&format!(
        "[directory]\nurls = [{:?}]",
        env("SSPR_TEST_LDAPS_HOSTNAME_URL")
    ));
    let statuses = dir.probe().await;
    assert!(statuses[0].result.is_ok(), "{:?}", statuses[0].result);
}

#[tokio::test]
async fn a_wrong_ca_is_refused() {
    let dir = directory(&format!(
        "[directory]\nca_file = {:?}",
        env("SSPR_TEST_OTHER_CA_FILE")
    ));
    match dir.find_user("Administrator").await {
        Err(DirectoryError::Tls { detail, .. }) => {
            assert!(detail.contains("certificate"), "{detail}")
        }
        other => panic!("expected a TLS refusal, got {other:?}"),
    }
    let statuses = dir.probe().await;
    assert!(matches!(
        statuses[0].result,
        Err(DirectoryError::Tls { .. })
    ));
}

#[tokio::test]
async fn a_wrong_service_password_is_reported_as_such() {
    let dir = directory("[directory]\nbind_password = \"wrong-service-password\"");
    match dir.find_user("Administrator").await {
        Err(DirectoryError::ServiceBind { detail, .. }) => {
            assert!(detail.contains("bind_password"), "{detail}")
        }
        other => panic!("expected a service bind failure, got {other:?}"),
    }
}

#[tokio::test]
async fn a_dead_first_dc_fails_over_to_the_second() {
    // Port 1 on loopback: connection refused at once, like a DC that is down.
    let dir = directory(&format!(
        "[directory]\nurls = [\"ldaps://127.0.0.1:1\", {:?}]",
        env("SSPR_TEST_LDAPS_URL")
    ));
    let user = create_user("fo").await;
    let found = find(&dir, &user.sam).await;
    harness::remember_secret("password", "Failed-Over-Pass-3");
    let secret = SecretString::from("Failed-Over-Pass-3".to_owned());
    let dc = dir
        .write_account(
            &found,
            &AccountChange {
                new_password: Some(&secret),
                ..AccountChange::default()
            },
        )
        .await
        .expect("reset on the live DC");
    assert_eq!(dc.0, env("SSPR_TEST_LDAPS_URL"));
    bind(&user.dn, "Failed-Over-Pass-3")
        .await
        .expect("new password binds");
    let statuses = dir.probe().await;
    assert!(statuses[0].result.is_err() && statuses[1].result.is_ok());
}

#[tokio::test]
async fn all_dcs_down_is_unavailable() {
    let dir = directory("[directory]\nurls = [\"ldaps://127.0.0.1:1\", \"ldaps://127.0.0.1:2\"]");
    assert!(matches!(
        dir.find_user("anyone").await,
        Err(DirectoryError::Unavailable { .. })
    ));
}

#[tokio::test]
async fn unlock_clears_a_real_lockout() {
    // scripts/test sets the domain's lockout threshold to 5 bad passwords.
    let dir = directory("");
    let user = create_user("lock").await;
    for _ in 0..6 {
        let _ = bind(&user.dn, "wrong-password").await;
    }
    let locked = find(&dir, &user.sam).await;
    assert!(locked.is_locked(), "bad binds locked the account");
    assert_ne!(locked.lockout_time, 0);
    assert_eq!(
        dir.check_password(&locked, &user.secret()).await.unwrap(),
        PasswordCheck::Locked,
        "even the right password is refused while locked"
    );

    dir.write_account(
        &locked,
        &AccountChange {
            unlock: true,
            ..AccountChange::default()
        },
    )
    .await
    .expect("unlock");

    let unlocked = find(&dir, &user.sam).await;
    assert!(!unlocked.is_locked());
    bind(&user.dn, &user.password)
        .await
        .expect("the unchanged password binds again");
}

#[tokio::test]
async fn mail_finds_a_user_only_when_asked() {
    let dir = directory("");
    let user = create_user("mail").await;
    let mail = format!("{}@mail.test", user.sam);

    let found = dir
        .find_user_by(&mail, true)
        .await
        .expect("search answered")
        .expect("found by mail");
    assert_eq!(found.sam_account_name, user.sam);
    assert_eq!(found, find(&dir, &user.sam).await);
    assert_eq!(
        dir.find_user_by(&user.sam, true).await.unwrap().as_ref(),
        Some(&found),
        "sAMAccountName still works with mail"
    );
    assert_eq!(dir.find_user_by(&mail, false).await.unwrap(), None);
    assert_eq!(dir.find_user(&mail).await.unwrap(), None);

    for id in [
        "*".to_owned(),
        "*@mail.test".to_owned(),
        format!("{}*", &mail[..mail.len() - 2]),
        format!("{mail})(|(mail=*"),
        "*)(mail=*".to_owned(),
        String::new(),
    ] {
        assert_eq!(
            dir.find_user_by(&id, true).await.expect("search answered"),
            None,
            "{id:?} must match nobody"
        );
    }
}

#[tokio::test]
async fn a_mail_shared_by_several_accounts_finds_none() {
    let dir = directory("");
    let shared = format!("{}@mail.test", harness::unique_name("shared"));
    let mut users = Vec::new();
    for expected_matches in 1..=3 {
        let user = create_user("shm").await;
        harness::set_attr(&user.dn, "mail", &shared).await;
        users.push(user);
        let found = dir
            .find_user_by(&shared, true)
            .await
            .expect("search answered");
        // Two matches fill the size limit of 2. Three exceed it: AD then ends the search with
        // sizeLimitExceeded, while Samba 4.17 ignores the limit and sends all three.
        assert_eq!(
            found.is_some(),
            expected_matches == 1,
            "{expected_matches} accounts with this mail: {found:?}"
        );
    }
    for user in &users {
        assert!(dir.find_user(&user.sam).await.unwrap().is_some());
    }
}

#[tokio::test]
async fn nested_membership_is_followed() {
    let dir = directory("");
    let outer = harness::create_group(&harness::unique_name("g1-")).await;
    let inner = harness::create_group(&harness::unique_name("g2-")).await;
    harness::add_member(&outer, &inner).await;
    let member = create_user("mbr").await;
    harness::add_member(&inner, &member.dn).await;
    let outsider = create_user("out").await;
    let member = find(&dir, &member.sam).await;
    let outsider = find(&dir, &outsider.sam).await;

    assert!(dir.is_member_of(&member, &inner).await.expect("direct"));
    assert!(dir.is_member_of(&member, &outer).await.expect("nested"));
    assert!(!dir.is_member_of(&outsider, &inner).await.unwrap());
    assert!(!dir.is_member_of(&outsider, &outer).await.unwrap());
    // DNs compare case-insensitively on the DC.
    assert!(
        dir.is_member_of(&member, &outer.to_uppercase())
            .await
            .unwrap()
    );

    // A group that does not exist, or a value that is no DN at all, has no members.
    let missing = format!("CN=No Such Group,CN=Users,{}", env("SSPR_TEST_BASE_DN"));
    for group in [missing.as_str(), "not a dn", "*", ""] {
        assert!(
            !dir.is_member_of(&member, group).await.unwrap(),
            "{group:?}"
        );
    }
}

#[tokio::test]
async fn group_dns_with_special_characters_work() {
    let dir = directory("");
    // CN "Grp (x), test* <unique>": a DN escape (`\,`) and filter metacharacters `(`, `)`, `*`.
    let group =
        harness::create_group(&format!("Grp (x)\\, test* {}", harness::unique_name(""))).await;
    let member = create_user("spc").await;
    harness::add_member(&group, &member.dn).await;
    let outsider = create_user("spo").await;
    let member = find(&dir, &member.sam).await;
    let outsider = find(&dir, &outsider.sam).await;

    assert!(dir.is_member_of(&member, &group).await.expect("member"));
    assert!(!dir.is_member_of(&outsider, &group).await.unwrap());
    // A `*` in the DN is a literal, not a wildcard.
    let wildcard = group.replacen("test* ", "*", 1);
    assert!(!dir.is_member_of(&member, &wildcard).await.unwrap());
}

/// The domain SID from a SID of the domain, i.e. without the last sub-authority (the RID).
fn domain_part(sid: &str) -> &str {
    sid.rsplit_once('-').map_or(sid, |(domain, _rid)| domain)
}

#[tokio::test]
async fn group_sids_include_primary_nested_and_builtin_groups() {
    let dir = directory("");
    let base = env("SSPR_TEST_BASE_DN");
    let user = create_user("sid").await;
    let found = find(&dir, &user.sam).await;

    let plain = dir.group_sids(&found).await.expect("tokenGroups read");
    let domain_users = plain
        .iter()
        .find(|sid| sid.starts_with("S-1-5-21-") && sid.ends_with("-513"))
        .unwrap_or_else(|| panic!("Domain Users (primary group) in {plain:?}"));
    let domain = domain_part(domain_users).to_owned();
    assert!(!plain.iter().any(|sid| sid == &format!("{domain}-512")));
    assert!(!plain.iter().any(|sid| sid == "S-1-5-32-544"));

    // The parser agrees with the DC's own objectSid, for a group reached through nesting.
    let outer = harness::create_group(&harness::unique_name("gs1-")).await;
    let inner = harness::create_group(&harness::unique_name("gs2-")).await;
    harness::add_member(&outer, &inner).await;
    harness::add_member(&inner, &user.dn).await;
    let outer_sid = harness::read_binary_attr(&outer, "objectSid")
        .await
        .and_then(|bytes| sspr_bridge::directory::codec::sid_string(&bytes))
        .expect("objectSid of the outer group");
    assert_eq!(domain_part(&outer_sid), domain);
    let nested = dir.group_sids(&found).await.unwrap();
    assert!(nested.contains(&outer_sid), "{outer_sid} in {nested:?}");

    let domain_admins = format!("CN=Domain Admins,CN=Users,{base}");
    let administrators = format!("CN=Administrators,CN=Builtin,{base}");
    harness::add_member(&domain_admins, &user.dn).await;
    harness::add_member(&administrators, &user.dn).await;
    let privileged = dir.group_sids(&found).await;
    harness::remove_member(&domain_admins, &user.dn).await;
    harness::remove_member(&administrators, &user.dn).await;
    let privileged = privileged.unwrap();
    assert!(
        privileged.contains(&format!("{domain}-512")),
        "Domain Admins in {privileged:?}"
    );
    assert!(
        privileged.iter().any(|sid| sid == "S-1-5-32-544"),
        "builtin Administrators in {privileged:?}"
    );
    let after = dir.group_sids(&found).await.unwrap();
    assert!(!after.contains(&format!("{domain}-512")), "{after:?}");
}
