//! Logging to journald in its native protocol, when systemd runs the broker.
//!
//! Under systemd, stderr is a stream to journald (`JOURNAL_STREAM` names it)
//! and every line there becomes one entry at the unit's default priority,
//! with the broker's own time stamp inside MESSAGE and a multi-line error
//! split into several entries. [`JournalLayer`] sends each event as one
//! datagram to journald's socket instead: PRIORITY from the level (error 3,
//! warn 4, info 5, debug 6, trace 7), MESSAGE, and every field of the event
//! and its spans as a field of its own (`UID`, `USER`, `SESSION`, `DB`,
//! `CODE`, `CAUSE`, …), so `journalctl -p err` and
//! `journalctl -u iam-pgbroker USER=jnovak` work.
//!
//! Field values are binary-safe in the native protocol and stay as they
//! are. MESSAGE is what `journalctl` prints on a terminal: it carries the
//! fields too (as the stderr format does), with every control character
//! escaped ([`iam_pgbroker_proto::display::escape_line`]), so text another
//! person wrote cannot drive the reader's terminal, and one event is one
//! line.
//!
//! The crate `tracing-journald` speaks the same protocol but writes MESSAGE
//! verbatim and gives no way to escape it; this is the small part of the
//! protocol the broker needs.

use iam_pgbroker_proto::display::escape_line;
use std::fmt::{self, Write as _};
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;

/// journald's socket for the native protocol.
const JOURNAL_SOCKET: &str = "/run/systemd/journal/socket";

/// A field value longer than this is cut: one datagram must carry the
/// whole entry (a statement in an error can be long).
const MAX_VALUE_BYTES: usize = 48 * 1024;

/// Whether stderr is the journal stream systemd set up for this process:
/// `JOURNAL_STREAM` is `DEVICE:INODE` of it (so a child whose stderr was
/// redirected does not log to the journal by inheriting the variable).
pub fn stderr_is_journal() -> bool {
    let Some(value) = std::env::var_os("JOURNAL_STREAM") else {
        return false;
    };
    let Some((dev, ino)) = value.to_str().and_then(|v| v.split_once(':')) else {
        return false;
    };
    let (Ok(dev), Ok(ino)) = (dev.parse::<u64>(), ino.parse::<u64>()) else {
        return false;
    };
    match nix::sys::stat::fstat(libc::STDERR_FILENO) {
        Ok(st) => st.st_dev == dev && st.st_ino == ino,
        Err(_) => false,
    }
}

/// A `tracing` layer that sends every event to journald.
pub struct JournalLayer {
    socket: UnixDatagram,
    identifier: String,
}

impl JournalLayer {
    /// A layer sending to journald's socket, or the error of opening one.
    pub fn new() -> std::io::Result<JournalLayer> {
        JournalLayer::to_socket(Path::new(JOURNAL_SOCKET))
    }

    /// A layer sending to `path` (tests use a socket of their own).
    pub fn to_socket(path: &Path) -> std::io::Result<JournalLayer> {
        let socket = UnixDatagram::unbound()?;
        socket.connect(path)?;
        Ok(JournalLayer {
            socket,
            identifier: "iam-pgbroker".into(),
        })
    }
}

/// The fields of a span, kept in its extensions for its events.
struct SpanFields(Vec<(String, String)>);

/// Collects an event's or span's fields, and its message.
#[derive(Default)]
struct Fields {
    message: Option<String>,
    fields: Vec<(String, String)>,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, value.to_owned());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.put(field, format!("{value:?}"));
    }
}

impl Fields {
    fn put(&mut self, field: &Field, value: String) {
        if field.name() == "message" {
            self.message = Some(value);
        } else {
            self.fields.push((field.name().to_owned(), value));
        }
    }
}

/// journald's field name for a `tracing` field: upper case, letters,
/// digits and `_` only, not starting with `_` (those are journald's own,
/// trusted fields) or a digit.
fn field_name(name: &str) -> String {
    let mut out: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect();
    if out.starts_with(|c: char| c == '_' || c.is_ascii_digit()) || out.is_empty() {
        out.insert(0, 'F');
    }
    out.truncate(64);
    out
}

/// One field in the binary-safe form: NAME, newline, length (u64 LE),
/// value, newline.
fn put(buf: &mut Vec<u8>, name: &str, value: &[u8]) {
    let value = &value[..value.len().min(MAX_VALUE_BYTES)];
    buf.extend_from_slice(name.as_bytes());
    buf.push(b'\n');
    buf.extend_from_slice(&(value.len() as u64).to_le_bytes());
    buf.extend_from_slice(value);
    buf.push(b'\n');
}

/// The entry for one event: what [`JournalLayer`] sends.
fn entry(
    level: &Level,
    target: &str,
    identifier: &str,
    spans: &[(String, String)],
    event: &Fields,
) -> Vec<u8> {
    let priority = match *level {
        Level::ERROR => "3",
        Level::WARN => "4",
        Level::INFO => "5",
        Level::DEBUG => "6",
        Level::TRACE => "7",
    };
    let mut message = event.message.clone().unwrap_or_default();
    for (name, value) in event.fields.iter().chain(spans) {
        let _ = write!(message, " {name}={value}");
    }
    let mut buf = Vec::with_capacity(256);
    put(&mut buf, "PRIORITY", priority.as_bytes());
    put(&mut buf, "SYSLOG_IDENTIFIER", identifier.as_bytes());
    put(&mut buf, "MESSAGE", escape_line(&message).as_bytes());
    put(&mut buf, "TARGET", target.as_bytes());
    for (name, value) in spans.iter().chain(&event.fields) {
        put(&mut buf, &field_name(name), value.as_bytes());
    }
    buf
}

