//! A Telegram conversation end to end, with the stand-in CLI: the real bot
//! binary polls the Bot API double and runs the fake `claude`. Replies, how
//! a conversation continues, how runs fail, and how long answers arrive.

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::bot_process::{BotBuilder, BotProcess};
use support::fake_claude::FakeClaude;
use support::sentry_api::SentryApi;
use support::telegram_api::{BotApi, BotMessage};
use support::wait_for;

const USER: i64 = 4242;
const CHAT: i64 = 4242;
const WAIT: Duration = Duration::from_secs(30);

/// The doubles and the bot of one test.
struct Chat {
    telegram: BotApi,
    fake: FakeClaude,
    bot: BotProcess,
}

/// Starts a bot that allows [`USER`] and runs the fake CLI; `configure`
/// adds to its environment.
async fn start(configure: impl FnOnce(BotBuilder) -> BotBuilder) -> Chat {
    let telegram = BotApi::start().await;
    let fake = FakeClaude::new();
    let builder = BotProcess::builder()
        .telegram(&telegram)
        .allowed_users(&[USER])
        .fake_claude(&fake);
    let bot = configure(builder).start();
    Chat {
        telegram,
        fake,
        bot,
    }
}

impl Chat {
    /// Sends `text` and waits until the bot finished its `turn`-th turn
    /// (counted in the current process's log); returns the replies so far.
    async fn ask(&self, text: &str, turn: usize) -> Vec<BotMessage> {
        self.telegram.push_text(CHAT, USER, text);
        self.turns_done(turn).await;
        replies(&self.telegram.chat(CHAT))
    }

    async fn turns_done(&self, n: usize) {
        wait_for(&format!("{n} turns done"), WAIT, || {
            let log = self.bot.log();
            match log.matches("turn done").count() >= n {
                true => Ok(()),
                false => Err(format!("{:?}", self.telegram.visible_texts(CHAT))),
            }
        })
        .await;
    }
}

/// The status message a run posts starts as "⏳ Working…".
fn is_status(message: &BotMessage) -> bool {
    message.versions[0].starts_with('⏳')
}

/// The bot's messages that are not a run's status message.
fn replies(messages: &[BotMessage]) -> Vec<BotMessage> {
    messages.iter().filter(|m| !is_status(m)).cloned().collect()
}

/// The lines of fixture `name` with the result text replaced by `answer`.
fn answering(name: &str, answer: &str) -> Vec<String> {
    let lines = FakeClaude::fixture(name).into_iter().map(|line| {
        let mut parsed: Value = serde_json::from_str(&line).expect("a fixture line is json");
        if parsed["type"] == "result" {
            parsed["result"] = json!(answer);
        }
        parsed.to_string()
    });
    lines.collect()
}

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
    assert!(
        !call.argv.iter().any(|a| a.contains("2+2")),
        "{:?}",
        call.argv
    );
    let expected_start = [
        "-p",
        "--output-format",
        "stream-json",
        "--verbose",
        "--include-partial-messages",
    ];
    assert_eq!(call.argv[..5], expected_start, "{:?}", call.argv);
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
    assert_eq!(
        call.flag_value("--allowedTools"),
        Some("Read,Write,Edit,Bash")
    );
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
    assert!(
        answer.text.contains("if a < b && c > d {}"),
        "{}",
        answer.text
    );
    assert!(answer.text.contains("1 < 2 > 0 & more."), "{}", answer.text);
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
