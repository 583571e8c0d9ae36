//! Mail through the real SMTP server (aiosmtpd, STARTTLS with a certificate from the test CA),
//! read back from the Maildir it writes. [`wait_for_mail`] is how any test reads its mails.
//!
//! Tests send concurrently into one Maildir, so every test mails its own [`unique_address`] and
//! reads back only what was sent there.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use mail_parser::{MessageParser, PartType};
use secrecy::SecretString;
use sspr_bridge::config::Config;
use sspr_bridge::domain::clock::SystemClock;
use sspr_bridge::domain::locale::Locale;
use sspr_bridge::domain::notify::{Mail, MailKind, Mailer};
use sspr_bridge::domain::store::MethodKind;
use sspr_bridge::mail::{SendError, SmtpMailer};

use crate::harness::{self, env};

/// How long [`wait_for_mail`] waits for a mail to arrive.
const PATIENCE: Duration = Duration::from_secs(5);

const PUBLIC_URL: &str = "https://sspr.example.test/";

/// One mail as it landed in the Maildir, decoded.
#[derive(Debug)]
pub struct Received {
    /// The `To:` address.
    pub to: String,
    /// The `To:` display name, if any.
    pub to_name: Option<String>,
    pub subject: String,
    /// The text/plain part.
    pub text: String,
    /// The text/html part.
    pub html: String,
    /// The whole message as stored, headers included.
    pub raw: String,
}

impl Received {
    /// The code of a code mail: the line of the text part that is nothing but 8 digits.
    pub fn code_in(&self) -> Option<String> {
        let code = self
            .text
            .lines()
            .map(str::trim)
            .find(|l| l.len() == 8 && l.bytes().all(|b| b.is_ascii_digit()))?;
        harness::remember_secret("code", code);
        Some(code.to_owned())
    }

    /// What a code or password mail shows in large monospace (its HTML part has one such span):
    /// the line of the text part that the span holds.
    fn shown_value(&self) -> Option<&str> {
        let at = self.html.find("monospace;")?;
        let start = at + self.html[at..].find("\">")? + 2;
        let shown = self.html[start..start + self.html[start..].find("</span>")?].trim();
        self.text.lines().map(str::trim).find(|l| *l == shown)
    }

    /// The first header called `name` (any case), unfolded and trimmed.
    pub fn header(&self, name: &str) -> Option<String> {
        let message = MessageParser::default().parse(self.raw.as_bytes())?;
        message
            .header_raw(name)
            .map(|v| v.split_whitespace().collect::<Vec<_>>().join(" "))
    }
}

/// An address no other test (or earlier run) mails: `<random>@mail.test`.
pub fn unique_address() -> String {
    format!("{}@mail.test", harness::unique_name("rcpt"))
}

/// The `[smtp]` section for the test server, to layer onto [`harness::config`].
pub fn smtp_section() -> String {
    format!(
        "[smtp]\nhost = {host:?}\nport = {port}\ntls = \"starttls\"\nca_file = {ca:?}\n\
         from = \"sspr-bridge tests <no-reply@sspr.test>\"\n",
        host = env("SSPR_TEST_SMTP_HOST"),
        port = env("SSPR_TEST_SMTP_PORT"),
        ca = env("SSPR_TEST_CA_FILE"),
    )
}

/// Waits (up to 5 s) for a mail to `to` and takes it out of the Maildir, so the next call for
/// the same address returns the next mail, oldest first. Panics if none arrives.
pub async fn wait_for_mail(to: &str) -> Received {
    wait_for_mail_within(to, PATIENCE).await
}

