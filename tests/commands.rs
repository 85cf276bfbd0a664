//! What the bot does besides running prompts, end to end with the stand-in
//! CLI: its commands, whom it refuses, and how it stops on a configuration
//! mistake.

mod fake_chat;
mod support;

use std::fs;
use std::os::unix::fs::symlink;
use std::path::Path;

use fake_chat::{A_TEXT_SESSION, CHAT, USER, WAIT, fixture_result, replies, start};
use support::bot_process::BotProcess;
use support::fake_claude::FakeClaude;
use support::telegram_api::BotApi;

const STRANGER: i64 = 777_000_111;

#[tokio::test]
async fn greets_with_the_commands_and_the_directory_and_sets_the_menu() {
    let chat = start(|bot| bot).await;

    for command in ["/start", "/help"] {
        let text = chat.command(command, "📁 ~/work").await;
        for listed in ["/new", "/cd", "/pwd", "/searchcwd", "/status", "/stop"] {
            assert!(text.contains(listed), "{command} lacks {listed}: {text}");
        }
    }
    let names: Vec<String> = chat.telegram.commands().into_iter().map(|c| c.0).collect();
    let expected = ["help", "new", "cd", "pwd", "searchcwd", "status", "stop"];
    assert_eq!(names, expected);
}

#[tokio::test]
async fn forgets_the_conversation_on_new_but_keeps_the_directory() {
    let chat = start(|bot| bot).await;
    chat.fake.default_script(FakeClaude::fixture("a_text"));
    chat.ask("first", 1).await;

    chat.command("/new", "New conversation. Still in ~/work")
        .await;
    chat.ask("second", 2).await;
    let second = &chat.fake.calls()[1];
    assert!(!second.has_flag("--resume"), "{:?}", second.argv);
    assert_eq!(second.cwd, chat.bot.working_dir().canonicalize().unwrap());
}

#[tokio::test]
async fn moves_into_a_subdirectory_and_back_with_a_new_conversation_each_time() {
    let chat = start(|bot| bot).await;
    chat.fake.default_script(FakeClaude::fixture("a_text"));
    let work = chat.bot.working_dir().canonicalize().unwrap();
    fs::create_dir(work.join("sub")).unwrap();
    chat.ask("first", 1).await;

    chat.command("/cd sub", "Now in ~/work/sub").await;
    chat.command("/pwd", "~/work/sub").await;
    chat.ask("in sub", 2).await;
    let in_sub = &chat.fake.calls()[1];
    assert_eq!(in_sub.cwd, work.join("sub"));
    assert!(!in_sub.has_flag("--resume"), "{:?}", in_sub.argv);

    chat.command("/cd ..", "Now in ~/work").await;
    chat.ask("back", 3).await;
    let back = &chat.fake.calls()[2];
    assert_eq!(back.cwd, work);
    assert!(!back.has_flag("--resume"), "{:?}", back.argv);
}

#[tokio::test]
async fn refuses_a_directory_outside_the_workspace_missing_or_not_a_directory() {
    let chat = start(|bot| bot).await;
    chat.fake.default_script(FakeClaude::fixture("a_text"));
    let work = chat.bot.working_dir().canonicalize().unwrap();
    let outside = chat.bot.root().join("outside");
    fs::create_dir(&outside).unwrap();
    symlink(&outside, work.join("escape")).unwrap();
    fs::write(work.join("notes.txt"), "not a directory").unwrap();
    chat.ask("first", 1).await;

    let refusals = [
        ("/cd /tmp", "outside the workspace"),
        ("/cd ../../..", "outside the workspace"),
        ("/cd escape", "outside the workspace"),
        ("/cd missing", "no such directory: missing"),
        ("/cd notes.txt", "not a directory: notes.txt"),
    ];
    for (command, reason) in refusals {
        let reply = chat.command(command, reason).await;
        assert!(reply.contains("Nothing changed"), "{command}: {reply}");
    }

    chat.ask("still here?", 2).await;
    let second = &chat.fake.calls()[1];
    assert_eq!(second.cwd, work);
    assert_eq!(second.flag_value("--resume"), Some(A_TEXT_SESSION));
}

/// Makes `dir` with its parents inside `root`.
fn make_dir(root: &Path, dir: &str) {
    fs::create_dir_all(root.join(dir)).expect("creating a test directory");
}

#[tokio::test]
async fn finds_directories_by_name_with_a_cd_line_for_each_at_most_fifteen() {
    let chat = start(|bot| bot).await;
    chat.fake.default_script(FakeClaude::fixture("a_text"));
    let root = chat.bot.working_dir().parent().unwrap().to_owned();
    for i in 0..20 {
        make_dir(&root, &format!("many/project-{i:02}"));
    }
    make_dir(&root, "apps/Frontend-Web");
    make_dir(&root, "apps/backend");

    let found = chat
        .command("/searchcwd frontend", "~/apps/Frontend-Web")
        .await;
    let cd_lines: Vec<&str> = found.lines().filter(|l| l.starts_with("/cd ")).collect();
    assert_eq!(cd_lines, ["/cd ~/apps/Frontend-Web"]);

    let many = chat.command("/searchcwd project", "first 15 shown").await;
    let cd_lines: Vec<&str> = many.lines().filter(|l| l.starts_with("/cd ")).collect();
    assert_eq!(cd_lines.len(), 15, "{many}");
    assert!(
        cd_lines
            .iter()
            .all(|l| l.starts_with("/cd ~/many/project-"))
    );

    chat.command("/searchcwd nothing-like-it", "No directory")
        .await;

    // A listed line works as it is.
    chat.command(cd_lines[0], "Now in ~/many/project-").await;
    chat.ask("where am I?", 1).await;
    let cwd = &chat.fake.calls()[0].cwd;
    assert!(cwd.starts_with(root.join("many")), "{}", cwd.display());
}

