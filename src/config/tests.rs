use super::*;

const MINIMAL: &str = r#"
        [directory]
        urls = ["ldaps://dc1.example.com:636"]
        base_dn = "DC=example,DC=com"
        bind_dn = "CN=svc-sspr,OU=Service,DC=example,DC=com"
        bind_password = "service-password"
        [security]
        secret_key = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
    "#;

fn load(extra: &str) -> Result<Config, ConfigError> {
    Config::load(&Sources {
        file: None,
        layers: vec![MINIMAL.to_owned(), extra.to_owned()],
        environment: false,
    })
}

#[test]
fn defaults_plus_minimal_settings_are_valid() {
    let config = load("").unwrap();
    assert!(!config.licence.azure_ad_premium);
    assert_eq!(config.directory.endpoints.len(), 1);
    assert_eq!(config.directory.timeout, Duration::from_secs(5));
    assert!(config.smtp.is_none());
    assert_eq!(
        config.database.url.expose_secret(),
        "sqlite:///var/lib/sspr-bridge/sspr-bridge.db"
    );
    assert_eq!(config.security.secret_key.bytes()[31], 31);
}

#[test]
fn debug_output_hides_secrets() {
    let config = load("").unwrap();
    let debug = format!("{config:?}");
    assert!(!debug.contains("service-password"), "{debug}");
    assert!(!debug.contains("AAECAwQF"), "{debug}");
}

#[test]
fn tls_files_come_in_pairs_that_parse_and_need_an_https_url() {
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.pem");
    std::fs::write(&junk, "not PEM").unwrap();
    let junk = junk.display();
    let err = load(&format!("[server]\ntls_cert = \"{junk}\"")).unwrap_err();
    assert!(err.mentions("server.tls_key"), "{err}");
    let err = load(&format!(
        "[server]\ntls_cert = \"{junk}\"\ntls_key = \"{junk}\"\n\
         public_url = \"https://sspr.example.com\""
    ))
    .unwrap_err();
    assert!(err.mentions("server.tls_cert"), "{err}");
    assert!(!err.mentions("server.public_url"), "{err}");
    let err = load("[server]\ntls_cert = \"/nonexistent.pem\"\ntls_key = \"/nonexistent.key\"")
        .unwrap_err();
    assert!(
        err.mentions("server.tls_cert") && err.mentions("server.tls_key"),
        "{err}"
    );
    assert!(
        err.mentions("server.public_url"),
        "http with TLS here: {err}"
    );
}

#[test]
fn trusted_proxies_are_addresses_or_cidrs() {
    let config = load("[server]\ntrusted_proxies = [\"10.0.0.0/8\", \"::1\"]").unwrap();
    assert_eq!(config.server.trusted_proxies.len(), 2);
    let err = load("[server]\ntrusted_proxies = [\"proxy.example.com\"]").unwrap_err();
    assert!(err.mentions("server.trusted_proxies"), "{err}");
}

#[test]
fn registration_networks_are_addresses_or_cidrs_and_default_to_anywhere() {
    assert!(load("").unwrap().registration.allowed_networks.is_empty());
    let config =
        load("[registration]\nallowed_networks = [\"10.0.0.0/8\", \"2001:db8::/32\"]").unwrap();
    assert_eq!(config.registration.allowed_networks.len(), 2);
    let err = load("[registration]\nallowed_networks = [\"10.0.0.0/33\"]").unwrap_err();
    assert!(err.to_string().contains("allowed_networks"), "{err}");
    assert!(err.to_string().contains("prefix length"), "{err}");
}

#[test]
fn unknown_keys_are_errors() {
    let err = load("[server]\nlisten_port = 1").unwrap_err();
    assert!(err.to_string().contains("listen_port"), "{err}");
    let err = load("[servr]\nlisten = \"x\"").unwrap_err();
    assert!(err.to_string().contains("servr"), "{err}");
}

#[test]
fn plaintext_ldap_is_refused_unless_starttls() {
    let err = load("[directory]\nurls = [\"ldap://dc1.example.com\"]").unwrap_err();
    assert!(err.mentions("directory.urls"), "{err}");
    assert!(err.to_string().contains("starttls"), "{err}");

    let config = load("[directory]\nurls = [\"ldap://dc1.example.com\"]\nstarttls = true").unwrap();
    assert!(config.directory.endpoints[0].starttls);
}

