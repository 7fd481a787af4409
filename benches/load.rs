//! The load tool: drives the real daemon's /v1/sign and /v1/verify over mutual TLS with keep-alive
//! and N concurrent connections; reports throughput, p50/p99 and the daemon's CPU seconds per request
//! (from /proc/PID/stat over the run), next to the raw token sign rate (cryptoki C_Sign loop on
//! softtoken) and the raw host verify rate (CPU seconds per operation) measured in the same run.
//!
//!   cargo build --release -p seald -p softtoken && cargo bench --bench load -- [CONNECTIONS] [SECONDS]
//!
//! The daemon is `seald dev` on 127.0.0.1 (any free port) in a temporary directory. The load
//! generator shares the machine's cores, so judge by CPU per request, not by wall time alone.
//! Targets: daemon CPU per signed request <= 1.4x the raw token sign's CPU per signature; per verified
//! request <= 1.25x the raw verify; throughput with 64 connections >= 60% of the raw rates; p99 <= 10 ms.

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
    let out = child.stdout.take().unwrap();
    let mut port = 0;
    for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
        if let Some(rest) = line.split("serving at https://127.0.0.1:").nth(1) {
            port = rest.split_whitespace().next().unwrap().parse().unwrap();
            break;
        }
    }
    assert!(port > 0, "seald dev did not start");
    Dev { child, dir, port }
}

/// Raw token signing: a cryptoki C_Sign loop with softtoken's SM2 sign-e mechanism, in this process.
fn raw_token_sign(dev: &Dev, ops: u32) -> (f64, f64) {
    std::env::set_var("SOFTTOKEN_DIR", dev.dir.join("softtoken"));
    let exe = std::env::current_exe().unwrap();
    let module = exe.parent().and_then(|d| d.parent()).unwrap().join("libsofttoken.so");
    let ctx = Pkcs11::new(module).unwrap();
    ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)).unwrap();
    let slot = ctx.get_slots_with_token().unwrap()[0];
    let s = ctx.open_ro_session(slot).unwrap();
    let pin = std::fs::read_to_string(dev.dir.join("token.pin")).unwrap();
    s.login(UserType::User, Some(&AuthPin::from(pin))).unwrap();
    let label = b"dev-sm2".to_vec();
    let key = s.find_objects(&[Attribute::Class(ObjectClass::PRIVATE_KEY), Attribute::Label(label)]).unwrap()[0];
    let mech = Mechanism::VendorDefined(VendorDefinedMechanism::new::<()>(
        MechanismType::new_vendor_defined(0x8000_5302).unwrap(),
        None,
    ));
    let cpu0 = cpu_seconds("self");
    let t = Instant::now();
    for i in 0..ops {
        let _ = s.sign(&mech, key, &crypto::sm3(&i.to_be_bytes())).unwrap();
    }
    let wall = t.elapsed().as_secs_f64();
    ((cpu_seconds("self") - cpu0) / ops as f64, ops as f64 / wall)
}

/// Raw host verification of SM2 signatures.
fn raw_verify(ops: u32) -> (f64, f64) {
    use signature::hazmat::PrehashSigner;
    let sk = sm2::dsa::SigningKey::from_slice("1234567812345678", &[7; 32]).unwrap();
    let pk = sm2::PublicKey::from_affine(*sk.verifying_key().as_affine()).unwrap();
    let sigs: Vec<([u8; 32], Vec<u8>)> = (0..64u32)
        .map(|i| {
            let e = crypto::sm3(&i.to_be_bytes());
            let s: sm2::dsa::Signature = sk.sign_prehash(&e).unwrap();
            (e, s.to_bytes().to_vec())
        })
        .collect();
    let cpu0 = cpu_seconds("self");
    let t = Instant::now();
    for i in 0..ops as usize {
        let (e, s) = &sigs[i % sigs.len()];
        crypto::sm2::verify_e(&pk, e, s).unwrap();
    }
    let wall = t.elapsed().as_secs_f64();
    ((cpu_seconds("self") - cpu0) / ops as f64, ops as f64 / wall)
}

