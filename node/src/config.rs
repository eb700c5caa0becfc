//! `config.toml`: a node's settings, with documented defaults and a template
//! that `qward init` writes for people to edit.

use std::path::Path;

use qward_core::identity::Role;
use serde::{Deserialize, Serialize};

/// Default TCP port for libp2p.
pub const DEFAULT_P2P_PORT: u16 = 7400;
/// Default port of the local control API (127.0.0.1 only).
pub const DEFAULT_API_PORT: u16 = 7500;

/// A peer to dial at start: its chain account (ed25519 public key, hex) and address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BootstrapPeer {
    pub account: String,
    pub addr: String,
}

/// The node configuration (`<data-dir>/config.toml`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// A person-readable name for this node ("st-marys", "dr-okafor").
    pub name: String,
    /// hospital, doctor, patient or auditor.
    pub role: Role,
    /// libp2p listen addresses.
    #[serde(default = "default_listen", deserialize_with = "one_or_many")]
    pub listen: Vec<String>,
    /// Addresses other members reach this node at, when not the listen
    /// addresses (a host name, NAT, a container network): announced to
    /// members in their place. `/dns4/st-marys.example/tcp/7400` works.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub external_addresses: Vec<String>,
    /// Peers dialled at start and redialled when disconnected.
    #[serde(default)]
    pub bootstrap: Vec<BootstrapPeer>,
    /// Port of the control API on 127.0.0.1.
    #[serde(default = "default_api_port")]
    pub api_port: u16,
    /// Ignored: the block timing is on the chain (genesis `[consensus]`,
    /// changed by a validators' vote). Read so that older files still load;
    /// `run` warns while it is there.
    #[serde(default, skip_serializing)]
    pub block_interval_ms: Option<u64>,
    /// Serve Prometheus metrics, `/health` and `/ready` (`run --metrics`).
    #[serde(default)]
    pub metrics: bool,
    /// The address the metrics endpoint binds (127.0.0.1 unless a scraper
    /// on another host must reach it).
    #[serde(default = "default_metrics_bind")]
    pub metrics_bind: std::net::IpAddr,
    /// Port of the metrics endpoint (default: the API port + 1000).
    #[serde(default)]
    pub metrics_port: Option<u16>,
    /// This node's account (public key, hex), for people reading the file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    /// The genesis file, relative to the data directory (default genesis.toml).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub genesis: Option<String>,
    /// Key agreement (`/qward/qkd/1`): the BB84 session, key rotation and the
    /// simulated quantum channel of every link.
    #[serde(default)]
    pub key_agreement: KeyAgreementConfig,
    /// For unattended nodes: a file holding the passphrase of the node's data
    /// key (relative paths are from the data directory). Whoever can read it
    /// and a copy of the data directory can read every record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub passphrase_file: Option<String>,
    /// Seconds without use after which a user's API session locks
    /// (automatic logoff); 0: never. The node's own cookie never locks.
    #[serde(default = "default_idle_logoff_s")]
    pub api_idle_logoff_s: u64,
    /// Erase this node's copy of a record when the patient it is about asks
    /// (a `request-erasure` on the chain); off: the request is logged for a
    /// person to decide (records a law requires to be kept).
    #[serde(default = "default_true")]
    pub erase_on_patient_request: bool,
    /// This node as an ETSI GS QKD 014 key management entity for local
    /// applications (`qward kme serve`): which SAEs it serves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kme: Option<KmeConfig>,
    /// Links whose QKD key comes from an ETSI GS QKD 014 KME instead of
    /// simulated BB84.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub kme_source: Vec<KmeSourceConfig>,
}

/// `[kme]`: the SAEs this node's KME serves.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KmeConfig {
    /// SAEs attached to this node's KME (the DNS name of each one's
    /// client certificate).
    #[serde(default)]
    pub local_saes: Vec<String>,
    /// SAEs attached to other qward nodes' KMEs: SAE id -> that node (a
    /// contact name or account hex).
    #[serde(default)]
    pub remote_saes: std::collections::BTreeMap<String, String>,
}

