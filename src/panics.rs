//! Panics while the dashboard owns the terminal. A panic message printed to
//! stderr lands on top of the dashboard (and ratatui's hook would even give
//! the terminal back): a panic that petitlab catches and survives (vt100 on
//! odd input, a task that dies) is only logged; the default behaviour
//! (restore the terminal, print) is kept for one that ends the dashboard.

use std::cell::Cell;
use std::panic::{self, AssertUnwindSafe, PanicHookInfo};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::{self, ThreadId};

type Hook = Box<dyn Fn(&PanicHookInfo<'_>) + Sync + Send + 'static>;

thread_local! {
    static CATCHING: Cell<u32> = const { Cell::new(0) };
}

/// The dashboard's thread, while [`DashboardHook`] is installed.
static DASHBOARD: Mutex<Option<ThreadId>> = Mutex::new(None);

/// `catch_unwind`, telling the panic hook that whatever panics in `f` is
/// caught and survived.
pub fn catch<T>(f: impl FnOnce() -> T) -> thread::Result<T> {
    CATCHING.with(|c| c.set(c.get() + 1));
    let result = panic::catch_unwind(AssertUnwindSafe(f));
    CATCHING.with(|c| c.set(c.get() - 1));
    result
}

/// True inside [`catch`] on this thread.
pub fn is_caught() -> bool {
    CATCHING.with(|c| c.get() > 0)
}

/// Installed while the dashboard runs; the hook before it comes back on drop.
pub struct DashboardHook {
    previous: Arc<Hook>,
}

impl DashboardHook {
    /// Call on the dashboard's thread, after the terminal is set up (ratatui
    /// installs its own hook, which this one calls for fatal panics).
    pub fn install() -> DashboardHook {
        let previous: Arc<Hook> = Arc::new(panic::take_hook());
        *DASHBOARD.lock().unwrap_or_else(PoisonError::into_inner) = Some(thread::current().id());
        let fallback = previous.clone();
        panic::set_hook(Box::new(move |info| {
            tracing::error!(target: "petitlab::panic", "{info}");
            let ours = *DASHBOARD.lock().unwrap_or_else(PoisonError::into_inner);
            // Only a panic that ends the dashboard may touch the terminal.
            if ours == Some(thread::current().id()) && !is_caught() {
                fallback(info);
            }
        }));
        DashboardHook { previous }
    }
}

impl Drop for DashboardHook {
    fn drop(&mut self) {
        *DASHBOARD.lock().unwrap_or_else(PoisonError::into_inner) = None;
        let previous = self.previous.clone();
        panic::set_hook(Box::new(move |info| previous(info)));
    }
}
