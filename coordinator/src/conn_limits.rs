//! Bounds on the gRPC listener's open connections, so that an idle crowd
//! cannot starve it of file descriptors: at most `max_connections` at once
//! and `max_per_peer` from one address. When a bound is reached, the oldest
//! connection that has not sent a byte yet (no HTTP/2 preface, no TLS
//! ClientHello) is closed to make room; when every connection has spoken,
//! the new one is closed instead. A connection that stays silent for
//! `preface_timeout` is closed as well (and, on a TLS listener, one whose
//! handshake has not finished within `handshake_timeout`). Accept errors (out of descriptors)
//! are logged and retried after a pause instead of stopping the server.
//!
//! [`ConnGate`] is the bookkeeping (plain Rust, tested without sockets);
//! [`LimitedStream`] is the socket it guards; [`limited_incoming`] the gRPC
//! listener's stream of admitted connections. The HTTP listener
//! ([`crate::web`]) uses the same gate, but waits ([`ConnGate::room`]) rather
//! than closing a new connection when every place is held by one that spoke.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

/// The listener's bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnLimits {
    /// Connections open at once.
    pub max_connections: usize,
    /// Connections open at once from one peer address.
    pub max_per_peer: usize,
    /// A connection that sends nothing for this long after it is accepted
    /// is closed.
    pub preface_timeout: Duration,
    /// A silent connection is closed to make room only once it has been open
    /// this long (its first bytes may be on their way to a task that has
    /// not run yet); a new connection waits for that meanwhile
    /// ([`Refusal::Young`]). Zero for gRPC.
    pub eviction_grace: Duration,
    /// A TLS connection whose handshake has not finished this long after it
    /// is accepted is closed (see [`crate::tls::handshakes`]), so a peer
    /// that sends part of a ClientHello and stops holds nothing.
    pub handshake_timeout: Duration,
}

impl Default for ConnLimits {
    fn default() -> Self {
        Self {
            max_connections: 512,
            max_per_peer: 256,
            preface_timeout: Duration::from_secs(10),
            eviction_grace: Duration::ZERO,
            handshake_timeout: Duration::from_secs(10),
        }
    }
}

/// One admitted connection's shared state.
#[derive(Debug)]
struct ConnState {
    /// When it was admitted.
    opened: Instant,
    /// It has sent at least one byte.
    spoke: AtomicBool,
    /// It was closed to make room (its stream reads end of file).
    evicted: AtomicBool,
    /// The reader waiting on it, woken on eviction.
    waker: Mutex<Option<Waker>>,
}

impl ConnState {
    fn new(opened: Instant) -> Self {
        Self {
            opened,
            spoke: AtomicBool::new(false),
            evicted: AtomicBool::new(false),
            waker: Mutex::new(None),
        }
    }

    fn evict(&self) {
        self.evicted.store(true, Ordering::SeqCst);
        let waker = match self.waker.lock() {
            Ok(mut w) => w.take(),
            Err(poisoned) => poisoned.into_inner().take(),
        };
        if let Some(w) = waker {
            w.wake();
        }
    }
}

#[derive(Debug, Default)]
struct Book {
    open: VecDeque<(u64, IpAddr, Arc<ConnState>)>,
    per_peer: HashMap<IpAddr, usize>,
    next: u64,
}

impl Book {
    fn forget(&mut self, id: u64) {
        if let Some(i) = self.open.iter().position(|(k, _, _)| *k == id)
            && let Some((_, peer, _)) = self.open.remove(i)
            && let Some(n) = self.per_peer.get_mut(&peer)
        {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.per_peer.remove(&peer);
            }
        }
    }

    /// Evicts the oldest silent connection (of `peer`, when given) that has
    /// been open for `grace`; else the refusal: [`Refusal::Young`] when a
    /// silent one will be old enough after a while, `none` when there is no
    /// silent one.
    fn evict_silent(
        &mut self,
        peer: Option<IpAddr>,
        grace: Duration,
        none: Refusal,
    ) -> Result<(), Refusal> {
        let found = self.open.iter().find(|(_, p, s)| {
            peer.is_none_or(|want| *p == want) && !s.spoke.load(Ordering::SeqCst)
        });
        let Some((id, state)) = found.map(|(i, _, s)| (*i, Arc::clone(s))) else {
            return Err(none);
        };
        let age = state.opened.elapsed();
        if age < grace {
            return Err(Refusal::Young(grace - age));
        }
        state.evict();
        self.forget(id);
        Ok(())
    }
}

