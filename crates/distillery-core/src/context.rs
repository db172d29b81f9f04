//! The text of a generation context, as extract writes it and generate reads it: member chunks in order,
//! each opened by its number (`[1] `, `[2] `, ...) at the start of a line, with a `## heading > path` line
//! whenever the section changes.

/// The text of each numbered member of a context built by `distillery_docs::context_text` (extract writes it, generate reads it), in order.
pub fn context_members(context: &str) -> Vec<&str> {
    let mut starts: Vec<(usize, usize)> = Vec::new(); // (label start, text start)
    let mut expected = 1;
    let mut search = 0;
    while let Some(pos) = context[search..].find(&format!("[{expected}] ")) {
        let at = search + pos;
        let at_line_start = at == 0 || context[..at].ends_with('\n');
        let label = format!("[{expected}] ");
        if at_line_start {
            starts.push((at, at + label.len()));
            expected += 1;
        }
        search = at + label.len();
    }
    starts
        .iter()
        .enumerate()
        .map(|(i, &(_, text_start))| {
            let end = starts.get(i + 1).map_or(context.len(), |next| next.0);
            let seg = &context[text_start..end];
            // Drop a trailing section line that belongs to the next member.
            let seg = match seg.rfind("\n\n## ") {
                Some(h) if i + 1 < starts.len() => &seg[..h],
                _ => seg,
            };
            seg.trim_end()
        })
        .collect()
}
