//! End to end with the real pinned Claude Code CLI: the bot binary runs it
//! against the Messages API double, and the chat is the Bot API double.
//! Every tool the CLI runs here really runs, in the chat's directory.

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use sentry::protocol::{Context, Span};
use serde_json::{Value, json};
use support::anthropic_api::{AnthropicApi, Reply, Usage, tool_results};
use support::bot_process::{BotBuilder, BotProcess};
use support::sentry_api::SentryApi;
use support::telegram_api::BotApi;
use support::wait_for;

const USER: i64 = 5150;
const CHAT: i64 = 5150;
/// An upper bound only: a run of the real CLI takes a second or two.
const WAIT: Duration = Duration::from_secs(60);

/// The doubles and the bot, which runs the real CLI against them.
struct World {
    telegram: BotApi,
    anthropic: AnthropicApi,
    bot: BotProcess,
}

/// Starts the doubles and a bot running the real CLI; `configure` adds to
/// the bot's environment.
async fn start(configure: impl FnOnce(BotBuilder) -> BotBuilder) -> World {
    let telegram = BotApi::start().await;
    let anthropic = AnthropicApi::start().await;
    let builder = BotProcess::builder()
        .telegram(&telegram)
        .allowed_users(&[USER])
        .real_claude(&anthropic);
    let bot = configure(builder).start();
    World {
        telegram,
        anthropic,
        bot,
    }
}

impl World {
    /// The Messages API requests so far; panics if the CLI sent anything
    /// but its connection check and Messages calls.
    fn requests(&self) -> Vec<Value> {
        let routes = self.anthropic.routes();
        let expected = |r: &String| r == "HEAD /" || r.starts_with("POST /v1/messages?");
        assert!(
            routes.iter().all(expected),
            "unexpected traffic: {routes:?}"
        );
        self.anthropic.requests()
    }
}

/// The conversation a Messages request carries, as one searchable text.
fn conversation(request: &Value) -> String {
    request["messages"].to_string()
}

#[tokio::test]
async fn a_plain_answer_of_the_model_arrives_in_the_chat() {
    let world = start(|bot| bot).await;
    world
        .anthropic
        .enqueue(Reply::text("Paris is the capital of France."));

    world
        .telegram
        .push_text(CHAT, USER, "what is the capital of France?");

    let answer = world
        .telegram
        .wait_for_text_containing(CHAT, "Paris is the capital", WAIT)
        .await;
    assert_eq!(answer.text, "Paris is the capital of France.");
    let requests = world.requests();
    assert_eq!(requests.len(), 1, "{:?}", world.anthropic.routes());
    assert!(conversation(&requests[0]).contains("what is the capital of France?"));
}

#[tokio::test]
async fn a_bash_command_really_runs_and_its_output_reaches_the_model() {
    let world = start(|bot| bot).await;
    // The shell computes the marker, so only a real run can produce it.
    let command = json!({"command": "echo real-output-$((6*7))", "description": "Print"});
    world.anthropic.enqueue(Reply::tool_use("Bash", command));
    world
        .anthropic
        .enqueue(Reply::text("The command printed real-output-42."));

    world.telegram.push_text(CHAT, USER, "run the echo");

    let answer = world
        .telegram
        .wait_for_text_containing(CHAT, "The command printed", WAIT)
        .await;
    assert!(answer.text.ends_with("\n\n🔧 Bash"), "{:?}", answer.text);
    let requests = world.requests();
    assert_eq!(requests.len(), 2, "{:?}", world.anthropic.routes());
    let results = tool_results(&requests[1]);
    assert_eq!(results.len(), 1, "{results:?}");
    assert!(results[0]["content"].to_string().contains("real-output-42"));
    assert_ne!(results[0]["is_error"], true, "{results:?}");
}

#[tokio::test]
async fn a_file_written_then_read_by_the_agent_lands_in_the_chat_directory() {
    let world = start(|bot| bot).await;
    let file = world.bot.working_dir().join("notes.txt");
    let path = file.display().to_string();
    let content = "kept by the real CLI\nsecond line\n";
    let write = json!({"file_path": path, "content": content});
    world.anthropic.enqueue(Reply::tool_use("Write", write));
    world
        .anthropic
        .enqueue(Reply::tool_use("Read", json!({"file_path": path})));
    world.anthropic.enqueue(Reply::text("The notes are saved."));

    world.telegram.push_text(CHAT, USER, "save my notes");

    let answer = world
        .telegram
        .wait_for_text_containing(CHAT, "The notes are saved.", WAIT)
        .await;
    assert!(answer.text.ends_with("🔧 Write, Read"), "{:?}", answer.text);
    assert_eq!(std::fs::read_to_string(&file).expect("notes.txt"), content);
    let requests = world.requests();
    assert_eq!(requests.len(), 3, "{:?}", world.anthropic.routes());
    let read = tool_results(&requests[2]);
    let read = read.last().expect("the Read result").to_string();
    assert!(read.contains("second line"), "{read}");
}

