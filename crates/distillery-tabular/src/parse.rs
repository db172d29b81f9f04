//! Reading a schema a user passed or edited, in either form: the typed [`TableSchema`] or the flat design
//! form a model writes ([`DesignTable`]).

use crate::error::TabularError;
use crate::flat::DesignTable;
use crate::schema::TableSchema;

/// Reads a schema a user passed or edited: the typed form ([`TableSchema`]) or, failing that, the flat design
/// form a model writes ([`DesignTable`]), then validates it.
pub fn parse_schema(json: &str) -> Result<TableSchema, TabularError> {
    let typed_err = match serde_json::from_str::<TableSchema>(json) {
        Ok(schema) => {
            schema.check()?;
            return Ok(schema);
        }
        Err(e) => e.to_string(),
    };
    match serde_json::from_str::<DesignTable>(json) {
        Ok(design) => match design.into_schema("") {
            Ok(schema) => {
                schema.check()?;
                Ok(schema)
            }
            Err(errors) => Err(TabularError::SchemaJson(format!(
                "{typed_err}; read as the flat design form instead: {}",
                errors.join("; ")
            ))),
        },
        Err(_) => Err(TabularError::SchemaJson(typed_err)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::tests::realistic;
    use crate::schema::{Distribution, Generator};

    #[test]
    fn parse_schema_accepts_both_forms_and_validates() {
        let typed = serde_json::to_string(&realistic()).unwrap();
        assert_eq!(parse_schema(&typed).unwrap(), realistic());
        let flat = r#"{"name": "people", "columns": [
            {"name": "Full Name", "kind": "name"}, {"name": "age", "kind": "int", "min": 1, "max": 99}]}"#;
        let s = parse_schema(flat).unwrap();
        assert_eq!(s.columns[0].name, "full_name");
        assert_eq!(s.columns[1].generator, Generator::Integer { min: 1, max: 99, distribution: Distribution::Uniform });
        let invalid = r#"{"name": "t", "columns": [{"name": "a", "kind": "integer", "min": 5, "max": 1}]}"#;
        assert!(matches!(parse_schema(invalid), Err(TabularError::InvalidSchema(e)) if e.len() == 1));
        assert!(matches!(parse_schema("{not json"), Err(TabularError::SchemaJson(_))));
    }

    /// Issue 14, defect 8: a caller's expression reached evalexpr with no length or depth limit; nested
    /// 100,000 deep it overflowed the stack and aborted the process (exit 134). It is an invalid schema now
    /// (the API answers 422 with the problem).
    #[test]
    fn deep_or_long_expressions_are_invalid_schemas() {
        for expr in [
            format!("{}x{}", "(".repeat(100_000), ")".repeat(100_000)),
            format!("x{}", " + 1".repeat(5000)),
            format!("{}1", "-".repeat(900)),
        ] {
            let schema = serde_json::json!({"name": "t", "columns": [
                {"name": "x", "kind": "integer", "min": 1, "max": 9},
                {"name": "y", "kind": "expression", "expr": expr, "type": "integer"}]});
            let err = parse_schema(&schema.to_string()).unwrap_err();
            assert!(matches!(err, TabularError::InvalidSchema(_)), "{err}");
            let text = err.problems().unwrap().join("\n");
            assert!(text.contains("over the limit"), "{text}");
            assert!(text.len() < 1000, "the error does not echo the whole expression: {} bytes", text.len());
        }
        // Within the limits, nesting is fine.
        let ok = serde_json::json!({"name": "t", "columns": [
            {"name": "x", "kind": "integer", "min": 1, "max": 9},
            {"name": "y", "kind": "expression", "expr": format!("{}x{}", "(".repeat(20), ")".repeat(20)), "type": "integer"}]});
        parse_schema(&ok.to_string()).unwrap();
    }
}
