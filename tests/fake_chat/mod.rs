//! One chat with the real bot and the stand-in CLI, shared by
//! `conversation.rs` and `commands.rs`: starting them, sending a prompt and
//! waiting until its turn ended, and telling replies from status messages.
#![allow(dead_code)]

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::bot_process::{BotBuilder, BotProcess};
use crate::support::fake_claude::FakeClaude;
use crate::support::telegram_api::{BotApi, BotMessage};
use crate::support::wait_for;

/// The allowed user, writing in their private chat.
pub const USER: i64 = 4242;
pub const CHAT: i64 = 4242;
/// An upper bound for anything the bot does in reply.
pub const WAIT: Duration = Duration::from_secs(30);
/// The session id in the a_text fixture.
pub const A_TEXT_SESSION: &str = "0755fcc5-7c4f-4edf-b130-f38176bf0389";

/// The doubles and the bot of one test.
pub struct Chat {
    pub telegram: BotApi,
    pub fake: FakeClaude,
    pub bot: BotProcess,
}

/// Starts a bot that allows [`USER`] and runs the fake CLI; `configure`
/// changes its environment.
pub async fn start(configure: impl FnOnce(BotBuilder) -> BotBuilder) -> Chat {
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
    /// Sends `text` as [`USER`] and waits until the bot's current process
    /// finished `turn` turns in all; returns the replies in [`CHAT`] so far.
    pub async fn ask(&self, text: &str, turn: usize) -> Vec<BotMessage> {
        self.telegram.push_text(CHAT, USER, text);
        self.turns_done(turn).await;
        replies(&self.telegram.chat(CHAT))
    }

    /// Waits until the log says `n` turns are done: their replies are sent.
    pub async fn turns_done(&self, n: usize) {
        wait_for(&format!("{n} turns done"), WAIT, || {
            let log = self.bot.log();
            match log.matches("turn done").count() >= n {
                true => Ok(()),
                false => Err(format!("{:?}", self.telegram.visible_texts(CHAT))),
            }
        })
        .await;
    }

    /// Sends a command and returns the text of the reply that contains
    /// `expected`, checking it is the only new message.
    pub async fn command(&self, text: &str, expected: &str) -> String {
        let before = self.telegram.chat(CHAT).len();
        self.telegram.push_text(CHAT, USER, text);
        let reply = self
            .telegram
            .wait_for_bot_messages(CHAT, before + 1, WAIT)
            .await;
        let reply = &reply[before..];
        assert_eq!(reply.len(), 1, "{text}: {reply:#?}");
        assert!(reply[0].text.contains(expected), "{text}: {reply:#?}");
        reply[0].text.clone()
    }
}

/// The status message a run posts starts as "⏳ Working…".
pub fn is_status(message: &BotMessage) -> bool {
    message.versions[0].starts_with('⏳')
}

/// The bot's messages that are not a run's status message.
pub fn replies(messages: &[BotMessage]) -> Vec<BotMessage> {
    messages.iter().filter(|m| !is_status(m)).cloned().collect()
}

/// The lines of fixture `name` with the result text replaced by `answer`.
pub fn answering(name: &str, answer: &str) -> Vec<String> {
    let lines = FakeClaude::fixture(name).into_iter().map(|line| {
        let mut parsed: Value = serde_json::from_str(&line).expect("a fixture line is json");
        if parsed["type"] == "result" {
            parsed["result"] = json!(answer);
        }
        parsed.to_string()
    });
    lines.collect()
}

/// The result object of fixture `name`.
pub fn fixture_result(name: &str) -> Value {
    let lines = FakeClaude::fixture(name).into_iter();
    let mut parsed = lines.map(|line| serde_json::from_str::<Value>(&line).expect("json"));
    parsed
        .find(|line| line["type"] == "result")
        .expect("a result line")
}
