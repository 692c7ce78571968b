//! TCP connect that outlasts the ephemeral ports of one source address.
//!
//! One source address reaches ~28k connections to one ip:port (the kernel's
//! ephemeral port range). Loopback owns all of 127.0.0.0/8, so when the
//! kernel has no port left for a loopback target (EADDRNOTAVAIL), the
//! connection is made from 127.0.0.2, then .3 and on, each with a range of
//! its own: a local run of 50,000 sessions works as a remote one would.

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU32, Ordering};
use tokio::net::{TcpSocket, TcpStream};

/// The source being filled once 127.0.0.1 is full, as the low 24 bits of
/// 127.x.y.z: 2 is 127.0.0.2.
static SOURCE: AtomicU32 = AtomicU32::new(2);

/// Sources tried for one connection before giving up (each holds ~28k).
const TRIES: u32 = 64;

pub async fn connect(addr: SocketAddr) -> io::Result<TcpStream> {
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
        let from = SocketAddr::new(Ipv4Addr::from(0x7f00_0000 | n).into(), 0);
        let socket = TcpSocket::new_v4()?;
        let outcome = match socket.bind(from) {
            Ok(()) => socket.connect(addr).await,
            Err(e) => Err(e),
        };
        match outcome {
            Ok(s) => return Ok(s),
            // This source's ports are used up too: move on (unless another
            // connection already did).
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::AddrInUse | io::ErrorKind::AddrNotAvailable
                ) =>
            {
                let _ = source.compare_exchange(n, n + 1, Ordering::Relaxed, Ordering::Relaxed);
                last = Some(e);
            }
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or_else(|| io::Error::from(io::ErrorKind::AddrNotAvailable)))
}

#[cfg(test)]
mod tests {
    use super::*;

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
