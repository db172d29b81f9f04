//! Single cells: fake values written straight into a reused `String` (no allocation per value), and the
//! text forms of numbers and dates the writers share.

use rand::Rng;

use crate::locale::{LocaleData, Piece, Slot, Template};

/// A uniform index below `n` (`n > 0`), by multiply-shift: one 32-bit draw, bias below 2^-32 · n.
#[inline]
pub(crate) fn index<R: Rng>(rng: &mut R, n: usize) -> usize {
    ((rng.next_u32() as u64 * n as u64) >> 32) as usize
}

/// A uniform element of `list`, or `""` when it is empty.
#[inline]
pub(crate) fn pick<R: Rng>(rng: &mut R, list: &[&'static str]) -> &'static str {
    if list.is_empty() { "" } else { list[index(rng, list.len())] }
}

fn render<R: Rng>(t: &Template, d: &LocaleData, city_name: Slot, rng: &mut R, out: &mut String) {
    for piece in t {
        match *piece {
            Piece::Lit(s) => out.push_str(s),
            Piece::Slot(slot) => {
                let slot = if slot == Slot::CityName { city_name } else { slot };
                let s = match slot {
                    Slot::FirstName => pick(rng, d.first_names),
                    Slot::LastName | Slot::CompanyName | Slot::CityName => pick(rng, d.last_names),
                    Slot::CityPrefix => pick(rng, d.city_prefixes),
                    Slot::CitySuffix => pick(rng, d.city_suffixes),
                    Slot::StreetName => {
                        if rng.next_u32() & 1 == 0 {
                            pick(rng, d.first_names)
                        } else {
                            pick(rng, d.last_names)
                        }
                    }
                    Slot::StreetSuffix => pick(rng, d.street_suffixes),
                    Slot::CompanySuffix => pick(rng, d.company_suffixes),
                    Slot::Seniority => pick(rng, d.seniorities),
                    Slot::Field => pick(rng, d.fields),
                    Slot::Position => pick(rng, d.positions),
                };
                out.push_str(s);
            }
        }
    }
}

/// Replaces `#` by a digit, `^` by a non-zero digit, `$` and `?` by a capital letter; with `first_nonzero`
/// the first `#` is non-zero too (house numbers).
fn numerify<R: Rng>(format: &str, first_nonzero: bool, rng: &mut R, out: &mut String) {
    let mut first = first_nonzero;
    for c in format.chars() {
        match c {
            '#' if first => {
                first = false;
                out.push((b'1' + index(rng, 9) as u8) as char);
            }
            '#' => out.push((b'0' + index(rng, 10) as u8) as char),
            '^' => out.push((b'1' + index(rng, 9) as u8) as char),
            '$' | '?' => out.push((b'A' + index(rng, 26) as u8) as char),
            other => out.push(other),
        }
    }
}

/// A given name.
pub(crate) fn first_name<R: Rng>(d: &LocaleData, rng: &mut R, out: &mut String) {
    out.push_str(pick(rng, d.first_names));
}

/// A family name.
pub(crate) fn last_name<R: Rng>(d: &LocaleData, rng: &mut R, out: &mut String) {
    out.push_str(pick(rng, d.last_names));
}

/// A full name in the locale's order.
pub(crate) fn full_name<R: Rng>(d: &LocaleData, rng: &mut R, out: &mut String) {
    render(&d.name, d, Slot::LastName, rng, out);
}

/// A phone number in one of the locale's formats.
pub(crate) fn phone<R: Rng>(d: &LocaleData, rng: &mut R, out: &mut String) {
    let f = d.phone_formats[index(rng, d.phone_formats.len())];
    numerify(f, false, rng, out);
}

/// House number and street.
pub(crate) fn street_address<R: Rng>(d: &LocaleData, rng: &mut R, out: &mut String) {
    numerify(pick(rng, d.building_formats), true, rng, out);
    out.push(' ');
    render(&d.street, d, Slot::LastName, rng, out);
}

/// A city name (`fake`'s formula: a prefixed name one time in five, else a first or family name with a
/// suffix).
pub(crate) fn city<R: Rng>(d: &LocaleData, rng: &mut R, out: &mut String) {
    match index(rng, 5) {
        0 => render(&d.city_with_prefix, d, Slot::LastName, rng, out),
        1 => render(&d.city, d, Slot::FirstName, rng, out),
        _ => render(&d.city, d, Slot::LastName, rng, out),
    }
}

/// A state, region or province.
pub(crate) fn state<R: Rng>(d: &LocaleData, rng: &mut R, out: &mut String) {
    out.push_str(pick(rng, d.states));
}

/// A country name.
pub(crate) fn country<R: Rng>(d: &LocaleData, rng: &mut R, out: &mut String) {
    out.push_str(pick(rng, d.countries));
}

/// A postal code.
pub(crate) fn postcode<R: Rng>(d: &LocaleData, rng: &mut R, out: &mut String) {
    numerify(pick(rng, d.postcode_formats), false, rng, out);
}

/// A company name.
pub(crate) fn company<R: Rng>(d: &LocaleData, rng: &mut R, out: &mut String) {
    let t = &d.companies[index(rng, d.companies.len())];
    render(t, d, Slot::LastName, rng, out);
}

/// A job title.
pub(crate) fn job_title<R: Rng>(d: &LocaleData, rng: &mut R, out: &mut String) {
    render(&d.job, d, Slot::LastName, rng, out);
}

/// Running text of `min..=max` words, in sentences of 5 to 12 words.
pub(crate) fn text<R: Rng>(d: &LocaleData, min: u32, max: u32, rng: &mut R, out: &mut String) {
    let n = if max > min { min + index(rng, (max - min + 1) as usize) as u32 } else { min };
    let sep = if d.spaced_words { " " } else { "" };
    let mut left = n;
    let mut first_sentence = true;
    while left > 0 {
        let len = (5 + index(rng, 8) as u32).min(left);
        if !first_sentence {
            out.push_str(sep);
        }
        first_sentence = false;
        for w in 0..len {
            let word = pick(rng, d.words);
            if w == 0 {
                let mut chars = word.chars();
                if let Some(c) = chars.next() {
                    out.extend(c.to_uppercase());
                    out.push_str(chars.as_str());
                }
            } else {
                out.push_str(sep);
                out.push_str(word);
            }
        }
        out.push_str(if d.spaced_words { "." } else { "。" });
        left -= len;
    }
}

/// A version-4 UUID from the seeded stream.
pub(crate) fn uuid<R: Rng>(rng: &mut R, out: &mut String) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&rng.next_u64().to_le_bytes());
    bytes[8..].copy_from_slice(&rng.next_u64().to_le_bytes());
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    for (i, b) in bytes.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            out.push('-');
        }
        out.push(HEX[(b >> 4) as usize] as char);
        out.push(HEX[(b & 15) as usize] as char);
    }
}

