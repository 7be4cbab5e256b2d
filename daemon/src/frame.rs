//! Reading request lines with a hard size limit, and writing response
//! frames.
//!
//! As in mini-redis's `Connection`: every read is bounded, and "incomplete"
//! (no newline yet) is not "invalid" (too long).

use bytes::BufMut;
use iam_pgbroker_proto::Response;
use std::io;
use std::pin::Pin;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufWriter};

/// Why no line could be read.
#[derive(Debug, thiserror::Error)]
pub enum LineError {
    /// The line is longer than the limit; the connection must be closed,
    /// since the rest of it cannot be told from the next request.
    #[error("request line exceeds {max} bytes")]
    TooLong {
        /// The limit.
        max: usize,
    },
    /// Reading from the socket failed.
    #[error(transparent)]
    Io(#[from] io::Error),
    /// Nothing arrived for the idle timeout.
    #[error("no request for {0:?}")]
    Idle(std::time::Duration),
    /// A line was started but not finished within the request timeout (a
    /// client that sends half a line and stops).
    #[error("request line not completed within {0:?}")]
    Incomplete(std::time::Duration),
}

/// How long [`LineReader::next_line_timed`] waits.
#[derive(Debug, Clone, Copy)]
pub struct ReadTimeouts {
    /// Between requests (`None`: forever).
    pub idle: Option<std::time::Duration>,
    /// From a line's first byte to its newline.
    pub request: std::time::Duration,
}

/// Splits a byte stream into `\n`-terminated lines of at most `max` bytes
/// (newline included). Cancel-safe: a partial line stays buffered.
pub struct LineReader<R> {
    inner: R,
    buf: Vec<u8>,
    /// Bytes of `buf` already searched for a newline.
    scanned: usize,
    max: usize,
    /// When the first byte of the line now being read arrived.
    partial_since: Option<tokio::time::Instant>,
    /// The timer of [`LineReader::next_line_timed`], kept from request to
    /// request and armed for `armed`: a request moves the deadline on
    /// without touching the timer, which, when it fires early, is set
    /// again for the deadline it finds (at most once per idle period).
    timer: Option<(Pin<Box<tokio::time::Sleep>>, tokio::time::Instant)>,
}

impl<R: AsyncRead + Unpin> LineReader<R> {
    /// A reader with the given line limit.
    pub fn new(inner: R, max: usize) -> Self {
        LineReader {
            inner,
            buf: Vec::with_capacity(8 * 1024),
            scanned: 0,
            max,
            partial_since: None,
            timer: None,
        }
    }

    /// Like [`LineReader::next_line`], bounded by `timeouts`: the idle
    /// timeout while no byte of the next line has arrived, the request
    /// timeout from its first byte on. Cancel-safe.
    pub async fn next_line_timed(
        &mut self,
        timeouts: ReadTimeouts,
    ) -> Result<Option<Vec<u8>>, LineError> {
        // The common case: the whole request came with an earlier read.
        if let Some(line) = self.take_line() {
            self.partial_since = None;
            return Ok(Some(line));
        }
        let waiting_since = tokio::time::Instant::now();
        loop {
            if self.buf.is_empty() {
                self.partial_since = None;
            } else if self.partial_since.is_none() {
                self.partial_since = Some(tokio::time::Instant::now());
            }
            let deadline = match self.partial_since {
                Some(since) => Some(since + timeouts.request),
                None => timeouts.idle.map(|idle| waiting_since + idle),
            };
            let partial = self.partial_since.is_some();
            let before = self.buf.len();
            let result = match deadline {
                Some(deadline) => {
                    let mut timer = match self.timer.take() {
                        // Armed for no later than the deadline: it fires in
                        // time (perhaps early, then it is set again).
                        Some((timer, armed)) if armed <= deadline => (timer, armed),
                        Some((mut timer, _)) => {
                            timer.as_mut().reset(deadline);
                            (timer, deadline)
                        }
                        None => (Box::pin(tokio::time::sleep_until(deadline)), deadline),
                    };
                    let step = tokio::select! {
                        biased;
                        step = self.step() => Some(step),
                        () = timer.0.as_mut() => None,
                    };
                    // Fired for an earlier deadline: wait on.
                    let early = step.is_none() && tokio::time::Instant::now() < deadline;
                    if early {
                        timer.0.as_mut().reset(deadline);
                        timer.1 = deadline;
                    }
                    self.timer = Some(timer);
                    match step {
                        Some(step) => step,
                        None if early => continue,
                        None if partial => return Err(LineError::Incomplete(timeouts.request)),
                        None => return Err(LineError::Idle(timeouts.idle.unwrap_or_default())),
                    }
                }
                None => self.step().await,
            };
            match result? {
                Some(Some(line)) => {
                    self.partial_since = None;
                    return Ok(Some(line));
                }
                Some(None) => return Ok(None),
                None => {
                    if self.buf.len() == before {
                        continue;
                    }
                }
            }
        }
    }

