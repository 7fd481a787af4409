//! Fault injection for tests, driven by the file named by the `fault` setting (`SOFTTOKEN_FAULT`):
//! `removed` (every call answers CKR_DEVICE_REMOVED until the file changes), `slow MS` (added latency
//! per sign), `sessions N` (cap on open sessions), `corrupt` (flip a bit of every signature, to show
//! that seald refuses a signature that does not verify), `sign_fails` (C_Sign answers
//! CKR_FUNCTION_FAILED while every other call works, as a device with a broken signing engine
//! does). Lines may be combined. Re-read at most every
//! 100 ms.

use std::path::PathBuf;
use std::time::{Duration, Instant};

/// The faults in force.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Faults {
    /// The device is gone.
    pub removed: bool,
    /// Added latency per sign.
    pub slow: Option<Duration>,
    /// Session cap.
    pub sessions: Option<usize>,
    /// Corrupt signatures.
    pub corrupt: bool,
    /// C_Sign fails.
    pub sign_fails: bool,
}

impl Faults {
    fn parse(text: &str) -> Faults {
        let mut f = Faults::default();
        for line in text.lines() {
            let mut words = line.split_whitespace();
            match (words.next(), words.next().and_then(|w| w.parse::<u64>().ok())) {
                (Some("removed"), _) => f.removed = true,
                (Some("slow"), Some(ms)) => f.slow = Some(Duration::from_millis(ms)),
                (Some("sessions"), Some(n)) => f.sessions = Some(n as usize),
                (Some("corrupt"), _) => f.corrupt = true,
                (Some("sign_fails"), _) => f.sign_fails = true,
                _ => {}
            }
        }
        f
    }
}

/// Reads the control file, at most every 100 ms.
#[derive(Debug)]
pub struct FaultControl {
    path: Option<PathBuf>,
    checked: Option<Instant>,
    current: Faults,
}

impl FaultControl {
    /// Reading `path` (the `fault` setting), if any.
    pub fn new(path: Option<PathBuf>) -> Self {
        FaultControl { path, checked: None, current: Faults::default() }
    }

    /// The faults now.
    pub fn current(&mut self) -> &Faults {
        let Some(path) = &self.path else {
            return &self.current;
        };
        if self.checked.is_none_or(|t| t.elapsed() >= Duration::from_millis(100)) {
            self.checked = Some(Instant::now());
            self.current = std::fs::read_to_string(path).map(|t| Faults::parse(&t)).unwrap_or_default();
        }
        &self.current
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_each_directive() {
        let f = Faults::parse("removed\nslow 25\nsessions 3\ncorrupt\nnonsense 1\n");
        assert!(f.removed && f.corrupt);
        assert_eq!(f.slow, Some(Duration::from_millis(25)));
        assert_eq!(f.sessions, Some(3));
        assert_eq!(Faults::parse(""), Faults::default());
    }
}
