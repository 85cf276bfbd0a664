//! Runs that break: dead streams, API failures, interruptions, and traces
//! that are never finished; and sub-agents, whose lines interleave.

use std::path::PathBuf;

use super::*;

#[test]
fn a_broken_stream_closes_the_dead_attempt_and_opens_the_retry() {
    let captured = trace(&fixture("i6_stream_broken_midway"), context(false), None);

    let chats = captured.with_op(CHAT_OP);
    let statuses: Vec<_> = chats.iter().map(|chat| chat.status).collect();
    assert_eq!(statuses, [Some(SpanStatus::Aborted), Some(SpanStatus::Ok)]);
    assert!(chats[0].timestamp.unwrap() <= chats[1].start_timestamp);
    assert_eq!(captured.agent().status, Some(SpanStatus::Ok));
}

#[test]
fn an_api_failure_is_a_failed_chat_span_with_its_retries() {
    let lines = fixture("e1b_500_max_retries_2");
    let retries = lines
        .iter()
        .filter(|line| matches!(line, Line::System(System::ApiRetry(_))))
        .count();
    let Line::System(System::Init(init)) = &lines[0] else {
        panic!("no init");
    };
    let message = "api error".to_owned();
    let captured = trace(&lines, context(false), Some(RunError::Reported { message }));

    let [chat] = captured.with_op(CHAT_OP)[..] else {
        panic!("not one chat span");
    };
    assert_eq!(chat.status, Some(SpanStatus::InternalError));
    assert_eq!(chat.description, Some(format!("chat {}", init.model)));
    let data = captured.sent_data(chat);
    assert_eq!(data["error.type"], "server_error");
    assert_eq!(data["api_retries"], retries);
    assert_eq!(data.get("gen_ai.response.model"), None);

    let agent = captured.agent();
    assert_eq!(agent.status, Some(SpanStatus::InternalError));
    assert_eq!(captured.sent_data(agent)["error.type"], "reported");
    assert_eq!(captured.sent_data(agent)["api_retries"], retries);
}

/// The lines of `name` up to and including the first that `stop` accepts.
fn cut_at(name: &str, stop: impl Fn(&Line) -> bool) -> Vec<Line> {
    let mut lines = fixture(name);
    let at = lines.iter().position(stop).unwrap();
    lines.truncate(at + 1);
    lines
}

fn uses_a_tool(line: &Line) -> bool {
    let Line::Assistant(assistant) = line else {
        return false;
    };
    let blocks = &assistant.message.content;
    blocks
        .iter()
        .any(|block| matches!(block, ContentBlock::ToolUse { .. }))
}

#[test]
fn a_stopped_run_cancels_its_open_tool_and_itself() {
    let lines = cut_at("b_bash", uses_a_tool);
    let captured = trace(&lines, context(false), Some(RunError::Cancelled));

    let tool = captured.with_op(EXECUTE_TOOL_OP)[0];
    assert_eq!(tool.status, Some(SpanStatus::Cancelled));
    assert_eq!(captured.with_op(CHAT_OP)[0].status, Some(SpanStatus::Ok));
    assert_eq!(captured.agent().status, Some(SpanStatus::Cancelled));
}

#[test]
fn a_timed_out_run_marks_its_open_call_and_itself_deadline_exceeded() {
    let lines = cut_at("g_partial_messages", |line| {
        matches!(
            line,
            Line::StreamEvent(StreamEvent {
                event: ApiEvent::ContentBlockDelta { .. },
                ..
            })
        )
    });
    let after = Duration::from_secs(600);
    let captured = trace(&lines, context(false), Some(RunError::TimedOut { after }));

    let chat = captured.with_op(CHAT_OP)[0];
    assert_eq!(chat.status, Some(SpanStatus::DeadlineExceeded));
    assert_eq!(captured.agent().status, Some(SpanStatus::DeadlineExceeded));
}

#[test]
fn an_interrupted_stream_is_cancelled_with_the_run() {
    let lines = fixture("i1_sigint_during_stream");
    let captured = trace(&lines, context(false), Some(RunError::Cancelled));
    let statuses: Vec<_> = captured.with_op(CHAT_OP).iter().map(|c| c.status).collect();
    assert_eq!(statuses, [Some(SpanStatus::Cancelled)]);
}

