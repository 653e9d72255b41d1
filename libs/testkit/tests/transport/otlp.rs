use careloop_runtime::conn::{Acceptor, incoming};
use careloop_runtime::tls::{ClientAuth, server_config};
use careloop_testkit::TestCa;
use opentelemetry::trace::{Tracer, TracerProvider as _};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use std::sync::Arc;
use tokio::sync::mpsc;

/// A collector that reports the names of the spans it receives.
struct Collector(mpsc::UnboundedSender<String>);

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        for resource in request.into_inner().resource_spans {
            for scope in resource.scope_spans {
                for span in scope.spans {
                    let _ = self.0.send(span.name);
                }
            }
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

/// A TLS-only OTLP collector on a free loopback port, with a certificate from `ca`.
async fn tls_collector(ca: &TestCa) -> (u16, mpsc::UnboundedReceiver<String>) {
    let files = ca.issue("collector", TestCa::local_names(), "localhost");
    let config = server_config(&ca.settings(&files), ClientAuth::None).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let acceptor = Acceptor {
        tls: Some(tokio_rustls::TlsAcceptor::from(Arc::new(config))),
        trust_domain: Arc::from("careloop"),
    };
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(Collector(tx)))
            .serve_with_incoming(incoming(listener, acceptor)),
    );
    (port, rx)
}

/// Exports one span named `name` through the service's exporter and flushes.
async fn export_one(settings: careloop_runtime::config::TelemetrySettings, name: &'static str) {
    let exporter = careloop_runtime::telemetry::otlp_exporter(&settings).unwrap();
    let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .build();
    provider.tracer("test").in_span(name, |_| {});
    // The batch processor flushes on its own thread; the export itself runs on this runtime.
    tokio::task::spawn_blocking(move || {
        let _ = provider.force_flush();
        let _ = provider.shutdown();
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_reach_a_tls_collector_verified_with_the_ca_and_not_one_with_another() {
    let ca = TestCa::new("careloop test ca");
    let (port, mut received) = tls_collector(&ca).await;
    let mut settings = careloop_runtime::config::Settings::defaults().telemetry;
    settings.otlp_endpoint = format!("https://localhost:{port}");
    settings.otlp_ca_file = ca.ca_file.display().to_string();
    export_one(settings.clone(), "verified-span").await;
    assert_eq!(received.recv().await.as_deref(), Some("verified-span"));

    let stranger = TestCa::new("another ca");
    settings.otlp_ca_file = stranger.ca_file.display().to_string();
    export_one(settings, "unverified-span").await;
    assert!(
        received.try_recv().is_err(),
        "nothing is sent to a collector whose certificate does not verify"
    );
}
