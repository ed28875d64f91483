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
    print()
    print(inconclusive_reasons(sorted({number for number, _ in old}), sorted({m for _, m in old})))
    after = claims.check_claims(None, "cpu") + claims.check_claims(None, "cpu", task="ptb")
    by_claim = {r["claim"]: r for r in after}
    print()
    print("| claim | figure | before: ours (paper) | after: ours (paper) |")
    print("| --- | --- | --- | --- |")
    for c in before["claims"]:
        a = by_claim[c["claim"]]
        print(f"| {c['claim']} | {c['figure']} | {c['ours']} ({c['paper']}) | {a['ours']} ({a['paper']}) |")


def inconclusive_reasons(numbers, usages) -> str:
    """Why our side leaves pairs inconclusive that the paper's data decide: too few trials at m, or a difference
    within two combined standard errors, measured on both sides or with an assumed one (a trial without a
    precise evaluation). Markdown: one row per figure."""
    lines = ["| figure | inconclusive pairs | too few trials | within measured errors | within an assumed error |",
             "| --- | --- | --- | --- | --- |"]  # fmt: skip
    for number in numbers:
        figure = figures.load_figure(number, "cpu")
        counts = [0, 0, 0]
        for m in usages:
            for pair in orderings.compare_curves(figure.curves, m, figure.noise):
                if pair.equivalent or pair.paper_verdict[0] != "holds" or pair.ours_verdict[0] != "inconclusive":
                    continue
                reason = pair.ours_verdict[1]
                if "trials reach m" in reason or reason == "neither reaches m":
                    counts[0] += 1
                elif " within " in reason:
                    counts[2 if any(e.assumed for e in pair.ours) else 1] += 1
                elif reason == "no standard error":
                    counts[2] += 1
                else:
                    raise ValueError(f"figure {number}, m = {m}: an inconclusive reason not counted: {reason!r}")
        if sum(counts):
            lines.append(f"| {number} | {sum(counts)} | {counts[0]} | {counts[1]} | {counts[2]} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
