use careloop_runtime::events::EventBus;
use careloop_runtime::secret::Secret;
use careloop_testkit::{NatsServer, TestCa, event_settings};
use std::io::{Read, Write};

/// One user per service, publishing only its own event subjects (and the JetStream API it needs);
/// the same permissions the cluster's NATS configuration gives (k8s/nats-values.yaml).
fn authorization(prefix: &str) -> String {
    let user = |name: &str, own: &str| {
        format!(
            r#"{{ user: "{name}", password: "{name}-secret", permissions: {{
                publish: {{ allow: ["{prefix}.{own}.>", "{prefix}_dlq.>", "$JS.API.INFO", "$JS.API.STREAM.INFO.*",
                                    "$JS.API.STREAM.CREATE.*", "$JS.API.STREAM.UPDATE.*", "$JS.API.CONSUMER.>", "$JS.ACK.>"] }},
                subscribe: {{ allow: ["_INBOX.>"] }} }} }}"#
        )
    };
    format!(
        "authorization {{ users = [ {}, {} ] }}",
        user("plans", "plans"),
        user("referrals", "referrals")
    )
}

async fn secure_nats(ca: &TestCa, prefix: &str) -> NatsServer {
    let server = ca.issue("nats-server", TestCa::local_names(), "localhost");
    let body = format!(
        "tls {{ cert_file: \"{}\", key_file: \"{}\", ca_file: \"{}\", timeout: 2 }}\n{}",
        server.cert_file.display(),
        server.key_file.display(),
        ca.ca_file.display(),
        authorization(prefix)
    );
    NatsServer::start_with_config(&body)
        .await
        .expect("private nats with tls")
}

fn settings_for(
    nats: &NatsServer,
    ca: &TestCa,
    user: &str,
) -> careloop_runtime::config::EventSettings {
    let mut settings = event_settings(&format!("tls://127.0.0.1:{}", nats.port()));
    settings.tls = true;
    settings.ca_file = ca.ca_file.display().to_string();
    settings.user = user.into();
    settings.password = Secret::new(format!("{user}-secret"));
    settings
}

#[tokio::test]
async fn a_service_publishes_its_own_events_over_tls_but_cannot_forge_another_services() {
    let ca = TestCa::new("careloop test ca");
    let prefix = event_settings("nats://unused").subject_prefix;
    let nats = secure_nats(&ca, &prefix).await;

    let mut plans_settings = settings_for(&nats, &ca, "plans");
    plans_settings.subject_prefix = prefix.clone();
    let plans = EventBus::connect(&plans_settings)
        .await
        .expect("plans connects");
    plans
        .ensure_streams()
        .await
        .expect("plans may create the stream");
    plans
        .jetstream
        .publish(format!("{prefix}.plans.patient.created"), "p".into())
        .await
        .expect("publish")
        .await
        .expect("plans publishes its own subject");

    let mut referrals_settings = settings_for(&nats, &ca, "referrals");
    referrals_settings.subject_prefix = prefix.clone();
    referrals_settings.stream = plans_settings.stream.clone();
    let referrals = EventBus::connect(&referrals_settings)
        .await
        .expect("referrals connects");
    referrals
        .jetstream
        .publish(format!("{prefix}.referrals.referral.placed"), "r".into())
        .await
        .expect("publish")
        .await
        .expect("referrals publishes its own subject");
    let forged = async {
        referrals
            .jetstream
            .publish(format!("{prefix}.plans.patient.created"), "forged".into())
            .await?
            .await
            .map_err(anyhow::Error::from)
    }
    .await;
    assert!(forged.is_err(), "a plans event cannot come from referrals");

    let mut stream = plans
        .jetstream
        .get_stream(&plans_settings.stream)
        .await
        .unwrap();
    let info = stream.info().await.unwrap();
    assert_eq!(
        info.state.messages, 2,
        "only the two genuine events are in the stream"
    );
}

#[tokio::test]
async fn nats_refuses_a_plaintext_client_and_a_wrong_password() {
    let ca = TestCa::new("careloop test ca");
    let nats = secure_nats(&ca, "careloop").await;

    // A plaintext CONNECT is answered with an error: TLS is required.
    let mut raw = std::net::TcpStream::connect(("127.0.0.1", nats.port())).unwrap();
    raw.set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .unwrap();
    let mut info = [0u8; 4096];
    let n = raw.read(&mut info).unwrap();
    assert!(String::from_utf8_lossy(&info[..n]).contains("\"tls_required\":true"));
    let _ = raw.write_all(b"CONNECT {\"user\":\"plans\",\"pass\":\"plans-secret\"}\r\nPING\r\n");
    let mut answer = Vec::new();
    let _ = raw.read_to_end(&mut answer);
    assert!(
        !String::from_utf8_lossy(&answer).contains("PONG"),
        "a plaintext session never gets going"
    );

    let mut wrong = settings_for(&nats, &ca, "plans");
    wrong.password = Secret::new("guess");
    let client = async_nats::ConnectOptions::new()
        .user_and_password(wrong.user.clone(), wrong.password.expose().to_owned())
        .add_root_certificates(ca.ca_file.clone())
        .require_tls(true)
        .connect(wrong.nats_url.as_str())
        .await;
    assert!(client.is_err(), "a wrong password is refused");
}
