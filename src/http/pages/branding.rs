//! The organisation's look on every page: name and logo in the header, the favicon, and the
//! primary colour, which reaches the pages through the stylesheet (the CSP allows no inline
//! style). The images are served from memory at stable URLs (`/static/logo.svg`).

use axum::Router;
use axum::body::Bytes;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Serialize;

use crate::config::{Colour, Image, UiConfig};
use crate::http::AppState;

#[derive(Clone, Debug, Default)]
pub struct Branding {
    /// `None` when `ui.organisation` is empty.
    pub organisation: Option<String>,
    pub logo: Option<Image>,
    pub favicon: Option<Image>,
    pub primary_colour: Option<Colour>,
}

/// What templates see: the name and where the images are.
#[derive(Serialize)]
pub struct BrandVars<'a> {
    pub organisation: Option<&'a str>,
    pub logo_url: Option<String>,
    pub favicon_url: Option<String>,
    pub favicon_type: Option<&'static str>,
}

impl Branding {
    pub fn from_config(ui: &UiConfig) -> Self {
        Self {
            organisation: Some(ui.organisation.trim().to_owned()).filter(|o| !o.is_empty()),
            logo: ui.logo_image.clone(),
            favicon: ui.favicon_image.clone(),
            primary_colour: ui.primary_colour,
        }
    }

    pub fn vars(&self) -> BrandVars<'_> {
        BrandVars {
            organisation: self.organisation.as_deref(),
            logo_url: self
                .logo
                .as_ref()
                .map(|i| format!("/static/logo.{}", i.extension)),
            favicon_url: self
                .favicon
                .as_ref()
                .map(|i| format!("/static/favicon.{}", i.extension)),
            favicon_type: self.favicon.as_ref().map(|i| i.content_type),
        }
    }

    /// Appended to the stylesheet: the primary colour replaces the built-in accent.
    pub fn stylesheet_rules(&self) -> String {
        self.primary_colour
            .map(|c| format!("\n:root {{ --brand: {c}; }}\n"))
            .unwrap_or_default()
    }
}

/// `/static/logo.{png,svg}` and `/static/favicon.{png,svg,ico}`, only those configured: any other
/// path under `/static/` answers as an unknown page does.
pub fn routes(branding: &Branding) -> Router<AppState> {
    let mut router = Router::new();
    for (stem, image) in [("logo", &branding.logo), ("favicon", &branding.favicon)] {
        if let Some(image) = image {
            let path = format!("/static/{stem}.{}", image.extension);
            // Shared, not copied, by every answer.
            let bytes = Bytes::from(image.bytes.clone());
            let content_type = image.content_type;
            router = router.route(
                &path,
                get(move || async move { serve(content_type, bytes) }),
            );
        }
    }
    router
}

fn serve(content_type: &'static str, bytes: Bytes) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        bytes,
    )
        .into_response()
}
