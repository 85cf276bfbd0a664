//! End to end with the real pinned Claude Code CLI: the bot binary runs it
//! against the Messages API double, and the chat is the Bot API double.
//! Every tool the CLI runs here really runs, in the chat's directory.

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::anthropic_api::{AnthropicApi, Reply, tool_results};
use support::bot_process::{BotBuilder, BotProcess};
use support::telegram_api::BotApi;

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
    let requests = world.anthropic.requests();
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
    let requests = world.anthropic.requests();
    assert_eq!(requests.len(), 2, "{:?}", world.anthropic.routes());
    let results = tool_results(&requests[1]);
    assert_eq!(results.len(), 1, "{results:?}");
    assert!(results[0]["content"].to_string().contains("real-output-42"));
    assert_ne!(results[0]["is_error"], true, "{results:?}");
}
