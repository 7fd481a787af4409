//! Whether the system clock can be trusted to stamp time: the kernel's own account of its
//! synchronisation (`adjtimex(2)`: the clock state is not `TIME_ERROR` and `STA_UNSYNC` is clear,
//! which NTP and PTP daemons maintain), or the operator's word that it is disciplined by other means.

use serde::Deserialize;

/// Where the answer comes from (`[tsa] clock`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClockSource {
    /// Ask the kernel (`adjtimex`): synchronised only while a time daemon keeps it so.
    #[default]
    Kernel,
    /// Take the clock as synchronised: for appliances whose clock is disciplined by means the
    /// kernel does not report (a hardware time source), and for development machines.
    Trusted,
}

/// The clock's state.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
pub struct ClockState {
    /// Whether time-stamps may be issued.
    pub synchronised: bool,
    /// The kernel's estimate of the clock's maximum error, microseconds (`kernel` source only).
    pub max_error_us: Option<i64>,
    /// Where the answer came from and what it said.
    pub detail: String,
}

/// What `adjtimex` reports: (the clock state it returned, its status bits, maxerror µs).
pub type KernelReport = (i32, i32, i64);

/// The kernel's report, read without changing anything.
#[allow(unsafe_code)]
pub fn kernel_report() -> Result<KernelReport, std::io::Error> {
    // SAFETY: a zeroed timex with modes 0 only reads the kernel's state into it.
    let mut t: libc::timex = unsafe { std::mem::zeroed() };
    let state = unsafe { libc::adjtimex(&mut t) };
    if state < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok((state, t.status, t.maxerror as i64))
}

/// Judges a kernel report: synchronised unless the state is `TIME_ERROR` or `STA_UNSYNC` is set.
pub fn judge(report: KernelReport) -> ClockState {
    let (state, status, max_error) = report;
    let synchronised = state != libc::TIME_ERROR && status & libc::STA_UNSYNC == 0;
    let detail = if synchronised {
        format!("the kernel reports the clock synchronised (maximum error {max_error} µs)")
    } else {
        "the kernel reports the clock not synchronised (adjtimex: no time daemon keeps it in step): \
         start chrony or systemd-timesyncd, or set [tsa] clock = \"trusted\" if it is disciplined otherwise"
            .to_string()
    };
    ClockState { synchronised, max_error_us: Some(max_error), detail }
}

/// The clock's state now.
pub fn state(source: ClockSource) -> ClockState {
    match source {
        ClockSource::Trusted => ClockState {
            synchronised: true,
            max_error_us: None,
            detail: "taken as synchronised ([tsa] clock = \"trusted\")".to_string(),
        },
        ClockSource::Kernel => match kernel_report() {
            Ok(r) => judge(r),
            Err(e) => ClockState { synchronised: false, max_error_us: None, detail: format!("adjtimex failed: {e}") },
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kernel_report_is_judged_by_its_state_and_unsync_bit() {
        assert!(judge((libc::TIME_OK, 0, 1000)).synchronised);
        assert!(!judge((libc::TIME_ERROR, 0, 1000)).synchronised);
        assert!(!judge((libc::TIME_OK, libc::STA_UNSYNC, 1000)).synchronised);
        assert!(judge((libc::TIME_INS, libc::STA_PLL, 5)).synchronised, "a leap second pending is still in step");
        assert!(state(ClockSource::Trusted).synchronised);
        // The kernel answers here, whatever it says.
        assert!(kernel_report().is_ok());
    }
}
