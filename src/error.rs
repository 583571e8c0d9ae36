//! The one error type of the HTTP API. Clients get a stable code and a message for a person;
//! the cause goes to the log (by the logging middleware, not here: rendering has no side effects).

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::domain::directory::DirectoryError;
use crate::domain::licence::LicenceRequired;
use crate::domain::locale::Locale;
use crate::domain::policy::Violation;
use crate::domain::reset::retry_after_secs;
use crate::domain::selfservice::FlowError;
use crate::domain::store::StoreError;

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
    /// `banned`, `too_weak`, or (after AD refused the write) `history_or_min_age`.
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

/// What a person is told about a broken password rule, in English or Dutch. The API speaks
/// English; the pages pick the visitor's language.
pub fn violation_message(violation: &Violation, locale: Locale) -> String {
    let nl = locale == Locale::Nl;
    match violation {
        Violation::TooShort { min } if nl => format!("Gebruik minstens {min} tekens."),
        Violation::TooShort { min } => format!("Use at least {min} characters."),
        Violation::TooLong { max } if nl => format!("Een wachtwoord heeft hoogstens {max} tekens."),
        Violation::TooLong { max } => format!("A password can have at most {max} characters."),
        Violation::ControlCharacters if nl => "Gebruik geen tabs, regeleinden of andere \
            onzichtbare stuurtekens: die kunt u bij het aanmelden niet intypen."
            .to_owned(),
        Violation::ControlCharacters => "Do not use tabs, line breaks or other invisible control \
            characters: they cannot be typed when you sign in."
            .to_owned(),
        Violation::Complexity if nl => "Gebruik minstens drie van deze soorten tekens: \
            hoofdletters, kleine letters, cijfers, symbolen (zoals ! # of %) en letters uit \
            schriften zonder hoofdletters."
            .to_owned(),
        Violation::Complexity => "Use at least three of these: capital letters, small letters, \
            digits, symbols (such as ! # or %), and letters from scripts without capitals."
            .to_owned(),
        Violation::ContainsAccountName if nl => {
            "Gebruik uw gebruikersnaam niet in het wachtwoord.".to_owned()
        }
        Violation::ContainsAccountName => "Do not use your username in the password.".to_owned(),
        Violation::ContainsDisplayName if nl => {
            "Gebruik geen deel van uw naam in het wachtwoord.".to_owned()
        }
        Violation::ContainsDisplayName => {
            "Do not use any part of your name in the password.".to_owned()
        }
        Violation::Banned if nl => "Dit wachtwoord is gebouwd op een veelgebruikt wachtwoord \
            of woord; cijfers, symbolen of gelijkende tekens eromheen verbergen dat niet. Voeg \
            meer eigen woorden toe of kies een ander wachtwoord."
            .to_owned(),
        Violation::Banned => "This password is built on a commonly used password or word; \
            digits, symbols or look-alike letters around it don't hide that. Add more words of \
            your own, or choose another."
            .to_owned(),
        Violation::TooWeak { .. } if nl => "Dit wachtwoord is te makkelijk te raden. Maak het \
            langer, bijvoorbeeld met een paar woorden die niets met elkaar te maken hebben."
            .to_owned(),
        Violation::TooWeak { .. } => "This password is too easy to guess. Make it longer, for \
            instance with a few words that have nothing to do with each other."
            .to_owned(),
        Violation::HistoryOrMinAge { history, min_age } => {
            let history = match (*history, nl) {
                (0, _) => None,
                (1, false) => Some("it may be your previous password".to_owned()),
                (1, true) => Some("misschien is het uw vorige wachtwoord".to_owned()),
                (n, false) => Some(format!("it may be one of your last {n} passwords")),
                (n, true) => Some(format!(
                    "misschien is het een van uw laatste {n} wachtwoorden"
                )),
            };
            let age = (!min_age.is_zero()).then(|| {
                let age = span(*min_age, locale);
                if nl {
                    format!("uw wachtwoord is minder dan {age} geleden gewijzigd")
                } else {
                    format!("your password was changed less than {age} ago")
                }
            });
            let reasons = match (history, age) {
                (Some(h), Some(a)) if nl => format!(": {h}, of {a}"),
                (Some(h), Some(a)) => format!(": {h}, or {a}"),
                (Some(one), None) | (None, Some(one)) => format!(": {one}"),
                (None, None) => String::new(),
            };
            if nl {
                format!(
                    "Het domein weigert dit wachtwoord, hoewel het aan de vooraf controleerbare \
                     regels voldoet{reasons}. Kies een ander wachtwoord."
                )
            } else {
                format!(
                    "The domain refused this password, although it meets the rules that can be \
                     checked in advance{reasons}. Choose another password."
                )
            }
        }
    }
}

