//! A Telegram conversation end to end, with the stand-in CLI: the real bot
//! binary polls the Bot API double and runs the fake `claude`. Replies, how
//! a conversation continues, how runs fail, and how long answers arrive.

mod fake_chat;
mod support;

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use fake_chat::{A_TEXT_SESSION, CHAT, Chat, USER, WAIT, answering, is_status, replies, start};
use support::fake_claude::FakeClaude;
use support::sentry_api::SentryApi;
use support::telegram_api::Failure;
use support::wait_for;

#[tokio::test]
async fn runs_the_cli_with_the_prompt_on_stdin_in_the_chat_directory() {
    let sentry = SentryApi::start().await;
    let chat = start(|bot| {
        bot.sentry(&sentry)
            .env("CLAUDE_MODEL", "claude-test-model")
            .env("CLAUDE_MAX_TURNS", "7")
            .env("CLAUDE_ALLOWED_TOOLS", "Read,Bash")
            .env("CLAUDE_PERMISSION_MODE", "acceptEdits")
            .env("ANTHROPIC_API_KEY", "sk-visible-to-the-agent")
    })
    .await;
    chat.fake.default_script(FakeClaude::fixture("a_text"));

    let replies = chat.ask("what is 2+2?", 1).await;
    let texts: Vec<&str> = replies.iter().map(|m| m.text.as_str()).collect();
    assert_eq!(texts, ["Hello from the fake API! 2+2=4."]);

    let calls = chat.fake.calls();
    assert_eq!(calls.len(), 1);
    let call = &calls[0];
    assert_eq!(call.stdin, "what is 2+2?");
    let argv = &call.argv;
    assert!(!argv.iter().any(|a| a.contains("2+2")), "{argv:?}");
    let expected_start = [
        "-p",
        "--output-format",
        "stream-json",
        "--verbose",
        "--include-partial-messages",
    ];
    assert_eq!(argv[..5], expected_start, "{argv:?}");
    assert_eq!(call.flag_value("--allowedTools"), Some("Read,Bash"));
    assert_eq!(call.flag_value("--permission-mode"), Some("acceptEdits"));
    assert_eq!(call.flag_value("--model"), Some("claude-test-model"));
    assert_eq!(call.flag_value("--max-turns"), Some("7"));
    assert!(!call.has_flag("--resume"));

    let working_dir = chat.bot.working_dir().canonicalize().unwrap();
    assert_eq!(call.cwd, working_dir);
    assert!(!call.env.contains_key("TELEGRAM_BOT_TOKEN"));
    assert!(!call.env.contains_key("SENTRY_DSN"));
    let key = call.env.get("ANTHROPIC_API_KEY").map(String::as_str);
    assert_eq!(key, Some("sk-visible-to-the-agent"));
    assert!(call.env.contains_key("PATH"));
}

#[tokio::test]
async fn leaves_out_model_and_max_turns_unless_configured() {
    let chat = start(|bot| bot).await;
    chat.fake.default_script(FakeClaude::fixture("a_text"));

    chat.ask("hi", 1).await;
    let call = &chat.fake.calls()[0];
    assert!(!call.has_flag("--model") && !call.has_flag("--max-turns"));
    let tools = call.flag_value("--allowedTools");
    assert_eq!(tools, Some("Read,Write,Edit,Bash"));
    assert_eq!(call.flag_value("--permission-mode"), Some("default"));
}

#[tokio::test]
async fn renders_markdown_answers_as_valid_telegram_html() {
    let chat = start(|bot| bot).await;
    let markdown = "Here is **bold** code:\n\n```rust\nif a < b && c > d {}\n```\n\n\
                    See [the docs](https://example.org/a?b=1&c=2): 1 < 2 > 0 & more.";
    chat.fake.default_script(answering("a_text", markdown));

    let replies = chat.ask("show me", 1).await;
    assert_eq!(replies.len(), 1, "{replies:#?}");
    let answer = &replies[0];
    assert!(answer.html.is_some(), "sent as plain text: {answer:#?}");
    let text = &answer.text;
    assert!(text.contains("if a < b && c > d {}"), "{text}");
    assert!(text.contains("1 < 2 > 0 & more."), "{text}");
    let kinds: Vec<&str> = answer.entities.iter().map(|e| e.kind).collect();
    assert!(kinds.contains(&"bold"), "{kinds:?}");
    let pre = answer.entities.iter().find(|e| e.kind == "pre");
    assert_eq!(pre.and_then(|e| e.language.as_deref()), Some("rust"));
    let link = answer.entities.iter().find(|e| e.kind == "text_link");
    let url = link.and_then(|e| e.url.as_deref());
    assert_eq!(url, Some("https://example.org/a?b=1&c=2"));

    // Telegram accepted every message at the first try: no plain-text retry.
    let sent = chat.telegram.calls_to("sendMessage").len();
    assert_eq!(sent, chat.telegram.chat(CHAT).len());
}

