#!/usr/bin/env python3
"""Validate tests/data/pii_cases.jsonl (the labelled PII redaction test set).

Usage: python3 check_pii_cases.py [path/to/pii_cases.jsonl]

Checks (standard library only; phone numbers are additionally checked with the
`phonenumbers` package and IBANs with `schwifty` when those are importable):
  * every line is a JSON object with id/text/entities (+ optional note); ids unique
  * entity types are from the fixed set; every value is a substring of the text,
    entities are listed in order of appearance and do not overlap
  * positives are valid: Luhn + brand prefix/length for CREDIT_CARD, mod-97 and
    country length for IBAN, issuable ranges for SSN, ipaddress-parseable
    IP_ADDRESS, user:password shape for URL_CREDENTIALS, E.164-ish shape for PHONE
  * near-miss lines (id starting with "near-") exist in sufficient number
  * consistency sweeps over the unlabelled remainder of every text: no valid
    e-mail address, IPv4/IPv6 address, Luhn-valid card-like number, valid IBAN,
    valid-range dashed SSN, URL userinfo with a password, well-known secret
    token shape (AKIA..., ghp_..., xoxb-..., sk-..., AIza..., JWT, PEM private
    key, ...) or (with phonenumbers) valid phone number may be left unlabelled,
    apart from the documented exceptions in SWEEP_EXCEPTIONS
  * minimum counts per type; prints the counts
Exit status 0 on success, 1 on any failure.
"""
import ipaddress
import json
import os
import re
import sys
from collections import Counter

TYPES = ["EMAIL", "PHONE", "CREDIT_CARD", "IBAN", "SSN", "IP_ADDRESS",
         "URL_CREDENTIALS", "SECRET", "PERSON"]
MIN_PER_TYPE = {t: 20 for t in TYPES}
MIN_PER_TYPE["PERSON"] = 30
MIN_LINES = 260
MIN_NEAR_MISS = 80
MIN_PHONE_COUNTRIES = 8
MIN_IBAN_COUNTRIES = 8

# Unlabelled look-alikes that are deliberately NOT entities (judgement calls).
SWEEP_EXCEPTIONS = {
    ("near-version-002", "ipv4"): "3.2.0.1 in an explicit 'driver version' context",
    ("near-version-008", "ipv4"): "4.2.1.3 is a document section number",
    ("near-card-011", "card"): "IMEI passes Luhn but has no card IIN/length combination",
    ("contrast-ip-001", "ipv4"): "3.2.0.7 is labelled as a build number next to a real host IP",
    ("near-version-009", "phone"): "Chrome/122.0.6261.112 parses as a valid NANP number but is a user-agent version",
}

IBAN_LENGTHS = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22,
    "BH": 22, "BR": 29, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DK": 18,
    "DO": 28, "EE": 20, "EG": 29, "ES": 24, "FI": 18, "FO": 18, "FR": 27, "GB": 22,
    "GE": 22, "GI": 23, "GL": 18, "GR": 27, "GT": 28, "HR": 21, "HU": 28, "IE": 22,
    "IL": 23, "IS": 26, "IT": 27, "JO": 30, "KW": 30, "KZ": 20, "LB": 28, "LI": 21,
    "LT": 20, "LU": 20, "LV": 21, "MC": 27, "MD": 24, "ME": 22, "MK": 19, "MR": 27,
    "MT": 31, "MU": 30, "NL": 18, "NO": 15, "PK": 24, "PL": 28, "PS": 29, "PT": 25,
    "QA": 29, "RO": 24, "RS": 22, "SA": 24, "SE": 24, "SI": 19, "SK": 24, "SM": 27,
    "TN": 24, "TR": 26, "UA": 29, "VG": 24, "XK": 20,
}


# ITU calling codes (subset, enough to group the fallback count when phonenumbers is absent)
CALLING_CODES = {
    "1", "7", "20", "27", "30", "31", "32", "33", "34", "36", "39", "40", "41", "43", "44",
    "45", "46", "47", "48", "49", "51", "52", "54", "55", "56", "57", "60", "61", "62", "63",
    "64", "65", "66", "81", "82", "84", "86", "90", "91", "92", "234", "254", "351", "352",
    "353", "354", "358", "370", "420", "852", "966", "971", "972",
}


def calling_code(v):
    if not v.startswith("+"):
        return "1"
    d = re.sub(r"\D", "", v)
    for k in (1, 2, 3):
        if d[:k] in CALLING_CODES:
            return d[:k]
    return d[:3]


