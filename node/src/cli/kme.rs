//! `qward kme`: ETSI GS QKD 014 key delivery. `serve` puts the running
//! node's KME (`[kme]` in its config.toml) on HTTPS with mutual TLS for
//! local applications; `certs` makes a CA and the certificates a KME and
//! its SAEs present.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::Subcommand;
use futures::future::BoxFuture;
use qward_core::api::RpcError;
use qward_core::etsi014::{EtsiError, KeyContainer, KeyId, Status};

use super::status::{block_on, connect_waiting};
use crate::api::{ApiClient, QwardApiClient};
use crate::kme::server::{Backend, serve};
use crate::kme::tls::TlsFiles;

#[derive(Debug, Subcommand)]
pub enum KmeCommand {
    /// Serve ETSI GS QKD 014 (HTTPS, mutual TLS) to this node's SAEs, with
    /// keys agreed with other qward nodes, until Ctrl-C.
    Serve {
        /// Address to listen on (port 0: any free port, printed).
        #[arg(long, default_value = "127.0.0.1:8443")]
        listen: SocketAddr,
        /// The CA that signed every SAE's certificate (PEM).
        #[arg(long, value_name = "PEM")]
        ca: PathBuf,
        /// This KME's certificate (PEM).
        #[arg(long, value_name = "PEM")]
        cert: PathBuf,
        /// This KME's private key (PEM).
        #[arg(long, value_name = "PEM")]
        key: PathBuf,
    },
    /// Make a CA and certificates for KMEs and SAEs (ECDSA P-256); an
    /// SAE's id is its certificate's DNS name.
    Certs {
        /// Directory to write them to (existing files are never replaced).
        #[arg(long)]
        out: PathBuf,
        /// A KME to make a server certificate for (repeatable).
        #[arg(long = "kme", value_name = "NAME")]
        kmes: Vec<String>,
        /// An SAE to make a client certificate for (repeatable).
        #[arg(long = "sae", value_name = "SAE_ID")]
        saes: Vec<String>,
        /// Another host name or address for the KMEs' certificates (repeatable).
        #[arg(long = "host")]
        hosts: Vec<String>,
        /// Print the files written as one JSON object.
        #[arg(long)]
        json: bool,
    },
}

pub fn run(cmd: KmeCommand, data_dir: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    match cmd {
        KmeCommand::Certs {
            out,
            kmes,
            saes,
            hosts,
            json,
        } => {
            let written = crate::kme::certs::make(&out, &kmes, &saes, &hosts)?;
            if json {
                println!(
                    "{}",
                    serde_json::json!({ "dir": out, "files": written.files })
                );
                return Ok(ExitCode::SUCCESS);
            }
            for f in written.files {
                println!("{}", f.display());
            }
            Ok(ExitCode::SUCCESS)
        }
        KmeCommand::Serve {
            listen,
            ca,
            cert,
            key,
        } => block_on(async move {
            let tls = TlsFiles { ca, cert, key }.server_config()?;
            let backend = Arc::new(NodeBackend {
                data_dir,
                client: tokio::sync::Mutex::new(None),
            });
            // Fails early, with the reason, if the node is not running.
            backend
                .client()
                .await
                .map_err(|e| anyhow::anyhow!("{}", e.message))?;
            let listener = tokio::net::TcpListener::bind(listen)
                .await
                .with_context(|| format!("listening on {listen}"))?;
            let at = listener.local_addr()?;
            println!("KME serving ETSI GS QKD 014 on https://{at}");
            tracing::info!("KME serving ETSI GS QKD 014 on https://{at}");
            tokio::select! {
                r = serve(listener, tls, backend) => r.context("serving")?,
                _ = tokio::signal::ctrl_c() => {}
            }
            Ok(ExitCode::SUCCESS)
        }),
    }
}

/// The running node behind `kme serve`, through its control API (one
/// connection, made again when it drops).
struct NodeBackend {
    data_dir: Option<PathBuf>,
    client: tokio::sync::Mutex<Option<Arc<ApiClient>>>,
}

impl NodeBackend {
    async fn client(&self) -> Result<Arc<ApiClient>, EtsiError> {
        let mut held = self.client.lock().await;
        if let Some(c) = held.as_ref()
            && c.is_connected()
        {
            return Ok(c.clone());
        }
        let c = connect_waiting(self.data_dir.clone(), crate::kme::client::CALL_TIMEOUT)
            .await
            .map(Arc::new)
            .map_err(|e| EtsiError::unavailable(format!("the node is not reachable: {e:#}")))?;
        *held = Some(c.clone());
        Ok(c)
    }
}

fn etsi(e: jsonrpsee::core::ClientError) -> EtsiError {
    match crate::api::error_code(&e) {
        Some(code) => RpcError::new(i64::from(code), crate::api::error_text(&e)).to_etsi(),
        None => EtsiError::unavailable(format!("the node: {}", crate::api::error_text(&e))),
    }
}

impl Backend for NodeBackend {
    fn status(&self, caller: String, slave: String) -> BoxFuture<'_, Result<Status, EtsiError>> {
        Box::pin(async move {
            self.client()
                .await?
                .kme_status(caller, slave)
                .await
                .map_err(etsi)
        })
    }

    fn enc_keys(
        &self,
        caller: String,
        slave: String,
        number: u32,
        size: u32,
    ) -> BoxFuture<'_, Result<KeyContainer, EtsiError>> {
        Box::pin(async move {
            self.client()
                .await?
                .kme_enc_keys(caller, slave, number, size)
                .await
                .map_err(etsi)
        })
    }

    fn dec_keys(
        &self,
        caller: String,
        master: String,
        ids: Vec<KeyId>,
    ) -> BoxFuture<'_, Result<KeyContainer, EtsiError>> {
        Box::pin(async move {
            let ids = ids.iter().map(ToString::to_string).collect();
            self.client()
                .await?
                .kme_dec_keys(caller, master, ids)
                .await
                .map_err(etsi)
        })
    }
}