struct Run {
    requests: u64,
    errors: u64,
    wall: f64,
    daemon_cpu: f64,
    p50: Duration,
    p99: Duration,
}

async fn drive(dev: &Dev, conns: usize, secs: u64, body: Arc<Vec<u8>>, path: &'static str) -> Run {
    let cfg =
        seald::tls::client_config(&dev.dir.join("ca.pem"), &dev.dir.join("app.pem"), &dev.dir.join("app.key")).unwrap();
    let pid = dev.child.id().to_string();
    let cpu0 = cpu_seconds(&pid);
    let start = Instant::now();
    let until = start + Duration::from_secs(secs);
    let mut tasks = Vec::new();
    for _ in 0..conns {
        let (cfg, body) = (cfg.clone(), body.clone());
        let port = dev.port;
        tasks.push(tokio::spawn(async move {
            let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap();
            let tls =
                tokio_rustls::TlsConnector::from(cfg).connect("localhost".try_into().unwrap(), tcp).await.unwrap();
            let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls)).await.unwrap();
            drop(tokio::spawn(conn));
            let (mut lat, mut errors) = (Vec::new(), 0u64);
            while Instant::now() < until {
                let req = hyper::Request::post(path)
                    .header("host", "localhost")
                    .header("content-type", "application/json")
                    .body(Full::new(bytes::Bytes::from(body.as_ref().clone())))
                    .unwrap();
                let t = Instant::now();
                match sender.send_request(req).await {
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

fn main() {
    // `cargo bench` passes --bench; the two numbers, if given, are connections and seconds.
    let nums: Vec<u64> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let conns = nums.first().copied().unwrap_or(64) as usize;
    let secs = nums.get(1).copied().unwrap_or(8);
    let tmp = tempfile::tempdir().unwrap();
    let dev = start_dev(tmp.path());
    let (sign_cpu, sign_rate) = raw_token_sign(&dev, 2000);
    let (verify_cpu, verify_rate) = raw_verify(2000);
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    let digest = crypto::sm3(b"load");
    let sign_body =
        serde_json::to_vec(&serde_json::json!({"key": "dev-sm2", "input": "e", "data": b64(&digest)})).unwrap();
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
    let sign = rt.block_on(drive(&dev, conns, secs, Arc::new(sign_body), "/v1/sign"));
    let verify = rt.block_on(drive(&dev, conns, secs, Arc::new(verify_body), "/v1/verify"));

    println!("\nseald load: {conns} connections x {secs} s, SM2 (softtoken), 2 cores shared with the load generator");
    println!(
        "raw token sign (cryptoki C_Sign, softtoken): {:.0}/s, {:.1} µs CPU per signature",
        sign_rate,
        sign_cpu * 1e6
    );
    println!(
        "raw host verify (SM2):                      {:.0}/s, {:.1} µs CPU per verification",
        verify_rate,
        verify_cpu * 1e6
    );
    for (name, r, raw_cpu, raw_rate, cpu_target) in
        [("sign", &sign, sign_cpu, sign_rate, 1.4), ("verify", &verify, verify_cpu, verify_rate, 1.25)]
    {
        let rate = r.requests as f64 / r.wall;
        let cpu_per = r.daemon_cpu / r.requests.max(1) as f64;
        println!(
            "/v1/{name:6}: {rate:7.0} req/s ({:.0}% of raw; target >= 60%), p50 {:.2} ms, p99 {:.2} ms (target <= 10 ms), \
             daemon CPU {:.1} µs/req = {:.2}x raw (target <= {cpu_target}x), errors {}",
            100.0 * rate / raw_rate,
            r.p50.as_secs_f64() * 1e3,
            r.p99.as_secs_f64() * 1e3,
            cpu_per * 1e6,
            cpu_per / raw_cpu,
            r.errors
        );
    }
}
