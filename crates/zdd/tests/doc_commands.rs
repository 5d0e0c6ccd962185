//! Every command block of README.md and docs/ runs as written, or says why it cannot here.
//!
//! A command block is a ```sh or ```console block, or any block whose first line starts with `$ `.
//! One that cannot run on these machines (a cluster, a container engine, a transcript of one run)
//! starts with `# not run here: <why>` or follows a `<!-- not run here: <why> -->` line; every
//! other one is run here with bash from a scratch directory that sees the repository's
//! `examples/`, with this build's `zdd` and the project's `.venv` first on PATH:
//! - a script block (```sh) as a whole, with `set -euo pipefail`;
//! - a transcript (```console, or `$ ` lines) command by command, its `$ ` lines only: the
//!   transcript shows their exit statuses, so a failing one is fine, but a command that is not
//!   found (127), cannot run (126), is refused as bad usage (2) or hangs fails the block.
//!
//! Port 8080 in a block becomes a free port (the only change made to a block).
//!
//! A binary of its own: a block may run `zdd demo`, which wants the machine to itself.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use zdd_test_support::run::MARKER_VAR;

const NOT_RUN: &str = "not run here:";
/// The longest a block may take (the README's tour runs the whole demo).
const BLOCK_TIMEOUT: Duration = Duration::from_secs(600);

#[derive(Debug)]
struct Block {
    /// `page:line` of the opening fence.
    at: String,
    text: String,
    /// A transcript: `$ ` lines are commands, the rest their output.
    transcript: bool,
    /// Why it is not run, when it says so.
    not_run: Option<String>,
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn pages() -> Vec<PathBuf> {
    let mut pages = vec![repo().join("README.md")];
    let mut dirs = vec![repo().join("docs")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("docs/") {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "md") {
                pages.push(path);
            }
        }
    }
    pages.sort();
    pages
}

fn command_blocks(page: &Path) -> Vec<Block> {
    let text = std::fs::read_to_string(page).unwrap();
    let name = page
        .strip_prefix(repo())
        .unwrap_or(page)
        .display()
        .to_string();
    let lines: Vec<&str> = text.lines().collect();
    let mut blocks = Vec::new();
    let mut index = 0;
    while index < lines.len() {
        let Some(lang) = lines[index].trim_start().strip_prefix("```") else {
            index += 1;
            continue;
        };
        let start = index;
        let end = (start + 1..lines.len())
            .find(|i| lines[*i].trim_start().starts_with("```"))
            .unwrap_or_else(|| panic!("{name}:{}: unclosed block", start + 1));
        let body = &lines[start + 1..end];
        let transcript =
            lang.trim() == "console" || body.first().is_some_and(|line| line.starts_with("$ "));
        let is_command = transcript || matches!(lang.trim(), "sh" | "bash" | "shell");
        if is_command {
            let marked_before = start
                .checked_sub(1)
                .and_then(|before| lines[before].trim().strip_prefix("<!--"))
                .and_then(|comment| comment.trim().strip_prefix(NOT_RUN))
                .map(|why| why.trim_end_matches("-->").trim().to_string());
            let marked_inside = body
                .first()
                .and_then(|line| line.trim().strip_prefix("#"))
                .and_then(|comment| comment.trim().strip_prefix(NOT_RUN))
                .map(|why| why.trim().to_string());
            blocks.push(Block {
                at: format!("{name}:{}", start + 1),
                text: body.join("\n"),
                transcript,
                not_run: marked_before.or(marked_inside),
            });
        }
        index = end + 1;
    }
    blocks
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Runs `block` in a scratch directory; `Err` with its output when it fails or times out.
fn run(block: &Block) -> Result<(), String> {
    let dir = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(repo().join("examples"), dir.path().join("examples")).unwrap();
    let zdd = PathBuf::from(env!("CARGO_BIN_EXE_zdd"));
    let path = format!(
        "{}:{}:{}",
        zdd.parent().unwrap().display(),
        repo().join(".venv/bin").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let text = block.text.replace("8080", &free_port().to_string());
    let script = if block.transcript {
        // Each command on its own; the block fails on the exit statuses no transcript shows.
        let commands: String = text
            .lines()
            .filter_map(|line| line.strip_prefix("$ "))
            .map(|command| {
                format!(
                    "{command}\ncode=$?; case $code in 2|126|127) echo \"exit $code: {}\" >&2; exit $code;; esac\n",
                    command.replace('"', "'")
                )
            })
            .collect();
        format!("set -uo pipefail\n{commands}")
    } else {
        format!("set -euo pipefail\n{text}\n")
    };
    let marker = format!(
        "doc-commands-{}-{}",
        std::process::id(),
        dir.path().display()
    );
    let mut child = Command::new("bash")
        .arg("-c")
        .arg(&script)
        .current_dir(dir.path())
        .env("PATH", path)
        .env(MARKER_VAR, &marker)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::from(
            std::fs::File::create(dir.path().join("out.log")).unwrap(),
        ))
        .stderr(Stdio::from(
            std::fs::File::create(dir.path().join("err.log")).unwrap(),
        ))
        .process_group(0)
        .spawn()
        .expect("bash");
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if started.elapsed() > BLOCK_TIMEOUT {
            break None;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    // Whatever the block left in the background goes with its process group.
    let group = nix::unistd::Pid::from_raw(child.id() as i32);
    let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL);
    let _ = child.wait();
    let output = || {
        let read = |name: &str| std::fs::read_to_string(dir.path().join(name)).unwrap_or_default();
        format!(
            "--- stdout\n{}\n--- stderr\n{}",
            read("out.log"),
            read("err.log")
        )
    };
    match status {
        Some(status) if status.success() => Ok(()),
        Some(status) => Err(format!("{status}\n{}", output())),
        None => Err(format!(
            "still running after {BLOCK_TIMEOUT:?}\n{}",
            output()
        )),
    }
}

#[test]
fn every_command_block_runs_or_says_why_not() {
    let blocks: Vec<Block> = pages()
        .iter()
        .flat_map(|page| command_blocks(page))
        .collect();
    assert!(
        blocks.iter().any(|b| b.at.starts_with("README.md")),
        "no command block found in README.md: {blocks:#?}"
    );
    for block in blocks.iter().filter(|b| b.not_run.is_some()) {
        let why = block.not_run.as_deref().unwrap();
        assert!(
            why.len() > 10,
            "{}: say why it is not run ({why:?})",
            block.at
        );
    }
    let runnable: Vec<&Block> = blocks.iter().filter(|b| b.not_run.is_none()).collect();
    assert!(!runnable.is_empty(), "nothing runnable: {blocks:#?}");
    let failures: Vec<String> = runnable
        .iter()
        .filter_map(|block| run(block).err().map(|err| format!("{}:\n{err}", block.at)))
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
