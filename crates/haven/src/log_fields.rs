//! How the log formats a span's or an event's fields: exactly as tracing-subscriber's default
//! formatter does, with a shortcut for fields it writes plainly.
//!
//! Why: every request opens a span (`request{request_id=...}`), and the fmt layer formats its
//! fields into text when the span is created, whether or not anything is logged in it. The default
//! formatter writes each field through nested `write!`s (the name "painted" by `nu_ansi_term` even
//! without colour): about 1,300 instructions for one request id, 2.5% of a GetItem's. Fields that
//! the default formatter writes as `name=value` with nothing else (no colour, no message, no
//! error) are written here directly; anything else (a message, whose control characters the
//! default formatter escapes, an error with its sources, colour on a terminal) is left to the
//! default formatter, so the text of every log line is unchanged.
//!
//! Events are formatted by [`LogEvents`]: the default format, with the request prefix a request's
//! span would add (`request{request_id=...}:`) written from the id `haven_server::request_log`
//! keeps for the task instead, so that a request opens no span (about 2,700 instructions each,
//! though requests almost never log).

use std::fmt::{self, Write as _};

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::format::{DefaultFields, Format, Full, Writer};
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// tracing-subscriber's default event format ([`Format`]), with the prefix of the request the
/// task answers (`haven_server::request_log`) where the request's span would show it. Without
/// colour only: on a terminal the server keeps the span (see `init_logging`).
pub struct LogEvents<T = SystemTime> {
    format: Format<Full, T>,
}

impl<T> LogEvents<T> {
    pub fn new(format: Format<Full, T>) -> LogEvents<T> {
        LogEvents { format }
    }
}

impl<S, N, T> FormatEvent<S, N> for LogEvents<T>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    T: FormatTime,
{
    fn format_event(
        &self,
        context: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let request = haven_server::request_log::current();
        let Some(request) = request.filter(|_| !writer.has_ansi_escapes()) else {
            return self.format.format_event(context, writer, event);
        };
        // The line as the default format writes it, then the span's text spliced in after the
        // level, where the outermost span's name goes (the level's text holds a space, which a
        // timestamp does not, so it is found nowhere before).
        let mut line = String::new();
        self.format
            .format_event(context, Writer::new(&mut line), event)?;
        let level = level_text(*event.metadata().level());
        let at = line.find(level).map_or(0, |start| start + level.len());
        // The spans' part ends with a space, after the innermost span.
        let space = if context.event_scope().is_some() {
            ""
        } else {
            " "
        };
        writer.write_str(&line[..at])?;
        write!(writer, "request{{request_id={}}}:{space}", request.as_str())?;
        writer.write_str(&line[at..])
    }
}

/// A level as the default format writes it without colour, with the space after it.
fn level_text(level: Level) -> &'static str {
    match level {
        Level::TRACE => "TRACE ",
        Level::DEBUG => "DEBUG ",
        Level::INFO => " INFO ",
        Level::WARN => " WARN ",
        Level::ERROR => "ERROR ",
    }
}

/// tracing-subscriber's [`DefaultFields`], faster where its output is plain `name=value` pairs.
#[derive(Default)]
pub struct LogFields {
    default: DefaultFields,
}

impl<'writer> FormatFields<'writer> for LogFields {
    fn format_fields<R: RecordFields>(&self, writer: Writer<'writer>, fields: R) -> fmt::Result {
        if writer.has_ansi_escapes() || !Plain::suits(&fields) {
            return self.default.format_fields(writer, fields);
        }
        let mut plain = Plain {
            writer,
            is_empty: true,
            result: Ok(()),
        };
        fields.record(&mut plain);
        plain.result
    }
}

/// Writes fields as the default formatter's `DefaultVisitor` does without colour, for fields
/// without a message or an error (see [`Plain::suits`]).
struct Plain<'writer> {
    writer: Writer<'writer>,
    is_empty: bool,
    result: fmt::Result,
}

impl Plain<'_> {
    /// True if the default formatter writes every one of `fields` as `name=value` (its `Debug`),
    /// separated by spaces: none is the message, which it escapes, nor an error, which it writes
    /// with its sources.
    fn suits(fields: &impl RecordFields) -> bool {
        let mut probe = Probe { suits: true };
        fields.record(&mut probe);
        probe.suits
    }
}

impl Visit for Plain<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if self.result.is_err() {
            return;
        }
        let name = field.name();
        // Metadata of events from the `log` crate, which the default formatter shows elsewhere.
        if name.starts_with("log.") {
            return;
        }
        // Fields are separated by a space.
        let pad = if std::mem::take(&mut self.is_empty) {
            ""
        } else {
            " "
        };
        let name = name.strip_prefix("r#").unwrap_or(name);
        let mut staged = Staged {
            writer: &mut self.writer,
            buffer: [0; STAGED_BYTES],
            len: 0,
        };
        self.result = write!(staged, "{pad}{name}={value:?}").and_then(|()| staged.flush());
    }
}

/// Room for a field such as a request id (`request_id=` and 36 characters).
const STAGED_BYTES: usize = 96;