/// A public-looking IPv4 address (no private, loopback or link-local first octets).
pub(crate) fn ip<R: Rng>(rng: &mut R, out: &mut String) {
    let first = loop {
        let o = 1 + index(rng, 223) as u32;
        if !matches!(o, 10 | 100 | 127 | 169 | 172 | 192) {
            break o;
        }
    };
    push_u64(out, first as u64);
    for _ in 0..3 {
        out.push('.');
        push_u64(out, index(rng, 256) as u64);
    }
}

/// Lowercase ASCII words of names (transliterated: `Zoë` → `zoe`, `王伟` → `wang`, `wei`), for e-mail
/// addresses, user names and URLs. A reused scratch buffer.
#[derive(Debug, Default)]
pub(crate) struct NameWords {
    buf: String,
    bounds: Vec<(usize, usize)>,
    start: Option<usize>,
}

impl NameWords {
    /// Forgets the words.
    pub(crate) fn clear(&mut self) {
        self.buf.clear();
        self.bounds.clear();
        self.start = None;
    }

    /// Number of words.
    pub(crate) fn len(&self) -> usize {
        self.bounds.len()
    }

    /// Word `i`.
    pub(crate) fn word(&self, i: usize) -> &str {
        let (a, b) = self.bounds[i];
        &self.buf[a..b]
    }

    fn push_char(&mut self, c: char) {
        if c.is_ascii_alphanumeric() {
            if self.start.is_none() {
                self.start = Some(self.buf.len());
            }
            self.buf.push(c.to_ascii_lowercase());
        } else {
            self.end_word();
        }
    }

    fn end_word(&mut self) {
        if let Some(s) = self.start.take() {
            self.bounds.push((s, self.buf.len()));
        }
    }

    /// Adds the words of `text`.
    pub(crate) fn add(&mut self, text: &str) {
        for c in text.chars() {
            if c.is_ascii() {
                self.push_char(c);
            } else if let Some(t) = deunicode::deunicode_char(c) {
                for tc in t.chars() {
                    self.push_char(tc);
                }
            } else {
                self.end_word();
            }
        }
        self.end_word();
    }

