use careloop_metrics::settings::MetricsSettings;
use careloop_runtime::{config::Settings, server::shutdown_signal, telemetry};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let file = careloop_runtime::config::config_flag();
    let settings = Settings::load(file.as_deref())?;
    let own = MetricsSettings::load(file.as_deref())?;
    let _telemetry = telemetry::init(careloop_metrics::SERVICE_NAME, &settings.telemetry)?;
    if careloop_runtime::config::migrate_only_flag() {
        return careloop_metrics::Application::migrate(&settings).await;
    }
    let app = careloop_metrics::Application::build(settings, own).await?;
    app.run_until_stopped(shutdown_signal()).await
}
