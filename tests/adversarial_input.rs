//! Adversarial end-to-end tests of what users may send: blank and huge
//! texts, commands with odd arguments, updates without text, edits, groups
//! and a burst of prompts. Every message the bot accepts must end in exactly
//! one reply, and the bot must go on serving. CLI output is `adversarial.rs`.

mod fake_chat;
mod support;

use std::fs;
use std::os::unix::fs::symlink;
use std::time::Duration;

use fake_chat::{CHAT, Chat, USER, answering, is_status, replies};
use serde_json::{Value, json};
use support::fake_claude::FakeClaude;
use support::telegram_api::{BOT_USERNAME, BotMessage};
use support::wait_for;

const HELLO: &str = "Hello from the fake API! 2+2=4.";
const STRANGER: i64 = 777_000_111;
/// An upper bound for a command's reply; commands answer at once.
const SOON: Duration = Duration::from_secs(10);

async fn start() -> Chat {
    let chat = fake_chat::start(|bot| bot).await;
    chat.fake.default_script(FakeClaude::fixture("a_text"));
    chat
}

/// Sends `text` and returns the bot's new messages in [`CHAT`] once `n`
/// arrived, or what came within [`SOON`].
async fn send(chat: &Chat, text: &str, n: usize) -> Vec<BotMessage> {
    let before = chat.telegram.chat(CHAT).len();
    chat.telegram.push_text(CHAT, USER, text);
    let _ = tokio::time::timeout(
        SOON,
        chat.telegram.wait_for_bot_messages(CHAT, before + n, SOON),
    )
    .await;
    chat.telegram.chat(CHAT)[before..].to_vec()
}

/// No panic, no refused message, and a normal prompt (turn `turn`) gets the
/// normal answer as its only new reply.
async fn still_serves(chat: &Chat, turn: usize) {
    let before = replies(&chat.telegram.chat(CHAT)).len();
    let after = chat.ask("and now a normal question", turn).await;
    let new: Vec<&str> = after[before..].iter().map(|m| m.text.as_str()).collect();
    assert_eq!(new, [HELLO], "follow-up");
    assert!(!chat.bot.log().contains("panicked"), "the bot panicked");
    let sent = chat.telegram.calls_to("sendMessage").len();
    let shown: usize = [CHAT, STRANGER, GROUP]
        .iter()
        .map(|c| chat.telegram.chat(*c).len())
        .sum();
    assert_eq!(sent, shown, "Telegram refused a message");
}

#[tokio::test]
async fn a_blank_prompt_and_4096_units_of_emoji_each_get_one_reply() {
    let chat = start().await;
    let blank = chat.ask(" \n\t \u{a0} ", 1).await;
    assert_eq!(blank.len(), 1, "{blank:#?}");
    eprintln!(
        "blank prompt: reply {:?}, cli runs {}",
        blank[0].text,
        chat.fake.calls().len()
    );

    let emoji = "😀".repeat(2048);
    let replies = chat.ask(&emoji, 2).await;
    assert_eq!(replies.len(), 2, "{replies:#?}");
    let last = chat.fake.calls().pop().unwrap();
    assert_eq!(last.stdin, emoji);
    still_serves(&chat, 3).await;
}