    /// Adds a random given and family name when there are no words yet.
    pub(crate) fn ensure<R: Rng>(&mut self, d: &LocaleData, rng: &mut R) {
        if self.len() == 0 {
            self.add(pick(rng, d.first_names));
            self.add(pick(rng, d.last_names));
        }
        if self.len() == 0 {
            self.add("user");
        }
    }

    fn first(&self) -> &str {
        self.word(0)
    }

    fn last(&self) -> Option<&str> {
        (self.len() > 1).then(|| self.word(self.len() - 1))
    }
}

fn local_part<R: Rng>(w: &NameWords, variant: usize, rng: &mut R, out: &mut String) {
    let first = w.first();
    match (variant, w.last()) {
        (0, Some(last)) => {
            out.push_str(first);
            out.push('.');
            out.push_str(last);
        }
        (1, Some(last)) => {
            out.push_str(first);
            out.push_str(last);
        }
        (2, Some(last)) => {
            out.push_str(first);
            out.push('_');
            out.push_str(last);
        }
        (3, Some(last)) => {
            out.push_str(&first[..1]);
            out.push_str(last);
        }
        (4, Some(last)) => {
            out.push_str(first);
            out.push('.');
            out.push_str(last);
            push_u64(out, 10 + index(rng, 90) as u64);
        }
        _ => {
            out.push_str(first);
            push_u64(out, 1 + index(rng, 999) as u64);
        }
    }
}

/// An e-mail address built from the words (a random name when there are none).
pub(crate) fn email<R: Rng>(d: &LocaleData, words: &mut NameWords, rng: &mut R, out: &mut String) {
    words.ensure(d, rng);
    let variant = index(rng, 6);
    local_part(words, variant, rng, out);
    out.push('@');
    if index(rng, 5) == 0 {
        out.push_str("example.");
        out.push_str(pick(rng, &d.domain_suffixes));
    } else {
        out.push_str(pick(rng, &d.email_providers));
    }
}

/// A user name built from the words (a random name when there are none).
pub(crate) fn username<R: Rng>(d: &LocaleData, words: &mut NameWords, rng: &mut R, out: &mut String) {
    words.ensure(d, rng);
    let variant = [0, 2, 3, 4, 5][index(rng, 5)];
    local_part(words, variant, rng, out);
}

/// A web site URL.
pub(crate) fn url<R: Rng>(d: &LocaleData, words: &mut NameWords, rng: &mut R, out: &mut String) {
    words.clear();
    words.add(pick(rng, d.last_names));
    words.ensure(d, rng);
    out.push_str("https://www.");
    out.push_str(words.first());
    if index(rng, 2) == 0 {
        out.push('-');
        out.push_str(pick(rng, crate::locale::data(crate::schema::Locale::En).words));
    }
    out.push('.');
    out.push_str(pick(rng, &d.domain_suffixes));
}

/// Appends an unsigned integer.
pub(crate) fn push_u64(out: &mut String, mut v: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    for &b in &buf[i..] {
        out.push(b as char);
    }
}

/// Appends a signed integer.
pub(crate) fn push_i64(out: &mut String, v: i64) {
    if v < 0 {
        out.push('-');
    }
    push_u64(out, v.unsigned_abs());
}

/// Appends a text id: the prefix and the number zero-padded to `digits`.
pub(crate) fn text_id(prefix: &str, n: i64, digits: u8, out: &mut String) {
    out.push_str(prefix);
    if n < 0 {
        out.push('-');
    }
    let mut tmp = [0u8; 20];
    let len = write_u64(&mut tmp, n.unsigned_abs());
    for _ in len..digits as usize {
        out.push('0');
    }
    for &b in &tmp[20 - len..] {
        out.push(b as char);
    }
}

/// Writes `v` right-aligned into `buf`, returning its length.
fn write_u64(buf: &mut [u8; 20], mut v: u64) -> usize {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    buf.len() - i
}

/// Appends a signed integer to bytes.
#[inline]
pub(crate) fn put_i64(out: &mut Vec<u8>, v: i64) {
    if v < 0 {
        out.push(b'-');
    }
    let mut tmp = [0u8; 20];
    let len = write_u64(&mut tmp, v.unsigned_abs());
    out.extend_from_slice(&tmp[20 - len..]);
}

