//! The thread behind one remote host: connects through the [`Connector`], polls the host
//! while the link is up, and after the link drops tries again with a growing wait
//! ([`backoff`]). It never blocks the UI thread: it only sends actions, and the runtime finds
//! the host's [`HostApi`] in the shared [`Connected`] table while the link is up.
//!
//! A first connection that fails leaves the host unreachable (the connector's words) and ends
//! the thread; the user connects again from the hosts pane. A stopped worker (disconnect,
//! remove, quit) sends nothing more: the runtime reports the disconnect itself, so a new
//! worker for the same host is never contradicted by an old one.

use super::connector::{Connector, Link};
use super::id::HostId;
use super::state::{BACKOFF_MAX, HostState, backoff};
use crate::client::HostApi;
use crate::tui::action::Action;
use crate::tui::poll::Poller;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;
use std::time::Duration;

/// The remote hosts whose link is up: name → (the worker's generation, its backends). Shared
/// by the runtime (which routes effects through it) and the workers (which fill it).
pub type Connected = Arc<Mutex<HashMap<String, (u64, HostApi)>>>;

/// The backends of remote host `name` while its link is up.
pub fn backends_of(connected: &Connected, name: &str) -> Option<HostApi> {
    connected
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .get(name)
        .map(|(_, backends)| backends.clone())
}

/// Takes remote host `name` out of the table at once (disconnect, remove): no effect is
/// routed to it from now on, whatever its stopped worker is doing.
pub fn forget(connected: &Connected, name: &str) {
    connected
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .remove(name);
}

/// How often a worker polls, and its waits between reconnection tries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// Between two polls (and two looks at whether the link dropped).
    pub poll: Duration,
    /// The first wait after a drop; doubled each failed try.
    pub first_retry: Duration,
    /// The longest wait.
    pub max_retry: Duration,
}

impl Default for Timing {
    /// Once a second; 1 s, 2 s, 4 s … 30 s.
    fn default() -> Timing {
        Timing {
            poll: Duration::from_secs(1),
            first_retry: Duration::from_secs(1),
            max_retry: BACKOFF_MAX,
        }
    }
}

/// Sends an action to the UI thread; `false` once it is gone.
pub type Send = Box<dyn FnMut(Action) -> bool + std::marker::Send>;

/// The runtime's handle on one worker.
#[derive(Clone)]
pub struct HostWorker {
    /// Which worker of its host this is (a new one for each connect).
    pub generation: u64,
    stop: Arc<AtomicBool>,
    wake: Sender<()>,
}

impl HostWorker {
    /// Starts the worker for remote host `name` at `uri`; its generation `generation` must
    /// differ from the previous worker's for the same host.
    pub fn spawn(
        name: String,
        uri: String,
        generation: u64,
        connector: Arc<dyn Connector>,
        connected: Connected,
        timing: Timing,
        send: Send,
    ) -> std::io::Result<HostWorker> {
        let stop = Arc::new(AtomicBool::new(false));
        let (wake, wake_rx) = mpsc::channel();
        let worker = Worker {
            name,
            uri,
            generation,
            connector,
            connected,
            timing,
            send,
            stop: stop.clone(),
            wake: wake_rx,
        };
        thread::Builder::new()
            .name("vmux-host".to_string())
            .spawn(move || worker.run())?;
        Ok(HostWorker {
            generation,
            stop,
            wake,
        })
    }

    /// Polls now instead of at the next period (after an operation).
    pub fn wake(&self) {
        let _ = self.wake.send(());
    }

    /// Stops the worker: it closes its link and sends nothing more.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = self.wake.send(());
    }
}

struct Worker {
    name: String,
    uri: String,
    generation: u64,
    connector: Arc<dyn Connector>,
    connected: Connected,
    timing: Timing,
    send: Send,
    stop: Arc<AtomicBool>,
    wake: Receiver<()>,
}

