//! The gRPC server bootstrap every service uses: health (NOT_SERVING until the service says it is
//! ready), reflection over all CareLoop protos, tower layers (per-call span and metrics, global
//! concurrency limit, request timeout) and graceful shutdown.

use crate::config::GrpcSettings;
use crate::conn::Acceptor;
use crate::metrics::Metrics;
use crate::telemetry::RequestLayer;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tonic::service::RoutesBuilder;
pub use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

pub struct GrpcServer {
    listener: TcpListener,
    acceptor: Acceptor,
    routes: RoutesBuilder,
    health: HealthReporter,
    settings: GrpcSettings,
    metrics: Arc<Metrics>,
    served: Vec<String>,
    /// gRPC-Web beside gRPC on the same port (HTTP/1.1 accepted), with this CORS policy.
    web: Option<tower_http::cors::CorsLayer>,
}

impl GrpcServer {
    /// Registers health and reflection; the overall health starts NOT_SERVING.
    pub async fn new(
        listener: TcpListener,
        acceptor: Acceptor,
        settings: GrpcSettings,
        metrics: Arc<Metrics>,
    ) -> anyhow::Result<Self> {
        let (health, health_service) = tonic_health::server::health_reporter();
        health
            .set_service_status("", tonic_health::ServingStatus::NotServing)
            .await;
        let mut routes = RoutesBuilder::default();
        routes.add_service(health_service);
        Ok(Self {
            listener,
            acceptor,
            routes,
            health,
            settings,
            metrics,
            served: Vec::new(),
            web: None,
        })
    }

    /// Also answers gRPC-Web (browsers, HTTP/1.1 clients) on the same port, under `cors`.
    pub fn enable_web(&mut self, cors: tower_http::cors::CorsLayer) {
        self.web = Some(cors);
        // HTTP/1.1 clients (gRPC-Web through a proxy, curl --http1.1) offer only http/1.1 in the
        // TLS handshake: advertise it beside h2 so they are not refused before the first byte.
        if let Some(tls) = &self.acceptor.tls {
            let mut config = (**tls.config()).clone();
            config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
            self.acceptor.tls = Some(tokio_rustls::TlsAcceptor::from(Arc::new(config)));
        }
    }

    pub fn routes(&mut self) -> &mut RoutesBuilder {
        &mut self.routes
    }

    /// Marks the server and the named gRPC services SERVING (call once migrations ran).
    pub async fn mark_serving(&mut self, services: &[&str]) {
        for name in services {
            self.health
                .set_service_status(*name, ServingStatus::Serving)
                .await;
            self.served.push((*name).to_owned());
        }
        self.health
            .set_service_status("", ServingStatus::Serving)
            .await;
    }

    /// Serves until `shutdown` resolves; then health turns NOT_SERVING and in-flight calls drain.
    /// Reflection advertises only what this server serves (and health and reflection themselves).
    pub async fn serve(mut self, shutdown: impl Future<Output = ()> + Send) -> anyhow::Result<()> {
        let mut reflection = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(careloop_proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .with_service_name("grpc.health.v1.Health")
            .with_service_name("grpc.reflection.v1.ServerReflection");
        for name in &self.served {
            reflection = reflection.with_service_name(name.clone());
        }
        self.routes.add_service(reflection.build_v1()?);
        let health = self.health.clone();
        let served = self.served.clone();
        let grace = Duration::from_millis(self.settings.shutdown_grace_ms);
        let known = Arc::new(known_methods(&served));
        let web = self.web.is_some();
        let layers = tower::ServiceBuilder::new()
            .layer(RequestLayer::new(self.metrics, known))
            .layer(crate::limits::ConcurrencyLayer::new(
                self.settings.concurrency_limit,
            ))
            .option_layer(self.web)
            .option_layer(web.then(tonic_web::GrpcWebLayer::new))
            .into_inner();
        let incoming = crate::conn::incoming(self.listener, self.acceptor);
        tonic::transport::Server::builder()
            .accept_http1(web)
            .timeout(Duration::from_millis(self.settings.request_timeout_ms))
            .layer(layers)
            .add_routes(self.routes.routes())
            .serve_with_incoming_shutdown(incoming, async move {
                shutdown.await;
                for name in served.iter().map(String::as_str).chain([""]) {
                    health
                        .set_service_status(name, ServingStatus::NotServing)
                        .await;
                }
                tracing::info!(
                    grace_ms = grace.as_millis() as u64,
                    "shutting down: not serving, then draining"
                );
                tokio::time::sleep(grace).await;
            })
            .await?;
        Ok(())
    }
}

/// The request paths this server answers: every method of the services it serves, health and
/// reflection. Metrics label anything else `unknown`, so random paths cannot grow the metrics page.
fn known_methods(served: &[String]) -> std::collections::HashSet<String> {
    use prost::Message;
    let mut known: std::collections::HashSet<String> = [
        "/grpc.health.v1.Health/Check",
        "/grpc.health.v1.Health/Watch",
        "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect();
    let Ok(files) = prost_types::FileDescriptorSet::decode(careloop_proto::FILE_DESCRIPTOR_SET)
    else {
        return known;
    };
    for file in files.file {
        let package = file.package.unwrap_or_default();
        for service in file.service {
            let name = format!("{package}.{}", service.name.unwrap_or_default());
            if !served.contains(&name) {
                continue;
            }
            for method in service.method {
                known.insert(format!("/{name}/{}", method.name.unwrap_or_default()));
            }
        }
    }
    known
}

/// Resolves on ctrl-c or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut sig) => {
                sig.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
}
