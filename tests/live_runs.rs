//! Runs a user can watch, end to end with the stand-in CLI: the status
//! message and its bounded edits, API retries shown in it, `/status` during
//! a run, the per-chat queue and its limit, and chats that do not wait for
//! each other. Stopping, Telegram trouble and restarts are in `recovery.rs`.

mod live_chat;
mod support;

use live_chat::{
    CHAT, EDIT_SECS, OTHER_CHAT, OTHER_USER, SESSION, WAIT, assert_contains, bash, init, result,
    slow_run, start, text_of,
};
use support::fake_claude::FakeClaude;
use support::telegram_api::{BotApi, BotMessage, Call};
use support::wait_for;

/// Index of the first message whose text contains `needle`.
fn index_of(messages: &[BotMessage], needle: &str) -> usize {
    let found = messages.iter().position(|m| m.text.contains(needle));
    found.unwrap_or_else(|| panic!("no message with {needle:?} in {messages:#?}"))
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
    let mut script = vec![init(), bash("echo one"), "#sleep 2".into()];
    script.extend([bash("echo two"), "#sleep 2".into()]);
    // A burst of calls, faster than the status message may be edited.
    for n in 1..=8 {
        script.extend([bash(&format!("echo burst {n}")), "#sleep 0.25".into()]);
    }
    script.extend(["#sleep 1.5".into(), result("All of them ran.")]);
    setup.fake.default_script(script);

    setup.say("run ten commands");
    let answer = setup.sees("All of them ran.").await;
    let messages = setup.messages();
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
    assert_contains(&status.text, "Bash ×10");

    let calls = progress_calls(&setup.telegram, status.message_id);
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

    setup.say("hi");
    let reply = setup.sees("API Error: 500").await;
    assert_contains(&reply.text, "Claude reported an error");
    let status = &setup.messages()[0];
    let shown = |needle: &str| status.versions.iter().any(|v| v.contains(needle));
    assert!(shown("API error, retrying (1/2)"), "{status:#?}");
    assert!(shown("API error, retrying (2/2)"), "{status:#?}");
    assert!(status.text.starts_with("⚠️ Ended after"), "{}", status.text);
}

#[tokio::test]
async fn status_answers_during_a_run_with_its_tools_and_the_queue() {
    let setup = start(|bot| bot).await;
    let first = [
        init(),
        bash("echo hi"),
        "#sleep 4".into(),
        result("First done."),
    ];
    setup.fake.script(1, first);
    setup.fake.script(2, [init(), result("Second done.")]);

    setup.say("first");
    setup.sees("echo hi").await;
    setup.say("second");
    setup.sees("Queued (position 1)").await;
    setup.say("/status");
    let status = setup.sees("Running for").await;
    let still_running = setup.fake.calls()[0].exit_code.is_none();
    assert!(still_running, "/status waited for the run to end");
    assert_contains(&status.text, "tools so far: Bash");
    assert_contains(&status.text, "1 message(s) waiting");

    setup.sees("Second done.").await;
    let messages = setup.messages();
    assert!(index_of(&messages, "Running for") < index_of(&messages, "First done."));
}

#[tokio::test]
async fn a_prompt_sent_during_a_run_is_queued_and_answered_after_it() {
    let setup = start(|bot| bot).await;
    setup.fake.script(1, slow_run("echo first", 3));
    setup.fake.script(2, [init(), result("Second answer.")]);

    setup.say("first");
    setup.sees("echo first").await;
    setup.say("second");
    setup.sees("Queued (position 1)").await;
    setup.sees("Second answer.").await;

    let messages = setup.messages();
    let queued = index_of(&messages, "Queued (position 1)");
    let first = index_of(&messages, "the slow run ended");
    assert!(queued < first && first < index_of(&messages, "Second answer."));
    let calls = setup.fake.calls();
    let prompts: Vec<&str> = calls.iter().map(|c| c.stdin.as_str()).collect();
    assert_eq!(prompts, ["first", "second"]);
    assert!(!calls[0].has_flag("--resume"));
    assert_eq!(calls[1].flag_value("--resume"), Some(SESSION));
}

#[tokio::test]
async fn refuses_prompts_past_the_queue_limit_and_stop_all_clears_the_queue() {
    let setup = start(|bot| bot.env("MAX_QUEUED_PER_CHAT", "1")).await;
    setup.fake.script(1, slow_run("sleep 61", 61));
    setup.fake.default_script([init(), result("Fresh answer.")]);

    setup.say("long");
    setup.sees("sleep 61").await;
    for extra in ["queued", "refused 1", "refused 2"] {
        setup.say(extra);
    }
    let texts = wait_for("two refusals", WAIT, || {
        let texts = setup.telegram.visible_texts(CHAT);
        let refused = texts.iter().filter(|t| t.contains("not queued")).count();
        match refused {
            2 => Ok(texts),
            _ => Err(format!("{texts:#?}")),
        }
    })
    .await;
    let queued = texts.iter().filter(|t| t.contains("Queued (position 1)"));
    assert_eq!(queued.count(), 1, "{texts:#?}");
    let refusal = texts.iter().find(|t| t.contains("not queued")).unwrap();
    assert_contains(refusal, "1 messages are already waiting");

    setup.say("/stop all");
    setup.sees("Cleared 1 queued").await;
    setup.sees("Stopped.").await;
    setup.say("after");
    setup.sees("Fresh answer.").await;
    let calls = setup.fake.calls();
    let prompts: Vec<&str> = calls.iter().map(|c| c.stdin.as_str()).collect();
    assert_eq!(prompts, ["long", "after"], "the cleared prompt never ran");
}

#[tokio::test]
async fn another_chat_is_answered_while_a_slow_run_goes_on() {
    let setup = start(|bot| bot).await;
    setup.fake.script(1, slow_run("sleep 30", 30));
    setup.fake.script(2, [init(), result("Answered at once.")]);

    setup.say("slow");
    setup.sees("sleep 30").await;
    setup.telegram.push_text(OTHER_CHAT, OTHER_USER, "quick");
    let other = setup
        .telegram
        .wait_for_text_containing(OTHER_CHAT, "at once", WAIT);
    other.await;
    let calls = setup.fake.calls();
    assert_eq!(calls[0].exit_code, None, "the slow run still goes on");
    assert!(!calls[1].has_flag("--resume"), "its own conversation");

    setup.say("/stop");
    setup.sees("Stopped.").await;
}
