//! Who a request comes from and where: the session cookie, the client's address, the
//! `Origin` check that keeps other sites from opening WebSockets with a visitor's cookie, and
//! the `Host` check that keeps other names from reaching Hearth (DNS rebinding: a hostile
//! name that resolves to this server makes the visitor's browser treat Hearth as that
//! site, Origin and all).
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

/// Whether a request is addressed to this server: its host (behind a trusted proxy, the
/// forwarded one) is one of the public hosts, the host of an allowed origin (names the
/// operator vouches for), a loopback name, or an IP literal. A request without a host
/// (HTTP/1.0, not a browser) passes.
pub fn host_allowed(config: &SecurityConfig, headers: &HeaderMap) -> bool {
    let forwarded = config
        .trust_proxy
        .then(|| headers.get("x-forwarded-host"))
        .flatten();
    let Some(host) = forwarded.or_else(|| headers.get(header::HOST)) else {
        return true;
    };
    let Ok(host) = host.to_str() else {
        return false;
    };
    // A proxy that appends puts its own view last, like X-Forwarded-For.
    let host = host.rsplit(',').next().unwrap_or("").trim();
    let name = host_name(host);
    if name.parse::<IpAddr>().is_ok()
        || name.eq_ignore_ascii_case("localhost")
        || name.to_ascii_lowercase().ends_with(".localhost")
    {
        return true;
    }
    let origin_hosts = config.allowed_origins.iter().filter_map(|origin| {
        origin
            .strip_prefix("https://")
            .or_else(|| origin.strip_prefix("http://"))
            .map(|o| o.trim_end_matches('/'))
    });
    config
        .public_hosts
        .iter()
        .map(String::as_str)
        .chain(origin_hosts)
        .any(|public| host_name(public).eq_ignore_ascii_case(name))
}

/// The name in a `host[:port]` (IPv6 literals without their brackets), without a trailing dot.
fn host_name(host: &str) -> &str {
    let host = host.trim();
    let name = if let Some(v6) = host.strip_prefix('[') {
        v6.split(']').next().unwrap_or("")
    } else {
        match host.rsplit_once(':') {
            Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
            _ => host,
        }
    };
    name.strip_suffix('.').unwrap_or(name)
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

    #[test]
    fn only_public_hosts_loopback_names_and_ip_literals_are_served() {
        let config = SecurityConfig {
            public_hosts: vec!["Chat.Example.com".into()],
            allowed_origins: vec!["https://app.example.org:8443/".into()],
            ..SecurityConfig::default()
        };
        let ok = |h: &[(&'static str, &'static str)]| host_allowed(&config, &headers(h));
        for host in [
            "127.0.0.1:3000",
            "[::1]:3000",
            "10.1.2.3",
            "localhost:3000",
            "app.localhost",
            "chat.example.com",
            "chat.example.com.:8443",
            "app.example.org",
        ] {
            assert!(ok(&[("host", host)]), "{host}");
        }
        assert!(ok(&[]), "no Host at all (HTTP/1.0)");
        for host in ["rebind.evil.example", "evil.example:3000", "example.com"] {
            assert!(!ok(&[("host", host)]), "{host}");
        }
        // A forwarded host counts only behind a trusted proxy, and then instead of Host.
        let forged = [("host", "127.0.0.1"), ("x-forwarded-host", "evil.example")];
        assert!(ok(&forged));
        let proxied = SecurityConfig {
            trust_proxy: true,
            ..config.clone()
        };
        assert!(!host_allowed(&proxied, &headers(&forged)));
        let via_proxy = [
            ("host", "hearth:3000"),
            ("x-forwarded-host", "chat.example.com"),
        ];
        assert!(host_allowed(&proxied, &headers(&via_proxy)));
    }
}
