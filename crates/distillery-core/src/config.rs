//! Layered configuration: embedded defaults (each struct's `Default`), then a TOML file, then
//! `DISTILLERY__SECTION__FIELD` environment variables. Unknown fields are errors; after parsing, every
//! semantic problem is collected and reported at once.

use std::fmt;
use std::path::Path;

use figment::Figment;
use figment::providers::{Env, Format, Toml};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The environment prefix; nesting is separated by `__`.
pub const ENV_PREFIX: &str = "DISTILLERY__";

/// A configuration struct of a service.
pub trait Settings: DeserializeOwned + Default {
    /// Adds one line per problem to `errors`.
    fn validate(&self, errors: &mut Vec<String>) {
        let _ = errors;
    }
}

/// Configuration errors: all of them, one per line.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration could not be read:\n{}", .0.join("\n"))]
    Parse(Vec<String>),
    #[error("configuration is invalid:\n{}", .0.iter().map(|e| format!("  - {e}")).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<String>),
}

/// Loads defaults, then `file` (if given; it must exist), then the environment.
pub fn load<T: Settings>(file: Option<&Path>) -> Result<T, ConfigError> {
    load_with(file, Some(Env::prefixed(ENV_PREFIX).split("__")))
}

/// Like [`load`] with an explicit environment provider (`None` ignores the environment).
pub fn load_with<T: Settings>(file: Option<&Path>, env: Option<Env>) -> Result<T, ConfigError> {
    let mut fig = Figment::new();
    if let Some(path) = file {
        if !path.exists() {
            return Err(ConfigError::Parse(vec![format!("config file {} does not exist", path.display())]));
        }
        fig = fig.merge(Toml::file_exact(path));
    }
    if let Some(env) = env {
        fig = fig.merge(env);
    }
    let value: T = fig.extract().map_err(|e| ConfigError::Parse(e.into_iter().map(|e| e.to_string()).collect()))?;
    let mut errors = Vec::new();
    value.validate(&mut errors);
    if errors.is_empty() { Ok(value) } else { Err(ConfigError::Invalid(errors)) }
}

/// Parses a TOML string over the defaults (tests, embedded presets).
pub fn from_toml<T: Settings>(toml: &str) -> Result<T, ConfigError> {
    let value: T = Figment::new()
        .merge(Toml::string(toml))
        .extract()
        .map_err(|e| ConfigError::Parse(e.into_iter().map(|e| e.to_string()).collect()))?;
    let mut errors = Vec::new();
    value.validate(&mut errors);
    if errors.is_empty() { Ok(value) } else { Err(ConfigError::Invalid(errors)) }
}

/// A secret string (API keys, passwords): never printed, logged or serialized.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }
    /// The secret value, for the one place that must send it.
    pub fn expose(&self) -> &str {
        &self.0
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_empty() { "Secret(<empty>)" } else { "Secret(<redacted>)" })
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(if self.0.is_empty() { "" } else { "<redacted>" })
    }
}

