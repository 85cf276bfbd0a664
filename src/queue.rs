//! Each chat's prompts, run one at a time and in order, with at most a fixed
//! number of runs at once across all chats. The queue owns who runs when and
//! how a run is stopped; what a run does is the [`Turns`] implementation's.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{error, info, warn};

use crate::telegram::progress::Progress;

/// One accepted prompt, as the queue sees it.
#[derive(Debug, Clone)]
pub struct Job {
    /// Its row in the store's prompt journal.
    pub prompt_id: i64,
    pub chat_id: i64,
    pub thread_id: Option<i32>,
    pub message_id: i32,
    pub user_id: u64,
    pub username: Option<String>,
    pub text: String,
}

/// What runs a job; the bot's is the Telegram turn.
pub trait Turns: Send + Sync + 'static {
    /// Runs one job to its reply. `live` carries its cancellation.
    fn run(&self, job: Job, live: Arc<LiveRun>) -> impl Future<Output = ()> + Send;
    /// Tells the user their job failed inside the bot itself.
    fn panicked(&self, job: Job) -> impl Future<Output = ()> + Send;
}

/// Why a run was stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopCause {
    /// The user sent `/stop`.
    User,
    /// The bot is shutting down.
    Shutdown,
}

/// A run under way, as `/stop` and `/status` see it.
#[derive(Debug)]
pub struct LiveRun {
    pub cancel: CancellationToken,
    pub progress: Arc<Mutex<Progress>>,
    cause: Mutex<Option<StopCause>>,
}

impl LiveRun {
    fn new() -> Self {
        LiveRun {
            cancel: CancellationToken::new(),
            progress: Arc::new(Mutex::new(Progress::new())),
            cause: Mutex::new(None),
        }
    }

    /// Stops the run; the first cause given is the one reported.
    pub fn stop(&self, cause: StopCause) {
        self.cause.lock().expect("cause lock").get_or_insert(cause);
        self.cancel.cancel();
    }

    pub fn stop_cause(&self) -> Option<StopCause> {
        *self.cause.lock().expect("cause lock")
    }

    pub fn elapsed(&self) -> Duration {
        self.progress
            .lock()
            .expect("progress lock")
            .started
            .elapsed()
    }
}

/// How [`Queue::submit`] placed a job.
#[derive(Debug, PartialEq, Eq)]
pub enum Placement {
    /// It runs now (or as soon as a slot is free).
    Next,
    /// It waits behind the running one; 1 is next.
    Queued { position: usize },
    /// The chat's queue is full.
    Full,
    /// The bot is shutting down and takes no more work.
    Closed,
}

/// What `/stop` did.
#[derive(Debug)]
pub struct Stopped {
    pub running: bool,
    pub cleared: Vec<Job>,
    pub still_waiting: usize,
}

/// A chat's running job and the ones waiting behind it.
#[derive(Default)]
struct Lane {
    waiting: VecDeque<Job>,
    live: Option<Arc<LiveRun>>,
    worker: bool,
}

/// All chats' lanes and the global run limit.
pub struct Queue<T: Turns> {
    turns: T,
    lanes: Mutex<HashMap<i64, Lane>>,
    slots: Arc<Semaphore>,
    max_waiting: usize,
    open: AtomicBool,
    workers: TaskTracker,
}

impl<T: Turns> Queue<T> {
    pub fn new(turns: T, max_concurrent: usize, max_waiting: usize) -> Arc<Self> {
        Arc::new(Queue {
            turns,
            lanes: Mutex::new(HashMap::new()),
            slots: Arc::new(Semaphore::new(max_concurrent)),
            max_waiting,
            open: AtomicBool::new(true),
            workers: TaskTracker::new(),
        })
    }

    /// Adds a job to its chat's lane, starting the lane's worker if idle.
    pub fn submit(self: &Arc<Self>, job: Job) -> Placement {
        if !self.open.load(Ordering::SeqCst) {
            return Placement::Closed;
        }
        let chat_id = job.chat_id;
        let mut lanes = self.lanes.lock().expect("lanes lock");
        let lane = lanes.entry(chat_id).or_default();
        if !lane.worker {
            // The first job goes straight to a new worker, so that `/stop`
            // and `/status` see it at once.
            let live = Arc::new(LiveRun::new());
            lane.worker = true;
            lane.live = Some(live.clone());
            self.workers.spawn(self.clone().work(chat_id, job, live));
            return Placement::Next;
        }
        if lane.waiting.len() >= self.max_waiting {
            return Placement::Full;
        }
        lane.waiting.push_back(job);
        Placement::Queued {
            position: lane.waiting.len(),
        }
    }

