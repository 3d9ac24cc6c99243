//! Crash points, for the tests that kill a fetcher at each step of a commit: with `CRASH_AT`
//! set (a comma list of [`Step`] names) and `CRASH_ONCE_DIR` (a directory), the process aborts
//! the first time it reaches each named step (a file per step in that directory remembers it),
//! exactly as a SIGKILL would leave it: nothing flushed, nothing cleaned up, the message left on
//! the queue. Unset (the default, and always in a deployment), a crash point costs a branch.

use std::path::PathBuf;

/// A step of a group's commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Pages fetched and processed, nothing written yet.
    BeforeWrite,
    /// Keys and quarantine rows committed, bronze (with the progress) not yet.
    BeforeBronze,
    /// Bronze committed, the task not yet reported done (its message stays on the queue).
    AfterCommit,
}

impl Step {
    fn name(self) -> &'static str {
        match self {
            Step::BeforeWrite => "before_write",
            Step::BeforeBronze => "before_bronze",
            Step::AfterCommit => "after_commit",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        [Step::BeforeWrite, Step::BeforeBronze, Step::AfterCommit].into_iter().find(|st| st.name() == s.trim())
    }
}

/// Where the process aborts (see the module's documentation).
#[derive(Debug, Clone, Default)]
pub struct CrashPoints {
    steps: Vec<Step>,
    once_dir: Option<PathBuf>,
}

impl CrashPoints {
    /// From `CRASH_AT` and `CRASH_ONCE_DIR`; an unknown step name is an error naming it.
    pub fn parse(at: Option<&str>, once_dir: Option<&str>) -> Result<Self, String> {
        let Some(at) = at.filter(|a| !a.trim().is_empty()) else { return Ok(Self::default()) };
        let steps = at.split(',').map(|s| Step::parse(s).ok_or_else(|| format!("CRASH_AT: {s:?} is not one of before_write, before_bronze, after_commit"))).collect::<Result<Vec<_>, _>>()?;
        let once_dir = once_dir.map(PathBuf::from).ok_or("CRASH_AT needs CRASH_ONCE_DIR (where each step's single crash is remembered)")?;
        Ok(Self { steps, once_dir: Some(once_dir) })
    }

    /// Aborts the process if `step` is a crash point not yet crashed at.
    pub fn hit(&self, step: Step) {
        let Some(dir) = self.once_dir.as_ref().filter(|_| self.steps.contains(&step)) else { return };
        if std::fs::OpenOptions::new().write(true).create_new(true).open(dir.join(step.name())).is_ok() {
            tracing::warn!(step = step.name(), "crash point: aborting");
            std::process::abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crash_points_parse_and_name_a_bad_step() {
        assert!(CrashPoints::parse(None, None).unwrap().steps.is_empty());
        let c = CrashPoints::parse(Some("before_write, after_commit"), Some("/tmp")).unwrap();
        assert_eq!(c.steps, [Step::BeforeWrite, Step::AfterCommit]);
        assert!(CrashPoints::parse(Some("mid_air"), Some("/tmp")).unwrap_err().contains("mid_air"));
        assert!(CrashPoints::parse(Some("after_commit"), None).unwrap_err().contains("CRASH_ONCE_DIR"));
        // Not a crash point: returns.
        CrashPoints::parse(Some("after_commit"), Some("/nonexistent")).unwrap().hit(Step::BeforeWrite);
    }
}
