"""Figures 2-14's orderings and the claims, before and after issue 34's verdict rule (markdown, for NOTES.md).

``--before`` is a JSON file written by the pre-issue code (tolerance 0.005 nats, one m per claim): orderings
{figure, m, holds, fails, undecided} and claims {claim, figure, ours, paper}.

    python scripts/verdict_table.py --before before.json
"""

import argparse
import json

from micmco.book import claims, figures, orderings


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--before", required=True)
    args = parser.parse_args()
    before = json.load(open(args.before))
    old = {(o["figure"], o["m"]): o for o in before["orderings"]}
    print(
        "| figure | m | before: as the paper / reversed / tie | after: holds / fails / inconclusive / paper undecided |"
    )
    print("| --- | --- | --- | --- |")
    for (number, m), o in old.items():
        c = orderings.compare_ordering(figures.load_figure(number, "cpu"), m)
        print(
            f"| {number} | {m:g} | {o['holds']} / {o['fails']} / {o['undecided']} | "
            f"{len(c.holds)} / {len(c.fails)} / {len(c.inconclusive)} / {len(c.paper_undecided)} |"
        )
    after = claims.check_claims(None, "cpu") + claims.check_claims(None, "cpu", task="ptb")
    by_claim = {r["claim"]: r for r in after}
    print()
    print("| claim | figure | before: ours (paper) | after: ours (paper) |")
    print("| --- | --- | --- | --- |")
    for c in before["claims"]:
        a = by_claim[c["claim"]]
        print(f"| {c['claim']} | {c['figure']} | {c['ours']} ({c['paper']}) | {a['ours']} ({a['paper']}) |")


if __name__ == "__main__":
    main()