    /// Stops the chat's running job, and with `clear_queue` drops the
    /// waiting ones too (returned, so their users can be told).
    pub fn stop(&self, chat_id: i64, clear_queue: bool) -> Stopped {
        let mut lanes = self.lanes.lock().expect("lanes lock");
        let Some(lane) = lanes.get_mut(&chat_id) else {
            return Stopped {
                running: false,
                cleared: Vec::new(),
                still_waiting: 0,
            };
        };
        let running = match &lane.live {
            Some(live) => {
                live.stop(StopCause::User);
                true
            }
            None => false,
        };
        let cleared = match clear_queue {
            true => lane.waiting.drain(..).collect(),
            false => Vec::new(),
        };
        let still_waiting = lane.waiting.len();
        Stopped {
            running,
            cleared,
            still_waiting,
        }
    }

    /// The chat's running job, if any, and how many wait behind it.
    pub fn status(&self, chat_id: i64) -> (Option<Arc<LiveRun>>, usize) {
        let lanes = self.lanes.lock().expect("lanes lock");
        match lanes.get(&chat_id) {
            Some(lane) => (lane.live.clone(), lane.waiting.len()),
            None => (None, 0),
        }
    }

    /// Takes no more jobs: later submissions are `Closed`, and waiting jobs
    /// stay in the store's journal for the next start.
    pub fn close(&self) {
        self.open.store(false, Ordering::SeqCst);
    }

    /// Takes no more jobs, lets running ones finish for up to `grace`, then
    /// stops them and waits for their replies. Waiting jobs stay in the
    /// store's journal and run at the next start.
    pub async fn shutdown(&self, grace: Duration) {
        self.close();
        self.workers.close();
        let running = self.running().len();
        info!(
            running,
            grace_secs = grace.as_secs(),
            "waiting for running agents"
        );
        if tokio::time::timeout(grace, self.workers.wait())
            .await
            .is_ok()
        {
            return;
        }
        for live in self.running() {
            live.stop(StopCause::Shutdown);
        }
        // An interrupted CLI writes its result within seconds; the replies
        // after it need a little more.
        let deadline = Duration::from_secs(15);
        if tokio::time::timeout(deadline, self.workers.wait())
            .await
            .is_err()
        {
            warn!("some agent runs did not end in time");
        }
    }

    fn running(&self) -> Vec<Arc<LiveRun>> {
        let lanes = self.lanes.lock().expect("lanes lock");
        lanes
            .values()
            .filter_map(|lane| lane.live.clone())
            .collect()
    }

    /// Runs one chat's jobs, starting with `job`, until its lane is empty or
    /// the queue closes.
    async fn work(self: Arc<Self>, chat_id: i64, mut job: Job, mut live: Arc<LiveRun>) {
        loop {
            self.take(job, live).await;

            let mut lanes = self.lanes.lock().expect("lanes lock");
            let lane = lanes.get_mut(&chat_id).expect("a worker's lane exists");
            let next = match self.open.load(Ordering::SeqCst) {
                true => lane.waiting.pop_front(),
                false => None,
            };
            let Some(next) = next else {
                lane.worker = false;
                lane.live = None;
                if lane.waiting.is_empty() {
                    lanes.remove(&chat_id);
                }
                return;
            };
            job = next;
            live = Arc::new(LiveRun::new());
            lane.live = Some(live.clone());
        }
    }

