#!/usr/bin/env python3
"""Validate tests/data/pii_holdout.jsonl (held-out labelled PII test set).

Checks:
  * every line is a JSON object with id / text / entities (and optional note)
  * ids are unique, entity types are from the allowed set
  * every value is a substring of text, entities appear in order of occurrence
    and do not overlap; every further occurrence of a labelled value is labelled too
  * no trailing sentence punctuation in values (except inside secrets/passwords)
  * CREDIT_CARD: Luhn-valid, known brand prefix and length
  * IBAN: known country, correct length, mod-97 == 1
  * SSN: valid area/group/serial
  * PHONE: valid per libphonenumber (`phonenumbers` package)
  * IP_ADDRESS: parses as IPv4/IPv6, no port/brackets/CIDR
  * EMAIL: local@domain with a dotted domain
  * URL_CREDENTIALS: `user:password` directly followed by `@` and preceded by `://`
  * PERSON: no leading title, no possessive
  * unlabelled-content scan: no valid card / IBAN / dashed SSN / email / IPv4 left
    unlabelled anywhere (catches near-miss lines that are accidentally valid)
  * at least 12 positives per type, at least 40 near-miss lines, 150-200 lines

Usage: python3 check_pii_holdout.py [path]   (needs `pip install phonenumbers`)
Exit status 0 when everything passes.
"""
import ipaddress
import json
import os
import re
import sys

try:
    import phonenumbers
except ImportError:  # pragma: no cover
    sys.exit("the 'phonenumbers' package is required: pip install phonenumbers")

TYPES = {"EMAIL", "PHONE", "CREDIT_CARD", "IBAN", "SSN", "IP_ADDRESS",
         "URL_CREDENTIALS", "SECRET", "PERSON"}

IBAN_LENGTHS = {
    "AD": 24, "AE": 23, "AT": 20, "BE": 16, "BG": 22, "CH": 21, "CY": 28, "CZ": 24,
    "DE": 22, "DK": 18, "EE": 20, "ES": 24, "FI": 18, "FR": 27, "GB": 22, "GR": 27,
    "HR": 21, "HU": 28, "IE": 22, "IS": 26, "IT": 27, "LI": 21, "LT": 20, "LU": 20,
    "LV": 21, "MC": 27, "MT": 31, "NL": 18, "NO": 15, "PL": 28, "PT": 25, "RO": 24,
    "SE": 24, "SI": 19, "SK": 24, "SM": 27, "TR": 26,
}

# Regions tried for nationally-formatted phone numbers (no leading + / 00).
PHONE_REGIONS = ["US", "GB", "DE", "FR", "ES", "NL", "NO", "BE", "AT", "CH", "IT",
                 "SE", "DK", "FI", "PL", "PT", "IE"]

TITLES = ("Dr", "Dr.", "Dra.", "Mr", "Mr.", "Mrs.", "Ms.", "Mme", "Mme.", "Prof.",
          "Herr", "Frau", "Sr.", "Sra.", "mevrouw", "meneer", "dott.", "dott.ssa")

errors = []


def err(rid, msg):
    errors.append(f"{rid}: {msg}")


def luhn_ok(digits):
    total = 0
    for i, ch in enumerate(reversed(digits)):
        x = int(ch)
        if i % 2 == 1:
            x *= 2
            if x > 9:
                x -= 9
        total += x
    return total % 10 == 0


def card_brand(d):
    n = len(d)
    if d[0] == "4" and n in (13, 16, 19):
        return "visa"
    if n == 16 and (51 <= int(d[:2]) <= 55 or 2221 <= int(d[:4]) <= 2720):
        return "mastercard"
    if n == 15 and d[:2] in ("34", "37"):
        return "amex"
    if n in (16, 19) and (d.startswith("6011") or d.startswith("65")
                          or 644 <= int(d[:3]) <= 649 or 622126 <= int(d[:6]) <= 622925):
        return "discover"
    if n in (16, 17, 18, 19) and 3528 <= int(d[:4]) <= 3589:
        return "jcb"
    if n == 14 and (d[:2] in ("36", "38", "39") or 300 <= int(d[:3]) <= 305):
        return "diners"
    if 12 <= n <= 19 and d[:4] in ("5018", "5020", "5038", "5893", "6304", "6759",
                                    "6761", "6762", "6763"):
        return "maestro"
    return None


def card_valid(value):
    if not re.fullmatch(r"\d[\d -]*\d", value):
        return False
    d = re.sub(r"[ -]", "", value)
    return 13 <= len(d) <= 19 and luhn_ok(d) and card_brand(d) is not None


