use super::*;

#[test]
fn unicode_pwd_is_quoted_utf16le() {
    assert_eq!(
        unicode_pwd_value("ab"),
        vec![b'"', 0, b'a', 0, b'b', 0, b'"', 0]
    );
}

#[test]
fn unicode_pwd_encodes_non_bmp_as_surrogate_pair() {
    // U+1F600 = D83D DE00
    let v = unicode_pwd_value("😀");
    assert_eq!(v, vec![b'"', 0, 0x3d, 0xd8, 0x00, 0xde, b'"', 0]);
    let v = unicode_pwd_value("ä");
    assert_eq!(v, vec![b'"', 0, 0xe4, 0x00, b'"', 0]);
}

#[test]
fn policy_hints_prefer_the_current_oid() {
    let both = vec![
        "1.2.840.113556.1.4.2066".to_owned(),
        "1.2.840.113556.1.4.2239".to_owned(),
    ];
    assert_eq!(
        supported_policy_hints(&both),
        Some("1.2.840.113556.1.4.2239")
    );
    assert_eq!(
        supported_policy_hints(&both[..1]),
        Some("1.2.840.113556.1.4.2066")
    );
    assert_eq!(supported_policy_hints(&["1.2.3".to_owned()]), None);
}

#[test]
fn filter_escapes_injection() {
    let f = user_filter("(objectClass=user)", "a*)(cn=*", false);
    assert_eq!(
        f,
        "(&(objectClass=user)(|(sAMAccountName=a\\2a\\29\\28cn=\\2a)(userPrincipalName=a\\2a\\29\\28cn=\\2a)))"
    );
    assert!(user_filter("(x=y)", "\\", false).contains("=\\5c)"));
    assert!(user_filter("(x=y)", "\0", false).contains("=\\00)"));
}

#[test]
fn filter_adds_mail_only_when_asked() {
    assert_eq!(
        user_filter("(objectClass=user)", "a@b.test", true),
        "(&(objectClass=user)(|(sAMAccountName=a@b.test)(userPrincipalName=a@b.test)(mail=a@b.test)))"
    );
    assert!(!user_filter("(objectClass=user)", "a@b.test", false).contains("mail="));
    assert_eq!(
        user_filter("(x=y)", "*)(mail=*", true),
        "(&(x=y)(|(sAMAccountName=\\2a\\29\\28mail=\\2a)(userPrincipalName=\\2a\\29\\28mail=\\2a)(mail=\\2a\\29\\28mail=\\2a)))"
    );
}

#[test]
fn member_of_filter_escapes_the_dn() {
    assert_eq!(
        member_of_filter("CN=Grp (x)\\, test*,CN=Users,DC=sspr,DC=test"),
        "(memberOf:1.2.840.113556.1.4.1941:=CN=Grp \\28x\\29\\5c, test\\2a,CN=Users,DC=sspr,DC=test)"
    );
}

#[test]
fn enabled_users_filter_adds_the_group_when_given() {
    assert_eq!(
        enabled_users_filter("(objectClass=user)", None),
        "(&(objectClass=user)(!(userAccountControl:1.2.840.113556.1.4.803:=2)))"
    );
    assert_eq!(
        enabled_users_filter("(objectClass=user)", Some("CN=G*,DC=x")),
        "(&(objectClass=user)(!(userAccountControl:1.2.840.113556.1.4.803:=2))\
         (memberOf:1.2.840.113556.1.4.1941:=CN=G\\2a,DC=x))"
    );
}

#[test]
fn sids_are_written_in_string_form() {
    let administrators = [
        0x01, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x05, 0x20, 0x00, 0x00, 0x00, 0x20, 0x02, 0x00,
        0x00,
    ];
    assert_eq!(sid_string(&administrators).as_deref(), Some("S-1-5-32-544"));
    // S-1-5-21-1004336348-1177238915-682003330-512: Domain Admins of some domain.
    let mut domain_admins = vec![0x01, 0x05, 0x00, 0x00, 0x00, 0x00, 0x00, 0x05];
    for sub in [21u32, 1_004_336_348, 1_177_238_915, 682_003_330, 512] {
        domain_admins.extend_from_slice(&sub.to_le_bytes());
    }
    assert_eq!(
        sid_string(&domain_admins).as_deref(),
        Some("S-1-5-21-1004336348-1177238915-682003330-512")
    );
    // Everyone (S-1-1-0) and a sub-authority with the top bit set.
    assert_eq!(
        sid_string(&[1, 1, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0]).as_deref(),
        Some("S-1-1-0")
    );
    assert_eq!(
        sid_string(&[1, 1, 0, 0, 0, 0, 0, 5, 0xff, 0xff, 0xff, 0xff]).as_deref(),
        Some("S-1-5-4294967295")
    );
    // No sub-authorities is well-formed (S-1-0 style); an authority beyond 32 bits is hex.
    assert_eq!(
        sid_string(&[1, 0, 0, 0, 0, 0, 0, 5]).as_deref(),
        Some("S-1-5")
    );
    assert_eq!(
        sid_string(&[1, 0, 0x01, 0, 0, 0, 0, 5]).as_deref(),
        Some("S-1-0x010000000005")
    );
}

