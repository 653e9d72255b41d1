//! The gateway's HTTP door for an SMS provider's delivery reports: signed Standard Webhooks only,
//! passed on to notifications once per callback id; forged, replayed-late and malformed callbacks
//! change nothing.

use careloop_system_tests::{System, Tuning};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

async fn post(
    addr: std::net::SocketAddr,
    id: &str,
    timestamp: i64,
    signature: &str,
    body: &str,
) -> http::StatusCode {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(connection);
    let request = http::Request::post(format!("http://{addr}/callbacks/sms"))
        .header("host", addr.to_string())
        .header("content-type", "application/json")
        .header("webhook-id", id)
        .header("webhook-timestamp", timestamp.to_string())
        .header("webhook-signature", signature)
        .body(Full::new(Bytes::from(body.to_owned())))
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    let status = response.status();
    let _ = response.into_body().collect().await;
    status
}

async fn reports(system: &System, id: &str) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM idempotency_keys WHERE key = $1")
        .bind(format!("sms-callback:{id}"))
        .fetch_one(&system.notifications_db)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_signed_fresh_delivery_reports_reach_notifications_and_each_once() {
    let system = System::start_tuned(Tuning {
        gateway: Some(Box::new(|g| {
            g.callbacks_addr = "127.0.0.1:0".into();
            g.sms_callback_secret = careloop_runtime::secret::Secret::new(SECRET);
        })),
    })
    .await;
    let addr = system.callbacks_addr.expect("callbacks on");
    let now = chrono::Utc::now().timestamp();
    let body = r#"{"id": "sms-42", "status": "delivered"}"#;
    let sign = |id: &str, ts: i64, body: &str| {
        careloop_runtime::signing::sign(SECRET, id, ts, body).unwrap()
    };

    assert_eq!(
        post(addr, "cb-1", now, &sign("cb-1", now, body), body).await,
        http::StatusCode::NO_CONTENT
    );
    assert_eq!(reports(&system, "cb-1").await, 1);
    // The provider retries the same callback: applied once.
    assert_eq!(
        post(addr, "cb-1", now, &sign("cb-1", now, body), body).await,
        http::StatusCode::NO_CONTENT
    );
    assert_eq!(reports(&system, "cb-1").await, 1);

    // Forged: signed with another secret, or the body changed after signing.
    let other = careloop_runtime::signing::new_secret().unwrap();
    let forged = careloop_runtime::signing::sign(&other, "cb-2", now, body).unwrap();
    assert_eq!(
        post(addr, "cb-2", now, &forged, body).await,
        http::StatusCode::UNAUTHORIZED
    );
    let changed = r#"{"id": "sms-43", "status": "delivered"}"#;
    assert_eq!(
        post(addr, "cb-3", now, &sign("cb-3", now, body), changed).await,
        http::StatusCode::UNAUTHORIZED
    );
    // A captured callback replayed an hour later.
    let old = now - 3600;
    assert_eq!(
        post(addr, "cb-4", old, &sign("cb-4", old, body), body).await,
        http::StatusCode::UNAUTHORIZED
    );
    // Signed but not a report; and an interim state, taken and ignored.
    let junk = r#"{"status": "delivered"}"#;
    assert_eq!(
        post(addr, "cb-5", now, &sign("cb-5", now, junk), junk).await,
        http::StatusCode::BAD_REQUEST
    );
    let queued = r#"{"id": "sms-42", "status": "queued"}"#;
    assert_eq!(
        post(addr, "cb-6", now, &sign("cb-6", now, queued), queued).await,
        http::StatusCode::NO_CONTENT
    );
    for id in ["cb-2", "cb-3", "cb-4", "cb-5", "cb-6"] {
        assert_eq!(reports(&system, id).await, 0, "{id} changed nothing");
    }
}