#[tokio::test]
async fn names_the_tools_a_run_used_under_the_answer() {
    let chat = start(|bot| bot).await;
    chat.fake.default_script(FakeClaude::fixture("b_bash"));

    let replies = chat.ask("run echo hi", 1).await;
    assert_eq!(replies.len(), 1, "{replies:#?}");
    let text = &replies[0].text;
    assert!(text.starts_with("The command printed: hi"), "{text}");
    assert!(text.lines().last().unwrap().contains("🔧 Bash"), "{text}");
}

#[tokio::test]
async fn reports_a_refused_tool_and_how_to_allow_it() {
    let chat = start(|bot| bot).await;
    chat.fake
        .default_script(FakeClaude::fixture("d_denied_default_mode"));

    let replies = chat.ask("touch a file", 1).await;
    assert_eq!(replies.len(), 1, "{replies:#?}");
    let text = &replies[0].text;
    assert!(text.starts_with("I was not allowed to run Bash."), "{text}");
    let note = text.lines().find(|l| l.contains("Not permitted"));
    let note = note.unwrap_or_else(|| panic!("no denial note in {text}"));
    assert!(note.contains("Bash") && note.contains("CLAUDE_ALLOWED_TOOLS"));
}

#[tokio::test]
async fn continues_the_conversation_with_the_next_prompt_and_after_a_restart() {
    let mut chat = start(|bot| bot).await;
    chat.fake.default_script(FakeClaude::fixture("a_text"));

    chat.ask("first", 1).await;
    assert!(!chat.fake.calls()[0].has_flag("--resume"));
    chat.ask("second", 2).await;
    let second = &chat.fake.calls()[1];
    assert_eq!(second.flag_value("--resume"), Some(A_TEXT_SESSION));

    chat.bot.restart();
    let replies = chat.ask("after the restart", 1).await;
    assert_eq!(replies.len(), 3, "{replies:#?}");
    let third = &chat.fake.calls()[2];
    assert_eq!(third.stdin, "after the restart");
    assert_eq!(third.flag_value("--resume"), Some(A_TEXT_SESSION));
}

#[tokio::test]
async fn keeps_the_conversation_when_its_answer_cannot_be_delivered() {
    let chat = start(|bot| bot).await;
    // The pause lets the status message go out before the answer does, so
    // the failure below hits the answer and nothing else.
    let mut held = FakeClaude::fixture("a_text");
    held.insert(1, "#sleep 3".to_owned());
    chat.fake.script(1, held);
    chat.fake.default_script(FakeClaude::fixture("a_text"));

    chat.telegram.push_text(CHAT, USER, "first");
    chat.telegram.wait_for_bot_messages(CHAT, 1, WAIT).await;
    let refusal = "Bad Request: chat write is not allowed right now";
    chat.telegram
        .fail_next("sendMessage", Failure::BadRequest(refusal.to_owned()));
    chat.turns_done(1).await;

    let messages = chat.telegram.chat(CHAT);
    let texts: Vec<String> = replies(&messages).into_iter().map(|m| m.text).collect();
    assert_eq!(texts.len(), 1, "{texts:?}");
    assert!(texts[0].contains("Telegram refused it"), "{texts:?}");
    assert!(messages[0].text.starts_with('✅'), "{messages:#?}");

    chat.ask("second", 2).await;
    let second = &chat.fake.calls()[1];
    assert_eq!(second.flag_value("--resume"), Some(A_TEXT_SESSION));
}

/// Runs invocation 1 with `script` and returns the text of the one reply,
/// checking that it is the only one, that Telegram took its HTML, and that
/// a status message, if any, ended as a failure.
async fn the_error_reply(chat: &Chat, script: Vec<String>) -> String {
    chat.fake.script(1, script);
    let replies = chat.ask("do it", 1).await;
    assert_eq!(replies.len(), 1, "{replies:#?}");
    assert!(replies[0].html.is_some(), "as plain text: {replies:#?}");
    let messages = chat.telegram.chat(CHAT);
    let status = messages.iter().find(|m| is_status(m));
    if let Some(status) = status {
        assert!(status.text.starts_with("⚠️"), "{status:#?}");
    }
    replies[0].text.clone()
}

