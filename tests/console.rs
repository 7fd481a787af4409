//! The web console in a real browser: Debian's Chromium, driven through ChromeDriver (the W3C
//! WebDriver protocol), each person's PKCS#12 in their own NSS database and the certificate chosen
//! by policy, as a government office would deploy it. One story, end to end: the system
//! administrator sets up a unit and its people; a unit administrator applies with an image; the
//! issuer approves, makes and publishes; the unit administrator grants the seal to the
//! application; the application seals a document through the API; the unit administrator sees the
//! use with its document name; the issuer files it with the police and verifies the sealed
//! document; the security officer reads the keys; the auditor verifies the chain; an application's
//! certificate cannot open the console; a cross-site form post is refused. A screenshot of each
//! page goes to `target/console-shots/` (and to `docs/console/` with `SEALD_UPDATE_SCREENSHOTS=1`).

mod common;

use common::{openssl, require_tool, SoftToken};
use seald::devpki::DevCa;
use serde_json::{json, Value};
use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

/// The WebDriver element key.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A WebDriver call to ChromeDriver on `port` (HTTP/1.1, one connection per call).
fn wd(port: u16, method: &str, path: &str, body: Option<Value>) -> Value {
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("chromedriver answers");
    s.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    // Read the head, then exactly the body its Content-Length gives (ChromeDriver may keep the
    // connection open).
    let mut raw = Vec::new();
    let mut buf = [0u8; 65536];
    let head_end = loop {
        if let Some(i) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = s.read(&mut buf).expect("chromedriver answers in time");
        assert!(n > 0, "chromedriver closed the connection early");
        raw.extend_from_slice(&buf[..n]);
    };
    let head = String::from_utf8_lossy(&raw[..head_end]).to_ascii_lowercase();
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("ChromeDriver gives a Content-Length");
    while raw.len() < head_end + length {
        let n = s.read(&mut buf).expect("chromedriver answers in time");
        assert!(n > 0, "chromedriver closed the connection early");
        raw.extend_from_slice(&buf[..n]);
    }
    let rest = String::from_utf8_lossy(&raw[head_end..head_end + length]).into_owned();
    let rest = rest.as_str();
    serde_json::from_str(rest).unwrap_or_else(|e| panic!("WebDriver {method} {path}: {e}: {rest}"))
}

/// One person's browser: ChromeDriver and Chromium with a home of their own, whose NSS database
/// holds their certificate and trusts the appliance's CA.
struct Browser {
    driver: Child,
    port: u16,
    session: String,
    who: String,
}

impl Browser {
    fn open(dir: &Path, who: &str) -> Browser {
        let home = dir.join(format!("home-{who}"));
        let nss = home.join(".pki/nssdb");
        std::fs::create_dir_all(&nss).unwrap();
        let db = format!("sql:{}", nss.display());
        let run = |args: &[&str], what: &str| {
            let out = Command::new(args[0]).args(&args[1..]).output().unwrap();
            assert!(
                out.status.success(),
                "{what}: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        };
        run(&["certutil", "-N", "-d", &db, "--empty-password"], "certutil -N");
        let p12 = dir.join(format!("{who}.p12"));
        run(&["pk12util", "-i", p12.to_str().unwrap(), "-d", &db, "-W", ""], "pk12util");
        let ca = dir.join("ca.pem");
        run(
            &["certutil", "-A", "-n", "seald test CA", "-t", "C,,", "-i", ca.to_str().unwrap(), "-d", &db],
            "certutil -A",
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .env("HOME", &home)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("chromedriver runs");
        let started = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(started.elapsed() < Duration::from_secs(30), "chromedriver did not listen");
            std::thread::sleep(Duration::from_millis(50));
        }
        let user_data = home.join("chromium");
        let caps = json!({ "capabilities": { "alwaysMatch": { "browserName": "chrome", "goog:chromeOptions": {
            "binary": "/usr/bin/chromium",
            "args": ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                     "--disable-background-networking", "--disable-component-update", "--disable-sync",
                     "--window-size=1280,1000", format!("--user-data-dir={}", user_data.display())]
        } } } });
        let v = wd(port, "POST", "/session", Some(caps));
        let session = v["value"]["sessionId"].as_str().unwrap_or_else(|| panic!("no session: {v}")).to_string();
        Browser { driver, port, session, who: who.to_string() }
    }

    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let v = wd(self.port, method, &format!("/session/{}{path}", self.session), body);
        assert!(v["value"]["error"].is_null(), "{} {method} {path}: {v}", self.who);
        v["value"].clone()
    }

