//! The `claude-telegram-bot` binary: configuration, monitoring, then the bot.

use std::process::ExitCode;

use claude_telegram_bot::bot;
use claude_telegram_bot::config::{Config, SentryConfig};
use claude_telegram_bot::telemetry::{self, SentrySettings};
use tracing::error;

fn main() -> ExitCode {
    // A missing .env is normal; the environment alone may configure the bot.
    if let Err(error) = dotenvy::dotenv()
        && !error.not_found()
    {
        eprintln!("invalid configuration:\n  - .env could not be read: {error}");
        return ExitCode::from(2);
    }
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(problems) => {
            eprintln!("{problems}");
            return ExitCode::from(2);
        }
    };

    // Sentry first, so that everything after it is monitored; the guard
    // flushes what is left when main returns.
    let settings = sentry_settings(&config.sentry);
    let sentry = telemetry::init(&settings);
    telemetry::init_tracing(sentry.is_some());
    telemetry::log_status(&settings, sentry.is_some());

    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(problem) => {
            error!(%problem, "could not start the async runtime");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(bot::serve(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(problem) => {
            error!("{problem:#}");
            ExitCode::FAILURE
        }
    }
}

fn sentry_settings(config: &SentryConfig) -> SentrySettings {
    SentrySettings {
        dsn: config.dsn.clone(),
        environment: Some(config.environment.clone()),
        release: Some(config.release.clone()),
        traces_sample_rate: config.traces_sample_rate,
        send_default_pii: config.send_default_pii,
    }
}
