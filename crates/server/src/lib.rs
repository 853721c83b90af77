//! The HTTP front end: DynamoDB's JSON 1.0 protocol over HTTP/1.1.
//!
//! A request is `POST /` with `X-Amz-Target: DynamoDB_20120810.<Operation>` (or
//! `DynamoDBStreams_20120810.<Operation>` for DynamoDB Streams, on the same port) and a JSON body. The
//! checks run in the order DynamoDB applies them (method and content type, JSON syntax, target,
//! authentication header), then the operation runs in [`haven_api::Service`]. Every response carries
//! `x-amzn-RequestId` and `x-amz-crc32` (the CRC32 of the body, which SDKs verify). Bodies may be
//! gzip-compressed both ways (`encoding`). Any other `GET` is answered as DynamoDB's endpoints answer
//! it (`healthy: dynamodb.<region>.amazonaws.com `), which load balancers and health checks probe.
//!
//! Bad requests must cost little. With `--auth` a request is authenticated first, from its head
//! alone, before its body is read (the whole signature when the client declared its payload's
//! hash), so a forged or unsigned request costs the server a header parse and an HMAC, not 16 MB
//! and a JSON parse; the body is checked against the signature as soon as it has arrived, before
//! it is parsed. Every body and every parsed body is charged to a server-wide memory budget
//! (`budget`) before it is allocated. Status pages (`/dns/status`) are behind authentication too;
//! `/health` stays open for health checks, and so do `/metrics` (Prometheus scrapers cannot sign;
//! `haven-metrics`) and the web console's static files (`console`: the console signs its own API
//! calls with the key its user gives it), each unless turned off (`Exposed`).

