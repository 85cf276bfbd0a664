//! Adversarial end-to-end tests of what the CLI may print: huge lines,
//! garbage, odd JSON, a CLI that prints nothing, closes stdout, hangs after
//! its result or never reads its prompt. Each run must end in exactly one
//! reply, and the bot must answer the next prompt as usual.
//! Telegram-side input is in `adversarial_input.rs`.

mod fake_chat;
mod support;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use fake_chat::{CHAT, Chat, USER, answering, is_status, replies};
use serde_json::{Value, json};
use support::bot_process::{BotBuilder, BotProcess};
use support::fake_claude::FakeClaude;
use support::telegram_api::{BotApi, BotMessage};
use tempfile::TempDir;

const HELLO: &str = "Hello from the fake API! 2+2=4.";

fn a_text() -> Vec<String> {
    FakeClaude::fixture("a_text")
}

/// The a_text lines with the line of `kind` changed by `change`.
fn a_text_with(kind: &str, change: impl Fn(&mut Value)) -> Vec<String> {
    let lines = a_text().into_iter().map(|line| {
        let mut parsed: Value = serde_json::from_str(&line).unwrap();
        if parsed["type"] == kind {
            change(&mut parsed);
        }
        parsed.to_string()
    });
    lines.collect()
}

/// A chat whose CLI is a shell wrapper: its first start runs `first_run`
/// (with `$W` its own dir, holding a_text.jsonl and init.jsonl), every later
/// start is the fake CLI replaying a_text.
async fn start_wrapped(
    first_run: &str,
    configure: fn(BotBuilder) -> BotBuilder,
) -> (Chat, TempDir) {
    let telegram = BotApi::start().await;
    let fake = FakeClaude::new();
    fake.default_script(a_text());
    let wrap = tempfile::tempdir().unwrap();
    let dir = wrap.path().display().to_string();
    fs::write(wrap.path().join("a_text.jsonl"), a_text().join("\n") + "\n").unwrap();
    fs::write(wrap.path().join("init.jsonl"), a_text()[0].clone() + "\n").unwrap();
    let script = format!(
        "#!/bin/sh\nW='{dir}'\nif [ ! -e \"$W/ran\" ]; then\n: > \"$W/ran\"\n{first_run}\nexit 0\nfi\n\
         exec '{}' \"$@\"\n",
        fake.bin().display()
    );
    let bin = wrap.path().join("claude");
    fs::write(&bin, script).unwrap();
    fs::set_permissions(&bin, fs::Permissions::from_mode(0o755)).unwrap();
    let builder = BotProcess::builder()
        .telegram(&telegram)
        .allowed_users(&[USER])
        .env("CLAUDE_BIN", bin.display().to_string());
    let bot = configure(builder).start();
    (
        Chat {
            telegram,
            fake,
            bot,
        },
        wrap,
    )
}

async fn start() -> Chat {
    let chat = fake_chat::start(|bot| bot).await;
    chat.fake.default_script(a_text());
    chat
}

/// sendMessage calls the double refused (for markup or anything else).
fn refused_sends(chat: &Chat) -> usize {
    let sent = chat.telegram.calls_to("sendMessage").len();
    let kept = chat
        .telegram
        .chat(CHAT)
        .iter()
        .filter(|m| m.document.is_none())
        .count();
    sent - kept
}

/// The bot is healthy: nothing panicked or was refused, a finished run's
/// status message is no longer "working", and a normal prompt (turn `turn`)
/// gets the normal answer as its only new reply.
async fn still_serves(chat: &Chat, turn: usize) {
    let before = replies(&chat.telegram.chat(CHAT)).len();
    let after = chat.ask("and now a normal question", turn).await;
    let new: Vec<&str> = after[before..].iter().map(|m| m.text.as_str()).collect();
    assert_eq!(new, [HELLO], "follow-up");
    let log = chat.bot.log();
    assert!(!log.contains("panicked"), "the bot panicked");
    assert_eq!(refused_sends(chat), 0, "Telegram refused a message");
    for status in chat.telegram.chat(CHAT).iter().filter(|m| is_status(m)) {
        assert!(
            !status.text.starts_with('⏳'),
            "status never ended: {status:#?}"
        );
    }
}

/// Runs `script` as invocation 1 and returns its one reply.
async fn the_reply(chat: &Chat, script: Vec<String>) -> BotMessage {
    chat.fake.script(1, script);
    let replies = chat.ask("go", 1).await;
    assert_eq!(replies.len(), 1, "{replies:#?}");
    replies[0].clone()
}

