//! `server.startup_wait`: how `serve` waits, bounded, for what may come up after it. In a
//! container the DC's own container writes the files the service reads and takes minutes to
//! provision the domain; an engine that does not order starts by health starts the service at
//! once, which without a wait would exit and be restarted over and over.
//!
//! One wait covers two phases: the files the configuration names (re-read until they exist), then
//! one DC taking the service account's bind. Files still missing at the limit stop the start with
//! the usual configuration error; a DC still down at the limit does not (the service copes with
//! DCs that are down, and `/readyz` tells).

use std::time::{Duration, Instant};

use crate::config::{Config, ConfigError, Sources};
use crate::domain::directory::{DcStatus, Directory, DirectoryError};

/// How often a wait that goes on says so.
const NOTE_EVERY: Duration = Duration::from_secs(10);
/// How often the files are looked for again.
const FILES_EVERY: Duration = Duration::from_secs(1);
/// How often the DCs are tried again: each try is a TLS handshake and a bind per DC.
const DC_EVERY: Duration = Duration::from_secs(2);

/// The bound of the whole wait, counted from the process's start.
#[derive(Clone, Copy, Debug)]
pub struct StartupWait {
    started: Instant,
    limit: Duration,
}

impl StartupWait {
    pub fn new(started: Instant, limit: Duration) -> Self {
        Self { started, limit }
    }

    pub fn limit(&self) -> Duration {
        self.limit
    }

    pub fn remaining(&self, now: Instant) -> Duration {
        (self.started + self.limit).saturating_duration_since(now)
    }
}

/// What to do after an attempt failed.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// The limit is reached.
    GiveUp,
    /// Try again, first writing the line given, if any.
    Retry(Option<Note>),
}

#[derive(Debug, PartialEq, Eq)]
pub enum Note {
    /// The first failure: the wait begins.
    Begins,
    /// The wait goes on, this long after it began.
    Still(Duration),
}

/// One phase of the wait: when it began and when it last said so.
#[derive(Debug, Default)]
pub struct Pace {
    began: Option<Instant>,
    noted: Option<Instant>,
}

impl Pace {
    pub fn after_failure(&mut self, wait: &StartupWait, now: Instant) -> Step {
        if wait.remaining(now).is_zero() {
            return Step::GiveUp;
        }
        let began = *self.began.get_or_insert(now);
        match self.noted {
            None => {
                self.noted = Some(now);
                Step::Retry(Some(Note::Begins))
            }
            Some(noted) if now.duration_since(noted) >= NOTE_EVERY => {
                self.noted = Some(now);
                Step::Retry(Some(Note::Still(now.duration_since(began))))
            }
            Some(_) => Step::Retry(None),
        }
    }

    /// How long the phase has waited; `None` if it never had to.
    pub fn waited(&self, now: Instant) -> Option<Duration> {
        self.began.map(|began| now.duration_since(began))
    }
}

/// The configuration, waiting (within `server.startup_wait`, counted from `started`) while the
/// only problems are files that do not exist yet. Logging is not set up before a configuration
/// loads, so the lines go to standard error as plain text, like the configuration's errors.
pub fn load_config(
    sources: &Sources,
    started: Instant,
) -> Result<(Config, StartupWait), ConfigError> {
    let mut pace = Pace::default();
    loop {
        let error = match Config::load(sources) {
            Ok(config) => {
                if let Some(waited) = pace.waited(Instant::now()) {
                    eprintln!(
                        "the configuration's files appeared after {} s",
                        waited.as_secs()
                    );
                }
                let wait = StartupWait::new(started, config.server.startup_wait);
                return Ok((config, wait));
            }
            Err(error) => error,
        };
        let Some(missing) = error.missing_files() else {
            return Err(error);
        };
        // No configuration loaded, so the limit is the one the layers give.
        let wait = StartupWait::new(started, error.startup_wait);
        let now = Instant::now();
        let Step::Retry(note) = pace.after_failure(&wait, now) else {
            return Err(error);
        };
        let files = missing
            .iter()
            .map(|(key, path)| format!("{key} ({})", path.display()))
            .collect::<Vec<_>>()
            .join(", ");
        match note {
            Some(Note::Begins) => eprintln!(
                "waiting up to {} (server.startup_wait) for files that do not exist yet: {files}",
                humantime::format_duration(wait.limit())
            ),
            Some(Note::Still(waited)) => eprintln!(
                "still waiting after {} s of {} for: {files}",
                waited.as_secs(),
                humantime::format_duration(wait.limit())
            ),
            None => {}
        }
        std::thread::sleep(FILES_EVERY.min(wait.remaining(now)));
    }
}