#[tokio::test]
async fn quotes_stderr_when_the_cli_fails_without_an_answer() {
    let chat = start(|bot| bot).await;
    let mut script = vec![FakeClaude::fixture("a_text")[0].clone()];
    let stderr = "#stderr boom: <stdin> & more";
    script.extend([stderr.to_owned(), "#exit 1".to_owned()]);

    let reply = the_error_reply(&chat, script).await;
    assert!(reply.contains("status 1"), "{reply}");
    assert!(reply.contains("boom: <stdin> & more"), "{reply}");
    assert!(reply.contains("/new"), "{reply}");
}

#[tokio::test]
async fn quotes_stderr_when_the_cli_exits_non_zero_after_a_result() {
    let chat = start(|bot| bot).await;
    let mut script = FakeClaude::fixture("a_text");
    script.extend(["#stderr boom".to_owned(), "#exit 1".to_owned()]);

    let reply = the_error_reply(&chat, script).await;
    assert!(reply.contains("exited with status 1"), "{reply}");
    assert!(reply.contains("boom") && reply.contains("/new"), "{reply}");
    assert!(!reply.contains("Hello from the fake API"), "{reply}");
}

#[tokio::test]
async fn passes_on_the_error_the_cli_reported() {
    let chat = start(|bot| bot).await;
    let reply = the_error_reply(&chat, FakeClaude::fixture_run("e4_400")).await;
    assert!(reply.contains("Claude reported an error"), "{reply}");
    assert!(reply.contains("Prompt is too long"), "{reply}");
    assert!(reply.contains("/new"), "{reply}");
}

#[tokio::test]
async fn says_the_cli_stopped_without_an_answer_when_no_result_came() {
    for exit in ["#exit 0", "#exit 137"] {
        let chat = start(|bot| bot).await;
        let mut script = FakeClaude::fixture("i5_sigkill_during_stream");
        script.push(exit.to_owned());
        let reply = the_error_reply(&chat, script).await;
        assert!(reply.contains("without an answer"), "{exit}: {reply}");
        assert!(reply.contains("/new"), "{exit}: {reply}");
    }
}

#[tokio::test]
async fn skips_a_line_that_is_not_json_and_still_answers() {
    let chat = start(|bot| bot).await;
    let mut script = FakeClaude::fixture("a_text");
    script.insert(2, "this is {not json".to_owned());
    chat.fake.script(1, script);

    let replies = chat.ask("hi", 1).await;
    let texts: Vec<&str> = replies.iter().map(|m| m.text.as_str()).collect();
    assert_eq!(texts, ["Hello from the fake API! 2+2=4."]);
}

#[tokio::test]
async fn tells_where_the_cli_was_not_found_and_keeps_serving() {
    let missing = "/nonexistent/bin/claude";
    let chat = start(|bot| bot.env("CLAUDE_BIN", missing)).await;

    let first = chat.ask("hi", 1).await;
    assert_eq!(first.len(), 1, "{first:#?}");
    assert!(first[0].text.contains(&format!("not found at {missing}")));
    let second = chat.ask("hi again", 2).await;
    assert_eq!(second.len(), 2, "{second:#?}");
    assert!(second[1].text.contains("not found at"), "{second:#?}");
}

/// The command lines of the processes (zombies aside) working in `dir`.
fn processes_in(dir: &Path) -> Vec<String> {
    let entries = fs::read_dir("/proc").expect("reading /proc");
    let names = entries.filter_map(|entry| entry.ok()?.file_name().into_string().ok());
    let pids = names.filter(|name| name.bytes().all(|b| b.is_ascii_digit()));
    let working_in_dir = |pid: &String| {
        let cwd = fs::read_link(format!("/proc/{pid}/cwd"));
        cwd.is_ok_and(|cwd| cwd == dir)
    };
    let command_line = |pid: String| {
        let cmdline = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        String::from_utf8_lossy(&cmdline).replace('\0', " ")
    };
    pids.filter(working_in_dir).map(command_line).collect()
}

