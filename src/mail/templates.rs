//! What a mail says: minijinja templates compiled in from `templates/mail/` (a text and an HTML
//! part per mail, overridable from `ui.templates_dir`), with the texts of each language in the
//! `[mail]` table of `locales/*.toml` (see [`crate::i18n`]). The HTML templates escape every
//! value (autoescape by file name); the text ones print values as they are.

use std::time::{Duration, SystemTime};

use minijinja::value::{Kwargs, Value};
use minijinja::{Environment, Error, UndefinedBehavior, context};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use url::Url;

use crate::domain::notify::{Mail, MailKind};
use crate::domain::store::MethodKind;
use crate::i18n::{self, OverrideError, Overrides};

/// How long the code mails say a code is valid unless told otherwise (`reset.code_lifetime`'s
/// default).
const DEFAULT_CODE_LIFETIME: Duration = Duration::from_secs(600);

const TEMPLATES: &[(&str, &str)] = &[
    (
        "layout.txt",
        include_str!("../../templates/mail/layout.txt"),
    ),
    (
        "layout.html",
        include_str!("../../templates/mail/layout.html"),
    ),
    ("code.txt", include_str!("../../templates/mail/code.txt")),
    ("code.html", include_str!("../../templates/mail/code.html")),
    (
        "notice.txt",
        include_str!("../../templates/mail/notice.txt"),
    ),
    (
        "notice.html",
        include_str!("../../templates/mail/notice.html"),
    ),
    (
        "reminder.txt",
        include_str!("../../templates/mail/reminder.txt"),
    ),
    (
        "reminder.html",
        include_str!("../../templates/mail/reminder.html"),
    ),
    (
        "password.txt",
        include_str!("../../templates/mail/password.txt"),
    ),
    (
        "password.html",
        include_str!("../../templates/mail/password.html"),
    ),
];

use crate::domain::locale::Locale as Language;

/// The `[mail]` texts of one language. Strict on both sides: a key missing from a catalog or
/// unknown to this struct fails at start-up (and in the unit tests), never in a user's mailbox.
#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct Catalog {
    common: Common,
    enrollment_code: CodeTexts,
    reset_code: CodeTexts,
    helpdesk_code: CodeTexts,
    temporary_password: PasswordTexts,
    password_reset: NoticeTexts,
    account_unlocked: NoticeTexts,
    method_added: NoticeTexts,
    method_removed: NoticeTexts,
    helpdesk_password_reset: NoticeTexts,
    helpdesk_unlocked: NoticeTexts,
    helpdesk_registrations_cleared: LinkNoticeTexts,
    helpdesk_block_lifted: NoticeTexts,
    protected_account_reset: AdminNoticeTexts,
    registration_reminder: ReminderTexts,
    password_expiry: ExpiryTexts,
    self_service_blocked: NoticeTexts,
    manager_approval_request: ReminderTexts,
    manager_approval_code: CodeTexts,
    manager_approval_declined: NoticeTexts,
}

#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct Common {
    greeting: String,
    greeting_named: String,
    service: String,
    automatic: String,
    link_label: String,
    /// Closes the notices of what the user did through self-service.
    if_not_you: String,
    /// Closes the mails about what the helpdesk did for (or to) the user.
    if_not_asked: String,
    when: String,
    months: [String; 12],
    method_totp: String,
    method_email: String,
}

#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct CodeTexts {
    subject: String,
    intro: String,
    valid: String,
    notes: Vec<String>,
}

#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct PasswordTexts {
    subject: String,
    intro: String,
    change: String,
    advice: String,
}

#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct NoticeTexts {
    subject: String,
    body: String,
}

/// A notice to the administrators about an account, with its own closing line.
#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct AdminNoticeTexts {
    subject: String,
    body: String,
    closing: String,
}

/// A reminder from a batch command: what to do, a link labelled `action`, then notes.
#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct ReminderTexts {
    subject: String,
    body: String,
    action: String,
    notes: Vec<String>,
}

/// The password expiry reminder: a [`ReminderTexts`] whose body says how long is left.
#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct ExpiryTexts {
    subject: String,
    body: String,
    days_one: String,
    days_other: String,
    action: String,
    notes: Vec<String>,
}

/// A notice that sends the reader somewhere: `action` labels the link.
#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct LinkNoticeTexts {
    subject: String,
    body: String,
    action: String,
}

impl Catalog {
    fn method(&self, method: MethodKind) -> &str {
        match method {
            MethodKind::Totp => &self.common.method_totp,
            MethodKind::Email => &self.common.method_email,
        }
    }

