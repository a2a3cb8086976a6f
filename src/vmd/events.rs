//! The event bus: fan-out of pushed [`Event`]s to every subscribed connection.
//!
//! Publishing never blocks: each subscriber has a small bounded queue, and a subscriber that
//! does not keep up loses events (stats samples are superseded a second later anyway) rather
//! than holding up the stats sampler or the boot loop.

use std::sync::atomic::{AtomicUsize, Ordering};
#[cfg(test)]
use std::sync::mpsc::TryRecvError;
use std::sync::mpsc::{self, Receiver, RecvError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use crate::protocol::Event;

/// Events queued per subscriber before newer ones are dropped for it.
const QUEUE_DEPTH: usize = 64;

/// Subscribers' queues. Owned by the supervisor; shared by every thread that publishes.
#[derive(Default)]
pub struct EventBus {
    subscribers: Mutex<Option<Vec<SyncSender<Event>>>>,
    /// Live [`Subscription`]s, so vmd can let them drain before it exits.
    active: Arc<AtomicUsize>,
}

/// One subscriber's end of the bus.
pub struct Subscription {
    rx: Receiver<Event>,
    active: Arc<AtomicUsize>,
}

impl Subscription {
    /// Blocks for the next event; an error once the bus is closed and the queue drained.
    pub fn recv(&self) -> Result<Event, RecvError> {
        self.rx.recv()
    }

    /// The next queued event without waiting.
    #[cfg(test)]
    pub fn try_recv(&self) -> Result<Event, TryRecvError> {
        self.rx.try_recv()
    }

    /// The next event, waiting at most `timeout`.
    #[cfg(test)]
    pub fn recv_timeout(
        &self,
        timeout: std::time::Duration,
    ) -> Result<Event, std::sync::mpsc::RecvTimeoutError> {
        self.rx.recv_timeout(timeout)
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.active.fetch_sub(1, Ordering::SeqCst);
    }
}

impl EventBus {
    /// An open bus with no subscribers.
    pub fn new() -> EventBus {
        EventBus {
            subscribers: Mutex::new(Some(Vec::new())),
            active: Arc::new(AtomicUsize::new(0)),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Option<Vec<SyncSender<Event>>>> {
        self.subscribers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// A new subscriber's queue; it ends (disconnects) when the bus closes. `None` once the
    /// bus is closed.
    pub fn subscribe(&self) -> Option<Subscription> {
        let (tx, rx) = mpsc::sync_channel(QUEUE_DEPTH);
        self.lock().as_mut()?.push(tx);
        self.active.fetch_add(1, Ordering::SeqCst);
        Some(Subscription {
            rx,
            active: Arc::clone(&self.active),
        })
    }

    /// Queues `event` for every subscriber; drops it for those whose queue is full and forgets
    /// those that went away.
    pub fn publish(&self, event: &Event) {
        if let Some(subs) = self.lock().as_mut() {
            subs.retain(|tx| match tx.try_send(event.clone()) {
                Ok(()) | Err(TrySendError::Full(_)) => true,
                Err(TrySendError::Disconnected(_)) => false,
            });
        }
    }

    /// Drops every queue: subscribers drain what is queued, then see the end.
    pub fn close(&self) {
        self.lock().take();
    }

    /// Whether [`EventBus::close`] was called (the VM is over).
    pub fn is_closed(&self) -> bool {
        self.lock().is_none()
    }

    /// Waits until every subscription has been dropped (its owner wrote out what was queued),
    /// at most `timeout`. Returns whether they all went.
    pub fn wait_drained(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while self.active.load(Ordering::SeqCst) > 0 {
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        true
    }

    /// Subscribers currently attached.
    #[cfg(test)]
    pub fn subscriber_count(&self) -> usize {
        self.lock().as_ref().map_or(0, Vec::len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{ExitReason, RunState};

    fn state(state: RunState) -> Event {
        Event::State {
            state,
            reason: None,
        }
    }

    #[test]
    fn every_subscriber_gets_each_event() {
        let bus = EventBus::new();
        let a = bus.subscribe().expect("open");
        let b = bus.subscribe().expect("open");
        bus.publish(&state(RunState::Paused));
        assert_eq!(a.try_recv().expect("a"), state(RunState::Paused));
        assert_eq!(b.try_recv().expect("b"), state(RunState::Paused));
    }

    #[test]
    fn a_stalled_subscriber_loses_events_instead_of_blocking() {
        let bus = EventBus::new();
        let stalled = bus.subscribe().expect("open");
        for _ in 0..QUEUE_DEPTH * 3 {
            bus.publish(&state(RunState::Running));
        }
        assert_eq!(
            std::iter::from_fn(|| stalled.try_recv().ok()).count(),
            QUEUE_DEPTH
        );
    }

    #[test]
    fn closing_delivers_queued_events_then_ends() {
        let bus = EventBus::new();
        let rx = bus.subscribe().expect("open");
        bus.publish(&Event::Exited {
            reason: ExitReason::PowerOff,
        });
        bus.close();
        assert!(rx.recv().is_ok());
        assert!(rx.recv().is_err());
        assert!(bus.subscribe().is_none());
    }

    #[test]
    fn wait_drained_returns_once_subscriptions_are_dropped() {
        let bus = EventBus::new();
        let sub = bus.subscribe().expect("open");
        assert!(!bus.wait_drained(Duration::from_millis(20)));
        drop(sub);
        assert!(bus.wait_drained(Duration::ZERO));
    }

    #[test]
    fn departed_subscribers_are_forgotten() {
        let bus = EventBus::new();
        drop(bus.subscribe());
        bus.publish(&state(RunState::Running));
        assert_eq!(bus.subscriber_count(), 0);
    }
}
