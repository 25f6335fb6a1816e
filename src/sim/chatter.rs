//! Hosts that talk without booting (`petitlab sim --chatter N`): N lines a
//! second in aggregate over all the simulated hosts' serial ports, taken in
//! turn, so each port prints N / ports lines a second. Every line carries
//! the host's index and its send time, `chatter <index> <unix-nanos>\r\n`,
//! so a console client can tell how late it arrived ([`parse`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::time::Instant;

use super::serial::SerialPort;

/// One chatter line, as the host prints it.
pub fn line(index: usize, unix_nanos: u128) -> String {
    format!("chatter {index} {unix_nanos}\r\n")
}

/// The host index and send time (Unix nanoseconds) of a chatter line, with
/// or without its line ending; `None` for any other text.
pub fn parse(text: &str) -> Option<(usize, u128)> {
    let mut words = text.trim_end_matches(['\r', '\n']).split(' ');
    if words.next() != Some("chatter") {
        return None;
    }
    let index = words.next()?.parse().ok()?;
    let nanos = words.next()?.parse().ok()?;
    words.next().is_none().then_some((index, nanos))
}

pub fn unix_nanos() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos()
}

/// How many lines are due `elapsed` after the start at `rate` lines a second.
fn due(rate: f64, elapsed: Duration) -> u64 {
    (rate * elapsed.as_secs_f64()) as u64
}

/// Prints chatter on `ports` until aborted; while `paused` is set it prints
/// nothing (and does not catch up afterwards). A rate of 0 never prints.
pub async fn run(ports: Vec<SerialPort>, rate: f64, paused: Arc<AtomicBool>) {
    if ports.is_empty() || rate <= 0.0 || !rate.is_finite() {
        return std::future::pending().await;
    }
    let start = Instant::now();
    let mut sent = 0u64;
    loop {
        let now = Instant::now();
        let target = due(rate, now - start);
        if paused.load(Ordering::Relaxed) {
            sent = target;
        }
        while sent < target {
            let index = (sent % ports.len() as u64) as usize;
            ports[index].write(line(index, unix_nanos()));
            sent += 1;
        }
        // Wake for the next line (at least a millisecond from now).
        let next = Duration::from_secs_f64((sent + 1) as f64 / rate);
        let wake = (start + next).max(now + Duration::from_millis(1));
        tokio::time::sleep_until(wake).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_round_trip_and_other_text_is_not_chatter() {
        let text = line(41, 1_700_000_000_123_456_789);
        assert_eq!(text, "chatter 41 1700000000123456789\r\n");
        assert_eq!(parse(&text), Some((41, 1_700_000_000_123_456_789)));
        assert_eq!(parse("chatter 41 17"), Some((41, 17)));
        for other in ["", "chatter", "chatter x 1", "chatter 1 2 3", "login: "] {
            assert_eq!(parse(other), None, "{other:?}");
        }
    }

    #[test]
    fn due_lines_follow_the_rate() {
        assert_eq!(due(100.0, Duration::from_millis(1005)), 100);
        assert_eq!(due(0.5, Duration::from_secs(3)), 1);
    }

    /// Drains what a port printed: the indexes of its chatter lines.
    fn drain(out: &mut tokio::sync::broadcast::Receiver<Vec<u8>>) -> Vec<usize> {
        std::iter::from_fn(|| out.try_recv().ok())
            .map(|chunk| parse(std::str::from_utf8(&chunk).unwrap()).unwrap().0)
            .collect()
    }

    #[tokio::test]
    async fn spreads_the_rate_over_the_ports_in_turn_and_pauses() {
        let ports: Vec<SerialPort> = (0..4).map(|_| SerialPort::default()).collect();
        let mut outs: Vec<_> = ports.iter().map(|p| p.output()).collect();
        let paused = Arc::new(AtomicBool::new(false));
        let before = unix_nanos();
        let task = tokio::spawn(run(ports, 200.0, paused.clone()));
        // 200 lines a second over 4 ports: 50 each a second, 25 in 0.5 s.
        tokio::time::sleep(Duration::from_millis(500)).await;
        paused.store(true, Ordering::Relaxed);
        tokio::time::sleep(Duration::from_millis(20)).await;
        let counts: Vec<usize> = outs
            .iter_mut()
            .enumerate()
            .map(|(i, out)| {
                let got = drain(out);
                assert!(got.iter().all(|&index| index == i), "port {i}: {got:?}");
                got.len()
            })
            .collect();
        let (min, max) = (counts.iter().min().unwrap(), counts.iter().max().unwrap());
        assert!(max - min <= 1, "taken in turn: {counts:?}");
        assert!((20..=40).contains(min), "the rate: {counts:?}");
        assert!(unix_nanos() > before);
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(outs.iter_mut().all(|o| drain(o).is_empty()), "paused");
        paused.store(false, Ordering::Relaxed);
        tokio::time::sleep(Duration::from_millis(100)).await;
        let resumed: usize = outs.iter_mut().map(|o| drain(o).len()).sum();
        assert!((10..=40).contains(&resumed), "no catching up: {resumed}");
        task.abort();
    }
}