impl<S> tracing_subscriber::Layer<S> for JournalLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(
        &self,
        attrs: &tracing::span::Attributes<'_>,
        id: &tracing::span::Id,
        ctx: Context<'_, S>,
    ) {
        let Some(span) = ctx.span(id) else { return };
        let mut fields = Fields::default();
        attrs.record(&mut fields);
        span.extensions_mut().insert(SpanFields(fields.fields));
    }

    fn on_record(
        &self,
        id: &tracing::span::Id,
        values: &tracing::span::Record<'_>,
        ctx: Context<'_, S>,
    ) {
        let Some(span) = ctx.span(id) else { return };
        let mut fields = Fields::default();
        values.record(&mut fields);
        let mut ext = span.extensions_mut();
        match ext.get_mut::<SpanFields>() {
            Some(existing) => existing.0.extend(fields.fields),
            None => ext.insert(SpanFields(fields.fields)),
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let mut spans = Vec::new();
        if let Some(scope) = ctx.event_scope(event) {
            for span in scope.from_root() {
                if let Some(fields) = span.extensions().get::<SpanFields>() {
                    spans.extend(fields.0.iter().cloned());
                }
            }
        }
        let mut fields = Fields::default();
        event.record(&mut fields);
        let meta = event.metadata();
        let buf = entry(
            meta.level(),
            meta.target(),
            &self.identifier,
            &spans,
            &fields,
        );
        // Nowhere to report a lost log line; stderr is the journal too.
        let _ = self.socket.send(&buf);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Parses the binary-safe form back into fields.
    fn parse(mut buf: &[u8]) -> Vec<(String, Vec<u8>)> {
        let mut out = Vec::new();
        while !buf.is_empty() {
            let nl = buf.iter().position(|b| *b == b'\n').unwrap();
            let name = String::from_utf8(buf[..nl].to_vec()).unwrap();
            let len = u64::from_le_bytes(buf[nl + 1..nl + 9].try_into().unwrap()) as usize;
            out.push((name, buf[nl + 9..nl + 9 + len].to_vec()));
            assert_eq!(buf[nl + 9 + len], b'\n');
            buf = &buf[nl + 10 + len..];
        }
        out
    }

    #[test]
    fn one_entry_with_priority_fields_and_an_escaped_message() {
        let fields = Fields {
            message: Some("reload refused:\nline 2 \x1b[2J".into()),
            fields: vec![("code".into(), "denied\x1b]0;x\x07".into())],
        };
        let spans = vec![
            ("uid".into(), "1004".into()),
            ("user".into(), "jnovák".into()),
        ];
        let got = parse(&entry(
            &Level::ERROR,
            "iam_pgbroker",
            "iam-pgbroker",
            &spans,
            &fields,
        ));
        let get = |n: &str| {
            got.iter()
                .find(|(k, _)| k == n)
                .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
                .unwrap_or_else(|| panic!("no {n} in {got:?}"))
        };
        assert_eq!(get("PRIORITY"), "3");
        let message = get("MESSAGE");
        assert!(
            !message.contains('\n') && !message.contains('\x1b'),
            "{message:?}"
        );
        assert!(message.starts_with("reload refused:"), "{message}");
        assert!(message.contains("user=jnovák"), "{message}");
        // Fields keep their bytes: the protocol is binary-safe.
        assert_eq!(get("CODE"), "denied\x1b]0;x\x07");
        assert_eq!(get("UID"), "1004");
    }

    #[test]
    fn field_names_are_journald_names() {
        assert_eq!(field_name("db_user"), "DB_USER");
        assert_eq!(field_name("_hidden"), "F_HIDDEN");
        assert_eq!(field_name("r#type"), "R_TYPE");
    }

    #[test]
    fn sends_to_a_socket() {
        use tracing_subscriber::layer::SubscriberExt;
        let dir = std::env::temp_dir().join(format!("iam-pgbroker-journal-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("journal.sock");
        let server = UnixDatagram::bind(&path).unwrap();
        let layer = JournalLayer::to_socket(&path).unwrap();
        let subscriber = tracing_subscriber::registry().with(layer);
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("client", uid = 7u32);
            let _g = span.enter();
            tracing::warn!(db = "czechidm", "slow");
        });
        let mut buf = vec![0u8; 65536];
        let n = server.recv(&mut buf).unwrap();
        let got = parse(&buf[..n]);
        let names: Vec<&str> = got.iter().map(|(k, _)| k.as_str()).collect();
        for want in ["PRIORITY", "MESSAGE", "UID", "DB"] {
            assert!(names.contains(&want), "{want} missing: {names:?}");
        }
        assert!(got.contains(&("PRIORITY".into(), b"4".to_vec())));
    }
}
