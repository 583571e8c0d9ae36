//! Server-rendered pages (no JavaScript needed), in English and Dutch. Templates and texts are
//! compiled in; the texts are the `[page]` tables of `locales/*.toml` (see [`crate::i18n`]), and
//! `ui.templates_dir` may replace any template or the stylesheet.
//!
//! The pages drive the same domain flows as `/api/v1`; what they add is browser state in cookies
//! (see [`cookies`]): the registration session, the reset flow and the helpdesk session are
//! bearer secrets, so they travel in `HttpOnly; SameSite=Strict` cookies and never in a URL, and
//! every POST carries a CSRF token bound to the browser's CSRF cookie and to that session or flow.

mod admin;
mod approval;
mod branding;
mod change;
mod cookies;
mod flash;
mod helpdesk;
mod layers;
mod password;
mod register;
mod reply;
mod reset;
mod sections;

use std::borrow::Cow;
use std::collections::HashMap;

use axum::Router;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{StatusCode, Uri, header};
use axum::middleware;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use minijinja::{Environment, UndefinedBehavior, Value, context};

use super::AppState;
use super::extract::Caller;
use crate::domain::deps::Client;
use crate::i18n::{self, OverrideError, Overrides, TemplateTexts, Texts};
use reply::Reply;

pub use branding::Branding;
pub use password::HistoryRule;

pub use crate::domain::locale::Locale;

macro_rules! templates {
    ($($name:literal),* $(,)?) => {
        &[$(($name, include_str!(concat!("../../../templates/", $name)))),*]
    };
}

const TEMPLATES: &[(&str, &str)] = templates![
    "base.html",
    "home.html",
    "licence_required.html",
    "message.html",
    "signin.html",
    "register.html",
    "register_totp.html",
    "register_email.html",
    "register_remove.html",
    "reset_start.html",
    "reset_verify.html",
    "reset_password.html",
    "unlock_confirm.html",
    "done.html",
    "helpdesk_off.html",
    "helpdesk_signin.html",
    "helpdesk.html",
    "helpdesk_confirm.html",
    "helpdesk_password.html",
    "helpdesk_registration_code.html",
    "approve.html",
    "error.html",
    "password_fields.html",
    "change.html",
    "admin.html",
    "helpdesk_lists.html",
    "register_recovery_codes.html",
];

const STYLESHEET: &str = include_str!("../../../static/style.css");

pub struct Pages {
    env: Environment<'static>,
    texts: HashMap<Locale, &'static Texts>,
    /// `static/style.css`, or its override.
    stylesheet: Cow<'static, str>,
    helpdesk_url: Option<String>,
    self_service: bool,
    /// Cookies get `Secure` when the public URL is https.
    secure_cookies: bool,
    branding: Branding,
    /// Whether the password page may list the history rule; `None`: it may not.
    history: Option<std::sync::Arc<dyn HistoryRule>>,
    /// Where the pages' times are told (`ui.timezone`).
    zone: crate::when::Zone,
}

impl Pages {
    pub fn new(helpdesk_url: Option<String>, self_service: bool, secure_cookies: bool) -> Self {
        let mut env = Environment::new();
        // A text missing from a catalog fails the render (and the tests), not silently blank.
        env.set_undefined_behavior(UndefinedBehavior::SemiStrict);
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        for (name, source) in TEMPLATES {
            env.add_template(name, source)
                .expect("compiled-in templates are valid");
        }
        let texts = Locale::ALL
            .into_iter()
            .map(|locale| (locale, &i18n::catalog(locale).page))
            .collect();
        Self {
            env,
            texts,
            stylesheet: Cow::Borrowed(STYLESHEET),
            helpdesk_url,
            self_service,
            secure_cookies,
            branding: Branding::default(),
            history: None,
            zone: crate::when::Zone::utc(),
        }
    }

    /// Where the pages' times are told (default UTC): `ui.timezone`.
    pub fn with_zone(mut self, zone: crate::when::Zone) -> Self {
        self.zone = zone;
        self
    }

    pub fn zone(&self) -> &crate::when::Zone {
        &self.zone
    }

    /// The organisation's name, logo, favicon and colour (`[ui]`) on every page.
    pub fn with_branding(mut self, branding: Branding) -> Self {
        self.branding = branding;
        self
    }

    /// Replaces the built-in templates and stylesheet with the files in `overrides`' folder
    /// (`ui.templates_dir`) of the same name, where it has them.
    pub fn with_overrides(mut self, overrides: &Overrides) -> Result<Self, OverrideError> {
        overrides.add_templates(&mut self.env, "", TEMPLATES)?;
        self.stylesheet = Cow::Owned(
            overrides
                .load("style.css", STYLESHEET)
                .map_err(OverrideError::Read)?,
        );
        Ok(self)
    }

    /// The text `key` in `locale`; the key itself if a catalog lacks it (a unit test sees that
    /// every key used exists).
    fn text(&self, locale: Locale, key: &str) -> String {
        self.texts[&locale]
            .get(key)
            .cloned()
            .unwrap_or_else(|| key.to_owned())
    }

