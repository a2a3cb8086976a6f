//! The thread factory: the one thread of a confined vmd that creates threads. Jobs arrive on a
//! channel; each spawns one thread (which confines itself before its body runs, see
//! `engine::confine::spawn`) and hands its handle back. The factory drops every capability
//! and installs its own filter (the union of all kinds' lists plus thread creation) before it
//! takes its first job, so every thread it makes starts with no capabilities and under it.

use std::io;
use std::sync::mpsc::{self, Sender};

/// Work for the factory: spawn one thread.
pub type Job = Box<dyn FnOnce() + Send>;

/// Starts the factory; `confine` runs first on its thread (capabilities, filter). Returns the
/// channel that feeds it.
pub fn start(confine: impl FnOnce() + Send + 'static) -> io::Result<Sender<Job>> {
    let (jobs, queue) = mpsc::channel::<Job>();
    std::thread::Builder::new()
        .name("factory".into())
        .spawn(move || {
            confine();
            // Ends when every sender is gone (never, in vmd: the confiner keeps one).
            while let Ok(job) = queue.recv() {
                job();
            }
        })?;
    Ok(jobs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_job_runs_on_the_factory_thread() {
        let jobs = start(|| {}).expect("start");
        let (tx, rx) = mpsc::channel();
        jobs.send(Box::new(move || {
            let _ = tx.send(std::thread::current().name().map(str::to_owned));
        }))
        .expect("send");
        assert_eq!(rx.recv().expect("ran").as_deref(), Some("factory"));
    }
}
