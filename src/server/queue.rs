//! The per-connection outbound queue: bounded, many senders (the rooms a connection joined),
//! one receiver (its writer).
//!
//! It is bounded twice, in items and in bytes (each item's [`Weigh::weight`]), so what one
//! connection that stops reading can pin is capped whatever the size of its frames. An item
//! is always accepted into an empty queue, so one item bigger than the byte bound still goes
//! out rather than being refused forever.
//!
//! It is not `tokio::sync::mpsc` for one reason: memory. An idle chat connection has an
//! empty queue nearly all its life, and tokio's channel allocates a 32-slot block up front
//! (about 1.3 KiB here) and keeps up to four blocks after a burst. This queue is a `VecDeque`
//! that allocates on first use and gives its buffer back once a burst has drained, so ten
//! thousand idle connections hold no queue memory at all.
//!
//! The receiver is woken through an `AtomicWaker`, and only when an item lands in an empty
//! queue: a writer already awake drains everything queued, so later sends need not wake it.
//! `tokio::sync::Notify` takes a lock and a waiter-list entry on every wait, which at one
//! wake-up per delivery shows in the fan-out profile.

use futures_util::task::AtomicWaker;
use std::collections::VecDeque;
use std::future::poll_fn;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::Poll;

/// What an item costs in a queue's byte bound. Must give the same answer every time it is
/// asked about the same item, and should be O(1) for the common case.
pub trait Weigh {
    fn weight(&self) -> usize;
}

/// Why `try_send` did not queue an item (the item is dropped).
#[derive(Debug, PartialEq, Eq)]
pub enum TrySendError {
    /// The queue holds its capacity (in items or in bytes) already.
    Full,
    /// The receiver is gone.
    Closed,
}

struct Shared<T> {
    state: Mutex<State<T>>,
    /// The receiver's waker, registered before each look at the queue.
    wake: AtomicWaker,
    senders: AtomicUsize,
    capacity: usize,
    max_bytes: usize,
}

struct State<T> {
    items: VecDeque<T>,
    /// The sum of the queued items' weights.
    bytes: usize,
    receiver_gone: bool,
}

/// Buffers bigger than this are freed once they empty, rather than kept for the next burst.
const KEEP: usize = 16;

/// A queue of at most `capacity` items weighing at most `max_bytes` together.
pub fn channel<T: Weigh>(capacity: usize, max_bytes: usize) -> (Sender<T>, Receiver<T>) {
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            items: VecDeque::new(),
            bytes: 0,
            receiver_gone: false,
        }),
        wake: AtomicWaker::new(),
        senders: AtomicUsize::new(1),
        capacity: capacity.max(1),
        max_bytes: max_bytes.max(1),
    });
    (
        Sender {
            shared: shared.clone(),
        },
        Receiver { shared },
    )
}

impl<T> Shared<T> {
    fn lock(&self) -> std::sync::MutexGuard<'_, State<T>> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

pub struct Sender<T> {
    shared: Arc<Shared<T>>,
}

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Self {
        self.shared.senders.fetch_add(1, Ordering::Relaxed);
        Sender {
            shared: self.shared.clone(),
        }
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        if self.shared.senders.fetch_sub(1, Ordering::AcqRel) == 1 {
            // The last sender: a waiting receiver must see the end.
            self.shared.wake.wake();
        }
    }
}

impl<T: Weigh> Sender<T> {
    /// Queues `item` unless the queue is full or the receiver is gone; never waits.
    pub fn try_send(&self, item: T) -> Result<(), TrySendError> {
        let weight = item.weight();
        let was_empty = {
            let mut state = self.shared.lock();
            if state.receiver_gone {
                return Err(TrySendError::Closed);
            }
            if state.items.len() >= self.shared.capacity
                || (!state.items.is_empty()
                    && state.bytes.saturating_add(weight) > self.shared.max_bytes)
            {
                drop(state);
                // Dropped outside the lock: an item's drop may have work of its own.
                drop(item);
                return Err(TrySendError::Full);
            }
            state.bytes += weight;
            state.items.push_back(item);
            state.items.len() == 1
        };
        // The receiver only parks after seeing the queue empty (with its waker registered
        // first), so the send that ends the emptiness is the one that must wake it.
        if was_empty {
            self.shared.wake.wake();
        }
        Ok(())
    }
}

