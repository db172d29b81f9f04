"""The Python Faker baseline of the tabular benchmark (loadtest/src/bin/tabular.rs).

Generates the same 12 columns as the Rust benchmark schema (id, full name, e-mail from the name, phone, city,
company, date, integer normal, float lognormal, weighted category, boolean, derived expression) row by row
with Faker and the standard library, writes them as CSV, and prints one JSON line with the timing:

    python tabular_faker.py --rows 1000000 --out /tmp/faker.csv
    {"rows": 1000000, "seconds": 61.2, "bytes": 123456789, "faker": "40.1.0", "max_rss_mb": 52.1}
"""

import argparse
import csv
import datetime
import json
import random
import resource
import time
import unicodedata

import faker


def ascii_words(name):
    text = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode().lower()
    return ["".join(c for c in w if c.isalnum()) for w in text.split() if any(c.isalnum() for c in w)]


def peak_rss_mb():
    # VmHWM is this process's own peak; ru_maxrss would also count the parent's memory at fork (Linux keeps
    # the high-water mark across execve).
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--out", required=True)
    ap.add_argument("--seed", type=int, default=42)
    args = ap.parse_args()

    fake = faker.Faker("en_US")
    faker.Faker.seed(args.seed)
    rng = random.Random(args.seed)
    start_date = datetime.date(2020, 1, 1)
    span_days = (datetime.date(2024, 12, 31) - start_date).days
    plans, plan_weights = ["basic", "plus", "premium"], [6, 3, 1]
    providers = ["gmail.com", "yahoo.com", "hotmail.com"]

    started = time.perf_counter()
    with open(args.out, "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["id", "full_name", "email", "phone", "city", "company", "signup_date", "age", "income",
                    "plan", "active", "monthly_spend"])
        for i in range(1, args.rows + 1):
            name = fake.name()
            words = ascii_words(name) or ["user"]
            email = f"{words[0]}.{words[-1]}@{rng.choice(providers)}"
            age = min(90, max(18, round(rng.gauss(40, 12))))
            income = min(500000.0, max(5000.0, rng.lognormvariate(10.8, 0.6)))
            w.writerow([
                i,
                name,
                email,
                fake.phone_number(),
                fake.city(),
                fake.company(),
                (start_date + datetime.timedelta(days=rng.randint(0, span_days))).isoformat(),
                age,
                f"{income:.2f}",
                rng.choices(plans, plan_weights)[0],
                "true" if rng.random() < 0.8 else "false",
                f"{income / 12 * 0.05:.2f}",
            ])
        size = f.tell()
    seconds = time.perf_counter() - started
    max_rss_mb = peak_rss_mb()
    print(json.dumps({"rows": args.rows, "seconds": seconds, "bytes": size, "faker": faker.VERSION,
                      "max_rss_mb": round(max_rss_mb, 1)}))


if __name__ == "__main__":
    main()
