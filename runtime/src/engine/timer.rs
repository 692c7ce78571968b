//! Sub-millisecond wake-ups for arrival schedules.
//!
//! tokio's timer wheel has 1 ms ticks and rounds deadlines up, so an arrival
//! would start up to 1 ms late, and since open models measure latency from
//! the scheduled start that lag would land in every percentile. A timerfd
//! (a kernel hrtimer) registered with the runtime's reactor wakes within tens
//! of microseconds, without spinning.

use rustix::time::{
    Itimerspec, TimerfdClockId, TimerfdFlags, TimerfdTimerFlags, Timespec, timerfd_create,
    timerfd_settime,
};
use std::io;
use std::os::fd::OwnedFd;
use std::time::Instant;
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

pub struct Timer {
    fd: Option<AsyncFd<OwnedFd>>,
}

impl Timer {
    pub fn new() -> Self {
        let fd = timerfd_create(
            TimerfdClockId::Monotonic,
            TimerfdFlags::NONBLOCK | TimerfdFlags::CLOEXEC,
        )
        .map_err(io::Error::from)
        .and_then(|fd| {
            // SAFETY: the OwnedFd moves into the AsyncFd and stays open (and
            // the same descriptor) until the AsyncFd drops it.
            unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE) }
                .map_err(io::Error::from)
        });
        if let Err(e) = &fd {
            tracing::warn!("no timerfd ({e}): arrivals fall back to 1 ms timer precision");
        }
        Self { fd: fd.ok() }
    }

    pub async fn sleep_until(&mut self, at: Instant) {
        let now = Instant::now();
        if at <= now {
            return;
        }
        let Some(fd) = &self.fd else {
            tokio::time::sleep_until(at.into()).await;
            return;
        };
        let d = at - now;
        let spec = Itimerspec {
            it_interval: Timespec {
                tv_sec: 0,
                tv_nsec: 0,
            },
            it_value: Timespec {
                tv_sec: d.as_secs() as _,
                tv_nsec: d.subsec_nanos() as _,
            },
        };
        if timerfd_settime(fd.get_ref(), TimerfdTimerFlags::empty(), &spec).is_err() {
            tokio::time::sleep_until(at.into()).await;
            return;
        }
        loop {
            let Ok(mut ready) = fd.readable().await else {
                tokio::time::sleep_until(at.into()).await;
                return;
            };
            let mut buf = [0u8; 8];
            match rustix::io::read(fd.get_ref(), &mut buf) {
                Ok(_) => return,
                // A readiness left from an earlier, re-armed timer.
                Err(rustix::io::Errno::AGAIN) => ready.clear_ready(),
                Err(_) => {
                    tokio::time::sleep_until(at.into()).await;
                    return;
                }
            }
        }
    }
}
