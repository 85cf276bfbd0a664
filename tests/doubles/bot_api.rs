//! The Bot API double, driven by teloxide itself.

use std::time::{Duration, Instant};

use teloxide::prelude::*;
use teloxide::types::{
    BotCommand, ChatAction, InputFile, MessageEntityKind, MessageId, ParseMode, ThreadId,
    UpdateKind,
};
use teloxide::{ApiError, RequestError};

use crate::support::telegram_api::{BOT_USERNAME, BotApi, Failure};

const USER: i64 = 42;
const SECOND: Duration = Duration::from_secs(1);

fn bot(api: &BotApi) -> Bot {
    Bot::new(api.token()).set_api_url(api.url().parse().expect("a valid URL"))
}

/// A double with one private chat the user already wrote in.
async fn started() -> (BotApi, Bot) {
    let api = BotApi::start().await;
    api.push_text(USER, USER, "hello");
    let bot = bot(&api);
    (api, bot)
}

async fn send_html(bot: &Bot, text: &str) -> Result<Message, RequestError> {
    bot.send_message(ChatId(USER), text)
        .parse_mode(ParseMode::Html)
        .await
}

fn api_error(result: Result<Message, RequestError>) -> ApiError {
    match result {
        Err(RequestError::Api(error)) => error,
        other => panic!("expected an API error, got {other:?}"),
    }
}

#[tokio::test]
async fn teloxide_parses_get_me_and_the_webhook_info() {
    let api = BotApi::start().await;
    let bot = bot(&api);

    let me = bot.get_me().await.expect("getMe");
    let webhook = bot.get_webhook_info().await.expect("getWebhookInfo");

    assert_eq!(me.username(), BOT_USERNAME);
    assert!(webhook.url.is_none());
    let methods: Vec<String> = api.calls().into_iter().map(|c| c.method).collect();
    assert_eq!(methods, ["getMe", "getWebhookInfo"]);
}

#[tokio::test]
async fn a_long_poll_answers_as_soon_as_an_update_is_pushed() {
    let api = BotApi::start().await;
    let bot = bot(&api);
    let poll = tokio::spawn(bot.get_updates().timeout(5).into_future());

    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = Instant::now();
    api.push_text(USER, USER, "/new now");
    let updates = poll.await.expect("poll task").expect("getUpdates");

    assert!(
        started.elapsed() < 2 * SECOND,
        "took {:?}",
        started.elapsed()
    );
    let [update] = updates.as_slice() else {
        panic!("one update: {updates:?}")
    };
    let UpdateKind::Message(message) = &update.kind else {
        panic!("{update:?}")
    };
    assert_eq!(message.text(), Some("/new now"));
    assert_eq!(message.chat.id, ChatId(USER));
    assert_eq!(
        message.from.as_ref().map(|u| u.id),
        Some(UserId(USER as u64))
    );
    let entity = &message.entities().expect("entities")[0];
    assert_eq!(
        (entity.kind.clone(), entity.length),
        (MessageEntityKind::BotCommand, 4)
    );
}

#[tokio::test]
async fn a_long_poll_ends_empty_at_its_timeout_and_an_offset_confirms() {
    let api = BotApi::start().await;
    let bot = bot(&api);
    api.push_text(USER, USER, "one");

    let first = bot.get_updates().timeout(1).await.expect("getUpdates");
    let next = first[0].id.0 as i32 + 1;
    let started = Instant::now();
    let second = bot
        .get_updates()
        .offset(next)
        .timeout(1)
        .await
        .expect("getUpdates");

    assert_eq!(first.len(), 1);
    assert!(second.is_empty());
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(api.pending_updates(), 0);
}

#[tokio::test]
async fn a_newer_poll_ends_the_older_one_with_a_conflict() {
    let api = BotApi::start().await;
    let bot = bot(&api);
    let older = tokio::spawn(bot.get_updates().timeout(5).into_future());
    tokio::time::sleep(Duration::from_millis(300)).await;

    let newer = bot.get_updates().timeout(0).await;
    let older = older.await.expect("poll task");

    assert!(newer.is_ok());
    let error = older.expect_err("the older poll fails");
    assert!(matches!(
        error,
        RequestError::Api(ApiError::TerminatedByOtherGetUpdates)
    ));
}