/// `[[kme_source]]`: one link keyed by a KME.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KmeSourceConfig {
    /// The peer of the link (a contact name or account hex).
    pub peer: String,
    /// This node's KME (`https://host:port`).
    pub url: String,
    /// The peer's SAE id at its own KME.
    pub peer_sae: String,
    /// PEM files (relative paths are from the data directory): the CA,
    /// and this node's SAE certificate and key.
    pub ca: String,
    pub cert: String,
    pub key: String,
}

fn default_true() -> bool {
    true
}

/// Fifteen minutes: a common automatic-logoff time for clinical systems.
pub const DEFAULT_IDLE_LOGOFF_S: u64 = 900;

fn default_idle_logoff_s() -> u64 {
    DEFAULT_IDLE_LOGOFF_S
}

/// The `[key_agreement]` table.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KeyAgreementConfig {
    /// Qubits Alice sends per session.
    pub qubits: u64,
    /// Abort when the observed QBER exceeds this; as responder, refuse
    /// initiators proposing a laxer threshold.
    pub max_qber: f64,
    /// Envelopes one key may seal before a new session is run.
    pub key_max_uses: u64,
    /// How long one key may seal, in milliseconds.
    pub key_max_age_ms: u64,
    /// The simulated channel of every link (changeable per link at run time
    /// through the control API, `link_set`).
    pub distance_km: f64,
    pub loss_db_per_km: f64,
    pub detector_efficiency: f64,
    pub dark_count_prob: f64,
    pub misalignment: f64,
    /// Fraction of qubits an intercept-resend eavesdropper attacks (a demo
    /// setting; 0 = none).
    pub eve_fraction: f64,
}

impl Default for KeyAgreementConfig {
    fn default() -> Self {
        let link = qward_core::keyagree::LinkModel::default();
        let policy = qward_core::keystore::RotationPolicy::default();
        KeyAgreementConfig {
            qubits: 200_000,
            max_qber: 0.11,
            key_max_uses: policy.max_uses,
            key_max_age_ms: policy.max_age_ms,
            distance_km: link.channel.distance_km,
            loss_db_per_km: link.channel.loss_db_per_km,
            detector_efficiency: link.channel.detector_efficiency,
            dark_count_prob: link.channel.dark_count_prob,
            misalignment: link.channel.misalignment,
            eve_fraction: link.eve_fraction,
        }
    }
}

impl KeyAgreementConfig {
    /// The link model of this node's setting.
    pub fn link(&self) -> qward_core::keyagree::LinkModel {
        let mut link = qward_core::keyagree::LinkModel::default();
        link.channel.distance_km = self.distance_km;
        link.channel.loss_db_per_km = self.loss_db_per_km;
        link.channel.detector_efficiency = self.detector_efficiency;
        link.channel.dark_count_prob = self.dark_count_prob;
        link.channel.misalignment = self.misalignment;
        link.eve_fraction = self.eve_fraction;
        link
    }

    /// The BB84 parameters of a session this node starts.
    pub fn protocol(&self) -> qward_core::qkd::ProtocolParams {
        qward_core::qkd::ProtocolParams {
            qubits: self.qubits,
            max_qber: self.max_qber,
            ..qward_core::qkd::ProtocolParams::default()
        }
    }

    pub fn rotation(&self) -> qward_core::keystore::RotationPolicy {
        qward_core::keystore::RotationPolicy {
            max_uses: self.key_max_uses,
            max_age_ms: self.key_max_age_ms,
        }
    }

    fn validate(&self) -> Result<(), String> {
        self.link()
            .validate()
            .map_err(|e| format!("[key_agreement] {e}"))?;
        self.protocol()
            .validate()
            .map_err(|e| format!("[key_agreement] {e}"))?;
        if self.key_max_uses == 0 || self.key_max_age_ms == 0 {
            return Err("[key_agreement] key_max_uses and key_max_age_ms must be positive".into());
        }
        Ok(())
    }
}

