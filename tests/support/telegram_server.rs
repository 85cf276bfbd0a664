//! The HTTP side of the [`BotApi`](super::telegram_api::BotApi) double:
//! reading a request, recording it, answering in Telegram's envelope, and the
//! methods about the bot itself and long polling. Message methods live in
//! [`telegram_methods`](super::telegram_methods).

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::{Bytes, to_bytes};
use axum::extract::{FromRequest, Multipart, Request, State as ServerState};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Json, Response};
use serde_json::{Map, Value, json};

use super::MAX_BODY_BYTES;
use super::telegram_api::{BOT_TOKEN, Call, Failure, Shared, State, bot_user};
use super::telegram_methods;

const CONFLICT: &str = "Conflict: terminated by other getUpdates request; make sure that only \
    one bot instance is running";

/// An error answer: Telegram's `error_code`, `description` and retry delay.
pub(super) struct ApiError {
    code: u16,
    description: String,
    retry_after: Option<u32>,
}

pub(super) type Answer = Result<Value, ApiError>;

pub(super) fn error(code: u16, description: impl Into<String>) -> ApiError {
    ApiError {
        code,
        description: description.into(),
        retry_after: None,
    }
}

pub(super) fn bad_request(detail: &str) -> ApiError {
    let detail = detail.strip_prefix("Bad Request: ").unwrap_or(detail);
    error(400, format!("Bad Request: {detail}"))
}

impl From<Failure> for ApiError {
    fn from(failure: Failure) -> Self {
        match failure {
            Failure::RetryAfter(secs) => ApiError {
                retry_after: Some(secs),
                ..error(429, format!("Too Many Requests: retry after {secs}"))
            },
            Failure::BadRequest(detail) => bad_request(&detail),
            Failure::Forbidden(detail) => error(403, format!("Forbidden: {detail}")),
            Failure::ServerError => error(500, "Internal Server Error"),
        }
    }
}

fn respond(answer: Answer) -> Response {
    let failure = match answer {
        Ok(result) => return Json(json!({"ok": true, "result": result})).into_response(),
        Err(failure) => failure,
    };
    let mut body = json!({
        "ok": false, "error_code": failure.code, "description": failure.description,
    });
    if let Some(secs) = failure.retry_after {
        body["parameters"] = json!({ "retry_after": secs });
    }
    let status = StatusCode::from_u16(failure.code).unwrap_or(StatusCode::BAD_REQUEST);
    (status, Json(body)).into_response()
}

/// A file field of a multipart request.
pub(super) struct Upload {
    pub(super) field: String,
    pub(super) file_name: String,
    pub(super) bytes: Bytes,
}

/// Answers any request to the double.
pub(super) async fn handle(
    ServerState(shared): ServerState<Arc<Shared>>,
    request: Request,
) -> Response {
    let path = request.uri().path().to_owned();
    let route = path
        .strip_prefix("/bot")
        .and_then(|rest| rest.split_once('/'));
    let Some((token, method)) = route else {
        return respond(Err(error(404, "Not Found")));
    };
    if token != BOT_TOKEN {
        return respond(Err(error(401, "Unauthorized")));
    }

    let method = lower_camel(method);
    let (params, uploads) = match read_params(request).await {
        Ok(read) => read,
        Err(detail) => return respond(Err(bad_request(&detail))),
    };
    let failure = record(&shared, &method, &params);
    if let Some(failure) = failure {
        return respond(Err(failure.into()));
    }

    let answer = match method.to_ascii_lowercase().as_str() {
        "getme" => Ok(get_me()),
        "getwebhookinfo" => Ok(webhook_info(&shared.lock())),
        "deletewebhook" => Ok(delete_webhook(&mut shared.lock(), &params)),
        "getupdates" => get_updates(&shared, &params).await,
        "sendmessage" => telegram_methods::send_message(&mut shared.lock(), &params),
        "editmessagetext" => telegram_methods::edit_message_text(&mut shared.lock(), &params),
        "deletemessage" => telegram_methods::delete_message(&mut shared.lock(), &params),
        "sendchataction" => telegram_methods::send_chat_action(&mut shared.lock(), &params),
        "setmycommands" => telegram_methods::set_my_commands(&mut shared.lock(), &params),
        "senddocument" => telegram_methods::send_document(&mut shared.lock(), &params, uploads),
        _ => {
            shared.lock().unknown_methods.push(method);
            Err(error(404, "Not Found"))
        }
    };
    respond(answer)
}

