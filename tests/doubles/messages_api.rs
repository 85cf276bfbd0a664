//! The Messages API double, driven by the real pinned Claude CLI and by
//! plain HTTP for what the CLI does not show.

use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;

use crate::support::anthropic_api::{AnthropicApi, Reply, Usage, claude_cli, tool_results};

const CLI_TIMEOUT: Duration = Duration::from_secs(90);

/// What one run of the CLI printed.
struct Run {
    status: ExitStatus,
    lines: Vec<Value>,
    stderr: String,
}

impl Run {
    fn result(&self) -> &Value {
        let result = self.lines.iter().find(|l| l["type"] == "result");
        result.unwrap_or_else(|| panic!("no result line; stderr: {}", self.stderr))
    }
}

/// Runs `claude -p --output-format stream-json --verbose` plus `flags`, with
/// `prompt` on stdin, in fresh HOME and working dirs.
async fn run_claude(api: &AnthropicApi, flags: &[&str], prompt: &str) -> Run {
    let home = tempfile::tempdir().expect("temp HOME");
    let cwd = tempfile::tempdir().expect("temp cwd");
    let mut child = tokio::process::Command::new(claude_cli())
        .args(["-p", "--output-format", "stream-json", "--verbose"])
        .args(flags)
        .env_clear()
        .envs(api.claude_env(home.path()))
        .current_dir(cwd.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("starting the claude CLI");

    let mut stdin = child.stdin.take().expect("piped stdin");
    stdin
        .write_all(prompt.as_bytes())
        .await
        .expect("writing the prompt");
    drop(stdin);
    let output = tokio::time::timeout(CLI_TIMEOUT, child.wait_with_output()).await;
    let output = output
        .expect("claude finished in time")
        .expect("claude output");

    let stdout = String::from_utf8_lossy(&output.stdout);
    let lines = stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"));
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    Run {
        status: output.status,
        lines: lines.collect(),
        stderr,
    }
}

/// Everything but the connection check and Messages calls is a surprise.
fn assert_only_messages_traffic(api: &AnthropicApi) {
    for route in api.routes() {
        let expected = route == "HEAD /" || route.starts_with("POST /v1/messages");
        assert!(
            expected,
            "unexpected request {route}; all: {:?}",
            api.routes()
        );
    }
}

#[tokio::test]
async fn the_real_cli_prints_a_scripted_text_answer() {
    let api = AnthropicApi::start().await;
    api.enqueue(Reply::text("Four, as far as I can tell."));

    let run = run_claude(&api, &[], "what is 2+2").await;

    let result = run.result();
    assert!(run.status.success(), "{}", run.stderr);
    assert_eq!(result["result"], "Four, as far as I can tell.");
    assert_eq!(result["is_error"], false);
    let request = &api.requests()[0];
    assert_eq!(request["stream"], true);
    assert!(request.to_string().contains("what is 2+2"));
    let assistant = run
        .lines
        .iter()
        .find(|l| l["type"] == "assistant")
        .expect("assistant");
    assert_eq!(assistant["message"]["model"], request["model"]);
    assert_eq!(api.remaining(), 0);
    assert_only_messages_traffic(&api);
}

#[tokio::test]
async fn the_real_cli_runs_bash_and_sends_the_tool_result_back() {
    let api = AnthropicApi::start().await;
    let usage = Usage {
        output_tokens: 42,
        ..Usage::default()
    };
    let command = json!({"command": "echo hi-from-the-tool", "description": "Print"});
    api.enqueue(
        Reply::text("I'll run it.")
            .and_tool_use("Bash", command)
            .usage(usage),
    );
    api.enqueue(Reply::text("It printed the greeting."));
    let flags = ["--include-partial-messages", "--allowedTools", "Bash"];

    let run = run_claude(&api, &flags, "run echo").await;

    assert!(run.status.success(), "{}", run.stderr);
    assert_eq!(run.result()["num_turns"], 2);
    let requests = api.requests();
    assert_eq!(requests.len(), 2);
    let results = tool_results(&requests[1]);
    assert_eq!(results.len(), 1, "{results:?}");
    assert_eq!(results[0]["tool_use_id"], "toolu_double_1_1");
    assert!(
        results[0]["content"]
            .to_string()
            .contains("hi-from-the-tool")
    );
    let deltas = run
        .lines
        .iter()
        .filter(|l| l["event"]["type"] == "message_delta");
    let output_tokens: Vec<&Value> = deltas
        .map(|l| &l["event"]["usage"]["output_tokens"])
        .collect();
    assert_eq!(output_tokens, [&json!(42), &json!(5)]);
}

#[tokio::test]
async fn an_api_error_ends_the_real_cli_run_with_is_error() {
    let api = AnthropicApi::start().await;
    api.enqueue(Reply::error(
        400,
        "invalid_request_error",
        "scripted failure",
    ));

    let run = run_claude(&api, &[], "hi").await;

    assert_eq!(run.status.code(), Some(1));
    assert_eq!(run.result()["is_error"], true);
    assert_eq!(api.requests().len(), 1);
}

#[tokio::test]
async fn with_retries_off_a_server_error_fails_the_real_cli_at_once() {
    let api = AnthropicApi::start().await;
    api.enqueue(Reply::error(500, "api_error", "scripted outage"));

    let run = run_claude(&api, &[], "hi").await;

    assert_eq!(run.result()["is_error"], true);
    assert_eq!(api.requests().len(), 1, "retried: {:?}", api.routes());
}

#[tokio::test]
async fn without_a_scripted_reply_the_answer_is_a_400() {
    let api = AnthropicApi::start().await;
    let body = json!({"model": "m", "max_tokens": 10, "messages": []});

    let response = post_messages(&api, &body).await;

    assert_eq!(response.status(), 400);
    let error: Value = response.json().await.expect("JSON error");
    assert_eq!(error["error"]["type"], "invalid_request_error");
    assert_eq!(
        error["error"]["message"],
        "test double has no scripted reply"
    );
}

async fn post_messages(api: &AnthropicApi, body: &Value) -> reqwest::Response {
    let url = format!("{}/v1/messages?beta=true", api.url());
    let request = reqwest::Client::new().post(url).json(body).send();
    request.await.expect("posting to the double")
}

#[tokio::test]
async fn a_non_streaming_request_gets_the_whole_message() {
    let api = AnthropicApi::start().await;
    let reply = Reply::text("Let me look.").and_tool_use("Read", json!({"file_path": "/a"}));
    api.enqueue(reply);
    let body = json!({"model": "claude-x-1", "max_tokens": 10, "stream": false});

    let message: Value = post_messages(&api, &body).await.json().await.expect("JSON");

    assert_eq!(message["model"], "claude-x-1");
    assert_eq!(message["stop_reason"], "tool_use");
    assert_eq!(message["content"][0]["text"], "Let me look.");
    assert_eq!(message["content"][1]["input"]["file_path"], "/a");
    assert_eq!(message["usage"]["output_tokens"], 5);
}

#[tokio::test]
async fn a_stream_can_be_slowed_down_and_broken_off() {
    let api = AnthropicApi::start().await;
    let pause = Duration::from_millis(50);
    api.enqueue(Reply::text("slow").pause_between_events(pause));
    api.enqueue(Reply::text("broken answer").break_after_events(3));
    let body = json!({"model": "m", "max_tokens": 10, "stream": true});

    let started = Instant::now();
    let slow = post_messages(&api, &body)
        .await
        .text()
        .await
        .expect("full stream");
    let slow_took = started.elapsed();
    let broken = post_messages(&api, &body).await.text().await;

    let events: Vec<&str> = slow
        .lines()
        .filter_map(|l| l.strip_prefix("event: "))
        .collect();
    assert_eq!(
        events,
        [
            "message_start",
            "ping",
            "content_block_start",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop",
        ]
    );
    assert!(slow_took >= pause * 6, "took {slow_took:?}");
    assert!(broken.is_err(), "{broken:?}");
}
