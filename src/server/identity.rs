//! Who a request comes from and where: the session cookie, the client's address, and the
//! `Origin` check that keeps other sites from opening WebSockets with a visitor's cookie.
//!
//! The cookie holds a random session token (see [`super::accounts`]); it is HttpOnly (the
//! WebSocket handshake carries it, scripts never need it), SameSite=Lax (a cross-site form
//! post arrives without it), and Secure when the site is served over https.

use super::accounts::SESSION_COOKIE;
use super::limits::SecurityConfig;
use axum::extract::ConnectInfo;
use axum::http::{header, request::Parts, HeaderMap, HeaderValue};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

/// The session token from the request's cookies, if any.
pub fn session_token(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == SESSION_COOKIE)
        .map(|(_, value)| value)
        .filter(|v| v.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// A `Set-Cookie` value holding `token` for `max_age_secs` (0 deletes the cookie).
pub fn session_cookie(token: &str, max_age_secs: u64, secure: bool) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    let value = format!(
        "{SESSION_COOKIE}={token}; Path=/; Max-Age={max_age_secs}; HttpOnly; SameSite=Lax{secure}"
    );
    // Tokens are hex, so the value is always visible ASCII.
    HeaderValue::from_str(&value).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// Whether cookies for this request should be `Secure`: always when configured, or when a
/// trusted proxy says the visitor came over https.
pub fn wants_secure_cookie(config: &SecurityConfig, headers: &HeaderMap) -> bool {
    config.secure_cookies
        || (config.trust_proxy
            && headers
                .get("x-forwarded-proto")
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.eq_ignore_ascii_case("https")))
}

/// The client's address: the TCP peer, or with a trusted proxy the address it appended last
/// to `X-Forwarded-For` (earlier entries are whatever the client claimed).
pub fn client_ip(config: &SecurityConfig, parts: &Parts) -> IpAddr {
    let peer = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0.ip());
    if !config.trust_proxy {
        return peer;
    }
    parts
        .headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .next_back()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(peer)
}

/// Whether a WebSocket upgrade's `Origin` may use this server: no Origin (not a browser),
/// the server's own host, or one of the configured origins.
pub fn origin_allowed(config: &SecurityConfig, headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return true;
    };
    let Ok(origin) = origin.to_str() else {
        return false;
    };
    let origin = origin.trim_end_matches('/');
    if config
        .allowed_origins
        .iter()
        .any(|o| o.trim_end_matches('/').eq_ignore_ascii_case(origin))
    {
        return true;
    }
    // Same origin: the Origin's host[:port] is the Host the browser connected to (or, behind
    // a trusted proxy, the host it forwarded).
    let host = config
        .trust_proxy
        .then(|| headers.get("x-forwarded-host"))
        .flatten()
        .or_else(|| headers.get(header::HOST))
        .and_then(|h| h.to_str().ok());
    let origin_host = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"));
    matches!((host, origin_host), (Some(h), Some(o)) if h.eq_ignore_ascii_case(o))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn the_session_token_is_read_from_cookies_and_must_be_hex() {
        let h = headers(&[("cookie", "a=1; hearth_session=00ff; b=2")]);
        assert_eq!(session_token(&h), Some("00ff"));
        let h = headers(&[("cookie", "hearth_session=<script>")]);
        assert_eq!(session_token(&h), None);
        let c = session_cookie("ab", 60, true);
        let c = c.to_str().unwrap();
        assert!(c.contains("HttpOnly") && c.contains("SameSite=Lax") && c.ends_with("; Secure"));
    }

    #[test]
    fn only_same_or_listed_origins_may_upgrade() {
        let config = SecurityConfig {
            allowed_origins: vec!["https://chat.example.com".into()],
            ..SecurityConfig::default()
        };
        let ok = |h: &[(&'static str, &'static str)]| origin_allowed(&config, &headers(h));
        assert!(ok(&[("host", "127.0.0.1:3000")]));
        assert!(ok(&[
            ("host", "127.0.0.1:3000"),
            ("origin", "http://127.0.0.1:3000")
        ]));
        assert!(ok(&[("host", "x"), ("origin", "https://chat.example.com")]));
        assert!(!ok(&[
            ("host", "127.0.0.1:3000"),
            ("origin", "http://evil.example")
        ]));
        assert!(!ok(&[
            ("host", "127.0.0.1:3000"),
            ("origin", "http://127.0.0.1:3001")
        ]));
        assert!(!ok(&[("host", "127.0.0.1:3000"), ("origin", "null")]));
    }
}