/// A field's text gathered on the stack and written in one piece: a span's fields are written into
/// a `String` that starts empty, and writing the name, `=` and the value one after the other
/// grew it three times.
struct Staged<'a, 'writer> {
    writer: &'a mut Writer<'writer>,
    buffer: [u8; STAGED_BYTES],
    len: usize,
}

impl Staged<'_, '_> {
    fn flush(&mut self) -> fmt::Result {
        let text =
            std::str::from_utf8(&self.buffer[..self.len]).expect("whole strings were staged");
        self.len = 0;
        self.writer.write_str(text)
    }
}

impl fmt::Write for Staged<'_, '_> {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        let end = self.len + text.len();
        if end <= STAGED_BYTES {
            self.buffer[self.len..end].copy_from_slice(text.as_bytes());
            self.len = end;
            return Ok(());
        }
        self.flush()?;
        self.writer.write_str(text)
    }
}

/// Finds whether [`Plain`] writes the fields it visits as the default formatter would.
struct Probe {
    suits: bool,
}

impl Visit for Probe {
    fn record_debug(&mut self, field: &Field, _: &dyn fmt::Debug) {
        self.suits &= field.name() != "message";
    }

    fn record_error(&mut self, _: &Field, _: &(dyn std::error::Error + 'static)) {
        self.suits = false;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use tracing_subscriber::fmt::MakeWriter;

    use super::*;

    /// A log written into memory.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Captured {
        type Writer = Captured;

        fn make_writer(&'a self) -> Captured {
            self.clone()
        }
    }

    /// Logs spans and events with every kind of field, colour off and on.
    fn log_everything() {
        let request_id = "0f8fad5b-d9cb-469f-a165-70867728950e";
        let span = tracing::warn_span!("request", %request_id, r#type = "GetItem", attempt = 2);
        let _entered = span.enter();
        let inner = tracing::warn_span!("commit", table = "Music", log.target = "skipped");
        let _inner = inner.enter();
        let error = std::io::Error::other("disk full");
        tracing::warn!(items = 3, ok = true, "gave up \u{1b}[31m after {} tries", 3);
        tracing::error!(error = &error as &dyn std::error::Error, "write failed");
        tracing::warn!(name = "quoted \"value\"", bytes = ?b"\x00\x01", "plain");
        inner.record("table", "Renamed");
        tracing::warn!("after a record");
    }

    fn logged(fields: impl for<'w> FormatFields<'w> + Send + Sync + 'static, ansi: bool) -> String {
        let captured = Captured::default();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(captured.clone())
            .with_ansi(ansi)
            .without_time()
            .fmt_fields(fields)
            .finish();
        tracing::subscriber::with_default(subscriber, log_everything);
        String::from_utf8(captured.0.lock().unwrap().clone()).unwrap()
    }

    /// Events at several levels, outside any span and inside one.
    fn log_in_request() {
        tracing::error!(items = 3, "gave up");
        tracing::warn!("plain \u{1b}[31m");
        tracing::info!(ok = true, "noted");
        let inner = tracing::warn_span!("commit", table = "Music");
        let _inner = inner.enter();
        tracing::warn!(name = "quoted \"value\"", "inside");
    }

    fn logged_by<E>(events: E, log: impl FnOnce()) -> String
    where
        E: FormatEvent<tracing_subscriber::Registry, LogFields> + Send + Sync + 'static,
    {
        let captured = Captured::default();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(captured.clone())
            .with_ansi(false)
            .fmt_fields(LogFields::default())
            .event_format(events)
            .finish();
        tracing::subscriber::with_default(subscriber, log);
        String::from_utf8(captured.0.lock().unwrap().clone()).unwrap()
    }

    #[test]
    fn the_request_prefix_is_that_of_the_request_span() {
        let id = haven_server::request_log::RequestId::random();
        let in_span = logged_by(Format::default().without_time(), || {
            let request_id = id.as_str();
            tracing::warn_span!("request", %request_id).in_scope(log_in_request);
        });
        let in_task = logged_by(LogEvents::new(Format::default().without_time()), || {
            haven_server::request_log::REQUEST_ID.sync_scope(Some(id), log_in_request);
        });
        assert_eq!(in_task, in_span);
        assert_eq!(in_task.lines().count(), 4, "{in_task}");
        let prefix = format!("request{{request_id={}}}:", id.as_str());
        assert!(
            in_task.lines().all(|line| line.contains(&prefix)),
            "{in_task}"
        );
        // Outside a request, the default format's lines.
        let outside = logged_by(
            LogEvents::new(Format::default().without_time()),
            log_in_request,
        );
        assert_eq!(
            outside,
            logged_by(Format::default().without_time(), log_in_request)
        );
    }

    #[test]
    fn log_lines_are_those_of_the_default_formatter() {
        for ansi in [false, true] {
            let ours = logged(LogFields::default(), ansi);
            assert_eq!(ours, logged(DefaultFields::new(), ansi), "ansi: {ansi}");
            assert_eq!(ours.lines().count(), 4, "{ours}");
        }
        let plain = logged(LogFields::default(), false);
        assert!(
            plain.contains(
                "request{request_id=0f8fad5b-d9cb-469f-a165-70867728950e type=\"GetItem\" attempt=2}"
            ),
            "{plain}"
        );
        assert!(
            plain.contains("\\x1b[31m"),
            "messages stay escaped: {plain}"
        );
    }
}
