//! What reaches Sentry when runs succeed: the real bot binary, the stand-in
//! CLI replaying recorded transcripts, and the Sentry double recording every
//! envelope. Failures, privacy and a Sentry that is down are in
//! `sentry_errors.rs`.

mod support;
mod traced;

use std::fs;
use std::path::Path;

use sentry::protocol::{Context, Span, SpanStatus, TraceContext, Transaction};
use serde_json::Value;
use support::bot_process::BotProcess;
use support::fake_claude::FakeClaude;
use support::sentry_api::SentryApi;
use support::telegram_api::BotApi;
use traced::{USER, WAIT, only, spans, start};

/// The recorded transcript's lines, parsed.
fn transcript(fixture: &str) -> Vec<Value> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let text = fs::read_to_string(path.join(format!("{fixture}.jsonl"))).unwrap();
    let lines = text.lines().map(|line| serde_json::from_str(line).unwrap());
    lines.collect()
}

/// The transcript's last line: the CLI's result with usage and cost.
fn result_line(fixture: &str) -> Value {
    let line = transcript(fixture).pop().unwrap();
    assert_eq!(line["type"], "result", "the last line of {fixture}");
    line
}

/// The model the API answered with in the transcript's first assistant line.
fn answering_model(fixture: &str) -> String {
    let lines = transcript(fixture).into_iter();
    let mut assistant = lines.filter(|line| line["type"] == "assistant");
    let first = assistant.next().unwrap();
    first["message"]["model"].as_str().unwrap().to_owned()
}

fn trace_context<'a>(transaction: &'a Transaction) -> &'a TraceContext {
    match transaction.contexts.get("trace") {
        Some(Context::Trace(trace)) => trace,
        other => panic!("no trace context but {other:?}"),
    }
}

fn data<'a>(span: &'a Span, key: &str) -> &'a Value {
    let value = span.data.get(key);
    value.unwrap_or_else(|| panic!("{key} missing from {span:#?}"))
}

/// An attribute that must be sent as a JSON integer.
fn int(span: &Span, key: &str) -> u64 {
    let value = data(span, key);
    value
        .as_u64()
        .unwrap_or_else(|| panic!("{key} = {value} is no integer"))
}

fn text<'a>(span: &'a Span, key: &str) -> &'a str {
    let value = data(span, key);
    value
        .as_str()
        .unwrap_or_else(|| panic!("{key} = {value} is no string"))
}

/// Checks the agent span's usage and cost against the CLI's result line:
/// input counts the cache as Sentry expects, cost is a float sent as is.
fn assert_usage_matches(agent: &Span, result: &Value) {
    let usage = &result["usage"];
    let count = |key: &str| usage[key].as_u64().unwrap();
    let read = count("cache_read_input_tokens");
    let written = count("cache_creation_input_tokens");
    let input = count("input_tokens") + read + written;
    let output = count("output_tokens");

    assert_eq!(int(agent, "gen_ai.usage.input_tokens"), input);
    assert_eq!(int(agent, "gen_ai.usage.output_tokens"), output);
    assert_eq!(int(agent, "gen_ai.usage.total_tokens"), input + output);
    assert_eq!(int(agent, "gen_ai.usage.cache_read.input_tokens"), read);
    let creation = int(agent, "gen_ai.usage.cache_creation.input_tokens");
    assert_eq!(creation, written);

    let cost = data(agent, "gen_ai.cost.total_tokens");
    assert!(cost.is_f64(), "cost {cost} is not a float");
    assert_eq!(cost.as_f64(), result["total_cost_usd"].as_f64());
    let turns = result["num_turns"].as_u64().unwrap();
    assert_eq!(int(agent, "gen_ai.num_turns"), turns);
}