#[tokio::test]
async fn commands_with_odd_arguments_each_get_one_clear_reply_and_change_nothing() {
    let chat = start().await;
    let work = chat.bot.working_dir().canonicalize().unwrap();
    symlink(work.join("loop-b"), work.join("loop-a")).unwrap();
    symlink(work.join("loop-a"), work.join("loop-b")).unwrap();
    symlink("/", work.join("to-root")).unwrap();
    chat.ask("first", 1).await;

    let cases = [
        ("/cd a\nb", "Nothing changed"),
        ("/cd a\u{0}b", "Nothing changed"),
        ("/cd ~/../..", "outside the workspace"),
        ("/cd ~/../../../../../../etc", "outside the workspace"),
        ("/cd ~//", "Now in ~"),
        ("/cd ~/work", "Now in ~/work"),
        ("/cd loop-a", "Nothing changed"),
        ("/cd to-root", "outside the workspace"),
        ("/cd to-root/tmp", "outside the workspace"),
        ("/cd <b>&amp;", "Nothing changed"),
        ("/searchcwd *", "No directory"),
        ("/searchcwd ..", "No directory"),
        ("/searchcwd /", "No directory"),
        ("/searchcwd <i>", "No directory"),
        ("/searchcwd", "Usage"),
        ("/stop", "Nothing is running"),
        ("/stop all", "Nothing is running"),
        ("/stop everything now", "Nothing is running"),
        ("/foo", "Unknown command /foo"),
        ("/Foo_Bar@test_double_bot x", "Unknown command /foo_bar"),
        ("/pwd extra words", "~/work"),
    ];
    let mut failures = Vec::new();
    for (command, expected) in cases {
        let new = send(&chat, command, 1).await;
        let texts: Vec<&str> = new.iter().map(|m| m.text.as_str()).collect();
        if texts.len() != 1 || !texts[0].contains(expected) {
            failures.push(format!(
                "{command:?}: wanted one reply with {expected:?}, got {texts:?}"
            ));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
    // The directory did not change, so the conversation goes on.
    still_serves(&chat, 2).await;
    let last = chat.fake.calls().pop().unwrap();
    assert_eq!(last.cwd, work);
}

#[tokio::test]
async fn status_in_a_fresh_chat_and_commands_for_other_bots() {
    let chat = start().await;
    let fresh = send(&chat, "/status", 1).await;
    assert_eq!(fresh.len(), 1);
    assert!(
        fresh[0].text.contains("No conversation yet"),
        "{}",
        fresh[0].text
    );

    // Another bot's command gets no reply: the next command's reply is the
    // only new message.
    chat.telegram.push_text(CHAT, USER, "/help@OtherBot");
    chat.telegram.push_text(CHAT, USER, "/new@OtherBot now");
    let new = send(&chat, &format!("/PWD@{}", BOT_USERNAME.to_uppercase()), 1).await;
    let texts: Vec<&str> = new.iter().map(|m| m.text.as_str()).collect();
    assert_eq!(texts, ["📁 ~/work"]);
    still_serves(&chat, 1).await;
    assert_eq!(chat.fake.calls().len(), 1);
}

/// A message update of [`USER`] in [`CHAT`] with `fields` instead of text.
fn message(message_id: i64, fields: Value) -> Value {
    let mut message = json!({
        "message_id": message_id, "date": 1_700_000_000,
        "chat": {"id": CHAT, "type": "private", "first_name": "U"},
        "from": {"id": USER, "is_bot": false, "first_name": "U"},
    });
    message
        .as_object_mut()
        .unwrap()
        .extend(fields.as_object().unwrap().clone());
    message
}

#[tokio::test]
async fn updates_without_text_edits_and_malformed_updates_never_reach_the_agent() {
    let chat = start().await;
    send(&chat, "/pwd", 1).await;
    let photo = json!([{"file_id": "p", "file_unique_id": "pu", "width": 90, "height": 90}]);
    let sticker = json!({"file_id": "s", "file_unique_id": "su", "width": 512, "height": 512,
        "is_animated": false, "is_video": false, "type": "regular"});
    let updates = [
        json!({"message": message(9001, json!({"photo": photo, "caption": "run rm -rf ~"}))}),
        json!({"message": message(9002, json!({"sticker": sticker}))}),
        json!({"edited_message": message(9003, json!({"text": "edited prompt", "edit_date": 1_700_000_001}))}),
        json!({"message": {"message_id": "not a number", "text": 42}}),
        json!({"something_new": {"x": 1}}),
    ];
    let before = chat.telegram.chat(CHAT).len();
    for update in updates {
        chat.telegram.push_update(update);
    }
    let new = send(&chat, "/pwd", 3).await;
    let texts: Vec<&str> = new.iter().map(|m| m.text.as_str()).collect();
    assert_eq!(texts.len(), 3, "{texts:?}");
    assert!(
        texts[..2].iter().all(|t| t.contains("only read text")),
        "{texts:?}"
    );
    assert_eq!(texts[2], "📁 ~/work", "{texts:?}");
    assert_eq!(chat.telegram.chat(CHAT).len(), before + 3);
    assert!(chat.fake.calls().is_empty(), "the agent ran");
    still_serves(&chat, 1).await;
}

const GROUP: i64 = -100_555;

#[tokio::test]
async fn a_stranger_in_a_group_is_refused_but_not_for_another_bots_command() {
    let chat = start().await;
    chat.telegram
        .push_group_text(GROUP, STRANGER, "/start@OtherBot");
    chat.telegram.push_group_text(GROUP, STRANGER, "/cd ..");
    chat.telegram.push_group_text(GROUP, USER, "/pwd");
    wait_for("three group messages handled", SOON, || {
        let texts: Vec<String> = chat
            .telegram
            .chat(GROUP)
            .into_iter()
            .map(|m| m.text)
            .collect();
        match texts.iter().any(|t| t.contains("~/work")) {
            true => Ok(()),
            false => Err(format!("{texts:?}")),
        }
    })
    .await;
    let texts: Vec<String> = chat
        .telegram
        .chat(GROUP)
        .into_iter()
        .map(|m| m.text)
        .collect();
    let refusals = texts
        .iter()
        .filter(|t| t.contains(&STRANGER.to_string()))
        .count();
    assert_eq!(refusals, 1, "one refusal, for /cd only: {texts:?}");
}

#[tokio::test]
async fn a_stranger_in_a_group_never_reaches_the_agent_the_allowed_user_does() {
    let chat = start().await;
    chat.telegram.push_group_text(GROUP, STRANGER, "/cd ..");
    chat.telegram
        .push_group_text(GROUP, STRANGER, "stranger's prompt");
    chat.telegram.push_group_text(GROUP, USER, "allowed prompt");
    chat.turns_done(1).await;
    let texts: Vec<String> = replies(&chat.telegram.chat(GROUP))
        .into_iter()
        .map(|m| m.text)
        .collect();
    assert_eq!(texts.len(), 3, "{texts:?}");
    assert!(
        texts[..2].iter().all(|t| t.contains(&STRANGER.to_string())),
        "{texts:?}"
    );
    assert_eq!(texts[2], HELLO);
    let calls = chat.fake.calls();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].stdin, "allowed prompt");
    let pwd = send(&chat, "/pwd", 1).await;
    assert_eq!(
        pwd[0].text, "📁 ~/work",
        "the stranger's /cd changed nothing"
    );
}

