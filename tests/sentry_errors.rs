//! What reaches Sentry when things go wrong, what it keeps private, and a
//! Sentry that is down: the real bot binary with the stand-in CLI and the
//! Sentry double. Successful runs are in `sentry_traces.rs`.

mod support;
mod traced;

use std::fs;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use sentry::protocol::{Context, Event, SpanStatus, Transaction};
use serde_json::Value;
use support::fake_claude::FakeClaude;
use support::telegram_api::BotApi;
use support::wait_for;
use traced::{Traced, USER, WAIT, only, start};

/// The username the Bot API double gives `USER`.
const USERNAME: &str = "user4242";

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// The trace id and span id of a transaction or an error event.
fn trace_of(contexts: &sentry::protocol::Map<String, Context>) -> (String, String) {
    match contexts.get("trace") {
        Some(Context::Trace(trace)) => (trace.trace_id.to_string(), trace.span_id.to_string()),
        other => panic!("no trace context but {other:?}"),
    }
}

fn status_of(transaction: &Transaction) -> Option<SpanStatus> {
    match transaction.contexts.get("trace") {
        Some(Context::Trace(trace)) => trace.status,
        _ => None,
    }
}

/// An event as the JSON Sentry received, for reading its contexts.
fn json(event: &Event) -> Value {
    serde_json::to_value(event).unwrap()
}

/// The message of the event's exception.
fn exception(event: &Event) -> String {
    let values = &event.exception.values;
    assert_eq!(values.len(), 1, "{event:#?}");
    values[0].value.clone().unwrap_or_default()
}

/// Checks that an error event belongs to the transaction's trace and names
/// the user and the bot's configuration.
fn assert_reported_in(event: &Event, transaction: &Transaction) {
    let (trace_id, span_id) = trace_of(&transaction.contexts);
    assert_eq!(trace_of(&event.contexts), (trace_id, span_id));

    let event = json(event);
    assert_eq!(event["user"]["id"], USER.to_string());
    let working = &event["contexts"]["session"]["working_directory"];
    assert!(working.as_str().unwrap().ends_with("/workspaces/work"));
    let tools = &event["contexts"]["bot"]["allowed_tools"];
    assert_eq!(tools, &serde_json::json!(["Read", "Write", "Edit", "Bash"]));
    assert_eq!(event["contexts"]["bot"]["permission_mode"], "default");
}

#[tokio::test]
async fn reports_a_missing_cli_in_the_trace_of_its_message() {
    let run = start(Vec::new(), &[("CLAUDE_BIN", "/nonexistent/claude")]).await;
    let transaction = run.prompt("hello?", 1).await;
    let events = run.sentry.wait_for_events(1, WAIT).await;

    assert_eq!(status_of(&transaction), Some(SpanStatus::InternalError));
    let agent = only(&transaction, "gen_ai.invoke_agent");
    assert_eq!(agent.status, Some(SpanStatus::InternalError));
    assert_eq!(agent.data["error.type"], "not_found");

    let event = &events[0];
    assert!(
        exception(event).contains("/nonexistent/claude"),
        "{event:#?}"
    );
    assert_reported_in(event, &transaction);
    let message = &json(event)["contexts"]["message"];
    assert_eq!(message["length"], "hello?".len());
    run.telegram
        .wait_for_text_containing(USER, "CLAUDE_BIN", WAIT)
        .await;
}

#[tokio::test]
async fn marks_a_denied_tool_failed_without_reporting_an_error() {
    let run = start(FakeClaude::fixture("d_denied_default_mode"), &[]).await;
    let transaction = run.prompt("touch a file outside", 1).await;

    let tool = only(&transaction, "gen_ai.execute_tool");
    assert_eq!(tool.status, Some(SpanStatus::InternalError));
    assert_eq!(tool.data["permission_denied"], true);
    let agent = only(&transaction, "gen_ai.invoke_agent");
    assert_eq!(tool.parent_span_id, Some(agent.span_id));
    assert_eq!(agent.status, Some(SpanStatus::Ok));
    assert_eq!(status_of(&transaction), Some(SpanStatus::Ok));

    let sentry = run.stop().await;
    assert!(sentry.events().is_empty(), "{:#?}", sentry.events());
}

#[tokio::test]
async fn reports_a_cli_that_exits_nonzero_with_its_exit_code() {
    // The CLI refuses bypassPermissions as root: stderr, no output, exit 1.
    let run = start(FakeClaude::fixture_run("d4_bypass_mode"), &[]).await;
    let transaction = run.prompt("touch a file", 1).await;
    let events = run.sentry.wait_for_events(1, WAIT).await;

    assert_eq!(status_of(&transaction), Some(SpanStatus::InternalError));
    let agent = only(&transaction, "gen_ai.invoke_agent");
    assert_eq!(agent.data["process.exit_code"], 1);
    assert_eq!(agent.data["error.type"], "no_result");
    let event = &events[0];
    assert!(exception(event).contains("without a result"), "{event:#?}");
    assert_reported_in(event, &transaction);
    let process = &json(event)["contexts"]["process"];
    assert_eq!(process["exit_code"], 1);
    let stderr = fs::read_to_string(fixtures().join("d4_bypass_mode.stderr")).unwrap();
    assert_eq!(process["stderr_tail"].as_str(), Some(stderr.trim_end()));
}

