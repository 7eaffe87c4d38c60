"""The shop's FAQ as markdown, and `search_faq` over it with SQLite FTS5 (standard library sqlite3).

The FAQ is a markdown file a shop keeper can edit (`workers/faq.md`, written from
`Shop.default()` by `render_markdown`): one `## topic` section per entry with the question in
bold, the answer as a paragraph, and a `Keywords:` line of search terms in the form queries are
reduced to (lowercase, a final "s" dropped from words over 3 letters: "hour", "expres").
`FaqIndex` loads it into an in-memory FTS5 table (topic, question, answer, keywords) and answers
queries with the same result, in the same format, as `workers.shop.Shop.search_faq`, the function
the training calls were made with: the query's words (lowercased, plural "s" dropped) are looked
up as FTS5 terms in the keywords column, an entry scores the sum of 1 / (entries holding the word)
over the words it holds, and the best two come back as `{"matches": [{"topic", "answer"}, ...]}`.

Knows nothing of Celery or Redis.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from workers.shop import Shop, _words

MAX_MATCHES = 2


@dataclass(frozen=True)
class Entry:
    topic: str
    question: str
    answer: str
    keywords: tuple[str, ...]


def render_markdown(shop: Shop) -> str:
    """The FAQ of `shop` as markdown (what `workers/faq.md` holds for `Shop.default()`)."""
    lines = [f"# {shop.name}: frequently asked questions", ""]
    for e in shop.faq:
        lines += [
            f"## {e.topic}",
            "",
            f"**{e.question}**",
            "",
            e.answer,
            "",
            f"Keywords: {' '.join(e.keywords)}",
            "",
        ]
    return "\n".join(lines)


def parse_markdown(text: str) -> list[Entry]:
    """Entries from FAQ markdown: `## topic`, `**question**`, answer paragraphs, `Keywords: ...`.

    An entry without a keywords line is found by the words of its topic and question.
    """
    entries: list[Entry] = []
    for section in re.split(r"^## +", text, flags=re.M)[1:]:
        head, _, body = section.partition("\n")
        topic = head.strip()
        question, keywords, answer = "", None, []
        for para in re.split(r"\n\s*\n", body):
            para = " ".join(para.split())
            if not para:
                continue
            if not question and para.startswith("**") and para.endswith("**"):
                question = para.strip("*").strip()
            elif para.lower().startswith("keywords:"):
                keywords = tuple(sorted(set(re.findall(r"[a-z]+", para.split(":", 1)[1].lower()))))
            else:
                answer.append(para)
        if not topic or not answer:
            raise ValueError(f"FAQ section {topic!r} has no answer")
        if keywords is None:
            keywords = tuple(sorted(_words(f"{topic} {question}")))
        entries.append(Entry(topic, question, " ".join(answer), keywords))
    if not entries:
        raise ValueError("the FAQ markdown has no '## topic' sections")
    return entries


class FaqIndex:
    """An in-memory FTS5 index over FAQ entries (one per process: sqlite connections don't fork)."""

    def __init__(self, entries: Iterable[Entry]) -> None:
        self._db = sqlite3.connect(":memory:", check_same_thread=False)
        self._db.execute("CREATE VIRTUAL TABLE faq USING fts5(topic, question, answer, keywords)")
        self._db.executemany(
            "INSERT INTO faq (rowid, topic, question, answer, keywords) VALUES (?, ?, ?, ?, ?)",
            [(i, e.topic, e.question, e.answer, " ".join(e.keywords)) for i, e in enumerate(entries)],
        )
        self._db.commit()

    @classmethod
    def from_markdown(cls, path: Path) -> FaqIndex:
        return cls(parse_markdown(path.read_text(encoding="utf-8")))

    def _rows_with(self, word: str) -> list[int]:
        # `word` is [a-z]+ (from _words), so it is a plain FTS5 term inside the quotes.
        rows = self._db.execute("SELECT rowid FROM faq WHERE faq MATCH ?", (f'keywords : "{word}"',))
        return [r[0] for r in rows]

    def search(self, query: str) -> dict[str, Any]:
        scores: dict[int, float] = {}
        for word in sorted(_words(query)):  # sorted: float sums must not depend on set order
            rows = self._rows_with(word)
            for row in rows:
                scores[row] = scores.get(row, 0.0) + 1.0 / len(rows)
        best = sorted(scores.items(), key=lambda s: (s[1], -s[0]), reverse=True)[:MAX_MATCHES]
        if not best:
            return {"matches": []}
        marks = ",".join("?" * len(best))
        found = dict(
            (r[0], (r[1], r[2]))
            for r in self._db.execute(
                f"SELECT rowid, topic, answer FROM faq WHERE rowid IN ({marks})", [row for row, _ in best]
            )
        )
        return {"matches": [{"topic": found[row][0], "answer": found[row][1]} for row, _ in best]}
