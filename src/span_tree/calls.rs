//! Model calls: one `chat` span per call, opened by `message_start` (or,
//! without stream events, by the first assistant line of a new message id)
//! and closed at `message_stop` or when the next thing happens. A new call
//! while one is still streaming means the CLI silently retried a broken
//! stream: the dead attempt ends `aborted`.

use std::mem;
use std::time::SystemTime;

use sentry::Span;
use sentry::protocol::SpanStatus;

use super::{CHAT_OP, PROVIDER, RunTrace, json_text, set_usage};
use crate::agent::wire::{ApiEvent, Assistant, ContentBlock, StreamEvent, Usage, User};

/// The model calls of the main agent or of one sub-agent, one at a time.
pub(super) struct Thread {
    pub(super) call: Option<ChatCall>,
    /// The latest call's id, so late lines of a closed call open no new one.
    pub(super) last_id: Option<String>,
    /// When this thread last finished a step: a call seen only through
    /// assistant lines (no stream events) started then.
    pub(super) idle_since: SystemTime,
    /// Retries the CLI announced since the last call began.
    pub(super) retries: u64,
}

/// A model call in progress.
pub(super) struct ChatCall {
    pub(super) id: String,
    /// `None` once the run's span cap is reached.
    pub(super) span: Option<Span>,
    /// Opened by `message_start`, so it ends at `message_stop`.
    pub(super) streamed: bool,
    pub(super) started: SystemTime,
    pub(super) first_chunk_seen: bool,
    /// When its content was complete: `message_delta`, or the latest
    /// assistant line of a call without stream events.
    pub(super) complete_at: Option<SystemTime>,
    /// Known only from stream events.
    pub(super) usage: Option<Usage>,
    pub(super) text: String,
    /// The CLI's error kind on its synthetic message after an API failure.
    pub(super) error: Option<String>,
}

/// Why a chat call is being closed.
#[derive(Clone, Copy)]
pub(super) enum Closing {
    /// `message_stop` arrived.
    Stopped,
    /// A new call begins in the same thread.
    Superseded,
    /// The thread moved on (a user line): close only a complete call.
    NextStep,
    /// The run is over; an incomplete call gets this status.
    RunEnded(SpanStatus),
}

impl RunTrace {
    pub(super) fn on_stream_event(&mut self, event: &StreamEvent, now: SystemTime) {
        let key = &event.parent_tool_use_id;
        match &event.event {
            ApiEvent::MessageStart { message } => {
                // A start while the last call is open means the CLI dropped
                // a broken stream and retried.
                self.close_call(key, now, Closing::Superseded);
                let usage = Some(message.usage);
                self.open_call(key, &message.id, &message.model, now, usage);
            }
            ApiEvent::ContentBlockDelta { .. } => {
                let Some(call) = self.call_mut(key) else {
                    return;
                };
                if mem::replace(&mut call.first_chunk_seen, true) {
                    return;
                }
                let waited = now.duration_since(call.started).unwrap_or_default();
                if let Some(span) = &call.span {
                    let seconds = waited.as_secs_f64().into();
                    span.set_data("gen_ai.response.time_to_first_chunk", seconds);
                }
            }
            ApiEvent::MessageDelta { delta, usage } => {
                let Some(call) = self.call_mut(key) else {
                    return;
                };
                call.complete_at = Some(now);
                if let Some(call_usage) = &mut call.usage {
                    call_usage.output_tokens = usage.output_tokens;
                }
                if let (Some(span), Some(reason)) = (&call.span, &delta.stop_reason) {
                    span.set_data("gen_ai.response.finish_reasons", json_text(&[reason]));
                }
            }
            ApiEvent::MessageStop => self.close_call(key, now, Closing::Stopped),
            _ => {}
        }
    }

    pub(super) fn on_assistant(&mut self, assistant: &Assistant, now: SystemTime) {
        let key = &assistant.parent_tool_use_id;
        let message = &assistant.message;
        let thread = self.thread(key);
        let open = thread
            .call
            .as_ref()
            .is_some_and(|call| call.id == message.id);
        let late = thread.last_id.as_ref() == Some(&message.id);
        if !open && !late {
            // No message_start announced this call: it began when the
            // thread last went idle.
            self.close_call(key, now, Closing::Superseded);
            let started = self.thread(key).idle_since;
            self.open_call(key, &message.id, &message.model, started, None);
        }

        let record_text = self.texts.enabled();
        if let Some(call) = self.call_mut(key).filter(|call| call.id == message.id) {
            if !call.streamed {
                call.complete_at = Some(now);
            }
            if let Some(error) = &assistant.error {
                call.error = Some(error.clone());
            }
            let texts = message.content.iter().filter_map(|block| match block {
                ContentBlock::Text { text } if record_text => Some(text.as_str()),
                _ => None,
            });
            for text in texts {
                if !call.text.is_empty() {
                    call.text.push('\n');
                }
                call.text.push_str(text);
            }
        }

        for block in &message.content {
            if let ContentBlock::ToolUse { id, name, input } = block {
                self.start_tool(key, id, name, input, now);
            }
        }
    }

