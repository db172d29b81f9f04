//! The stores a stage can read documents from, by kind.

use std::sync::Arc;

use crate::{LocalStore, ObjectStore};
use distillery_core::StoreKind;

/// S3 (when configured) and the local file system.
#[derive(Debug, Clone)]
pub struct Stores {
    pub s3: Option<Arc<dyn ObjectStore>>,
    pub local: Arc<dyn ObjectStore>,
}

impl Stores {
    pub fn local_only() -> Self {
        Stores { s3: None, local: Arc::new(LocalStore) }
    }

    pub fn with_s3(s3: Arc<dyn ObjectStore>) -> Self {
        Stores { s3: Some(s3), local: Arc::new(LocalStore) }
    }

    pub fn get(&self, kind: StoreKind) -> Result<&Arc<dyn ObjectStore>, String> {
        match kind {
            StoreKind::File => Ok(&self.local),
            StoreKind::S3 => self.s3.as_ref().ok_or_else(|| "no S3 store is configured".to_string()),
        }
    }
}
