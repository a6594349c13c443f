//! Measurements of processes and of the machine, read from `/proc`: the server's resident
//! memory, the generator's own CPU time, and the CPU time the hypervisor stole. Each gives no
//! figure rather than a made-up one when `/proc` cannot be read.

/// Resident memory of `pid` in KiB.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// User + system CPU time of this process, in seconds (clock ticks of 1/100 s).
pub fn cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    let Some(after) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
        return 0.0;
    };
    // Fields after the command name start at field 3 (state); utime is 14, stime 15.
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    (ticks(11) + ticks(12)) as f64 / 100.0
}

/// `(steal, total)` clock ticks of the whole machine so far, from `/proc/stat`'s `cpu` line.
/// Steal is time a virtual CPU was ready to run but the hypervisor ran someone else: on a
/// shared host it, not the server, can set the latency tail, so every report shows it.
pub fn machine_ticks() -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    // user nice system idle iowait irq softirq steal (guest time is already in user).
    let ticks: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .take(8)
        .map(|f| f.parse().unwrap_or(0))
        .collect();
    Some((*ticks.get(7)?, ticks.iter().sum()))
}

/// Percent of the machine's CPU time stolen between two `machine_ticks` readings.
pub fn steal_pct(start: Option<(u64, u64)>, end: Option<(u64, u64)>) -> Option<f64> {
    let ((s0, t0), (s1, t1)) = (start?, end?);
    (t1 > t0).then(|| 100.0 * s1.saturating_sub(s0) as f64 / (t1 - t0) as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steal_is_the_stolen_share_of_the_ticks_between_readings() {
        assert_eq!(steal_pct(Some((10, 1000)), Some((60, 1500))), Some(10.0));
        assert_eq!(steal_pct(Some((10, 1000)), Some((10, 1400))), Some(0.0));
        // No time passed, or /proc/stat unreadable: no figure rather than a made-up one.
        assert_eq!(steal_pct(Some((10, 1000)), Some((10, 1000))), None);
        assert_eq!(steal_pct(None, Some((10, 1000))), None);
        let (steal, total) = machine_ticks().expect("/proc/stat has a cpu line");
        assert!(steal <= total && total > 0);
    }
}
