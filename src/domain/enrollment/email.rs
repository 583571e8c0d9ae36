//! Adding an email address: the code mailed to it, its quota and its confirmation.

use secrecy::SecretString;

use super::Enrollment;
use crate::domain::deps::Client;
use crate::domain::error::FlowError;
use crate::domain::notify::MailKind;
use crate::domain::secrets::{self, normalise_code};
use crate::domain::store::{
    CodePurpose, EnrolledMethod, MethodKind, PendingCode, Person, Session, new_method_id,
};
use crate::domain::throttle::Limit;

impl Enrollment<'_> {
    /// Mails a code to `address`; the address becomes active once the code is typed back.
    pub async fn begin_email(
        &self,
        token: &str,
        address: &str,
        client: &Client,
    ) -> Result<(), FlowError> {
        let d = self.deps;
        let session = self.changing_session(token, client).await?;
        self.email_allowed(&session).await?;
        let address = address.trim();
        if address.len() > 254 || address.parse::<lettre::Address>().is_err() {
            return Err(FlowError::InvalidInput(
                "That does not look like an email address.".to_owned(),
            ));
        }
        if d.mailer.is_none() {
            return Err(FlowError::MailUnavailable);
        }
        self.email_quota(&session, client).await?;
        let code = secrets::new_email_code();
        let now = d.now();
        let purpose = CodePurpose::EnrollEmail;
        let pending = PendingCode {
            purpose,
            subject: session.token_hash.clone(),
            code_hash: d
                .keys
                .code_hash(purpose.as_str(), &session.token_hash, &code),
            address: address.to_owned(),
            created_at: now,
            expires_at: now + d.settings.reset.code_lifetime,
        };
        d.codes.put_code(&pending).await?;
        let mail = crate::domain::notify::Mail {
            to: address.to_owned(),
            display_name: None,
            locale: client.locale,
            kind: MailKind::EnrollmentCode {
                code: SecretString::from(code.to_string()),
            },
        };
        let who = (Some(session.user), session.sam_account_name.as_str());
        d.notifier
            .queue_code(&pending, Some(address.to_owned()), mail, who, client, None)
            .await?;
        Ok(())
    }

    pub async fn confirm_email(
        &self,
        token: &str,
        code: &str,
        client: &Client,
    ) -> Result<(), FlowError> {
        let d = self.deps;
        let session = self.changing_session(token, client).await?;
        self.email_allowed(&session).await?;
        let purpose = CodePurpose::EnrollEmail;
        let pending = d.codes.code(purpose, &session.token_hash).await?;
        let now = d.now();
        let valid = match (&pending, normalise_code(code, 8)) {
            (Some(p), Some(code)) => {
                p.expires_at > now
                    && d.keys.code_matches(
                        purpose.as_str(),
                        &session.token_hash,
                        &code,
                        &p.code_hash,
                    )
            }
            _ => false,
        };
        let Some(pending) = pending.filter(|_| valid) else {
            return Err(self.wrong_code(&session, MethodKind::Email, client).await?);
        };
        // Single use: of two requests racing with the right code, one wins.
        if !d
            .codes
            .take_code(purpose, &session.token_hash, &pending.code_hash)
            .await?
        {
            return Err(FlowError::InvalidCode {
                remaining_attempts: 0,
            });
        }
        // Read before it is overwritten: the replaced address is told of its replacement.
        let replaced = d
            .confirmed_email(&session.user)
            .await?
            .filter(|old| !old.eq_ignore_ascii_case(&pending.address));
        d.registrations
            .put_method(
                &session.user,
                &session.sam_account_name,
                &EnrolledMethod {
                    id: new_method_id(),
                    kind: MethodKind::Email,
                    name: None,
                    address: Some(pending.address),
                    secret_sealed: None,
                    last_step: None,
                    confirmed_at: Some(now),
                    created_at: now,
                    last_used_at: None,
                },
            )
            .await?;
        self.stepped_up(&session).await?;
        self.method_added(&session, MethodKind::Email, None, replaced, client)
            .await
    }

    async fn email_quota(&self, session: &Session, client: &Client) -> Result<(), FlowError> {
        let throttle = &self.deps.throttle;
        let quota = throttle.code_mails(Person::User(session.user), Limit::EmailSends);
        let user = Some((session.user, session.sam_account_name.as_str()));
        throttle.take(client, quota, user).await
    }
}
