//! What every handler, API or page, reads from a request: who is calling (address and
//! language) and the cookies that carry the language.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};

use super::TrustedProxies;
use crate::domain::deps::Client;
use crate::domain::locale::Locale;

/// The language chosen with the `?lang=` switch, kept so it sticks across POSTs.
pub const LANG_COOKIE: &str = "lang";

/// Who is calling: client address (for throttles and the audit) and language (for mails).
pub struct Caller(pub Client);

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(addr)| addr.ip());
        let ip = match (peer, parts.extensions.get::<Arc<TrustedProxies>>()) {
            (Some(peer), Some(proxies)) => Some(proxies.client_ip(peer, &parts.headers)),
            _ => peer,
        };
        Ok(Caller(Client {
            ip,
            locale: Locale::from_parts(parts),
        }))
    }
}

// Negotiation reads HTTP headers, so it lives here rather than in the domain.
impl Locale {
    pub fn negotiate(request: &Request) -> Self {
        Self::from_headers(request.uri(), request.headers())
    }

    pub fn from_parts(parts: &axum::http::request::Parts) -> Self {
        Self::from_headers(&parts.uri, &parts.headers)
    }

    /// The language the `?lang=` switch asks for, if any.
    pub fn from_query(uri: &axum::http::Uri) -> Option<Self> {
        let query = uri.query().unwrap_or("");
        url::form_urlencoded::parse(query.as_bytes())
            .find(|(k, _)| k == "lang")
            .and_then(|(_, v)| Self::from_tag(&v))
    }

    /// `?lang=` (the language switch) wins, then the `lang` cookie, then Accept-Language.
    fn from_headers(uri: &axum::http::Uri, headers: &axum::http::HeaderMap) -> Self {
        let accept_language = headers
            .get(header::ACCEPT_LANGUAGE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        Self::from_query(uri)
            .or_else(|| read_cookie(headers, LANG_COOKIE).and_then(Self::from_tag))
            .or_else(|| Self::from_accept_language(accept_language))
            .unwrap_or(Locale::En)
    }

    fn from_accept_language(value: &str) -> Option<Self> {
        value
            .split(',')
            .filter_map(|item| {
                let mut parts = item.split(';');
                let locale = Self::from_tag(parts.next()?)?;
                let q = parts
                    .find_map(|p| p.trim().strip_prefix("q="))
                    .map_or(Some(1.0), |q| q.parse::<f32>().ok())?;
                (q > 0.0).then_some((locale, q))
            })
            .fold(None, |best: Option<(Locale, f32)>, (l, q)| match best {
                Some((_, bq)) if bq >= q => best,
                _ => Some((l, q)),
            })
            .map(|(l, _)| l)
    }
}

/// The value of cookie `name`, if the request carries one with a well-formed value.
pub fn read_cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    cookie_value(headers, name).filter(|v| is_token(v))
}

/// The first value the request gives cookie `name`, as sent: the caller bounds what it takes.
pub fn cookie_value<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v)
}

/// Our values are base64url tokens or language tags: anything else is not ours.
pub fn is_token(value: &str) -> bool {
    (1..=128).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_language_picks_the_best_supported() {
        assert_eq!(
            Locale::from_accept_language("nl-NL,nl;q=0.9,en;q=0.8"),
            Some(Locale::Nl)
        );
        assert_eq!(
            Locale::from_accept_language("es-ES,en;q=0.5,nl;q=0.7"),
            Some(Locale::Nl)
        );
        assert_eq!(
            Locale::from_accept_language("de-DE,de;q=0.9,en;q=0.8"),
            Some(Locale::De)
        );
        assert_eq!(
            Locale::from_accept_language("fr-FR,fr;q=0.9,en-US;q=0.8,en;q=0.7"),
            Some(Locale::Fr)
        );
        assert_eq!(
            Locale::from_accept_language("it, fr-CH;q=0.4, de;q=0.6"),
            Some(Locale::De)
        );
        assert_eq!(Locale::from_accept_language("es"), None);
        assert_eq!(Locale::from_accept_language("nl;q=0,en"), Some(Locale::En));
    }
}
