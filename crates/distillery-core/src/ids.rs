//! Content-hash identities. Every record id is a sha256 over the parts that define it, so a replay of the
//! same input produces the same ids and downstream consumers can drop the repeat.

use sha2::{Digest, Sha256};

/// sha256 (hex) of the parts, each length-prefixed so that ("ab","c") and ("a","bc") differ.
pub fn hash_parts(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_le_bytes());
        h.update(p.as_bytes());
    }
    hex::encode(h.finalize())
}

/// sha256 (hex) of raw bytes: the identity of a document.
pub fn hash_bytes(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Incremental sha256 for streamed content.
#[derive(Default, Clone)]
pub struct ContentHasher(Sha256);

impl ContentHasher {
    pub fn new() -> Self {
        Self(Sha256::new())
    }
    pub fn update(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
    pub fn finish(self) -> String {
        hex::encode(self.0.finalize())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_are_length_prefixed() {
        assert_ne!(hash_parts(&["ab", "c"]), hash_parts(&["a", "bc"]));
        assert_eq!(hash_parts(&["a", "b"]), hash_parts(&["a", "b"]));
        assert_eq!(hash_parts(&["x"]).len(), 64);
    }

    #[test]
    fn streamed_hash_matches_one_shot() {
        let mut h = ContentHasher::new();
        h.update(b"hello ");
        h.update(b"world");
        assert_eq!(h.finish(), hash_bytes(b"hello world"));
        assert_eq!(hash_bytes(b"abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }
}
