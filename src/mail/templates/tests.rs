use std::collections::BTreeSet;
use std::time::{Duration, UNIX_EPOCH};

use secrecy::SecretString;

use super::*;
use crate::i18n::source;

mod wording;

const CODE: &str = "40718263";
/// With characters HTML must escape.
const PASSWORD: &str = "Hd7<qL&Zr9xKvpW";
const PASSWORD_HTML: &str = "Hd7&lt;qL&amp;Zr9xKvpW";

fn templates() -> Templates {
    Templates::new(&Url::parse("https://sspr.example.com/").unwrap(), None)
}

/// 2025-03-14 09:41:07 UTC.
fn at() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_741_945_267)
}

fn every_kind() -> Vec<MailKind> {
    let code = || SecretString::from(CODE);
    vec![
        MailKind::EnrollmentCode { code: code() },
        MailKind::ResetCode { code: code() },
        MailKind::PasswordReset,
        MailKind::AccountUnlocked,
        MailKind::SelfServiceBlocked,
        MailKind::MethodAdded {
            method: MethodKind::Totp,
            name: None,
        },
        MailKind::MethodAdded {
            method: MethodKind::Email,
            name: None,
        },
        MailKind::MethodRemoved {
            method: MethodKind::Totp,
            name: None,
        },
        MailKind::MethodRemoved {
            method: MethodKind::Email,
            name: None,
        },
        MailKind::HelpdeskCode { code: code() },
        MailKind::TemporaryPassword {
            password: SecretString::from(PASSWORD),
        },
        MailKind::HelpdeskPasswordReset,
        MailKind::HelpdeskUnlocked,
        MailKind::HelpdeskRegistrationsCleared,
        MailKind::HelpdeskBlockLifted,
        MailKind::ProtectedAccountReset {
            account: "adm-jdoe".to_owned(),
        },
        MailKind::RegistrationReminder {
            change_first: false,
        },
        MailKind::PasswordExpiry {
            days_left: 7,
            expires_at: at() + Duration::from_secs(7 * 86_400),
            page: PasswordPage::Reset,
        },
        MailKind::PasswordExpiry {
            days_left: 7,
            expires_at: at() + Duration::from_secs(7 * 86_400),
            page: PasswordPage::Change,
        },
        MailKind::PasswordExpired { expired_at: at() },
        MailKind::PasswordChanged,
        MailKind::RegistrationReminder { change_first: true },
        MailKind::ManagerApprovalRequest {
            token: SecretString::from("tok-EN_x"),
            operator: "op-anna".to_owned(),
            caller: "Jan Jansen (jjansen)".to_owned(),
        },
        MailKind::ManagerApprovalCode { code: code() },
        MailKind::ManagerApprovalDeclined {
            manager: "mgr-piet".to_owned(),
        },
        MailKind::RecoveryCodesCreated,
        MailKind::RecoveryCodeUsed { left: 9 },
        MailKind::RecoveryCodeUsed { left: 2 },
        MailKind::MethodRemoved {
            method: MethodKind::RecoveryCode,
            name: None,
        },
    ]
}

/// Mails from the batch commands: no closing line, as nothing happened to the account.
fn is_reminder(kind: &MailKind) -> bool {
    matches!(
        kind,
        MailKind::RegistrationReminder { .. }
            | MailKind::PasswordExpiry { .. }
            | MailKind::PasswordExpired { .. }
            | MailKind::ManagerApprovalRequest { .. }
    )
}

fn mail(kind: MailKind, locale: &str, display_name: Option<&str>) -> Mail {
    Mail {
        to: "jan@example.com".to_owned(),
        display_name: display_name.map(str::to_owned),
        locale: Language::of(locale),
        kind,
    }
}

#[test]
fn a_used_recovery_code_says_how_many_are_left_and_when_to_make_new_ones() {
    let templates = templates();
    let text = |left| {
        let kind = MailKind::RecoveryCodeUsed { left };
        templates
            .render(&mail(kind, "en", None), at())
            .unwrap()
            .text
    };
    let many = text(9);
    assert!(many.contains("Recovery codes left: 9."), "{many}");
    assert!(!many.contains("make a new set"), "{many}");
    let few = text(3);
    assert!(few.contains("Recovery codes left: 3."), "{few}");
    assert!(few.contains("make a new set"), "{few}");
    assert!(few.contains("https://sspr.example.com/register"), "{few}");
}

