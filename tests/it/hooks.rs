//! Hooks after an action (a real HTTPS webhook receiver with the test CA's certificate, a real
//! command) and the audit log forwarded to syslog (real TCP, TLS and Unix-socket listeners), over
//! the real DC and the database `SSPR_TEST_DATABASE` names.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::http::StatusCode;
use hmac::{Hmac, Mac};
use http_body_util::BodyExt;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use sha2::Sha256;
use sspr_bridge::domain::totp;
use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;

use crate::client::{TestApp, test_app};
use crate::harness::{self, TestUser, bind, create_user, env, read_binary_attr};
use crate::helpdesk::{caller_with_totp, desk};
use crate::mail::smtp_section;
use crate::selfservice::{
    register_totp, set_password, settle_totp_step, sign_in, start_flow, verified_flow, verify,
};

const LICENSED: &str = "[licence]\nazure_ad_premium = true\n";
const SECRET: &str = "hook-secret-0123456789abcdef";

/// The test DC's certificate (SANs localhost and 127.0.0.1), signed by the test CA.
fn cert_files() -> (PathBuf, PathBuf) {
    let ca = PathBuf::from(env("SSPR_TEST_CA_FILE"));
    let dir = ca.parent().unwrap();
    (dir.join("dc.pem"), dir.join("dc.key"))
}

fn acceptor() -> tokio_rustls::TlsAcceptor {
    let (cert, key) = cert_files();
    tokio_rustls::TlsAcceptor::from(sspr_bridge::tls::server_config(&cert, &key).unwrap())
}

/// One request the receiver got.
#[derive(Clone, Debug)]
struct Call {
    signature: String,
    body: String,
    status: u16,
    at: Instant,
}

impl Call {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap()
    }
}

/// A webhook receiver over HTTPS that answers 500 to its first `failures` requests, 204 after.
struct Receiver {
    url: String,
    calls: Arc<Mutex<Vec<Call>>>,
}

async fn receiver(failures: usize) -> Receiver {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let calls = Arc::new(Mutex::new(Vec::<Call>::new()));
    let recorded = calls.clone();
    let acceptor = acceptor();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let Ok(tls) = acceptor.accept(tcp).await else {
                continue;
            };
            let recorded = recorded.clone();
            let service = hyper::service::service_fn(
                move |request: hyper::Request<hyper::body::Incoming>| {
                    let recorded = recorded.clone();
                    async move {
                        let signature = request
                            .headers()
                            .get("x-sspr-signature")
                            .map(|v| v.to_str().unwrap().to_owned())
                            .unwrap_or_default();
                        let body = request.into_body().collect().await?.to_bytes();
                        let mut calls = recorded.lock().unwrap();
                        let status = if calls.len() < failures { 500 } else { 204 };
                        calls.push(Call {
                            signature,
                            body: String::from_utf8(body.to_vec()).unwrap(),
                            status,
                            at: Instant::now(),
                        });
                        Ok::<_, hyper::Error>(
                            hyper::Response::builder()
                                .status(status)
                                .body(String::new())
                                .unwrap(),
                        )
                    }
                },
            );
            tokio::spawn(
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tls), service),
            );
        }
    });
    Receiver {
        url: format!("https://127.0.0.1:{port}/sspr-hook"),
        calls,
    }
}

