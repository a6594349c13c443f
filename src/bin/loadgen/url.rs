//! The `--url` check: `ws://` on a loopback host only, so the generator can never load a
//! machine other than this one.

use crate::args::Protocol;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

/// Checks the URL is `ws://` on a loopback host and returns the URL to request (adjusted to
/// Engine.IO's path for `socketio`) and the address to connect to.
pub fn resolve_url(raw: &str, protocol: Protocol) -> Result<(String, SocketAddr), String> {
    let rest = raw.strip_prefix("ws://").ok_or_else(|| {
        if raw.starts_with("wss://") {
            format!("{raw}: wss:// is not supported; the load generator only targets loopback servers over ws://")
        } else {
            format!("{raw}: the URL must start with ws://")
        }
    })?;
    let split = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(split);
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let close = v6
            .find(']')
            .ok_or_else(|| format!("{raw}: unterminated [IPv6] host"))?;
        let port = v6[close + 1..].strip_prefix(':');
        (&v6[..close], port)
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    let port: u16 = match port {
        Some(p) => p
            .parse()
            .map_err(|_| format!("{raw}: {p:?} is not a port number"))?,
        None => 80,
    };
    let ip = if host.eq_ignore_ascii_case("localhost") {
        IpAddr::V4(Ipv4Addr::LOCALHOST)
    } else {
        match host.parse::<IpAddr>() {
            Ok(ip) if ip.is_loopback() => ip,
            _ => {
                return Err(format!(
                    "refusing {raw}: host {host:?} is not loopback; hearth-loadgen only targets \
                     servers on this machine (127.0.0.1, ::1 or localhost)"
                ))
            }
        }
    };
    let path = if path.is_empty() { "/" } else { path };
    let path = match protocol {
        Protocol::Socketio if !path.starts_with("/socket.io") => {
            "/socket.io/?EIO=4&transport=websocket".to_string()
        }
        Protocol::Socketio if !path.contains("EIO=") => {
            let sep = if path.contains('?') { '&' } else { '?' };
            format!("{path}{sep}EIO=4&transport=websocket")
        }
        _ => path.to_string(),
    };
    Ok((format!("ws://{authority}{path}"), SocketAddr::new(ip, port)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_must_be_loopback() {
        let (url, addr) = resolve_url("ws://127.0.0.1:3300/ws", Protocol::Hearth).unwrap();
        assert_eq!(url, "ws://127.0.0.1:3300/ws");
        assert_eq!(addr.port(), 3300);
        assert!(resolve_url("ws://[::1]:80/ws", Protocol::Raw).is_ok());
        assert!(resolve_url("ws://localhost:1/", Protocol::Raw).is_ok());
        assert!(resolve_url("ws://10.0.0.1:3000/ws", Protocol::Hearth).is_err());
        assert!(resolve_url("ws://example.com/ws", Protocol::Hearth).is_err());
        assert!(resolve_url("wss://127.0.0.1/ws", Protocol::Hearth).is_err());
        let (url, _) = resolve_url("ws://127.0.0.1:3102", Protocol::Socketio).unwrap();
        assert_eq!(
            url,
            "ws://127.0.0.1:3102/socket.io/?EIO=4&transport=websocket"
        );
    }
}
