//! A turn: one accepted prompt, from the chat's state through the agent run
//! to the one reply that ends it (an answer or an error), with progress
//! shown meanwhile and the run's figures kept for `/status`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use sentry::TransactionOrSpan;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::agent::run::{self, Prompt, RunError, RunObserver, RunOutcome};
use crate::agent::wire::{Line, System};
use crate::bot::App;
use crate::queue::{Job, LiveRun, Turns};
use crate::span_tree::{RunTrace, TraceContext};
use crate::store::{self, RunFigures, Store};
use crate::telegram::answer::{self, AnswerPlan};
use crate::telegram::delivery::Outbox;
use crate::telegram::progress::{self, ProgressObserver, tool_counts};
use crate::telegram::replies;
use crate::telemetry::{self, FailureContext, Sender, UpdateKind};

/// Runs the bot's turns for the queue.
pub struct TurnRunner {
    pub app: Arc<App>,
}

impl Turns for TurnRunner {
    async fn run(&self, job: Job, live: Arc<LiveRun>) {
        let sender = Sender {
            user_id: job.user_id,
            chat_id: job.chat_id,
            username: job.username.clone(),
        };
        let app = &self.app;
        let turn = |transaction| take_turn(app, &job, &live, transaction);
        telemetry::traced_update(UpdateKind::Message, &sender, turn).await;
        close(&self.app.store, &job);
    }

    async fn panicked(&self, job: Job) {
        let outbox = self.app.outbox(job.chat_id, job.thread_id);
        if let Err(error) = outbox.send_html(&replies::internal_error()).await {
            warn!(%error, chat_id = job.chat_id, "could not report an internal error");
        }
        close(&self.app.store, &job);
    }
}

/// Marks the job's prompt answered, so a restart does not run it again.
fn close(store: &Store, job: &Job) {
    if let Err(error) = store.mark_done(job.prompt_id) {
        error!(%error, prompt_id = job.prompt_id, "could not close a prompt");
    }
}

async fn take_turn(app: &App, job: &Job, live: &LiveRun, transaction: TransactionOrSpan) {
    let outbox = app.outbox(job.chat_id, job.thread_id);
    let loading = transaction.start_child("db.sql.query", "load chat state");
    if let Err(error) = app.store.mark_started(job.prompt_id) {
        error!(%error, "could not mark a prompt started");
    }
    let (cwd, session) = chat_state(app, job.chat_id);
    loading.finish();
    info!(
        chat_id = job.chat_id,
        resume = session.is_some(),
        "turn started"
    );
    let failure_context = FailureContext {
        user_id: job.user_id,
        username: job.username.clone(),
        session_id: session.clone(),
        working_directory: cwd.display().to_string(),
        message: job.text.clone(),
        allowed_tools: app.config.allowed_tools.clone(),
        model: app.config.claude_model.clone(),
        permission_mode: app.config.permission_mode.clone(),
        ..FailureContext::default()
    };

    if live.cancel.is_cancelled() {
        let reply = replies::failure(&RunError::Cancelled, live.stop_cause());
        deliver_reply(&outbox, &reply).await;
        return;
    }
    if !cwd.is_dir() || !app.workspace.contains(&cwd) {
        let error = MissingDirectory(cwd.display().to_string());
        telemetry::capture_failure(&error, &failure_context);
        let reply = replies::directory_gone(&app.workspace.display(&cwd));
        deliver_reply(&outbox, &reply).await;
        return;
    }

    let done = CancellationToken::new();
    let typing = tokio::spawn(progress::keep_typing(outbox.clone(), done.clone()));
    let status = tokio::spawn(progress::report(
        outbox.clone(),
        live.progress.clone(),
        app.config.progress_edit_interval,
        done.clone(),
    ));

    let attempt = run_agent(app, job, live, &cwd, session, &transaction).await;

    done.cancel();
    let _ = typing.await;
    let status_message = status.await.ok().flatten();
    let elapsed = live.elapsed();
    if let Some(outcome) = attempt.outcome() {
        record_figures(&app.store, job.chat_id, outcome);
    }
    if let Some(message_id) = status_message {
        let tools = live.progress.lock().expect("progress lock").tool_names();
        let summary = replies::status_summary(attempt.outcome(), elapsed, &tools);
        let _ = outbox.edit_html(message_id, &summary).await;
    }

    let sending = transaction.start_child("telegram.send", "send the reply");
    match attempt.answer() {
        Ok(plan) => {
            if let Err(error) = deliver_answer(&outbox, plan).await {
                sending.set_status(sentry::protocol::SpanStatus::InternalError);
                telemetry::capture_failure(&error, &failure_context);
            }
        }
        Err(error) => {
            transaction.set_status(span_status(&error));
            let mut failure = failure_context.clone();
            if let Some(outcome) = attempt.outcome() {
                failure.exit_code = outcome.exit_code;
                failure.stderr_tail = outcome.stderr_tail.clone();
            }
            log_failure(job.chat_id, &error, &failure.stderr_tail);
            telemetry::capture_failure(&error, &failure);
            let reply = replies::failure(&error, live.stop_cause());
            deliver_reply(&outbox, &reply).await;
        }
    }
    sending.finish();
}

