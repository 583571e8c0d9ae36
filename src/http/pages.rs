//! Server-rendered pages (no JavaScript needed), in English and Dutch. Templates and texts are
//! compiled in; the texts live in `locales/*.toml`, one file per language.

use std::collections::HashMap;

use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use minijinja::{Environment, context};

use super::AppState;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Locale {
    En,
    Nl,
}

impl Locale {
    const ALL: [Locale; 2] = [Locale::En, Locale::Nl];

    pub fn tag(self) -> &'static str {
        match self {
            Locale::En => "en",
            Locale::Nl => "nl",
        }
    }

    fn from_tag(tag: &str) -> Option<Self> {
        let primary = tag.split(['-', '_']).next()?.trim();
        Self::ALL
            .into_iter()
            .find(|l| l.tag().eq_ignore_ascii_case(primary))
    }

    pub fn negotiate(request: &Request) -> Self {
        Self::from_headers(request.uri(), request.headers())
    }

    pub fn from_parts(parts: &axum::http::request::Parts) -> Self {
        Self::from_headers(&parts.uri, &parts.headers)
    }

    /// `?lang=` (the language switch) wins, then the `lang` cookie, then Accept-Language.
    fn from_headers(uri: &axum::http::Uri, headers: &axum::http::HeaderMap) -> Self {
        let query = uri.query().unwrap_or("");
        let from_query = url::form_urlencoded::parse(query.as_bytes())
            .find(|(k, _)| k == "lang")
            .and_then(|(_, v)| Self::from_tag(&v));
        let header = |name| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
        };
        let from_cookie = header(header::COOKIE)
            .split(';')
            .filter_map(|c| c.trim().strip_prefix("lang="))
            .find_map(Self::from_tag);
        from_query
            .or(from_cookie)
            .or_else(|| Self::from_accept_language(header(header::ACCEPT_LANGUAGE)))
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

const TEMPLATES: &[(&str, &str)] = &[
    ("base.html", include_str!("../../templates/base.html")),
    ("home.html", include_str!("../../templates/home.html")),
    (
        "licence_required.html",
        include_str!("../../templates/licence_required.html"),
    ),
];

const CATALOGS: &[(Locale, &str)] = &[
    (Locale::En, include_str!("../../locales/en.toml")),
    (Locale::Nl, include_str!("../../locales/nl.toml")),
];

pub struct Pages {
    env: Environment<'static>,
    texts: HashMap<Locale, HashMap<String, String>>,
    helpdesk_url: Option<String>,
    self_service: bool,
}

impl Pages {
    pub fn new(helpdesk_url: Option<String>, self_service: bool) -> Self {
        let mut env = Environment::new();
        for (name, source) in TEMPLATES {
            env.add_template(name, source)
                .expect("compiled-in templates are valid");
        }
        let texts = CATALOGS
            .iter()
            .map(|(locale, source)| {
                let table: HashMap<String, String> =
                    toml::from_str(source).expect("compiled-in catalogs are valid");
                (*locale, table)
            })
            .collect();
        Self {
            env,
            texts,
            helpdesk_url,
            self_service,
        }
    }

    fn render(&self, status: StatusCode, name: &str, locale: Locale) -> Response {
        let template = self.env.get_template(name).expect("template exists");
        let other = Locale::ALL
            .into_iter()
            .find(|l| *l != locale)
            .unwrap_or(locale);
        let rendered = template.render(context! {
            lang => locale.tag(),
            other_lang => other.tag(),
            t => &self.texts[&locale],
            helpdesk_url => &self.helpdesk_url,
            self_service => self.self_service,
        });
        match rendered {
            Ok(html) => (status, Html(html)).into_response(),
            Err(e) => {
                tracing::error!(template = name, error = %e, "template failed");
                StatusCode::INTERNAL_SERVER_ERROR.into_response()
            }
        }
    }

    pub fn licence_required(&self, locale: Locale) -> Response {
        self.render(StatusCode::FORBIDDEN, "licence_required.html", locale)
    }
}

pub async fn home(State(state): State<AppState>, request: Request) -> Response {
    state
        .pages
        .render(StatusCode::OK, "home.html", Locale::negotiate(&request))
}

pub async fn stylesheet() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        include_str!("../../static/style.css"),
    )
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
            Locale::from_accept_language("de-DE,en;q=0.5,nl;q=0.7"),
            Some(Locale::Nl)
        );
        assert_eq!(Locale::from_accept_language("fr"), None);
        assert_eq!(Locale::from_accept_language("nl;q=0,en"), Some(Locale::En));
    }

    #[test]
    fn every_language_has_every_text() {
        let pages = Pages::new(None, false);
        let mut keys: Vec<Vec<&String>> = Locale::ALL
            .iter()
            .map(|l| {
                let mut k: Vec<&String> = pages.texts[l].keys().collect();
                k.sort();
                k
            })
            .collect();
        let first = keys.remove(0);
        for other in keys {
            assert_eq!(first, other);
        }
    }
}
