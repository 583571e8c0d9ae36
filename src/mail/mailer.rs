//! [`SmtpMailer`]: the [`Mailer`] the flows use, rendering each mail and sending it over the
//! SMTP transport.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use lettre::Message;
use lettre::message::header::{HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart};
use url::Url;

use super::templates::{Templates, display_name};
use super::{MailError, SendError, SmtpTransport};
use crate::config::SmtpConfig;
use crate::domain::clock::Clock;
use crate::domain::notify::{self, Mail, Mailer};

pub struct SmtpMailer {
    transport: SmtpTransport,
    composer: Composer,
}

impl SmtpMailer {
    /// `public_url` is `server.public_url`: the only address links in mails point to.
    /// `organisation` names the sender in the footer (e.g. "Contoso IT"); `None` says "the
    /// password self-service". `clock` dates the mails and the notifications' "at …".
    pub fn new(
        config: &SmtpConfig,
        public_url: &Url,
        organisation: Option<String>,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, MailError> {
        Ok(Self {
            transport: SmtpTransport::new(config)?,
            composer: Composer::new(&config.from, public_url, organisation, clock)?,
        })
    }

    /// Where the mails' times are told (default UTC): pass `ui.timezone`.
    pub fn with_zone(mut self, zone: &crate::when::Zone) -> Self {
        self.composer.templates.set_zone(zone);
        self
    }

    /// How long the code mails say a code is valid (default 10 minutes): pass
    /// `reset.code_lifetime`.
    pub fn with_code_lifetime(mut self, lifetime: Duration) -> Self {
        self.composer.templates.set_code_lifetime(lifetime);
        self
    }

    /// Mail templates from `ui.templates_dir` (its `mail/` folder) where it has them.
    pub fn with_overrides(
        mut self,
        overrides: &crate::i18n::Overrides,
    ) -> Result<Self, crate::i18n::OverrideError> {
        self.composer.templates.set_overrides(overrides)?;
        Ok(self)
    }

    /// Like [`Mailer::send`], keeping whether a failure is permanent.
    pub async fn deliver(&self, mail: &Mail) -> Result<(), SendError> {
        let sent = match self.composer.compose(mail) {
            Ok(message) => self.transport.send(message).await,
            Err(e) => Err(e),
        };
        crate::metrics::mail(&mail.kind, sent.is_ok());
        sent
    }
}

#[async_trait]
impl Mailer for SmtpMailer {
    async fn send(&self, mail: &Mail) -> Result<(), notify::MailError> {
        self.deliver(mail).await.map_err(|e| notify::MailError {
            message: e.to_string(),
        })
    }
}

/// Builds the MIME message; separate from the transport so tests need no server.
struct Composer {
    templates: Templates,
    from: Mailbox,
    clock: Arc<dyn Clock>,
}

impl Composer {
    fn new(
        from: &str,
        public_url: &Url,
        organisation: Option<String>,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, MailError> {
        let from = from
            .parse()
            .map_err(|e| MailError::From(format!("{from:?}: {e}")))?;
        Ok(Self {
            templates: Templates::new(public_url, organisation),
            from,
            clock,
        })
    }

    fn compose(&self, mail: &Mail) -> Result<Message, SendError> {
        let address = mail
            .to
            .trim()
            .parse()
            .map_err(|_| SendError::InvalidRecipient)?;
        let now = self.clock.now().to_system_time();
        let rendered = self
            .templates
            .render(mail, now)
            .map_err(|e| SendError::Compose(e.to_string()))?;
        Message::builder()
            .from(self.from.clone())
            .to(Mailbox::new(display_name(mail), address))
            .subject(rendered.subject)
            .date(now)
            .message_id(Some(format!(
                "<{}@{}>",
                uuid::Uuid::new_v4().simple(),
                self.from.email.domain()
            )))
            // RFC 3834: no vacation or out-of-office replies to a machine.
            .raw_header(header("Auto-Submitted", "auto-generated"))
            // The same for Exchange, which most AD sites run and which ignores the above.
            .raw_header(header("X-Auto-Response-Suppress", "All"))
            .multipart(MultiPart::alternative_plain_html(
                rendered.text,
                rendered.html,
            ))
            .map_err(|e| SendError::Compose(e.to_string()))
    }
}

fn header(name: &'static str, value: &str) -> HeaderValue {
    HeaderValue::new(HeaderName::new_from_ascii_str(name), value.to_owned())
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    use secrecy::SecretString;

    use super::*;
    use crate::domain::clock::Timestamp;
    use crate::domain::locale::Locale;
    use crate::domain::notify::MailKind;

    struct FixedClock(SystemTime);

    impl Clock for FixedClock {
        fn now(&self) -> Timestamp {
            Timestamp::from_system_time(self.0)
        }
    }

    fn composer() -> Composer {
        Composer::new(
            "IT Service Desk <no-reply@example.com>",
            &Url::parse("https://sspr.example.com/").unwrap(),
            None,
            Arc::new(FixedClock(UNIX_EPOCH + Duration::from_secs(1_741_945_267))),
        )
        .unwrap()
    }

    fn mail(to: &str, display_name: Option<&str>) -> Mail {
        Mail {
            to: to.to_owned(),
            display_name: display_name.map(str::to_owned),
            locale: Locale::Nl,
            kind: MailKind::ResetCode {
                code: SecretString::from("40718263"),
            },
        }
    }

    fn formatted(mail: &Mail) -> String {
        String::from_utf8(composer().compose(mail).unwrap().formatted()).unwrap()
    }

    fn header_block(message: &str) -> &str {
        message.split("\r\n\r\n").next().unwrap()
    }

    #[test]
    fn headers_say_who_when_and_that_a_machine_sent_it() {
        let message = formatted(&mail("jan@example.com", Some("Jan de Vries")));
        let headers = header_block(&message);
        for expected in [
            "From: \"IT Service Desk\" <no-reply@example.com>\r\n",
            "To: \"Jan de Vries\" <jan@example.com>\r\n",
            "Subject: Uw verificatiecode\r\n",
            "Date: Fri, 14 Mar 2025 09:41:07 +0000\r\n",
            "Auto-Submitted: auto-generated\r\n",
            "X-Auto-Response-Suppress: All\r\n",
            "Content-Type: multipart/alternative;",
        ] {
            assert!(headers.contains(expected), "{expected:?} in\n{headers}");
        }
        let id = headers
            .lines()
            .find_map(|l| l.strip_prefix("Message-ID: "))
            .expect("Message-ID");
        assert!(id.starts_with('<') && id.ends_with("@example.com>"), "{id}");
        assert!(message.contains("Content-Type: text/plain; charset=utf-8"));
        assert!(message.contains("Content-Type: text/html; charset=utf-8"));
    }

    #[test]
    fn a_display_name_cannot_add_headers() {
        let message = formatted(&mail("jan@example.com", Some("Eve\r\nBcc: x@evil.test")));
        let headers = header_block(&message);
        assert!(!headers.contains("\r\nBcc:"), "{headers}");
        let to = headers.lines().find(|l| l.starts_with("To: ")).unwrap();
        assert!(to.ends_with(" <jan@example.com>"), "{headers}");
    }

    #[test]
    fn an_invalid_recipient_is_a_permanent_error_without_the_body() {
        let err = composer()
            .compose(&mail("not an address", None))
            .unwrap_err();
        assert!(matches!(err, SendError::InvalidRecipient));
        assert!(err.is_permanent());
        assert!(!err.to_string().contains("40718263"));
    }

    #[test]
    fn a_from_that_is_no_address_is_refused_at_start() {
        let err = Composer::new(
            "nobody",
            &Url::parse("https://sspr.example.com/").unwrap(),
            None,
            Arc::new(FixedClock(UNIX_EPOCH)),
        )
        .err()
        .expect("refused");
        assert!(err.to_string().contains("smtp.from"), "{err}");
    }
}