/// Paragraphs of text, some emoji, about `bytes` long.
fn paragraphs(bytes: usize) -> String {
    let paragraph = "Lorem ipsum dolor sit amet 😀, consectetur <adipiscing> & elit. ".repeat(5);
    let paragraph = paragraph + "\n\n";
    paragraph.repeat(bytes / paragraph.len() + 1)
}

#[tokio::test]
async fn a_20_mb_result_line_arrives_as_its_start_and_a_document() {
    let chat = start().await;
    let answer = paragraphs(20 * 1024 * 1024);
    chat.fake.script(1, answering("a_text", &answer));

    let replies = chat.ask("write a lot", 1).await;
    assert_eq!(
        replies.len(),
        2,
        "{:#?}",
        replies.iter().map(|m| &m.text).collect::<Vec<_>>()
    );
    assert!(
        replies[0].text.starts_with("Lorem ipsum"),
        "{}",
        replies[0].text
    );
    let document = replies[1].document.as_ref().expect("a document");
    assert_eq!(document.file_name, "answer.md");
    assert!(
        document.bytes == answer.as_bytes(),
        "document differs from the answer"
    );
    still_serves(&chat, 2).await;
}

#[tokio::test]
async fn a_20_mb_assistant_text_block_does_not_disturb_the_answer() {
    let chat = start().await;
    let huge = paragraphs(20 * 1024 * 1024);
    let script = a_text_with("assistant", |line| {
        line["message"]["content"][0]["text"] = json!(huge)
    });
    assert_eq!(the_reply(&chat, script).await.text, HELLO);
    still_serves(&chat, 2).await;
}

