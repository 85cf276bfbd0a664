//! Runs a user can watch and stop, end to end with the stand-in CLI: the
//! status message and its bounded edits, `/stop` and `/status` during a run,
//! the per-chat queue, flood control, a vanished status message, and chats
//! that do not wait for each other. Restarts and shutdown are in
//! `recovery.rs`.

mod support;

use std::time::{Duration, Instant};

use serde_json::Value;
use support::bot_process::{BotBuilder, BotProcess};
use support::fake_claude::FakeClaude;
use support::telegram_api::{BotApi, BotMessage, Call, Failure};
use support::wait_for;

const USER: i64 = 5151;
const CHAT: i64 = 5151;
const OTHER_USER: i64 = 6262;
const OTHER_CHAT: i64 = 6262;
const WAIT: Duration = Duration::from_secs(30);
/// PROGRESS_EDIT_SECS of every bot here.
const EDIT_SECS: f64 = 1.0;
/// The session the b_bash fixture's init line names.
const SESSION: &str = "7deba884-8571-43fa-ad5a-fae761fae89f";

/// The doubles and the bot of one test.
struct Setup {
    telegram: BotApi,
    fake: FakeClaude,
    _bot: BotProcess,
}

/// Starts a bot that allows [`USER`] and [`OTHER_USER`], runs the fake CLI
/// and edits its status message every [`EDIT_SECS`]; `configure` adds to
/// its environment.
async fn start(configure: impl FnOnce(BotBuilder) -> BotBuilder) -> Setup {
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
        _bot: bot,
    }
}

/// The first line of fixture `name` that contains `marker`, parsed.
fn fixture_line(name: &str, marker: &str) -> Value {
    let lines = FakeClaude::fixture(name);
    let line = lines.iter().find(|line| line.contains(marker));
    let line = line.unwrap_or_else(|| panic!("no {marker} line in fixture {name}"));
    serde_json::from_str(line).expect("a fixture line is json")
}

