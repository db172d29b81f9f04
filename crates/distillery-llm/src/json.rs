//! Getting JSON out of model text: tolerant of code fences and prose around the object, strict about
//! what the object must contain.

use serde_json::Value;

/// Extracts the first JSON object or array from `text` (whole text first, then the first balanced
/// `{…}`/`[…]` span, skipping braces inside strings).
pub fn extract_json(text: &str) -> Result<Value, String> {
    let t = strip_fences(text.trim());
    if let Ok(v) = serde_json::from_str::<Value>(t) {
        return Ok(v);
    }
    let start = t.find(['{', '[']).ok_or_else(|| "no JSON object in the output".to_string())?;
    let bytes = t.as_bytes();
    let mut depth = 0i32;
    let mut in_str = false;
    let mut escaped = false;
    for (i, &b) in bytes.iter().enumerate().skip(start) {
        if in_str {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_str = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_str = true,
            b'{' | b'[' => depth += 1,
            b'}' | b']' => {
                depth -= 1;
                if depth == 0 {
                    return serde_json::from_str(&t[start..=i]).map_err(|e| format!("invalid JSON: {e}"));
                }
            }
            _ => {}
        }
    }
    Err("unterminated JSON (output cut off?)".into())
}

fn strip_fences(t: &str) -> &str {
    let Some(rest) = t.strip_prefix("```") else { return t };
    let rest = rest.trim_start_matches(|c: char| c.is_ascii_alphanumeric());
    rest.trim().strip_suffix("```").unwrap_or(rest).trim()
}

/// A reply with no JSON that reads like a refusal.
pub fn looks_like_refusal(text: &str) -> bool {
    let lower = text.trim().to_lowercase();
    if lower.contains('{') {
        return false;
    }
    const PHRASES: &[&str] = &[
        "i can't",
        "i cannot",
        "i can not",
        "i'm sorry",
        "i am sorry",
        "i won't",
        "i will not",
        "i'm unable",
        "i am unable",
        "as an ai",
        "i must decline",
        "i'm not able",
    ];
    PHRASES.iter().any(|p| lower.contains(p))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn finds_json_in_fences_and_prose() {
        assert_eq!(extract_json("{\"a\":1}").unwrap(), json!({"a": 1}));
        assert_eq!(extract_json("```json\n{\"a\":1}\n```").unwrap(), json!({"a": 1}));
        assert_eq!(extract_json("Sure! Here it is:\n{\"a\":\"x}\"} hope it helps").unwrap(), json!({"a": "x}"}));
        assert_eq!(extract_json("pairs: [1,2]").unwrap(), json!([1, 2]));
        assert!(extract_json("{\"a\": \"cut").unwrap_err().contains("unterminated"));
        assert!(extract_json("no json here").is_err());
        assert!(extract_json("{\"a\": 1,}").is_err());
    }

    #[test]
    fn refusals_are_recognised_only_without_json() {
        assert!(looks_like_refusal("I'm sorry, but I can't help with that."));
        assert!(!looks_like_refusal("{\"answer\": \"I'm sorry to hear\"}"));
        assert!(!looks_like_refusal("The policy grants 25 days."));
    }
}