    pub(super) fn on_user(&mut self, user: &User, now: SystemTime) {
        let key = &user.parent_tool_use_id;
        self.close_call(key, now, Closing::NextStep);
        self.thread(key).idle_since = now;
        for block in user.message.content.blocks() {
            if let ContentBlock::ToolResult {
                tool_use_id,
                content,
                is_error,
            } = block
            {
                self.end_tool(tool_use_id, &content.text(), *is_error == Some(true), now);
            }
        }
    }

    /// Opens a chat span for a call starting at `started`. Stream events
    /// bring `usage` with `message_start`, so `Some` means a streamed call.
    ///
    /// The request model recorded is the one the API answered with: the
    /// init line's name may carry a context-window tag (`[1m]`) that is not
    /// part of any model id, and sub-agents may run on another model.
    fn open_call(
        &mut self,
        key: &Option<String>,
        id: &str,
        model: &str,
        started: SystemTime,
        usage: Option<Usage>,
    ) {
        // The CLI's own error message names the model `<synthetic>`.
        let real_model = !model.is_empty() && !model.starts_with('<');
        let name = match (real_model, &self.requested_model) {
            (true, _) => model,
            (false, Some(requested)) => requested.as_str(),
            (false, None) => "unknown",
        }
        .to_owned();
        let parent = self.parent_of(key);
        let span = self.child(&parent, CHAT_OP, &format!("chat {name}"), started);
        let retries = mem::take(&mut self.thread(key).retries);
        let streamed = usage.is_some();

        if let Some(span) = &span {
            span.set_data("gen_ai.operation.name", "chat".into());
            span.set_data("gen_ai.provider.name", PROVIDER.into());
            span.set_data("gen_ai.system", PROVIDER.into());
            span.set_data("gen_ai.request.model", name.as_str().into());
            span.set_data("gen_ai.response.streaming", streamed.into());
            if real_model {
                span.set_data("gen_ai.response.model", model.into());
                span.set_data("gen_ai.response.id", id.into());
            }
            if retries > 0 {
                span.set_data("api_retries", retries.into());
            }
        }
        self.thread(key).call = Some(ChatCall {
            id: id.to_owned(),
            span,
            streamed,
            started,
            first_chunk_seen: false,
            complete_at: None,
            usage,
            text: String::new(),
            error: None,
        });
    }

    /// Closes the thread's open call, if `why` allows it.
    pub(super) fn close_call(&mut self, key: &Option<String>, now: SystemTime, why: Closing) {
        let Some(thread) = self.threads.get_mut(key) else {
            return;
        };
        let Some(call) = thread.call.take() else {
            return;
        };
        let (ended, status) = match (why, call.complete_at) {
            (Closing::Stopped, _) => (now, None),
            (Closing::NextStep, None) => {
                thread.call = Some(call);
                return;
            }
            (_, Some(complete_at)) => (complete_at, None),
            (Closing::Superseded, None) => (now, Some(SpanStatus::Aborted)),
            (Closing::RunEnded(status), None) => (now, Some(status)),
        };
        thread.idle_since = ended;
        thread.last_id = Some(call.id.clone());

        let Some(span) = call.span else {
            return;
        };
        if let Some(usage) = &call.usage {
            set_usage(&span, usage);
        }
        if !call.text.is_empty()
            && let Some(output) = self.texts.budgeted_message("assistant", &call.text)
        {
            span.set_data("gen_ai.output.messages", output);
        }
        let status = match &call.error {
            Some(error) => {
                span.set_data("error.type", error.as_str().into());
                api_error_status(error)
            }
            None => status.unwrap_or(SpanStatus::Ok),
        };
        span.set_status(status);
        span.finish_with_timestamp(ended);
    }

    pub(super) fn thread(&mut self, key: &Option<String>) -> &mut Thread {
        let tool = key.as_ref().and_then(|id| self.tools.get(id));
        let idle_since = tool.map_or(self.started, |tool| tool.started);
        self.threads.entry(key.clone()).or_insert_with(|| Thread {
            call: None,
            last_id: None,
            idle_since,
            retries: 0,
        })
    }

    fn call_mut(&mut self, key: &Option<String>) -> Option<&mut ChatCall> {
        self.threads.get_mut(key)?.call.as_mut()
    }
}

/// The status of a call the CLI gave up on, by the CLI's error kind.
fn api_error_status(error: &str) -> SpanStatus {
    match error {
        "rate_limit" => SpanStatus::ResourceExhausted,
        "overloaded" => SpanStatus::Unavailable,
        "authentication_failed" => SpanStatus::Unauthenticated,
        "invalid_request" => SpanStatus::InvalidArgument,
        "server_error" => SpanStatus::InternalError,
        _ => SpanStatus::UnknownError,
    }
}
