//! Abuse limits and the security settings they come from: message rate per connection,
//! WebSocket upgrades per address, connections per person, login and registration attempts,
//! form posts per address, allowed origins.
//!
//! Every limit is a token bucket (a burst, refilled at a steady rate), so normal use never
//! notices it and a refusal can always say when to try again. Per-address limits key IPv6
//! clients by their /64 (one host usually has a whole /64), and IPv4-mapped IPv6 addresses
//! as the IPv4 address they are.
//!
//! Keyed buckets live in two generations of bounded size: a key is looked up in the current
//! one, then the previous one (and moved forward); when the current generation is full it
//! becomes the previous one and the old previous one is dropped. So memory is bounded by
//! twice [`KEYS_PER_GENERATION`] entries per limit, each request costs a constant number of
//! hash lookups whatever the number of keys, and a key is forgotten only after that many
//! other keys were seen since its last use.

use crate::protocol::AuthorKey;
use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Security settings; [`Default`] is what the binary uses unless told otherwise.
#[derive(Clone, Debug)]
pub struct SecurityConfig {
    /// Whether people may chat under a display name without an account.
    pub allow_guests: bool,
    /// Origins (`scheme://host[:port]`) besides the server's own that may open WebSockets.
    pub allowed_origins: Vec<String>,
    /// Trust `X-Forwarded-For` / `X-Forwarded-Proto` from a reverse proxy in front.
    pub trust_proxy: bool,
    /// Always mark cookies `Secure` (set it when users reach the server over https).
    pub secure_cookies: bool,
    /// Messages (and joins/leaves) per second per connection, and the burst allowed; a rate
    /// of 0 turns the limit off.
    pub message_rate: f64,
    pub message_burst: f64,
    /// Frames refused for rate within ten seconds before the connection is closed (1008).
    pub flood_strikes: u32,
    /// WebSocket upgrades per minute per IP (also the burst); 0 turns the limit off.
    pub upgrades_per_minute: u32,
    /// Open WebSocket connections per person (tabs, devices); 0 turns the limit off.
    pub connections_per_user: usize,
    /// Login and registration attempts per 15 minutes per IP and name; 0 turns it off.
    pub login_attempts: u32,
    /// How long a session lasts.
    pub session_ttl: Duration,
    /// Login and registration attempts per 15 minutes per address, whatever the names;
    /// 0 turns it off.
    pub login_attempts_per_address: u32,
    /// Login attempts per 15 minutes per name, whatever the addresses; 0 turns it off.
    pub login_attempts_per_name: u32,
    /// Accounts registered per hour per address; 0 turns it off.
    pub registrations_per_hour: u32,
    /// Form posts (server functions that change something) per minute per address, also the
    /// burst; 0 turns it off.
    pub form_posts_per_minute: u32,
    /// How long a guest session lasts (at most `session_ttl`).
    pub guest_session_ttl: Duration,
    /// Host names (`chat.example.com`, a port optional) requests may be addressed to, beside
    /// loopback names and IP literals; others are refused (DNS rebinding).
    pub public_hosts: Vec<String>,
}

impl Default for SecurityConfig {
    fn default() -> Self {
        SecurityConfig {
            allow_guests: true,
            allowed_origins: Vec::new(),
            trust_proxy: false,
            secure_cookies: false,
            message_rate: 10.0,
            message_burst: 30.0,
            flood_strikes: 20,
            upgrades_per_minute: 120,
            connections_per_user: 20,
            login_attempts: 10,
            session_ttl: Duration::from_secs(30 * 24 * 3600),
            login_attempts_per_address: 30,
            login_attempts_per_name: 30,
            registrations_per_hour: 20,
            form_posts_per_minute: 30,
            guest_session_ttl: Duration::from_secs(7 * 24 * 3600),
            public_hosts: Vec::new(),
        }
    }
}

/// A token bucket: `burst` tokens, refilled at `rate` per second.
#[derive(Clone, Debug)]
pub struct Bucket {
    tokens: f64,
    last: Instant,
}

impl Bucket {
    pub fn full(burst: f64) -> Bucket {
        Bucket {
            tokens: burst,
            last: Instant::now(),
        }
    }

    /// Takes one token, or says how long until one is available.
    pub fn take(&mut self, rate: f64, burst: f64) -> Result<(), Duration> {
        self.take_at(rate, burst, Instant::now())
    }

    fn take_at(&mut self, rate: f64, burst: f64, now: Instant) -> Result<(), Duration> {
        let elapsed = now.duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * rate).min(burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - self.tokens) / rate))
        }
    }

    /// Returns a token taken for an attempt that turned out not to count.
    fn give_back(&mut self, burst: f64) {
        self.tokens = (self.tokens + 1.0).min(burst);
    }
}

