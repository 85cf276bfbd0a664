//! The client against a real HTTP receiver on loopback, and the per-update
//! hubs, sampling and error reports captured in process.

use std::net::TcpListener;
use std::sync::mpsc;
use std::time::Instant;

use axum::body::Bytes;
use axum::http::HeaderMap;
use sentry::protocol::{EnvelopeItem, Transaction};
use sentry::{Envelope, Level};

use super::*;
use crate::agent::run::RunError;

fn settings(dsn: &str, pii: bool) -> SentrySettings {
    SentrySettings {
        dsn: Some(dsn.to_owned()),
        environment: Some("test".into()),
        release: None,
        traces_sample_rate: 1.0,
        send_default_pii: pii,
    }
}

/// A Sentry stand-in on 127.0.0.1 that hands over every request it gets.
fn sentry_receiver() -> (String, mpsc::Receiver<(HeaderMap, Bytes)>) {
    let (sender, requests) = mpsc::channel();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let dsn = format!("http://public@{}/1", listener.local_addr().unwrap());
    listener.set_nonblocking(true).unwrap();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            let receive = move |headers: HeaderMap, body: Bytes| async move {
                let _ = sender.send((headers, body));
                "{}"
            };
            let app = axum::Router::new().fallback(receive);
            axum::serve(listener, app).await.unwrap();
        });
    });
    (dsn, requests)
}

fn client(options: ClientOptions) -> Arc<sentry::Client> {
    Arc::new(sentry::Client::from(options))
}

#[test]
fn sends_envelopes_labelled_as_envelopes() {
    let (dsn, requests) = sentry_receiver();
    let client = client(client_options(&settings(&dsn, false)).unwrap());
    let hub = Arc::new(Hub::new(Some(client.clone()), Default::default()));
    Hub::run(hub, || {
        sentry::capture_message("the bot is in trouble", Level::Error)
    });
    assert!(client.flush(Some(Duration::from_secs(5))));

    let (headers, body) = requests.recv_timeout(Duration::from_secs(5)).unwrap();
    let content_type = headers.get(CONTENT_TYPE).unwrap();
    assert_eq!(content_type, "application/x-sentry-envelope");
    let envelope = Envelope::from_slice(&body).unwrap();
    let event = envelope.event().unwrap();
    assert_eq!(event.message.as_deref(), Some("the bot is in trouble"));
    assert_eq!(event.environment.as_deref(), Some("test"));
}

#[test]
fn a_sentry_that_never_answers_costs_no_more_than_the_send_timeout() {
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let dsn = format!("http://public@{}/1", silent.local_addr().unwrap());
    let timeout = Duration::from_millis(300);
    let options = client_options(&settings(&dsn, false))
        .unwrap()
        .transport(EnvelopeTransport { timeout });
    let client = client(options);
    let hub = Arc::new(Hub::new(Some(client.clone()), Default::default()));
    Hub::run(hub, || {
        sentry::capture_message("anyone there", Level::Error)
    });

    let started = Instant::now();
    assert!(client.flush(Some(Duration::from_secs(10))));
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    drop(silent);
}

#[test]
fn is_off_without_a_dsn_or_with_a_broken_one() {
    assert!(init(&SentrySettings::default()).is_none());
    assert!(client_options(&settings("not a dsn", false)).is_none());
}

/// Runs `work` on a single-threaded runtime under a capturing client made
/// from our own options, and returns what was sent.
fn captured<F: Future<Output = ()>>(pii: bool, work: impl FnOnce() -> F) -> Vec<Envelope> {
    let options = client_options(&settings("https://public@sentry.invalid/1", pii)).unwrap();
    sentry::test::with_captured_envelopes_options(
        || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(work());
        },
        options,
    )
}

fn transactions(envelopes: &[Envelope]) -> Vec<Transaction<'static>> {
    let items = envelopes.iter().flat_map(|envelope| envelope.items());
    let transactions = items.filter_map(|item| match item {
        EnvelopeItem::Transaction(transaction) => Some((**transaction).clone()),
        _ => None,
    });
    transactions.collect()
}

fn events(envelopes: &[Envelope]) -> Vec<Event<'static>> {
    envelopes
        .iter()
        .filter_map(|e| e.event().cloned())
        .collect()
}

fn op_of(transaction: &Transaction) -> String {
    match transaction.contexts.get("trace") {
        Some(Context::Trace(trace)) => trace.op.clone().unwrap_or_default(),
        _ => String::new(),
    }
}

