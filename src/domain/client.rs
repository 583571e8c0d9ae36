//! Who is asking, apart from [`super::deps`] so the services the flows are given can name it
//! without depending on what holds them.

use std::net::IpAddr;

use super::locale::Locale;

/// Who is asking: for throttles, the audit and the language of mails.
#[derive(Clone, Debug)]
pub struct Client {
    pub ip: Option<IpAddr>,
    pub locale: Locale,
}
