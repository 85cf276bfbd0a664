//! The Sentry double, fed by the real Sentry SDK and by hand.

use std::time::Duration;

use sentry::{ClientOptions, TransactionContext};

use crate::support::sentry_api::SentryApi;

const TIMEOUT: Duration = Duration::from_secs(10);

// Multi-threaded: dropping the guard blocks this thread until the SDK's
// transport is answered, and the double must keep serving meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn envelopes_from_the_sdk_arrive_parsed_and_raw() {
    let sentry = SentryApi::start().await;
    let options = ClientOptions::new()
        .dsn(&sentry.dsn())
        .traces_sample_rate(1.0);
    let guard = sentry::init(options);

    let context = TransactionContext::new("invoke_agent claude", "gen_ai.invoke_agent");
    let transaction = sentry::start_transaction(context);
    let child = transaction.start_child("gen_ai.chat", "chat claude-test");
    child.set_data("gen_ai.request.model", "claude-test".into());
    child.finish();
    transaction.finish();
    sentry::capture_message("marker-7f3a in an event", sentry::Level::Error);
    drop(guard);

    let transactions = sentry.wait_for_transactions(1, TIMEOUT).await;
    let events = sentry.wait_for_events(1, TIMEOUT).await;
    assert_eq!(transactions[0].name.as_deref(), Some("invoke_agent claude"));
    assert_eq!(transactions[0].spans[0].op.as_deref(), Some("gen_ai.chat"));
    assert_eq!(
        events[0].message.as_deref(),
        Some("marker-7f3a in an event")
    );
    assert!(sentry.raw_text().contains("marker-7f3a"));
    assert!(sentry.posts().iter().all(|p| p.path == "/api/1/envelope/"));
}

#[tokio::test]
async fn headers_are_kept_and_unreadable_bodies_are_refused() {
    let sentry = SentryApi::start().await;
    let url = format!("{}/api/1/envelope/", sentry.url());
    let client = reqwest::Client::new();
    let envelope = "{}\n{\"type\":\"event\"}\n{\"message\":\"by hand\"}\n";

    let accepted = client
        .post(&url)
        .header("content-type", "application/x-sentry-envelope")
        .body(envelope)
        .send()
        .await
        .expect("post");
    let gzipped = client
        .post(&url)
        .header("content-encoding", "gzip")
        .body("x");
    let gzipped = gzipped.send().await.expect("post");
    let garbage = client
        .post(&url)
        .body("not an envelope")
        .send()
        .await
        .expect("post");

    assert_eq!(accepted.status(), 200);
    assert_eq!(gzipped.status(), 415);
    assert_eq!(garbage.status(), 400);
    let posts = sentry.posts();
    assert_eq!(
        posts[0].header("content-type"),
        Some("application/x-sentry-envelope")
    );
    assert_eq!(sentry.events()[0].message.as_deref(), Some("by hand"));
    assert!(posts[1].error.is_some() && posts[2].error.is_some());
}
