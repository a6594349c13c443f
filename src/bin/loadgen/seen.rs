//! Dedupe: which counters of one sender a receiver has seen, in a few words of memory.

use std::collections::VecDeque;

/// A counter this far ahead of everything seen is not ours (or absurd); ignore it.
const MAX_COUNTER_GAP: u64 = 1 << 26;

/// Counters below `base` were all seen; `words` is a bitset from `base` on. Messages mostly
/// arrive in order, so this stays a word or two per sender.
#[derive(Default)]
pub struct Seen {
    base: u64,
    words: VecDeque<u64>,
}

pub enum Insert {
    New,
    Dup,
    Bogus,
}

impl Seen {
    pub fn insert(&mut self, counter: u64) -> Insert {
        if counter < self.base {
            return Insert::Dup;
        }
        let offset = counter - self.base;
        if offset > MAX_COUNTER_GAP {
            return Insert::Bogus;
        }
        let word = (offset / 64) as usize;
        let bit = 1u64 << (offset % 64);
        if word >= self.words.len() {
            self.words.resize(word + 1, 0);
        }
        if self.words[word] & bit != 0 {
            return Insert::Dup;
        }
        self.words[word] |= bit;
        while self.words.front() == Some(&u64::MAX) {
            self.words.pop_front();
            self.base += 64;
        }
        Insert::New
    }

    /// How many counters from 0 on were all seen.
    pub fn gapless(&self) -> u64 {
        self.base
            + self
                .words
                .front()
                .map_or(0, |w| u64::from(w.trailing_ones()))
    }

    pub fn count(&self) -> u64 {
        self.base
            + self
                .words
                .iter()
                .map(|w| w.count_ones() as u64)
                .sum::<u64>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seen_dedupes_in_and_out_of_order() {
        let mut s = Seen::default();
        for c in (0..200).rev() {
            assert!(matches!(s.insert(c), Insert::New));
        }
        assert!(matches!(s.insert(5), Insert::Dup));
        assert!(matches!(s.insert(199), Insert::Dup));
        assert_eq!(s.count(), 200);
        assert_eq!(s.words.len(), 1);
        assert!(matches!(s.insert(1 << 40), Insert::Bogus));
    }

    #[test]
    fn gapless_stops_at_the_first_hole() {
        let mut s = Seen::default();
        assert_eq!(s.gapless(), 0);
        for c in (0..70).chain(72..80) {
            let _ = s.insert(c);
        }
        assert_eq!(s.gapless(), 70);
        assert_eq!(s.count(), 78);
        let _ = s.insert(70);
        let _ = s.insert(71);
        assert_eq!(s.gapless(), 80);
    }
}
