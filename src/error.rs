//! The one error type of the HTTP API. Clients get a stable code and a message for a person;
//! the cause goes to the log (by the logging middleware, not here: rendering has no side effects).

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::domain::directory::DirectoryError;
use crate::domain::error::FlowError;
use crate::domain::licence::LicenceRequired;
use crate::domain::locale::Locale;
use crate::domain::policy::Violation;
use crate::domain::reset::retry_after_secs;
use crate::domain::store::StoreError;
use crate::i18n::{self, fill_with};

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error(transparent)]
    LicenceRequired(#[from] LicenceRequired),
    #[error("not found")]
    NotFound,
    #[error("{0}")]
    BadRequest(String),
    #[error(transparent)]
    Directory(#[from] DirectoryError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Flow(FlowError),
    /// Refused below the handlers: a body over `server.body_limit` (413), a method the route
    /// does not take (405), a request over `server.request_timeout` (503).
    #[error("refused by the HTTP layer: {0}")]
    Http(StatusCode),
}

impl From<FlowError> for ApiError {
    fn from(e: FlowError) -> Self {
        // Directory and store failures inside a flow are the same failures as outside one.
        match e {
            FlowError::Directory(e) => ApiError::Directory(e),
            FlowError::Store(e) => ApiError::Store(e),
            FlowError::LicenceRequired(e) => ApiError::LicenceRequired(e),
            e => ApiError::Flow(e),
        }
    }
}

/// The body of every error response.
#[derive(Debug, Serialize, serde::Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct ErrorBody {
    pub error: String,
    pub message: String,
    /// With `password_policy` only: each rule the new password broke.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<BrokenRule>,
}

/// A password rule that was broken: a stable id and what to do about it.
#[derive(Clone, Debug, Serialize, serde::Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct BrokenRule {
    /// `too_short`, `too_long`, `control_characters`, `complexity`, `contains_account_name`, `contains_display_name`,
    /// `banned`, `too_weak`, `history` (one of the last passwords this service set, where it keeps
    /// the history itself), or (after AD refused the write) `history_or_min_age`.
    #[schema(example = "too_short")]
    pub rule: String,
    #[schema(example = "Use at least 12 characters.")]
    pub message: String,
}

impl BrokenRule {
    pub fn new(violation: &Violation, locale: Locale) -> Self {
        Self {
            rule: violation.rule().to_owned(),
            message: violation_message(violation, locale),
        }
    }
}

/// What a person is told about a broken password rule, in the catalog's `[rule]` texts. The API
/// speaks English; the pages pick the visitor's language.
pub fn violation_message(violation: &Violation, locale: Locale) -> String {
    let t = i18n::catalog(locale);
    let simple = |key| t.rule(key).to_owned();
    match violation {
        Violation::TooShort { min } => fill_with(t.rule("too_short"), &[("min", &min.to_string())]),
        Violation::TooLong { max } => fill_with(t.rule("too_long"), &[("max", &max.to_string())]),
        Violation::ControlCharacters => simple("control_characters"),
        Violation::Complexity => simple("complexity"),
        Violation::ContainsAccountName => simple("contains_account_name"),
        Violation::ContainsDisplayName => simple("contains_display_name"),
        Violation::Banned => simple("banned"),
        Violation::TooWeak { .. } => simple("too_weak"),
        Violation::HistoryOrMinAge { history, min_age } => {
            let history = (*history > 0).then(|| t.rule_count("history", u64::from(*history)));
            let age = (!min_age.is_zero())
                .then(|| fill_with(t.rule("min_age"), &[("age", &span(*min_age, locale))]));
            let reasons = match (history, age) {
                (Some(h), Some(a)) => {
                    fill_with(t.rule("reasons_both"), &[("history", &h), ("age", &a)])
                }
                (Some(one), None) | (None, Some(one)) => {
                    fill_with(t.rule("reasons_single"), &[("reason", &one)])
                }
                (None, None) => String::new(),
            };
            fill_with(t.rule("history_or_min_age"), &[("reasons", &reasons)])
        }
        Violation::Reused { history } => t.rule_count("reused", u64::from(*history)),
    }
}