/// Runs two prompts, restarting the bot between them when `restart` is set,
/// and checks that the second one's request carries the first exchange.
async fn second_prompt_continues_the_conversation(restart: bool) {
    let mut world = start(|bot| bot).await;
    world
        .anthropic
        .enqueue(Reply::text("Noted: your cat is called Miso."));
    world
        .anthropic
        .enqueue(Reply::text("Your cat is called Miso."));

    world
        .telegram
        .push_text(CHAT, USER, "my cat is called Miso");
    world
        .telegram
        .wait_for_text_containing(CHAT, "Noted:", WAIT)
        .await;
    if restart {
        // As a service manager does it: the turn is closed before exit.
        world.bot.terminate();
        world.bot.wait_exit(WAIT).await;
        world.bot.restart();
    }
    world
        .telegram
        .push_text(CHAT, USER, "what is my cat called?");

    world
        .telegram
        .wait_for_text_containing(CHAT, "Your cat is called Miso.", WAIT)
        .await;
    let requests = world.requests();
    assert_eq!(requests.len(), 2, "{:?}", world.anthropic.routes());
    let second = conversation(&requests[1]);
    for said in [
        "my cat is called Miso",
        "Noted: your cat is called Miso.",
        "what is my cat called?",
    ] {
        assert!(second.contains(said), "{said:?} missing from {second}");
    }
}

#[tokio::test]
async fn the_next_prompt_resumes_the_conversation() {
    second_prompt_continues_the_conversation(false).await;
}

#[tokio::test]
async fn the_conversation_resumes_across_a_restart_of_the_bot() {
    second_prompt_continues_the_conversation(true).await;
}

#[tokio::test]
async fn an_api_error_is_reported_with_the_cli_words_and_the_next_prompt_works() {
    let world = start(|bot| bot).await;
    let failure = Reply::error(400, "invalid_request_error", "scripted refusal");
    world.anthropic.enqueue(failure);
    world.anthropic.enqueue(Reply::text("This time it worked."));

    world.telegram.push_text(CHAT, USER, "first try");
    let error = world
        .telegram
        .wait_for_text_containing(CHAT, "Claude reported an error", WAIT)
        .await;
    world.telegram.push_text(CHAT, USER, "second try");

    world
        .telegram
        .wait_for_text_containing(CHAT, "This time it worked.", WAIT)
        .await;
    let quoted = "API Error: 400 scripted refusal";
    assert!(error.text.contains(quoted), "{:?}", error.text);
    let requests = world.requests();
    assert_eq!(requests.len(), 2, "{:?}", world.anthropic.routes());
    assert!(conversation(&requests[1]).contains("second try"));
}

/// Pids of live `sleep 60` processes whose working directory is `dir`.
fn sleeps_in(dir: &Path) -> Vec<u32> {
    let entries = std::fs::read_dir("/proc").expect("reading /proc").flatten();
    let pids = entries.filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok());
    let sleeping = |pid: &u32| {
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let cwd = std::fs::read_link(format!("/proc/{pid}/cwd"));
        cmdline == b"sleep\x0060\x00" && cwd.is_ok_and(|cwd| cwd == dir)
    };
    pids.filter(sleeping).collect()
}

