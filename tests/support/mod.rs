//! Test doubles and the bot harness shared by the end-to-end tests.
//!
//! Each double is a real HTTP server on `127.0.0.1:0` speaking the real
//! protocol: [`telegram_api`] for the Bot API, [`anthropic_api`] for the
//! Messages API the Claude CLI calls, [`sentry_api`] for envelopes. A
//! [`fake_claude`] script stands in for the CLI, and [`bot_process`] runs the
//! real bot binary against all of them.
#![allow(dead_code)]

mod anthropic_answer;
pub mod anthropic_api;
pub mod bot_process;
pub mod fake_claude;
pub mod sentry_api;
pub mod telegram_api;
pub mod telegram_html;
mod telegram_methods;
mod telegram_server;

use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::DefaultBodyLimit;

/// How often [`wait_for`] looks at the recorded state again.
const POLL_INTERVAL: Duration = Duration::from_millis(20);

/// Bodies up to this size are accepted: documents go up to 50 MB.
pub const MAX_BODY_BYTES: usize = 64 * 1024 * 1024;

/// Polls `probe` until it returns `Ok`, for at most `timeout`.
///
/// `probe` answers `Err(what it saw)`; on timeout that text goes into the
/// panic message, so a failing test shows what was recorded instead.
pub async fn wait_for<T>(
    what: &str,
    timeout: Duration,
    mut probe: impl FnMut() -> Result<T, String>,
) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        match probe() {
            Ok(found) => return found,
            Err(seen) if Instant::now() >= deadline => {
                panic!("timed out after {timeout:?} waiting for {what}; recorded:\n{seen}")
            }
            Err(_) => tokio::time::sleep(POLL_INTERVAL).await,
        }
    }
}

/// Serves `router` on a fresh loopback port from the current tokio runtime.
///
/// Returns the base URL without a trailing slash. The server lives as long as
/// the runtime: each `#[tokio::test]` has its own.
pub async fn serve(router: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("binding a loopback port");
    let address = listener.local_addr().expect("reading the bound address");
    let router = router.layer(DefaultBodyLimit::max(MAX_BODY_BYTES));

    tokio::spawn(async move {
        axum::serve(listener, router)
            .await
            .expect("serving a test double");
    });
    format!("http://{address}")
}

/// Cuts `text` to at most `max` characters for a panic message.
pub fn abbreviate(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None => text.to_owned(),
    }
}