#[tokio::test]
async fn marks_a_run_stopped_by_the_timeout_deadline_exceeded() {
    let init = FakeClaude::fixture("a_text").remove(0);
    let script = vec![init, "#sleep 60".to_owned()];
    let run = start(script, &[("CLAUDE_TIMEOUT_SECS", "1")]).await;
    let transaction = run.prompt("take your time", 1).await;
    let events = run.sentry.wait_for_events(1, WAIT).await;

    assert_eq!(status_of(&transaction), Some(SpanStatus::DeadlineExceeded));
    let agent = only(&transaction, "gen_ai.invoke_agent");
    assert_eq!(agent.status, Some(SpanStatus::DeadlineExceeded));
    assert_eq!(agent.data["error.type"], "timed_out");
    let event = &events[0];
    assert!(exception(event).contains("longer than 1s"), "{event:#?}");
    assert_reported_in(event, &transaction);
}

/// Runs a prompt that uses tools and answers, then one whose CLI fails,
/// each carrying `marker`; returns what Sentry got.
async fn answer_then_fail(marker: &str, env: &[(&str, &str)]) -> Traced {
    let run = start(FakeClaude::fixture("k3_parallel_tools"), env).await;
    run.fake
        .script(2, FakeClaude::fixture_run("d4_bypass_mode"));
    run.prompt(&format!("two cmds {marker}"), 1).await;
    run.prompt(&format!("touch a file {marker}"), 2).await;
    run.sentry.wait_for_events(1, WAIT).await;
    run
}

/// What the k3 recording's model answered, and one tool's command.
const ANSWER: &str = "Ran two commands, the second failed.";
const COMMAND: &str = "echo one";

#[tokio::test]
async fn keeps_prompts_answers_tool_io_and_usernames_out_of_sentry_by_default() {
    let marker = "prompt-marker-5c1e0a";
    let run = answer_then_fail(marker, &[]).await;
    run.telegram
        .wait_for_text_containing(USER, ANSWER, WAIT)
        .await;
    let sentry = run.stop().await;

    let raw = sentry.raw_text();
    for private in [marker, ANSWER, COMMAND, USERNAME] {
        assert!(!raw.contains(private), "{private:?} was sent:\n{raw}");
    }
    let event = json(&sentry.events()[0]);
    let message = &event["contexts"]["message"];
    let prompt = format!("touch a file {marker}");
    assert_eq!(message["length"], prompt.len());
    assert!(message.get("preview").is_none(), "{message}");
}

#[tokio::test]
async fn records_prompts_answers_tool_io_and_usernames_with_pii_on() {
    let marker = "prompt-marker-9d27b4";
    let run = answer_then_fail(marker, &[("SENTRY_SEND_DEFAULT_PII", "true")]).await;
    let transaction = &run.sentry.transactions()[0];

    let agent = only(transaction, "gen_ai.invoke_agent");
    let messages = |key: &str| -> Value {
        let text = agent.data[key].as_str().expect("messages as JSON text");
        serde_json::from_str(text).unwrap()
    };
    let prompt = format!("two cmds {marker}");
    let input = serde_json::json!([{ "role": "user", "content": prompt }]);
    assert_eq!(messages("gen_ai.input.messages"), input);
    let output = serde_json::json!([{ "role": "assistant", "content": ANSWER }]);
    assert_eq!(messages("gen_ai.output.messages"), output);

    let tools = transaction.spans.iter();
    let echo = tools
        .filter(|s| s.op.as_deref() == Some("gen_ai.execute_tool"))
        .find(|s| s.data["gen_ai.tool.call.result"] == "one")
        .expect("the echo's span with its output");
    let arguments = echo.data["gen_ai.tool.call.arguments"].as_str().unwrap();
    let arguments: Value = serde_json::from_str(arguments).unwrap();
    assert_eq!(arguments["command"], COMMAND);

    let user = transaction.user.as_ref().unwrap();
    assert_eq!(user.username.as_deref(), Some(USERNAME));
    let event = json(&run.sentry.events()[0]);
    assert_eq!(event["user"]["username"], USERNAME);
    let preview = &event["contexts"]["message"]["preview"];
    assert_eq!(preview, &format!("touch a file {marker}"));
}

/// A loopback port nothing listens on.
fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

#[tokio::test]
async fn answers_while_sentry_refuses_connections() {
    let dsn = format!("http://public@127.0.0.1:{}/1", closed_port());
    let run = start(FakeClaude::fixture("a_text"), &[("SENTRY_DSN", &dsn)]).await;

    for (n, prompt) in ["what is 2+2", "and again?"].into_iter().enumerate() {
        run.telegram.push_text(USER, USER, prompt);
        wait_for_answers(&run.telegram, n + 1).await;
    }
}

/// Waits until the chat holds `n` answers of the a_text recording.
async fn wait_for_answers(telegram: &BotApi, n: usize) {
    wait_for(&format!("{n} answers"), WAIT, || {
        let chat = telegram.chat(USER);
        let answers = chat.iter().filter(|m| m.text.contains("2+2=4"));
        match answers.count() {
            count if count >= n => Ok(()),
            count => Err(format!("{count} answers")),
        }
    })
    .await;
}

/// A Sentry that accepts connections and never answers; returns its DSN.
async fn silent_sentry() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    format!("http://public@127.0.0.1:{port}/1")
}

#[tokio::test]
async fn answers_promptly_while_sentry_never_replies() {
    let dsn = silent_sentry().await;
    let run = start(FakeClaude::fixture("a_text"), &[("SENTRY_DSN", &dsn)]).await;

    // The bot gives up on an envelope after 5 s: had a turn waited for its
    // transaction to go out, the two answers would take over 10 s.
    let started = Instant::now();
    for n in 1..=2 {
        run.telegram.push_text(USER, USER, "what is 2+2");
        wait_for_answers(&run.telegram, n).await;
    }
    let took = started.elapsed();
    assert!(took < Duration::from_secs(8), "two answers took {took:?}");
}
