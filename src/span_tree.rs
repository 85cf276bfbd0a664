//! One agent run as Sentry's AI-agent span tree, built as the CLI's lines
//! arrive: an `invoke_agent` span under the update's transaction, with a
//! `chat` span per model call and an `execute_tool` span per tool call.
//! A sub-agent's spans (lines with a `parent_tool_use_id`) nest under the
//! span of the tool call that started it. What text is recorded, and how
//! much, is decided in the `text` module.

mod calls;
#[cfg(test)]
mod tests;
mod text;
mod tools;

use std::collections::HashMap;
use std::time::SystemTime;

use sentry::protocol::{SpanId, SpanStatus, Value};
use sentry::{Span, TransactionOrSpan};

use crate::agent::run::{RunError, RunObserver, RunOutcome};
use crate::agent::wire::{Init, Line, PermissionDenial, System, Usage};
use calls::{Closing, Thread};
use text::TextRecorder;
use tools::ToolCall;

pub const INVOKE_AGENT_OP: &str = "gen_ai.invoke_agent";
pub const CHAT_OP: &str = "gen_ai.chat";
pub const EXECUTE_TOOL_OP: &str = "gen_ai.execute_tool";
const AGENT_NAME: &str = "Claude Code";
const PROVIDER: &str = "anthropic";
/// The most chat and tool spans one run records. Sentry keeps 1000 spans a
/// transaction, and the update's transaction may hold spans of its own.
pub const MAX_RUN_SPANS: usize = 900;

/// What the handler knows about a run before it starts.
#[derive(Debug, Clone, Default)]
pub struct TraceContext {
    pub working_directory: String,
    pub resumed_session_id: Option<String>,
    pub prompt: String,
    /// Record prompt, answers and tool input and output (PII).
    pub record_pii: bool,
    /// The `--model` the bot passes, if any; the init line may name another.
    pub configured_model: Option<String>,
}

/// The spans of one run. Feed it every line (it is a [`RunObserver`]) and
/// then [`RunTrace::finish`] it; dropped unfinished, it closes its spans
/// with an unknown status.
///
/// Tool spans are finished only when the run is, because the result line's
/// permission denials may still mark them failed; their end times are the
/// moments their results arrived.
pub struct RunTrace {
    agent: Span,
    texts: TextRecorder,
    requested_model: Option<String>,
    /// Model calls by the sub-agent making them (`None`: the main agent).
    threads: HashMap<Option<String>, Thread>,
    tools: HashMap<String, ToolCall>,
    started: SystemTime,
    spans: usize,
    dropped: usize,
    api_retries: u64,
    finished: bool,
}

impl RunTrace {
    /// Opens the `invoke_agent` span under `parent`.
    pub fn start(parent: &TransactionOrSpan, context: TraceContext) -> RunTrace {
        let agent = parent.start_child(INVOKE_AGENT_OP, &format!("invoke_agent {AGENT_NAME}"));
        agent.set_data("gen_ai.operation.name", "invoke_agent".into());
        agent.set_data("gen_ai.agent.name", AGENT_NAME.into());
        agent.set_data("gen_ai.provider.name", PROVIDER.into());
        agent.set_data("gen_ai.system", PROVIDER.into());
        if let Some(model) = &context.configured_model {
            agent.set_data("gen_ai.request.model", model.as_str().into());
        }
        agent.set_data("working_directory", context.working_directory.into());
        if let Some(session_id) = context.resumed_session_id {
            agent.set_data("gen_ai.conversation.id", session_id.as_str().into());
            agent.set_data("resumed_session_id", session_id.into());
        }

        let texts = TextRecorder::new(context.record_pii);
        if let Some(prompt) = texts.message("user", &context.prompt) {
            agent.set_data("gen_ai.input.messages", prompt);
        }
        RunTrace {
            agent,
            texts,
            requested_model: context.configured_model,
            threads: HashMap::new(),
            tools: HashMap::new(),
            started: SystemTime::now(),
            spans: 0,
            dropped: 0,
            api_retries: 0,
            finished: false,
        }
    }

    /// Sets the run's totals and status, closes whatever is still open and
    /// finishes the `invoke_agent` span. `Err` means the CLI never started.
    pub fn finish(mut self, outcome: Result<&RunOutcome, &RunError>) {
        let failure = match outcome {
            Ok(outcome) => outcome.failure.as_ref(),
            Err(error) => Some(error),
        };
        let result = outcome.ok().and_then(|outcome| outcome.result.as_ref());
        let denials = result.map_or(&[][..], |result| &result.permission_denials);
        let call_status = match failure {
            None => SpanStatus::Aborted,
            Some(error) => interrupted_status(error),
        };
        let tool_status = failure.map_or(SpanStatus::InternalError, interrupted_status);
        self.close_all(call_status, tool_status, denials);

        if let Ok(outcome) = outcome {
            self.record_outcome(outcome);
        }
        let status = failure.map_or(SpanStatus::Ok, |error| {
            self.agent.set_data("error.type", error_kind(error).into());
            interrupted_status(error)
        });
        self.agent.set_status(status);
        self.finish_agent();
    }

