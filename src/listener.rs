//! The API's front door: which TCP connections are let in, for how long, and when they are closed.
//!
//! - **Two budgets.** A connection still in the TLS handshake holds a place in a small budget
//!   (`max_handshakes`, and `max_handshakes_per_address` per source address) under a deadline
//!   (`handshake_timeout_s`); only a finished handshake moves it to the budget of established
//!   connections (`max_connections`, `max_connections_per_address`). Clients without a certificate
//!   therefore cannot take the places of those with one, and one address cannot take them all.
//!   Beyond a budget a connection is closed at once; nobody waits in a queue that an attacker fills.
//! - **Time limits.** Headers (`header_timeout_s`, HTTP/1), bodies (`body_timeout_s`, in the API),
//!   idleness (`idle_timeout_s`: no request in flight), age (`max_connection_age_s`), and HTTP/2
//!   keep-alive pings. A closing connection finishes the requests in flight first.
//! - **Identity.** A connection whose certificate belongs to no account, or to a disabled one, is
//!   closed after its refusal. After a reload the certificates of open connections are checked again
//!   against the new CA bundle and CRLs, and their accounts looked up again ([`Door::recheck`]).
//! - **Quiet under attack.** Every closed connection is counted by reason
//!   (`seald_connections_closed_total`); log lines for them are rate-limited per reason.

use crate::api::{self, App, Peer};
use crate::tls;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::CertificateDer;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{watch, Notify, OwnedSemaphorePermit, Semaphore};

/// The limits of [`Door`], from `[server]`.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Deadline for the TLS handshake.
    pub handshake: Duration,
    /// Deadline for a request's headers (HTTP/1).
    pub headers: Duration,
    /// A connection with nothing in flight is closed after this.
    pub idle: Duration,
    /// A connection is closed once this old.
    pub max_age: Duration,
    /// Established connections.
    pub connections: usize,
    /// Connections in the handshake.
    pub handshakes: usize,
    /// Established connections per source address.
    pub connections_per_address: usize,
    /// Handshakes per source address.
    pub handshakes_per_address: usize,
}

impl Limits {
    /// The limits named in `[server]`.
    pub fn from_config(s: &tls::ServerConfigFile) -> Self {
        let secs = |n: u64| Duration::from_secs(n.max(1));
        Limits {
            handshake: secs(s.handshake_timeout_s),
            headers: secs(s.header_timeout_s),
            idle: secs(s.idle_timeout_s),
            max_age: secs(s.max_connection_age_s),
            connections: s.max_connections.max(1),
            handshakes: s.max_handshakes.max(1),
            connections_per_address: s.max_connections_per_address.max(1),
            handshakes_per_address: s.max_handshakes_per_address.max(1),
        }
    }
}

/// Why a connection was closed or never let in: the metric's `reason` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Closed {
    /// The handshake budget was full.
    HandshakeBudget,
    /// The source address had its share of handshakes.
    AddressHandshakes,
    /// The connection budget was full.
    ConnectionBudget,
    /// The source address had its share of connections.
    AddressConnections,
    /// The TLS handshake failed (no certificate, unknown CA, revoked ...).
    HandshakeFailed,
    /// The TLS handshake did not finish in time.
    HandshakeTimeout,
    /// The certificate belongs to no account, or to a disabled one.
    UnknownIdentity,
    /// Nothing in flight for too long.
    Idle,
    /// Too old.
    MaxAge,
    /// A reload no longer accepts its certificate.
    Revoked,
}

impl Closed {
    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            Closed::HandshakeBudget => "handshake_budget",
            Closed::AddressHandshakes => "address_handshakes",
            Closed::ConnectionBudget => "connection_budget",
            Closed::AddressConnections => "address_connections",
            Closed::HandshakeFailed => "handshake_failed",
            Closed::HandshakeTimeout => "handshake_timeout",
            Closed::UnknownIdentity => "unknown_identity",
            Closed::Idle => "idle",
            Closed::MaxAge => "max_age",
            Closed::Revoked => "revoked",
        }
    }

    /// Whether it is worth a WARN (an operator should look) rather than INFO.
    fn warns(self) -> bool {
        matches!(
            self,
            Closed::HandshakeBudget | Closed::AddressHandshakes | Closed::ConnectionBudget | Closed::AddressConnections
        )
    }
}

