//! When a message was sent, as a reader sees it: its time of day, the day dividers of the log
//! ("Today", "Yesterday", then the date), and which messages group under one name.
//!
//! The server does not know the reader's time zone, so it renders times in UTC (and says so);
//! the browser renders the same UTC view while hydrating, so the two agree, and then switches
//! to local time ([`Zone::Local`]). Everything here is plain arithmetic on milliseconds since
//! the Unix epoch plus an offset, so it is the same code on both sides.

use crate::protocol::{ChatMessage, Seq};

/// Messages from one author less than this far apart are grouped under one name.
pub const GROUP_MS: u64 = 5 * 60 * 1000;

const DAY_MS: i64 = 24 * 60 * 60 * 1000;

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

/// The time zone times are shown in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Zone {
    /// What the server renders, and the browser until it has hydrated.
    Utc,
    /// The reader's own (the browser only).
    #[cfg_attr(not(feature = "hydrate"), allow(dead_code))]
    Local,
}

impl Zone {
    /// Minutes to add to UTC to get this zone's wall-clock time at `ts`.
    fn offset_minutes(self, ts: u64) -> i64 {
        match self {
            Zone::Utc => 0,
            Zone::Local => local_offset_minutes(ts),
        }
    }

    /// `ts` as this zone's wall clock, in milliseconds since the epoch.
    fn wall(self, ts: u64) -> i64 {
        ts as i64 + self.offset_minutes(ts) * 60_000
    }
}

#[cfg(feature = "hydrate")]
fn local_offset_minutes(ts: u64) -> i64 {
    // JavaScript's offset is UTC minus local time.
    -(js_sys::Date::new(&wasm_bindgen::JsValue::from_f64(ts as f64)).get_timezone_offset() as i64)
}

#[cfg(not(feature = "hydrate"))]
fn local_offset_minutes(_ts: u64) -> i64 {
    0
}

/// Now, in milliseconds since the Unix epoch.
pub fn now() -> u64 {
    #[cfg(feature = "hydrate")]
    {
        js_sys::Date::now() as u64
    }
    #[cfg(not(feature = "hydrate"))]
    {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64)
    }
}

