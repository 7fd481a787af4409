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

/// Tells systemd that a long start goes on (a replay of many records): asks for a minute more
/// before the start times out, and says where it is. At most once every 10 s after `last` (start
/// it at the work's beginning: a short start says nothing).
pub fn starting(last: &mut Option<std::time::Instant>, status: impl FnOnce() -> String) {
    if last.is_some_and(|t| t.elapsed() < Duration::from_secs(10)) {
        return;
    }
    *last = Some(std::time::Instant::now());
    let _ = notify(&format!("EXTEND_TIMEOUT_USEC=60000000\nSTATUS={}", status()));
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

#[cfg(test)]
mod tests {
    #[test]
    fn a_long_start_asks_systemd_for_more_time_every_ten_seconds_and_a_short_one_says_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let sock = std::os::unix::net::UnixDatagram::bind(&path).unwrap();
        sock.set_nonblocking(true).unwrap();
        std::env::set_var("NOTIFY_SOCKET", &path);
        let mut buf = [0u8; 256];
        let mut told = Some(std::time::Instant::now());
        super::starting(&mut told, || "early".into());
        assert!(sock.recv(&mut buf).is_err(), "nothing within the first 10 s");
        told = Some(std::time::Instant::now() - std::time::Duration::from_secs(11));
        super::starting(&mut told, || "1000 records read".into());
        let n = sock.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"EXTEND_TIMEOUT_USEC=60000000\nSTATUS=1000 records read");
        super::starting(&mut told, || "again".into());
        assert!(sock.recv(&mut buf).is_err(), "at most once every 10 s");
        std::env::remove_var("NOTIFY_SOCKET");
    }
}
