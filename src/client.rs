//! A minimal mTLS HTTP/1.1 client for the daemon's API: `seald dev` checks itself with it, and
//! `sealctl` will talk to the daemon through it.

use crate::tls;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

/// A request failed before an HTTP answer came back.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ClientError(pub String);

/// Where a streamed answer's body goes, part by part, with the status and the announced length.
pub type Sink<'a> = dyn FnMut(u16, Option<u64>, &[u8]) -> Result<(), ClientError> + Send + 'a;

/// An mTLS client with one identity.
#[derive(Clone)]
pub struct Client {
    config: Arc<rustls::ClientConfig>,
    addr: SocketAddr,
    host: String,
}

impl Client {
    /// A client for `addr` (server name `host`), trusting `ca`, presenting `cert` and `key`.
    pub fn new(addr: SocketAddr, host: &str, ca: &Path, cert: &Path, key: &Path) -> Result<Self, ClientError> {
        let config = tls::client_config(ca, cert, key).map_err(|e| ClientError(e.to_string()))?;
        Ok(Client { config, addr, host: host.to_string() })
    }

    /// A client presenting the identity in a PKCS#12 file.
    pub fn with_p12(addr: SocketAddr, host: &str, ca: &Path, p12: &Path, password: &str) -> Result<Self, ClientError> {
        let config = tls::client_config_p12(ca, p12, password).map_err(|e| ClientError(e.to_string()))?;
        Ok(Client { config, addr, host: host.to_string() })
    }

    /// Sends one request; returns the status and the body.
    pub async fn request(
        &self,
        method: &str,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<(u16, Vec<u8>), ClientError> {
        let bytes = body.map(|b| serde_json::to_vec(b).unwrap_or_default()).unwrap_or_default();
        self.request_bytes(method, path, "application/json", bytes).await
    }

    /// Sends one request with a body of `content_type`; returns the status and the body.
    pub async fn request_bytes(
        &self,
        method: &str,
        path: &str,
        content_type: &str,
        bytes: Vec<u8>,
    ) -> Result<(u16, Vec<u8>), ClientError> {
        self.request_watched(method, path, content_type, bytes, None, &mut |_, _| {}).await
    }

    /// As [`Client::request_bytes`], giving up when any step (connect, handshake, the answer's head,
    /// each part of its body) takes longer than `idle`, and calling `progress` with the bytes of the
    /// answer received so far and its announced length, as they arrive: a long download goes on as
    /// long as it moves.
    pub async fn request_watched(
        &self,
        method: &str,
        path: &str,
        content_type: &str,
        bytes: Vec<u8>,
        idle: Option<std::time::Duration>,
        progress: &mut (dyn FnMut(u64, Option<u64>) + Send),
    ) -> Result<(u16, Vec<u8>), ClientError> {
        let mut out = Vec::new();
        let status = self
            .request_streamed(method, path, content_type, bytes, idle, &mut |_, total, chunk| {
                if out.is_empty() {
                    out.reserve(total.unwrap_or(0).min(64 << 20) as usize);
                }
                out.extend_from_slice(chunk);
                progress(out.len() as u64, total);
                Ok(())
            })
            .await?;
        Ok((status, out))
    }

    /// One request whose answer's body goes to `sink` part by part as it arrives, with the status
    /// and the announced length: memory stays at one part whatever the answer's size. Gives up as
    /// [`Client::request_watched`] does, or when `sink` fails. Returns the status.
    pub async fn request_streamed(
        &self,
        method: &str,
        path: &str,
        content_type: &str,
        bytes: Vec<u8>,
        idle: Option<std::time::Duration>,
        sink: &mut Sink<'_>,
    ) -> Result<u16, ClientError> {
        // The whole chain of causes: hyper's "connection error" hides the TLS alert that says why.
        let err = |e: &dyn std::error::Error| {
            let mut text = e.to_string();
            let mut cause = e.source();
            while let Some(c) = cause {
                text = format!("{text}: {c}");
                cause = c.source();
            }
            ClientError(text)
        };
        let stalled = |what: &str| {
            let secs = idle.map_or(0, |d| d.as_secs());
            ClientError(format!("no answer within {secs} s ({what}; --timeout, SEALCTL_TIMEOUT)"))
        };
        async fn within<T>(
            idle: Option<std::time::Duration>,
            f: impl std::future::Future<Output = T>,
        ) -> Result<T, ()> {
            match idle {
                Some(d) => tokio::time::timeout(d, f).await.map_err(|_| ()),
                None => Ok(f.await),
            }
        }
        let tcp = within(idle, tokio::net::TcpStream::connect(self.addr))
            .await
            .map_err(|()| stalled("connecting"))?
            .map_err(|e| err(&e))?;
        let name = rustls::pki_types::ServerName::try_from(self.host.clone()).map_err(|e| err(&e))?;
        let tls = within(idle, tokio_rustls::TlsConnector::from(self.config.clone()).connect(name, tcp))
            .await
            .map_err(|()| stalled("TLS handshake"))?
            .map_err(|e| err(&e))?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls)).await.map_err(|e| err(&e))?;
        drop(tokio::spawn(conn));
        let req = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header("host", &self.host)
            .header("content-type", content_type)
            .body(Full::new(Bytes::from(bytes)))
            .map_err(|e| err(&e))?;
        let resp = within(idle, sender.send_request(req))
            .await
            .map_err(|()| stalled("waiting for the answer"))?
            .map_err(|e| err(&e))?;
        let status = resp.status().as_u16();
        let total =
            resp.headers().get(hyper::header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
        let mut body = resp.into_body();
        loop {
            let frame = within(idle, body.frame()).await.map_err(|()| stalled("receiving the answer"))?;
            let Some(frame) = frame else { break };
            if let Ok(data) = frame.map_err(|e| err(&e))?.into_data() {
                sink(status, total, &data)?;
            }
        }
        Ok(status)
    }
}
