use careloop_gateway::settings::GatewaySettings;
use careloop_runtime::{config::Settings, server::shutdown_signal, telemetry};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let file = careloop_runtime::config::config_flag();
    let settings = Settings::load(file.as_deref())?;
    let own = GatewaySettings::load(file.as_deref())?;
    let _telemetry = telemetry::init(careloop_gateway::SERVICE_NAME, &settings.telemetry)?;
    if careloop_runtime::config::migrate_only_flag() {
        return careloop_gateway::Application::migrate(&settings).await;
    }
    let app = careloop_gateway::Application::build(settings, own).await?;
    app.run_until_stopped(shutdown_signal()).await
}
