//! Reliability helpers: scripted raw origins (for faults an ordinary origin never makes),
//! process resource probes (/proc fd count and RSS), the open-file limit, and polling waits.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use super::DEADLINE;

/// An origin whose every connection runs `script(stream, connection index)` on its own thread:
/// for misbehaviour (resets, garbage, silence) that the recording `Origin` does not do.
pub struct RawOrigin {
    pub addr: SocketAddr,
    connections: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

impl RawOrigin {
    pub fn start(script: impl Fn(TcpStream, usize) + Send + Sync + 'static) -> RawOrigin {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind raw origin");
        let addr = listener.local_addr().unwrap();
        let connections = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let script = Arc::new(script);
        {
            let (connections, stop) = (connections.clone(), stop.clone());
            thread::spawn(move || {
                for stream in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(stream) = stream else { continue };
                    let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
                    let id = connections.fetch_add(1, Ordering::SeqCst);
                    let script = script.clone();
                    thread::spawn(move || script(stream, id));
                }
            });
        }
        RawOrigin {
            addr,
            connections,
            stop,
        }
    }

    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

impl Drop for RawOrigin {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr);
    }
}

/// Read one request head (up to CRLFCRLF, at most 64 KiB) and, if it declares a
/// Content-Length, that many body bytes. None at EOF or error.
pub fn read_request_bytes(s: &mut TcpStream) -> Option<Vec<u8>> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if head.len() > 64 * 1024 || s.read(&mut byte).ok()? == 0 {
            return None;
        }
        head.push(byte[0]);
    }
    let text = String::from_utf8_lossy(&head).to_ascii_lowercase();
    if let Some(cl) = text
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok())
    {
        let mut body = vec![0u8; cl];
        s.read_exact(&mut body).ok()?;
        head.extend_from_slice(&body);
    }
    Some(head)
}

/// Write, ignoring errors (the peer may be gone: that is what these tests are about).
pub fn write_quiet(s: &mut TcpStream, bytes: &[u8]) {
    let _ = s.write_all(bytes);
}

/// Close with a TCP reset instead of a FIN.
pub fn reset(s: TcpStream) {
    let _ = socket2::SockRef::from(&s).set_linger(Some(Duration::ZERO));
    drop(s);
}

/// Open file descriptors of a process.
pub fn fd_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// Current resident set size of a process, in KiB (0 once it is gone).
pub fn rss_kib(pid: u32) -> u64 {
    status_kib(pid, "VmRSS:").unwrap_or(0)
}

/// A KiB figure of a process from /proc/PID/status (`field` with its colon).
pub fn status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Poll `cond` every 10 ms until it holds or `within` passes; returns whether it held (the
/// caller decides what a timeout means; `wait_until` panics instead).
pub fn poll_until(within: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(10));
    }
}

/// Open sockets of a process (fds whose link is `socket:[inode]`): what a leaked connection
/// leaves behind. Other fds (the runtime's rings, eventfds, timers) are created lazily and do
/// not grow with traffic.
pub fn socket_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| {
            d.filter_map(|e| e.ok())
                .filter_map(|e| std::fs::read_link(e.path()).ok())
                .filter(|l| l.to_string_lossy().starts_with("socket:"))
                .count()
        })
        .unwrap_or(0)
}

/// Wait until the process's open sockets are back to at most `baseline`; panics listing them.
pub fn assert_sockets_return(pid: u32, baseline: usize, what: &str) {
    let ok = poll_until(DEADLINE, || socket_count(pid) <= baseline);
    if !ok {
        let ss = std::process::Command::new("ss")
            .args(["-tanp"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        let mine: Vec<&str> = ss
            .lines()
            .filter(|l| l.contains(&format!("pid={pid},")))
            .collect();
        panic!(
            "{what}: proxy holds {} sockets, {baseline} before:\n{}",
            socket_count(pid),
            mine.join("\n")
        );
    }
}

/// Raise this process's soft open-file limit to its hard limit; returns the new soft limit.
pub fn raise_nofile() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct we pass.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 0;
        }
        lim.rlim_cur = lim.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
    }
    lim.rlim_cur
}

/// Soft open-file limit of another process, from /proc.
pub fn nofile_of(pid: u32) -> u64 {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap_or_default();
    limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(3))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

impl super::Client {
    /// Like `connect`, but None when the proxy refuses the connection (it stopped listening).
    pub fn try_connect(addr: SocketAddr) -> Option<super::Client> {
        let stream = TcpStream::connect(addr).ok()?;
        stream.set_read_timeout(Some(DEADLINE)).ok()?;
        stream.set_nodelay(true).ok()?;
        Some(super::Client {
            stream,
            buf: Default::default(),
        })
    }
}