#[tokio::test]
async fn traces_a_plain_answer_as_an_agent_span_with_one_model_call() {
    let run = start(FakeClaude::fixture("a_text"), &[]).await;
    let transaction = run.prompt("what is 2+2", 1).await;

    assert_eq!(transaction.name.as_deref(), Some("handle_message"));
    let trace = trace_context(&transaction);
    assert_eq!(trace.op.as_deref(), Some("telegram.message"));
    assert_eq!(trace.status, Some(SpanStatus::Ok));

    let loading = only(&transaction, "db.sql.query");
    assert_eq!(loading.description.as_deref(), Some("load chat state"));
    let agent = only(&transaction, "gen_ai.invoke_agent");
    assert_eq!(
        agent.description.as_deref(),
        Some("invoke_agent Claude Code")
    );
    assert_eq!(agent.parent_span_id, Some(trace.span_id));
    assert_eq!(agent.status, Some(SpanStatus::Ok));
    assert_eq!(text(agent, "gen_ai.operation.name"), "invoke_agent");
    assert_eq!(text(agent, "gen_ai.agent.name"), "Claude Code");
    assert_eq!(text(agent, "gen_ai.provider.name"), "anthropic");

    let chat = only(&transaction, "gen_ai.chat");
    let model = answering_model("a_text");
    assert_eq!(chat.description, Some(format!("chat {model}")));
    assert_eq!(chat.parent_span_id, Some(agent.span_id));
    assert_eq!(text(chat, "gen_ai.operation.name"), "chat");
    assert_eq!(text(chat, "gen_ai.request.model"), model);
    assert!(spans(&transaction, "gen_ai.execute_tool").is_empty());

    let result = result_line("a_text");
    assert_usage_matches(agent, &result);
    let session = result["session_id"].as_str().unwrap();
    assert_eq!(text(agent, "gen_ai.conversation.id"), session);
    assert_eq!(int(agent, "tool_calls"), 0);

    let sending = only(&transaction, "telegram.send");
    assert_eq!(sending.description.as_deref(), Some("send the reply"));
    assert_eq!(sending.parent_span_id, Some(trace.span_id));
}

