//! Wiring: token, store, journal, signing service and the mTLS listener (admission and connection
//! limits are the `listener`'s); SIGHUP reloads the TLS files, keeps the connections they still
//! accept and closes the others; SIGTERM (or Ctrl-C) stops accepting, lets in-flight requests
//! finish (bounded), closes the journal, and returns.

use crate::api::{App, Metrics};
use crate::audit::{Actor, AuditEvent, Journal, JournalConfig};
use crate::authz::Accounts;
use crate::config::Config;
use crate::listener::{Door, Limits};
use crate::signing::Signing;
use crate::store::Store;
use crate::tls;
use crate::token::TokenKey;
use crate::token::{KeyId, TokenPool};
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::signal::unix::{signal, SignalKind};

/// The daemon could not start.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct StartError(pub String);

fn start_err(what: &str) -> impl Fn(String) -> StartError + '_ {
    move |e| StartError(format!("{what}: {e}"))
}

/// The appliance's state opened without the listener, for `seald init` (the daemon stopped): the
/// token, the store, the journal (checkpoints signed with the audit key) and the registry.
pub struct Offline {
    /// The token.
    pub pool: TokenPool,
    /// The store.
    pub store: Arc<Store>,
    /// The journal.
    pub journal: Arc<Journal>,
    /// The registry.
    pub registry: crate::seal::Registry,
}

/// Opens token, store, journal and registry as `run` does, without serving.
pub fn open_offline(cfg: &Config) -> Result<Offline, StartError> {
    let store_cfg = cfg.store.clone().ok_or_else(|| StartError("the config has no [store] section".into()))?;
    let audit_cfg = cfg.audit.clone().ok_or_else(|| StartError("the config has no [audit] section".into()))?;
    let pool = TokenPool::open(&cfg.token).map_err(|e| StartError(format!("token: {e}")))?;
    let cluster = cfg.postgres().map_err(StartError)?;
    let store = Arc::new(
        match &cluster {
            Some(pg) => Store::open_postgres(pg),
            None => Store::open(&store_cfg.dir),
        }
        .map_err(|e| StartError(e.to_string()))?,
    );
    let configured = KeyId::from_hex(&audit_cfg.key).map_err(|e| start_err("[audit] key")(e.to_string()))?;
    let (audit_key, anchor) =
        crate::seal::active_audit_key(&store, &configured).map_err(|e| start_err("audit key")(e.to_string()))?;
    let signer = TokenKey::open(&pool, &audit_key).map_err(|e| start_err("audit key")(e.to_string()))?;
    let mut jcfg = JournalConfig::new(&audit_cfg.dir);
    jcfg.checkpoint_every = audit_cfg.checkpoint_every;
    jcfg.checkpoint_interval = Duration::from_secs(audit_cfg.checkpoint_interval_s);
    let journal = Arc::new(
        match cluster {
            Some(_) => Journal::open_cluster(jcfg, store.clone(), Some(Arc::new(signer))),
            None => Journal::open(jcfg, Some(store.clone()), Some(Arc::new(signer))),
        }
        .map_err(|e| StartError(e.to_string()))?,
    );
    if let Some(a) = anchor {
        journal.set_anchor(a);
    }
    // The view is whole and synced: an earlier seald's sled store can go.
    store.remove_sled_leftovers().map_err(|e| StartError(e.to_string()))?;
    let accounts = Accounts::new(cfg.accounts.clone()).map_err(|e| StartError(e.to_string()))?;
    let registry =
        crate::seal::Registry::new(store.clone(), journal.clone(), pool.clone(), cfg.seals.clone(), accounts)
            .map_err(|e| start_err("seal registry")(e.to_string()))?
            .with_time(cfg.tsa.clone(), cfg.status.clone());
    registry.set_audit_key(audit_key);
    Ok(Offline { pool, store, journal, registry })
}

