//! Reaching the daemon: the connection flags, one API call, and what a failed call means for the
//! exit status. Every `sealctl` command that goes through the daemon's API uses these.
//!
//! Exit status: 0 done; 1 the daemon refused (a 4xx answer: the code is printed); 2 bad command line
//! or an unreadable local file; 3 the daemon is unreachable or failed (5xx).

use base64::Engine as _;
use clap::Args;
use serde_json::{json, Value};
use std::path::PathBuf;

/// Where the daemon is and who this is: mTLS with an account's certificate and key. Every flag has
/// its `SEALCTL_*` variable.
#[derive(Args, Clone, Debug)]
pub struct Endpoint {
    /// The daemon, e.g. https://seal.example.gov.cn:8443.
    #[arg(long, env = "SEALCTL_SERVER", global = true)]
    pub server: Option<String>,
    /// CA bundle that the server certificate chains to (PEM).
    #[arg(long, env = "SEALCTL_CA", global = true)]
    ca: Option<PathBuf>,
    /// This account's client certificate (PEM).
    #[arg(long, env = "SEALCTL_CERT", global = true)]
    cert: Option<PathBuf>,
    /// Its private key (PEM).
    #[arg(long, env = "SEALCTL_KEY", global = true)]
    key: Option<PathBuf>,
    /// Or the certificate and key in one PKCS#12 file (instead of --cert and --key).
    #[arg(long, env = "SEALCTL_P12", global = true)]
    p12: Option<PathBuf>,
    /// File holding the PKCS#12 password (default: none).
    #[arg(long, env = "SEALCTL_P12_PASSWORD_FILE", global = true)]
    p12_password_file: Option<PathBuf>,
    /// Seconds to wait for the daemon at each step: to connect, for its answer, and for each part of
    /// a long answer such as a backup (then exit status 3). A long download goes on while it moves.
    #[arg(long = "timeout", env = "SEALCTL_TIMEOUT", global = true, default_value_t = 30)]
    timeout_s: u64,
}

/// How to reach the daemon, and how to print its answers.
#[derive(Args, Clone, Debug)]
pub struct Conn {
    /// The daemon and this account.
    #[command(flatten)]
    pub endpoint: Endpoint,
    /// Print the API's JSON instead of a table.
    #[arg(long, global = true)]
    pub json: bool,
}

/// A failed command, with its exit status.
pub struct Failure {
    /// 1 refused, 2 local input, 3 unreachable or server failure.
    pub status: u8,
    /// The message (with the API's code).
    pub message: String,
}

/// A failure on this side: bad input or an unreadable local file (exit status 2).
pub fn local(e: impl std::fmt::Display) -> Failure {
    Failure { status: 2, message: e.to_string() }
}

/// Where a `--server` URL (`https://host[:port][/...]`) points: the socket address, and the host
/// name the server certificate must carry. A name that does not resolve fails with status 3.
pub fn resolve(url: &str) -> Result<(std::net::SocketAddr, &str), Failure> {
    let rest = url.strip_prefix("https://").ok_or_else(|| local("--server must be an https:// URL"))?;
    let hostport = rest.split('/').next().unwrap_or(rest);
    let host = hostport.rsplit_once(':').map(|(h, _)| h).unwrap_or(hostport).trim_matches(['[', ']']);
    let with_port = if hostport.contains(':') { hostport.to_string() } else { format!("{hostport}:443") };
    use std::net::ToSocketAddrs as _;
    let addr = with_port
        .to_socket_addrs()
        .map_err(|e| Failure { status: 3, message: format!("{with_port}: {e}") })?
        .next()
        .ok_or_else(|| local("--server resolves to no address"))?;
    Ok((addr, host))
}

impl Endpoint {
    fn client(&self) -> Result<seald::client::Client, Failure> {
        let url = self.server.as_deref().ok_or_else(|| local("--server (or SEALCTL_SERVER) is needed"))?;
        let (addr, host) = resolve(url)?;
        let need = |p: &Option<PathBuf>, what: &str| {
            p.clone().ok_or_else(|| local(format!("--{what} (or SEALCTL_{}) is needed", what.to_uppercase())))
        };
        if let Some(p12) = &self.p12 {
            let password = match &self.p12_password_file {
                Some(f) => zeroize::Zeroizing::new(
                    String::from_utf8_lossy(&read(f)?).trim_end_matches(['\r', '\n']).to_string(),
                ),
                None => zeroize::Zeroizing::new(String::new()),
            };
            return seald::client::Client::with_p12(addr, host, &need(&self.ca, "ca")?, p12, &password).map_err(local);
        }
        seald::client::Client::new(
            addr,
            host,
            &need(&self.ca, "ca")?,
            &need(&self.cert, "cert")?,
            &need(&self.key, "key")?,
        )
        .map_err(local)
    }