#[tokio::test]
async fn traces_parallel_tools_with_the_failed_one_marked() {
    let run = start(FakeClaude::fixture("k3_parallel_tools"), &[]).await;
    let transaction = run.prompt("two cmds", 1).await;

    let agent = only(&transaction, "gen_ai.invoke_agent");
    let tools = spans(&transaction, "gen_ai.execute_tool");
    assert_eq!(tools.len(), 2, "{tools:#?}");
    for tool in &tools {
        assert_eq!(tool.description.as_deref(), Some("execute_tool Bash"));
        assert_eq!(tool.parent_span_id, Some(agent.span_id));
        assert_eq!(text(tool, "gen_ai.operation.name"), "execute_tool");
        assert_eq!(text(tool, "gen_ai.tool.name"), "Bash");
    }
    // The recording's first call echoes, its second exits 3.
    let status_of = |id: &str| {
        let tool = tools.iter().find(|t| text(t, "gen_ai.tool.call.id") == id);
        tool.unwrap_or_else(|| panic!("no span for {id}")).status
    };
    let echo = status_of("toolu_19ac27a9ff3a4664852ed7b2");
    assert_eq!(echo, Some(SpanStatus::Ok));
    let failing = status_of("toolu_9eefe72564ba49dcbfc74422");
    assert_eq!(failing, Some(SpanStatus::InternalError));

    // Two model calls: the one asking for both tools, the one answering.
    let chats = spans(&transaction, "gen_ai.chat");
    assert_eq!(chats.len(), 2, "{chats:#?}");
    assert!(
        chats
            .iter()
            .all(|c| c.parent_span_id == Some(agent.span_id))
    );

    // A failed tool is the agent's business: the run itself answered.
    assert_eq!(agent.status, Some(SpanStatus::Ok));
    assert_eq!(trace_context(&transaction).status, Some(SpanStatus::Ok));
    assert_eq!(int(agent, "tool_calls"), 2);
    assert_eq!(text(agent, "tools_used"), r#"["Bash"]"#);
    assert_usage_matches(agent, &result_line("k3_parallel_tools"));
}

#[tokio::test]
async fn counts_cached_tokens_as_input_on_every_model_call() {
    // Streamed output: each call's usage comes from its own stream events.
    let run = start(FakeClaude::fixture("g_partial_messages"), &[]).await;
    let transaction = run.prompt("run echo hi", 1).await;

    let lines = transcript("g_partial_messages");
    let events = lines.iter().filter(|line| line["type"] == "stream_event");
    let starts = events.filter(|line| line["event"]["type"] == "message_start");
    let mut expected: Vec<(String, u64)> = starts
        .map(|line| {
            let message = &line["event"]["message"];
            let usage = &message["usage"];
            let count = |key: &str| usage[key].as_u64().unwrap();
            let input = count("input_tokens")
                + count("cache_read_input_tokens")
                + count("cache_creation_input_tokens");
            (message["id"].as_str().unwrap().to_owned(), input)
        })
        .collect();
    expected.sort();

    let chats = spans(&transaction, "gen_ai.chat");
    let mut seen: Vec<(String, u64)> = chats
        .iter()
        .map(|chat| {
            assert_eq!(data(chat, "gen_ai.response.streaming"), true);
            let id = text(chat, "gen_ai.response.id").to_owned();
            (id, int(chat, "gen_ai.usage.input_tokens"))
        })
        .collect();
    seen.sort();
    assert_eq!(seen, expected);

    let agent = only(&transaction, "gen_ai.invoke_agent");
    assert_usage_matches(agent, &result_line("g_partial_messages"));
    let tool = only(&transaction, "gen_ai.execute_tool");
    assert_eq!(tool.parent_span_id, Some(agent.span_id));
}

#[tokio::test]
async fn a_second_prompt_continues_the_conversation_in_its_own_trace() {
    let run = start(FakeClaude::fixture("f1_first_turn"), &[]).await;
    run.fake
        .script(2, FakeClaude::fixture("f2_resume_same_cwd"));
    let first = run.prompt("remember: the secret word is PLUM", 1).await;
    let second = run.prompt("what was the secret word?", 2).await;

    let session = result_line("f1_first_turn")["session_id"].clone();
    let (before, after) = (
        only(&first, "gen_ai.invoke_agent"),
        only(&second, "gen_ai.invoke_agent"),
    );
    assert_eq!(data(before, "gen_ai.conversation.id"), &session);
    assert!(!before.data.contains_key("resumed_session_id"));
    assert_eq!(data(after, "gen_ai.conversation.id"), &session);
    assert_eq!(data(after, "resumed_session_id"), &session);

    let calls = run.fake.wait_for_calls(2, WAIT).await;
    assert_eq!(calls[1].flag_value("--resume"), session.as_str());
    assert_ne!(
        trace_context(&first).trace_id,
        trace_context(&second).trace_id
    );
}

#[tokio::test]
async fn a_long_answer_sent_in_several_messages_is_one_send_span() {
    let answer = ["first", "second", "third"]
        .map(|part| format!("The {part} part. {}", "word ".repeat(700)))
        .join("\n\n");
    let mut script = transcript("a_text");
    script[1]["message"]["content"][0]["text"] = answer.clone().into();
    script[2]["result"] = answer.into();
    let lines = script.iter().map(Value::to_string).collect();
    let run = start(lines, &[]).await;

    let transaction = run.prompt("write at length", 1).await;
    let chat = run.telegram.chat(USER);
    let parts = chat.iter().filter(|m| m.text.contains(" part. word"));
    assert_eq!(parts.count(), 3, "{chat:#?}");
    let sending = only(&transaction, "telegram.send");
    let trace = trace_context(&transaction);
    assert_eq!(sending.parent_span_id, Some(trace.span_id));

    // Once the bot has exited, everything it queued has been sent.
    let mut bot = run.bot;
    bot.terminate();
    bot.wait_exit(WAIT).await;
    assert_eq!(run.sentry.transactions().len(), 1);
}

#[tokio::test]
async fn labels_every_post_as_a_sentry_envelope() {
    let run = start(FakeClaude::fixture("b_bash"), &[]).await;
    run.prompt("run echo hi", 1).await;

    let posts = run.sentry.posts();
    assert!(!posts.is_empty());
    for post in posts {
        let kind = post.header("content-type");
        assert_eq!(kind, Some("application/x-sentry-envelope"), "{post:?}");
        assert!(post.envelope.is_some(), "unreadable: {:?}", post.error);
    }
}

#[tokio::test]
async fn sends_nothing_when_no_dsn_is_set() {
    let telegram = BotApi::start().await;
    let sentry = SentryApi::start().await;
    let fake = FakeClaude::new();
    fake.default_script(FakeClaude::fixture("k3_parallel_tools"));
    let mut bot = BotProcess::builder()
        .telegram(&telegram)
        .allowed_users(&[USER])
        .fake_claude(&fake)
        .start();

    telegram.push_text(USER, USER, "two cmds");
    let answer = "Ran two commands, the second failed.";
    telegram.wait_for_text_containing(USER, answer, WAIT).await;
    bot.wait_for_log("sentry monitoring is off", WAIT).await;
    // Once the bot has exited, nothing queued can still be on its way.
    bot.terminate();
    bot.wait_exit(WAIT).await;

    assert!(sentry.posts().is_empty(), "{}", sentry.raw_text());
}
