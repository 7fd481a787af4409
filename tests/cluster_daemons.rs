//! Two `seald run` processes sharing one PostgreSQL (and one token directory, as a network HSM gives
//! real nodes one token): load spread over both while one is killed with SIGKILL and started again,
//! five rounds; then the database itself crashed and restarted under load. Every acknowledged
//! signature must be in the cluster's audit export, every chain must verify offline, the surviving
//! node must answer every request it was sent, and both nodes must come back by themselves.

mod common;

use common::{Postgres, SoftToken};
use seald::client::Client;
use seald::crypto::KeyAlg;
use seald::devpki::{DevCa, Issued};
use seald::token::TokenPool;
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant};

struct Node {
    child: Child,
    addr: SocketAddr,
    config: PathBuf,
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn write_identity(dir: &Path, name: &str, i: &Issued) {
    std::fs::write(dir.join(format!("{name}.pem")), &i.cert_pem).unwrap();
    std::fs::write(dir.join(format!("{name}.key")), &i.key_pem).unwrap();
}

/// Writes node `n`'s configuration in `dir` and starts it.
fn start_node(dir: &Path, n: u16, url: &str, token: &SoftToken, key: &str, audit: &str) -> Node {
    let d = dir.display();
    let nd = dir.join(format!("node{n}"));
    std::fs::create_dir_all(&nd).unwrap();
    let config = nd.join("seald.toml");
    let text = format!(
        "[token]\nmodule = \"{}\"\nprofile = \"softtoken\"\nlabel = \"{}\"\npin_file = \"{}\"\npool_size = 4\n\n\
         [server]\nlisten = \"127.0.0.1:0\"\ncert = \"{d}/server.pem\"\nkey = \"{d}/server.key\"\nclient_ca = \"{d}/ca.pem\"\n\n\
         [store]\ndir = \"{nd}/store\"\nbackend = \"postgres\"\n\n\
         [store.postgres]\nurl = \"{url}\"\npool_size = 8\nconnect_timeout_ms = 1000\nstatement_timeout_ms = 3000\n\n\
         [cluster]\nnode_id = {n}\n\n\
         [audit]\ndir = \"{nd}/journal\"\nkey = \"{audit}\"\ncheckpoint_every = 50\n\n\
         [[keys]]\nid = \"{key}\"\nname = \"seal-sm2\"\n\n\
         [[accounts]]\nname = \"oa-system\"\nrole = \"app\"\nfingerprints = [\"{}\"]\nkeys = [\"seal-sm2\"]\n",
        token.module.display(),
        token.label,
        token.pin_file.display(),
        std::fs::read_to_string(dir.join("app.fp")).unwrap().trim(),
        nd = nd.display(),
    );
    std::fs::write(&config, text).unwrap();
    respawn(config)
}

fn respawn(config: PathBuf) -> Node {
    let (child, addr) = common::spawn_seald(&config, &[]);
    Node { child, addr, config }
}

fn client(dir: &Path, addr: SocketAddr) -> Client {
    Client::new(addr, "localhost", &dir.join("ca.pem"), &dir.join("app.pem"), &dir.join("app.key")).unwrap()
}

/// One signature through `c`: Some(audit seq) when acknowledged, None when the node is away, and
/// the status and body otherwise.
async fn sign(c: &Client, i: u64) -> Result<u64, (u16, String)> {
    let body = serde_json::json!({"key": "seal-sm2", "input": "digest", "data": base64_digest(i)});
    match tokio::time::timeout(Duration::from_secs(15), c.request("POST", "/v1/sign", Some(&body))).await {
        Ok(Ok((200, b))) => {
            let v: serde_json::Value = serde_json::from_slice(&b).unwrap();
            Ok(v["audit_seq"].as_u64().unwrap())
        }
        Ok(Ok((s, b))) => Err((s, String::from_utf8_lossy(&b).into_owned())),
        Ok(Err(e)) => Err((0, e.to_string())),
        Err(_) => Err((0, "no answer within 15 s".into())),
    }
}

fn base64_digest(i: u64) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(seald::crypto::sm3(format!("document {i}").as_bytes()))
}

