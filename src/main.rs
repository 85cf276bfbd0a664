//! The `claude-telegram-bot` binary: configuration, monitoring, then the bot.

use std::process::ExitCode;

use claude_telegram_bot::{bot, config::Config, telemetry};
use tracing::error;

fn main() -> ExitCode {
    // A missing .env is normal; the environment alone may configure the bot.
    let _ = dotenvy::dotenv();
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(problems) => {
            eprintln!("{problems}");
            return ExitCode::from(2);
        }
    };

    // Sentry first, so that everything after it is monitored; the guard
    // flushes what is left when main returns.
    let sentry = telemetry::init(&config.sentry);
    telemetry::init_tracing(sentry.is_some());

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