    fn go(&self, url: &str) {
        let _ = self.call("POST", "/url", Some(json!({ "url": url })));
    }

    fn url(&self) -> String {
        self.call("GET", "/url", None).as_str().unwrap().to_string()
    }

    fn source(&self) -> String {
        self.call("GET", "/source", None).as_str().unwrap().to_string()
    }

    fn title(&self) -> String {
        self.call("GET", "/title", None).as_str().unwrap().to_string()
    }

    fn find(&self, css: &str) -> String {
        let v = self.call("POST", "/element", Some(json!({ "using": "css selector", "value": css })));
        v[ELEMENT]
            .as_str()
            .unwrap_or_else(|| panic!("{}: no element {css}: {v} on {}", self.who, self.source()))
            .to_string()
    }

    /// The element, if the page has it now.
    fn try_find(&self, css: &str) -> Option<String> {
        let path = format!("/session/{}/element", self.session);
        let v = wd(self.port, "POST", &path, Some(json!({ "using": "css selector", "value": css })));
        v["value"][ELEMENT].as_str().map(str::to_string)
    }

    fn click(&self, css: &str) {
        let e = self.find(css);
        let _ = self.call("POST", &format!("/element/{e}/click"), Some(json!({})));
    }

    /// Clicks something that loads a new page, and waits until the new page is there.
    fn press(&self, css: &str) {
        let old = self.find("html");
        self.click(css);
        let started = Instant::now();
        while self.try_find("html").is_none_or(|now| now == old) {
            assert!(started.elapsed() < Duration::from_secs(30), "{}: {css} loaded no page", self.who);
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn fill(&self, css: &str, text: &str) {
        let e = self.find(css);
        let _ = self.call("POST", &format!("/element/{e}/clear"), Some(json!({})));
        let _ = self.call("POST", &format!("/element/{e}/value"), Some(json!({ "text": text })));
    }

    /// Chooses a file for an `<input type=file>` (the browser reads it from disk).
    fn attach(&self, css: &str, file: &Path) {
        // ChromeDriver takes canonical paths only.
        let file = file.canonicalize().unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let e = self.find(css);
        let _ = self.call("POST", &format!("/element/{e}/value"), Some(json!({ "text": file.to_str().unwrap() })));
    }

    fn attribute(&self, css: &str, name: &str) -> String {
        let e = self.find(css);
        self.call("GET", &format!("/element/{e}/attribute/{name}"), None).as_str().unwrap_or_default().to_string()
    }

    fn value(&self, css: &str) -> String {
        let e = self.find(css);
        self.call("GET", &format!("/element/{e}/property/value"), None).as_str().unwrap_or_default().to_string()
    }

    fn text(&self, css: &str) -> String {
        let e = self.find(css);
        self.call("GET", &format!("/element/{e}/text"), None).as_str().unwrap().to_string()
    }

    /// A screenshot of the page, as `name.png`.
    fn shot(&self, name: &str) {
        use base64::Engine as _;
        let png = base64::engine::general_purpose::STANDARD
            .decode(self.call("GET", "/screenshot", None).as_str().unwrap())
            .unwrap();
        assert!(png.starts_with(b"\x89PNG"), "a screenshot is a PNG");
        let shots = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/console-shots");
        std::fs::create_dir_all(&shots).unwrap();
        std::fs::write(shots.join(format!("{name}.png")), &png).unwrap();
        if std::env::var("SEALD_UPDATE_SCREENSHOTS").as_deref() == Ok("1") {
            let docs = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("docs/console");
            std::fs::create_dir_all(&docs).unwrap();
            std::fs::write(docs.join(format!("{name}.png")), &png).unwrap();
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = wd(self.port, "DELETE", &format!("/session/{}", self.session), None);
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// The browser policy that picks the client certificate for the appliance's address without
/// asking (each person's NSS database holds only theirs). Removed when the test ends.
struct Policy(PathBuf);

impl Policy {
    fn set(port: u16) -> Policy {
        let dir = PathBuf::from("/etc/chromium/policies/managed");
        std::fs::create_dir_all(&dir)
            .unwrap_or_else(|e| panic!("{}: {e} (the console test runs as root)", dir.display()));
        let path = dir.join("seald-console-test.json");
        let rule = json!({ "pattern": format!("https://localhost:{port}"), "filter": {} }).to_string();
        std::fs::write(&path, json!({ "AutoSelectCertificateForUrls": [rule] }).to_string()).unwrap();
        Policy(path)
    }
}

impl Drop for Policy {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

struct Kill(Child);
impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A page from another site whose form posts to the console (a cross-site request forgery).
fn serve_attacker(target: String) -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            let page = format!(
                "<html><body><form method=post action=\"{target}\"><input name=action value=freeze>\
                 <input name=reason value=forged><input name=csrf value=00><button id=go>win a prize</button></form></body></html>"
            );
            let _ = write!(
                s,
                "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{page}",
                page.len()
            );
        }
    });
    port
}

#[test]
fn every_role_does_its_work_in_a_real_browser() {
    for (tool, package) in [
        ("chromium", "chromium"),
        ("chromedriver", "chromium-driver"),
        ("pk12util", "libnss3-tools"),
        ("certutil", "libnss3-tools"),
    ] {
        require_tool(tool, package);
    }
    let token = SoftToken::new("softtoken");
    let dir: PathBuf = token.scratch("console");
    std::fs::create_dir_all(&dir).unwrap();
    let ca = DevCa::new("console story CA").unwrap();
    std::fs::write(dir.join("ca.pem"), ca.cert_pem()).unwrap();
    let server = ca.server(1).unwrap();
    std::fs::write(dir.join("server.pem"), &server.cert_pem).unwrap();
    std::fs::write(dir.join("server.key"), &server.key_pem).unwrap();
    let people = ["sysadmin", "secofficer", "auditor", "issuer", "keeper", "oa", "clerk", "oa-renewed"];
    for (i, who) in people.iter().enumerate() {
        let c = ca.client(who, 10 + i as u64, -1, 30).unwrap();
        std::fs::write(dir.join(format!("{who}.pem")), &c.cert_pem).unwrap();
        std::fs::write(dir.join(format!("{who}.key")), &c.key_pem).unwrap();
        let (made, why) = openssl(&[
            "pkcs12",
            "-export",
            "-passout",
            "pass:",
            "-name",
            who,
            "-in",
            dir.join(format!("{who}.pem")).to_str().unwrap(),
            "-inkey",
            dir.join(format!("{who}.key")).to_str().unwrap(),
            "-out",
            dir.join(format!("{who}.p12")).to_str().unwrap(),
        ]);
        assert!(made, "{why}");
    }
    let d = dir.display();
    let config = format!(
        "[token]\nmodule = \"{}\"\nprofile = \"softtoken\"\nlabel = \"{}\"\npin_file = \"{}\"\npool_size = 4\n\n\
         [server]\nlisten = \"127.0.0.1:0\"\ncert = \"{d}/server.pem\"\nkey = \"{d}/server.key\"\nclient_ca = \"{d}/ca.pem\"\n\n\
         [store]\ndir = \"{d}/store\"\n\n[audit]\ndir = \"{d}/journal\"\nkey = \"00\"\n\n\
         [verify]\ntrust_anchors = \"{d}/pinned.pem\"\n\n[tsa]\nclock = \"trusted\"\n",
        token.module.display(),
        token.label,
        token.pin_file.display(),
    );
    let cfg = dir.join("seald.toml");
    std::fs::write(&cfg, config).unwrap();
    // The sample document's first signer is not in the samples: its own certificate is pinned.
    let receipt = std::fs::read(common::samples_dir().join("ofd/suwellsdk_icbc_receipt_20220101.ofd")).unwrap();
    let pinned: String = common::carried_certificates(&receipt).iter().map(|c| c.to_pem()).collect();
    std::fs::write(dir.join("pinned.pem"), pinned).unwrap();
    let pem = |n: &str| dir.join(format!("{n}.pem")).to_string_lossy().into_owned();
    let init = Command::new(env!("CARGO_BIN_EXE_seald"))
        .args(["init", "--config", cfg.to_str().unwrap(), "--new-audit-key"])
        .args(["--sysadmin", &pem("sysadmin"), "--secofficer", &pem("secofficer"), "--auditor", &pem("auditor")])
        .output()
        .unwrap();
    assert!(init.status.success(), "seald init: {}", String::from_utf8_lossy(&init.stderr));
    let (child, addr) = common::spawn_seald(&cfg, &[]);
    let _daemon = Kill(child);
    let port = addr.port();
    let _policy = Policy::set(port);
    let site = format!("https://localhost:{port}");
    let api = |who: &str| {
        seald::client::Client::new(
            addr,
            "localhost",
            &dir.join("ca.pem"),
            &dir.join(format!("{who}.pem")),
            &dir.join(format!("{who}.key")),
        )
        .unwrap()
    };
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();

    // The system administrator: a unit, then its people, each with the certificate file they
    // brought (uploaded through the browser).
    let admin = Browser::open(&dir, "sysadmin");
    admin.go(&format!("{site}/console/"));
    assert!(admin.title().contains("电子印章管理平台"), "Chinese first: {}", admin.title());
    admin.go(&format!("{site}/console/units"));
    admin.fill("input[name=id]", "bureau");
    admin.fill("input[name=name]", "某某市市场监督管理局");
    admin.press("form.box button[type=submit]");
    assert!(admin.source().contains("某某市市场监督管理局"), "{}", admin.source());
    admin.shot("units");
    let accounts = [
        ("issuer", "issuer", ""),
        ("keeper", "unit_admin", "bureau"),
        ("oa", "app", "bureau"),
        ("clerk", "unit_admin", "bureau"),
    ];
    for (name, role, unit) in accounts {
        admin.go(&format!("{site}/console/accounts"));
        admin.fill("input[name=name]", name);
        admin.click(&format!("select[name=role] option[value={role}]"));
        if !unit.is_empty() {
            admin.fill("input[name=unit]", unit);
        }
        admin.attach("form.box input[name=certificate]", &dir.join(format!("{name}.pem")));
        admin.press("form.box button[type=submit]");
        assert!(admin.url().ends_with("/console/accounts"), "{name}: {}", admin.source());
        assert!(admin.source().contains(&format!("data-account=\"{name}\"")), "{name} listed: {}", admin.source());
    }
    admin.shot("accounts");
    // A renewed certificate bound to the application beside its first one; both work.
    admin.click("tr[data-account=oa] details summary");
    admin.attach("tr[data-account=oa] input[name=certificate]", &dir.join("oa-renewed.pem"));
    admin.click("tr[data-account=oa] input[name=keep]");
    admin.press("tr[data-account=oa] form[action$='/certificate'] button[type=submit]");
    assert!(admin.url().ends_with("/console/accounts"), "{}", admin.source());
    for cert in ["oa", "oa-renewed"] {
        let (status, who) = rt.block_on(api(cert).request("GET", "/v1/whoami", None)).unwrap();
        let who: Value = serde_json::from_slice(&who).unwrap();
        assert_eq!((status, who["account"].as_str()), (200, Some("oa")), "{cert}");
    }

    // The unit administrator applies with the seal's picture.
    let keeper = Browser::open(&dir, "keeper");
    keeper.go(&format!("{site}/console/seals/new"));
    keeper.fill("input[name=name]", "某某市市场监督管理局合同专用章");
    keeper.click("select[name=kind] option[value=contract]");
    keeper.attach("input[name=image]", &PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("assets/dev-seal.png"));
    keeper.shot("apply");
    keeper.press("form.box button[type=submit]");
    let seal_url = keeper.url();
    let seal = seal_url.rsplit('/').next().unwrap().to_string();
    assert!(seal.chars().all(|c| c.is_ascii_digit()) && !seal.is_empty(), "a seal page: {seal_url}");
    assert!(keeper.text("#state").contains("待审批"), "applied");

    // The issuer: the inbox, then approve, make and publish, each confirmed on its own page.
    let issuer = Browser::open(&dir, "issuer");
    issuer.go(&format!("{site}/console/inbox"));
    assert!(issuer.source().contains(&format!("data-seal=\"{seal}\"")), "the application is in the inbox");
    issuer.shot("inbox");
    for (action, state) in [("approve", "已批准"), ("make", "已制作"), ("publish", "在用")] {
        issuer.go(&format!("{site}/console/seals/{seal}"));
        issuer.press(&format!("a[href$='confirm?action={action}']"));
        if action == "approve" {
            issuer.fill("input[name=reason]", "材料齐全");
            issuer.shot("confirm");
        }
        issuer.press("form button[type=submit]");
        assert!(issuer.url().ends_with(&format!("/console/seals/{seal}")), "{action}: {}", issuer.source());
        assert!(issuer.text("#state").contains(state), "{action}: {}", issuer.text("#state"));
    }

    // An outside CA's way: the issuer downloads the seal's request, and binds a certificate for
    // the seal's key (here the one it has: any other key is refused by the registry).
    let (status, csr) = rt.block_on(api("issuer").request("GET", &format!("/console/seals/{seal}/csr"), None)).unwrap();
    assert_eq!(status, 200);
    let csr_path = dir.join("seal.csr");
    std::fs::write(&csr_path, &csr).unwrap();
    let (parsed, why) = openssl(&["req", "-in", csr_path.to_str().unwrap(), "-noout", "-subject"]);
    assert!(parsed, "OpenSSL reads the request: {why}");
    let (_, shown) = rt.block_on(api("issuer").request("GET", &format!("/v1/seals/{seal}"), None)).unwrap();
    let shown: Value = serde_json::from_slice(&shown).unwrap();
    let cert_path = dir.join("seal-cert.pem");
    std::fs::write(&cert_path, shown["versions"][0]["cert_pem"].as_str().unwrap()).unwrap();
    issuer.go(&format!("{site}/console/seals/{seal}"));
    issuer.click("details:has(form[action$='/certificate']) summary");
    issuer.attach("form[action$='/certificate'] input[name=certificate]", &cert_path);
    issuer.press("form[action$='/certificate'] button[type=submit]");
    assert!(issuer.text("#timeline").contains("绑定证书"), "{}", issuer.source());
    assert!(issuer.text("#ses").contains("GB/T 38540"), "the SESeal's fields show");

    // The unit administrator grants it to the application and sets a daily limit.
    keeper.go(&format!("{site}/console/seals/{seal}"));
    keeper.fill("form[action$='/grants'] input[name=account]", "oa");
    keeper.press("form[action$='/grants'] button[type=submit]");
    assert!(keeper.text("#grants").contains("oa"), "granted");
    keeper.fill("input[name=daily_limit]", "500");
    keeper.press("form[action$='/policy'] button[type=submit]");
    assert!(keeper.source().contains("每日 500"), "the limit shows");
    keeper.shot("seal");

    // The application seals a document through the API, naming it.
    let path = format!("/v1/seals/{seal}/seal-ofd?page=1&x=20&y=30&name=%E5%90%88%E5%90%8C-2026-001.ofd");
    let (status, sealed) = rt.block_on(api("oa").request_bytes("POST", &path, "application/ofd", receipt)).unwrap();
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&sealed));
    let sealed_path = dir.join("sealed.ofd");
    std::fs::write(&sealed_path, &sealed).unwrap();

