//! A TCP proxy in front of a real service, for fault tests: [`Proxy::cut`] closes every open
//! connection and turns new ones away, which is what a client sees when the server goes down;
//! [`Proxy::restore`] lets them through again. The service behind it keeps running for the
//! tests that share it.

use anyhow::Result;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// A proxy on a free localhost port, forwarding to `target` while up.
#[derive(Debug)]
pub struct Proxy {
    port: u16,
    up: watch::Sender<bool>,
    accepting: JoinHandle<()>,
}

impl Proxy {
    /// Starts forwarding localhost:[`Proxy::port`] to `target` (`host:port`).
    pub async fn start(target: String) -> Result<Proxy> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let (up, _) = watch::channel(true);
        let accepting = tokio::spawn(accept(listener, target, up.subscribe()));
        Ok(Proxy {
            port,
            up,
            accepting,
        })
    }

    /// The port clients connect to.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Closes every connection and turns new ones away until [`Proxy::restore`].
    pub fn cut(&self) {
        self.up.send_replace(false);
    }

    /// Lets connections through again.
    pub fn restore(&self) {
        self.up.send_replace(true);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.cut();
        self.accepting.abort();
    }
}

async fn accept(listener: TcpListener, target: String, up: watch::Receiver<bool>) {
    while let Ok((mut client, _)) = listener.accept().await {
        if !*up.borrow() {
            continue; // dropped: closed at once
        }
        let (target, mut up) = (target.clone(), up.clone());
        tokio::spawn(async move {
            let Ok(mut server) = TcpStream::connect(&target).await else {
                return;
            };
            tokio::select! {
                _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                _ = up.wait_for(|up| !*up) => {}
            }
        });
    }
}