#[tokio::test]
async fn stop_ends_a_running_command_at_once_and_the_conversation_goes_on() {
    let world = start(|bot| bot).await;
    let sleep = json!({"command": "sleep 60", "description": "Wait a minute"});
    world.anthropic.enqueue(Reply::tool_use("Bash", sleep));
    world.anthropic.enqueue(Reply::text("Back after the stop."));
    let dir = world.bot.working_dir();

    world.telegram.push_text(CHAT, USER, "wait for a minute");
    let sleeping = wait_for("the agent's sleep 60", WAIT, || match sleeps_in(&dir) {
        pids if pids.is_empty() => Err("no sleep 60 in the chat's directory".to_owned()),
        pids => Ok(pids),
    });
    let sleeping = sleeping.await;
    let stopping = Instant::now();
    world.telegram.push_text(CHAT, USER, "/stop");

    world
        .telegram
        .wait_for_text_containing(CHAT, "Stopping the agent.", WAIT)
        .await;
    world
        .telegram
        .wait_for_text_containing(CHAT, "Stopped. The conversation is kept", WAIT)
        .await;
    let took = stopping.elapsed();
    assert!(took < Duration::from_secs(10), "stopping took {took:?}");
    let left = sleeps_in(&dir);
    assert!(left.is_empty(), "left running: {left:?} (was {sleeping:?})");

    world.telegram.push_text(CHAT, USER, "are you back?");
    world
        .telegram
        .wait_for_text_containing(CHAT, "Back after the stop.", WAIT)
        .await;
    let requests = world.requests();
    assert_eq!(requests.len(), 2, "{:?}", world.anthropic.routes());
    let next = conversation(&requests[1]);
    assert!(next.contains("wait for a minute"), "{next}");
    assert!(next.contains("are you back?"), "{next}");
}

/// A span's number at `key`, 0 when absent.
fn number(span: &Span, key: &str) -> u64 {
    span.data
        .get(key)
        .and_then(Value::as_u64)
        .unwrap_or_default()
}

#[tokio::test]
async fn a_traced_run_reports_the_cli_usage_with_a_span_per_call_and_tool() {
    let sentry = SentryApi::start().await;
    let world = start(|bot| bot.sentry(&sentry)).await;
    let first = Usage {
        input_tokens: 120,
        cache_read_input_tokens: 2000,
        cache_creation_input_tokens: 300,
        output_tokens: 40,
    };
    let second = Usage {
        input_tokens: 90,
        cache_read_input_tokens: 2300,
        cache_creation_input_tokens: 7,
        output_tokens: 25,
    };
    let command = json!({"command": "echo traced", "description": "Print"});
    let call = Reply::tool_use("Bash", command).usage(first);
    world.anthropic.enqueue(call);
    world
        .anthropic
        .enqueue(Reply::text("It printed traced.").usage(second));

    world.telegram.push_text(CHAT, USER, "run a traced echo");

    let transaction = wait_for("a handle_message transaction", WAIT, || {
        let transactions = sentry.transactions();
        let found = transactions
            .iter()
            .find(|t| t.name.as_deref() == Some("handle_message"));
        let names: Vec<_> = transactions.iter().map(|t| t.name.clone()).collect();
        found.cloned().ok_or(format!("{names:?}"))
    })
    .await;
    assert_eq!(world.requests().len(), 2);
    let Some(Context::Trace(trace)) = transaction.contexts.get("trace") else {
        panic!("no trace context: {:?}", transaction.contexts);
    };
    assert_eq!(trace.op.as_deref(), Some("telegram.message"));
    let spans = &transaction.spans;
    let of_op = |op: &str| -> Vec<&Span> {
        let found = spans.iter().filter(|s| s.op.as_deref() == Some(op));
        found.collect()
    };
    let agents = of_op("gen_ai.invoke_agent");
    assert_eq!(agents.len(), 1, "{spans:#?}");
    let agent = agents[0];
    // Sentry counts cache reads and writes as input.
    let all_input =
        |u: Usage| u.input_tokens + u.cache_read_input_tokens + u.cache_creation_input_tokens;
    let usage = |key: &str| number(agent, &format!("gen_ai.usage.{key}"));
    assert_eq!(usage("input_tokens"), all_input(first) + all_input(second));
    assert_eq!(
        usage("output_tokens"),
        first.output_tokens + second.output_tokens
    );
    let read = first.cache_read_input_tokens + second.cache_read_input_tokens;
    assert_eq!(usage("cache_read.input_tokens"), read);

    let tools = of_op("gen_ai.execute_tool");
    let tool_names: Vec<_> = tools.iter().map(|s| s.description.as_deref()).collect();
    assert_eq!(tool_names, [Some("execute_tool Bash")]);
    let mut chats = of_op("gen_ai.chat");
    chats.sort_by_key(|s| s.start_timestamp);
    let chat_input: Vec<u64> = chats
        .iter()
        .map(|s| number(s, "gen_ai.usage.input_tokens"))
        .collect();
    assert_eq!(
        chat_input,
        [all_input(first), all_input(second)],
        "{chats:#?}"
    );
    for span in tools.iter().chain(&chats) {
        assert_eq!(span.parent_span_id, Some(agent.span_id), "{span:#?}");
    }
}
