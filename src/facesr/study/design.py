"""A blind ranking study's design: which outputs each image shows, in which order, under
which opaque token.

Every shown output gets its own random token, so the page never holds a method name and a
rater reading its source cannot even follow one method from image to image. The
:class:`Study` itself is the organiser's key (``key.json``): token -> method, image -> tokens
in letter order. Orders come from the ``rng`` passed in (reproducible from a seed); tokens and
the study id come from :mod:`secrets` on purpose, so a page cannot be decoded from its seed.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
KEY_FORMAT = "facesr-study-key"
KEY_VERSION = 1


class StudyError(ValueError):
    """A study that cannot be built or a key file that cannot be used; one-line message."""


@dataclass(frozen=True)
class StudyItem:
    """One image of the study: ``methods[i]`` is shown as letter ``LETTERS[i]`` under the
    opaque id ``tokens[i]``."""

    image: str
    methods: tuple[str, ...]
    tokens: tuple[str, ...]


@dataclass(frozen=True)
class Study:
    """The whole design, in page order; serialised as ``key.json`` (:meth:`to_key`)."""

    study_id: str
    methods: tuple[str, ...]
    items: tuple[StudyItem, ...]

    def method_of(self) -> dict[str, str]:
        """token -> method name, over every image."""
        return {t: m for item in self.items for t, m in zip(item.tokens, item.methods, strict=True)}

    def to_key(self) -> dict[str, Any]:
        """The JSON object written as ``key.json``."""
        return {"format": KEY_FORMAT, "version": KEY_VERSION, "study": self.study_id,
                "methods": list(self.methods), "tokens": self.method_of(),
                "images": {item.image: list(item.tokens) for item in self.items}}

    @classmethod
    def from_key(cls, data: object) -> Study:
        """Read a ``key.json`` object back; :class:`StudyError` when it is not one."""
        if not isinstance(data, dict) or data.get("format") != KEY_FORMAT:
            raise StudyError(f"not a study key (expected \"format\": \"{KEY_FORMAT}\")")
        if data.get("version") != KEY_VERSION:
            raise StudyError(f"study key version {data.get('version')!r} is not supported "
                             f"(this facesr reads version {KEY_VERSION})")
        sid, methods, tokens, images = (data.get(k) for k in
                                        ("study", "methods", "tokens", "images"))
        if not (isinstance(sid, str) and isinstance(methods, list)
                and isinstance(tokens, dict) and isinstance(images, dict)):
            raise StudyError("study key lacks 'study', 'methods', 'tokens' or 'images'")
        items = []
        for image, toks in images.items():
            if not isinstance(toks, list) or any(t not in tokens for t in toks):
                raise StudyError(f"study key: image {image!r} names a token with no method")
            items.append(StudyItem(image, tuple(tokens[t] for t in toks), tuple(toks)))
        return cls(sid, tuple(methods), tuple(items))


def new_token() -> str:
    """10 random hex digits (40 bits) from :mod:`secrets`: an opaque output id."""
    return secrets.token_hex(5)


def new_study_id() -> str:
    """12 random hex digits from :mod:`secrets`."""
    return secrets.token_hex(6)


def plan_study(images: Sequence[str], methods: Sequence[str], rng: np.random.Generator, *,
               study_id: str | None = None, token: Callable[[], str] = new_token) -> Study:
    """Shuffle the methods independently for each image and give every output a token.

    Args:
        images: image ids (file stems), in page order.
        methods: the methods to rank (2 to 26, distinct).
        rng: draws the per-image orders.
        study_id: defaults to :func:`new_study_id`.
        token: makes one opaque id per call (distinct ids are enforced).

    >>> s = plan_study(["x", "y"], ["a", "b", "c"], np.random.default_rng(0), study_id="s1")
    >>> sorted(s.items[0].methods) == ["a", "b", "c"] and len(s.method_of()) == 6
    True
    """
    if not 2 <= len(methods) <= len(LETTERS):
        raise StudyError(f"a study ranks 2 to {len(LETTERS)} methods, got {len(methods)}")
    if len(set(methods)) != len(methods):
        raise StudyError(f"methods repeat: {', '.join(methods)}")
    if not images:
        raise StudyError("a study needs at least one image")
    if len(set(images)) != len(images):
        raise StudyError("image ids repeat")
    used: set[str] = set()
    items = []
    for image in images:
        order = tuple(methods[i] for i in rng.permutation(len(methods)))
        tokens = []
        for _ in order:
            t = token()
            for _retry in range(100):
                if t not in used:
                    break
                t = token()
            else:
                raise StudyError("the token function keeps repeating itself")
            used.add(t)
            tokens.append(t)
        items.append(StudyItem(image, order, tuple(tokens)))
    return Study(study_id or new_study_id(), tuple(methods), tuple(items))