    // The unit's clerk (another unit administrator) is granted the seal by the keeper, and seals
    // a document by hand: upload, click on the page where the seal goes, download.
    keeper.go(&format!("{site}/console/seals/{seal}"));
    keeper.fill("form[action$='/grants'] input[name=account]", "clerk");
    keeper.press("form[action$='/grants'] button[type=submit]");
    assert!(keeper.text("#grants").contains("clerk"), "granted to the clerk");
    let clerk = Browser::open(&dir, "clerk");
    clerk.go(&format!("{site}/console/seal-document"));
    let sample = common::samples_dir().join("ofd/suwellsdk_icbc_receipt_20220101.ofd");
    clerk.attach("input[name=document]", &sample);
    clerk.fill("input[name=name]", "回单-2026-002.ofd");
    clerk.press("form.box button[type=submit]");
    assert!(clerk.url().contains("/console/seal-document/") && clerk.url().ends_with("?page=1"), "{}", clerk.source());
    let view_box = clerk.attribute("svg#page", "viewBox");
    let size: Vec<f64> = view_box.split_whitespace().map(|v| v.parse().unwrap()).collect();
    assert!(size.len() == 4 && size[2] > 50.0 && size[3] > 50.0, "the page has its size in mm: {view_box}");
    assert!(clerk.source().contains("<text"), "the page's text is drawn");
    clerk.click("svg#page");
    let (x, y): (f64, f64) =
        (clerk.value("input[name=x]").parse().unwrap(), clerk.value("input[name=y]").parse().unwrap());
    // A click at the page's centre puts the 40 mm seal's centre there.
    assert!(
        (x - (size[2] / 2.0 - 20.0)).abs() < 1.5 && (y - (size[3] / 2.0 - 20.0)).abs() < 1.5,
        "x {x}, y {y} on {view_box}"
    );
    clerk.shot("seal-document");
    clerk.press("form.box button[type=submit]");
    assert!(clerk.source().contains("id=\"sealed\""), "{}", clerk.source());
    clerk.shot("sealed");
    let download = clerk.attribute("#download", "href");
    let path = download.strip_prefix(&site).unwrap_or(&download).to_string();
    let (status, by_hand) = rt.block_on(api("clerk").request("GET", &path, None)).unwrap();
    assert_eq!(status, 200);
    let (status, verdict) =
        rt.block_on(api("issuer").request_bytes("POST", "/v1/verify/ofd", "application/ofd", by_hand)).unwrap();
    let verdict: Value = serde_json::from_slice(&verdict).unwrap();
    assert_eq!((status, verdict["verdict"].as_str()), (200, Some("valid")), "{verdict}");
    assert_eq!(verdict["signatures"].as_array().map(Vec::len), Some(2), "the sample's seal and ours");
    // Someone else's draft is no one else's.
    let (status, _) = rt.block_on(api("keeper").request("GET", &path, None)).unwrap();
    assert_eq!(status, 404);
    drop(clerk);