    /// `at` in words, in UTC.
    fn when(&self, at: SystemTime) -> Result<String, Error> {
        let at = time::OffsetDateTime::from(at);
        fill(&self.common.when, |name| match name {
            "day" => Some(at.day().to_string()),
            "month" => Some(self.common.months[usize::from(u8::from(at.month())) - 1].clone()),
            "year" => Some(at.year().to_string()),
            "time" => Some(format!("{:02}:{:02}", at.hour(), at.minute())),
            _ => None,
        })
    }
}

/// A mail ready to send: its subject and both parts.
pub struct Rendered {
    pub subject: String,
    pub text: String,
    pub html: String,
}

pub struct Templates {
    env: Environment<'static>,
    catalogs: Vec<(Language, Catalog)>,
    public_url: String,
    /// The same, escaped for an HTML attribute by hand: minijinja's escaping would also turn
    /// each `/` into `&#x2f;`, valid but unreadable for people and link scanners.
    public_url_html: String,
    /// The registration page under `public_url`, plain and escaped like `public_url_html`.
    register_url: String,
    register_url_html: String,
    /// The reset page under `public_url`, likewise.
    reset_url: String,
    reset_url_html: String,
    organisation: Option<String>,
    code_lifetime: Duration,
}

impl Templates {
    /// `public_url` is where links in mails point (the configured `server.public_url`, never a
    /// request's Host header); `organisation` names the sender in the footer, else "the password
    /// self-service".
    pub fn new(public_url: &Url, organisation: Option<String>) -> Self {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        env.add_filter("fill", fill_filter);
        for (name, source) in TEMPLATES {
            env.add_template(name, source)
                .expect("compiled-in mail templates are valid");
        }
        let catalogs = Language::ALL
            .into_iter()
            .map(|language| {
                let catalog = toml::Value::Table(i18n::catalog(language).mail.clone())
                    .try_into()
                    .unwrap_or_else(|e| {
                        panic!(
                            "compiled-in mail texts for {} are invalid: {e}",
                            language.tag()
                        )
                    });
                (language, catalog)
            })
            .collect();
        let register_url = page_url(public_url, "register");
        let reset_url = page_url(public_url, "reset");
        Self {
            env,
            catalogs,
            public_url: public_url.to_string(),
            public_url_html: escape_for_attribute(public_url.as_str()),
            register_url_html: escape_for_attribute(register_url.as_str()),
            register_url: register_url.to_string(),
            reset_url_html: escape_for_attribute(reset_url.as_str()),
            reset_url: reset_url.to_string(),
            organisation: organisation.filter(|o| !o.trim().is_empty()),
            code_lifetime: DEFAULT_CODE_LIFETIME,
        }
    }

    /// Replaces the built-in templates with those in `overrides`' folder (`ui.templates_dir`,
    /// sub-folder `mail/`) where it has them.
    pub fn set_overrides(&mut self, overrides: &Overrides) -> Result<(), OverrideError> {
        overrides.add_templates(&mut self.env, "mail/", TEMPLATES)
    }

    /// How long the code mails say a code is valid: the flows' `code_lifetime`.
    pub fn set_code_lifetime(&mut self, lifetime: Duration) {
        self.code_lifetime = lifetime;
    }

    fn catalog(&self, language: Language) -> &Catalog {
        self.catalogs
            .iter()
            .find_map(|(l, c)| (*l == language).then_some(c))
            .expect("a catalog for every language")
    }

