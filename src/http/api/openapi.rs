//! The OpenAPI document of both APIs, served at `/api/v1/openapi.json`, with the answers every
//! operation of a kind can give added in one place.

use axum::Json;
use axum::response::{IntoResponse, Response};
use utoipa::OpenApi;

use super::helpdesk;
use super::selfservice::{change, enrollment, passkey, reset};
use crate::error::{BrokenRule, ErrorBody};

#[derive(OpenApi)]
#[openapi(
    info(title = "sspr-bridge", description = "Self-service password reset for on-premises Active Directory"),
    paths(enrollment::sign_in, enrollment::enrollment_status, enrollment::begin_totp,
        enrollment::confirm_totp, enrollment::reconfirm_totp, enrollment::begin_email,
        enrollment::confirm_email, enrollment::step_up, enrollment::send_step_up_code,
        enrollment::remove_totp, enrollment::remove_email, reset::start_reset,
        reset::send_reset_code, reset::verify, reset::set_password,
        reset::unlock, reset::password_policy, reset::check_password, change::change_password,
        helpdesk::sign_in, helpdesk::sign_out, helpdesk::lookup, helpdesk::email_code,
        helpdesk::verify, helpdesk::reset, helpdesk::unlock, helpdesk::clear,
        helpdesk::lift_block, helpdesk::registration_code, helpdesk::manager_approval,
        passkey::begin_passkey, passkey::confirm_passkey, passkey::remove_passkey,
        passkey::passkey_options),
    components(schemas(ErrorBody, BrokenRule)),
    modifiers(&BearerAuth, &CommonResponses)
)]
pub struct ApiDoc;

/// The answers any operation of a kind can give, added where an operation does not document
/// them itself: a body that is not the documented JSON, a missing or expired session, the
/// licence gate, and a dependency that is down or too slow.
struct CommonResponses;

impl utoipa::Modify for CommonResponses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for (path, item) in &mut openapi.paths.paths {
            let self_service = !path.starts_with("/api/v1/helpdesk");
            let operations = [item.get.as_mut(), item.post.as_mut(), item.delete.as_mut()];
            for operation in operations.into_iter().flatten() {
                let mut common = Vec::new();
                if operation.request_body.is_some() {
                    common.push((
                        "400",
                        "`invalid_request`: the body is not the documented JSON, or not sent as \
                         `application/json`",
                    ));
                    common.push(("413", "`payload_too_large`: over `server.body_limit`"));
                }
                if operation.security.as_ref().is_some_and(|s| !s.is_empty()) {
                    common.push(("401", "`unauthorized`: no session, or it expired"));
                }
                if self_service {
                    common.push((
                        "403",
                        "`licence_required`: self-service is off until the licence is declared",
                    ));
                }
                common.push((
                    "503",
                    "`directory_unavailable`, `storage_unavailable` or `timeout`: try again later",
                ));
                let responses = &mut operation.responses.responses;
                for (status, description) in common {
                    responses
                        .entry(status.to_owned())
                        .or_insert_with(|| error_response(description).into());
                }
                // Every throttled answer says when to come back.
                if let Some(utoipa::openapi::RefOr::T(throttled)) = responses.get_mut("429") {
                    throttled.headers.insert(
                        "Retry-After".to_owned(),
                        utoipa::openapi::HeaderBuilder::new()
                            .schema(<u64 as utoipa::PartialSchema>::schema())
                            .description(Some("Seconds to wait before trying again."))
                            .build(),
                    );
                }
            }
        }
    }
}

fn error_response(description: &str) -> utoipa::openapi::Response {
    use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("ErrorBody")))
                .build(),
        )
        .build()
}

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

pub(super) async fn openapi() -> Response {
    Json(ApiDoc::openapi()).into_response()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use serde_json::Value;
    use utoipa::OpenApi;

    use super::ApiDoc;

    fn operations(doc: &Value) -> Vec<(String, &Value)> {
        doc["paths"]
            .as_object()
            .unwrap()
            .iter()
            .flat_map(|(path, item)| {
                item.as_object()
                    .unwrap()
                    .iter()
                    .map(move |(method, op)| (format!("{method} {path}"), op))
            })
            .collect()
    }

    #[test]
    fn operation_ids_are_unique() {
        let doc = serde_json::to_value(ApiDoc::openapi()).unwrap();
        let ops = operations(&doc);
        let ids: BTreeSet<&str> = ops
            .iter()
            .map(|(_, op)| op["operationId"].as_str().unwrap())
            .collect();
        assert_eq!(ids.len(), ops.len(), "{ids:?}");
    }

    #[test]
    fn every_error_answer_is_documented_with_the_error_body() {
        let doc = serde_json::to_value(ApiDoc::openapi()).unwrap();
        for (name, op) in operations(&doc) {
            let responses = op["responses"].as_object().unwrap();
            assert!(responses.contains_key("503"), "{name}");
            if op.get("requestBody").is_some() {
                assert!(
                    responses.contains_key("400") && responses.contains_key("413"),
                    "{name}"
                );
            }
            if op.get("security").is_some() {
                assert!(responses.contains_key("401"), "{name}");
            }
            for (status, response) in responses {
                if status.starts_with('4') || status.starts_with('5') {
                    assert_eq!(
                        response["content"]["application/json"]["schema"]["$ref"],
                        "#/components/schemas/ErrorBody",
                        "{name} {status}"
                    );
                }
            }
            if let Some(throttled) = responses.get("429") {
                assert!(throttled["headers"]["Retry-After"].is_object(), "{name}");
            }
        }
    }
}
