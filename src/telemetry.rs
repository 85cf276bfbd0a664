//! The Sentry client and the log pipeline: start-up, the envelope transport,
//! the `tracing` layers, one hub and transaction per Telegram update, error
//! reports with the bot's context, and the secret scrubber. The span tree of
//! an agent run is built in [`crate::span_tree`].

mod redact;
#[cfg(test)]
mod tests;

use std::borrow::Cow;
use std::future::Future;
use std::io::IsTerminal;
use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderValue};
use sentry::protocol::{Context, Event, Map, SpanStatus, User, Value};
use sentry::transports::ReqwestHttpTransportOptions;
use sentry::types::{Dsn, Uuid};
use sentry::{
    ClientInitGuard, ClientOptions, Hub, SentryFutureExt, TransactionContext, TransactionOrSpan,
    Transport, TransportFactory, TransportOptions,
};
use tracing::{Level, info, warn};
use tracing_subscriber::filter::{EnvFilter, LevelFilter, filter_fn};
use tracing_subscriber::prelude::*;

pub use redact::{REDACTED, redact};

/// The op of the transaction around one prompt.
pub const MESSAGE_OP: &str = "telegram.message";
/// The op of the transaction around one command.
pub const COMMAND_OP: &str = "telegram.command";
/// Commands are cheap and frequent: they are sampled at this share of the
/// configured rate.
const COMMAND_SAMPLE_SHARE: f32 = 0.1;
/// How long one envelope may take to send; a broken Sentry costs no more.
const SEND_TIMEOUT: Duration = Duration::from_secs(5);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// How long exit waits for what is still queued for Sentry.
const SHUTDOWN_FLUSH: Duration = Duration::from_secs(3);

/// What the configuration says about Sentry.
#[derive(Debug, Clone, Default)]
pub struct SentrySettings {
    /// `None` turns monitoring off.
    pub dsn: Option<String>,
    pub environment: Option<String>,
    /// Defaults to `claude-telegram-bot@<version>`.
    pub release: Option<String>,
    /// The share of prompts traced, 0.0 to 1.0; commands get a tenth of it.
    pub traces_sample_rate: f32,
    /// Records prompts, answers, tool input and output, and usernames.
    pub send_default_pii: bool,
}

/// Starts the Sentry client; keep the guard alive until exit (dropping it
/// flushes). Returns `None` when no DSN is set or the DSN does not parse
/// (the configuration checks it first). Call it before anything else, so
/// that everything after it is monitored, and [`log_status`] once logging
/// is up.
pub fn init(settings: &SentrySettings) -> Option<ClientInitGuard> {
    client_options(settings).map(sentry::init)
}

/// Says once in the log whether monitoring is on.
pub fn log_status(settings: &SentrySettings, enabled: bool) {
    match enabled {
        true => info!(
            traces_sample_rate = settings.traces_sample_rate,
            send_default_pii = settings.send_default_pii,
            "sentry monitoring is on"
        ),
        false => info!("sentry monitoring is off (SENTRY_DSN is not set)"),
    }
}

/// The client options [`init`] uses, or `None` when monitoring is off.
fn client_options(settings: &SentrySettings) -> Option<ClientOptions> {
    let dsn: Dsn = settings.dsn.as_deref()?.parse().ok()?;

    let rate = settings.traces_sample_rate.clamp(0.0, 1.0);
    let release = match &settings.release {
        Some(release) => Some(Cow::Owned(release.clone())),
        None => sentry::release_name!(),
    };
    let mut options = ClientOptions::new()
        .maybe_release(release)
        .send_default_pii(settings.send_default_pii)
        // What dropping the guard at exit waits for queued envelopes at most.
        .shutdown_timeout(SHUTDOWN_FLUSH)
        .traces_sampler(move |context| sample_rate(rate, context))
        .transport(EnvelopeTransport {
            timeout: SEND_TIMEOUT,
        })
        .before_send(|event| Some(redact_event(event)))
        .before_breadcrumb(|mut breadcrumb| {
            breadcrumb.message = breadcrumb.message.map(|m| redact(&m).into_owned());
            Some(breadcrumb)
        });
    options.dsn = Some(dsn);
    if let Some(environment) = settings.environment.clone() {
        options = options.environment(environment);
    }
    Some(options)
}

