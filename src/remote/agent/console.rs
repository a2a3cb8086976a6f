//! A console served over the host protocol: the VM's console stream from vmd, its output sent
//! as [`Down::Output`] frames on the client's stream id and the client's input written back.

use super::Agent;
use crate::client::ClientError;
use crate::client::console_input;
use crate::remote::wire::{Bytes, Down};
use std::io::Read;

/// Output is read and sent in pieces of at most this many bytes.
const CHUNK: usize = 16 << 10;

/// Opens VM `name`'s console as `stream`. Output flows until the VM stops or the client
/// detaches (it is noticed at the next output, as a local detach is).
pub(super) fn open(
    agent: &std::sync::Arc<Agent>,
    name: &str,
    history: bool,
    stream: u64,
) -> Result<(), ClientError> {
    let console = agent.api().vms.console(name, history)?;
    let crate::client::Console { mut output, input } = console;
    let spawn_error = |e: std::io::Error| {
        ClientError::Invalid(format!(
            "cannot serve the console of VM '{name}': no thread for it ({e})"
        ))
    };
    let input_tx = console_input::spawn_writer(input, "agent-in").map_err(spawn_error)?;
    agent.open_stream(stream, input_tx);
    let spawn_error = |e: std::io::Error| {
        agent.close_stream(stream);
        spawn_error(e)
    };
    let agent = std::sync::Arc::clone(agent);
    std::thread::Builder::new()
        .name("agent-out".into())
        .spawn(move || {
            let mut buf = vec![0u8; CHUNK];
            let reason = loop {
                match output.read(&mut buf) {
                    Ok(0) => break None,
                    Ok(n) if agent.stream_open(stream) => agent.send(&Down::Output {
                        stream,
                        data: Bytes(buf[..n].to_vec()),
                    }),
                    Ok(_) => return,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => break Some(format!("reading the console failed: {e}")),
                }
            };
            agent.close_stream(stream);
            agent.send(&Down::End { stream, reason });
        })
        .map_err(spawn_error)?;
    Ok(())
}
