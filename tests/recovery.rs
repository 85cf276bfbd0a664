//! Runs that are interrupted or hit trouble, end to end with the stand-in
//! CLI: `/stop`, Telegram's flood control, a status message that is gone,
//! a crash of the bot and its restart, and shutdown on SIGTERM.

mod live_chat;
mod support;

use std::time::{Duration, Instant};

use live_chat::{
    CHAT, SESSION, Setup, WAIT, assert_contains, bash, fixture_line, init, result, slow_run, start,
    text_of,
};
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use support::fake_claude::FakeClaude;
use support::telegram_api::{Call, Failure};
use support::wait_for;

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

/// Waits until `group` has a process whose command line is `command`.
async fn wait_for_process(group: i32, command: &str) {
    wait_for(&format!("{command:?} in group {group}"), WAIT, || {
        let found = processes_in_group(group);
        let running = found.iter().any(|cmd| cmd.trim() == command);
        running.then_some(()).ok_or(format!("{found:?}"))
    })
    .await
}

/// Waits until no process of `group` is left.
async fn wait_for_group_to_end(group: i32) {
    wait_for(&format!("process group {group} to end"), WAIT, || {
        let found = processes_in_group(group);
        found.is_empty().then_some(()).ok_or(format!("{found:?}"))
    })
    .await
}

/// The pid of the fake's `n`-th invocation, which leads its process group.
async fn fake_pid(fake: &FakeClaude, n: usize) -> i32 {
    let calls = fake.wait_for_calls(n, WAIT).await;
    calls[n - 1].pid.expect("the fake recorded its pid")
}

/// How many of the bot's messages in [`CHAT`] contain `needle`.
fn count(setup: &Setup, needle: &str) -> usize {
    let texts = setup.telegram.visible_texts(CHAT);
    texts.iter().filter(|t| t.contains(needle)).count()
}

