//! The load tool: drives the real daemon's /v1/sign (with a plain key and with a seal) and /v1/verify
//! over mutual TLS with keep-alive and N concurrent connections; reports throughput, p50/p99 and the
//! daemon's CPU seconds per request (from /proc/PID/stat over the run), next to the raw token sign
//! rate (cryptoki C_Sign loop on softtoken) and the raw host verify rate (CPU seconds per operation).
//!
//!   cargo build --release -p seald -p softtoken && cargo bench --bench load -- [CONNECTIONS] [SECONDS] [ROUNDS]
//!
//! The daemon is `seald dev` on 127.0.0.1 (any free port) in a temporary directory. The load
//! generator shares the machine's cores, so judge by CPU per request, not by wall time alone. The
//! machine's speed drifts by tens of percent within seconds (a shared VM), so each load phase is
//! bracketed by raw measurements just before and just after it, ratios are taken against their mean,
//! and the summary gives the median over rounds.
//!
//! Raw verify is RustCrypto's `verify_prehash`, the library routine (as issue 3's raw sign is
//! RustCrypto's sign loop). seald verifies a token key with a precomputed table (`crypto::ecmul`),
//! several times faster, and the tool prints that rate and the ratio to it too.
//!
//! Targets: daemon CPU per signed request <= 1.4x the raw token sign's CPU per signature; per verified
//! request <= 1.25x the raw verify; throughput with 64 connections >= 60% of the raw rates; p99 <= 10 ms.
//!
//! `cargo bench --bench load -- time [CONNECTIONS] [SECONDS] [ROUNDS]` drives `GET
//! /v1/seal-status/{id}?format=der` (signed answers) and `POST /v1/tsa` (RFC 3161 time-stamps) and
//! reports each rate next to the raw token signature rate in the same round (target for the status
//! service: at least 5x, which only pre-signed answers reach).
//!
//! `cargo bench --bench load -- ofd [ROUNDS]` seals a 1 MiB, 10-page OFD through
//! `POST /v1/seals/{id}/seal-ofd` and verifies the sealed document through `POST /v1/verify/ofd`, on one
//! keep-alive connection, in slices of 5 documents each next to 5 raw SM3 passes (the machine's speed
//! drifts within a second), and reports the daemon's CPU per document next to, in the same round, the
//! raw cost of SM3 over the package's bytes plus one raw token signature plus one host verification
//! (sealing; target <= 3x), and of SM3 over the package plus the signature's two host verifications
//! (the signer's and the seal maker's; target <= 2x).
//!
//! `cargo bench --bench load -- cluster [CONNECTIONS] [SECONDS] [ROUNDS]` compares, in the same run and
//! under the same load (signing with the seal), one node on PostgreSQL (a server on this machine,
//! `seald migrate`d from the `seald dev` appliance) with the embedded appliance itself: the daemon's
//! CPU per signed request (target <= 1.3x embedded), throughput (target >= 70% of embedded), the
//! database's own CPU per request, and round trips to the database per signature (from
//! `seald_db_round_trips_total`); then two nodes sharing the database against one.
//!
//! `cargo bench --bench load -- history [RECORDS] [SEALS]` signs on an empty store, stops the daemon,
//! writes a history of RECORDS usage records over SEALS seals through the real journal and store
//! (`seald dev-history`), starts `seald run` on it and reports: time to ready (and the journal's
//! replay speed when not in step), usage pages of a busy seal (100 records, newest and oldest first,
//! following cursors deep into the history: p50/p99), the whole audit export (throughput next to
//! `cat`-style reading of the same segment files in the same run, and the daemon's peak RSS during
//! it), and signing again, each signing phase as a ratio to the raw token sign rate around it.

// The cluster bench's PostgreSQL: the same server the tests start (initdb in /tmp, a Unix socket).
#[path = "../tests/common/mod.rs"]
mod common;

use base64::Engine as _;
use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::mechanism::vendor_defined::VendorDefinedMechanism;
use cryptoki::mechanism::{Mechanism, MechanismType};
use cryptoki::object::{Attribute, ObjectClass};
use cryptoki::session::UserType;
use cryptoki::types::AuthPin;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use seald::crypto;
use std::io::BufRead as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn ticks_per_second() -> f64 {
    // getconf CLK_TCK; 100 on every Linux this runs on, but ask.
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

/// utime + stime of a process, seconds.
fn cpu_seconds(pid: &str) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 =
        f.get(11).and_then(|u| u.parse().ok()).unwrap_or(0.0) + f.get(12).and_then(|s| s.parse().ok()).unwrap_or(0.0);
    ticks / ticks_per_second()
}

struct Dev {
    child: std::process::Child,
    dir: PathBuf,
    port: u16,
    /// The development seal `seald dev` made and granted to the app.
    seal: String,
}

impl Drop for Dev {
    fn drop(&mut self) {
        let _ = std::process::Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        let _ = self.child.wait();
    }
}

fn start_dev(tmp: &Path) -> Dev {
    let exe = std::env::current_exe().unwrap();
    let bin = exe.parent().and_then(|d| d.parent()).unwrap().join("seald");
    assert!(bin.exists(), "build first: cargo build --release -p seald -p softtoken ({})", bin.display());
    let dir = tmp.join("dev");
    let mut child = std::process::Command::new(&bin)
        .args(["dev", "--dir", dir.to_str().unwrap(), "--listen", "127.0.0.1:0"])
        .env("SEALD_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let (mut port, mut seal) = (0, String::new());
    for line in lines.by_ref().map_while(Result::ok) {
        if let Some(rest) = line.split("sealed it with seal ").nth(1) {
            seal = rest.split_whitespace().next().unwrap_or_default().to_string();
        }
        if let Some(rest) = line.split("serving at https://127.0.0.1:").nth(1) {
            port = rest.split_whitespace().next().unwrap().parse().unwrap();
            break;
        }
    }
    // Keep reading: a closed pipe would make the daemon's next line (its curl hints) fail.
    drop(std::thread::spawn(move || lines.for_each(drop)));
    assert!(port > 0 && !seal.is_empty(), "seald dev did not start (port {port}, seal '{seal}')");
    Dev { child, dir, port, seal }
}

/// Raw token signing: a cryptoki C_Sign loop with softtoken's SM2 sign-e mechanism, in this process.
struct RawSigner {
    _ctx: Pkcs11,
    session: cryptoki::session::Session,
    key: cryptoki::object::ObjectHandle,
    mech: Mechanism<'static>,
}

impl RawSigner {
    fn new(dev: &Dev) -> Self {
        std::env::set_var("SOFTTOKEN_DIR", dev.dir.join("softtoken"));
        let exe = std::env::current_exe().unwrap();
        let module = exe.parent().and_then(|d| d.parent()).unwrap().join("libsofttoken.so");
        let ctx = Pkcs11::new(module).unwrap();
        ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)).unwrap();
        let slot = ctx.get_slots_with_token().unwrap()[0];
        let session = ctx.open_ro_session(slot).unwrap();
        let pin = std::fs::read_to_string(dev.dir.join("token.pin")).unwrap();
        session.login(UserType::User, Some(&AuthPin::from(pin))).unwrap();
        let label = b"dev-sm2".to_vec();
        let key =
            session.find_objects(&[Attribute::Class(ObjectClass::PRIVATE_KEY), Attribute::Label(label)]).unwrap()[0];
        let mech = Mechanism::VendorDefined(VendorDefinedMechanism::new::<()>(
            MechanismType::new_vendor_defined(0x8000_5302).unwrap(),
            None,
        ));
        RawSigner { _ctx: ctx, session, key, mech }
    }

    /// (CPU seconds per signature, signatures per second).
    fn measure(&self, ops: u32) -> (f64, f64) {
        let cpu0 = cpu_seconds("self");
        let t = Instant::now();
        for i in 0..ops {
            let _ = self.session.sign(&self.mech, self.key, &crypto::sm3(&i.to_be_bytes())).unwrap();
        }
        let wall = t.elapsed().as_secs_f64();
        ((cpu_seconds("self") - cpu0) / ops as f64, ops as f64 / wall)
    }
}