#[test]
fn secret_key_missing_or_malformed_says_how_to_make_one() {
    let err = load("[security]\nsecret_key = \"\"").unwrap_err();
    assert!(err.mentions("security.secret_key"));
    assert!(err.to_string().contains("sspr-bridge gen-key"), "{err}");
    let err = load("[security]\nsecret_key = \"c2hvcnQ=\"").unwrap_err();
    assert!(err.to_string().contains("gen-key"), "{err}");
}

#[test]
fn generated_key_is_accepted() {
    let key = SecretKey::generate_base64();
    let config = load(&format!("[security]\nsecret_key = \"{key}\"")).unwrap();
    assert_ne!(config.security.secret_key.bytes(), &[0u8; 32]);
}

#[test]
fn metrics_are_off_by_default_and_take_a_token_file_and_an_address() {
    let config = load("").unwrap();
    assert!(config.metrics.token.is_none() && config.metrics.listen.is_none());

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("token");
    std::fs::write(&file, "scrape\n").unwrap();
    let config = load(&format!(
        "[metrics]\ntoken_file = {file:?}\nlisten = \"127.0.0.1:9090\""
    ))
    .unwrap();
    assert_eq!(config.metrics.token.unwrap().expose_secret(), "scrape");
    assert_eq!(config.metrics.listen, Some(([127, 0, 0, 1], 9090).into()));

    let err = load("[metrics]\nlisten = \"localhost\"").unwrap_err();
    assert!(err.mentions("metrics.listen"), "{err}");
}

#[test]
fn secrets_can_come_from_files_but_not_twice() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bind");
    std::fs::write(&file, "from-file\n").unwrap();
    let config = load(&format!(
        "[directory]\nbind_password = \"\"\nbind_password_file = {:?}",
        file
    ))
    .unwrap();
    assert_eq!(config.directory.bind_password.expose_secret(), "from-file");

    let err = load(&format!("[directory]\nbind_password_file = {:?}", file)).unwrap_err();
    assert!(err.to_string().contains("not both"), "{err}");

    let err = load("[directory]\nbind_password = \"\"\nbind_password_file = \"/nonexistent\"")
        .unwrap_err();
    assert!(err.mentions("directory.bind_password_file"), "{err}");
}

#[test]
fn every_problem_is_reported_at_once() {
    let err = load(
        "[server]\nlisten = \"nope\"\npublic_url = \"ftp://x\"\n[smtp]\nhost = \"mail\"\nfrom = \"not an address\"",
    )
    .unwrap_err();
    for key in ["server.listen", "server.public_url", "smtp.from"] {
        assert!(err.mentions(key), "{key} missing from {err}");
    }
}

#[test]
fn policy_defaults_and_bounds() {
    let config = load("").unwrap();
    assert_eq!(config.policy.min_strength, 3);
    assert!(config.policy.banned_file.is_none() && config.policy.banned_words.is_empty());
    let err = load("[policy]\nmin_strength = 5").unwrap_err();
    assert!(err.mentions("policy.min_strength"), "{err}");
    let err = load("[policy]\nbanned_file = \"/nonexistent/banned.txt\"").unwrap_err();
    assert!(err.mentions("policy.banned_file"), "{err}");

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("banned.txt");
    std::fs::write(&file, "contoso\n# ours\nfabrikam\n").unwrap();
    let config = load(&format!(
        "[policy]\nbanned_file = {file:?}\nmin_strength = 0"
    ))
    .unwrap();
    assert_eq!(
        config.policy.banned_words,
        ["contoso", "# ours", "fabrikam"]
    );
    assert_eq!(config.policy.min_strength, 0);
}

#[test]
fn reconfirmation_and_reminder_settings() {
    let config = load("").unwrap();
    assert_eq!(config.registration.reconfirm_after(), None);
    assert_eq!(
        config.registration.remind_interval,
        Duration::from_secs(30 * 86_400)
    );
    let config = load("[registration]\nreconfirm_days = 730\nremind_interval = \"7d\"").unwrap();
    assert_eq!(
        config.registration.reconfirm_after(),
        Some(Duration::from_secs(730 * 86_400))
    );
    let err = load("[registration]\nreconfirm_days = 731").unwrap_err();
    assert!(err.mentions("registration.reconfirm_days"), "{err}");
    let err = load("[registration]\nreconfirm_days = -1").unwrap_err();
    assert!(err.to_string().contains("reconfirm_days"), "{err}");
    let err = load("[registration]\nremind_interval = \"0s\"").unwrap_err();
    assert!(err.mentions("registration.remind_interval"), "{err}");
}

