//! The admin listener (`[admin] listen`): metrics and the admin API, served by a thread of its
//! own with a small monoio runtime, off the shards. It learns what the shards know by message
//! (`shard::Control::{Metrics, Inspect, CachePurge}`), asks the supervisor (the main thread) to
//! reload, and hears about the running config from it (`Update`).
//!
//! | endpoint | answer |
//! |---|---|
//! | `GET /metrics` | Prometheus text format, every shard's series plus process-wide ones |
//! | `GET /status` | version, uptime, shards, driver, config generation, listeners, reloads |
//! | `GET /config` | the running config file as JSON, secrets redacted |
//! | `GET /upstreams` | every cluster's servers: health, ejection, in-flight, idle connections |
//! | `POST /reload` | reload the config file; 200 with warnings, or 400 with its errors |
//! | `POST /cache/purge` | drop cached responses (501 while no cache is configured) |
//!
//! With `[admin] token`, every request needs `Authorization: Bearer <token>` (401 otherwise).

mod http;
mod views;

use std::io;
use std::net::{SocketAddr, TcpListener as StdListener};
use std::rc::Rc;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use monoio::net::{TcpListener, TcpStream};
use tracing::{debug, info, warn};

use crate::config::{Config, Driver};
use crate::server::Event;
use crate::shard::{self, Control};
use http::{Request, Response};

/// Longest wait for the supervisor to finish a reload.
const RELOAD_TIMEOUT: Duration = Duration::from_secs(60);
/// Admin connections served at once; more are closed at accept.
const CONNECTIONS_MAX: usize = 64;

/// The supervisor's state as the admin thread shows it; sent again after every reload.
#[derive(Debug, Clone)]
pub struct Update {
    pub config: Arc<Config>,
    pub gen: u64,
    /// (name, bound address) of every listener.
    pub listeners: Vec<(String, SocketAddr)>,
    pub reloads_ok: u64,
    pub reloads_failed: u64,
    pub last_reload_errors: Option<Vec<String>>,
}

/// What the main thread hands the admin thread.
pub struct Plan {
    pub listener: StdListener,
    pub driver: Driver,
    pub shards: Vec<flume::Sender<Control>>,
    pub supervisor: flume::Sender<Event>,
    pub updates: flume::Receiver<Update>,
    pub first: Update,
    pub started: Instant,
    /// Disconnects at shutdown.
    pub stop: flume::Receiver<()>,
}

/// Bind the admin listener (on the main thread, so that a port in use fails the start).
pub fn bind(addr: SocketAddr) -> io::Result<(StdListener, SocketAddr)> {
    let l = StdListener::bind(addr)?;
    l.set_nonblocking(true)?;
    let bound = l.local_addr()?;
    Ok((l, bound))
}

pub fn spawn(plan: Plan) -> io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("coregate-admin".into())
        .spawn(move || run(plan))
}

fn run(plan: Plan) {
    let (mut rt, driver) = match shard::build_runtime(plan.driver) {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, "cannot build the admin runtime; no admin API");
            return;
        }
    };
    info!(driver, "admin thread started");
    match &mut rt {
        shard::Fusion::Uring(r) => r.block_on(admin_main(plan)),
        shard::Fusion::Legacy(r) => r.block_on(admin_main(plan)),
    }
}

/// The admin thread's state.
struct Admin {
    shards: Vec<flume::Sender<Control>>,
    supervisor: flume::Sender<Event>,
    updates: flume::Receiver<Update>,
    current: std::cell::RefCell<Update>,
    started: Instant,
    open: std::cell::Cell<usize>,
}

