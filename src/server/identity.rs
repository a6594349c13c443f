//! Who a request is: the guest display name remembered in the `hearth_name` cookie.
//!
//! The cookie is HttpOnly (scripts never need it: the WebSocket handshake carries it) and
//! SameSite=Lax. Accounts replace this module's source of truth later; callers only see
//! [`name_from_headers`].

use crate::names::parse_display_name;
use crate::protocol::UserName;
use axum::http::{header, HeaderMap, HeaderValue};

pub const NAME_COOKIE: &str = "hearth_name";

/// The validated display name from the request's cookies, if any.
pub fn name_from_headers(headers: &HeaderMap) -> Option<UserName> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == NAME_COOKIE)
        .and_then(|(_, value)| percent_decode(value))
        .and_then(|raw| parse_display_name(&raw).ok())
}

/// A `Set-Cookie` value that remembers `name` for a year.
pub fn name_cookie(name: &UserName) -> HeaderValue {
    let value = format!(
        "{NAME_COOKIE}={}; Path=/; Max-Age=31536000; HttpOnly; SameSite=Lax",
        percent_encode(name.as_str())
    );
    // Percent-encoding leaves only visible ASCII, which is always a valid header value.
    HeaderValue::from_str(&value).unwrap_or_else(|_| HeaderValue::from_static(""))
}

fn percent_encode(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len() * 3);
    for b in raw.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn percent_decode(raw: &str) -> Option<String> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = raw.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_survive_the_cookie_round_trip() {
        for raw in ["Ada", "Zoë Ñ", "a;b=c", "<script>"] {
            let name = UserName(raw.to_string());
            let cookie = name_cookie(&name);
            let pair = cookie
                .to_str()
                .unwrap()
                .split(';')
                .next()
                .unwrap()
                .to_string();
            let mut headers = HeaderMap::new();
            headers.insert(
                header::COOKIE,
                HeaderValue::from_str(&format!("x=1; {pair}")).unwrap(),
            );
            assert_eq!(name_from_headers(&headers), Some(name));
        }
    }

    #[test]
    fn malformed_cookies_are_no_name() {
        let mut headers = HeaderMap::new();
        headers.insert(header::COOKIE, HeaderValue::from_static("hearth_name=%ZZ"));
        assert_eq!(name_from_headers(&headers), None);
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("hearth_name=%07bell"),
        );
        assert_eq!(name_from_headers(&headers), None);
    }
}
