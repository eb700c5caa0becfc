//! A running node: starts storage, the network, the consensus driver, block
//! sync, the control API and metrics, and stops them all cleanly.

pub mod access;
pub mod addrs;
pub mod agree;
pub mod byzantine;
pub mod clock;
pub mod context;
pub mod dispatch;
pub mod driver;
pub mod driver_input;
pub mod guarded;
pub mod keys;
pub mod kme;
pub mod mempool;
pub mod messages;
pub mod peer_protocols;
pub mod pool;
pub mod progress;
pub mod ready;
pub mod rpc;
pub mod sync;
#[cfg(test)]
pub(crate) mod testkit;
pub mod timers;
pub mod twin;
pub mod view;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use qward_core::api::Event;
use qward_core::chain::{ChainStore, InitOutcome};
use qward_core::identity::Identity;
use tokio::net::TcpListener;
use tokio::sync::{broadcast, mpsc, watch};

pub use context::{Ctx, NodeHandles};
pub use view::ChainView;

use crate::api::Cookie;
use crate::config::Config;
use crate::contacts::Contacts;
use crate::datadir::DataDir;
use crate::db::RocksStore;
use crate::metrics::Metrics;
use crate::net::{Multiaddr, Network, NetworkClient, NetworkConfig, peer_id_from_account};

/// Options of `qward run`.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Test-only: misbehave as a Byzantine validator (see `byzantine.rs`).
    pub byzantine: Option<byzantine::Strategy>,
    /// Settings given by flag or environment, over config.toml's.
    pub overrides: crate::config::Overrides,
}

/// Opens the database and makes sure the chain is initialised from the data
/// directory's genesis.
pub fn open_chain(dir: &DataDir) -> anyhow::Result<RocksStore> {
    let store = RocksStore::open(&dir.db_dir())?;
    let chain = ChainStore::new(&store);
    if chain.tip().is_err() {
        let path = dir.genesis_file();
        if !path.exists() {
            anyhow::bail!(
                "{} has no chain and no genesis; run `qward init --genesis FILE` or use `qward devnet`",
                dir.root().display()
            );
        }
        let genesis = qward_genesis::load_genesis(&path)?;
        if chain.init(&genesis)? == InitOutcome::Initialised {
            tracing::info!("initialised the chain from {}", path.display());
        }
    }
    Ok(store)
}

