//! What each kind of mail says, in words and links.

use super::*;

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
    let first = render(MailKind::RegistrationReminder { change_first: true }, "en");
    assert!(
        first.text.contains(
            "then set up self-service at https://sspr.example.com/register.\n\nChange your \
             password at:\nhttps://sspr.example.com/change\n"
        ),
        "{}",
        first.text
    );
    let r = render(
        MailKind::RegistrationReminder {
            change_first: false,
        },
        "en",
    );
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
            page: PasswordPage::Reset,
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
    // Without a method to reset with (or without the licence): the change page.
    let change = render(
        MailKind::PasswordExpiry {
            days_left: 7,
            expires_at: at(),
            page: PasswordPage::Change,
        },
        "en",
    );
    assert!(
        change
            .text
            .contains("Choose a new password at:\nhttps://sspr.example.com/change\n"),
        "{}",
        change.text
    );
    assert!(!change.text.contains("/reset"), "{}", change.text);
    let expired = render(MailKind::PasswordExpired { expired_at: at() }, "en");
    assert_eq!(expired.subject, "Your password has expired");
    assert!(
        expired
            .text
            .contains("expired at 09:41 UTC on 14 March 2025"),
        "{}",
        expired.text
    );
    assert!(
        expired.text.contains("https://sspr.example.com/change\n")
            && !expired.text.contains("/reset"),
        "{}",
        expired.text
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
            name: None,
        },
        "en",
    );
    assert!(added.contains("an authenticator app was added"), "{added}");
    let removed = text(
        MailKind::MethodRemoved {
            method: MethodKind::Email,
            name: None,
        },
        "nl",
    );
    assert!(
        removed.contains("is een e-mailadres verwijderd"),
        "{removed}"
    );
}

#[test]
fn notices_of_an_app_name_it_in_every_language() {
    let templates = templates();
    let named = |added: bool| {
        let (method, name) = (MethodKind::Totp, Some("Work <phone>".to_owned()));
        if added {
            MailKind::MethodAdded { method, name }
        } else {
            MailKind::MethodRemoved { method, name }
        }
    };
    for (locale, added, removed) in [
        (
            "en",
            "the authenticator app “Work <phone>” was added",
            "the authenticator app “Work <phone>” was removed",
        ),
        (
            "nl",
            "is de authenticator-app ‘Work <phone>’ toegevoegd",
            "is de authenticator-app ‘Work <phone>’ verwijderd",
        ),
        (
            "de",
            "wurde die Authenticator-App „Work <phone>“ als",
            "wurde die Authenticator-App „Work <phone>“ aus",
        ),
        (
            "fr",
            "l’application d’authentification « Work <phone> » a été ajoutée",
            "l’application d’authentification « Work <phone> » a été supprimée",
        ),
    ] {
        for (kind, expected) in [(named(true), added), (named(false), removed)] {
            let r = templates.render(&mail(kind, locale, None), at()).unwrap();
            assert!(r.text.contains(expected), "{locale}: {}", r.text);
            // A name is the user's text: escaped in HTML like any other.
            assert!(
                r.html.contains("Work &lt;phone&gt;"),
                "{locale}: {}",
                r.html
            );
        }
    }
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