pub mod audit;
mod auth;
mod body;
mod budget;
mod console;
pub mod cors;
pub mod credentials;
mod encoding;
mod intake;
mod json;
mod limits;
pub mod request_log;
pub mod sigv4;
pub mod tenancy;
pub mod tls;

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{HeaderMap, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tracing::Instrument;

use haven_api::{DynamoError, Service};

pub use credentials::{AccessKey, Authenticator, KeyStore};
pub use limits::{DEFAULT_REQUEST_MEMORY, Limits, listen, raise_open_file_limit};
pub use tenancy::Tenancy;

use request_log::RequestId;

/// One read-only JSON report (see [`StatusPages`]).
pub type StatusPage = Arc<dyn Fn() -> serde_json::Value + Send + Sync>;

/// Read-only JSON reports served on `GET <path>` next to the API, such as the binary's
/// `/dns/status`; the server knows nothing of what they report.
#[derive(Clone, Default)]
pub struct StatusPages(Arc<Vec<(&'static str, StatusPage)>>);

impl StatusPages {
    pub fn new(pages: Vec<(&'static str, StatusPage)>) -> StatusPages {
        StatusPages(Arc::new(pages))
    }

    fn find(&self, path: &str) -> Option<&StatusPage> {
        let (_, page) = self.0.iter().find(|(page_path, _)| *page_path == path)?;
        Some(page)
    }
}

/// Header names looked up as constants: a name given as a string is parsed on every lookup.
const X_AMZ_TARGET: hyper::header::HeaderName =
    hyper::header::HeaderName::from_static("x-amz-target");
const X_AMZ_CRC32: hyper::header::HeaderName =
    hyper::header::HeaderName::from_static("x-amz-crc32");
const X_AMZN_REQUEST_ID: hyper::header::HeaderName =
    hyper::header::HeaderName::from_static("x-amzn-requestid");
const JSON_CONTENT_TYPE: &str = "application/x-amz-json-1.0";
/// hyper's read buffer per connection, and so the largest request head (beyond it: 431). hyper's
/// own default, about 400 KB, is reached by every connection streaming a large body, including
/// one whose body is being discarded: 200 of them held 80 MB. DynamoDB's heads are a few hundred
/// bytes.
const CONNECTION_BUFFER_BYTES: usize = 64 * 1024;

/// Serves DynamoDB requests on `listener` until `shutdown` resolves, then stops accepting, lets
/// in-flight requests finish, and returns.
pub async fn run(listener: TcpListener, service: Arc<Service>, shutdown: impl Future<Output = ()>) {
    run_with_auth(listener, service, None, shutdown).await
}

/// [`run`], verifying every request's SigV4 signature when `auth` is given.
pub async fn run_with_auth(
    listener: TcpListener,
    service: Arc<Service>,
    auth: Option<Arc<Authenticator>>,
    shutdown: impl Future<Output = ()>,
) {
    let security = Security {
        auth,
        ..Security::default()
    };
    run_with_limits(listener, service, security, Limits::default(), shutdown).await
}

/// [`run_with_auth`] with explicit [`Limits`] (in-flight requests, queueing time, connections,
/// timeouts).
pub async fn run_with_limits(
    listener: TcpListener,
    service: Arc<Service>,
    security: Security,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
) {
    let pages = StatusPages::default();
    run_with_status_pages(listener, service, security, limits, pages, shutdown).await
}

/// [`run_with_limits`], also answering `GET` on the paths of `pages` with their JSON.
pub async fn run_with_status_pages(
    listener: TcpListener,
    service: Arc<Service>,
    security: Security,
    limits: Limits,
    pages: StatusPages,
    shutdown: impl Future<Output = ()>,
) {
    let tenancy = Tenancy::from(service);
    run_tenancy(listener, tenancy, security, limits, pages, shutdown).await
}

/// [`run_with_status_pages`] with the tables each request sees chosen by `tenancy`.
pub async fn run_tenancy(
    listener: TcpListener,
    tenancy: Tenancy,
    security: Security,
    limits: Limits,
    pages: StatusPages,
    shutdown: impl Future<Output = ()>,
) {
    let admission = limits::Admission::new(&limits);
    let intake = intake::Intake::new(admission.capacity(), limits.queue_timeout);
    let front = Arc::new(Front {
        tenancy,
        security,
        admission,
        pages,
        body_timeout: limits.body_read_timeout,
        budget: budget::Budget::new(limits.request_memory, limits.queue_timeout),
    });
    let connection_slots = Arc::new(tokio::sync::Semaphore::new(limits.max_connections.max(1)));
    // At the connection cap, idle connections are asked to close to make room for new ones.
    let shed_idle = Arc::new(tokio::sync::Notify::new());
    let (closing_tx, closing_rx) = watch::channel(false);
    let mut connections = tokio::task::JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else {
                    // Out of file descriptors (or a connection reset before it was accepted):
                    // pause rather than spin, so the connections being served can finish.
                    tokio::time::sleep(limits::ACCEPT_ERROR_PAUSE).await;
                    continue;
                };
                let slot = connection_slots.clone().try_acquire_owned();
                if slot.is_err() {
                    shed_idle.notify_waiters();
                }
                let slots = connection_slots.clone();
                let shed = shed_idle.clone();
                let _ = stream.set_nodelay(true);
                let front = front.clone();
                let limits = limits.clone();
                let ticket = intake.ticket();
                let mut closing = closing_rx.clone();
                connections.spawn(async move {
                    let _slot = match slot {
                        Ok(slot) => slot,
                        // At the cap: wait briefly for a shed idle connection's slot, else close.
                        Err(_) => match tokio::time::timeout(limits::SHED_WAIT, slots.acquire_owned()).await {
                            Ok(Ok(slot)) => slot,
                            _ => return,
                        },
                    };
                    let _open = haven_metrics::Level::Connections.hold();
                    let activity = limits::Activity::new();
                    let stream = intake::GatedStream::new(stream, ticket.clone(), activity.clone(), limits.header_read_timeout);
                    let Some(stream) = tls::handshake(front.security.tls.as_deref(), stream, limits.header_read_timeout).await else {
                        return;
                    };
                    // The handshake's bytes were not a request head; the head timer starts afresh.
                    activity.end_head();
                    let tracked = activity.clone();
                    let body_timeout = limits.body_read_timeout;
                    let handler = hyper::service::service_fn(move |request| {
                        let busy = tracked.begin(&ticket);
                        let grant = ticket.grant();
                        // Boxed: the request's future is large (every operation's state), and hyper
                        // moves the service future several times; a box moves as a pointer.
                        let answer = Box::pin(handle_audited(front.clone(), grant, request));
                        async move {
                            let Answer { response, unread } = answer.await;
                            match unread {
                                // The request is answered and gives its grant back; its
                                // connection stays busy (read straight through, not gated by
                                // intake) until the rest of the body is discarded.
                                Some(body) => {
                                    let busy = busy.answered();
                                    tokio::spawn(async move {
                                        body::discard(body, body_timeout).await;
                                        drop(busy);
                                    });
                                }
                                None => drop(busy),
                            }
                            Ok::<_, Infallible>(response)
                        }
                    });
                    let connection = hyper::server::conn::http1::Builder::new()
                        .timer(TokioTimer::new())
                        .keep_alive(true)
                        // Heads are timed by the stream, from their first byte: hyper's timer would
                        // also run while a kept-alive connection waits for its next request.
                        .header_read_timeout(None)
                        .max_buf_size(CONNECTION_BUFFER_BYTES)
                        .serve_connection(TokioIo::new(stream), handler);
                    tokio::pin!(connection);
                    let idle = tokio::time::sleep(limits.idle_timeout);
                    tokio::pin!(idle);
                    loop {
                        tokio::select! {
                            _ = connection.as_mut() => break,
                            _ = closing.changed() => {
                                // Finish the request in progress, then close instead of keeping alive.
                                connection.as_mut().graceful_shutdown();
                                let _ = connection.await;
                                break;
                            }
                            () = idle.as_mut() => match activity.idle_remaining(limits.idle_timeout) {
                                // No request in progress for the whole idle timeout: close.
                                None => break,
                                Some(remaining) => idle.as_mut().reset(tokio::time::Instant::now() + remaining),
                            },
                            () = shed.notified() => {
                                if activity.idle_remaining(limits::SHED_IDLE_AFTER).is_none() {
                                    break;
                                }
                            }
                        }
                    }
                });
            }
            () = &mut shutdown => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    // Shutdown: new connections are refused from here on; each open connection finishes the
    // request it is serving (its client gets the answer) and closes instead of staying alive.
    drop(listener);
    let _ = closing_tx.send(true);
    let drained = tokio::time::timeout(limits.shutdown_timeout, async {
        while connections.join_next().await.is_some() {}
    });
    if drained.await.is_err() {
        // Requests still unanswered at the deadline are dropped: none was acknowledged, and a
        // write already handed to the engine is still committed when the engine shuts down.
        tracing::warn!(
            connections = connections.len(),
            "shutdown deadline reached: closing connections with requests in progress"
        );
        connections.shutdown().await;
    }
}

/// A response, and the body of its request when it was answered before the body was read (to be
/// discarded: see `body`).
struct Answer {
    response: Response<Full<Bytes>>,
    unread: Option<Incoming>,
}

impl From<Response<Full<Bytes>>> for Answer {
    fn from(response: Response<Full<Bytes>>) -> Answer {
        Answer {
            response,
            unread: None,
        }
    }
}

/// What a request asks for, from its method and path.
#[derive(Clone, Copy)]
enum Route<'a> {
    /// `GET /health`: open to anyone, always.
    Health,
    /// `GET /metrics`: open (a Prometheus scraper cannot sign), unless turned off.
    Metrics,
    /// `GET /console...`: the web console's static assets, unless turned off.
    Console,
    /// `GET` of a status page: with `--auth`, only for a key with full access.
    Page(&'a StatusPage),
    /// `POST`: a DynamoDB operation.
    Api,
    /// Any other `GET`: answered `healthy: dynamodb.<region>.amazonaws.com `, as DynamoDB's
    /// endpoints answer it (load balancers and container health checks probe it).
    Other,
    /// Any other method: DynamoDB's bare XML 404.
    NotApi,
}

impl<'a> Route<'a> {
    fn of(parts: &hyper::http::request::Parts, front: &'a Front) -> Route<'a> {
        let (pages, exposed) = (&front.pages, front.security.exposed);
        let path = parts.uri.path();
        match parts.method {
            Method::POST => Route::Api,
            Method::GET if path == "/health" => Route::Health,
            Method::GET if path == "/metrics" && exposed.metrics => Route::Metrics,
            Method::GET if console::is_console(path) && exposed.console => Route::Console,
            Method::GET => pages
                .find(parts.uri.path())
                .map_or(Route::Other, Route::Page),
            _ => Route::NotApi,
        }
    }
}

/// [`handle`] for a server that answers browsers: preflights, and the allowed origin on every
/// answer.
async fn handle_cors(
    front: &Front,
    cors: &cors::Cors,
    grant: Option<intake::Grant>,
    request: Request<Incoming>,
    declared: Option<u64>,
    facts: &mut audit::Facts,
) -> Answer {
    if let Some(headers) = cors.answer_preflight(request.method(), request.headers()) {
        let request_id = RequestId::random();
        let mut response = plain(StatusCode::OK, "", request_id.as_str());
        response.headers_mut().extend(headers);
        let (parts, body) = request.into_parts();
        return answered_unread(response, &parts.headers, body);
    }
    let origin = request.headers().get(hyper::header::ORIGIN).cloned();
    let mut answer = handle(front, grant, request, declared, facts).await;
    if let Some(origin) = origin {
        cors.allow(&origin, answer.response.headers_mut());
    }
    answer
}

/// Answers one request whose head declared `declared` bytes of body (its `Content-Length`).
async fn handle(
    front: &Front,
    grant: Option<intake::Grant>,
    request: Request<Incoming>,
    declared: Option<u64>,
    facts: &mut audit::Facts,
) -> Answer {
    let id = RequestId::random();
    let request_id = id.as_str();
    let (parts, body) = request.into_parts();
    // A declared length over the cap is refused before a byte of the body is read.
    if declared.is_some_and(|length| length > body::MAX_REQUEST_BYTES as u64) {
        return plain(StatusCode::PAYLOAD_TOO_LARGE, "", request_id).into();
    }
    let operation = operation_of(&parts.headers);
    facts.operation = operation.map(haven_api::Operation::name);
    let exchange = Exchange {
        front,
        parts: &parts,
        id,
        request_id,
        route: Route::of(&parts, front),
        operation,
    };
    if let Some(response) = exchange.open_answer() {
        return answered_unread(response, &parts.headers, body);
    }
    let signer = match exchange.authenticate_head() {
        Ok(signer) => signer,
        Err(error) => {
            let response = exchange.refusal(&error, facts);
            return answered_unread(response, &parts.headers, body);
        }
    };
    let mut charge = front.budget.charge();
    let declared = declared.map(|length| length as usize);
    let bytes = match exchange.read_body(body, declared, &mut charge, facts).await {
        Ok(bytes) => bytes,
        Err(answer) => return answer,
    };
    let key = match signer.map(|signer| signer.finish(&bytes)).transpose() {
        Ok(key) => key,
        Err(error) => return exchange.refusal(&error, facts).into(),
    };
    let bytes = match exchange.decode_body(bytes, &mut charge, facts).await {
        Ok(bytes) => bytes,
        Err(response) => return response.into(),
    };
    match exchange.route {
        Route::Page(page) => exchange.status_page(page, key.as_ref(), facts),
        // The open routes were answered without their body.
        _ => {
            exchange
                .serve_api(grant, &bytes, key, &mut charge, facts)
                .await
        }
    }
    .into()
}

/// One request being answered: what the steps of [`handle`] share.
struct Exchange<'a> {
    front: &'a Front,
    parts: &'a hyper::http::request::Parts,
    id: RequestId,
    /// `id` as text, borrowed from the caller's copy.
    request_id: &'a str,
    route: Route<'a>,
    /// The operation `X-Amz-Target` names, read once.
    operation: Option<haven_api::Operation>,
}

impl Exchange<'_> {
    /// The answer to a request that needs neither a key nor its body (which is not read).
    fn open_answer(&self) -> Option<Response<Full<Bytes>>> {
        match self.route {
            // Probed by every node's DNS health checks: listening means serving.
            Route::Health => {
                let body = serde_json::json!({"status": "serving"}).to_string();
                Some(json_response(
                    StatusCode::OK,
                    body.into_bytes(),
                    self.request_id,
                ))
            }
            Route::Metrics => Some(metrics_response(self.request_id)),
            Route::Console => Some(console::asset(self.parts.uri.path(), self.request_id)),
            Route::Other => {
                let region = self.front.tenancy.region();
                let body = format!("healthy: dynamodb.{region}.amazonaws.com ");
                Some(checked(StatusCode::OK, body.into_bytes(), self.request_id))
            }
            Route::NotApi => Some(unknown_operation(self.request_id)),
            Route::Page(_) | Route::Api => None,
        }
    }

    /// With `--auth`, who sent the request, settled from its head before its body is read; None
    /// without `--auth`.
    fn authenticate_head(&self) -> Result<Option<credentials::Signer>, DynamoError> {
        let Some(auth) = &self.front.security.auth else {
            return Ok(None);
        };
        let parts = self.parts;
        auth.verify_head(parts.method.as_str(), &parts.uri, &parts.headers)
            .map(Some)
    }

    /// The answer to an authentication or authorization failure: DynamoDB's 400 for the API, an
    /// HTTP 403 for a page.
    fn refusal(&self, error: &DynamoError, facts: &mut audit::Facts) -> Response<Full<Bytes>> {
        let status = match self.route {
            Route::Page(_) => StatusCode::FORBIDDEN,
            _ => StatusCode::from_u16(error.status()).unwrap_or(StatusCode::BAD_REQUEST),
        };
        error_response_with(status, error, self.request_id, facts)
    }

    /// The whole body within the body timeout, or the answer when it cannot be read.
    async fn read_body(
        &self,
        mut body: Incoming,
        declared: Option<usize>,
        charge: &mut budget::Charge,
        facts: &mut audit::Facts,
    ) -> Result<Bytes, Answer> {
        let read = body::read(&mut body, declared, charge);
        let unread = match tokio::time::timeout(self.front.body_timeout, read).await {
            Ok(Ok(bytes)) => return Ok(bytes),
            Ok(Err(body::Unread::TooLarge)) => {
                plain(StatusCode::PAYLOAD_TOO_LARGE, "", self.request_id)
            }
            Ok(Err(body::Unread::Refused(error))) => error_response(&error, self.request_id, facts),
            Ok(Err(body::Unread::Malformed)) => {
                return Err(plain(StatusCode::BAD_REQUEST, "", self.request_id).into());
            }
            Err(_) => return Err(plain(StatusCode::REQUEST_TIMEOUT, "", self.request_id).into()),
        };
        Err(answered_unread(unread, &self.parts.headers, body))
    }

    /// The body as sent, or inflated when it is gzip-compressed (after its signature, which
    /// covers the bytes sent, was checked): see `encoding`.
    async fn decode_body(
        &self,
        bytes: Bytes,
        charge: &mut budget::Charge,
        facts: &mut audit::Facts,
    ) -> Result<Bytes, Response<Full<Bytes>>> {
        let request_id = self.request_id;
        match encoding::RequestCoding::of(&self.parts.headers) {
            encoding::RequestCoding::Identity => Ok(bytes),
            encoding::RequestCoding::Gzip => match encoding::inflate(&bytes, charge).await {
                Ok(inflated) => Ok(inflated),
                Err(body::Unread::TooLarge) => {
                    Err(plain(StatusCode::PAYLOAD_TOO_LARGE, "", request_id))
                }
                Err(body::Unread::Refused(error)) => Err(error_response(&error, request_id, facts)),
                Err(body::Unread::Malformed) => {
                    let message = "The request body is not valid gzip data".to_owned();
                    let error = DynamoError::Serialization(message);
                    Err(error_response(&error, request_id, facts))
                }
            },
            encoding::RequestCoding::Unsupported(coding) => {
                tracing::debug!(coding, "refused a request body in an unsupported coding");
                Err(plain(StatusCode::UNSUPPORTED_MEDIA_TYPE, "", request_id))
            }
        }
    }

    /// A status page; with `--auth` only for a key without a policy (full access): a page is about
    /// the whole server, which a key limited to some tables must not see.
    fn status_page(
        &self,
        page: &StatusPage,
        key: Option<&AccessKey>,
        facts: &mut audit::Facts,
    ) -> Response<Full<Bytes>> {
        if let Some(key) = key.filter(|key| key.policy.is_some()) {
            let error = DynamoError::AccessDenied(format!(
                "User: {} is not authorized to read {}: status pages are answered only to keys with full access (no policy)",
                key.principal().user,
                self.parts.uri.path()
            ));
            return error_response_with(StatusCode::FORBIDDEN, &error, self.request_id, facts);
        }
        json_response(
            StatusCode::OK,
            page().to_string().into_bytes(),
            self.request_id,
        )
    }

    /// A `POST`: content type, intake refusal, an execution slot, room in the memory budget for
    /// the parsed body, then [`dispatch`]'s checks and the operation.
    async fn serve_api(
        &self,
        grant: Option<intake::Grant>,
        body: &Bytes,
        key: Option<AccessKey>,
        charge: &mut budget::Charge,
        facts: &mut audit::Facts,
    ) -> Response<Full<Bytes>> {
        let (parts, request_id) = (self.parts, self.request_id);
        let content_type = header(&parts.headers, hyper::header::CONTENT_TYPE).unwrap_or_default();
        if !body.is_empty()
            && content_type != JSON_CONTENT_TYPE
            && content_type != "application/json"
        {
            return unknown_operation(request_id);
        }
        if grant == Some(intake::Grant::Refuse) {
            // Read only to tell the client the server is overloaded (see `intake`).
            return error_response(&DynamoError::Throttling, request_id, facts);
        }
        // Admitted only now, so a slow body holds a connection but never an execution slot.
        let reserved = grant == Some(intake::Grant::Serve);
        let _permit = match self.front.admission.admit(reserved).await {
            Ok(permit) => permit,
            Err(error) => return error_response(&error, request_id, facts),
        };
        let _in_flight = haven_metrics::Level::InFlight.hold();
        if let Err(error) = charge.grow(json::parsed_size(body)).await {
            return error_response(&error, request_id, facts);
        }
        let caller = match key {
            Some(key) => Caller::Key(key),
            None => Caller::Anyone,
        };
        // Whatever the operation logs (a write giving up on contention, a storage failure) names
        // the request id the client was answered with.
        let tenancy = &self.front.tenancy;
        let services =
            |headers: &HeaderMap, signer: Option<&AccessKey>| tenancy.service(headers, signer);
        let (span, id) = request_log::naming(self.id);
        let outcome = request_log::REQUEST_ID
            .scope(
                id,
                dispatch_noting(services, caller, self.operation, parts, body, facts),
            )
            .instrument(span)
            .await;
        match outcome {
            Ok(reply) => json_response(StatusCode::OK, reply.to_json_bytes(), request_id),
            Err(error) => error_response(&error, request_id, facts),
        }
    }
}

/// A request answered from its head: the rest of its body is to be discarded, unless the client
/// waits for `100 Continue` before sending it (it then never sends it, and the connection closes).
fn answered_unread(response: Response<Full<Bytes>>, headers: &HeaderMap, body: Incoming) -> Answer {
    use hyper::body::Body as _;
    let unread = !body.is_end_stream() && !body::expects_continue(headers);
    Answer {
        response,
        unread: unread.then_some(body),
    }
}

/// Who sent a request, as far as the server knows before decoding it.
enum Caller {
    /// Authentication is off: any well-formed Authorization header is accepted.
    Anyone,
    /// The key whose signature the server has verified.
    Key(AccessKey),
}

/// Decodes one request and runs it, checking in DynamoDB's order: JSON syntax, `X-Amz-Target`,
/// the Authorization header, then the operation's own request shape and constraints in
/// [`Service::call_with`]. With `auth` the request is authenticated (header and signature) first,
/// as the server does before it even reads the body. Every admitted request goes through here;
/// the request decoder's fuzz target (`fuzz/`) and property test drive it directly.
pub async fn dispatch(
    service: &Service,
    auth: Option<&Authenticator>,
    parts: &hyper::http::request::Parts,
    body: &Bytes,
) -> Result<haven_api::Reply, DynamoError> {
    let caller = match auth {
        Some(auth) => {
            Caller::Key(auth.verify(parts.method.as_str(), &parts.uri, &parts.headers, body)?)
        }
        None => Caller::Anyone,
    };
    let mut facts = audit::Facts::default();
    dispatch_noting(
        |_: &HeaderMap, _: Option<&AccessKey>| Ok(service),
        caller,
        operation_of(&parts.headers),
        parts,
        body,
        &mut facts,
    )
    .await
}

/// [`dispatch`] after authentication, of the `operation` the request's `X-Amz-Target` names, noting
/// what the audit log records about the request in `facts`; `services` chooses the service that
/// answers (see [`Tenancy`]) once the Authorization header is known to be well formed and the
/// signing key, if any, known.
async fn dispatch_noting<S: std::ops::Deref<Target = Service>>(
    services: impl FnOnce(&HeaderMap, Option<&AccessKey>) -> Result<S, DynamoError>,
    caller: Caller,
    operation: Option<haven_api::Operation>,
    parts: &hyper::http::request::Parts,
    body: &Bytes,
    facts: &mut audit::Facts,
) -> Result<haven_api::Reply, DynamoError> {
    let headers = &parts.headers;
    // Without authentication or an audit record, an item operation's body is read straight into
    // its input (`haven_api::Decoded`); one that does not read cleanly takes the general path
    // below, which finds its error in DynamoDB's order.
    let fast = matches!(caller, Caller::Anyone) && !facts.record_tables;
    if let Some(decoded) = operation
        .filter(|_| fast)
        .and_then(|operation| haven_api::Decoded::read(operation, body))
    {
        auth::check_authorization(headers)?;
        return services(headers, None)?.call_decoded(decoded).await;
    }
    let request: Option<serde_json::Value> = if body.is_empty() {
        None
    } else {
        Some(json::parse(body)?)
    };
    let operation = operation.ok_or(DynamoError::UnknownOperation)?;
    let signer = match caller {
        Caller::Anyone => {
            auth::check_authorization(headers)?;
            None
        }
        Caller::Key(key) => Some(key),
    };
    let service = services(headers, signer.as_ref())?;
    facts.access_key_id = signer.as_ref().map(|key| key.id.clone());
    let request = request.ok_or_else(|| DynamoError::Serialization(String::new()))?;
    if facts.record_tables {
        facts.tables = haven_api::access::tables(&service, operation, &request);
    }
    let context = haven_api::RequestContext {
        host: header(headers, hyper::header::HOST).map(str::to_owned),
        principal: signer.as_ref().map(credentials::AccessKey::principal),
    };
    service.call_with(operation.name(), request, &context).await
}

/// The operation `X-Amz-Target` names, if it is one.
fn operation_of(headers: &HeaderMap) -> Option<haven_api::Operation> {
    header(headers, X_AMZ_TARGET).and_then(haven_api::Operation::from_target)
}

fn header(headers: &HeaderMap, name: impl hyper::header::AsHeaderName) -> Option<&str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn error_response(
    error: &DynamoError,
    request_id: &str,
    facts: &mut audit::Facts,
) -> Response<Full<Bytes>> {
    let status = StatusCode::from_u16(error.status()).unwrap_or(StatusCode::BAD_REQUEST);
    error_response_with(status, error, request_id, facts)
}

/// DynamoDB's error body for `error`, with `status`.
fn error_response_with(
    status: StatusCode,
    error: &DynamoError,
    request_id: &str,
    facts: &mut audit::Facts,
) -> Response<Full<Bytes>> {
    facts.error = Some(error.name());
    let mut body = serde_json::Map::new();
    body.insert("__type".into(), error.type_name().into());
    if let Some(message) = error.message().filter(|m| !m.is_empty()) {
        body.insert("message".into(), message.into());
    }
    body.extend(haven_api::error_details(error));
    if matches!(error, DynamoError::InternalServerError) {
        tracing::error!(request_id, "answered InternalServerError");
    }
    json_response(
        status,
        serde_json::to_vec(&body).expect("a Value serialises"),
        request_id,
    )
}

fn json_response(status: StatusCode, body: Vec<u8>, request_id: &str) -> Response<Full<Bytes>> {
    let mut response = checked(status, body, request_id);
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        HeaderValue::from_static(JSON_CONTENT_TYPE),
    );
    response
}

/// DynamoDB's answer to a request that is not a JSON `POST`: a bare XML 404.
fn unknown_operation(request_id: &str) -> Response<Full<Bytes>> {
    let body = b"<UnknownOperationException/>\n".to_vec();
    checked(StatusCode::NOT_FOUND, body, request_id)
}

/// A response with its body's `x-amz-crc32`, which the SDKs verify.
fn checked(status: StatusCode, body: Vec<u8>, request_id: &str) -> Response<Full<Bytes>> {
    let crc = crc32fast::hash(&body);
    let mut response = plain(status, "", request_id);
    *response.body_mut() = Full::new(Bytes::from(body));
    response
        .headers_mut()
        .insert(X_AMZ_CRC32, HeaderValue::from(crc));
    response
}

fn plain(status: StatusCode, body: &'static str, request_id: &str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        X_AMZN_REQUEST_ID,
        HeaderValue::from_str(request_id).expect("uuid is ASCII"),
    );
    response
}

