//! Plain-text output helpers shared by the verbs: a virsh-style table, durations, and error
//! chains on one line (`cannot read x: No such file or directory`).

use std::fmt::Write as _;
use std::time::Duration;

/// A left-aligned text table with a header row and a rule under it, like `virsh list`.
#[derive(Debug, Default)]
pub struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these column titles.
    pub fn new(header: &[&str]) -> Table {
        Table {
            header: header.iter().map(|h| h.to_string()).collect(),
            rows: Vec::new(),
        }
    }

    /// Appends a row; missing cells print empty, extra cells are ignored.
    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// The table as text, one line per row, each line ending in `\n`.
    pub fn render(&self) -> String {
        let widths: Vec<usize> = (0..self.header.len())
            .map(|col| {
                std::iter::once(&self.header)
                    .chain(&self.rows)
                    .filter_map(|row| row.get(col))
                    .map(|cell| cell.chars().count())
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let line = |cells: &[String]| {
            let mut text = String::new();
            for (col, width) in widths.iter().enumerate() {
                let cell = cells.get(col).map(String::as_str).unwrap_or("");
                let _ = write!(text, " {cell:<width$}  ");
            }
            text.trim_end().to_string() + "\n"
        };
        let mut out = line(&self.header);
        let rule = widths.iter().map(|w| w + 3).sum::<usize>();
        out.push_str(&"-".repeat(rule));
        out.push('\n');
        for row in &self.rows {
            out.push_str(&line(row));
        }
        out
    }
}

/// `3d 4h 5m 6s`, dropping leading zero units (`5m 6s`, `0s`).
pub fn format_duration(duration: Duration) -> String {
    let secs = duration.as_secs();
    let parts = [
        (secs / 86_400, "d"),
        (secs / 3_600 % 24, "h"),
        (secs / 60 % 60, "m"),
        (secs % 60, "s"),
    ];
    let first = parts
        .iter()
        .position(|(n, _)| *n > 0)
        .unwrap_or(parts.len() - 1);
    parts[first..]
        .iter()
        .map(|(n, unit)| format!("{n}{unit}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// An error and its sources on one line, separated by `: ` (what `{:#}` does for anyhow).
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let _ = write!(text, ": {cause}");
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_columns_line_up_under_the_header() {
        let mut table = Table::new(&["Id", "Name"]);
        table.row(vec!["-".into(), "longer-name".into()]);
        let text = table.render();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], " Id   Name");
        assert!(lines[1].chars().all(|c| c == '-'));
        assert_eq!(lines[2], " -    longer-name");
    }

    #[test]
    fn durations_drop_leading_zero_units() {
        assert_eq!(format_duration(Duration::from_secs(0)), "0s");
        assert_eq!(format_duration(Duration::from_secs(61)), "1m 1s");
        assert_eq!(format_duration(Duration::from_secs(90_061)), "1d 1h 1m 1s");
    }

    #[test]
    fn error_chain_includes_the_cause() {
        #[derive(Debug, thiserror::Error)]
        #[error("cannot read x")]
        struct Outer(#[source] std::io::Error);
        let err = Outer(std::io::Error::other("gone"));
        assert_eq!(error_chain(&err), "cannot read x: gone");
    }
}
