//! A real `redis-server` (Debian's package) per test, on a loopback port of its own, so tests
//! never share state: start, kill, restart on the same port, pause (SIGSTOP) and resume, and
//! `redis-cli` for looking inside. Every wait has a deadline.

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::Ordering;
use std::thread;
use std::time::{Duration, Instant};

use super::{DEADLINE, NEXT_ID};

pub struct RedisServer {
    pub port: u16,
    child: Option<Child>,
    dir: PathBuf,
    /// Extra `redis-server` arguments (cluster mode…), kept for restarts.
    args: Vec<String>,
}

impl RedisServer {
    /// Start a fresh, empty Redis on a free loopback port.
    pub fn start() -> RedisServer {
        RedisServer::start_with(&[])
    }

    pub fn start_with(args: &[&str]) -> RedisServer {
        let dir = std::env::temp_dir().join(format!(
            "coregate-redis-{}-{}",
            std::process::id(),
            NEXT_ID.fetch_add(1, Ordering::SeqCst)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let mut r = RedisServer {
            port: 0,
            child: None,
            dir,
            args: args.iter().map(|a| a.to_string()).collect(),
        };
        // A port found free may be taken before Redis binds it: try a few.
        for _ in 0..5 {
            r.port = TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            if r.spawn() {
                return r;
            }
        }
        panic!("redis-server did not start (is the redis-server package installed?)");
    }

    /// A Redis Cluster node with no slots yet (`--cluster-port` on a second free port).
    pub fn start_cluster_node() -> RedisServer {
        let bus = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
            .to_string();
        RedisServer::start_with(&[
            "--cluster-enabled",
            "yes",
            "--cluster-port",
            &bus,
            "--cluster-config-file",
            "nodes.conf",
        ])
    }

    /// The cluster bus port of a cluster node.
    pub fn bus_port(&self) -> &str {
        let i = self
            .args
            .iter()
            .position(|a| a == "--cluster-port")
            .expect("a cluster node");
        &self.args[i + 1]
    }

    /// Start the process on `self.port`; true once it answers PING.
    fn spawn(&mut self) -> bool {
        let port = self.port.to_string();
        let child = Command::new("redis-server")
            .args(["--port", &port, "--bind", "127.0.0.1", "--save", ""])
            .args(["--appendonly", "no", "--protected-mode", "no"])
            .args(["--loglevel", "warning", "--daemonize", "no"])
            .arg("--dir")
            .arg(&self.dir)
            .args(&self.args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("run redis-server (scripts/setup.sh installs it)");
        self.child = Some(child);
        let deadline = Instant::now() + DEADLINE;
        while Instant::now() < deadline {
            if let Some(Ok(Some(_))) = self.child.as_mut().map(|c| c.try_wait()) {
                self.child = None;
                return false; // exited: the port was taken
            }
            if self.cli(&["PING"]).trim() == "PONG" {
                return true;
            }
            thread::sleep(Duration::from_millis(20));
        }
        false
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Kill the process (SIGKILL): connections are reset, nothing is saved.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let port = self.port;
        let gone = super::poll_until(DEADLINE, || {
            TcpStream::connect(("127.0.0.1", port)).is_err()
        });
        assert!(gone, "redis still accepts connections after kill");
    }

    /// Start again on the same port (empty: nothing was saved).
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "restart after kill");
        let deadline = Instant::now() + DEADLINE;
        while !self.spawn() {
            assert!(Instant::now() < deadline, "redis did not come back");
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGSTOP (`false`) or SIGCONT (`true`): a Redis that hangs, connections open.
    pub fn set_running(&self, running: bool) {
        let pid = self.child.as_ref().expect("running").id();
        let sig = if running { "-CONT" } else { "-STOP" };
        let ok = Command::new("kill")
            .args([sig, &pid.to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill {sig}");
    }

    /// Run `redis-cli` against this server; its stdout.
    pub fn cli(&self, args: &[&str]) -> String {
        let out = Command::new("timeout")
            .args(["5", "redis-cli", "-p", &self.port.to_string()])
            .args(args)
            .output()
            .expect("redis-cli");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// How many times `command` ran (INFO commandstats), 0 if never.
    pub fn calls(&self, command: &str) -> u64 {
        let info = self.cli(&["INFO", "commandstats"]);
        let prefix = format!("cmdstat_{}:calls=", command.to_ascii_lowercase());
        info.lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .and_then(|rest| rest.split(',').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-CONT", &c.id().to_string()])
                .status();
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