#[test]
fn samples_commands_at_a_tenth_of_the_rate_of_prompts() {
    let envelopes = captured(false, || async {
        let sender = sender(1, 10);
        for _ in 0..50 {
            traced_update(UpdateKind::Message, &sender, |_| async {}).await;
        }
        for _ in 0..500 {
            let stop = UpdateKind::Command("stop".into());
            traced_update(stop, &sender, |_| async {}).await;
        }
    });

    let sent = transactions(&envelopes);
    let count = |op: &str, name: &str| {
        let is = |t: &&Transaction| op_of(t) == op && t.name.as_deref() == Some(name);
        sent.iter().filter(is).count()
    };
    assert_eq!(count(MESSAGE_OP, "handle_message"), 50);
    let commands = count(COMMAND_OP, "handle_command");
    assert!(
        (10..=100).contains(&commands),
        "{commands} of 500 commands sent"
    );
    assert_eq!(sent.len(), 50 + commands);
}

fn sender(user_id: u64, chat_id: i64) -> Sender {
    Sender {
        user_id,
        chat_id,
        username: Some(format!("user{user_id}")),
    }
}

/// One update that reports a failure after letting others run.
async fn failing_update(kind: UpdateKind, sender: Sender) {
    let origin = sender.clone();
    traced_update(kind, &origin, |_transaction| async move {
        for _ in 0..3 {
            tokio::task::yield_now().await;
        }
        let error = RunError::Reported {
            message: format!("failed for {}", sender.user_id),
        };
        let failure = FailureContext {
            user_id: sender.user_id,
            username: sender.username.clone(),
            message: "what is in /etc? my key is sk-ant-api03-c2VjcmV0c2VjcmV0c2VjcmV0".into(),
            ..Default::default()
        };
        capture_failure(&error, &failure);
    })
    .await;
}

#[test]
fn concurrent_updates_keep_their_own_tags_and_traces() {
    let envelopes = captured(false, || async {
        tokio::join!(
            failing_update(UpdateKind::Message, sender(1, 10)),
            failing_update(UpdateKind::Message, sender(2, 20)),
        );
    });

    let transactions = transactions(&envelopes);
    let events = events(&envelopes);
    assert_eq!((transactions.len(), events.len()), (2, 2));
    for (user_id, chat_id) in [("1", "10"), ("2", "20")] {
        let has_tags =
            |tags: &Map<String, String>| tags.get("user_id").map(String::as_str) == Some(user_id);
        let transaction = transactions.iter().find(|t| has_tags(&t.tags)).unwrap();
        let event = events.iter().find(|e| has_tags(&e.tags)).unwrap();
        assert_eq!(transaction.tags["chat_id"], chat_id);
        assert_eq!(event.tags["chat_id"], chat_id);
        assert!(
            event.exception.values[0]
                .value
                .as_ref()
                .unwrap()
                .ends_with(user_id)
        );

        let Some(Context::Trace(trace)) = transaction.contexts.get("trace") else {
            panic!("no trace");
        };
        let Some(Context::Trace(linked)) = event.contexts.get("trace") else {
            panic!("event not linked to a trace");
        };
        assert_eq!(linked.trace_id, trace.trace_id);
        assert_eq!(trace.status, Some(SpanStatus::Ok));
    }
}

#[test]
fn failure_reports_carry_the_bots_context_and_text_only_with_pii() {
    for pii in [false, true] {
        let envelopes = captured(pii, || failing_update(UpdateKind::Message, sender(7, 70)));
        let event = events(&envelopes).pop().unwrap();
        let sent = serde_json::to_string(&event).unwrap();

        let user = event.user.as_ref().unwrap();
        assert_eq!(user.id.as_deref(), Some("7"));
        assert_eq!(user.username.is_some(), pii);
        assert!(event.contexts.contains_key("session"));
        assert!(event.contexts.contains_key("bot"));
        let Some(Context::Other(message)) = event.contexts.get("message") else {
            panic!("no message context");
        };
        assert!(message["length"].as_u64().unwrap() > 0);
        assert_eq!(message.contains_key("preview"), pii);
        assert_eq!(sent.contains("what is in /etc?"), pii);
        assert!(!sent.contains("c2VjcmV0c2VjcmV0c2VjcmV0"), "{sent}");
    }
}

#[test]
fn scrubs_secrets_from_error_messages() {
    let envelopes = captured(false, || async {
        let error = RunError::Reported {
            message: "curl -H 'Authorization: Bearer abcdefgh12345678' failed".into(),
        };
        capture_failure(&error, &FailureContext::default());
    });

    let event = events(&envelopes).pop().unwrap();
    let value = event.exception.values[0].value.clone().unwrap();
    assert!(value.contains(&format!("Bearer {REDACTED}")), "{value}");
    assert!(!value.contains("abcdefgh12345678"));
}

#[test]
fn traced_updates_can_be_spawned_on_a_multi_threaded_runtime() {
    fn spawnable<T: Send + 'static>(_: T) {}
    let sender = sender(1, 10);
    spawnable(async move { traced_update(UpdateKind::Message, &sender, |_| async {}).await });
}