fn default_listen() -> Vec<String> {
    vec![format!("/ip4/0.0.0.0/tcp/{DEFAULT_P2P_PORT}")]
}
fn default_api_port() -> u16 {
    DEFAULT_API_PORT
}
fn default_metrics_bind() -> std::net::IpAddr {
    std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST)
}

fn one_or_many<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(s) => vec![s],
        OneOrMany::Many(v) => v,
    })
}

/// Why a configuration could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path} is not a valid qward config: {reason}")]
    Parse { path: String, reason: String },
    #[error("{path}: {reason}")]
    Invalid { path: String, reason: String },
}

/// Settings given as `qward run` flags or `QWARD_*` environment variables,
/// which take precedence over config.toml (a flag over its variable: clap
/// reads the variable only when the flag is absent).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Overrides {
    pub api_port: Option<u16>,
    pub listen: Vec<String>,
    pub external_addresses: Vec<String>,
    pub metrics: Option<bool>,
    pub metrics_bind: Option<std::net::IpAddr>,
    pub metrics_port: Option<u16>,
    pub passphrase_file: Option<String>,
}

impl Config {
    /// Applies `overrides` over the file's settings and checks the result
    /// as a loaded file is checked.
    pub fn apply(&mut self, overrides: &Overrides) -> Result<(), ConfigError> {
        let o = overrides.clone();
        if let Some(port) = o.api_port {
            self.api_port = port;
        }
        if !o.listen.is_empty() {
            self.listen = o.listen;
        }
        if !o.external_addresses.is_empty() {
            self.external_addresses = o.external_addresses;
        }
        if let Some(on) = o.metrics {
            self.metrics = on;
        }
        if let Some(ip) = o.metrics_bind {
            self.metrics_bind = ip;
        }
        if o.metrics_port.is_some() {
            self.metrics_port = o.metrics_port;
        }
        if o.passphrase_file.is_some() {
            self.passphrase_file = o.passphrase_file;
        }
        self.validate("the command line and environment")
    }

    /// Where the metrics endpoint listens: `metrics_bind`, on
    /// `metrics_port` or the API port + 1000.
    pub fn metrics_addr(&self) -> std::net::SocketAddr {
        let port = self
            .metrics_port
            .unwrap_or(self.api_port.saturating_add(1000));
        std::net::SocketAddr::new(self.metrics_bind, port)
    }

    /// A new node's configuration with every default.
    pub fn new(name: &str, role: Role) -> Self {
        Config {
            name: name.to_string(),
            role,
            listen: default_listen(),
            external_addresses: Vec::new(),
            bootstrap: Vec::new(),
            api_port: DEFAULT_API_PORT,
            block_interval_ms: None,
            metrics: false,
            metrics_bind: default_metrics_bind(),
            metrics_port: None,
            account: None,
            genesis: None,
            key_agreement: KeyAgreementConfig::default(),
            passphrase_file: None,
            api_idle_logoff_s: DEFAULT_IDLE_LOGOFF_S,
            erase_on_patient_request: true,
            kme: None,
            kme_source: Vec::new(),
        }
    }

