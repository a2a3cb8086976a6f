//! Console input on its own thread: whoever types (the TUI's key handler, the agent's frame
//! reader) hands bytes to a channel and never blocks on a guest that reads slowly.

use std::io::Write;
use std::sync::mpsc::{self, Sender};

/// Starts thread `name`, which writes each piece sent on the returned channel to `input` and
/// flushes it, until the channel is dropped or a write fails (the console closed).
pub fn spawn_writer(
    mut input: Box<dyn Write + Send>,
    name: &str,
) -> std::io::Result<Sender<Vec<u8>>> {
    let (tx, rx) = mpsc::channel::<Vec<u8>>();
    std::thread::Builder::new()
        .name(name.to_string())
        .spawn(move || {
            for bytes in rx {
                if input
                    .write_all(&bytes)
                    .and_then(|()| input.flush())
                    .is_err()
                {
                    return;
                }
            }
        })?;
    Ok(tx)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    struct Shared(Arc<Mutex<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("lock").extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn pieces_arrive_in_order() {
        let written = Arc::new(Mutex::new(Vec::new()));
        let tx = spawn_writer(Box::new(Shared(written.clone())), "test-in").expect("thread");
        tx.send(b"ab".to_vec()).expect("send");
        tx.send(b"c".to_vec()).expect("send");
        drop(tx);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while written.lock().expect("lock").len() < 3 && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert_eq!(written.lock().expect("lock").as_slice(), b"abc");
    }
}