/// Puts a failed run in the log, so an operator without Sentry sees why:
/// the error and the last line the CLI wrote to stderr.
fn log_failure(chat_id: i64, error: &RunError, stderr_tail: &str) {
    if matches!(error, RunError::Cancelled) {
        info!(chat_id, "the run was stopped");
        return;
    }
    let last_line = stderr_tail
        .lines()
        .rev()
        .find(|line| !line.trim().is_empty());
    let stderr: String = last_line.unwrap_or("").chars().take(300).collect();
    warn!(chat_id, %error, stderr, "the run gave no answer");
}

/// The chat's directory is gone (deleted, or moved out of the workspace).
#[derive(Debug, thiserror::Error)]
#[error("the chat's working directory {0} no longer exists or left the workspace")]
struct MissingDirectory(String);

/// How a failed run shows on its transaction.
fn span_status(error: &RunError) -> sentry::protocol::SpanStatus {
    use sentry::protocol::SpanStatus;
    match error {
        RunError::TimedOut { .. } => SpanStatus::DeadlineExceeded,
        RunError::Cancelled => SpanStatus::Cancelled,
        _ => SpanStatus::InternalError,
    }
}

/// The chat's directory and CLI session; a new chat's when the store fails.
fn chat_state(app: &App, chat_id: i64) -> (PathBuf, Option<String>) {
    match app.chat(chat_id) {
        Ok(chat) => (chat.working_directory, chat.session_id),
        Err(error) => {
            error!(%error, chat_id, "could not load the chat's state, using defaults");
            (app.config.working_directory.clone(), None)
        }
    }
}

/// What running the agent for a turn came to.
struct Attempt {
    /// `Err` when the CLI could not be started.
    run: Result<RunOutcome, RunError>,
    /// A `--resume` failed, so the answer is from a new conversation.
    resumed_fresh: bool,
    long_answer_messages: usize,
}

impl Attempt {
    fn outcome(&self) -> Option<&RunOutcome> {
        self.run.as_ref().ok()
    }

    /// The answer's delivery plan, or why there is none.
    fn answer(&self) -> Result<AnswerPlan, RunError> {
        let outcome = self.run.as_ref().map_err(Clone::clone)?;
        if let Some(failure) = &outcome.failure {
            return Err(failure.clone());
        }

        let text = outcome.answer().unwrap_or("");
        let mut plan = answer::plan(text, self.long_answer_messages);
        let mut notes = Vec::new();
        if self.resumed_fresh {
            notes.push(replies::new_conversation_began());
        }
        let denials = outcome
            .result
            .as_ref()
            .map(|r| r.permission_denials.as_slice());
        notes.extend(replies::denials(denials.unwrap_or(&[])));
        notes.extend(replies::tools_line(&tool_counts(
            outcome.tool_calls.iter().map(String::as_str),
        )));
        if !notes.is_empty() {
            plan.append_line(&notes.join("\n"));
        }
        Ok(plan)
    }
}

