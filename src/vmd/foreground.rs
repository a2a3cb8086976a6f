//! `vmux run`: one transient VM in the foreground of the calling process, like
//! `qemu-system-x86_64 -kernel`: no definition, no control socket, no pid or state files.
//!
//! It reuses vmd's pieces: the [`Supervisor`] holds the current boot, the boot loop
//! ([`boot::run`]) boots again after a reset, and the guest's serial output goes through a
//! [`ConsoleRing`] (so a vCPU never blocks on the console, as the engine's [`SerialSink`]
//! contract demands) to a writer thread that copies it to the caller's output. A reader thread
//! feeds the caller's input to the guest's UART.
//!
//! Threads: the caller's thread runs the boot loop; `run-out` writes the console, `run-in`
//! reads input (it may stay blocked in `read` after the VM ends; the process exit takes it);
//! [`run`] adds `signals`, which turns `SIGTERM`, `SIGINT` and `SIGHUP` into a stop. The engine
//! adds its `vcpuN` threads.
//!
//! [`SerialSink`]: crate::engine::SerialSink

use std::io::{Read, Write};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use nix::sys::signal::{SigSet, Signal};

use super::boot;
use super::machine::{Engine, Machine, MachineControl, MachineError, vm_spec};
use super::ring::{ConsoleRing, ReadOutcome, RingReader};
use super::supervisor::Supervisor;
use crate::config::VmConfig;
use crate::engine::{self, SerialSink, VmExit, VmSpec};
use crate::protocol::ExitReason;

/// Serial output held for a slow output (a terminal, a pipe) before the oldest is dropped
/// (and a `[vmux: N bytes dropped]` line says so). Same size as vmd's console buffer.
pub const OUTPUT_BUFFER_BYTES: usize = super::CONSOLE_RING_BYTES;

/// How long the input thread waits before offering the guest input it had no room for (the
/// engine queues at most 64 KiB; a pipe can hold more).
const INPUT_RETRY: Duration = Duration::from_millis(5);

/// After writing a small chunk, the output thread lets output gather this long before it
/// looks again. A guest prints one byte per VM exit and each byte wakes a waiting reader:
/// without the pause the thread woke and wrote once per byte (56 000 context switches for
/// 40 KB of `flood`, 1.7 times QEMU's time); with it, a write carries tens of bytes. A person
/// cannot see 2 ms.
const OUTPUT_COALESCE: Duration = Duration::from_millis(2);

/// A chunk at least this large is written without the pause: the output is busy anyway.
const OUTPUT_COALESCE_BELOW: usize = 4096;

/// Longest the output thread waits for output in one go; only bounds how often it looks
/// whether the ring is closed, never the latency of output (a push wakes it at once).
const OUTPUT_WAIT: Duration = Duration::from_secs(1);

/// Why a foreground VM could not run.
#[derive(Debug, thiserror::Error)]
pub enum ForegroundError {
    /// The engine could not build or start the VM (the message names the cause).
    #[error("cannot boot the VM")]
    Boot(#[source] MachineError),
    /// A console thread could not be started.
    #[error("cannot start a console thread")]
    Thread(#[source] std::io::Error),
}

/// The VM's console: where its serial output goes and its serial input comes from.
pub struct Console {
    /// Guest input (stdin).
    pub input: Box<dyn Read + Send>,
    /// Guest output (stdout), written and flushed as it arrives.
    pub output: Box<dyn Write + Send>,
    /// A byte in the input that stops the VM instead of reaching the guest (Ctrl-] on a
    /// terminal); `None` passes every byte on.
    pub quit_key: Option<u8>,
}

/// How a foreground VM ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ending {
    /// The VM ended by itself (power off, debug exit, crash).
    Vm(ExitReason),
    /// The quit key was pressed.
    Quit,
    /// A termination signal stopped it.
    Signal(Signal),
}

/// Who asked for the stop that ended the VM, if anyone did.
#[derive(Default)]
struct StopCause(Mutex<Option<Ending>>);

impl StopCause {
    /// Records the first cause (a later one does not overwrite it) and destroys the VM.
    fn stop(&self, sup: &Supervisor, cause: Ending) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get_or_insert(cause);
        sup.destroy();
    }

    fn take(&self) -> Option<Ending> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).take()
    }
}

/// Runs the VM `config` describes on KVM until it ends, with termination signals stopping
/// it. Call it before the process has started other threads: it blocks the termination
/// signals in the calling thread so that every thread inherits the mask.
pub fn run(config: &VmConfig, console: Console) -> Result<Ending, ForegroundError> {
    let mut signals = SigSet::empty();
    for signal in [Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP] {
        signals.add(signal);
    }
    if let Err(e) = signals.thread_block() {
        log::warn!("cannot block termination signals: {e}");
    }
    run_with(&ExitingEngine, config, console, |sup, cause| {
        spawn_signal_thread(signals, sup, cause)
    })
}

/// The KVM engine for a process that ends with its VM: each boot leaves the VM's teardown to
/// the process exit ([`engine::Vm::close_at_process_exit`]), which skips work KVM does only
/// for a descriptor closed by a live process (docs/benchmarks.md, Launch).
struct ExitingEngine;

