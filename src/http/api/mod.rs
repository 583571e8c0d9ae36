//! `/api/v1`: the JSON API, self-service and helpdesk. Integrations and scripts depend on exactly
//! these shapes; the OpenAPI document at `/api/v1/openapi.json` describes them.

mod bodies;
mod helpdesk;
mod openapi;
mod selfservice;

use axum::Router;
use axum::routing::get;

use bodies::method;
pub use bodies::{Bearer, Body, MethodName, OptionalBody, Token};
pub use openapi::ApiDoc;

use crate::http::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/openapi.json", get(openapi::openapi))
        .merge(selfservice::routes())
        .merge(helpdesk::routes())
}