async fn admin_main(plan: Plan) {
    let listener = match TcpListener::from_std(plan.listener) {
        Ok(l) => l,
        Err(e) => {
            warn!(error = %e, "cannot register the admin listener");
            return;
        }
    };
    let admin = Rc::new(Admin {
        shards: plan.shards,
        supervisor: plan.supervisor,
        updates: plan.updates,
        current: std::cell::RefCell::new(plan.first),
        started: plan.started,
        open: std::cell::Cell::new(0),
    });
    loop {
        let accepted = monoio::select! {
            r = listener.accept() => r,
            _ = plan.stop.recv_async() => break,
        };
        match accepted {
            Ok((stream, peer)) if admin.open.get() < CONNECTIONS_MAX => {
                admin.open.set(admin.open.get() + 1);
                let a = admin.clone();
                monoio::spawn(async move {
                    serve(&a, stream, peer).await;
                    a.open.set(a.open.get() - 1);
                });
            }
            Ok(_) => {} // too many admin connections: closed
            Err(e) => {
                warn!(error = %e, "admin accept failed");
                monoio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    crate::listener::close(listener).await;
}

async fn serve(admin: &Admin, mut stream: TcpStream, peer: SocketAddr) {
    let Some(req) = http::read(&mut stream).await else {
        let bad = Response::error(400, "malformed or incomplete request");
        http::write(&mut stream, bad).await;
        return;
    };
    while let Ok(u) = admin.updates.try_recv() {
        *admin.current.borrow_mut() = u;
    }
    let resp = handle(admin, &req).await;
    debug!(%peer, method = %req.method, path = %req.path, status = resp.status, "admin request");
    http::write(&mut stream, resp).await;
}

async fn handle(admin: &Admin, req: &Request) -> Response {
    let token = admin
        .current
        .borrow()
        .config
        .admin
        .as_ref()
        .and_then(|a| a.token.clone());
    if let Some(token) = token {
        if !authorized(req.authorization.as_deref(), &token) {
            let mut r = Response::error(401, "a bearer token is required");
            r.extra
                .push(("WWW-Authenticate", "Bearer realm=\"coregate-admin\"".into()));
            return r;
        }
    }
    let allow = |methods: &str| {
        let mut r = Response::error(405, "method not allowed");
        r.extra.push(("Allow", methods.into()));
        r
    };
    match (req.method.as_str(), req.path.as_str()) {
        ("GET", "/metrics") => views::metrics(admin).await,
        ("GET", "/status") => views::status(admin).await,
        ("GET", "/config") => views::config(admin),
        ("GET", "/upstreams") => views::upstreams(admin).await,
        ("POST", "/reload") => reload(admin).await,
        ("POST", "/cache/purge") => views::purge(admin, &req.body).await,
        (_, "/metrics" | "/status" | "/config" | "/upstreams") => allow("GET"),
        (_, "/reload" | "/cache/purge") => allow("POST"),
        _ => Response::error(404, "no such admin endpoint"),
    }
}

/// `Bearer <token>`, compared in constant time.
fn authorized(field: Option<&str>, token: &str) -> bool {
    let Some(given) = field.and_then(|f| {
        let (scheme, rest) = f.trim().split_once(' ')?;
        scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
    }) else {
        return false;
    };
    let (a, b) = (given.as_bytes(), token.as_bytes());
    let mut diff = a.len() ^ b.len();
    for (i, &x) in b.iter().enumerate() {
        diff |= usize::from(x ^ a.get(i).copied().unwrap_or(0));
    }
    diff == 0
}

async fn reload(admin: &Admin) -> Response {
    let (tx, rx) = flume::bounded(1);
    if admin.supervisor.try_send(Event::Reload(tx)).is_err() {
        return Response::error(503, "the supervisor is busy; try again");
    }
    let outcome = monoio::time::timeout(RELOAD_TIMEOUT, rx.recv_async()).await;
    while let Ok(u) = admin.updates.try_recv() {
        *admin.current.borrow_mut() = u;
    }
    match outcome {
        Ok(Ok(Ok(r))) => Response::json(
            200,
            &serde_json::json!({ "status": "ok", "generation": r.gen, "warnings": r.warnings }),
        ),
        Ok(Ok(Err(errors))) => Response::json(
            400,
            &serde_json::json!({ "status": "rejected", "errors": errors }),
        ),
        _ => Response::error(503, "no answer from the supervisor (shutting down?)"),
    }
}

#[cfg(test)]
mod tests {
    use super::authorized;

    #[test]
    fn bearer_tokens() {
        assert!(authorized(Some("Bearer s3cret"), "s3cret"));
        assert!(authorized(Some("bearer  s3cret "), "s3cret"));
        assert!(!authorized(Some("Bearer s3cre"), "s3cret"));
        assert!(!authorized(Some("Bearer s3crett"), "s3cret"));
        assert!(!authorized(Some("Basic s3cret"), "s3cret"));
        assert!(!authorized(Some("s3cret"), "s3cret"));
        assert!(!authorized(None, "s3cret"));
    }
}