    // An application's certificate cannot open the console.
    let oa = Browser::open(&dir, "oa");
    oa.go(&format!("{site}/console/"));
    assert!(oa.source().contains("console_forbidden") && oa.source().contains("不能登录管理控制台"), "{}", oa.source());
    oa.shot("app-refused");
    drop(oa);

    // The unit administrator reads the use with its document name, and exports it.
    keeper.go(&format!("{site}/console/seals/{seal}/usage"));
    let usage = keeper.text("#usage");
    assert!(
        usage.contains("合同-2026-001.ofd") && usage.contains("回单-2026-002.ofd") && usage.contains("clerk"),
        "{usage}"
    );
    keeper.shot("usage");
    let (status, csv) =
        rt.block_on(api("keeper").request("GET", &format!("/console/seals/{seal}/usage.csv"), None)).unwrap();
    let csv = String::from_utf8_lossy(&csv).into_owned();
    assert_eq!(status, 200, "{csv}");
    assert!(csv.starts_with("\u{feff}seq,time,account") && csv.contains(",oa,ok,1,ofd,合同-2026-001.ofd,"), "{csv}");
    keeper.go(&format!("{site}/console/"));
    keeper.shot("dashboard-unit");

    // The issuer: the dashboard counts today's use; the filing is acknowledged; the sealed
    // document verifies.
    issuer.go(&format!("{site}/console/"));
    assert!(issuer.text("#today-by-seal").contains(&seal), "today's uses");
    issuer.shot("dashboard");
    issuer.go(&format!("{site}/console/filings?state=pending"));
    assert!(issuer.text("#filings").contains("某某市市场监督管理局合同专用章"));
    issuer.shot("filings");
    issuer.fill("#filings input[name=reference]", "GA-2026-0001");
    issuer.press("#filings button[type=submit]");
    issuer.go(&format!("{site}/console/filings?state=acked"));
    assert!(issuer.text("#filings").contains("GA-2026-0001"), "acknowledged");
    issuer.go(&format!("{site}/console/seals"));
    issuer.shot("seals");
    issuer.go(&format!("{site}/console/verify"));
    issuer.attach("input[name=file]", &sealed_path);
    issuer.press("form.box button[type=submit]");
    let report = issuer.source();
    assert!(report.contains("badge verdict valid"), "the sealed document verifies: {report}");
    issuer.shot("verify");

