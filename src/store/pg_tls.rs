//! TLS to the cluster's database over the rustls already in the daemon (the PostgreSQL client's
//! `MakeTlsConnect`): the server's certificate must chain to `[store.postgres] ca` and name the
//! host of the URL. The URL's `sslmode` decides whether TLS is tried (`prefer`), required
//! (`require`) or not used (`disable`).

use postgres::tls::{ChannelBinding, MakeTlsConnect, TlsConnect, TlsStream};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Makes a TLS connector for each connection.
#[derive(Clone)]
pub struct DbTls(pub Arc<rustls::ClientConfig>);

/// One connection's TLS handshake, for the host it names.
pub struct DbTlsConnect {
    config: Arc<rustls::ClientConfig>,
    name: rustls::pki_types::ServerName<'static>,
}

/// A connection to the database inside TLS.
pub struct DbTlsStream<S>(tokio_rustls::client::TlsStream<S>);

impl<S> MakeTlsConnect<S> for DbTls
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = DbTlsStream<S>;
    type TlsConnect = DbTlsConnect;
    type Error = std::io::Error;

    fn make_tls_connect(&mut self, domain: &str) -> Result<DbTlsConnect, std::io::Error> {
        let name = rustls::pki_types::ServerName::try_from(domain.to_string()).map_err(|e| {
            std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("database host {domain}: {e}"))
        })?;
        Ok(DbTlsConnect { config: self.0.clone(), name })
    }
}

impl<S> TlsConnect<S> for DbTlsConnect
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = DbTlsStream<S>;
    type Error = std::io::Error;
    type Future = Pin<Box<dyn Future<Output = Result<DbTlsStream<S>, std::io::Error>> + Send>>;

    fn connect(self, stream: S) -> Self::Future {
        Box::pin(async move {
            let tls = tokio_rustls::TlsConnector::from(self.config).connect(self.name, stream).await?;
            Ok(DbTlsStream(tls))
        })
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for DbTlsStream<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for DbTlsStream<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> TlsStream for DbTlsStream<S> {
    /// No channel binding: SCRAM's binding would need the hash the server certificate was signed
    /// with, and the certificate's chain is verified already.
    fn channel_binding(&self) -> ChannelBinding {
        ChannelBinding::none()
    }
}
