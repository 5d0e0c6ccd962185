//! Every process the local platform starts (replicas and Traefik) leads a process group of its
//! own and dies with zdd: nothing it started outlives it, also on Ctrl-C, panic or SIGKILL.

use std::collections::BTreeSet;
use std::io;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::process::{Child, Command};

use crate::sync::lock;

/// Every process group the local platform started (replicas and Traefik), so that nothing outlives
/// it: [`ProcessGroups::kill_all`] is the last resort of `LocalPlatform`'s `Drop`.
#[derive(Default)]
pub struct ProcessGroups {
    inner: Mutex<GroupsInner>,
}

#[derive(Default)]
struct GroupsInner {
    /// Set once the platform ends: no new process may start after that.
    closed: bool,
    /// Group leaders' pids (= the groups' ids, as each child leads its own group).
    leaders: BTreeSet<i32>,
}

impl ProcessGroups {
    pub fn new() -> Self {
        Self::default()
    }

    /// Spawns `command` as the leader of a new process group. The child gets SIGKILL when zdd dies
    /// (`PR_SET_PDEATHSIG`), a backstop for zdd itself being SIGKILLed.
    pub fn spawn(&self, command: &mut Command) -> io::Result<Child> {
        let parent = std::process::id();
        command.process_group(0);
        // SAFETY: the closure only makes two syscalls (prctl, getppid) and allocates nothing, which
        // is what is allowed between fork and exec.
        unsafe {
            command.pre_exec(move || {
                nix::sys::prctl::set_pdeathsig(Signal::SIGKILL)
                    .map_err(|errno| io::Error::from_raw_os_error(errno as i32))?;
                // The parent may have died before prctl: then no signal would ever come.
                if nix::unistd::getppid().as_raw() as u32 != parent {
                    return Err(io::Error::from_raw_os_error(nix::libc::ESRCH));
                }
                Ok(())
            });
        }
        let mut inner = lock(&self.inner);
        if inner.closed {
            return Err(io::Error::other("the local platform is shutting down"));
        }
        let child = command.spawn()?;
        if let Some(pid) = child.id() {
            inner.leaders.insert(pid as i32);
        }
        Ok(child)
    }

    /// Sends `signal` to the group led by `pid`. A group that is already gone is not an error.
    pub fn signal(&self, pid: u32, signal: Signal) {
        let _ = killpg(Pid::from_raw(pid as i32), signal);
    }

    /// Forgets the group once its leader was reaped, after killing what is left of it (a replica's
    /// own children die with it, like a container's processes).
    pub fn release(&self, pid: u32) {
        let mut inner = lock(&self.inner);
        if inner.leaders.remove(&(pid as i32)) {
            let _ = killpg(Pid::from_raw(pid as i32), Signal::SIGKILL);
        }
    }

    /// SIGKILLs every group, refuses new processes from now on, and reaps the leaders (bounded).
    pub fn kill_all(&self) {
        let leaders: Vec<i32> = {
            let mut inner = lock(&self.inner);
            inner.closed = true;
            std::mem::take(&mut inner.leaders).into_iter().collect()
        };
        for pid in &leaders {
            let _ = killpg(Pid::from_raw(*pid), Signal::SIGKILL);
        }
        reap(&leaders, Duration::from_secs(2));
    }

    pub fn close(&self) {
        lock(&self.inner).closed = true;
    }

    pub fn is_empty(&self) -> bool {
        lock(&self.inner).leaders.is_empty()
    }
}

/// Waits (bounded) for killed children to be reaped, by us or by tokio's child reaper, so that no
/// zombie is left behind.
fn reap(pids: &[i32], bound: Duration) {
    use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
    let deadline = Instant::now() + bound;
    let mut pending: Vec<i32> = pids.to_vec();
    while !pending.is_empty() && Instant::now() < deadline {
        pending.retain(
            |pid| match waitpid(Pid::from_raw(*pid), Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) => true,
                // Reaped now, or already reaped elsewhere (ECHILD).
                _ => false,
            },
        );
        if !pending.is_empty() {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}
