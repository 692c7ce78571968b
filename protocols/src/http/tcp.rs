//! TCP connect that outlasts the ephemeral ports of one source address.
//!
//! One source address reaches ~28k connections to one ip:port (the kernel's
//! ephemeral port range), and connect() searches that range for a free port
//! in the caller's thread: the fuller it is, the longer. Loopback owns all of
//! 127.0.0.0/8, so while `SPREAD_AFTER` or more connections to loopback are
//! open, new ones rotate over `SPREAD` other sources (127.0.0.2 and on), and
//! when the kernel has no port left for one (EADDRNOTAVAIL), the next source
//! is tried: a local run of 50,000 sessions works as a remote one would.

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use tokio::net::{TcpSocket, TcpStream};

/// Connections to loopback this process has open, and has spread.
static LOOPBACK: Loopback = Loopback::new();

/// While fewer than this many connections to loopback are open, a new one
/// comes from 127.0.0.1, as the kernel picks (what small runs, and servers
/// that allow only 127.0.0.1, see). Past it, a nearly
/// full port range made each connect cost milliseconds of kernel time
/// (`__inet_hash_connect`: 17% of a 15,000-session chat run's CPU), in the
/// VU's thread: every session on it waited, and at 50,000 sessions joins
/// and pongs timed out.
const SPREAD_AFTER: u64 = 4096;

/// Sources the connections past `SPREAD_AFTER` rotate over: 127.0.0.2 to
/// 127.0.0.65, each with its own port range, so none fills up.
const SPREAD: u64 = 64;

/// The source being filled once 127.0.0.1 is full, as the low 24 bits of
/// 127.x.y.z: 2 is 127.0.0.2.
static SOURCE: AtomicU32 = AtomicU32::new(2);

/// Sources tried for one connection before giving up (each holds ~28k).
const TRIES: u32 = 64;

pub struct Loopback {
    open: AtomicU64,
    spread: AtomicU64,
}

impl Loopback {
    const fn new() -> Self {
        Loopback {
            open: AtomicU64::new(0),
            spread: AtomicU64::new(0),
        }
    }
}

/// One open connection to loopback, counted until dropped.
pub struct Lease(&'static Loopback);

impl Drop for Lease {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A connection, and its lease when it goes to loopback (keep it as long
/// as the connection).
pub async fn connect(addr: SocketAddr) -> io::Result<(TcpStream, Option<Lease>)> {
    connect_counted(addr, &LOOPBACK).await
}

async fn connect_counted(
    addr: SocketAddr,
    counts: &'static Loopback,
) -> io::Result<(TcpStream, Option<Lease>)> {
    let IpAddr::V4(ip) = addr.ip() else {
        return Ok((TcpStream::connect(addr).await?, None));
    };
    if !ip.is_loopback() {
        return Ok((TcpStream::connect(addr).await?, None));
    }
    let open = counts.open.fetch_add(1, Ordering::Relaxed);
    // Taken now, so a connect that fails gives it back.
    let lease = Lease(counts);
    if open >= SPREAD_AFTER {
        // Rotation by connections made, not open: even over the sources.
        let n = counts.spread.fetch_add(1, Ordering::Relaxed);
        match connect_from(addr, 2 + (n % SPREAD) as u32).await {
            Err(e) if no_port(&e) => {}
            done => return done.map(|s| (s, Some(lease))),
        }
    }
    let tcp = match TcpStream::connect(addr).await {
        Ok(s) => s,
        Err(e) if e.kind() == io::ErrorKind::AddrNotAvailable => {
            from_other_loopback(addr, &SOURCE).await?
        }
        Err(e) => return Err(e),
    };
    Ok((tcp, Some(lease)))
}

async fn from_other_loopback(addr: SocketAddr, source: &AtomicU32) -> io::Result<TcpStream> {
    let mut last = None;
    for _ in 0..TRIES {
        let n = source.load(Ordering::Relaxed);
        if n >= 0x00ff_ffff {
            break;
        }
        match connect_from(addr, n).await {
            Ok(s) => return Ok(s),
            // This source's ports are used up too: move on (unless another
            // connection already did).
            Err(e) if no_port(&e) => {
                let _ = source.compare_exchange(n, n + 1, Ordering::Relaxed, Ordering::Relaxed);
                last = Some(e);
            }
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or_else(|| io::Error::from(io::ErrorKind::AddrNotAvailable)))
}

/// Connect from 127.x.y.z, `n` its low 24 bits, on a port the kernel picks.
async fn connect_from(addr: SocketAddr, n: u32) -> io::Result<TcpStream> {
    let from = SocketAddr::new(Ipv4Addr::from(0x7f00_0000 | n).into(), 0);
    let socket = TcpSocket::new_v4()?;
    socket.bind(from)?;
    socket.connect(addr).await
}

/// The source has no port left for this target.
fn no_port(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::AddrInUse | io::ErrorKind::AddrNotAvailable
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn many_open_loopback_connections_spread_over_sources() {
        static COUNTS: Loopback = Loopback {
            open: AtomicU64::new(SPREAD_AFTER - 1),
            spread: AtomicU64::new(0),
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let source = async || {
            let (client, accepted) =
                tokio::join!(connect_counted(addr, &COUNTS), listener.accept());
            let (client, (_, peer)) = (client.unwrap(), accepted.unwrap());
            assert_eq!(client.0.local_addr().unwrap().ip(), peer.ip());
            (client, peer.ip())
        };
        let (first, ip) = source().await;
        assert_eq!(ip, Ipv4Addr::new(127, 0, 0, 1), "below SPREAD_AFTER open");
        let (second, ip) = source().await;
        assert_eq!(ip, Ipv4Addr::new(127, 0, 0, 2), "past it, rotating");
        let (third, ip) = source().await;
        assert_eq!(ip, Ipv4Addr::new(127, 0, 0, 3));
        assert_eq!(COUNTS.open.load(Ordering::Relaxed), SPREAD_AFTER + 2);
        // Closed connections are no longer counted: new ones come from
        // 127.0.0.1 again.
        drop((first, second, third));
        assert_eq!(COUNTS.open.load(Ordering::Relaxed), SPREAD_AFTER - 1);
        let (_, ip) = source().await;
        assert_eq!(ip, Ipv4Addr::new(127, 0, 0, 1));
    }

    #[tokio::test]
    async fn connects_from_the_next_loopback_source() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let source = AtomicU32::new(7);
        let (client, accepted) =
            tokio::join!(from_other_loopback(addr, &source), listener.accept());
        let client = client.unwrap();
        let (_, peer) = accepted.unwrap();
        assert_eq!(
            client.local_addr().unwrap().ip(),
            Ipv4Addr::new(127, 0, 0, 7)
        );
        assert_eq!(
            peer.ip(),
            Ipv4Addr::new(127, 0, 0, 7),
            "the server sees the new source"
        );
        assert_eq!(
            source.load(Ordering::Relaxed),
            7,
            "a source with ports left is kept"
        );
    }
}
