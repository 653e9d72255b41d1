//! gRPC-Web on the gateway's port, answered to a plain HTTP/1.1 client (what a browser or curl
//! sends), with the CORS headers a browser needs.

use careloop_proto::gateway::v1::*;
use careloop_proto::plans::v1::*;
use careloop_runtime::auth::PrincipalKind;
use careloop_system_tests::{System, key};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use prost::Message;
use uuid::Uuid;

async fn http1(
    addr: std::net::SocketAddr,
    request: http::Request<Full<Bytes>>,
) -> (http::response::Parts, Bytes) {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(connection);
    let response = sender.send_request(request).await.unwrap();
    let (parts, body) = response.into_parts();
    (parts, body.collect().await.unwrap().to_bytes())
}

/// gRPC-Web frames: (flag, payload); flag 0x80 marks the trailers.
fn frames(mut body: &[u8]) -> Vec<(u8, Vec<u8>)> {
    let mut out = Vec::new();
    while body.len() >= 5 {
        let len = u32::from_be_bytes([body[1], body[2], body[3], body[4]]) as usize;
        out.push((body[0], body[5..5 + len].to_vec()));
        body = &body[5 + len..];
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grpc_web_call_from_a_plain_http1_client_is_answered_with_cors_headers() {
    let system = System::start().await;
    let org = Uuid::now_v7();
    let mut staff = system.staff(org, "nurse-1", &["rn"]);
    let patient = staff
        .create_patient(CreatePatientRequest {
            idempotency_key: key(),
            mrn: "MRN-WEB-1".into(),
            given_name: "Ada".into(),
            family_name: "Lovelace".into(),
            birth_date: "1950-03-04".into(),
            managing_org_id: org.to_string(),
        })
        .await
        .unwrap()
        .into_inner()
        .patient
        .unwrap();
    let token =
        careloop_testkit::services::token_with_roles(PrincipalKind::Staff, org, "nurse-1", &["rn"]);
    let message = GetPatientSummaryRequest {
        patient_id: patient.id.clone(),
    }
    .encode_to_vec();
    let mut body = vec![0u8];
    body.extend_from_slice(&(message.len() as u32).to_be_bytes());
    body.extend_from_slice(&message);
    let path = "/careloop.gateway.v1.GatewayService/GetPatientSummary";
    let addr = system.gateway_addr;

    // The browser's preflight first.
    let preflight = http::Request::options(format!("http://{addr}{path}"))
        .header("host", addr.to_string())
        .header("origin", "https://partner.example")
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "authorization,content-type,x-grpc-web",
        )
        .body(Full::new(Bytes::new()))
        .unwrap();
    let (parts, _) = http1(addr, preflight).await;
    assert!(parts.status.is_success(), "{:?}", parts.status);
    assert_eq!(
        parts.headers["access-control-allow-origin"],
        "https://partner.example"
    );

    let request = http::Request::post(format!("http://{addr}{path}"))
        .header("host", addr.to_string())
        .header("content-type", "application/grpc-web+proto")
        .header("x-grpc-web", "1")
        .header("origin", "https://partner.example")
        .header("authorization", format!("Bearer {token}"))
        .body(Full::new(Bytes::from(body)))
        .unwrap();
    let (parts, body) = http1(addr, request).await;
    assert_eq!(parts.status, http::StatusCode::OK);
    assert_eq!(parts.version, http::Version::HTTP_11);
    assert_eq!(
        parts.headers["access-control-allow-origin"],
        "https://partner.example"
    );
    let frames = frames(&body);
    let (flag, data) = &frames[0];
    assert_eq!(*flag, 0);
    let summary = GetPatientSummaryResponse::decode(data.as_slice()).unwrap();
    assert_eq!(summary.patient.unwrap().id, patient.id);
    let trailers = String::from_utf8(frames.last().unwrap().1.clone()).unwrap();
    assert!(frames.last().unwrap().0 & 0x80 != 0);
    assert!(trailers.contains("grpc-status:0"), "{trailers}");

    // A browser origin that is not allowed gets no CORS grant.
    let preflight = http::Request::options(format!("http://{addr}{path}"))
        .header("host", addr.to_string())
        .header("origin", "https://evil.example")
        .header("access-control-request-method", "POST")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let (parts, _) = http1(addr, preflight).await;
    assert!(!parts.headers.contains_key("access-control-allow-origin"));
}
