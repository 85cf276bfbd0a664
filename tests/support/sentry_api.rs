//! `SentryApi`: a double of Sentry's ingestion endpoint that keeps every
//! envelope the SDK posts, parsed and raw, with the request headers.
//!
//! Bodies must be uncompressed (the SDK's reqwest transport sends them so);
//! a compressed one is kept raw and answered 415 so the test notices.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::post;
use sentry::Envelope;
use sentry::protocol::{EnvelopeItem, Event, ItemContainer, Log, Transaction};
use serde_json::json;

use super::{serve, wait_for};

/// One POST to the double.
#[derive(Clone, Debug)]
pub struct Post {
    pub path: String,
    /// Header names are lowercase.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub envelope: Option<Envelope>,
    /// Why the body could not be read as an envelope.
    pub error: Option<String>,
}

impl Post {
    /// The first value of header `name` (lowercase).
    pub fn header(&self, name: &str) -> Option<&str> {
        let found = self.headers.iter().find(|(k, _)| k == name);
        found.map(|(_, v)| v.as_str())
    }
}

/// Handle on a running Sentry double; clones share the same server.
#[derive(Clone)]
pub struct SentryApi {
    port: u16,
    posts: Arc<Mutex<Vec<Post>>>,
}

impl SentryApi {
    /// Starts the double on a fresh loopback port.
    pub async fn start() -> Self {
        let posts = Arc::new(Mutex::new(Vec::new()));
        let router = Router::new()
            .route("/api/{project}/envelope/", post(receive))
            .route("/api/{project}/store/", post(receive))
            .with_state(posts.clone());
        let url = serve(router).await;
        let port = url.rsplit(':').next().and_then(|p| p.parse().ok());
        Self {
            port: port.expect("a port in the served URL"),
            posts,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Vec<Post>> {
        self.posts.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The base URL, for posting by hand.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The DSN that sends to this double, project 1.
    pub fn dsn(&self) -> String {
        format!("http://public@127.0.0.1:{}/1", self.port)
    }

    pub fn posts(&self) -> Vec<Post> {
        self.lock().clone()
    }

    pub fn envelopes(&self) -> Vec<Envelope> {
        let posts = self.posts().into_iter();
        posts.filter_map(|p| p.envelope).collect()
    }

    fn items(&self) -> Vec<EnvelopeItem> {
        let envelopes = self.envelopes().into_iter();
        envelopes
            .flat_map(|e| e.into_items().collect::<Vec<_>>())
            .collect()
    }

    pub fn transactions(&self) -> Vec<Transaction<'static>> {
        let items = self.items().into_iter();
        let found = items.filter_map(|item| match item {
            EnvelopeItem::Transaction(transaction) => Some(*transaction),
            _ => None,
        });
        found.collect()
    }

    /// Error and message events (not transactions).
    pub fn events(&self) -> Vec<Event<'static>> {
        let items = self.items().into_iter();
        let found = items.filter_map(|item| match item {
            EnvelopeItem::Event(event) => Some(*event),
            _ => None,
        });
        found.collect()
    }

    /// Sentry logs, from every log container item.
    pub fn logs(&self) -> Vec<Log> {
        let items = self.items().into_iter();
        let found = items.filter_map(|item| match item {
            EnvelopeItem::ItemContainer(ItemContainer::Logs(logs)) => Some(logs),
            _ => None,
        });
        found.flatten().collect()
    }

    /// Every body received, as one text to search (e.g. for a leaked prompt).
    pub fn raw_text(&self) -> String {
        let posts = self.posts().into_iter();
        let bodies = posts.map(|p| String::from_utf8_lossy(&p.body).into_owned());
        bodies.collect::<Vec<_>>().join("\n")
    }

    /// Waits until at least `n` transactions arrived.
    pub async fn wait_for_transactions(
        &self,
        n: usize,
        timeout: Duration,
    ) -> Vec<Transaction<'static>> {
        wait_for(&format!("{n} transactions"), timeout, || {
            let transactions = self.transactions();
            if transactions.len() >= n {
                return Ok(transactions);
            }
            let names = transactions.iter().map(|t| t.name.clone());
            Err(format!(
                "transactions: {:?}; {}",
                names.collect::<Vec<_>>(),
                self.summary()
            ))
        })
        .await
    }

    /// Waits until at least `n` error or message events arrived.
    pub async fn wait_for_events(&self, n: usize, timeout: Duration) -> Vec<Event<'static>> {
        wait_for(&format!("{n} events"), timeout, || {
            let events = self.events();
            if events.len() >= n {
                return Ok(events);
            }
            let messages = events.iter().map(|e| e.message.clone());
            Err(format!(
                "events: {:?}; {}",
                messages.collect::<Vec<_>>(),
                self.summary()
            ))
        })
        .await
    }

    /// Counts of posts and item types, for timeout messages.
    fn summary(&self) -> String {
        let items = self.items();
        let types = items.iter().map(|item| match item {
            EnvelopeItem::Event(_) => "event",
            EnvelopeItem::Transaction(_) => "transaction",
            EnvelopeItem::ItemContainer(_) => "container",
            _ => "other",
        });
        let errors = self.posts().into_iter().filter_map(|p| p.error);
        let types = types.collect::<Vec<_>>();
        format!(
            "items {types:?}; unreadable posts {:?}",
            errors.collect::<Vec<_>>()
        )
    }
}

async fn receive(
    State(posts): State<Arc<Mutex<Vec<Post>>>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut post = Post {
        path: uri.path().to_owned(),
        headers: headers
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_owned(),
                    String::from_utf8_lossy(v.as_bytes()).into(),
                )
            })
            .collect(),
        body: body.to_vec(),
        envelope: None,
        error: None,
    };

    let encoding = post
        .header(header::CONTENT_ENCODING.as_str())
        .unwrap_or("identity");
    let status = if encoding != "identity" {
        post.error = Some(format!("content-encoding {encoding} is not supported"));
        StatusCode::UNSUPPORTED_MEDIA_TYPE
    } else {
        match parse(&post.path, &post.body) {
            Ok(envelope) => {
                post.envelope = Some(envelope);
                StatusCode::OK
            }
            Err(error) => {
                post.error = Some(error);
                StatusCode::BAD_REQUEST
            }
        }
    };

    let id = post
        .envelope
        .as_ref()
        .and_then(|e| e.uuid().copied())
        .unwrap_or_default();
    posts
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(post);
    (status, Json(json!({ "id": id.simple().to_string() }))).into_response()
}

/// An envelope body, or a single JSON event posted to the old store endpoint.
fn parse(path: &str, body: &[u8]) -> Result<Envelope, String> {
    if !path.ends_with("/store/") {
        return Envelope::from_slice(body).map_err(|e| e.to_string());
    }
    let event: Event<'static> = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    let mut envelope = Envelope::new();
    envelope.add_item(event);
    Ok(envelope)
}