/// Host verification of SM2 signatures, two ways: RustCrypto's `verify_prehash` (the raw library
/// routine, what the targets are stated against) and seald's own path (`crypto::sm2::verify_e` with
/// the key's precomputed table, as the daemon verifies a token key).
struct RawVerifier {
    sk: sm2::dsa::SigningKey,
    pk: sm2::PublicKey,
    sigs: Vec<([u8; 32], sm2::dsa::Signature)>,
}

impl RawVerifier {
    fn new() -> Self {
        use signature::hazmat::PrehashSigner;
        let sk = sm2::dsa::SigningKey::from_slice("1234567812345678", &[7; 32]).unwrap();
        let pk = sm2::PublicKey::from_affine(*sk.verifying_key().as_affine()).unwrap();
        crypto::PublicKey::Sm2(pk).prepare();
        let sigs = (0..64u32)
            .map(|i| {
                let e = crypto::sm3(&i.to_be_bytes());
                (e, sk.sign_prehash(&e).unwrap())
            })
            .collect();
        let v = RawVerifier { sk, pk, sigs };
        // Builds the generator's table before anything is timed, as seald dev's self-check does.
        let _ = v.ours(10);
        v
    }

    fn timed(&self, ops: u32, f: &dyn Fn(&[u8; 32], &sm2::dsa::Signature)) -> (f64, f64) {
        let cpu0 = cpu_seconds("self");
        let t = Instant::now();
        for i in 0..ops as usize {
            let (e, s) = &self.sigs[i % self.sigs.len()];
            f(e, s);
        }
        let wall = t.elapsed().as_secs_f64();
        ((cpu_seconds("self") - cpu0) / ops as f64, ops as f64 / wall)
    }

    fn rustcrypto(&self, ops: u32) -> (f64, f64) {
        use signature::hazmat::PrehashVerifier;
        self.timed(ops, &|e, s| self.sk.verifying_key().verify_prehash(e, s).unwrap())
    }

    fn ours(&self, ops: u32) -> (f64, f64) {
        self.timed(ops, &|e, s| crypto::sm2::verify_e(&self.pk, e, &s.to_bytes()).unwrap())
    }
}

/// The raw rates around one load phase.
#[derive(Clone, Copy, Default)]
struct RawRates {
    sign: (f64, f64),
    verify: (f64, f64),
    table_verify: (f64, f64),
}

impl RawRates {
    fn measure(signer: &RawSigner, verifier: &RawVerifier) -> Self {
        RawRates { sign: signer.measure(1000), verify: verifier.rustcrypto(600), table_verify: verifier.ours(3000) }
    }

    fn mean(&self, o: &RawRates) -> RawRates {
        let m = |a: (f64, f64), b: (f64, f64)| ((a.0 + b.0) / 2.0, (a.1 + b.1) / 2.0);
        RawRates {
            sign: m(self.sign, o.sign),
            verify: m(self.verify, o.verify),
            table_verify: m(self.table_verify, o.table_verify),
        }
    }
}

struct Run {
    requests: u64,
    errors: u64,
    wall: f64,
    daemon_cpu: f64,
    p50: Duration,
    p99: Duration,
}

/// The app's mTLS client configuration for `seald dev`.
fn app_tls(dev: &Dev) -> Arc<rustls::ClientConfig> {
    seald::tls::client_config(&dev.dir.join("ca.pem"), &dev.dir.join("app.pem"), &dev.dir.join("app.key")).unwrap()
}

/// One keep-alive HTTP/1.1 connection over mTLS to the daemon on `port`.
async fn connect(
    cfg: Arc<rustls::ClientConfig>,
    port: u16,
) -> hyper::client::conn::http1::SendRequest<Full<bytes::Bytes>> {
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let tls = tokio_rustls::TlsConnector::from(cfg).connect("localhost".try_into().unwrap(), tcp).await.unwrap();
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls)).await.unwrap();
    drop(tokio::spawn(conn));
    sender
}

/// One request the load repeats.
struct Call {
    method: &'static str,
    path: String,
    content_type: &'static str,
    body: Vec<u8>,
}

impl Call {
    fn post_json(path: &str, body: Vec<u8>) -> Arc<Call> {
        Arc::new(Call { method: "POST", path: path.into(), content_type: "application/json", body })
    }
}

