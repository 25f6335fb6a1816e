//! A UDP relay on 127.0.0.1 that mistreats a share of the datagrams passing
//! through it, both ways: drops them, sends them twice, or holds them back so
//! the next one overtakes them. Seeded, so a failure can be replayed.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use tokio::net::UdpSocket;
use tokio::task::JoinHandle;

#[derive(Debug, Default)]
pub struct Counts {
    pub passed: AtomicU64,
    pub dropped: AtomicU64,
    pub duplicated: AtomicU64,
    pub reordered: AtomicU64,
}

impl Counts {
    pub fn summary(&self) -> String {
        format!(
            "passed {}, dropped {}, duplicated {}, reordered {}",
            self.passed.load(Ordering::Relaxed),
            self.dropped.load(Ordering::Relaxed),
            self.duplicated.load(Ordering::Relaxed),
            self.reordered.load(Ordering::Relaxed)
        )
    }
}

pub struct LossyRelay {
    addr: SocketAddr,
    pub counts: Arc<Counts>,
    tasks: Vec<JoinHandle<()>>,
}

enum Fate {
    Pass,
    Drop,
    Duplicate,
    HoldBack,
}

fn fate(rng: &mut StdRng, impaired: f64) -> Fate {
    if !rng.random_bool(impaired) {
        return Fate::Pass;
    }
    match rng.random_range(0..3) {
        0 => Fate::Drop,
        1 => Fate::Duplicate,
        _ => Fate::HoldBack,
    }
}

/// Forwards from `from` to wherever `send` goes, impairing `impaired` of them.
async fn forward(
    mut rng: StdRng,
    impaired: f64,
    counts: Arc<Counts>,
    recv: Arc<UdpSocket>,
    send: Arc<UdpSocket>,
    peer: Arc<tokio::sync::Mutex<Option<SocketAddr>>>,
    learn_peer: bool,
) {
    let mut buf = vec![0u8; 65536];
    let mut held: Option<Vec<u8>> = None;
    loop {
        // A held datagram goes out after the next one, or after 5 ms.
        let got = if held.is_some() {
            tokio::time::timeout(Duration::from_millis(5), recv.recv_from(&mut buf)).await
        } else {
            Ok(recv.recv_from(&mut buf).await)
        };
        let deliver = |bytes: Vec<u8>| {
            let (send, peer) = (send.clone(), peer.clone());
            async move {
                let to = if learn_peer { None } else { *peer.lock().await };
                let _ = match to {
                    Some(addr) => send.send_to(&bytes, addr).await,
                    None => send.send(&bytes).await,
                };
            }
        };
        let (n, from) = match got {
            Ok(Ok(x)) => x,
            Ok(Err(_)) => continue,
            Err(_timeout) => {
                deliver(held.take().expect("held")).await;
                continue;
            }
        };
        if learn_peer {
            *peer.lock().await = Some(from);
        }
        let bytes = buf[..n].to_vec();
        match fate(&mut rng, impaired) {
            Fate::Pass => {
                counts.passed.fetch_add(1, Ordering::Relaxed);
                deliver(bytes).await;
            }
            Fate::Drop => {
                counts.dropped.fetch_add(1, Ordering::Relaxed);
            }
            Fate::Duplicate => {
                counts.duplicated.fetch_add(1, Ordering::Relaxed);
                deliver(bytes.clone()).await;
                deliver(bytes).await;
            }
            Fate::HoldBack if held.is_none() => {
                counts.reordered.fetch_add(1, Ordering::Relaxed);
                held = Some(bytes);
                continue;
            }
            Fate::HoldBack => {
                counts.passed.fetch_add(1, Ordering::Relaxed);
                deliver(bytes).await;
            }
        }
        if let Some(late) = held.take() {
            deliver(late).await;
        }
    }
}

impl LossyRelay {
    /// Relays between whoever sends to `addr()` and `upstream`, impairing a
    /// share `impaired` (0.0–1.0) of datagrams in each direction.
    pub async fn start(upstream: SocketAddr, impaired: f64, seed: u64) -> LossyRelay {
        let front = Arc::new(UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap());
        let back = Arc::new(UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap());
        back.connect(upstream).await.unwrap();
        let addr = front.local_addr().unwrap();
        let counts = Arc::new(Counts::default());
        let client = Arc::new(tokio::sync::Mutex::new(None));
        let up = tokio::spawn(forward(
            StdRng::seed_from_u64(seed),
            impaired,
            counts.clone(),
            front.clone(),
            back.clone(),
            client.clone(),
            true,
        ));
        let down = tokio::spawn(forward(
            StdRng::seed_from_u64(seed ^ 0x5EED),
            impaired,
            counts.clone(),
            back,
            front,
            client,
            false,
        ));
        LossyRelay {
            addr,
            counts,
            tasks: vec![up, down],
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for LossyRelay {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}
