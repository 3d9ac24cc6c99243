//! CPU seconds of processes, from `/proc/<pid>/stat`: the benchmarks share two cores between
//! our functions, the simulator and LocalStack, and print where the machine went.

use std::collections::HashMap;

/// Clock ticks per second of `/proc/*/stat` times: `USER_HZ`, fixed at 100 by the Linux ABI on
/// the architectures we run (x86_64, aarch64) whatever the kernel's `HZ`.
const USER_HZ: f64 = 100.0;

/// (ppid, own user + system seconds, reaped children's seconds) of `/proc/<pid>/stat`.
fn stat(pid: &str) -> Option<(u32, f64, f64)> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces: the fields after it start past its ')'.
    let rest = &s[s.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // From field 3: state(0) ppid(1) ... utime(11) stime(12) cutime(13) cstime(14).
    let n = |i: usize| f.get(i).and_then(|x| x.parse::<f64>().ok());
    Some((f.get(1)?.parse().ok()?, (n(11)? + n(12)?) / USER_HZ, (n(13)? + n(14)?) / USER_HZ))
}

/// User + system CPU seconds of process `pid` (`"self"` for this one), its threads included.
pub fn of_pid(pid: &str) -> Option<f64> {
    stat(pid).map(|(_, own, _)| own)
}

/// CPU seconds of `pid` and every live descendant of it, plus what they reaped.
pub fn of_tree(pid: u32) -> Option<f64> {
    let mut parent: HashMap<u32, u32> = HashMap::new();
    let mut secs: HashMap<u32, f64> = HashMap::new();
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(p) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else { continue };
        if let Some((ppid, own, children)) = stat(&p.to_string()) {
            parent.insert(p, ppid);
            secs.insert(p, own + children);
        }
    }
    secs.get(&pid)?;
    let in_tree = |mut p: u32| loop {
        if p == pid {
            return true;
        }
        match parent.get(&p) {
            Some(&q) if q != 0 && q != p => p = q,
            _ => return false,
        }
    };
    Some(secs.iter().filter(|(p, _)| in_tree(**p)).map(|(_, s)| s).sum())
}

/// LocalStack's process, as `localstack/start.sh` recorded it.
pub fn localstack_pid() -> Option<u32> {
    std::fs::read_to_string(".local/localstack.pid").ok()?.trim().parse().ok()
}

/// CPU seconds so far of this process, its tree and LocalStack's: two of them bracket a run.
#[derive(Debug, Clone, Copy)]
pub struct Snapshot {
    own: f64,
    tree: f64,
    localstack: f64,
}

/// Where a run's CPU seconds went: the functions (this process's children), this process (the
/// simulator and the runner) and LocalStack.
#[derive(Debug, Clone, Copy)]
pub struct Split {
    pub functions: f64,
    pub own: f64,
    pub localstack: f64,
}

impl Snapshot {
    /// Now (`NaN` for what `/proc` does not show).
    pub fn now() -> Self {
        let me = std::process::id();
        Self { own: of_pid("self").unwrap_or(f64::NAN), tree: of_tree(me).unwrap_or(f64::NAN), localstack: localstack_pid().and_then(of_tree).unwrap_or(f64::NAN) }
    }

    /// What each part used since `self`.
    pub fn split(&self) -> Split {
        let now = Self::now();
        let own = now.own - self.own;
        Split { functions: now.tree - self.tree - own, own, localstack: now.localstack - self.localstack }
    }
}