#[test]
fn malformed_sids_are_refused() {
    let good = [
        0x01, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x05, 0x20, 0x00, 0x00, 0x00, 0x20, 0x02, 0x00,
        0x00,
    ];
    for len in 0..good.len() {
        assert_eq!(sid_string(&good[..len]), None, "truncated to {len}");
    }
    let mut long = good.to_vec();
    long.push(0);
    assert_eq!(sid_string(&long), None, "trailing byte");
    let mut revision = good;
    revision[0] = 2;
    assert_eq!(sid_string(&revision), None, "unknown revision");
    let mut count = good;
    count[1] = 0xff;
    assert_eq!(sid_string(&count), None, "count beyond the bytes");
    let mut sixteen = vec![1, 16, 0, 0, 0, 0, 0, 5];
    sixteen.extend(std::iter::repeat_n(0, 64));
    assert_eq!(sid_string(&sixteen), None, "more than 15 sub-authorities");
    assert_eq!(sid_string(b"not a sid at all"), None);
}

#[test]
fn binary_values_come_from_either_map() {
    let mut entry = SearchEntry {
        dn: "CN=x".to_owned(),
        attrs: Default::default(),
        bin_attrs: Default::default(),
    };
    assert!(binary_values(&entry, "tokenGroups").is_empty());
    entry
        .attrs
        .insert("tokenGroups".to_owned(), vec!["\u{1}\u{0}".to_owned()]);
    assert_eq!(binary_values(&entry, "tokenGroups"), vec![&[1u8, 0][..]]);
    entry.attrs.clear();
    entry
        .bin_attrs
        .insert("tokenGroups".to_owned(), vec![vec![0xff], vec![1]]);
    assert_eq!(binary_values(&entry, "tokenGroups").len(), 2);
}

fn entry(dn: &str, attrs: &[(&str, &str)]) -> SearchEntry {
    SearchEntry {
        dn: dn.to_owned(),
        attrs: attrs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), vec![(*v).to_owned()]))
            .collect(),
        bin_attrs: Default::default(),
    }
}

#[test]
fn a_manager_value_change_time_is_read_from_its_metadata() {
    let meta = |dn: &str, changed: &str, deleted: &str| {
        format!(
            "<DS_REPL_VALUE_META_DATA>\n\t<pszAttributeName>manager</pszAttributeName>\n\t\
             <pszObjectDn>{dn}</pszObjectDn>\n\t<ftimeDeleted>{deleted}</ftimeDeleted>\n\t\
             <ftimeCreated>2020-01-01T00:00:00Z</ftimeCreated>\n\t\
             <ftimeLastOriginatingChange>{changed}</ftimeLastOriginatingChange>\n\
             </DS_REPL_VALUE_META_DATA>"
        )
    };
    let never = "1601-01-01T00:00:00Z";
    let mut e = entry("CN=u", &[]);
    e.attrs.insert(
        "msDS-ReplValueMetaData".to_owned(),
        vec![
            meta(
                "CN=Old,DC=x",
                "2026-11-30T08:00:00Z",
                "2026-12-01T08:00:00Z",
            ),
            meta("CN=Boss,DC=x", "2026-12-01T08:00:00Z", never),
        ],
    );
    // 2026-12-01T08:00:00Z
    assert_eq!(
        value_changed_at_ms(&e, "manager", "cn=boss,dc=x"),
        Some(1_796_112_000_000)
    );
    assert_eq!(value_changed_at_ms(&e, "manager", "CN=Old,DC=x"), None);
    assert_eq!(
        value_changed_at_ms(&entry("CN=u", &[]), "manager", "CN=Boss,DC=x"),
        None
    );
}

