//! The running bot: what every handler and turn shares, start-up (who am I,
//! the command menu, prompts a crash left unanswered), the update loop, and
//! shutdown on SIGINT or SIGTERM.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use teloxide::dispatching::{Dispatcher, UpdateFilterExt};
use teloxide::error_handlers::LoggingErrorHandler;
use teloxide::prelude::*;
use teloxide::types::{MessageId, ThreadId};
use teloxide::update_listeners::{Polling, UpdateListener};
use teloxide::{ApiError, RequestError};
use tokio::signal::unix::{SignalKind, signal};
use tracing::{error, info, warn};

use crate::agent::run::AgentSettings;
use crate::config::{Config, SECRET_VARS};
use crate::queue::{Job, Queue};
use crate::store::{self, ChatState, Store, StoreError};
use crate::telegram::delivery::Outbox;
use crate::telegram::{commands, handlers, replies};
use crate::turn::TurnRunner;
use crate::workspace::Workspace;

/// Long polling timeout: under the HTTP client's own 17 s limit.
const POLL_TIMEOUT: Duration = Duration::from_secs(10);
/// Unanswered prompts older than this are not run again after a restart.
const RECOVERY_WINDOW_SECS: i64 = 3600;

/// What handlers and turns share for the life of the process.
pub struct App {
    pub config: Config,
    pub store: Store,
    pub workspace: Workspace,
    pub agent: AgentSettings,
    pub bot: Bot,
    /// The bot's own username, for commands addressed `/cmd@name`.
    pub username: String,
}

/// The queue type of this bot.
pub type BotQueue = Queue<TurnRunner>;

impl App {
    /// The chat's stored state, or that of a new chat: in WORKING_DIRECTORY,
    /// with no conversation yet.
    pub fn chat(&self, chat_id: i64) -> Result<ChatState, StoreError> {
        let stored = self.store.chat(chat_id)?;
        Ok(stored.unwrap_or_else(|| ChatState {
            chat_id,
            working_directory: self.config.working_directory.clone(),
            session_id: None,
            created_at: 0,
            updated_at: 0,
            last_run: None,
        }))
    }

    /// Where replies to a chat (and forum topic) go.
    pub fn outbox(&self, chat_id: i64, thread_id: Option<i32>) -> Outbox {
        let thread_id = thread_id.map(|id| ThreadId(MessageId(id)));
        Outbox::new(self.bot.clone(), ChatId(chat_id), thread_id)
    }
}

/// Runs the bot until SIGINT or SIGTERM.
pub async fn serve(config: Config) -> anyhow::Result<()> {
    let store = Store::open(&config.database_path).with_context(|| {
        format!(
            "opening the state database {}",
            config.database_path.display()
        )
    })?;
    let workspace = Workspace::new(&config.workspace_root)
        .with_context(|| format!("opening the workspace {}", config.workspace_root.display()))?;
    let api_url = config
        .telegram_api_url
        .parse()
        .context("reading TELEGRAM_API_URL")?;
    let bot = Bot::new(&config.telegram_token).set_api_url(api_url);
    let me = bot
        .get_me()
        .await
        .map_err(|error| start_up_error(&config, error))?;
    let username = me.username.clone().unwrap_or_default();
    if let Err(error) = bot.set_my_commands(commands::menu()).await {
        warn!(%error, "could not set the command menu");
    }
    if config.allowed_user_ids.is_empty() {
        warn!("ALLOWED_USER_IDS is empty: the bot will answer nobody");
    }
    info!(
        username,
        allowed_users = config.allowed_user_ids.len(),
        "bot started"
    );

    let agent = agent_settings(&config);
    let grace = config.shutdown_grace;
    let (max_runs, max_waiting) = (config.max_concurrent_runs, config.max_queued_per_chat);
    let app = Arc::new(App {
        config,
        store,
        workspace,
        agent,
        bot: bot.clone(),
        username,
    });
    let queue = Queue::new(TurnRunner { app: app.clone() }, max_runs, max_waiting);
    recover(&app, &queue).await;

    let handler = Update::filter_message().endpoint(handlers::handle_message);
    let mut dispatcher = Dispatcher::builder(bot.clone(), handler)
        .dependencies(dptree::deps![app.clone(), queue.clone()])
        .default_handler(|_| async {})
        .build();
    let mut listener = Polling::builder(bot).timeout(POLL_TIMEOUT).build();
    // Stopping the listener, rather than the dispatcher's shutdown token:
    // that token's wake-up is lost while the dispatcher handles an update,
    // and the bot then polls on forever. A stopped listener always ends the
    // dispatcher, after the poll under way.
    let stop_polling = listener.stop_token();
    let closing = queue.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        info!("shutting down: no more updates");
        // Prompts still in flight are journaled and told they run later.
        closing.close();
        stop_polling.stop();
    });

    let errors = LoggingErrorHandler::with_custom_text("telegram update listener failed");
    dispatcher.dispatch_with_listener(listener, errors).await;

    queue.shutdown(grace).await;
    info!("stopped");
    Ok(())
}