/// Runs the node of `dir` until SIGINT, SIGTERM or the API's `shutdown`.
pub async fn run(
    dir: DataDir,
    opts: RunOptions,
    data_key: qward_core::vault::DataKey,
) -> anyhow::Result<()> {
    let mut config = dir.load_config()?;
    config.apply(&opts.overrides)?;
    if config.block_interval_ms.is_some() {
        tracing::warn!(
            "config.toml's block_interval_ms is ignored: the block timing is on the chain \
             (genesis [consensus] block_time_ms, empty_block_interval_ms; changed by a \
             validators' vote, `qward tx set-block-timing`)"
        );
    }
    let identity = dir.load_identity()?;
    let store = Arc::new(open_chain(&dir)?);
    let view = ChainView::load(&store)?;
    let keys = keys::KeyStore::load(&store, config.key_agreement.rotation(), data_key)
        .context("loading the key store")?;
    let contacts = Contacts::load(&dir.contacts_file())?;

    let keypair = crate::net::keypair_from_identity(&identity)?;
    let peer_id = keypair.public().to_peer_id();
    let mut net_config = NetworkConfig {
        listen_addrs: parse_addrs(&config.listen, "listen")?,
        external_addrs: parse_addrs(&config.external_addresses, "external")?,
        members: view
            .state
            .members
            .iter()
            .filter(|(_, m)| m.active)
            .filter_map(|(a, _)| peer_id_from_account(a).ok())
            .collect::<HashSet<_>>(),
        // Redial soon after a refusal: a member registered on the chain
        // should get in within seconds, not minutes.
        redial_max: std::time::Duration::from_secs(8),
        ..NetworkConfig::default()
    };
    for b in &config.bootstrap {
        let account = qward_core::identity::AccountId::from_hex(&b.account)?;
        if account == identity.account() {
            continue;
        }
        let peer = peer_id_from_account(&account)?;
        let addr: Multiaddr = format!("{}/p2p/{peer}", b.addr)
            .parse()
            .with_context(|| format!("bootstrap address {} is not a multiaddr", b.addr))?;
        net_config.bootstrap.push(addr);
    }
    let metrics = Metrics::new();
    let (net, net_events, net_task) = metrics.with_registry(|registry| {
        Network::spawn_with_metrics(keypair, net_config, config.metrics.then_some(registry))
    })?;

    let (events, _) = broadcast::channel(4096);
    crate::logging::buffer().attach_events(events.clone());
    let (shutdown, shutdown_rx) = watch::channel(false);
    let (driver_tx, driver_rx) = mpsc::channel(4096);
    Metrics::set(&metrics.height, view.tip.height);
    Metrics::set(&metrics.finalized_height, view.tip.height);

    let api_listener = TcpListener::bind(("127.0.0.1", config.api_port))
        .await
        .with_context(|| {
            format!(
                "cannot open the control API on 127.0.0.1:{}",
                config.api_port
            )
        })?;
    let metrics_listener = if config.metrics {
        let addr = config.metrics_addr();
        let l = crate::metrics::bind(addr).await?;
        if addr.ip().is_loopback() {
            tracing::info!("metrics on http://{addr}/metrics");
        } else {
            tracing::warn!(
                "metrics on http://{addr}/metrics, reachable from other hosts: counts, heights \
                 and timings of this node (no health data) for anyone who can connect"
            );
        }
        Some(l)
    } else {
        None
    };

    let wired = wire(Parts {
        identity,
        config: config.clone(),
        datadir: dir.clone(),
        store,
        view,
        keys,
        net: net.clone(),
        contacts,
        events: events.clone(),
        metrics: metrics.clone(),
        driver: driver_tx.clone(),
        shutdown,
    })?;
    let Wired {
        ctx,
        view_tx,
        consensus_tx,
        listen_tx,
        index,
        notes,
        owned_tasks,
    } = wired;
    for topic in [ctx.consensus_topic(), ctx.tx_topic(), ctx.addrs_topic()] {
        net.subscribe(&topic).await?;
    }

    let cookie = Cookie::generate();
    cookie.write(&dir.cookie_file())?;
    let auth = Arc::new(crate::api::auth::Auth::load(
        cookie,
        ctx.store.clone(),
        std::time::Duration::from_secs(config.api_idle_logoff_s),
    )?);
    let methods =
        crate::api::QwardApiServer::into_rpc(rpc::RpcHandler::new(ctx.clone(), auth.clone()));
    let access = Some(ctx.access.clone());
    let ready_ctx = ctx.clone();
    let ready: crate::api::ReadyCheck = Arc::new(move || ready::is_ready(&ready_ctx));
    let metrics_ready = ready.clone();
    let api_shutdown = shutdown_rx.clone();
    let mut tasks = vec![
        tokio::spawn(async move {
            if let Err(e) =
                crate::api::serve(api_listener, auth, access, methods, ready, api_shutdown).await
            {
                tracing::error!("the control API stopped: {e:#}");
            }
        }),
        tokio::spawn(dispatch::run(ctx.clone(), net_events, listen_tx)),
        tokio::spawn(driver::run(
            ctx.clone(),
            view_tx,
            consensus_tx,
            driver_rx,
            driver_tx,
            opts.byzantine,
        )),
        tokio::spawn(sync::run(ctx.clone())),
        tokio::spawn(messages::outbox::run(
            ctx.messaging.clone(),
            index,
            notes,
            shutdown_rx.clone(),
        )),
        tokio::spawn(addrs::run(ctx.clone())),
    ];
    if let Some(l) = metrics_listener {
        tasks.push(tokio::spawn(crate::metrics::serve(
            l,
            metrics,
            metrics_ready,
            shutdown_rx.clone(),
        )));
    }
    tracing::info!(
        "qward node {} ({}) started: peer id {peer_id}, chain {} at height {}, API on 127.0.0.1:{}",
        config.name,
        config.role,
        ctx.view().genesis.network,
        ctx.view().tip.height,
        config.api_port
    );

    wait_for_stop(shutdown_rx).await;
    tracing::info!("shutting down");
    ctx.request_shutdown();
    for t in tasks {
        let _ = tokio::time::timeout(std::time::Duration::from_secs(5), t).await;
    }
    // The pool and key agreement hold nothing that outlives the process.
    for t in owned_tasks {
        t.abort();
    }
    let _ = net.shutdown().await;
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), net_task).await;
    let _ = std::fs::remove_file(dir.cookie_file());
    tracing::info!("stopped");
    Ok(())
}

/// What [`wire`] needs: the node's settings and the parts made first.
pub(crate) struct Parts {
    pub identity: Identity,
    pub config: Config,
    pub datadir: DataDir,
    pub store: Arc<RocksStore>,
    pub view: ChainView,
    pub keys: keys::KeyStore,
    pub net: NetworkClient,
    pub contacts: Contacts,
    pub events: broadcast::Sender<Event>,
    pub metrics: Arc<Metrics>,
    pub driver: mpsc::Sender<driver_input::DriverInput>,
    pub shutdown: watch::Sender<bool>,
}

