//! The `hearth` server binary: reads settings, builds the hub, serves HTTP and WebSockets.

/// jemalloc rather than glibc's malloc: after a presence burst in a big room glibc's
/// per-thread arenas keep the freed memory scattered, and idle connections cost more
/// (docs/benchmarks.md); throughput is the same with either.
#[cfg(feature = "ssr")]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[cfg(feature = "ssr")]
#[tokio::main]
async fn main() -> anyhow::Result<()> {
    use clap::Parser;
    use hearth::server::{
        accounts::Accounts,
        broker::{
            nats::{NatsBroker, NatsSettings},
            Broker, SingleNode,
        },
        config::{Command, Config, StoreKind},
        hub::Hub,
        limits::Limits,
        router,
        store::{sql::SqlStore, MemoryStore, Store},
        AppState,
    };
    use leptos::config::get_configuration;
    use std::sync::Arc;
    use std::time::Duration;
    use tracing_subscriber::EnvFilter;

    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();

    let config = Config::parse();
    if let Some(Command::Migrate { from, to }) = &config.command {
        let counts = hearth::server::migrate::sqlite_to_postgres(from, to)
            .await
            .map_err(|e| anyhow::anyhow!("hearth migrate: {e}"))?;
        for (table, rows) in counts {
            println!("{table}: {rows} rows");
        }
        println!(
            "Copied {} into PostgreSQL. Start the nodes with HEARTH_DATABASE_URL set to it.",
            from.display()
        );
        return Ok(());
    }
    let leptos_options = get_configuration(None)?.leptos_options;
    let addr = config.addr.unwrap_or(leptos_options.site_addr);

    let security = config.security();
    if config.nats_url.is_some() && config.database_url.is_none() {
        anyhow::bail!(
            "hearth: HEARTH_NATS_URL connects nodes that share one database; set \
             HEARTH_DATABASE_URL=postgres://… too"
        );
    }
    let mut shared_db = None;
    let (store, accounts): (Arc<dyn Store>, Accounts) = match (&config.database_url, config.store) {
        (Some(url), _) => {
            let store = SqlStore::connect(url, config.retain_messages)
                .await
                .map_err(|e| anyhow::anyhow!("hearth: cannot use the database at {url}: {e}"))?;
            tracing::info!("history and accounts in PostgreSQL");
            shared_db = Some(store.db().clone());
            let accounts = Accounts::open(store.db().clone(), security.session_ttl)
                .await?
                .with_guest_ttl(security.guest_session_ttl);
            (Arc::new(store), accounts)
        }
        (None, StoreKind::Sqlite) => {
            let store = SqlStore::open(&config.data_dir, config.retain_messages)
                .await
                .map_err(|e| {
                    anyhow::anyhow!(
                        "hearth: cannot open the store in {}: {e}",
                        config.data_dir.display()
                    )
                })?;
            tracing::info!(dir = %config.data_dir.display(), "history and accounts in SQLite");
            store.spawn_checkpoints(Duration::from_secs(config.wal_checkpoint_secs));
            let accounts = Accounts::open(store.db().clone(), security.session_ttl)
                .await?
                .with_guest_ttl(security.guest_session_ttl);
            (Arc::new(store), accounts)
        }
        // The epoch tells reconnecting clients whether their sequence numbers still mean
        // anything: the in-memory history starts over with every process.
        (None, StoreKind::Memory) => (
            Arc::new(MemoryStore::new(
                hearth::server::hub::now_ms(),
                match config.retain_messages {
                    0 => 10_000,
                    n => n as usize,
                },
            )),
            Accounts::in_memory(security.session_ttl)
                .await?
                .with_guest_ttl(security.guest_session_ttl),
        ),
    };
    let accounts = Arc::new(accounts);
    accounts.spawn_expiry_sweeps(Duration::from_secs(3600));
    let (broker, link): (Arc<dyn Broker>, _) = match &config.nats_url {
        Some(url) => {
            let settings = NatsSettings {
                buffer: config.broker_buffer,
                catch_up: Duration::from_millis(config.catch_up_ms),
                lease: Duration::from_millis(config.node_lease_ms.max(300)),
            };
            let (broker, link) = NatsBroker::connect(url, store.epoch(), settings)
                .await
                .map_err(|e| anyhow::anyhow!("hearth: cannot use NATS at {url}: {e}"))?;
            tracing::info!(%url, "sharing rooms with other nodes through NATS");
            let announcer = broker.clone();
            accounts.set_announcer(Box::new(move |news| announcer.publish_access(news)));
            (broker as Arc<dyn Broker>, Some(link))
        }
        None => (Arc::new(SingleNode), None),
    };
    let hub = Hub::new(store, broker, config.hub());
    if let (Some(link), Some(db)) = (link, shared_db) {
        link.run(hub.clone(), db, accounts.clone()).await?;
    }
    // `general` exists before anyone could claim its name for a private room.
    hub.create_room(&hearth::protocol::RoomId(
        hearth::names::DEFAULT_ROOM.to_string(),
    ))
    .await?;
    let app = router(AppState {
        leptos_options,
        hub: hub.clone(),
        accounts,
        limits: Arc::new(Limits::new(security)),
    });

    let listener = match tokio::net::TcpListener::bind(addr).await {
        Ok(listener) => listener,
        Err(err) if err.kind() == std::io::ErrorKind::AddrInUse => {
            eprintln!(
                "hearth: {addr} is already in use. Stop the program using it, or pick another \
                 address with LEPTOS_SITE_ADDR=127.0.0.1:PORT (or --addr)."
            );
            std::process::exit(2);
        }
        Err(err) => anyhow::bail!("hearth: cannot listen on {addr}: {err}"),
    };
    tracing::info!("Hearth is listening on http://{addr}");
    let draining = hub.clone();
    hearth::server::http::serve(listener, app, config.http(), async move {
        shutdown_signal().await;
        tracing::info!("shutting down: closing every connection with 1001");
        draining.begin_shutdown();
    })
    .await;
    // Everything accepted before the signal is stored before exiting; the whole shutdown
    // stays well under 5 s.
    if !hub.drain(std::time::Duration::from_secs(3)).await {
        tracing::error!("shutdown: some rooms did not finish storing within 3 s");
    }
    // Let the connection writers put their close frames on the wire.
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    Ok(())
}

#[cfg(feature = "ssr")]
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut sig) => {
                sig.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}

#[cfg(not(feature = "ssr"))]
fn main() {
    // The browser build enters through `hearth::hydrate`; this binary needs `--features ssr`.
}
