//! How whatever a request logs names the request id its client is answered with.
//!
//! By default the request runs in a tracing span, `request{request_id=...}`, which any subscriber
//! shows in front of the events logged inside it. A span costs every request about 2,700
//! instructions (5.8% of an in-memory GetItem: the registry's slot, the fmt layer formatting its
//! field into a string when the span opens, entering and leaving it at every poll, closing it),
//! though a request almost never logs anything. So a process whose log formatter writes that
//! prefix itself (the `haven` binary's, `haven::log_fields::LogEvents`, after calling
//! [`log_request_ids_without_spans`]) has the request's id kept in a task-local instead, read only
//! when an event is written: the same text, at almost no cost. Embedders (`haven-testing`, other
//! subscribers) keep the span.

use std::sync::atomic::{AtomicBool, Ordering};

/// A request's id, a random UUID formatted on the stack: the response's `x-amzn-RequestId`, the
/// logs and the audit record borrow it (formatting it into a `String` through `Display` cost a
/// request an allocation and the formatter's machinery).
#[derive(Clone, Copy)]
pub struct RequestId([u8; uuid::fmt::Hyphenated::LENGTH]);

impl RequestId {
    /// A new random id.
    pub fn random() -> RequestId {
        let mut text = [0; uuid::fmt::Hyphenated::LENGTH];
        uuid::Uuid::new_v4().hyphenated().encode_lower(&mut text);
        RequestId(text)
    }

    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).expect("a UUID is ASCII")
    }
}

tokio::task_local! {
    /// The id of the request the current task answers, while the log formatter writes it.
    pub static REQUEST_ID: Option<RequestId>;
}

/// Whether the process's log formatter writes the request prefix itself.
static WITHOUT_SPANS: AtomicBool = AtomicBool::new(false);

/// Tells the server that the process's log formatter writes `request{request_id=...}:` itself for
/// events logged while [`current`] names a request, as the request's span would have been shown.
pub fn log_request_ids_without_spans() {
    WITHOUT_SPANS.store(true, Ordering::Relaxed);
}

/// The request the current task answers, when the log formatter writes its id (see above).
pub fn current() -> Option<RequestId> {
    REQUEST_ID.try_with(|id| *id).ok().flatten()
}

/// How the request `request_id` names itself in what it logs: in its span, or, when the log
/// formatter writes the prefix itself and a `WARN` span here would be enabled (as the span would),
/// with its id in the task-local the formatter reads. The caller wraps the request's future in
/// both (the span then `Span::none()`, or the id `None`), made in place: one wrapper type, and no
/// move of the future into a function of this module first (an `async fn` taking it kept it twice
/// in the request's future, 14 KB instead of 8, which hyper copies when it boxes it).
pub(crate) fn naming(request_id: RequestId) -> (tracing::Span, Option<RequestId>) {
    if !WITHOUT_SPANS.load(Ordering::Relaxed) {
        let request_id = request_id.as_str();
        let span = tracing::warn_span!(target: "haven_server", "request", %request_id);
        return (span, None);
    }
    let enabled = tracing::span_enabled!(target: "haven_server", tracing::Level::WARN);
    (tracing::Span::none(), enabled.then_some(request_id))
}