/// "2 days", "1 uur", "30 minutes": a policy interval for a person, rounded up.
fn span(d: std::time::Duration, locale: Locale) -> String {
    let minutes = d.as_secs().div_ceil(60).max(1);
    let (n, en, nl) = if minutes % (24 * 60) == 0 {
        let n = minutes / (24 * 60);
        (
            n,
            if n == 1 { "day" } else { "days" },
            if n == 1 { "dag" } else { "dagen" },
        )
    } else if minutes >= 60 {
        let n = minutes.div_ceil(60);
        (n, if n == 1 { "hour" } else { "hours" }, "uur")
    } else {
        let n = minutes;
        let nl = if n == 1 { "minuut" } else { "minuten" };
        (n, if n == 1 { "minute" } else { "minutes" }, nl)
    };
    match locale {
        Locale::Nl => format!("{n} {nl}"),
        Locale::En => format!("{n} {en}"),
    }
}

/// Attached to error responses so the logging middleware can record what the client is not told.
#[derive(Clone, Debug)]
pub struct ErrorCause(pub String);

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
            },
        }
    }

    /// What a person is told. Directory and storage details stay in the log.
    pub fn message(&self) -> String {
        match self {
            ApiError::LicenceRequired(e) => e.to_string(),
            ApiError::NotFound => "There is nothing at this address.".to_owned(),
            ApiError::BadRequest(m) => m.clone(),
            ApiError::Http(status) => match *status {
                StatusCode::PAYLOAD_TOO_LARGE => "The request body is too large.".to_owned(),
                StatusCode::METHOD_NOT_ALLOWED => {
                    "This address does not take that method.".to_owned()
                }
                StatusCode::SERVICE_UNAVAILABLE => {
                    "The request took too long. Please try again in a minute.".to_owned()
                }
                s if s.is_server_error() => "Something went wrong. Please try again.".to_owned(),
                _ => "The request is not valid.".to_owned(),
            },
            ApiError::Directory(DirectoryError::PolicyViolation { .. }) => {
                "The new password does not meet the domain's password policy. Choose another one."
                    .to_owned()
            }
            ApiError::Directory(DirectoryError::Unavailable { .. }) | ApiError::Store(_) => {
                "The service cannot reach the directory or its database right now. Please try \
                 again in a minute."
                    .to_owned()
            }
            ApiError::Directory(DirectoryError::WriteUnconfirmed { .. }) => {
                "The directory stopped answering while the change was being written, so it may \
                 or may not have been made. In a few minutes, try signing in (with the new \
                 password, if you chose one); if that does not work, try again."
                    .to_owned()
            }
            ApiError::Directory(_) => {
                "The directory refused the operation. Please contact the helpdesk.".to_owned()
            }
            ApiError::Flow(FlowError::InvalidCode { remaining_attempts }) => {
                match remaining_attempts {
                    0 => "The code is wrong or has expired, and no attempts are left: start again."
                        .to_owned(),
                    1 => "The code is wrong or has expired. 1 attempt left.".to_owned(),
                    n => format!("The code is wrong or has expired. {n} attempts left."),
                }
            }
            ApiError::Flow(FlowError::PasswordRejected(broken)) => broken
                .iter()
                .map(|v| violation_message(v, Locale::En))
                .collect::<Vec<_>>()
                .join(" "),
            ApiError::Flow(FlowError::Throttled { retry_after }) => format!(
                "Too many attempts. Try again in {} minutes, or contact the helpdesk.",
                retry_after.as_secs().div_ceil(60)
            ),
            ApiError::Flow(FlowError::SignInThrottled { retry_after }) => format!(
                "Too many failed sign-ins with this name. Try again in {} minutes. If you forgot \
                 your password or your account is locked, reset or unlock it at /reset.",
                retry_after.as_secs().div_ceil(60)
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
             less than 1 day ago. Choose another password."
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
        assert_eq!(span(Duration::from_secs(86_400), Locale::En), "1 day");
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