async fn ready(c: &Client) -> u16 {
    match tokio::time::timeout(Duration::from_secs(10), c.request("GET", "/readyz", None)).await {
        Ok(Ok((s, _))) => s,
        _ => 0,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_nodes_lose_nothing_acknowledged_through_kills_and_a_database_restart() {
    let pg = Postgres::start();
    let url = tokio::task::block_in_place(|| pg.database("daemons"));
    let token = SoftToken::new("softtoken");
    let (key, audit) = {
        let pool = TokenPool::open(&token.config()).unwrap();
        (pool.generate(KeyAlg::Sm2, "seal-sm2").unwrap(), pool.generate(KeyAlg::Sm2, "audit").unwrap())
    };
    let dir = token.scratch("cluster");
    std::fs::create_dir_all(&dir).unwrap();
    let ca = DevCa::new("cluster test CA").unwrap();
    std::fs::write(dir.join("ca.pem"), ca.cert_pem()).unwrap();
    write_identity(&dir, "server", &ca.server(1).unwrap());
    let app = ca.client("oa-system", 10, -1, 30).unwrap();
    write_identity(&dir, "app", &app);
    std::fs::write(dir.join("app.fp"), &app.fingerprint).unwrap();
    let mut a = start_node(&dir, 1, &url, &token, &key.id.to_string(), &audit.id.to_string());
    let b = start_node(&dir, 2, &url, &token, &key.id.to_string(), &audit.id.to_string());
    let cb = client(&dir, b.addr);

    // (node, seq) of every acknowledged signature.
    let mut acked: BTreeSet<(u16, u64)> = BTreeSet::new();
    let mut next = 0u64;
    for round in 0..5 {
        let ca_ = client(&dir, a.addr);
        let kill_at = Instant::now() + Duration::from_millis(300);
        let mut killed = false;
        let started = Instant::now();
        while started.elapsed() < Duration::from_millis(900) {
            // Eight at a time, half to each node.
            let mut tasks = Vec::new();
            for k in 0..8u64 {
                next += 1;
                let (c, n) = if k % 2 == 0 { (ca_.clone(), 1u16) } else { (cb.clone(), 2u16) };
                let i = next;
                tasks.push(tokio::spawn(async move { (n, sign(&c, i).await) }));
            }
            if !killed && Instant::now() >= kill_at {
                // SIGKILL mid-load: requests in flight on node 1 are lost or answered, never half.
                a.child.kill().unwrap();
                let _ = a.child.wait();
                killed = true;
            }
            for t in tasks {
                let (n, r) = t.await.unwrap();
                match (n, r) {
                    (n, Ok(seq)) => {
                        assert!(acked.insert((n, seq)), "node {n} acknowledged seq {seq} twice");
                    }
                    (1, Err(_)) => {}
                    (2, Err(e)) => panic!("round {round}: the surviving node refused a request: {e:?}"),
                    _ => unreachable!(),
                }
            }
        }
        assert!(killed);
        a = respawn(a.config.clone());
    }
    assert!(acked.iter().filter(|(n, _)| *n == 1).count() > 20, "node 1 signed between the kills");
    assert!(acked.iter().filter(|(n, _)| *n == 2).count() > 50);

    // The database crashes under load: both nodes answer 503 store_unavailable within the timeouts
    // and are not ready; started again, both serve again without a restart.
    let ca_ = client(&dir, a.addr);
    for (n, c) in [(1u16, &ca_), (2, &cb)] {
        next += 1;
        let seq = sign(c, next).await.unwrap_or_else(|e| panic!("node {n} before the database stops: {e:?}"));
        let _ = acked.insert((n, seq));
    }
    pg.stop();
    for c in [&ca_, &cb] {
        next += 1;
        let asked = Instant::now();
        let r = sign(c, next).await;
        assert!(asked.elapsed() < Duration::from_secs(8), "an answer took {:?}", asked.elapsed());
        match r {
            Err((503, body)) => {
                assert!(body.contains("store_unavailable") || body.contains("audit_unavailable"), "{body}")
            }
            other => panic!("with the database down: {other:?}"),
        }
        assert_eq!(ready(c).await, 503, "not ready without the database");
    }
    pg.start_again();
    for (n, c) in [(1u16, &ca_), (2, &cb)] {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            next += 1;
            match sign(c, next).await {
                Ok(seq) => {
                    let _ = acked.insert((n, seq));
                    break;
                }
                Err(e) if Instant::now() < deadline => {
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(300)).await;
                }
                Err(e) => panic!("node {n} did not come back after the database did: {e:?}"),
            }
        }
        assert_eq!(ready(c).await, 200);
        // The detail says which node this is, that the database answers, and where every chain is.
        let (_, body) = c.request("GET", "/readyz", None).await.unwrap();
        let r: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(r["cluster"]["node"], n, "{r}");
        assert!(r["cluster"]["round_trip_ms"].as_f64().is_some(), "{r}");
        let nodes = r["cluster"]["nodes"].as_array().unwrap();
        assert_eq!(nodes.len(), 2, "{r}");
        assert!(nodes.iter().all(|x| x["head_seq"].as_u64().unwrap() > 0 && x["behind_ms"].as_u64().is_some()), "{r}");
    }

    // Offline: every chain verifies with the audit key alone, and every acknowledged signature
    // is there as a `sign` record of the node that acknowledged it.
    let store = seald::store::Store::open_postgres(&seald::store::PgSettings {
        url: url.clone(),
        password: None,
        pool_size: 2,
        connect_timeout: Duration::from_secs(3),
        statement_timeout: Duration::from_secs(30),
        node: 999,
        ca: None,
    })
    .unwrap();
    let mut export = Vec::new();
    let pool = TokenPool::open(&token.config()).unwrap();
    let signer = seald::token::TokenKey::open(&pool, &audit.id).unwrap();
    let _ = seald::audit::export_cluster(store.pg().unwrap(), &mut export, Some(&signer)).unwrap();
    let report = seald::audit::verify_cluster_export(&export[..], Some(&audit.public_key)).unwrap();
    assert!(report.ok(), "{:?}", report.finding);
    let mut signed = BTreeSet::new();
    for line in String::from_utf8(export).unwrap().lines().skip(1).filter(|l| l.starts_with("{\"node\"")) {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        if v["record"]["action"] == "sign" && v["record"]["outcome"] == "ok" {
            let _ = signed.insert((v["node"].as_u64().unwrap() as u16, v["record"]["seq"].as_u64().unwrap()));
        }
    }
    let lost: Vec<_> = acked.difference(&signed).collect();
    assert!(lost.is_empty(), "acknowledged but not in the export: {lost:?}");
    drop(b);
    drop(a);
}