    /// Sends one request to the daemon: the HTTP status and the body. Gives up after the timeout
    /// (exit status 3), and says in words why a TLS connection was refused.
    pub fn send(&self, method: &str, path: &str, body: Option<&Value>) -> Result<(u16, Vec<u8>), Failure> {
        let bytes = body.map(|b| serde_json::to_vec(b).unwrap_or_default()).unwrap_or_default();
        self.send_bytes(method, path, "application/json", bytes)
    }

    /// As [`Endpoint::send`], with a body of `content_type` (a document).
    pub fn send_bytes(
        &self,
        method: &str,
        path: &str,
        content_type: &str,
        bytes: Vec<u8>,
    ) -> Result<(u16, Vec<u8>), Failure> {
        self.send_watched(method, path, content_type, bytes, None)
    }

    /// One request; with a `label`, the answer's progress is shown on a terminal (standard error)
    /// as it arrives. Each step must move within the timeout: a long download goes on as long as it
    /// moves, a daemon that stops answering is given up on (exit status 3).
    pub fn send_watched(
        &self,
        method: &str,
        path: &str,
        content_type: &str,
        bytes: Vec<u8>,
        label: Option<&str>,
    ) -> Result<(u16, Vec<u8>), Failure> {
        let client = self.client()?;
        let server = self.server.as_deref().unwrap_or_default();
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(local)?;
        let idle = std::time::Duration::from_secs(self.timeout_s.max(1));
        let mut shown = label.map(crate::output::Progress::new);
        let mut progress = |received: u64, total: Option<u64>| {
            if let Some(p) = shown.as_mut() {
                p.update(received, total);
            }
        };
        let answer = rt.block_on(client.request_watched(method, path, content_type, bytes, Some(idle), &mut progress));
        if let Some(p) = shown.as_mut() {
            p.finish();
        }
        answer.map_err(|e| Failure { status: 3, message: format!("{server}: {}", explain(&e.to_string())) })
    }
}

impl Endpoint {
    /// A GET whose answer goes to `sink` part by part with its status, as it arrives (a stop asked by
    /// `sink` ends the download). Each part must come within the timeout (exit status 3).
    pub fn stream(
        &self,
        path: &str,
        mut sink: impl FnMut(u16, &[u8]) -> Result<(), String> + Send,
    ) -> Result<u16, Failure> {
        let client = self.client()?;
        let server = self.server.as_deref().unwrap_or_default();
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(local)?;
        let idle = std::time::Duration::from_secs(self.timeout_s.max(1));
        let answer = rt.block_on(client.request_streamed(
            "GET",
            path,
            "application/json",
            Vec::new(),
            Some(idle),
            &mut |status, _, chunk| sink(status, chunk).map_err(seald::client::ClientError),
        ));
        answer.map_err(|e| Failure { status: 3, message: format!("{server}: {}", explain(&e.to_string())) })
    }
}

/// A connection failure in words an operator can act on.
pub fn explain(e: &str) -> String {
    let why = if e.contains("CertificateRevoked") {
        "the daemon refused this client certificate: it is revoked"
    } else if e.contains("alert: CertificateExpired") {
        "the daemon refused this client certificate: it has expired or is not valid yet"
    } else if e.contains("alert: UnknownCA")
        || e.contains("alert: BadCertificate")
        || e.contains("alert: CertificateUnknown")
    {
        "the daemon refused this client certificate: it does not chain to the daemon's client CA"
    } else if e.contains("alert: CertificateRequired") || e.contains("alert: HandshakeFailure") {
        "the daemon wants a client certificate (--cert and --key, or --p12)"
    } else if e.contains("UnknownIssuer") {
        "the daemon's certificate does not chain to the CA given with --ca"
    } else if e.contains("NotValidForName") {
        "the daemon's certificate is not for this host name (use the name in its certificate in --server)"
    } else if e.contains("invalid peer certificate: Expired") {
        "the daemon's certificate has expired"
    } else if e.contains("Connection refused") {
        "nothing listens there (is seald running?)"
    } else {
        return e.to_string();
    };
    format!("{why} ({e})")
}

/// Sends one request to the daemon: the HTTP status and the body.
fn send(c: &Conn, method: &str, path: &str, body: Option<&Value>) -> Result<(u16, Vec<u8>), Failure> {
    c.endpoint.send(method, path, body)
}

