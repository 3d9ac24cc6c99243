//! This process's resident memory per step, from `/proc/self/status`: the batch benchmark runs
//! each step in-process, beside the simulator's store, so a step's own memory is its peak minus
//! what was resident when it started. The peak is reset before each step by writing `5` to
//! `/proc/self/clear_refs` (Linux ≥ 4.0: resets `VmHWM` to the current RSS).

/// A `kB` field of `/proc/self/status`, in MB.
fn status_mb(field: &str) -> Option<f64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with(field))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// Where one step's memory went.
#[derive(Debug, Clone, Copy)]
pub struct Step {
    /// Resident when the step started (MB).
    pub before: f64,
    /// The highest resident size during the step (MB).
    pub peak: f64,
}

impl Step {
    /// The step's own peak above what was resident before it (MB).
    pub fn own(&self) -> f64 {
        (self.peak - self.before).max(0.0)
    }
}

impl std::fmt::Display for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:.0} MB (peak {:.0} over {:.0} resident before)", self.own(), self.peak, self.before)
    }
}

/// Starts measuring a step: resets the peak to the current resident size.
pub fn start() -> f64 {
    // Without the reset (an old kernel, a sandbox refusing the write) the peak is the process's
    // so far: reported as it is, larger, never smaller.
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    status_mb("VmRSS:").unwrap_or(f64::NAN)
}

/// Ends a step started at `before` resident MB.
pub fn end(before: f64) -> Step {
    Step { before, peak: status_mb("VmHWM:").unwrap_or(f64::NAN) }
}