pub struct Receiver<T> {
    shared: Arc<Shared<T>>,
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        let items = {
            let mut state = self.shared.lock();
            state.receiver_gone = true;
            state.bytes = 0;
            std::mem::take(&mut state.items)
        };
        // Dropped outside the lock: an item's drop may have work of its own.
        drop(items);
    }
}

impl<T: Weigh> Receiver<T> {
    /// The next item, or `None` once the queue is empty and every sender is gone.
    /// Cancel-safe: an item is only taken by the call that returns it.
    pub async fn recv(&mut self) -> Option<T> {
        poll_fn(|cx| {
            // Registered before looking, so a send after the look finds this waker.
            self.shared.wake.register(cx.waker());
            if let Some(item) = self.try_recv() {
                return Poll::Ready(Some(item));
            }
            if self.shared.senders.load(Ordering::Acquire) == 0 {
                // A send may have landed between the look above and the last drop.
                return Poll::Ready(self.try_recv());
            }
            Poll::Pending
        })
        .await
    }

    /// The next item if one is queued.
    pub fn try_recv(&mut self) -> Option<T> {
        let mut state = self.shared.lock();
        let item = state.items.pop_front();
        if let Some(item) = &item {
            state.bytes -= item.weight();
        }
        if state.items.is_empty() && state.items.capacity() > KEEP {
            state.items = VecDeque::new();
        }
        item
    }

