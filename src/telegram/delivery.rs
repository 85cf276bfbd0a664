//! Sending to one chat: replies that must arrive (retried through flood
//! control and network trouble, resent as plain text when Telegram rejects
//! their HTML) and progress that is only best effort (edits, chat actions).

use std::time::Duration;

use teloxide::prelude::*;
use teloxide::types::{ChatAction, InputFile, MessageId, ParseMode, ThreadId};
use teloxide::{ApiError, RequestError};
use tracing::{debug, warn};

use super::{chunks, html};

/// How often a reply is tried before the failure is reported.
const SEND_ATTEMPTS: u32 = 6;
/// The wait before retrying after a network error; doubled each time.
const NETWORK_BACKOFF: Duration = Duration::from_millis(500);

/// Where one chat's messages go: the chat and, in a forum, its topic.
#[derive(Clone)]
pub struct Outbox {
    bot: Bot,
    chat_id: ChatId,
    thread_id: Option<ThreadId>,
}

/// How a best-effort call went.
#[derive(Debug, PartialEq, Eq)]
pub enum Effort {
    Done,
    /// Telegram asked to wait this long before the next call.
    Throttled(Duration),
    /// The message is gone (deleted by the user) or can no longer be edited.
    Gone,
    Failed,
}

impl Outbox {
    pub fn new(bot: Bot, chat_id: ChatId, thread_id: Option<ThreadId>) -> Self {
        Outbox {
            bot,
            chat_id,
            thread_id,
        }
    }

    pub fn chat_id(&self) -> ChatId {
        self.chat_id
    }

    /// Sends HTML and returns the id of the (last) message. Flood control
    /// and network errors are waited out; if Telegram cannot parse the HTML
    /// the same text goes again as plain text; text past Telegram's limit
    /// goes as several messages. Nothing is lost.
    pub async fn send_html(&self, text: &str) -> Result<MessageId, RequestError> {
        if chunks::visible_len(text) <= chunks::MESSAGE_LIMIT {
            return self.send_one_html(text).await;
        }
        let mut last = None;
        for chunk in chunks::split(text, chunks::MESSAGE_LIMIT) {
            last = Some(self.send_one_html(&chunk).await?);
        }
        Ok(last.expect("text past the limit makes at least one chunk"))
    }

    async fn send_one_html(&self, text: &str) -> Result<MessageId, RequestError> {
        let result = self.retrying(|| self.html_request(text)).await;
        match result {
            Err(RequestError::Api(error)) if is_markup_error(&error) => {
                warn!(%error, "telegram rejected the html, sending plain text");
                let plain = html::to_plain_text(text);
                self.retrying(|| self.plain_request(&plain)).await
            }
            other => other,
        }
    }

    /// Sends plain text, with no markup at all.
    pub async fn send_plain(&self, text: &str) -> Result<MessageId, RequestError> {
        self.retrying(|| self.plain_request(text)).await
    }

    /// Sends a file made in memory.
    pub async fn send_document(
        &self,
        file_name: &str,
        contents: Vec<u8>,
    ) -> Result<MessageId, RequestError> {
        let file_name = file_name.to_owned();
        self.retrying(|| {
            let file = InputFile::memory(contents.clone()).file_name(file_name.clone());
            let mut request = self.bot.send_document(self.chat_id, file);
            if let Some(thread_id) = self.thread_id {
                request = request.message_thread_id(thread_id);
            }
            async move { request.await.map(|message| message.id) }
        })
        .await
    }

    /// Sends one HTML message once, without retrying: for progress.
    pub async fn post_html(&self, text: &str) -> Result<MessageId, Effort> {
        match self.html_request(text).await {
            Ok(id) => Ok(id),
            Err(error) => Err(effort(Err(error))),
        }
    }

    /// Replaces the text of a message the bot sent, once, without retrying.
    pub async fn edit_html(&self, message_id: MessageId, text: &str) -> Effort {
        let request = self
            .bot
            .edit_message_text(self.chat_id, message_id, text)
            .parse_mode(ParseMode::Html);
        effort(request.await.map(drop))
    }

    /// Shows "typing…" in the chat for a few seconds.
    pub async fn typing(&self) -> Effort {
        let mut request = self.bot.send_chat_action(self.chat_id, ChatAction::Typing);
        if let Some(thread_id) = self.thread_id {
            request = request.message_thread_id(thread_id);
        }
        effort(request.await.map(drop))
    }

    async fn html_request(&self, text: &str) -> Result<MessageId, RequestError> {
        let request = self.message(text).parse_mode(ParseMode::Html);
        request.await.map(|message| message.id)
    }

    async fn plain_request(&self, text: &str) -> Result<MessageId, RequestError> {
        self.message(text).await.map(|message| message.id)
    }

    fn message(
        &self,
        text: &str,
    ) -> teloxide::requests::JsonRequest<teloxide::payloads::SendMessage> {
        let mut request = self.bot.send_message(self.chat_id, text);
        if let Some(thread_id) = self.thread_id {
            request = request.message_thread_id(thread_id);
        }
        request
    }

    /// Calls `send` until it succeeds, honouring `retry_after` exactly and
    /// backing off on network errors. Other errors are returned at once.
    async fn retrying<F, Fut>(&self, mut send: F) -> Result<MessageId, RequestError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<MessageId, RequestError>>,
    {
        let mut backoff = NETWORK_BACKOFF;
        let mut attempt = 1;
        loop {
            let error = match send().await {
                Ok(id) => return Ok(id),
                Err(error) => error,
            };
            let wait = match &error {
                RequestError::RetryAfter(seconds) => seconds.duration(),
                RequestError::Network(_) => {
                    backoff *= 2;
                    backoff / 2
                }
                _ => return Err(error),
            };
            if attempt == SEND_ATTEMPTS {
                return Err(error);
            }
            debug!(%error, attempt, wait_ms = wait.as_millis() as u64, "retrying a reply");
            tokio::time::sleep(wait).await;
            attempt += 1;
        }
    }
}

/// Whether Telegram refused a message for its markup rather than its content.
fn is_markup_error(error: &ApiError) -> bool {
    match error {
        ApiError::CantParseEntities(_) => true,
        ApiError::Unknown(text) => text.contains("can't parse entities"),
        _ => false,
    }
}

fn effort(result: Result<(), RequestError>) -> Effort {
    match result {
        Ok(()) => Effort::Done,
        Err(RequestError::RetryAfter(seconds)) => Effort::Throttled(seconds.duration()),
        // The text is already what we wanted.
        Err(RequestError::Api(ApiError::MessageNotModified)) => Effort::Done,
        Err(RequestError::Api(ApiError::Unknown(text))) if text.contains("not modified") => {
            Effort::Done
        }
        Err(RequestError::Api(
            ApiError::MessageToEditNotFound
            | ApiError::MessageToDeleteNotFound
            | ApiError::MessageCantBeEdited,
        )) => Effort::Gone,
        Err(error) => {
            debug!(%error, "best-effort telegram call failed");
            Effort::Failed
        }
    }
}
