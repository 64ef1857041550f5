//! Hot reload of a running server: read and validate the file again (a bad file changes
//! nothing), bind the listeners that appear (on this thread, one SO_REUSEPORT socket per shard,
//! as at start), hand every shard the new config with the listener changes and wait for each
//! to switch (between requests: in-flight requests finish on the old snapshot), then move the
//! control thread and the DNS thread to the new server set. Settings that need a restart
//! (workers, driver, admin address, log format) are reported, not applied.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::{info, warn};

use super::Handle;
use crate::config::{self, Config};
use crate::health::Report;
use crate::shard::{Control, Reload};

/// How long a reload waits for the shards to switch before it reports the laggards.
const SHARD_PATIENCE: Duration = Duration::from_secs(5);

/// A listener as bound: stable id, name, the address as configured and as bound.
#[derive(Debug, Clone)]
pub struct ListenerRecord {
    pub id: u64,
    pub name: String,
    pub configured: SocketAddr,
    pub addr: SocketAddr,
}

/// A reload that went through.
#[derive(Debug, Clone)]
pub struct ReloadReport {
    pub gen: u64,
    /// Changes that need a restart, shards that were slow to confirm.
    pub warnings: Vec<String>,
}

#[derive(Debug, Default, Clone)]
pub struct Counts {
    pub ok: u64,
    pub failed: u64,
    /// Errors of the last rejected reload.
    pub last_errors: Option<Vec<String>>,
}

/// What the listeners of the new config mean for the bound ones.
struct ListenerPlan {
    /// Stable id of each new-config listener.
    ids: Vec<u64>,
    add: Vec<(u64, Vec<std::net::TcpListener>)>,
    remove: Vec<u64>,
    next: Vec<ListenerRecord>,
}

impl Handle {
    /// Reload the config file, log the outcome, count it, and tell the admin thread.
    pub fn reload(&mut self) -> Result<ReloadReport, Vec<String>> {
        let result = self.try_reload();
        match &result {
            Ok(r) => {
                self.reloads.ok += 1;
                for w in &r.warnings {
                    warn!("reload: {w}");
                }
                info!(gen = r.gen, "reload complete");
            }
            Err(errors) => {
                self.reloads.failed += 1;
                self.reloads.last_errors = Some(errors.clone());
                for e in errors {
                    warn!("reload rejected: {e}");
                }
            }
        }
        self.tell_admin();
        result
    }

    fn try_reload(&mut self) -> Result<ReloadReport, Vec<String>> {
        let mut next = config::load(&self.config.source).map_err(|e| {
            e.to_string()
                .lines()
                .map(str::to_string)
                .collect::<Vec<_>>()
        })?;
        global_policies_kept(&self.config, &next)?;
        let mut warnings = restart_only(&self.config, &next);
        keep_keys(&self.config, &mut next);
        let plan = self.plan_listeners(&next)?;
        let gen = self.gen + 1;
        let config = Arc::new(next);
        let reload = Arc::new(Reload {
            gen,
            config: config.clone(),
            listener_ids: plan.ids,
            add: plan.add,
            remove: plan.remove,
        });
        let deadline = Instant::now() + SHARD_PATIENCE;
        let (ack_tx, ack_rx) = flume::bounded(self.controls.len());
        for (i, c) in self.controls.iter().enumerate() {
            let msg = Control::Reload(reload.clone(), ack_tx.clone());
            if c.send_deadline(msg, deadline).is_err() {
                warnings.push(format!("shard {i} did not take the new config in time"));
            }
        }
        drop(reload);
        let mut acked = vec![false; self.controls.len()];
        while acked.iter().any(|a| !a) {
            match ack_rx.recv_deadline(deadline) {
                Ok(i) => acked[i] = true,
                Err(_) => break,
            }
        }
        for (i, _) in acked.iter().enumerate().filter(|(_, a)| !**a) {
            warnings.push(format!(
                "shard {i} has not confirmed the switch within {} s (it will when it gets to it)",
                SHARD_PATIENCE.as_secs()
            ));
        }
        self.gen = gen;
        self.config = config.clone();
        for l in plan
            .next
            .iter()
            .filter(|l| !self.listeners.iter().any(|o| o.id == l.id))
        {
            info!(listener = %l.name, addr = %l.addr, shards = self.controls.len(), "listening");
        }
        for l in self
            .listeners
            .iter()
            .filter(|o| !plan.next.iter().any(|l| l.id == o.id))
        {
            info!(listener = %l.name, addr = %l.addr, "listener closed");
        }
        self.listeners = plan.next;
        let sent = self
            .reports
            .send_timeout(Report::Reload { gen, config }, SHARD_PATIENCE);
        if sent.is_err() {
            warnings.push("the control thread did not take the new config in time".into());
        }
        if let Err(e) = self.restart_finders() {
            warnings.push(format!("cannot restart the DNS and discovery threads: {e}"));
        }
        Ok(ReloadReport { gen, warnings })
    }