async fn drive(dev: &Dev, conns: usize, secs: u64, call: Arc<Call>) -> Run {
    let cfg = app_tls(dev);
    let pid = dev.child.id().to_string();
    let cpu0 = cpu_seconds(&pid);
    let start = Instant::now();
    let until = start + Duration::from_secs(secs);
    let mut tasks = Vec::new();
    // The daemon lets 16 handshakes per address be in flight (the listener's budget): connect that
    // many at a time, as a client pool would.
    let handshakes = Arc::new(tokio::sync::Semaphore::new(16));
    for _ in 0..conns {
        let (cfg, call, handshakes) = (cfg.clone(), call.clone(), handshakes.clone());
        let port = dev.port;
        tasks.push(tokio::spawn(async move {
            // Held until the first answer: with TLS 1.3 the client is done before the server has
            // checked its certificate, so only an answer says the server's handshake is over.
            let mut permit = Some(handshakes.acquire_owned().await.unwrap());
            let mut sender = connect(cfg, port).await;
            let (mut lat, mut errors) = (Vec::new(), 0u64);
            while Instant::now() < until {
                let req = hyper::Request::builder()
                    .method(call.method)
                    .uri(call.path.as_str())
                    .header("host", "localhost")
                    .header("content-type", call.content_type)
                    .body(Full::new(bytes::Bytes::from(call.body.clone())))
                    .unwrap();
                let t = Instant::now();
                let answer = sender.send_request(req).await;
                drop(permit.take());
                match answer {
                    Ok(resp) => {
                        let ok = resp.status() == 200;
                        let _ = resp.into_body().collect().await;
                        lat.push(t.elapsed());
                        if !ok {
                            errors += 1;
                        }
                    }
                    Err(_) => {
                        errors += 1;
                        break;
                    }
                }
            }
            (lat, errors)
        }));
    }
    let (mut all, mut errors) = (Vec::new(), 0);
    for t in tasks {
        let (l, e) = t.await.unwrap();
        all.extend(l);
        errors += e;
    }
    let wall = start.elapsed().as_secs_f64();
    let daemon_cpu = cpu_seconds(&pid) - cpu0;
    all.sort();
    let pct = |p: f64| {
        all.get(((all.len() as f64 * p) as usize).min(all.len().saturating_sub(1))).copied().unwrap_or_default()
    };
    Run { requests: all.len() as u64, errors, wall, daemon_cpu, p50: pct(0.50), p99: pct(0.99) }
}

/// One phase's figures in one round.
struct Figures {
    rate: f64,
    of_raw_rate: f64,
    p50_ms: f64,
    p99_ms: f64,
    cpu_us: f64,
    of_raw_cpu: f64,
    of_ours_cpu: f64,
    errors: u64,
}