def iban_valid(value):
    s = value.replace(" ", "")
    if not re.fullmatch(r"[A-Z]{2}\d{2}[A-Z0-9]+", s):
        return False
    if IBAN_LENGTHS.get(s[:2]) != len(s):
        return False
    num = "".join(str(int(ch, 36)) for ch in s[4:] + s[:4])
    return int(num) % 97 == 1


def ssn_valid(value):
    m = re.fullmatch(r"(\d{3})([- ]?)(\d{2})\2(\d{4})", value)
    if not m:
        return False
    area, group, serial = int(m.group(1)), int(m.group(3)), int(m.group(4))
    return area not in (0, 666) and area < 900 and group != 0 and serial != 0


def phone_valid(value):
    """Return the region the number is valid in, or None."""
    if value.startswith("+"):
        candidates = [None]
    elif value.startswith("00"):
        candidates = ["DE", "FR", "NL"]  # 00 = international prefix in these
    else:
        candidates = PHONE_REGIONS
    for region in candidates:
        try:
            num = phonenumbers.parse(value, region)
        except phonenumbers.NumberParseException:
            continue
        if phonenumbers.is_valid_number(num):
            return phonenumbers.region_code_for_number(num)
    return None


def ip_valid(value):
    if any(c in value for c in "[]/%") or re.search(r"\.\d+:\d+$", value):
        return False
    try:
        ipaddress.ip_address(value)
        return True
    except ValueError:
        return False


EMAIL_RE = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")


def email_valid(value):
    return EMAIL_RE.fullmatch(value) is not None


def check_type(rid, etype, value, text, start):
    if etype == "CREDIT_CARD" and not card_valid(value):
        err(rid, f"credit card not Luhn/brand valid: {value!r}")
    elif etype == "IBAN" and not iban_valid(value):
        err(rid, f"IBAN invalid: {value!r}")
    elif etype == "SSN" and not ssn_valid(value):
        err(rid, f"SSN invalid: {value!r}")
    elif etype == "PHONE":
        if phone_valid(value) is None:
            err(rid, f"phone not valid per libphonenumber: {value!r}")
        if re.search(r"(ext|x|#)\.?\s*\d+$", value, re.I):
            err(rid, f"phone includes extension: {value!r}")
    elif etype == "IP_ADDRESS" and not ip_valid(value):
        err(rid, f"IP address invalid or has port/brackets/CIDR: {value!r}")
    elif etype == "EMAIL" and not email_valid(value):
        err(rid, f"email malformed: {value!r}")
    elif etype == "URL_CREDENTIALS":
        if ":" not in value or "@" in value:
            err(rid, f"URL credentials must be user:password: {value!r}")
        if not text[:start].endswith("://") or text[start + len(value):start + len(value) + 1] != "@":
            err(rid, f"URL credentials not in scheme://user:pass@host position: {value!r}")
    elif etype == "PERSON":
        first = value.split()[0]
        if first in TITLES:
            err(rid, f"PERSON value starts with a title: {value!r}")
        if value.endswith(("'s", "’s")):
            err(rid, f"PERSON value includes possessive: {value!r}")
    elif etype == "SECRET":
        if value.startswith(("${", "<")) or set(value) <= set("*") or "os.environ" in value:
            err(rid, f"placeholder labelled as SECRET: {value!r}")
        if "BEGIN" in value and ("PUBLIC KEY" in value or "CERTIFICATE" in value):
            err(rid, f"public key / certificate labelled as SECRET: {value!r}")
        if "-----BEGIN" in value and "-----END" not in value:
            err(rid, f"PEM block not complete: {value[:40]!r}")


def covered(spans, a, b):
    return any(s <= a and b <= e for s, e, _ in spans)


