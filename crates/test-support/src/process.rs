//! A look at /proc: the processes a test left behind, the CPU time of named threads; and a test
//! run in a process of its own, where the only threads are its own.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;

/// Every process's /proc directory, with its pid.
fn processes() -> Vec<(String, PathBuf)> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .map(|entry| {
            (
                entry.file_name().to_string_lossy().into_owned(),
                entry.path(),
            )
        })
        .filter(|(pid, _)| pid.chars().all(|c| c.is_ascii_digit()))
        .collect()
}

/// The fields of a `stat` file after `(comm)` (which may hold spaces): state, ppid, pgrp, ...
fn stat_fields(stat: &str) -> Vec<&str> {
    stat.rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default()
}

/// Every process (but this one) whose environment holds `needle` (`NAME=value`), as
/// "pid cmdline".
pub fn processes_with(needle: &str) -> Vec<String> {
    let me = std::process::id().to_string();
    let mut found = Vec::new();
    for (pid, path) in processes() {
        let Ok(environ) = std::fs::read(path.join("environ")) else {
            continue;
        };
        if pid != me
            && environ
                .split(|b| *b == 0)
                .any(|var| var == needle.as_bytes())
        {
            let cmdline = std::fs::read(path.join("cmdline")).unwrap_or_default();
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            // A zombie has an empty cmdline and is gone once reaped.
            found.push(format!("{pid} {cmdline}"));
        }
    }
    found
}

/// Processes (zombies included) whose process group is one of `groups`, as their `stat` line.
pub fn processes_in_groups(groups: &[u32]) -> Vec<String> {
    let mut found = Vec::new();
    for (_, path) in processes() {
        let Ok(stat) = std::fs::read_to_string(path.join("stat")) else {
            continue;
        };
        let pgrp = stat_fields(&stat)
            .get(2)
            .and_then(|p| p.parse::<u32>().ok());
        if pgrp.is_some_and(|pgrp| groups.contains(&pgrp)) {
            found.push(stat.trim().to_owned());
        }
    }
    found
}

/// Children of this process (zombies included) whose pid is in `pids`.
pub fn children_among(pids: &[u32]) -> Vec<u32> {
    let me = std::process::id();
    let mut found = Vec::new();
    for pid in pids {
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let ppid = stat_fields(&stat)
            .get(1)
            .and_then(|p| p.parse::<u32>().ok());
        if ppid == Some(me) {
            found.push(*pid);
        }
    }
    found
}

/// Processes whose command line mentions `needle` (for example a run directory).
pub fn processes_mentioning(needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    for (_, path) in processes() {
        let Ok(raw) = std::fs::read(path.join("cmdline")) else {
            continue;
        };
        let cmdline = String::from_utf8_lossy(&raw).replace('\0', " ");
        if cmdline.contains(needle) {
            found.push(cmdline);
        }
    }
    found
}

/// CPU time (user + system, in clock ticks: about 100 for a second of spinning) of this
/// process's threads whose name starts with `prefix`, by thread id.
pub fn thread_cpu_ticks(prefix: &str) -> BTreeMap<String, u64> {
    let mut ticks = BTreeMap::new();
    for task in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
        let path = task.path();
        let name = std::fs::read_to_string(path.join("comm")).unwrap_or_default();
        if !name.starts_with(prefix) {
            continue;
        }
        let Ok(stat) = std::fs::read_to_string(path.join("stat")) else {
            continue;
        };
        // utime and stime are the 14th and 15th fields, the 12th and 13th after `(comm)`.
        let fields = stat_fields(&stat);
        let used = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
        ticks.insert(task.file_name().to_string_lossy().into_owned(), used);
    }
    ticks
}

/// The name the test harness knows test `name` by, from the `module_path!()` of its module (the
/// crate's name left out).
pub fn test_path(module: &str, name: &str) -> String {
    match module.split_once("::") {
        Some((_, inner)) => format!("{inner}::{name}"),
        None => name.to_owned(),
    }
}

/// Runs the ignored test `name` of `module` (its `module_path!()`) alone in a process of its own
/// (this test binary again), and fails unless it passed: for what other tests running in this
/// process would spoil, like the CPU time of threads with a given name.
pub fn run_in_own_process(module: &str, name: &str) {
    let output = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", &test_path(module, name)])
        .args(["--ignored", "--nocapture", "--test-threads", "1"])
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success() && text.contains("1 passed"),
        "{text}"
    );
}
