//! The `fake` crate's locale tables, gathered once per locale into plain slices and pre-parsed templates.
//!
//! The `fake` crate keeps its data as associated constants of one type per locale (`fake::locales::EN`,
//! `FR_FR`, ...). Generating through its `Fake` trait allocates a `String` per value and needs its own `rand`
//! version; reading the tables directly lets [`crate::cells`] write every value straight into a reused buffer
//! with the block's seeded generator, in the same style as `fake` (its name, city, street, company, job and
//! phone templates; the few locales where `fake` hard-codes a different city formula use the common one).

use std::sync::OnceLock;

use fake::locales::{
    AR_SA, CY_GB, DE_DE, Data, EN, FA_IR, FR_FR, IT_IT, JA_JP, NL_NL, PT_BR, PT_PT, TR_TR, ZH_CN, ZH_TW,
};

use crate::schema::Locale;

/// A placeholder of a `fake` template.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Slot {
    FirstName,
    LastName,
    CityName,
    CityPrefix,
    CitySuffix,
    StreetName,
    StreetSuffix,
    /// A last name in a company template.
    CompanyName,
    CompanySuffix,
    Seniority,
    Field,
    Position,
}

/// One piece of a template: literal text or a placeholder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Piece {
    Lit(&'static str),
    Slot(Slot),
}

/// A parsed template such as `{FirstName} {LastName}`.
pub(crate) type Template = Vec<Piece>;

/// Everything the cell generators need from one locale.
#[derive(Debug)]
pub(crate) struct LocaleData {
    pub first_names: &'static [&'static str],
    pub last_names: &'static [&'static str],
    pub name: Template,
    pub city_prefixes: &'static [&'static str],
    pub city_suffixes: &'static [&'static str],
    pub city: Template,
    pub city_with_prefix: Template,
    pub street_suffixes: &'static [&'static str],
    pub street: Template,
    pub building_formats: &'static [&'static str],
    pub postcode_formats: &'static [&'static str],
    pub states: &'static [&'static str],
    pub countries: &'static [&'static str],
    pub companies: Vec<Template>,
    pub company_suffixes: &'static [&'static str],
    pub job: Template,
    pub seniorities: &'static [&'static str],
    pub fields: &'static [&'static str],
    pub positions: &'static [&'static str],
    pub phone_formats: Vec<&'static str>,
    pub words: &'static [&'static str],
    /// Whether words of running text are separated by spaces (not in Chinese).
    pub spaced_words: bool,
    /// Free e-mail providers (ASCII only: addresses stay plain ASCII).
    pub email_providers: Vec<&'static str>,
    /// Top-level domains (ASCII only).
    pub domain_suffixes: Vec<&'static str>,
}

/// The data of a locale, built on first use.
pub(crate) fn data(locale: Locale) -> &'static LocaleData {
    static CELLS: [OnceLock<LocaleData>; Locale::ALL.len()] = [const { OnceLock::new() }; Locale::ALL.len()];
    let i = Locale::ALL.iter().position(|l| *l == locale).unwrap_or(0);
    CELLS[i].get_or_init(|| match locale {
        Locale::En => build::<EN>(),
        Locale::FrFr => build::<FR_FR>(),
        Locale::DeDe => build::<DE_DE>(),
        Locale::ItIt => build::<IT_IT>(),
        Locale::PtBr => build::<PT_BR>(),
        Locale::PtPt => build::<PT_PT>(),
        Locale::NlNl => build::<NL_NL>(),
        Locale::ZhCn => build::<ZH_CN>(),
        Locale::ZhTw => build::<ZH_TW>(),
        Locale::JaJp => build::<JA_JP>(),
        Locale::ArSa => build::<AR_SA>(),
        Locale::CyGb => build::<CY_GB>(),
        Locale::FaIr => build::<FA_IR>(),
        Locale::TrTr => build::<TR_TR>(),
    })
}

/// `list`, or the English list when the locale leaves it empty.
fn or_en(list: &'static [&'static str], en: &'static [&'static str]) -> &'static [&'static str] {
    if list.is_empty() { en } else { list }
}

/// The ASCII entries of `list`, or the English list when there are none.
fn ascii_or_en(list: &'static [&'static str], en: &'static [&'static str]) -> Vec<&'static str> {
    let ascii: Vec<&'static str> = list.iter().copied().filter(|s| s.is_ascii() && !s.is_empty()).collect();
    if ascii.is_empty() { en.to_vec() } else { ascii }
}