/// Before listening: waits until one DC takes the service account's bind (through the pool, so
/// that connection is the first one served), within what is left of the wait. Returns at the
/// limit, and at once when a DC refuses the bind: each retry with a wrong password would count
/// against the service account and could lock it out.
pub async fn wait_for_directory(directory: &dyn Directory, wait: &StartupWait) {
    if wait.limit().is_zero() {
        return;
    }
    let mut pace = Pace::default();
    let mut last: Vec<DcStatus> = Vec::new();
    loop {
        let remaining = wait.remaining(Instant::now());
        if let Ok(statuses) = tokio::time::timeout(remaining, directory.probe()).await {
            last = statuses;
        }
        let now = Instant::now();
        if let Some(dc) = last.iter().find(|dc| dc.result.is_ok()) {
            if let Some(waited) = pace.waited(now) {
                tracing::info!(
                    dc = %dc.url,
                    "a domain controller answered after {} s",
                    waited.as_secs()
                );
            }
            return;
        }
        if let Some((url, error)) = last.iter().find_map(|dc| match &dc.result {
            Err(e @ DirectoryError::ServiceBind { .. }) => Some((&dc.url, e)),
            _ => None,
        }) {
            tracing::error!(
                dc = %url,
                error = %error,
                "the domain controller refused the service account's bind: not waiting for the \
                 directory, since each retry would count against the account; starting anyway"
            );
            return;
        }
        let limit = humantime::format_duration(wait.limit());
        match pace.after_failure(wait, now) {
            Step::GiveUp => {
                let message = format!(
                    "no domain controller answered within server.startup_wait ({limit}); starting \
                     anyway, not ready until one does"
                );
                if last.is_empty() {
                    // Not one round of tries ended within the limit.
                    tracing::warn!(class = "timeout", "{message}");
                }
                for dc in &last {
                    if let Err(e) = &dc.result {
                        tracing::warn!(
                            dc = %dc.url,
                            class = failure_class(e),
                            error = %e,
                            "{message}"
                        );
                    }
                }
                return;
            }
            Step::Retry(Some(note)) => {
                let message = match note {
                    Note::Begins => {
                        format!(
                            "waiting up to {limit} (server.startup_wait) for a domain controller"
                        )
                    }
                    Note::Still(waited) => format!(
                        "still waiting after {} s of {limit} for a domain controller",
                        waited.as_secs()
                    ),
                };
                for dc in &last {
                    if let Err(e) = &dc.result {
                        tracing::info!(
                            dc = %dc.url,
                            class = failure_class(e),
                            error = %e,
                            "{message}"
                        );
                    }
                }
            }
            Step::Retry(None) => {}
        }
        tokio::time::sleep(DC_EVERY.min(wait.remaining(now))).await;
    }
}

/// The kind of a DC's failure, for the wait's log lines.
pub fn failure_class(error: &DirectoryError) -> &'static str {
    match error {
        DirectoryError::Tls { .. } => "TLS",
        DirectoryError::ServiceBind { .. } => "bind refused",
        DirectoryError::Unavailable { detail } => {
            let detail = detail.to_ascii_lowercase();
            if detail.contains("refused") {
                "refused"
            } else if detail.contains("time") {
                "timeout"
            } else {
                "unavailable"
            }
        }
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn a_wait_of_zero_gives_up_at_the_first_failure() {
        let start = Instant::now();
        let wait = StartupWait::new(start, Duration::ZERO);
        assert_eq!(Pace::default().after_failure(&wait, start), Step::GiveUp);
    }

    #[test]
    fn a_wait_notes_its_start_then_every_ten_seconds_and_ends_at_the_limit() {
        let start = Instant::now();
        let wait = StartupWait::new(start, secs(30));
        let mut pace = Pace::default();
        let at = |n| start + secs(n);
        assert_eq!(
            pace.after_failure(&wait, at(1)),
            Step::Retry(Some(Note::Begins))
        );
        assert_eq!(pace.after_failure(&wait, at(2)), Step::Retry(None));
        assert_eq!(pace.after_failure(&wait, at(10)), Step::Retry(None));
        assert_eq!(
            pace.after_failure(&wait, at(11)),
            Step::Retry(Some(Note::Still(secs(10))))
        );
        assert_eq!(pace.after_failure(&wait, at(20)), Step::Retry(None));
        assert_eq!(
            pace.after_failure(&wait, at(22)),
            Step::Retry(Some(Note::Still(secs(21))))
        );
        assert_eq!(pace.waited(at(25)), Some(secs(24)));
        assert_eq!(pace.after_failure(&wait, at(30)), Step::GiveUp);
    }

    #[test]
    fn a_phase_that_never_failed_never_waited() {
        assert_eq!(Pace::default().waited(Instant::now()), None);
    }

    #[test]
    fn dc_failures_are_told_by_their_kind() {
        let unavailable = |detail: &str| DirectoryError::Unavailable {
            detail: detail.to_owned(),
        };
        assert_eq!(
            failure_class(&unavailable(
                "ldaps://127.0.0.1:1: Connection refused (os error 111)"
            )),
            "refused"
        );
        assert_eq!(
            failure_class(&unavailable("ldaps://dc1:636: no answer in time")),
            "timeout"
        );
        let tls = DirectoryError::Tls {
            url: "ldaps://dc1:636".to_owned(),
            detail: "UnknownIssuer".to_owned(),
        };
        assert_eq!(failure_class(&tls), "TLS");
    }
}