def scan_unlabelled(rid, text, spans):
    """Valid-looking PII that is not inside any labelled span is an error."""
    for m in re.finditer(r"(?<![\w-])\d(?:[ -]?\d){12,18}(?![\w-])", text):
        if card_valid(m.group()) and not covered(spans, m.start(), m.end()):
            err(rid, f"unlabelled valid card number: {m.group()!r}")
    for m in re.finditer(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{1,4}){2,8}\b", text):
        cand = m.group()
        s = cand.replace(" ", "")
        # shrink from the right to the country length if needed
        n = IBAN_LENGTHS.get(s[:2])
        if n and len(s) >= n and iban_valid(s[:n]) and not covered(spans, m.start(), m.end() - (len(s) - n)):
            err(rid, f"unlabelled valid IBAN: {cand!r}")
    for m in re.finditer(r"(?<![\w-])\d{3}-\d{2}-\d{4}(?![\w-])", text):
        if ssn_valid(m.group()) and not covered(spans, m.start(), m.end()):
            err(rid, f"unlabelled valid SSN: {m.group()!r}")
    for m in EMAIL_RE.finditer(text):
        if covered(spans, m.start(), m.end()):
            continue
        before = text[:m.start()]
        # URL userinfo (scheme://user@host, scheme://user:pass@host) and
        # package@version / image@sha256 are not emails.
        if re.search(r"://[^\s/]*$", before) or re.search(r"[/:]$", before):
            continue
        if any(s <= m.start() < e for s, e, _ in spans):
            continue
        err(rid, f"unlabelled email-like string: {m.group()!r}")
    for m in re.finditer(r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?![\w.])", text):
        if not ip_valid(m.group()) or covered(spans, m.start(), m.end()):
            continue
        if re.search(r"(section|clause|version|v)\s*$", text[:m.start()], re.I):
            continue  # documented near-miss: dotted section/version numbers
        err(rid, f"unlabelled IPv4: {m.group()!r}")


def main(path):
    ids = set()
    counts = {t: 0 for t in TYPES}
    near_miss = 0
    n_lines = 0
    with open(path, encoding="utf-8") as f:
        raw_lines = f.read().split("\n")
    if raw_lines and raw_lines[-1] == "":
        raw_lines.pop()
    for lineno, line in enumerate(raw_lines, 1):
        n_lines += 1
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            errors.append(f"line {lineno}: invalid JSON: {e}")
            continue
        if not isinstance(row, dict):
            errors.append(f"line {lineno}: not an object")
            continue
        rid = row.get("id")
        if not isinstance(rid, str) or not rid:
            errors.append(f"line {lineno}: missing id")
            rid = f"line{lineno}"
        if rid in ids:
            err(rid, "duplicate id")
        ids.add(rid)
        extra = set(row) - {"id", "text", "entities", "note"}
        if extra:
            err(rid, f"unexpected keys {sorted(extra)}")
        text = row.get("text")
        ents = row.get("entities")
        if not isinstance(text, str) or not isinstance(ents, list):
            err(rid, "text must be a string and entities a list")
            continue
        if "note" in row and not isinstance(row["note"], str):
            err(rid, "note must be a string")
        if not ents:
            near_miss += 1
        cursor = 0
        spans = []
        for ent in ents:
            if not isinstance(ent, dict) or set(ent) != {"type", "value"}:
                err(rid, f"entity must have exactly type and value: {ent!r}")
                continue
            etype, value = ent["type"], ent["value"]
            if etype not in TYPES:
                err(rid, f"unknown type {etype!r}")
                continue
            if not isinstance(value, str) or not value:
                err(rid, f"empty value for {etype}")
                continue
            if value not in text:
                err(rid, f"value is not a substring of text: {value!r}")
                continue
            pos = text.find(value, cursor)
            if pos < 0:
                err(rid, f"entities out of order of appearance at {value!r}")
                continue
            spans.append((pos, pos + len(value), etype))
            cursor = pos + len(value)
            if value != value.strip():
                err(rid, f"value has surrounding whitespace: {value!r}")
            if etype not in ("SECRET", "URL_CREDENTIALS") and value[-1] in ".,;:!?)\"'":
                err(rid, f"value ends with punctuation: {value!r}")
            counts[etype] += 1
            check_type(rid, etype, value, text, pos)
        # every occurrence of a labelled value must be labelled (once per occurrence)
        for value in {text[s:e] for s, e, _ in spans}:
            start = 0
            while True:
                p = text.find(value, start)
                if p < 0:
                    break
                if not any(s <= p < e for s, e, _ in spans):
                    err(rid, f"occurrence of {value!r} at {p} is not labelled")
                start = p + 1
        scan_unlabelled(rid, text, spans)

    if not 150 <= n_lines <= 200:
        errors.append(f"expected 150-200 lines, got {n_lines}")
    for t in sorted(TYPES):
        if counts[t] < 12:
            errors.append(f"only {counts[t]} positives for {t} (need >= 12)")
    if near_miss < 40:
        errors.append(f"only {near_miss} near-miss lines (need >= 40)")

    print(f"lines: {n_lines}")
    for t in sorted(TYPES):
        print(f"  {t:16s} {counts[t]}")
    print(f"near-miss lines (no entities): {near_miss}")
    if errors:
        print(f"\n{len(errors)} problem(s):")
        for e in errors:
            print("  " + e)
        return 1
    print("OK")
    return 0


if __name__ == "__main__":
    default = os.path.join(os.path.dirname(os.path.abspath(__file__)), "pii_holdout.jsonl")
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else default))