/// Keys kept per generation of a keyed limit (see the module docs).
pub const KEYS_PER_GENERATION: usize = 50_000;

/// Buckets keyed by who is asking, in two bounded generations.
pub(crate) struct Buckets<K> {
    map: Mutex<Generations<K>>,
    rate: f64,
    burst: f64,
    capacity: usize,
}

struct Generations<K> {
    current: HashMap<K, Bucket>,
    previous: HashMap<K, Bucket>,
}

impl<K: std::hash::Hash + Eq> Buckets<K> {
    /// `burst` tokens per key, refilled at `rate` a second; a rate of 0 lets everything by.
    pub(crate) fn new(rate: f64, burst: f64) -> Self {
        Self::with_capacity(rate, burst, KEYS_PER_GENERATION)
    }

    fn with_capacity(rate: f64, burst: f64, capacity: usize) -> Self {
        Buckets {
            map: Mutex::new(Generations {
                current: HashMap::new(),
                previous: HashMap::new(),
            }),
            rate,
            burst,
            capacity: capacity.max(1),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Generations<K>> {
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes one of `key`'s tokens, or says how long until one is available.
    pub(crate) fn take(&self, key: K) -> Result<(), Duration> {
        self.take_at(key, Instant::now())
    }

    pub(crate) fn take_at(&self, key: K, now: Instant) -> Result<(), Duration> {
        if self.rate <= 0.0 {
            return Ok(());
        }
        let mut map = self.lock();
        if let Some(bucket) = map.current.get_mut(&key) {
            return bucket.take_at(self.rate, self.burst, now);
        }
        let mut bucket = match map.previous.remove(&key) {
            Some(bucket) => bucket,
            None => Bucket::full(self.burst),
        };
        let verdict = bucket.take_at(self.rate, self.burst, now);
        // A full generation retires; the one it replaces is freed after the lock is let go.
        let retired = (map.current.len() >= self.capacity).then(|| {
            let current = std::mem::take(&mut map.current);
            std::mem::replace(&mut map.previous, current)
        });
        map.current.insert(key, bucket);
        drop(map);
        drop(retired);
        verdict
    }

    /// Returns a token taken by [`Buckets::take`] for an attempt that did not count.
    pub(crate) fn give_back(&self, key: &K) {
        if let Some(bucket) = self.lock().current.get_mut(key) {
            bucket.give_back(self.burst);
        }
    }

    /// Keys held, in both generations.
    #[cfg(test)]
    fn len(&self) -> usize {
        let map = self.lock();
        map.current.len() + map.previous.len()
    }
}

/// The key per-address limits use: an IPv6 client's /64, an IPv4-mapped IPv6 address as
/// IPv4, any other address as itself.
pub fn address_group(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let prefix = u128::from(v6) & !((1u128 << 64) - 1);
                IpAddr::V6(Ipv6Addr::from(prefix))
            }
        },
    }
}

/// A limit of `n` per 15 minutes, all of which may come at once.
fn per_quarter_hour<K: std::hash::Hash + Eq>(n: u32) -> Buckets<K> {
    Buckets::new(n as f64 / (15.0 * 60.0), n as f64)
}

/// A refusal's wait as a `Retry-After` value: whole seconds, rounded up, at least one.
pub fn retry_after_secs(wait: Duration) -> u64 {
    wait.as_secs_f64().ceil().max(1.0) as u64
}

/// The shared limits of one server.
pub struct Limits {
    pub config: SecurityConfig,
    upgrades: Buckets<IpAddr>,
    logins: Buckets<(IpAddr, String)>,
    logins_per_address: Buckets<IpAddr>,
    logins_per_name: Buckets<String>,
    registrations: Buckets<IpAddr>,
    forms: Buckets<IpAddr>,
    posts: Buckets<i64>,
    connections: Arc<Mutex<HashMap<AuthorKey, usize>>>,
}

/// Holds one of a person's connection slots; dropping it gives the slot back.
pub struct ConnectionSlot {
    user: AuthorKey,
    connections: Arc<Mutex<HashMap<AuthorKey, usize>>>,
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        let mut map = self.connections.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = map.get_mut(&self.user) {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.user);
            }
        }
    }
}

impl Limits {
    pub fn new(config: SecurityConfig) -> Limits {
        let per_minute = config.upgrades_per_minute as f64;
        let logins = config.login_attempts as f64;
        let forms = config.form_posts_per_minute as f64;
        let registrations = config.registrations_per_hour as f64;
        Limits {
            upgrades: Buckets::new(per_minute / 60.0, per_minute),
            logins: Buckets::new(logins / (15.0 * 60.0), logins),
            logins_per_address: per_quarter_hour(config.login_attempts_per_address),
            logins_per_name: per_quarter_hour(config.login_attempts_per_name),
            registrations: Buckets::new(registrations / 3600.0, registrations),
            forms: Buckets::new(forms / 60.0, forms),
            posts: Buckets::new(config.message_rate, config.message_burst.max(1.0)),
            connections: Arc::new(Mutex::new(HashMap::new())),
            config,
        }
    }

