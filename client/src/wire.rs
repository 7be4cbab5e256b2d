//! Reading frames: one JSON object per line, with a hard length limit.

use crate::connection::MAX_FRAME_BYTES;
use crate::Error;
use iam_pgbroker_proto::Response;
use std::io::{self, BufRead, Read};

/// Reads one frame. `doing` names what the client was waiting for, for the
/// error message.
pub(crate) fn read_frame(reader: &mut impl BufRead, doing: &str) -> Result<Response, Error> {
    let mut line = Vec::new();
    read_raw(reader, &mut line, doing)?;
    decode(&line)
}

/// Reads one frame's line into `line`, undecoded (without its newline):
/// a connection reuses one buffer for all of them.
pub(crate) fn read_raw(
    reader: &mut impl BufRead,
    line: &mut Vec<u8>,
    doing: &str,
) -> Result<(), Error> {
    match read_line(reader, line, MAX_FRAME_BYTES) {
        Ok(true) => {}
        Ok(false) => {
            return Err(Error::io(
                doing,
                io::Error::new(io::ErrorKind::UnexpectedEof, "end of stream"),
            ))
        }
        Err(LineError::TooLong) => {
            return Err(Error::protocol(format!(
                "a frame from the broker is longer than {MAX_FRAME_BYTES} bytes"
            )))
        }
        Err(LineError::Io(e)) => return Err(Error::io(doing, e)),
    }
    Ok(())
}

/// Decodes one frame's line.
pub(crate) fn decode(line: &[u8]) -> Result<Response, Error> {
    Response::decode(line).map_err(|e| {
        let shown = String::from_utf8_lossy(&line[..line.len().min(200)]).into_owned();
        Error::protocol(format!("cannot decode a frame ({e}): {shown}"))
    })
}

/// `frame` as the answer to request `id`. An `error` frame for it — or
/// without an id: the broker could not read the request's — becomes the
/// broker's error; a frame for another request is a protocol error (the
/// socket is out of step).
pub(crate) fn answer(frame: Response, id: u64, doing: &str) -> Result<Response, Error> {
    match frame {
        Response::Error { id: None, error } => Err(Error::broker(error)),
        Response::Error {
            id: Some(got),
            error,
        } if got == id => Err(Error::broker(error)),
        f if f.id() == Some(id) => Ok(f),
        f => Err(Error::protocol(format!(
            "got a {} frame for request {:?} while {doing} (request {id})",
            frame_type(&f),
            f.id()
        ))),
    }
}

/// The frame's `type` on the wire.
pub(crate) fn frame_type(frame: &Response) -> &'static str {
    match frame {
        Response::Hello { .. } => "hello",
        Response::Opened(_) => "opened",
        Response::Columns { .. } => "columns",
        Response::Rows { .. } => "rows",
        Response::Done { .. } => "done",
        Response::Ok { .. } => "ok",
        Response::Pong { .. } => "pong",
        Response::Status { .. } => "status",
        Response::Sessions { .. } => "sessions",
        Response::Instances { .. } => "instances",
        Response::Request { .. } => "request",
        Response::Requests { .. } => "requests",
        Response::Notice { .. } => "notice",
        Response::CopyData { .. } => "copy_data",
        Response::CopyReady { .. } => "copy_ready",
        Response::Error { .. } => "error",
    }
}

/// A frame of the wrong type where `wanted` was due.
pub(crate) fn unexpected(got: &Response, wanted: &str) -> Error {
    Error::protocol(format!(
        "expected a {wanted} frame, got a {} frame",
        frame_type(got)
    ))
}

#[derive(Debug)]
pub(crate) enum LineError {
    /// The line grew past the limit before its newline arrived.
    TooLong,
    Io(io::Error),
}

/// Reads up to and including the next `\n` into `buf` (without the `\n`),
/// refusing lines longer than `limit` bytes before they are buffered whole.
/// Returns `Ok(false)` at a clean end of stream (nothing read), and an
/// `UnexpectedEof` error when the stream ends mid-line.
pub(crate) fn read_line(
    reader: &mut impl BufRead,
    buf: &mut Vec<u8>,
    limit: usize,
) -> Result<bool, LineError> {
    buf.clear();
    // At most one byte past the limit is read (std's read_until finds the
    // newline with memchr, much faster than a byte loop over big frames).
    let bound = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
    let n = reader
        .take(bound)
        .read_until(b'\n', buf)
        .map_err(LineError::Io)?;
    if n == 0 {
        return Ok(false);
    }
    if buf.last() == Some(&b'\n') {
        buf.pop();
        return if buf.len() > limit {
            Err(LineError::TooLong)
        } else {
            Ok(true)
        };
    }
    if buf.len() > limit {
        return Err(LineError::TooLong);
    }
    Err(LineError::Io(io::Error::new(
        io::ErrorKind::UnexpectedEof,
        "the stream ended in the middle of a frame",
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufReader, Cursor};

    #[test]
    fn splits_lines_across_buffer_refills() {
        // A tiny buffer forces each line to span several refills.
        let mut r = BufReader::with_capacity(3, Cursor::new(b"abcdefg\n\nxy\n".to_vec()));
        let mut buf = Vec::new();
        assert!(read_line(&mut r, &mut buf, 100).unwrap());
        assert_eq!(buf, b"abcdefg");
        assert!(read_line(&mut r, &mut buf, 100).unwrap());
        assert_eq!(buf, b"");
        assert!(read_line(&mut r, &mut buf, 100).unwrap());
        assert_eq!(buf, b"xy");
        assert!(!read_line(&mut r, &mut buf, 100).unwrap());
    }

    #[test]
    fn limit_applies_before_the_newline_arrives() {
        let mut r = BufReader::with_capacity(4, Cursor::new(vec![b'x'; 1000]));
        let mut buf = Vec::new();
        assert!(matches!(
            read_line(&mut r, &mut buf, 10),
            Err(LineError::TooLong)
        ));
        // The limit and at most one byte more were read, not the 1000.
        assert!(buf.len() <= 11, "{}", buf.len());
        // Exactly at the limit is fine.
        let mut r = Cursor::new(b"0123456789\n".to_vec());
        assert!(read_line(&mut r, &mut buf, 10).unwrap());
    }

    #[test]
    fn end_of_stream_mid_line_is_an_error() {
        let mut r = Cursor::new(b"{\"type\":".to_vec());
        let mut buf = Vec::new();
        match read_line(&mut r, &mut buf, 100) {
            Err(LineError::Io(e)) => assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn frames_decode_or_say_why() {
        let mut r = Cursor::new(b"{\"type\":\"pong\",\"id\":4}\nnot json\n".to_vec());
        assert_eq!(read_frame(&mut r, "x").unwrap(), Response::Pong { id: 4 });
        let err = read_frame(&mut r, "x").unwrap_err();
        assert!(err.message().contains("not json"), "{err}");
        assert!(err.is_closed());
        let err = read_frame(&mut r, "waiting for pong").unwrap_err();
        assert!(err.is_unavailable());
        assert!(err.message().contains("waiting for pong"), "{err}");
    }
}