/// Why the first call to the Bot API failed, in words that point at the fix.
fn start_up_error(config: &Config, error: RequestError) -> anyhow::Error {
    let url = &config.telegram_api_url;
    match error {
        RequestError::Api(ApiError::InvalidToken) => anyhow::anyhow!(
            "the Telegram Bot API at {url} refused the bot token: check TELEGRAM_BOT_TOKEN"
        ),
        RequestError::Network(_) => anyhow::Error::new(error).context(format!(
            "could not reach the Telegram Bot API at {url} (network, proxy or \
             TELEGRAM_API_URL?)"
        )),
        other => anyhow::Error::new(other).context(format!(
            "asking the Telegram Bot API at {url} who this bot is"
        )),
    }
}

/// The CLI invocation every run uses.
fn agent_settings(config: &Config) -> AgentSettings {
    AgentSettings {
        program: config.claude_bin.clone(),
        model: config.claude_model.clone(),
        allowed_tools: config.allowed_tools.clone(),
        permission_mode: config.permission_mode.clone(),
        max_turns: config.max_turns,
        timeout: config.claude_timeout,
        env_remove: SECRET_VARS.iter().map(|name| name.to_string()).collect(),
    }
}

/// Answers what a crash or kill left behind: prompts that never started run
/// now; prompts that were running are reported as interrupted.
async fn recover(app: &App, queue: &Arc<BotQueue>) {
    let cutoff = store::now() - RECOVERY_WINDOW_SECS;
    if let Err(error) = app.store.abandon_older_than(cutoff) {
        error!(%error, "could not drop old unanswered prompts");
    }
    let pending = match app.store.unfinished_since(cutoff) {
        Ok(pending) => pending,
        Err(error) => {
            error!(%error, "could not read unanswered prompts");
            return;
        }
    };

    for prompt in pending {
        info!(
            chat_id = prompt.chat_id,
            started = prompt.started,
            "recovering a prompt"
        );
        if prompt.started {
            let outbox = app.outbox(prompt.chat_id, prompt.thread_id);
            let reply = outbox.send_html(&replies::interrupted_by_restart()).await;
            if let Err(error) = reply {
                warn!(%error, chat_id = prompt.chat_id, "could not report an interrupted prompt");
            }
            if let Err(error) = app.store.mark_done(prompt.id) {
                error!(%error, "could not close an interrupted prompt");
            }
            continue;
        }
        queue.submit(Job {
            prompt_id: prompt.id,
            chat_id: prompt.chat_id,
            thread_id: prompt.thread_id,
            message_id: prompt.message_id,
            user_id: prompt.user_id,
            username: None,
            text: prompt.text,
        });
    }
}

async fn wait_for_signal() {
    let mut terminate = match signal(SignalKind::terminate()) {
        Ok(terminate) => terminate,
        Err(error) => {
            error!(%error, "cannot listen for SIGTERM");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
}