    /// One read at most (afterwards the caller re-evaluates its deadline:
    /// a first byte switches from the idle to the request clock): a line
    /// (`Some(Some)`), the end of the stream (`Some(None)`), or more bytes
    /// (`None`).
    async fn step(&mut self) -> Result<Option<Option<Vec<u8>>>, LineError> {
        if let Some(line) = self.take_line() {
            return Ok(Some(Some(line)));
        }
        self.fill()
            .await
            .map(|more| if more { None } else { Some(None) })
    }

    /// A complete line from the buffer, if there is one.
    fn take_line(&mut self) -> Option<Vec<u8>> {
        let pos = self.buf[self.scanned..].iter().position(|b| *b == b'\n')?;
        let end = self.scanned + pos;
        let mut line: Vec<u8> = self.buf.drain(..=end).collect();
        line.pop();
        self.scanned = 0;
        Some(line)
    }

    /// Reads more into the buffer; `false` at end of stream.
    async fn fill(&mut self) -> Result<bool, LineError> {
        self.scanned = self.buf.len();
        if self.buf.len() >= self.max {
            return Err(LineError::TooLong { max: self.max });
        }
        // Read no more than the limit allows, so a flood of bytes without a
        // newline cannot grow the buffer past it.
        // Into the spare capacity, which is not zeroed first (zeroing 64 KiB
        // for every request was 3 % of the broker's CPU on short lookups).
        let room = (self.max - self.buf.len()).min(64 * 1024);
        self.buf.reserve(room);
        let mut limited = (&mut self.buf).limit(room);
        let n = self.inner.read_buf(&mut limited).await?;
        Ok(n > 0)
    }

    /// The next line without its newline; `None` at end of stream. A partial
    /// last line (the peer closed mid-line) is dropped: it was never a
    /// complete request.
    pub async fn next_line(&mut self) -> Result<Option<Vec<u8>>, LineError> {
        loop {
            if let Some(line) = self.take_line() {
                return Ok(Some(line));
            }
            if !self.fill().await? {
                return Ok(None);
            }
        }
    }

    /// Reads and drops input until end of stream or `limit` bytes.
    pub async fn discard_until_eof(&mut self, limit: usize) -> io::Result<()> {
        self.buf.clear();
        self.scanned = 0;
        let mut scratch = vec![0u8; 64 * 1024];
        let mut seen = 0usize;
        while seen < limit {
            let n = self.inner.read(&mut scratch).await?;
            if n == 0 {
                break;
            }
            seen += n;
        }
        Ok(())
    }

    /// Whether part of a line is waiting for its newline.
    pub fn has_partial(&self) -> bool {
        !self.buf.is_empty()
    }
}

/// Writes frames, buffered; `flush` at the end of every answer. With a
/// write timeout, a write the client does not make room for in time fails
/// with [`io::ErrorKind::TimedOut`] (a client that stops reading).
pub struct FrameWriter<W: AsyncWrite + Unpin> {
    inner: BufWriter<W>,
    timeout: Option<std::time::Duration>,
}

/// Bytes queued for the client before they are written to the socket.
const WRITE_BUFFER: usize = 64 * 1024;

/// The error of a write that timed out.
fn write_timed_out(limit: std::time::Duration) -> io::Error {
    io::Error::new(
        io::ErrorKind::TimedOut,
        format!("the client read nothing for {} ms", limit.as_millis()),
    )
}

impl<W: AsyncWrite + Unpin> FrameWriter<W> {
    /// A writer over `inner`.
    pub fn new(inner: W) -> Self {
        FrameWriter {
            inner: BufWriter::with_capacity(WRITE_BUFFER, inner),
            timeout: None,
        }
    }

    /// The underlying writer (what was flushed to it).
    #[cfg(test)]
    pub fn into_inner(self) -> W {
        self.inner.into_inner()
    }

