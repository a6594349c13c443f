//! Several `hearth` nodes for the cluster tests: a database of the test's own on the run's
//! PostgreSQL server, a nats-server of the test's own, and real `hearth` processes using
//! both, all on 127.0.0.1.
//!
//! The README's test command (scripts/test.sh) starts PostgreSQL and says where nats-server
//! is (`HEARTH_TEST_POSTGRES`, `HEARTH_TEST_PG_BIN`, `HEARTH_TEST_NATS_SERVER`); run alone,
//! these tests fail saying so.

use super::process::Hearth;
use sqlx::Connection;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

fn required(var: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| {
        panic!(
            "{var} is not set: the cluster tests need the PostgreSQL server and nats-server \
             that ./scripts/test.sh starts (run the tests through it)"
        )
    })
}

/// A free TCP port on 127.0.0.1 (the kernel's choice).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Waits until something accepts TCP connections on `port`.
pub async fn wait_for_port(port: u16, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        assert!(Instant::now() < deadline, "{what} did not start in 30 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A new, empty database on the run's PostgreSQL server; returns its URL.
pub async fn database() -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let admin = required("HEARTH_TEST_POSTGRES");
    let name = format!(
        "hearth_{}_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed),
        hearth::server::hub::now_ms() % 1_000_000
    );
    let mut conn = sqlx::PgConnection::connect(&admin)
        .await
        .unwrap_or_else(|e| panic!("cannot reach the test PostgreSQL at {admin}: {e}"));
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut conn)
        .await
        .unwrap();
    let base = admin.rsplit_once('/').unwrap().0;
    format!("{base}/{name}")
}

/// A nats-server of the test's own, stopped when dropped; it can be stopped and started
/// again on the same port.
pub struct Nats {
    pub port: u16,
    child: Option<Child>,
}

impl Nats {
    pub async fn start() -> Nats {
        let mut nats = Nats {
            port: free_port(),
            child: None,
        };
        nats.resume().await;
        nats
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Starts it again on its port.
    pub async fn resume(&mut self) {
        let child = Command::new(required("HEARTH_TEST_NATS_SERVER"))
            .args(["-a", "127.0.0.1", "-p", &self.port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start nats-server");
        self.child = Some(child);
        wait_for_port(self.port, "nats-server").await;
    }

    /// Kills it (nodes see the connection drop).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A `hearth` node on `database` and `nats`, with `extra` settings on top.
pub async fn node(database: &str, nats: &Nats, extra: &[(&str, &str)]) -> Hearth {
    let nats_url = nats.url();
    let mut settings = vec![
        ("HEARTH_DATABASE_URL", database),
        ("HEARTH_NATS_URL", nats_url.as_str()),
        ("HEARTH_CATCH_UP_MS", "300"),
        ("HEARTH_PRESENCE_GRACE_MS", "1000"),
        // Tests about delivery send faster than a person may.
        ("HEARTH_MESSAGE_RATE", "0"),
        ("HEARTH_FORM_POSTS_PER_MINUTE", "0"),
    ];
    settings.extend_from_slice(extra);
    Hearth::start(&settings).await
}

/// A PostgreSQL server of the test's own (for tests that stop and restart it), from the
/// run's PostgreSQL programs, in a temporary directory; stopped when dropped.
pub struct PrivatePostgres {
    dir: tempfile::TempDir,
    pub port: u16,
    bin: std::path::PathBuf,
}

impl PrivatePostgres {
    pub async fn start() -> PrivatePostgres {
        let bin = std::path::PathBuf::from(required("HEARTH_TEST_PG_BIN"));
        let dir = tempfile::tempdir().unwrap();
        let pg = PrivatePostgres {
            port: free_port(),
            bin,
            dir,
        };
        let data = pg.data();
        std::fs::create_dir(&data).unwrap();
        if is_root() {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(pg.dir.path(), std::fs::Permissions::from_mode(0o755))
                .unwrap();
            run(Command::new("chown").arg("postgres").arg(&data));
        }
        run(pg
            .as_postgres("initdb")
            .args([
                "-A",
                "trust",
                "-U",
                "postgres",
                "--no-locale",
                "-E",
                "UTF8",
                "-D",
            ])
            .arg(&data));
        pg.resume().await;
        pg
    }

    fn data(&self) -> std::path::PathBuf {
        self.dir.path().join("pg")
    }

    fn as_postgres(&self, program: &str) -> Command {
        let path = self.bin.join(program);
        if is_root() {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(path);
            command
        } else {
            Command::new(path)
        }
    }

    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Starts it (again) on its port.
    pub async fn resume(&self) {
        let data = self.data();
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port,
            data.display()
        );
        run(self
            .as_postgres("pg_ctl")
            .arg("-D")
            .arg(&data)
            .args(["-l"])
            .arg(data.join("server.log"))
            .args(["-w", "-o", &options, "start"]));
        wait_for_port(self.port, "PostgreSQL").await;
    }

    /// Stops it at once (`-m fast`: sessions are cut, what was committed stays).
    pub fn stop(&self) {
        run(self
            .as_postgres("pg_ctl")
            .arg("-D")
            .arg(self.data())
            .args(["-m", "fast", "-w", "stop"]));
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let _ = self
            .as_postgres("pg_ctl")
            .arg("-D")
            .arg(self.data())
            .args(["-m", "immediate", "-w", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

fn is_root() -> bool {
    std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
        .unwrap_or(false)
}

fn run(command: &mut Command) {
    let out = command.output().expect("run a PostgreSQL program");
    assert!(out.status.success(), "{command:?}: {out:?}");
}
