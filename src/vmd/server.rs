//! The control socket: `<runtime>/<name>.sock`, mode 0600 in a 0700 directory, accepting
//! connections only from processes of vmd's own effective uid (`SO_PEERCRED`), one thread per
//! connection, within the limits of [`super::admission`] (per process, and slots kept for
//! lifecycle commands).

use std::fs;
use std::io;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use nix::sys::socket::{getsockopt, sockopt::PeerCredentials};
use nix::unistd::geteuid;

use syscalls::Sysno;

use super::admission::Admission;
use super::session;
use super::supervisor::Supervisor;
use crate::engine::confine::syscalls::SyscallList;
use crate::engine::confine::{self, ThreadKind};

/// What the `control` thread may call: accept connections and check the peer.
pub const SYSCALLS: SyscallList =
    SyscallList::calls(&[Sysno::accept4, Sysno::getsockopt, Sysno::geteuid]);

/// Errors setting up the control socket.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// Something other than a socket sits where the socket goes.
    #[error("{} exists and is not a socket; move it away", path.display())]
    NotASocket {
        /// The path.
        path: PathBuf,
    },
    /// Binding or securing the socket failed.
    #[error("cannot listen on {}", path.display())]
    Bind {
        /// The socket path.
        path: PathBuf,
        /// Cause.
        #[source]
        source: io::Error,
    },
    /// The accept thread could not be started.
    #[error("cannot start the control socket thread")]
    Spawn(#[source] io::Error),
}

/// The bound socket; [`ControlSocket::remove`] unlinks it.
#[derive(Debug)]
pub struct ControlSocket {
    path: PathBuf,
    listener: UnixListener,
}

impl ControlSocket {
    /// Binds `path` (0600). A stale socket left by a dead vmd is replaced: the caller holds the
    /// VM's pid lock, so no live vmd owns it.
    pub fn bind(path: &Path) -> Result<ControlSocket, ServerError> {
        let err = |source| ServerError::Bind {
            path: path.to_path_buf(),
            source,
        };
        match fs::symlink_metadata(path) {
            Ok(meta) if meta.file_type().is_socket() => fs::remove_file(path).map_err(err)?,
            Ok(_) => {
                return Err(ServerError::NotASocket {
                    path: path.to_path_buf(),
                });
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(err(e)),
        }
        let listener = UnixListener::bind(path).map_err(err)?;
        fs::set_permissions(path, fs::Permissions::from_mode(0o600)).map_err(err)?;
        Ok(ControlSocket {
            path: path.to_path_buf(),
            listener,
        })
    }

    /// The socket path.
    #[cfg(test)]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Starts accepting connections on a thread of their own. The listener stays open until
    /// the process exits; [`ControlSocket::remove`] only unlinks the name.
    pub fn serve(&self, sup: Arc<Supervisor>) -> Result<(), ServerError> {
        let listener = self
            .listener
            .try_clone()
            .map_err(|source| ServerError::Bind {
                path: self.path.clone(),
                source,
            })?;
        confine::spawn(ThreadKind::Control, "control".into(), move || {
            accept_loop(&listener, &sup);
        })
        .map(drop)
        .map_err(ServerError::Spawn)
    }

    /// Unlinks the socket so clients see the VM is gone.
    pub fn remove(&self) {
        if let Err(e) = fs::remove_file(&self.path)
            && e.kind() != io::ErrorKind::NotFound
        {
            log::warn!("cannot remove {}: {e}", self.path.display());
        }
    }
}

fn accept_loop(listener: &UnixListener, sup: &Arc<Supervisor>) {
    let admission = Admission::default();
    for stream in listener.incoming() {
        let stream = match stream {
            Ok(stream) => stream,
            Err(e) => {
                log::warn!("accept on the control socket failed: {e}");
                std::thread::sleep(std::time::Duration::from_millis(50));
                continue;
            }
        };
        let Some(peer) = peer_pid(&stream) else {
            continue;
        };
        let Some(ticket) = admission.admit(peer) else {
            log::warn!(
                "refusing a control connection from pid {peer}: every connection slot is taken; \
                 close idle clients"
            );
            continue;
        };
        let sup = Arc::clone(sup);
        let spawned = confine::spawn(ThreadKind::Connection, "conn".into(), move || {
            session::serve(sup, stream, ticket.slot());
            drop(ticket);
        });
        if let Err(e) = spawned {
            log::warn!("cannot start a connection thread: {e}");
        }
    }
}

/// The peer's pid when it runs as our effective uid; `None` (connection dropped) otherwise.
/// The directory and socket modes already keep others out; this also covers a socket path
/// someone made reachable by mistake.
fn peer_pid(stream: &UnixStream) -> Option<u32> {
    match getsockopt(stream, PeerCredentials) {
        Ok(cred) if cred.uid() == geteuid().as_raw() => {
            Some(u32::try_from(cred.pid()).unwrap_or(0))
        }
        Ok(cred) => {
            log::warn!(
                "dropped a control connection from uid {} (pid {})",
                cred.uid(),
                cred.pid()
            );
            None
        }
        Err(e) => {
            log::warn!("dropped a control connection: cannot read its credentials: {e}");
            None
        }
    }
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_socket_is_private_to_its_owner() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("a.sock");
        let socket = ControlSocket::bind(&path).expect("bind");
        let mode = fs::metadata(socket.path())
            .expect("stat")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn a_stale_socket_is_replaced_but_a_regular_file_is_not() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("a.sock");
        drop(UnixListener::bind(&path).expect("stale"));
        ControlSocket::bind(&path).expect("rebind over stale socket");
        let file = dir.path().join("b.sock");
        fs::write(&file, b"not a socket").expect("write");
        assert!(matches!(
            ControlSocket::bind(&file),
            Err(ServerError::NotASocket { .. })
        ));
    }

    #[test]
    fn our_own_connection_passes_the_peer_check() {
        let (a, _b) = UnixStream::pair().expect("pair");
        assert_eq!(peer_pid(&a), Some(std::process::id()));
    }
}
