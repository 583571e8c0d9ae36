//! What a page handler answers: a template, its variables, a message for the user (an outcome or
//! a friendly, localized reading of a [`FlowError`]) and the cookies to set.

use axum::http::{StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use minijinja::{Value, context};
use serde::Serialize;

use super::sections::{self, section};
use super::{Locale, Pages, Visitor, cookies};
use crate::domain::directory::DirectoryError;
use crate::domain::error::FlowError;
use crate::domain::helpdesk::ManagerRefusal;
use crate::domain::policy::Violation;
use crate::domain::reset::{MAX_PASSWORD_CHARS, retry_after_secs};
use crate::domain::scope::Exclusion;
use crate::error::{ApiError, ErrorCause, ForScript, span};

pub struct Reply {
    status: StatusCode,
    template: &'static str,
    vars: Value,
    here: &'static str,
    alert: Option<Alert>,
    /// A bearer cookie to set (`Some`) or clear (`None`) with this answer.
    bearer: Option<(&'static str, Option<String>)>,
    retry_after: Option<u64>,
    cause: Option<String>,
}

/// A message above the page: an error (`role="alert"`) or an outcome (`role="status"`).
struct Alert {
    error: bool,
    key: &'static str,
    params: Vec<(&'static str, String)>,
    /// Password rules broken, listed under the text in the reader's language.
    rules: Vec<Violation>,
    /// Show a link back to the section's start.
    restart: bool,
    /// Show the helpdesk link: self-service cannot help here.
    helpdesk: bool,
    /// Show the link to unlock an account: after any failed sign-in, so it tells nothing about
    /// the account.
    unlock: bool,
    /// How long to wait, the text's `{wait}` ("10 minutes"), told in the reader's language.
    wait: Option<std::time::Duration>,
}

#[derive(Serialize)]
struct ShownAlert<'a> {
    kind: &'static str,
    text: String,
    items: Vec<String>,
    restart: Option<&'a str>,
    helpdesk: bool,
    unlock: bool,
    /// The listed password rules the refusal broke, which the password page marks.
    broken: Vec<&'static str>,
}

impl Reply {
    pub fn new(template: &'static str) -> Self {
        Self {
            status: StatusCode::OK,
            template,
            vars: Value::UNDEFINED,
            here: "/",
            alert: None,
            bearer: None,
            retry_after: None,
            cause: None,
        }
    }

    /// The section's start page.
    pub fn here(mut self, path: &'static str) -> Self {
        self.here = path;
        self
    }

    pub fn vars(mut self, vars: Value) -> Self {
        self.vars = vars;
        self
    }

    pub fn status(mut self, status: StatusCode) -> Self {
        self.status = status;
        self
    }

    /// Sets bearer cookie `name` to `value`, or clears it (`None`). The page's forms are then
    /// bound to the new value, which is what the browser will send with them.
    pub fn bearer(mut self, name: &'static str, value: Option<&str>) -> Self {
        self.bearer = Some((name, value.map(str::to_owned)));
        self
    }

    /// An outcome to confirm, text `key`.
    pub fn notice(mut self, key: &'static str) -> Self {
        self.alert = Some(Alert {
            error: false,
            key,
            params: Vec::new(),
            rules: Vec::new(),
            restart: false,
            helpdesk: false,
            unlock: false,
            wait: None,
        });
        self
    }

    /// An error the user can fix on this page (text `key`), with `status`.
    pub fn problem(mut self, status: StatusCode, key: &'static str) -> Self {
        self.status = status;
        self.alert = Some(Alert {
            error: true,
            key,
            params: Vec::new(),
            rules: Vec::new(),
            restart: false,
            helpdesk: false,
            unlock: false,
            wait: None,
        });
        self
    }

    /// A flow error, told in the user's words. `detail` is the text for what only the handler
    /// can phrase: invalid input, and a password refused before it reached AD.
    pub fn failure(mut self, error: FlowError, detail: &'static str) -> Self {
        let error = ApiError::from(error);
        self.status = error.status();
        let mut alert = Alert {
            error: true,
            key: detail,
            params: Vec::new(),
            rules: Vec::new(),
            restart: false,
            helpdesk: false,
            unlock: false,
            wait: None,
        };
        match &error {
            ApiError::Flow(FlowError::InvalidCredentials) => {
                alert.key = "error_credentials";
                alert.unlock = true;
            }
            ApiError::Flow(FlowError::Unauthorized) => alert.key = "error_session_ended",
            ApiError::Flow(FlowError::InvalidCode { remaining_attempts }) => {
                alert.key = match remaining_attempts {
                    0 => "error_code_no_attempts",
                    1 => "error_code_one_attempt",
                    _ => "error_code_attempts",
                };
                alert.params.push(("n", remaining_attempts.to_string()));
                alert.restart = *remaining_attempts == 0;
                alert.helpdesk = *remaining_attempts == 0;
            }
            ApiError::Flow(FlowError::FlowNotFound) => {
                alert.key = "error_flow_ended";
                alert.restart = true;
                alert.helpdesk = true;
            }
            ApiError::Flow(FlowError::NotInScope(why)) => {
                alert.key = match why {
                    Exclusion::OutOfScope => "error_not_in_scope",
                    Exclusion::Protected => "error_protected_account",
                };
                alert.helpdesk = true;
            }
            ApiError::Flow(FlowError::NotVerified) => {
                alert.key = "error_not_verified";
                alert.restart = true;
            }
            ApiError::Flow(FlowError::Throttled { retry_after }) => {
                alert.key = "error_throttled";
                alert.wait = Some(*retry_after);
                alert.helpdesk = true;
                self.retry_after = Some(retry_after_secs(*retry_after));
            }
            ApiError::Flow(FlowError::SignInThrottled { retry_after }) => {
                alert.key = "error_signin_throttled";
                alert.wait = Some(*retry_after);
                self.retry_after = Some(retry_after_secs(*retry_after));
            }
            ApiError::Flow(FlowError::PasswordRejected(rules)) => {
                alert.key = "error_password_rules";
                alert.rules.clone_from(rules);
            }
            ApiError::Flow(FlowError::InvalidInput(_)) => {
                alert.params.push(("max", MAX_PASSWORD_CHARS.to_string()));
            }
            ApiError::Flow(FlowError::MailUnavailable) => {
                alert.key = "error_mail_unavailable";
                alert.helpdesk = true;
            }
            ApiError::Flow(FlowError::PasswordChangeRequired) => {
                alert.key = "error_password_change_required";
            }
            ApiError::Flow(FlowError::StepUpRequired) => alert.key = "error_step_up_required",
            ApiError::Flow(FlowError::InvalidCredential) => alert.key = "error_passkey_invalid",
            // Apps and passkeys have a limit each; the passkey forms' own texts say which.
            ApiError::Flow(FlowError::LimitReached) => {
                alert.key = if detail == "error_passkey_name" {
                    "error_passkey_limit"
                } else {
                    "error_limit_reached"
                };
            }
            ApiError::Flow(FlowError::ManagerRefused(why)) => {
                alert.key = match why {
                    ManagerRefusal::NoManager => "error_no_manager",
                    ManagerRefusal::ManagerDisabled => "error_manager_disabled",
                    ManagerRefusal::ManagerWithoutMail => "error_manager_without_mail",
                    ManagerRefusal::ManagerNotRegistered => "error_manager_not_registered",
                    ManagerRefusal::ManagerTooRecent => "error_manager_too_recent",
                    ManagerRefusal::ManagerIsOperator => "error_manager_is_operator",
                };
            }
            ApiError::LicenceRequired(_) => {
                alert.key = "licence_body";
                alert.helpdesk = true;
            }
            ApiError::Directory(DirectoryError::PolicyViolation { .. }) => {
                alert.key = "error_password_policy";
            }
            ApiError::Directory(DirectoryError::Unavailable { .. }) | ApiError::Store(_) => {
                alert.key = "error_unavailable";
                alert.helpdesk = true;
            }
            ApiError::Directory(DirectoryError::WriteUnconfirmed { .. }) => {
                alert.key = "error_write_unconfirmed";
                alert.helpdesk = true;
            }
            _ => {
                alert.key = "error_directory";
                alert.helpdesk = true;
            }
        }
        // For the log (see `log_errors`); the page shows none of it.
        self.cause = match &error {
            ApiError::Directory(e) => Some(e.to_string()),
            ApiError::Store(e) => Some(e.to_string()),
            _ => None,
        };
        self.alert = Some(alert);
        self
    }

    /// The answer to a POST whose CSRF token is missing or wrong: nothing was done.
    pub fn forbidden_form(uri: &Uri) -> Self {
        let here = section(uri.path());
        let mut reply = Reply::new("message.html")
            .here(here)
            .vars(context! { heading => "form_expired_title" })
            .problem(StatusCode::FORBIDDEN, "error_form_expired");
        if let Some(alert) = &mut reply.alert {
            alert.restart = true;
        }
        reply
    }
}

impl Pages {
    /// Renders a reply for a page request.
    pub fn show(&self, visitor: &Visitor, reply: Reply) -> Response {
        let bearer = match (&reply.bearer, visitor.csrf.area) {
            (Some((name, value)), Some(area)) if *name == area => value.as_deref(),
            (_, Some(area)) => visitor.bearer(area),
            (_, None) => None,
        };
        let csrf = visitor.csrf.mint(bearer);
        self.show_with(visitor.locale, &csrf, reply)
    }

    /// Renders a reply that has no forms (and so needs no CSRF token).
    pub fn show_bare(&self, locale: Locale, reply: Reply) -> Response {
        self.show_with(locale, "", reply)
    }

    /// A refusal for a page's script (the passkey buttons' options): `{"message"}`, the text
    /// the page would show, with the page's status.
    pub fn refusal_json(&self, locale: Locale, error: FlowError, detail: &'static str) -> Response {
        let reply = Reply::new("message.html").failure(error, detail);
        let message = reply
            .alert
            .as_ref()
            .map(|a| self.alert_text(locale, a))
            .unwrap_or_default();
        let mut response = (
            reply.status,
            axum::Json(serde_json::json!({ "message": message })),
        )
            .into_response();
        response.extensions_mut().insert(ForScript);
        if let Some(secs) = reply.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, secs.into());
        }
        if let Some(cause) = reply.cause {
            response.extensions_mut().insert(ErrorCause(cause));
        }
        response
    }

    /// The alert's text in `locale`, its placeholders filled.
    fn alert_text(&self, locale: Locale, a: &Alert) -> String {
        let wait = a.wait.map(|d| span(d, locale));
        let params: Vec<(&str, &str)> = a
            .params
            .iter()
            .map(|(n, v)| (*n, v.as_str()))
            .chain(wait.as_deref().map(|w| ("wait", w)))
            .collect();
        crate::i18n::fill_with(&self.text(locale, a.key), &params)
    }

    fn show_with(&self, locale: Locale, csrf: &str, reply: Reply) -> Response {
        let alert = reply.alert.as_ref().map(|a| {
            let text = self.alert_text(locale, a);
            ShownAlert {
                kind: if a.error { "error" } else { "success" },
                text,
                items: a
                    .rules
                    .iter()
                    .map(|v| crate::error::violation_message(v, locale))
                    .collect(),
                restart: a.restart.then_some(reply.here),
                // Operators are the helpdesk: "contact the helpdesk" is no advice for them.
                helpdesk: a.helpdesk && reply.here != sections::HELPDESK,
                // Unlocking is self-service: closed without the licence.
                unlock: a.unlock && self.self_service,
                broken: a
                    .rules
                    .iter()
                    .filter_map(super::password::broken_rule)
                    .collect(),
            }
        });
        let vars = context! {
            csrf,
            here => reply.here,
            alert,
            ..reply.vars
        };
        let mut response = self.render(reply.status, reply.template, locale, vars);
        let headers = response.headers_mut();
        if let Some((name, value)) = &reply.bearer {
            headers.append(
                header::SET_COOKIE,
                cookies::bearer(name, value.as_deref(), self.secure_cookies),
            );
        }
        if let Some(secs) = reply.retry_after {
            headers.insert(header::RETRY_AFTER, secs.into());
        }
        if let Some(cause) = reply.cause {
            response.extensions_mut().insert(ErrorCause(cause));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// The status and Dutch page for `error`.
    fn shown(error: FlowError) -> (StatusCode, String) {
        let pages = Pages::new(Some("https://help.example/".into()), true, false);
        let reply = Reply::new("message.html")
            .here("/reset")
            .vars(context! { heading => "form_expired_title" })
            .failure(error, "error_username");
        let response = pages.show_bare(Locale::Nl, reply);
        let status = response.status();
        let body =
            futures::executor::block_on(axum::body::to_bytes(response.into_body(), usize::MAX))
                .unwrap();
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    #[test]
    fn flow_errors_read_as_friendly_localized_messages() {
        let (status, body) = shown(FlowError::InvalidCode {
            remaining_attempts: 3,
        });
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(body.contains("role=\"alert\""), "{body}");
        assert!(body.contains("Nog 3 pogingen"), "{body}");

        let (status, body) = shown(FlowError::Throttled {
            retry_after: Duration::from_secs(15 * 60),
        });
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
        assert!(body.contains("15 minuten"), "{body}");

        let (_, body) = shown(FlowError::Throttled {
            retry_after: Duration::from_secs(24 * 3600),
        });
        assert!(body.contains("over 24 uur opnieuw"), "{body}");
        assert!(body.contains("https:&#x2f;&#x2f;help.example"), "{body}");

        let (status, body) = shown(FlowError::FlowNotFound);
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert!(
            body.contains("href=\"&#x2f;reset\""),
            "a start-again link: {body}"
        );

        let (status, body) = shown(FlowError::NotInScope(Exclusion::Protected));
        assert_eq!(status, StatusCode::FORBIDDEN);
        assert!(body.contains("beheerdersaccounts"), "{body}");
        assert!(body.contains("https:&#x2f;&#x2f;help.example"), "{body}");

        let (status, body) = shown(FlowError::Directory(DirectoryError::PolicyViolation {
            detail: "0000052D: secret detail".into(),
        }));
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(!body.contains("0000052D"), "{body}");
    }
}

#[cfg(test)]
mod refusals_for_scripts {
    use super::*;

    #[test]
    fn a_script_gets_the_pages_message_as_json_with_the_pages_status() {
        let pages = Pages::new(None, true, false);
        let response = pages.refusal_json(
            Locale::Nl,
            FlowError::InvalidCode {
                remaining_attempts: 3,
            },
            "error_code",
        );
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        assert_eq!(response.headers()[header::CONTENT_TYPE], "application/json");
        let body =
            futures::executor::block_on(axum::body::to_bytes(response.into_body(), usize::MAX))
                .unwrap();
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        let message = body["message"].as_str().unwrap();
        assert!(message.contains("Nog 3 pogingen"), "{body}");

        let response = pages.refusal_json(
            Locale::En,
            FlowError::InvalidInput("no name".into()),
            "error_passkey_name",
        );
        let body =
            futures::executor::block_on(axum::body::to_bytes(response.into_body(), usize::MAX))
                .unwrap();
        assert!(
            String::from_utf8_lossy(&body).contains("1 to 64 characters"),
            "the handler's text for its own input"
        );
    }
}

#[cfg(test)]
mod error_pages {
    use super::*;

    #[test]
    fn every_error_status_has_a_page_in_each_language() {
        let pages = Pages::new(Some("https://help.example/".into()), true, false);
        for status in [404, 405, 413, 429, 500, 503, 400, 502] {
            let status = StatusCode::from_u16(status).unwrap();
            for locale in Locale::ALL {
                let response = pages.error_page(locale, status);
                assert_eq!(response.status(), status);
                let body = futures::executor::block_on(axum::body::to_bytes(
                    response.into_body(),
                    usize::MAX,
                ))
                .unwrap();
                let body = String::from_utf8_lossy(&body);
                assert!(
                    body.contains(&format!("lang=\"{}\"", locale.tag())),
                    "{body}"
                );
                // A text missing from the catalog would show as its key.
                let key = ["error", "page", ""].join("_");
                assert!(!body.contains(&key), "a text is missing: {body}");
            }
        }
        let too_many = pages.error_page(Locale::Nl, StatusCode::TOO_MANY_REQUESTS);
        let body =
            futures::executor::block_on(axum::body::to_bytes(too_many.into_body(), usize::MAX))
                .unwrap();
        assert!(String::from_utf8_lossy(&body).contains("Te veel pogingen"));
    }
}