#[tokio::test]
async fn html_is_stored_as_the_text_a_user_sees() {
    let (api, bot) = started().await;
    let html = "<b>bold</b> &amp; <code>x &lt; y</code> \
        <pre><code class=\"language-rust\">fn</code></pre> \
        <a href=\"https://example.com/?a=1&amp;b=2\">link</a> &#128512;";

    let sent = send_html(&bot, html).await.expect("valid HTML");

    let shown = &api.chat(USER)[0];
    assert_eq!(shown.text, "bold & x < y fn link 😀");
    assert_eq!(shown.html.as_deref(), Some(html));
    let kinds: Vec<MessageEntityKind> = sent
        .entities()
        .expect("entities")
        .iter()
        .map(|e| e.kind.clone())
        .collect();
    let pre = MessageEntityKind::Pre {
        language: Some("rust".to_owned()),
    };
    assert_eq!(
        kinds[..3],
        [MessageEntityKind::Bold, MessageEntityKind::Code, pre]
    );
    let link = &shown.entities[3];
    assert_eq!(link.url.as_deref(), Some("https://example.com/?a=1&b=2"));
    assert_eq!((link.offset, link.length), (16, 4));
}

#[tokio::test]
async fn html_telegram_would_reject_gets_its_error() {
    let (api, bot) = started().await;
    let refused = [
        "line<br>break",
        "<b>never closed",
        "<b>crossed</i>",
        "</b>",
        "1 < 2",
        "2 > 1",
        "fish & chips",
        "&nbsp;",
        "<span>plain span</span>",
        "<b/>",
    ];

    for html in refused {
        let error = api_error(send_html(&bot, html).await);
        let ApiError::CantParseEntities(detail) = &error else {
            panic!("{html:?} gave {error:?}")
        };
        assert!(
            detail.starts_with("Bad Request: can't parse entities: "),
            "{detail}"
        );
    }
    let accepted = [
        "<tg-spoiler>a</tg-spoiler> <span class=\"tg-spoiler\">b</span>",
        "<blockquote expandable>quote</blockquote> <s>s</s><u>u</u><i>i</i>",
        "<code>&lt;b&gt; inside code</code>",
    ];
    for html in accepted {
        send_html(&bot, html)
            .await
            .unwrap_or_else(|e| panic!("{html:?}: {e}"));
    }
    assert_eq!(api.chat(USER).len(), accepted.len());
}

#[tokio::test]
async fn empty_and_too_long_texts_are_refused_in_utf16_units() {
    let (api, bot) = started().await;
    let emoji_4096_units = "😀".repeat(2048);
    let markup_over_the_limit = format!("<b>{}</b>", "a".repeat(4096));

    for fits in [
        "a".repeat(4096),
        emoji_4096_units.clone(),
        markup_over_the_limit,
    ] {
        send_html(&bot, &fits).await.expect("fits the limit");
    }
    let too_long = [format!("{emoji_4096_units}a"), "a".repeat(4097)];
    for text in too_long {
        let error = api_error(send_html(&bot, &text).await);
        assert!(matches!(error, ApiError::MessageIsTooLong), "{error:?}");
    }
    for empty in ["", "<b></b>", "  \n"] {
        let error = api_error(send_html(&bot, empty).await);
        assert!(
            matches!(error, ApiError::MessageTextIsEmpty),
            "{empty:?}: {error:?}"
        );
    }
    assert_eq!(api.chat(USER).len(), 3);
}

#[tokio::test]
async fn edits_and_deletes_are_tracked_and_checked_like_telegram() {
    let (api, bot) = started().await;
    let sent = bot.send_message(ChatId(USER), "draft").await.expect("send");
    let chat = ChatId(USER);

    bot.edit_message_text(chat, sent.id, "final")
        .await
        .expect("edit");
    let unchanged = bot.edit_message_text(chat, sent.id, "final").await;
    let too_long = bot.edit_message_text(chat, sent.id, "a".repeat(4097)).await;
    bot.delete_message(chat, sent.id).await.expect("delete");
    let edit_deleted = bot.edit_message_text(chat, sent.id, "again").await;
    let delete_again = bot.delete_message(chat, sent.id).await;

    assert!(matches!(api_error(unchanged), ApiError::MessageNotModified));
    assert!(matches!(
        api_error(too_long),
        ApiError::EditedMessageIsTooLong
    ));
    assert!(matches!(
        api_error(edit_deleted),
        ApiError::MessageToEditNotFound
    ));
    let delete_again = delete_again.expect_err("second delete fails");
    assert!(matches!(
        delete_again,
        RequestError::Api(ApiError::MessageToDeleteNotFound)
    ));
    let shown = &api.chat(USER)[0];
    assert_eq!(
        (shown.text.as_str(), shown.edits, shown.deleted),
        ("final", 1, true)
    );
    assert_eq!(shown.versions, ["draft", "final"]);
    assert!(api.visible_texts(USER).is_empty());
}