/// The door's counters, rendered into `/metrics`.
#[derive(Default)]
pub struct DoorStats {
    closed: Mutex<HashMap<Closed, u64>>,
    handshaking: AtomicUsize,
    established: AtomicUsize,
}

impl DoorStats {
    /// Connections closed, by reason, in label order.
    pub fn closed(&self) -> Vec<(&'static str, u64)> {
        let mut v: Vec<_> =
            self.closed.lock().unwrap_or_else(|p| p.into_inner()).iter().map(|(k, n)| (k.label(), *n)).collect();
        v.sort();
        v
    }
    /// Connections in the handshake now.
    pub fn handshaking(&self) -> usize {
        self.handshaking.load(Ordering::Relaxed)
    }
    /// Connections established now.
    pub fn established(&self) -> usize {
        self.established.load(Ordering::Relaxed)
    }
}

/// At most one log line per reason per window; the rest are counted and summed into the next one.
struct QuietLog {
    window: Duration,
    last: Mutex<HashMap<Closed, (Instant, u64)>>,
}

impl QuietLog {
    fn note(&self, why: Closed, remote: &SocketAddr, detail: &str) {
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        let entry = last.entry(why).or_insert((now - self.window - Duration::from_millis(1), 0));
        if now.duration_since(entry.0) < self.window {
            entry.1 += 1;
            return;
        }
        let suppressed = std::mem::take(&mut entry.1);
        entry.0 = now;
        drop(last);
        let reason = why.label();
        if why.warns() {
            tracing::warn!(%remote, reason, detail, suppressed, "connection closed");
        } else {
            tracing::info!(%remote, reason, detail, suppressed, "connection closed");
        }
    }
}