/// Why [`ConnGate::try_admit`] found no place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// A silent connection can be closed for this one after this long (the
    /// eviction grace).
    Young(Duration),
    /// The peer holds its share, every one of them has spoken.
    PeerFull,
    /// Every place is held by a connection that has spoken.
    Full,
}

/// The count of open connections, overall and per peer.
#[derive(Debug, Clone, Default)]
pub struct ConnGate {
    limits: ConnLimits,
    book: Arc<Mutex<Book>>,
    freed: Arc<tokio::sync::Notify>,
}

/// An admitted connection's place; freed when dropped.
#[derive(Debug)]
pub struct Admitted {
    id: u64,
    state: Arc<ConnState>,
    book: Arc<Mutex<Book>>,
    freed: Arc<tokio::sync::Notify>,
}

impl Drop for Admitted {
    fn drop(&mut self) {
        match self.book.lock() {
            Ok(mut b) => b.forget(self.id),
            Err(poisoned) => poisoned.into_inner().forget(self.id),
        }
        self.freed.notify_one();
    }
}

impl ConnGate {
    /// A gate with `limits`.
    pub fn new(limits: ConnLimits) -> Self {
        Self {
            limits,
            book: Arc::default(),
            freed: Arc::default(),
        }
    }

    fn book(&self) -> std::sync::MutexGuard<'_, Book> {
        match self.book.lock() {
            Ok(b) => b,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// Whether a new connection would find a place now: one is free, or a
    /// silent connection could be closed to make one.
    pub fn has_room(&self) -> bool {
        let book = self.book();
        book.open.len() < self.limits.max_connections.max(1)
            || book
                .open
                .iter()
                .any(|(_, _, s)| !s.spoke.load(Ordering::SeqCst))
    }

    /// Resolves once [`ConnGate::has_room`] holds (at once when it does).
    pub async fn room(&self) {
        while !self.has_room() {
            self.freed.notified().await;
        }
    }

    /// Resolves when a place is freed (or was freed since the last wait).
    pub async fn freed(&self) {
        self.freed.notified().await;
    }

    /// `stream`, admitted as `admitted`, closed when evicted or silent for
    /// the preface timeout.
    pub fn limit<S>(&self, stream: S, admitted: Admitted) -> LimitedStream<S> {
        LimitedStream {
            inner: stream,
            admitted,
            silence: Box::pin(tokio::time::sleep(self.limits.preface_timeout)),
        }
    }

    /// Admits a connection from `peer`, closing a silent one to make room
    /// when a bound is reached; `None` when no room can be made.
    pub fn admit(&self, peer: IpAddr) -> Option<Admitted> {
        self.try_admit(peer).ok()
    }

    /// As [`ConnGate::admit`], saying why no room can be made (now).
    pub fn try_admit(&self, peer: IpAddr) -> Result<Admitted, Refusal> {
        let grace = self.limits.eviction_grace;
        let mut book = self.book();
        let from_peer = book.per_peer.get(&peer).copied().unwrap_or(0);
        if from_peer >= self.limits.max_per_peer.max(1) {
            book.evict_silent(Some(peer), grace, Refusal::PeerFull)?;
        }
        if book.open.len() >= self.limits.max_connections.max(1) {
            book.evict_silent(None, grace, Refusal::Full)?;
        }
        let id = book.next;
        book.next += 1;
        let state = Arc::new(ConnState::new(Instant::now()));
        book.open.push_back((id, peer, Arc::clone(&state)));
        *book.per_peer.entry(peer).or_default() += 1;
        Ok(Admitted {
            id,
            state,
            book: Arc::clone(&self.book),
            freed: Arc::clone(&self.freed),
        })
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.book().open.len()
    }
}

/// A connection the gate admitted: reads end of file once it is evicted or
/// has sent nothing for the preface timeout.
#[derive(Debug)]
pub struct LimitedStream<S> {
    inner: S,
    admitted: Admitted,
    silence: Pin<Box<tokio::time::Sleep>>,
}

impl<S: AsyncRead + Unpin> AsyncRead for LimitedStream<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let state = Arc::clone(&self.admitted.state);
        if state.evicted.load(Ordering::SeqCst) {
            return Poll::Ready(Ok(()));
        }
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        match &polled {
            Poll::Ready(Ok(())) if buf.filled().len() > before => {
                state.spoke.store(true, Ordering::SeqCst);
            }
            Poll::Pending => {
                if !state.spoke.load(Ordering::SeqCst) {
                    if self.silence.as_mut().poll(cx).is_ready() {
                        tracing::debug!("connection silent past the preface timeout; closed");
                        return Poll::Ready(Ok(()));
                    }
                    match state.waker.lock() {
                        Ok(mut w) => *w = Some(cx.waker().clone()),
                        Err(poisoned) => *poisoned.into_inner() = Some(cx.waker().clone()),
                    }
                    if state.evicted.load(Ordering::SeqCst) {
                        return Poll::Ready(Ok(()));
                    }
                }
            }
            Poll::Ready(_) => {}
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for LimitedStream<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

impl tonic::transport::server::Connected for LimitedStream<TcpStream> {
    type ConnectInfo = tonic::transport::server::TcpConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.inner.connect_info()
    }
}

/// The connections `listener` accepts that `gate` admits (the others are
/// closed at once); accept errors are logged and retried after a pause.
pub fn limited_incoming(
    listener: TcpListener,
    gate: ConnGate,
) -> impl futures::Stream<Item = Result<LimitedStream<TcpStream>, std::io::Error>> {
    futures::stream::unfold((listener, gate), |(listener, gate)| async move {
        loop {
            match listener.accept().await {
                Ok((stream, peer)) => {
                    let Some(admitted) = gate.admit(peer.ip()) else {
                        tracing::debug!(%peer, "connection refused: the listener is full of active connections");
                        continue;
                    };
                    let _ = stream.set_nodelay(true);
                    let conn = gate.limit(stream, admitted);
                    return Some((Ok(conn), (listener, gate)));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "accepting a connection failed; retrying shortly");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([127, 0, 0, last])
    }

    #[test]
    fn a_full_gate_closes_the_oldest_silent_connection_for_a_new_one() {
        let gate = ConnGate::new(ConnLimits {
            max_connections: 3,
            max_per_peer: 2,
            ..ConnLimits::default()
        });
        let a = gate.admit(ip(1)).unwrap();
        let b = gate.admit(ip(2)).unwrap();
        let c = gate.admit(ip(3)).unwrap();
        a.state.spoke.store(true, Ordering::SeqCst);
        let d = gate.admit(ip(4)).unwrap();
        assert!(
            b.state.evicted.load(Ordering::SeqCst),
            "the oldest silent one"
        );
        assert!(
            !a.state.evicted.load(Ordering::SeqCst),
            "a connection that spoke stays"
        );
        assert_eq!(gate.open(), 3);
        for s in [&c, &d] {
            s.state.spoke.store(true, Ordering::SeqCst);
        }
        assert!(
            gate.admit(ip(5)).is_none(),
            "every connection spoke: no room"
        );
        drop(a);
        assert_eq!(gate.open(), 2);
        assert!(gate.admit(ip(5)).is_some());
    }

    #[test]
    fn a_silent_connection_younger_than_the_grace_is_not_closed() {
        let gate = ConnGate::new(ConnLimits {
            max_connections: 1,
            max_per_peer: 1,
            eviction_grace: Duration::from_secs(3600),
            ..ConnLimits::default()
        });
        let a = gate.admit(ip(1)).unwrap();
        assert!(gate.has_room(), "a silent connection could make room");
        match gate.try_admit(ip(1)) {
            Err(Refusal::Young(wait)) => assert!(wait > Duration::from_secs(3000)),
            other => panic!("{other:?}"),
        }
        assert!(!a.state.evicted.load(Ordering::SeqCst));
        a.state.spoke.store(true, Ordering::SeqCst);
        assert_eq!(gate.try_admit(ip(1)).err(), Some(Refusal::PeerFull));
        assert_eq!(gate.try_admit(ip(2)).err(), Some(Refusal::Full));
        assert!(!gate.has_room());
    }

    #[test]
    fn one_peer_holds_at_most_its_share() {
        let gate = ConnGate::new(ConnLimits {
            max_connections: 10,
            max_per_peer: 2,
            ..ConnLimits::default()
        });
        let a = gate.admit(ip(1)).unwrap();
        let b = gate.admit(ip(1)).unwrap();
        a.state.spoke.store(true, Ordering::SeqCst);
        b.state.spoke.store(true, Ordering::SeqCst);
        assert!(gate.admit(ip(1)).is_none());
        assert!(gate.admit(ip(2)).is_some(), "another peer still gets in");
    }
}
