//! `/metrics`: who may read it, and that the flows, the directory and its pools show in it.

use axum::http::StatusCode;
use serde_json::json;

use crate::client::{TestApp, test_app};
use crate::selfservice::{set_password, verified_flow};

const TOKEN: &str = "scrape-me-7f3a";

async fn app() -> TestApp {
    crate::harness::remember_secret("metrics-token", TOKEN);
    test_app(&format!(
        "[licence]\nazure_ad_premium = true\n[metrics]\ntoken = \"{TOKEN}\"\n"
    ))
    .await
}

async fn scrape(app: &TestApp) -> String {
    let answer = app
        .get("/metrics", Some(TOKEN))
        .await
        .expect(StatusCode::OK);
    assert!(
        answer.headers[axum::http::header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("application/openmetrics-text"),
    );
    answer.body
}

/// The value of the sample whose name and labels start with `prefix` and contain every one of
/// `labels`, summed over matches; 0 if there is none.
fn sample(text: &str, prefix: &str, labels: &[&str]) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(prefix) && labels.iter().all(|label| l.contains(label)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test]
async fn metrics_need_the_token_and_are_off_without_one() {
    let app = app().await;
    let none = app.get("/metrics", None).await;
    assert_eq!(none.status, StatusCode::UNAUTHORIZED);
    assert!(!none.body.contains("sspr_"));
    let wrong = app.get("/metrics", Some("scrape-me")).await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);

    let body = scrape(&app).await;
    // Families with labels known in advance are there from the start; the others (errors by
    // kind, mails by kind …) appear with their first sample.
    for name in [
        "sspr_flows_started",
        "sspr_flows_completed",
        "sspr_directory_pool_connections_in_use",
    ] {
        assert!(
            body.contains(&format!("# TYPE {name} ")),
            "{name} in\n{body}"
        );
    }
    assert!(
        body.contains("sspr_flows_started_total{kind=\"decoy\"} "),
        "{body}"
    );
    assert!(body.ends_with("# EOF\n"), "{body}");

    let off = test_app("").await;
    off.get("/metrics", Some(TOKEN))
        .await
        .expect(StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn flows_directory_latency_and_pools_are_counted() {
    let app = app().await;
    let before = scrape(&app).await;
    let started = |text: &str, kind: &str| {
        sample(
            text,
            "sspr_flows_started_total{",
            &[&format!("kind=\"{kind}\"")],
        )
    };

    app.post(
        "/api/v1/reset",
        json!({"username": crate::harness::unique_name("nobody")}),
        None,
    )
    .await
    .expect(StatusCode::CREATED);
    let (_user, flow) = verified_flow(&app, "metrics").await;
    set_password(&app, &flow, "Metrics-Were-Here-4!")
        .await
        .expect(StatusCode::NO_CONTENT);

    let after = scrape(&app).await;
    // Other tests in this binary share the process-wide metrics: counters only ever grow.
    assert!(
        started(&after, "decoy") >= started(&before, "decoy") + 1.0,
        "{after}"
    );
    assert!(
        started(&after, "real") >= started(&before, "real") + 1.0,
        "{after}"
    );
    let completed = |text: &str| sample(text, "sspr_flows_completed_total{", &["kind=\"reset\""]);
    assert!(completed(&after) >= completed(&before) + 1.0, "{after}");
    let totp_ok = |text: &str| {
        sample(
            text,
            "sspr_verifications_total{",
            &["method=\"totp\"", "outcome=\"success\""],
        )
    };
    assert!(totp_ok(&after) >= totp_ok(&before) + 1.0, "{after}");
    assert!(after.contains("# TYPE sspr_directory_operation_seconds histogram"));

    for operation in ["search", "bind", "modify"] {
        let label = format!("operation=\"{operation}\"");
        assert!(
            sample(&after, "sspr_directory_operation_seconds_count{", &[&label]) > 0.0,
            "no {operation} latency in\n{after}"
        );
    }
    assert!(
        after.contains("sspr_directory_pool_connections_in_use{dc=\"ldap"),
        "{after}"
    );

    // Requests by route pattern: a flow id or token in a path never becomes a label.
    let requests = |text: &str, route: &str, status: &str| {
        sample(
            text,
            "sspr_http_requests_total{",
            &[
                &format!("route=\"{route}\""),
                &format!("status=\"{status}\""),
            ],
        )
    };
    let password = "/api/v1/reset/{flow}/password";
    assert!(
        requests(&after, password, "204") >= requests(&before, password, "204") + 1.0,
        "{after}"
    );
    assert!(
        requests(&after, "/api/v1/reset", "201") >= requests(&before, "/api/v1/reset", "201") + 2.0,
        "{after}"
    );
    assert!(!after.contains(&flow), "a flow id leaked into a label");
    assert!(
        sample(
            &after,
            "sspr_http_request_duration_seconds_count{",
            &[&format!("route=\"{password}\"")]
        ) >= 1.0,
        "{after}"
    );
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// One HTTP/1.1 GET; the whole response, head and body.
async fn http_get(addr: &str, path: &str) -> Option<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.ok()?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await.ok()?;
    Some(response)
}

#[tokio::test]
async fn serve_logs_json_lines_with_the_request_id_and_serves_metrics_apart() {
    use std::process::{Command, Stdio};
    use std::time::{Duration, Instant};

    let dir = tempfile::tempdir().unwrap();
    let addr = format!("127.0.0.1:{}", free_port());
    let metrics_addr = format!("127.0.0.1:{}", free_port());
    let config = crate::cli::write_config(
        dir.path(),
        &format!(
            "[log]\nformat = \"json\"\nlevel = \"info,tower_http=debug\"\n\
             [metrics]\nlisten = \"{metrics_addr}\"\n"
        ),
    );
    let key = crate::cli::gen_key();
    let mut child = crate::harness::service_command()
        .args(["--config", config.to_str().unwrap(), "serve"])
        .env("SSPR__SECURITY__SECRET_KEY", &key)
        .env("SSPR__SERVER__LISTEN", &addr)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();

    let started = Instant::now();
    let mut health = None;
    while started.elapsed() < Duration::from_secs(20) && health.is_none() {
        health = http_get(&addr, "/healthz").await;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let health = health.expect("the service came up");
    let request_id = health
        .lines()
        .find_map(|l| l.strip_prefix("x-request-id: "))
        .expect("a request id header")
        .trim()
        .to_owned();
    // Without a token, the public listener hides the metrics; their own address serves them.
    let hidden = http_get(&addr, "/metrics").await.unwrap();
    assert!(hidden.starts_with("HTTP/1.1 404"), "{hidden}");
    let scraped = http_get(&metrics_addr, "/metrics").await.unwrap();
    assert!(scraped.starts_with("HTTP/1.1 200"), "{scraped}");
    assert!(scraped.contains("sspr_flows_started_total"), "{scraped}");

    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let stderr = tokio::task::spawn_blocking(move || {
        let deadline = Instant::now() + Duration::from_secs(10);
        while child.try_wait().unwrap().is_none() {
            assert!(Instant::now() < deadline, "serve did not stop");
            std::thread::sleep(Duration::from_millis(20));
        }
        let mut err = String::new();
        std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
        err
    })
    .await
    .unwrap();
    crate::harness::keep_service_log("serve-metrics", stderr.as_bytes());

    let lines: Vec<serde_json::Value> = stderr
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(
        lines
            .iter()
            .any(|l| l["span"]["id"] == request_id.as_str() && l["span"]["path"] == "/healthz"),
        "a line in the request's span names its id {request_id}:\n{stderr}"
    );
    assert!(!stderr.contains(&key), "the secret key is never logged");
    assert!(
        !stderr.contains(&crate::harness::env("SSPR_TEST_SERVICE_PASSWORD")),
        "the bind password is never logged"
    );
}
