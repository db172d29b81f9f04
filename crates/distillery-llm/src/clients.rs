//! The LLM clients of one process, one per role: roles served by the same server share its parallel slots
//! (the one-process run's generator and judge), so together they never queue more than the server runs.

use std::sync::Arc;

use distillery_core::Metrics;
use tokio::sync::Mutex;

use crate::client::LlmClient;
use crate::config::LlmConfig;
use crate::role::LlmRole;

/// Clients built on demand from configuration.
#[derive(Debug)]
pub struct LlmClients {
    metrics: Arc<Metrics>,
    built: Mutex<Vec<Arc<LlmClient>>>,
}

impl LlmClients {
    pub fn new(metrics: Arc<Metrics>) -> LlmClients {
        LlmClients { metrics, built: Mutex::new(Vec::new()) }
    }

    /// The client for `role` with `cfg`; the first client of a server asks it for its slots, later ones on
    /// the same server (same provider and base URL) share them.
    pub async fn client(&self, cfg: &LlmConfig, role: LlmRole) -> Arc<LlmClient> {
        let mut built = self.built.lock().await;
        if let Some(c) = built.iter().find(|c| c.role() == role && c.config() == cfg) {
            return c.clone();
        }
        let same_server =
            built.iter().find(|c| c.config().base_url == cfg.base_url && c.config().provider == cfg.provider);
        let client = Arc::new(match same_server {
            Some(other) => LlmClient::sharing(other, cfg.clone(), role),
            None => LlmClient::connect(cfg.clone(), role, self.metrics.clone()).await,
        });
        built.push(client.clone());
        client
    }
}

/// Fails fast when an OpenAI-compatible or Ollama server does not answer (other providers are hosted APIs
/// checked by their first call).
pub async fn check_server(cfg: &LlmConfig) -> Result<(), String> {
    use crate::config::ProviderKind;
    if cfg.provider != ProviderKind::Openai && cfg.provider != ProviderKind::Ollama {
        return Ok(());
    }
    let base = cfg.base_url.trim_end_matches('/');
    let url = match cfg.provider {
        ProviderKind::Ollama => format!("{base}/api/tags"),
        _ => format!("{base}/models"),
    };
    let mut req = reqwest::Client::new().get(&url).timeout(std::time::Duration::from_secs(10));
    if !cfg.api_key.is_empty() {
        req = req.bearer_auth(cfg.api_key.expose());
    }
    match req.send().await {
        Ok(r) if r.status().is_success() || r.status().as_u16() == 401 => Ok(()),
        Ok(r) => Err(format!("the LLM server at {base} answered {} to {url}", r.status())),
        Err(e) => Err(format!(
            "the LLM server at {base} is not reachable ({e}); start one with `scripts/local-llm start` or pass --llm-base-url"
        )),
    }
}