#[test]
fn the_ipv6_throttle_prefix_is_a_prefix_length() {
    assert_eq!(load("").unwrap().throttle.ipv6_prefix, 64);
    for ok in [1, 48, 128] {
        let config = load(&format!("[throttle]\nipv6_prefix = {ok}")).unwrap();
        assert_eq!(config.throttle.ipv6_prefix, ok);
    }
    for bad in ["0", "129"] {
        let err = load(&format!("[throttle]\nipv6_prefix = {bad}")).unwrap_err();
        assert!(err.mentions("throttle.ipv6_prefix"), "{bad}: {err}");
    }
    let err = load("[throttle]\nipv6_prefix = -1").unwrap_err();
    assert!(err.to_string().contains("ipv6_prefix"), "{err}");
}

#[test]
fn scope_and_protected_accounts() {
    let config = load("").unwrap();
    assert_eq!(config.policy.scope, Scope::All);
    assert!(config.policy.allow_protected.is_empty() && config.notify.admins.is_empty());
    let group = "CN=SSPR Users,OU=Groups,DC=example,DC=com";
    let config = load(&format!(
        "[policy]\nscope = \"group\"\ngroup_dn = {group:?}\n\
         allow_protected = [\"CN=Jane,DC=example,DC=com\"]"
    ))
    .unwrap();
    assert_eq!(config.policy.scope, Scope::Group(group.to_owned()));
    assert_eq!(config.policy.allow_protected, ["CN=Jane,DC=example,DC=com"]);
    assert_eq!(
        load("[policy]\nscope = \"none\"").unwrap().policy.scope,
        Scope::Nobody
    );

    for (bad, key, says) in [
        ("scope = \"some\"", "policy.scope", "\"group\""),
        ("scope = \"group\"", "policy.group_dn", "is required"),
        (
            "scope = \"group\"\ngroup_dn = \"SSPR Users\"",
            "policy.group_dn",
            "distinguished",
        ),
        (
            "group_dn = \"CN=x,DC=y\"",
            "policy.group_dn",
            "only used with",
        ),
        (
            "allow_protected = [\"jdoe\"]",
            "policy.allow_protected",
            "distinguished",
        ),
    ] {
        let err = load(&format!("[policy]\n{bad}")).unwrap_err();
        assert!(err.mentions(key), "{bad}: {err}");
        assert!(err.to_string().contains(says), "{bad}: {err}");
    }
}

#[test]
fn admins_to_notify_are_mail_addresses_and_need_a_mail_server() {
    let smtp = "[smtp]\nhost = \"mail\"\nfrom = \"sspr@example.com\"\n";
    let config = load(&format!(
        "{smtp}[notify]\nadmins = [\" sec@example.com\", \"it@example.com\"]"
    ))
    .unwrap();
    assert_eq!(config.notify.admins, ["sec@example.com", "it@example.com"]);
    let err = load(&format!("{smtp}[notify]\nadmins = [\"Security Team\"]")).unwrap_err();
    assert!(
        err.to_string()
            .contains("\"Security Team\" is not a mail address"),
        "{err}"
    );
    let err = load("[notify]\nadmins = [\"sec@example.com\"]").unwrap_err();
    assert!(err.mentions("notify.admins"), "{err}");
    assert!(err.to_string().contains("smtp.host"), "{err}");
}

#[test]
fn database_password_is_masked_for_display() {
    assert_eq!(
        masked_url("postgres://sspr:hunter2@db:5432/sspr"),
        "postgres://sspr:***@db:5432/sspr"
    );
    assert_eq!(masked_url("sqlite:///tmp/x.db"), "sqlite:///tmp/x.db");
}

