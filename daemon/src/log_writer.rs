//! The broker's log lines, safe for whoever reads them.
//!
//! Log lines carry text other people wrote — a process name, a database
//! user name, a statement in an error — and an administrator reads them in
//! a terminal (`journalctl`, `tail -f`). [`EscapingWriter`] shows every
//! control character, CR and line feed included, and every bidirectional
//! override as a visible escape, so one event is one line and no line can
//! redraw the reader's screen. Each `write` from the formatter is one
//! event; its final line feed is the only one kept.

use iam_pgbroker_proto::display::escape_except;
use std::io::{self, Write};

/// Escapes what a terminal would act on, then writes to `inner`.
pub struct EscapingWriter<W> {
    inner: W,
    /// Keep ESC: the formatter's own colours (its fields escape ESC
    /// themselves) when writing to a terminal.
    keep_esc: bool,
}

impl<W: Write> EscapingWriter<W> {
    /// A writer for `inner`; `colours` when the formatter writes ANSI
    /// colours of its own.
    pub fn new(inner: W, colours: bool) -> Self {
        EscapingWriter {
            inner,
            keep_esc: colours,
        }
    }
}

impl<W: Write> Write for EscapingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let text = String::from_utf8_lossy(buf);
        let (body, end) = match text.strip_suffix('\n') {
            Some(body) => (body, "\n"),
            None => (&*text, ""),
        };
        let keep: &[char] = if self.keep_esc { &['\x1b'] } else { &[] };
        let line = escape_except(body, keep);
        self.inner.write_all(line.as_bytes())?;
        self.inner.write_all(end.as_bytes())?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn written(colours: bool, event: &str) -> String {
        let mut out = Vec::new();
        EscapingWriter::new(&mut out, colours)
            .write_all(event.as_bytes())
            .unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn one_event_is_one_line_and_nothing_drives_the_terminal() {
        let event = "WARN refused process=\"x\rINFO all good\n\u{1b}[2J\u{202e}\" uid=1001\n";
        let shown = written(false, event);
        assert_eq!(
            shown,
            "WARN refused process=\"x\\rINFO all good\\n\\x1b[2J\\u{202e}\" uid=1001\n"
        );
        assert_eq!(shown.lines().count(), 1);
    }

    #[test]
    fn colours_stay_when_the_formatter_writes_them() {
        assert_eq!(
            written(true, "\u{1b}[32mINFO\u{1b}[0m a\rb\n"),
            "\u{1b}[32mINFO\u{1b}[0m a\\rb\n"
        );
    }
}
