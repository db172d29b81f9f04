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
}