    // A form on another site that posts to the console is refused, and nothing changes.
    let evil = serve_attacker(format!("{site}/console/seals/{seal}/act"));
    issuer.go(&format!("http://127.0.0.1:{evil}/"));
    issuer.press("#go");
    assert!(issuer.source().contains("csrf_refused"), "{}", issuer.source());
    let (_, s) = rt.block_on(api("issuer").request("GET", &format!("/v1/seals/{seal}"), None)).unwrap();
    let s: Value = serde_json::from_slice(&s).unwrap();
    assert_eq!(s["state"], "active", "the forged freeze did nothing");
    // Nor does a post with no origin at all (a tool, not a browser): the API is the tool's door.
    let (status, _) = rt
        .block_on(api("issuer").request_bytes(
            "POST",
            &format!("/console/seals/{seal}/act"),
            "application/x-www-form-urlencoded",
            b"action=freeze&csrf=00".to_vec(),
        ))
        .unwrap();
    assert_eq!(status, 403);

    // A change (变更): a new seal under a new name replaces this one, which is revoked.
    issuer.go(&format!("{site}/console/seals/{seal}"));
    issuer.click("details summary");
    issuer.fill("form[action$='/change'] input[name=name]", "某某市市场监督管理局合同专用章（2027）");
    issuer.fill("form[action$='/change'] input[name=reason]", "单位更名");
    issuer.press("form[action$='/change'] button[type=submit]");
    let changed = issuer.url().rsplit('/').next().unwrap().to_string();
    assert_ne!(changed, seal, "the change made a new seal");
    assert!(issuer.text("#state").contains("已制作"), "{}", issuer.source());
    assert!(issuer.source().contains(&format!("href=\"/console/seals/{seal}\"")), "it names the seal it replaces");
    let (_, old) = rt.block_on(api("issuer").request("GET", &format!("/v1/seals/{seal}"), None)).unwrap();
    let old: Value = serde_json::from_slice(&old).unwrap();
    assert_eq!((old["state"].as_str(), old["replaced_by"].as_str()), (Some("revoked"), Some(changed.as_str())));

    // English is a switch away.
    issuer.go(&format!("{site}/console/"));
    issuer.press("header .lang a");
    assert!(issuer.title().starts_with("Dashboard"), "{}", issuer.title());
    issuer.shot("dashboard-en");
    drop(issuer);

    // The security officer: keys and the token.
    let officer = Browser::open(&dir, "secofficer");
    officer.go(&format!("{site}/console/keys"));
    assert!(officer.source().contains(&format!("data-key=\"seal:{seal}\"")), "the seal's key is listed");
    assert!(officer.text("#token").contains("正常"));
    officer.shot("keys");
    drop(officer);

    // The auditor: the journal, this seal's records, and the chain verified.
    let auditor = Browser::open(&dir, "auditor");
    auditor.go(&format!("{site}/console/audit?seal={seal}"));
    let records = auditor.text("#records");
    assert!(records.contains("seal.use") && records.contains("seal.publish"), "{records}");
    auditor.shot("audit");
    auditor.press("a[href='/console/audit/verify']");
    assert!(auditor.source().contains("id=\"chain-ok\""), "{}", auditor.source());
    auditor.shot("audit-verify");
}