#[tokio::test]
async fn a_burst_of_50_prompts_is_queued_or_refused_each_with_one_reply() {
    let other_user = 5151;
    let chat =
        fake_chat::start(|bot| bot.env("ALLOWED_USER_IDS", format!("{USER},{other_user}"))).await;
    let mut slow = answering("a_text", "an answer");
    slow.insert(1, "#sleep 0.5".into());
    chat.fake.default_script(slow);
    for i in 0..50 {
        chat.telegram.push_text(CHAT, USER, &format!("prompt {i}"));
    }
    // Another chat is served while this one's burst waits.
    chat.telegram
        .push_text(other_user, other_user, "other chat");

    // Each prompt ends in an answer or a refusal; count until all 50 did.
    let texts = wait_for(
        "an outcome for each of the 50 prompts",
        Duration::from_secs(60),
        || {
            let texts: Vec<String> = replies(&chat.telegram.chat(CHAT))
                .into_iter()
                .map(|m| m.text)
                .collect();
            let outcomes = texts
                .iter()
                .filter(|t| !t.contains("Queued (position"))
                .count();
            match outcomes {
                50 => Ok(texts),
                _ => Err(format!("{outcomes} outcomes: {texts:#?}")),
            }
        },
    )
    .await;
    let count = |needle: &str| texts.iter().filter(|t| t.contains(needle)).count();
    let (answers, refused) = (count("an answer"), count("already waiting"));
    assert_eq!(answers + refused, 50, "{texts:#?}");
    assert!(
        count("Queued (position") < answers && refused > 0,
        "{texts:#?}"
    );
    for position in 6..=50 {
        assert_eq!(count(&format!("(position {position})")), 0, "{texts:#?}");
    }

    // The prompts that ran are the ones not refused, in the order sent.
    let ran: Vec<usize> = chat
        .fake
        .calls()
        .iter()
        .filter_map(|c| c.stdin.strip_prefix("prompt ")?.parse().ok())
        .collect();
    assert_eq!(ran.len(), answers, "{ran:?}");
    assert!(ran.windows(2).all(|w| w[0] < w[1]), "{ran:?}");
    let other = replies(&chat.telegram.chat(other_user));
    assert_eq!(
        other.len(),
        1,
        "the other chat waited for the burst: {other:#?}"
    );
    let last = replies(&chat.telegram.chat(CHAT))
        .into_iter()
        .map(|m| m.message_id)
        .max();
    assert!(
        other[0].message_id < last.unwrap(),
        "the other chat waited for the burst"
    );
    let statuses = chat.telegram.chat(CHAT).into_iter().filter(is_status);
    assert!(
        statuses.clone().count() == answers
            && statuses.into_iter().all(|m| m.text.starts_with('✅'))
    );
    assert!(!chat.bot.log().contains("panicked"));
}

#[tokio::test]
async fn a_command_with_an_argument_near_telegrams_limit_still_gets_a_reply() {
    let chat = start().await;
    let cases = [
        format!("/searchcwd {}", "x".repeat(4085)),
        format!("/cd {}", "y".repeat(4092)),
        format!("/{}", "z".repeat(4095)),
    ];
    let mut failures = Vec::new();
    for command in &cases {
        assert_eq!(command.chars().count(), 4096);
        let new = send(&chat, command, 1).await;
        if new.len() != 1 {
            failures.push(format!("{}…: {} replies", &command[..14], new.len()));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
    still_serves(&chat, 1).await;
}

#[tokio::test]
async fn a_crash_keeps_the_directory_and_the_conversation() {
    let mut chat = start().await;
    fs::create_dir(chat.bot.working_dir().join("sub")).unwrap();
    send(&chat, "/cd sub", 1).await;
    chat.ask("first", 1).await;
    chat.bot.restart();
    let pwd = send(&chat, "/pwd", 1).await;
    assert_eq!(pwd[0].text, "📁 ~/work/sub");
    chat.ask("second", 1).await;
    let calls = chat.fake.calls();
    assert_eq!(calls[1].cwd, calls[0].cwd);
    assert_eq!(
        calls[1].flag_value("--resume"),
        Some(fake_chat::A_TEXT_SESSION)
    );
}