/// Runs the CLI, and once more without `--resume` if the conversation it
/// was to resume is gone.
async fn run_agent(
    app: &App,
    job: &Job,
    live: &LiveRun,
    cwd: &Path,
    session: Option<String>,
    transaction: &TransactionOrSpan,
) -> Attempt {
    let mut prompt = Prompt {
        text: job.text.clone(),
        cwd: cwd.to_owned(),
        resume: session,
    };
    let mut resumed_fresh = false;
    loop {
        let mut saver = SessionSaver {
            store: app.store.clone(),
            chat_id: job.chat_id,
            default_dir: app.config.working_directory.clone(),
        };
        let mut progress = ProgressObserver {
            progress: live.progress.clone(),
        };
        let mut trace = RunTrace::start(
            transaction,
            TraceContext {
                working_directory: cwd.display().to_string(),
                resumed_session_id: prompt.resume.clone(),
                prompt: job.text.clone(),
                record_pii: telemetry::records_pii(),
                configured_model: app.config.claude_model.clone(),
            },
        );
        let mut observers: [&mut dyn RunObserver; 3] = [&mut saver, &mut progress, &mut trace];
        let result = run::run(&app.agent, &prompt, &live.cancel, &mut observers).await;
        trace.finish(result.as_ref());

        if let Ok(RunOutcome {
            failure: Some(RunError::ResumeNotFound { session_id }),
            ..
        }) = &result
        {
            warn!(
                chat_id = job.chat_id,
                session_id, "conversation gone, starting anew"
            );
            saver.save(None);
            prompt.resume = None;
            resumed_fresh = true;
            continue;
        }
        return Attempt {
            run: result,
            resumed_fresh,
            long_answer_messages: app.config.long_answer_messages,
        };
    }
}

/// Saves the CLI session id the moment the CLI names it, before anything is
/// sent to Telegram, so a failed delivery never loses the conversation.
struct SessionSaver {
    store: Store,
    chat_id: i64,
    default_dir: PathBuf,
}

impl SessionSaver {
    fn save(&self, session_id: Option<&str>) {
        let saved = self
            .store
            .set_session(self.chat_id, session_id, &self.default_dir);
        if let Err(error) = saved {
            error!(%error, chat_id = self.chat_id, "could not save the session id");
        }
    }
}

impl RunObserver for SessionSaver {
    fn observe(&mut self, line: &Line) {
        if let Line::System(System::Init(init)) = line {
            self.save(Some(&init.session_id));
        }
    }
}

fn record_figures(store: &Store, chat_id: i64, outcome: &RunOutcome) {
    let Some(result) = &outcome.result else {
        return;
    };
    let figures = RunFigures {
        num_turns: result.num_turns,
        input_tokens: result.usage.input_tokens,
        output_tokens: result.usage.output_tokens,
        cache_read_tokens: result.usage.cache_read_input_tokens,
        cache_creation_tokens: result.usage.cache_creation_input_tokens,
        cost_usd: result.total_cost_usd,
        duration_ms: result.duration_ms,
        finished_at: store::now(),
    };
    if let Err(error) = store.record_run(chat_id, &figures) {
        error!(%error, chat_id, "could not record the run's figures");
    }
}

/// Sends a short reply; failures are logged, there is nobody else to tell.
async fn deliver_reply(outbox: &Outbox, text: &str) {
    if let Err(error) = outbox.send_html(text).await {
        error!(%error, chat_id = outbox.chat_id().0, "could not deliver a reply");
    }
}

/// Sends an answer's messages (and document) in order. When Telegram
/// refuses them, the user is told in plain text and the error returned.
async fn deliver_answer(outbox: &Outbox, plan: AnswerPlan) -> Result<(), teloxide::RequestError> {
    let sent = match plan {
        AnswerPlan::Messages(messages) => send_all(outbox, &messages).await,
        AnswerPlan::Document {
            first,
            file_name,
            contents,
            ..
        } => match outbox.send_html(&first).await {
            Ok(_) => outbox.send_document(&file_name, contents).await.map(drop),
            Err(error) => Err(error),
        },
    };
    if let Err(error) = &sent {
        error!(%error, chat_id = outbox.chat_id().0, "could not deliver the answer");
        let _ = outbox
            .send_plain(&replies::undeliverable(&error.to_string()))
            .await;
    }
    sent
}

async fn send_all(outbox: &Outbox, messages: &[String]) -> Result<(), teloxide::RequestError> {
    for message in messages {
        outbox.send_html(message).await?;
    }
    Ok(())
}
