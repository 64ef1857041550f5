//! The coregate binary: command line, logging, start, then supervise: SIGHUP and `POST /reload`
//! reload the config, SIGTERM/SIGINT drain and exit.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{reload, EnvFilter, Layer, Registry};

use coregate::config::{self, Config, LogFormat};
use coregate::server::{Event, Handle, Server};

const DEFAULT_CONFIG: &str = "config/coregate.toml";

#[derive(Parser)]
#[command(
    name = "coregate",
    version,
    about = "Thread-per-core io_uring edge proxy"
)]
struct Cli {
    /// Config file.
    #[arg(long, short, global = true, env = "COREGATE_CONFIG", default_value = DEFAULT_CONFIG)]
    config: PathBuf,
    /// Log level, overriding [log] level: error, warn, info, debug, trace.
    #[arg(long, global = true)]
    log_level: Option<String>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the proxy (the default).
    Run,
    /// Validate the config file and exit: 0 when valid, 1 otherwise.
    Check,
}

/// Changes the log level of the running process (a reload's `[log] level`).
type SetLevel = Box<dyn Fn(&str)>;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match config::load(&cli.config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(1);
        }
    };
    if let Some(Command::Check) = cli.command {
        println!(
            "{}: ok ({} listeners, {} upstreams, {} routes)",
            cli.config.display(),
            config.listeners.len(),
            config.upstreams.len(),
            config.router.routes().len()
        );
        return ExitCode::SUCCESS;
    }
    let set_level = init_logging(
        cli.log_level.as_deref(),
        &config.log.level,
        config.log.format,
    );
    raise_open_file_limit();
    run(Arc::new(config), set_level)
}

/// Logs to stderr, as text or JSON. The level comes from `--log-level`, else `RUST_LOG`, else
/// the config; only in that last case does a reload change it (the returned closure).
fn init_logging(cli: Option<&str>, level: &str, format: LogFormat) -> Option<SetLevel> {
    let fixed = cli
        .map(EnvFilter::new)
        .or_else(|| EnvFilter::try_from_default_env().ok());
    let from_config = fixed.is_none();
    let (filter, handle) = reload::Layer::new(fixed.unwrap_or_else(|| EnvFilter::new(level)));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let fmt = tracing_subscriber::fmt::layer()
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    let fmt: Box<dyn Layer<_> + Send + Sync> = match format {
        LogFormat::Text => fmt.boxed(),
        LogFormat::Json => fmt.json().boxed(),
    };
    Registry::default().with(filter).with(fmt).init();
    from_config.then(|| -> SetLevel {
        Box::new(move |level: &str| {
            let _ = handle.reload(EnvFilter::new(level));
        })
    })
}

/// Every client and upstream connection is a file descriptor, and distributions start processes
/// with a soft limit of 1024: raise it to the hard limit (what nginx's worker_rlimit_nofile and
/// HAProxy do), so the limit on connections is the config's, not an accident of the shell.
fn raise_open_file_limit() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write the struct passed to them.
    let raised = unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim) == 0
        }
    };
    if raised {
        tracing::debug!(limit = lim.rlim_cur, "open file limit");
    } else {
        tracing::warn!(
            error = %std::io::Error::last_os_error(),
            "cannot raise the open file limit"
        );
    }
}

fn run(config: Arc<Config>, set_level: Option<SetLevel>) -> ExitCode {
    let server = match Server::bind(config.clone()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!("{e}");
            return ExitCode::from(1);
        }
    };
    summary(&config, &server);
    let signals = match Signals::new([SIGTERM, SIGINT, SIGHUP]) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!("cannot install signal handlers: {e}");
            return ExitCode::from(1);
        }
    };
    let mut handle = match server.start() {
        Ok(h) => h,
        Err(e) => {
            tracing::error!("{e}");
            return ExitCode::from(1);
        }
    };
    forward_signals(signals, handle.events());
    supervise(&mut handle, set_level.as_deref());
    handle.shutdown();
    handle.join();
    tracing::info!("stopped");
    ExitCode::SUCCESS
}

/// A readable start-up summary: what runs, where, on how many shards.
fn summary(config: &Config, server: &Server) {
    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        config = %config.source.display(),
        shards = server.shard_count(),
        workers = ?config.server.workers,
        driver = ?config.server.driver,
        "coregate starting"
    );
    for (name, addr) in server.addrs() {
        let l = config.listeners.iter().find(|l| l.name == name);
        let scheme = if l.is_some_and(|l| l.tls.is_some()) {
            "https"
        } else {
            "http"
        };
        tracing::info!("  listener {name}: {scheme}://{addr}");
    }
    for u in &config.upstreams {
        let checks = match (&u.health, &u.outlier) {
            (Some(_), Some(_)) => "active + passive checks",
            (Some(_), None) => "active checks",
            (None, Some(_)) => "passive checks",
            (None, None) => "no health checks",
        };
        tracing::info!(
            "  upstream {}: {} server(s), {:?}, {checks}",
            u.name,
            u.servers.len(),
            u.balance
        );
    }
    tracing::info!(
        "  {} route(s), {} auth, {} rate-limit, {} CORS polic(ies)",
        config.router.routes().len(),
        config.gateway.auths.len(),
        config.gateway.rate_limits.len(),
        config.gateway.cors.len()
    );
    match server.admin_addr() {
        Some(a) => tracing::info!(
            "  admin API: http://{a} (/metrics, /status, /config, /upstreams, /reload)"
        ),
        None => tracing::info!("  admin API: off (no [admin] listen)"),
    }
}

/// Signals become supervisor events, on a thread of their own. A second SIGTERM or SIGINT
/// while draining stops the process at once.
fn forward_signals(mut signals: Signals, events: flume::Sender<Event>) {
    std::thread::spawn(move || {
        let mut stopping = false;
        for sig in signals.forever() {
            if sig == SIGHUP {
                // Never block here: while draining nobody reads the queue.
                let _ = events.try_send(Event::Signal(sig));
                continue;
            }
            if stopping {
                std::process::exit(1);
            }
            stopping = true;
            let _ = events.send(Event::Signal(sig));
        }
    });
}

/// Handle reloads until a stop signal.
fn supervise(handle: &mut Handle, set_level: Option<&dyn Fn(&str)>) {
    while let Some(event) = handle.next_event() {
        let reply = match event {
            Event::Signal(SIGHUP) => {
                tracing::info!("SIGHUP: reloading {}", handle.config().source.display());
                None
            }
            Event::Signal(sig) => {
                tracing::info!(signal = sig, "shutting down: draining in-flight requests");
                return;
            }
            Event::Reload(reply) => {
                tracing::info!("admin: reloading {}", handle.config().source.display());
                Some(reply)
            }
        };
        let result = handle.reload();
        if let (Ok(_), Some(set)) = (&result, set_level) {
            set(&handle.config().log.level);
        }
        if let Some(reply) = reply {
            let _ = reply.send(result);
        }
    }
}
