//! The values each kind of mail is rendered with (code, temporary password, notice, reminder),
//! and the URLs and placeholder filling they share.

use std::time::{Duration, SystemTime};

use minijinja::value::{Kwargs, Value};
use minijinja::{Error, context};
use secrecy::ExposeSecret;
use serde::Serialize;
use url::Url;

use super::{AdminNoticeTexts, Catalog, CodeTexts, LinkNoticeTexts, NoticeTexts, PasswordTexts};
use crate::domain::store::MethodKind;
use crate::i18n;

/// Template, subject and values of a code mail. Only the code kinds ever see a code.
pub(super) fn code_context<'a>(
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
pub(super) fn password_context<'a>(
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
pub(super) fn link(label: &str, url: &str, url_html: &str) -> Value {
    context! {
        label,
        url,
        url_html => Value::from_safe_string(url_html.to_owned()),
    }
}

/// Template, subject and values of a reminder: `body` (its placeholders filled), the link, and
/// the notes in `texts`.
pub(super) fn reminder<'a>(
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
pub(super) trait NoticeKind: Serialize {
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
pub(super) struct Notice<'a, T> {
    texts: &'a T,
    /// Whether the helpdesk did it rather than the user, which decides the closing line.
    by_helpdesk: bool,
    method: Option<MethodKind>,
    /// The name of the authenticator app `method` is.
    app_name: Option<&'a str>,
    link: Option<Value>,
    /// The account a notice to the administrators is about.
    account: Option<&'a str>,
    /// Replaces the closing line `by_helpdesk` chooses.
    closing: Option<&'a str>,
}

impl<'a, T: NoticeKind> Notice<'a, T> {
    /// Of what the user did through self-service.
    pub(super) fn by_user(texts: &'a T) -> Self {
        Notice {
            texts,
            by_helpdesk: false,
            method: None,
            app_name: None,
            link: None,
            account: None,
            closing: None,
        }
    }

    /// Of what the helpdesk did to the user's account.
    pub(super) fn by_helpdesk(texts: &'a T) -> Self {
        Notice {
            by_helpdesk: true,
            ..Notice::by_user(texts)
        }
    }

    /// Of something that happened to `account`, for the administrators.
    pub(super) fn to_admins(texts: &'a T, account: &'a str, closing: &'a str) -> Self {
        Notice {
            account: Some(account),
            closing: Some(closing),
            ..Notice::by_user(texts)
        }
    }

    /// `app_name`: of an authenticator app, the name its owner gave it.
    pub(super) fn method(mut self, method: MethodKind, app_name: Option<&'a str>) -> Self {
        self.method = Some(method);
        self.app_name = app_name;
        self
    }

    /// A link after the body: a value with `label`, `url` and `url_html` (escaped for an
    /// attribute and marked safe).
    pub(super) fn link(mut self, link: Value) -> Self {
        self.link = Some(link);
        self
    }

    pub(super) fn render(
        self,
        t: &Catalog,
        at: SystemTime,
    ) -> Result<(&'static str, &'a str, Value), Error> {
        let closing = match self.closing {
            Some(closing) => closing,
            None if self.by_helpdesk => &t.common.if_not_asked,
            None => &t.common.if_not_you,
        };
        let method = match (self.method, self.app_name) {
            (Some(MethodKind::Totp), Some(name)) => Some(fill(&t.common.method_totp_named, |k| {
                (k == "name").then(|| name.to_owned())
            })?),
            (Some(MethodKind::Passkey), Some(name)) => {
                Some(fill(&t.common.method_passkey_named, |k| {
                    (k == "name").then(|| name.to_owned())
                })?)
            }
            (method, _) => method.map(|m| t.method(m).to_owned()),
        };
        Ok((
            "notice",
            self.texts.subject(),
            context! {
                m => self.texts,
                when => t.when(at)?,
                method,
                account => self.account,
                closing,
                link => self.link,
            },
        ))
    }
}

/// The approval page of `token` under `public_url` (a string of a parsed URL).
pub(super) fn approval_url(public_url: &str, token: &str) -> String {
    let mut url = Url::parse(public_url).expect("the public URL was parsed before");
    url.set_query(None);
    url.set_fragment(None);
    if let Ok(mut segments) = url.path_segments_mut() {
        segments.pop_if_empty().push("approve").push(token);
    }
    url.to_string()
}

/// `page` (a path without a leading slash) under `public_url`, which may itself have a path.
pub(super) fn page_url(public_url: &Url, page: &str) -> Url {
    let mut url = public_url.clone();
    url.set_query(None);
    url.set_fragment(None);
    if let Ok(mut segments) = url.path_segments_mut() {
        segments.pop_if_empty().push(page);
    }
    url
}

pub(super) fn escape_for_attribute(text: &str) -> String {
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
pub(super) fn fill_filter(text: &str, values: Kwargs) -> Result<String, Error> {
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
pub(super) fn fill(text: &str, value: impl Fn(&str) -> Option<String>) -> Result<String, Error> {
    Ok(i18n::fill(text, value)?)
}