/// Runs the daemon until SIGTERM or Ctrl-C. `ready` gets the bound address once it serves.
pub async fn run(cfg: Config, ready: Option<tokio::sync::oneshot::Sender<SocketAddr>>) -> Result<(), StartError> {
    let server = cfg.server.clone().ok_or_else(|| StartError("the config has no [server] section".into()))?;
    let opened = cfg.clone();
    let Offline { pool, store, journal, registry } =
        tokio::task::spawn_blocking(move || open_offline(&opened)).await.map_err(|e| StartError(e.to_string()))??;
    // The time-stamp authority and the status responder, on an appliance whose issuing CA exists
    // (made once, journalled; an appliance set up before they existed gets them here).
    let registry = tokio::task::spawn_blocking(move || {
        registry.pki().ensure_time_keys(registry.tsa().settings()).map(|_| registry)
    })
    .await
    .map_err(|e| StartError(e.to_string()))?
    .map_err(|e| start_err("the TSA and status-responder keys")(e.to_string()))?;
    let trust = cfg.verify.trust_store().map_err(|e| start_err("[verify]")(e))?;
    let signing =
        Signing::new(pool.clone(), journal.clone(), Arc::new(registry), &cfg.keys, server.max_message_bytes, trust)
            .map_err(|e| start_err("[[keys]]")(e.to_string()))?;
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
    let app = Arc::new(App {
        signing,
        pool,
        journal: journal.clone(),
        store,
        metrics: Metrics::default(),
        max_body: server.max_body_bytes,
        max_document: server.max_document_bytes,
        body_timeout: Duration::from_secs(server.body_timeout_s.max(1)),
        door: Default::default(),
        crls: Default::default(),
        verify_slots: tokio::sync::Semaphore::new(cores),
        console: crate::console::Console::new(),
    });
    let current = RwLock::new(tls::load(&server).map_err(|e| StartError(e.to_string()))?);
    app.set_crls(current.read().unwrap_or_else(|p| p.into_inner()).crls.clone());
    let listener = TcpListener::bind(&server.listen).await.map_err(|e| start_err(&server.listen)(e.to_string()))?;
    let addr = listener.local_addr().map_err(|e| StartError(e.to_string()))?;
    let j = journal.clone();
    let _ = tokio::task::spawn_blocking(move || {
        j.append(AuditEvent::new(Actor::system(), "daemon.start", "seald", "ok").detail("listen", addr.to_string()))
    })
    .await
    .map_err(|e| StartError(e.to_string()))?
    .map_err(|e| StartError(e.to_string()))?;
    // The signal handlers go in before the daemon says it serves: a SIGHUP (a reload) or SIGTERM
    // that arrives right after readiness would otherwise take the default action and kill it.
    let mut term = signal(SignalKind::terminate()).map_err(|e| StartError(e.to_string()))?;
    let mut hup = signal(SignalKind::hangup()).map_err(|e| StartError(e.to_string()))?;
    tracing::info!(%addr, "seald serving (mTLS)");
    if let Some(r) = ready {
        let _ = r.send(addr);
    }
    let _ = crate::notify::notify(&format!("READY=1\nSTATUS=serving on {addr}"));
    if let Some(every) = crate::notify::watchdog_interval() {
        // Fed only while the token answers: a token that stays down gets seald restarted by systemd.
        let pool = app.pool.clone();
        drop(tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                let p = pool.clone();
                match tokio::task::spawn_blocking(move || p.probe()).await {
                    Ok(crate::token::Health::Down(why)) => {
                        let _ = crate::notify::notify(&format!("STATUS=token down: {why}"));
                    }
                    Ok(_) => {
                        let _ = crate::notify::notify("WATCHDOG=1");
                    }
                    Err(_) => {}
                }
            }
        }));
    }

    let door = Door::new(app.clone(), Limits::from_config(&server));
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (tcp, remote) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        // Out of file descriptors, most likely: wait a moment instead of spinning.
                        tracing::debug!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let config = current.read().unwrap_or_else(|p| p.into_inner()).config.clone();
                door.accept(tcp, remote, config);
            }
            _ = hup.recv() => {
                match tls::load(&server) {
                    Ok(loaded) => {
                        app.set_crls(loaded.crls.clone());
                        let closed = door.recheck(&loaded);
                        *current.write().unwrap_or_else(|p| p.into_inner()) = loaded;
                        tracing::info!(closed, "TLS certificate, client CA and CRL reloaded; connections no longer accepted are closing");
                    }
                    Err(e) => tracing::error!(error = %e, "TLS reload failed; keeping the previous configuration"),
                }
            }
            _ = term.recv() => break,
            _ = tokio::signal::ctrl_c() => break,
        }
    }
    tracing::info!("shutting down: no new connections; finishing requests in flight");
    let _ = crate::notify::notify("STOPPING=1");
    drop(listener);
    door.shut();
    tokio::select! {
        _ = door.drained() => {}
        _ = tokio::time::sleep(Duration::from_secs(server.shutdown_grace_s)) => tracing::warn!("grace period over; closing the remaining connections"),
    }
    let j = journal.clone();
    let _ = tokio::task::spawn_blocking(move || {
        let _ = j.append(AuditEvent::new(Actor::system(), "daemon.stop", "seald", "ok"));
        j.close();
    })
    .await;
    tracing::info!("seald stopped");
    Ok(())
}
