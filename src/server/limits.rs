//! Abuse limits and the security settings they come from: message rate per connection,
//! WebSocket upgrades per IP, connections per person, login attempts, allowed origins.
//!
//! Every limit is a token bucket (a burst, refilled at a steady rate), so normal use never
//! notices it and a refusal can always say when to try again. Buckets for idle keys are
//! dropped once a map grows large, so a scan from many addresses cannot grow memory without
//! bound.

use crate::protocol::AuthorKey;
use std::collections::HashMap;
use std::net::IpAddr;
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
        let now = Instant::now();
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

    fn is_full(&self, rate: f64, burst: f64) -> bool {
        self.tokens + self.last.elapsed().as_secs_f64() * rate >= burst
    }
}

/// Buckets keyed by who is asking.
struct Buckets<K> {
    map: Mutex<HashMap<K, Bucket>>,
    rate: f64,
    burst: f64,
}

impl<K: std::hash::Hash + Eq + Clone> Buckets<K> {
    fn new(rate: f64, burst: f64) -> Self {
        Buckets {
            map: Mutex::new(HashMap::new()),
            rate,
            burst,
        }
    }

    fn take(&self, key: &K) -> Result<(), Duration> {
        if self.rate <= 0.0 {
            return Ok(());
        }
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= 10_000 {
            // A full bucket is the same as no bucket: forget those.
            map.retain(|_, b| !b.is_full(self.rate, self.burst));
        }
        map.entry(key.clone())
            .or_insert_with(|| Bucket::full(self.burst))
            .take(self.rate, self.burst)
    }
}

/// The shared limits of one server.
pub struct Limits {
    pub config: SecurityConfig,
    upgrades: Buckets<IpAddr>,
    logins: Buckets<(IpAddr, String)>,
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
        Limits {
            upgrades: Buckets::new(per_minute / 60.0, per_minute),
            logins: Buckets::new(logins / (15.0 * 60.0), logins),
            posts: Buckets::new(config.message_rate, config.message_burst.max(1.0)),
            connections: Arc::new(Mutex::new(HashMap::new())),
            config,
        }
    }

    /// One WebSocket upgrade from `ip`.
    pub fn upgrade(&self, ip: IpAddr) -> Result<(), Duration> {
        self.upgrades.take(&ip)
    }

    /// One login or registration attempt for `name` from `ip`.
    pub fn login_attempt(&self, ip: IpAddr, name: &str) -> Result<(), Duration> {
        self.logins.take(&(ip, name.to_lowercase()))
    }

    /// One message posted over HTTP (the no-JavaScript form) by session `session_id`, under
    /// the same rate as a WebSocket connection.
    pub fn post(&self, session_id: i64) -> Result<(), Duration> {
        self.posts.take(&session_id)
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
}