#[test]
fn domain_policy_is_read_from_the_domain_head() {
    // As Samba 4.17 provisions it (and the test DC reports it).
    let head = entry(
        "DC=sspr,DC=test",
        &[
            ("minPwdLength", "7"),
            ("pwdProperties", "1"),
            ("pwdHistoryLength", "24"),
            ("minPwdAge", "-864000000000"),
            ("maxPwdAge", "-36288000000000"),
            ("lockoutThreshold", "5"),
            ("lockoutDuration", "-18000000000"),
            ("lockOutObservationWindow", "-18000000000"),
        ],
    );
    let policy = domain_password_policy(&head).unwrap();
    assert_eq!(
        policy,
        PasswordPolicy {
            min_length: 7,
            complexity: true,
            history_length: 24,
            min_age: std::time::Duration::from_secs(86_400),
            max_age: Some(std::time::Duration::from_secs(42 * 86_400)),
            lockout_threshold: 5,
            lockout_duration: Some(std::time::Duration::from_secs(1800)),
            lockout_window: Some(std::time::Duration::from_secs(1800)),
            pso: None,
        }
    );
    // pwdProperties has other bits (e.g. 8, lockout of admins): only bit 1 is complexity.
    let other = entry("DC=x", &[("minPwdLength", "0"), ("pwdProperties", "8")]);
    let policy = domain_password_policy(&other).unwrap();
    assert!(!policy.complexity);
    assert_eq!(policy.max_age, None, "absent maxPwdAge: no expiry");
    assert_eq!(domain_password_policy(&entry("DC=x", &[])), None);
}

#[test]
fn pso_policy_is_read_from_the_pso() {
    let pso = entry(
        "CN=pso1,CN=Password Settings Container,CN=System,DC=sspr,DC=test",
        &[
            ("msDS-MinimumPasswordLength", "12"),
            ("msDS-PasswordComplexityEnabled", "TRUE"),
            ("msDS-PasswordHistoryLength", "5"),
            ("msDS-MinimumPasswordAge", "0"),
            ("msDS-MaximumPasswordAge", "-9223372036854775808"),
            ("msDS-LockoutThreshold", "0"),
            ("msDS-LockoutDuration", "-9223372036854775808"),
        ],
    );
    let policy = pso_password_policy(&pso).unwrap();
    assert_eq!(policy.min_length, 12);
    assert!(policy.complexity);
    assert_eq!(policy.history_length, 5);
    assert_eq!(policy.min_age, std::time::Duration::ZERO);
    assert_eq!(policy.max_age, None);
    assert_eq!(
        policy.lockout_duration, None,
        "until an administrator unlocks"
    );
    assert_eq!(policy.pso.as_deref(), Some(pso.dn.as_str()));
    let off = entry(
        "CN=p",
        &[
            ("msDS-MinimumPasswordLength", "1"),
            ("msDS-PasswordComplexityEnabled", "FALSE"),
        ],
    );
    assert!(!pso_password_policy(&off).unwrap().complexity);
}

#[test]
fn data_codes_are_parsed() {
    let msg =
        "80090308: LdapErr: DSID-0C09041C, comment: AcceptSecurityContext error, data 773, v4563\0";
    assert_eq!(bind_data_code(msg), Some(0x773));
    assert_eq!(
        password_check(bind_data_code(msg)),
        PasswordCheck::MustChange
    );
    assert_eq!(password_check(Some(0x52e)), PasswordCheck::Wrong);
    assert_eq!(password_check(None), PasswordCheck::Wrong);
    assert_eq!(leading_code("0000052D: Constraint violation"), Some(0x52d));
    assert_eq!(leading_code("short"), None);
    // fuzz/corpus/ad_answers/signed-leading-code
    assert_eq!(leading_code("+0000052: not a code"), None);
    assert_eq!(
        readable_reason("+0000052: not a code"),
        "+0000052: not a code"
    );
}

#[test]
fn policy_reason_drops_the_code() {
    assert_eq!(
        readable_reason(
            "0000052D: Constraint violation - check_password_restrictions: the password is too short.\0"
        ),
        "check_password_restrictions: the password is too short."
    );
    assert_eq!(readable_reason("plain text"), "plain text");
}