    /// One WebSocket upgrade from `ip`.
    pub fn upgrade(&self, ip: IpAddr) -> Result<(), Duration> {
        self.upgrades.take(address_group(ip))
    }

    /// One login or registration attempt for `name` from `ip`: counted against the
    /// address and name together, the address whatever the name, and the name whatever the
    /// address. The first budget that is spent refuses it.
    pub fn login_attempt(&self, ip: IpAddr, name: &str) -> Result<(), Duration> {
        let ip = address_group(ip);
        let name = name.to_lowercase();
        self.logins_per_address.take(ip)?;
        self.logins.take((ip, name.clone()))?;
        self.logins_per_name.take(name)
    }

    /// One account registration from `ip`. Give it back with
    /// [`Limits::registration_failed`] when no account was made.
    pub fn registration(&self, ip: IpAddr) -> Result<(), Duration> {
        self.registrations.take(address_group(ip))
    }

    /// Returns the registration counted for `ip`: no account was made.
    pub fn registration_failed(&self, ip: IpAddr) {
        self.registrations.give_back(&address_group(ip));
    }

    /// One form post (a server function that changes something) from `ip`.
    pub fn form_post(&self, ip: IpAddr) -> Result<(), Duration> {
        self.forms.take(address_group(ip))
    }

    /// One message posted over HTTP (the no-JavaScript form) by session `session_id`, under
    /// the same rate as a WebSocket connection.
    pub fn post(&self, session_id: i64) -> Result<(), Duration> {
        self.posts.take(session_id)
    }

    /// A connection slot for the person `user` (an account or a guest session, never a
    /// display name: two guests with one name have a cap each), unless they already have
    /// the most allowed.
    pub fn connection(&self, user: &AuthorKey) -> Option<ConnectionSlot> {
        let limit = self.config.connections_per_user;
        let mut map = self.connections.lock().unwrap_or_else(|p| p.into_inner());
        let n = map.entry(user.clone()).or_insert(0);
        if limit > 0 && *n >= limit {
            return None;
        }
        *n += 1;
        Some(ConnectionSlot {
            user: user.clone(),
            connections: self.connections.clone(),
        })
    }

    /// A per-connection message bucket, or `None` when the limit is off.
    pub fn message_bucket(&self) -> Option<MessageLimit> {
        (self.config.message_rate > 0.0).then(|| MessageLimit {
            bucket: Bucket::full(self.config.message_burst.max(1.0)),
            rate: self.config.message_rate,
            burst: self.config.message_burst.max(1.0),
            strikes: 0,
            max_strikes: self.config.flood_strikes.max(1),
            window_start: Instant::now(),
        })
    }

    /// A connection's bucket for `rate` frames per second with `burst` above it, closing a
    /// sustained flood after the configured strikes like [`Limits::message_bucket`]. Always
    /// on: it guards frames (pings) that the message rate setting does not cover.
    pub fn bucket(&self, rate: f64, burst: f64) -> MessageLimit {
        MessageLimit {
            bucket: Bucket::full(burst.max(1.0)),
            rate,
            burst: burst.max(1.0),
            strikes: 0,
            max_strikes: self.config.flood_strikes.max(1),
            window_start: Instant::now(),
        }
    }
}

/// One connection's message rate limit, with the strike count that turns a sustained flood
/// into a close.
pub struct MessageLimit {
    bucket: Bucket,
    rate: f64,
    burst: f64,
    strikes: u32,
    max_strikes: u32,
    window_start: Instant,
}

/// What to do with a frame under the rate limit.
#[derive(Debug, PartialEq, Eq)]
pub enum RateVerdict {
    Allow,
    /// Refuse it; the client may try again after this long.
    Refuse(Duration),
    /// The connection keeps flooding: close it.
    Close,
}