    /// Renders `mail` as sent at `at`. Errors name the template and line, never a value.
    pub fn render(&self, mail: &Mail, at: SystemTime) -> Result<Rendered, Error> {
        let language = Language::of(&mail.locale);
        let t = self.catalog(language);
        let display_name = display_name(mail);
        let common = context! {
            lang => language.tag(),
            c => &t.common,
            display_name,
            service => self.organisation.as_deref().unwrap_or(&t.common.service),
            public_url => &self.public_url,
            public_url_html => Value::from_safe_string(self.public_url_html.clone()),
        };
        let (template, subject, specific) = match &mail.kind {
            MailKind::EnrollmentCode { code } => {
                code_context(&t.enrollment_code, code, self.code_lifetime)
            }
            MailKind::ResetCode { code } => code_context(&t.reset_code, code, self.code_lifetime),
            MailKind::HelpdeskCode { code } => {
                code_context(&t.helpdesk_code, code, self.code_lifetime)
            }
            MailKind::TemporaryPassword { password } => {
                password_context(&t.temporary_password, t, password, at)?
            }
            MailKind::PasswordReset => Notice::by_user(&t.password_reset).render(t, at)?,
            MailKind::AccountUnlocked => Notice::by_user(&t.account_unlocked).render(t, at)?,
            MailKind::SelfServiceBlocked => {
                Notice::by_user(&t.self_service_blocked).render(t, at)?
            }
            MailKind::MethodAdded { method } => Notice::by_user(&t.method_added)
                .method(*method)
                .render(t, at)?,
            MailKind::MethodRemoved { method } => Notice::by_user(&t.method_removed)
                .method(*method)
                .render(t, at)?,
            MailKind::HelpdeskPasswordReset => {
                Notice::by_helpdesk(&t.helpdesk_password_reset).render(t, at)?
            }
            MailKind::HelpdeskUnlocked => {
                Notice::by_helpdesk(&t.helpdesk_unlocked).render(t, at)?
            }
            MailKind::HelpdeskRegistrationsCleared => {
                let texts = &t.helpdesk_registrations_cleared;
                Notice::by_helpdesk(texts)
                    .link(context! {
                        label => &texts.action,
                        url => &self.register_url,
                        url_html => Value::from_safe_string(self.register_url_html.clone()),
                    })
                    .render(t, at)?
            }
            MailKind::HelpdeskBlockLifted => {
                Notice::by_helpdesk(&t.helpdesk_block_lifted).render(t, at)?
            }
            MailKind::ManagerApprovalRequest {
                token,
                operator,
                caller,
            } => {
                let texts = &t.manager_approval_request;
                let url = approval_url(&self.public_url, token.expose_secret());
                let body = fill(&texts.body, |name| match name {
                    "operator" => Some(operator.clone()),
                    "caller" => Some(caller.clone()),
                    _ => None,
                })?;
                let link = link(
                    &texts.action,
                    url.as_str(),
                    &escape_for_attribute(url.as_str()),
                );
                reminder(texts, &texts.subject, body, link)
            }
            MailKind::ManagerApprovalCode { code } => {
                code_context(&t.manager_approval_code, code, self.code_lifetime)
            }
            MailKind::ManagerApprovalDeclined { manager } => {
                let texts = &t.manager_approval_declined;
                Notice::to_admins(texts, manager, &t.common.if_not_asked).render(t, at)?
            }
            MailKind::ProtectedAccountReset { account } => {
                let texts = &t.protected_account_reset;
                Notice::to_admins(texts, account, &texts.closing).render(t, at)?
            }
            MailKind::RegistrationReminder => {
                let texts = &t.registration_reminder;
                let link = link(&texts.action, &self.register_url, &self.register_url_html);
                reminder(texts, &texts.subject, texts.body.clone(), link)
            }
            MailKind::PasswordExpiry {
                days_left,
                expires_at,
            } => {
                let texts = &t.password_expiry;
                let left = match days_left {
                    0 | 1 => texts.days_one.clone(),
                    days => fill(&texts.days_other, |name| {
                        (name == "days").then(|| days.to_string())
                    })?,
                };
                let when = t.when(*expires_at)?;
                let body = fill(&texts.body, |name| match name {
                    "left" => Some(left.clone()),
                    "when" => Some(when.clone()),
                    _ => None,
                })?;
                let link = link(&texts.action, &self.reset_url, &self.reset_url_html);
                reminder(texts, &texts.subject, body, link)
            }
        };
        let ctx = context! { ..context! { subject }, ..specific, ..common };
        let part = |extension: &str| {
            self.env
                .get_template(&format!("{template}.{extension}"))?
                .render(&ctx)
        };
        Ok(Rendered {
            subject: subject.to_owned(),
            text: part("txt")?,
            html: part("html")?,
        })
    }
}

/// The name to greet and address the mail to, if any: one line (a control character in a
/// directory attribute would otherwise break the `To:` header, and lettre panics on it).
pub(super) fn display_name(mail: &Mail) -> Option<String> {
    let name = mail.display_name.as_deref()?;
    let line: String = name
        .split(char::is_control)
        .flat_map(str::split_whitespace)
        .collect::<Vec<_>>()
        .join(" ");
    (!line.is_empty()).then_some(line)
}

/// Template, subject and values of a code mail. Only the code kinds ever see a code.
fn code_context<'a>(
    texts: &'a CodeTexts,
    code: &secrecy::SecretString,
    lifetime: Duration,
) -> (&'static str, &'a str, Value) {
    (
        "code",
        &texts.subject,
        context! {
            m => texts,
            code => code.expose_secret(),
            // Whole minutes, rounded down: better to promise less time than the code has.
            minutes => (lifetime.as_secs() / 60).max(1),
        },
    )
}

/// Template, subject and values of the temporary password mail: the only one that sees a
/// password.
fn password_context<'a>(
    texts: &'a PasswordTexts,
    t: &Catalog,
    password: &secrecy::SecretString,
    at: SystemTime,
) -> Result<(&'static str, &'a str, Value), Error> {
    Ok((
        "password",
        &texts.subject,
        context! {
            m => texts,
            when => t.when(at)?,
            password => password.expose_secret(),
        },
    ))
}