    /// Reads and checks `config.toml`.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: shown.clone(),
            source,
        })?;
        Self::parse(&text, &shown)
    }

    /// Parses and checks config text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Self, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: origin.to_string(),
            reason: e.to_string(),
        })?;
        config.validate(origin)?;
        Ok(config)
    }

    fn validate(&self, origin: &str) -> Result<(), ConfigError> {
        let invalid = |reason: String| ConfigError::Invalid {
            path: origin.to_string(),
            reason,
        };
        if self.name.trim().is_empty() || self.name.len() > 64 {
            return Err(invalid("name must be 1 to 64 characters".into()));
        }
        if self.listen.is_empty() {
            return Err(invalid("listen must name at least one address".into()));
        }
        for addr in self
            .listen
            .iter()
            .chain(&self.external_addresses)
            .chain(self.bootstrap.iter().map(|b| &b.addr))
        {
            if !addr.starts_with('/') {
                return Err(invalid(format!(
                    "'{addr}' is not a multiaddr (expected e.g. /ip4/127.0.0.1/tcp/7400)"
                )));
            }
        }
        for peer in &self.bootstrap {
            qward_core::identity::AccountId::from_hex(&peer.account).map_err(|_| {
                invalid(format!(
                    "bootstrap account '{}' is not 64 hex digits",
                    peer.account
                ))
            })?;
        }
        if self
            .passphrase_file
            .as_deref()
            .is_some_and(|f| f.trim().is_empty())
        {
            return Err(invalid("passphrase_file must not be empty".into()));
        }
        if self.api_port == 0 {
            return Err(invalid("api_port must not be 0".into()));
        }
        if self.metrics_port == Some(0) {
            return Err(invalid("metrics_port must not be 0".into()));
        }
        if self.metrics && self.metrics_addr().port() == self.api_port {
            return Err(invalid(format!(
                "metrics_port and api_port are both {}",
                self.api_port
            )));
        }
        self.key_agreement.validate().map_err(invalid)?;
        let sae = |id: &str| qward_core::etsi014::check_sae_id(id).map_err(|e| invalid(e.message));
        if let Some(k) = &self.kme {
            for id in k.local_saes.iter().chain(k.remote_saes.keys()) {
                sae(id)?;
            }
            if let Some(both) = k
                .local_saes
                .iter()
                .find(|id| k.remote_saes.contains_key(*id))
            {
                return Err(invalid(format!(
                    "kme: SAE {both} is named both local and remote"
                )));
            }
        }
        for (i, src) in self.kme_source.iter().enumerate() {
            sae(&src.peer_sae)?;
            if !src.url.starts_with("https://") {
                return Err(invalid(format!(
                    "kme_source {}: url {:?} must start with https://",
                    i + 1,
                    src.url
                )));
            }
            if self.kme_source[..i].iter().any(|o| o.peer == src.peer) {
                return Err(invalid(format!(
                    "kme_source: peer {} is named twice",
                    src.peer
                )));
            }
        }
        Ok(())
    }

    /// The file `qward init` writes: every setting, each with a comment.
    pub fn to_documented_toml(&self) -> String {
        let quote = |s: &str| toml::Value::String(s.to_string()).to_string();
        let listen: Vec<String> = self.listen.iter().map(|a| quote(a)).collect();
        let mut out = String::new();
        out.push_str("# qward node configuration. Edit and restart the node to apply.\n\n");
        out.push_str("# A person-readable name for this node.\n");
        out.push_str(&format!("name = {}\n\n", quote(&self.name)));
        out.push_str("# What this node is: hospital, doctor, patient or auditor.\n");
        out.push_str(&format!("role = {}\n\n", quote(self.role.as_str())));
        out.push_str("# libp2p listen addresses (multiaddrs).\n");
        out.push_str(&format!("listen = [{}]\n\n", listen.join(", ")));
        out.push_str(
            "# Where other members reach this node, when not at the listen addresses\n\
             # (a host name, NAT, a container network); announced in their place.\n",
        );
        if self.external_addresses.is_empty() {
            out.push_str("# external_addresses = [\"/dns4/st-marys.example/tcp/7400\"]\n\n");
        } else {
            let ext: Vec<String> = self.external_addresses.iter().map(|a| quote(a)).collect();
            out.push_str(&format!("external_addresses = [{}]\n\n", ext.join(", ")));
        }
        out.push_str("# Port of the control API, served on 127.0.0.1 only (auth: api.cookie).\n");
        out.push_str(&format!("api_port = {}\n\n", self.api_port));
        out.push_str(
            "# Seconds without use after which a user's API session (and a TUI) locks; 0: never.\n",
        );
        out.push_str(&format!(
            "api_idle_logoff_s = {}\n\n",
            self.api_idle_logoff_s
        ));
        out.push_str(
            "# Erase this node's copy of a record when the patient it is about asks\n\
             # (GDPR Art. 17); false: the request is logged for a person to decide.\n",
        );
        out.push_str(&format!(
            "erase_on_patient_request = {}\n\n",
            self.erase_on_patient_request
        ));
        out.push_str(
            "# Prometheus metrics (/metrics), /health and /ready over HTTP (run --metrics).\n\
             # They hold counts, heights and timings, never health data; bind another\n\
             # address than 127.0.0.1 only for a scraper you trust (docs/operations.md).\n",
        );
        out.push_str(&format!("metrics = {}\n", self.metrics));
        out.push_str(&format!(
            "metrics_bind = {}\n",
            quote(&self.metrics_bind.to_string())
        ));
        match self.metrics_port {
            Some(p) => out.push_str(&format!("metrics_port = {p}\n\n")),
            None => out.push_str("# metrics_port = 8500 (default: api_port + 1000)\n\n"),
        }
        if let Some(a) = &self.account {
            out.push_str(
                "# This node's account (ed25519 public key); the secret is in keys/identity.key.\n",
            );
            out.push_str(&format!("account = {}\n\n", quote(a)));
        }
        if let Some(g) = &self.genesis {
            out.push_str("# The genesis file, relative to this directory.\n");
            out.push_str(&format!("genesis = {}\n\n", quote(g)));
        }
        out.push_str(
            "# Unattended nodes only: a file (mode 0600, best outside this directory)\n\
             # holding the passphrase of keys/data.key, so the node starts without a\n\
             # person. Whoever reads it and a copy of this directory reads every record.\n",
        );
        match &self.passphrase_file {
            Some(f) => out.push_str(&format!("passphrase_file = {}\n\n", quote(f))),
            None => out.push_str("# passphrase_file = \"/run/secrets/qward-passphrase\"\n\n"),
        }
        out.push_str(
            "# Peers to dial at start: their account (ed25519 public key, hex) and address.\n",
        );
        if self.bootstrap.is_empty() {
            out.push_str("bootstrap = []\n");
            out.push_str("# bootstrap = [{ account = \"<64 hex digits>\", addr = \"/ip4/10.0.0.2/tcp/7400\" }]\n");
        } else {
            out.push_str("bootstrap = [\n");
            for b in &self.bootstrap {
                out.push_str(&format!(
                    "  {{ account = {}, addr = {} }},\n",
                    quote(&b.account),
                    quote(&b.addr)
                ));
            }
            out.push_str("]\n");
        }
        let k = &self.key_agreement;
        out.push_str("\n# Key agreement (simulated BB84 + X25519 + ML-KEM-768) with each peer.\n");
        out.push_str("[key_agreement]\n");
        out.push_str("# Qubits per session, and the QBER bound above which a session aborts.\n");
        out.push_str(&format!(
            "qubits = {}\nmax_qber = {:?}\n",
            k.qubits, k.max_qber
        ));
        out.push_str("# A key seals at most this many records, for at most this long (ms).\n");
        out.push_str(&format!(
            "key_max_uses = {}\nkey_max_age_ms = {}\n",
            k.key_max_uses, k.key_max_age_ms
        ));
        out.push_str("# The simulated quantum channel of every link (each end may make it worse, never better).\n");
        out.push_str(&format!(
            "distance_km = {:?}\nloss_db_per_km = {:?}\ndetector_efficiency = {:?}\ndark_count_prob = {:?}\nmisalignment = {:?}\n",
            k.distance_km, k.loss_db_per_km, k.detector_efficiency, k.dark_count_prob, k.misalignment
        ));
        out.push_str("# Demo only: an intercept-resend eavesdropper on this fraction of qubits.\n");
        out.push_str(&format!("eve_fraction = {:?}\n", k.eve_fraction));
        out.push_str(
            "\n# ETSI GS QKD 014 (docs/qkd.md): to serve keys to local applications with\n\
             # `qward kme serve`, name their SAE ids, and the SAEs at other nodes' KMEs:\n\
             # [kme]\n\
             # local_saes = [\"lab-app\"]\n\
             # remote_saes = { \"imaging-app\" = \"st-marys\" }\n\
             # To take a link's QKD key from a KME instead of simulated BB84:\n\
             # [[kme_source]]\n\
             # peer = \"st-marys\"\n\
             # url = \"https://127.0.0.1:8443\"\n\
             # peer_sae = \"qward-st-marys\"\n\
             # ca = \"kme/ca.pem\"\n\
             # cert = \"kme/sae-qward-here.pem\"\n\
             # key = \"kme/sae-qward-here.key\"\n",
        );
        if let Ok(extra) = toml::to_string(&KmeTables {
            kme: self.kme.clone(),
            kme_source: self.kme_source.clone(),
        }) && !extra.trim().is_empty()
        {
            out.push('\n');
            out.push_str(&extra);
        }
        out
    }
}

