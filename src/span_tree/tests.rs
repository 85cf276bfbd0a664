//! The span tree checked on recorded CLI output, captured in process.

mod agent;
mod failures;
mod privacy;

use std::thread::sleep;
use std::time::Duration;

use sentry::protocol::{EnvelopeItem, Span, SpanStatus, Transaction};
use sentry::{ClientOptions, TransactionContext};
use serde_json::{Value, json};

use super::*;
use crate::agent::wire::{self, ApiEvent, ContentBlock, StreamEvent};

const PROMPT: &str = "please run echo hi for me";

fn fixture(name: &str) -> Vec<Line> {
    raw_fixture(name)
        .iter()
        .map(|raw| wire::parse(&raw.to_string()).unwrap())
        .collect()
}

fn raw_fixture(name: &str) -> Vec<Value> {
    let path = format!("{}/tests/fixtures/{name}.jsonl", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(path).unwrap();
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn line(value: Value) -> Line {
    wire::parse(&value.to_string()).unwrap()
}

/// What the run loop would report for these lines.
fn outcome(lines: &[Line], failure: Option<RunError>) -> RunOutcome {
    let mut outcome = RunOutcome {
        init: None,
        result: None,
        tool_calls: Vec::new(),
        exit_code: Some(0),
        stderr_tail: String::new(),
        failure,
    };
    for line in lines {
        match line {
            Line::System(System::Init(init)) => outcome.init = Some(init.clone()),
            Line::Result(result) => outcome.result = Some(result.clone()),
            Line::Assistant(assistant) => {
                for block in &assistant.message.content {
                    if let ContentBlock::ToolUse { name, .. } = block {
                        outcome.tool_calls.push(name.clone());
                    }
                }
            }
            _ => {}
        }
    }
    outcome
}

fn context(pii: bool) -> TraceContext {
    TraceContext {
        working_directory: "/srv/work/chat-1".into(),
        resumed_session_id: None,
        prompt: PROMPT.into(),
        record_pii: pii,
        configured_model: None,
    }
}

/// One finished transaction and every envelope as sent.
struct Captured {
    transaction: Transaction<'static>,
    sent: String,
}

impl Captured {
    fn agent(&self) -> &Span {
        self.spans()
            .find(|s| s.op.as_deref() == Some(INVOKE_AGENT_OP))
            .unwrap()
    }

    /// Spans by start time, the transaction's own first.
    fn spans(&self) -> impl Iterator<Item = &Span> {
        let mut spans: Vec<_> = self.transaction.spans.iter().collect();
        spans.sort_by_key(|span| span.start_timestamp);
        spans.into_iter()
    }

    fn with_op(&self, op: &str) -> Vec<&Span> {
        self.spans()
            .filter(|s| s.op.as_deref() == Some(op))
            .collect()
    }

    /// The transaction's span data as Sentry receives it, re-read from JSON.
    fn sent_data(&self, span: &Span) -> Value {
        let sent: Value = serde_json::to_value(&self.transaction).unwrap();
        let spans = sent["spans"].as_array().unwrap();
        let id = span.span_id.to_string();
        let found = spans.iter().find(|s| s["span_id"] == id.as_str()).unwrap();
        found["data"].clone()
    }
}

/// Feeds `lines` to a trace under a `telegram.message` transaction, calling
/// `pace` before each line, and returns what was captured.
fn trace_with(
    lines: &[Line],
    context: TraceContext,
    outcome: Result<RunOutcome, RunError>,
    mut pace: impl FnMut(&Line),
) -> Captured {
    let options = ClientOptions::new()
        .traces_sample_rate(1.0)
        .send_default_pii(context.record_pii);
    let envelopes = sentry::test::with_captured_envelopes_options(
        || {
            let ctx = TransactionContext::new("handle_message", "telegram.message");
            let transaction = sentry::start_transaction(ctx);
            let mut trace = RunTrace::start(&transaction.clone().into(), context);
            for line in lines {
                pace(line);
                trace.observe(line);
            }
            trace.finish(outcome.as_ref());
            transaction.finish();
        },
        options,
    );

    let mut sent = Vec::new();
    for envelope in &envelopes {
        envelope.to_writer(&mut sent).unwrap();
    }
    let transaction = envelopes
        .iter()
        .flat_map(|envelope| envelope.items())
        .find_map(|item| match item {
            EnvelopeItem::Transaction(transaction) => Some((**transaction).clone()),
            _ => None,
        })
        .expect("a transaction was sent");
    let sent = String::from_utf8(sent).unwrap();
    Captured { transaction, sent }
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Feeds `lines` a millisecond apart, so every span has its own start
/// time, to a run that ends with `failure`.
fn trace(lines: &[Line], context: TraceContext, failure: Option<RunError>) -> Captured {
    let outcome = outcome(lines, failure);
    trace_with(lines, context, Ok(outcome), |_| sleep(ms(1)))
}

fn ops_and_names(captured: &Captured) -> Vec<(String, String)> {
    let name = |s: &Span| (s.op.clone().unwrap(), s.description.clone().unwrap());
    captured.spans().map(name).collect()
}

fn tree_of_one_tool_call() -> Vec<(String, String)> {
    [
        (INVOKE_AGENT_OP, "invoke_agent Claude Code"),
        (CHAT_OP, "chat claude-opus-4-8"),
        (EXECUTE_TOOL_OP, "execute_tool Bash"),
        (CHAT_OP, "chat claude-opus-4-8"),
    ]
    .map(|(op, name)| (op.to_owned(), name.to_owned()))
    .into()
}

fn assert_children_of_agent(captured: &Captured) {
    let trace = captured.transaction.contexts.get("trace").unwrap();
    let sentry::protocol::Context::Trace(trace) = trace else {
        panic!("no trace context");
    };
    let agent = captured.agent();
    assert_eq!(agent.parent_span_id, Some(trace.span_id));
    for span in captured.spans().filter(|s| s.span_id != agent.span_id) {
        assert_eq!(span.parent_span_id, Some(agent.span_id), "{span:?}");
    }
}

#[test]
fn streamed_run_has_a_chat_span_per_call_and_a_tool_span_per_tool_call() {
    let captured = trace(&fixture("g_partial_messages"), context(false), None);

    assert_eq!(ops_and_names(&captured), tree_of_one_tool_call());
    assert_children_of_agent(&captured);
    assert_eq!(captured.transaction.name.as_deref(), Some("handle_message"));
    let [first, second] = captured.with_op(CHAT_OP)[..] else {
        panic!("not two chat spans");
    };
    let tool = captured.with_op(EXECUTE_TOOL_OP)[0];
    assert!(first.timestamp.unwrap() <= tool.timestamp.unwrap());
    assert!(tool.timestamp.unwrap() <= second.start_timestamp);
    for span in captured.spans() {
        assert_eq!(span.status, Some(SpanStatus::Ok), "{span:?}");
    }
}

#[test]
fn unstreamed_run_gets_the_same_tree_with_calls_starting_when_idle() {
    let captured = trace(&fixture("b_bash"), context(false), None);

    assert_eq!(ops_and_names(&captured), tree_of_one_tool_call());
    assert_children_of_agent(&captured);
    let chats = captured.with_op(CHAT_OP);
    let tool = captured.with_op(EXECUTE_TOOL_OP)[0];
    assert!(chats[0].start_timestamp <= captured.agent().start_timestamp + ms(1));
    assert_eq!(chats[1].start_timestamp, tool.timestamp.unwrap());
    let data = captured.sent_data(chats[0]);
    assert_eq!(data["gen_ai.response.streaming"], false);
    assert_eq!(data.get("gen_ai.usage.input_tokens"), None);
}

#[test]
fn chat_spans_carry_their_own_usage_from_stream_events() {
    let lines = fixture("g_partial_messages");
    let mut starts = Vec::new();
    let mut outputs = Vec::new();
    for line in &lines {
        let Line::StreamEvent(event) = line else {
            continue;
        };
        match &event.event {
            ApiEvent::MessageStart { message } => starts.push(message.clone()),
            ApiEvent::MessageDelta { delta, usage } => {
                outputs.push((usage.output_tokens, delta.stop_reason.clone().unwrap()));
            }
            _ => {}
        }
    }
    let captured = trace(&lines, context(false), None);

    let chats = captured.with_op(CHAT_OP);
    assert_eq!(chats.len(), starts.len());
    for ((chat, start), (output, reason)) in chats.iter().zip(&starts).zip(&outputs) {
        let data = captured.sent_data(chat);
        let input = start.usage.all_input_tokens();
        assert_eq!(data["gen_ai.usage.input_tokens"], input);
        assert_eq!(data["gen_ai.usage.output_tokens"], *output);
        assert_eq!(data["gen_ai.usage.total_tokens"], input + output);
        let read = start.usage.cache_read_input_tokens;
        let written = start.usage.cache_creation_input_tokens;
        assert_eq!(data["gen_ai.usage.cache_read.input_tokens"], read);
        assert_eq!(data["gen_ai.usage.cache_creation.input_tokens"], written);
        assert_eq!(data["gen_ai.response.id"], start.id.as_str());
        assert_eq!(data["gen_ai.response.model"], start.model.as_str());
        assert_eq!(data["gen_ai.response.streaming"], true);
        assert_eq!(data["gen_ai.operation.name"], "chat");
        let reasons = json!([reason]).to_string();
        assert_eq!(data["gen_ai.response.finish_reasons"], reasons.as_str());
    }
}

#[test]
fn times_the_first_chunk_and_the_tool_as_the_lines_arrive() {
    let lines = fixture("g_partial_messages");
    let mut after_start = false;
    let captured = trace_with(
        &lines,
        context(false),
        Ok(outcome(&lines, None)),
        |line| match line {
            Line::StreamEvent(StreamEvent {
                event: ApiEvent::MessageStart { .. },
                ..
            }) => after_start = true,
            Line::StreamEvent(StreamEvent {
                event: ApiEvent::ContentBlockDelta { .. },
                ..
            }) if after_start => {
                after_start = false;
                sleep(ms(40));
            }
            Line::User(_) => sleep(ms(60)),
            _ => {}
        },
    );

    for chat in captured.with_op(CHAT_OP) {
        let waited = captured.sent_data(chat)["gen_ai.response.time_to_first_chunk"].clone();
        let waited = waited.as_f64().unwrap();
        assert!((0.04..1.0).contains(&waited), "{waited}");
    }
    let tool = captured.with_op(EXECUTE_TOOL_OP)[0];
    let ran = tool.timestamp.unwrap().duration_since(tool.start_timestamp);
    assert!(ran.unwrap() >= ms(60));
}

#[test]
fn a_failed_tool_call_marks_only_its_span_failed() {
    let lines = fixture("k3_parallel_tools");
    let mut failed = Vec::new();
    for line in &lines {
        if let Line::User(user) = line {
            for block in user.message.content.blocks() {
                if let ContentBlock::ToolResult {
                    tool_use_id,
                    is_error,
                    ..
                } = block
                {
                    failed.push((tool_use_id.clone(), *is_error == Some(true)));
                }
            }
        }
    }
    let captured = trace(&lines, context(false), None);

    let tools = captured.with_op(EXECUTE_TOOL_OP);
    assert_eq!(tools.len(), failed.len());
    assert!(failed.iter().any(|(_, failed)| *failed));
    for (id, failed) in failed {
        let tool = tools
            .iter()
            .find(|t| captured.sent_data(t)["gen_ai.tool.call.id"] == id.as_str());
        let expected = if failed {
            SpanStatus::InternalError
        } else {
            SpanStatus::Ok
        };
        assert_eq!(tool.unwrap().status, Some(expected));
    }
}

#[test]
fn a_denied_tool_call_is_failed_even_when_its_result_is_not() {
    let mut lines = fixture("d_denied_default_mode");
    let captured = trace(&lines, context(false), None);
    let tool = captured.with_op(EXECUTE_TOOL_OP)[0];
    assert_eq!(tool.status, Some(SpanStatus::InternalError));
    assert_eq!(captured.sent_data(tool)["permission_denied"], true);

    for line in &mut lines {
        let Line::User(user) = line else { continue };
        let wire::Content::Blocks(blocks) = &mut user.message.content else {
            continue;
        };
        for block in blocks {
            if let ContentBlock::ToolResult { is_error, .. } = block {
                *is_error = None;
            }
        }
    }
    let captured = trace(&lines, context(false), None);
    let tool = captured.with_op(EXECUTE_TOOL_OP)[0];
    assert_eq!(tool.status, Some(SpanStatus::InternalError));
}
