//! Wiring: token, store, journal, signing service and the mTLS listener; SIGHUP reloads the TLS
//! files without dropping connections; SIGTERM (or Ctrl-C) stops accepting, lets in-flight requests
//! finish (bounded), closes the journal, and returns.

use crate::api::{self, App, Metrics, Peer};
use crate::audit::{Actor, AuditEvent, Journal, JournalConfig};
use crate::authz::Accounts;
use crate::config::Config;
use crate::signing::Signing;
use crate::store::Store;
use crate::tls;
use crate::token::TokenKey;
use crate::token::{KeyId, TokenPool};
use hyper_util::rt::{TokioExecutor, TokioIo};
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
    let store = Arc::new(Store::open(&store_cfg.dir).map_err(|e| StartError(e.to_string()))?);
    let configured = KeyId::from_hex(&audit_cfg.key).map_err(|e| start_err("[audit] key")(e.to_string()))?;
    let (audit_key, anchor) =
        crate::seal::active_audit_key(&store, &configured).map_err(|e| start_err("audit key")(e.to_string()))?;
    let signer = TokenKey::open(&pool, &audit_key).map_err(|e| start_err("audit key")(e.to_string()))?;
    let mut jcfg = JournalConfig::new(&audit_cfg.dir);
    jcfg.checkpoint_every = audit_cfg.checkpoint_every;
    jcfg.checkpoint_interval = Duration::from_secs(audit_cfg.checkpoint_interval_s);
    let journal = Arc::new(
        Journal::open(jcfg, Some(store.clone()), Some(Arc::new(signer))).map_err(|e| StartError(e.to_string()))?,
    );
    if let Some(a) = anchor {
        journal.set_anchor(a);
    }
    let accounts = Accounts::new(cfg.accounts.clone()).map_err(|e| StartError(e.to_string()))?;
    let registry =
        crate::seal::Registry::new(store.clone(), journal.clone(), pool.clone(), cfg.seals.clone(), accounts)
            .map_err(|e| start_err("seal registry")(e.to_string()))?;
    registry.set_audit_key(audit_key);
    Ok(Offline { pool, store, journal, registry })
}

/// Runs the daemon until SIGTERM or Ctrl-C. `ready` gets the bound address once it serves.
pub async fn run(cfg: Config, ready: Option<tokio::sync::oneshot::Sender<SocketAddr>>) -> Result<(), StartError> {
    let server = cfg.server.clone().ok_or_else(|| StartError("the config has no [server] section".into()))?;
    let opened = cfg.clone();
    let Offline { pool, store, journal, registry } =
        tokio::task::spawn_blocking(move || open_offline(&opened)).await.map_err(|e| StartError(e.to_string()))??;
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
        verify_slots: tokio::sync::Semaphore::new(cores),
    });
    let tls_config = Arc::new(RwLock::new(tls::server_config(&server).map_err(|e| StartError(e.to_string()))?));
    let listener = TcpListener::bind(&server.listen).await.map_err(|e| start_err(&server.listen)(e.to_string()))?;
    let addr = listener.local_addr().map_err(|e| StartError(e.to_string()))?;
    let j = journal.clone();
    let _ = tokio::task::spawn_blocking(move || {
        j.append(AuditEvent::new(Actor::system(), "daemon.start", "seald", "ok").detail("listen", addr.to_string()))
    })
    .await
    .map_err(|e| StartError(e.to_string()))?
    .map_err(|e| StartError(e.to_string()))?;
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

    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let connections = Arc::new(tokio::sync::Semaphore::new(server.max_connections.max(1)));
    let limits = Limits {
        handshake: Duration::from_secs(server.handshake_timeout_s.max(1)),
        headers: Duration::from_secs(server.header_timeout_s.max(1)),
    };
    let mut term = signal(SignalKind::terminate()).map_err(|e| StartError(e.to_string()))?;
    let mut hup = signal(SignalKind::hangup()).map_err(|e| StartError(e.to_string()))?;
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((tcp, remote)) = accepted else { continue };
                let Ok(permit) = connections.clone().try_acquire_owned() else {
                    tracing::warn!(%remote, "connection limit reached; closing the new connection");
                    continue;
                };
                let config = tls_config.read().unwrap_or_else(|p| p.into_inner()).clone();
                let (app, watcher) = (app.clone(), graceful.watcher());
                drop(tokio::spawn(async move {
                    serve_connection(app, config, tcp, remote, watcher, limits).await;
                    drop(permit);
                }));
            }
            _ = hup.recv() => {
                match tls::server_config(&server) {
                    Ok(c) => {
                        *tls_config.write().unwrap_or_else(|p| p.into_inner()) = c;
                        tracing::info!("TLS certificate, client CA and CRL reloaded");
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
    tokio::select! {
        _ = graceful.shutdown() => {}
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

/// Time limits for one connection, so that slow or silent clients cannot hold the daemon's resources.
#[derive(Debug, Clone, Copy)]
struct Limits {
    handshake: Duration,
    headers: Duration,
}

async fn serve_connection(
    app: Arc<App>,
    config: Arc<rustls::ServerConfig>,
    tcp: tokio::net::TcpStream,
    remote: SocketAddr,
    watcher: hyper_util::server::graceful::Watcher,
    limits: Limits,
) {
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    let tls = match tokio::time::timeout(limits.handshake, acceptor.accept(tcp)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            tracing::info!(%remote, error = %e, "TLS handshake refused");
            return;
        }
        Err(_) => {
            tracing::info!(%remote, "TLS handshake timed out");
            return;
        }
    };
    let peer = {
        let (_, conn) = tls.get_ref();
        let Some(cert) = conn.peer_certificates().and_then(|c| c.first()) else {
            return;
        };
        let fingerprint = tls::fingerprint(cert);
        let subject = tls::subject(cert);
        if app.signing.identify(&fingerprint, &subject).is_none() {
            tracing::warn!(%remote, %fingerprint, %subject, "client certificate belongs to no account: refused (403)");
        }
        Arc::new(Peer { fingerprint, subject })
    };
    let service = hyper::service::service_fn(move |req| api::handle(app.clone(), peer.clone(), req));
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    let _ = builder.http1().timer(hyper_util::rt::TokioTimer::new()).header_read_timeout(limits.headers);
    let _ = builder.http2().timer(hyper_util::rt::TokioTimer::new()).max_concurrent_streams(256);
    let conn = builder.serve_connection(TokioIo::new(tls), service);
    if let Err(e) = watcher.watch(conn).await {
        tracing::debug!(%remote, error = %e, "connection ended with an error");
    }
}
