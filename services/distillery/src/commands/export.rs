//! `distillery export`: training formats rebuilt from a dataset folder.

use std::io::Write;
use std::path::Path;

use anyhow::Context;
use distillery_export::{ACCEPTED, ExportOptions, Format, formats, read_unique};

/// Writes each format from `from/accepted.jsonl` into `out`; returns the records per format.
pub fn export(
    from: &Path,
    out: &Path,
    formats_wanted: &[Format],
    opts: &ExportOptions,
) -> anyhow::Result<Vec<(Format, usize)>> {
    let src = from.join(ACCEPTED);
    std::fs::create_dir_all(out)?;
    let mut counts = Vec::new();
    for &f in formats_wanted {
        let path = out.join(f.file_name());
        let records = read_unique(&src).with_context(|| format!("reading {}", src.display()))?;
        let n = if f == Format::Parquet {
            distillery_export::parquet::write_parquet(&path, records).map_err(anyhow::Error::msg)?
        } else {
            let tmp = path.with_extension("partial");
            let mut w = std::io::BufWriter::new(std::fs::File::create(&tmp)?);
            let mut n = 0;
            for v in records {
                if let Some(line) = formats::line(f, &v, opts) {
                    serde_json::to_writer(&mut w, &line)?;
                    w.write_all(b"\n")?;
                    n += 1;
                }
            }
            w.into_inner().map_err(|e| e.into_error())?.sync_all()?;
            std::fs::rename(&tmp, &path)?;
            n
        };
        counts.push((f, n));
    }
    Ok(counts)
}