/// `response` gzip-compressed when it is long enough to gain from it (see `encoding`), with its
/// `x-amz-crc32` over the compressed bytes, as DynamoDB computes it.
async fn compressed(response: Response<Full<Bytes>>) -> Response<Full<Bytes>> {
    use http_body_util::BodyExt;
    let (mut parts, body) = response.into_parts();
    let Ok(body) = body.collect().await.map(|collected| collected.to_bytes());
    parts.headers.insert(
        hyper::header::VARY,
        HeaderValue::from_static("accept-encoding"),
    );
    if body.len() < encoding::COMPRESS_AT_LEAST {
        return Response::from_parts(parts, Full::new(body));
    }
    let gzipped = encoding::deflate(&body);
    let headers = &mut parts.headers;
    headers.insert(
        hyper::header::CONTENT_ENCODING,
        HeaderValue::from_static("gzip"),
    );
    headers.insert(X_AMZ_CRC32, HeaderValue::from(crc32fast::hash(&gzipped)));
    Response::from_parts(parts, Full::new(Bytes::from(gzipped)))
}

/// What every request of one server shares.
struct Front {
    tenancy: Tenancy,
    security: Security,
    admission: limits::Admission,
    pages: StatusPages,
    body_timeout: std::time::Duration,
    budget: budget::Budget,
}

