//! A child process a test started, killed and reaped when the test ends
//! however it ends (a failed assertion included).

use std::process::Child;
use std::time::{Duration, Instant};

pub struct Guarded(pub Child);

impl Guarded {
    /// Whether it exited (on its own) within `limit`.
    pub fn exited_within(&mut self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if self.0.try_wait().unwrap().is_some() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }
}

impl Drop for Guarded {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