/// The node's tasks that own state, started, and what the others take.
pub(crate) struct Wired {
    pub ctx: Ctx,
    /// The view sender, for the driver (the only one that publishes views).
    pub view_tx: watch::Sender<Arc<ChainView>>,
    /// Where consensus is, for the driver to publish.
    pub consensus_tx: watch::Sender<progress::ConsensusProgress>,
    /// Where the network listens, for the dispatcher to fill.
    pub listen_tx: watch::Sender<Vec<Multiaddr>>,
    /// The messaging index and its notes, for the delivery task.
    pub index: messages::Index,
    pub notes: mpsc::UnboundedReceiver<messages::Note>,
    /// The pool and key-agreement tasks.
    pub owned_tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// Starts the pool and key-agreement tasks and makes the handles every
/// other task takes: the one place a node is put together, for `run` and
/// the unit tests alike.
pub(crate) fn wire(p: Parts) -> anyhow::Result<Wired> {
    let copy = |i: &Identity| Identity::from_secret_bytes(i.secret_bytes().as_slice());
    let account = p.identity.account();
    let peer_id = p.net.local_peer_id();
    let (view_tx, views) = view::channel(p.view);
    let twin = Arc::new(twin::TwinAlarm::default());
    let tx_ready = Arc::new(tokio::sync::Notify::new());
    let (pool, pool_task) = pool::spawn(
        mempool::Mempool::new(),
        copy(&p.identity)?,
        twin.clone(),
        views.clone(),
        pool::PoolOutlets {
            net: p.net.clone(),
            events: p.events.clone(),
            metrics: p.metrics.clone(),
            tx_ready: tx_ready.clone(),
        },
    );
    let keys = Arc::new(p.keys);
    let kme = match &p.config.kme {
        Some(k) => Some(Arc::new(
            crate::kme::KmeSettings::resolve(k, &p.contacts).context("config.toml [kme]")?,
        )),
        None => None,
    };
    let kme_sources =
        crate::kme::resolve_sources(&p.config.kme_source, p.datadir.root(), &p.contacts)
            .context("config.toml [[kme_source]]")?;
    let (agree, agree_task) = agree::spawn(agree::AgreeEnv {
        identity: copy(&p.identity)?,
        config: p.config.key_agreement,
        keys: keys.clone(),
        store: p.store.clone(),
        net: p.net.clone(),
        pool: pool.clone(),
        events: p.events.clone(),
        metrics: p.metrics.clone(),
        contacts: p.contacts.clone(),
        kme: kme.clone(),
        kme_sources,
    });
    let index = messages::Index::load(&p.store).context("loading the outbox and inbox")?;
    let (messaging, notes) = messages::Messaging::new(
        copy(&p.identity)?,
        p.config.role,
        p.config.name.clone(),
        p.store.clone(),
        keys.clone(),
        views.clone(),
        pool.clone(),
        agree.clone(),
        p.net.clone(),
        p.events.clone(),
        p.metrics.clone(),
        p.contacts.clone(),
    );
    let (access, access_task) =
        access::spawn(p.store.clone(), pool.clone(), p.shutdown.subscribe())
            .context("opening the access log")?;
    let (listen_tx, listen) = watch::channel(Vec::new());
    let (consensus_tx, consensus) = watch::channel(progress::ConsensusProgress::default());
    let ctx = Arc::new(NodeHandles {
        identity: p.identity,
        account,
        peer_id,
        config: p.config,
        datadir: p.datadir,
        store: p.store,
        views,
        pool,
        net: p.net,
        events: p.events,
        metrics: p.metrics,
        contacts: p.contacts,
        started: Instant::now(),
        driver: p.driver,
        sync_wake: tokio::sync::Notify::new(),
        tx_ready,
        shutdown: p.shutdown,
        listen,
        keys,
        agree,
        messaging,
        access,
        twin,
        kme,
        consensus,
        started_ms: clock::now_ms(),
    });
    Ok(Wired {
        ctx,
        view_tx,
        consensus_tx,
        listen_tx,
        index,
        notes,
        owned_tasks: vec![pool_task, agree_task, access_task],
    })
}

fn parse_addrs(addrs: &[String], what: &str) -> anyhow::Result<Vec<Multiaddr>> {
    addrs
        .iter()
        .map(|a| {
            a.parse()
                .with_context(|| format!("{what} address {a} is not a multiaddr"))
        })
        .collect()
}

async fn wait_for_stop(mut api_shutdown: watch::Receiver<bool>) {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).ok();
    let term_recv = async {
        match term.as_mut() {
            Some(t) => {
                t.recv().await;
            }
            None => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term_recv => {}
        _ = async { while api_shutdown.changed().await.is_ok() { if *api_shutdown.borrow() { break; } } } => {}
    }
}
