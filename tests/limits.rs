//! Per-address and per-name budgets over a real port: limiter maps under a spray of
//! addresses, form posts per address, login and registration budgets, IPv6 grouping.

mod common;

use common::{call, no_limits, secured as server};
use hearth::api::{Login, Register, SetName};
use hearth::server::limits::SecurityConfig;
use std::net::SocketAddr;

/// Calls server function `S` as if from `ip` (through a trusted proxy).
async fn call_from<S: leptos::server_fn::ServerFn>(
    addr: SocketAddr,
    ip: &str,
    fields: &[(&str, &str)],
) -> common::Reply {
    let body = common::form(fields);
    common::http(
        addr,
        "POST",
        S::PATH,
        Some(&body),
        &[("Accept", "application/json"), ("X-Forwarded-For", ip)],
    )
    .await
}

fn retry_after(reply: &common::Reply) -> Option<u64> {
    reply
        .headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("retry-after"))
        .and_then(|(_, v)| v.parse().ok())
}

/// One address choosing guest names as fast as it can gets 429 with Retry-After once its
/// form budget is spent; another address is unaffected.
#[tokio::test]
async fn a_set_name_flood_from_one_address_gets_429_with_retry_after() {
    let server = server(SecurityConfig {
        trust_proxy: true,
        ..SecurityConfig::default()
    })
    .await;
    let budget = SecurityConfig::default().form_posts_per_minute;
    for i in 0..budget {
        let r = call_from::<SetName>(server.addr, "192.0.2.1", &[("name", &format!("g{i}"))]).await;
        assert_eq!(r.status, 200, "{i}: {r:?}");
    }
    let r = call_from::<SetName>(server.addr, "192.0.2.1", &[("name", "one more")]).await;
    assert_eq!(r.status, 429, "{r:?}");
    assert!(r.body.contains("Too many requests"), "{}", r.body);
    let wait = retry_after(&r).expect("Retry-After");
    assert!((1..=2).contains(&wait), "Retry-After {wait}");
    let r = call_from::<SetName>(server.addr, "192.0.2.2", &[("name", "neighbour")]).await;
    assert_eq!(r.status, 200, "{r:?}");
}

/// A guest's cookie (and session row) lasts a week by default, a login 30 days.
#[tokio::test]
async fn guest_sessions_last_a_week_and_logins_a_month() {
    let server = server(no_limits()).await;
    let max_age = |r: &common::Reply| {
        r.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case("set-cookie"))
            .find_map(|(_, v)| {
                v.split(';')
                    .find_map(|p| p.trim().strip_prefix("Max-Age="))
                    .map(|s| s.parse::<u64>().unwrap())
            })
            .expect("a cookie with Max-Age")
    };
    let guest = call::<SetName>(server.addr, &[("name", "Gus")], None).await;
    assert_eq!(max_age(&guest), 7 * 24 * 3600);
    let account = call::<Register>(
        server.addr,
        &[("name", "ada"), ("password", "correct horse")],
        None,
    )
    .await;
    assert_eq!(max_age(&account), 30 * 24 * 3600);
}

/// One address trying many names (a password spray) is refused once its address-wide
/// budget is spent, even though no single name was tried twice.
#[tokio::test]
async fn forty_names_sprayed_from_one_address_are_refused() {
    let server = server(SecurityConfig {
        login_attempts: 10,
        login_attempts_per_address: 30,
        ..no_limits()
    })
    .await;
    let mut refused = 0;
    for i in 0..40 {
        let r = call::<Login>(
            server.addr,
            &[("name", &format!("user{i}")), ("password", "Summer2026!")],
            None,
        )
        .await;
        match r.status {
            401 => assert_eq!(refused, 0, "a refusal is followed by refusals"),
            429 => {
                assert!(retry_after(&r).is_some_and(|s| s >= 1), "{r:?}");
                refused += 1;
            }
            other => panic!("{other}: {r:?}"),
        }
    }
    assert_eq!(refused, 10, "attempts 31-40 are refused");
}

