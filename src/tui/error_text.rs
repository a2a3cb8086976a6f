//! An error and its causes as one line (`outer: inner: innermost`), for the status line and
//! task outcomes. A leaf: every TUI module may use it.

/// An error with its causes, `outer: inner: innermost`, for the status line.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        // `#[error(transparent)]` wrappers repeat their inner message.
        if !text.ends_with(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::ClientError;

    #[test]
    fn error_chain_includes_the_cause_once() {
        let err = ClientError::Io {
            name: "a".into(),
            socket: "/run/a.sock".into(),
            source: std::io::Error::new(std::io::ErrorKind::BrokenPipe, "broken pipe"),
        };
        let text = error_chain(&err);
        assert!(text.ends_with(": broken pipe"), "{text}");
        assert_eq!(text.matches("broken pipe").count(), 1);
    }
}