#[tokio::test]
async fn garbage_invalid_utf8_and_non_object_lines_are_skipped() {
    let chat = start().await;
    let lines = a_text();
    let mut bytes = format!("{}\n", lines[0]).into_bytes();
    bytes.extend(b"\xff\xfe\x00\x80garbage\x1b[31m\n\x00\x00\x00\n\r\n");
    for odd in [
        "[]",
        "42",
        "\"x\"",
        "null",
        "true",
        "{}",
        r#"{"type":42}"#,
        r#"{"type":null}"#,
    ] {
        bytes.extend(format!("{odd}\n").into_bytes());
    }
    bytes.extend(br#"{"type":"result","result":42,"session_id":[]}"#);
    bytes.extend(format!("\n{}\n", lines[1]).into_bytes());
    // The answer itself holds bytes that are not UTF-8.
    let result = lines[2].replace(HELLO, "Hello \u{1}BROKEN there");
    let (head, tail) = result.split_once("\u{1}BROKEN").unwrap();
    bytes.extend(head.as_bytes());
    bytes.extend(b"\xff\xc3");
    bytes.extend(format!("{tail}\n").into_bytes());
    fs::write(chat.fake.dir().join("scripts/1"), bytes).unwrap();

    let replies = chat.ask("go", 1).await;
    let texts: Vec<&str> = replies.iter().map(|m| m.text.as_str()).collect();
    assert_eq!(texts.len(), 1, "{texts:?}");
    assert!(
        texts[0].starts_with("Hello ") && texts[0].ends_with(" there"),
        "{texts:?}"
    );
    still_serves(&chat, 2).await;
}

#[tokio::test]
async fn a_result_with_every_field_missing_gets_one_reply() {
    let chat = start().await;
    let reply = the_reply(
        &chat,
        vec![a_text()[0].clone(), r#"{"type":"result"}"#.into()],
    )
    .await;
    assert!(reply.text.contains("no text"), "{}", reply.text);
    still_serves(&chat, 2).await;
}

#[tokio::test]
async fn a_null_result_text_says_the_answer_has_no_text() {
    let chat = start().await;
    let script = a_text_with("result", |line| line["result"] = Value::Null);
    assert_eq!(
        the_reply(&chat, script).await.text,
        "(The answer has no text.)"
    );
    still_serves(&chat, 2).await;
}

#[tokio::test]
async fn two_result_lines_give_one_answer() {
    let chat = start().await;
    let mut script = a_text();
    let second = a_text_with("result", |line| line["result"] = json!("the second result"));
    script.push(second[2].clone());
    let reply = the_reply(&chat, script).await;
    assert!(
        reply.text == HELLO || reply.text == "the second result",
        "{}",
        reply.text
    );
    still_serves(&chat, 2).await;
}

#[tokio::test]
async fn deeply_nested_json_is_skipped_or_read_without_a_crash() {
    let chat = start().await;
    let depth = 200_000;
    let arrays = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
    let objects = format!(
        "{}1{}",
        r#"{"type":"assistant","a":"#.repeat(depth),
        "}".repeat(depth)
    );
    let mut input = json!("deep");
    for _ in 0..120 {
        input = json!({ "n": input });
    }
    let tool = json!({"type":"assistant","message":{"id":"m","content":[
        {"type":"tool_use","id":"t1","name":"Bash","input":input}]}});
    let mut script = vec![a_text()[0].clone(), arrays, objects, tool.to_string()];
    script.extend(a_text().into_iter().skip(1));

    let reply = the_reply(&chat, script).await;
    assert!(reply.text.starts_with(HELLO), "{}", reply.text);
    still_serves(&chat, 2).await;
}

#[tokio::test]
async fn a_cli_that_prints_nothing_and_exits_0_gets_one_error_reply() {
    let chat = start().await;
    let reply = the_reply(&chat, Vec::<String>::new()).await;
    assert!(reply.text.contains("without an answer"), "{}", reply.text);
    assert!(reply.text.contains("/new"), "{}", reply.text);
    still_serves(&chat, 2).await;
}

#[tokio::test]
async fn a_cli_that_closes_stdout_but_keeps_running_is_not_waited_for() {
    let run = "cat > /dev/null\ncat \"$W/init.jsonl\"\nexec >&-\nsleep 30";
    let (chat, _wrap) = start_wrapped(run, |bot| bot).await;
    let started = Instant::now();
    let replies = chat.ask("go", 1).await;
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(replies.len(), 1, "{replies:#?}");
    assert!(
        replies[0].text.contains("without an answer"),
        "{}",
        replies[0].text
    );
    still_serves(&chat, 2).await;
}

/// Runs a CLI that prints a whole answer and then does not exit (`then`),
/// with a 4 s timeout; the answer must still arrive, and soon.
async fn answer_then(then: &str) {
    let run = format!("cat > /dev/null\ncat \"$W/a_text.jsonl\"\n{then}");
    let (chat, _wrap) = start_wrapped(&run, |bot| bot.env("CLAUDE_TIMEOUT_SECS", "4")).await;
    let replies = chat.ask("go", 1).await;
    let texts: Vec<&str> = replies.iter().map(|m| m.text.as_str()).collect();
    assert_eq!(
        texts,
        [HELLO],
        "the answer was written, then the CLI lingered"
    );
    still_serves(&chat, 2).await;
}

#[tokio::test]
async fn a_cli_that_hangs_after_its_result_still_delivers_the_answer() {
    answer_then("sleep 30").await;
}

#[tokio::test]
async fn a_cli_that_closes_stdout_after_its_result_still_delivers_the_answer() {
    answer_then("exec >&-\nsleep 30").await;
}

/// A prompt of about 1 MB, with a line break and some emoji.
fn huge_prompt() -> String {
    format!("{}\nend 😀", "please read all of this. ".repeat(42_000))
}

#[tokio::test]
async fn a_1_mb_prompt_reaches_the_cli_whole_or_is_left_unread_without_harm() {
    let run = "sleep 0.5\ncat \"$W/a_text.jsonl\"";
    let (chat, _wrap) = start_wrapped(run, |bot| bot).await;
    let prompt = huge_prompt();
    // First a CLI that never reads stdin, then the fake, which reads it all.
    let first = chat.ask(&prompt, 1).await;
    let texts: Vec<&str> = first.iter().map(|m| m.text.as_str()).collect();
    assert_eq!(texts, [HELLO]);
    let second = chat.ask(&prompt, 2).await;
    assert_eq!(second.len(), 2, "{second:#?}");
    let calls = chat.fake.calls();
    assert_eq!(calls.len(), 1);
    let read = calls[0].stdin.len();
    assert!(
        calls[0].stdin == prompt,
        "stdin: {read} of {} bytes",
        prompt.len()
    );
    still_serves(&chat, 3).await;
}

/// Markdown answers that could become HTML Telegram refuses, each with a
/// text its reply must show.
fn nasty_markdown() -> Vec<(&'static str, String, &'static str)> {
    let code: String = (0..10_000)
        .map(|i| format!("line {i}: if a < b && c > d {{ s = \"&amp;\"; }}\n"))
        .collect();
    let lists: String = (0..60)
        .map(|i| format!("{}- level {i} *em*\n", "  ".repeat(i)))
        .collect();
    let quotes: String = (1..=60)
        .map(|i| format!("{} quote {i} `c<d`\n", ">".repeat(i)))
        .collect();
    let cases = [
        ("unclosed fence", "Look:\n\n```rust\nfn main() {\n    let a = 1 < 2 && b > c;\n".into(), "let a = 1 < 2 && b > c;"),
        ("nested emphasis", "***a**b* and **_c_**__d__ ~~*e*~~ *__f__* _g*h_i* ***".into(), "ab and"),
        ("html tags", "<script>alert('x')</script>\n\nText <b>not bold</b> <a href=\"x\">a</a> & &amp; &#0; &#x110000; &bogus; &lt;".into(), "<script>alert('x')</script>"),
        ("links", "[quote](https://x.org/\"<b>) [angle](<https://x.org/a\"b>) <https://x.org/?q=\"'> \
            [amp](https://x.org/?a=1&b=2&quot;) [js](javascript:alert(1)) [empty]() \
            [nested [inner](https://i.org)](https://o.org) [![img](https://i.org/p.png)](https://o.org) \
            [ref][r]\n\n[r]: https://r.org/\"<>".into(), "quote"),
        ("table", "| a | b<c> | `|` |\n|---|:-:|--:|\n| **x** | [l](https://l.org) | 1 & 2 |\n| only one |\n| 1 | 2 | 3 | 4 |".into(), "only one"),
        ("10000-line code block", format!("```js\n{code}```\n"), "line 0: if a < b"),
        ("bold across splits", format!("**{}**", "x".repeat(9000)), "xxxx"),
        ("escapes across splits", format!("`{}` and [l](https://x.org/{})", "<&>".repeat(2000), "\"".repeat(3000)), "<&><&>"),
        ("deep lists and quotes", format!("{lists}\n{quotes}\n> # h\n> ```\n> code <\n> ```\n> **b**"), "level 59"),
        ("lone specials", "< > & \" ' * _ ` ~ | \\ [ ] ( ) # + - . ! ** __ ~~".into(), "< > &"),
        ("footnotes and entities", "Text[^1] &copy; &nbsp; &#128512; &#xD800;\n\n[^1]: note".into(), "Text"),
        ("only markup", "** **\n\n``` ```\n\n<br>\n\n---".into(), "<br>"),
        ("control characters", "a\u{0}b\u{7}c\u{1b}[31m d\u{200b}e\u{feff}f\u{2028}g\u{fffe}h".into(), "a"),
        ("heading with link and code", "# [`x<y`](https://h.org) **_t_**\n## \n###### `</pre>`".into(), "x<y"),
        ("emoji past the limit", "😀".repeat(3000), "😀😀"),
    ];
    cases.into_iter().collect()
}

#[tokio::test]
async fn markdown_that_could_break_telegram_html_arrives_as_valid_html() {
    let chat = start().await;
    let mut failures = Vec::new();
    for (turn, (name, markdown, shown)) in nasty_markdown().into_iter().enumerate() {
        let before = replies(&chat.telegram.chat(CHAT)).len();
        let refused = refused_sends(&chat);
        chat.fake.script(turn + 1, answering("a_text", &markdown));
        let all = chat.ask(&format!("case {name}"), turn + 1).await;
        let new = &all[before..];
        let mut text: String = new.iter().map(|m| m.text.as_str()).collect();
        for document in new.iter().filter_map(|m| m.document.as_ref()) {
            text.push_str(&String::from_utf8_lossy(&document.bytes));
        }
        if new.is_empty() || !text.contains(shown) {
            failures.push(format!(
                "{name}: {shown:?} not in {:?}",
                support::abbreviate(&text, 300)
            ));
        }
        if refused_sends(&chat) > refused {
            failures.push(format!("{name}: Telegram refused a message"));
        }
        for plain in new
            .iter()
            .filter(|m| m.html.is_none() && m.document.is_none())
        {
            let text = support::abbreviate(&plain.text, 200);
            failures.push(format!("{name}: sent as plain text: {text:?}"));
        }
    }
    let log = chat.bot.log();
    let rejected = log.lines().filter(|l| l.contains("rejected the html"));
    failures.extend(rejected.map(|l| support::abbreviate(l, 400)));
    assert!(failures.is_empty(), "{failures:#?}");
    still_serves(&chat, nasty_markdown().len() + 1).await;
}
