//! `BotApi`: a double of the Telegram Bot API as teloxide calls it.
//!
//! Requests are `POST /bot{token}/{Method}` with JSON bodies (multipart for
//! `sendDocument`); answers are `{"ok":true,"result":...}` or Telegram's error
//! objects. Texts are checked like Telegram checks them. The server lives in
//! [`telegram_server`](super::telegram_server) and
//! [`telegram_methods`](super::telegram_methods); this file holds the
//! recorded state and what tests see of it.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use serde_json::{Value, json};
use tokio::sync::Notify;

use super::telegram_html::{Entity, utf16_len};
use super::{abbreviate, serve, telegram_server, wait_for};

/// The token the bot must use; requests with another one get 401.
pub const BOT_TOKEN: &str = "123456789:TEST-token-of-the-bot-api-double";
/// The bot's own user id, as Telegram derives it from the token.
pub const BOT_USER_ID: i64 = 123456789;
/// The bot's username, returned by `getMe`.
pub const BOT_USERNAME: &str = "test_double_bot";

/// A scripted failure, answered to the next call of one method.
#[derive(Clone, Debug)]
pub enum Failure {
    /// 429 with `parameters.retry_after` set to this many seconds.
    RetryAfter(u32),
    /// 400 with `Bad Request: {detail}`; a leading `Bad Request: ` is kept once.
    BadRequest(String),
    /// 403 with `Forbidden: {detail}`, e.g. `bot was blocked by the user`.
    Forbidden(String),
    /// 500 `Internal Server Error`; teloxide sleeps 10 s after any 5xx.
    ServerError,
}

/// One request the bot made, with its parameters as JSON.
///
/// Multipart text fields are strings; a file field is
/// `{"file_name": ..., "size": ...}`.
#[derive(Clone, Debug)]
pub struct Call {
    pub method: String,
    pub params: Value,
    pub at: Instant,
}

/// A file the bot sent with `sendDocument`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SentDocument {
    pub file_name: String,
    pub bytes: Vec<u8>,
}

/// A message the bot sent, as the chat shows it now.
#[derive(Clone, Debug)]
pub struct BotMessage {
    pub message_id: i64,
    /// The forum topic it was sent to.
    pub thread_id: Option<i64>,
    /// Current visible text (the caption for a document), markup parsed out.
    pub text: String,
    /// Current text exactly as sent, when it was sent with parse mode HTML.
    pub html: Option<String>,
    pub entities: Vec<Entity>,
    /// Every visible text the message had, first to last.
    pub versions: Vec<String>,
    pub edits: usize,
    pub deleted: bool,
    pub document: Option<SentDocument>,
}

/// Handle on a running Bot API double; clones share the same server.
#[derive(Clone)]
pub struct BotApi {
    url: String,
    shared: Arc<Shared>,
}

/// What the server and the tests share.
pub(super) struct Shared {
    pub(super) state: Mutex<State>,
    /// Woken whenever an update is queued or a newer poller arrives.
    pub(super) wake_pollers: Notify,
}