/// "2 days", "24 uur", "30 minutes": an interval for a person, rounded up. A single day reads
/// as "24 hours", the words a throttle's wait and AD's one-day minimum age are known by.
pub fn span(d: std::time::Duration, locale: Locale) -> String {
    let minutes = d.as_secs().div_ceil(60).max(1);
    let (unit, n) = if minutes % (24 * 60) == 0 && minutes > 24 * 60 {
        ("day", minutes / (24 * 60))
    } else if minutes >= 60 {
        ("hour", minutes.div_ceil(60))
    } else {
        ("minute", minutes)
    };
    i18n::catalog(locale).rule_count(unit, n)
}

/// Attached to error responses so the logging middleware can record what the client is not told.
#[derive(Clone, Debug)]
pub struct ErrorCause(pub String);

/// Marks a refusal a page's script asked for (the passkey buttons' options): its JSON
/// `{"message"}` reaches the script, not turned into an error page.
#[derive(Clone, Copy, Debug)]
pub struct ForScript;

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::LicenceRequired(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound => StatusCode::NOT_FOUND,
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Http(status) => *status,
            ApiError::Directory(e) => match e {
                DirectoryError::PolicyViolation { .. } => StatusCode::UNPROCESSABLE_ENTITY,
                DirectoryError::Unavailable { .. } | DirectoryError::WriteUnconfirmed { .. } => {
                    StatusCode::SERVICE_UNAVAILABLE
                }
                _ => StatusCode::BAD_GATEWAY,
            },
            ApiError::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Flow(e) => match e {
                FlowError::InvalidCredentials | FlowError::Unauthorized => StatusCode::UNAUTHORIZED,
                FlowError::InvalidCode { .. } | FlowError::InvalidInput(_) => {
                    StatusCode::BAD_REQUEST
                }
                FlowError::FlowNotFound => StatusCode::NOT_FOUND,
                FlowError::NotVerified | FlowError::Forbidden(_) | FlowError::NotInScope(_) => {
                    StatusCode::FORBIDDEN
                }
                FlowError::NotFound => StatusCode::NOT_FOUND,
                FlowError::Throttled { .. } | FlowError::SignInThrottled { .. } => {
                    StatusCode::TOO_MANY_REQUESTS
                }
                FlowError::PasswordRejected(_) => StatusCode::UNPROCESSABLE_ENTITY,
                FlowError::MailUnavailable => StatusCode::SERVICE_UNAVAILABLE,
                FlowError::PasswordChangeRequired | FlowError::StepUpRequired => {
                    StatusCode::FORBIDDEN
                }
                FlowError::Directory(_) | FlowError::Store(_) | FlowError::LicenceRequired(_) => {
                    unreachable!("unwrapped by From<FlowError>")
                }
                FlowError::SecondFactorRequired => StatusCode::FORBIDDEN,
                FlowError::ManagerRefused(_) => StatusCode::CONFLICT,
                FlowError::MethodRequired => StatusCode::CONFLICT,
                FlowError::InvalidCredential => StatusCode::BAD_REQUEST,
                FlowError::LimitReached => StatusCode::CONFLICT,
            },
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            ApiError::LicenceRequired(_) => "licence_required",
            ApiError::NotFound => "not_found",
            ApiError::BadRequest(_) => "invalid_request",
            ApiError::Http(status) => match *status {
                StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
                StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
                StatusCode::SERVICE_UNAVAILABLE => "timeout",
                s if s.is_server_error() => "internal_error",
                _ => "invalid_request",
            },
            ApiError::Directory(e) => match e {
                DirectoryError::PolicyViolation { .. } => "password_policy",
                DirectoryError::Unavailable { .. } => "directory_unavailable",
                DirectoryError::WriteUnconfirmed { .. } => "write_unconfirmed",
                _ => "directory_error",
            },
            ApiError::Store(_) => "storage_unavailable",
            ApiError::Flow(e) => match e {
                FlowError::InvalidCredentials => "invalid_credentials",
                FlowError::Unauthorized => "unauthorized",
                FlowError::InvalidCode { .. } => "invalid_code",
                FlowError::FlowNotFound => "flow_not_found",
                FlowError::NotVerified => "not_verified",
                FlowError::Forbidden(_) => "forbidden",
                FlowError::NotInScope(_) => "not_in_scope",
                FlowError::NotFound => "not_found",
                FlowError::Throttled { .. } | FlowError::SignInThrottled { .. } => "throttled",
                FlowError::InvalidInput(_) => "invalid_request",
                FlowError::PasswordRejected(_) => "password_policy",
                FlowError::MailUnavailable => "mail_unavailable",
                FlowError::PasswordChangeRequired => "password_change_required",
                FlowError::StepUpRequired => "step_up_required",
                FlowError::LicenceRequired(_) => "licence_required",
                FlowError::Directory(_) | FlowError::Store(_) => "internal_error",
                FlowError::SecondFactorRequired => "second_factor_required",
                FlowError::ManagerRefused(r) => r.code(),
                FlowError::MethodRequired => "method_required",
                FlowError::InvalidCredential => "invalid_credential",
                FlowError::LimitReached => "limit_reached",
            },
        }
    }

    /// What a person is told, from the catalog's `[error]` texts (in English: the API's
    /// language). Directory and storage details stay in the log.
    pub fn message(&self) -> String {
        let t = i18n::catalog(Locale::En);
        let text = |key| t.error(key).to_owned();
        match self {
            ApiError::LicenceRequired(e) => e.to_string(),
            ApiError::NotFound => text("not_found"),
            ApiError::BadRequest(m) => m.clone(),
            ApiError::Http(status) => match *status {
                StatusCode::PAYLOAD_TOO_LARGE => text("payload_too_large"),
                StatusCode::METHOD_NOT_ALLOWED => text("method_not_allowed"),
                StatusCode::SERVICE_UNAVAILABLE => text("timeout"),
                s if s.is_server_error() => text("internal_error"),
                _ => text("invalid_request"),
            },
            ApiError::Directory(DirectoryError::PolicyViolation { .. }) => text("password_policy"),
            ApiError::Directory(DirectoryError::Unavailable { .. }) | ApiError::Store(_) => {
                text("unavailable")
            }
            ApiError::Directory(DirectoryError::WriteUnconfirmed { .. }) => {
                text("write_unconfirmed")
            }
            ApiError::Directory(_) => text("directory_error"),
            ApiError::Flow(FlowError::InvalidCode { remaining_attempts }) => {
                match remaining_attempts {
                    0 => text("invalid_code_none"),
                    n => {
                        let counted = i18n::Catalog::plural(
                            &t.error,
                            "invalid_code",
                            u64::try_from(*n).unwrap_or(0),
                        )
                        .expect("[error] invalid_code_one/_other");
                        fill_with(counted, &[("n", &n.to_string())])
                    }
                }
            }
            ApiError::Flow(FlowError::PasswordRejected(broken)) => broken
                .iter()
                .map(|v| violation_message(v, Locale::En))
                .collect::<Vec<_>>()
                .join(" "),
            ApiError::Flow(FlowError::Throttled { retry_after }) => fill_with(
                t.error("throttled"),
                &[("wait", &span(*retry_after, Locale::En))],
            ),
            ApiError::Flow(FlowError::SignInThrottled { retry_after }) => fill_with(
                t.error("signin_throttled"),
                &[("wait", &span(*retry_after, Locale::En))],
            ),
            ApiError::Flow(e) => {
                let mut m = e.to_string();
                if let Some(first) = m.get_mut(0..1) {
                    first.make_ascii_uppercase();
                }
                if !m.ends_with('.') {
                    m.push('.');
                }
                m
            }
        }
    }

    fn cause(&self) -> Option<String> {
        match self {
            ApiError::Directory(e) => Some(e.to_string()),
            ApiError::Store(e) => Some(e.to_string()),
            _ => None,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let rules = match &self {
            ApiError::Flow(FlowError::PasswordRejected(broken)) => broken
                .iter()
                .map(|v| BrokenRule::new(v, Locale::En))
                .collect(),
            _ => Vec::new(),
        };
        let body = ErrorBody {
            error: self.code().to_owned(),
            message: self.message(),
            rules,
        };
        let mut response = (self.status(), Json(body)).into_response();
        if let ApiError::Flow(
            FlowError::Throttled { retry_after } | FlowError::SignInThrottled { retry_after },
        ) = &self
        {
            response.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                retry_after_secs(*retry_after).into(),
            );
        }
        if let Some(cause) = self.cause() {
            response.extensions_mut().insert(ErrorCause(cause));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn every_rule_has_a_message_in_both_languages() {
        let all = [
            Violation::TooShort { min: 12 },
            Violation::TooLong { max: 256 },
            Violation::ControlCharacters,
            Violation::Complexity,
            Violation::ContainsAccountName,
            Violation::ContainsDisplayName,
            Violation::Banned,
            Violation::TooWeak { min_strength: 3 },
            Violation::HistoryOrMinAge {
                history: 24,
                min_age: Duration::from_secs(86_400),
            },
            Violation::Reused { history: 24 },
            Violation::Reused { history: 1 },
        ];
        for v in &all {
            let en = violation_message(v, Locale::En);
            let nl = violation_message(v, Locale::Nl);
            assert!(en.ends_with('.') && nl.ends_with('.'), "{en} / {nl}");
            assert_ne!(en, nl, "{}", v.rule());
            assert!(!en.contains("  ") && !nl.contains("  "), "{en} / {nl}");
        }
        assert_eq!(
            violation_message(&all[0], Locale::Nl),
            "Gebruik minstens 12 tekens."
        );
        assert!(violation_message(&all[1], Locale::En).contains("256"));
    }

    #[test]
    fn a_refusal_by_ad_names_history_and_minimum_age() {
        let message = |history, secs, locale| {
            violation_message(
                &Violation::HistoryOrMinAge {
                    history,
                    min_age: Duration::from_secs(secs),
                },
                locale,
            )
        };
        assert_eq!(
            message(24, 86_400, Locale::En),
            "The domain refused this password, although it meets the rules that can be checked \
             in advance: it may be one of your last 24 passwords, or your password was changed \
             less than 24 hours ago. Choose another password."
        );
        assert!(message(24, 0, Locale::En).contains("last 24 passwords. Choose"));
        assert!(
            message(0, 2 * 86_400, Locale::En)
                .contains(": your password was changed less than 2 days ago.")
        );
        assert!(
            message(1, 3600, Locale::Nl)
                .contains("uw vorige wachtwoord, of uw wachtwoord is minder dan 1 uur geleden")
        );
        assert!(message(0, 0, Locale::En).contains("in advance. Choose"));
    }

    #[test]
    fn intervals_read_naturally() {
        assert_eq!(span(Duration::from_secs(86_400), Locale::En), "24 hours");
        assert_eq!(span(Duration::from_secs(2 * 86_400), Locale::En), "2 days");
        assert_eq!(span(Duration::from_secs(600), Locale::En), "10 minutes");
        assert_eq!(span(Duration::from_secs(3 * 86_400), Locale::Nl), "3 dagen");
        assert_eq!(span(Duration::from_secs(90 * 60), Locale::En), "2 hours");
        assert_eq!(span(Duration::from_secs(60), Locale::Nl), "1 minuut");
        assert_eq!(span(Duration::from_secs(1), Locale::En), "1 minute");
    }

    #[test]
    fn an_account_out_of_scope_is_told_so() {
        use crate::domain::scope::Exclusion;
        let error = ApiError::from(FlowError::NotInScope(Exclusion::OutOfScope));
        assert_eq!(error.status(), StatusCode::FORBIDDEN);
        assert_eq!(error.code(), "not_in_scope");
        assert_eq!(
            error.message(),
            "Self-service is not enabled for your account; please contact the helpdesk."
        );
        let error = ApiError::from(FlowError::NotInScope(Exclusion::Protected));
        assert_eq!(error.code(), "not_in_scope");
        assert!(
            error
                .message()
                .contains("not available for administrator accounts")
        );
    }

    #[test]
    fn a_policy_refusal_lists_the_rules() {
        let error = ApiError::from(FlowError::PasswordRejected(vec![
            Violation::TooShort { min: 12 },
            Violation::Banned,
        ]));
        assert_eq!(error.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(error.code(), "password_policy");
        assert!(
            error
                .message()
                .starts_with("Use at least 12 characters. This password is built on a commonly")
        );
    }
}
