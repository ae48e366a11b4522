//! A TCP proxy in front of a real server that a test can cut: **refuse** (nothing listens: a
//! connect is refused, and live connections are reset) or **freeze** (connections are accepted
//! and held, but nothing is forwarded either way: a hung server), then **restore**.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

const PASS: u8 = 0;
const REFUSE: u8 = 1;
const FREEZE: u8 = 2;

/// How the proxy treats connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Pass,
    Refuse,
    Freeze,
}

#[derive(Debug)]
struct Shared {
    mode: AtomicU8,
    stop: AtomicBool,
    conns: Mutex<Vec<TcpStream>>,
}

/// Stops (and resets every connection) when dropped.
#[derive(Debug)]
pub struct Proxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    acceptor: Option<thread::JoinHandle<()>>,
}

impl Proxy {
    /// Listens on a free loopback port and forwards to `target`.
    pub fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("proxy listener");
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(Shared {
            mode: AtomicU8::new(PASS),
            stop: AtomicBool::new(false),
            conns: Mutex::new(Vec::new()),
        });
        let s = shared.clone();
        let acceptor = thread::spawn(move || accept_loop(Some(listener), addr, target, s));
        Self {
            addr,
            shared,
            acceptor: Some(acceptor),
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn set(&self, mode: Mode) {
        let m = match mode {
            Mode::Pass => PASS,
            Mode::Refuse => REFUSE,
            Mode::Freeze => FREEZE,
        };
        self.shared.mode.store(m, Ordering::SeqCst);
        if mode == Mode::Refuse {
            // Live connections are reset, as when a server goes away.
            for c in self.shared.conns.lock().unwrap().drain(..) {
                let _ = c.shutdown(Shutdown::Both);
            }
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        for c in self.shared.conns.lock().unwrap().drain(..) {
            let _ = c.shutdown(Shutdown::Both);
        }
        // Wakes the acceptor.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_millis(200));
        if let Some(a) = self.acceptor.take() {
            let _ = a.join();
        }
    }
}

fn accept_loop(
    mut listener: Option<TcpListener>,
    addr: SocketAddr,
    target: SocketAddr,
    shared: Arc<Shared>,
) {
    loop {
        if shared.stop.load(Ordering::SeqCst) {
            return;
        }
        match shared.mode.load(Ordering::SeqCst) {
            REFUSE => {
                // Nothing listens: connects are refused.
                listener = None;
                thread::sleep(Duration::from_millis(20));
                continue;
            }
            _ if listener.is_none() => match TcpListener::bind(addr) {
                Ok(l) => listener = Some(l),
                Err(_) => {
                    thread::sleep(Duration::from_millis(20));
                    continue;
                }
            },
            _ => {}
        }
        let l = listener.as_ref().expect("bound above");
        l.set_nonblocking(true).unwrap();
        match l.accept() {
            Ok((client, _)) => {
                client.set_nonblocking(false).unwrap();
                if shared.stop.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(server) = TcpStream::connect(target) else {
                    continue;
                };
                {
                    let mut conns = shared.conns.lock().unwrap();
                    conns.push(client.try_clone().unwrap());
                    conns.push(server.try_clone().unwrap());
                }
                for (from, to) in [
                    (client.try_clone().unwrap(), server.try_clone().unwrap()),
                    (server, client),
                ] {
                    let s = shared.clone();
                    thread::spawn(move || pump(from, to, s));
                }
            }
            Err(_) => thread::sleep(Duration::from_millis(5)),
        }
    }
}

/// Copies `from` to `to` while passing; holds everything while frozen.
fn pump(mut from: TcpStream, mut to: TcpStream, shared: Arc<Shared>) {
    let _ = from.set_read_timeout(Some(Duration::from_millis(50)));
    let mut buf = vec![0u8; 64 << 10];
    loop {
        if shared.stop.load(Ordering::SeqCst) {
            break;
        }
        match shared.mode.load(Ordering::SeqCst) {
            REFUSE => break,
            FREEZE => {
                thread::sleep(Duration::from_millis(20));
                continue;
            }
            _ => {}
        }
        match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                // Frozen between the read and the write: hold the bytes until thawed.
                while shared.mode.load(Ordering::SeqCst) == FREEZE
                    && !shared.stop.load(Ordering::SeqCst)
                {
                    thread::sleep(Duration::from_millis(20));
                }
                if shared.mode.load(Ordering::SeqCst) == REFUSE || to.write_all(&buf[..n]).is_err()
                {
                    break;
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => break,
        }
    }
    let _ = from.shutdown(Shutdown::Both);
    let _ = to.shutdown(Shutdown::Both);
}