/// The CLI's first line, naming [`SESSION`].
fn init() -> String {
    fixture_line("b_bash", r#""subtype":"init""#).to_string()
}

/// An assistant line that calls Bash with `command`.
fn bash(command: &str) -> String {
    let mut line = fixture_line("b_bash", r#""name":"Bash""#);
    line["message"]["content"][0]["input"]["command"] = command.into();
    line.to_string()
}

/// The result line of a run that answered `text`.
fn result(text: &str) -> String {
    let mut line = fixture_line("b_bash", r#""type":"result""#);
    line["result"] = text.into();
    line.to_string()
}

/// A run that shows a Bash call, then sleeps `secs` (long enough to be
/// stopped) before it answers.
fn slow_run(command: &str, secs: u32) -> Vec<String> {
    let sleep = format!("#sleep {secs}");
    vec![init(), bash(command), sleep, result("the slow run ended")]
}

/// Command lines of the live (not zombie) processes in process group
/// `group`: the fake CLI leads its own group, its `sleep` is in it.
fn processes_in_group(group: i32) -> Vec<String> {
    let entries = std::fs::read_dir("/proc").expect("reading /proc");
    let mut found = Vec::new();
    for entry in entries.flatten() {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // After the command name in parentheses: state, ppid, pgrp.
        let Some((_, fields)) = stat.rsplit_once(')') else {
            continue;
        };
        let fields: Vec<&str> = fields.split_whitespace().collect();
        if fields.len() < 3 || fields[0] == "Z" || fields[2] != group.to_string() {
            continue;
        }
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        found.push(String::from_utf8_lossy(&cmdline).replace('\0', " "));
    }
    found
}

/// The pid of the fake's `n`-th invocation, once it has started.
async fn fake_pid(fake: &FakeClaude, n: usize) -> i32 {
    let calls = fake.wait_for_calls(n, WAIT).await;
    calls[n - 1].pid.expect("the fake recorded its pid")
}

/// Index of the first message whose text contains `needle`.
fn index_of(messages: &[BotMessage], needle: &str) -> usize {
    let found = messages.iter().position(|m| m.text.contains(needle));
    found.unwrap_or_else(|| panic!("no message with {needle:?} in {messages:#?}"))
}

fn text_of(call: &Call) -> &str {
    call.params["text"].as_str().unwrap_or_default()
}

/// The calls that posted or edited status message `id` while it ran.
fn progress_calls(telegram: &BotApi, id: i64) -> Vec<Call> {
    let calls = telegram.calls().into_iter().filter(|call| {
        let edit = call.method == "editMessageText" && call.params["message_id"] == id;
        let post = call.method == "sendMessage";
        (edit || post) && text_of(call).starts_with('⏳')
    });
    calls.collect()
}

#[tokio::test]
async fn shows_each_tool_in_the_status_message_at_a_bounded_rate_then_a_summary() {
    let setup = start(|bot| bot).await;
    let (telegram, fake) = (&setup.telegram, &setup.fake);
    let mut script = vec![init(), bash("echo one"), "#sleep 2".into()];
    script.extend([bash("echo two"), "#sleep 2".into()]);
    // A burst of calls, faster than the status message may be edited.
    for n in 1..=8 {
        script.extend([bash(&format!("echo burst {n}")), "#sleep 0.25".into()]);
    }
    script.extend(["#sleep 1.5".into(), result("All of them ran.")]);
    fake.default_script(script);

    telegram.push_text(CHAT, USER, "run ten commands");
    let answer = telegram.wait_for_text_containing(CHAT, "All of them ran.", WAIT);
    let answer = answer.await;
    let messages = telegram.chat(CHAT);
    assert_eq!(messages.len(), 2, "{messages:#?}");
    let status = &messages[0];
    assert_eq!(answer.message_id, messages[1].message_id, "a new message");

    let shown = |needle: &str, not_yet: &str| {
        let mut versions = status.versions.iter();
        versions.any(|v| v.contains(needle) && !v.contains(not_yet))
    };
    assert!(shown("🔧 Bash: echo one", "echo two"), "{status:#?}");
    assert!(shown("🔧 Bash: echo two", "burst"), "{status:#?}");
    assert!(shown("🔧 Bash: echo burst 8", "Done"), "{status:#?}");
    assert!(status.text.starts_with("✅ Done in"), "{}", status.text);
    assert!(status.text.contains("Bash ×10"), "{}", status.text);

    let calls = progress_calls(telegram, status.message_id);
    assert!(
        calls.len() >= 5,
        "a post and four edits at least: {calls:#?}"
    );
    for pair in calls.windows(2) {
        let gap = pair[1].at - pair[0].at;
        assert!(gap.as_secs_f64() >= 0.9 * EDIT_SECS, "edits {gap:?} apart");
        let (before, after) = (text_of(&pair[0]), text_of(&pair[1]));
        assert_ne!(before, after, "an edit that changed nothing");
    }
}

#[tokio::test]
async fn shows_the_clis_api_retries_in_the_status_message() {
    let setup = start(|bot| bot).await;
    let mut script = Vec::new();
    for line in FakeClaude::fixture_run("e1b_500_max_retries_2") {
        let retry = line.contains(r#""subtype":"api_retry""#);
        script.push(line);
        if retry {
            script.push("#sleep 2".into());
        }
    }
    setup.fake.default_script(script);

    setup.telegram.push_text(CHAT, USER, "hi");
    let reply = setup
        .telegram
        .wait_for_text_containing(CHAT, "API Error: 500", WAIT);
    let reply = reply.await;
    let status = &setup.telegram.chat(CHAT)[0];
    let shown = |needle: &str| status.versions.iter().any(|v| v.contains(needle));
    assert!(shown("API error, retrying (1/2)"), "{status:#?}");
    assert!(shown("API error, retrying (2/2)"), "{status:#?}");
    assert!(status.text.starts_with("⚠️ Ended after"), "{}", status.text);
    assert!(
        reply.text.contains("Claude reported an error"),
        "{}",
        reply.text
    );
}

/// `/stop` during a long tool step: quick, thorough, and the conversation
/// goes on. `on_sigint` is what the fake prints when interrupted, if any.
async fn stop_interrupts_a_long_step(on_sigint: Option<String>) {
    let setup = start(|bot| bot).await;
    let (telegram, fake) = (&setup.telegram, &setup.fake);
    // The fake exits 0 after printing that line, else it dies by SIGINT.
    let exit_code = on_sigint.as_ref().map(|_| 0);
    let mut script = vec![init(), bash("sleep 60")];
    script.extend(on_sigint.map(|line| format!("#on-sigint {line}")));
    script.extend(["#sleep 60".into(), result("never shown")]);
    fake.script(1, script);
    fake.script(2, [init(), result("Carrying on.")]);

    telegram.push_text(CHAT, USER, "wait a minute");
    telegram
        .wait_for_text_containing(CHAT, "sleep 60", WAIT)
        .await;
    let group = fake_pid(fake, 1).await;
    wait_for("the fake's sleep 60", WAIT, || {
        let found = processes_in_group(group);
        let sleeping = found.iter().any(|cmd| cmd.trim() == "sleep 60");
        sleeping.then_some(()).ok_or(format!("{found:?}"))
    })
    .await;

    let asked = Instant::now();
    telegram.push_text(CHAT, USER, "/stop");
    telegram
        .wait_for_text_containing(CHAT, "Stopped.", WAIT)
        .await;
    let took = asked.elapsed();
    assert!(took < Duration::from_secs(5), "the stop took {took:?}");
    telegram
        .wait_for_text_containing(CHAT, "Stopping the agent", WAIT)
        .await;
    wait_for("the fake's process group to end", WAIT, || {
        let found = processes_in_group(group);
        found.is_empty().then_some(()).ok_or(format!("{found:?}"))
    })
    .await;
    let texts = telegram.visible_texts(CHAT);
    assert!(
        !texts.iter().any(|t| t.contains("never shown")),
        "{texts:#?}"
    );

    telegram.push_text(CHAT, USER, "go on");
    telegram
        .wait_for_text_containing(CHAT, "Carrying on.", WAIT)
        .await;
    let calls = fake.calls();
    assert_eq!(calls[0].exit_code, exit_code);
    assert_eq!(calls[1].stdin, "go on");
    assert_eq!(calls[1].flag_value("--resume"), Some(SESSION));
}

#[tokio::test]
async fn stop_interrupts_the_agent_at_once_and_keeps_the_conversation() {
    stop_interrupts_a_long_step(None).await;
}

#[tokio::test]
async fn stop_works_when_the_interrupted_cli_writes_its_result() {
    let interrupted = fixture_line("i1_sigint_during_stream", r#""type":"result""#);
    stop_interrupts_a_long_step(Some(interrupted.to_string())).await;
}

#[tokio::test]
async fn status_answers_during_a_run_with_its_tools_and_the_queue() {
    let setup = start(|bot| bot).await;
    let (telegram, fake) = (&setup.telegram, &setup.fake);
    fake.script(
        1,
        [
            init(),
            bash("echo hi"),
            "#sleep 4".into(),
            result("First done."),
        ],
    );
    fake.script(2, [init(), result("Second done.")]);

    telegram.push_text(CHAT, USER, "first");
    telegram
        .wait_for_text_containing(CHAT, "echo hi", WAIT)
        .await;
    telegram.push_text(CHAT, USER, "second");
    telegram
        .wait_for_text_containing(CHAT, "Queued (position 1)", WAIT)
        .await;
    telegram.push_text(CHAT, USER, "/status");
    let status = telegram
        .wait_for_text_containing(CHAT, "Running for", WAIT)
        .await;
    assert_eq!(
        fake.calls()[0].exit_code,
        None,
        "answered only after the run"
    );
    assert!(
        status.text.contains("tools so far: Bash"),
        "{}",
        status.text
    );
    assert!(
        status.text.contains("1 message(s) waiting"),
        "{}",
        status.text
    );

    telegram
        .wait_for_text_containing(CHAT, "Second done.", WAIT)
        .await;
    let messages = telegram.chat(CHAT);
    assert!(index_of(&messages, "Running for") < index_of(&messages, "First done."));
}

#[tokio::test]
async fn a_prompt_sent_during_a_run_is_queued_and_answered_after_it() {
    let setup = start(|bot| bot).await;
    let (telegram, fake) = (&setup.telegram, &setup.fake);
    fake.script(1, slow_run("echo first", 3));
    fake.script(2, [init(), result("Second answer.")]);

    telegram.push_text(CHAT, USER, "first");
    telegram
        .wait_for_text_containing(CHAT, "echo first", WAIT)
        .await;
    telegram.push_text(CHAT, USER, "second");
    telegram
        .wait_for_text_containing(CHAT, "Queued (position 1)", WAIT)
        .await;
    telegram
        .wait_for_text_containing(CHAT, "Second answer.", WAIT)
        .await;

    let messages = telegram.chat(CHAT);
    let queued = index_of(&messages, "Queued (position 1)");
    let first = index_of(&messages, "the slow run ended");
    assert!(queued < first && first < index_of(&messages, "Second answer."));
    let calls = fake.calls();
    assert_eq!(calls.len(), 2);
    assert_eq!(
        (calls[0].stdin.as_str(), calls[1].stdin.as_str()),
        ("first", "second")
    );
    assert!(!calls[0].has_flag("--resume"));
    assert_eq!(calls[1].flag_value("--resume"), Some(SESSION));
}

#[tokio::test]
async fn refuses_prompts_past_the_queue_limit_and_stop_all_clears_the_queue() {
    let setup = start(|bot| bot.env("MAX_QUEUED_PER_CHAT", "1")).await;
    let (telegram, fake) = (&setup.telegram, &setup.fake);
    fake.script(1, slow_run("sleep 61", 61));
    fake.default_script([init(), result("Fresh answer.")]);

    telegram.push_text(CHAT, USER, "long");
    telegram
        .wait_for_text_containing(CHAT, "sleep 61", WAIT)
        .await;
    for extra in ["queued", "refused 1", "refused 2"] {
        telegram.push_text(CHAT, USER, extra);
    }
    wait_for("two refusals", WAIT, || {
        let texts = telegram.visible_texts(CHAT);
        let refused = texts
            .iter()
            .filter(|t| t.contains("was not queued"))
            .count();
        (refused == 2).then_some(()).ok_or(format!("{texts:#?}"))
    })
    .await;
    let texts = telegram.visible_texts(CHAT);
    assert!(
        texts.iter().any(|t| t.contains("Queued (position 1)")),
        "{texts:#?}"
    );
    let refusal = index_of(&telegram.chat(CHAT), "was not queued");
    let refusal = &telegram.chat(CHAT)[refusal].text;
    assert!(
        refusal.contains("1 messages are already waiting"),
        "{refusal}"
    );

    telegram.push_text(CHAT, USER, "/stop all");
    telegram
        .wait_for_text_containing(CHAT, "Cleared 1 queued", WAIT)
        .await;
    telegram
        .wait_for_text_containing(CHAT, "Stopped.", WAIT)
        .await;
    telegram.push_text(CHAT, USER, "after");
    telegram
        .wait_for_text_containing(CHAT, "Fresh answer.", WAIT)
        .await;
    let calls = fake.calls();
    let prompts: Vec<&str> = calls.iter().map(|c| c.stdin.as_str()).collect();
    assert_eq!(prompts, ["long", "after"], "the cleared prompt never ran");
}

#[tokio::test]
async fn flood_control_on_edits_and_answers_is_waited_out_and_nothing_is_lost() {
    let setup = start(|bot| bot).await;
    let (telegram, fake) = (&setup.telegram, &setup.fake);
    let parts: Vec<String> = (1..=3)
        .map(|n| format!("Part {n}:{}", " word".repeat(500)))
        .collect();
    let answer = result(&parts.join("\n\n"));
    fake.default_script([init(), bash("echo hi"), "#sleep 3".into(), answer]);

    telegram.push_text(CHAT, USER, "write a lot");
    telegram.wait_for_bot_messages(CHAT, 1, WAIT).await;
    telegram.fail_next("editMessageText", Failure::RetryAfter(1));
    telegram.fail_next("sendMessage", Failure::RetryAfter(1));
    telegram
        .wait_for_text_containing(CHAT, "Part 3", WAIT)
        .await;

    let messages = telegram.chat(CHAT);
    let texts: Vec<&str> = messages[1..].iter().map(|m| m.text.as_str()).collect();
    let last = format!("{}\n\n🔧 Bash", parts[2]);
    assert_eq!(texts, [parts[0].as_str(), parts[1].as_str(), last.as_str()]);

    let first_part = telegram.calls_to("sendMessage");
    let first_part: Vec<&Call> = first_part
        .iter()
        .filter(|c| text_of(c).starts_with("Part 1"))
        .collect();
    assert_eq!(first_part.len(), 2, "refused once, then sent");
    let waited = first_part[1].at - first_part[0].at;
    assert!(
        waited >= Duration::from_millis(900),
        "retried after {waited:?}"
    );

    let status = &messages[0];
    let edits = telegram.calls_to("editMessageText").len();
    assert_eq!(edits, status.edits + 1, "one edit was refused");
    assert!(status.text.starts_with("✅ Done in"), "{}", status.text);
}

#[tokio::test]
async fn a_status_message_that_is_gone_does_not_keep_the_answer_back() {
    let setup = start(|bot| bot).await;
    let (telegram, fake) = (&setup.telegram, &setup.fake);
    fake.default_script([
        init(),
        bash("echo hi"),
        "#sleep 3".into(),
        bash("echo again"),
        "#sleep 1".into(),
        result("Still answered."),
    ]);

    telegram.push_text(CHAT, USER, "go");
    telegram.wait_for_bot_messages(CHAT, 1, WAIT).await;
    let edits = telegram.calls_to("editMessageText").len();
    let gone = Failure::BadRequest("message to edit not found".into());
    telegram.fail_next("editMessageText", gone);
    telegram
        .wait_for_calls("editMessageText", edits + 1, WAIT)
        .await;

    let answer = telegram
        .wait_for_text_containing(CHAT, "Still answered.", WAIT)
        .await;
    assert!(answer.text.contains("🔧 Bash ×2"), "{}", answer.text);
    let later = telegram.calls_to("editMessageText").len() - (edits + 1);
    assert_eq!(later, 0, "the bot kept editing a message that is gone");
}

#[tokio::test]
async fn another_chat_is_answered_while_a_slow_run_goes_on() {
    let setup = start(|bot| bot).await;
    let (telegram, fake) = (&setup.telegram, &setup.fake);
    fake.script(1, slow_run("sleep 30", 30));
    fake.script(2, [init(), result("Answered at once.")]);

    telegram.push_text(CHAT, USER, "slow");
    telegram
        .wait_for_text_containing(CHAT, "sleep 30", WAIT)
        .await;
    telegram.push_text(OTHER_CHAT, OTHER_USER, "quick");
    let answer = telegram.wait_for_text_containing(OTHER_CHAT, "Answered at once.", WAIT);
    answer.await;
    assert_eq!(
        fake.calls()[0].exit_code,
        None,
        "the slow run still goes on"
    );
    assert!(
        !fake.calls()[1].has_flag("--resume"),
        "its own conversation"
    );

    telegram.push_text(CHAT, USER, "/stop");
    telegram
        .wait_for_text_containing(CHAT, "Stopped.", WAIT)
        .await;
}
