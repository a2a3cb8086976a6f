//! What a scenario records when one of its `vmux` commands hangs: every thread of every vmux
//! process (vmd included) with the kernel function it sleeps in and its current system call,
//! and, where gdb is installed, each vmd's user-space stacks. A CI log keeps only the
//! failure message, so this goes into it.

use std::process::Command;

/// Most stack lines of one process kept in the report.
const MOST_STACK_LINES: usize = 200;

/// The report: one block per vmux process.
pub fn report() -> String {
    let mut text = String::from("\n--- vmux processes when the command was stopped ---\n");
    for pid in vmux_pids() {
        let args = read(&format!("/proc/{pid}/cmdline")).replace('\0', " ");
        text.push_str(&format!("pid {pid}: {}\n", args.trim()));
        for tid in tasks(pid) {
            let dir = format!("/proc/{pid}/task/{tid}");
            text.push_str(&format!(
                "  tid {tid} {:<14} state {} wchan {} syscall {}\n",
                read(&format!("{dir}/comm")).trim(),
                state(&read(&format!("{dir}/stat"))),
                read(&format!("{dir}/wchan")).trim(),
                read(&format!("{dir}/syscall")).trim(),
            ));
        }
        if args.contains(" __vmd") {
            text.push_str(&stacks(pid));
        }
    }
    text
}

/// Processes whose program is a vmux binary.
fn vmux_pids() -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut pids: Vec<u32> = entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .filter(|pid| {
            std::fs::read_link(format!("/proc/{pid}/exe"))
                .is_ok_and(|exe| exe.file_name().is_some_and(|n| n == "vmux"))
        })
        .collect();
    pids.sort_unstable();
    pids
}

fn tasks(pid: u32) -> Vec<String> {
    let mut tids: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/task"))
        .map(|t| {
            t.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    tids.sort();
    tids
}

/// The state letter of a `/proc/.../stat` line (after the parenthesised name).
fn state(stat: &str) -> String {
    stat.rsplit_once(") ")
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .unwrap_or("?")
        .to_string()
}

/// Each thread's backtrace from gdb, when gdb is installed.
fn stacks(pid: u32) -> String {
    let out = Command::new("gdb")
        .args(["-batch", "-nx", "-p", &pid.to_string()])
        .args(["-ex", "set pagination off", "-ex", "thread apply all bt 10"])
        .output();
    let Ok(out) = out else {
        return "  (no gdb here for user-space stacks)\n".to_string();
    };
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("Thread ") || l.starts_with('#'))
        .take(MOST_STACK_LINES)
        .collect();
    format!("  stacks:\n    {}\n", lines.join("\n    "))
}

fn read(path: &str) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}
