"""Resume bookkeeping of a benchmark folder: which results exist, and may they be reused?

``records.jsonl`` holds one line per finished unit of work, appended as it finishes:

- ``{"type": "input", "image", "source", "sha256", ...}`` once the image's LR (and HR) are
  written;
- ``{"type": "result", "image", "method", "identity", "scores", "notes", "seconds"}`` once a
  method's output is written and scored.

A re-run reuses a result when the settings in ``run.json`` match, the method's identity (its
model's sha256) matches and the output file is still there; anything else is refused, never
mixed in silently.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence


def index_records(records: Iterable[Mapping]
                  ) -> tuple[dict[str, dict], dict[tuple[str, str], dict]]:
    """``(inputs by image, results by (image, method))``; a later line replaces an earlier."""
    inputs: dict[str, dict] = {}
    results: dict[tuple[str, str], dict] = {}
    for r in records:
        if r.get("type") == "input" and "image" in r:
            inputs[r["image"]] = dict(r)
        elif r.get("type") == "result" and "image" in r and "method" in r:
            results[(r["image"], r["method"])] = dict(r)
    return inputs, results


def settings_diff(old: Mapping, new: Mapping) -> list[str]:
    """The keys whose values differ between two settings dicts (sorted)."""
    return sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))


def identity_conflicts(results: Iterable[Mapping], identities: Mapping[str, str]) -> list[str]:
    """Methods of this run that have recorded results made by something else (another model
    file under the same name): one line each, e.g. ``'ema: recorded 1a2b3c4d..., now 5e6f...'``.
    """
    seen: dict[str, str] = {}
    for r in results:
        m = r["method"]
        if m in identities and r.get("identity") != identities[m]:
            seen.setdefault(m, str(r.get("identity")))
    return [f"{m}: recorded {_short(old)}, now {_short(identities[m])}"
            for m, old in sorted(seen.items())]


def _short(identity: str) -> str:
    return identity if identity.startswith("classical:") else identity[:12] + "..."


def ordered_results(results: Mapping[tuple[str, str], Mapping], images: Sequence[str],
                    methods: Sequence[str]) -> list[dict]:
    """The results of these images and methods, image by image in the given orders."""
    return [dict(results[(i, m)]) for i in images for m in methods if (i, m) in results]