    /// Runs one job once a slot is free (or at once when it was stopped
    /// while it waited: the turn then only reports that).
    async fn take(self: &Arc<Self>, job: Job, live: Arc<LiveRun>) {
        let slot = tokio::select! {
            slot = self.slots.clone().acquire_owned() => Some(slot),
            _ = live.cancel.cancelled() => None,
        };
        let started = Instant::now();
        let chat_id = job.chat_id;
        // Its own task, so a panic in one turn is contained and answered.
        let queue = self.clone();
        let turn = {
            let job = job.clone();
            tokio::spawn(async move { queue.turns.run(job, live).await })
        };
        if let Err(failure) = turn.await {
            error!(chat_id, error = %failure, "a turn failed inside the bot");
            self.turns.panicked(job).await;
        }
        drop(slot);
        info!(
            chat_id,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "turn done"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::sync::Notify;

    /// Turns that record what ran and wait for the test's go-ahead.
    #[derive(Default)]
    struct Recorder {
        started: Mutex<Vec<String>>,
        release: Notify,
        stopped: Mutex<Vec<(String, Option<StopCause>)>>,
    }

    impl Turns for Arc<Recorder> {
        async fn run(&self, job: Job, live: Arc<LiveRun>) {
            self.started.lock().unwrap().push(job.text.clone());
            tokio::select! {
                _ = self.release.notified() => {}
                _ = live.cancel.cancelled() => {
                    self.stopped.lock().unwrap().push((job.text, live.stop_cause()));
                }
            }
        }

        async fn panicked(&self, _job: Job) {}
    }

    fn job(chat_id: i64, text: &str) -> Job {
        Job {
            prompt_id: 0,
            chat_id,
            thread_id: None,
            message_id: 1,
            user_id: 7,
            username: None,
            text: text.to_owned(),
        }
    }

    async fn until(what: impl Fn() -> bool) {
        for _ in 0..500 {
            if what() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        panic!("condition not reached");
    }

    #[tokio::test]
    async fn runs_a_chats_prompts_in_order_and_bounds_its_queue() {
        let recorder = Arc::new(Recorder::default());
        let queue = Queue::new(recorder.clone(), 4, 2);

        assert_eq!(queue.submit(job(1, "a")), Placement::Next);
        assert_eq!(queue.submit(job(1, "b")), Placement::Queued { position: 1 });
        assert_eq!(queue.submit(job(1, "c")), Placement::Queued { position: 2 });
        assert_eq!(queue.submit(job(1, "d")), Placement::Full);

        until(|| recorder.started.lock().unwrap().len() == 1).await;
        recorder.release.notify_one();
        until(|| recorder.started.lock().unwrap().len() == 2).await;
        recorder.release.notify_one();
        until(|| recorder.started.lock().unwrap().len() == 3).await;
        assert_eq!(*recorder.started.lock().unwrap(), ["a", "b", "c"]);
    }

    #[tokio::test]
    async fn runs_other_chats_in_parallel_up_to_the_limit() {
        let recorder = Arc::new(Recorder::default());
        let queue = Queue::new(recorder.clone(), 2, 5);
        for chat in 1..=3 {
            queue.submit(job(chat, &format!("chat {chat}")));
        }
        until(|| recorder.started.lock().unwrap().len() == 2).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(recorder.started.lock().unwrap().len(), 2, "the limit held");

        recorder.release.notify_one();
        until(|| recorder.started.lock().unwrap().len() == 3).await;
    }

    #[tokio::test]
    async fn stop_interrupts_the_run_and_can_clear_the_queue() {
        let recorder = Arc::new(Recorder::default());
        let queue = Queue::new(recorder.clone(), 4, 5);
        queue.submit(job(1, "long"));
        queue.submit(job(1, "next"));
        queue.submit(job(1, "later"));
        until(|| recorder.started.lock().unwrap().len() == 1).await;
        assert_eq!(queue.status(1).1, 2);

        let stopped = queue.stop(1, true);
        assert!(stopped.running);
        assert_eq!(stopped.cleared.len(), 2);
        until(|| !recorder.stopped.lock().unwrap().is_empty()).await;
        let stops = recorder.stopped.lock().unwrap().clone();
        assert_eq!(stops, [("long".to_owned(), Some(StopCause::User))]);
        until(|| queue.status(1).0.is_none()).await;
        assert_eq!(*recorder.started.lock().unwrap(), ["long"]);
    }

    #[tokio::test]
    async fn shutdown_interrupts_runs_after_the_grace_period() {
        let recorder = Arc::new(Recorder::default());
        let queue = Queue::new(recorder.clone(), 4, 5);
        queue.submit(job(1, "running"));
        queue.submit(job(1, "waiting"));
        until(|| recorder.started.lock().unwrap().len() == 1).await;

        queue.shutdown(Duration::from_millis(50)).await;
        let stops = recorder.stopped.lock().unwrap().clone();
        assert_eq!(stops, [("running".to_owned(), Some(StopCause::Shutdown))]);
        assert_eq!(
            *recorder.started.lock().unwrap(),
            ["running"],
            "waiting one kept"
        );
        assert_eq!(queue.submit(job(2, "late")), Placement::Closed);
    }
}