    /// Renders `name` with the common variables plus `page`.
    fn render(&self, status: StatusCode, name: &str, locale: Locale, page: Value) -> Response {
        let template = self.env.get_template(name).expect("template exists");
        // The language switch names each other language in its own words.
        let other_langs: Vec<Value> = Locale::ALL
            .into_iter()
            .filter(|l| *l != locale)
            .map(|l| context! { tag => l.tag(), name => self.text(l, "language_name") })
            .collect();
        let rendered = template.render(context! {
            lang => locale.tag(),
            other_langs,
            t => Value::from_object(TemplateTexts::new(locale, self.texts[&locale])),
            helpdesk_url => &self.helpdesk_url,
            self_service => self.self_service,
            brand => self.branding.vars(),
            ..page
        });
        match rendered {
            Ok(html) => (status, Html(html)).into_response(),
            Err(e) => {
                tracing::error!(template = name, error = %e, "template failed");
                StatusCode::INTERNAL_SERVER_ERROR.into_response()
            }
        }
    }

    /// The page for an error answer that no handler phrased: an unknown path, a wrong method,
    /// a form over the body limit, a request over the timeout, a failure.
    pub fn error_page(&self, locale: Locale, status: StatusCode) -> Response {
        let kind = match status.as_u16() {
            code @ (404 | 405 | 413 | 429 | 503) => code.to_string(),
            code if code >= 500 => "500".to_owned(),
            _ => "400".to_owned(),
        };
        self.render(
            status,
            "error.html",
            locale,
            context! {
                title => format!("error_page_{kind}_title"),
                body => format!("error_page_{kind}_body"),
                server_error => status.is_server_error(),
                here => "/",
            },
        )
    }

    pub fn licence_required(&self, locale: Locale) -> Response {
        self.render(
            StatusCode::FORBIDDEN,
            "licence_required.html",
            locale,
            Value::UNDEFINED,
        )
    }
}

/// What every page handler knows about the request: language, client (for throttles and the
/// audit, exactly as the API sees it), the CSRF token for its forms, and the bearer cookies.
pub struct Visitor {
    pub locale: Locale,
    pub client: Client,
    csrf: cookies::CsrfToken,
    /// The registration session token (`sspr_session`).
    session: Option<String>,
    /// The reset or unlock flow id (`sspr_flow`).
    flow: Option<String>,
    /// A helpdesk operator's session token (`sspr_helpdesk`).
    helpdesk: Option<String>,
}

impl Visitor {
    /// The value of bearer cookie `name` that came with the request.
    fn bearer(&self, name: &str) -> Option<&str> {
        match name {
            cookies::SESSION => self.session.as_deref(),
            cookies::FLOW => self.flow.as_deref(),
            cookies::HELPDESK => self.helpdesk.as_deref(),
            _ => None,
        }
    }
}

impl FromRequestParts<AppState> for Visitor {
    type Rejection = StatusCode;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, StatusCode> {
        let Ok(Caller(client)) = Caller::from_request_parts(parts, state).await;
        let csrf = parts
            .extensions
            .get::<cookies::CsrfToken>()
            .cloned()
            // Only if a page route was added without the CSRF layer: a bug, not a client error.
            .ok_or(StatusCode::INTERNAL_SERVER_ERROR)?;
        let bearer = |name| cookies::read(&parts.headers, name).map(str::to_owned);
        Ok(Visitor {
            locale: Locale::from_parts(parts),
            client,
            csrf,
            session: bearer(cookies::SESSION),
            flow: bearer(cookies::FLOW),
            helpdesk: bearer(cookies::HELPDESK),
        })
    }
}

/// The organisation's logo and favicon, where `[ui]` has them.
pub fn brand_routes(state: &AppState) -> Router<AppState> {
    branding::routes(&state.pages.branding)
}

/// The self-service pages, the helpdesk and the home page, with their cookie layers.
pub fn routes(state: AppState) -> Router<AppState> {
    Router::new()
        .route("/", get(home))
        .merge(register::routes())
        .merge(reset::routes())
        .merge(helpdesk::routes(state.clone()))
        .merge(approval::routes())
        .merge(change::routes())
        .merge(admin::routes())
        .layer(middleware::from_fn_with_state(
            state.clone(),
            layers::guard_forms,
        ))
        .layer(middleware::from_fn_with_state(
            state,
            layers::remember_language,
        ))
}

/// A GET on a step that only takes a POST (a bookmark, a reload): back to the section's start.
async fn back_to_start(uri: Uri) -> Redirect {
    let lang = Locale::from_query(&uri)
        .map(|l| format!("?lang={}", l.tag()))
        .unwrap_or_default();
    Redirect::to(&format!("{}{lang}", sections::section(uri.path())))
}

async fn home(State(state): State<AppState>, visitor: Visitor) -> Response {
    state
        .pages
        .show(&visitor, Reply::new("home.html").here("/"))
}

pub async fn stylesheet(State(state): State<AppState>) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        format!(
            "{}{}",
            state.pages.stylesheet,
            state.pages.branding.stylesheet_rules()
        ),
    )
}

/// The password page's live checks and show-password button; the page works without it.
pub async fn password_script() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        include_str!("../../../static/password.js"),
    )
}

/// The helpdesk's "Copy" button, the only script: the CSP allows no inline one.
pub async fn copy_script() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        include_str!("../../../static/copy.js"),
    )
}

/// The passkey buttons' WebAuthn ceremonies; without it, the pages offer no passkey.
pub async fn passkey_script() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        include_str!("../../../static/passkey.js"),
    )
}

#[cfg(test)]
mod tests;