impl MessageLimit {
    pub fn check(&mut self) -> RateVerdict {
        match self.bucket.take(self.rate, self.burst) {
            Ok(()) => RateVerdict::Allow,
            Err(wait) => {
                if self.window_start.elapsed() > Duration::from_secs(10) {
                    self.window_start = Instant::now();
                    self.strikes = 0;
                }
                self.strikes += 1;
                if self.strikes > self.max_strikes {
                    RateVerdict::Close
                } else {
                    RateVerdict::Refuse(wait)
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_allows_its_burst_then_says_when() {
        let mut b = Bucket::full(3.0);
        for _ in 0..3 {
            assert!(b.take(1.0, 3.0).is_ok());
        }
        let wait = b.take(1.0, 3.0).unwrap_err();
        assert!(wait <= Duration::from_secs(1) && wait > Duration::from_millis(900));
    }

    #[test]
    fn a_flood_is_refused_then_closed() {
        let limits = Limits::new(SecurityConfig {
            message_rate: 1.0,
            message_burst: 2.0,
            flood_strikes: 3,
            ..SecurityConfig::default()
        });
        let mut m = limits.message_bucket().unwrap();
        assert_eq!(m.check(), RateVerdict::Allow);
        assert_eq!(m.check(), RateVerdict::Allow);
        for _ in 0..3 {
            assert!(matches!(m.check(), RateVerdict::Refuse(_)));
        }
        assert_eq!(m.check(), RateVerdict::Close);
    }

    #[test]
    fn connection_slots_are_counted_per_person_and_returned() {
        let limits = Limits::new(SecurityConfig {
            connections_per_user: 2,
            ..SecurityConfig::default()
        });
        let ada = AuthorKey::guest(1);
        let a = limits.connection(&ada).unwrap();
        let _b = limits.connection(&ada).unwrap();
        assert!(limits.connection(&ada).is_none());
        assert!(
            limits.connection(&AuthorKey::guest(2)).is_some(),
            "another guest, whatever her name, has her own slots"
        );
        drop(a);
        assert!(limits.connection(&ada).is_some());
    }

    #[test]
    fn upgrades_and_logins_are_limited_per_key() {
        let limits = Limits::new(SecurityConfig {
            upgrades_per_minute: 2,
            login_attempts: 1,
            ..SecurityConfig::default()
        });
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let other: IpAddr = "127.0.0.2".parse().unwrap();
        assert!(limits.upgrade(ip).is_ok() && limits.upgrade(ip).is_ok());
        assert!(limits.upgrade(ip).is_err());
        assert!(limits.upgrade(other).is_ok());
        assert!(limits.login_attempt(ip, "Ada").is_ok());
        assert!(limits.login_attempt(ip, "ada").is_err());
        assert!(limits.login_attempt(ip, "bob").is_ok());
    }

    #[test]
    fn a_hundred_thousand_keys_stay_bounded_and_recent_keys_keep_their_state() {
        let buckets: Buckets<u32> = Buckets::with_capacity(1.0 / 900.0, 2.0, 1_000);
        assert!(buckets.take(0).is_ok() && buckets.take(0).is_ok());
        for key in 1..100_000 {
            assert!(buckets.take(key).is_ok());
            // A key in use keeps its spent bucket however many others pass.
            if key % 500 == 0 {
                assert!(buckets.take(0).is_err(), "key 0 was forgotten at {key}");
            }
            assert!(buckets.len() <= 2_000, "{} keys at {key}", buckets.len());
        }
    }

    #[test]
    fn ipv6_clients_are_grouped_by_64_and_mapped_ipv4_as_ipv4() {
        let group = |s: &str| address_group(s.parse().unwrap());
        assert_eq!(
            group("2001:db8:1:2::1"),
            group("2001:db8:1:2:ffff:ffff:ffff:ffff")
        );
        assert_ne!(group("2001:db8:1:2::1"), group("2001:db8:1:3::1"));
        assert_eq!(group("::ffff:192.0.2.7"), group("192.0.2.7"));
        assert_eq!(group("192.0.2.7").to_string(), "192.0.2.7");
    }

    #[test]
    fn logins_have_address_name_and_pair_budgets_and_registrations_a_cap() {
        let limits = Limits::new(SecurityConfig {
            login_attempts: 100,
            login_attempts_per_address: 3,
            login_attempts_per_name: 2,
            registrations_per_hour: 1,
            ..SecurityConfig::default()
        });
        let ip = |s: &str| -> IpAddr { s.parse().unwrap() };
        for name in ["a", "b", "c"] {
            assert!(limits.login_attempt(ip("192.0.2.1"), name).is_ok());
        }
        assert!(
            limits.login_attempt(ip("192.0.2.1"), "d").is_err(),
            "address spent"
        );
        assert!(limits.login_attempt(ip("192.0.2.2"), "A").is_ok());
        assert!(
            limits.login_attempt(ip("192.0.2.3"), "a").is_err(),
            "name spent"
        );
        assert!(limits.registration(ip("192.0.2.9")).is_ok());
        limits.registration_failed(ip("192.0.2.9"));
        assert!(limits.registration(ip("192.0.2.9")).is_ok());
        let wait = limits.registration(ip("192.0.2.9")).unwrap_err();
        assert!(retry_after_secs(wait) > 3_000, "{wait:?}");
    }

    #[test]
    fn retry_after_rounds_up() {
        assert_eq!(retry_after_secs(Duration::from_millis(1)), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(1_001)), 2);
        assert_eq!(retry_after_secs(Duration::from_secs(60)), 60);
    }
}