/// [`wait_for_mail`], waiting up to `patience` (for a mail the outbox retries).
pub async fn wait_for_mail_within(to: &str, patience: Duration) -> Received {
    let started = Instant::now();
    loop {
        if let Some(mail) = take_mail(to) {
            return mail;
        }
        assert!(
            started.elapsed() < patience,
            "no mail to {to} arrived in {}/new within {patience:?}",
            env("SSPR_TEST_MAILDIR")
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Asserts that no mail to `to` arrives within `within`.
pub async fn assert_no_mail(to: &str, within: Duration) {
    let started = Instant::now();
    loop {
        if let Some(mail) = take_mail(to) {
            panic!("unexpected mail to {to}: {:?}", mail.subject);
        }
        if started.elapsed() >= within {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The oldest mail addressed to `to`, removed from the Maildir.
fn take_mail(to: &str) -> Option<Received> {
    let dir = PathBuf::from(env("SSPR_TEST_MAILDIR")).join("new");
    let needle = to.to_ascii_lowercase();
    let mut found: Vec<(SystemTime, PathBuf, Received)> = Vec::new();
    for entry in std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .flatten()
    {
        let path = entry.path();
        // Another test may take its own mail between listing and reading: skip what is gone.
        let Ok(bytes) = std::fs::read(&path) else {
            continue;
        };
        if !String::from_utf8_lossy(&bytes)
            .to_ascii_lowercase()
            .contains(&needle)
        {
            continue;
        }
        let Some(mail) = decode(&bytes) else {
            continue;
        };
        if mail.to.eq_ignore_ascii_case(to) {
            let modified = entry
                .metadata()
                .and_then(|m| m.modified())
                .unwrap_or(SystemTime::UNIX_EPOCH);
            found.push((modified, path, mail));
        }
    }
    found.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
    let (_, path, mail) = found.into_iter().next()?;
    let _ = std::fs::remove_file(path);
    Some(mail)
}

fn decode(bytes: &[u8]) -> Option<Received> {
    let message = MessageParser::default().parse(bytes)?;
    let to = message.to()?.first()?;
    let part = |html: bool| {
        message.parts.iter().find_map(|p| match &p.body {
            PartType::Text(t) if !html => Some(t.to_string()),
            PartType::Html(h) if html => Some(h.to_string()),
            _ => None,
        })
    };
    let received = Received {
        to: to.address()?.to_owned(),
        to_name: to.name().map(str::to_owned),
        subject: message.subject().unwrap_or_default().to_owned(),
        text: part(false).unwrap_or_default(),
        html: part(true).unwrap_or_default(),
        raw: String::from_utf8_lossy(bytes).into_owned(),
    };
    // Codes and temporary passwords reach tests this way, also those a test reads itself.
    match received.shown_value() {
        Some(code) if code.bytes().all(|b| b.is_ascii_digit()) => {
            harness::remember_secret("code", code);
        }
        Some(password) => harness::remember_secret("password", password),
        None => {}
    }
    Some(received)
}

/// The test DC's configuration with the test SMTP server, `smtp_overrides` (TOML keys) replacing
/// its settings.
fn config(smtp_overrides: &str) -> Config {
    let mut doc: toml::Table = toml::from_str(&smtp_section()).unwrap();
    let overrides: toml::Table = toml::from_str(smtp_overrides).unwrap();
    doc["smtp"].as_table_mut().unwrap().extend(overrides);
    let server: toml::Table = toml::from_str(&format!("public_url = {PUBLIC_URL:?}")).unwrap();
    doc.insert("server".to_owned(), server.into());
    harness::config(&toml::to_string(&doc).unwrap())
}

fn mailer(config: &Config) -> SmtpMailer {
    SmtpMailer::new(
        config.smtp.as_ref().expect("[smtp] configured"),
        &config.server.public_url,
        Some("Sspr Test Org".to_owned()),
        Arc::new(SystemClock),
    )
    .expect("mailer")
}

fn code() -> String {
    let code = format!("{:08}", rand::random::<u32>() % 100_000_000);
    harness::remember_secret("code", &code);
    code
}

/// A temporary password like the helpdesk's: letters, digits and symbols, none that HTML escapes
/// (so it reads back from the HTML part as is), never a line of digits alone.
fn password() -> String {
    let password = format!("Tp#{:016x}!Zq", rand::random::<u64>());
    harness::remember_secret("password", &password);
    password
}

/// Each kind, with its subject in English, Dutch, German and French.
fn every_kind(code: &str, password: &str) -> Vec<(MailKind, [&'static str; 4])> {
    let code = || SecretString::from(code.to_owned());
    vec![
        (
            MailKind::EnrollmentCode { code: code() },
            [
                "Confirm your email address",
                "Bevestig uw e-mailadres",
                "Bestätigen Sie Ihre E-Mail-Adresse",
                "Confirmez votre adresse e-mail",
            ],
        ),
        (
            MailKind::ResetCode { code: code() },
            [
                "Your verification code",
                "Uw verificatiecode",
                "Ihr Überprüfungscode",
                "Votre code de vérification",
            ],
        ),
        (
            MailKind::PasswordReset,
            [
                "Your password was reset",
                "Uw wachtwoord is opnieuw ingesteld",
                "Ihr Kennwort wurde zurückgesetzt",
                "Votre mot de passe a été réinitialisé",
            ],
        ),
        (
            MailKind::AccountUnlocked,
            [
                "Your account was unlocked",
                "Uw account is gedeblokkeerd",
                "Ihr Konto wurde entsperrt",
                "Votre compte a été déverrouillé",
            ],
        ),
        (
            MailKind::MethodAdded {
                method: MethodKind::Totp,
                name: None,
            },
            [
                "A verification method was added to your account",
                "Er is een verificatiemethode aan uw account toegevoegd",
                "Ihrem Konto wurde eine Überprüfungsmethode hinzugefügt",
                "Une méthode de vérification a été ajoutée à votre compte",
            ],
        ),
        (
            MailKind::MethodRemoved {
                method: MethodKind::Email,
                name: None,
            },
            [
                "A verification method was removed from your account",
                "Er is een verificatiemethode van uw account verwijderd",
                "Eine Überprüfungsmethode wurde aus Ihrem Konto entfernt",
                "Une méthode de vérification a été supprimée de votre compte",
            ],
        ),
        (
            MailKind::HelpdeskCode { code: code() },
            [
                "Code for your call with the helpdesk",
                "Code voor uw gesprek met de helpdesk",
                "Code für Ihren Anruf beim Helpdesk",
                "Code pour votre appel au support informatique",
            ],
        ),
        (
            MailKind::TemporaryPassword {
                password: SecretString::from(password.to_owned()),
            },
            [
                "Your temporary password",
                "Uw tijdelijke wachtwoord",
                "Ihr temporäres Kennwort",
                "Votre mot de passe temporaire",
            ],
        ),
        (
            MailKind::HelpdeskPasswordReset,
            [
                "Your password was reset by the helpdesk",
                "Uw wachtwoord is opnieuw ingesteld door de helpdesk",
                "Ihr Kennwort wurde vom Helpdesk zurückgesetzt",
                "Votre mot de passe a été réinitialisé par le support informatique",
            ],
        ),
        (
            MailKind::HelpdeskUnlocked,
            [
                "Your account was unlocked by the helpdesk",
                "Uw account is gedeblokkeerd door de helpdesk",
                "Ihr Konto wurde vom Helpdesk entsperrt",
                "Votre compte a été déverrouillé par le support informatique",
            ],
        ),
        (
            MailKind::HelpdeskRegistrationsCleared,
            [
                "Your verification methods were removed by the helpdesk",
                "Uw verificatiemethoden zijn verwijderd door de helpdesk",
                "Ihre Überprüfungsmethoden wurden vom Helpdesk entfernt",
                "Vos méthodes de vérification ont été supprimées par le support informatique",
            ],
        ),
    ]
}

#[tokio::test]
async fn every_mail_arrives_over_starttls_in_every_language_with_text_and_html() {
    let config = config("");
    let mailer = mailer(&config);
    let code = code();
    let password = password();
    let mut sent = Vec::new();
    for (language, locale) in ["en", "nl", "de", "fr"].into_iter().enumerate() {
        for (kind, subjects) in every_kind(&code, &password) {
            let to = unique_address();
            let mail = Mail {
                to: to.clone(),
                display_name: Some("Test <Ontvanger> & Co".to_owned()),
                locale: Locale::of(locale),
                kind: kind.clone(),
            };
            // Mailer, as the flows call it; success means the server took the mail after
            // STARTTLS, verified against the test CA (the transport refuses to go on without).
            mailer
                .send(&mail)
                .await
                .unwrap_or_else(|e| panic!("{kind:?} in {locale}: {e}"));
            sent.push((to, kind, subjects[language]));
        }
    }
    for (to, kind, subject) in sent {
        let got = wait_for_mail(&to).await;
        assert_eq!(got.subject, subject, "{kind:?}");
        assert_eq!(got.to_name.as_deref(), Some("Test <Ontvanger> & Co"));
        assert!(!got.text.is_empty() && !got.html.is_empty(), "{}", got.raw);
        assert!(got.text.contains(PUBLIC_URL), "{}", got.text);
        assert!(
            got.html.contains(&format!("<a href=\"{PUBLIC_URL}\"")),
            "{}",
            got.html
        );
        assert!(
            got.html.contains("Test &lt;Ontvanger&gt; &amp; Co"),
            "{}",
            got.html
        );
        assert!(got.text.contains("Sspr Test Org"), "{}", got.text);
        let is_code = matches!(
            kind,
            MailKind::EnrollmentCode { .. }
                | MailKind::ResetCode { .. }
                | MailKind::HelpdeskCode { .. }
        );
        if is_code {
            assert_eq!(
                got.code_in().as_deref(),
                Some(code.as_str()),
                "{}",
                got.text
            );
            assert!(got.html.contains(&code), "{}", got.html);
        } else {
            assert_eq!(got.code_in(), None, "{}", got.text);
            assert!(!got.raw.contains(&code), "{}", got.raw);
        }
        // The password: alone on its line in the text part, in the HTML part, in no other mail.
        if matches!(kind, MailKind::TemporaryPassword { .. }) {
            assert!(
                got.text.lines().any(|l| l.trim() == password),
                "{}",
                got.text
            );
            assert!(
                got.html.contains(&format!(">{password}</span>")),
                "{}",
                got.html
            );
        } else {
            for part in [&got.text, &got.html, &got.raw] {
                assert!(!part.contains(&password), "{kind:?}: {part}");
            }
        }
        if matches!(kind, MailKind::HelpdeskRegistrationsCleared) {
            let register = format!("{PUBLIC_URL}register");
            assert!(got.text.contains(&register), "{}", got.text);
            assert!(
                got.html.contains(&format!("<a href=\"{register}\"")),
                "{}",
                got.html
            );
        }
        assert_eq!(
            got.header("Auto-Submitted").as_deref(),
            Some("auto-generated")
        );
        assert!(
            got.header("Message-ID")
                .is_some_and(|id| id.ends_with("@sspr.test>"))
        );
        assert!(got.header("Date").is_some());
        assert_eq!(
            got.header("From").as_deref(),
            Some("\"sspr-bridge tests\" <no-reply@sspr.test>")
        );
        // aiosmtpd records the envelope recipient.
        assert_eq!(got.header("X-RcptTo").as_deref(), Some(to.as_str()));
    }
}

#[tokio::test]
async fn successive_mails_to_one_address_are_read_back_in_order() {
    let config = config("");
    let mailer = mailer(&config);
    let to = unique_address();
    let first = code();
    for kind in [
        MailKind::ResetCode {
            code: SecretString::from(first.clone()),
        },
        MailKind::PasswordReset,
    ] {
        let mail = Mail {
            to: to.clone(),
            display_name: None,
            locale: Locale::En,
            kind,
        };
        mailer.send(&mail).await.unwrap();
    }
    assert_eq!(wait_for_mail(&to).await.code_in(), Some(first));
    assert_eq!(wait_for_mail(&to).await.subject, "Your password was reset");
    assert_no_mail(&to, Duration::from_millis(300)).await;
}

#[tokio::test]
async fn a_server_certificate_from_another_ca_is_a_tls_error_and_nothing_is_sent() {
    let config = config(&format!("ca_file = {:?}\n", env("SSPR_TEST_OTHER_CA_FILE")));
    let to = unique_address();
    let code = code();
    let mail = Mail {
        to: to.clone(),
        display_name: None,
        locale: Locale::En,
        kind: MailKind::ResetCode {
            code: SecretString::from(code.clone()),
        },
    };
    let err = mailer(&config).deliver(&mail).await.unwrap_err();
    assert!(matches!(err, SendError::Tls { .. }), "{err:?}");
    assert!(!err.is_permanent());
    let message = err.to_string();
    assert!(message.contains("certificate"), "{message}");
    assert!(!message.contains(&code), "{message}");
    assert_no_mail(&to, Duration::from_millis(500)).await;
}

#[tokio::test]
async fn an_unreachable_server_is_named_and_temporary() {
    let config = config("port = 1\ntimeout = \"3s\"\n");
    let code = code();
    let mail = Mail {
        to: unique_address(),
        display_name: None,
        locale: Locale::Nl,
        kind: MailKind::EnrollmentCode {
            code: SecretString::from(code.clone()),
        },
    };
    let mailer = mailer(&config);
    let err = mailer.deliver(&mail).await.unwrap_err();
    assert!(matches!(err, SendError::Unreachable { .. }), "{err:?}");
    assert!(!err.is_permanent());
    let err = Mailer::send(&mailer, &mail).await.unwrap_err();
    assert!(err.message.contains("127.0.0.1:1 "), "{err}");
    assert!(!err.message.contains(&code), "{err}");
}

/// The mail connections carry `TCP_NODELAY` (read back with getsockopt), so a message's
/// terminator does not wait for the server's delayed ACK of its body; the time per mail over a
/// reused connection is printed for docs/benchmarks.md (it is not a pass mark).
#[tokio::test]
async fn mail_connections_carry_tcp_nodelay_and_are_reused() {
    let config = config("");
    let smtp = config.smtp.as_ref().unwrap();
    let tcp = sspr_bridge::mail::connect_tcp(&smtp.host, smtp.port, smtp.timeout)
        .await
        .unwrap();
    assert!(tcp.nodelay().unwrap(), "TCP_NODELAY is not set");
    drop(tcp);

    let mailer = mailer(&config);
    let to = unique_address();
    const MAILS: u32 = 10;
    let mut reused = Duration::ZERO;
    for i in 0..MAILS {
        let mail = Mail {
            to: to.clone(),
            display_name: None,
            locale: Locale::En,
            kind: MailKind::PasswordReset,
        };
        let started = Instant::now();
        mailer.send(&mail).await.unwrap();
        if i > 0 {
            reused += started.elapsed();
        }
    }
    eprintln!(
        "one mail over a reused connection: {:.2} ms",
        reused.as_secs_f64() * 1000.0 / f64::from(MAILS - 1)
    );
    for _ in 0..MAILS {
        assert_eq!(wait_for_mail(&to).await.subject, "Your password was reset");
    }
    assert_no_mail(&to, Duration::from_millis(300)).await;
}

/// `smtp.tls = "tls"` (TLS from the first byte, port 465) on the service's own connections: the
/// certificate is checked against `smtp.ca_file` and one connection carries both mails.
#[tokio::test]
async fn implicit_tls_sends_over_one_kept_connection() {
    use std::sync::Mutex;
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

    let dir = PathBuf::from(env("SSPR_TEST_CA_FILE"))
        .parent()
        .unwrap()
        .to_owned();
    let acceptor = tokio_rustls::TlsAcceptor::from(
        sspr_bridge::tls::server_config(&dir.join("smtp.pem"), &dir.join("smtp.key")).unwrap(),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let received = Arc::new(Mutex::new((0_u32, Vec::<String>::new())));
    let log = received.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            log.lock().unwrap().0 += 1;
            let Ok(tls) = acceptor.accept(tcp).await else {
                continue;
            };
            let log = log.clone();
            tokio::spawn(async move {
                let (read, mut write) = tokio::io::split(tls);
                let mut lines = BufReader::new(read).lines();
                write.write_all(b"220 tls sink\r\n").await.unwrap();
                let mut data: Option<String> = None;
                while let Ok(Some(line)) = lines.next_line().await {
                    let reply = match &mut data {
                        Some(body) if line != "." => {
                            body.push_str(&line);
                            body.push('\n');
                            continue;
                        }
                        Some(body) => {
                            log.lock().unwrap().1.push(std::mem::take(body));
                            data = None;
                            "250 queued"
                        }
                        None if line.to_ascii_uppercase().starts_with("DATA") => {
                            data = Some(String::new());
                            "354 go ahead"
                        }
                        None => "250 ok",
                    };
                    write
                        .write_all(format!("{reply}\r\n").as_bytes())
                        .await
                        .unwrap();
                    write.flush().await.unwrap();
                }
            });
        }
    });

    let implicit = config(&format!("tls = \"tls\"\nport = {port}\n"));
    let sender = mailer(&implicit);
    for _ in 0..2 {
        let mail = Mail {
            to: unique_address(),
            display_name: None,
            locale: Locale::En,
            kind: MailKind::PasswordReset,
        };
        sender.deliver(&mail).await.unwrap();
    }
    let (connections, bodies) = received.lock().unwrap().clone();
    assert_eq!(connections, 1);
    assert_eq!(bodies.len(), 2);
    assert!(
        bodies[1].contains("Subject: Your password was reset"),
        "{}",
        bodies[1]
    );

    let other_ca = config(&format!(
        "tls = \"tls\"\nport = {port}\nca_file = {:?}\n",
        env("SSPR_TEST_OTHER_CA_FILE")
    ));
    let mail = Mail {
        to: unique_address(),
        display_name: None,
        locale: Locale::En,
        kind: MailKind::PasswordReset,
    };
    let err = mailer(&other_ca).deliver(&mail).await.unwrap_err();
    assert!(matches!(err, SendError::Tls { .. }), "{err:?}");
    assert_eq!(
        received.lock().unwrap().1.len(),
        2,
        "nothing sent past a bad certificate"
    );
}
