//! A local process's resident memory and CPU time, from /proc (Linux):
//! what monitors sample and what `volley serve` reports about itself.

use std::io;

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ProcSample {
    pub rss_bytes: u64,
    /// User + system CPU time, in seconds.
    pub cpu_seconds: f64,
}

/// Read `/proc/PID/statm` (resident pages) and `/proc/PID/stat` (utime, stime).
pub fn read(pid: u32) -> io::Result<ProcSample> {
    let statm = std::fs::read_to_string(format!("/proc/{pid}/statm"))?;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    parse(
        &statm,
        &stat,
        rustix::param::page_size() as u64,
        ticks_per_second(),
    )
    .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "unexpected /proc format"))
}

fn ticks_per_second() -> f64 {
    rustix::param::clock_ticks_per_second().max(1) as f64
}

fn parse(statm: &str, stat: &str, page: u64, hz: f64) -> Option<ProcSample> {
    let resident: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    // The command name may hold spaces and parentheses: fields start after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // rest[0] is field 3 (state); utime and stime are fields 14 and 15.
    let utime: u64 = f.get(11)?.parse().ok()?;
    let stime: u64 = f.get(12)?.parse().ok()?;
    Some(ProcSample {
        rss_bytes: resident * page,
        cpu_seconds: (utime + stime) as f64 / hz,
    })
}

/// Whether a process with this id exists (and /proc can be read).
pub fn exists(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}/stat")).exists()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_files() {
        let statm = "12345 2048 300 10 0 900 0\n";
        let stat = "4242 (my (odd) proc) S 1 4242 4242 0 -1 4194560 500 0 0 0 250 50 0 0 20 0 4 0 100 123456 2048 18446744073709551615\n";
        let s = parse(statm, stat, 4096, 100.0).unwrap();
        assert_eq!(s.rss_bytes, 2048 * 4096);
        assert!((s.cpu_seconds - 3.0).abs() < 1e-9);
        assert!(parse("x", stat, 4096, 100.0).is_none());
    }

    #[test]
    fn reads_this_process() {
        let s = read(std::process::id()).unwrap();
        assert!(s.rss_bytes > 1 << 20, "{s:?}");
        assert!(exists(std::process::id()));
    }
}