#[tokio::test]
async fn stops_a_run_that_takes_too_long_and_leaves_no_process_behind() {
    let chat = start(|bot| bot.env("CLAUDE_TIMEOUT_SECS", "2")).await;
    let mut script = FakeClaude::fixture("a_text");
    script.insert(1, "#sleep 30".to_owned());
    chat.fake.script(1, script);
    let dir = chat.bot.working_dir().canonicalize().unwrap();

    let started = Instant::now();
    chat.telegram.push_text(CHAT, USER, "take your time");
    chat.telegram.wait_for_bot_messages(CHAT, 1, WAIT).await;
    let running = processes_in(&dir);
    let sleeping = running.iter().any(|p| p.starts_with("sleep 30"));
    assert!(sleeping, "{running:?}");

    chat.turns_done(1).await;
    let elapsed = started.elapsed();
    assert!(elapsed < Duration::from_secs(10), "{elapsed:?}");
    let messages = chat.telegram.chat(CHAT);
    let replies = replies(&messages);
    assert_eq!(replies.len(), 1, "{messages:#?}");
    assert!(replies[0].text.contains("longer than 2s"), "{replies:#?}");
    assert!(messages[0].text.starts_with("⚠️"), "{messages:#?}");
    let gone = Duration::from_secs(5);
    wait_for("the fake and its sleep to end", gone, || {
        let left = processes_in(&dir);
        match left.is_empty() {
            true => Ok(()),
            false => Err(format!("{left:?}")),
        }
    })
    .await;
}

#[tokio::test]
async fn starts_a_new_conversation_when_the_old_one_cannot_be_resumed() {
    let chat = start(|bot| bot).await;
    chat.fake.script(1, FakeClaude::fixture("a_text"));
    chat.fake
        .script(2, FakeClaude::fixture_run("f3_resume_other_cwd"));
    chat.fake.default_script(FakeClaude::fixture("a_text"));
    chat.ask("first", 1).await;

    let replies = chat.ask("second", 2).await;
    assert_eq!(replies.len(), 2, "{replies:#?}");
    let answer = &replies[1].text;
    assert!(answer.starts_with("Hello from the fake API!"), "{answer}");
    assert!(answer.contains("a new one began"), "{answer}");
    let calls = chat.fake.calls();
    assert_eq!(calls.len(), 3);
    assert_eq!(calls[1].flag_value("--resume"), Some(A_TEXT_SESSION));
    assert_eq!(calls[2].stdin, "second");
    assert!(!calls[2].has_flag("--resume"), "{:?}", calls[2].argv);

    // The new conversation is the one the next prompt continues.
    chat.ask("third", 3).await;
    let third = &chat.fake.calls()[3];
    assert_eq!(third.flag_value("--resume"), Some(A_TEXT_SESSION));
}

/// `count` paragraphs of plain text, some with characters outside the BMP.
fn plain_paragraphs(count: usize) -> String {
    let paragraph = |i: usize| {
        let words = format!("paragraph {i} says something 😀 about nothing in particular");
        format!("{}\n\n", vec![words; 2].join(", "))
    };
    (0..count).map(paragraph).collect()
}

fn without_whitespace(text: &str) -> String {
    text.chars().filter(|c| !c.is_whitespace()).collect()
}

#[tokio::test]
async fn splits_a_long_answer_into_messages_without_losing_text() {
    let chat = start(|bot| bot).await;
    let answer = plain_paragraphs(170);
    assert!((19_000..22_000).contains(&answer.chars().count()));
    chat.fake.script(1, answering("a_text", &answer));

    let replies = chat.ask("tell me a lot", 1).await;
    let count = replies.len();
    assert!((5..=8).contains(&count), "{count} messages");
    for reply in &replies {
        assert!(reply.text.encode_utf16().count() <= 4096);
        assert!(reply.document.is_none());
    }
    let joined: String = replies.iter().map(|m| m.text.as_str()).collect();
    assert_eq!(without_whitespace(&joined), without_whitespace(&answer));
}

#[tokio::test]
async fn sends_an_answer_past_the_message_limit_as_a_document() {
    let chat = start(|bot| bot.env("LONG_ANSWER_MESSAGES", "2")).await;
    let answer = plain_paragraphs(270);
    assert!(answer.chars().count() > 30_000);
    chat.fake.script(1, answering("a_text", &answer));

    let replies = chat.ask("tell me even more", 1).await;
    assert_eq!(replies.len(), 2, "{replies:#?}");
    let first = without_whitespace(&replies[0].text);
    assert!(first.len() > 1000 && without_whitespace(&answer).starts_with(&first));
    let document = replies[1].document.as_ref().expect("a document");
    assert_eq!(document.file_name, "answer.md");
    assert_eq!(String::from_utf8_lossy(&document.bytes), answer);
}

#[tokio::test]
async fn says_so_when_the_answer_has_no_text() {
    let chat = start(|bot| bot).await;
    chat.fake.script(1, answering("a_text", ""));

    let replies = chat.ask("say nothing", 1).await;
    let texts: Vec<&str> = replies.iter().map(|m| m.text.as_str()).collect();
    assert_eq!(texts, ["(The answer has no text.)"]);
}
