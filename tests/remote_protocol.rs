//! The host protocol without SSH: an agent served in-process over pipes, in front of the fake
//! host, and a `RemoteHost` over a `Link` to it. What a front end gets through the link must be
//! what it gets from the host directly (results, consoles, errors with their kinds), and a
//! dropped connection must fail calls with a clear error instead of hanging them.

use std::io::{BufReader, Read, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};
use vmux::client::HostApi;
use vmux::client::fake::FakeHost;
use vmux::client::{ClientError, Host, StorageHost};
use vmux::client::{FakeNetworks, FakeStorage};
use vmux::config::{BootConfig, ConfigError, VmConfig};
use vmux::protocol::RunState;
use vmux::remote::{Link, LinkError, RemoteHost, agent};

/// A fake host served by an in-process agent, and the link to it.
struct Served {
    fake: Arc<FakeHost>,
    link: Link,
    /// The client's end of the agent's stdin: dropping it is the client going away.
    agent: std::thread::JoinHandle<()>,
}

fn serve(fake: Arc<FakeHost>) -> Served {
    let (agent_in, client_out) = std::io::pipe().expect("pipe");
    let (client_in, agent_out) = std::io::pipe().expect("pipe");
    let api = HostApi {
        vms: fake.clone(),
        storage: Arc::new(FakeStorage::new()),
        networks: Arc::new(FakeNetworks::new()),
    };
    let agent = std::thread::spawn(move || {
        agent::serve(
            api,
            BufReader::new(agent_in),
            Box::new(agent_out),
            "h2".into(),
        )
        .expect("the agent serves until its input ends");
    });
    let link = Link::over_pipes("h2".into(), BufReader::new(client_in), Box::new(client_out))
        .expect("hello");
    Served { fake, link, agent }
}

fn demo(name: &str) -> VmConfig {
    let mut cfg = VmConfig::new(name, BootConfig::Demo);
    cfg.max_vcpus = 4;
    cfg
}

#[test]
fn a_remote_host_answers_as_the_host_itself() {
    let served = serve(Arc::new(FakeHost::new()));
    let remote = RemoteHost::new(served.link.clone());
    assert_eq!(served.link.hello().host, "h2");
    remote.define(&demo("web")).expect("define");
    remote.start("web").expect("start");
    assert_eq!(remote.list(), served.fake.list());
    assert_eq!(
        remote.status("web").expect("status"),
        served.fake.status("web").expect("status")
    );
    assert_eq!(remote.state("web").expect("state").state, RunState::Running);
    remote
        .set_vcpus("web", 3, vmux::client::ChangeScope::BOTH)
        .expect("hot-add");
    assert_eq!(served.fake.state("web").expect("state").vcpus, Some(3));
    assert_eq!(
        remote.info("web").expect("info"),
        served.fake.info("web").expect("info")
    );
}

#[test]
fn errors_keep_their_words_and_the_kinds_front_ends_act_on() {
    let served = serve(Arc::new(FakeHost::new()));
    let remote = RemoteHost::new(served.link.clone());
    let remote_error = remote.status("nope").expect_err("unknown VM");
    let local_error = served.fake.status("nope").expect_err("unknown VM");
    assert!(
        matches!(remote_error, ClientError::Config(ConfigError::UnknownVm(_))),
        "{remote_error:?}"
    );
    assert_eq!(remote_error.to_string(), local_error.to_string());
    remote.define(&demo("web")).expect("define");
    let not_running = remote.shutdown("web").expect_err("shut off");
    assert_eq!(
        not_running.to_string(),
        served
            .fake
            .shutdown("web")
            .expect_err("shut off")
            .to_string()
    );
    served.fake.fail_next("start", "no memory left for 'web'");
    let refused = remote.start("web").expect_err("injected");
    assert!(refused.to_string().contains("no memory left"), "{refused}");
}

#[test]
fn a_console_streams_both_ways_over_the_link() {
    let served = serve(Arc::new(FakeHost::new()));
    let remote = RemoteHost::new(served.link.clone());
    remote.define(&demo("web")).expect("define");
    remote.start("web").expect("start");
    let mut console = remote.console("web", false).expect("console");
    console
        .input
        .write_all(b"echo over-the-link\n")
        .expect("type");
    let mut seen = Vec::new();
    let mut buf = [0u8; 256];
    let deadline = Instant::now() + Duration::from_secs(10);
    while !String::from_utf8_lossy(&seen).contains("over-the-link\r\n") {
        assert!(
            Instant::now() < deadline,
            "no echo: {:?}",
            String::from_utf8_lossy(&seen)
        );
        let n = console.output.read(&mut buf).expect("read");
        assert_ne!(n, 0, "the stream ended early");
        seen.extend_from_slice(&buf[..n]);
    }
}