/// Records the call and takes the scripted failure for it, if any.
fn record(shared: &Shared, method: &str, params: &Value) -> Option<Failure> {
    let mut state = shared.lock();
    let at = Instant::now();
    state.calls.push(Call {
        method: method.to_owned(),
        params: params.clone(),
        at,
    });

    let mut scripted = state.failures.iter();
    let index = scripted.position(|(m, _)| m.eq_ignore_ascii_case(method))?;
    Some(state.failures.remove(index).1)
}

/// `SendMessage` as teloxide writes it becomes `sendMessage`, as documented.
fn lower_camel(method: &str) -> String {
    let mut chars = method.chars();
    let first = chars.next().map(|c| c.to_ascii_lowercase());
    first.into_iter().chain(chars).collect()
}

async fn read_params(request: Request) -> Result<(Value, Vec<Upload>), String> {
    let content_type = request.headers().get(header::CONTENT_TYPE);
    let content_type = content_type.and_then(|v| v.to_str().ok()).unwrap_or("");
    if content_type.starts_with("multipart/form-data") {
        return read_multipart(request).await;
    }

    let body = to_bytes(request.into_body(), MAX_BODY_BYTES).await;
    let body = body.map_err(|e| format!("reading the body: {e}"))?;
    if body.is_empty() {
        return Ok((json!({}), Vec::new()));
    }
    let params = serde_json::from_slice(&body).map_err(|e| format!("body is not JSON: {e}"))?;
    Ok((params, Vec::new()))
}

async fn read_multipart(request: Request) -> Result<(Value, Vec<Upload>), String> {
    let mut form = Multipart::from_request(request, &())
        .await
        .map_err(|e| e.to_string())?;
    let mut params = Map::new();
    let mut uploads = Vec::new();
    while let Some(field) = form.next_field().await.map_err(|e| e.to_string())? {
        let name = field.name().unwrap_or_default().to_owned();
        let Some(file_name) = field.file_name().map(str::to_owned) else {
            let text = field.text().await.map_err(|e| e.to_string())?;
            params.insert(name, Value::String(text));
            continue;
        };
        let bytes = field.bytes().await.map_err(|e| e.to_string())?;
        params.insert(
            name.clone(),
            json!({"file_name": file_name, "size": bytes.len()}),
        );
        uploads.push(Upload {
            field: name,
            file_name,
            bytes,
        });
    }
    Ok((Value::Object(params), uploads))
}

/// An integer parameter, given as a JSON number or, in multipart, as text.
pub(super) fn int(params: &Value, key: &str) -> Option<i64> {
    match &params[key] {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

pub(super) fn text(params: &Value, key: &str) -> Option<String> {
    params[key].as_str().map(str::to_owned)
}

fn get_me() -> Value {
    let mut me = bot_user();
    me["can_join_groups"] = json!(true);
    me["can_read_all_group_messages"] = json!(false);
    me["supports_inline_queries"] = json!(false);
    me["can_connect_to_business"] = json!(false);
    me["has_main_web_app"] = json!(false);
    me
}

fn webhook_info(state: &State) -> Value {
    let pending = state.pending.len();
    json!({"url": "", "has_custom_certificate": false, "pending_update_count": pending})
}

fn delete_webhook(state: &mut State, params: &Value) -> Value {
    let drop_pending = &params["drop_pending_updates"];
    if drop_pending == &json!(true) || drop_pending == "true" {
        state.pending.clear();
    }
    json!(true)
}

/// Long polling: confirms updates below `offset`, then waits up to `timeout`
/// seconds for one at or above it. A newer getUpdates ends this one with 409.
async fn get_updates(shared: &Shared, params: &Value) -> Answer {
    let offset = int(params, "offset").unwrap_or(0);
    let limit = int(params, "limit").unwrap_or(100).clamp(1, 100) as usize;
    let timeout = Duration::from_secs(int(params, "timeout").unwrap_or(0).max(0) as u64);
    let deadline = tokio::time::Instant::now() + timeout;

    let generation = {
        let mut state = shared.lock();
        state.poller += 1;
        if offset > 0 {
            state
                .pending
                .retain(|u| u["update_id"].as_i64() >= Some(offset));
        }
        state.poller
    };
    shared.wake_pollers.notify_waiters();

    loop {
        // Created before looking, so a push between the look and the wait
        // still wakes this poller.
        let woken = shared.wake_pollers.notified();
        {
            let state = shared.lock();
            if state.poller != generation {
                return Err(error(409, CONFLICT));
            }
            let due = state
                .pending
                .iter()
                .filter(|u| u["update_id"].as_i64() >= Some(offset));
            let due: Vec<Value> = due.take(limit).cloned().collect();
            if !due.is_empty() || tokio::time::Instant::now() >= deadline {
                return Ok(Value::Array(due));
            }
        }
        tokio::select! {
            _ = woken => {}
            _ = tokio::time::sleep_until(deadline) => {}
        }
    }
}