#[test]
fn a_run_that_never_started_is_one_failed_span() {
    let error = RunError::NotFound {
        program: PathBuf::from("/nowhere/claude"),
    };
    let captured = trace_with(&[], context(false), Err(error), |_| {});

    assert_eq!(captured.transaction.spans.len(), 1);
    assert_eq!(captured.agent().status, Some(SpanStatus::InternalError));
    assert_eq!(
        captured.sent_data(captured.agent())["error.type"],
        "not_found"
    );
}

#[test]
fn a_trace_dropped_unfinished_still_sends_its_spans() {
    let lines = cut_at("b_bash", uses_a_tool);
    let options = ClientOptions::new().traces_sample_rate(1.0);
    let envelopes = sentry::test::with_captured_envelopes_options(
        || {
            let ctx = TransactionContext::new("handle_message", "telegram.message");
            let transaction = sentry::start_transaction(ctx);
            let mut trace = RunTrace::start(&transaction.clone().into(), context(false));
            lines.iter().for_each(|line| trace.observe(line));
            drop(trace);
            transaction.finish();
        },
        options,
    );

    let Some(EnvelopeItem::Transaction(transaction)) = envelopes[0].items().next() else {
        panic!("no transaction");
    };
    let status_of = |op: &str| {
        let span = transaction
            .spans
            .iter()
            .find(|s| s.op.as_deref() == Some(op));
        span.unwrap().status
    };
    assert_eq!(transaction.spans.len(), 3);
    assert_eq!(status_of(INVOKE_AGENT_OP), Some(SpanStatus::UnknownError));
    assert_eq!(status_of(EXECUTE_TOOL_OP), Some(SpanStatus::UnknownError));
    // The model call had ended before the trace was dropped.
    assert_eq!(status_of(CHAT_OP), Some(SpanStatus::Ok));
}

/// A main agent that hands work to a sub-agent through its Task tool; the
/// sub-agent runs Bash.
fn delegating_run() -> Vec<Line> {
    let recorded = fixture("b_bash");
    let assistant = |id: &str, parent: Option<&str>, content: Value| {
        line(json!({"type": "assistant", "parent_tool_use_id": parent,
            "message": {"id": id, "model": "claude-opus-4-8", "content": [content]}}))
    };
    let result = |id: &str, parent: Option<&str>| {
        line(json!({"type": "user", "parent_tool_use_id": parent,
            "message": {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": id, "content": "done"}]}}))
    };
    let task = json!({"type": "tool_use", "id": "toolu_task", "name": "Task", "input": {}});
    let bash = json!({"type": "tool_use", "id": "toolu_bash", "name": "Bash", "input": {}});
    let text = json!({"type": "text", "text": "all done"});
    vec![
        recorded[0].clone(),
        assistant("msg_main_1", None, task),
        assistant("msg_sub_1", Some("toolu_task"), bash),
        result("toolu_bash", Some("toolu_task")),
        assistant("msg_sub_2", Some("toolu_task"), text.clone()),
        result("toolu_task", None),
        assistant("msg_main_2", None, text),
        recorded.last().unwrap().clone(),
    ]
}

#[test]
fn sub_agent_spans_nest_under_the_tool_call_that_started_them() {
    let captured = trace(&delegating_run(), context(false), None);

    let agent = captured.agent().span_id;
    let tools = captured.with_op(EXECUTE_TOOL_OP);
    let [task, bash] = tools[..] else {
        panic!("not two tool spans");
    };
    assert_eq!(task.description.as_deref(), Some("execute_tool Task"));
    assert_eq!(task.parent_span_id, Some(agent));
    assert_eq!(bash.parent_span_id, Some(task.span_id));

    let parents: Vec<_> = captured
        .with_op(CHAT_OP)
        .iter()
        .map(|c| c.parent_span_id)
        .collect();
    let expected = [agent, task.span_id, task.span_id, agent].map(Some);
    assert_eq!(parents, expected);
    assert!(bash.timestamp <= task.timestamp);
}
