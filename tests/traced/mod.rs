//! One bot reporting to a fresh Sentry double, with the stand-in CLI,
//! shared by `sentry_traces.rs` and `sentry_errors.rs`: starting it, sending
//! a prompt and waiting for its transaction, and finding spans.
#![allow(dead_code)]

use std::time::Duration;

use sentry::protocol::{Span, Transaction};

use crate::support::bot_process::BotProcess;
use crate::support::fake_claude::FakeClaude;
use crate::support::sentry_api::SentryApi;
use crate::support::telegram_api::BotApi;

/// The allowed user, writing in their private chat.
pub const USER: i64 = 4242;
pub const WAIT: Duration = Duration::from_secs(30);

/// The bot, its doubles and the stand-in CLI of one test.
pub struct Traced {
    pub telegram: BotApi,
    pub sentry: SentryApi,
    pub fake: FakeClaude,
    pub bot: BotProcess,
}

/// Starts a bot reporting to a fresh Sentry double, with `env` on top of
/// the defaults; every CLI run replays `script`.
pub async fn start(script: Vec<String>, env: &[(&str, &str)]) -> Traced {
    let telegram = BotApi::start().await;
    let sentry = SentryApi::start().await;
    let fake = FakeClaude::new();
    fake.default_script(script);
    let mut builder = BotProcess::builder()
        .telegram(&telegram)
        .allowed_users(&[USER])
        .fake_claude(&fake)
        .sentry(&sentry);
    for (key, value) in env {
        builder = builder.env(key, *value);
    }
    let bot = builder.start();
    Traced {
        telegram,
        sentry,
        fake,
        bot,
    }
}

impl Traced {
    /// Sends `prompt` and waits for the `n`-th transaction; returns it.
    pub async fn prompt(&self, prompt: &str, n: usize) -> Transaction<'static> {
        self.telegram.push_text(USER, USER, prompt);
        let transactions = self.sentry.wait_for_transactions(n, WAIT).await;
        transactions[n - 1].clone()
    }

    /// Stops the bot and waits for it to exit: after that, everything it
    /// queued for Sentry has been sent.
    pub async fn stop(mut self) -> SentryApi {
        self.bot.terminate();
        self.bot.wait_exit(WAIT).await;
        self.sentry
    }
}

/// The transaction's spans with `op`, in the order they were recorded.
pub fn spans<'a>(transaction: &'a Transaction, op: &str) -> Vec<&'a Span> {
    let spans = transaction.spans.iter();
    spans
        .filter(|span| span.op.as_deref() == Some(op))
        .collect()
}

/// The transaction's one span with `op`.
pub fn only<'a>(transaction: &'a Transaction, op: &str) -> &'a Span {
    let found = spans(transaction, op);
    assert_eq!(found.len(), 1, "spans with op {op}: {found:#?}");
    found[0]
}
