//! Caller verification: which checks are allowed, mailing and checking a code, and the
//! verification an operator session holds for a caller.

use super::{CallerCheck, Helpdesk, Operator, VerifiedBy, ad_mail, verification_id};
use crate::domain::clock::Timestamp;
use crate::domain::deps::Client;
use crate::domain::directory::DirectoryUser;
use crate::domain::error::FlowError;
use crate::domain::notify::MailKind;
use crate::domain::store::{CodePurpose, MethodKind, ResetFlow};
use crate::domain::verification::Subject;

impl Helpdesk<'_> {
    /// The operator's verification of this caller, created on first use. Keyed by the operator's
    /// session and the caller, so one operator's check is not another's.
    pub(super) async fn verification(
        &self,
        operator: &Operator,
        user: &DirectoryUser,
        check: CallerCheck,
        client: &Client,
    ) -> Result<Subject, FlowError> {
        let d = self.deps;
        let id_hash = verification_id(&operator.session.token_hash, &user.guid, check);
        let purpose = CodePurpose::HelpdeskEmail;
        if let Some(subject) = Subject::live(d, id_hash.clone(), purpose).await? {
            return Ok(subject);
        }
        if d.flows.flow(&id_hash).await?.is_some() {
            // Ended by wrong codes (or expired): a fresh one needs a new session, so an operator
            // cannot guess codes forever.
            return Err(FlowError::InvalidCode {
                remaining_attempts: 0,
            });
        }
        let now = d.now();
        d.flows
            .create_flow(&ResetFlow {
                id_hash: id_hash.clone(),
                user: Some(user.guid),
                login: user.sam_account_name.to_lowercase(),
                sam_account_name: Some(user.sam_account_name.clone()),
                methods_required: 1,
                verified_totp_at: None,
                verified_email_at: None,
                verified_passkey_at: None,
                failures: 0,
                created_at: now,
                expires_at: now + d.settings.helpdesk.verification_lifetime,
                finished_at: None,
                dc: None,
                locale: client.locale,
            })
            .await?;
        Subject::live(d, id_hash, purpose)
            .await?
            .ok_or(FlowError::FlowNotFound)
    }

    /// The verification of `check` this operator is doing of this caller, if one is live.
    pub(super) async fn live_check(
        &self,
        operator: &Operator,
        user: &DirectoryUser,
        check: CallerCheck,
    ) -> Result<Option<Subject>, FlowError> {
        let id_hash = verification_id(&operator.session.token_hash, &user.guid, check);
        Subject::live(self.deps, id_hash, CodePurpose::HelpdeskEmail).await
    }

    pub(super) async fn verified_by(
        &self,
        operator: &Operator,
        user: &DirectoryUser,
    ) -> Result<Option<VerifiedBy>, FlowError> {
        let allowed = &self.deps.settings.helpdesk.verification_methods;
        for check in CallerCheck::ALL.into_iter().filter(|c| allowed.contains(c)) {
            let Some(subject) = self.live_check(operator, user, check).await? else {
                continue;
            };
            let verified = subject.flow.verified();
            let by = match check {
                CallerCheck::Registered => verified.first().copied().map(VerifiedBy::Registered),
                CallerCheck::AdMail => verified
                    .contains(&MethodKind::Email)
                    .then_some(VerifiedBy::AdMail),
                CallerCheck::Manager => (!verified.is_empty()).then_some(VerifiedBy::Manager),
            };
            if by.is_some() {
                return Ok(by);
            }
        }
        Ok(None)
    }

    /// Refuses a check that `helpdesk.verification_methods` leaves out.
    pub(super) fn allowed(&self, check: CallerCheck) -> Result<(), FlowError> {
        if self
            .deps
            .settings
            .helpdesk
            .verification_methods
            .contains(&check)
        {
            Ok(())
        } else {
            Err(FlowError::Forbidden(format!(
                "Verifying callers by {} is turned off here (helpdesk.verification_methods).",
                check.as_str()
            )))
        }
    }

    /// Mails the caller a code to read back to the operator: to their confirmed address
    /// (`registered`) or to the account's AD `mail` (`ad_mail`).
    pub async fn send_code(
        &self,
        token: &str,
        id: &str,
        to: CallerCheck,
        client: &Client,
    ) -> Result<(), FlowError> {
        let d = self.deps;
        let operator = self.operator(token).await?;
        let user = self.target(id).await?;
        self.allowed(to)?;
        let address = match to {
            CallerCheck::Registered => {
                if d.confirmed_email(&user.guid).await?.is_none() {
                    return Err(FlowError::InvalidInput(
                        "This user has no confirmed email address.".to_owned(),
                    ));
                }
                None
            }
            CallerCheck::AdMail => Some(ad_mail(&user).map(str::to_owned).ok_or_else(|| {
                FlowError::InvalidInput("This user has no mail address in AD.".to_owned())
            })?),
            CallerCheck::Manager => {
                return Err(FlowError::InvalidInput(
                    "A manager approves by a link, not a code.".to_owned(),
                ));
            }
        };
        let mut subject = self.verification(&operator, &user, to, client).await?;
        subject.address = address;
        subject
            .send_code(
                d,
                |code| MailKind::HelpdeskCode { code },
                client,
                Some(&operator.session.sam_account_name),
            )
            .await
    }

    pub async fn verify(
        &self,
        token: &str,
        id: &str,
        method: MethodKind,
        code: &str,
        client: &Client,
    ) -> Result<(), FlowError> {
        let d = self.deps;
        let operator = self.operator(token).await?;
        let user = self.target(id).await?;
        let check = match method {
            MethodKind::Totp => CallerCheck::Registered,
            MethodKind::Email => self.emailed_check(&operator, &user).await?,
            // A passkey answers a challenge in the user's browser: nothing a caller can read out.
            MethodKind::Passkey => {
                return Err(FlowError::InvalidInput(
                    "A passkey cannot be checked over the phone; ask for another method.".into(),
                ));
            }
        };
        self.allowed(check)?;
        let subject = self.verification(&operator, &user, check, client).await?;
        subject
            .verify(
                d,
                method,
                code,
                client,
                Some(&operator.session.sam_account_name),
            )
            .await?;
        Ok(())
    }

    /// Which emailed code the operator is reading back: the one sent last, of those not yet
    /// used; the confirmed address's when none is waiting.
    pub(super) async fn emailed_check(
        &self,
        operator: &Operator,
        user: &DirectoryUser,
    ) -> Result<CallerCheck, FlowError> {
        let mut latest = (CallerCheck::Registered, Timestamp::MIN);
        for check in [CallerCheck::Registered, CallerCheck::AdMail] {
            let id_hash = verification_id(&operator.session.token_hash, &user.guid, check);
            let pending = self
                .deps
                .codes
                .code(CodePurpose::HelpdeskEmail, &id_hash)
                .await?;
            if let Some(code) = pending.filter(|c| c.created_at > latest.1) {
                latest = (check, code.created_at);
            }
        }
        Ok(latest.0)
    }
}
