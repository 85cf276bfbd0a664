//! One chat with the real bot and a stand-in CLI whose runs take time,
//! shared by `live_runs.rs` and `recovery.rs`: starting them, talking in the
//! chat, and CLI lines built from the b_bash fixture.
#![allow(dead_code)]

use std::time::Duration;

use serde_json::Value;

use crate::support::bot_process::{BotBuilder, BotProcess};
use crate::support::fake_claude::FakeClaude;
use crate::support::telegram_api::{BotApi, BotMessage, Call};

pub const USER: i64 = 5151;
pub const CHAT: i64 = 5151;
pub const WAIT: Duration = Duration::from_secs(30);
/// PROGRESS_EDIT_SECS of every bot here.
pub const EDIT_SECS: f64 = 1.0;
/// The session the b_bash fixture's init line names.
pub const SESSION: &str = "7deba884-8571-43fa-ad5a-fae761fae89f";
/// A second allowed user, writing in their own chat.
pub const OTHER_USER: i64 = 6262;
pub const OTHER_CHAT: i64 = 6262;

/// The doubles and the bot of one test.
pub struct Setup {
    pub telegram: BotApi,
    pub fake: FakeClaude,
    pub bot: BotProcess,
}

/// Starts a bot that allows [`USER`] and [`OTHER_USER`], runs the fake CLI
/// and edits its status message every [`EDIT_SECS`]; `configure` adds to its environment.
pub async fn start(configure: impl FnOnce(BotBuilder) -> BotBuilder) -> Setup {
    let telegram = BotApi::start().await;
    let fake = FakeClaude::new();
    let builder = BotProcess::builder()
        .telegram(&telegram)
        .allowed_users(&[USER, OTHER_USER])
        .fake_claude(&fake)
        .env("PROGRESS_EDIT_SECS", EDIT_SECS.to_string());
    let bot = configure(builder).start();
    Setup {
        telegram,
        fake,
        bot,
    }
}

impl Setup {
    /// [`USER`] writes `text` in [`CHAT`].
    pub fn say(&self, text: &str) {
        self.telegram.push_text(CHAT, USER, text);
    }

    /// Waits for a bot message in [`CHAT`] whose text has `needle`.
    pub async fn sees(&self, needle: &str) -> BotMessage {
        let found = self.telegram.wait_for_text_containing(CHAT, needle, WAIT);
        found.await
    }

    /// The bot's messages in [`CHAT`], in the order they were sent.
    pub fn messages(&self) -> Vec<BotMessage> {
        self.telegram.chat(CHAT)
    }
}

/// The first line of fixture `name` that contains `marker`, parsed.
pub fn fixture_line(name: &str, marker: &str) -> Value {
    let lines = FakeClaude::fixture(name);
    let line = lines.iter().find(|line| line.contains(marker));
    let line = line.unwrap_or_else(|| panic!("no {marker} line in fixture {name}"));
    serde_json::from_str(line).expect("a fixture line is json")
}

/// The CLI's first line, naming [`SESSION`].
pub fn init() -> String {
    fixture_line("b_bash", r#""subtype":"init""#).to_string()
}

/// An assistant line that calls Bash with `command`.
pub fn bash(command: &str) -> String {
    let mut line = fixture_line("b_bash", r#""name":"Bash""#);
    line["message"]["content"][0]["input"]["command"] = command.into();
    line.to_string()
}

/// The result line of a run that answered `text`.
pub fn result(text: &str) -> String {
    let mut line = fixture_line("b_bash", r#""type":"result""#);
    line["result"] = text.into();
    line.to_string()
}

/// A run that shows a Bash call, then sleeps `secs` before it answers.
pub fn slow_run(command: &str, secs: u32) -> Vec<String> {
    let sleep = format!("#sleep {secs}");
    vec![init(), bash(command), sleep, result("the slow run ended")]
}

#[track_caller]
pub fn assert_contains(text: &str, needle: &str) {
    assert!(text.contains(needle), "{needle:?} not in {text:?}");
}

/// The text a sendMessage or editMessageText call carried.
pub fn text_of(call: &Call) -> &str {
    call.params["text"].as_str().unwrap_or_default()
}
