//! Chunk budgets count what the model counts: the tokenizer built from the served GGUF model's metadata
//! gives exactly the token counts the real llama.cpp server reports for the same texts.

mod common;

use common::Servers;

#[tokio::test]
async fn gguf_tokenizer_matches_the_servers_counts() {
    let servers = Servers::from_env();
    let root = servers.llm.trim_end_matches('/').trim_end_matches("/v1").to_string();
    let http = reqwest::Client::new();
    let props: serde_json::Value = http.get(format!("{root}/props")).send().await.unwrap().json().await.unwrap();
    let model_path = props["model_path"].as_str().expect("the server reports its model file");
    let tok = distillery_docs::tokens::tokenizer_from_gguf(std::path::Path::new(model_path)).unwrap();
    use distillery_docs::TokenCounter;
    let texts = [
        "Employees receive 25 days of paid annual leave per calendar year, plus public holidays.",
        "Prices: 1,234.56 EUR, 12345678 items, version 3.2.0.1 — naïve café, Grüße, 日本語のテキスト, emoji 🚀.",
        "fn main() {\n    println!(\"{}\", x + 1);\n}\n\n\n  indented\ttabs\r\nCRLF",
        "don't WON'T it's I'M we'll they'd  two  spaces   and three",
        "",
    ];
    for t in texts {
        let resp: serde_json::Value = http
            .post(format!("{root}/tokenize"))
            .json(&serde_json::json!({"content": t, "add_special": false}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let server = resp["tokens"].as_array().expect("tokens").len();
        assert_eq!(tok.count(t), server, "token count differs for {t:?}");
    }
    assert!(tok.name().starts_with("gguf:"));
}