    pub fn is_empty(&self) -> bool {
        self.shared.lock().items.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    impl Weigh for i32 {
        fn weight(&self) -> usize {
            1
        }
    }

    impl Weigh for (usize, usize) {
        fn weight(&self) -> usize {
            1
        }
    }

    impl Weigh for &str {
        fn weight(&self) -> usize {
            self.len()
        }
    }

    #[tokio::test]
    async fn bounded_in_order_and_closes() {
        let (tx, mut rx) = channel(2, usize::MAX);
        let tx2 = tx.clone();
        assert_eq!(tx.try_send(1), Ok(()));
        assert_eq!(tx2.try_send(2), Ok(()));
        assert_eq!(tx.try_send(3), Err(TrySendError::Full));
        assert_eq!(rx.recv().await, Some(1));
        assert_eq!(rx.try_recv(), Some(2));
        assert_eq!(rx.try_recv(), None);
        drop(tx);
        tx2.try_send(4).unwrap();
        drop(tx2);
        assert_eq!(rx.recv().await, Some(4));
        assert_eq!(rx.recv().await, None);
    }

    // On the paused clock the sleeps below end only once every other task is idle: the
    // receiver has really parked before the send that must wake it.
    #[tokio::test(start_paused = true)]
    async fn a_waiting_receiver_wakes_and_a_dropped_one_refuses() {
        let (tx, mut rx) = channel(8, usize::MAX);
        let waiter = tokio::spawn(async move {
            let first = rx.recv().await;
            (first, rx)
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        tx.try_send("hello").unwrap();
        let (first, rx) = tokio::time::timeout(Duration::from_secs(1), waiter)
            .await
            .expect("woken")
            .unwrap();
        assert_eq!(first, Some("hello"));
        drop(rx);
        assert_eq!(tx.try_send("late"), Err(TrySendError::Closed));
    }

    #[tokio::test(start_paused = true)]
    async fn a_receiver_parked_again_after_a_burst_is_woken_by_the_next_send() {
        // Only a send into an empty queue wakes the receiver; this checks no wake-up is lost
        // when bursts and quiet spells alternate.
        let (tx, mut rx) = channel(64, usize::MAX);
        let (seen_tx, mut seen_rx) = tokio::sync::mpsc::unbounded_channel();
        let reader = tokio::spawn(async move {
            while let Some(v) = rx.recv().await {
                seen_tx.send(v).unwrap();
            }
        });
        let mut next = 0;
        for burst in [3, 1, 5, 1] {
            for _ in 0..burst {
                tx.try_send(next).unwrap();
                next += 1;
            }
            for want in next - burst..next {
                let got = tokio::time::timeout(Duration::from_secs(1), seen_rx.recv()).await;
                assert_eq!(got.expect("woken").unwrap(), want);
            }
            // The reader finds the queue empty and parks.
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        drop(tx);
        tokio::time::timeout(Duration::from_secs(1), reader)
            .await
            .expect("the reader sees the end")
            .unwrap();
    }

    #[tokio::test]
    async fn a_drained_burst_gives_its_memory_back() {
        let (tx, mut rx) = channel(1000, usize::MAX);
        for i in 0..500 {
            tx.try_send(i).unwrap();
        }
        while rx.try_recv().is_some() {}
        assert_eq!(rx.shared.lock().items.capacity(), 0);
    }

    #[tokio::test]
    async fn the_queue_is_bounded_in_bytes_but_always_takes_one_item() {
        let (tx, mut rx) = channel::<&str>(100, 10);
        assert_eq!(
            tx.try_send("0123456789abc"),
            Ok(()),
            "an empty queue takes any item"
        );
        assert_eq!(tx.try_send("x"), Err(TrySendError::Full));
        assert_eq!(rx.try_recv(), Some("0123456789abc"));
        assert_eq!(tx.try_send("01234"), Ok(()));
        assert_eq!(tx.try_send("56789"), Ok(()));
        assert_eq!(tx.try_send("a"), Err(TrySendError::Full), "11 bytes > 10");
        assert_eq!(rx.try_recv(), Some("01234"));
        assert_eq!(
            tx.try_send("abcde"),
            Ok(()),
            "the bytes taken out are free again"
        );
    }

    /// Senders on other threads racing a receiver that keeps parking: every item arrives,
    /// each sender's in order. A wake-up lost between the receiver's last look at the queue
    /// and its parking would leave an item unreceived and time out here; one thread cannot
    /// show that race, four worker threads can.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn senders_on_other_threads_never_lose_the_receivers_wake_up() {
        const SENDERS: usize = 3;
        const EACH: usize = 20_000;
        let (tx, mut rx) = channel::<(usize, usize)>(64, usize::MAX);
        let mut senders = Vec::new();
        for s in 0..SENDERS {
            let tx = tx.clone();
            senders.push(tokio::spawn(async move {
                let mut i = 0;
                while i < EACH {
                    match tx.try_send((s, i)) {
                        Ok(()) => i += 1,
                        Err(TrySendError::Full) => tokio::task::yield_now().await,
                        Err(TrySendError::Closed) => panic!("the receiver is alive"),
                    }
                    if i % 7 == 0 {
                        // Short bursts, so the receiver empties the queue and parks often.
                        tokio::task::yield_now().await;
                    }
                }
            }));
        }
        drop(tx);
        let mut next = [0usize; SENDERS];
        loop {
            let item = tokio::time::timeout(Duration::from_secs(10), rx.recv())
                .await
                .expect("a queued item's wake-up was lost");
            let Some((s, i)) = item else { break };
            assert_eq!(i, next[s], "sender {s}'s items arrive in order");
            next[s] += 1;
        }
        assert_eq!(next, [EACH; SENDERS], "every item arrived");
        for sender in senders {
            sender.await.unwrap();
        }
    }

    /// One item at a time, each answered before the next is sent, the receiver on another
    /// thread: every send lands in an empty queue while the receiver is parking or parked,
    /// the moment a wake-up can be lost.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_send_into_an_empty_queue_always_wakes_a_receiver_on_another_thread() {
        const ROUNDS: u32 = 20_000;
        let (tx, mut rx) = channel::<i32>(4, usize::MAX);
        let (ack_tx, mut ack_rx) = tokio::sync::mpsc::channel::<i32>(1);
        let echo = tokio::spawn(async move {
            while let Some(v) = rx.recv().await {
                ack_tx.send(v).await.unwrap();
            }
        });
        for round in 0..ROUNDS as i32 {
            tx.try_send(round).unwrap();
            let back = tokio::time::timeout(Duration::from_secs(10), ack_rx.recv())
                .await
                .expect("the receiver was not woken");
            assert_eq!(back, Some(round));
        }
        drop(tx);
        echo.await.unwrap();
    }
}
