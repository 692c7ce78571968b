//! TCP connect that outlasts the ephemeral ports of one source address.
//!
//! One source address reaches ~28k connections to one ip:port (the kernel's
//! ephemeral port range), and connect() searches that range for a free port
//! in the caller's thread: the fuller it is, the longer. Loopback owns all of
//! 127.0.0.0/8, so past the first `SPREAD_AFTER` connections to a loopback
//! target, connections rotate over `SPREAD` other sources (127.0.0.2 and
//! on), and when the kernel has no port left for one (EADDRNOTAVAIL), the
//! next source is tried: a local run of 50,000 sessions works as a remote
//! one would.

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use tokio::net::{TcpSocket, TcpStream};

/// Connections to loopback this process has made.
static LOOPBACK_CONNECTS: AtomicU64 = AtomicU64::new(0);

/// Up to this many connections to loopback come from 127.0.0.1, as the
/// kernel picks (what small runs and servers' logs see). Past it, a nearly
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

pub async fn connect(addr: SocketAddr) -> io::Result<TcpStream> {
    connect_counted(addr, &LOOPBACK_CONNECTS).await
}

/// `connect`, with `made` the loopback connections made so far.
async fn connect_counted(addr: SocketAddr, made: &AtomicU64) -> io::Result<TcpStream> {
    if let IpAddr::V4(ip) = addr.ip()
        && ip.is_loopback()
    {
        let n = made.fetch_add(1, Ordering::Relaxed);
        if n >= SPREAD_AFTER {
            match connect_from(addr, 2 + (n % SPREAD) as u32).await {
                Err(e) if no_port(&e) => {}
                done => return done,
            }
        }
    }
    let e = match TcpStream::connect(addr).await {
        Ok(s) => return Ok(s),
        Err(e) => e,
    };
    match addr.ip() {
        IpAddr::V4(ip) if ip.is_loopback() && e.kind() == io::ErrorKind::AddrNotAvailable => {
            from_other_loopback(addr, &SOURCE).await
        }
        _ => Err(e),
    }
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
    async fn many_loopback_connections_spread_over_sources() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let made = AtomicU64::new(SPREAD_AFTER - 1);
        let mut seen = Vec::new();
        for _ in 0..3 {
            let (client, accepted) = tokio::join!(connect_counted(addr, &made), listener.accept());
            let (client, (_, peer)) = (client.unwrap(), accepted.unwrap());
            assert_eq!(client.local_addr().unwrap().ip(), peer.ip());
            seen.push(peer.ip());
        }
        assert_eq!(
            seen,
            [
                Ipv4Addr::new(127, 0, 0, 1),
                Ipv4Addr::new(127, 0, 0, 2 + (SPREAD_AFTER % SPREAD) as u8),
                Ipv4Addr::new(127, 0, 0, 3 + (SPREAD_AFTER % SPREAD) as u8),
            ],
            "the first SPREAD_AFTER from 127.0.0.1, then rotating"
        );
        // Each connection counted once.
        assert_eq!(made.load(Ordering::Relaxed), SPREAD_AFTER + 2);
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
