//! The store's flushes run on a thread of their own, not on tokio's
//! blocking pool: every acknowledged write waits for a flush, and the pool
//! is shared with work that readers start (an export's pages, a log's
//! verification). Had readers filled it, writes and revocations would wait
//! behind them; here they never do.

use std::sync::mpsc;

type Job = Box<dyn FnOnce() + Send>;

/// A thread that runs flushes one after another; it ends when the last
/// clone of its store is dropped.
#[derive(Clone)]
pub(super) struct Flusher {
    jobs: mpsc::Sender<Job>,
}

impl Flusher {
    /// Starts the thread.
    pub(super) fn start() -> std::io::Result<Self> {
        let (jobs, received) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("porta-store-flush".into())
            .spawn(move || {
                for job in received {
                    job();
                }
            })?;
        Ok(Self { jobs })
    }

    /// Runs `work` on the flush thread and waits for its result (`None`
    /// if the thread is gone, or `work` panicked).
    pub(super) async fn run<R: Send + 'static>(
        &self,
        work: impl FnOnce() -> R + Send + 'static,
    ) -> Option<R> {
        let (done, result) = tokio::sync::oneshot::channel();
        self.jobs
            .send(Box::new(move || {
                let _ = done.send(work());
            }))
            .ok()?;
        result.await.ok()
    }
}
