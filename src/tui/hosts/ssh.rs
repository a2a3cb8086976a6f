//! The real [`Connector`]: runs the system `ssh` with `vmux agent --stdio` on the other side
//! (`crate::remote`), never letting ssh prompt (a prompt would write over the screen: a host
//! that needs one fails with ssh's words instead).

use super::connector::{Connector, Link};
use crate::client::HostApi;
use crate::remote::{self, Prompts, Target};
use crate::tui::error_text::error_chain;
use std::sync::Arc;

/// Connects over SSH.
#[derive(Debug, Clone, Copy, Default)]
pub struct SshConnector;

impl Connector for SshConnector {
    fn connect(&self, uri: &str) -> Result<Arc<dyn Link>, String> {
        let target: Target = uri.parse().map_err(|e| error_chain(&e))?;
        let (link, api) = remote::connect(&target, Prompts::Never).map_err(|e| error_chain(&e))?;
        Ok(Arc::new(SshLink { link, api }))
    }
}

/// One ssh connection and the host API over it.
struct SshLink {
    link: remote::Link,
    api: HostApi,
}

impl Link for SshLink {
    fn backends(&self) -> HostApi {
        self.api.clone()
    }

    fn lost(&self) -> Option<String> {
        self.link.lost()
    }

    fn close(&self) {
        self.link.close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_that_is_not_ssh_is_refused_before_running_ssh() {
        let err = SshConnector.connect("host2:22").err().expect("refused");
        assert!(err.contains("ssh://[user@]host[:port]"), "{err}");
    }
}
