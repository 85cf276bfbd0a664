//! The message methods of the [`BotApi`](super::telegram_api::BotApi)
//! double: each checks its request like Telegram, changes the recorded chat
//! and returns the `Message` Telegram would.

use serde_json::{Value, json};

use super::telegram_api::{BotMessage, Chat, SentDocument, State, bot_user, unix_now};
use super::telegram_html::{self, Formatted, utf16_len};
use super::telegram_server::{Answer, ApiError, Upload, bad_request, int, text};

const MAX_TEXT_UNITS: usize = 4096;
const MAX_CAPTION_UNITS: usize = 1024;
const NOT_MODIFIED: &str = "message is not modified: specified new message content and \
    reply markup are exactly the same as a current content and reply markup of the message";
const CHAT_ACTIONS: &[&str] = &[
    "typing",
    "upload_photo",
    "record_video",
    "upload_video",
    "record_voice",
    "upload_voice",
    "upload_document",
    "choose_sticker",
    "find_location",
    "record_video_note",
    "upload_video_note",
];

/// Parses a text or caption with the request's `parse_mode`, then checks its
/// length; `too_long` is the detail Telegram gives for that method.
fn format_text(
    params: &Value,
    key: &str,
    max_units: usize,
    too_long: &str,
) -> Result<(Formatted, Option<String>), ApiError> {
    let raw = text(params, key).unwrap_or_default();
    let formatted = match text(params, "parse_mode") {
        None => Formatted {
            text: raw.clone(),
            entities: Vec::new(),
        },
        Some(mode) if mode.eq_ignore_ascii_case("html") => telegram_html::parse(&raw)
            .map_err(|detail| bad_request(&format!("can't parse entities: {detail}")))?,
        Some(_) => return Err(bad_request("unsupported parse_mode")),
    };
    if utf16_len(&formatted.text) > max_units {
        return Err(bad_request(too_long));
    }
    let html = text(params, "parse_mode").map(|_| raw);
    Ok((formatted, html))
}

/// The chat a request names; Telegram only knows chats a user wrote in.
fn chat<'a>(state: &'a mut State, params: &Value) -> Result<&'a mut Chat, ApiError> {
    let chat_id = int(params, "chat_id").ok_or_else(|| bad_request("chat_id is empty"))?;
    let chat = state
        .chats
        .get_mut(&chat_id)
        .ok_or_else(|| bad_request("chat not found"))?;

    let thread_id = int(params, "message_thread_id");
    let unknown_topic = thread_id.is_some_and(|t| chat.forum && !chat.threads.contains(&t));
    if unknown_topic {
        return Err(bad_request("message thread not found"));
    }
    Ok(chat)
}

/// The `Message` object Telegram returns for one of the bot's messages.
fn message_json(chat: &Chat, message: &BotMessage) -> Value {
    let entities: Vec<Value> = message.entities.iter().map(|e| e.to_json()).collect();
    let mut json = json!({
        "message_id": message.message_id, "date": unix_now(),
        "chat": chat.json, "from": bot_user(),
    });
    if let Some(thread) = message.thread_id {
        json["message_thread_id"] = json!(thread);
        json["is_topic_message"] = json!(true);
    }
    if message.edits > 0 {
        json["edit_date"] = json!(unix_now());
    }

    let Some(document) = &message.document else {
        json["text"] = json!(message.text);
        json["entities"] = json!(entities);
        return json;
    };
    let id = message.message_id;
    json["document"] = json!({
        "file_id": format!("document-{id}"), "file_unique_id": format!("unique-{id}"),
        "file_name": document.file_name, "file_size": document.bytes.len(),
    });
    if !message.text.is_empty() {
        json["caption"] = json!(message.text);
        json["caption_entities"] = json!(entities);
    }
    json
}

fn new_message(
    state: &mut State,
    params: &Value,
    formatted: Formatted,
    html: Option<String>,
) -> BotMessage {
    BotMessage {
        message_id: state.next_message_id(),
        thread_id: int(params, "message_thread_id"),
        versions: vec![formatted.text.clone()],
        text: formatted.text,
        html,
        entities: formatted.entities,
        edits: 0,
        deleted: false,
        document: None,
    }
}

pub(super) fn send_message(state: &mut State, params: &Value) -> Answer {
    let (formatted, html) = format_text(params, "text", MAX_TEXT_UNITS, "message is too long")?;
    if formatted.text.trim().is_empty() {
        return Err(bad_request("message text is empty"));
    }
    chat(state, params)?;

    let message = new_message(state, params, formatted, html);
    let chat = chat(state, params)?;
    let json = message_json(chat, &message);
    chat.bot_messages.push(message);
    Ok(json)
}