#[tokio::test]
async fn shows_the_directory_conversation_and_last_run_in_status() {
    let chat = start(|bot| bot).await;
    chat.fake.default_script(FakeClaude::fixture("a_text"));

    let before = chat.command("/status", "📁 ~/work").await;
    assert!(before.contains("No conversation yet"), "{before}");
    assert!(!before.contains("Last run"), "{before}");

    chat.ask("hi", 1).await;
    let after = chat.command("/status", A_TEXT_SESSION).await;
    let result = fixture_result("a_text");
    let cost = format!("${:.4}", result["total_cost_usd"].as_f64().unwrap());
    let turns = format!("Last run: {} turn(s)", result["num_turns"]);
    assert!(after.contains(&turns) && after.contains(&cost), "{after}");
}

#[tokio::test]
async fn refuses_a_stranger_once_with_their_id_and_never_runs_the_cli() {
    let chat = start(|bot| bot).await;
    chat.fake.default_script(FakeClaude::fixture("a_text"));
    let stranger_chat = STRANGER;

    chat.telegram
        .push_text(stranger_chat, STRANGER, "run rm -rf /");
    chat.telegram.push_text(stranger_chat, STRANGER, "/help");
    let refused = chat
        .telegram
        .wait_for_bot_messages(stranger_chat, 2, WAIT)
        .await;
    for refusal in &refused {
        assert!(refusal.text.contains(&STRANGER.to_string()), "{refusal:#?}");
        assert!(!refusal.text.contains("/searchcwd"), "{refusal:#?}");
    }

    // A prompt of the allowed user after them: by its answer, the
    // stranger's messages are long done.
    chat.ask("hi", 1).await;
    assert_eq!(chat.telegram.chat(stranger_chat).len(), 2);
    let calls = chat.fake.calls();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].stdin, "hi");
    assert!(chat.bot.log().contains("refused a user who is not allowed"));
}

#[tokio::test]
async fn checks_the_sender_not_the_group_in_a_group_chat() {
    let chat = start(|bot| bot).await;
    chat.fake.default_script(FakeClaude::fixture("a_text"));
    let group = -100_123_456;

    chat.telegram
        .push_group_text(group, STRANGER, "stranger's prompt");
    let refusal = chat.telegram.wait_for_bot_messages(group, 1, WAIT).await;
    assert!(refusal[0].text.contains(&STRANGER.to_string()));

    chat.telegram.push_group_text(group, USER, "allowed prompt");
    chat.turns_done(1).await;
    let texts: Vec<String> = replies(&chat.telegram.chat(group))
        .into_iter()
        .map(|m| m.text)
        .collect();
    assert_eq!(texts.len(), 2, "{texts:?}");
    assert_eq!(texts[1], "Hello from the fake API! 2+2=4.");
    let calls = chat.fake.calls();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].stdin, "allowed prompt");
}

#[tokio::test]
async fn refuses_everyone_when_no_user_is_allowed_and_says_so_at_start() {
    let telegram = BotApi::start().await;
    let fake = FakeClaude::new();
    fake.default_script(FakeClaude::fixture("a_text"));
    let bot = BotProcess::builder()
        .telegram(&telegram)
        .env("ALLOWED_USER_IDS", "")
        .fake_claude(&fake)
        .start();
    bot.wait_for_log("ALLOWED_USER_IDS is empty", WAIT).await;

    telegram.push_text(CHAT, USER, "hi");
    let refusal = telegram
        .wait_for_text_containing(CHAT, "user id", WAIT)
        .await;
    assert!(refusal.text.contains(&USER.to_string()), "{refusal:#?}");
    assert_eq!(telegram.chat(CHAT).len(), 1);
    assert!(fake.calls().is_empty());
    assert!(!bot.log().contains("prompt accepted"));
}

#[tokio::test]
async fn stops_at_start_listing_every_configuration_problem() {
    let elsewhere = tempfile::tempdir().unwrap();
    let missing_root = elsewhere.path().join("no-such-root");
    let bad_root = BotProcess::builder()
        .env("ALLOWED_USER_IDS", "12,twelve")
        .env("WORKSPACE_ROOT", missing_root.display().to_string())
        .env("CLAUDE_TIMEOUT_SECS", "soon");
    let outside = BotProcess::builder()
        .env("ALLOWED_USER_IDS", "12,twelve")
        .env("WORKING_DIRECTORY", elsewhere.path().display().to_string());
    let common = ["TELEGRAM_BOT_TOKEN", "\"twelve\""];

    let cases = [
        (
            bad_root,
            vec!["WORKSPACE_ROOT", "does not exist", "CLAUDE_TIMEOUT_SECS"],
        ),
        (
            outside,
            vec!["WORKING_DIRECTORY", "is outside WORKSPACE_ROOT"],
        ),
    ];
    for (builder, own) in cases {
        let (status, stderr) = builder.run_to_exit().await;
        assert_eq!(status.code(), Some(2), "{stderr}");
        for problem in common.iter().chain(&own) {
            assert!(stderr.contains(problem), "{problem} missing in: {stderr}");
        }
        for crash in ["panicked", "backtrace", "RUST_BACKTRACE"] {
            assert!(!stderr.contains(crash), "{stderr}");
        }
    }
}