#[tokio::test]
async fn scripted_failures_reach_teloxide_as_its_own_errors() {
    let (api, bot) = started().await;
    api.fail_next("sendMessage", Failure::RetryAfter(7));
    api.fail_next(
        "SendMessage",
        Failure::Forbidden("bot was blocked by the user".into()),
    );
    api.fail_next(
        "editMessageText",
        Failure::BadRequest("message can't be edited".into()),
    );

    let throttled = bot.send_message(ChatId(USER), "one").await;
    let blocked = bot.send_message(ChatId(USER), "two").await;
    let sent = bot
        .send_message(ChatId(USER), "three")
        .await
        .expect("no failure left");
    let edit = bot.edit_message_text(ChatId(USER), sent.id, "edited").await;

    let throttled = throttled.expect_err("429");
    assert!(
        matches!(throttled, RequestError::RetryAfter(s) if s.seconds() == 7),
        "{throttled:?}"
    );
    assert!(matches!(api_error(blocked), ApiError::BotBlocked));
    assert!(matches!(api_error(edit), ApiError::MessageCantBeEdited));
    assert_eq!(api.visible_texts(USER), ["three"]);
}

#[tokio::test]
async fn raw_requests_see_status_codes_for_server_errors_tokens_and_unknown_methods() {
    let api = BotApi::start().await;
    api.fail_next("getMe", Failure::ServerError);
    let client = reqwest::Client::new();
    let post = |path: String| client.post(format!("{}{path}", api.url())).send();
    let token = api.token();

    let server_error = post(format!("/bot{token}/getMe")).await.expect("post");
    let wrong_token = post("/bot1:wrong/getMe".to_owned()).await.expect("post");
    let unknown = post(format!("/bot{token}/getChat")).await.expect("post");

    assert_eq!(server_error.status(), 500);
    assert_eq!(wrong_token.status(), 401);
    assert_eq!(unknown.status(), 404);
    let body = unknown.text().await.expect("body");
    assert!(body.contains(r#""ok":false"#), "{body}");
    assert_eq!(api.unknown_methods(), ["getChat"]);
}

#[tokio::test]
async fn documents_keep_their_file_name_bytes_and_caption() {
    let (api, bot) = started().await;
    let file = InputFile::memory(b"line one\nline two\n".to_vec()).file_name("answer.md");

    let sent = bot
        .send_document(ChatId(USER), file)
        .caption("<i>full answer</i>")
        .parse_mode(ParseMode::Html)
        .await
        .expect("sendDocument");
    let empty = InputFile::memory(Vec::new()).file_name("empty.txt");
    let refused = bot.send_document(ChatId(USER), empty).await;

    assert_eq!(
        sent.document().and_then(|d| d.file_name.as_deref()),
        Some("answer.md")
    );
    let shown = &api.chat(USER)[0];
    let document = shown.document.as_ref().expect("a document");
    assert_eq!(document.file_name, "answer.md");
    assert_eq!(document.bytes, b"line one\nline two\n");
    assert_eq!(shown.text, "full answer");
    assert!(refused.is_err());
}

#[tokio::test]
async fn topics_and_unknown_chats_are_checked() {
    let api = BotApi::start().await;
    let bot = bot(&api);
    let forum = ChatId(-1001234);
    api.push_topic_text(forum.0, 7, USER, "in topic 7");

    let in_topic = bot
        .send_message(forum, "reply")
        .message_thread_id(ThreadId(MessageId(7)));
    in_topic.await.expect("known topic");
    let wrong_topic = bot
        .send_message(forum, "lost")
        .message_thread_id(ThreadId(MessageId(8)));
    let wrong_topic = wrong_topic.await;
    let unknown_chat = bot.send_message(ChatId(999), "nobody").await;

    assert_eq!(api.chat(forum.0)[0].thread_id, Some(7));
    assert!(matches!(api_error(wrong_topic), ApiError::Unknown(d) if d.contains("thread")));
    assert!(matches!(api_error(unknown_chat), ApiError::ChatNotFound));
}

#[tokio::test]
async fn chat_actions_and_commands_are_recorded() {
    let (api, bot) = started().await;
    let commands = vec![BotCommand::new("new", "Start a new session")];

    bot.send_chat_action(ChatId(USER), ChatAction::Typing)
        .await
        .expect("action");
    bot.set_my_commands(commands).await.expect("setMyCommands");
    let invalid = bot
        .set_my_commands(vec![BotCommand::new("New-One", "x")])
        .await;

    assert_eq!(api.calls_to("sendChatAction")[0].params["action"], "typing");
    assert_eq!(
        api.commands(),
        [("new".to_owned(), "Start a new session".to_owned())]
    );
    assert!(invalid.is_err());
}

#[tokio::test]
#[should_panic(expected = "first answer")]
async fn waiting_for_a_text_that_never_comes_shows_what_the_chat_holds() {
    let (api, bot) = started().await;
    bot.send_message(ChatId(USER), "first answer")
        .await
        .expect("send");

    api.wait_for_text_containing(USER, "second answer", Duration::from_millis(200))
        .await;
}