/// The daemon's 4xx (status 1) or 5xx (status 3) answer `v` as a failure: the API's error code and
/// message, then `detail`.
pub fn refused(status: u16, v: &Value, detail: &str) -> Failure {
    let code = v["error"]["code"].as_str().unwrap_or("error");
    let message = v["error"]["message"].as_str().unwrap_or_default();
    Failure { status: if status >= 500 { 3 } else { 1 }, message: format!("[{code}] HTTP {status}: {message}{detail}") }
}

/// One API call: the JSON answer, or a failure with the right exit status.
pub fn call(c: &Conn, method: &str, path: &str, body: Option<Value>) -> Result<Value, Failure> {
    let (status, bytes) = send(c, method, path, body.as_ref())?;
    let v: Value = serde_json::from_slice(&bytes).unwrap_or_else(|_| json!({ "raw": String::from_utf8_lossy(&bytes) }));
    if status >= 400 {
        let state = v["error"]["state"].as_str().map(|s| format!(" (state: {s})")).unwrap_or_default();
        return Err(refused(status, &v, &state));
    }
    Ok(v)
}

/// A GET whose answer is bytes, not JSON; its progress shown under `label` on a terminal.
pub fn call_bytes(c: &Conn, path: &str, label: &str) -> Result<Vec<u8>, Failure> {
    let (status, bytes) = c.endpoint.send_watched("GET", path, "application/json", Vec::new(), Some(label))?;
    if status >= 400 {
        return Err(refused(status, &serde_json::from_slice(&bytes).unwrap_or_default(), ""));
    }
    Ok(bytes)
}

/// The paging flags every list command takes.
#[derive(Args, Clone, Debug, Default)]
pub struct PageArgs {
    /// Entries per page (1 to 1000; the daemon's default is 100).
    #[arg(long)]
    pub limit: Option<u32>,
    /// Start after this cursor (a page's next_cursor).
    #[arg(long)]
    pub cursor: Option<String>,
    /// Follow the cursors to the last page.
    #[arg(long)]
    pub all: bool,
}

/// A paged list at `path`: one page (from `--cursor`), or with `--all` every page, following each
/// page's `next_cursor` (progress on standard error on a terminal). The answer has the list's
/// `field` with every record, and the last `next_cursor` when pages are left.
pub fn pages(
    c: &Conn,
    path: &str,
    params: &[(&str, &Option<String>)],
    page: &PageArgs,
    field: &str,
) -> Result<Value, Failure> {
    use std::io::IsTerminal as _;
    let (mut cursor, all) = (page.cursor.clone(), page.all);
    let limit = page.limit.map(|l| l.to_string());
    let mut records = Vec::new();
    let started = std::time::Instant::now();
    loop {
        let mut pairs = params.to_vec();
        pairs.push(("limit", &limit));
        pairs.push(("cursor", &cursor));
        let v = call(c, "GET", &format!("{path}{}", query(&pairs)), None)?;
        records.extend(v[field].as_array().cloned().unwrap_or_default());
        let next = v["next_cursor"].as_str().map(String::from);
        if all && std::io::stderr().is_terminal() {
            eprint!(
                "\r{} records, {:.0}/s",
                records.len(),
                records.len() as f64 / started.elapsed().as_secs_f64().max(1e-3)
            );
        }
        match next {
            Some(n) if all => cursor = Some(n),
            next => {
                if all && std::io::stderr().is_terminal() {
                    eprintln!();
                }
                let mut out = serde_json::Map::new();
                let _ = out.insert(field.to_string(), Value::Array(records));
                if let Some(n) = next {
                    let _ = out.insert("next_cursor".into(), Value::String(n));
                }
                return Ok(Value::Object(out));
            }
        }
    }
}

/// A URL query string (`?k=v&...`) of the pairs that have a value; empty when none has.
pub fn query(pairs: &[(&str, &Option<String>)]) -> String {
    let q: Vec<String> = pairs.iter().filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={}", escape(v)))).collect();
    if q.is_empty() {
        String::new()
    } else {
        format!("?{}", q.join("&"))
    }
}

/// `v` percent-encoded for a query string or a path segment (every byte but unreserved ASCII).
pub fn escape(v: &str) -> String {
    v.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A local file's bytes (unreadable: status 2).
pub fn read(path: &PathBuf) -> Result<Vec<u8>, Failure> {
    std::fs::read(path).map_err(|e| local(format!("{}: {e}", path.display())))
}

/// Standard base64, as the API takes bytes.
/// A request body of the API contract, as JSON.
pub fn body<T: serde::Serialize>(b: &T) -> Value {
    serde_json::to_value(b).unwrap_or(Value::Null)
}

/// Standard base64.
pub fn b64(b: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(b)
}
