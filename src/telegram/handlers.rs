//! What happens when a message arrives: strangers are refused, commands
//! answer at once, and prompts are journaled and queued. Nothing here waits
//! for an agent run, so a chat's `/stop` and `/status` are never stuck
//! behind one.

use std::sync::Arc;

use teloxide::prelude::*;
use teloxide::types::User;
use tracing::{error, info, warn};

use super::commands::{self, Command, Input};
use super::delivery::Outbox;
use super::html::escape;
use super::replies;
use crate::bot::{App, BotQueue};
use crate::queue::{Job, Placement};
use crate::store::NewPrompt;
use crate::telemetry::{self, Sender, UpdateKind};
use crate::workspace::SEARCH_LIMIT;

/// The one endpoint of the dispatcher.
pub async fn handle_message(
    message: Message,
    app: Arc<App>,
    queue: Arc<BotQueue>,
) -> anyhow::Result<()> {
    // Channel posts have no sender, and no one to allow.
    let Some(user) = message.from.as_ref() else {
        return Ok(());
    };
    let chat_id = message.chat.id.0;
    let thread_id = message.thread_id.map(|thread| thread.0.0);
    let outbox = app.outbox(chat_id, thread_id);

    // Another bot's command is none of our business, whoever sent it.
    let input = message
        .text()
        .map(|text| commands::parse(text, &app.username));
    if input == Some(Input::NotForUs) {
        return Ok(());
    }
    if !app.config.allows(user.id.0) {
        warn!(
            user_id = user.id.0,
            chat_id, "refused a user who is not allowed"
        );
        outbox.send_html(&replies::refusal(user.id)).await?;
        return Ok(());
    }
    let (Some(text), Some(input)) = (message.text(), input) else {
        outbox.send_html(&replies::text_only()).await?;
        return Ok(());
    };

    match input {
        Input::NotForUs => Ok(()),
        Input::Prompt => accept_prompt(&app, &queue, &outbox, &message, user, text).await,
        Input::Command(command) => {
            let name = command_name(&command);
            info!(chat_id, command = name, "command");
            let sender = Sender {
                user_id: user.id.0,
                chat_id,
                username: user.username.clone(),
            };
            let kind = UpdateKind::Command(name.to_owned());
            telemetry::traced_update(kind, &sender, |transaction| async move {
                let reply = answer_command(&app, &queue, chat_id, command);
                let sending = transaction.start_child("telegram.send", "send the reply");
                let sent = outbox.send_html(&reply).await;
                sending.finish();
                sent
            })
            .await?;
            Ok(())
        }
    }
}

/// Journals a prompt, then queues it; the journal entry comes first so that
/// an acknowledged prompt survives a crash.
async fn accept_prompt(
    app: &App,
    queue: &Arc<BotQueue>,
    outbox: &Outbox,
    message: &Message,
    user: &User,
    text: &str,
) -> anyhow::Result<()> {
    let chat_id = message.chat.id.0;
    let thread_id = message.thread_id.map(|thread| thread.0.0);
    let entry = NewPrompt {
        chat_id,
        thread_id,
        message_id: message.id.0,
        user_id: user.id.0,
        text,
    };
    let prompt_id = match app.store.accept_prompt(&entry) {
        Ok(id) => id,
        Err(error) => {
            error!(%error, chat_id, "could not journal a prompt");
            outbox.send_html(&replies::internal_error()).await?;
            return Ok(());
        }
    };
    info!(
        chat_id,
        user_id = user.id.0,
        prompt_id,
        length = text.len(),
        "prompt accepted"
    );

    let job = Job {
        prompt_id,
        chat_id,
        thread_id,
        message_id: message.id.0,
        user_id: user.id.0,
        username: user.username.clone(),
        text: text.to_owned(),
    };
    let reply = match queue.submit(job) {
        Placement::Next => return Ok(()),
        Placement::Queued { position } => replies::queued(position),
        Placement::Full => {
            app.store.mark_done(prompt_id)?;
            replies::queue_full(app.config.max_queued_per_chat)
        }
        // It stays journaled and runs after the restart.
        Placement::Closed => replies::closed(),
    };
    outbox.send_html(&reply).await?;
    Ok(())
}

fn command_name(command: &Command) -> &'static str {
    match command {
        Command::Help => "help",
        Command::New => "new",
        Command::Cd(_) => "cd",
        Command::Pwd => "pwd",
        Command::SearchCwd(_) => "searchcwd",
        Command::Status => "status",
        Command::Stop { .. } => "stop",
        Command::Unknown(_) => "unknown",
    }
}

/// The reply to a command. Commands only touch the store and the queue, so
/// they answer at once, even while the chat's agent runs.
fn answer_command(app: &App, queue: &BotQueue, chat_id: i64, command: Command) -> String {
    let chat = match app.chat(chat_id) {
        Ok(chat) => chat,
        Err(error) => {
            error!(%error, chat_id, "could not load the chat's state");
            return replies::internal_error();
        }
    };
    let cwd = &chat.working_directory;
    let shown_cwd = app.workspace.display(cwd);

    match command {
        Command::Help => replies::help(&shown_cwd),
        Command::Pwd => format!("📁 <code>{}</code>", escape(&shown_cwd)),
        Command::New => match app.store.set_session(chat_id, None, cwd) {
            Ok(()) => replies::new_conversation(&shown_cwd),
            Err(error) => {
                error!(%error, chat_id, "could not forget the session");
                replies::internal_error()
            }
        },
        Command::Cd(target) => change_directory(app, chat_id, cwd, &target),
        Command::SearchCwd(needle) if needle.is_empty() => {
            "Usage: <code>/searchcwd &lt;part of a directory name&gt;</code>".to_owned()
        }
        Command::SearchCwd(needle) => {
            // It reads the disk: keep the other tasks of this thread moving.
            let found = tokio::task::block_in_place(|| app.workspace.search(&needle));
            let shown: Vec<String> = found.iter().map(|p| app.workspace.display(p)).collect();
            replies::search_results(&needle, &shown, SEARCH_LIMIT)
        }
        Command::Status => {
            let (live, waiting) = queue.status(chat_id);
            let model = app
                .config
                .claude_model
                .as_deref()
                .unwrap_or("the CLI's default");
            replies::status(replies::StatusView {
                directory: &shown_cwd,
                session: chat.session_id.as_deref(),
                model,
                live: live.as_deref(),
                waiting,
                last_run: chat.last_run.as_ref(),
            })
        }
        Command::Stop { clear_queue } => {
            let stopped = queue.stop(chat_id, clear_queue);
            for job in &stopped.cleared {
                if let Err(error) = app.store.mark_done(job.prompt_id) {
                    error!(%error, "could not close a cleared prompt");
                }
            }
            replies::stopped(
                stopped.running,
                stopped.cleared.len(),
                stopped.still_waiting,
            )
        }
        Command::Unknown(name) => replies::unknown_command(&name),
    }
}

fn change_directory(app: &App, chat_id: i64, cwd: &std::path::Path, target: &str) -> String {
    let resolved = match app.workspace.resolve(cwd, target) {
        Ok(path) => path,
        Err(error) => return replies::cd_refused(&error.to_string()),
    };
    match app.store.set_working_directory(chat_id, &resolved) {
        Ok(()) => replies::moved(&app.workspace.display(&resolved)),
        Err(error) => {
            error!(%error, chat_id, "could not save the directory");
            replies::internal_error()
        }
    }
}
