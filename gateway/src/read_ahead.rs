//! Large socket reads under TLS, with no buffer held by an idle connection.
//!
//! rustls asks its transport for at most 4 KiB at a time (its deframer grows in 4 KiB steps and
//! shrinks back whenever it is empty), so a TLS stream read straight off a socket costs one
//! `recv` per 4 KiB: 256 Ki system calls per GB, each with TCP's receive bookkeeping. That was
//! the largest item of the relay's own CPU after the ciphers (issue 18, target 1).
//! [`ReadAhead`] sits between the socket and rustls: a read smaller than its buffer fills the
//! buffer with one `recv` of up to 64 KiB and is served from it, so bulk streams cost one
//! system call per 64 KiB.
//!
//! The buffer is used only while bytes keep coming: a read is made straight into the caller's
//! buffer until one fills it (more is likely waiting), and the buffer is dropped again whenever
//! the socket has nothing more to give. So a keystroke costs no buffer at all, and the
//! thousands of idle sessions a gateway holds keep no read-ahead memory (the idle bench:
//! gateway RSS per idle session).

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// How much one socket read may bring in: a loopback or LAN TCP segment burst, and four TLS
/// records.
const CAPACITY: usize = 64 << 10;

/// A socket read in large pieces (see the module docs); writes pass through.
#[derive(Debug)]
pub struct ReadAhead<S> {
    inner: S,
    /// Read but not yet handed out: `buf[start..end]`; empty (no allocation) when idle.
    buf: Vec<u8>,
    start: usize,
    end: usize,
    /// The last read filled what it was given: bytes are streaming, read ahead.
    streaming: bool,
}

impl<S> ReadAhead<S> {
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            buf: Vec::new(),
            start: 0,
            end: 0,
            streaming: false,
        }
    }

    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// Bytes read ahead and not handed out yet.
    fn buffered(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    fn consume(&mut self, n: usize) {
        self.start += n;
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for ReadAhead<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.start == this.end {
            if !this.streaming || out.remaining() >= CAPACITY {
                // A trickle (keystrokes), or a reader asking for as much as the buffer holds:
                // the buffer would only add a copy.
                this.buf = Vec::new();
                let wanted = out.remaining();
                ready!(Pin::new(&mut this.inner).poll_read(cx, out))?;
                this.streaming = wanted > 0 && out.remaining() == 0;
                return Poll::Ready(Ok(()));
            }
            if this.buf.is_empty() {
                this.buf = vec![0; CAPACITY];
            }
            let mut into = ReadBuf::new(&mut this.buf);
            match Pin::new(&mut this.inner).poll_read(cx, &mut into) {
                Poll::Pending => {
                    // Nothing more for now, perhaps for hours: hold no memory meanwhile.
                    this.buf = Vec::new();
                    this.streaming = false;
                    return Poll::Pending;
                }
                Poll::Ready(Err(e)) => {
                    this.buf = Vec::new();
                    this.streaming = false;
                    return Poll::Ready(Err(e));
                }
                Poll::Ready(Ok(())) => {
                    let n = into.filled().len();
                    if n == 0 {
                        // End of stream.
                        this.buf = Vec::new();
                        this.streaming = false;
                        return Poll::Ready(Ok(()));
                    }
                    this.end = n;
                }
            }
        }
        let n = this.buffered().len().min(out.remaining());
        out.put_slice(&this.buffered()[..n]);
        this.consume(n);
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for ReadAhead<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(Pin::new(&mut self.get_mut().inner).poll_shutdown(cx))?;
        Poll::Ready(Ok(()))
    }
}

/// The upstream connector hands hyper this over its TCP connections.
impl<S: hyper_util::client::legacy::connect::Connection>
    hyper_util::client::legacy::connect::Connection for ReadAhead<S>
{
    fn connected(&self) -> hyper_util::client::legacy::connect::Connected {
        self.inner.connected()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::FutureExt as _;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    #[tokio::test]
    async fn small_reads_are_served_from_one_large_read() {
        let (mut tx, rx) = tokio::io::duplex(1 << 20);
        let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        tx.write_all(&data).await.unwrap();
        drop(tx);
        let mut r = ReadAhead::new(rx);
        let mut got = Vec::new();
        let mut piece = [0u8; 4096];
        loop {
            let n = r.read(&mut piece).await.unwrap();
            if n == 0 {
                break;
            }
            got.extend_from_slice(&piece[..n]);
            // Whatever is buffered is at most one read's worth.
            assert!(r.buffered().len() < CAPACITY);
            if got.len() == 8192 {
                // The first read filled its 4 KiB: the second came out of one large read.
                assert_eq!(r.buffered().len(), CAPACITY - 4096);
            }
        }
        assert_eq!(got, data);
        assert!(r.buf.is_empty(), "the buffer is dropped at the end");
    }

    #[tokio::test]
    async fn an_idle_stream_holds_no_buffer() {
        let (mut tx, rx) = tokio::io::duplex(1 << 16);
        let mut r = ReadAhead::new(rx);
        tx.write_all(b"hello").await.unwrap();
        let mut rest = [0u8; 16];
        // A keystroke's worth is read straight through, no buffer made.
        let n = r.read(&mut rest).await.unwrap();
        assert_eq!(&rest[..n], b"hello");
        assert_eq!(r.buf.capacity(), 0);
        // A read that fills what it was given: the next one reads ahead.
        tx.write_all(b"0123456789").await.unwrap();
        let mut piece = [0u8; 3];
        r.read_exact(&mut piece).await.unwrap();
        assert_eq!(&piece, b"012");
        let n = r.read(&mut piece).await.unwrap();
        assert_eq!(&piece[..n], b"345");
        assert_eq!(r.buffered(), b"6789", "the rest waits in the buffer");
        let n = r.read(&mut rest).await.unwrap();
        assert_eq!(&rest[..n], b"6789");
        // Nothing to read: the read is pending, and the buffer is gone meanwhile.
        assert!(r.read(&mut rest).now_or_never().is_none());
        assert!(r.buf.is_empty());
        assert_eq!(r.buf.capacity(), 0);
        tx.write_all(b"more").await.unwrap();
        let n = r.read(&mut rest).await.unwrap();
        assert_eq!(&rest[..n], b"more");
    }

    #[tokio::test]
    async fn large_reads_go_straight_through() {
        let (mut tx, rx) = tokio::io::duplex(1 << 20);
        tx.write_all(&[7u8; 100_000]).await.unwrap();
        let mut r = ReadAhead::new(rx);
        let mut big = vec![0u8; CAPACITY];
        let n = r.read(&mut big).await.unwrap();
        assert!(n > 0 && big[..n].iter().all(|&b| b == 7));
        assert!(r.buf.is_empty(), "no copy through the buffer");
    }
}
