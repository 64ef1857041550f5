//! The real coregate binary, started on a test's config with its listeners on port 0, its
//! bound addresses read from the start-up log, and its stdout and stderr captured.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use super::{write_temp_config, DEADLINE};

/// The coregate binary, started on a config whose listeners use port 0.
pub struct Proxy {
    pub child: Child,
    /// Bound address of each listener, in config order.
    pub addrs: Vec<SocketAddr>,
    log: Arc<Mutex<String>>,
    /// Everything the proxy wrote to stdout (the access log with `access = "stdout"`).
    out: Arc<Mutex<String>>,
    config_path: PathBuf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Driver {
    Auto,
    Legacy,
}

impl Proxy {
    /// Start coregate on `toml`, which must listen on 127.0.0.1:0.
    pub fn start(toml: &str) -> Proxy {
        Proxy::start_with(toml, Driver::Auto)
    }

    pub fn start_with(toml: &str, driver: Driver) -> Proxy {
        Proxy::start_under(toml, driver, &[])
    }

    /// Start coregate as the last argument of `wrapper` (e.g. `unshare -m sh -c …`); an empty
    /// wrapper runs it directly.
    pub fn start_under(toml: &str, driver: Driver, wrapper: &[&str]) -> Proxy {
        let path = write_temp_config(toml);
        let bin = env!("CARGO_BIN_EXE_coregate");
        let mut cmd = match wrapper.split_first() {
            None => Command::new(bin),
            Some((program, args)) => {
                let mut c = Command::new(program);
                c.args(args).arg(bin);
                c
            }
        };
        cmd.arg("--config")
            .arg(&path)
            .arg("--log-level")
            .arg("debug");
        cmd.stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .stdin(Stdio::null());
        cmd.env_remove("RUST_LOG");
        if driver == Driver::Legacy {
            cmd.env("MONOIO_FORCE_LEGACY_DRIVER", "1");
        }
        let mut child = cmd.spawn().expect("spawn coregate");
        let stdout = child.stdout.take().unwrap();
        let out = Arc::new(Mutex::new(String::new()));
        {
            let out = out.clone();
            thread::spawn(move || {
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    let mut o = out.lock().unwrap();
                    o.push_str(&line);
                    o.push('\n');
                }
            });
        }
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        {
            let log = log.clone();
            thread::spawn(move || {
                for line in BufReader::new(stderr).lines() {
                    let Ok(line) = line else { break };
                    if line.contains(" listening ") {
                        if let Some(addr) = line
                            .split_whitespace()
                            .find_map(|t| t.strip_prefix("addr="))
                            .and_then(|a| a.parse::<SocketAddr>().ok())
                        {
                            let _ = tx.send(addr);
                        }
                    }
                    let mut l = log.lock().unwrap();
                    l.push_str(&line);
                    l.push('\n');
                }
            });
        }
        let listeners = toml.matches("[[listener]]").count().max(1);
        let mut addrs = Vec::new();
        while addrs.len() < listeners {
            match rx.recv_timeout(DEADLINE) {
                Ok(a) => addrs.push(a),
                Err(_) => {
                    let _ = child.kill();
                    panic!("coregate did not start; log:\n{}", log.lock().unwrap());
                }
            }
        }
        Proxy {
            child,
            addrs,
            log,
            out,
            config_path: path,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addrs[0]
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// What the proxy printed on stdout so far.
    pub fn stdout(&self) -> String {
        self.out.lock().unwrap().clone()
    }

    /// The config file the proxy was started on (rewrite it, then reload).
    pub fn config_path(&self) -> &std::path::Path {
        &self.config_path
    }

    /// Replace the proxy's config file (takes effect at the next reload).
    pub fn write_config(&self, toml: &str) {
        std::fs::write(&self.config_path, toml).unwrap();
    }

    pub fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on our own child's pid has no memory-safety preconditions.
        let r = unsafe { libc::kill(self.pid() as libc::pid_t, sig) };
        assert_eq!(r, 0, "kill failed");
    }

    /// Wait for the process to exit; returns its exit code.
    pub fn wait_exit(&mut self, within: Duration) -> Option<i32> {
        self.wait_exit_polling(within, Duration::from_millis(10))
    }

    /// `wait_exit`, noticing the exit within about 0.1 ms: for checks of what the process
    /// leaves behind at the moment it is gone.
    pub fn wait_exit_closely(&mut self, within: Duration) -> Option<i32> {
        self.wait_exit_polling(within, Duration::from_micros(100))
    }

    fn wait_exit_polling(&mut self, within: Duration, poll: Duration) -> Option<i32> {
        let deadline = Instant::now() + within;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code();
            }
            if Instant::now() > deadline {
                return None;
            }
            thread::sleep(poll);
        }
    }

    /// Resident set size high-water mark of the proxy, in KiB.
    pub fn peak_rss_kib(&self) -> u64 {
        super::status_kib(self.pid(), "VmHWM:").expect("the proxy's VmHWM")
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.config_path);
    }
}
