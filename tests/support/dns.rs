//! A tiny authoritative DNS server on a loopback UDP port, in the test process, whose records
//! the test changes at will: A, AAAA and SRV answers (SRV targets' addresses go in the
//! additional section), NXDOMAIN for unknown names. Written apart from coregate's own DNS code
//! so that each checks the other. Stops when dropped.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct SrvRecord {
    pub priority: u16,
    pub weight: u16,
    pub port: u16,
    pub target: String,
}

#[derive(Default)]
struct Zone {
    addrs: HashMap<String, Vec<IpAddr>>,
    srv: HashMap<String, Vec<SrvRecord>>,
}

pub struct DnsServer {
    pub addr: SocketAddr,
    zone: Arc<Mutex<Zone>>,
    stop: Arc<AtomicBool>,
    /// Queries answered.
    pub queries: Arc<AtomicUsize>,
}

impl DnsServer {
    pub fn start() -> DnsServer {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        let s = DnsServer {
            addr: sock.local_addr().unwrap(),
            zone: Arc::default(),
            stop: Arc::default(),
            queries: Arc::default(),
        };
        let (zone, stop, queries) = (s.zone.clone(), s.stop.clone(), s.queries.clone());
        thread::spawn(move || {
            let mut buf = [0u8; 1500];
            while !stop.load(Ordering::SeqCst) {
                let Ok((n, from)) = sock.recv_from(&mut buf) else {
                    continue;
                };
                if let Some(reply) = answer(&buf[..n], &zone.lock().unwrap()) {
                    queries.fetch_add(1, Ordering::SeqCst);
                    let _ = sock.send_to(&reply, from);
                }
            }
        });
        s
    }

    /// Set the A/AAAA addresses of `name` (empty: the name exists with no address).
    pub fn set_addrs(&self, name: &str, ips: &[&str]) {
        let ips = ips.iter().map(|i| i.parse().unwrap()).collect();
        self.zone
            .lock()
            .unwrap()
            .addrs
            .insert(name.to_string(), ips);
    }

    pub fn set_srv(&self, name: &str, records: Vec<SrvRecord>) {
        self.zone
            .lock()
            .unwrap()
            .srv
            .insert(name.to_string(), records);
    }
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// The answer to one query, or `None` for what is not a query.
fn answer(q: &[u8], zone: &Zone) -> Option<Vec<u8>> {
    if q.len() < 12 || q[2] & 0x80 != 0 {
        return None;
    }
    // The question: labels up to the root, then type and class.
    let mut at = 12;
    let mut labels = Vec::new();
    loop {
        let len = *q.get(at)? as usize;
        at += 1;
        if len == 0 {
            break;
        }
        labels.push(String::from_utf8_lossy(q.get(at..at + len)?).to_ascii_lowercase());
        at += len;
    }
    let qtype = u16::from_be_bytes([*q.get(at)?, *q.get(at + 1)?]);
    let question = &q[12..at + 4];
    let name = labels.join(".");
    let mut answers: Vec<Vec<u8>> = Vec::new();
    let mut additional: Vec<Vec<u8>> = Vec::new();
    let known = zone.addrs.contains_key(&name) || zone.srv.contains_key(&name);
    match qtype {
        1 | 28 => {
            for ip in zone.addrs.get(&name).into_iter().flatten() {
                if let Some(rr) = addr_rr(&name, ip, qtype) {
                    answers.push(rr);
                }
            }
        }
        33 => {
            for s in zone.srv.get(&name).into_iter().flatten() {
                let mut data = Vec::new();
                data.extend_from_slice(&s.priority.to_be_bytes());
                data.extend_from_slice(&s.weight.to_be_bytes());
                data.extend_from_slice(&s.port.to_be_bytes());
                data.extend(encode_name(&s.target));
                answers.push(rr(&name, 33, &data));
                for ip in zone.addrs.get(&s.target).into_iter().flatten() {
                    let t = if ip.is_ipv4() { 1 } else { 28 };
                    additional.extend(addr_rr(&s.target, ip, t));
                }
            }
        }
        _ => {}
    }
    let rcode = if known { 0 } else { 3 };
    let mut out = Vec::new();
    out.extend_from_slice(&q[..2]);
    out.extend_from_slice(&[0x85, 0x80 | rcode]); // QR AA RD, RA
    out.extend_from_slice(&[0, 1]);
    out.extend_from_slice(&(answers.len() as u16).to_be_bytes());
    out.extend_from_slice(&[0, 0]);
    out.extend_from_slice(&(additional.len() as u16).to_be_bytes());
    out.extend_from_slice(question);
    for r in answers.iter().chain(&additional) {
        out.extend_from_slice(r);
    }
    Some(out)
}

fn addr_rr(name: &str, ip: &IpAddr, qtype: u16) -> Option<Vec<u8>> {
    match (ip, qtype) {
        (IpAddr::V4(v4), 1) => Some(rr(name, 1, &v4.octets())),
        (IpAddr::V6(v6), 28) => Some(rr(name, 28, &v6.octets())),
        _ => None,
    }
}

fn encode_name(name: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for l in name.split('.').filter(|l| !l.is_empty()) {
        out.push(l.len() as u8);
        out.extend_from_slice(l.as_bytes());
    }
    out.push(0);
    out
}

fn rr(name: &str, rtype: u16, data: &[u8]) -> Vec<u8> {
    let mut out = encode_name(name);
    out.extend_from_slice(&rtype.to_be_bytes());
    out.extend_from_slice(&[0, 1, 0, 0, 0, 5]); // IN, TTL 5
    out.extend_from_slice(&(data.len() as u16).to_be_bytes());
    out.extend_from_slice(data);
    out
}