/// The KME tables, written after `[key_agreement]` by the template.
#[derive(Serialize)]
struct KmeTables {
    #[serde(skip_serializing_if = "Option::is_none")]
    kme: Option<KmeConfig>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    kme_source: Vec<KmeSourceConfig>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documented_template_round_trips() {
        let mut c = Config::new("st-marys", Role::Hospital);
        c.bootstrap.push(BootstrapPeer {
            account: "ab".repeat(32),
            addr: "/ip4/127.0.0.1/tcp/7401".into(),
        });
        c.metrics_port = Some(9400);
        c.external_addresses = vec!["/dns4/st-marys.example/tcp/7400".into()];
        c.account = Some("cd".repeat(32));
        c.genesis = Some("genesis.toml".into());
        c.kme = Some(KmeConfig {
            local_saes: vec!["lab-app".into()],
            remote_saes: [("imaging".to_string(), "st-marys".to_string())].into(),
        });
        c.kme_source.push(KmeSourceConfig {
            peer: "dr-okafor".into(),
            url: "https://127.0.0.1:8443".into(),
            peer_sae: "sae-b".into(),
            ca: "kme/ca.pem".into(),
            cert: "kme/sae-a.pem".into(),
            key: "kme/sae-a.key".into(),
        });
        let text = c.to_documented_toml();
        assert_eq!(Config::parse(&text, "t").unwrap(), c);
        let plain = Config::new("p", Role::Patient);
        assert_eq!(
            Config::parse(&plain.to_documented_toml(), "t").unwrap(),
            plain
        );
    }