/// Appends a float: fixed `decimals` when set, else the shortest form that reads back exactly (with a
/// `.0` on whole numbers when `force_point`). Non-finite values are written as `NaN`/`inf`.
pub(crate) fn put_f64(out: &mut Vec<u8>, x: f64, decimals: Option<u8>, force_point: bool) {
    use std::io::Write as _;
    match decimals {
        Some(d) => {
            let scale = 10u64.pow(d as u32);
            let scaled = (x * scale as f64).round();
            if scaled.is_finite() && scaled.abs() < 9.0e15 {
                let m = scaled as i64;
                if m < 0 {
                    out.push(b'-');
                }
                let m = m.unsigned_abs();
                let mut tmp = [0u8; 20];
                let len = write_u64(&mut tmp, m / scale);
                out.extend_from_slice(&tmp[20 - len..]);
                if d > 0 {
                    out.push(b'.');
                    let len = write_u64(&mut tmp, m % scale);
                    for _ in len..d as usize {
                        out.push(b'0');
                    }
                    out.extend_from_slice(&tmp[20 - len..]);
                }
            } else {
                let _ = write!(out, "{x:.prec$}", prec = d as usize);
            }
        }
        None => {
            let start = out.len();
            let _ = write!(out, "{x}");
            if force_point && x.is_finite() && !out[start..].contains(&b'.') {
                out.extend_from_slice(b".0");
            }
        }
    }
}

/// Days since 1970-01-01 to (year, month, day) (proleptic Gregorian; Howard Hinnant's algorithm).
pub(crate) fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn put2(out: &mut Vec<u8>, v: u32) {
    out.push(b'0' + (v / 10) as u8);
    out.push(b'0' + (v % 10) as u8);
}

/// Appends `YYYY-MM-DD` for days since 1970-01-01.
pub(crate) fn put_date(out: &mut Vec<u8>, days: i32) {
    let (y, m, d) = civil_from_days(days as i64);
    if !(0..=9999).contains(&y) {
        out.push(if y < 0 { b'-' } else { b'+' });
    }
    let ya = y.unsigned_abs();
    if ya > 9999 {
        let mut tmp = [0u8; 20];
        let len = write_u64(&mut tmp, ya);
        out.extend_from_slice(&tmp[20 - len..]);
    } else {
        put2(out, (ya / 100) as u32);
        put2(out, (ya % 100) as u32);
    }
    out.push(b'-');
    put2(out, m);
    out.push(b'-');
    put2(out, d);
}

/// Appends `YYYY-MM-DDTHH:MM:SS` for seconds since 1970-01-01T00:00:00.
pub(crate) fn put_datetime(out: &mut Vec<u8>, secs: i64) {
    let days = secs.div_euclid(86_400);
    let s = secs.rem_euclid(86_400) as u32;
    put_date(out, days as i32);
    out.push(b'T');
    put2(out, s / 3600);
    out.push(b':');
    put2(out, s / 60 % 60);
    out.push(b':');
    put2(out, s % 60);
}

/// Appends a CSV field, quoted (with doubled quotes) only when it contains a comma, quote or line break.
#[inline]
pub(crate) fn put_csv_str(out: &mut Vec<u8>, s: &str) {
    let b = s.as_bytes();
    if b.iter().any(|&c| matches!(c, b',' | b'"' | b'\n' | b'\r')) {
        out.push(b'"');
        for &c in b {
            if c == b'"' {
                out.push(b'"');
            }
            out.push(c);
        }
        out.push(b'"');
    } else {
        out.extend_from_slice(b);
    }
}

