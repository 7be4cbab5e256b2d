//! A client's socket, registered with the runtime for input only.
//!
//! When a client reads what the broker sent, the kernel announces the freed
//! space on the broker's end of a Unix stream socket. A socket registered
//! for output readiness (tokio's `UnixStream` always is) turns each such
//! announcement into an event: a worker parked in `epoll_wait` woke for
//! it, once per answer, to find nothing to do — a context switch for the
//! broker and a wake-up paid by the client. Here the socket is registered
//! for input only; writes go straight to the non-blocking socket, and only
//! when the client's buffer is full does a second descriptor of the same
//! socket watch for room, until the backlog is flushed.
//! See docs/performance.md ("Woken for nothing").

use std::io::{self, Write};
use std::mem::MaybeUninit;
use std::net::Shutdown;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};

type Registered = Arc<AsyncFd<std::os::unix::net::UnixStream>>;

/// Takes over an accepted connection: its registration for input and
/// output is replaced by one for input only.
pub fn split(stream: tokio::net::UnixStream) -> io::Result<(ClientRead, ClientWrite)> {
    let std = stream.into_std()?;
    // SAFETY: the stream owns its descriptor, open and the same for as
    // long as it lives, which is as long as the registration.
    let fd = Arc::new(unsafe { AsyncFd::register_with_interest(std, Interest::READABLE) }?);
    Ok((ClientRead(Arc::clone(&fd)), ClientWrite { fd, room: None }))
}

/// The reading half.
pub struct ClientRead(Registered);

/// The writing half. Dropping it shuts the socket down for writing (the
/// client reads end of stream), as tokio's own write half does.
pub struct ClientWrite {
    fd: Registered,
    /// Watches for room in the client's buffer, while a write is waiting
    /// for it (registered for output only; dropped after the next flush).
    room: Option<AsyncFd<OwnedFd>>,
}

