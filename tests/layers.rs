//! The import graph runs one way, checked on the source itself:
//!
//! ```text
//! src/server.rs (the router: mounts the app, serves pages and sockets)
//!   -> src/ui, src/client (the Leptos app, shared by server and browser)
//!     -> src/api.rs (server functions: each names its endpoint and calls src/server/endpoints.rs)
//!       -> src/server/* (endpoints, hub, rooms, accounts, store, ...)
//!         -> src/model.rs, src/protocol.rs, src/names.rs (plain data and rules on text)
//! ```
//!
//! Nothing lower names anything higher: the server's core never reaches back into the app or
//! its server functions, and the shared data depends on nothing of either side.

use std::path::{Path, PathBuf};

/// Every `.rs` file under `path` (or `path` itself), with its code lines: comments removed.
fn sources(path: &str) -> Vec<(PathBuf, Vec<String>)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
    let mut files = Vec::new();
    let mut stack = vec![root];
    while let Some(p) = stack.pop() {
        if p.is_dir() {
            for entry in std::fs::read_dir(&p).unwrap() {
                stack.push(entry.unwrap().path());
            }
        } else if p.extension().is_some_and(|e| e == "rs") {
            let text = std::fs::read_to_string(&p).unwrap();
            let code = text
                .lines()
                .map(|line| match line.find("//") {
                    Some(at) => line[..at].to_string(),
                    None => line.to_string(),
                })
                .collect();
            files.push((p, code));
        }
    }
    assert!(!files.is_empty(), "no sources under {path}");
    files
}

/// Lines of the files under `path` that name any of `forbidden` (`crate::x` or `hearth::x`).
fn naming(path: &str, forbidden: &[&str], allowed: &[&str]) -> Vec<String> {
    let mut found = Vec::new();
    for (file, lines) in sources(path) {
        for (n, line) in lines.iter().enumerate() {
            for module in forbidden {
                let named = [format!("crate::{module}"), format!("hearth::{module}")]
                    .iter()
                    .any(|p| line.contains(p.as_str()));
                let excused = allowed.iter().any(|a| line.contains(a));
                if named && !excused {
                    found.push(format!("{}:{}: {}", file.display(), n + 1, line.trim()));
                }
            }
        }
    }
    found
}

#[test]
fn the_server_core_never_names_the_app_or_its_server_functions() {
    let found = naming("src/server", &["api", "ui", "client"], &[]);
    assert!(found.is_empty(), "{found:#?}");
}

#[test]
fn shared_data_names_neither_side() {
    for file in ["src/model.rs", "src/protocol.rs", "src/names.rs"] {
        let found = naming(file, &["server", "api", "ui", "client"], &[]);
        assert!(found.is_empty(), "{found:#?}");
    }
}

#[test]
fn server_functions_reach_the_server_only_through_its_endpoints() {
    let found = naming("src/api.rs", &["server"], &["crate::server::endpoints::"]);
    assert!(found.is_empty(), "{found:#?}");
}

#[test]
fn the_app_reaches_the_server_only_through_server_functions() {
    for path in ["src/ui", "src/ui.rs", "src/client", "src/client.rs"] {
        let found = naming(path, &["server"], &[]);
        assert!(found.is_empty(), "{found:#?}");
    }
}
