use careloop_runtime::{config::Settings, server::shutdown_signal, telemetry};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = Settings::load(careloop_runtime::config::config_flag().as_deref())?;
    let _telemetry = telemetry::init(careloop_plans::SERVICE_NAME, &settings.telemetry)?;
    if careloop_runtime::config::migrate_only_flag() {
        return careloop_plans::Application::migrate(&settings).await;
    }
    let app = careloop_plans::Application::build(settings).await?;
    app.run_until_stopped(shutdown_signal()).await
}
