//! Stepping a registration session up: the rule that says when it must, and proving a method
//! or redeeming a registration code to do it.

use sha2::{Digest, Sha256};

use super::Enrollment;
use crate::domain::audit::{Audit, AuditKind, Outcome};
use crate::domain::deps::Client;
use crate::domain::error::FlowError;
use crate::domain::notify::MailKind;
use crate::domain::registration_code;
use crate::domain::store::{CodePurpose, MethodKind, ResetFlow, Session};
use crate::domain::verification::Subject;

/// A way for a registration session to step up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StepUpMethod {
    Totp,
    Email,
    /// A one-time code from the helpdesk or `sspr-bridge registration-code`.
    RegistrationCode,
}

impl StepUpMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            StepUpMethod::Totp => "totp",
            StepUpMethod::Email => "email",
            StepUpMethod::RegistrationCode => "registration_code",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Self::Totp, Self::Email, Self::RegistrationCode]
            .into_iter()
            .find(|m| m.as_str() == s)
    }
}

/// The step-up rule (as in Entra's combined registration). `confirmed`: the user's confirmed
/// methods; `trusted`: the request comes from `registration.allowed_networks`. Returns the methods
/// that can step the session up, and whether it must before it changes anything.
///
/// The first method needs only the AD password, from a trusted network; from anywhere else it
/// needs a registration code, so a phished password alone never gets a method onto an account.
/// Once a method exists, every new session proves one (or a registration code) first. A session
/// that has already proven one (a step-up, or a method it confirmed itself) goes on freely.
pub fn step_up_rule(
    confirmed: &[MethodKind],
    stepped_up: bool,
    trusted: bool,
) -> (Vec<StepUpMethod>, bool) {
    let mut methods: Vec<StepUpMethod> = MethodKind::ALL
        .into_iter()
        .filter(|kind| confirmed.contains(kind))
        .filter_map(|kind| match kind {
            MethodKind::Totp => Some(StepUpMethod::Totp),
            MethodKind::Email => Some(StepUpMethod::Email),
            // A passkey makes a step-up required but cannot give one here yet: a registration
            // code does.
            MethodKind::Passkey => None,
        })
        .collect();
    methods.push(StepUpMethod::RegistrationCode);
    let required = !stepped_up && (!confirmed.is_empty() || !trusted);
    (methods, required)
}

/// The id of a session's step-up verification: derived from the session, so each session proves
/// the user afresh and its wrong codes end it.
fn step_up_id(session_hash: &[u8]) -> Vec<u8> {
    let mut hasher = Sha256::new();
    hasher.update(b"sspr-bridge/enrollment-step-up/v1");
    hasher.update(session_hash);
    hasher.finalize().to_vec()
}