/// `/stop` during a long tool step: quick, thorough, and the conversation
/// goes on. `on_sigint` is what the fake prints when interrupted, if any.
async fn stop_interrupts_a_long_step(on_sigint: Option<String>) {
    let setup = start(|bot| bot).await;
    // The fake exits 0 after printing that line, else it dies by SIGINT.
    let exit_code = on_sigint.as_ref().map(|_| 0);
    let mut script = vec![init(), bash("sleep 60")];
    script.extend(on_sigint.map(|line| format!("#on-sigint {line}")));
    script.extend(["#sleep 60".into(), result("never shown")]);
    setup.fake.script(1, script);
    setup.fake.script(2, [init(), result("Carrying on.")]);

    setup.say("wait a minute");
    setup.sees("sleep 60").await;
    let group = fake_pid(&setup.fake, 1).await;
    wait_for_process(group, "sleep 60").await;

    let asked = Instant::now();
    setup.say("/stop");
    setup.sees("Stopped.").await;
    let took = asked.elapsed();
    assert!(took < Duration::from_secs(5), "the stop took {took:?}");
    setup.sees("Stopping the agent").await;
    wait_for_group_to_end(group).await;
    assert_eq!(count(&setup, "never shown"), 0);
    let status = &setup.messages()[0];
    assert!(status.text.starts_with("⚠️ Ended after"), "{}", status.text);

    setup.say("go on");
    setup.sees("Carrying on.").await;
    let calls = setup.fake.calls();
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
async fn flood_control_on_edits_and_answers_is_waited_out_and_nothing_is_lost() {
    let setup = start(|bot| bot).await;
    let parts: Vec<String> = (1..=3)
        .map(|n| format!("Part {n}:{}", " word".repeat(500)))
        .collect();
    let answer = result(&parts.join("\n\n"));
    let script = [init(), bash("echo hi"), "#sleep 3".into(), answer];
    setup.fake.default_script(script);

    setup.say("write a lot");
    setup.telegram.wait_for_bot_messages(CHAT, 1, WAIT).await;
    setup
        .telegram
        .fail_next("editMessageText", Failure::RetryAfter(1));
    setup
        .telegram
        .fail_next("sendMessage", Failure::RetryAfter(1));
    setup.sees("Part 3").await;

    let messages = setup.messages();
    let texts: Vec<&str> = messages[1..].iter().map(|m| m.text.as_str()).collect();
    let last = format!("{}\n\n🔧 Bash", parts[2]);
    assert_eq!(texts, [parts[0].as_str(), parts[1].as_str(), last.as_str()]);

    let sent = setup.telegram.calls_to("sendMessage");
    let first: Vec<&Call> = sent
        .iter()
        .filter(|c| text_of(c).starts_with("Part 1"))
        .collect();
    assert_eq!(first.len(), 2, "refused once, then sent again");
    let waited = first[1].at - first[0].at;
    assert!(
        waited >= Duration::from_millis(900),
        "sent again after {waited:?}"
    );

    let status = &messages[0];
    let edits = setup.telegram.calls_to("editMessageText").len();
    assert_eq!(edits, status.edits + 1, "one edit was refused");
    assert!(status.text.starts_with("✅ Done in"), "{}", status.text);
}

#[tokio::test]
async fn a_status_message_that_is_gone_does_not_keep_the_answer_back() {
    let setup = start(|bot| bot).await;
    let mut script = vec![init(), bash("echo hi"), "#sleep 3".into()];
    script.extend([bash("echo again"), "#sleep 1".into()]);
    script.push(result("Still answered."));
    setup.fake.default_script(script);

    setup.say("go");
    setup.telegram.wait_for_bot_messages(CHAT, 1, WAIT).await;
    let edits = setup.telegram.calls_to("editMessageText").len();
    let gone = Failure::BadRequest("message to edit not found".into());
    setup.telegram.fail_next("editMessageText", gone);
    let tried = setup
        .telegram
        .wait_for_calls("editMessageText", edits + 1, WAIT);
    tried.await;

    let answer = setup.sees("Still answered.").await;
    assert_contains(&answer.text, "🔧 Bash ×2");
    let later = setup.telegram.calls_to("editMessageText").len() - (edits + 1);
    assert_eq!(later, 0, "the bot kept editing a message that is gone");
}

#[tokio::test]
async fn after_a_crash_the_lost_run_is_reported_and_the_queued_prompt_runs() {
    let mut setup = start(|bot| bot).await;
    setup.fake.script(1, slow_run("sleep 63", 63));
    setup
        .fake
        .script(2, [init(), result("The queued one, answered.")]);

    setup.say("long job");
    setup.sees("sleep 63").await;
    setup.say("queued job");
    setup.sees("Queued (position 1)").await;
    // Both updates are confirmed, so Telegram would not send them again.
    wait_for("the updates to be confirmed", WAIT, || {
        match setup.telegram.pending_updates() {
            0 => Ok(()),
            pending => Err(format!("{pending} pending")),
        }
    })
    .await;

    setup.bot.kill();
    // The killed bot's CLI lives on, as it would; it must not run forever.
    let group = fake_pid(&setup.fake, 1).await;
    killpg(Pid::from_raw(group), Signal::SIGKILL).expect("killing the orphaned fake");
    setup.bot.restart();

    setup.sees("restarted while it worked").await;
    setup.sees("The queued one, answered.").await;
    assert_eq!(count(&setup, "restarted while it worked"), 1);
    let texts = setup.telegram.visible_texts(CHAT);
    let at = |needle: &str| texts.iter().position(|t| t.contains(needle));
    assert!(at("restarted while") < at("The queued one"), "{texts:#?}");
    let calls = setup.fake.calls();
    let prompts: Vec<&str> = calls.iter().map(|c| c.stdin.as_str()).collect();
    assert_eq!(prompts, ["long job", "queued job"]);
    assert_eq!(calls[1].flag_value("--resume"), Some(SESSION));
}

#[tokio::test]
async fn sigterm_interrupts_a_run_after_the_grace_tells_the_user_and_exits_0() {
    let grace = Duration::from_secs(2);
    let secs = grace.as_secs().to_string();
    let mut setup = start(|bot| bot.env("SHUTDOWN_GRACE_SECS", secs)).await;
    setup.fake.script(1, slow_run("sleep 64", 64));

    setup.say("long job");
    setup.sees("sleep 64").await;
    let group = fake_pid(&setup.fake, 1).await;
    wait_for_process(group, "sleep 64").await;

    let asked = Instant::now();
    setup.bot.terminate();
    let status = setup.bot.wait_exit(WAIT).await;
    let took = asked.elapsed();
    assert!(status.success(), "{status:?}");
    assert!(
        took >= grace.mul_f64(0.95),
        "the grace was cut short: {took:?}"
    );
    assert!(
        took < grace + Duration::from_secs(5),
        "shutdown took {took:?}"
    );
    assert_eq!(count(&setup, "restarting and interrupted this run"), 1);
    wait_for_group_to_end(group).await;
}

#[tokio::test]
async fn sigterm_lets_a_run_end_within_the_grace_and_keeps_a_late_prompt() {
    let mut setup = start(|bot| bot.env("SHUTDOWN_GRACE_SECS", "20")).await;
    let script = [init(), bash("echo almost"), "#sleep 2".into()];
    setup
        .fake
        .script(1, script.into_iter().chain([result("Made it.")]));
    setup
        .fake
        .script(2, [init(), result("The late one, answered.")]);

    setup.say("short job");
    setup.sees("echo almost").await;
    let asked = Instant::now();
    setup.bot.terminate();
    setup.say("late prompt");
    let status = setup.bot.wait_exit(WAIT).await;
    assert!(status.success(), "{status:?}");
    let took = asked.elapsed();
    assert!(
        took < Duration::from_secs(20),
        "waited out the grace: {took:?}"
    );
    assert_eq!(count(&setup, "Made it."), 1);
    assert_eq!(count(&setup, "interrupted"), 0);

    setup.bot.restart();
    setup.sees("The late one, answered.").await;
    let calls = setup.fake.calls();
    let prompts: Vec<&str> = calls.iter().map(|c| c.stdin.as_str()).collect();
    assert_eq!(prompts, ["short job", "late prompt"]);
}