def luhn_ok(digits):
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def card_brand(d):
    n = len(d)
    if d[0] == "4" and n in (13, 16, 19):
        return "visa"
    if n == 16 and (51 <= int(d[:2]) <= 55 or 2221 <= int(d[:4]) <= 2720):
        return "mastercard"
    if n == 15 and d[:2] in ("34", "37"):
        return "amex"
    if n == 16 and (d.startswith("6011") or d.startswith("65") or 644 <= int(d[:3]) <= 649):
        return "discover"
    if n == 16 and 3528 <= int(d[:4]) <= 3589:
        return "jcb"
    return None


def iban_ok(value):
    s = value.replace(" ", "")
    if not re.fullmatch(r"[A-Z]{2}[0-9]{2}[A-Z0-9]+", s):
        return False
    if IBAN_LENGTHS.get(s[:2]) != len(s):
        return False
    num = "".join(str(int(c, 36)) for c in s[4:] + s[:4])
    return int(num) % 97 == 1


def ssn_ok(value):
    m = re.fullmatch(r"(\d{3})([- ])(\d{2})\2(\d{4})", value)
    if not m:
        return False
    a, g, s = int(m.group(1)), int(m.group(3)), int(m.group(4))
    return 0 < a < 900 and a != 666 and g != 0 and s != 0


def ip_ok(value):
    try:
        ipaddress.ip_address(value)
        return True
    except ValueError:
        return False


EMAIL_RE = re.compile(r"[A-Za-z0-9._%+'\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}")
IPV4_RE = re.compile(r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?![\w]|\.\d)")
IPV6_RE = re.compile(r"(?<![\w:.])[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*(?!\w)")
DIGIT_RUN_RE = re.compile(r"(?<![\w.,])\d+(?:[ \-]\d+)*(?![\w])")
SSN_RE = re.compile(r"(?<![\w-])\d{3}-\d{2}-\d{4}(?![\w-])")
IBAN_START_RE = re.compile(r"(?<![A-Za-z0-9])[A-Z]{2}\d{2}")
USERINFO_RE = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://([^/\s@]*:[^/\s@]*)@")
SECRET_RES = [
    re.compile(r"AKIA[A-Z2-7]{16}"),
    re.compile(r"gh[pousr]_[A-Za-z0-9]{36}|github_pat_[A-Za-z0-9_]{60,}"),
    re.compile(r"glpat-[A-Za-z0-9_\-]{20}"),
    re.compile(r"xox[abposr]-[A-Za-z0-9\-]{20,}"),
    re.compile(r"sk-(?:proj-|ant-)?[A-Za-z0-9_\-]{32,}"),
    re.compile(r"[sr]k_(?:live|test)_[A-Za-z0-9]{20,}"),
    re.compile(r"AIza[A-Za-z0-9_\-]{35}"),
    re.compile(r"eyJ[A-Za-z0-9_\-]+\.eyJ[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+"),
    re.compile(r"npm_[A-Za-z0-9]{36}"),
    re.compile(r"SG\.[A-Za-z0-9_\-]{22}\.[A-Za-z0-9_\-]{43}"),
    re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
]


