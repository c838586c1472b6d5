//! Questions asked at the same moment, answered together: a few reader tasks each take whatever
//! questions are queued (up to a batch) and answer them with one read, so a burst costs the
//! database a few statements instead of a few per question. Nothing waits to fill a batch: a lone
//! question is read at once. Used for history pages (`history/pages.rs`) and the directory's
//! default queries (`directory/batched.rs`).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot, Mutex};

/// Reads one batch: an answer per question, in the questions' order.
type Read<Q, A> = Arc<dyn Fn(Vec<Q>) -> Pin<Box<dyn Future<Output = Vec<A>> + Send>> + Send + Sync>;

type Asked<Q, A> = (Q, oneshot::Sender<A>);

/// What the readers start from: the queue's end and the read.
type Start<Q, A> = (mpsc::Receiver<Asked<Q, A>>, Read<Q, A>);

pub struct Batcher<Q, A> {
    queue: mpsc::Sender<Asked<Q, A>>,
    /// The queue's end and the read until the first question starts the readers (on the runtime
    /// that asks, so building the batcher needs none).
    idle: std::sync::Mutex<Option<Start<Q, A>>>,
    readers: usize,
    max: usize,
}

impl<Q: Send + 'static, A: Send + 'static> Batcher<Q, A> {
    /// `readers` tasks will answer batches of at most `max` questions with `read`.
    pub fn new<F, Fut>(readers: usize, max: usize, read: F) -> Batcher<Q, A>
    where
        F: Fn(Vec<Q>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Vec<A>> + Send + 'static,
    {
        let readers = readers.max(1);
        // Bounded by the questions in flight, which the callers' own limits bound.
        let (queue, rx) = mpsc::channel(max * readers * 4);
        let read: Read<Q, A> = Arc::new(move |batch| Box::pin(read(batch)));
        Batcher {
            queue,
            idle: std::sync::Mutex::new(Some((rx, read))),
            readers,
            max,
        }
    }

    /// The answer to `question`; `None` if the readers are gone.
    pub async fn ask(&self, question: Q) -> Option<A> {
        let idle = self.idle.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some((rx, read)) = idle {
            let rx = Arc::new(Mutex::new(rx));
            for _ in 0..self.readers {
                tokio::spawn(answer_batches(rx.clone(), read.clone(), self.max));
            }
        }
        let (answer, answered) = oneshot::channel();
        self.queue.send((question, answer)).await.ok()?;
        answered.await.ok()
    }
}

/// One reader: takes what is queued, reads it, answers, until the queue closes.
async fn answer_batches<Q, A>(
    rx: Arc<Mutex<mpsc::Receiver<Asked<Q, A>>>>,
    read: Read<Q, A>,
    max: usize,
) {
    let mut batch = Vec::with_capacity(max);
    loop {
        {
            // The receiver is shared by the readers; the one holding it waits for the next
            // question, takes whatever else is queued and lets the next reader wait.
            let mut rx = rx.lock().await;
            if rx.recv_many(&mut batch, max).await == 0 {
                return;
            }
        }
        // A question whose asker gave up (timeout, disconnect) is not read.
        batch.retain(|(_, answer)| !answer.is_closed());
        if batch.is_empty() {
            continue;
        }
        let (questions, answers): (Vec<Q>, Vec<oneshot::Sender<A>>) = batch.drain(..).unzip();
        for (answer, a) in answers.into_iter().zip(read(questions).await) {
            let _ = answer.send(a);
        }
    }
}