/// The address a budget is kept for: an IPv4 address, or an IPv6 /64 (one subscriber's prefix: an
/// attacker has billions of addresses in it).
fn source_of(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

/// Places per source address.
#[derive(Default, Clone, Copy)]
struct AddressCount {
    handshaking: usize,
    established: usize,
}

/// An open connection, as the reload sees it.
struct Open {
    chain: Vec<CertificateDer<'static>>,
    peer: Arc<Peer>,
    close: Arc<Closer>,
}

/// Asks one connection to close, with the reason.
#[derive(Default)]
struct Closer {
    notify: Notify,
    reason: Mutex<Option<Closed>>,
}

impl Closer {
    fn close(&self, why: Closed) {
        let mut r = self.reason.lock().unwrap_or_else(|p| p.into_inner());
        if r.is_none() {
            *r = Some(why);
        }
        self.notify.notify_one();
    }
    fn reason(&self) -> Option<Closed> {
        *self.reason.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The listener's admission control and the table of open connections.
pub struct Door {
    limits: Limits,
    app: Arc<App>,
    handshakes: Arc<Semaphore>,
    connections: Arc<Semaphore>,
    addresses: Mutex<HashMap<IpAddr, AddressCount>>,
    open: Mutex<HashMap<u64, Open>>,
    next: AtomicU64,
    log: QuietLog,
    shutdown: watch::Sender<bool>,
    /// The client verifier of the latest reload and its generation (under the `open` lock's
    /// protection: a connection that finished its handshake with an older configuration is checked
    /// against this one when it joins the table).
    reloaded: Mutex<(u64, Option<Arc<dyn rustls::server::danger::ClientCertVerifier>>)>,
}

/// A place in the handshake budget; dropping it gives the place back.
struct HandshakePlace {
    door: Arc<Door>,
    address: IpAddr,
    _permit: OwnedSemaphorePermit,
}

impl Drop for HandshakePlace {
    fn drop(&mut self) {
        self.door.release(self.address, |c| c.handshaking -= 1);
        let _ = self.door.app.door.handshaking.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A place in the connection budget.
struct ConnectionPlace {
    door: Arc<Door>,
    address: IpAddr,
    id: u64,
    _permit: OwnedSemaphorePermit,
}

impl Drop for ConnectionPlace {
    fn drop(&mut self) {
        self.door.release(self.address, |c| c.established -= 1);
        let _ = self.door.open.lock().unwrap_or_else(|p| p.into_inner()).remove(&self.id);
        let _ = self.door.app.door.established.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Door {
    /// A door for `app` with `limits`.
    pub fn new(app: Arc<App>, limits: Limits) -> Arc<Self> {
        Arc::new(Door {
            limits,
            app,
            handshakes: Arc::new(Semaphore::new(limits.handshakes)),
            connections: Arc::new(Semaphore::new(limits.connections)),
            addresses: Mutex::new(HashMap::new()),
            open: Mutex::new(HashMap::new()),
            next: AtomicU64::new(1),
            log: QuietLog { window: Duration::from_secs(10), last: Mutex::new(HashMap::new()) },
            shutdown: watch::channel(false).0,
            reloaded: Mutex::new((0, None)),
        })
    }

    fn closed(&self, why: Closed, remote: &SocketAddr, detail: &str) {
        *self.app.door.closed.lock().unwrap_or_else(|p| p.into_inner()).entry(why).or_insert(0) += 1;
        self.log.note(why, remote, detail);
    }

    fn release(&self, address: IpAddr, f: impl FnOnce(&mut AddressCount)) {
        let mut a = self.addresses.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = a.get_mut(&address) {
            f(c);
            if c.handshaking == 0 && c.established == 0 {
                let _ = a.remove(&address);
            }
        }
    }

    /// A place in the handshake budget for a new connection from `remote`, or the reason why not.
    fn admit(self: &Arc<Self>, remote: &SocketAddr) -> Result<HandshakePlace, Closed> {
        let address = source_of(remote.ip());
        let mut a = self.addresses.lock().unwrap_or_else(|p| p.into_inner());
        if a.get(&address).is_some_and(|c| c.handshaking >= self.limits.handshakes_per_address) {
            return Err(Closed::AddressHandshakes);
        }
        // The global budget before the entry: a refused address leaves nothing behind.
        let permit = self.handshakes.clone().try_acquire_owned().map_err(|_| Closed::HandshakeBudget)?;
        a.entry(address).or_default().handshaking += 1;
        let _ = self.app.door.handshaking.fetch_add(1, Ordering::Relaxed);
        Ok(HandshakePlace { door: self.clone(), address, _permit: permit })
    }

    /// Moves a connection whose handshake finished into the connection budget.
    fn establish(self: &Arc<Self>, place: HandshakePlace) -> Result<ConnectionPlace, Closed> {
        let address = place.address;
        let mut a = self.addresses.lock().unwrap_or_else(|p| p.into_inner());
        if a.get(&address).is_some_and(|c| c.established >= self.limits.connections_per_address) {
            return Err(Closed::AddressConnections);
        }
        let permit = self.connections.clone().try_acquire_owned().map_err(|_| Closed::ConnectionBudget)?;
        a.entry(address).or_default().established += 1;
        drop(a);
        drop(place);
        let _ = self.app.door.established.fetch_add(1, Ordering::Relaxed);
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        Ok(ConnectionPlace { door: self.clone(), address, id, _permit: permit })
    }

    /// Takes a new TCP connection: admits it or closes it at once.
    pub fn accept(self: &Arc<Self>, tcp: tokio::net::TcpStream, remote: SocketAddr, tls: Arc<rustls::ServerConfig>) {
        match self.admit(&remote) {
            Ok(place) => {
                let door = self.clone();
                let generation = self.reloaded.lock().unwrap_or_else(|p| p.into_inner()).0;
                drop(tokio::spawn(async move { door.serve(tcp, remote, tls, generation, place).await }));
            }
            Err(why) => {
                self.closed(why, &remote, "");
                drop(tcp);
            }
        }
    }

    /// After a reload: closes the connections whose certificate the new TLS files no longer accept,
    /// or whose account is gone or disabled. Returns how many were asked to close.
    pub fn recheck(&self, loaded: &tls::Loaded) -> usize {
        let open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        {
            let mut r = self.reloaded.lock().unwrap_or_else(|p| p.into_inner());
            *r = (r.0 + 1, Some(loaded.verifier.clone()));
        }
        let mut n = 0;
        for o in open.values() {
            if let Err(why) = tls::still_accepted(loaded.verifier.as_ref(), &o.chain) {
                tracing::info!(fingerprint = %o.peer.fingerprint, error = %why, "closing a connection: its certificate is no longer accepted");
                o.close.close(Closed::Revoked);
                n += 1;
            } else if self.app.signing.identify(&o.peer.fingerprint, &o.peer.subject).is_none() {
                o.close.close(Closed::UnknownIdentity);
                n += 1;
            }
        }
        n
    }

    /// Stops new work: every connection finishes what is in flight and closes.
    pub fn shut(&self) {
        let _ = self.shutdown.send(true);
    }

    /// Waits until every connection is gone (bounded by the caller).
    pub async fn drained(&self) {
        let _all = self.connections.acquire_many(self.limits.connections as u32).await;
        let _hs = self.handshakes.acquire_many(self.limits.handshakes as u32).await;
    }

    async fn serve(
        self: Arc<Self>,
        tcp: tokio::net::TcpStream,
        remote: SocketAddr,
        config: Arc<rustls::ServerConfig>,
        generation: u64,
        place: HandshakePlace,
    ) {
        let acceptor = tokio_rustls::TlsAcceptor::from(config);
        let tls = match tokio::time::timeout(self.limits.handshake, acceptor.accept(tcp)).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => return self.closed(Closed::HandshakeFailed, &remote, &e.to_string()),
            Err(_) => return self.closed(Closed::HandshakeTimeout, &remote, ""),
        };
        let place = match self.establish(place) {
            Ok(p) => p,
            Err(why) => return self.closed(why, &remote, ""),
        };
        let Some(chain) = tls.get_ref().1.peer_certificates().map(|c| c.to_vec()) else {
            return self.closed(Closed::HandshakeFailed, &remote, "no client certificate");
        };
        let Some(leaf) = chain.first() else { return };
        let peer = Arc::new(Peer { fingerprint: tls::fingerprint(leaf), subject: tls::subject(leaf) });
        let closer = Arc::new(Closer::default());
        // A certificate of no account is served once, so that the client reads why (403
        // unknown_identity), then closed; it gets the header deadline, not the idle one, to ask.
        let known = self.app.signing.identify(&peer.fingerprint, &peer.subject).is_some();
        let idle = if known { self.limits.idle } else { self.limits.headers };
        {
            let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
            // A reload while this connection was in its handshake: the new files decide.
            let reloaded = self.reloaded.lock().unwrap_or_else(|p| p.into_inner()).clone();
            if let (true, Some(verifier)) = (reloaded.0 != generation, reloaded.1) {
                if tls::still_accepted(verifier.as_ref(), &chain).is_err() {
                    drop(open);
                    return self.closed(Closed::Revoked, &remote, &peer.fingerprint);
                }
            }
            let _ = open.insert(place.id, Open { chain, peer: peer.clone(), close: closer.clone() });
        }
        let activity = Arc::new(Activity::new());
        let service = {
            let (app, peer, closer, activity) = (self.app.clone(), peer.clone(), closer.clone(), activity.clone());
            hyper::service::service_fn(move |req| {
                let (app, peer, closer, activity) = (app.clone(), peer.clone(), closer.clone(), activity.clone());
                async move {
                    let busy = activity.begin();
                    let mut r = api::handle(app, peer, req).await;
                    if let Ok(resp) = &mut r {
                        // A certificate of no account gets one answer per connection, on any route.
                        if !known || resp.extensions().get::<api::CloseConnection>().is_some() {
                            closer.close(Closed::UnknownIdentity);
                        }
                        // A streamed answer is in flight until its body ends, not when it starts.
                        if let http_body_util::Either::Right(body) = resp.body_mut() {
                            body.hold(Box::new(busy));
                            return r;
                        }
                    }
                    drop(busy);
                    r
                }
            })
        };
        let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
        let _ = builder.http1().timer(hyper_util::rt::TokioTimer::new()).header_read_timeout(self.limits.headers);
        let _ = builder
            .http2()
            .timer(hyper_util::rt::TokioTimer::new())
            .max_concurrent_streams(32)
            .keep_alive_interval(Some(Duration::from_secs(30)))
            .keep_alive_timeout(Duration::from_secs(10));
        let conn = builder.serve_connection(TokioIo::new(tls), service);
        tokio::pin!(conn);
        let opened = Instant::now();
        let mut shutdown = self.shutdown.subscribe();
        let mut closing: Option<Instant> = None;
        loop {
            let now = Instant::now();
            // The next moment something may have to close: idleness, age, or a closing connection's
            // last chance to finish.
            let wake = match closing {
                Some(since) => since + self.limits.headers.max(Duration::from_secs(10)),
                None => {
                    (activity.idle_since().map(|t| t + idle).unwrap_or(now + idle)).min(opened + self.limits.max_age)
                }
            };
            tokio::select! {
                r = conn.as_mut() => {
                    if let Err(e) = r {
                        tracing::debug!(%remote, error = %e, "connection ended with an error");
                    }
                    break;
                }
                _ = closer.notify.notified(), if closing.is_none() => {
                    if let Some(why) = closer.reason() {
                        self.closed(why, &remote, &peer.fingerprint);
                    }
                    conn.as_mut().graceful_shutdown();
                    closing = Some(Instant::now());
                }
                _ = shutdown.wait_for(|s| *s), if closing.is_none() => {
                    conn.as_mut().graceful_shutdown();
                    closing = Some(Instant::now());
                }
                _ = tokio::time::sleep_until(wake.into()) => {
                    if closing.is_some() {
                        break; // it had its chance to finish
                    }
                    let now = Instant::now();
                    let why = if now >= opened + self.limits.max_age {
                        Some(Closed::MaxAge)
                    } else {
                        activity.idle_since().filter(|t| now >= *t + idle).map(|_| Closed::Idle)
                    };
                    if let Some(why) = why {
                        self.closed(why, &remote, &peer.fingerprint);
                        conn.as_mut().graceful_shutdown();
                        closing = Some(now);
                    }
                }
            }
        }
        drop(place);
    }
}

/// Requests in flight on one connection, and since when it has had none.
struct Activity {
    state: Mutex<(usize, Option<Instant>)>,
}

impl Activity {
    fn new() -> Self {
        Activity { state: Mutex::new((0, Some(Instant::now()))) }
    }
    fn begin(self: &Arc<Self>) -> Busy {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        s.0 += 1;
        s.1 = None;
        Busy(self.clone())
    }
    /// When the last request ended, if none is in flight.
    fn idle_since(&self) -> Option<Instant> {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).1
    }
}

struct Busy(Arc<Activity>);

impl Drop for Busy {
    fn drop(&mut self) {
        let mut s = self.0.state.lock().unwrap_or_else(|p| p.into_inner());
        s.0 -= 1;
        if s.0 == 0 {
            s.1 = Some(Instant::now());
        }
    }
}