impl<'de> Deserialize<'de> for Secret {
    /// Any scalar: environment variables are parsed leniently, so a numeric or boolean-looking secret
    /// (`123456`, `true`) arrives as a number or a boolean and must still be taken as text.
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Secret;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a secret string")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Secret, E> {
                Ok(Secret(v.to_string()))
            }
            fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Secret, E> {
                Ok(Secret(v))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Secret, E> {
                Ok(Secret(v.to_string()))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Secret, E> {
                Ok(Secret(v.to_string()))
            }
            fn visit_i128<E: serde::de::Error>(self, v: i128) -> Result<Secret, E> {
                Ok(Secret(v.to_string()))
            }
            fn visit_u128<E: serde::de::Error>(self, v: u128) -> Result<Secret, E> {
                Ok(Secret(v.to_string()))
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Secret, E> {
                Ok(Secret(v.to_string()))
            }
            fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<Secret, E> {
                Ok(Secret(v.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}

/// Validation helpers.
pub fn check(errors: &mut Vec<String>, ok: bool, msg: impl FnOnce() -> String) {
    if !ok {
        errors.push(msg());
    }
}

/// A URL as logs and error messages may show it: user information (`user:password@`) and the query (`?key=...`)
/// replaced by `<redacted>`, so credentials in a configured URL never leak.
pub fn redact_url(url: &str) -> String {
    let (scheme, rest) = match url.find("://") {
        Some(i) => (&url[..i + 3], &url[i + 3..]),
        None => ("", url),
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let host = match authority.rfind('@') {
        Some(at) => format!("<redacted>@{}", &authority[at + 1..]),
        None => authority.to_string(),
    };
    let tail = match tail.find('?') {
        Some(q) => format!("{}?<redacted>", &tail[..q]),
        None => tail.to_string(),
    };
    format!("{scheme}{host}{tail}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_lose_their_credentials() {
        assert_eq!(redact_url("https://user:pa55@llm.example/v1"), "https://<redacted>@llm.example/v1");
        assert_eq!(redact_url("http://h:8080/v1?key=abc&x=1"), "http://h:8080/v1?<redacted>");
        assert_eq!(redact_url("http://127.0.0.1:8080/v1"), "http://127.0.0.1:8080/v1");
        assert_eq!(redact_url("tok@host"), "<redacted>@host");
    }

    #[derive(Debug, Deserialize, Serialize, PartialEq)]
    #[serde(default, deny_unknown_fields)]
    struct Inner {
        /// a url
        url: String,
        /// a key
        api_key: Secret,
    }
    impl Default for Inner {
        fn default() -> Self {
            Inner { url: "http://default".into(), api_key: Secret::default() }
        }
    }

    #[derive(Debug, Deserialize, Serialize, PartialEq)]
    #[serde(default, deny_unknown_fields)]
    struct Demo {
        /// how many
        workers: usize,
        /// ratio
        ratio: f64,
        /// nested
        llm: Inner,
    }
    impl Default for Demo {
        fn default() -> Self {
            Demo { workers: 4, ratio: 0.5, llm: Inner::default() }
        }
    }
    impl Settings for Demo {
        fn validate(&self, errors: &mut Vec<String>) {
            check(errors, self.workers > 0, || "workers must be > 0".into());
            check(errors, (0.0..=1.0).contains(&self.ratio), || format!("ratio {} must be in [0, 1]", self.ratio));
        }
    }

    #[test]
    fn layers_apply_in_order() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("c.toml", "workers = 9\n[llm]\nurl = \"http://file\"\n")?;
            jail.set_env("TESTDIST__LLM__URL", "http://env");
            jail.set_env("TESTDIST__LLM__API_KEY", "sk-123");
            let d: Demo = load_with(Some(Path::new("c.toml")), Some(Env::prefixed("TESTDIST__").split("__"))).unwrap();
            assert_eq!(d.workers, 9);
            assert_eq!(d.ratio, 0.5);
            assert_eq!(d.llm.url, "http://env");
            assert_eq!(d.llm.api_key.expose(), "sk-123");
            Ok(())
        });
    }

    #[test]
    fn unknown_fields_and_all_invalid_values_are_reported() {
        let err = from_toml::<Demo>("workerz = 3").unwrap_err().to_string();
        assert!(err.contains("workerz"), "{err}");
        let err = from_toml::<Demo>("workers = 0\nratio = 3.0").unwrap_err().to_string();
        assert!(err.contains("workers must be > 0") && err.contains("ratio 3 must be in [0, 1]"), "{err}");
        let err = load_with::<Demo>(Some(Path::new("/nonexistent/x.toml")), None).unwrap_err().to_string();
        assert!(err.contains("does not exist"), "{err}");
    }

    #[test]
    fn secrets_that_look_like_numbers_stay_text() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("TESTSEC__LLM__API_KEY", "123456");
            let d: Demo = load_with(None, Some(Env::prefixed("TESTSEC__").split("__"))).unwrap();
            assert_eq!(d.llm.api_key.expose(), "123456");
            jail.set_env("TESTSEC__LLM__API_KEY", "true");
            let d: Demo = load_with(None, Some(Env::prefixed("TESTSEC__").split("__"))).unwrap();
            assert_eq!(d.llm.api_key.expose(), "true");
            Ok(())
        });
    }

    #[test]
    fn secrets_never_print() {
        let d: Demo = from_toml("[llm]\napi_key = \"sk-live-abc\"").unwrap();
        assert!(!format!("{d:?}").contains("sk-live-abc"));
        assert!(!serde_json::to_string(&d).unwrap().contains("sk-live-abc"));
        assert_eq!(d.llm.api_key.expose(), "sk-live-abc");
    }
}