/// One name tried from many addresses is refused once the name's budget is spent.
#[tokio::test]
async fn a_name_tried_from_many_addresses_is_refused() {
    let server = server(SecurityConfig {
        trust_proxy: true,
        login_attempts_per_name: 5,
        ..no_limits()
    })
    .await;
    for i in 0..5 {
        let ip = format!("198.51.100.{i}");
        let r =
            call_from::<Login>(server.addr, &ip, &[("name", "ada"), ("password", "guess")]).await;
        assert_eq!(r.status, 401, "{r:?}");
    }
    let r = call_from::<Login>(
        server.addr,
        "198.51.100.99",
        &[("name", "ADA"), ("password", "guess")],
    )
    .await;
    assert_eq!(r.status, 429, "{r:?}");
    assert!(r.body.contains("Too many attempts"), "{}", r.body);
}

/// Five accounts an hour per address: the sixth is refused with a sentence and
/// Retry-After; registrations that made no account do not count; another address can still
/// register.
#[tokio::test]
async fn registrations_are_capped_per_address() {
    let server = server(SecurityConfig {
        trust_proxy: true,
        registrations_per_hour: 5,
        ..no_limits()
    })
    .await;
    let register = |ip: &'static str, name: String, password: &'static str| {
        let addr = server.addr;
        async move { call_from::<Register>(addr, ip, &[("name", &name), ("password", password)]).await }
    };
    let r = register("203.0.113.7", "tiny".into(), "short").await;
    assert_eq!(
        r.status, 400,
        "a refused password is not a registration: {r:?}"
    );
    for i in 0..5 {
        let r = register("203.0.113.7", format!("bot{i}"), "a long password").await;
        assert_eq!(r.status, 200, "{i}: {r:?}");
    }
    let r = register("203.0.113.7", "bot5".into(), "a long password").await;
    assert_eq!(r.status, 429, "{r:?}");
    assert!(
        r.body.contains("registered from your address"),
        "{}",
        r.body
    );
    assert!(retry_after(&r).is_some_and(|s| s > 60), "{r:?}");
    let r = register("203.0.113.8", "human".into(), "a long password").await;
    assert_eq!(r.status, 200, "{r:?}");
}

/// Addresses in one IPv6 /64 share one budget; the next /64 has its own.
#[tokio::test]
async fn ipv6_addresses_in_one_64_share_a_budget() {
    let server = server(SecurityConfig {
        trust_proxy: true,
        form_posts_per_minute: 3,
        ..no_limits()
    })
    .await;
    for (i, ip) in ["2001:db8:1:2::1", "2001:db8:1:2::2", "2001:db8:1:2:ffff::9"]
        .iter()
        .enumerate()
    {
        let r = call_from::<SetName>(server.addr, ip, &[("name", &format!("v6 {i}"))]).await;
        assert_eq!(r.status, 200, "{ip}: {r:?}");
    }
    let r = call_from::<SetName>(server.addr, "2001:db8:1:2:abcd::1", &[("name", "v6 x")]).await;
    assert_eq!(r.status, 429, "same /64: {r:?}");
    let r = call_from::<SetName>(server.addr, "2001:db8:1:3::1", &[("name", "v6 y")]).await;
    assert_eq!(r.status, 200, "next /64: {r:?}");
}

/// With "Ada" registered, no look-alike from the issue can be taken as a guest name or
/// registered; each refusal is a 400 with a sentence.
#[tokio::test]
async fn look_alikes_of_a_registered_name_are_refused_over_http() {
    let server = server(no_limits()).await;
    common::register(server.addr, "Ada", "correct horse").await;
    for payload in [
        "Ada\u{200b}",
        "\u{410}da",
        "Ad\u{430}",
        "Ada\u{200d}",
        "\u{202e}adA",
        "\u{ff21}da",
        "Ada\u{2060}",
        "\u{2066}Ada\u{2069}",
    ] {
        let r = call::<SetName>(server.addr, &[("name", payload)], None).await;
        assert_eq!(r.status, 400, "guest {payload:?}: {r:?}");
        assert!(
            r.body.contains("invisible formatting") || r.body.contains("looks the same"),
            "guest {payload:?}: {}",
            r.body
        );
        let r = call::<Register>(
            server.addr,
            &[("name", payload), ("password", "another password")],
            None,
        )
        .await;
        assert_eq!(r.status, 400, "register {payload:?}: {r:?}");
        assert!(
            r.body.contains("invisible formatting") || r.body.contains("looks the same"),
            "register {payload:?}: {}",
            r.body
        );
    }
}
