"""How much an English bag of words shares with each target language: for every pair, the
run's own 5000-term vocabulary (jtl.domains.bow, as text_features=bow builds it from the
source and unlabeled target train texts), how many of its terms occur in the English train
texts, in the target train texts, and in both; and how many features an average target test
review has, against an English test review. No labels are read.

Usage: overlap.py [--out results/overlap.md]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from omegaconf import OmegaConf

from jtl.domains import bow
from jtl.domains.base import build_domain, load_context
from jtl.domains.text import train_texts

CONF = Path(__file__).resolve().parents[2] / "conf" / "domain"
LANGS = ("de", "fr", "jp")
CATS = ("books", "dvd", "music")


def domain(name: str) -> dict:
    """A preset of reviews (conf/domain/<name>.yaml) over reviews.yaml, as Hydra composes it."""
    def load(n: str) -> dict:
        return OmegaConf.to_container(OmegaConf.load(CONF / f"{n}.yaml"), resolve=True)

    preset = {k: v for k, v in load(name).items() if k != "defaults"}
    return {**load("reviews"), **preset}


def terms_in(texts: list[str], ngrams: int) -> set[str]:
    return {t for s in texts for t in bow.analyze(s, ngrams)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default=None)
    a = p.parse_args()
    ctx = load_context({})
    cfg = {"text_features": {"name": "bow", "top_k": 5000, "ngrams": 2, "binary": False}}
    lines = ["| pair | vocabulary terms in en train | in target train | in both | "
             "features per en test review | per target test review | target test reviews "
             "with no feature |", "|---|---|---|---|---|---|---|"]
    for lang in LANGS:
        for cat in CATS:
            src, tgt = domain(f"webis_en_{cat}"), domain(f"webis_{lang}_{cat}")
            keys = bow.resolve(cfg, ctx, [("source", src), ("target", tgt)])["target"]
            vocab = set(bow.read_vocabulary(keys["vocabulary"], ctx))
            in_src = vocab & terms_in(train_texts(src, ctx), 2)
            in_tgt = vocab & terms_in(train_texts(tgt, ctx), 2)
            nnz = {}
            for role, d in (("en", src), ("tgt", tgt)):
                x = build_domain({**d, **keys}, (1,), ctx).test.stored
                nnz[role] = ((x > 0).sum(axis=1).mean(), float(((x > 0).sum(axis=1) == 0).mean()))
            lines.append(f"| en {cat} -> {lang} {cat} | {len(in_src)} | {len(in_tgt)} | "
                         f"{len(in_src & in_tgt)} | {nnz['en'][0]:.0f} | {nnz['tgt'][0]:.0f} | "
                         f"{100 * nnz['tgt'][1]:.1f}% |")
            print(lines[-1], flush=True)
    text = "\n".join(["5000-term vocabularies (unigrams + bigrams; Japanese: character "
                      "bigrams), built as each run builds its own\n", *lines]) + "\n"
    if a.out:
        Path(a.out).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