    /// Bounds every write by `limit` (`None` or zero: unbounded).
    pub fn set_write_timeout(&mut self, limit: Option<std::time::Duration>) {
        self.timeout = limit.filter(|d| !d.is_zero());
    }

    async fn bounded<T>(
        limit: Option<std::time::Duration>,
        io: impl std::future::Future<Output = io::Result<T>>,
    ) -> io::Result<T> {
        match limit {
            None => io.await,
            Some(limit) => match tokio::time::timeout(limit, io).await {
                Ok(result) => result,
                Err(_) => Err(write_timed_out(limit)),
            },
        }
    }

    /// Queues one frame.
    pub async fn send(&mut self, frame: &Response) -> io::Result<()> {
        self.send_raw(frame.encode().as_bytes()).await
    }

    /// Queues bytes that already form complete frames.
    pub async fn send_raw(&mut self, bytes: &[u8]) -> io::Result<()> {
        if self.inner.buffer().len() + bytes.len() <= WRITE_BUFFER {
            // Only copied into the buffer: nothing can wait, so no timer.
            return self.inner.write_all(bytes).await;
        }
        let limit = self.timeout;
        Self::bounded(limit, self.inner.write_all(bytes)).await
    }

    /// Sends everything queued and closes the writing half (the client
    /// reads end of stream after the last frame).
    pub async fn shutdown(&mut self) -> io::Result<()> {
        let limit = self.timeout;
        Self::bounded(limit, self.inner.flush()).await?;
        Self::bounded(limit, self.inner.shutdown()).await
    }

    /// Sends everything queued.
    pub async fn flush(&mut self) -> io::Result<()> {
        let limit = self.timeout;
        Self::bounded(limit, self.inner.flush()).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn splits_lines_and_keeps_partials() {
        let data: &[u8] = b"{\"a\":1}\n\n{\"b\":2}\npartial";
        let mut r = LineReader::new(data, 1024);
        assert_eq!(r.next_line().await.unwrap().unwrap(), b"{\"a\":1}");
        assert_eq!(r.next_line().await.unwrap().unwrap(), b"");
        assert_eq!(r.next_line().await.unwrap().unwrap(), b"{\"b\":2}");
        assert!(r.next_line().await.unwrap().is_none());
        assert!(r.has_partial());
    }

    #[tokio::test]
    async fn limit_counts_the_newline() {
        let ok = [b'x'; 9].iter().chain(b"\n").copied().collect::<Vec<u8>>();
        let mut r = LineReader::new(&ok[..], 10);
        assert_eq!(r.next_line().await.unwrap().unwrap().len(), 9);
        let long = [b'x'; 10].iter().chain(b"\n").copied().collect::<Vec<u8>>();
        let mut r = LineReader::new(&long[..], 10);
        assert!(matches!(
            r.next_line().await,
            Err(LineError::TooLong { max: 10 })
        ));
    }

    #[tokio::test(start_paused = true)]
    async fn half_a_line_times_out_on_the_request_clock() {
        let (client, server) = tokio::io::duplex(1024);
        let mut r = LineReader::new(server, 1024);
        let timeouts = ReadTimeouts {
            idle: Some(std::time::Duration::from_secs(3600)),
            request: std::time::Duration::from_secs(10),
        };
        let mut client = client;
        tokio::io::AsyncWriteExt::write_all(&mut client, b"{\"id\":1,")
            .await
            .unwrap();
        let result = r.next_line_timed(timeouts).await;
        assert!(
            matches!(result, Err(LineError::Incomplete(_))),
            "{result:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn silence_times_out_on_the_idle_clock() {
        let (_client, server) = tokio::io::duplex(1024);
        let mut r = LineReader::new(server, 1024);
        let timeouts = ReadTimeouts {
            idle: Some(std::time::Duration::from_secs(5)),
            request: std::time::Duration::from_secs(10),
        };
        let result = r.next_line_timed(timeouts).await;
        assert!(matches!(result, Err(LineError::Idle(_))), "{result:?}");
    }

    #[tokio::test]
    async fn a_flood_without_newline_stops_at_the_limit() {
        let flood = vec![b'a'; 5 * 1024 * 1024];
        let mut r = LineReader::new(&flood[..], 1024 * 1024);
        assert!(matches!(
            r.next_line().await,
            Err(LineError::TooLong { .. })
        ));
        assert!(r.buf.len() <= 1024 * 1024);
    }
}