/// A 10-page OFD of about 1 MiB: each page shows its own 100 KiB image, incompressible as JPEG and
/// PNG are.
fn ten_page_document() -> Vec<u8> {
    use std::io::Write as _;
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
    let mut put = |name: &str, bytes: &[u8]| {
        w.start_file(name, opts).unwrap();
        w.write_all(bytes).unwrap();
    };
    put(
        "OFD.xml",
        br#"<?xml version="1.0" encoding="UTF-8"?><ofd:OFD xmlns:ofd="http://www.ofdspec.org/2016" Version="1.2" DocType="OFD"><ofd:DocBody><ofd:DocInfo><ofd:DocID>6c6f6164206f66642062656e63680000</ofd:DocID></ofd:DocInfo><ofd:DocRoot>Doc_0/Document.xml</ofd:DocRoot></ofd:DocBody></ofd:OFD>"#,
    );
    let pages: String =
        (0..10).map(|i| format!(r#"<ofd:Page ID="{}" BaseLoc="Pages/Page_{i}/Content.xml"/>"#, 100 + i)).collect();
    put("Doc_0/Document.xml", format!(r#"<?xml version="1.0" encoding="UTF-8"?><ofd:Document xmlns:ofd="http://www.ofdspec.org/2016"><ofd:CommonData><ofd:MaxUnitID>200</ofd:MaxUnitID><ofd:PageArea><ofd:PhysicalBox>0 0 210 297</ofd:PhysicalBox></ofd:PageArea><ofd:DocumentRes>DocumentRes.xml</ofd:DocumentRes></ofd:CommonData><ofd:Pages>{pages}</ofd:Pages></ofd:Document>"#).as_bytes());
    let media: String = (0..10)
        .map(|i| format!(r#"<ofd:MultiMedia ID="{}" Type="Image" Format="JPEG"><ofd:MediaFile>image_{i}.jpg</ofd:MediaFile></ofd:MultiMedia>"#, 150 + i))
        .collect();
    put("Doc_0/DocumentRes.xml", format!(r#"<?xml version="1.0" encoding="UTF-8"?><ofd:Res xmlns:ofd="http://www.ofdspec.org/2016" BaseLoc="Res"><ofd:MultiMedias>{media}</ofd:MultiMedias></ofd:Res>"#).as_bytes());
    let mut x = 0x2545_f491_4f6c_dd1du64;
    for i in 0..10 {
        put(&format!("Doc_0/Pages/Page_{i}/Content.xml"), format!(r#"<?xml version="1.0" encoding="UTF-8"?><ofd:Page xmlns:ofd="http://www.ofdspec.org/2016"><ofd:Content><ofd:Layer ID="{}"><ofd:ImageObject ID="{}" ResourceID="{}" Boundary="20 20 170 240" CTM="170 0 0 240 0 0"/></ofd:Layer></ofd:Content></ofd:Page>"#, 120 + 2 * i, 121 + 2 * i, 150 + i).as_bytes());
        let image: Vec<u8> = (0..100 << 10)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        put(&format!("Doc_0/Res/image_{i}.jpg"), &image);
    }
    w.finish().unwrap().into_inner()
}

/// CPU seconds of every live thread of `pid` (`self` for this process), at nanosecond resolution
/// (`schedstat`): slices of a few requests are measured exactly, which clock ticks cannot do.
fn cpu_precise(pid: &str) -> f64 {
    let ns: u64 = std::fs::read_dir(format!("/proc/{pid}/task"))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .sum();
    ns as f64 / 1e9
}

/// `n` requests of `body` to `path` on a keep-alive connection: the daemon's CPU seconds, and the
/// last answer.
async fn post_n(
    sender: &mut hyper::client::conn::http1::SendRequest<Full<bytes::Bytes>>,
    pid: &str,
    path: &str,
    content_type: &str,
    body: &[u8],
    n: u32,
) -> (f64, Vec<u8>) {
    let cpu0 = cpu_precise(pid);
    let mut last = Vec::new();
    for _ in 0..n {
        sender.ready().await.unwrap();
        let req = hyper::Request::post(path)
            .header("host", "localhost")
            .header("content-type", content_type)
            .body(Full::new(bytes::Bytes::from(body.to_vec())))
            .unwrap();
        let resp = sender.send_request(req).await.unwrap();
        let status = resp.status();
        last = resp.into_body().collect().await.unwrap().to_bytes().to_vec();
        assert_eq!(status, 200, "{path}: {}", String::from_utf8_lossy(&last));
    }
    (cpu_precise(pid) - cpu0, last)
}

/// CPU seconds of SM3 over `bytes`, per pass.
fn sm3_cost(bytes: &[u8], passes: u32) -> f64 {
    let thread_cpu = || {
        let s = std::fs::read_to_string("/proc/thread-self/schedstat").unwrap_or_default();
        s.split_whitespace().next().and_then(|v| v.parse::<u64>().ok()).unwrap_or(0) as f64 / 1e9
    };
    let cpu0 = thread_cpu();
    for _ in 0..passes {
        std::hint::black_box(crypto::sm3(bytes));
    }
    (thread_cpu() - cpu0) / passes as f64
}

/// The median of a round's figures.
fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn ofd_bench(rounds: usize) {
    let tmp = tempfile::tempdir().unwrap();
    let dev = start_dev(tmp.path());
    let pid = dev.child.id().to_string();
    let signer = RawSigner::new(&dev);
    let verifier = RawVerifier::new();
    let doc = ten_page_document();
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let mut sender = rt.block_on(connect(app_tls(&dev), dev.port));
    let seal_path = format!("/v1/seals/{}/seal-ofd?page=3&x=150&y=240&name=bench", dev.seal);
    let (_, sealed) = rt.block_on(post_n(&mut sender, &pid, &seal_path, "application/ofd", &doc, 1));
    let (_, report) = rt.block_on(post_n(&mut sender, &pid, "/v1/verify/ofd", "application/ofd", &sealed, 1));
    let report: serde_json::Value = serde_json::from_slice(&report).unwrap();
    assert_eq!(report["verdict"], "valid", "{report}");
    println!(
        "\nseald OFD: a {} KiB, 10-page document (sealed: {} KiB), {rounds} rounds, SM2 (softtoken)",
        doc.len() >> 10,
        sealed.len() >> 10
    );
    // This machine's speed drifts within a second: each round is 8 slices of 5 documents, each
    // slice next to 5 raw SM3 passes over the same package, so raw and daemon share their moments.
    const SLICES: u32 = 8;
    const PER_SLICE: u32 = 5;
    let (mut seal_ratios, mut verify_ratios) = (Vec::new(), Vec::new());
    for round in 1..=rounds {
        let (mut sm3, mut seal_cpu, mut verify_cpu) = (0.0, 0.0, 0.0);
        let (sign0, verify0) = (signer.measure(300).0, verifier.rustcrypto(300).0);
        for _ in 0..SLICES {
            sm3 += sm3_cost(&doc, PER_SLICE);
            seal_cpu += rt.block_on(post_n(&mut sender, &pid, &seal_path, "application/ofd", &doc, PER_SLICE)).0;
            verify_cpu +=
                rt.block_on(post_n(&mut sender, &pid, "/v1/verify/ofd", "application/ofd", &sealed, PER_SLICE)).0;
        }
        let (sign, verify) = ((sign0 + signer.measure(300).0) / 2.0, (verify0 + verifier.rustcrypto(300).0) / 2.0);
        let n = (SLICES * PER_SLICE) as f64;
        let (sm3, seal_cpu, verify_cpu) = (sm3 / SLICES as f64, seal_cpu / n, verify_cpu / n);
        let seal_raw = sm3 + sign + verify;
        let verify_raw = sm3 + 2.0 * verify;
        seal_ratios.push(seal_cpu / seal_raw);
        verify_ratios.push(verify_cpu / verify_raw);
        println!(
            "round {round}: seal {:.2} ms CPU/doc (raw SM3 {:.2} + sign {:.2} + verify {:.2} = {:.2} ms: {:.2}x); \
             verify {:.2} ms CPU/doc (raw SM3 + 2 verifies = {:.2} ms: {:.2}x)",
            seal_cpu * 1e3,
            sm3 * 1e3,
            sign * 1e3,
            verify * 1e3,
            seal_raw * 1e3,
            seal_cpu / seal_raw,
            verify_cpu * 1e3,
            verify_raw * 1e3,
            verify_cpu / verify_raw
        );
    }
    println!(
        "median: sealing {:.2}x the raw sum (target <= 3x), verification {:.2}x (target <= 2x)",
        median(seal_ratios),
        median(verify_ratios)
    );
}

/// Signing with the seal through the daemon, as a ratio to the raw token sign rate around it.
fn seal_sign_ratio(rt: &tokio::runtime::Runtime, dev: &Dev, signer: &RawSigner, rounds: usize) -> (f64, f64) {
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    let body =
        serde_json::to_vec(&serde_json::json!({"seal": dev.seal, "input": "e", "data": b64(&crypto::sm3(b"h"))}))
            .unwrap();
    let (mut ratios, mut rates) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        let before = signer.measure(1000).1;
        let r = rt.block_on(drive(dev, 32, 4, Call::post_json("/v1/sign", body.clone())));
        let raw = (before + signer.measure(1000).1) / 2.0;
        assert_eq!(r.errors, 0, "signing failed");
        let rate = r.requests as f64 / r.wall;
        ratios.push(rate / raw);
        rates.push(rate);
    }
    (median(rates), median(ratios))
}

/// The daemon's resident set now and at its peak since the last reset, KiB.
fn rss_kib(pid: &str) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// Reads every segment file of the journal once, as `cat` would: bytes per second.
fn cat_rate(journal: &Path) -> (u64, f64) {
    use std::io::Read as _;
    let t = Instant::now();
    let mut total = 0u64;
    let mut buf = vec![0u8; 128 << 10];
    let mut segs: Vec<_> = std::fs::read_dir(journal).unwrap().map(|e| e.unwrap().path()).collect();
    segs.retain(|p| p.file_name().unwrap().to_str().unwrap().starts_with("seg-"));
    for p in segs {
        let mut f = std::fs::File::open(p).unwrap();
        loop {
            let n = f.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            total += n as u64;
        }
    }
    (total, total as f64 / t.elapsed().as_secs_f64())
}

fn history_bench(records: u64, seals: u64) {
    // SEALD_BENCH_DIR keeps the history for later runs (which then skip writing it, and have no
    // empty-store phase: their signing figure is the ratio to the raw token rate only).
    let tmp = tempfile::tempdir().unwrap();
    let base = std::env::var_os("SEALD_BENCH_DIR").map(PathBuf::from).unwrap_or_else(|| tmp.path().to_path_buf());
    let marker = base.join(format!("history-{records}-{seals}"));
    let reuse = marker.exists();
    let mut dev = start_dev(&base);
    let signer = RawSigner::new(&dev);
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    println!("\nseald history: {records} usage records over {seals} seals");
    let (empty_rate, empty_ratio) = if reuse {
        println!("reusing the history in {}: no empty-store phase", base.display());
        (0.0, f64::NAN)
    } else {
        seal_sign_ratio(&rt, &dev, &signer, 3)
    };
    println!("signing with the seal, empty store: {empty_rate:.0}/s, {empty_ratio:.2}x the raw token sign rate");
    // Stop the daemon and write the history through the real journal and store.
    let _ = std::process::Command::new("kill").args(["-TERM", &dev.child.id().to_string()]).status();
    let _ = dev.child.wait();
    let bin = std::env::current_exe().unwrap().parent().and_then(|d| d.parent()).unwrap().join("seald");
    let config = dev.dir.join("seald.toml");
    let t = Instant::now();
    if !reuse {
        let status = std::process::Command::new(&bin)
            .args(["dev-history", "--config", config.to_str().unwrap()])
            .args(["--seals", &seals.to_string(), "--records", &records.to_string()])
            .env("SEALD_LOG", "warn")
            .status()
            .unwrap();
        assert!(status.success(), "seald dev-history failed");
        std::fs::write(&marker, b"").unwrap();
    }
    let written = t.elapsed().as_secs_f64();
    let du = |p: &Path| {
        let out = std::process::Command::new("du").args(["-sk", p.to_str().unwrap()]).output().unwrap();
        String::from_utf8_lossy(&out.stdout).split_whitespace().next().unwrap_or("0").parse::<u64>().unwrap_or(0)
    };
    let (journal_kib, store_kib) = (du(&dev.dir.join("journal")), du(&dev.dir.join("store")));
    println!(
        "history written in {written:.0} s ({:.0} records/s through the journal and store); journal {} MiB, store {} MiB",
        records as f64 / written,
        journal_kib >> 10,
        store_kib >> 10
    );
    // Start on it: time to ready, twice (the first start may find the store behind its journal).
    let start = |dev: &mut Dev| -> f64 {
        let t = Instant::now();
        (dev.child, dev.port) = run_seald(&config);
        t.elapsed().as_secs_f64()
    };
    let first = start(&mut dev);
    let _ = std::process::Command::new("kill").args(["-TERM", &dev.child.id().to_string()]).status();
    let _ = dev.child.wait();
    let ready = start(&mut dev);
    println!("start to serving: {first:.2} s after writing, {ready:.2} s with the store in step (target < 1 s)");
    let pid = dev.child.id().to_string();
    // Usage pages of the busy seal, as its unit administrator's console would ask.
    let admin = seald::tls::client_config(
        &dev.dir.join("ca.pem"),
        &dev.dir.join("unitadmin.pem"),
        &dev.dir.join("unitadmin.key"),
    )
    .unwrap();
    let lat = rt.block_on(async {
        let mut sender = connect(admin, dev.port).await;
        let mut lat = Vec::new();
        for order in ["newest", "oldest"] {
            for _ in 0..5 {
                let mut cursor: Option<String> = None;
                for _ in 0..100 {
                    let mut path = format!("/v1/seals/{}/usage?limit=100&order={order}", dev.seal);
                    if let Some(c) = &cursor {
                        path.push_str(&format!("&cursor={c}"));
                    }
                    let req = hyper::Request::get(path).header("host", "localhost").body(Full::default()).unwrap();
                    sender.ready().await.unwrap();
                    let t = Instant::now();
                    let resp = sender.send_request(req).await.unwrap();
                    assert_eq!(resp.status(), 200);
                    let body = resp.into_body().collect().await.unwrap().to_bytes();
                    lat.push(t.elapsed());
                    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
                    assert_eq!(v["usage"].as_array().unwrap().len(), 100, "a busy seal fills its pages");
                    cursor = v["next_cursor"].as_str().map(String::from);
                }
            }
        }
        lat
    });
    let mut lat = lat;
    lat.sort();
    let pct = |p: f64| lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)];
    println!(
        "usage pages of the busy seal (100 records, 1000 pages to 10,000 records deep): p50 {:.2} ms, p99 {:.2} ms (target <= 20 ms)",
        pct(0.5).as_secs_f64() * 1e3,
        pct(0.99).as_secs_f64() * 1e3
    );
    // The console's pages, as each role opens them (issue 17: well under 200 ms each). The first
    // of each is counted too: it may find the registry's facts cache cold.
    let pages: &[(&str, &[String])] = &[
        (
            "issuer",
            &[
                "/console/".into(),
                "/console/seals".into(),
                "/console/seals?state=active".into(),
                "/console/inbox".into(),
                "/console/filings".into(),
                format!("/console/seals/{}", dev.seal),
                format!("/console/seals/{}/usage", dev.seal),
            ],
        ),
        ("unitadmin", &["/console/".into(), "/console/seals".into(), format!("/console/seals/{}", dev.seal)]),
        (
            "auditor",
            &[
                "/console/".into(),
                "/console/audit".into(),
                format!("/console/audit?seal={}", dev.seal),
                "/console/audit?action=seal.use".into(),
            ],
        ),
        ("secofficer", &["/console/".into(), "/console/keys".into(), "/console/requests".into()]),
        ("sysadmin", &["/console/accounts".into(), "/console/units".into()]),
    ];
    let mut worst = Duration::ZERO;
    for (who, paths) in pages {
        let cfg = seald::tls::client_config(
            &dev.dir.join("ca.pem"),
            &dev.dir.join(format!("{who}.pem")),
            &dev.dir.join(format!("{who}.key")),
        )
        .unwrap();
        let mut sender = rt.block_on(connect(cfg, dev.port));
        for path in paths.iter() {
            let mut lat = Vec::new();
            for _ in 0..20 {
                let req = hyper::Request::get(path.as_str()).header("host", "localhost").body(Full::default()).unwrap();
                let (status, took) = rt.block_on(async {
                    sender.ready().await.unwrap();
                    let t = Instant::now();
                    let resp = sender.send_request(req).await.unwrap();
                    let status = resp.status();
                    let _ = resp.into_body().collect().await.unwrap();
                    (status, t.elapsed())
                });
                assert_eq!(status, 200, "{who} {path}");
                lat.push(took);
            }
            lat.sort();
            worst = worst.max(lat[lat.len() - 1]);
            println!(
                "console {who:10} {path:40} p50 {:7.2} ms, max {:7.2} ms",
                lat[lat.len() / 2].as_secs_f64() * 1e3,
                lat[lat.len() - 1].as_secs_f64() * 1e3
            );
        }
    }
    println!(
        "console pages: the slowest answer of all took {:.1} ms (target well under 200 ms)",
        worst.as_secs_f64() * 1e3
    );
    // The whole audit export, streamed, next to reading the same files.
    let journal = dev.dir.join("journal");
    let (bytes, cat_before) = cat_rate(&journal);
    let _ = std::fs::write(format!("/proc/{pid}/clear_refs"), "5");
    let (rss0, _) = rss_kib(&pid);
    let auditor =
        seald::tls::client_config(&dev.dir.join("ca.pem"), &dev.dir.join("auditor.pem"), &dev.dir.join("auditor.key"))
            .unwrap();
    let download = |cfg: std::sync::Arc<rustls::ClientConfig>, path: &'static str| {
        rt.block_on(async {
            let mut sender = connect(cfg, dev.port).await;
            let req = hyper::Request::get(path).header("host", "localhost").body(Full::default()).unwrap();
            let t = Instant::now();
            let resp = sender.send_request(req).await.unwrap();
            assert_eq!(resp.status(), 200, "{path}");
            let mut body = resp.into_body();
            let mut n = 0u64;
            while let Some(frame) = body.frame().await {
                if let Ok(d) = frame.unwrap().into_data() {
                    n += d.len() as u64;
                }
            }
            (n, t.elapsed().as_secs_f64())
        })
    };
    let (exported, secs) = download(auditor, "/v1/audit/export");
    let (_, peak) = rss_kib(&pid);
    let (_, cat_after) = cat_rate(&journal);
    let cat = (cat_before + cat_after) / 2.0;
    println!(
        "audit export: {} MiB of JSON Lines from {} MiB of segments in {secs:.1} s, {:.0} MiB/s of segments; reading the segments: {:.0} MiB/s ({:.2}x, target >= 0.5x); daemon RSS {} MiB before, peak {} MiB (target < 150 MiB)",
        exported >> 20,
        bytes >> 20,
        bytes as f64 / secs / 1048576.0,
        cat / 1048576.0,
        (bytes as f64 / secs) / cat,
        rss0 >> 10,
        peak >> 10
    );
    // The whole backup, streamed, next to reading the same files again.
    let sysadmin = seald::tls::client_config(
        &dev.dir.join("ca.pem"),
        &dev.dir.join("sysadmin.pem"),
        &dev.dir.join("sysadmin.key"),
    )
    .unwrap();
    let _ = std::fs::write(format!("/proc/{pid}/clear_refs"), "5");
    let (rss0, _) = rss_kib(&pid);
    let (backed_up, secs) = download(sysadmin, "/v1/admin/backup");
    let (_, peak) = rss_kib(&pid);
    let (bytes, cat) = cat_rate(&journal);
    println!(
        "backup: {} MiB in {secs:.1} s, {:.0} MiB/s; reading the segments: {:.0} MiB/s ({:.2}x, target >= 0.5x); daemon RSS {} MiB before, peak {} MiB (target < 150 MiB)",
        backed_up >> 20,
        backed_up as f64 / secs / 1048576.0,
        cat / 1048576.0,
        (bytes as f64 / secs) / cat,
        rss0 >> 10,
        peak >> 10
    );
    let (rate, ratio) = seal_sign_ratio(&rt, &dev, &signer, 3);
    println!(
        "signing with the seal, with the history: {rate:.0}/s, {ratio:.2}x the raw token sign rate: {:.0}% of the empty store's ratio (target >= 90%)",
        100.0 * ratio / empty_ratio
    );
}

/// `time`: signed seal-status answers and RFC 3161 time-stamps through the daemon, each next to the
/// raw token signature rate measured just before and after it.
fn time_bench(conns: usize, secs: u64, rounds: usize) {
    let tmp = tempfile::tempdir().unwrap();
    let dev = start_dev(tmp.path());
    let signer = RawSigner::new(&dev);
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    // An RFC 3161 request: an SM3 imprint, a nonce, certReq.
    let query = seald::formats::tsp::request(seald::formats::oid::SM3, &crypto::sm3(b"load"), 1).unwrap();
    let calls = [
        (
            "seal status (DER)",
            Arc::new(Call {
                method: "GET",
                path: format!("/v1/seal-status/{}?format=der", dev.seal),
                content_type: "application/json",
                body: Vec::new(),
            }),
        ),
        (
            "time-stamp",
            Arc::new(Call {
                method: "POST",
                path: "/v1/tsa".into(),
                content_type: "application/timestamp-query",
                body: query,
            }),
        ),
    ];
    println!("\nseald proofs of time: {conns} connections x {secs} s x {rounds} rounds, SM2 (softtoken)");
    let mut ratios: Vec<Vec<f64>> = calls.iter().map(|_| Vec::new()).collect();
    for round in 1..=rounds {
        for (k, (name, call)) in calls.iter().enumerate() {
            let before = signer.measure(1000);
            let r = rt.block_on(drive(&dev, conns, secs, call.clone()));
            let after = signer.measure(1000);
            let raw_rate = (before.1 + after.1) / 2.0;
            let rate = r.requests as f64 / r.wall;
            ratios[k].push(rate / raw_rate);
            println!(
                "round {round} {name:17}: {rate:7.0} answers/s ({:.2}x the raw token sign rate {raw_rate:.0}/s), \
                 p50 {:.2} ms, p99 {:.2} ms, {:.1} µs daemon CPU/answer; errors {}",
                rate / raw_rate,
                r.p50.as_secs_f64() * 1e3,
                r.p99.as_secs_f64() * 1e3,
                r.daemon_cpu / r.requests.max(1) as f64 * 1e6,
                r.errors
            );
            assert_eq!(r.errors, 0, "{name}: every answer is a 200");
        }
    }
    let mut it = ratios.into_iter();
    println!(
        "median: seal status {:.2}x the raw token sign rate (target >= 5x); time-stamps {:.2}x",
        median(it.next().unwrap()),
        median(it.next().unwrap())
    );
}

/// CPU seconds (utime + stime) of every `postgres` process of this machine.
fn postgres_cpu() -> f64 {
    let mut total = 0.0;
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let pid = e.file_name().to_string_lossy().into_owned();
        if pid.bytes().all(|b| b.is_ascii_digit())
            && std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == "postgres")
        {
            total += cpu_seconds(&pid);
        }
    }
    total
}

/// Starts `seald run --config CONFIG` and waits until it serves: the process and its port. Lines
/// saying the store was brought up to date are shown.
fn run_seald(config: &Path) -> (std::process::Child, u16) {
    let bin = std::env::current_exe().unwrap().parent().and_then(|d| d.parent()).unwrap().join("seald");
    let mut child = std::process::Command::new(&bin)
        .args(["run", "--config", config.to_str().unwrap()])
        .env("SEALD_LOG", "info")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let mut port = 0;
    for line in lines.by_ref().map_while(Result::ok) {
        if line.contains("brought up to date") {
            println!("  {}", line.trim());
        }
        if let Some(rest) = line.split("seald serving (mTLS) addr=127.0.0.1:").nth(1) {
            port = rest.split_whitespace().next().unwrap().parse().unwrap();
            break;
        }
    }
    drop(std::thread::spawn(move || lines.for_each(drop)));
    assert!(port > 0, "seald run --config {} did not start", config.display());
    (child, port)
}

/// `seald run --config CONFIG` as a [`Dev`] (the dev appliance's directory and seal).
fn run_node(config: &Path, dir: &Path, seal: &str) -> Dev {
    let (child, port) = run_seald(config);
    Dev { child, dir: dir.to_path_buf(), port, seal: seal.to_string() }
}

/// `seald_db_round_trips_total` and `seald_db_batches_total` from the node's /metrics.
fn db_trips(rt: &tokio::runtime::Runtime, dev: &Dev) -> (f64, f64) {
    let client = seald::client::Client::new(
        format!("127.0.0.1:{}", dev.port).parse().unwrap(),
        "localhost",
        &dev.dir.join("ca.pem"),
        &dev.dir.join("app.pem"),
        &dev.dir.join("app.key"),
    )
    .unwrap();
    let (_, text) = rt.block_on(client.request("GET", "/metrics", None)).unwrap();
    let text = String::from_utf8_lossy(&text).into_owned();
    let get = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name).and_then(|v| v.trim().parse::<f64>().ok()))
            .unwrap_or_else(|| panic!("no {name} in /metrics"))
    };
    (get("seald_db_round_trips_total "), get("seald_db_batches_total "))
}

fn cluster_bench(conns: usize, secs: u64, rounds: usize) {
    let tmp = tempfile::tempdir().unwrap();
    let mut dev = start_dev(tmp.path());
    let signer = RawSigner::new(&dev);
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let _ = std::process::Command::new("kill").args(["-TERM", &dev.child.id().to_string()]).status();
    let _ = dev.child.wait();
    // The database, and the dev appliance migrated onto it as node 1 (node 2 joins it).
    let pg = common::Postgres::start();
    let url = pg.database("bench");
    let embedded = dev.dir.join("seald.toml");
    let text = std::fs::read_to_string(&embedded).unwrap();
    let node_config = |n: u16| {
        let mut out = String::new();
        for line in text.lines() {
            out.push_str(line);
            out.push('\n');
            if line.starts_with("[store]") {
                out.push_str("backend = \"postgres\"\n");
            }
        }
        out.push_str(&format!("\n[store.postgres]\nurl = \"{url}\"\npool_size = 16\n\n[cluster]\nnode_id = {n}\n"));
        let path = dev.dir.join(format!("node{n}.toml"));
        std::fs::write(&path, out).unwrap();
        path
    };
    let (one, two) = (node_config(1), node_config(2));
    let bin = std::env::current_exe().unwrap().parent().and_then(|d| d.parent()).unwrap().join("seald");
    let out = std::process::Command::new(&bin)
        .args(["migrate", "--to", "postgres", "--config", one.to_str().unwrap()])
        .env("SEALD_LOG", "warn")
        .output()
        .unwrap();
    assert!(out.status.success(), "seald migrate: {}", String::from_utf8_lossy(&out.stderr));
    println!("\n{}", String::from_utf8_lossy(&out.stdout).trim());
    let seal = dev.seal.clone();
    let local = run_node(&embedded, &dev.dir, &seal);
    let node1 = run_node(&one, &dev.dir, &seal);
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    let body =
        serde_json::to_vec(&serde_json::json!({"seal": seal, "input": "e", "data": b64(&crypto::sm3(b"c"))})).unwrap();
    let call = Call::post_json("/v1/sign", body);
    println!(
        "seald cluster: {conns} connections x {secs} s x {rounds} rounds, signing with the seal; PostgreSQL on this \
         machine (2 cores shared by the load generator, the daemons and the database)"
    );
    let (mut cpu_ratio, mut rate_ratio, mut trips, mut db_cpu, mut two_ratio) =
        (vec![], vec![], vec![], vec![], vec![]);
    for round in 1..=rounds {
        let raw0 = signer.measure(1000).1;
        let e = rt.block_on(drive(&local, conns, secs, call.clone()));
        let (t0, b0) = db_trips(&rt, &node1);
        let pg0 = postgres_cpu();
        let c = rt.block_on(drive(&node1, conns, secs, call.clone()));
        let pg_cpu = postgres_cpu() - pg0;
        let (t1, b1) = db_trips(&rt, &node1);
        let raw = (raw0 + signer.measure(1000).1) / 2.0;
        let (e_rate, c_rate) = (e.requests as f64 / e.wall, c.requests as f64 / c.wall);
        let (e_cpu, c_cpu) = (e.daemon_cpu / e.requests.max(1) as f64, c.daemon_cpu / c.requests.max(1) as f64);
        let per_sig = (t1 - t0 - 1.0) / c.requests.max(1) as f64;
        println!(
            "round {round}: embedded {e_rate:6.0}/s, {:6.1} µs CPU/req; postgres node {c_rate:6.0}/s ({:.0}%), \
             {:6.1} µs CPU/req ({:.2}x), database {:.1} µs CPU/req, {per_sig:.2} round trips/signature, \
             {:.1} signatures/batch; raw token sign {raw:.0}/s; errors {} and {}",
            e_cpu * 1e6,
            100.0 * c_rate / e_rate,
            c_cpu * 1e6,
            c_cpu / e_cpu,
            pg_cpu / c.requests.max(1) as f64 * 1e6,
            c.requests as f64 / (b1 - b0).max(1.0),
            e.errors,
            c.errors
        );
        assert_eq!(e.errors + c.errors, 0, "every answer is a 200");
        cpu_ratio.push(c_cpu / e_cpu);
        rate_ratio.push(c_rate / e_rate);
        trips.push(per_sig);
        db_cpu.push(pg_cpu / c.requests.max(1) as f64 * 1e6);
        // Two nodes sharing the database, the same connections split between them.
        if round == 1 {
            println!("(node 2 joins)");
        }
        let node2 = run_node(&two, &dev.dir, &seal);
        let (x, y) = rt.block_on(async {
            tokio::join!(
                drive(&node1, conns / 2, secs, call.clone()),
                drive(&node2, conns - conns / 2, secs, call.clone())
            )
        });
        let both = x.requests as f64 / x.wall + y.requests as f64 / y.wall;
        println!(
            "round {round}: two postgres nodes {both:6.0}/s together ({:.2}x one node), {:.1} µs daemon CPU/req; errors {}",
            both / c_rate,
            (x.daemon_cpu + y.daemon_cpu) / (x.requests + y.requests).max(1) as f64 * 1e6,
            x.errors + y.errors
        );
        two_ratio.push(both / c_rate);
        drop(node2);
    }
    println!(
        "\nmedians over {rounds} rounds: postgres node daemon CPU {:.2}x embedded per signed request (target <= 1.3x), \
         throughput {:.0}% of embedded (target >= 70%); database CPU {:.1} µs/request; {:.2} round trips per signature; \
         two nodes {:.2}x one",
        median(cpu_ratio),
        100.0 * median(rate_ratio),
        median(db_cpu),
        median(trips),
        median(two_ratio)
    );
    drop((local, node1, pg));
}

fn main() {
    if std::env::args().skip(1).any(|a| a == "cluster") {
        let nums: Vec<u64> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
        let (conns, secs, rounds) = (
            nums.first().copied().unwrap_or(32) as usize,
            nums.get(1).copied().unwrap_or(5),
            nums.get(2).copied().unwrap_or(3).max(1) as usize,
        );
        return cluster_bench(conns, secs, rounds);
    }
    if std::env::args().skip(1).any(|a| a == "history") {
        let nums: Vec<u64> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
        return history_bench(nums.first().copied().unwrap_or(1_000_000), nums.get(1).copied().unwrap_or(10_000));
    }
    if std::env::args().skip(1).any(|a| a == "ofd") {
        let rounds = std::env::args().skip(1).filter_map(|a| a.parse().ok()).next().unwrap_or(3);
        return ofd_bench(rounds);
    }
    if std::env::args().skip(1).any(|a| a == "time") {
        let nums: Vec<u64> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
        let (conns, secs, rounds) = (
            nums.first().copied().unwrap_or(64) as usize,
            nums.get(1).copied().unwrap_or(5),
            nums.get(2).copied().unwrap_or(3).max(1) as usize,
        );
        return time_bench(conns, secs, rounds);
    }
    // `cargo bench` passes --bench; the numbers, if given, are connections, seconds and rounds.
    let nums: Vec<u64> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let conns = nums.first().copied().unwrap_or(64) as usize;
    let secs = nums.get(1).copied().unwrap_or(8);
    let rounds = nums.get(2).copied().unwrap_or(3).max(1) as usize;
    let tmp = tempfile::tempdir().unwrap();
    let dev = start_dev(tmp.path());
    let signer = RawSigner::new(&dev);
    let verifier = RawVerifier::new();
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    let digest = crypto::sm3(b"load");
    let sign_body =
        serde_json::to_vec(&serde_json::json!({"key": "dev-sm2", "input": "e", "data": b64(&digest)})).unwrap();
    let seal_body =
        serde_json::to_vec(&serde_json::json!({"seal": dev.seal, "input": "e", "data": b64(&digest)})).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    // A signature to verify, made by the daemon.
    let client = seald::client::Client::new(
        format!("127.0.0.1:{}", dev.port).parse().unwrap(),
        "localhost",
        &dev.dir.join("ca.pem"),
        &dev.dir.join("app.pem"),
        &dev.dir.join("app.key"),
    )
    .unwrap();
    let (_, reply) =
        rt.block_on(client.request("POST", "/v1/sign", Some(&serde_json::from_slice(&sign_body).unwrap()))).unwrap();
    let reply: serde_json::Value = serde_json::from_slice(&reply).unwrap();
    let verify_body = serde_json::to_vec(
        &serde_json::json!({"key": "dev-sm2", "input": "e", "data": b64(&digest), "signature": reply["signature"]}),
    )
    .unwrap();
    let phases: [(&str, &'static str, Vec<u8>, bool); 3] = [
        ("sign (key)", "/v1/sign", sign_body, true),
        ("sign (seal)", "/v1/sign", seal_body, true),
        ("verify", "/v1/verify", verify_body, false),
    ];
    println!("\nseald load: {conns} connections x {secs} s x {rounds} rounds, SM2 (softtoken), 2 cores shared with the load generator");
    let mut results: Vec<Vec<Figures>> = phases.iter().map(|_| Vec::new()).collect();
    for round in 1..=rounds {
        for (k, (name, path, body, signs)) in phases.iter().enumerate() {
            let before = RawRates::measure(&signer, &verifier);
            let r = rt.block_on(drive(&dev, conns, secs, Call::post_json(path, body.clone())));
            let raw = before.mean(&RawRates::measure(&signer, &verifier));
            let rate = r.requests as f64 / r.wall;
            let cpu = r.daemon_cpu / r.requests.max(1) as f64;
            let (raw_cpu, raw_rate, ours_cpu) = if *signs {
                (raw.sign.0, raw.sign.1, raw.sign.0 + raw.table_verify.0)
            } else {
                (raw.verify.0, raw.verify.1, raw.table_verify.0)
            };
            let f = Figures {
                rate,
                of_raw_rate: rate / raw_rate,
                p50_ms: r.p50.as_secs_f64() * 1e3,
                p99_ms: r.p99.as_secs_f64() * 1e3,
                cpu_us: cpu * 1e6,
                of_raw_cpu: cpu / raw_cpu,
                of_ours_cpu: cpu / ours_cpu,
                errors: r.errors,
            };
            println!(
                "round {round} {name:11}: {:6.0} req/s, p50 {:6.2} ms, p99 {:6.2} ms, {:6.1} µs CPU/req; raw token sign \
                 {:.1} µs, raw verify {:.1} µs, table verify {:.1} µs CPU/op; errors {}",
                f.rate,
                f.p50_ms,
                f.p99_ms,
                f.cpu_us,
                raw.sign.0 * 1e6,
                raw.verify.0 * 1e6,
                raw.table_verify.0 * 1e6,
                f.errors
            );
            results[k].push(f);
        }
    }
    println!("\nmedians over {rounds} rounds:");
    for (k, (name, _, _, signs)) in phases.iter().enumerate() {
        let col = |f: &dyn Fn(&Figures) -> f64| median(results[k].iter().map(f).collect());
        let (raw_name, cpu_target) = if *signs { ("raw token sign", 1.4) } else { ("raw verify", 1.25) };
        let ours_name = if *signs { "token sign + table verify" } else { "table verify" };
        println!(
            "{name:11}: {:6.0} req/s = {:.0}% of the {raw_name} rate (target >= 60%); p50 {:.2} ms, p99 {:.2} ms \
             (target <= 10 ms); daemon CPU {:.1} µs/req = {:.2}x {raw_name} (target <= {cpu_target}x), {:.2}x {ours_name}; \
             errors {}",
            col(&|f| f.rate),
            100.0 * col(&|f| f.of_raw_rate),
            col(&|f| f.p50_ms),
            col(&|f| f.p99_ms),
            col(&|f| f.cpu_us),
            col(&|f| f.of_raw_cpu),
            col(&|f| f.of_ours_cpu),
            results[k].iter().map(|f| f.errors).sum::<u64>()
        );
    }
}
