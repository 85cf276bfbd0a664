//! Placeholder until the Sentry branch lands.

pub fn init(_: &crate::config::SentryConfig) -> Option<()> {
    None
}

pub fn init_tracing(_: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}
