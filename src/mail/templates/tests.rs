use std::collections::BTreeSet;
use std::time::{Duration, UNIX_EPOCH};

use secrecy::SecretString;

use super::*;
use crate::i18n::source;

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
        },
        MailKind::MethodAdded {
            method: MethodKind::Email,
        },
        MailKind::MethodRemoved {
            method: MethodKind::Totp,
        },
        MailKind::MethodRemoved {
            method: MethodKind::Email,
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
        MailKind::RegistrationReminder,
        MailKind::PasswordExpiry {
            days_left: 7,
            expires_at: at() + Duration::from_secs(7 * 86_400),
        },
        MailKind::ManagerApprovalRequest {
            token: SecretString::from("tok-EN_x"),
            operator: "op-anna".to_owned(),
            caller: "Jan Jansen (jjansen)".to_owned(),
        },
        MailKind::ManagerApprovalCode { code: code() },
        MailKind::ManagerApprovalDeclined {
            manager: "mgr-piet".to_owned(),
        },
    ]
}

/// Mails from the batch commands: no closing line, as nothing happened to the account.
fn is_reminder(kind: &MailKind) -> bool {
    matches!(
        kind,
        MailKind::RegistrationReminder
            | MailKind::PasswordExpiry { .. }
            | MailKind::ManagerApprovalRequest { .. }
    )
}