/// `read(2)` into memory that may not be initialized.
fn read_into(fd: &impl AsRawFd, buf: &mut [MaybeUninit<u8>]) -> io::Result<usize> {
    // SAFETY: read(2) writes at most `buf.len()` bytes, all within `buf`,
    // and the bytes it did not write are never read (the caller marks only
    // the returned count as initialized).
    let n = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

impl AsyncRead for ClientRead {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        loop {
            let mut guard = ready!(self.0.poll_read_ready(cx))?;
            // SAFETY: only the bytes read(2) wrote are marked initialized.
            let unfilled = unsafe { buf.unfilled_mut() };
            let room = unfilled.len();
            match guard.try_io(|fd| read_into(fd.get_ref(), unfilled)) {
                Ok(Ok(n)) => {
                    // A read that did not fill the buffer emptied the
                    // socket: the next one waits for the next event instead
                    // of trying a read(2) that would find nothing (as
                    // tokio's own streams do; input arriving meanwhile is a
                    // new event, which this does not clear).
                    if n > 0 && n < room {
                        guard.clear_ready();
                    }
                    // SAFETY: read(2) initialized these `n` bytes.
                    unsafe { buf.assume_init(n) };
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                Ok(Err(e)) if e.kind() == io::ErrorKind::Interrupted => continue,
                Ok(Err(e)) => return Poll::Ready(Err(e)),
                // Nothing after all: readiness cleared, wait again.
                Err(_would_block) => continue,
            }
        }
    }
}

impl AsyncWrite for ClientWrite {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let ClientWrite { fd, room, .. } = &mut *self;
        let socket = fd.get_ref();
        loop {
            if let Some(watch) = room.as_ref() {
                let mut guard = ready!(watch.poll_write_ready(cx))?;
                match guard.try_io(|_| (&*socket).write(data)) {
                    Ok(Err(e)) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Ok(result) => return Poll::Ready(result),
                    Err(_would_block) => continue,
                }
            }
            match (&*socket).write(data) {
                Ok(n) => return Poll::Ready(Ok(n)),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    // The client's buffer is full: watch for room through a
                    // second descriptor, registered for output only.
                    let dup = socket.as_fd().try_clone_to_owned()?;
                    // SAFETY: as in `split`, an owned descriptor.
                    let watch =
                        unsafe { AsyncFd::register_with_interest(dup, Interest::WRITABLE) }?;
                    *room = Some(watch);
                }
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // Called once everything queued has been written: the backlog is
        // gone, and with it the need to hear about room.
        self.room = None;
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.room = None;
        Poll::Ready(self.fd.get_ref().shutdown(Shutdown::Write))
    }
}

impl Drop for ClientWrite {
    fn drop(&mut self) {
        // After `poll_shutdown` too: shutting a side down again changes
        // nothing.
        let _ = self.fd.get_ref().shutdown(Shutdown::Write);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn pair() -> (ClientRead, ClientWrite, std::os::unix::net::UnixStream) {
        let (a, b) = tokio::net::UnixStream::pair().unwrap();
        let b = b.into_std().unwrap();
        b.set_nonblocking(false).unwrap();
        let (r, w) = split(a).unwrap();
        (r, w, b)
    }

    #[tokio::test]
    async fn reads_writes_and_shuts_down_on_drop() {
        let (mut r, mut w, mut peer) = pair().await;
        std::io::Write::write_all(&mut peer, b"request\n").unwrap();
        let mut buf = Vec::with_capacity(64);
        r.read_buf(&mut buf).await.unwrap();
        assert_eq!(buf, b"request\n");
        w.write_all(b"answer\n").await.unwrap();
        w.flush().await.unwrap();
        drop(w);
        let mut got = Vec::new();
        let reader = std::thread::spawn(move || {
            peer.read_to_end(&mut got).unwrap();
            (got, peer)
        });
        let (got, peer) = reader.join().unwrap();
        assert_eq!(got, b"answer\n");
        drop(peer);
        buf.clear();
        assert_eq!(r.read_buf(&mut buf).await.unwrap(), 0, "end of stream");
    }

    /// The reason for this module: the client reading an answer does not
    /// wake the thread that serves it. One sleep per round (waiting for
    /// the next request); with an output registration, two.
    #[test]
    fn the_client_reading_the_answer_does_not_wake_the_broker() {
        fn sleeps() -> u64 {
            let status = std::fs::read_to_string("/proc/thread-self/status").unwrap();
            status
                .lines()
                .filter(|l| l.starts_with("voluntary_ctxt_switches"))
                .filter_map(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
                .sum()
        }
        let rounds = 20u64;
        let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
        a.set_nonblocking(true).unwrap();
        let client = std::thread::spawn(move || {
            let mut b = b;
            let mut answer = [0u8; 1];
            for _ in 0..rounds {
                std::io::Write::write_all(&mut b, b"q").unwrap();
                std::thread::sleep(std::time::Duration::from_millis(3));
                b.read_exact(&mut answer).unwrap();
                std::thread::sleep(std::time::Duration::from_millis(3));
            }
        });
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let slept = rt.block_on(async move {
            let (mut r, mut w) = split(tokio::net::UnixStream::from_std(a).unwrap()).unwrap();
            let before = sleeps();
            let mut one = [0u8; 1];
            for _ in 0..rounds {
                r.read_exact(&mut one).await.unwrap();
                w.write_all(b"a").await.unwrap();
                w.flush().await.unwrap();
            }
            sleeps() - before
        });
        client.join().unwrap();
        assert!(
            slept < rounds + rounds / 2,
            "{slept} sleeps in {rounds} rounds"
        );
    }

    /// A client that stops reading fills its buffer; the write waits for
    /// room (through the output-only watch) and completes once the client
    /// reads again.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_full_buffer_waits_for_room_then_completes() {
        let (_r, mut w, mut peer) = pair().await;
        let big = vec![b'x'; 4 << 20];
        let expected = big.len();
        let writer = tokio::spawn(async move {
            w.write_all(&big).await.unwrap();
            let waited = w.room.is_some();
            w.flush().await.unwrap();
            assert!(w.room.is_none(), "the watch is dropped after the flush");
            waited
        });
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        assert!(!writer.is_finished(), "4 MiB cannot fit an unread socket");
        let reader = std::thread::spawn(move || {
            let mut total = 0;
            let mut buf = vec![0u8; 64 << 10];
            while total < expected {
                let n = peer.read(&mut buf).unwrap();
                assert!(n > 0);
                total += n;
            }
            total
        });
        assert!(writer.await.unwrap(), "the write had to wait for room");
        assert_eq!(reader.join().unwrap(), expected);
    }
}