    fn record_outcome(&self, outcome: &RunOutcome) {
        let agent = &self.agent;
        if let Some(session_id) = outcome.session_id() {
            agent.set_data("gen_ai.conversation.id", session_id.into());
        }
        if let Some(code) = outcome.exit_code {
            agent.set_data("process.exit_code", code.into());
        }
        let mut used: Vec<&str> = Vec::new();
        for name in &outcome.tool_calls {
            if !used.contains(&name.as_str()) {
                used.push(name);
            }
        }
        agent.set_data("tools_used", json_text(&used));
        agent.set_data("tool_calls", outcome.tool_calls.len().into());
        if let Some(answer) = outcome.answer() {
            agent.set_data("response_length", answer.chars().count().into());
        }

        let Some(result) = &outcome.result else {
            return;
        };
        set_usage(agent, &result.usage);
        agent.set_data("gen_ai.cost.total_tokens", result.total_cost_usd.into());
        agent.set_data("gen_ai.cost_usd", result.total_cost_usd.into());
        agent.set_data("gen_ai.duration_ms", result.duration_ms.into());
        agent.set_data("gen_ai.api_duration_ms", result.duration_api_ms.into());
        agent.set_data("gen_ai.num_turns", result.num_turns.into());
        let answer = result.result.as_deref().filter(|text| !text.is_empty());
        if let Some(answer) = answer.and_then(|text| self.texts.message("assistant", text)) {
            agent.set_data("gen_ai.output.messages", answer);
        }
    }

    /// Closes every open call and finishes every tool span.
    fn close_all(
        &mut self,
        call_status: SpanStatus,
        tool_status: SpanStatus,
        denials: &[PermissionDenial],
    ) {
        let now = SystemTime::now();
        let keys: Vec<_> = self.threads.keys().cloned().collect();
        for key in keys {
            self.close_call(&key, now, Closing::RunEnded(call_status));
        }

        self.finish_tools(now, tool_status, denials);
    }

    fn finish_agent(&mut self) {
        self.agent.set_data("api_retries", self.api_retries.into());
        if self.dropped > 0 {
            self.agent.set_data("spans_dropped", self.dropped.into());
        }
        self.agent.clone().finish();
        self.finished = true;
    }

    fn on_init(&mut self, init: &Init) {
        self.agent
            .set_data("gen_ai.conversation.id", init.session_id.as_str().into());
        if !init.model.is_empty() {
            self.agent
                .set_data("gen_ai.request.model", init.model.as_str().into());
            self.requested_model = Some(init.model.clone());
        }
        let tools = json_text(&init.tools);
        self.agent.set_data("gen_ai.request.available_tools", tools);
    }

    /// Starts a child span unless the run has used up [`MAX_RUN_SPANS`].
    fn child(
        &mut self,
        parent: &TransactionOrSpan,
        op: &str,
        description: &str,
        started: SystemTime,
    ) -> Option<Span> {
        if self.spans >= MAX_RUN_SPANS {
            self.dropped += 1;
            return None;
        }
        self.spans += 1;
        Some(parent.start_child_with_details(op, description, SpanId::default(), started))
    }

    /// The span a thread's spans hang under: its open tool call, if any.
    fn parent_of(&self, key: &Option<String>) -> TransactionOrSpan {
        let tool = key.as_ref().and_then(|id| self.tools.get(id));
        match tool.filter(|tool| tool.ended_at.is_none()) {
            Some(tool) => tool.span.clone().into(),
            None => self.agent.clone().into(),
        }
    }
}

impl RunObserver for RunTrace {
    fn observe(&mut self, line: &Line) {
        let now = SystemTime::now();
        match line {
            Line::System(System::Init(init)) => self.on_init(init),
            Line::System(System::ApiRetry(_)) => {
                self.api_retries += 1;
                self.thread(&None).retries += 1;
            }
            Line::StreamEvent(event) => self.on_stream_event(event, now),
            Line::Assistant(assistant) => self.on_assistant(assistant, now),
            Line::User(user) => self.on_user(user, now),
            _ => {}
        }
    }
}

impl Drop for RunTrace {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        self.close_all(SpanStatus::UnknownError, SpanStatus::UnknownError, &[]);
        self.agent.set_status(SpanStatus::UnknownError);
        self.finish_agent();
    }
}

/// Sets token counts the way Sentry reads them: input includes the cache.
fn set_usage(span: &Span, usage: &Usage) {
    let input = usage.all_input_tokens();
    let read = usage.cache_read_input_tokens;
    let written = usage.cache_creation_input_tokens;
    span.set_data("gen_ai.usage.input_tokens", input.into());
    span.set_data("gen_ai.usage.output_tokens", usage.output_tokens.into());
    let total = input + usage.output_tokens;
    span.set_data("gen_ai.usage.total_tokens", total.into());
    span.set_data("gen_ai.usage.cache_read.input_tokens", read.into());
    span.set_data("gen_ai.usage.cache_creation.input_tokens", written.into());
    span.set_data("gen_ai.usage.input_tokens.cached", read.into());
    span.set_data("gen_ai.usage.input_tokens.cache_write", written.into());
}

/// Sentry wants lists as JSON text.
fn json_text<T: serde::Serialize + ?Sized>(value: &T) -> Value {
    serde_json::to_string(value).unwrap_or_default().into()
}

/// The status of whatever a failed run left unfinished, and of the run.
fn interrupted_status(error: &RunError) -> SpanStatus {
    match error {
        RunError::Cancelled => SpanStatus::Cancelled,
        RunError::TimedOut { .. } => SpanStatus::DeadlineExceeded,
        _ => SpanStatus::InternalError,
    }
}

/// A short, text-free name for why a run failed.
fn error_kind(error: &RunError) -> &'static str {
    match error {
        RunError::NotFound { .. } => "not_found",
        RunError::Spawn { .. } => "spawn_failed",
        RunError::ResumeNotFound { .. } => "resume_not_found",
        RunError::Reported { .. } => "reported",
        RunError::Exited { .. } => "exited",
        RunError::NoResult { .. } => "no_result",
        RunError::TimedOut { .. } => "timed_out",
        RunError::Cancelled => "cancelled",
    }
}