#[test]
fn a_dropped_connection_fails_calls_and_ends_consoles() {
    let served = serve(Arc::new(FakeHost::new()));
    let remote = RemoteHost::new(served.link.clone());
    remote.define(&demo("web")).expect("define");
    remote.start("web").expect("start");
    let mut console = remote.console("web", false).expect("console");
    served.link.close();
    served
        .agent
        .join()
        .expect("the agent returns once its client is gone");
    let error = remote.status("web").expect_err("closed");
    assert!(
        matches!(error, ClientError::Link(LinkError::Lost { .. })),
        "{error:?}"
    );
    assert!(
        error.to_string().contains("connection to h2 was lost"),
        "{error}"
    );
    assert!(served.link.lost().is_some());
    let mut buf = [0u8; 64];
    let ended = loop {
        match console.output.read(&mut buf) {
            Ok(0) => break None,
            Ok(_) => {}
            Err(e) => break Some(e),
        }
    };
    assert!(
        ended.is_some_and(|e| e.to_string().contains("lost")),
        "the console says why it ended"
    );
}

#[test]
fn another_protocol_version_is_refused_naming_both() {
    let hello = b"{\"t\":\"hello\",\"protocol\":999,\"vmux\":\"9.9.9\",\"host\":\"h3\"}\n".to_vec();
    let error = Link::over_pipes(
        "h3".into(),
        BufReader::new(std::io::Cursor::new(hello)),
        Box::new(std::io::sink()),
    )
    .err()
    .expect("refused");
    let text = error.to_string();
    assert!(
        matches!(error, LinkError::VersionMismatch { theirs: 999, .. }),
        "{text}"
    );
    assert!(
        text.contains("vmux 9.9.9 on h3 speaks host protocol 999"),
        "{text}"
    );
    assert!(
        text.contains("install the same vmux version on both"),
        "{text}"
    );
}

#[test]
fn an_agent_answers_a_call_it_does_not_know_with_an_error_naming_it() {
    let input = b"{\"t\":\"call\",\"id\":5,\"call\":{\"op\":\"teleport\"}}\n".to_vec();
    let output = Arc::new(std::sync::Mutex::new(Vec::new()));
    struct Shared(Arc<std::sync::Mutex<Vec<u8>>>);
    impl Write for Shared {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("lock").extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let api = HostApi {
        vms: Arc::new(FakeHost::new()),
        storage: Arc::new(FakeStorage::new()),
        networks: Arc::new(FakeNetworks::new()),
    };
    agent::serve(
        api,
        std::io::Cursor::new(input),
        Box::new(Shared(output.clone())),
        "h2".into(),
    )
    .expect("serves");
    let text = String::from_utf8(output.lock().expect("lock").clone()).expect("utf-8");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(lines[0].contains("\"t\":\"hello\""), "{text}");
    assert!(lines[1].contains("\"id\":5"), "{text}");
    assert!(
        lines[1].contains("does not know the call 'teleport'"),
        "{text}"
    );
}

#[test]
fn storage_and_networks_answer_through_the_link_with_progress() {
    let (agent_in, client_out) = std::io::pipe().expect("pipe");
    let (client_in, agent_out) = std::io::pipe().expect("pipe");
    let storage = Arc::new(FakeStorage::new());
    storage.add_pool("default", "/var/lib/vmux/images", true);
    storage.add_volume("default", "base.qcow2", 1 << 30, 1 << 20);
    let api = HostApi {
        vms: Arc::new(FakeHost::new()),
        storage: storage.clone(),
        networks: Arc::new(FakeNetworks::with_default()),
    };
    std::thread::spawn(move || {
        let _ = agent::serve(
            api,
            BufReader::new(agent_in),
            Box::new(agent_out),
            "h2".into(),
        );
    });
    let link = Link::over_pipes("h2".into(), BufReader::new(client_in), Box::new(client_out))
        .expect("hello");
    let remote = vmux::remote::api(&link);
    assert_eq!(
        remote.storage.snapshot().expect("snapshot"),
        storage.snapshot().expect("snapshot")
    );
    let progress = vmux::progress::Progress::new();
    let clone = remote
        .storage
        .clone_volume("default", "base.qcow2", "copy.qcow2", false, &progress)
        .expect("clone");
    assert_eq!(
        clone,
        storage
            .volume("default", "copy.qcow2")
            .expect("cloned here")
    );
    let seen = progress.snapshot();
    assert!(seen.finished && seen.done == seen.total, "{seen:?}");
    let missing = remote
        .storage
        .volume_info("default", "nope.qcow2")
        .expect_err("no such volume");
    assert_eq!(
        missing.to_string(),
        storage
            .volume_info("default", "nope.qcow2")
            .expect_err("no such volume")
            .to_string()
    );
    let networks = remote.networks.list().expect("networks");
    assert_eq!(networks.networks.len(), 1, "{networks:?}");
}