/// What the server enforces and records beyond HTTP: authentication and authorization (`auth`),
/// TLS on every connection (`tls`), the audit log (`audit`), and the origins browser scripts may
/// call from (`cors`); each off when None. And what it shows besides the API (`exposed`).
#[derive(Clone, Default)]
pub struct Security {
    pub auth: Option<Arc<Authenticator>>,
    pub tls: Option<Arc<tls::TlsFiles>>,
    pub audit: Option<Arc<audit::AuditLog>>,
    pub exposed: Exposed,
    pub cors: Option<Arc<cors::Cors>>,
}

/// The pages served besides the API and `/health`, each turned off by a flag of `haven serve`.
#[derive(Clone, Copy, Default)]
pub struct Exposed {
    /// `GET /metrics`: Prometheus metrics (`haven-metrics`).
    pub metrics: bool,
    /// `GET /console`: the web console (`console`).
    pub console: bool,
}

/// `/metrics`: every metric in the text format Prometheus scrapes.
fn metrics_response(request_id: &str) -> Response<Full<Bytes>> {
    let mut response = plain(StatusCode::OK, "", request_id);
    *response.body_mut() = Full::new(Bytes::from(haven_metrics::render()));
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        HeaderValue::from_static(haven_metrics::CONTENT_TYPE),
    );
    response
}

