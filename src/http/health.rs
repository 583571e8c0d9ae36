//! Liveness and readiness for load balancers and orchestrators.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;

use super::AppState;

#[derive(Serialize)]
pub struct Live {
    status: &'static str,
}

/// The process runs and answers.
pub async fn live() -> Json<Live> {
    Json(Live { status: "ok" })
}

#[derive(Serialize)]
pub struct Ready {
    status: &'static str,
    database: bool,
    directory: Vec<DcReady>,
}

#[derive(Serialize)]
pub struct DcReady {
    url: String,
    ok: bool,
    latency_ms: Option<u64>,
}

/// Ready when the database answers and at least one DC does. Reasons go to the log, not to the
/// (possibly public) probe.
pub async fn ready(State(state): State<AppState>) -> (StatusCode, Json<Ready>) {
    let (database, dcs) = tokio::join!(state.store.ping(), state.deps.directory.probe());
    if let Err(e) = &database {
        tracing::warn!(error = %e, "readiness: database");
    }
    let directory: Vec<DcReady> = dcs
        .into_iter()
        .map(|dc| {
            if let Err(e) = &dc.result {
                tracing::warn!(dc = %dc.url, error = %e, "readiness: domain controller");
            }
            DcReady {
                url: dc.url,
                ok: dc.result.is_ok(),
                latency_ms: dc
                    .result
                    .ok()
                    .map(|h| u64::try_from(h.latency.as_millis()).unwrap_or(u64::MAX)),
            }
        })
        .collect();
    let ready = database.is_ok() && directory.iter().any(|dc| dc.ok);
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(Ready {
            status: if ready { "ready" } else { "not_ready" },
            database: database.is_ok(),
            directory,
        }),
    )
}
