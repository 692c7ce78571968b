//! What this machine can give a run: cores, and memory not yet taken
//! (the kernel's MemAvailable, or what is left under a cgroup's limit).
//! Plans that cannot fit are refused before anything is allocated.

use std::path::Path;

#[derive(Clone, Copy, Debug)]
pub struct Machine {
    pub cores: u64,
    /// Bytes a new process may still take; None when it cannot be read.
    pub memory: Option<u64>,
}

impl Machine {
    pub fn detect() -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get() as u64);
        let meminfo = std::fs::read_to_string("/proc/meminfo").ok();
        let available = meminfo.as_deref().and_then(mem_available);
        let memory = match (available, cgroup_room()) {
            (Some(a), Some(c)) => Some(a.min(c)),
            (a, c) => a.or(c),
        };
        Self { cores, memory }
    }
}

/// `MemAvailable:` of /proc/meminfo, in bytes.
fn mem_available(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb.saturating_mul(1024))
}

/// What is left under this process's cgroup memory limit, if it has one
/// (cgroup v2 `memory.max`, or v1 `memory.limit_in_bytes`).
fn cgroup_room() -> Option<u64> {
    let cgroups = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    for line in cgroups.lines() {
        let mut parts = line.splitn(3, ':');
        let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
        let path = path.trim_start_matches('/');
        let (dir, limit, usage) = if controllers.is_empty() {
            (
                Path::new("/sys/fs/cgroup").join(path),
                "memory.max",
                "memory.current",
            )
        } else if controllers.split(',').any(|c| c == "memory") {
            (
                Path::new("/sys/fs/cgroup/memory").join(path),
                "memory.limit_in_bytes",
                "memory.usage_in_bytes",
            )
        } else {
            continue;
        };
        let read = |f: &str| -> Option<u64> {
            std::fs::read_to_string(dir.join(f))
                .ok()?
                .trim()
                .parse()
                .ok()
        };
        // "max" (v2) does not parse, and v1 writes "unlimited" as a huge number.
        if let Some(l) = read(limit).filter(|l| *l < 1 << 60) {
            return Some(l.saturating_sub(read(usage).unwrap_or(0)));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_mem_available() {
        let m = "MemTotal:       24000000 kB\nMemFree:  100 kB\nMemAvailable:   23766152 kB\n";
        assert_eq!(mem_available(m), Some(23_766_152 * 1024));
        assert_eq!(mem_available("MemTotal: 1 kB\n"), None);
    }
}