fn is_code(kind: &MailKind) -> bool {
    matches!(
        kind,
        MailKind::EnrollmentCode { .. }
            | MailKind::ResetCode { .. }
            | MailKind::HelpdeskCode { .. }
            | MailKind::ManagerApprovalCode { .. }
    )
}

#[test]
fn every_kind_renders_in_every_language() {
    let templates = templates();
    for language in Language::ALL {
        for kind in every_kind() {
            let r = templates
                .render(&mail(kind.clone(), language.tag(), Some("Jan")), at())
                .unwrap_or_else(|e| panic!("{kind:?} in {}: {e:#}", language.tag()));
            assert!(!r.subject.is_empty());
            for part in [&r.text, &r.html] {
                assert!(part.contains("https://sspr.example.com/"), "{part}");
                assert!(!part.contains('{'), "a placeholder left in {part}");
            }
            assert!(r.html.contains("<a href=\"https://sspr.example.com/\""));
            assert!(
                r.html
                    .contains(&format!("<html lang=\"{}\">", language.tag()))
            );
            assert!(r.html.contains(&format!("<title>{}</title>", r.subject)));
        }
    }
}

#[test]
fn language_follows_the_locale_and_falls_back_to_english() {
    let templates = templates();
    let subject = |locale: &str| {
        templates
            .render(&mail(MailKind::PasswordReset, locale, None), at())
            .unwrap()
            .subject
    };
    assert_eq!(subject("en"), "Your password was reset");
    assert_eq!(subject("nl"), "Uw wachtwoord is opnieuw ingesteld");
    assert_eq!(subject("nl-BE"), subject("nl"));
    assert_eq!(subject("es"), subject("en"));
    assert_eq!(subject(""), subject("en"));
}

#[test]
fn the_code_is_alone_on_its_line_and_only_in_code_mails() {
    let templates = templates();
    for language in Language::ALL {
        for kind in every_kind() {
            let r = templates
                .render(&mail(kind.clone(), language.tag(), None), at())
                .unwrap();
            if is_code(&kind) {
                assert!(r.text.lines().any(|l| l == CODE), "{}", r.text);
                assert!(r.html.contains(&format!(">{CODE}</span>")), "{}", r.html);
                assert!(r.html.contains("monospace"));
            } else {
                for part in [&r.text, &r.html] {
                    assert!(!part.contains(CODE));
                    let longest_number = part
                        .split(|c: char| !c.is_ascii_digit())
                        .map(str::len)
                        .max();
                    assert!(longest_number < Some(6), "a number like a code in {part}");
                }
            }
        }
    }
}

#[test]
fn the_password_is_alone_on_its_line_and_only_in_its_own_mail() {
    let templates = templates();
    for language in Language::ALL {
        for kind in every_kind() {
            let r = templates
                .render(&mail(kind.clone(), language.tag(), None), at())
                .unwrap();
            assert!(!r.subject.contains(PASSWORD));
            // Never unescaped in HTML, in any mail.
            assert!(!r.html.contains(PASSWORD), "{}", r.html);
            if matches!(kind, MailKind::TemporaryPassword { .. }) {
                assert!(r.text.lines().any(|l| l == PASSWORD), "{}", r.text);
                assert_eq!(r.text.matches(PASSWORD).count(), 1, "{}", r.text);
                assert!(
                    r.html.contains(&format!(">{PASSWORD_HTML}</span>")),
                    "{}",
                    r.html
                );
                assert_eq!(r.html.matches(PASSWORD_HTML).count(), 1, "{}", r.html);
                assert!(r.html.contains("monospace"));
            } else {
                for part in [&r.text, &r.html] {
                    assert!(!part.contains(PASSWORD_HTML), "{part}");
                    assert!(!part.contains("Zr9xKvpW"), "{part}");
                }
            }
        }
    }
}