/// The civil date of a day number (days since 1970-01-01): year, month (1–12), day (1–31).
fn civil(days: i64) -> (i64, u32, u32) {
    // Howard Hinnant's days-to-civil algorithm, on 400-year eras.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// The `datetime` attribute of a message's `<time>`: UTC, to the second.
pub fn iso(ts: u64) -> String {
    let ms = ts as i64;
    let (y, mo, d) = civil(ms.div_euclid(DAY_MS));
    let secs = ms.rem_euclid(DAY_MS) / 1000;
    // Written digit by digit: every row of every room page has one.
    let mut out = String::with_capacity(20);
    push_digits(&mut out, y, 4);
    out.push('-');
    push_digits(&mut out, i64::from(mo), 2);
    out.push('-');
    push_digits(&mut out, i64::from(d), 2);
    out.push('T');
    push_digits(&mut out, secs / 3600, 2);
    out.push(':');
    push_digits(&mut out, secs / 60 % 60, 2);
    out.push(':');
    push_digits(&mut out, secs % 60, 2);
    out.push('Z');
    out
}

/// Appends `n` (not negative) with at least `width` digits.
fn push_digits(out: &mut String, n: i64, width: usize) {
    let mut digits = [b'0'; 20];
    let mut start = digits.len();
    let mut rest = n.max(0) as u64;
    loop {
        start -= 1;
        digits[start] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    start = start.min(digits.len() - width.min(digits.len()));
    // ASCII digits only.
    out.push_str(std::str::from_utf8(&digits[start..]).unwrap_or_default());
}

/// The time of day shown beside a message ("09:05", or "09:05 UTC" before the zone is known).
pub fn clock(ts: u64, zone: Zone) -> String {
    let minutes = zone.wall(ts).rem_euclid(DAY_MS) / 60_000;
    let mut out = String::with_capacity(9);
    push_digits(&mut out, minutes / 60, 2);
    out.push(':');
    push_digits(&mut out, minutes % 60, 2);
    if zone == Zone::Utc {
        out.push_str(" UTC");
    }
    out
}

/// The day a message was sent, in `zone`, as a day number.
fn day(ts: u64, zone: Zone) -> i64 {
    zone.wall(ts).div_euclid(DAY_MS)
}

/// The divider above the first message of a day: "Today", "Yesterday", or the date.
pub fn day_label(ts: u64, now: u64, zone: Zone) -> String {
    let (d, today) = (day(ts, zone), day(now, zone));
    if d == today {
        return "Today".to_string();
    }
    if d == today - 1 {
        return "Yesterday".to_string();
    }
    let (y, m, dd) = civil(d);
    format!("{dd} {} {y}", MONTHS[(m - 1) as usize])
}

/// How one message of the log is shown: with a day divider above it (the first message of
/// its day), with the "New messages" divider above it (the first one the reader had not
/// read when the room opened), and whether it continues the group of the message before it
/// (same author, same day, within [`GROUP_MS`], no divider between), so its name is not
/// shown again.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Placement {
    pub divider: Option<String>,
    pub first_unread: bool,
    pub continues: bool,
}

/// The placement of each message in `messages` (in sequence order); `first_unread` is the
/// sequence number the "New messages" divider goes above, if any.
pub fn place(
    messages: &[ChatMessage],
    now: u64,
    zone: Zone,
    first_unread: Option<Seq>,
) -> Vec<Placement> {
    let mut out = Vec::with_capacity(messages.len());
    let mut before: Option<&ChatMessage> = None;
    for m in messages {
        let new_day = before.is_none_or(|b| day(b.ts, zone) != day(m.ts, zone));
        let unread_here = first_unread == Some(m.seq);
        let continues = !new_day
            && !unread_here
            && before.is_some_and(|b| {
                b.author == m.author && b.guest == m.guest && m.ts.saturating_sub(b.ts) < GROUP_MS
            });
        out.push(Placement {
            divider: new_day.then(|| day_label(m.ts, now, zone)),
            first_unread: unread_here,
            continues,
        });
        before = Some(m);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{ClientId, RoomId, UserName};

    fn at(seq: u64, author: &str, ts: u64) -> ChatMessage {
        ChatMessage {
            room: RoomId("r".into()),
            seq: Seq(seq),
            author: UserName(author.into()),
            text: String::new(),
            client_id: ClientId(seq.to_string()),
            ts,
            guest: false,
            rich: None,
            ..Default::default()
        }
    }

    /// 2026-12-06T09:05:07Z.
    const NOW: u64 = 1_796_547_907_000;

    #[test]
    fn times_are_written_as_utc_instants_and_wall_clocks() {
        assert_eq!(iso(0), "1970-01-01T00:00:00Z");
        assert_eq!(iso(NOW), "2026-12-06T09:05:07Z");
        assert_eq!(iso(951_782_400_000), "2000-02-29T00:00:00Z");
        assert_eq!(clock(NOW, Zone::Utc), "09:05 UTC");
    }

    #[test]
    fn days_are_today_yesterday_then_dates() {
        let hour = 3_600_000;
        assert_eq!(day_label(NOW - hour, NOW, Zone::Utc), "Today");
        assert_eq!(day_label(NOW - 10 * hour, NOW, Zone::Utc), "Yesterday");
        assert_eq!(
            day_label(NOW - 60 * hour, NOW, Zone::Utc),
            "3 December 2026"
        );
        assert_eq!(day_label(0, NOW, Zone::Utc), "1 January 1970");
    }

    #[test]
    fn messages_group_by_author_and_minutes_and_days_divide() {
        let minute = 60_000;
        let yesterday = NOW - 24 * 60 * minute;
        let log = [
            at(1, "ada", yesterday),
            at(2, "ada", NOW - 10 * minute),
            at(3, "ada", NOW - 8 * minute),
            at(4, "bob", NOW - 7 * minute),
            at(5, "ada", NOW - 6 * minute),
            at(6, "ada", NOW),
        ];
        let placed: Vec<_> = place(&log, NOW, Zone::Utc, None)
            .into_iter()
            .map(|p| (p.divider, p.continues))
            .collect();
        assert_eq!(
            placed,
            [
                (Some("Yesterday".to_string()), false),
                (Some("Today".to_string()), false),
                (None, true),
                (None, false),
                (None, false),
                // Six minutes after ada's last: a new group.
                (None, false),
            ]
        );
    }

    #[test]
    fn the_new_messages_divider_goes_above_the_first_unread_and_breaks_the_group() {
        let log = [at(1, "ada", NOW), at(2, "ada", NOW), at(3, "ada", NOW)];
        let placed: Vec<_> = place(&log, NOW, Zone::Utc, Some(Seq(2)))
            .into_iter()
            .map(|p| (p.first_unread, p.continues))
            .collect();
        assert_eq!(placed, [(false, false), (true, false), (false, true)]);
    }
}