/// A link after a mail's body: `label`, then the URL (plain, and escaped for an attribute).
fn link(label: &str, url: &str, url_html: &str) -> Value {
    context! {
        label,
        url,
        url_html => Value::from_safe_string(url_html.to_owned()),
    }
}

/// Template, subject and values of a reminder: `body` (its placeholders filled), the link, and
/// the notes in `texts`.
fn reminder<'a>(
    texts: &impl Serialize,
    subject: &'a str,
    body: String,
    link: Value,
) -> (&'static str, &'a str, Value) {
    (
        "reminder",
        subject,
        context! { m => Value::from_serialize(texts), body, link },
    )
}

/// The texts of a notification.
trait NoticeKind: Serialize {
    fn subject(&self) -> &str;
}

impl NoticeKind for NoticeTexts {
    fn subject(&self) -> &str {
        &self.subject
    }
}

impl NoticeKind for LinkNoticeTexts {
    fn subject(&self) -> &str {
        &self.subject
    }
}

impl NoticeKind for AdminNoticeTexts {
    fn subject(&self) -> &str {
        &self.subject
    }
}

/// A notification: what happened and when, never a password or a code.
struct Notice<'a, T> {
    texts: &'a T,
    /// Whether the helpdesk did it rather than the user, which decides the closing line.
    by_helpdesk: bool,
    method: Option<MethodKind>,
    link: Option<Value>,
    /// The account a notice to the administrators is about.
    account: Option<&'a str>,
    /// Replaces the closing line `by_helpdesk` chooses.
    closing: Option<&'a str>,
}

impl<'a, T: NoticeKind> Notice<'a, T> {
    /// Of what the user did through self-service.
    fn by_user(texts: &'a T) -> Self {
        Notice {
            texts,
            by_helpdesk: false,
            method: None,
            link: None,
            account: None,
            closing: None,
        }
    }

    /// Of what the helpdesk did to the user's account.
    fn by_helpdesk(texts: &'a T) -> Self {
        Notice {
            by_helpdesk: true,
            ..Notice::by_user(texts)
        }
    }

    /// Of something that happened to `account`, for the administrators.
    fn to_admins(texts: &'a T, account: &'a str, closing: &'a str) -> Self {
        Notice {
            account: Some(account),
            closing: Some(closing),
            ..Notice::by_user(texts)
        }
    }

    fn method(mut self, method: MethodKind) -> Self {
        self.method = Some(method);
        self
    }

    /// A link after the body: a value with `label`, `url` and `url_html` (escaped for an
    /// attribute and marked safe).
    fn link(mut self, link: Value) -> Self {
        self.link = Some(link);
        self
    }

    fn render(self, t: &Catalog, at: SystemTime) -> Result<(&'static str, &'a str, Value), Error> {
        let closing = match self.closing {
            Some(closing) => closing,
            None if self.by_helpdesk => &t.common.if_not_asked,
            None => &t.common.if_not_you,
        };
        Ok((
            "notice",
            self.texts.subject(),
            context! {
                m => self.texts,
                when => t.when(at)?,
                method => self.method.map(|m| t.method(m)),
                account => self.account,
                closing,
                link => self.link,
            },
        ))
    }
}

/// The approval page of `token` under `public_url` (a string of a parsed URL).
fn approval_url(public_url: &str, token: &str) -> String {
    let mut url = Url::parse(public_url).expect("the public URL was parsed before");
    url.set_query(None);
    url.set_fragment(None);
    if let Ok(mut segments) = url.path_segments_mut() {
        segments.pop_if_empty().push("approve").push(token);
    }
    url.to_string()
}

/// `page` (a path without a leading slash) under `public_url`, which may itself have a path.
fn page_url(public_url: &Url, page: &str) -> Url {
    let mut url = public_url.clone();
    url.set_query(None);
    url.set_fragment(None);
    if let Ok(mut segments) = url.path_segments_mut() {
        segments.pop_if_empty().push(page);
    }
    url
}

fn escape_for_attribute(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// `{{ text | fill(name=value) }}`: puts values into a translated text's `{name}` placeholders.
fn fill_filter(text: &str, values: Kwargs) -> Result<String, Error> {
    fill(text, |name| {
        values
            .get::<Option<Value>>(name)
            .ok()
            .flatten()
            .filter(|v| !v.is_none() && !v.is_undefined())
            .map(|v| v.to_string())
    })
}

/// [`i18n::fill`], as a template error.
fn fill(text: &str, value: impl Fn(&str) -> Option<String>) -> Result<String, Error> {
    Ok(i18n::fill(text, value)?)
}

#[cfg(test)]
mod tests {
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
}