/// One boot on [`ExitingEngine`].
struct ExitingMachine(engine::Vm);

impl Engine for ExitingEngine {
    fn create(
        &self,
        spec: &VmSpec,
        serial: Arc<dyn SerialSink>,
    ) -> Result<Box<dyn Machine>, MachineError> {
        let mut vm = engine::Vm::create(spec, serial)?;
        vm.close_at_process_exit();
        Ok(Box::new(ExitingMachine(vm)))
    }

    fn restore(
        &self,
        _spec: &VmSpec,
        _serial: Arc<dyn SerialSink>,
        _file: &mut crate::engine::snapshot::SaveFile,
    ) -> Result<Box<dyn Machine>, MachineError> {
        Err("`vmux run` boots kernels only; restore a saved VM with `vmux restore FILE`".into())
    }
}

impl Machine for ExitingMachine {
    fn start(&mut self) -> Result<(), MachineError> {
        Ok(self.0.start()?)
    }

    fn control(&self) -> Arc<dyn MachineControl> {
        Arc::new(self.0.handle())
    }

    fn wait(self: Box<Self>) -> VmExit {
        self.0.wait()
    }
}

/// [`run`] on any engine; `on_start` is called once the first boot runs (to install a signal
/// thread, say).
fn run_with(
    engine: &dyn Engine,
    config: &VmConfig,
    console: Console,
    on_start: impl FnOnce(Arc<Supervisor>, Arc<StopCause>) -> std::io::Result<()>,
) -> Result<Ending, ForegroundError> {
    let spec = vm_spec(config);
    let ring = Arc::new(ConsoleRing::new(OUTPUT_BUFFER_BYTES));
    let sup = Arc::new(Supervisor::new(
        &spec,
        std::process::id(),
        Arc::clone(&ring),
        None,
    ));
    let cause = Arc::new(StopCause::default());
    let writer =
        spawn_output(Arc::clone(&ring), console.output).map_err(ForegroundError::Thread)?;
    let finish_output = |ring: &ConsoleRing, writer: JoinHandle<()>| {
        ring.close();
        if writer.join().is_err() {
            log::warn!("the console output thread panicked");
        }
    };
    let first = match boot::boot(&sup, engine, &spec) {
        Ok(machine) => machine,
        Err(e) => {
            finish_output(&ring, writer);
            return Err(ForegroundError::Boot(e));
        }
    };
    let started = spawn_input(
        Arc::clone(&sup),
        Arc::clone(&cause),
        console.input,
        console.quit_key,
    )
    .and_then(|()| on_start(Arc::clone(&sup), Arc::clone(&cause)));
    if let Err(e) = started {
        sup.destroy();
        boot::run(&sup, engine, first);
        finish_output(&ring, writer);
        return Err(ForegroundError::Thread(e));
    }
    let reason = boot::run(&sup, engine, first);
    finish_output(&ring, writer);
    Ok(match (reason, cause.take()) {
        (ExitReason::Destroyed, Some(cause)) => cause,
        (reason, _) => Ending::Vm(reason),
    })
}

/// Starts the thread that copies serial output to `output` until the ring is closed and
/// drained. An output that fails (a closed pipe) is dropped; the VM runs on.
fn spawn_output(
    ring: Arc<ConsoleRing>,
    mut output: Box<dyn Write + Send>,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("run-out".into())
        .spawn(move || {
            let mut reader = RingReader::new(ring, true);
            let mut chunk = Vec::new();
            let mut open = true;
            loop {
                chunk.clear();
                match reader.next(&mut chunk, OUTPUT_WAIT) {
                    ReadOutcome::Closed => break,
                    ReadOutcome::Idle => continue,
                    ReadOutcome::Data => {}
                }
                if open && let Err(e) = output.write_all(&chunk).and_then(|()| output.flush()) {
                    log::debug!("console output closed: {e}");
                    open = false;
                }
                if chunk.len() < OUTPUT_COALESCE_BELOW {
                    std::thread::sleep(OUTPUT_COALESCE);
                }
            }
        })
}

/// Starts the thread that feeds `input` to the guest's UART, holding back what the engine has
/// no room for, and stops the VM at `quit_key`. At the end of the input the guest simply gets
/// no more.
fn spawn_input(
    sup: Arc<Supervisor>,
    cause: Arc<StopCause>,
    mut input: Box<dyn Read + Send>,
    quit_key: Option<u8>,
) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("run-in".into())
        .spawn(move || {
            let mut buf = [0u8; 4096];
            loop {
                let n = match input.read(&mut buf) {
                    Ok(0) => return,
                    Ok(n) => n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(e) => {
                        log::debug!("console input closed: {e}");
                        return;
                    }
                };
                let bytes = &buf[..n];
                let quit_at = quit_key.and_then(|key| bytes.iter().position(|b| *b == key));
                deliver(&sup, &bytes[..quit_at.unwrap_or(n)]);
                if quit_at.is_some() {
                    cause.stop(&sup, Ending::Quit);
                    return;
                }
            }
        })
        .map(drop)
}