def main():
    path = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(os.path.abspath(__file__)), "pii_cases.jsonl")
    errors = []

    def err(msg):
        errors.append(msg)

    try:
        import phonenumbers  # optional
    except ImportError:
        phonenumbers = None
    try:
        from schwifty import IBAN as SchwiftyIBAN  # optional
    except ImportError:
        SchwiftyIBAN = None

    rows = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                err("line %d: empty line" % n)
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                err("line %d: invalid JSON: %s" % (n, e))
                continue
            rows.append((n, row))

    ids = Counter()
    ent_count = Counter()
    line_count = Counter()
    near_miss = 0
    phone_regions = Counter()
    iban_countries = Counter()
    card_brands = Counter()
    sweep_hits_used = set()

    for n, row in rows:
        where = "line %d (%s)" % (n, row.get("id"))
        if not isinstance(row, dict) or set(row) - {"id", "text", "entities", "note"} or not {"id", "text", "entities"} <= set(row):
            err("%s: wrong keys %s" % (where, sorted(row) if isinstance(row, dict) else row))
            continue
        rid, text, ents = row["id"], row["text"], row["entities"]
        if not isinstance(rid, str) or not isinstance(text, str) or not isinstance(ents, list):
            err("%s: wrong field types" % where)
            continue
        if "note" in row and not isinstance(row["note"], str):
            err("%s: note must be a string" % where)
        ids[rid] += 1
        if rid.startswith("near-"):
            near_miss += 1

        # --- spans: in order, non-overlapping
        spans = []
        cursor = 0
        types_here = set()
        for e in ents:
            if not isinstance(e, dict) or set(e) != {"type", "value"}:
                err("%s: bad entity %r" % (where, e))
                continue
            t, v = e["type"], e["value"]
            if t not in TYPES:
                err("%s: unknown type %r" % (where, t))
                continue
            if not isinstance(v, str) or not v:
                err("%s: empty value" % where)
                continue
            if v not in text:
                err("%s: value %r is not a substring of text" % (where, v))
                continue
            if v != v.strip():
                err("%s: value %r has surrounding whitespace" % (where, v))
            if t != "SECRET" and v[-1] in ".,;:!?)]}>\"'":
                err("%s: value %r ends with punctuation" % (where, v))
            pos = text.find(v, cursor)
            if pos < 0:
                err("%s: value %r not found after previous entity (order/overlap)" % (where, v))
                continue
            spans.append((pos, pos + len(v), t))
            cursor = pos + len(v)
            ent_count[t] += 1
            types_here.add(t)
            # --- per-type validity
            if t == "CREDIT_CARD":
                if not re.fullmatch(r"\d{4}([ -]?)\d{4,6}\1\d{4,5}(\1\d{4})?", v):
                    err("%s: card %r has an unexpected grouping" % (where, v))
                d = re.sub(r"[ -]", "", v)
                if not d.isdigit() or not luhn_ok(d):
                    err("%s: card %r fails Luhn" % (where, v))
                b = card_brand(d) if d.isdigit() else None
                if b is None:
                    err("%s: card %r has no known brand prefix/length" % (where, v))
                card_brands[b] += 1
            elif t == "IBAN":
                if not iban_ok(v):
                    err("%s: IBAN %r fails checksum/length" % (where, v))
                if " " in v and not re.fullmatch(r"[A-Z0-9]{4}( [A-Z0-9]{4})*( [A-Z0-9]{1,3})?", v):
                    err("%s: IBAN %r is not grouped by 4" % (where, v))
                if SchwiftyIBAN is not None:
                    try:
                        SchwiftyIBAN(v)
                    except Exception as ex:  # noqa: BLE001
                        err("%s: schwifty rejects %r: %s" % (where, v, ex))
                iban_countries[v[:2]] += 1
            elif t == "SSN":
                if not ssn_ok(v):
                    err("%s: SSN %r outside issuable ranges or malformed" % (where, v))
            elif t == "IP_ADDRESS":
                if not ip_ok(v):
                    err("%s: %r is not an IP address" % (where, v))
            elif t == "EMAIL":
                if not re.fullmatch(r"[^\s@]+@[^\s@]+\.[^\s@]{2,}", v):
                    err("%s: %r is not an e-mail address" % (where, v))
            elif t == "URL_CREDENTIALS":
                if ":" not in v or not re.fullmatch(r"(?:[A-Za-z0-9\-._~!$&'()*+,;=:]|%[0-9A-Fa-f]{2})+", v):
                    err("%s: %r is not a user:password userinfo" % (where, v))
                elif not text[pos + len(v):].startswith("@") or "://" not in text[max(0, pos - 40):pos]:
                    err("%s: %r is not between '://' and '@'" % (where, v))
            elif t == "PHONE":
                if not re.fullmatch(r"\+?[\d\s().\-]{7,}", v) or not v[-1].isdigit():
                    err("%s: %r does not look like a phone number" % (where, v))
                if phonenumbers is not None:
                    try:
                        pn = phonenumbers.parse(v, None if v.startswith("+") else "US")
                        if not phonenumbers.is_valid_number(pn):
                            err("%s: phone %r is not valid per libphonenumber" % (where, v))
                        phone_regions[phonenumbers.region_code_for_number(pn)] += 1
                    except phonenumbers.NumberParseException as ex:
                        err("%s: phone %r does not parse: %s" % (where, v, ex))
                else:
                    phone_regions["+" + calling_code(v)] += 1
            elif t == "PERSON":
                if not v[0].isupper() or re.match(r"(Mr|Ms|Mrs|Dr|Prof|Herr)\b", v) or v.endswith("'s"):
                    err("%s: PERSON %r includes a title/possessive or is not capitalised" % (where, v))
            elif t == "SECRET":
                if re.search(r"^(Bearer|Basic) ", v) or v[0] in "\"'" or v[-1] in "\"'":
                    err("%s: SECRET %r includes a scheme word or quotes" % (where, v))
        for t in types_here:
            line_count[t] += 1

        # --- consistency sweeps over the unlabelled remainder
        def covered(a, b):
            return any(a < e and s < b for s, e, _ in spans)

        def sweep_hit(kind, a, b, what):
            if covered(a, b):
                return
            key = (rid, kind)
            if key in SWEEP_EXCEPTIONS:
                sweep_hits_used.add(key)
                return
            err("%s: unlabelled %s %r" % (where, kind, what))

        for m in EMAIL_RE.finditer(text):
            sweep_hit("email", m.start(), m.end(), m.group())
        for m in IPV4_RE.finditer(text):
            if ip_ok(m.group()):
                sweep_hit("ipv4", m.start(), m.end(), m.group())
        for m in IPV6_RE.finditer(text):
            cand = m.group().rstrip(".")
            for c in (cand, cand.rstrip(":")):
                if c.count(":") >= 2 and ip_ok(c):
                    sweep_hit("ipv6", m.start(), m.start() + len(c), c)
                    break
        for m in DIGIT_RUN_RE.finditer(text):
            d = re.sub(r"[ -]", "", m.group())
            if 13 <= len(d) <= 19 and luhn_ok(d):
                sweep_hit("card", m.start(), m.end(), m.group())
        for m in SSN_RE.finditer(text):
            if ssn_ok(m.group()):
                sweep_hit("ssn", m.start(), m.end(), m.group())
        for m in IBAN_START_RE.finditer(text):
            cc = text[m.start():m.start() + 2]
            if cc not in IBAN_LENGTHS:
                continue
            chunk = text[m.start():m.start() + 50]
            compact, raw_len = "", 0
            for ch in chunk:
                if ch.isalnum() and ch.isascii():
                    compact += ch
                elif ch != " ":
                    break
                raw_len += 1
                if len(compact) == IBAN_LENGTHS[cc]:
                    if iban_ok(compact):
                        sweep_hit("iban", m.start(), m.start() + raw_len, chunk[:raw_len])
                    break
        for m in USERINFO_RE.finditer(text):
            if "<" in m.group(1) or "${" in m.group(1):
                continue  # documentation placeholders such as <user>:<password>
            sweep_hit("url userinfo", m.start(1), m.end(1), m.group(1))
        for rx in SECRET_RES:
            for m in rx.finditer(text):
                sweep_hit("secret", m.start(), m.end(), m.group()[:40])
        if phonenumbers is not None:
            for m in phonenumbers.PhoneNumberMatcher(text, "US", leniency=phonenumbers.Leniency.VALID):
                sweep_hit("phone", m.start, m.end, m.raw_string)

        # --- near-miss lines that target a type must not contain that type
        target = {"near-card": "CREDIT_CARD", "near-iban": "IBAN", "near-ssn": "SSN",
                  "near-email": "EMAIL", "near-phone": "PHONE", "near-person": "PERSON",
                  "near-secret": "SECRET", "near-url": "URL_CREDENTIALS",
                  "near-version": "IP_ADDRESS", "near-ipv6": "IP_ADDRESS"}.get(rid.rsplit("-", 1)[0])
        if target and target in types_here:
            err("%s: near-miss line labels its own target type %s" % (where, target))

    for key in SWEEP_EXCEPTIONS:
        if key[1] == "phone" and phonenumbers is None:
            continue
        if key not in sweep_hits_used:
            err("sweep exception %s no longer needed or id changed" % (key,))
    dups = [i for i, c in ids.items() if c > 1]
    if dups:
        err("duplicate ids: %s" % dups)
    total = len(rows)
    if total < MIN_LINES:
        err("only %d lines (< %d)" % (total, MIN_LINES))
    if near_miss < MIN_NEAR_MISS:
        err("only %d near-miss lines (< %d)" % (near_miss, MIN_NEAR_MISS))
    for t, need in MIN_PER_TYPE.items():
        if line_count[t] < need:
            err("type %s: only %d lines with positives (< %d)" % (t, line_count[t], need))
    if len(phone_regions) < MIN_PHONE_COUNTRIES:
        err("phones from only %d countries" % len(phone_regions))
    if len(iban_countries) < MIN_IBAN_COUNTRIES:
        err("IBANs from only %d countries" % len(iban_countries))
    for b in ("visa", "mastercard", "amex", "discover", "jcb"):
        if card_brands[b] == 0:
            err("no %s card" % b)

    print("file: %s" % path)
    print("lines: %d   near-miss lines: %d   lines with no entities: %d" % (
        total, near_miss, sum(1 for _, r in rows if isinstance(r, dict) and r.get("entities") == [])))
    print("%-16s %9s %6s" % ("type", "entities", "lines"))
    for t in TYPES:
        print("%-16s %9d %6d" % (t, ent_count[t], line_count[t]))
    print("phone regions (%d): %s" % (len(phone_regions), dict(sorted(phone_regions.items()))))
    print("iban countries (%d): %s" % (len(iban_countries), dict(sorted(iban_countries.items()))))
    print("card brands: %s" % dict(card_brands))
    print("phonenumbers check: %s; schwifty check: %s" % (
        "on" if phonenumbers else "off (not installed)", "on" if SchwiftyIBAN else "off (not installed)"))
    if errors:
        for e in errors:
            print("FAIL:", e)
        print("%d problem(s)" % len(errors))
        return 1
    print("OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
