//! Tests of the test doubles themselves, each against the real client it
//! stands in for: teloxide, the pinned Claude CLI, the Sentry SDK, and the
//! shell for the fake CLI.

mod support;

#[path = "doubles/bot_api.rs"]
mod bot_api;
#[path = "doubles/fake_cli.rs"]
mod fake_cli;
#[path = "doubles/messages_api.rs"]
mod messages_api;
#[path = "doubles/sentry_ingest.rs"]
mod sentry_ingest;
#[path = "doubles/telegram_html.rs"]
mod telegram_html;
