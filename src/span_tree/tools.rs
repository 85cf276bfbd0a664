//! Tool calls: an `execute_tool` span from the moment the model asked for
//! the tool to the moment its result came back.

use std::time::SystemTime;

use sentry::Span;
use sentry::protocol::{SpanStatus, Value};

use super::calls::Closing;
use super::{EXECUTE_TOOL_OP, RunTrace};
use crate::agent::wire::PermissionDenial;

/// A tool call, open until its result arrives.
pub(super) struct ToolCall {
    pub(super) name: String,
    pub(super) span: Span,
    pub(super) started: SystemTime,
    pub(super) ended_at: Option<SystemTime>,
    pub(super) failed: bool,
}

impl RunTrace {
    pub(super) fn start_tool(
        &mut self,
        key: &Option<String>,
        id: &str,
        name: &str,
        input: &Value,
        now: SystemTime,
    ) {
        if self.tools.contains_key(id) {
            return;
        }
        let parent = self.parent_of(key);
        let description = format!("execute_tool {name}");
        let Some(span) = self.child(&parent, EXECUTE_TOOL_OP, &description, now) else {
            return;
        };
        span.set_data("gen_ai.operation.name", "execute_tool".into());
        span.set_data("gen_ai.tool.name", name.into());
        span.set_data("gen_ai.tool.call.id", id.into());
        if let Some(arguments) = self.texts.budgeted_text(&input.to_string()) {
            span.set_data("gen_ai.tool.call.arguments", arguments);
        }
        let tool = ToolCall {
            name: name.to_owned(),
            span,
            started: now,
            ended_at: None,
            failed: false,
        };
        self.tools.insert(id.to_owned(), tool);
    }

    pub(super) fn end_tool(&mut self, id: &str, output: &str, failed: bool, now: SystemTime) {
        let Some(tool) = self
            .tools
            .get_mut(id)
            .filter(|tool| tool.ended_at.is_none())
        else {
            return;
        };
        tool.ended_at = Some(now);
        tool.failed = failed;
        if let Some(output) = self.texts.budgeted_text(output) {
            tool.span.set_data("gen_ai.tool.call.result", output);
        }
        // A sub-agent's unfinished call ends with the tool that ran it.
        let sub_agent = Some(id.to_owned());
        self.close_call(&sub_agent, now, Closing::Superseded);
        self.threads.remove(&sub_agent);
    }

    /// Finishes every tool span: failed when its result was an error or
    /// the run's result lists it as denied, `unfinished` when no result
    /// came.
    pub(super) fn finish_tools(
        &mut self,
        now: SystemTime,
        unfinished: SpanStatus,
        denials: &[PermissionDenial],
    ) {
        for (id, tool) in self.tools.drain() {
            let denied = denials.iter().any(|denial| {
                denial.tool_use_id == id
                    || denial.tool_use_id.is_empty() && denial.tool_name == tool.name
            });
            if denied {
                tool.span.set_data("permission_denied", true.into());
            }
            let status = match tool.ended_at {
                None => unfinished,
                Some(_) if denied || tool.failed => SpanStatus::InternalError,
                Some(_) => SpanStatus::Ok,
            };
            tool.span.set_status(status);
            tool.span
                .finish_with_timestamp(tool.ended_at.unwrap_or(now));
        }
    }
}