impl Worker {
    fn stopped(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    /// Sends `state` unless stopped; `false` when stopped or the UI is gone.
    fn state(&mut self, state: HostState) -> bool {
        !self.stopped()
            && (self.send)(Action::HostState {
                name: self.name.clone(),
                state,
            })
    }

    /// Waits `period` or until woken; `false` when stopped.
    fn pause(&self, period: Duration) -> bool {
        match self.wake.recv_timeout(period) {
            Ok(()) => while self.wake.try_recv().is_ok() {},
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return false,
        }
        !self.stopped()
    }

    fn run(mut self) {
        if !self.state(HostState::Connecting) {
            return;
        }
        // Tries since the link was last up; `None` until it has been up once.
        let mut failures: Option<u32> = None;
        loop {
            match self.connector.connect(&self.uri) {
                Err(message) => {
                    let Some(tries) = failures else {
                        self.state(HostState::Unreachable(message));
                        return;
                    };
                    if !self.retry_after(tries, message) {
                        return;
                    }
                    failures = Some(tries + 1);
                }
                Ok(link) => {
                    if self.stopped() {
                        link.close();
                        return;
                    }
                    let reason = self.serve(link.as_ref());
                    link.close();
                    self.forget();
                    let Some(reason) = reason else { return };
                    if !self.retry_after(0, reason) {
                        return;
                    }
                    failures = Some(1);
                }
            }
        }
    }

    /// Says the host is reconnecting because of `reason` and waits before try `tries`;
    /// `false` when stopped meanwhile.
    fn retry_after(&mut self, tries: u32, reason: String) -> bool {
        let wait = backoff(tries, self.timing.first_retry, self.timing.max_retry);
        self.state(HostState::Reconnecting {
            reason,
            retry_in: wait,
        }) && self.pause(wait)
    }

    /// Publishes the link's backends and polls the host until the link drops (its reason)
    /// or the worker is stopped (`None`).
    fn serve(&mut self, link: &dyn Link) -> Option<String> {
        self.connected
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(self.name.clone(), (self.generation, link.backends()));
        if !self.state(HostState::Connected) {
            return None;
        }
        let backends = link.backends();
        let host = HostId::Remote(self.name.clone());
        let mut poller = Poller::default();
        loop {
            if let Some(reason) = link.lost() {
                return Some(reason);
            }
            // Replies that raced a drop are not shown: the drop is.
            let mut batch = Vec::new();
            let mut collect = |action| {
                batch.push(action);
                true
            };
            poller.poll(backends.vms.as_ref(), &mut collect);
            if let Some(reason) = link.lost() {
                return Some(reason);
            }
            for action in batch {
                if self.stopped() {
                    return None;
                }
                let wrapped = Action::OnHost {
                    host: host.clone(),
                    action: Box::new(action),
                };
                if !(self.send)(wrapped) {
                    return None;
                }
            }
            if !self.pause(self.timing.poll) {
                return None;
            }
        }
    }

    /// Takes this worker's backends out of the table (a newer worker's stay).
    fn forget(&self) {
        let mut table = self
            .connected
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if table
            .get(&self.name)
            .is_some_and(|(g, _)| *g == self.generation)
        {
            table.remove(&self.name);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::Host;
    use crate::client::fake::FakeHost;
    use crate::client::{FakeNetworks, FakeStorage};
    use crate::config::{BootConfig, VmConfig};
    use std::sync::atomic::AtomicUsize;
    use std::time::Instant;

    /// A link whose drop the test triggers.
    struct FakeLink {
        backends: HostApi,
        lost: Mutex<Option<String>>,
        closed: AtomicBool,
    }

    impl Link for FakeLink {
        fn backends(&self) -> HostApi {
            self.backends.clone()
        }
        fn lost(&self) -> Option<String> {
            self.lost.lock().expect("lock").clone()
        }
        fn close(&self) {
            self.closed.store(true, Ordering::SeqCst);
        }
    }

    /// Serves one fake host; the connects numbered in `refuse` fail (0-based).
    struct FakeConnector {
        host: Arc<FakeHost>,
        refuse: Vec<usize>,
        connects: AtomicUsize,
        links: Mutex<Vec<Arc<FakeLink>>>,
    }

    impl Connector for FakeConnector {
        fn connect(&self, uri: &str) -> Result<Arc<dyn Link>, String> {
            let n = self.connects.fetch_add(1, Ordering::SeqCst);
            if self.refuse.contains(&n) {
                return Err(format!("ssh: connect to host {uri}: Connection refused"));
            }
            let link = Arc::new(FakeLink {
                backends: HostApi {
                    vms: self.host.clone(),
                    storage: Arc::new(FakeStorage::new()),
                    networks: Arc::new(FakeNetworks::new()),
                },
                lost: Mutex::new(None),
                closed: AtomicBool::new(false),
            });
            self.links.lock().expect("lock").push(link.clone());
            Ok(link)
        }
    }

    fn fast() -> Timing {
        Timing {
            poll: Duration::from_millis(10),
            first_retry: Duration::from_millis(10),
            max_retry: Duration::from_millis(40),
        }
    }

    fn connector(refuse: Vec<usize>) -> Arc<FakeConnector> {
        Arc::new(FakeConnector {
            host: Arc::new(FakeHost::with_vms([VmConfig::new("db", BootConfig::Demo)])),
            refuse,
            connects: AtomicUsize::new(0),
            links: Mutex::new(Vec::new()),
        })
    }

    /// Starts a worker for `h2`; returns it, the table and the actions it sends.
    fn start(connector: Arc<FakeConnector>) -> (HostWorker, Connected, mpsc::Receiver<Action>) {
        let (tx, rx) = mpsc::channel();
        let connected = Connected::default();
        let worker = HostWorker::spawn(
            "h2".into(),
            "ssh://h2".into(),
            1,
            connector,
            connected.clone(),
            fast(),
            Box::new(move |action| tx.send(action).is_ok()),
        )
        .expect("spawn");
        (worker, connected, rx)
    }

    /// The next state the worker reports (listings in between are skipped).
    fn next_state(rx: &mpsc::Receiver<Action>) -> HostState {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left).expect("a state within 5 s") {
                Action::HostState { state, .. } => return state,
                _ => continue,
            }
        }
    }

    #[test]
    fn a_first_failure_leaves_the_host_unreachable_with_the_connectors_words() {
        let (_worker, connected, rx) = start(connector(vec![0]));
        assert_eq!(next_state(&rx), HostState::Connecting);
        match next_state(&rx) {
            HostState::Unreachable(message) => assert!(message.contains("Connection refused")),
            other => panic!("{other:?}"),
        }
        assert!(backends_of(&connected, "h2").is_none());
    }

    #[test]
    fn a_connected_host_is_polled_as_a_remote_hosts_replies() {
        let (worker, connected, rx) = start(connector(vec![]));
        assert_eq!(next_state(&rx), HostState::Connecting);
        assert_eq!(next_state(&rx), HostState::Connected);
        assert!(backends_of(&connected, "h2").is_some());
        let listed = rx
            .recv_timeout(Duration::from_secs(5))
            .expect("a poll within 5 s");
        match listed {
            Action::OnHost { host, action } => {
                assert_eq!(host, HostId::Remote("h2".into()));
                assert!(matches!(*action, Action::Listed(ref vms) if vms.len() == 1));
            }
            other => panic!("{other:?}"),
        }
        worker.stop();
    }

    #[test]
    fn a_dropped_link_reconnects_with_backoff_and_comes_back() {
        // The first reconnection try fails too: the wait doubles before the next.
        let fake = connector(vec![1]);
        let (worker, connected, rx) = start(fake.clone());
        assert_eq!(next_state(&rx), HostState::Connecting);
        assert_eq!(next_state(&rx), HostState::Connected);
        let link = fake.links.lock().expect("lock")[0].clone();
        *link.lost.lock().expect("lock") = Some("ssh: connection reset".into());
        match next_state(&rx) {
            HostState::Reconnecting { reason, retry_in } => {
                assert_eq!(reason, "ssh: connection reset");
                assert_eq!(retry_in, Duration::from_millis(10));
            }
            other => panic!("{other:?}"),
        }
        match next_state(&rx) {
            HostState::Reconnecting { reason, retry_in } => {
                assert!(reason.contains("Connection refused"), "{reason}");
                assert_eq!(retry_in, Duration::from_millis(20));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(next_state(&rx), HostState::Connected);
        assert!(
            link.closed.load(Ordering::SeqCst),
            "the dropped link is closed"
        );
        assert!(backends_of(&connected, "h2").is_some());
        worker.stop();
    }

    #[test]
    fn a_stopped_worker_closes_its_link_and_says_nothing_more() {
        let fake = connector(vec![]);
        let (worker, connected, rx) = start(fake.clone());
        assert_eq!(next_state(&rx), HostState::Connecting);
        assert_eq!(next_state(&rx), HostState::Connected);
        worker.stop();
        let deadline = Instant::now() + Duration::from_secs(5);
        let link = fake.links.lock().expect("lock")[0].clone();
        while !link.closed.load(Ordering::SeqCst) && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(5));
        }
        assert!(link.closed.load(Ordering::SeqCst));
        assert!(backends_of(&connected, "h2").is_none());
        while let Ok(action) = rx.try_recv() {
            assert!(!matches!(action, Action::HostState { .. }), "{action:?}");
        }
        drop(fake.host.list());
    }
}