#[test]
fn the_organisation_names_the_issuer_and_the_sender_unless_they_are_set() {
    let smtp = "[smtp]\nhost = \"mail.example.com\"\nfrom = \"no-reply@example.com\"\n";
    let config = load(smtp).unwrap();
    assert_eq!(config.ui.name(), "sspr-bridge");
    assert_eq!(config.registration.totp_issuer, "sspr-bridge");
    assert_eq!(
        config.smtp.unwrap().from,
        "sspr-bridge <no-reply@example.com>"
    );

    let config = load(&format!("{smtp}[ui]\norganisation = \"Contoso IT\"\n")).unwrap();
    assert_eq!(config.ui.name(), "Contoso IT");
    assert_eq!(config.registration.totp_issuer, "Contoso IT");
    assert_eq!(
        config.smtp.unwrap().from,
        "Contoso IT <no-reply@example.com>"
    );

    let config = load(
        "[smtp]\nhost = \"mail.example.com\"\nfrom = \"Service Desk <no-reply@example.com>\"\n\
         [ui]\norganisation = \"Contoso IT\"\n[registration]\ntotp_issuer = \"Contoso SSPR\"\n",
    )
    .unwrap();
    assert_eq!(config.registration.totp_issuer, "Contoso SSPR");
    assert_eq!(
        config.smtp.unwrap().from,
        "Service Desk <no-reply@example.com>"
    );
}

#[test]
fn a_primary_colour_must_be_hex_and_dark_enough_for_white_text() {
    let config = load("[ui]\nprimary_colour = \"#1F4E79\"").unwrap();
    assert_eq!(config.ui.primary_colour.unwrap().to_string(), "#1f4e79");
    let err = load("[ui]\nprimary_colour = \"navy\"").unwrap_err();
    assert!(err.mentions("ui.primary_colour"), "{err}");
    assert!(err.to_string().contains("#rrggbb"), "{err}");
    let err = load("[ui]\nprimary_colour = \"#ffcc00\"").unwrap_err();
    assert!(err.mentions("ui.primary_colour"), "{err}");
    assert!(err.to_string().contains("too light"), "{err}");
    assert!(err.to_string().contains("4.5:1"), "{err}");
}

#[test]
fn the_logo_and_favicon_are_read_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let logo = dir.path().join("logo.svg");
    std::fs::write(&logo, "<svg xmlns=\"http://www.w3.org/2000/svg\"></svg>").unwrap();
    let config = load(&format!("[ui]\nlogo = {:?}", logo.display().to_string())).unwrap();
    let image = config.ui.logo_image.unwrap();
    assert_eq!(image.content_type, "image/svg+xml");
    assert!(config.ui.favicon_image.is_none());

    let err = load("[ui]\nlogo = \"/nonexistent/logo.png\"\nfavicon = \"/nonexistent/f.ico\"")
        .unwrap_err();
    assert!(err.mentions("ui.logo"), "{err}");
    assert!(err.mentions("ui.favicon"), "{err}");
    assert!(err.to_string().contains("/nonexistent/logo.png"), "{err}");
}

#[test]
fn audit_retention_is_a_number_of_days_and_zero_keeps_everything() {
    assert_eq!(load("").unwrap().audit.retain_days, 365);
    assert_eq!(
        load("[audit]\nretain_days = 0").unwrap().audit.retain_days,
        0
    );
    let error = load("[audit]\nretain_days = -1").unwrap_err();
    assert_eq!(error.problems[0].key, "audit.retain_days", "{error}");
}

#[test]
fn webhooks_need_https_and_a_signing_secret_and_commands_an_absolute_program() {
    let config = load("").unwrap();
    assert!(config.hooks.targets().iter().all(|(_, t)| !t.is_set()));
    assert_eq!(config.audit.syslog, None);

    let unsigned =
        load("[hooks]\nafter_reset = { url = \"https://hooks.example.com/a\" }").unwrap_err();
    assert!(unsigned.mentions("hooks.secret"), "{unsigned}");
    let short = load(
        "[hooks]\nsecret = \"short\"\nafter_unlock = { url = \"https://hooks.example.com/a\" }",
    )
    .unwrap_err();
    assert!(short.mentions("hooks.secret"), "{short}");
    let plain =
        load("[hooks]\nafter_reset = { url = \"http://hooks.example.com/a\" }").unwrap_err();
    assert!(
        plain.to_string().contains("must be an https URL"),
        "{plain}"
    );
    let relative = load("[hooks]\nafter_reset = { command = [\"sync-password\"] }").unwrap_err();
    assert!(relative.mentions("hooks.after_reset"), "{relative}");

    let config = load(
        "[hooks]\nsecret = \"0123456789abcdef\"\n\
         after_registration_change = { url = \"https://hooks.example.com/a\", command = [\"/bin/true\"] }\n\
         [audit]\nsyslog = \"tcp://siem.example.com\"",
    )
    .unwrap();
    let target = &config.hooks.after_registration_change;
    assert_eq!(
        target.url.as_ref().unwrap().host_str(),
        Some("hooks.example.com")
    );
    assert_eq!(target.command, ["/bin/true"]);
    assert_eq!(
        config.audit.syslog,
        Some(SyslogTarget::Tcp {
            host: "siem.example.com".to_owned(),
            port: 514
        })
    );
    let bad = load("[audit]\nsyslog = \"udp://siem.example.com\"").unwrap_err();
    assert!(bad.mentions("audit.syslog"), "{bad}");
}