    /// Match the new config's listeners to the bound ones: the same address (a fixed port),
    /// or the same name and address (port 0), keeps its sockets; others are bound now.
    fn plan_listeners(&mut self, next: &Config) -> Result<ListenerPlan, Vec<String>> {
        let mut taken = vec![false; self.listeners.len()];
        let mut plan = ListenerPlan {
            ids: Vec::new(),
            add: Vec::new(),
            remove: Vec::new(),
            next: Vec::new(),
        };
        let mut errors = Vec::new();
        for l in &next.listeners {
            let kept = self.listeners.iter().enumerate().find(|(i, r)| {
                !taken[*i] && r.configured == l.addr && (l.addr.port() != 0 || r.name == l.name)
            });
            if let Some((i, r)) = kept {
                taken[i] = true;
                plan.ids.push(r.id);
                plan.next.push(ListenerRecord {
                    name: l.name.clone(),
                    ..r.clone()
                });
                continue;
            }
            match crate::listener::bind_shared(l.addr, self.controls.len()) {
                Ok((sockets, addr)) => {
                    let id = self.next_listener_id;
                    self.next_listener_id += 1;
                    plan.ids.push(id);
                    plan.add.push((id, sockets));
                    plan.next.push(ListenerRecord {
                        id,
                        name: l.name.clone(),
                        configured: l.addr,
                        addr,
                    });
                }
                Err(e) => errors.push(format!(
                    "listener \"{}\": cannot listen on {}: {e}",
                    l.name, l.addr
                )),
            }
        }
        if !errors.is_empty() {
            return Err(errors); // the sockets bound so far close here
        }
        plan.remove = self
            .listeners
            .iter()
            .zip(&taken)
            .filter(|(_, t)| !**t)
            .map(|(r, _)| r.id)
            .collect();
        Ok(plan)
    }
}

/// Global rate limits run Redis links started per policy index: a reload may not add, remove,
/// move or change a `scope = "global"` policy (the rest of the file would reload around it).
fn global_policies_kept(old: &Config, new: &Config) -> Result<(), Vec<String>> {
    use crate::gateway::rate_limit::Scope;
    let (a, b) = (&old.gateway.rate_limits, &new.gateway.rate_limits);
    for i in 0..a.len().max(b.len()) {
        let (x, y) = (a.get(i), b.get(i));
        let global = |p: Option<&crate::gateway::rate_limit::RateLimitPolicy>| {
            p.is_some_and(|p| p.scope == Scope::Global)
        };
        if (global(x) || global(y)) && format!("{x:?}") != format!("{y:?}") {
            return Err(vec![format!(
                "rate_limit[{i}]: a scope = \"global\" policy was added, removed, moved or \
                 changed; that needs a restart (the running config is kept)"
            )]);
        }
    }
    Ok(())
}

/// Settings a reload cannot apply: each one that changed, as a warning.
fn restart_only(old: &Config, new: &Config) -> Vec<String> {
    let mut w = Vec::new();
    if old.server.workers != new.server.workers {
        w.push("server.workers changed: takes effect at the next restart".into());
    }
    if old.server.driver != new.server.driver {
        w.push("server.driver changed: takes effect at the next restart".into());
    }
    if old.admin.as_ref().map(|a| a.listen) != new.admin.as_ref().map(|a| a.listen) {
        w.push("admin.listen changed: takes effect at the next restart".into());
    }
    if old.log.format != new.log.format {
        w.push("log.format changed: takes effect at the next restart".into());
    }
    let access = |c: &Config| {
        let l = &c.log;
        format!("{:?} {:?} {:?}", l.access, l.access_format, l.access_fields)
    };
    if access(old) != access(new) {
        w.push(
            "log.access, access_format or access_fields changed: takes effect at the next restart"
                .into(),
        );
    }
    w
}

/// Keys generated at load that must outlive a reload: the rate-limit key hash (so buckets of
/// policies that stay are found again, and keys keep their owner shard) and the TLS
/// session-ticket key of a listener that stays (so clients resume across a reload).
fn keep_keys(old: &Config, new: &mut Config) {
    new.gateway.hasher = old.gateway.hasher.clone();
    for l in &mut new.listeners {
        let before = old.listeners.iter().find(|o| o.name == l.name);
        if let (Some(tls), Some(old_tls)) = (&mut l.tls, before.and_then(|o| o.tls.as_ref())) {
            tls.keep_ticket_key(old_tls);
        }
    }
}