impl Shared {
    pub(super) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Everything the double remembers.
#[derive(Default)]
pub(super) struct State {
    /// Updates not yet confirmed by a getUpdates offset.
    pub(super) pending: Vec<Value>,
    pub(super) last_update_id: i64,
    pub(super) last_message_id: i64,
    /// Bumped by every getUpdates; an older poller answers 409.
    pub(super) poller: u64,
    pub(super) calls: Vec<Call>,
    pub(super) unknown_methods: Vec<String>,
    pub(super) failures: Vec<(String, Failure)>,
    pub(super) chats: HashMap<i64, Chat>,
    pub(super) commands: Vec<(String, String)>,
}

impl State {
    pub(super) fn next_message_id(&mut self) -> i64 {
        self.last_message_id += 1;
        self.last_message_id
    }
}

/// A chat some user wrote in, and what the bot put there.
pub(super) struct Chat {
    /// The `Chat` object as Telegram sends it.
    pub(super) json: Value,
    pub(super) forum: bool,
    pub(super) threads: HashSet<i64>,
    pub(super) user_messages: HashSet<i64>,
    pub(super) bot_messages: Vec<BotMessage>,
}

/// Where an incoming message is written.
enum Place {
    Private,
    Group,
    Topic(i64),
}

impl BotApi {
    /// Starts the double on a fresh loopback port.
    pub async fn start() -> Self {
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            wake_pollers: Notify::new(),
        });
        let router = Router::new()
            .fallback(telegram_server::handle)
            .with_state(shared.clone());
        let url = serve(router).await;
        Self { url, shared }
    }

    /// The value for teloxide's `set_api_url` (TELEGRAM_API_URL).
    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn token(&self) -> &'static str {
        BOT_TOKEN
    }

    /// Queues a text a user wrote in their private chat; returns its message id.
    pub fn push_text(&self, chat_id: i64, user_id: i64, text: &str) -> i64 {
        self.push_message(chat_id, user_id, Place::Private, text)
    }

    /// Queues a text written in a group (a supergroup without topics).
    pub fn push_group_text(&self, chat_id: i64, user_id: i64, text: &str) -> i64 {
        self.push_message(chat_id, user_id, Place::Group, text)
    }

    /// Queues a text written in topic `thread_id` of a forum supergroup.
    pub fn push_topic_text(&self, chat_id: i64, thread_id: i64, user_id: i64, text: &str) -> i64 {
        self.push_message(chat_id, user_id, Place::Topic(thread_id), text)
    }

    /// Queues any update; `update_id` is filled in and returned.
    pub fn push_update(&self, mut update: Value) -> i64 {
        let mut state = self.shared.lock();
        state.last_update_id += 1;
        let update_id = state.last_update_id;
        update["update_id"] = json!(update_id);
        state.pending.push(update);
        drop(state);

        self.shared.wake_pollers.notify_waiters();
        update_id
    }

    fn push_message(&self, chat_id: i64, user_id: i64, place: Place, text: &str) -> i64 {
        let user = json!({
            "id": user_id, "is_bot": false, "first_name": format!("User {user_id}"),
            "username": format!("user{user_id}"), "language_code": "en",
        });
        let (chat_json, thread_id) = match place {
            Place::Private => (
                json!({"id": chat_id, "type": "private", "first_name": user["first_name"]}),
                None,
            ),
            Place::Group => (group_json(chat_id, false), None),
            Place::Topic(thread) => (group_json(chat_id, true), Some(thread)),
        };

        let mut state = self.shared.lock();
        let message_id = state.next_message_id();
        let chat = state.chats.entry(chat_id).or_insert_with(|| Chat {
            forum: false,
            json: chat_json.clone(),
            threads: HashSet::new(),
            user_messages: HashSet::new(),
            bot_messages: Vec::new(),
        });
        chat.forum |= thread_id.is_some();
        chat.user_messages.insert(message_id);
        chat.threads.extend(thread_id);
        drop(state);

        let mut message = json!({
            "message_id": message_id, "date": unix_now(), "chat": chat_json,
            "from": user, "text": text,
        });
        if let Some(thread) = thread_id {
            message["message_thread_id"] = json!(thread);
            message["is_topic_message"] = json!(true);
        }
        if text.starts_with('/') {
            let command = text.split_whitespace().next().unwrap_or(text);
            let length = utf16_len(command);
            message["entities"] = json!([{"type": "bot_command", "offset": 0, "length": length}]);
        }
        self.push_update(json!({ "message": message }));
        message_id
    }

    /// Makes the next call of `method` (any case) fail with `failure`.
    ///
    /// Several failures for one method are answered in the order given.
    pub fn fail_next(&self, method: &str, failure: Failure) {
        let mut state = self.shared.lock();
        state.failures.push((method.to_owned(), failure));
    }

    /// Every request so far, in arrival order.
    pub fn calls(&self) -> Vec<Call> {
        self.shared.lock().calls.clone()
    }

    /// The requests to one method (any case).
    pub fn calls_to(&self, method: &str) -> Vec<Call> {
        let calls = self.calls().into_iter();
        calls
            .filter(|c| c.method.eq_ignore_ascii_case(method))
            .collect()
    }

    /// Methods the bot called that this double does not implement.
    pub fn unknown_methods(&self) -> Vec<String> {
        self.shared.lock().unknown_methods.clone()
    }

    /// The bot's messages in one chat, in the order they were sent.
    pub fn chat(&self, chat_id: i64) -> Vec<BotMessage> {
        let state = self.shared.lock();
        let chat = state.chats.get(&chat_id);
        chat.map(|c| c.bot_messages.clone()).unwrap_or_default()
    }

    /// Current texts of the bot's messages in a chat that were not deleted.
    pub fn visible_texts(&self, chat_id: i64) -> Vec<String> {
        let messages = self.chat(chat_id).into_iter();
        messages.filter(|m| !m.deleted).map(|m| m.text).collect()
    }

    /// The commands of the last successful `setMyCommands`.
    pub fn commands(&self) -> Vec<(String, String)> {
        self.shared.lock().commands.clone()
    }

    /// How many updates wait to be confirmed by a getUpdates offset.
    pub fn pending_updates(&self) -> usize {
        self.shared.lock().pending.len()
    }

    /// Waits until the bot has sent at least `n` messages to a chat.
    pub async fn wait_for_bot_messages(
        &self,
        chat_id: i64,
        n: usize,
        timeout: Duration,
    ) -> Vec<BotMessage> {
        let what = format!("{n} bot messages in chat {chat_id}");
        wait_for(&what, timeout, || {
            let messages = self.chat(chat_id);
            if messages.len() >= n {
                return Ok(messages);
            }
            Err(describe(&messages))
        })
        .await
    }

    /// Waits for a message in the chat, not deleted, whose text has `needle`.
    pub async fn wait_for_text_containing(
        &self,
        chat_id: i64,
        needle: &str,
        timeout: Duration,
    ) -> BotMessage {
        let what = format!("a message containing {needle:?} in chat {chat_id}");
        wait_for(&what, timeout, || {
            let messages = self.chat(chat_id);
            let found = messages
                .iter()
                .find(|m| !m.deleted && m.text.contains(needle));
            found.cloned().ok_or_else(|| describe(&messages))
        })
        .await
    }

    /// Waits until `method` (any case) was called at least `n` times.
    pub async fn wait_for_calls(&self, method: &str, n: usize, timeout: Duration) -> Vec<Call> {
        let what = format!("{n} calls of {method}");
        wait_for(&what, timeout, || {
            let calls = self.calls_to(method);
            if calls.len() >= n {
                return Ok(calls);
            }
            let all = self.calls().into_iter().map(|c| c.method);
            Err(format!("all calls: {:?}", all.collect::<Vec<_>>()))
        })
        .await
    }
}

/// One line per message: id, flags and the start of its text.
fn describe(messages: &[BotMessage]) -> String {
    if messages.is_empty() {
        return "no bot messages".to_owned();
    }
    let lines = messages.iter().map(|m| {
        let deleted = if m.deleted { " deleted" } else { "" };
        let text = abbreviate(&m.text, 300);
        format!("#{} edits={}{deleted}: {text:?}", m.message_id, m.edits)
    });
    lines.collect::<Vec<_>>().join("\n")
}

fn group_json(chat_id: i64, forum: bool) -> Value {
    json!({"id": chat_id, "type": "supergroup", "title": "Test group", "is_forum": forum})
}

/// The bot as a Telegram `User`.
pub(super) fn bot_user() -> Value {
    json!({"id": BOT_USER_ID, "is_bot": true, "first_name": "Test Bot", "username": BOT_USERNAME})
}

pub(super) fn unix_now() -> u64 {
    let since_epoch = SystemTime::now().duration_since(UNIX_EPOCH);
    since_epoch.map(|d| d.as_secs()).unwrap_or_default()
}