fn build<L: Data>() -> LocaleData {
    let phone_formats: Vec<&'static str> = {
        let plain: Vec<&'static str> = L::PHONE_NUMBER_FORMATS.iter().copied().filter(|f| !f.contains('x')).collect();
        if plain.is_empty() {
            or_en(L::PHONE_CELL_NUMBER_FORMATS, EN::PHONE_CELL_NUMBER_FORMATS).to_vec()
        } else {
            plain
        }
    };
    let words = or_en(L::LOREM_WORD, EN::LOREM_WORD);
    let companies: Vec<Template> =
        or_en(L::COMPANY_NAME_TPLS, EN::COMPANY_NAME_TPLS).iter().map(|t| template(t)).collect();
    LocaleData {
        first_names: or_en(L::NAME_FIRST_NAME, EN::NAME_FIRST_NAME),
        last_names: or_en(L::NAME_LAST_NAME, EN::NAME_LAST_NAME),
        name: template(L::NAME_TPL),
        city_prefixes: or_en(L::ADDRESS_CITY_PREFIX, EN::ADDRESS_CITY_PREFIX),
        city_suffixes: L::ADDRESS_CITY_SUFFIX,
        city: template(L::ADDRESS_CITY_TPL),
        city_with_prefix: template(L::ADDRESS_CITY_WITH_PREFIX_TPL),
        street_suffixes: or_en(L::ADDRESS_STREET_SUFFIX, EN::ADDRESS_STREET_SUFFIX),
        street: template(L::ADDRESS_STREET_TPL),
        building_formats: or_en(L::ADDRESS_BUILDING_NUMBER_FORMATS, EN::ADDRESS_BUILDING_NUMBER_FORMATS),
        postcode_formats: or_en(L::ADDRESS_POSTCODE_FORMATS, EN::ADDRESS_POSTCODE_FORMATS),
        states: or_en(L::ADDRESS_STATE, EN::ADDRESS_STATE),
        countries: or_en(L::ADDRESS_COUNTRY, EN::ADDRESS_COUNTRY),
        companies,
        company_suffixes: or_en(L::COMPANY_SUFFIX, EN::COMPANY_SUFFIX),
        job: template(L::JOB_TITLE_TPL),
        seniorities: or_en(L::JOB_SENIORITY, EN::JOB_SENIORITY),
        fields: or_en(L::JOB_FIELD, EN::JOB_FIELD),
        positions: or_en(L::JOB_POSITION, EN::JOB_POSITION),
        phone_formats,
        spaced_words: words.first().is_none_or(|w| w.is_ascii()),
        words,
        email_providers: ascii_or_en(L::INTERNET_FREE_EMAIL_PROVIDER, EN::INTERNET_FREE_EMAIL_PROVIDER),
        domain_suffixes: ascii_or_en(L::INTERNET_DOMAIN_SUFFIX, EN::INTERNET_DOMAIN_SUFFIX),
    }
}

/// Parses a `fake` template; unknown placeholders are kept as literal text.
pub(crate) fn template(t: &'static str) -> Template {
    let mut out = Vec::new();
    let mut rest = t;
    while let Some(open) = rest.find('{') {
        if open > 0 {
            out.push(Piece::Lit(&rest[..open]));
        }
        let Some(close) = rest[open..].find('}') else {
            out.push(Piece::Lit(&rest[open..]));
            return out;
        };
        let name = &rest[open + 1..open + close];
        let slot = match name {
            "FirstName" => Some(Slot::FirstName),
            "LastName" => Some(Slot::LastName),
            "CityName" => Some(Slot::CityName),
            "CityPrefix" => Some(Slot::CityPrefix),
            "CitySuffix" => Some(Slot::CitySuffix),
            "StreetName" => Some(Slot::StreetName),
            "StreetSuffix" => Some(Slot::StreetSuffix),
            "Name_1" | "Name_2" => Some(Slot::CompanyName),
            "Suffix" => Some(Slot::CompanySuffix),
            "Seniority" => Some(Slot::Seniority),
            "Field" => Some(Slot::Field),
            "Position" => Some(Slot::Position),
            _ => None,
        };
        match slot {
            Some(s) => out.push(Piece::Slot(s)),
            None => out.push(Piece::Lit(&rest[open..=open + close])),
        }
        rest = &rest[open + close + 1..];
    }
    if !rest.is_empty() {
        out.push(Piece::Lit(rest));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_parse() {
        assert_eq!(
            template("{FirstName} {LastName}"),
            vec![Piece::Slot(Slot::FirstName), Piece::Lit(" "), Piece::Slot(Slot::LastName)]
        );
        assert_eq!(template("{LastName}{FirstName}"), vec![Piece::Slot(Slot::LastName), Piece::Slot(Slot::FirstName)]);
        assert_eq!(template("a {Odd} b"), vec![Piece::Lit("a "), Piece::Lit("{Odd}"), Piece::Lit(" b")]);
        assert_eq!(template("{Broken"), vec![Piece::Lit("{Broken")]);
    }

    #[test]
    fn every_locale_has_usable_data() {
        for l in Locale::ALL {
            let d = data(l);
            assert!(!d.first_names.is_empty() && !d.last_names.is_empty(), "{l}");
            assert!(!d.name.is_empty() && !d.companies.is_empty() && !d.phone_formats.is_empty(), "{l}");
            assert!(!d.states.is_empty() && !d.countries.is_empty() && !d.words.is_empty(), "{l}");
            assert!(!d.email_providers.is_empty() && !d.positions.is_empty(), "{l}");
        }
        assert_eq!(data(Locale::JaJp).name[0], Piece::Slot(Slot::LastName), "family name first in Japanese");
        assert!(data(Locale::FrFr).first_names.contains(&"Jean") || data(Locale::FrFr).first_names.len() > 50);
        assert!(!data(Locale::ZhCn).spaced_words);
    }
}
