//! What the seeder holds in memory for a spec (per_parent offsets, the
//! parent values refs copy from), against what this machine has: a spec
//! that cannot fit is refused before anything is allocated, with the row
//! count that would fit.

use crate::value::{Kind, Value};

/// Bytes a process here can hold: the machine's memory, less under a
/// cgroup limit; the address space where neither can be read.
pub fn memory_limit() -> (u128, &'static str) {
    let total = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            let kb = m.lines().find_map(|l| l.strip_prefix("MemTotal:"))?;
            kb.trim().strip_suffix("kB")?.trim().parse::<u128>().ok()
        })
        .map(|kb| kb * 1024);
    // cgroup v2: "max" (no limit) does not parse.
    let cgroup = std::fs::read_to_string("/sys/fs/cgroup/memory.max")
        .ok()
        .and_then(|v| v.trim().parse::<u128>().ok());
    match (total, cgroup) {
        (Some(t), Some(c)) => (t.min(c), "this machine has"),
        (Some(m), None) | (None, Some(m)) => (m, "this machine has"),
        (None, None) => (isize::MAX as u128, "a process can address"),
    }
}

/// Bytes of one parent value a ref keeps: the slot, and for text a short
/// string's allocation (ids, the usual parents, are numbers or UUIDs).
pub fn value_bytes(kind: Kind) -> u128 {
    let heap = match kind {
        Kind::Text | Kind::Json => 32,
        _ => 0,
    };
    std::mem::size_of::<Value>() as u128 + heap
}

/// Sizes as the rest of volley prints them (1024-based: KiB, MiB, GiB),
/// past u64 too.
pub fn human_bytes(b: u128) -> String {
    volley_protocols::size::format_bytes(b as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_keep_their_unit_past_u64() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(1_500_000), "1.43 MiB");
        assert_eq!(human_bytes(800_000_000_008), "745 GiB");
        assert_eq!(human_bytes(u128::from(u64::MAX)), "16.0 EiB");
        assert_eq!(human_bytes(252_000_000_000_000_000_000), "219 EiB");
        assert!(human_bytes(u128::MAX).ends_with(" YiB"));
    }

    #[test]
    fn the_limit_is_known_here() {
        let (m, _) = memory_limit();
        assert!(m > 1 << 20, "{m}");
    }
}
