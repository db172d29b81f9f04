//! The LLM clients of one process, one per role: roles calling the same endpoint and model share its budget
//! (the one-process run's generator and judge), so together they never queue more than the server runs;
//! with a [`BudgetShare`] the budget is shared with the other replicas too.

use std::sync::Arc;

use distillery_core::Metrics;
use tokio::sync::Mutex;

use crate::budget::{Alone, BudgetGroup, BudgetShare};
use crate::client::LlmClient;
use crate::config::LlmConfig;
use crate::role::LlmRole;

/// Clients built on demand from configuration.
#[derive(Debug)]
pub struct LlmClients {
    metrics: Arc<Metrics>,
    share: std::sync::Mutex<Arc<dyn BudgetShare>>,
    built: Mutex<Vec<Arc<LlmClient>>>,
}

impl LlmClients {
    /// Clients with the whole budget of their endpoints ([`Alone`]).
    pub fn new(metrics: Arc<Metrics>) -> LlmClients {
        LlmClients { metrics, share: std::sync::Mutex::new(Arc::new(Alone)), built: Mutex::new(Vec::new()) }
    }

    /// Shares the budgets of the clients built from now on through `share` (a service sets it before its
    /// stage is built).
    pub fn share_budgets(&self, share: Arc<dyn BudgetShare>) {
        *self.share.lock().expect("share lock") = share;
    }

    /// The client for `role` with `cfg`; the first client of an endpoint and model asks the server for its
    /// slots and joins the budget's share, later ones share its budget.
    pub async fn client(&self, cfg: &LlmConfig, role: LlmRole) -> Arc<LlmClient> {
        let mut built = self.built.lock().await;
        if let Some(c) = built.iter().find(|c| c.role() == role && c.config() == cfg) {
            return c.clone();
        }
        let group = BudgetGroup::of(cfg);
        let same_budget = built.iter().find(|c| c.budget().group() == &group);
        let client = Arc::new(match same_budget {
            Some(other) => LlmClient::sharing(other, cfg.clone(), role),
            None => {
                let share = self.share.lock().expect("share lock").clone();
                LlmClient::connect_shared(cfg.clone(), role, self.metrics.clone(), &*share).await
            }
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
    // What messages show: no credentials.
    let shown = distillery_core::config::redact_url(base);
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
        Ok(r) => Err(format!("the LLM server at {shown} answered {}", r.status())),
        Err(e) => Err(format!(
            "the LLM server at {shown} is not reachable ({}); start one with `scripts/local-llm start` or pass --llm-base-url",
            e.without_url()
        )),
    }
}