/// Appends a JSON string literal.
#[inline]
pub(crate) fn put_json_str(out: &mut Vec<u8>, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(b'"');
    let b = s.as_bytes();
    let mut from = 0;
    for (i, &c) in b.iter().enumerate() {
        let esc: &[u8] = match c {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0..=0x1f => b"",
            _ => continue,
        };
        out.extend_from_slice(&b[from..i]);
        if esc.is_empty() {
            out.extend_from_slice(b"\\u00");
            out.push(HEX[(c >> 4) as usize]);
            out.push(HEX[(c & 15) as usize]);
        } else {
            out.extend_from_slice(esc);
        }
        from = i + 1;
    }
    out.extend_from_slice(&b[from..]);
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::locale::data;
    use crate::schema::Locale;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    fn s(f: impl Fn(&mut ChaCha8Rng, &mut String)) -> String {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let mut out = String::new();
        f(&mut rng, &mut out);
        out
    }

    #[test]
    fn fake_values_look_right() {
        let en = data(Locale::En);
        let name = s(|r, o| full_name(en, r, o));
        assert_eq!(name.split(' ').count(), 2, "{name}");
        let ph = s(|r, o| phone(en, r, o));
        assert!(ph.chars().filter(|c| c.is_ascii_digit()).count() >= 10, "{ph}");
        let u = s(uuid);
        assert_eq!(u.len(), 36);
        assert_eq!(&u[14..15], "4");
        assert!(matches!(&u[19..20], "8" | "9" | "a" | "b"), "{u}");
        let ipv4 = s(ip);
        let octets: Vec<u32> = ipv4.split('.').map(|p| p.parse().unwrap()).collect();
        assert_eq!(octets.len(), 4);
        let t = s(|r, o| text(en, 7, 7, r, o));
        assert_eq!(t.split(' ').count(), 7, "{t}");
        assert!(t.ends_with('.') && t.chars().next().unwrap().is_uppercase(), "{t}");
        for f in [street_address, city, state, country, postcode, company, job_title] {
            assert!(!s(|r, o| f(en, r, o)).trim().is_empty());
        }
    }

    #[test]
    fn emails_follow_the_names_and_are_ascii() {
        let mut w = NameWords::default();
        w.add("Zoë O'Brien");
        assert_eq!((w.len(), w.word(0), w.word(2)), (3, "zoe", "brien"));
        let fr = data(Locale::FrFr);
        for seed in 0..50 {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let mut out = String::new();
            email(fr, &mut w, &mut rng, &mut out);
            assert!(out.is_ascii() && out.contains('@'), "{out}");
            assert!(out.contains("zoe") || out.starts_with('z'), "{out}");
        }
        let mut w = NameWords::default();
        w.add("王伟");
        assert!(w.len() >= 2 && w.word(0) == "wang", "{:?}", (w.len(), w.word(0)));
        let mut empty = NameWords::default();
        let mut out = String::new();
        username(data(Locale::JaJp), &mut empty, &mut ChaCha8Rng::seed_from_u64(1), &mut out);
        assert!(out.is_ascii() && !out.is_empty(), "{out}");
    }

    #[test]
    fn numbers_and_dates_format_exactly() {
        let f = |x: f64, d: Option<u8>, p: bool| {
            let mut v = Vec::new();
            put_f64(&mut v, x, d, p);
            String::from_utf8(v).unwrap()
        };
        assert_eq!(f(12.3, Some(2), false), "12.30");
        assert_eq!(f(-0.004, Some(2), false), "0.00");
        assert_eq!(f(-1.005, Some(1), false), "-1.0");
        assert_eq!(f(7.0, Some(0), false), "7");
        assert_eq!(f(7.0, None, true), "7.0");
        assert_eq!(f(0.1, None, false), "0.1");
        let mut v = Vec::new();
        put_i64(&mut v, i64::MIN);
        assert_eq!(String::from_utf8(v).unwrap(), i64::MIN.to_string());
        for days in [-800_000i32, -1, 0, 59, 10_000, 19_782, 2_000_000] {
            let mut v = Vec::new();
            put_date(&mut v, days);
            let expect = (chrono::NaiveDate::from_ymd_opt(1970, 1, 1).unwrap() + chrono::TimeDelta::days(days as i64))
                .format("%Y-%m-%d")
                .to_string();
            assert_eq!(String::from_utf8(v).unwrap(), expect);
        }
        let mut v = Vec::new();
        put_datetime(&mut v, 1_700_000_000);
        assert_eq!(String::from_utf8(v).unwrap(), "2023-11-14T22:13:20");
        let mut id = String::new();
        text_id("C-", 42, 6, &mut id);
        assert_eq!(id, "C-000042");
    }

    #[test]
    fn csv_and_json_escaping() {
        let mut v = Vec::new();
        put_csv_str(&mut v, "a,\"b\"\nc");
        put_csv_str(&mut v, "plain");
        assert_eq!(String::from_utf8(v).unwrap(), "\"a,\"\"b\"\"\nc\"plain");
        let mut v = Vec::new();
        put_json_str(&mut v, "q\"\\\n\u{1}é");
        let s = String::from_utf8(v).unwrap();
        assert_eq!(serde_json::from_str::<String>(&s).unwrap(), "q\"\\\n\u{1}é");
    }
}