#[test]
fn a_time_zone_must_be_a_known_iana_name() {
    let config = load("[ui]\ntimezone = \"Europe/Amsterdam\"").unwrap();
    assert_eq!(config.ui.timezone.name(), "Europe/Amsterdam");
    let err = load("[ui]\ntimezone = \"Europe/Amsterdan\"").unwrap_err();
    assert!(err.mentions("ui.timezone"), "{err}");
    assert!(err.to_string().contains("IANA name"), "{err}");
    let config = load("").unwrap();
    assert!(config.ui.timezone.name().starts_with("system ("));
}

#[test]
fn files_that_do_not_exist_yet_are_told_apart_from_other_problems() {
    let dir = tempfile::tempdir().unwrap();
    let absent = dir.path().join("absent");
    let err = load(&format!(
        "[server]\nstartup_wait = \"3m\"\n\
         [directory]\nbind_password = \"\"\nbind_password_file = {absent:?}\n\
         ca_file = {absent:?}"
    ))
    .unwrap_err();
    assert_eq!(err.startup_wait, Duration::from_secs(180));
    let missing = err.missing_files().expect("only missing files: {err}");
    let keys: Vec<&str> = missing.iter().map(|(key, _)| *key).collect();
    assert_eq!(keys, ["directory.ca_file", "directory.bind_password_file"]);
    assert!(missing.iter().all(|(_, path)| *path == absent));

    // A secret key file that is missing stands alone: no "is required" beside it.
    let err = load(&format!(
        "[security]\nsecret_key = \"\"\nsecret_key_file = {absent:?}"
    ))
    .unwrap_err();
    let missing = err.missing_files().expect("only a missing file: {err}");
    assert_eq!(missing, [("security.secret_key_file", absent.as_path())]);

    // So does a missing SMTP password file beside its user name.
    let err = load(&format!(
        "[smtp]\nhost = \"smtp.example.com\"\nfrom = \"a@example.com\"\n\
         username = \"u\"\npassword_file = {absent:?}"
    ))
    .unwrap_err();
    assert!(err.missing_files().is_some(), "{err}");

    // A directory where a file belongs is no file that will appear; nor is any other problem.
    let err = load(&format!("[directory]\nca_file = {:?}", dir.path())).unwrap_err();
    assert!(err.missing_files().is_none(), "{err}");
    let err = load(&format!(
        "[directory]\nca_file = {absent:?}\n[server]\nbody_limit = 0"
    ))
    .unwrap_err();
    assert!(err.mentions("directory.ca_file"), "{err}");
    assert!(err.missing_files().is_none(), "{err}");
}

#[test]
fn the_startup_wait_is_a_duration_and_off_by_default() {
    assert_eq!(load("").unwrap().server.startup_wait, Duration::ZERO);
    let config = load("[server]\nstartup_wait = \"20s\"").unwrap();
    assert_eq!(config.server.startup_wait, Duration::from_secs(20));
    let err = load("[server]\nstartup_wait = \"soon\"").unwrap_err();
    assert!(err.mentions("server.startup_wait"), "{err}");
    assert!(err.missing_files().is_none(), "{err}");
}

#[test]
fn a_file_in_a_directory_not_yet_open_to_the_service_is_waited_for_like_a_missing_one() {
    use std::io::ErrorKind;
    // The secrets volume of the Compose demo is the DC container's until it hands it over.
    assert!(super::rules::not_there_yet(ErrorKind::NotFound));
    assert!(super::rules::not_there_yet(ErrorKind::PermissionDenied));
    for kind in [
        ErrorKind::InvalidData,
        ErrorKind::IsADirectory,
        ErrorKind::Other,
    ] {
        assert!(!super::rules::not_there_yet(kind), "{kind:?}");
    }
}
