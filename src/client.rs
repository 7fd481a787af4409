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
        let tcp = tokio::net::TcpStream::connect(self.addr).await.map_err(|e| err(&e))?;
        let name = rustls::pki_types::ServerName::try_from(self.host.clone()).map_err(|e| err(&e))?;
        let tls =
            tokio_rustls::TlsConnector::from(self.config.clone()).connect(name, tcp).await.map_err(|e| err(&e))?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls)).await.map_err(|e| err(&e))?;
        drop(tokio::spawn(conn));
        let req = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header("host", &self.host)
            .header("content-type", content_type)
            .body(Full::new(Bytes::from(bytes)))
            .map_err(|e| err(&e))?;
        let resp = sender.send_request(req).await.map_err(|e| err(&e))?;
        let status = resp.status().as_u16();
        let body = resp.into_body().collect().await.map_err(|e| err(&e))?.to_bytes().to_vec();
        Ok((status, body))
    }
}
