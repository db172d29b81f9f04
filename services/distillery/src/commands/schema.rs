//! `distillery schema [KIND]`: the standalone Avro schema (references inlined) of a record kind, or of every
//! kind: the contract of each topic.

/// Prints the schema of `kind` (document, chunk, draft, judged, regenerate, accepted, rejected, dead-letter),
/// or of every kind.
pub fn print(kind: Option<&str>) -> anyhow::Result<()> {
    let codec = distillery_core::Codec::global();
    for k in distillery_core::RecordKind::ALL {
        let name = distillery_core::Topic::for_kind(k).base_name().trim_end_matches('s').to_string();
        let name = if k == distillery_core::RecordKind::Judged { "judged".to_string() } else { name };
        if kind.is_none_or(|want| want == name || k.full_name().eq_ignore_ascii_case(want)) {
            println!("{}", serde_json::to_string_pretty(codec.schema(k))?);
        }
    }
    Ok(())
}