    #[test]
    fn listen_may_be_a_single_string() {
        let c = Config::parse(
            "name='a'\nrole='auditor'\nlisten='/ip4/127.0.0.1/tcp/1'\n",
            "t",
        )
        .unwrap();
        assert_eq!(c.listen, vec!["/ip4/127.0.0.1/tcp/1".to_string()]);
        assert_eq!(c.api_port, DEFAULT_API_PORT);
    }

    #[test]
    fn bad_values_are_named() {
        let e = Config::parse("name='a'\nrole='nurse'\n", "cfg")
            .unwrap_err()
            .to_string();
        assert!(e.contains("cfg") && e.contains("nurse"), "{e}");
        let e =
            Config::parse("name='a'\nrole='doctor'\nlisten=['127.0.0.1:1']\n", "cfg").unwrap_err();
        assert!(e.to_string().contains("not a multiaddr"), "{e}");
        let e = Config::parse(
            "name='a'\nrole='doctor'\n[key_agreement]\neve_fraction=2.0\n",
            "cfg",
        )
        .unwrap_err();
        assert!(e.to_string().contains("eve_fraction"), "{e}");
        let e = Config::parse("name='a'\nrole='doctor'\nbogus=1\n", "cfg").unwrap_err();
        assert!(e.to_string().contains("bogus"), "{e}");
        let e = Config::parse(
            "name='a'\nrole='doctor'\nbootstrap=[{account='xy', addr='/ip4/1.2.3.4/tcp/1'}]\n",
            "cfg",
        )
        .unwrap_err();
        assert!(e.to_string().contains("64 hex"), "{e}");
    }
}
