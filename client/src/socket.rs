//! The broker's socket as the client reads it.
//!
//! A thread blocked in `read(2)` on a Unix stream socket is woken whenever
//! the peer *consumes* data this side sent: the kernel announces the freed
//! send space on the socket's wait queue, and a blocked reader's wait entry
//! does not look at what was announced. So every request the broker reads
//! woke the client waiting for the answer, for nothing: a context switch
//! in the client and a wake-up paid by the broker, per statement. A
//! `poll(2)` for input only is woken by input only; the read after it
//! finds the data there. Measured in docs/performance.md ("Woken for
//! nothing").

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use std::io::{self, Read, Write};
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

/// A connected socket to the broker whose reads wait in `poll(2)`.
#[derive(Debug)]
pub(crate) struct Socket {
    stream: UnixStream,
    /// The read timeout: `poll`'s. The socket's own (`SO_RCVTIMEO`) is set
    /// to the same, for the read that follows.
    read_timeout: Option<Duration>,
}

impl Socket {
    pub(crate) fn connect(path: &Path) -> io::Result<Socket> {
        Ok(Socket {
            stream: UnixStream::connect(path)?,
            read_timeout: None,
        })
    }

    pub(crate) fn set_read_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        self.stream.set_read_timeout(timeout)?;
        self.read_timeout = timeout;
        Ok(())
    }

    pub(crate) fn set_write_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        self.stream.set_write_timeout(timeout)
    }

    /// Waits until there is something to read (or the peer hung up, or the
    /// socket failed: the read says which). A read timeout surfaces as
    /// `WouldBlock`, as the socket's own timeout does.
    fn wait_readable(&self) -> io::Result<()> {
        let deadline = self.read_timeout.map(|t| Instant::now() + t);
        loop {
            let timeout = match deadline {
                None => PollTimeout::NONE,
                Some(deadline) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Err(io::ErrorKind::WouldBlock.into());
                    }
                    // Rounded up: a timeout under a millisecond still waits.
                    let ms = left.as_nanos().div_ceil(1_000_000);
                    PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX)
                }
            };
            let mut fds = [PollFd::new(self.stream.as_fd(), PollFlags::POLLIN)];
            match poll(&mut fds, timeout) {
                Ok(0) => return Err(io::ErrorKind::WouldBlock.into()),
                Ok(_) => return Ok(()),
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }
}

impl Read for Socket {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        self.wait_readable()?;
        (&self.stream).read(buf)
    }
}

impl Write for Socket {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        (&self.stream).write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair() -> (Socket, UnixStream) {
        let (a, b) = UnixStream::pair().unwrap();
        (
            Socket {
                stream: a,
                read_timeout: None,
            },
            b,
        )
    }

    #[test]
    fn reads_what_the_peer_wrote_and_eof_after_it_hangs_up() {
        let (mut s, mut peer) = pair();
        peer.write_all(b"hello\n").unwrap();
        let mut buf = [0u8; 16];
        assert_eq!(s.read(&mut buf).unwrap(), 6);
        assert_eq!(&buf[..6], b"hello\n");
        drop(peer);
        assert_eq!(s.read(&mut buf).unwrap(), 0);
    }

    #[test]
    fn a_read_timeout_is_would_block_after_the_timeout() {
        let (mut s, _peer) = pair();
        s.set_read_timeout(Some(Duration::from_millis(30))).unwrap();
        let start = Instant::now();
        let err = s.read(&mut [0u8; 4]).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
        assert!(start.elapsed() >= Duration::from_millis(30));
    }

    /// The reason for this type: a reader waiting for the answer is not
    /// woken when the peer reads the request.
    #[test]
    fn the_peer_reading_the_request_does_not_wake_the_reader() {
        fn switches() -> u64 {
            let status = std::fs::read_to_string("/proc/thread-self/status").unwrap();
            status
                .lines()
                .filter(|l| l.starts_with("voluntary_ctxt_switches"))
                .filter_map(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
                .sum()
        }
        let (mut s, peer) = pair();
        let rounds = 20;
        let server = std::thread::spawn(move || {
            let mut peer = peer;
            let mut one = [0u8; 1];
            for _ in 0..rounds {
                std::thread::sleep(Duration::from_millis(2));
                peer.read_exact(&mut one).unwrap();
                std::thread::sleep(Duration::from_millis(2));
                peer.write_all(b"a").unwrap();
            }
        });
        let before = switches();
        let mut one = [0u8; 1];
        for _ in 0..rounds {
            s.write_all(b"q").unwrap();
            s.read_exact(&mut one).unwrap();
        }
        let woken = switches() - before;
        server.join().unwrap();
        // One sleep per round (the answer); a plain blocking read sleeps
        // twice (woken when the request is read, then for the answer).
        assert!(
            woken < rounds + rounds / 2,
            "{woken} sleeps in {rounds} rounds"
        );
    }
}