pub(super) fn edit_message_text(state: &mut State, params: &Value) -> Answer {
    let (formatted, html) = format_text(params, "text", MAX_TEXT_UNITS, "MESSAGE_TOO_LONG")?;
    if formatted.text.trim().is_empty() {
        return Err(bad_request("message text is empty"));
    }
    let message_id = int(params, "message_id");
    let chat = chat(state, params)?;
    if message_id.is_some_and(|id| chat.user_messages.contains(&id)) {
        return Err(bad_request("message can't be edited"));
    }

    let found = chat.bot_messages.iter_mut();
    let mut found = found.filter(|m| !m.deleted && Some(m.message_id) == message_id);
    let message = found
        .next()
        .ok_or_else(|| bad_request("message to edit not found"))?;
    if message.document.is_some() {
        return Err(bad_request("there is no text in the message to edit"));
    }
    if message.text == formatted.text && message.entities == formatted.entities {
        return Err(bad_request(NOT_MODIFIED));
    }

    message.versions.push(formatted.text.clone());
    message.text = formatted.text;
    message.entities = formatted.entities;
    message.html = html;
    message.edits += 1;
    let message = message.clone();
    Ok(message_json(chat, &message))
}

pub(super) fn delete_message(state: &mut State, params: &Value) -> Answer {
    let message_id = int(params, "message_id");
    let chat = chat(state, params)?;
    if let Some(id) = message_id.filter(|id| chat.user_messages.contains(id)) {
        chat.user_messages.remove(&id);
        return Ok(json!(true));
    }

    let found = chat.bot_messages.iter_mut();
    let mut found = found.filter(|m| !m.deleted && Some(m.message_id) == message_id);
    let message = found
        .next()
        .ok_or_else(|| bad_request("message to delete not found"))?;
    message.deleted = true;
    Ok(json!(true))
}

pub(super) fn send_chat_action(state: &mut State, params: &Value) -> Answer {
    chat(state, params)?;
    let action = text(params, "action").unwrap_or_default();
    if !CHAT_ACTIONS.contains(&action.as_str()) {
        return Err(bad_request("wrong parameter action in request"));
    }
    Ok(json!(true))
}

/// Stores the command list; names are 1-32 of `a-z0-9_`, descriptions 1-256.
pub(super) fn set_my_commands(state: &mut State, params: &Value) -> Answer {
    let listed = match &params["commands"] {
        Value::String(encoded) => serde_json::from_str(encoded).unwrap_or(Value::Null),
        other => other.clone(),
    };
    let listed = listed
        .as_array()
        .cloned()
        .ok_or_else(|| bad_request("parameter \"commands\" is required"))?;

    let mut commands = Vec::new();
    for entry in listed {
        let name = entry["command"].as_str().unwrap_or_default();
        let description = entry["description"].as_str().unwrap_or_default();
        let valid_name = name
            .chars()
            .all(|c| matches!(c, 'a'..='z' | '0'..='9' | '_'));
        if name.is_empty() || name.len() > 32 || !valid_name {
            return Err(bad_request("BOT_COMMAND_INVALID"));
        }
        if description.is_empty() || description.chars().count() > 256 {
            return Err(bad_request("BOT_COMMAND_DESCRIPTION_INVALID"));
        }
        commands.push((name.to_owned(), description.to_owned()));
    }
    state.commands = commands;
    Ok(json!(true))
}

/// Only uploads are kept: a file id or URL in `document` is refused.
///
/// The file is the part named `document`, or the part that `document`
/// names as `attach://{part}`, which is how teloxide sends it.
pub(super) fn send_document(state: &mut State, params: &Value, uploads: Vec<Upload>) -> Answer {
    let named = text(params, "document");
    let attached = named.as_deref().and_then(|n| n.strip_prefix("attach://"));
    let part = attached.unwrap_or("document");
    let upload = uploads.into_iter().find(|u| u.field == part);
    let Some(upload) = upload else {
        return Err(bad_request("there is no document in the request"));
    };
    if upload.bytes.is_empty() {
        return Err(bad_request("file must be non-empty"));
    }
    let (caption, html) = format_text(
        params,
        "caption",
        MAX_CAPTION_UNITS,
        "message caption is too long",
    )?;
    chat(state, params)?;

    let mut message = new_message(state, params, caption, html);
    message.document = Some(SentDocument {
        file_name: upload.file_name,
        bytes: upload.bytes.to_vec(),
    });
    let chat = chat(state, params)?;
    let json = message_json(chat, &message);
    chat.bot_messages.push(message);
    Ok(json)
}
