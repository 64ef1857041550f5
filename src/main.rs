//! The coregate binary: command line, logging, start, wait for a signal, drain, exit.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

use coregate::config::{self, LogFormat};
use coregate::server::Server;

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
        println!("{}: ok", cli.config.display());
        return ExitCode::SUCCESS;
    }
    init_logging(
        cli.log_level.as_deref().unwrap_or(&config.log.level),
        config.log.format,
    );
    raise_open_file_limit();
    run(Arc::new(config))
}

fn init_logging(level: &str, format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
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

fn run(config: Arc<Config>) -> ExitCode {
    let server = match Server::bind(config.clone()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!("{e}");
            return ExitCode::from(1);
        }
    };
    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        config = %config.source.display(),
        shards = server.shard_count(),
        upstreams = config.upstreams.len(),
        routes = config.router.routes().len(),
        "coregate starting"
    );
    let mut signals = match Signals::new([SIGTERM, SIGINT]) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!("cannot install signal handlers: {e}");
            return ExitCode::from(1);
        }
    };
    let handle = match server.start() {
        Ok(h) => h,
        Err(e) => {
            tracing::error!("{e}");
            return ExitCode::from(1);
        }
    };
    if let Some(sig) = signals.forever().next() {
        tracing::info!(signal = sig, "shutting down: draining in-flight requests");
    }
    handle.shutdown();
    // A second signal while draining stops at once.
    std::thread::spawn(move || {
        if signals.forever().next().is_some() {
            std::process::exit(1);
        }
    });
    handle.join();
    tracing::info!("stopped");
    ExitCode::SUCCESS
}

use coregate::config::Config;