#[test]
fn html_escapes_what_comes_from_outside() {
    let templates = Templates::new(
        &Url::parse("https://sspr.example.com/?a=1&b=\"x\"").unwrap(),
        Some("<b>Contoso</b> IT".to_owned()),
    );
    let r = templates
        .render(
            &mail(
                MailKind::AccountUnlocked,
                "en",
                Some("<script>alert(1)</script> {when}"),
            ),
            at(),
        )
        .unwrap();
    assert!(!r.html.contains("<script>"), "{}", r.html);
    assert!(
        r.html
            .contains("&lt;script&gt;alert(1)&lt;&#x2f;script&gt; {when}"),
        "{}",
        r.html
    );
    assert!(
        r.html.contains("&lt;b&gt;Contoso&lt;&#x2f;b&gt; IT"),
        "{}",
        r.html
    );
    assert!(
        r.html
            .contains("href=\"https://sspr.example.com/?a=1&amp;b=%22x%22\""),
        "{}",
        r.html
    );
    // The text part is not HTML: names appear as given, and never expand placeholders.
    assert!(
        r.text
            .starts_with("Hello <script>alert(1)</script> {when},\n"),
        "{}",
        r.text
    );
    assert!(r.text.contains("sent automatically by <b>Contoso</b> IT."));
}

#[test]
fn a_blank_display_name_gets_the_plain_greeting() {
    let r = templates()
        .render(&mail(MailKind::PasswordReset, "nl", Some("  ")), at())
        .unwrap();
    assert!(r.text.starts_with("Goedendag,\n\n"), "{}", r.text);
}

fn key_paths(prefix: &str, table: &toml::Table, out: &mut BTreeSet<String>) {
    for (key, value) in table {
        let path = format!("{prefix}{key}");
        match value {
            toml::Value::Table(inner) => key_paths(&format!("{path}."), inner, out),
            toml::Value::Array(items) => {
                out.insert(format!("{path}[{}]", items.len()));
            }
            _ => {
                out.insert(path);
            }
        }
    }
}

#[test]
fn every_language_has_the_same_texts_and_placeholders() {
    let shape = |language: Language| {
        let table: toml::Table = toml::from_str(source(language)).unwrap();
        let mut paths = BTreeSet::new();
        key_paths("", &table, &mut paths);
        let placeholders: BTreeSet<String> = source(language)
            .lines()
            .filter(|l| !l.trim_start().starts_with('#'))
            .flat_map(|l| l.split('{').skip(1))
            .filter_map(|s| s.split_once('}').map(|(name, _)| name.to_owned()))
            .collect();
        (paths, placeholders)
    };
    let english = shape(Language::En);
    for language in Language::ALL {
        assert_eq!(
            shape(language),
            english,
            "{} differs from en",
            language.tag()
        );
    }
}

#[test]
fn an_override_replaces_one_part_of_one_mail() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("mail")).unwrap();
    std::fs::write(
        dir.path().join("mail/code.txt"),
        "{{ m.intro }} {{ code }} ({{ m.valid | fill(minutes=minutes) }})",
    )
    .unwrap();
    let mut overridden = templates();
    overridden
        .set_overrides(&Overrides::new(dir.path()).unwrap())
        .unwrap();
    let reset = |templates: &Templates, locale| {
        let kind = MailKind::ResetCode {
            code: SecretString::from(CODE),
        };
        templates.render(&mail(kind, locale, None), at()).unwrap()
    };
    let (mine, built_in) = (reset(&overridden, "nl"), reset(&templates(), "nl"));
    assert_eq!(
        mine.text,
        "Gebruik deze code om te bevestigen dat u het bent: 40718263 (De code is 10 minuten \
         geldig.)"
    );
    assert_eq!(mine.html, built_in.html);
    assert_eq!(mine.subject, built_in.subject);
    let notice = |templates: &Templates| {
        templates
            .render(&mail(MailKind::PasswordReset, "en", None), at())
            .unwrap()
            .text
    };
    assert_eq!(notice(&overridden), notice(&templates()));
}