impl Enrollment<'_> {
    /// The session's step-up verification, created on first use. It lives as long as the
    /// session; once wrong codes have ended it, so does the session.
    async fn step_up_subject(
        &self,
        session: &Session,
        client: &Client,
    ) -> Result<Subject, FlowError> {
        let d = self.deps;
        let id_hash = step_up_id(&session.token_hash);
        let purpose = CodePurpose::StepUpEmail;
        if let Some(subject) = Subject::live(d, id_hash.clone(), purpose).await? {
            return Ok(subject);
        }
        if d.flows.flow(&id_hash).await?.is_some() {
            d.sessions.delete_session(&session.token_hash).await?;
            return Err(FlowError::InvalidCode {
                remaining_attempts: 0,
            });
        }
        d.flows
            .create_flow(&ResetFlow {
                id_hash: id_hash.clone(),
                user: Some(session.user),
                login: session.sam_account_name.to_lowercase(),
                sam_account_name: Some(session.sam_account_name.clone()),
                methods_required: 1,
                verified_totp_at: None,
                verified_email_at: None,
                verified_passkey_at: None,
                failures: 0,
                created_at: d.now(),
                expires_at: session.expires_at,
                finished_at: None,
                dc: None,
                locale: client.locale,
            })
            .await?;
        Subject::live(d, id_hash, purpose)
            .await?
            .ok_or(FlowError::FlowNotFound)
    }

    /// Mails a step-up code to the user's confirmed address. A user without one gets no mail,
    /// and no code they typed can match.
    pub async fn send_step_up_code(&self, token: &str, client: &Client) -> Result<(), FlowError> {
        let session = self.session(token).await?;
        let subject = self.step_up_subject(&session, client).await?;
        subject
            .send_code(self.deps, |code| MailKind::ResetCode { code }, client, None)
            .await
    }

    /// Proves an existing method (or redeems a registration code), so this session may change
    /// the user's methods. Same rules as a reset verification: codes are spent once, wrong ones
    /// end the verification (and the session) and count against the user. The method used counts
    /// as re-confirmed.
    pub async fn step_up(
        &self,
        token: &str,
        method: StepUpMethod,
        code: &str,
        client: &Client,
    ) -> Result<(), FlowError> {
        let d = self.deps;
        let session = self.session(token).await?;
        let subject = self.step_up_subject(&session, client).await?;
        let proved = match method {
            StepUpMethod::Totp => Some(MethodKind::Totp),
            StepUpMethod::Email => Some(MethodKind::Email),
            StepUpMethod::RegistrationCode => None,
        };
        let checked = match proved {
            Some(kind) => subject.verify(d, kind, code, client, None).await.map(drop),
            None => self.redeem(&subject, &session, code, client).await,
        };
        if let Err(e) = checked {
            if matches!(
                e,
                FlowError::InvalidCode {
                    remaining_attempts: 0
                }
            ) {
                // Wrong codes ended the step-up, and with it the session: sign in again.
                d.sessions.delete_session(&session.token_hash).await?;
            }
            return Err(e);
        }
        if let Some(kind) = proved {
            d.registrations
                .reconfirm_method(&session.user, kind, d.now())
                .await?;
        }
        self.stepped_up(&session).await?;
        d.audit
            .record(
                client,
                Audit {
                    event: AuditKind::StepUp,
                    outcome: Outcome::Success,
                    user: Some(session.user),
                    sam_account_name: Some(&session.sam_account_name),
                    method: proved,
                    reason: proved.is_none().then_some("registration_code"),
                },
            )
            .await?;
        Ok(())
    }

    /// Spends the user's registration code, if `code` is it; a wrong one counts like any wrong
    /// code.
    async fn redeem(
        &self,
        subject: &Subject,
        session: &Session,
        code: &str,
        client: &Client,
    ) -> Result<(), FlowError> {
        let d = self.deps;
        // As for any code: not spent during a block, which answers as a wrong code would.
        let blocked = subject.before_check(d, client).await?;
        if !blocked && registration_code::redeem(d, &session.user, code).await? {
            Ok(())
        } else {
            Err(subject.wrong_code(d, None, blocked, client, None).await?)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [StepUpMethod; 3] = [
        StepUpMethod::Totp,
        StepUpMethod::Email,
        StepUpMethod::RegistrationCode,
    ];

    #[test]
    fn the_first_method_needs_only_the_password_from_a_trusted_network() {
        let (methods, required) = step_up_rule(&[], false, true);
        assert!(!required);
        assert_eq!(methods, [StepUpMethod::RegistrationCode]);
    }

    #[test]
    fn from_elsewhere_the_first_method_takes_a_registration_code() {
        let (methods, required) = step_up_rule(&[], false, false);
        assert!(required);
        assert_eq!(methods, [StepUpMethod::RegistrationCode], "nothing else");
    }

    #[test]
    fn once_a_method_exists_every_new_session_steps_up_wherever_it_is() {
        for trusted in [true, false] {
            let (methods, required) = step_up_rule(&[MethodKind::Email], false, trusted);
            assert!(required);
            assert_eq!(
                methods,
                [StepUpMethod::Email, StepUpMethod::RegistrationCode]
            );
            let both = [MethodKind::Email, MethodKind::Totp];
            assert_eq!(step_up_rule(&both, false, trusted).0, ALL, "stable order");
        }
    }

    #[test]
    fn a_session_that_proved_a_method_goes_on() {
        for confirmed in [&[][..], &[MethodKind::Totp][..]] {
            for trusted in [true, false] {
                assert!(!step_up_rule(confirmed, true, trusted).1);
            }
        }
    }

    #[test]
    fn step_up_methods_have_the_api_names() {
        for method in ALL {
            assert_eq!(StepUpMethod::parse(method.as_str()), Some(method));
        }
        assert_eq!(StepUpMethod::parse("sms"), None);
    }

    #[test]
    fn each_session_has_its_own_step_up() {
        assert_ne!(step_up_id(&[1; 32]), step_up_id(&[2; 32]));
        assert_eq!(step_up_id(&[1; 32]), step_up_id(&[1; 32]));
    }
}
