//! systemd's readiness protocol (sd_notify), for `Type=notify` units: READY=1 once the token and
//! the store are up and the listener serves, WATCHDOG=1 while the token answers, STOPPING=1 at
//! shutdown. A datagram to `$NOTIFY_SOCKET`; without it (not under systemd) nothing happens.

use std::os::unix::net::UnixDatagram;
use std::time::Duration;

/// Sends `state` to systemd; `false` when not run by systemd or the send failed.
pub fn notify(state: &str) -> bool {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else { return false };
    let Ok(sock) = UnixDatagram::unbound() else { return false };
    let bytes = std::os::unix::ffi::OsStrExt::as_bytes(path.as_os_str());
    let sent = if let Some(name) = bytes.strip_prefix(b"@") {
        use std::os::linux::net::SocketAddrExt as _;
        std::os::unix::net::SocketAddr::from_abstract_name(name).and_then(|a| sock.send_to_addr(state.as_bytes(), &a))
    } else {
        sock.send_to(state.as_bytes(), &path)
    };
    sent.is_ok()
}

/// How often to feed the watchdog: half of `$WATCHDOG_USEC`, when it is meant for this process.
pub fn watchdog_interval() -> Option<Duration> {
    if let Ok(pid) = std::env::var("WATCHDOG_PID") {
        if pid.trim() != std::process::id().to_string() {
            return None;
        }
    }
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.trim().parse().ok()?;
    (usec > 0).then(|| Duration::from_micros(usec / 2))
}
