//! What a mail says: minijinja templates compiled in from `templates/mail/` (a text and an HTML
//! part per mail, overridable from `ui.templates_dir`), with the texts of each language in the
//! `[mail]` table of `locales/*.toml` (see [`crate::i18n`]). The HTML templates escape every
//! value (autoescape by file name); the text ones print values as they are.

mod context;

use std::time::{Duration, SystemTime};

use minijinja::value::Value;
use minijinja::{Environment, Error, UndefinedBehavior, context};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use url::Url;

use self::context::{
    Notice, approval_url, code_context, escape_for_attribute, fill, fill_filter, link, page_url,
    password_context, reminder,
};
use crate::domain::notify::{Mail, MailKind, PasswordPage};
use crate::domain::store::MethodKind;
use crate::i18n::{self, OverrideError, Overrides};
use crate::when::Zone;

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
    /// Where the mails' times are told (`ui.timezone`); not a text.
    #[serde(skip)]
    zone: Zone,
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
    registration_reminder: RegistrationReminderTexts,
    password_expiry: ExpiryTexts,
    self_service_blocked: NoticeTexts,
    manager_approval_request: ReminderTexts,
    manager_approval_code: CodeTexts,
    manager_approval_declined: NoticeTexts,
    password_changed: NoticeTexts,
    password_expired: ReminderTexts,
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
    method_passkey: String,
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

/// The registration reminder: a [`ReminderTexts`], with the body and link label for a user whose
/// password must be changed before they can register.
#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct RegistrationReminderTexts {
    subject: String,
    body: String,
    action: String,
    notes: Vec<String>,
    change_first_body: String,
    change_first_action: String,
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
            MethodKind::Passkey => &self.common.method_passkey,
        }
    }

    /// `at` in words, in `ui.timezone`.
    fn when(&self, at: SystemTime) -> Result<String, Error> {
        let at = self.zone.local(at).ok_or_else(|| {
            Error::new(
                minijinja::ErrorKind::InvalidOperation,
                "a time out of the calendar's range",
            )
        })?;
        fill(&self.common.when, |name| match name {
            "day" => Some(at.day.to_string()),
            "month" => usize::try_from(at.month - 1)
                .ok()
                .and_then(|m| self.common.months.get(m).cloned()),
            "year" => Some(at.year.to_string()),
            "time" => Some(at.time.clone()),
            "zone" => Some(at.zone.clone()),
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
    /// The password change page under `public_url`, likewise.
    change_url: String,
    change_url_html: String,
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
                let catalog = Catalog {
                    // Until `set_zone`: a test's mails read the same on every machine.
                    zone: Zone::utc(),
                    ..catalog
                };
                (language, catalog)
            })
            .collect();
        let register_url = page_url(public_url, "register");
        let reset_url = page_url(public_url, "reset");
        let change_url = page_url(public_url, "change");
        Self {
            env,
            catalogs,
            public_url: public_url.to_string(),
            public_url_html: escape_for_attribute(public_url.as_str()),
            register_url_html: escape_for_attribute(register_url.as_str()),
            register_url: register_url.to_string(),
            reset_url_html: escape_for_attribute(reset_url.as_str()),
            reset_url: reset_url.to_string(),
            change_url_html: escape_for_attribute(change_url.as_str()),
            change_url: change_url.to_string(),
            organisation: organisation.filter(|o| !o.trim().is_empty()),
            code_lifetime: DEFAULT_CODE_LIFETIME,
        }
    }

    /// Replaces the built-in templates with those in `overrides`' folder (`ui.templates_dir`,
    /// sub-folder `mail/`) where it has them.
    pub fn set_overrides(&mut self, overrides: &Overrides) -> Result<(), OverrideError> {
        overrides.add_templates(&mut self.env, "mail/", TEMPLATES)
    }

    /// Where the mails' times are told: `ui.timezone`.
    pub fn set_zone(&mut self, zone: &Zone) {
        for (_, catalog) in &mut self.catalogs {
            catalog.zone = zone.clone();
        }
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
        let language = mail.locale;
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
            MailKind::PasswordChanged => Notice::by_user(&t.password_changed).render(t, at)?,
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
            MailKind::RegistrationReminder {
                change_first: false,
            } => {
                let texts = &t.registration_reminder;
                let link = link(&texts.action, &self.register_url, &self.register_url_html);
                reminder(texts, &texts.subject, texts.body.clone(), link)
            }
            MailKind::RegistrationReminder { change_first: true } => {
                let texts = &t.registration_reminder;
                let body = fill(&texts.change_first_body, |name| {
                    (name == "register").then(|| self.register_url.clone())
                })?;
                let link = link(
                    &texts.change_first_action,
                    &self.change_url,
                    &self.change_url_html,
                );
                reminder(texts, &texts.subject, body, link)
            }
            MailKind::PasswordExpiry {
                days_left,
                expires_at,
                page,
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
                let link = match page {
                    PasswordPage::Reset => {
                        link(&texts.action, &self.reset_url, &self.reset_url_html)
                    }
                    PasswordPage::Change => {
                        link(&texts.action, &self.change_url, &self.change_url_html)
                    }
                };
                reminder(texts, &texts.subject, body, link)
            }
            MailKind::PasswordExpired { expired_at } => {
                let texts = &t.password_expired;
                let when = t.when(*expired_at)?;
                let body = fill(&texts.body, |name| (name == "when").then(|| when.clone()))?;
                let link = link(&texts.action, &self.change_url, &self.change_url_html);
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

#[cfg(test)]
mod tests;
