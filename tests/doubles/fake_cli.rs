//! The fake `claude` script, run the way the bot runs the CLI.

use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};

use crate::support::fake_claude::FakeClaude;

const TIMEOUT: Duration = Duration::from_secs(20);

fn spawn(fake: &FakeClaude, cwd: &Path, args: &[&str]) -> Child {
    Command::new(fake.bin())
        .args(args)
        .current_dir(cwd)
        .env("FAKE_TEST_VAR", "multi\nline value")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .expect("starting the fake claude")
}

async fn run(fake: &FakeClaude, args: &[&str], stdin: &str) -> Output {
    let cwd = tempfile::tempdir().expect("temp cwd");
    let mut child = spawn(fake, cwd.path(), args);
    let mut input = child.stdin.take().expect("piped stdin");
    input
        .write_all(stdin.as_bytes())
        .await
        .expect("writing stdin");
    drop(input);
    let output = tokio::time::timeout(TIMEOUT, child.wait_with_output()).await;
    output
        .expect("fake claude finished in time")
        .expect("its output")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[tokio::test]
async fn it_replays_its_script_and_records_the_call() {
    let fake = FakeClaude::new();
    fake.script(
        1,
        [
            r#"{"type":"system"}"#,
            "#stderr something broke",
            "#exit 3",
            "never",
        ],
    );
    let cwd = tempfile::tempdir().expect("temp cwd");

    let mut child = spawn(
        &fake,
        cwd.path(),
        &["-p", "--append-system-prompt", "two\nlines"],
    );
    let mut input = child.stdin.take().expect("piped stdin");
    input
        .write_all("the prompt\n".as_bytes())
        .await
        .expect("writing stdin");
    drop(input);
    let output = child.wait_with_output().await.expect("output");

    assert_eq!(stdout(&output), "{\"type\":\"system\"}\n");
    assert_eq!(String::from_utf8_lossy(&output.stderr), "something broke\n");
    assert_eq!(output.status.code(), Some(3));
    let [call] = fake.calls().try_into().expect("one call");
    assert_eq!(call.argv, ["-p", "--append-system-prompt", "two\nlines"]);
    assert_eq!(
        call.flag_value("--append-system-prompt"),
        Some("two\nlines")
    );
    assert_eq!(call.cwd.canonicalize().ok(), cwd.path().canonicalize().ok());
    assert_eq!(call.stdin, "the prompt\n");
    assert!(call.stdin_closed);
    assert_eq!(call.env["FAKE_TEST_VAR"], "multi\nline value");
    assert_eq!(call.exit_code, Some(3));
}

#[tokio::test]
async fn concurrent_invocations_get_distinct_numbers_and_their_own_scripts() {
    let fake = FakeClaude::new();
    fake.default_script(["default"]);
    fake.script(3, ["third"]);

    let cwd = tempfile::tempdir().expect("temp cwd");
    let children: Vec<Child> = (0..8).map(|_| spawn(&fake, cwd.path(), &[])).collect();
    let mut outputs = Vec::new();
    for mut child in children {
        drop(child.stdin.take());
        outputs.push(child.wait_with_output().await.expect("output"));
    }

    let numbers: Vec<usize> = fake.calls().iter().map(|c| c.number).collect();
    assert_eq!(numbers, (1..=8).collect::<Vec<_>>());
    let texts: Vec<String> = outputs.iter().map(stdout).collect();
    assert_eq!(texts.iter().filter(|t| *t == "third\n").count(), 1);
    assert_eq!(texts.iter().filter(|t| *t == "default\n").count(), 7);
}

#[tokio::test]
async fn lines_of_many_megabytes_pass_through_quickly() {
    let fake = FakeClaude::new();
    let huge = format!("{{\"text\":\"{}\"}}", "x".repeat(8 * 1024 * 1024));
    fake.script(1, [huge.as_str(), "#stderr between", huge.as_str()]);

    let started = Instant::now();
    let output = run(&fake, &[], "").await;

    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(stdout(&output), format!("{huge}\n{huge}\n"));
}

#[tokio::test]
async fn it_sleeps_between_lines() {
    let fake = FakeClaude::new();
    fake.script(1, ["first", "#sleep 1", "second"]);
    let cwd = tempfile::tempdir().expect("temp cwd");
    let mut child = spawn(&fake, cwd.path(), &[]);
    drop(child.stdin.take());
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();

    let started = Instant::now();
    let first = lines.next_line().await.expect("read");
    let first_at = started.elapsed();
    let second = lines.next_line().await.expect("read");

    assert_eq!(
        (first.as_deref(), second.as_deref()),
        (Some("first"), Some("second"))
    );
    assert!(
        first_at < Duration::from_millis(700),
        "first line after {first_at:?}"
    );
    assert!(started.elapsed() >= Duration::from_millis(900));
}

#[tokio::test]
async fn sigint_to_its_group_prints_the_on_sigint_line_and_exits_zero() {
    let fake = FakeClaude::new();
    fake.script(
        1,
        [
            "#on-sigint {\"type\":\"result\"}",
            "started",
            "#sleep 30",
            "late",
        ],
    );
    let cwd = tempfile::tempdir().expect("temp cwd");
    let mut child = spawn(&fake, cwd.path(), &[]);
    drop(child.stdin.take());
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();

    let started = lines.next_line().await.expect("read");
    let pid = Pid::from_raw(child.id().expect("a pid") as i32);
    killpg(pid, Signal::SIGINT).expect("SIGINT to the group");
    let next = lines.next_line().await.expect("read");
    let status = tokio::time::timeout(TIMEOUT, child.wait())
        .await
        .expect("exits");

    assert_eq!(started.as_deref(), Some("started"));
    assert_eq!(next.as_deref(), Some("{\"type\":\"result\"}"));
    assert_eq!(status.expect("status").code(), Some(0));
}

#[tokio::test]
async fn sigterm_during_a_sleep_ends_it_at_once_by_that_signal() {
    let fake = FakeClaude::new();
    fake.script(1, ["started", "#sleep 30", "late"]);
    let cwd = tempfile::tempdir().expect("temp cwd");
    let mut child = spawn(&fake, cwd.path(), &[]);
    drop(child.stdin.take());
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();

    lines.next_line().await.expect("read");
    let took = Instant::now();
    let pid = Pid::from_raw(child.id().expect("a pid") as i32);
    nix::sys::signal::kill(pid, Signal::SIGTERM).expect("SIGTERM to the script only");
    let rest = tokio::time::timeout(TIMEOUT, lines.next_line())
        .await
        .expect("EOF");
    let status = child.wait().await.expect("status");

    assert_eq!(rest.expect("read"), None);
    assert!(
        took.elapsed() < Duration::from_secs(5),
        "{:?}",
        took.elapsed()
    );
    assert_eq!(status.signal(), Some(Signal::SIGTERM as i32));
    assert_eq!(fake.calls()[0].exit_code, None);
}

#[tokio::test]
async fn without_a_script_it_fails_loudly() {
    let fake = FakeClaude::new();

    let output = run(&fake, &[], "").await;

    assert_eq!(output.status.code(), Some(97));
    assert!(String::from_utf8_lossy(&output.stderr).contains("no script for invocation 1"));
}

#[tokio::test]
async fn a_fixture_run_replays_stdout_stderr_and_the_exit_code() {
    let fake = FakeClaude::new();
    fake.script(1, FakeClaude::fixture_run("f3_resume_other_cwd"));
    let fixture = |ext: &str| {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
        std::fs::read_to_string(dir.join(format!("f3_resume_other_cwd.{ext}"))).expect("fixture")
    };

    let output = run(&fake, &["-p"], "").await;

    assert_eq!(stdout(&output), fixture("jsonl"));
    assert_eq!(String::from_utf8_lossy(&output.stderr), fixture("stderr"));
    assert_eq!(output.status.code(), fixture("rc").trim().parse().ok());
}
