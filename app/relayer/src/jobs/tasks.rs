//! The relayer's background tasks, owned in one place: each runs under a supervisor that
//! restarts it (after a second) if it panics or returns, counts the restarts, and reports
//! whether it is running, for `/metrics`. `stop` ends them all (at shutdown), so nothing
//! keeps renewing leases or sending burns after the process gave them up.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::task::JoinHandle;

/// A task's state as `/metrics` shows it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TaskState {
    pub running: bool,
    pub restarts: u64,
}

/// A future a supervisor can start again.
pub type TaskFuture = Pin<Box<dyn Future<Output = ()> + Send>>;

#[derive(Default)]
pub struct Tasks {
    states: Arc<Mutex<BTreeMap<&'static str, TaskState>>>,
    supervisors: Mutex<Vec<JoinHandle<()>>>,
}

/// Aborts the task it guards when dropped (a supervisor aborted takes its task with it).
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// How long a supervisor waits before starting a task again.
const RESTART_AFTER: Duration = Duration::from_secs(1);

impl Tasks {
    /// Runs `make()` as the task `name`, and again whenever it panics or returns.
    pub fn supervise(&self, name: &'static str, mut make: impl FnMut() -> TaskFuture + Send + 'static) {
        let states = self.states.clone();
        let set = move |running: bool, restarted: bool| {
            let mut s = states.lock().unwrap_or_else(|e| e.into_inner());
            let state = s.entry(name).or_default();
            state.running = running;
            state.restarts += u64::from(restarted);
        };
        set(false, false);
        let supervisor = tokio::spawn(async move {
            loop {
                set(true, false);
                let mut task = AbortOnDrop(tokio::spawn(make()));
                let outcome = (&mut task.0).await;
                set(false, true);
                match outcome {
                    Ok(()) => tracing::error!(task = name, "background task returned; restarting it"),
                    Err(e) if e.is_panic() => {
                        let why = e.into_panic();
                        let why = why
                            .downcast_ref::<&str>()
                            .map(|s| s.to_string())
                            .or_else(|| why.downcast_ref::<String>().cloned())
                            .unwrap_or_default();
                        tracing::error!(task = name, panic = %why, "background task panicked; restarting it");
                    }
                    Err(_) => return,
                }
                tokio::time::sleep(RESTART_AFTER).await;
            }
        });
        self.supervisors.lock().unwrap_or_else(|e| e.into_inner()).push(supervisor);
    }

    /// Every task by name.
    pub fn states(&self) -> Vec<(&'static str, TaskState)> {
        let s = self.states.lock().unwrap_or_else(|e| e.into_inner());
        s.iter().map(|(n, st)| (*n, *st)).collect()
    }

    /// Ends every task (at shutdown).
    pub fn stop(&self) {
        for s in self.supervisors.lock().unwrap_or_else(|e| e.into_inner()).drain(..) {
            s.abort();
        }
        let mut s = self.states.lock().unwrap_or_else(|e| e.into_inner());
        s.values_mut().for_each(|st| st.running = false);
    }
}

impl Drop for Tasks {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[tokio::test]
    async fn a_task_that_panics_is_restarted_and_counted_and_stop_ends_it() {
        let tasks = Tasks::default();
        let runs = Arc::new(AtomicU32::new(0));
        let r = runs.clone();
        tasks.supervise("flaky", move || {
            let r = r.clone();
            Box::pin(async move {
                if r.fetch_add(1, Ordering::SeqCst) == 0 {
                    panic!("first run fails");
                }
                std::future::pending::<()>().await
            })
        });
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while runs.load(Ordering::SeqCst) < 2 {
            assert!(tokio::time::Instant::now() < deadline, "not started again after the panic");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(tasks.states(), [("flaky", TaskState { running: true, restarts: 1 })]);
        tasks.stop();
        assert_eq!(tasks.states(), [("flaky", TaskState { running: false, restarts: 1 })]);
        tokio::time::sleep(RESTART_AFTER + Duration::from_millis(100)).await;
        assert_eq!(runs.load(Ordering::SeqCst), 2, "stopped for good");
    }
}