/// Hands `bytes` to the running boot, waiting while the engine's input queue is full or the
/// VM is between boots; gives up once the VM is over.
fn deliver(sup: &Supervisor, mut bytes: &[u8]) {
    while !bytes.is_empty() && !sup.ring().is_closed() {
        let accepted = sup.control().map_or(0, |c| c.serial_input(bytes));
        bytes = &bytes[accepted..];
        if !bytes.is_empty() {
            std::thread::sleep(INPUT_RETRY);
        }
    }
}

/// Starts the thread that turns a termination signal (blocked in every thread) into a stop.
fn spawn_signal_thread(
    set: SigSet,
    sup: Arc<Supervisor>,
    cause: Arc<StopCause>,
) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || match set.wait() {
            Ok(signal) => cause.stop(&sup, Ending::Signal(signal)),
            Err(e) => log::warn!("sigwait failed: {e}"),
        })
        .map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::BootConfig;
    use crate::vmd::fake::FakeEngine;
    use crate::vmd::machine::MachineControl;
    use std::io::Cursor;
    use std::sync::mpsc;
    use std::time::Instant;

    /// An output that forwards what is written to a channel.
    struct Captured(mpsc::Sender<Vec<u8>>);

    impl Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            let _ = self.0.send(buf.to_vec());
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// An input that never ends (a user who types nothing).
    struct Silent;

    impl Read for Silent {
        fn read(&mut self, _: &mut [u8]) -> std::io::Result<usize> {
            std::thread::sleep(Duration::from_secs(3600));
            Ok(0)
        }
    }

    fn config() -> VmConfig {
        VmConfig::new(
            "run",
            BootConfig::Kernel {
                kernel: "/fake/kernel".into(),
                initrd: None,
                cmdline: String::new(),
            },
        )
    }

    fn console(input: Box<dyn Read + Send>) -> (Console, mpsc::Receiver<Vec<u8>>) {
        let (tx, rx) = mpsc::channel();
        let console = Console {
            input,
            output: Box::new(Captured(tx)),
            quit_key: Some(0x1d),
        };
        (console, rx)
    }

    /// The thread running a foreground VM.
    type VmThread = std::thread::JoinHandle<Result<Ending, ForegroundError>>;

    /// Runs the VM on its own thread; returns it, the engine to drive it with and its output.
    fn start(input: Box<dyn Read + Send>) -> (VmThread, Arc<FakeEngine>, mpsc::Receiver<Vec<u8>>) {
        let engine = Arc::new(FakeEngine::new(b"banner\r\n"));
        let (console, output) = console(input);
        let vm = {
            let engine = Arc::clone(&engine);
            std::thread::spawn(move || run_with(engine.as_ref(), &config(), console, |_, _| Ok(())))
        };
        (vm, engine, output)
    }

    fn wait_for(mut cond: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while !cond() {
            assert!(Instant::now() < deadline, "timed out");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn guest_output_reaches_the_console_before_run_returns() {
        let (vm, engine, output) = start(Box::new(Silent));
        wait_for(|| engine.boots() == 1);
        engine.control(1).power_button();
        let ending = vm.join().expect("vm thread").expect("run");
        assert_eq!(ending, Ending::Vm(ExitReason::PowerOff));
        let written: Vec<u8> = output.try_iter().flatten().collect();
        assert_eq!(written, b"banner\r\n");
    }

    #[test]
    fn input_reaches_the_guest_and_the_quit_key_stops_it() {
        let (vm, engine, _) = start(Box::new(Cursor::new(b"ls\r\x1dafter".to_vec())));
        let ending = vm.join().expect("vm thread").expect("run");
        assert_eq!(ending, Ending::Quit);
        let control = engine.control(1);
        assert_eq!(*control.input.lock().expect("input"), b"ls\r");
    }

    #[test]
    fn a_crash_is_reported_with_its_reason() {
        let (vm, engine, _) = start(Box::new(Silent));
        wait_for(|| engine.boots() == 1);
        engine.control(1).crash("triple fault at rip 0x100000");
        let ending = vm.join().expect("vm thread").expect("run");
        assert_eq!(
            ending,
            Ending::Vm(ExitReason::Crashed {
                reason: "triple fault at rip 0x100000".into()
            })
        );
    }

    #[test]
    fn a_reset_boots_again_in_the_foreground() {
        let (vm, engine, output) = start(Box::new(Silent));
        wait_for(|| engine.boots() == 1);
        engine.control(1).reset();
        wait_for(|| engine.boots() == 2);
        engine.control(2).power_button();
        vm.join().expect("vm thread").expect("run");
        let written: Vec<u8> = output.try_iter().flatten().collect();
        assert_eq!(written, b"banner\r\nbanner\r\n");
    }

    #[test]
    fn an_engine_that_cannot_build_the_vm_is_an_error() {
        let mut engine = FakeEngine::new(b"");
        engine.fail_from_boot = Some(1);
        let (console, _) = console(Box::new(Silent));
        let result = run_with(&engine, &config(), console, |_, _| Ok(()));
        assert!(matches!(result, Err(ForegroundError::Boot(_))));
    }
}