/// [`handle`], then the request's metrics and its audit record when there is an audit log.
/// Health checks, status pages, metrics and the console (GET) are neither counted nor recorded.
async fn handle_audited(
    front: Arc<Front>,
    grant: Option<intake::Grant>,
    request: Request<Incoming>,
) -> Answer {
    let started = std::time::Instant::now();
    let recorded = front
        .security
        .audit
        .as_ref()
        .filter(|_| request.method() != Method::GET);
    let mut facts = audit::Facts {
        record_tables: recorded.is_some(),
        ..audit::Facts::default()
    };
    let is_api = request.method() == Method::POST;
    let declared = header(request.headers(), hyper::header::CONTENT_LENGTH)
        .and_then(|length| length.parse::<u64>().ok());
    let gzip = encoding::accepts_gzip(request.headers());
    let mut answer = match &front.security.cors {
        Some(cors) => handle_cors(&front, cors, grant, request, declared, &mut facts).await,
        None => handle(&front, grant, request, declared, &mut facts).await,
    };
    if gzip {
        answer.response = compressed(answer.response).await;
    }
    let response = &answer.response;
    let status = response.status();
    let result = match facts.error {
        Some(error) => error,
        None if status.is_success() => "ok",
        None => status.canonical_reason().unwrap_or("error"),
    };
    if is_api {
        let response_bytes = hyper::body::Body::size_hint(response.body()).lower();
        haven_metrics::request(
            facts.operation.unwrap_or("Unknown"),
            result,
            started.elapsed().as_secs_f64(),
            (declared.unwrap_or(0), response_bytes),
        );
    }
    if let Some(log) = recorded {
        log.record(audit::Record {
            request_id: header(response.headers(), X_AMZN_REQUEST_ID).unwrap_or_default(),
            result,
            status: status.as_u16(),
            latency: started.elapsed(),
            facts,
        });
    }
    answer
}
