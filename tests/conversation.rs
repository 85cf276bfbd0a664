//! A Telegram conversation end to end, with the stand-in CLI: the real bot
//! binary polls the Bot API double and runs the fake `claude`.

mod support;

use std::time::Duration;

use support::bot_process::BotProcess;
use support::fake_claude::FakeClaude;
use support::telegram_api::BotApi;

const USER: i64 = 4242;
const CHAT: i64 = 4242;
const WAIT: Duration = Duration::from_secs(20);

#[tokio::test]
async fn replies_with_the_agent_answer() {
    let telegram = BotApi::start().await;
    let fake = FakeClaude::new();
    fake.default_script(FakeClaude::fixture("a_text"));
    let _bot = BotProcess::builder()
        .telegram(&telegram)
        .allowed_users(&[USER])
        .fake_claude(&fake)
        .start();

    telegram.push_text(CHAT, USER, "say hello");
    let answer = telegram.wait_for_text_containing(CHAT, "Hello", WAIT).await;
    println!("{answer:?}");
    let calls = fake.calls();
    assert_eq!(calls.len(), 1);
}
