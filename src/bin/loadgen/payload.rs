//! Message bodies: a token naming the run, the sender and its counter, the send time, and
//! padding up to `--size`. Every protocol carries the same body, so every receiver measures
//! latency and detects loss and duplicates the same way.

use std::fmt::Write as _;

pub fn make_payload(tag: &str, sender: usize, counter: u64, sent_us: u64, size: usize) -> String {
    let mut p = String::with_capacity(size.max(32));
    let _ = write!(p, "{tag}s{sender}:{counter}:{sent_us}:");
    if p.len() < size {
        p.extend(std::iter::repeat_n('x', size - p.len()));
    }
    p
}

/// `(sender, counter, sent_us)` from a payload of this run, or `None`.
pub fn parse_payload(p: &str, tag: &str) -> Option<(usize, u64, u64)> {
    let rest = p.strip_prefix(tag)?.strip_prefix('s')?;
    let mut parts = rest.splitn(4, ':');
    let sender = parts.next()?.parse().ok()?;
    let counter = parts.next()?.parse().ok()?;
    let sent_us = parts.next()?.parse().ok()?;
    Some((sender, counter, sent_us))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_round_trips_and_pads() {
        let p = make_payload("ab1", 12, 345, 6789, 64);
        assert_eq!(p.len(), 64);
        assert_eq!(parse_payload(&p, "ab1"), Some((12, 345, 6789)));
        assert_eq!(parse_payload(&p, "zz9"), None);
        let short = make_payload("ab1", 1, 2, 3, 4);
        assert_eq!(parse_payload(&short, "ab1"), Some((1, 2, 3)));
    }
}