impl Receiver {
    /// The calls so far, once `done` holds for them (within 30 s).
    async fn until(&self, done: impl Fn(&[Call]) -> bool) -> Vec<Call> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let calls = self.calls.lock().unwrap().clone();
            if done(&calls) {
                return calls;
            }
            assert!(
                Instant::now() < deadline,
                "webhook calls so far: {calls:#?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The events of accepted calls about `sam`, in the order of the actions (a retried call
    /// arrives after later ones).
    async fn accepted_about(&self, sam: &str, count: usize) -> Vec<Value> {
        let about = |c: &Call| c.status == 204 && c.json()["account"]["sam_account_name"] == sam;
        let calls = self
            .until(|calls| calls.iter().filter(|c| about(c)).count() >= count)
            .await;
        let mut events: Vec<Value> = calls.iter().filter(|c| about(c)).map(Call::json).collect();
        events.sort_by_key(|e| e["time"].as_str().unwrap().to_owned());
        events
    }
}

/// Checks the signature as the README tells a receiver to: HMAC-SHA256 under the shared secret
/// of "<t>." and the body, a recent `t`.
fn assert_signed(call: &Call) {
    let (t, v1) = call
        .signature
        .strip_prefix("t=")
        .and_then(|rest| rest.split_once(",v1="))
        .unwrap_or_else(|| panic!("signature header {:?}", call.signature));
    let t: u64 = t.parse().unwrap();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(now.abs_diff(t) < 120, "signed at {t}, now {now}");
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(format!("{t}.").as_bytes());
    mac.update(call.body.as_bytes());
    let expected: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(v1, expected, "signature of {}", call.body);
}

async fn guid_of(user: &TestUser) -> String {
    let raw = read_binary_attr(&user.dn, "objectGUID").await.unwrap();
    sspr_bridge::domain::ObjectGuid::from_ad_bytes(&raw)
        .unwrap()
        .to_string()
}

async fn assert_account(event: &Value, user: &TestUser) {
    let account = &event["account"];
    assert_eq!(account["sam_account_name"], user.sam.as_str());
    assert_eq!(account["user_principal_name"], user.upn.as_str());
    assert!(
        account["distinguished_name"]
            .as_str()
            .unwrap()
            .eq_ignore_ascii_case(&user.dn),
        "{account}"
    );
    assert_eq!(account["object_guid"], guid_of(user).await.as_str());
    assert!(event["time"].as_str().unwrap().ends_with('Z'));
    assert!(event.get("password").is_none(), "{event}");
}

fn hooks_section(extra: &str) -> String {
    harness::remember_secret("webhook-secret", SECRET);
    format!(
        "[hooks]\nsecret = {SECRET:?}\nca_file = {:?}\n{extra}",
        env("SSPR_TEST_CA_FILE")
    )
}

async fn lock_out(user: &TestUser) {
    for _ in 0..6 {
        let _ = bind(&user.dn, "wrong-password").await;
    }
    let (rc, text) = bind(&user.dn, &user.password).await.expect_err("locked");
    assert!(rc == 49 && text.contains("775"), "{rc} {text}");
}

#[tokio::test]
async fn a_webhook_gets_a_signed_event_per_self_service_action_and_a_retry_after_a_failure() {
    let hook = receiver(1).await;
    let url = &hook.url;
    let app = test_app(&format!(
        "{LICENSED}{}\n{}",
        smtp_section(),
        hooks_section(&format!(
            "after_reset = {{ url = {url:?} }}\nafter_unlock = {{ url = {url:?} }}\n\
             after_registration_change = {{ url = {url:?} }}\n"
        ))
    ))
    .await;

    // Registering a method, then a reset.
    let (resetter, flow) = verified_flow(&app, "hkr").await;
    set_password(&app, &flow, "Hooked-Reset-Pw-41!")
        .await
        .expect(StatusCode::NO_CONTENT);
    bind(&resetter.dn, "Hooked-Reset-Pw-41!")
        .await
        .expect("the reset took");

    // Registering, then an unlock.
    let unlocker = create_user("hku").await;
    let token = sign_in(&app, &unlocker).await;
    let secret = register_totp(&app, &token).await;
    lock_out(&unlocker).await;
    let flow = start_flow(&app, &unlocker.sam).await;
    let now = settle_totp_step().await;
    verify(&app, &flow, "totp", &totp::code_at(&secret, now))
        .await
        .expect(StatusCode::OK);
    app.post(&format!("/api/v1/reset/{flow}/unlock"), json!({}), None)
        .await
        .expect(StatusCode::NO_CONTENT);

    let resets = hook.accepted_about(&resetter.sam, 2).await;
    let unlocks = hook.accepted_about(&unlocker.sam, 2).await;
    for (events, user, action) in [
        (&resets, &resetter, "reset"),
        (&unlocks, &unlocker, "unlock"),
    ] {
        let actions: Vec<_> = events.iter().map(|e| e["action"].clone()).collect();
        assert_eq!(actions, [json!("registration_change"), json!(action)]);
        for event in events {
            assert_account(event, user).await;
            assert_eq!(event["actor"], json!({"kind": "self"}));
        }
        assert!(events[0]["flow_id"].is_null());
        assert_eq!(events[1]["flow_id"].as_str().unwrap().len(), 32);
    }

    let calls = hook.calls.lock().unwrap().clone();
    for call in &calls {
        assert_signed(call);
    }
    // The first call was answered 500 and made again, the same event, after the pause.
    assert_eq!(calls[0].status, 500);
    let retry = calls
        .iter()
        .skip(1)
        .find(|c| c.json()["id"] == calls[0].json()["id"])
        .expect("the failed call was retried");
    assert_eq!(retry.status, 204);
    assert_eq!(retry.body, calls[0].body);
    assert!(retry.at - calls[0].at >= Duration::from_secs(4));
    // Every other event was called once, and nothing is left waiting.
    assert_eq!(calls.len(), 5, "{calls:#?}");
    let store = app.database.store().await;
    assert_eq!(store.hook_calls().await.unwrap(), []);
    store.close().await;
}

#[tokio::test]
async fn a_webhook_that_keeps_failing_is_given_up_with_an_audit_row() {
    let hook = receiver(usize::MAX).await;
    let app = test_app(&format!(
        "{LICENSED}{}\n{}",
        smtp_section(),
        hooks_section(&format!(
            "retry_for = \"2s\"\nafter_registration_change = {{ url = {:?} }}\n",
            hook.url
        ))
    ))
    .await;
    let user = create_user("hkg").await;
    let token = sign_in(&app, &user).await;
    register_totp(&app, &token).await;
    hook.until(|calls| !calls.is_empty()).await;

    let store = app.database.store().await;
    let deadline = Instant::now() + Duration::from_secs(30);
    let given_up = loop {
        use sspr_bridge::domain::store::AuditLog;
        let rows = store
            .since(sspr_bridge::domain::clock::Timestamp::from_millis(0), 1000)
            .await
            .unwrap();
        if let Some(row) = rows.into_iter().find(|r| r.event.event.as_str() == "hook") {
            break row.event;
        }
        assert!(
            Instant::now() < deadline,
            "no audit row for the given-up webhook"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(given_up.outcome.as_str(), "failure");
    let reason = given_up.reason.unwrap();
    assert!(
        reason.starts_with("after_registration_change: given up (attempts: 1): answered 500"),
        "{reason}"
    );
    assert_eq!(store.hook_calls().await.unwrap(), []);
    store.close().await;
    assert_eq!(hook.calls.lock().unwrap().len(), 1, "not called again");
}

/// A file in a directory of its own that a command hook appends its input to. The directory is
/// removed when the test ends and is none of those `scripts/check-secrets` reads (logs and
/// database dumps): a command that was given the password has written it there on purpose.
struct Written {
    _dir: tempfile::TempDir,
    file: PathBuf,
}

fn written() -> Written {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("events.jsonl");
    Written { _dir: dir, file }
}

fn command_to(file: &Path) -> String {
    format!(
        "command = [\"/bin/sh\", \"-c\", {:?}]",
        format!("cat >> '{}'", file.display())
    )
}

async fn events_in(file: &Path, count: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let text = std::fs::read_to_string(file).unwrap_or_default();
        let events: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        if events.len() >= count {
            return events;
        }
        assert!(Instant::now() < deadline, "command hook wrote {events:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_command_hook_reads_the_event_and_no_password_unless_allowed() {
    let out = written();
    let app = test_app(&format!(
        "{LICENSED}{}\n{}",
        smtp_section(),
        hooks_section(&format!("after_reset = {{ {} }}\n", command_to(&out.file)))
    ))
    .await;
    let (user, flow) = verified_flow(&app, "hkc").await;
    // A refused password is no reset: no event.
    set_password(&app, &flow, "short")
        .await
        .expect(StatusCode::UNPROCESSABLE_ENTITY);
    set_password(&app, &flow, "Hooked-Cmd-Pw-52!")
        .await
        .expect(StatusCode::NO_CONTENT);
    let events = events_in(&out.file, 1).await;
    assert_eq!(events.len(), 1, "only the reset has a hook: {events:?}");
    assert_eq!(events[0]["action"], "reset");
    assert_eq!(events[0]["actor"], json!({"kind": "self"}));
    assert_account(&events[0], &user).await;
}

#[tokio::test]
async fn helpdesk_actions_reach_the_hooks_and_a_command_may_get_the_temporary_password() {
    let hook = receiver(0).await;
    let out = written();
    let desk = desk(&hooks_section(&format!(
        "include_password = true\nafter_reset = {{ {} }}\n\
         after_unlock = {{ url = {:?} }}\nafter_registration_change = {{ url = {:?} }}\n",
        command_to(&out.file),
        hook.url,
        hook.url,
    )))
    .await;
    let (caller, secret) = caller_with_totp(&desk).await;
    lock_out(&caller).await;
    let operator = desk.operator_token().await;
    let now = settle_totp_step().await;
    desk.app
        .post(
            &format!("/api/v1/helpdesk/users/{}/verify", caller.sam),
            json!({"method": "totp", "code": totp::code_at(&secret, now)}),
            Some(&operator),
        )
        .await
        .expect(StatusCode::OK);
    desk.app
        .post(
            &format!("/api/v1/helpdesk/users/{}/unlock", caller.sam),
            json!({}),
            Some(&operator),
        )
        .await
        .expect(StatusCode::NO_CONTENT);
    let answer = desk
        .app
        .post(
            &format!("/api/v1/helpdesk/users/{}/reset", caller.sam),
            json!({"deliver": "operator"}),
            Some(&operator),
        )
        .await
        .expect(StatusCode::OK);
    let temporary = answer.json()["temporary_password"]
        .as_str()
        .unwrap()
        .to_owned();

    desk.app
        .delete(
            &format!("/api/v1/helpdesk/users/{}/enrollment", caller.sam),
            Some(&operator),
        )
        .await
        .expect(StatusCode::NO_CONTENT);

    let helpdesk = json!({"kind": "helpdesk", "operator": desk.operator.sam});
    let events = hook.accepted_about(&caller.sam, 3).await;
    assert_eq!(events[0]["action"], "registration_change");
    assert_eq!(events[0]["actor"], json!({"kind": "self"}));
    assert_eq!(events[1]["action"], "unlock");
    assert_eq!(events[1]["actor"], helpdesk);
    assert_eq!(events[2]["action"], "registration_change");
    assert_eq!(events[2]["actor"], helpdesk);
    for event in &events[1..] {
        assert_account(event, &caller).await;
        assert!(event["flow_id"].is_null());
    }
    for call in hook.calls.lock().unwrap().iter() {
        assert_signed(call);
        assert!(!call.body.contains(&temporary));
    }

    let commands = events_in(&out.file, 1).await;
    assert_eq!(commands[0]["action"], "reset");
    assert_eq!(commands[0]["actor"], helpdesk);
    assert_eq!(commands[0]["password"], temporary.as_str());
    assert_eq!(
        commands[0]["account"]["sam_account_name"],
        caller.sam.as_str()
    );
}

// --- syslog -----------------------------------------------------------------------------------

/// RFC 6587 octet-counted frames from `stream` until `done` holds for the messages so far.
async fn frames_until<S: tokio::io::AsyncRead + Unpin>(
    stream: &mut S,
    seen: &mut Vec<String>,
    done: impl Fn(&[String]) -> bool,
) {
    let mut buffer = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !done(seen) {
        let mut chunk = [0u8; 4096];
        let n = tokio::time::timeout_at(deadline, stream.read(&mut chunk))
            .await
            .unwrap_or_else(|_| panic!("syslog got {seen:#?}"))
            .unwrap();
        assert!(n > 0, "the forwarder closed the connection");
        buffer.extend_from_slice(&chunk[..n]);
        while let Some(space) = buffer.iter().position(|b| *b == b' ') {
            let len: usize = std::str::from_utf8(&buffer[..space])
                .unwrap()
                .parse()
                .unwrap();
            if buffer.len() < space + 1 + len {
                break;
            }
            let message = buffer[space + 1..space + 1 + len].to_vec();
            buffer.drain(..space + 1 + len);
            seen.push(String::from_utf8(message).unwrap());
        }
    }
}

/// The audit JSON of an RFC 5424 message from sspr-bridge, checked for the header's form.
fn audit_json(message: &str) -> Value {
    let (header, json) = message.split_at(message.find(" - {").expect("no SD, JSON MSG") + 3);
    let parts: Vec<&str> = header.split(' ').collect();
    assert!(
        parts[0] == "<86>1" || parts[0] == "<85>1",
        "authpriv.info or .notice: {message}"
    );
    assert!(parts[1].ends_with('Z'), "UTC time: {message}");
    assert_eq!(parts[3], "sspr-bridge");
    let value: Value = serde_json::from_str(json).unwrap();
    assert_eq!(
        parts[5],
        value["event"].as_str().unwrap(),
        "MSGID is the event"
    );
    value
}

fn sign_ins_of(messages: &[String], sam: &str) -> usize {
    messages
        .iter()
        .map(|m| audit_json(m))
        .filter(|v| v["event"] == "sign_in" && v["sam_account_name"] == sam)
        .count()
}

#[tokio::test]
async fn syslog_over_tcp_gets_each_audit_row_once_across_a_restart() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let app = test_app(LICENSED).await;
    let config = harness::config(&format!("[audit]\nsyslog = \"tcp://127.0.0.1:{port}\"\n"));

    let first = forwarder(&config, &app).await;
    let user = create_user("slg").await;
    sign_in(&app, &user).await;
    let (mut tcp, _) = listener.accept().await.unwrap();
    let mut seen = Vec::new();
    frames_until(&mut tcp, &mut seen, |m| sign_ins_of(m, &user.sam) == 1).await;

    // Stopped once its place is recorded (a stop between sending and recording would send the
    // batch again), rows written meanwhile, started again: those rows, nothing twice.
    let sent = max_id(&seen);
    let store = app.database.store().await;
    while store.forward_cursor("syslog").await.unwrap() != Some(sent) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    store.close().await;
    first.abort();
    let _ = first.await;
    sign_in(&app, &user).await;
    let second = forwarder(&config, &app).await;
    let (mut tcp, _) = listener.accept().await.unwrap();
    frames_until(&mut tcp, &mut seen, |m| sign_ins_of(m, &user.sam) == 2).await;
    second.abort();

    let ids: Vec<i64> = seen
        .iter()
        .map(|m| audit_json(m)["id"].as_i64().unwrap())
        .collect();
    assert!(ids.len() >= 2);
    assert_eq!(
        ids,
        (1..=max_id(&seen)).collect::<Vec<_>>(),
        "every row once, in order"
    );
}

async fn forwarder(
    config: &sspr_bridge::config::Config,
    app: &TestApp,
) -> tokio::task::JoinHandle<()> {
    let store = app.database.store().await;
    let forwarder = sspr_bridge::forward::SyslogForwarder::new(&config.audit, store);
    forwarder.unwrap().unwrap().spawn().await
}

fn max_id(messages: &[String]) -> i64 {
    messages
        .iter()
        .map(|m| audit_json(m)["id"].as_i64().unwrap())
        .max()
        .unwrap()
}

#[tokio::test]
async fn syslog_over_tls_gets_the_audit_rows_of_the_service() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let app = test_app(&format!(
        "{LICENSED}[audit]\nsyslog = \"tls://localhost:{port}\"\nsyslog_ca_file = {:?}\n",
        env("SSPR_TEST_CA_FILE")
    ))
    .await;
    let user = create_user("slt").await;
    sign_in(&app, &user).await;
    let (tcp, _) = listener.accept().await.unwrap();
    let mut tls = acceptor()
        .accept(tcp)
        .await
        .expect("TLS from the forwarder");
    let mut seen = Vec::new();
    frames_until(&mut tls, &mut seen, |m| sign_ins_of(m, &user.sam) == 1).await;
    let row = seen
        .iter()
        .map(|m| audit_json(m))
        .find(|v| v["sam_account_name"] == user.sam.as_str())
        .unwrap();
    assert_eq!(row["outcome"], "success");
    assert_eq!(row["client_ip"], app.ip.ip().to_string());
}

#[tokio::test]
async fn syslog_over_a_unix_socket_gets_one_message_per_datagram() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log");
    let socket = tokio::net::UnixDatagram::bind(&path).unwrap();
    let app: TestApp = test_app(&format!(
        "{LICENSED}[audit]\nsyslog = \"unix://{}\"\n",
        path.display()
    ))
    .await;
    let user = create_user("slu").await;
    sign_in(&app, &user).await;
    let mut seen = Vec::new();
    while sign_ins_of(&seen, &user.sam) == 0 {
        let mut datagram = vec![0u8; 65536];
        let n = tokio::time::timeout(Duration::from_secs(30), socket.recv(&mut datagram))
            .await
            .unwrap_or_else(|_| panic!("syslog got {seen:#?}"))
            .unwrap();
        seen.push(String::from_utf8(datagram[..n].to_vec()).unwrap());
    }
}
