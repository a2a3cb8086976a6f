//! Where a remote host is: `ssh://[user@]host[:port]`, as `--connect` and `VMUX_CONNECT` take
//! it and the hosts pane saves it.

use serde::{Deserialize, Serialize};

/// A remote host reached over SSH.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Target {
    /// The login name (`None`: ssh's own choice, from ~/.ssh/config or the local user).
    pub user: Option<String>,
    /// Host name or address, as ssh takes it (an alias from ~/.ssh/config works).
    pub host: String,
    /// The port (`None`: ssh's own choice).
    pub port: Option<u16>,
}

/// A `--connect` value that is not a host address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "'{given}' is not a host to connect to: {why}; write ssh://[user@]host[:port], e.g. ssh://root@host2 or ssh://host2:2222"
)]
pub struct TargetError {
    /// What was given.
    pub given: String,
    /// What is wrong with it.
    pub why: &'static str,
}

impl std::str::FromStr for Target {
    type Err = TargetError;

    fn from_str(given: &str) -> Result<Target, TargetError> {
        let fail = |why| TargetError {
            given: given.to_string(),
            why,
        };
        let rest = given
            .strip_prefix("ssh://")
            .ok_or_else(|| fail("vmux reaches other hosts over SSH only"))?;
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.contains('/') || rest.contains('?') {
            return Err(fail("it has a path or options, which vmux does not use"));
        }
        let (user, rest) = match rest.rsplit_once('@') {
            Some((user, rest)) if !user.is_empty() => (Some(user.to_string()), rest),
            Some(_) => return Err(fail("the user name before '@' is empty")),
            None => (None, rest),
        };
        let (host, port) =
            split_port(rest).ok_or_else(|| fail("the port is not a number from 1 to 65535"))?;
        if host.is_empty() {
            return Err(fail("the host name is empty"));
        }
        if host.starts_with('-') || user.as_deref().is_some_and(|u| u.starts_with('-')) {
            return Err(fail("a host or user name cannot start with '-'"));
        }
        if host
            .chars()
            .chain(user.iter().flat_map(|u| u.chars()))
            .any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(fail("it contains spaces or control characters"));
        }
        Ok(Target {
            user,
            host: host.to_string(),
            port,
        })
    }
}

/// `host`, `host:port`, `[v6]`, `[v6]:port` → host and port; `None` for a bad port.
fn split_port(text: &str) -> Option<(&str, Option<u16>)> {
    let port = |p: &str| p.parse::<u16>().ok().filter(|&p| p != 0);
    if let Some(bracketed) = text.strip_prefix('[') {
        let (host, after) = bracketed.split_once(']')?;
        return match after.strip_prefix(':') {
            Some(p) => Some((host, Some(port(p)?))),
            None if after.is_empty() => Some((host, None)),
            None => None,
        };
    }
    match text.rsplit_once(':') {
        Some((host, p)) if !host.contains(':') => Some((host, Some(port(p)?))),
        _ => Some((text, None)),
    }
}

impl Target {
    /// How messages name the host: `host2`, or `root@host2` with a user.
    pub fn label(&self) -> String {
        match &self.user {
            Some(user) => format!("{user}@{}", self.host),
            None => self.host.clone(),
        }
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ssh://")?;
        if let Some(user) = &self.user {
            write!(f, "{user}@")?;
        }
        if self.host.contains(':') {
            write!(f, "[{}]", self.host)?;
        } else {
            f.write_str(&self.host)?;
        }
        if let Some(port) = self.port {
            write!(f, ":{port}")?;
        }
        Ok(())
    }
}

impl TryFrom<String> for Target {
    type Error = TargetError;

    fn try_from(text: String) -> Result<Target, TargetError> {
        text.parse()
    }
}

impl From<Target> for String {
    fn from(target: Target) -> String {
        target.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Target {
        text.parse().unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    #[test]
    fn user_host_and_port_are_read() {
        assert_eq!(
            parse("ssh://root@host2:2222"),
            Target {
                user: Some("root".into()),
                host: "host2".into(),
                port: Some(2222)
            }
        );
        assert_eq!(parse("ssh://host2/").port, None);
        assert_eq!(parse("ssh://[::1]:22").host, "::1");
    }

    #[test]
    fn an_address_prints_as_it_was_written() {
        for text in ["ssh://root@host2:2222", "ssh://host2", "ssh://[::1]:2200"] {
            assert_eq!(parse(text).to_string(), text);
        }
    }

    #[test]
    fn what_is_not_an_ssh_address_is_refused_with_the_form() {
        for bad in [
            "host2",
            "qemu+ssh://host2/system",
            "ssh://host2:0",
            "ssh://host2:x",
            "ssh://",
            "ssh://-oProxyCommand=x",
            "ssh://@h",
            "ssh://a b",
        ] {
            let error = bad.parse::<Target>().expect_err(bad);
            assert!(
                error.to_string().contains("ssh://[user@]host[:port]"),
                "{error}"
            );
        }
    }
}