/// The sample rate of one transaction: the configured one for prompts, a
/// tenth of it for commands.
fn sample_rate(configured: f32, context: &TransactionContext) -> f32 {
    match context.operation() {
        COMMAND_OP => configured * COMMAND_SAMPLE_SHARE,
        _ => configured,
    }
}

/// Scrubs secrets from the texts an error event carries.
fn redact_event(mut event: Event<'static>) -> Event<'static> {
    event.message = event.message.map(|m| redact(&m).into_owned());
    for exception in &mut event.exception.values {
        exception.value = exception.value.take().map(|v| redact(&v).into_owned());
    }
    event
}

/// Sentry's reqwest transport on a client that labels envelopes (Spotlight
/// drops unlabelled ones) and gives up on a slow Sentry.
struct EnvelopeTransport {
    timeout: Duration,
}

impl TransportFactory for EnvelopeTransport {
    fn create_transport_with_options(&self, options: TransportOptions) -> Arc<dyn Transport> {
        let transport = ReqwestHttpTransportOptions::from(options);
        let transport = match envelope_client(self.timeout) {
            Ok(client) => transport.with_client(client),
            Err(error) => {
                warn!(%error, "could not build the sentry http client, using the default");
                transport
            }
        };
        Arc::new(transport.build())
    }
}

fn envelope_client(timeout: Duration) -> reqwest::Result<reqwest::Client> {
    let mut headers = HeaderMap::new();
    let envelope = HeaderValue::from_static("application/x-sentry-envelope");
    headers.insert(CONTENT_TYPE, envelope);
    reqwest::Client::builder()
        .default_headers(headers)
        .timeout(timeout)
        .connect_timeout(CONNECT_TIMEOUT.min(timeout))
        .build()
}

/// Installs the global log pipeline: human-readable lines on stderr,
/// filtered by `RUST_LOG` (default `info`), and with Sentry on, info and
/// warn events as breadcrumbs and error events as Sentry issues. Does
/// nothing when a subscriber is already installed.
pub fn init_tracing(sentry_enabled: bool) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let console = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_filter(filter);

    // Breadcrumbs only ride along with an error event, so they must not
    // include the error itself.
    let breadcrumbs = sentry_enabled.then(|| {
        let info_and_warn = filter_fn(|meta| matches!(*meta.level(), Level::INFO | Level::WARN));
        sentry::integrations::tracing::BreadcrumbLayer::new().with_filter(info_and_warn)
    });
    let errors = sentry_enabled
        .then(|| sentry::integrations::tracing::ErrorLayer::new().with_filter(LevelFilter::ERROR));

    let installed = tracing_subscriber::registry()
        .with(console)
        .with(breadcrumbs)
        .with(errors)
        .try_init();
    if installed.is_err() {
        warn!("a log subscriber was already installed");
    }
}

/// Whether the running client records prompts, output and usernames.
pub fn records_pii() -> bool {
    Hub::current()
        .client()
        .is_some_and(|client| client.options().send_default_pii)
}

/// Which kind of Telegram update a transaction covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpdateKind {
    /// A prompt for the agent.
    Message,
    /// A command, by its name without the slash.
    Command(String),
}

/// Who sent an update, and where.
#[derive(Debug, Clone)]
pub struct Sender {
    pub user_id: u64,
    pub chat_id: i64,
    /// Recorded only when PII is on.
    pub username: Option<String>,
}

