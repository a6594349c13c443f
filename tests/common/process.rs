//! The real `hearth` binary as a child process, for tests that measure what the server
//! process holds (memory, threads, sockets) under a bounded loopback attack.
//!
//! `HEARTH_TEST_BINARY=path` runs these tests against another build of `hearth` (an older
//! commit's, to measure an attack's figure before a change).

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// `hearth` on a free loopback port, with the in-memory store and a data directory of its
/// own unless `settings` say otherwise. Dropping it kills it.
pub struct Hearth {
    pub child: Child,
    pub addr: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Hearth {
    /// Starts the binary with `settings` (environment variables) on top of a clean
    /// environment, and waits until it accepts connections.
    pub async fn start(settings: &[(&str, &str)]) -> Hearth {
        let dir = tempfile::tempdir().unwrap();
        let addr = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let binary = std::env::var("HEARTH_TEST_BINARY")
            .unwrap_or_else(|_| env!("CARGO_BIN_EXE_hearth").to_string());
        let mut command = Command::new(binary);
        for (key, _) in std::env::vars() {
            if key.starts_with("HEARTH_") || key.starts_with("LEPTOS_") {
                command.env_remove(key);
            }
        }
        command
            .env("HEARTH_ADDR", addr.to_string())
            .env("HEARTH_DATA_DIR", dir.path())
            .env("HEARTH_STORE", "memory")
            .env("LEPTOS_OUTPUT_NAME", "hearth")
            .env("RUST_LOG", "error")
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        for (key, value) in settings {
            command.env(key, value);
        }
        let mut hearth = Hearth {
            child: command.spawn().expect("start the hearth binary"),
            addr,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = hearth.child.try_wait().unwrap() {
                panic!("hearth exited with {status}");
            }
            if tokio::net::TcpStream::connect(addr).await.is_ok() {
                break;
            }
            assert!(Instant::now() < deadline, "hearth did not start in 60 s");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        hearth
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// A numeric field of /proc/<pid>/status (kB for sizes).
    pub fn status_field(&self, field: &str) -> u64 {
        status_field(self.pid(), field)
    }

    /// Resident memory in bytes.
    pub fn rss(&self) -> u64 {
        self.status_field("VmRSS:") * 1024
    }

    /// Resident memory in MiB.
    pub fn rss_mib(&self) -> u64 {
        self.status_field("VmRSS:") / 1024
    }

    /// Open file descriptors: the listener, the runtime's, and one per open socket.
    pub fn open_fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid()))
            .unwrap()
            .count()
    }

    /// Bytes that clients sent and the server has not read yet, over all its connections
    /// (the receive queues in /proc/net/tcp of sockets on the server's port).
    pub fn unread_bytes(&self) -> u64 {
        let tcp = std::fs::read_to_string("/proc/net/tcp").unwrap();
        tcp.lines()
            .skip(1)
            .filter_map(|line| {
                let mut fields = line.split_whitespace();
                let local = fields.nth(1)?;
                let queues = fields.nth(2)?;
                let port = u16::from_str_radix(local.rsplit(':').next()?, 16).ok()?;
                let rx = queues.split(':').nth(1)?;
                (port == self.addr.port()).then(|| u64::from_str_radix(rx, 16).ok())?
            })
            .sum()
    }
}

impl Drop for Hearth {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A numeric field of a process's /proc status (kB for sizes).
pub fn status_field(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}