fn mail(kind: MailKind, locale: &str, display_name: Option<&str>) -> Mail {
    Mail {
        to: "jan@example.com".to_owned(),
        display_name: display_name.map(str::to_owned),
        locale: locale.to_owned(),
        kind,
    }
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
    assert_eq!(subject("de"), subject("en"));
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
fn helpdesk_mails_say_the_helpdesk_did_it_and_close_accordingly() {
    let templates = templates();
    let render = |kind, locale| templates.render(&mail(kind, locale, None), at()).unwrap();
    for language in Language::ALL {
        let t = templates.catalog(language);
        let (by_user, by_helpdesk) = (&t.common.if_not_you, &t.common.if_not_asked);
        for kind in every_kind()
            .into_iter()
            .filter(|k| !is_code(k) && !is_reminder(k))
            .filter(|k| !matches!(k, MailKind::ProtectedAccountReset { .. }))
        {
            let r = render(kind.clone(), language.tag());
            let helpdesk = matches!(
                kind,
                MailKind::TemporaryPassword { .. }
                    | MailKind::HelpdeskPasswordReset
                    | MailKind::HelpdeskUnlocked
                    | MailKind::HelpdeskRegistrationsCleared
                    | MailKind::HelpdeskBlockLifted
                    | MailKind::ManagerApprovalDeclined { .. }
            );
            let (says, not) = if helpdesk {
                (by_helpdesk, by_user)
            } else {
                (by_user, by_helpdesk)
            };
            assert!(r.text.contains(says.as_str()), "{kind:?}: {}", r.text);
            assert!(!r.text.contains(not.as_str()), "{kind:?}: {}", r.text);
        }
    }
    let reset = render(MailKind::HelpdeskPasswordReset, "en").text;
    assert!(
        reset.contains(
            "Your password was reset by the helpdesk at 09:41 UTC on 14 March 2025. You will \
             be asked to choose a new one when you next sign in.\n\nIf you did not ask the \
             helpdesk for this, contact them immediately.\n"
        ),
        "{reset}"
    );
    let unlocked = render(MailKind::HelpdeskUnlocked, "nl").text;
    assert!(
        unlocked.contains(
            "Uw account is op 14 maart 2025 om 09:41 UTC door de helpdesk gedeblokkeerd."
        ),
        "{unlocked}"
    );
}

#[test]
fn cleared_registrations_link_to_the_registration_page() {
    for (language, label) in [
        ("en", "Set them up again at:"),
        ("nl", "Stel ze opnieuw in op:"),
    ] {
        let r = templates()
            .render(
                &mail(MailKind::HelpdeskRegistrationsCleared, language, None),
                at(),
            )
            .unwrap();
        assert!(
            r.text.contains(&format!(
                "\n\n{label}\nhttps://sspr.example.com/register\n\n"
            )),
            "{}",
            r.text
        );
        assert!(
            r.html.contains(&format!(
                "{label} <a href=\"https://sspr.example.com/register\" \
                 style=\"color:#0b57d0;\">https://sspr.example.com/register</a>"
            )),
            "{}",
            r.html
        );
    }
    // Under a public URL with a path, and whatever its query says.
    let templates = Templates::new(
        &Url::parse("https://intranet.example.com/sspr?a=1&b=2#top").unwrap(),
        None,
    );
    let r = templates
        .render(
            &mail(MailKind::HelpdeskRegistrationsCleared, "en", None),
            at(),
        )
        .unwrap();
    assert!(
        r.text
            .contains("\nhttps://intranet.example.com/sspr/register\n"),
        "{}",
        r.text
    );
    assert!(
        r.html
            .contains("<a href=\"https://intranet.example.com/sspr/register\""),
        "{}",
        r.html
    );
}

#[test]
fn reminders_link_to_their_page_and_say_how_long_is_left() {
    let templates = templates();
    let render = |kind, locale| templates.render(&mail(kind, locale, None), at()).unwrap();
    let r = render(MailKind::RegistrationReminder, "en");
    assert_eq!(r.subject, "Set up password self-service for your account");
    assert!(
        r.text
            .contains("\n\nSet it up at:\nhttps://sspr.example.com/register\n\nTo be safe,"),
        "{}",
        r.text
    );
    assert!(
        r.html
            .contains("<a href=\"https://sspr.example.com/register\""),
        "{}",
        r.html
    );
    let expiry = |days_left, locale| {
        let kind = MailKind::PasswordExpiry {
            days_left,
            expires_at: at() + Duration::from_secs(u64::from(days_left) * 86_400),
        };
        render(kind, locale)
    };
    let r = expiry(14, "en");
    assert_eq!(r.subject, "Your password expires soon");
    assert!(
        r.text.contains(
            "The password of your account expires in 14 days, at 09:41 UTC on 28 March 2025."
        ),
        "{}",
        r.text
    );
    assert!(
        r.text
            .contains("Choose a new password at:\nhttps://sspr.example.com/reset\n"),
        "{}",
        r.text
    );
    assert!(
        r.html
            .contains("<a href=\"https://sspr.example.com/reset\""),
        "{}",
        r.html
    );
    assert!(
        expiry(1, "en").text.contains("expires within a day, at"),
        "one day"
    );
    assert!(
        expiry(7, "nl")
            .text
            .contains("verloopt over 7 dagen, op 21 maart 2025 om 09:41 UTC."),
        "{}",
        expiry(7, "nl").text
    );
}

#[test]
fn the_helpdesk_code_mail_is_for_a_call_the_user_made() {
    let r = templates()
        .render(
            &mail(
                MailKind::HelpdeskCode {
                    code: SecretString::from(CODE),
                },
                "en",
                Some("Jan de Vries"),
            ),
            at(),
        )
        .unwrap();
    assert_eq!(r.subject, "Code for your call with the helpdesk");
    assert_eq!(
        r.text,
        "Hello Jan de Vries,\n\
         \n\
         A helpdesk agent is verifying your identity on a call you made to the helpdesk. Read \
         this code to the agent only if you are on that call right now:\n\
         \n\
         40718263\n\
         \n\
         The code is valid for 10 minutes.\n\
         \n\
         The helpdesk only asks for a code from a message like this one, and only on a call \
         you made yourself. If someone calls you and asks for it, hang up.\n\
         \n\
         Did you not call the helpdesk? Then do not share this code with anyone, and report \
         this to the helpdesk: someone may be trying to get into your account.\n\
         \n\
         This message was sent automatically by the password self-service. Replies are not read.\n\
         Password self-service: https://sspr.example.com/"
    );
}

#[test]
fn the_temporary_password_mail_reads_well() {
    let r = templates()
        .render(
            &mail(
                MailKind::TemporaryPassword {
                    password: SecretString::from(PASSWORD),
                },
                "en",
                Some("Jan de Vries"),
            ),
            at(),
        )
        .unwrap();
    assert_eq!(r.subject, "Your temporary password");
    assert_eq!(
        r.text,
        "Hello Jan de Vries,\n\
         \n\
         At 09:41 UTC on 14 March 2025, the helpdesk set this temporary password for your \
         account:\n\
         \n\
         Hd7<qL&Zr9xKvpW\n\
         \n\
         You must choose a new password when you next sign in.\n\
         \n\
         Do not pass it on, and delete this message once you have chosen your new password.\n\
         \n\
         If you did not ask the helpdesk for this, contact them immediately.\n\
         \n\
         This message was sent automatically by the password self-service. Replies are not read.\n\
         Password self-service: https://sspr.example.com/"
    );
}

#[test]
fn the_protected_account_notice_names_the_account_for_the_administrators() {
    let kind = MailKind::ProtectedAccountReset {
        account: "adm-<jdoe>".to_owned(),
    };
    let r = templates().render(&mail(kind, "en", None), at()).unwrap();
    assert_eq!(
        r.subject,
        "The password of a protected account was reset through self-service"
    );
    assert!(
        r.text.starts_with(
            "Hello,\n\nAt 09:41 UTC on 14 March 2025, the password of adm-<jdoe> was reset \
             through self-service."
        ),
        "{}",
        r.text
    );
    assert!(
        r.text
            .contains("\n\nIf the account's owner did not do this, disable the account"),
        "{}",
        r.text
    );
    assert!(!r.text.contains("contact the helpdesk"), "{}", r.text);
    assert!(r.html.contains("adm-&lt;jdoe&gt;"), "{}", r.html);
}

#[test]
fn notifications_say_when_and_which_method() {
    let templates = templates();
    let text = |kind, locale| {
        templates
            .render(&mail(kind, locale, None), at())
            .unwrap()
            .text
    };
    assert!(text(MailKind::PasswordReset, "en").contains("at 09:41 UTC on 14 March 2025."));
    assert!(text(MailKind::AccountUnlocked, "nl").contains("op 14 maart 2025 om 09:41 UTC."));
    let added = text(
        MailKind::MethodAdded {
            method: MethodKind::Totp,
        },
        "en",
    );
    assert!(added.contains("an authenticator app was added"), "{added}");
    let removed = text(
        MailKind::MethodRemoved {
            method: MethodKind::Email,
        },
        "nl",
    );
    assert!(
        removed.contains("is een e-mailadres verwijderd"),
        "{removed}"
    );
}

#[test]
fn the_text_part_reads_well() {
    let r = templates()
        .render(
            &mail(
                MailKind::ResetCode {
                    code: SecretString::from(CODE),
                },
                "en",
                Some("Jan de Vries"),
            ),
            at(),
        )
        .unwrap();
    assert_eq!(
        r.text,
        "Hello Jan de Vries,\n\
         \n\
         Use this code to confirm it is you:\n\
         \n\
         40718263\n\
         \n\
         The code is valid for 10 minutes.\n\
         \n\
         Never share this code with anyone. The helpdesk will never ask you for it.\n\
         \n\
         Did not ask for a code? Someone may be trying to get into your account: do not pass \
         the code on, and let the helpdesk know.\n\
         \n\
         This message was sent automatically by the password self-service. Replies are not read.\n\
         Password self-service: https://sspr.example.com/"
    );
}

#[test]
fn code_mails_state_the_configured_lifetime() {
    let mut templates = templates();
    templates.set_code_lifetime(Duration::from_secs(15 * 60 + 30));
    let kind = MailKind::EnrollmentCode {
        code: SecretString::from(CODE),
    };
    let r = templates.render(&mail(kind, "nl", None), at()).unwrap();
    assert!(
        r.text.contains("De code is 15 minuten geldig."),
        "{}",
        r.text
    );
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