/// Runs `work` inside a hub of its own and a transaction around it: a
/// `telegram.message` transaction named `handle_message` for prompts, a
/// `telegram.command` one named `handle_command` for commands. `work` gets
/// the transaction to hang spans on; unless it set a status, the
/// transaction ends `ok` when `work` returns.
pub async fn traced_update<F, Fut, T>(kind: UpdateKind, sender: &Sender, work: F) -> T
where
    F: FnOnce(TransactionOrSpan) -> Fut,
    Fut: Future<Output = T>,
{
    let hub = Arc::new(Hub::new_from_top(Hub::current()));
    let sender = sender.clone();
    let traced = async move {
        let (name, op) = match &kind {
            UpdateKind::Message => ("handle_message", MESSAGE_OP),
            UpdateKind::Command(_) => ("handle_command", COMMAND_OP),
        };
        let transaction = sentry::start_transaction(TransactionContext::new(name, op));
        let pii = records_pii();
        sentry::configure_scope(|scope| {
            scope.set_tag("user_id", sender.user_id);
            scope.set_tag("chat_id", sender.chat_id);
            if let UpdateKind::Command(command) = &kind {
                scope.set_tag("command", command);
            }
            scope.set_user(Some(user(sender.user_id, sender.username.clone(), pii)));
            scope.set_span(Some(transaction.clone().into()));
        });

        let output = work(transaction.clone().into()).await;
        if transaction.get_status().is_none() {
            transaction.set_status(SpanStatus::Ok);
        }
        transaction.finish();
        output
    };
    traced.bind_hub(hub).await
}

fn user(id: u64, username: Option<String>, pii: bool) -> User {
    User {
        id: Some(id.to_string()),
        username: username.filter(|_| pii),
        ..Default::default()
    }
}

/// What an error report says about the run that failed.
#[derive(Debug, Clone, Default)]
pub struct FailureContext {
    pub user_id: u64,
    /// Sent only when PII is on.
    pub username: Option<String>,
    pub session_id: Option<String>,
    pub working_directory: String,
    /// The user's message; only its length is sent unless PII is on.
    pub message: String,
    pub allowed_tools: Vec<String>,
    pub model: Option<String>,
    pub permission_mode: String,
    /// How the CLI exited, when it ran: the code and its last stderr lines
    /// (scrubbed of secrets), which usually say why it failed.
    pub exit_code: Option<i32>,
    pub stderr_tail: String,
}

/// How much of the user's message an error report shows, with PII on.
const PREVIEW_CHARS: usize = 100;

/// Sends one error event for `error` to the current hub, linked to its
/// trace, with the user, the CLI session, the message and the bot's
/// configuration as contexts. Returns the event id (nil when Sentry is off).
pub fn capture_failure(error: &dyn std::error::Error, failure: &FailureContext) -> Uuid {
    let pii = records_pii();
    let mut event = sentry::event_from_error(error);
    event.user = Some(user(failure.user_id, failure.username.clone(), pii));

    let mut session = Map::new();
    session.insert("id".into(), failure.session_id.clone().into());
    let directory = failure.working_directory.clone();
    session.insert("working_directory".into(), directory.into());

    let mut message = Map::new();
    let length = failure.message.chars().count();
    message.insert("length".into(), length.into());
    if pii {
        let preview: String = failure.message.chars().take(PREVIEW_CHARS).collect();
        message.insert("preview".into(), redact(&preview).into_owned().into());
    }

    let mut bot = Map::new();
    let tools: Vec<Value> = failure
        .allowed_tools
        .iter()
        .map(|t| t.as_str().into())
        .collect();
    bot.insert("allowed_tools".into(), tools.into());
    bot.insert("model".into(), failure.model.clone().into());
    let mode = failure.permission_mode.clone();
    bot.insert("permission_mode".into(), mode.into());

    for (key, context) in [("session", session), ("message", message), ("bot", bot)] {
        event.contexts.insert(key.into(), Context::Other(context));
    }
    if failure.exit_code.is_some() || !failure.stderr_tail.is_empty() {
        let mut process = Map::new();
        process.insert("exit_code".into(), failure.exit_code.into());
        let tail = redact(&failure.stderr_tail).into_owned();
        process.insert("stderr_tail".into(), tail.into());
        let process = Context::Other(process);
        event.contexts.insert("process".into(), process);
    }
    Hub::current().capture_event(event)
}
